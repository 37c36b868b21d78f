package rootless

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

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
