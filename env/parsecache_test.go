package env

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/devboxhq/devbox/internal/parsecache"
	"github.com/devboxhq/devbox/internal/wire"
	"github.com/devboxhq/devbox/internal/wire/wiretest"
	"golang.org/x/sys/unix"
)

// writeOld writes a file whose timestamps are out of the racy window.
func writeOld(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	// ctime cannot be set: wait the racy window out instead.
	time.Sleep(parsecache.RacyWindow + 50*time.Millisecond)
}

func TestLoadCached(t *testing.T) {
	t.Parallel()
	dirs := Dirs{Cache: t.TempDir(), Data: t.TempDir()}
	project := t.TempDir()
	path := filepath.Join(project, FileName)
	example, err := os.ReadFile(filepath.Join("..", "devbox.toml.example"))
	if err != nil {
		t.Fatal(err)
	}
	writeOld(t, path, string(example))
	want, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	first, err := LoadCached(dirs, path)
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(parseCacheDir(projectStateDir(dirs, project)), FileName)
	if _, err := os.Stat(cache); err != nil {
		t.Fatalf("no parse cached: %v", err)
	}
	second, err := LoadCached(dirs, path)
	if err != nil {
		t.Fatal(err)
	}
	// Every key of the example survives the round trip through the cache,
	// nil and empty alike (step keys are made from these values).
	for name, got := range map[string]*Config{"parsed": first, "cached": second} {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s config differs from Load's:\n got %+v\nwant %+v", name, got, want)
		}
	}

	// The cache is what a warm run reads: a record for this very file wins.
	b, _ := os.ReadFile(cache)
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	stamp := parsecache.StampOf(&st)
	c, ok := parsecache.ReadRecord(b, stamp, parsecache.Exe(), configCodec)
	if !ok {
		t.Fatal("the cache holds no record for this file and executable")
	}
	c.Image.Ref = "from-the-cache"
	os.WriteFile(cache, parsecache.Record(stamp, parsecache.Exe(), c, configCodec), 0o600)
	if c, err := LoadCached(dirs, path); err != nil || c.Image.Ref != "from-the-cache" {
		t.Fatalf("LoadCached did not read its cache: %v, %v", c, err)
	}

	// Any change to the file is parsed (and checked) again.
	if err := os.WriteFile(path, []byte("[image]\nref = \"changed\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := LoadCached(dirs, path); err != nil || c.Image.Ref != "changed" {
		t.Errorf("after an edit: %+v, %v; want ref \"changed\"", c, err)
	}
	if err := os.WriteFile(path, []byte("[image]\nreff = \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCached(dirs, path); err == nil {
		t.Error("an unknown key was accepted")
	}
}

func TestLoadCachedRacy(t *testing.T) {
	t.Parallel()
	dirs := Dirs{Cache: t.TempDir(), Data: t.TempDir()}
	project := t.TempDir()
	path := filepath.Join(project, FileName)
	if err := os.WriteFile(path, []byte("[image]\nref = \"busybox\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCached(dirs, path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(parseCacheDir(projectStateDir(dirs, project)), FileName)); !os.IsNotExist(err) {
		t.Errorf("a file changed a moment ago was cached (%v): an edit within its timestamps' resolution would go unseen", err)
	}
}

func TestReadLockCached(t *testing.T) {
	t.Parallel()
	dirs := Dirs{Cache: t.TempDir(), Data: t.TempDir()}
	project := t.TempDir()
	path := filepath.Join(project, LockFileName)
	p, err := OpenProject(dirs, project)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := readLockCached(p); l != nil || err != nil {
		t.Fatalf("missing lock = %v, %v; want nil, nil", l, err)
	}
	lock := &Lock{Version: lockVersion, Image: LockImage{Ref: "busybox", Digests: map[string]string{"linux/amd64": "sha256:" + strings.Repeat("0", 64)}}}
	writeOld(t, path, string(lock.Marshal()))
	want, err := ReadLock(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		got, err := readLockCached(p)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("read %d: %+v, %v; want %+v", i, got, err, want)
		}
	}
}

func encodeWith[T any](encode func(*wire.Encoder, *T)) func(T) []byte {
	return func(v T) []byte {
		e := &wire.Encoder{}
		encode(e, &v)
		return e.B
	}
}

func decodeWith[T any](decode func(*wire.Decoder) *T) func([]byte) (T, error) {
	return func(b []byte) (T, error) {
		d := &wire.Decoder{B: b}
		v := decode(d)
		return *v, d.Done()
	}
}

func TestConfigWire(t *testing.T) {
	wiretest.Check(t, encodeWith(encodeConfig), decodeWith(decodeConfig))
}

func TestLockWire(t *testing.T) {
	wiretest.Check(t, encodeWith(encodeLock), decodeWith(decodeLock))
}

// FuzzParseCacheRecord: a parse cache record of a Config, whatever its
// bytes, is read or refused without a panic, and what is read survives a
// round trip.
func FuzzParseCacheRecord(f *testing.F) {
	stamp := parsecache.Stamp{Dev: 1, Ino: 2, Size: 3, Mtime: 4, Ctime: 5}
	for _, c := range []Config{{}, wiretest.Empty[Config](), wiretest.Full[Config]()} {
		f.Add(parsecache.Record(stamp, stamp, &c, configCodec))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ok := parsecache.ReadRecord(data, stamp, stamp, configCodec)
		if !ok {
			return
		}
		again, ok := parsecache.ReadRecord(parsecache.Record(stamp, stamp, c, configCodec), stamp, stamp, configCodec)
		if !ok || !reflect.DeepEqual(again, c) {
			t.Fatalf("read %+v, which does not survive a round trip", c)
		}
	})
}

// TestProjectThroughSymlink: a project reached through a symlink is the
// same project, with one state directory that records its canonical path,
// while the Config and the Project keep the path the user came by.
func TestProjectThroughSymlink(t *testing.T) {
	t.Parallel()
	dirs := Dirs{Cache: t.TempDir(), Data: t.TempDir()}
	real, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	writeOld(t, filepath.Join(real, FileName), "[image]\nref = \"busybox\"\n")
	// Cached through the real path first, then read through the link.
	for _, dir := range []string{real, link} {
		cfg, err := LoadCached(dirs, filepath.Join(dir, FileName))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Dir() != dir {
			t.Errorf("through %s, the config's directory is %s", dir, cfg.Dir())
		}
		p, err := OpenProject(dirs, cfg.Dir())
		if err != nil {
			t.Fatal(err)
		}
		if p.Dir != dir || p.StateDir != projectStateDir(dirs, real) {
			t.Errorf("through %s: project %s, state %s; want %s and the state of %s", dir, p.Dir, p.StateDir, dir, real)
		}
		if b, _ := os.ReadFile(filepath.Join(p.StateDir, "path")); string(b) != real+"\n" {
			t.Errorf("through %s, the state records %q, want the canonical path %s", dir, b, real)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(dirs.Data, "projects")); len(entries) != 1 {
		t.Errorf("%d project state directories, want one", len(entries))
	}
}
