package rootless

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
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
	got, err := loadFront(path)
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

// TestFrontStale changes, one at a time, each thing a record depends on:
// each must make it stale, and what it does not depend on must not.
func TestFrontStale(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(t *testing.T, r *Front, self, dir, conf, missing, layer *string, env *[]string)
		stale  bool
	}{
		{"nothing", func(*testing.T, *Front, *string, *string, *string, *string, *string, *[]string) {}, false},
		{"a file it read is written", func(t *testing.T, _ *Front, _, _, conf, _, _ *string, _ *[]string) {
			writeLater(t, *conf, "[image]\nref = \"x\"\n")
		}, true},
		{"a file it read is replaced, same size and time", func(t *testing.T, _ *Front, _, dir, conf, _, _ *string, _ *[]string) {
			fi, _ := os.Stat(*conf)
			tmp := filepath.Join(*dir, "tmp")
			os.WriteFile(tmp, []byte("[image]\n"), 0o644)
			os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
			if err := os.Rename(tmp, *conf); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"a file it looked for appears", func(t *testing.T, _ *Front, _, _, _, missing, _ *string, _ *[]string) {
			os.WriteFile(*missing, nil, 0o644)
		}, true},
		{"a file it read goes", func(t *testing.T, _ *Front, _, _, conf, _, _ *string, _ *[]string) {
			os.Remove(*conf)
		}, true},
		{"the writable layer changes inside", func(t *testing.T, _ *Front, _, _, _, _, layer *string, _ *[]string) {
			os.WriteFile(filepath.Join(*layer, "new"), nil, 0o644)
		}, false},
		{"the writable layer is made again (a reset)", func(t *testing.T, _ *Front, _, _, _, _, layer *string, _ *[]string) {
			os.Rename(*layer, *layer+".old")
			os.Mkdir(*layer, 0o755)
		}, true},
		{"a variable it read changes", func(_ *testing.T, _ *Front, _, _, _, _, _ *string, env *[]string) {
			(*env)[1] = "LANG=de_DE.UTF-8"
		}, true},
		{"a variable it read unset is set", func(_ *testing.T, _ *Front, _, _, _, _, _ *string, env *[]string) {
			*env = append(*env, "TZ=Europe/Berlin")
		}, true},
		{"a variable of a prefix it read appears", func(_ *testing.T, _ *Front, _, _, _, _, _ *string, env *[]string) {
			*env = append(*env, "DEVBOX_FRONT=1")
		}, true},
		{"another variable changes, and the order", func(_ *testing.T, _ *Front, _, _, _, _, _ *string, env *[]string) {
			(*env)[3] = "UNRELATED=2"
			slices.Reverse(*env)
		}, false},
		{"another directory", func(_ *testing.T, _ *Front, _, dir, _, _, _ *string, _ *[]string) {
			*dir += "/sub"
		}, true},
		{"another devbox", func(_ *testing.T, _ *Front, self, _, _, _, _ *string, _ *[]string) {
			*self = "/cache/devbox-init-fedcba9876543210"
		}, true},
		{"another user", func(_ *testing.T, r *Front, _, _, _, _, _ *string, _ *[]string) {
			r.UID++
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, self, dir, conf, missing, layer, env := frontFixture(t)
			tt.change(t, r, &self, &dir, &conf, &missing, &layer, &env)
			why := r.stale(self, dir, env)
			if (why != "") != tt.stale {
				t.Errorf("stale = %q, want stale %v", why, tt.stale)
			}
		})
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

func TestFrontCommand(t *testing.T) {
	r := &Front{Scripts: map[string]string{"test": "go test \"$@\""}, Shell: []string{"/bin/sh", "-c", "exec bash"}}
	for _, tt := range []struct {
		args, want []string
	}{
		{[]string{"run", "--", "make", "test"}, []string{"make", "test"}},
		{[]string{"run", "--", "test", "-v"}, []string{"test", "-v"}},
		{[]string{"run", "test", "-v"}, []string{"/bin/sh", "-c", "go test \"$@\"", "test", "-v"}},
		{[]string{"run", "make", "-j2"}, []string{"make", "-j2"}},
		{[]string{"shell"}, []string{"/bin/sh", "-c", "exec bash"}},
	} {
		if got := r.commandOf(tt.args); !slices.Equal(got, tt.want) {
			t.Errorf("devbox %q runs %q, want %q", tt.args, got, tt.want)
		}
	}
}

func FuzzLoadFront(f *testing.F) {
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
		p := filepath.Join(t.TempDir(), "rec")
		os.WriteFile(p, b, 0o600)
		// Any input: an error or a record, never a panic.
		loadFront(p)
	})
}
