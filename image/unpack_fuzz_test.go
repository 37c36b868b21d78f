//go:build !devbox_lean

package image

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

var applyUpdateFuzzCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite the FuzzApplyTar seeds in testdata/fuzz/FuzzApplyTar from the hostile table")

// applyFuzzSentinel stands for the sentinel directory in fuzz seeds: a path
// that exists on no host, so that even a broken applier that followed a
// symlink out of the layer would write nowhere that matters.
const applyFuzzSentinel = "/devbox-fuzz-sentinel"

// applyFuzzDir holds the seed corpus, which `go test` runs on every run.
var applyFuzzDir = filepath.Join("testdata", "fuzz", "FuzzApplyTar")

// applyFuzzSeeds returns every layer of every hostile case, by seed file name.
func applyFuzzSeeds() map[string][]byte {
	seeds := make(map[string][]byte)
	for _, tc := range applyHostileCases() {
		name := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				return r
			}
			if r >= 'A' && r <= 'Z' {
				return r - 'A' + 'a'
			}
			return '-'
		}, tc.name)
		for i, data := range tc.layers(applyFuzzSentinel) {
			seeds["seed-"+name+"-"+strconv.Itoa(i)] = data
		}
	}
	return seeds
}

// applyFuzzFile is data in the "go test fuzz v1" corpus file format.
func applyFuzzFile(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
}

// TestApplyTarFuzzCorpus keeps the seed files in testdata in step with the
// hostile table; -update-fuzz-corpus rewrites them. Other files there, such
// as crashers the fuzzer found, are left alone.
func TestApplyTarFuzzCorpus(t *testing.T) {
	seeds := applyFuzzSeeds()
	if *applyUpdateFuzzCorpus {
		if err := os.MkdirAll(applyFuzzDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		p := filepath.Join(applyFuzzDir, name)
		want := applyFuzzFile(seeds[name])
		if *applyUpdateFuzzCorpus {
			if err := os.WriteFile(p, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is missing or stale (%v): run go test ./image/ -run TestApplyTarFuzzCorpus -update-fuzz-corpus", p, err)
		}
	}
}

func FuzzApplyTar(f *testing.F) {
	seeds := applyFuzzSeeds()
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		f.Add(seeds[name])
	}
	lim := ApplyLimits{MaxBytes: 1 << 20, MaxEntries: 256, MaxDepth: 32, MaxNameLen: 1024}
	// One sentinel for all inputs of this process: creating files is the
	// slow part of an input, and the minimizer runs thousands of them. Each
	// input gets a fresh layer directory beside the previous ones' (removed)
	// places, so "../../../sentinel" from it is still the sentinel.
	env := newApplyTestEnv(f)
	if err := os.Remove(env.layer); err != nil {
		f.Fatal(err)
	}
	parent := filepath.Dir(env.layer)
	// The parent's own mtime changes with every input; anything created
	// in it still shows up as a new path.
	snapshot := func(t *testing.T, env applyTestEnv) map[string]string {
		snap := applyTestSnapshot(t, env)
		delete(snap, parent)
		return snap
	}
	var inputs atomic.Int64
	f.Fuzz(func(t *testing.T, data []byte) {
		env := env
		env.layer = filepath.Join(parent, "layer"+strconv.FormatInt(inputs.Add(1), 10))
		if err := os.Mkdir(env.layer, 0o755); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, env)
		stats, err := ApplyTar(env.layer, bytes.NewReader(data), lim)
		if diff := applyTestSnapshotDiff(before, snapshot(t, env)); diff != "" {
			t.Fatalf("ApplyTar (%v) changed files outside the layer:\n%s", err, diff)
		}
		// Entries is counted before the limit check that fails the entry.
		if stats.Bytes > lim.MaxBytes || stats.Entries > lim.MaxEntries+1 {
			t.Fatalf("stats %+v beyond limits %+v", stats, lim)
		}
		var ee *EntryError
		if errors.As(err, &ee) && ee.Err == nil {
			t.Fatalf("EntryError without a cause: %v", err)
		}
		if err == nil {
			applyFuzzCheckTree(t, env.layer)
		}
		if err := RemoveAll(env.layer); err != nil {
			t.Fatalf("RemoveAll: %v", err)
		}
		if _, err := os.Lstat(env.layer); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("layer still exists after RemoveAll: %v", err)
		}
	})
}

// applyFuzzCheckTree checks what a successfully applied layer may hold: no
// setuid or setgid bits, no device other than 0:0 whiteouts, and no overlayfs
// xattr other than the opaque marker on a directory.
func applyFuzzCheckTree(t *testing.T, layer string) {
	t.Helper()
	buf := make([]byte, 64<<10)
	err := filepath.WalkDir(layer, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			// A directory with mode 0000 cannot be read by its
			// unprivileged owner.
			if errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
			t.Errorf("%s: mode %o has setuid or setgid", p, st.Mode)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFBLK:
			t.Errorf("%s: block device", p)
		case unix.S_IFCHR:
			if st.Rdev != 0 {
				t.Errorf("%s: character device %d", p, st.Rdev)
			}
		}
		n, err := unix.Llistxattr(p, buf)
		if err != nil {
			return nil
		}
		for name := range strings.SplitSeq(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
			if !strings.HasPrefix(name, "user.overlay.") {
				continue
			}
			if name != applyOpaqueXattr || st.Mode&unix.S_IFMT != unix.S_IFDIR {
				t.Errorf("%s: overlayfs xattr %s", p, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
