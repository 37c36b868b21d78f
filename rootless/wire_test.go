package rootless

import (
	"bufio"
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// fill sets every field v reaches to a value that is not its zero value
// and differs from field to field, so that a field the wire form leaves
// out fails TestSpecRoundTrip.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(strings.Repeat("x", *n) + "é\x00\n")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int:
		v.SetInt(int64(1000 + *n))
	case reflect.Uint32, reflect.Uint16:
		v.SetUint(uint64(*n))
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), n)
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), n)
		}
		v.Set(s)
	default:
		panic("fill: a field of kind " + v.Kind().String() + " needs a case here and in the wire form")
	}
}

func TestSpecRoundTrip(t *testing.T) {
	var full Spec
	n := 0
	fill(reflect.ValueOf(&full).Elem(), &n)
	for _, spec := range []Spec{{}, full} {
		data, err := spec.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Spec
		if err := got.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, spec) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, spec)
		}
		// Every prefix is refused, never half read.
		for i := range data {
			if err := new(Spec).UnmarshalBinary(data[:i]); err == nil {
				t.Fatalf("a spec cut to %d of %d bytes was accepted", i, len(data))
			}
		}
		if err := new(Spec).UnmarshalBinary(append(data, 0)); err == nil {
			t.Error("a spec with a byte after its end was accepted")
		}
	}
	if err := new(Spec).UnmarshalBinary([]byte{specVersion + 1}); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("another version: %v", err)
	}
}

func TestMessages(t *testing.T) {
	sent := []message{
		{Type: msgStarted},
		{Type: msgSetupError, Error: "mount /proc: operation not permitted\nsecond line"},
		{Type: msgExited, Status: 130},
		{Type: msgExited, Status: -1},
	}
	var buf bytes.Buffer
	for _, m := range sent {
		if err := sendMessage(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for _, want := range sent {
		got, err := readMessage(r)
		if err != nil || got != want {
			t.Errorf("readMessage = %+v, %v; want %+v", got, err, want)
		}
	}
	if _, err := readMessage(r); err == nil {
		t.Error("a message after the last one")
	}
	if err := waitStarted(bufio.NewReader(strings.NewReader(""))); err == nil || !strings.Contains(err.Error(), "exited before starting") {
		t.Errorf("waitStarted at EOF: %v", err)
	}
}

// FuzzSpecUnmarshal: any input is decoded or refused without a panic, and
// what is decoded encodes back to the same bytes.
func FuzzSpecUnmarshal(f *testing.F) {
	var full Spec
	n := 0
	fill(reflect.ValueOf(&full).Elem(), &n)
	for _, s := range []Spec{{}, full} {
		data, _ := s.MarshalBinary()
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Spec
		if s.UnmarshalBinary(data) != nil {
			return
		}
		again, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var s2 Spec
		if err := s2.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("decoded %+v, which does not survive a round trip: %v", s, err)
		}
	})
}
