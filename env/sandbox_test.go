package env

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/devboxhq/devbox/internal/fsutil"
	"github.com/devboxhq/devbox/mounts"
)

// mkdirAll makes the directory p with its parents and returns it; the
// test stops if it cannot.
func mkdirAll(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGitDirMount: a project whose .git is a file naming a directory
// outside it (a git worktree, a submodule) gets that repository bound
// in; a usual .git directory, or one inside the project, needs nothing.
func TestGitDirMount(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The main repository, with a worktree's own directory and a
	// submodule's, as git makes them: each names its work tree back.
	common := mkdirAll(t, filepath.Join(root, "main", ".git"))
	worktree := mkdirAll(t, filepath.Join(root, "feature"))
	wtDir := mkdirAll(t, filepath.Join(common, "worktrees", "feature"))
	write(filepath.Join(wtDir, "commondir"), "../..\n")
	write(filepath.Join(wtDir, "gitdir"), filepath.Join(worktree, ".git")+"\n")
	write(filepath.Join(worktree, ".git"), "gitdir: "+wtDir+"\n")
	submodule := mkdirAll(t, filepath.Join(root, "main", "lib"))
	write(filepath.Join(mkdirAll(t, filepath.Join(common, "modules", "lib")), "config"), "[core]\n\tbare = false\n\tworktree = ../../../lib\n")
	write(filepath.Join(submodule, ".git"), "gitdir: ../.git/modules/lib\n")
	usual := mkdirAll(t, filepath.Join(root, "usual"))
	mkdirAll(t, filepath.Join(usual, ".git"))
	inside := mkdirAll(t, filepath.Join(root, "inside"))
	write(filepath.Join(inside, ".git"), "gitdir: .git-dir\n")
	plain := mkdirAll(t, filepath.Join(root, "plain"))
	// .git files that name directories which do not name them back.
	elsewhere := mkdirAll(t, filepath.Join(root, "elsewhere"))
	write(filepath.Join(elsewhere, ".git"), "gitdir: "+mkdirAll(t, filepath.Join(root, "host-secrets"))+"\n")
	borrowed := mkdirAll(t, filepath.Join(root, "borrowed"))
	write(filepath.Join(borrowed, ".git"), "gitdir: "+wtDir+"\n")

	for _, tt := range []struct {
		name, project, want string
	}{
		{"worktree", worktree, common},
		{"submodule", submodule, filepath.Join(common, "modules", "lib")},
		{"a .git directory", usual, ""},
		{"a gitdir inside the project", inside, ""},
		{"no git", plain, ""},
		{"a directory that is no git directory", elsewhere, ""},
		{"another worktree's directory", borrowed, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := (host{}).gitDirMount(tt.project)
			if tt.want == "" {
				if ok {
					t.Errorf("got %+v, want no mount", m)
				}
				return
			}
			want := mounts.Mount{Type: mounts.Bind, Source: tt.want, Target: tt.want, Optional: true}
			if !ok || m.Type != want.Type || m.Source != want.Source || m.Target != want.Target || m.ReadOnly || !m.Optional {
				t.Errorf("got %+v (%v), want %+v", m, ok, want)
			}
		})
	}
}

// TestRepositoryRoot: a project in a subdirectory of a git repository
// gets the repository mounted, unless the repository holds a home
// directory; a project with a .git of its own, or in no repository, is
// mounted alone.
func TestRepositoryRoot(t *testing.T) {
	root := t.TempDir()
	mono := mkdirAll(t, filepath.Join(root, "mono"))
	mkdirAll(t, filepath.Join(mono, ".git"))
	deep := mkdirAll(t, filepath.Join(mono, "services", "api"))
	own := mkdirAll(t, filepath.Join(mono, "vendored"))
	mkdirAll(t, filepath.Join(own, ".git"))
	inOwn := mkdirAll(t, filepath.Join(own, "sub"))
	worktree := mkdirAll(t, filepath.Join(root, "feature"))
	if err := os.WriteFile(filepath.Join(worktree, ".git"), []byte("gitdir: elsewhere\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inWorktree := mkdirAll(t, filepath.Join(worktree, "cmd"))
	home := mkdirAll(t, filepath.Join(root, "home", "dev"))
	mkdirAll(t, filepath.Join(home, ".git"))
	inHome := mkdirAll(t, filepath.Join(home, "src", "app"))
	plain := mkdirAll(t, filepath.Join(root, "plain", "app"))

	for _, tt := range []struct {
		name, dir, want string
	}{
		{"the repository's top level", mono, mono},
		{"a subproject", deep, mono},
		{"the nearest repository", inOwn, own},
		{"a worktree's subdirectory", inWorktree, worktree},
		{"a repository that holds the home directory", inHome, inHome},
		{"no repository", plain, plain},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := (host{}).repositoryRoot(tt.dir, "/nonexistent-home", home); got != tt.want {
				t.Errorf("repositoryRoot(%s) = %s, want %s", tt.dir, got, tt.want)
			}
		})
	}
}

// TestEnvironmentPath: /usr/local/bin, where devbox's sudo and archives'
// links are, is in PATH even where the image leaves it out.
func TestEnvironmentPath(t *testing.T) {
	u := User{Name: "u", Home: "/home/u"}
	for _, tt := range []struct {
		imageEnv []string
		want     string
	}{
		{nil, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		{[]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		{[]string{"PATH=/opt/x/bin:/usr/local/bin:/usr/bin"}, "/opt/x/bin:/usr/local/bin:/usr/bin"},
	} {
		env := environment(tt.imageEnv, &Config{}, u, "/p", nil, imageFiles{}, "")
		if !slices.Contains(env, "PATH="+tt.want) {
			t.Errorf("image %q: environment %q, want PATH=%s", tt.imageEnv, env, tt.want)
		}
	}
}

// TestGPGAgent: the host's GnuPG agent comes in by its extra socket, the
// one in the runtime directory first, with the public keyring read-only; nothing without an agent, or with a GNUPGHOME that
// is not the default.
func TestGPGAgent(t *testing.T) {
	home, run := t.TempDir(), t.TempDir()
	gnupg := filepath.Join(home, ".gnupg")
	if err := os.MkdirAll(filepath.Join(run, "gnupg"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(gnupg, 0o700); err != nil {
		t.Fatal(err)
	}
	u := User{Name: "u", Home: "/home/u"}
	t.Setenv("GNUPGHOME", "")
	if ms := (host{}).gpgAgentIn(home, run, u); ms != nil {
		t.Errorf("without an agent: %+v", ms)
	}
	listen := func(path string) {
		t.Helper()
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
	}
	listen(filepath.Join(gnupg, "S.gpg-agent.extra"))
	ms := (host{}).gpgAgentIn(home, run, u)
	if len(ms) != 3 || ms[0].Source != filepath.Join(gnupg, "S.gpg-agent.extra") || ms[0].Target != "/home/u/.gnupg/S.gpg-agent" || ms[0].ReadOnly {
		t.Fatalf("with the agent in ~/.gnupg: %+v", ms)
	}
	for _, m := range ms[1:] {
		if !m.ReadOnly || !m.Optional || filepath.Dir(m.Source) != gnupg || m.Target != filepath.Join("/home/u/.gnupg", filepath.Base(m.Source)) {
			t.Errorf("keyring mount %+v, want it read-only and optional at the same name", m)
		}
	}
	listen(filepath.Join(run, "gnupg", "S.gpg-agent.extra"))
	if ms := (host{}).gpgAgentIn(home, run, u); len(ms) == 0 || ms[0].Source != filepath.Join(run, "gnupg", "S.gpg-agent.extra") {
		t.Errorf("with the agent in the runtime directory: %+v", ms)
	}
	t.Setenv("GNUPGHOME", filepath.Join(home, "elsewhere"))
	if ms := (host{}).gpgAgentIn(home, run, u); ms != nil {
		t.Errorf("with another GNUPGHOME: %+v", ms)
	}
}

func TestWithEnv(t *testing.T) {
	got := withEnv([]string{"PATH=/bin", "A=old", "AB=keep"}, []string{"A=new", "C=", "PATH=/x:/bin"})
	want := []string{"AB=keep", "A=new", "C=", "PATH=/x:/bin"}
	if !slices.Equal(got, want) {
		t.Errorf("withEnv = %q, want %q", got, want)
	}
}

// TestSandboxRunningIn: the probe devbox makes before it starts a pid 1
// sees the lock of a running sandbox, through a symlink to the project as
// well, and nothing once it is let go.
func TestSandboxRunningIn(t *testing.T) {
	root := t.TempDir()
	dirs := Dirs{Cache: filepath.Join(root, "cache"), Data: filepath.Join(root, "data")}
	dir := mkdirAll(t, filepath.Join(root, "project"))
	link := filepath.Join(root, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if SandboxRunningIn(dirs, dir) {
		t.Fatal("running before any sandbox")
	}
	p, err := OpenProject(dirs, dir)
	if err != nil {
		t.Fatal(err)
	}
	release, err := fsutil.TryLock(filepath.Join(p.StateDir, upperLock))
	if err != nil {
		t.Fatal(err)
	}
	if !SandboxRunningIn(dirs, dir) || !SandboxRunningIn(dirs, link) || !p.SandboxRunning() {
		t.Error("not running while the writable layer's lock is held")
	}
	release()
	if SandboxRunningIn(dirs, dir) {
		t.Error("running after the lock was let go")
	}
}

// TestShellArgs: devbox shell runs [shell] init, then the program, a
// command line with its arguments, or bash where the image has it.
func TestShellArgs(t *testing.T) {
	for _, tt := range []struct {
		shell ShellConfig
		want  string
	}{
		{ShellConfig{}, "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"},
		{ShellConfig{Program: "zsh -l"}, "exec zsh -l"},
		{ShellConfig{Program: "fish", Init: "export X=1"}, "export X=1\nexec fish"},
	} {
		e := &Environment{Config: &Config{Shell: tt.shell}}
		if got := e.ShellArgs(); !slices.Equal(got, []string{"/bin/sh", "-c", tt.want}) {
			t.Errorf("ShellArgs with %+v = %q, want sh -c %q", tt.shell, got, tt.want)
		}
	}
}
