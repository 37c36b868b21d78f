package rootless

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/devboxhq/devbox/mounts"
)

// The front's C (internal/front/c) checks the records this package
// writes, and stands in for its Go code on a warm run's way: these tests
// run it through harness.c, against the Go it replaces where that still
// exists.

// buildHarness compiles internal/front/c/harness.c into dir, as the
// Makefile compiles the front.
func buildHarness(tb testing.TB, dir string) string {
	tb.Helper()
	src, err := filepath.Abs("../internal/front/c/harness.c")
	if err != nil {
		tb.Fatal(err)
	}
	bin := filepath.Join(dir, "harness")
	cmd := exec.Command("cc", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-ffreestanding", "-fno-builtin",
		"-fno-stack-protector", "-fno-tree-loop-distribute-patterns", "-mgeneral-regs-only", "-nostdlib", "-static",
		"-o", bin, src)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("%v: %v\n%s", cmd, err, out)
	}
	return bin
}

// runHarness runs the harness with env; its output and exit code.
func runHarness(tb testing.TB, bin string, env []string, args ...string) (string, int) {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{}, env...) // none when nil, not this process's
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.Exited() {
		return string(out), exit.ExitCode()
	}
	if err != nil {
		tb.Fatalf("harness %q: %v", args, err)
	}
	return string(out), 0
}

// checkFront runs the front's record_check on the record r saved in dir,
// for a run of devbox's args there.
func checkFront(t *testing.T, bin string, r *Front, self, dir string, env []string, args ...string) (lines []string, stale bool) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rec")
	if err := SaveFront(path, r); err != nil {
		t.Fatal(err)
	}
	path += frontMode(r.Spec.Process.Terminal, r.Spec.Process.TerminalOutput)
	out, code := runHarness(t, bin, env, append([]string{"check", path, self, dir}, args...)...)
	if code > 1 {
		t.Fatalf("harness check: exit %d: %s", code, out)
	}
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n"), code == 1
}

// TestFrontStale changes, one at a time, each thing a record depends on:
// each must make it stale, and what it does not depend on must not.
func TestFrontStale(t *testing.T) {
	bin := buildHarness(t, t.TempDir())
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
		{"a file it read becomes a symlink to itself", func(t *testing.T, _ *Front, _, dir, conf, _, _ *string, _ *[]string) {
			moved := filepath.Join(*dir, "moved")
			os.Rename(*conf, moved)
			os.Symlink(moved, *conf)
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
		{"a variable it read is set empty", func(_ *testing.T, _ *Front, _, _, _, _, _ *string, env *[]string) {
			*env = append(*env, "TZ=")
		}, true},
		{"a variable of a prefix it read appears", func(_ *testing.T, _ *Front, _, _, _, _, _ *string, env *[]string) {
			*env = append(*env, "DEVBOX_FRONT=1")
		}, true},
		{"another variable changes, and the order", func(_ *testing.T, _ *Front, _, _, _, _, _ *string, env *[]string) {
			(*env)[3] = "UNRELATED=2"
			slices.Reverse(*env)
		}, false},
		{"a variable whose name starts as one it read", func(_ *testing.T, _ *Front, _, _, _, _, _ *string, env *[]string) {
			*env = append(*env, "HOMEBREW=1", "LANGUAGE=de")
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
		{"another kernel", func(_ *testing.T, r *Front, _, _, _, _, _ *string, _ *[]string) {
			r.Kernel += "+1"
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, self, dir, conf, missing, layer, env := frontFixture(t)
			tt.change(t, r, &self, &dir, &conf, &missing, &layer, &env)
			// The record keeps what it saw before the change.
			out, stale := checkFront(t, bin, r, self, dir, env, "run", "--", "true")
			if stale != tt.stale {
				t.Errorf("front says %q, want stale %v", out, tt.stale)
			}
		})
	}
}

// TestFrontCommand: the command of each shape of devbox's arguments, as
// Environment.ScriptArgs and ShellArgs make it.
func TestFrontCommand(t *testing.T) {
	bin := buildHarness(t, t.TempDir())
	r, self, dir, _, _, _, env := frontFixture(t)
	r.Scripts = map[string]string{"test": "go test \"$@\"", "a": "1", "z": "2"}
	r.Shell = []string{"/bin/sh", "-c", "exec bash"}
	for _, tt := range []struct {
		args, want []string
	}{
		{[]string{"run", "--", "make", "test"}, []string{"make", "test"}},
		{[]string{"run", "--", "test", "-v"}, []string{"test", "-v"}},
		{[]string{"run", "test", "-v"}, []string{"/bin/sh", "-c", "go test \"$@\"", "test", "-v"}},
		{[]string{"run", "make", "-j2"}, []string{"make", "-j2"}},
		{[]string{"run", "--", "--"}, []string{"--"}},
		{[]string{"run", "tes"}, []string{"tes"}},
		{[]string{"shell"}, []string{"/bin/sh", "-c", "exec bash"}},
	} {
		lines, stale := checkFront(t, bin, r, self, dir, env, tt.args...)
		if stale || len(lines) < 2 || lines[0] != "ok" {
			t.Fatalf("devbox %q: front says %q", tt.args, lines)
		}
		if got := lines[2:]; !slices.Equal(got, tt.want) {
			t.Errorf("devbox %q runs %q, want %q", tt.args, got, tt.want)
		}
	}
}

// TestFrontPlain: the sandboxes the front sets up itself, and those it
// leaves to pid 1's Go program.
func TestFrontPlain(t *testing.T) {
	bin := buildHarness(t, t.TempDir())
	root := mounts.Mount{Type: mounts.Overlay, Target: "/", Lower: []string{"/l/1", "/l/2"}, Upper: "/u/upper", Work: "/u/work"}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	for _, tt := range []struct {
		name   string
		change func(s *Spec)
		plain  bool
	}{
		{"an overlay, the host's network", func(*Spec) {}, true},
		{"a copy bound as root", func(s *Spec) { s.Mounts[0] = mounts.Mount{Type: mounts.Bind, Source: "/c", Target: "/"} }, true},
		{"userns single", func(s *Spec) { s.Userns = UsernsSingle }, true},
		{"fuse-overlayfs", func(s *Spec) { s.Mounts[0].Helper = "/usr/bin/fuse-overlayfs" }, false},
		{"a terminal", func(s *Spec) { s.Process.Terminal = true }, true},
		{"its own network", func(s *Spec) { s.Network = NetworkNone }, false},
		{"subuid", func(s *Spec) { s.Userns = UsernsSubuid }, false},
		{"root with root emulation", func(s *Spec) { s.Process.UID, s.Process.GID, s.Process.RootEmulation = 0, 0, true }, false},
		{"root without", func(s *Spec) { s.Process.UID, s.Process.GID = 0, 0 }, uid == 0 && gid == 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, self, dir, _, _, _, env := frontFixture(t)
			r.Spec = Spec{RootDir: "/r", Mounts: []mounts.Mount{root, {Type: mounts.Proc, Target: "/proc"}}, Network: NetworkHost,
				Process: Process{Env: []string{"PATH=/bin"}, Cwd: "/w", UID: uid, GID: gid}}
			tt.change(&r.Spec)
			lines, stale := checkFront(t, bin, r, self, dir, env, "run", "--", "true")
			if stale || len(lines) < 2 {
				t.Fatalf("front says %q", lines)
			}
			if got := lines[1] == "plain"; got != tt.plain {
				t.Errorf("front says %q, want plain %v", lines[1], tt.plain)
			}
		})
	}
}

// TestFrontEtcFiles: the front merges the user into /etc/passwd and
// /etc/group, and looks for the host name in /etc/hosts, as the Go code
// does.
func TestFrontEtcFiles(t *testing.T) {
	bin := buildHarness(t, t.TempDir())
	dir := t.TempDir()
	write := func(data string) string {
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const image = "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n"
	for _, tt := range []struct{ file, name, id string }{
		{image, "alice", "1001"},
		{image, "alice", "1000"},
		{image, "root", "0"},
		{image, "node", "1001"},
		{"", "alice", "1001"},
		{"root:x:0:0::/root:/bin/sh", "alice", "1001"},
		{"root:x:0:0::/root:/bin/sh\r\nbob:x:5:5\r\n", "alice", "1001"},
		{"\n\nroot\nalice\nx:y\n:x:1001\n", "alice", "1001"},
		{"alice:x:7:7::/:/bin/sh\nalice:x:8:8::/:/bin/sh\n", "alice", "1001"},
		{"users:x:100:\n", "alice", "100"},
	} {
		entry := tt.name + ":x:" + tt.id + ":" + tt.id + "::/home/" + tt.name + ":/bin/sh"
		want, added := mergeEntry([]byte(tt.file), tt.name, tt.id, entry)
		got, code := runHarness(t, bin, nil, "merge", write(tt.file), tt.name, tt.id, entry)
		if code != 0 || (added && got != string(want)) || (!added && got != "keep\n") {
			t.Errorf("merge %q into %q: front %q (exit %d), Go %q (added %v)", entry, tt.file, got, code, want, added)
		}
	}
	for _, hosts := range []string{
		"127.0.0.1\tlocalhost\n127.0.1.1\tlaptop.example laptop\n",
		"10.0.0.5 build devbox # the CI box\n",
		"# devbox\n",
		"devbox\n",
		"127.0.0.1 localhost",
		"127.0.0.1 localhost devbox",
		"127.0.0.1 localhost#devbox\n",
		"127.0.0.1\t\f devbox\r\n",
		"127.0.0.1 devboxes\n",
		"",
	} {
		named := bytes.Equal(withHostName([]byte(hosts), "devbox"), []byte(hosts))
		got, _ := runHarness(t, bin, nil, "hosts", write(hosts), "devbox")
		if (got == "named\n") != named {
			t.Errorf("hosts %q: front %q, Go named %v", hosts, got, named)
		}
	}
}

// FuzzFrontRecord: the front reads any record without a crash, and
// takes none but one that holds.
func FuzzFrontRecord(f *testing.F) {
	bin := buildHarness(f, f.TempDir())
	dir := f.TempDir()
	r := &Front{Init: "/x", Kernel: KernelRelease(), UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Cwd: "/p",
		EnvNames: []string{"HOME"}, Env: EnvHash(nil, []string{"HOME"}),
		Scripts: map[string]string{"t": "true"}, Shell: []string{"sh"}, UpperLock: "/s/upper.lock",
		Spec: Spec{RootDir: "/r", Mounts: []mounts.Mount{{Type: mounts.Overlay, Target: "/", Lower: []string{"/l"}, Upper: "/u", Work: "/w"}},
			Process: Process{Env: []string{"PATH=/bin"}, Cwd: "/p"}, Network: NetworkHost}}
	path := filepath.Join(dir, "rec")
	if err := SaveFront(path, r); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	if out, code := runHarness(f, bin, nil, "check", path, "/x", "/p", "run", "t"); code != 0 {
		f.Fatalf("the seed record is stale: %s", out)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:len(good)-1])
	f.Add(append(slices.Clone(good), 0))
	f.Add([]byte{2})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "rec")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := runHarness(t, bin, nil, "check", p, "/x", "/p", "run", "t")
		if code > 1 || (code == 0 && !strings.HasPrefix(out, "ok\n")) {
			t.Fatalf("exit %d: %q", code, out)
		}
		if code == 0 {
			if _, err := decodeFront(b); err != nil {
				t.Fatalf("the front takes a record Go cannot read: %v", err)
			}
		}
	})
}

// TestFrontLookPath: the front finds a command where lookPath does, and
// does not where it does not.
func TestFrontLookPath(t *testing.T) {
	bin := buildHarness(t, t.TempDir())
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"tool": 0o755, "a/tool": 0o755, "b/tool": 0o755, "a/data": 0o644, "b/data": 0o755, "a/sub/x": 0o755} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(filepath.Join(dir, "a/tool"), filepath.Join(dir, "b/link"))
	os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "a/dangling"))
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	t.Chdir(dir) // "." in a PATH is the same directory for both
	for _, tt := range []struct{ name, path string }{
		{"tool", a + ":" + b}, {"tool", b + ":" + a}, {"data", a + ":" + b}, {"data", a},
		{"link", a + ":" + b}, {"dangling", a}, {"sub", a}, {"x", a + "/sub"},
		{"tool", ":" + a}, {"tool", a + "/"}, {"tool", "/nonexistent::" + b},
		{"./a/tool", ""}, {"a/tool", ""}, {"missing", a + ":" + b}, {"tool", ""},
	} {
		env := []string{"PATH=" + tt.path}
		want, _, err := lookPath(tt.name, env)
		cmd := exec.Command(bin, append([]string{"path", tt.name}, env...)...)
		cmd.Dir = dir
		out, cerr := cmd.Output()
		got := strings.TrimSuffix(string(out), "\n")
		switch {
		case cerr != nil:
			t.Fatalf("harness: %v", cerr)
		case err != nil && got != "not found":
			t.Errorf("%s in PATH=%q: front finds %q, Go nothing", tt.name, tt.path, got)
		case err == nil && !sameFile(inDirOf(dir, got), inDirOf(dir, want)):
			t.Errorf("%s in PATH=%q: front finds %q, Go %q", tt.name, tt.path, got, want)
		}
	}
}

// inDirOf is path, taken relative to dir unless it is absolute.
func inDirOf(dir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// sameFile reports whether a and b are one file.
func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// FuzzFrontEtcFiles: on any passwd or group file and hosts file, the front
// merges the user and finds the host name as the Go code does.
func FuzzFrontEtcFiles(f *testing.F) {
	bin := buildHarness(f, f.TempDir())
	f.Add([]byte("root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n"), "alice", "1001")
	f.Add([]byte("alice:x:7:7\r\n\n:x:1001\nbob"), "alice", "1001")
	f.Add([]byte("127.0.0.1 localhost alice # x\n"), "alice", "0")
	f.Fuzz(func(t *testing.T, file []byte, name, id string) {
		if name == "" || strings.ContainsAny(name+id, ":\n\x00") || len(file) > 8192 || bytes.Contains(file, []byte{0}) {
			return
		}
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, file, 0o644); err != nil {
			t.Fatal(err)
		}
		entry := name + ":x:" + id + ":" + id + "::/home:/bin/sh"
		want, added := mergeEntry(file, name, id, entry)
		got, code := runHarness(t, bin, nil, "merge", p, name, id, entry)
		if code != 0 || (added && got != string(want)) || (!added && got != "keep\n") {
			t.Errorf("merge: front %q (exit %d), Go %q (added %v)", got, code, want, added)
		}
		named := bytes.Equal(withHostName(file, name), file)
		if got, _ := runHarness(t, bin, nil, "hosts", p, name); (got == "named\n") != named {
			t.Errorf("hosts: front %q, Go named %v", got, named)
		}
	})
}
