package rootless

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestInstallInitProgram(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "init")
	data := []byte("#!/bin/sh\nexit 0\n")
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	old := filepath.Join(dir, "devbox-init-0123456789abcdef")
	recent := filepath.Join(dir, "devbox-init-fedcba9876543210")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(old, []byte("an older version"), 0o700)
	os.WriteFile(recent, []byte("a version in use beside this one"), 0o700)
	longAgo := time.Now().Add(-2 * staleInitProgram)
	os.Chtimes(old, longAgo, longAgo)

	path, err := installInitProgram(dir, data, sum)
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
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) || fi.Mode().Perm() != 0o700 {
		t.Errorf("installed %q mode %v, want the program, mode 0700", got, fi.Mode())
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
	if again, err := installInitProgram(dir, data, sum); err != nil || again != path {
		t.Fatalf("second install = %s, %v", again, err)
	}
	if fi, _ := os.Stat(path); !fi.ModTime().Equal(before) {
		t.Errorf("a complete copy was written again")
	}
	os.WriteFile(path, data[:3], 0o700)
	if _, err := installInitProgram(dir, data, sum); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Errorf("a truncated copy was kept: %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries in %s, want the program alone", len(entries), dir)
	}
}

// TestInitProgram: with an init program set, pid 1 runs from its copy;
// when the copy cannot be made, this executable is pid 1 again.
func TestInitProgram(t *testing.T) {
	layer := busyboxLayer(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary stands in for cmd/devbox-init: its TestMain calls
	// Init first, as that program's main does.
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	dir := filepath.Join(t.TempDir(), "init")
	use := func(dir func() (string, error)) {
		initProg.once = sync.Once{}
		UseInitProgram(data, hex.EncodeToString(sum[:]), dir)
	}
	t.Cleanup(func() {
		initProg.data, initProg.once = nil, sync.Once{}
	})
	if c := checkInitProgram(); c.OK || c.Fix == "" {
		t.Errorf("doctor without an init program: %+v, want a warning with a fix", c)
	}
	stdio := IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
	for _, tt := range []struct {
		name    string
		dir     func() (string, error)
		inCache bool
	}{
		{"from the cache", func() (string, error) { return dir, nil }, true},
		{"no cache", func() (string, error) { return "/proc/no-such-dir", nil }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			use(tt.dir)
			if c := checkInitProgram(); c.OK != tt.inCache || (!c.OK && c.Fix == "") {
				t.Errorf("doctor says %+v; want OK = %v", c, tt.inCache)
			}
			spec := sandbox(t, []string{layer}, "sh", "-c", "exit 3")
			sb, err := Start(LaunchOf(spec), stdio)
			if err != nil {
				t.Fatal(err)
			}
			defer sb.Close()
			exe, err := os.Readlink("/proc/" + strconv.Itoa(sb.init.pid) + "/exe")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.HasPrefix(exe, dir+"/devbox-init-"); got != tt.inCache {
				t.Errorf("pid 1 runs %s; from the cache: %v, want %v", exe, got, tt.inCache)
			}
			if code, err := sb.Run(context.Background(), spec, nil); err != nil || code != 3 {
				t.Errorf("Run = %d, %v; want 3", code, err)
			}
		})
	}
}
