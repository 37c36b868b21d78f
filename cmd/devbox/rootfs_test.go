package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devboxhq/devbox/mounts"
	"github.com/devboxhq/devbox/rootless"
)

// TestRootFSChoice: the probe's result is remembered per kernel, and a
// remembered choice is used as it is; one from another kernel, or one that
// cannot be read, is probed again and replaced.
func TestRootFSChoice(t *testing.T) {
	t.Setenv("DEVBOX_ROOTFS", "")
	kernel := rootless.KernelRelease()
	tests := []struct {
		name, cache string
		want        mounts.RootFS // "" when the probe decides
	}{
		{name: "remembered", cache: kernel + "\ncopy\n\n", want: mounts.RootFSCopy},
		{name: "remembered helper", cache: kernel + "\nfuse-overlayfs\n/opt/bin/fuse-overlayfs\n", want: mounts.RootFSFuse},
		{name: "none"},
		{name: "another kernel", cache: "2.6.32-old\ncopy\n\n"},
		{name: "unknown mode", cache: kernel + "\nzfs\n\n"},
		{name: "truncated", cache: kernel + "\ncopy"},
		{name: "an old JSON record", cache: `{"kernel":"` + kernel + `","mode":"copy"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, rootFSChoiceFile)
			if tt.cache != "" {
				if err := os.WriteFile(path, []byte(tt.cache), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			mode, helper, err := rootFS(dir)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" {
				if mode != tt.want || string(b) != tt.cache {
					t.Fatalf("rootFS = %q, file %q; want the remembered %q, file unchanged", mode, b, tt.want)
				}
				if wantHelper := strings.Split(tt.cache, "\n")[2]; helper != wantHelper {
					t.Errorf("helper = %q, want %q", helper, wantHelper)
				}
				return
			}
			if want := kernel + "\n" + string(mode) + "\n" + helper + "\n"; string(b) != want {
				t.Errorf("after a probe the file holds %q, want %q", b, want)
			}
			again, _, err := rootFS(dir)
			if err != nil || again != mode {
				t.Errorf("second rootFS = %q, %v; want the remembered %q", again, err, mode)
			}
		})
	}
}
