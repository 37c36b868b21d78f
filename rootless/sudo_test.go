package rootless

import (
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/devboxhq/devbox/mounts"
)

func TestParseSudo(t *testing.T) {
	tests := []struct {
		args []string
		want sudoRequest
		err  string
	}{
		{args: []string{"apt-get", "install", "-y", "jq"}, want: sudoRequest{args: []string{"apt-get", "install", "-y", "jq"}}},
		{args: []string{"-E", "-H", "--", "ls", "-l"}, want: sudoRequest{args: []string{"ls", "-l"}}},
		{args: []string{"-nE", "-u", "root", "id"}, want: sudoRequest{args: []string{"id"}}},
		{args: []string{"-uroot", "--user=0", "-g", "#0", "id"}, want: sudoRequest{args: []string{"id"}}},
		{args: []string{"-D", "/tmp", "pwd"}, want: sudoRequest{args: []string{"pwd"}, dir: "/tmp"}},
		{args: []string{"--chdir=/srv", "pwd"}, want: sudoRequest{args: []string{"pwd"}, dir: "/srv"}},
		{args: []string{"-i"}, want: sudoRequest{login: true}},
		{args: []string{"-s", "echo", "hi"}, want: sudoRequest{shell: true, args: []string{"echo", "hi"}}},
		{args: []string{"-p", "pw:", "-k", "true"}, want: sudoRequest{args: []string{"true"}}},
		{args: []string{"-k"}, want: sudoRequest{done: true}},
		{args: []string{"-v"}, want: sudoRequest{done: true}},
		{args: []string{"-V"}, want: sudoRequest{done: true, out: "devbox's sudo: runs commands as root in a devbox sandbox\n"}},
		{args: []string{"-l"}, want: sudoRequest{done: true, out: "User dev may run the following commands on this sandbox:\n    (ALL : ALL) NOPASSWD: ALL\n"}},
		{args: []string{"-h"}, want: sudoRequest{done: true, out: sudoUsage}},
		{args: []string{"-E", "DEBIAN_FRONTEND=noninteractive", "A_1=", "apt-get", "X=y"}, want: sudoRequest{env: []string{"DEBIAN_FRONTEND=noninteractive", "A_1="}, args: []string{"apt-get", "X=y"}}},
		{args: []string{"1X=y", "=z", "true"}, want: sudoRequest{args: []string{"1X=y", "=z", "true"}}},
		// The command's own options stay its own.
		{args: []string{"ls", "-u", "nobody"}, want: sudoRequest{args: []string{"ls", "-u", "nobody"}}},
		{args: nil, err: "a command is needed"},
		{args: []string{"-E"}, err: "a command is needed"},
		{args: []string{"-u", "nobody", "id"}, err: `as root only, not as "nobody"`},
		{args: []string{"-b", "sleep", "1"}, err: "has no option -b"},
		{args: []string{"--background", "true"}, err: "has no option --background"},
		{args: []string{"-u"}, err: "option -u requires an argument"},
		{args: []string{"--chdir"}, err: "option --chdir requires an argument"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, err := parseSudo(tt.args, "dev")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseSudo = %+v, %v; want an error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got.args, tt.want.args) || !slices.Equal(got.env, tt.want.env) || got.login != tt.want.login || got.shell != tt.want.shell ||
				got.dir != tt.want.dir || got.done != tt.want.done || got.out != tt.want.out {
				t.Errorf("parseSudo = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestSudoProcess(t *testing.T) {
	env := []string{"SHELL=/bin/zsh", "PATH=/bin"}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		r        sudoRequest
		args     []string
		cwd      string
		rootOnly bool // args[0] is root's shell, which depends on the host
	}{
		{"a command", sudoRequest{args: []string{"id", "-u"}}, []string{"id", "-u"}, wd, false},
		{"variables", sudoRequest{args: []string{"env"}, env: []string{"A=b"}}, []string{"env"}, wd, false},
		{"-s", sudoRequest{shell: true}, []string{"/bin/zsh"}, wd, false},
		{"-s with a command", sudoRequest{shell: true, args: []string{"echo", "it's", "a b", "x"}}, []string{"/bin/zsh", "-c", `echo 'it'\''s' 'a b' x`}, wd, false},
		{"-i", sudoRequest{login: true}, []string{"-l"}, "/root", true},
		{"-i with a command", sudoRequest{login: true, args: []string{"pwd"}}, []string{"-l", "-c", "pwd"}, "/root", true},
		{"-D relative", sudoRequest{args: []string{"pwd"}, dir: "sub"}, []string{"pwd"}, filepath.Join(wd, "sub"), false},
		{"-D over -i", sudoRequest{login: true, dir: "/srv"}, []string{"-l"}, "/srv", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := sudoProcess(tt.r, env)
			if err != nil {
				t.Fatal(err)
			}
			if want := append(slices.Clone(env), tt.r.env...); !slices.Equal(p.Env, want) {
				t.Errorf("env %q, want %q", p.Env, want)
			}
			args := p.Args
			if tt.rootOnly {
				if args[0] != rootShell() {
					t.Errorf("program %s, want root's shell %s", args[0], rootShell())
				}
				args = args[1:]
			}
			if !slices.Equal(args, tt.args) || p.Cwd != tt.cwd {
				t.Errorf("args %q in %s, want %q in %s", p.Args, p.Cwd, tt.args, tt.cwd)
			}
		})
	}
}

func TestSudoSpec(t *testing.T) {
	owner := &Spec{
		RootDir: "/r", Mounts: []mounts.Mount{{Type: mounts.Bind, Source: "/a", Target: "/b"}},
		User:    User{Name: "dev", Home: "/home/dev", Shell: "/bin/sh"},
		Process: Process{Args: []string{"sh"}, Cwd: "/w", UID: 1000, GID: 1001, Env: []string{"HOME=/home/dev"}},
	}
	req := &Spec{Process: Process{Args: []string{"apt-get", "update"}, Cwd: "/w/sub", Terminal: true, Rows: 3, Cols: 4,
		Env: []string{"HOME=/home/dev", "USER=dev", "TERM=xterm", "PATH=/home/dev/bin:/usr/bin:/bin", "SUDO_USER=forged"}}}
	s, err := sudoSpec(owner, req)
	if err != nil {
		t.Fatal(err)
	}
	if s.RootDir != "/r" || len(s.Mounts) != 1 || s.User.Name != "root" || s.User.Home != "/root" {
		t.Errorf("spec %+v, want the owner's sandbox with root's entry", s)
	}
	p := s.Process
	if p.UID != 0 || p.GID != 0 || !p.RootEmulation || !slices.Equal(p.Args, req.Process.Args) || p.Cwd != "/w/sub" || !p.Terminal || p.Rows != 3 || p.Cols != 4 {
		t.Errorf("process %+v, want the request's command as root with root emulation", p)
	}
	want := []string{"TERM=xterm", "HOME=/root", "USER=root", "LOGNAME=root",
		"PATH=/home/dev/bin:/usr/bin:/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin",
		"SUDO_USER=dev", "SUDO_UID=1000", "SUDO_GID=1001", "SUDO_COMMAND=apt-get update"}
	if !slices.Equal(p.Env, want) {
		t.Errorf("env %q, want %q", p.Env, want)
	}
	if owner.Process.UID != 1000 || owner.User.Name != "dev" {
		t.Errorf("the owner's Spec changed: %+v", owner)
	}
	owner.Userns = UsernsSubuid
	if s, _ := sudoSpec(owner, req); s.Process.RootEmulation {
		t.Errorf("root emulation in a subuid sandbox, whose root has every id mapped")
	}
	for _, bad := range []Process{{Cwd: "/w"}, {Args: []string{"id"}, Cwd: "w"}} {
		if _, err := sudoSpec(owner, &Spec{Process: bad}); err == nil {
			t.Errorf("sudoSpec accepted %+v", bad)
		}
	}
}

// TestSudo: in a sandbox with Sudo, the user's command runs commands as
// root in the same sandbox through sudo, with their status, their
// streams, and what they change kept in the sandbox's writable layer.
func TestSudo(t *testing.T) {
	staticTestBinary(t)
	layer := busyboxLayer(t)
	spec := sandbox(t, []string{layer}, "sh", "-c", `id -u
sudo id -u
sudo sh -c 'echo made-by-root > /etc/made; exit 3'; echo "status $?"
sudo ls -ln /etc/made
echo piped | sudo cat
sudo -u nobody true || echo refused
sudo sh -c 'echo $HOME $USER $SUDO_USER'`)
	spec.Sudo = true
	spec.User = User{Name: "dev", Home: "/home/dev", Shell: "/bin/sh"}
	spec.Mounts = append(spec.Mounts, SudoMount())
	spec.Process.Env = []string{"PATH=/usr/local/bin:/bin"}
	code, out, stderr := run(t, spec)
	uid := strconv.Itoa(os.Getuid())
	got := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(got) != 7 || got[0] != uid || got[1] != "0" || got[2] != "status 3" ||
		!strings.Contains(got[3], " 0 ") || got[4] != "piped" || got[5] != "refused" || got[6] != "/root root dev" {
		t.Errorf("status %d, output %q, stderr %q; want the user's uid, then root's, status 3, a file of root's, the piped line, a refusal, root's HOME", code, got, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(spec.RootDir), "upper", "etc", "made")); err != nil || string(b) != "made-by-root\n" {
		t.Errorf("the writable layer has %q (%v), want what root wrote", b, err)
	}

	// A sandbox whose command is root (devbox run --root): sudo there too.
	spec = sandbox(t, []string{layer}, "sh", "-c", "sudo id -u")
	spec.Sudo = true
	spec.User = User{Name: "root", Home: "/root", Shell: "/bin/sh"}
	spec.Mounts = append(spec.Mounts, SudoMount())
	spec.Process.Env = []string{"PATH=/usr/local/bin:/bin"}
	spec.Process.UID, spec.Process.GID, spec.Process.RootEmulation = 0, 0, true
	if code, out, stderr := run(t, spec); code != 0 || out != "0\n" {
		t.Errorf("sudo under root: status %d, output %q, stderr %q; want uid 0", code, out, stderr)
	}
}

// TestSudoMountEarly: an image whose /usr/local is a symlink to the work
// tree's path cannot make devbox create sudo's mount point in the host's
// work tree: the mount comes before the work tree's, so the link leads
// into the image's own tree.
func TestSudoMountEarly(t *testing.T) {
	layer := busyboxLayer(t)
	spec := sandbox(t, []string{layer}, "true")
	workTree := spec.Process.Cwd
	if err := os.MkdirAll(filepath.Join(layer, "usr"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(workTree, filepath.Join(layer, "usr", "local")); err != nil {
		t.Fatal(err)
	}
	state := filepath.Dir(spec.RootDir)
	spec.Mounts = mounts.Plan(mounts.View{
		Layers: []string{layer}, Upper: filepath.Join(state, "upper"), Work: filepath.Join(state, "work"),
		WorkTree: workTree, Early: []mounts.Mount{SudoMount()},
	})
	spec.Sudo = true
	runHostile(t, spec)
	if entries := readDir(t, workTree); len(entries) != 0 {
		t.Errorf("the work tree on the host got %v through the image's symlink", entries)
	}
}

// staticTestBinary skips a test that runs this test binary inside a
// sandbox, as its sudo, when it needs the host's dynamic loader.
func staticTestBinary(t *testing.T) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Skip("the test binary is dynamically linked and cannot run in the sandbox as its sudo: build it with CGO_ENABLED=0, as 'make unit' does")
		}
	}
}

// FuzzParseSudo: any command line is refused, asks for nothing to run,
// or names a command (or a shell) whose words come from the line.
func FuzzParseSudo(f *testing.F) {
	for _, s := range []string{"apt-get install -y jq", "-iu root", "-D /tmp -- pwd", "-E A=b env", "--user=nobody id", "-k", "-", "--chdir"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		r, err := parseSudo(args, "dev")
		if err != nil || r.done {
			return
		}
		if len(r.args) == 0 && !r.login && !r.shell {
			t.Fatalf("parseSudo(%q) = %+v: nothing to run", args, r)
		}
		if n := len(r.args) + len(r.env); n > len(args) || !slices.Equal(r.args, args[len(args)-len(r.args):]) {
			t.Fatalf("parseSudo(%q) = %+v: the command is not the line's last words", args, r)
		}
	})
}
