package env

import (
	"archive/tar"
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/rootless"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// layerOf is a one-file uncompressed layer.
func layerOf(t *testing.T, file, content string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: file, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
	tw.Write([]byte(content))
	tw.Close()
	return static.NewLayer(buf.Bytes(), types.OCIUncompressedLayer)
}

// gcFixture is a registry with two images that share a base layer, a
// store, and a way to make projects that use them.
type gcFixture struct {
	dirs         Dirs
	store        *image.Store
	refA, refB   string
	base, onlyB  v1.Hash
	builder      *Builder
	projectsRoot string
}

func newGCFixture(t *testing.T) *gcFixture {
	t.Helper()
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	base, onlyA, onlyB := layerOf(t, "base", "base"), layerOf(t, "a", "a"), layerOf(t, "b", "b")
	f := &gcFixture{refA: host + "/a:1", refB: host + "/b:1", projectsRoot: t.TempDir()}
	for ref, layers := range map[string][]v1.Layer{f.refA: {base, onlyA}, f.refB: {base, onlyB}} {
		img, err := mutate.AppendLayers(empty.Image, layers...)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := name.ParseReference(ref)
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
	}
	f.base, _ = base.DiffID()
	f.onlyB, _ = onlyB.DiffID()
	root := t.TempDir()
	f.dirs = Dirs{Cache: filepath.Join(root, "cache"), Data: filepath.Join(root, "data")}
	store, err := image.OpenStore(f.dirs.Data)
	if err != nil {
		t.Fatal(err)
	}
	f.store = store
	f.builder = &Builder{Dirs: f.dirs, Store: store, Log: func(string) {},
		Pull: func(ctx context.Context, ref, platform string) (*image.Image, error) {
			return store.Pull(ctx, ref, image.WithPlatform(platform))
		}}
	return f
}

// project makes a project dir using ref and prepares its environment.
func (f *gcFixture) project(t *testing.T, name, ref string) *Environment {
	t.Helper()
	dir := filepath.Join(f.projectsRoot, name)
	os.MkdirAll(dir, 0o755)
	src := "[image]\nref = \"" + ref + "\"\n"
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(filepath.Join(dir, FileName), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	e, err := f.builder.Prepare(context.Background(), cfg, PrepareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (f *gcFixture) hasLayer(id v1.Hash) bool {
	_, err := os.Stat(f.store.LayerDir(id))
	return err == nil
}

func TestGC(t *testing.T) {
	t.Run("keeps what projects use, and tagged images unless all", func(t *testing.T) {
		f := newGCFixture(t)
		f.project(t, "a", f.refA)
		if _, err := f.store.Pull(context.Background(), f.refB); err != nil {
			t.Fatal(err)
		}
		r, err := GC(f.dirs, f.store, GCOptions{})
		if err != nil || len(r.Images) != 0 || r.Layers != 0 {
			t.Fatalf("gc = %+v, %v; want nothing removed while a tag names b", r, err)
		}
		r, err = GC(f.dirs, f.store, GCOptions{All: true, DryRun: true})
		if err != nil || len(r.Images) != 1 || !f.hasLayer(f.onlyB) {
			t.Fatalf("dry run = %+v, %v; want b reported and nothing removed", r, err)
		}
		r, err = GC(f.dirs, f.store, GCOptions{All: true})
		if err != nil || len(r.Images) != 1 || r.Layers != 1 {
			t.Fatalf("gc --all = %+v, %v; want image b and its own layer removed", r, err)
		}
		if f.hasLayer(f.onlyB) || !f.hasLayer(f.base) {
			t.Errorf("b's own layer present %v, shared base present %v; want false, true", f.hasLayer(f.onlyB), f.hasLayer(f.base))
		}
		if _, err := f.store.Lookup(f.refA); err != nil {
			t.Errorf("the image project a uses is gone: %v", err)
		}
	})
	t.Run("a project that is gone no longer keeps anything", func(t *testing.T) {
		f := newGCFixture(t)
		e := f.project(t, "a", f.refA)
		os.RemoveAll(e.Project.Dir)
		r, err := GC(f.dirs, f.store, GCOptions{All: true})
		if err != nil || len(r.Projects) != 1 || len(r.Images) != 1 || f.hasLayer(f.base) {
			t.Fatalf("gc = %+v, %v; want the project's state, image and layers removed", r, err)
		}
		if _, err := os.Stat(e.Project.StateDir); !os.IsNotExist(err) {
			t.Errorf("the state of a removed project stayed")
		}
	})
	t.Run("warm-run records of a project that is gone go", func(t *testing.T) {
		f := newGCFixture(t)
		gone, kept := f.project(t, "a", f.refA), f.project(t, "b", f.refB)
		front := filepath.Join(f.dirs.Data, "front")
		records := map[string]string{}
		for name, e := range map[string]*Environment{"gone": gone, "kept": kept} {
			path := rootless.FrontPath(f.dirs.Data, e.Project.Dir)
			if err := rootless.SaveFront(path, &rootless.Front{Cwd: e.Project.Dir, UpperLock: e.Project.UpperLock()}); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(e.Project.UpperLock(), nil, 0o600)
			records[name] = path
		}
		os.RemoveAll(gone.Project.Dir)
		r, err := GC(f.dirs, f.store, GCOptions{})
		if err != nil || r.Records != 1 {
			t.Fatalf("gc = %+v, %v; want one record removed", r, err)
		}
		for name, want := range map[string]bool{"gone": false, "kept": true} {
			for _, p := range []string{records[name], records[name] + ".lock"} {
				if _, err := os.Lstat(p); (err == nil) != want {
					t.Errorf("%s's %s: present %v, want %v", name, filepath.Base(p), err == nil, want)
				}
			}
		}
		if entries, _ := os.ReadDir(front); len(entries) != 2 {
			t.Errorf("front/ holds %d entries, want the kept record and its link", len(entries))
		}
	})
	t.Run("a running sandbox keeps its layers", func(t *testing.T) {
		f := newGCFixture(t)
		e := f.project(t, "a", f.refA)
		release, err := e.Running()
		if err != nil {
			t.Fatal(err)
		}
		// A second sandbox on the same layers shares the record.
		releaseSecond, err := e.Running()
		if err != nil {
			t.Fatal(err)
		}
		// The project moves on to b while its sandboxes still run on a.
		f.project(t, "a", f.refB)
		for _, done := range []func(){release, releaseSecond} {
			if _, err := GC(f.dirs, f.store, GCOptions{All: true}); err != nil {
				t.Fatal(err)
			}
			for _, d := range e.Layers {
				if _, err := os.Stat(d); err != nil {
					t.Fatalf("layer %s of a running sandbox was removed", d)
				}
			}
			done()
		}
		if _, err := GC(f.dirs, f.store, GCOptions{All: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(e.Layers[1]); !os.IsNotExist(err) {
			t.Errorf("after the sandbox ended, a's own layer is still there")
		}
	})
	t.Run("throwaway layers of killed sandboxes go, unless one may still be in use", func(t *testing.T) {
		f := newGCFixture(t)
		e := f.project(t, "a", f.refA)
		old, recent := filepath.Join(e.Project.StateDir, throwawayPrefix+"old"), filepath.Join(e.Project.StateDir, throwawayPrefix+"recent")
		for _, d := range []string{old, recent} {
			if err := os.MkdirAll(filepath.Join(d, "upper", "usr"), 0o755); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(d, "upper", "usr", "f"), []byte("installed"), 0o644)
		}
		long := time.Now().Add(-2 * throwawayGrace)
		os.Chtimes(old, long, long)

		// While a sandbox of the project runs, its own may be either.
		release, err := e.Running()
		if err != nil {
			t.Fatal(err)
		}
		if r, err := GC(f.dirs, f.store, GCOptions{}); err != nil || r.Temporaries != 0 {
			t.Fatalf("gc while a sandbox runs = %+v, %v; want no throwaway layer removed", r, err)
		}
		release()
		r, err := GC(f.dirs, f.store, GCOptions{})
		if err != nil || r.Temporaries != 1 || r.Freed < int64(len("installed")) {
			t.Fatalf("gc = %+v, %v; want the old throwaway layer removed and counted", r, err)
		}
		if _, err := os.Stat(old); !os.IsNotExist(err) {
			t.Errorf("the old throwaway layer is still there")
		}
		if _, err := os.Stat(recent); err != nil {
			t.Errorf("a recent throwaway layer, maybe of a sandbox that is starting, was removed: %v", err)
		}
	})
	t.Run("leftovers of interrupted work go", func(t *testing.T) {
		f := newGCFixture(t)
		f.project(t, "a", f.refA)
		stale := filepath.Join(f.store.Dir(), "layers", "sha256", ".tmp-0123-dead")
		os.MkdirAll(filepath.Join(stale, "sub"), 0o755)
		os.Chmod(filepath.Join(stale, "sub"), 0o500)
		staleStep := filepath.Join(stepsDir(f.dirs), ".tmp-"+strings.Repeat("a", 64)+"-x")
		os.MkdirAll(staleStep, 0o755)
		r, err := GC(f.dirs, f.store, GCOptions{})
		if err != nil || r.Temporaries != 2 {
			t.Fatalf("gc = %+v, %v; want 2 leftovers removed", r, err)
		}
		for _, p := range []string{stale, staleStep} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("%s is still there", p)
			}
		}
	})
}
