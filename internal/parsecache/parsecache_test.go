package parsecache

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devboxhq/devbox/internal/wire"
)

var stringCodec = Codec[string]{
	Encode: func(e *wire.Encoder, s string) { e.String(s) },
	Decode: func(d *wire.Decoder) string { return d.String() },
}

func TestParse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, cache := filepath.Join(dir, "file"), filepath.Join(dir, "cache", "file")
	parses := 0
	parse := func(src []byte) (string, error) {
		parses++
		if strings.Contains(string(src), "bad") {
			return "", errors.New("bad input")
		}
		return strings.ToUpper(string(src)), nil
	}
	if _, err := Parse(path, cache, parse, stringCodec); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}

	// A file this fresh is parsed every time: an edit within its
	// timestamps' resolution would go unseen.
	if err := os.WriteFile(path, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if v, err := Parse(path, cache, parse, stringCodec); v != "ABC" || err != nil {
			t.Fatalf("Parse = %q, %v", v, err)
		}
	}
	if _, err := os.Stat(cache); !os.IsNotExist(err) || parses != 2 {
		t.Fatalf("a fresh file was cached (%v, %d parses)", err, parses)
	}

	time.Sleep(RacyWindow + 50*time.Millisecond)
	for range 3 {
		if v, err := Parse(path, cache, parse, stringCodec); v != "ABC" || err != nil {
			t.Fatalf("Parse = %q, %v", v, err)
		}
	}
	if parses != 3 {
		t.Errorf("%d parses for three reads of an unchanged file, want 1 more than before", parses)
	}

	// The record belongs to this file and this executable only.
	b, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	var other Stamp
	if _, ok := ReadRecord(b, other, Exe(), stringCodec); ok {
		t.Error("a record was read for another file")
	}
	if _, ok := ReadRecord(b, decodeStampOf(t, b), other, stringCodec); ok {
		t.Error("a record was read for another executable")
	}
	for i := range b {
		if _, ok := ReadRecord(b[:i], decodeStampOf(t, b), Exe(), stringCodec); ok {
			t.Fatalf("a record cut to %d of %d bytes was read", i, len(b))
		}
	}

	// A changed file is parsed again, and an error is not cached.
	if err := os.WriteFile(path, []byte("bad"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(path, cache, parse, stringCodec); err == nil {
		t.Error("an edit to bad input was not parsed again")
	}
}

// decodeStampOf reads the file stamp of record b.
func decodeStampOf(t *testing.T, b []byte) Stamp {
	d := &wire.Decoder{B: b}
	if d.Uint() != version {
		t.Fatal("not a record")
	}
	return decodeStamp(d)
}
