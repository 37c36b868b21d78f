package rootless

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDoctor runs the real checks: the required ones must pass wherever
// the sandbox tests run, and every failed check must say how to fix it.
func TestDoctor(t *testing.T) {
	scratch := t.TempDir()
	// overlayfs leaves its work/work directory without permissions: give
	// them back so that TempDir's cleanup can remove it.
	t.Cleanup(func() {
		for _, d := range []string{"kernel", "fuse"} {
			os.Chmod(filepath.Join(scratch, d, "work", "work"), 0o700)
		}
	})
	for _, c := range Doctor(scratch) {
		if c.Required && !c.OK {
			t.Errorf("required check %q failed: %s", c.Name, c.Detail)
		}
		if !c.OK && c.Fix == "" {
			t.Errorf("check %q failed without a fix: %s", c.Name, c.Detail)
		}
		if c.Detail == "" {
			t.Errorf("check %q has no detail", c.Name)
		}
	}
}

func TestSubIDRange(t *testing.T) {
	file := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(file, []byte("alice:100000:65536\n1001:200000:1000\nbad line\nbob:x:1\n"), 0o644)
	tests := []struct {
		name, uid    string
		start, count int
		wantErr      bool
	}{
		{"alice", "1000", 100000, 65536, false},
		{"carol", "1001", 200000, 1000, false},
		{"bob", "1002", 0, 0, true},
		{"dave", "1003", 0, 0, true},
	}
	for _, tt := range tests {
		start, count, err := SubIDRange(file, tt.name, tt.uid)
		if (err != nil) != tt.wantErr || start != tt.start || count != tt.count {
			t.Errorf("SubIDRange(%s) = %d, %d, %v", tt.name, start, count, err)
		}
	}
}
