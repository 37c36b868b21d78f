package embedded

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func install(dir string, data []byte, sum string) (string, error) {
	return Install(dir, "devbox-init", sum, int64(len(data)), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

func TestInstall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "init")
	data := []byte("#!/bin/sh\nexit 0\n")
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	old := filepath.Join(dir, "devbox-init-0123456789abcdef")
	recent := filepath.Join(dir, "devbox-init-fedcba9876543210")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(old, []byte("an older version"), 0o700)
	os.WriteFile(recent, []byte("a version in use beside this one"), 0o700)
	longAgo := time.Now().Add(-2 * Stale)
	os.Chtimes(old, longAgo, longAgo)

	path, err := install(dir, data, sum)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "devbox-init-"+sum[:16] {
		t.Errorf("installed as %s, want a name with the sum", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) || fi.Mode().Perm() != 0o755 {
		t.Errorf("installed %q mode %v, want the program, mode 0755", got, fi.Mode())
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the old copy of another version is still there")
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("a recent copy of another version was removed: %v", err)
	}
	os.Remove(recent)

	// A second use finds it; a copy cut short is replaced.
	before := fi.ModTime()
	time.Sleep(10 * time.Millisecond)
	if again, err := install(dir, data, sum); err != nil || again != path {
		t.Fatalf("second install = %s, %v", again, err)
	}
	if fi, _ := os.Stat(path); !fi.ModTime().Equal(before) {
		t.Errorf("a complete copy was written again")
	}
	os.WriteFile(path, data[:3], 0o700)
	if _, err := install(dir, data, sum); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Errorf("a truncated copy was kept: %q", got)
	}
	// An earlier devbox made its copies 0700, which the other ids of a
	// subuid sandbox cannot execute as its sudo.
	if err := os.Chmod(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := install(dir, data, sum); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o755 {
		t.Errorf("a copy of mode %v was kept, want it made 0755", fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries in %s, want the program alone", len(entries), dir)
	}
}

// TestInstallKilled: while the copy is written, nothing of it is in the
// directory under any name, so a devbox killed then leaves nothing behind.
func TestInstallKilled(t *testing.T) {
	dir := t.TempDir()
	data := []byte("#!/bin/sh\nexit 0\n")
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	var during []os.DirEntry
	path, err := Install(dir, "devbox-init", sum, int64(len(data)), func(w io.Writer) error {
		during, _ = os.ReadDir(dir)
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(during) != 0 {
		t.Errorf("while the copy was written, the directory held %v", during)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Errorf("installed %q, want the program", got)
	}
}
