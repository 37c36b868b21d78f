package wire

import (
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	e := &Encoder{}
	e.Uint(math.MaxUint64)
	e.Int(math.MinInt64)
	e.Int(-1)
	e.Bool(true)
	e.String("a\x00é")
	e.Strings(nil)
	e.Strings([]string{})
	e.Strings([]string{"", "x"})
	e.Map(nil)
	e.Map(map[string]string{})
	e.Map(map[string]string{"b": "2", "a": ""})
	e.Set(nil)
	e.Set(map[string]struct{}{"80/tcp": {}, "443/tcp": {}})

	d := &Decoder{B: e.B}
	got := []any{d.Uint(), d.Int(), d.Int(), d.Bool(), d.String(), d.Strings(), d.Strings(), d.Strings(), d.Map(), d.Map(), d.Map(), d.Set(), d.Set()}
	want := []any{uint64(math.MaxUint64), int64(math.MinInt64), int64(-1), true, "a\x00é", []string(nil), []string{}, []string{"", "x"},
		map[string]string(nil), map[string]string{}, map[string]string{"a": "", "b": "2"},
		map[string]struct{}(nil), map[string]struct{}{"443/tcp": {}, "80/tcp": {}}}
	if err := d.Done(); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("value %d: got %#v, want %#v", i, got[i], want[i])
		}
	}
}

// A map is written in key order, so equal maps give equal bytes.
func TestMapOrder(t *testing.T) {
	m := map[string]string{}
	for _, k := range []string{"z", "a", "m", "b", "y"} {
		m[k] = k
	}
	first := &Encoder{}
	first.Map(m)
	for range 20 {
		again := &Encoder{}
		again.Map(m)
		if string(again.B) != string(first.B) {
			t.Fatal("one map encoded two ways")
		}
	}
}

func TestRefused(t *testing.T) {
	huge := &Encoder{}
	huge.Uint(1 << 40) // a length no input holds
	for name, read := range map[string]func(d *Decoder) any{
		"string":  func(d *Decoder) any { return d.String() },
		"strings": func(d *Decoder) any { return d.Strings() },
		"map":     func(d *Decoder) any { return d.Map() },
		"set":     func(d *Decoder) any { return d.Set() },
	} {
		d := &Decoder{B: huge.B}
		read(d)
		if !errors.Is(d.Err, ErrShort) {
			t.Errorf("%s of length 2^40 in 6 bytes: %v", name, d.Err)
		}
	}
	d := &Decoder{B: []byte{2}}
	if d.Bool(); d.Err == nil {
		t.Error("a bool of 2 was accepted")
	}
	d = &Decoder{B: []byte{7, 0}}
	if d.Below(8); d.Done() == nil {
		t.Error("a byte after the end was accepted")
	}
	d = &Decoder{B: []byte{0x80}}
	if d.Uint(); d.Uint() != 0 || !errors.Is(d.Err, ErrShort) {
		t.Errorf("a cut uvarint: %v", d.Err)
	}
}
