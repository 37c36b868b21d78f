package rootless

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/devboxhq/devbox/mounts"
)

// frontFixture is a record of a run in dir that read conf (which exists),
// looked for missing (which does not), and knows layer by identity.
func frontFixture(t *testing.T) (r *Front, self, dir, conf, missing, layer string, env []string) {
	t.Helper()
	dir = t.TempDir()
	conf = filepath.Join(dir, "devbox.toml")
	missing = filepath.Join(dir, "nothing-here")
	layer = filepath.Join(dir, "upper")
	if err := os.WriteFile(conf, []byte("[image]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	self = "/cache/devbox-init-0123456789abcdef"
	env = []string{"HOME=/home/u", "LANG=C.UTF-8", "DEVBOX_ROOTFS=overlay", "UNRELATED=1", "_=/usr/bin/devbox"}
	names := []string{"HOME", "LANG", "TZ", "DEVBOX_*"}
	r = &Front{
		Init: self, Kernel: KernelRelease(), UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
		Cwd: dir, EnvNames: names, Env: EnvHash(env, names),
		Inputs:  []Input{NewInput(conf), NewInput(missing), NewIdentityInput(layer)},
		Scripts: map[string]string{"test": "go test ./..."}, Shell: []string{"/bin/sh", "-c", "exec sh"},
		UpperLock: filepath.Join(dir, "upper.lock"),
		Spec: Spec{RootDir: "/state/root", Mounts: []mounts.Mount{{Type: mounts.Proc, Target: "/proc"}},
			Process: Process{Env: []string{"PATH=/bin"}, Cwd: dir, UID: 1000, GID: 1000}},
	}
	return r, self, dir, conf, missing, layer, env
}

func TestFrontRoundTrip(t *testing.T) {
	r, _, dir, _, _, _, _ := frontFixture(t)
	r.ProjectLock, r.UpperLock, r.Running = "/s/lock", "/s/upper.lock", "/s/running/x.json"
	path := FrontPath(dir, dir)
	if err := SaveFront(path, r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeFront(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("loaded\n%+v\nsaved\n%+v", got, r)
	}
	if FrontPath(dir, dir) == FrontPath(dir, dir+"/sub") {
		t.Error("two directories share a record")
	}
}

// writeLater writes path once its time can differ from the last write's.
func writeLater(t *testing.T, path, data string) {
	t.Helper()
	time.Sleep(20 * time.Millisecond)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFrontSettled(t *testing.T) {
	r, _, _, conf, _, _, _ := frontFixture(t)
	if !r.Settled(time.Now().Add(time.Second)) {
		t.Error("inputs from before the run count as changed during it")
	}
	start := time.Now()
	writeLater(t, conf, "[image]\nref = \"y\"\n")
	r.Inputs[0] = NewInput(conf)
	if r.Settled(start) {
		t.Error("an input written during the run counts as settled")
	}
}

func FuzzDecodeFront(f *testing.F) {
	r := &Front{Init: "/x", Cwd: "/p", EnvNames: []string{"HOME"}, Inputs: []Input{{Path: "/p/devbox.toml", Stat: []uint64{1, 2}}},
		Scripts: map[string]string{"t": "true"}, UpperLock: "/s/upper.lock", Spec: Spec{RootDir: "/r", Process: Process{Args: []string{"true"}}}}
	dir := f.TempDir()
	path := filepath.Join(dir, "rec")
	if err := SaveFront(path, r); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Any input: an error or a record, never a panic.
		decodeFront(b)
	})
}
