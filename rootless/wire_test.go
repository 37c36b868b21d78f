package rootless

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/devboxhq/devbox/internal/wire/wiretest"
)

func encodeSpec(s Spec) []byte {
	data, err := s.MarshalBinary()
	if err != nil {
		panic(err)
	}
	return data
}

func decodeSpec(data []byte) (Spec, error) {
	var s Spec
	err := s.UnmarshalBinary(data)
	return s, err
}

func TestSpecRoundTrip(t *testing.T) {
	wiretest.Check(t, encodeSpec, decodeSpec)
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
// what is decoded survives a round trip.
func FuzzSpecUnmarshal(f *testing.F) {
	for _, s := range []Spec{{}, wiretest.Empty[Spec](), wiretest.Full[Spec]()} {
		f.Add(encodeSpec(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		wiretest.Stable(t, data, encodeSpec, decodeSpec)
	})
}
