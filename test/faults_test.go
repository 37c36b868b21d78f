package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPullKilled kills 'devbox pull' with SIGKILL at random points, again
// and again: every layer that is in the store under its real name must be
// complete and identical to a clean pull's, and the next pull must finish.
func TestPullKilled(t *testing.T) {
	t.Parallel()
	ref, maxDelay := imageRef(suite.registry, "layered"), 300*time.Millisecond
	if os.Getenv("DEVBOX_TEST_DEBIAN") == "1" {
		requireDebian(t)
		ref, maxDelay = suite.registry+"/"+debianRepo, 4*time.Second
	}
	clean := newEnv(t, ref)
	clean.mustRun(t, "pull", "-q", ref)
	want := layerTrees(t, clean)

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	e := newEnv(t, ref)
	for i := range 8 {
		delay := time.Duration(rng.Int64N(int64(maxDelay)))
		cmd := exec.Command(suite.bin, "pull", "-q", ref)
		cmd.Dir, cmd.Env = e.Project, e.environ()
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		for id, tree := range layerTrees(t, e) {
			if tree != want[id] {
				t.Fatalf("kill %d after %v: layer %s is in the store but differs from a clean pull's", i, delay, id)
			}
		}
	}
	e.mustRun(t, "pull", "-q", ref)
	got := layerTrees(t, e)
	for id, tree := range want {
		if got[id] != tree {
			t.Errorf("after the kills, a full pull left layer %s different from a clean pull's", id)
		}
	}
	if r := e.mustRun(t, "run", "--", "sh", "-c", "ls / | wc -l"); strings.TrimSpace(r.Stdout) == "0" {
		t.Errorf("the root filesystem is empty: %s", r)
	}
	e.mustRun(t, "gc")
	checkStoreClean(t, e)
}

// layerTrees describes every complete layer in e's store: each entry's
// path, type, mode and content (a hash for files, the target for links).
func layerTrees(t *testing.T, e *testEnv) map[string]string {
	t.Helper()
	root := filepath.Join(e.Data, "devbox", "layers", "sha256")
	entries, err := os.ReadDir(root)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	trees := map[string]string{}
	for _, l := range entries {
		if strings.HasPrefix(l.Name(), ".") {
			continue
		}
		var b strings.Builder
		dir := filepath.Join(root, l.Name())
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			info, err := d.Info()
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s %v", rel, info.Mode())
			switch {
			case info.Mode()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				b.WriteString(" -> " + target)
			case info.Mode().IsRegular():
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				h := sha256.New()
				io.Copy(h, f)
				f.Close()
				b.WriteString(" " + hex.EncodeToString(h.Sum(nil)))
			}
			b.WriteByte('\n')
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		trees[l.Name()] = b.String()
	}
	return trees
}
