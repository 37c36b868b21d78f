package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/devboxhq/devbox/internal/testimages"
)

// randomName returns prefix followed by random hex, for markers that no
// other run can have made.
func randomName(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

func TestRunIdentityAndWorkdir(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	if err := os.WriteFile(filepath.Join(e.Project, "hello.txt"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.mustRun(t, "run", "--", "sh", "-c", "id -u; id -g; pwd; ls")
	got := lines(r.Stdout)
	if len(got) < 3 {
		t.Fatalf("want uid, gid, pwd and ls output; %s", r)
	}
	if want := strconv.Itoa(os.Getuid()); got[0] != want {
		t.Errorf("id -u = %s, want %s (the host uid)", got[0], want)
	}
	if want := strconv.Itoa(os.Getgid()); got[1] != want {
		t.Errorf("id -g = %s, want %s (the host gid)", got[1], want)
	}
	if got[2] != e.Project {
		t.Errorf("pwd = %s, want the project dir %s", got[2], e.Project)
	}
	for _, f := range []string{"devbox.toml", "hello.txt"} {
		if !slices.Contains(got[3:], f) {
			t.Errorf("ls does not list %s: %q", f, got[3:])
		}
	}
}

// TestRunHostName: the sandbox's host name is its /etc/hostname, and in its
// /etc/hosts, so that
// what resolves it (Java, Erlang, getfqdn) needs no DNS; the host's own
// entries are there too, on the host's network.
func TestRunHostName(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	r := e.mustRun(t, "run", "--", "sh", "-c", "hostname; cat /etc/hostname; grep -w \"$(hostname)\" /etc/hosts; grep -c localhost /etc/hosts")
	got := lines(r.Stdout)
	if want := []string{"devbox", "devbox", "127.0.1.1\tdevbox"}; len(got) != 4 || !slices.Equal(got[:3], want) || got[3] == "0" {
		t.Errorf("output %q, want %q and the host's localhost entries; %s", got, want, r)
	}
}

// TestRunThroughSymlink: a project reached through a symlink (~/src when
// it is /data/src) is the same project, with the same home and writable
// layer, and the sandbox works at the path the user is at.
func TestRunThroughSymlink(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	if err := os.Mkdir(filepath.Join(e.Project, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(e.Project, link); err != nil {
		t.Fatal(err)
	}
	e.mustRun(t, "run", "--", "sh", "-c", "echo kept > $HOME/marker")
	sub := filepath.Join(link, "sub")
	r := runDevbox(t, e, sub, "run", "--", "sh", "-c", "pwd; cat $HOME/marker")
	if want := []string{sub, "kept"}; r.Code != 0 || !slices.Equal(lines(r.Stdout), want) {
		t.Errorf("through the symlink: output %q, want %q (the path the user is at, the same home); %s", lines(r.Stdout), want, r)
	}
}

// TestRunGitWorktree: a project that is a git worktree ('git worktree
// add') has its repository in another directory, which its .git file
// names; inside, that directory is there, read-write, so git works.
func TestRunGitWorktree(t *testing.T) {
	t.Parallel()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("needs git on the host")
	}
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	main := filepath.Join(t.TempDir(), "main")
	worktree := filepath.Join(filepath.Dir(main), "feature")
	for _, args := range [][]string{
		{"init", "-q", main},
		{"-C", main, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "first"},
		{"-C", main, "worktree", "add", "-q", worktree},
	} {
		if out, err := exec.Command(gitBin, args...).CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	config, err := os.ReadFile(filepath.Join(e.Project, "devbox.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(worktree, "devbox.toml"), config, 0o644); err != nil {
		t.Fatal(err)
	}
	// What git reads first in a worktree: the worktree's HEAD, then the
	// repository's objects; and what a commit writes.
	script := `gitdir=$(sed 's/^gitdir: //' .git); cat "$gitdir/HEAD"; test -d "$gitdir/../../objects" && echo objects; touch "$gitdir/../../devbox-wrote" && echo writable`
	r := runDevbox(t, e, worktree, "run", "--", "sh", "-c", script)
	got := lines(r.Stdout)
	if r.Code != 0 || len(got) != 3 || !strings.HasPrefix(got[0], "ref: refs/heads/") || got[1] != "objects" || got[2] != "writable" {
		t.Errorf("inside the worktree: output %q, want its HEAD, the repository's objects, and a writable repository; %s", got, r)
	}
	if _, err := os.Stat(filepath.Join(main, ".git", "devbox-wrote")); err != nil {
		t.Errorf("what the sandbox wrote into the repository is not on the host: %v", err)
	}
}

// TestRunMonorepoSubproject: a project in a subdirectory of a git
// repository gets the whole repository mounted, as Dev Containers do: the
// repository's .git and the project's siblings are there, read-write, and
// the command starts in the project.
func TestRunMonorepoSubproject(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	mono := filepath.Join(t.TempDir(), "mono")
	api := filepath.Join(mono, "services", "api")
	for _, f := range []struct{ path, data string }{
		{filepath.Join(mono, ".git", "HEAD"), "ref: refs/heads/main\n"},
		{filepath.Join(mono, "lib", "version.txt"), "1.2.3\n"},
		{filepath.Join(api, "devbox.toml"), readFile(t, filepath.Join(e.Project, "devbox.toml"))},
	} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.path, []byte(f.data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := runDevbox(t, e, api, "run", "--", "sh", "-c", "pwd; cat ../../lib/version.txt ../../.git/HEAD; echo made > ../../lib/made")
	if want := []string{api, "1.2.3", "ref: refs/heads/main"}; r.Code != 0 || !slices.Equal(lines(r.Stdout), want) {
		t.Errorf("in the subproject: output %q, want %q; %s", lines(r.Stdout), want, r)
	}
	if got := readFile(t, filepath.Join(mono, "lib", "made")); got != "made\n" {
		t.Errorf("the file written beside the project is %q on the host, want made", got)
	}
}

// TestRunShellWorkdir: with [shell] workdir, the project is mounted there
// instead of at its own path, and a run from a subdirectory starts in the
// same subdirectory of it; what is written there lands in the project.
func TestRunShellWorkdir(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.writeConfig(t, "[image]\nref = \""+imageRef(suite.registry, "busybox")+"\"\n\n[shell]\nworkdir = \"/src\"\n")
	sub := filepath.Join(e.Project, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	r := runDevbox(t, e, sub, "run", "--", "sh", "-c", "pwd; echo made-inside > /src/sub/made")
	if got := lines(r.Stdout); r.Code != 0 || !slices.Equal(got, []string{"/src/sub"}) {
		t.Errorf("from the project's sub: output %q, want /src/sub; %s", got, r)
	}
	if b, err := os.ReadFile(filepath.Join(sub, "made")); err != nil || string(b) != "made-inside\n" {
		t.Errorf("the file written at /src/sub is %q (%v) in the project, want made-inside", b, err)
	}
}

func TestRunExitCodes(t *testing.T) {
	t.Parallel()
	// One environment for all cases: the first pulls, the others reuse the
	// store, one after another.
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"true", []string{"true"}, 0},
		{"exit 7", []string{"sh", "-c", "exit 7"}, 7},
		{"false", []string{"false"}, 1},
		{"SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 128 + int(syscall.SIGTERM)},
		{"SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 128 + int(syscall.SIGKILL)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(t, append([]string{"run", "--"}, tt.args...)...)
			if r.Code != tt.want {
				t.Errorf("want exit %d; %s", tt.want, r)
			}
		})
	}
}

func TestRunFilesOwnedByUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	e.mustRun(t, "run", "--", "sh", "-c", "touch created.txt && mkdir -p sub/dir && echo x > sub/dir/f")
	for _, p := range []string{"created.txt", "sub", "sub/dir", "sub/dir/f"} {
		fi, err := os.Lstat(filepath.Join(e.Project, p))
		if err != nil {
			t.Errorf("%s was not created on the host: %v", p, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid() {
			t.Errorf("%s is owned by %d:%d on the host, want %d:%d", p, st.Uid, st.Gid, os.Getuid(), os.Getgid())
		}
	}
}

func TestRunPidNamespace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	// A host process with a command line that nothing else has: if the
	// sandbox saw the host's processes, it would see this one.
	token := fmt.Sprintf("%d.%d", 3000+os.Getpid()%1000, time.Now().UnixNano()%1000000)
	sleeper := exec.Command("sleep", token)
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sleeper.Process.Kill()
		_ = sleeper.Wait()
	})

	r := e.mustRun(t, "run", "--", "sh", "-c", `ls /proc; echo ---; for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f"; echo; done`)
	list, cmdlines, ok := strings.Cut(r.Stdout, "---\n")
	if !ok {
		t.Fatalf("unexpected output; %s", r)
	}
	var pids []int
	for f := range strings.FieldsSeq(list) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	if len(pids) == 0 {
		t.Fatalf("no pids in /proc: is it mounted? %s", r)
	}
	if len(pids) > 10 {
		t.Errorf("/proc lists %d processes, want only the sandbox's few: %v", len(pids), pids)
	}
	for _, p := range pids {
		if p >= 100 {
			t.Errorf("/proc lists pid %d; a fresh pid namespace has only small pids: %v", p, pids)
			break
		}
	}
	if host := os.Getpid(); host >= 100 && slices.Contains(pids, host) {
		t.Errorf("/proc lists the test process's host pid %d", host)
	}
	if strings.Contains(cmdlines, token) {
		t.Errorf("a host process (sleep %s) is visible in the sandbox:\n%s", token, cmdlines)
	}
}

func TestRunHostTmpHidden(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	// The host's /tmp itself, not TMPDIR: the contract is about /tmp.
	f, err := os.CreateTemp("/tmp", "devbox-e2e-marker-")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { os.Remove(f.Name()) })

	inside := filepath.Join("/tmp", randomName(t, "devbox-e2e-inside-"))
	t.Cleanup(func() { os.Remove(inside) })
	r := e.mustRun(t, "run", "--", "sh", "-c", fmt.Sprintf("if test -e %s; then echo visible; else echo hidden; fi; touch %s", f.Name(), inside))
	if got := strings.TrimSpace(r.Stdout); got != "hidden" {
		t.Errorf("host file %s inside the sandbox: %s; %s", f.Name(), got, r)
	}
	if _, err := os.Stat(inside); err == nil {
		t.Errorf("a file written to /tmp in the sandbox appeared in the host's /tmp")
	}
}

func TestRunHostRootHidden(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	// A file under the test's HOME, outside the project: on the host but not
	// part of the view devbox gives.
	secret := filepath.Join(e.Home, randomName(t, "secret-"))
	if err := os.WriteFile(secret, []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	markers := []string{secret}
	if os.Getuid() == 0 {
		// Only root can write at the host's /.
		dir := "/" + randomName(t, "devbox-e2e-marker-")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(dir) })
		markers = append(markers, dir)
	}
	var script strings.Builder
	for _, m := range markers {
		fmt.Fprintf(&script, "if test -e %s; then echo %s=visible; else echo %s=hidden; fi\n", m, m, m)
	}
	// The project itself must be there, or the test proves nothing.
	fmt.Fprintf(&script, "if test -e %s/devbox.toml; then echo project=visible; else echo project=hidden; fi\n", e.Project)
	// The image's root is /: its marker file is there.
	script.WriteString("echo busybox=$(readlink /bin/sh)\n")

	r := e.mustRun(t, "run", "--", "sh", "-c", script.String())
	kv := keyValues(r.Stdout)
	for _, m := range markers {
		if kv[m] != "hidden" {
			t.Errorf("host path %s: %q inside the sandbox, want hidden; %s", m, kv[m], r)
		}
	}
	if kv["project"] != "visible" {
		t.Errorf("project dir not visible inside; %s", r)
	}
	if kv["busybox"] != "busybox" {
		t.Errorf("/bin/sh is not the image's busybox link; %s", r)
	}
}

func TestRunImageEnv(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	r := e.mustRun(t, "run", "--", "sh", "-c", "echo $"+testimages.MarkerVar+"; echo $PATH")
	got := lines(r.Stdout)
	// The image's PATH lacks /usr/local/bin, where devbox's sudo is.
	path := "/usr/local/bin:" + testimages.ImagePath
	if len(got) != 2 || got[0] != "busybox" || got[1] != path {
		t.Errorf("want the image config's %s=busybox and PATH=%s; %s", testimages.MarkerVar, path, r)
	}
}

func TestRunLayeredImage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "layered"))
	script := `
for f in /data/gone /opaque/old /opaque/new /data/dir/a; do
	if test -e $f; then echo "$f=exists"; else echo "$f=absent"; fi
done
echo "keep=$(cat /data/keep)"
echo "hard=$(cat /data/hard)"
echo "new=$(cat /opaque/new)"
echo "abs-is-link=$(test -L /data/abs && echo yes)"
echo "abs-target=$(readlink /data/abs)"
echo "abs-content=$(cat /data/abs)"
echo "rel-target=$(readlink /data/rel)"
echo "rel-content=$(cat /data/rel)"
echo "marker=$DEVBOX_TEST_IMAGE"
`
	r := e.mustRun(t, "run", "--", "sh", "-c", script)
	kv := keyValues(r.Stdout)
	trim := strings.TrimSpace
	want := map[string]string{
		// Layer 3's whiteout removes the file.
		"/data/gone": "absent",
		// Layer 3's opaque marker hides everything layer 2 had in /opaque...
		"/opaque/old": "absent",
		// ...but not what layer 3 itself puts there.
		"/opaque/new": "exists",
		"new":         trim(testimages.New),
		// A directory of a lower layer shows through an upper layer that
		// only adds to its parent.
		"/data/dir/a": "exists",
		// Layer 3 rewrote /data/keep.
		"keep": trim(testimages.KeepV3),
		// /data/hard is layer 2's hardlink to layer 2's /data/keep. Layer 3
		// replaces the file at the path /data/keep with a new one (a layer
		// entry is a whole file, as in overlayfs, where the upper layer
		// shadows the lower path); the inode that /data/hard names is not
		// written, so it keeps layer 2's content. An unpacker that writes
		// layer 3's /data/keep through the existing inode gets this wrong.
		"hard": trim(testimages.KeepV2),
		// Symlink targets are stored as written and resolved inside the
		// image's root.
		"abs-is-link": "yes",
		"abs-target":  testimages.AbsTarget,
		"abs-content": trim(testimages.KeepV3),
		"rel-target":  testimages.RelTarget,
		"rel-content": trim(testimages.DirA),
		"marker":      "layered",
	}
	for k, w := range want {
		if kv[k] != w {
			t.Errorf("%s = %q, want %q", k, kv[k], w)
		}
	}
	if t.Failed() {
		t.Logf("%s", r)
	}
}

func TestRunOffline(t *testing.T) {
	t.Parallel()
	reg := ownRegistry(t)
	e := newEnv(t, imageRef(reg.Addr, "busybox"))
	e.mustRun(t, "run", "--", "true")
	if err := reg.Stop(); err != nil {
		t.Fatal(err)
	}
	if registryUp(reg.Addr) {
		t.Fatalf("registry %s still answers after Stop", reg.Addr)
	}
	r := e.mustRun(t, "run", "--", "echo", "offline-ok")
	if strings.TrimSpace(r.Stdout) != "offline-ok" {
		t.Errorf("second run without a registry: %s", r)
	}
}

func TestPull(t *testing.T) {
	t.Parallel()
	reg := ownRegistry(t)
	e := newEnv(t, imageRef(reg.Addr, "busybox"))
	e.mustRun(t, "pull")
	checkStoreClean(t, e)
	if err := reg.Stop(); err != nil {
		t.Fatal(err)
	}
	r := e.mustRun(t, "run", "--", "echo", "pulled-ok")
	if strings.TrimSpace(r.Stdout) != "pulled-ok" {
		t.Errorf("run after pull without a registry: %s", r)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	busybox := imageRef(suite.registry, "busybox")
	missing := suite.registry + "/busybox:no-such-tag"
	tests := []struct {
		name   string
		config string // devbox.toml; empty for none
		args   []string
		code   int
		stderr []string // each must appear in stderr
		match  string   // a regexp stderr must match, if set
		line   bool     // stderr must be one line
	}{
		{
			name:   "no devbox.toml",
			args:   []string{"run", "--", "true"},
			code:   2,
			stderr: []string{"devbox init"},
			line:   true,
		},
		{
			name:   "unknown key",
			config: fmt.Sprintf("[image]\nref = %q\nreff = \"x\"\n", busybox),
			args:   []string{"run", "--", "true"},
			code:   2,
			stderr: []string{"devbox.toml:3:1", "image.reff"},
		},
		{
			name:   "wrong type",
			config: "[image]\nref = 5\n",
			args:   []string{"run", "--", "true"},
			code:   2,
			match:  `devbox\.toml:2:\d+`,
		},
		{
			name:   "registry unreachable",
			config: "[image]\nref = \"127.0.0.1:1/busybox:latest\"\n",
			args:   []string{"run", "--", "true"},
			code:   1,
			stderr: []string{"127.0.0.1:1"},
		},
		{
			name:   "registry unreachable on pull",
			config: "[image]\nref = \"127.0.0.1:1/busybox:latest\"\n",
			args:   []string{"pull"},
			code:   1,
			stderr: []string{"127.0.0.1:1"},
		},
		{
			name:   "missing tag",
			config: fmt.Sprintf("[image]\nref = %q\n", missing),
			args:   []string{"run", "--", "true"},
			code:   1,
			stderr: []string{missing},
		},
		{
			name:   "command not found",
			config: fmt.Sprintf("[image]\nref = %q\n", busybox),
			args:   []string{"run", "--", "no-such-command-e2e"},
			code:   127,
			stderr: []string{"no-such-command-e2e", "not found"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "")
			if tt.config != "" {
				e.writeConfig(t, tt.config)
			}
			r := e.run(t, tt.args...)
			if r.Code != tt.code {
				t.Errorf("want exit %d; %s", tt.code, r)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(r.Stderr, s) {
					t.Errorf("stderr does not contain %q; %s", s, r)
				}
			}
			if tt.match != "" && !regexp.MustCompile(tt.match).MatchString(r.Stderr) {
				t.Errorf("stderr does not match %s; %s", tt.match, r)
			}
			if tt.line && len(lines(r.Stderr)) != 1 {
				t.Errorf("want a one-line message; %s", r)
			}
			checkStoreClean(t, e)
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	r := e.run(t, "--help")
	if r.Code != 0 {
		t.Fatalf("want exit 0; %s", r)
	}
	for _, c := range []string{"run", "shell", "pull", "version"} {
		if !regexp.MustCompile(`(?m)^\s+` + c + `\s`).MatchString(r.Stdout + r.Stderr) {
			t.Errorf("--help does not list the %s command; %s", c, r)
		}
	}
	r = e.run(t, "version")
	if r.Code != 0 || strings.TrimSpace(r.Stdout+r.Stderr) == "" {
		t.Errorf("want exit 0 and a version; %s", r)
	}
	// devbox creates the sandbox of a run before it reads its command
	// line; help, or a flag error, must end it and still answer.
	r = e.run(t, "run", "--help")
	if r.Code != 0 || !strings.Contains(r.Stdout+r.Stderr, "Usage:") {
		t.Errorf("run --help: want exit 0 and usage; %s", r)
	}
	r = e.run(t, "run", "--no-such-flag")
	if r.Code != 2 {
		t.Errorf("run --no-such-flag: want exit 2; %s", r)
	}
}

// ptyOutput collects what a pseudo-terminal prints and lets a test wait for
// a string to appear in it.
type ptyOutput struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
	closed  bool
}

func newPtyOutput(r io.Reader) *ptyOutput {
	o := &ptyOutput{changed: make(chan struct{})}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			o.mu.Lock()
			o.buf.Write(b[:n])
			if err != nil {
				// Reading the pty's master gives EIO once the last process
				// holding the terminal has exited.
				o.closed = true
			}
			close(o.changed)
			o.changed = make(chan struct{})
			o.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return o
}

func (o *ptyOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output contains one of subs, the terminal closes,
// or d passes, and reports whether one of subs appeared.
func (o *ptyOutput) waitFor(ctx context.Context, d time.Duration, subs ...string) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		o.mu.Lock()
		s, closed, changed := o.buf.String(), o.closed, o.changed
		o.mu.Unlock()
		for _, sub := range subs {
			if strings.Contains(s, sub) {
				return true
			}
		}
		if closed {
			return false
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func TestShellPTY(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	// Pull first, so that the shell's start is not a download.
	e.mustRun(t, "pull")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, suite.bin, "shell")
	cmd.Dir = e.Project
	cmd.Env = e.environ()
	// pty.Start makes devbox a session leader; killing its group on timeout
	// takes the sandbox with it.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	out := newPtyOutput(tty)

	// The input line does not contain the expected output: only a shell that
	// evaluates $((6*7)) prints hi-42.
	const input = "echo hi-$((6*7)); exit 3\n"
	// Type once the shell shows a prompt (busybox sh prints "$ " or "# "),
	// or after 15 s in any case; type again if nothing came back, in case
	// the first line was typed before the terminal was set up and dropped.
	out.waitFor(ctx, 15*time.Second, "$ ", "# ")
	for ctx.Err() == nil {
		if _, err := io.WriteString(tty, input); err != nil {
			break
		}
		if out.waitFor(ctx, 10*time.Second, "hi-42") {
			break
		}
	}

	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("devbox shell did not finish in 60s; output:\n%s", out)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("devbox shell: %v", err)
	}
	// Let the reader drain what the terminal printed last.
	out.waitFor(ctx, 5*time.Second, "hi-42")
	if !strings.Contains(out.String(), "hi-42") {
		t.Errorf("shell output lacks hi-42:\n%s", out)
	}
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Errorf("devbox shell exited %d, want 3; output:\n%s", code, out)
	}
}

// TestShellJoinsRunningSandbox: a shell opened while the project's sandbox
// runs joins it on a pty of the sandbox's own, which follows the window's
// size, and exits with the shell's status.
func TestShellJoinsRunningSandbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	e.mustRun(t, "run", "--", "true")
	_, firstOut, done := startRun(t, e, "sh", "-c",
		"echo from-owner > /tmp/owner; touch started; while [ ! -e end ]; do sleep 0.05; done")
	waitFile(t, filepath.Join(e.Project, "started"), firstOut)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd, tty, _, out, _ := shellOnTerminal(ctx, t, e, 24, 80)
	// The output is computed, so that the echo of the input cannot match.
	for ctx.Err() == nil {
		if _, err := io.WriteString(tty, "echo ok-$((6*7)) $(cat /tmp/owner) $(tty)\n"); err != nil {
			break
		}
		if out.waitFor(ctx, 10*time.Second, "ok-42") {
			break
		}
	}
	if err := pty.Setsize(tty, &pty.Winsize{Rows: 33, Cols: 111}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(tty, "echo size-$(stty size | tr ' ' x); exit 5\n")
	out.waitFor(ctx, 10*time.Second, "size-33x111")
	err := cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the joined shell did not finish; output:\n%s", out)
	}
	for _, want := range []string{"ok-42 from-owner /dev/pts/", "size-33x111"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the joined shell's output lacks %q:\n%s", want, out)
		}
	}
	if code := cmd.ProcessState.ExitCode(); code != 5 {
		t.Errorf("devbox shell exited %d (%v), want 5; output:\n%s", code, err, out)
	}
	if err := os.WriteFile(filepath.Join(e.Project, "end"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the first run: %v\n%s", err, firstOut.String())
		}
	case <-time.After(runTimeout):
		t.Fatal("the first run did not end")
	}
}

// TestRunJoinsRunningSandbox: a second `devbox run` of a project whose
// sandbox runs joins it, as a second terminal's shell would: it shares the
// writable layer, /tmp and processes, root included, and the sandbox waits
// for it. One that cannot join (devbox.toml changed, --ephemeral) gets a
// sandbox of its own on a throwaway layer.
func TestRunJoinsRunningSandbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	e.mustRun(t, "run", "--", "true")

	first, firstOut, done := startRun(t, e, "sh", "-c",
		"echo $$ > /tmp/first-pid; touch started; while [ ! -e second-done ]; do sleep 0.05; done; "+
			"mkdir /usr/sbin/from-first && echo first-wrote; cat /tmp/from-second; "+
			"while [ ! -e end ]; do sleep 0.05; done; touch first-ended")
	waitFile(t, filepath.Join(e.Project, "started"), firstOut)

	// Root joins too, and installs into the project's layer.
	e.mustRun(t, "run", "--root", "--", "mkdir", "/usr/bin/from-root")
	second := e.mustRun(t, "run", "--", "sh", "-c",
		"mkdir /usr/bin/from-second && echo second-wrote > /tmp/from-second; "+
			"cat /proc/$(cat /tmp/first-pid)/cmdline > /dev/null && echo sees-first; touch second-done")
	if !strings.Contains(second.Stdout, "sees-first") || strings.Contains(second.Stderr, "throwaway") {
		t.Errorf("the second run wants to join the first (its /tmp, its processes), with no notice; %s", second)
	}
	// A terminal with an SSH agent, beside a sandbox started without one,
	// joins it too.
	agent := fakeAgent(t, "agent.sock")
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	withAgent := exec.CommandContext(ctx, suite.bin, "run", "--", "sh", "-c", "p=$(cat /tmp/first-pid) && test -d /proc/$p && echo sees-first")
	withAgent.Dir, withAgent.Env = e.Project, append(e.environ(), "SSH_AUTH_SOCK="+agent)
	out, err := withAgent.CombinedOutput()
	cancel()
	if err != nil || !strings.Contains(string(out), "sees-first") || strings.Contains(string(out), "throwaway") {
		t.Errorf("a run with an SSH agent wants to join the sandbox started without one (%v):\n%s", err, out)
	}
	ephemeral := e.mustRun(t, "run", "--ephemeral", "--", "sh", "-c",
		"test ! -e /tmp/from-second && mkdir /usr/bin/from-ephemeral && echo own-sandbox")
	if !strings.Contains(ephemeral.Stdout, "own-sandbox") {
		t.Errorf("--ephemeral beside a running sandbox wants one of its own; %s", ephemeral)
	}
	// devbox.toml changed under the running sandbox: a mount it does not
	// have. The run says why it cannot join and runs on its own.
	data := t.TempDir()
	e.writeConfig(t, fmt.Sprintf("[image]\nref = %q\n\n[[mounts]]\nsource = %q\ntarget = \"/data\"\n",
		imageRef(suite.registry, "busybox"), data))
	changed := e.mustRun(t, "run", "--", "sh", "-c", "test -d /data && test ! -e /tmp/from-second && echo own-view")
	if !strings.Contains(changed.Stdout, "own-view") || !strings.Contains(changed.Stderr, "cannot be joined") ||
		!strings.Contains(changed.Stderr, "throwaway") {
		t.Errorf("a run whose devbox.toml changed under the running sandbox wants its own, and why; %s", changed)
	}
	e.writeConfig(t, fmt.Sprintf("[image]\nref = %q\n", imageRef(suite.registry, "busybox")))
	if left, _ := filepath.Glob(filepath.Join(e.Data, "devbox", "projects", "*", ".tmp-ephemeral-*")); len(left) != 0 {
		t.Errorf("the runs on a throwaway layer left it behind: %q", left)
	}

	// The first command ends while a joined one runs: the sandbox, and
	// the first devbox, wait for it.
	joined, joinedOut, joinedDone := startRun(t, e, "sh", "-c",
		"touch joined; until [ -e release ]; do sleep 0.05; done; echo joined-done")
	waitFile(t, filepath.Join(e.Project, "joined"), joinedOut)
	if err := os.WriteFile(filepath.Join(e.Project, "end"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(e.Project, "first-ended"), firstOut)
	select {
	case err := <-done:
		t.Fatalf("the first run ended (%v) while a joined one ran:\n%s", err, firstOut.String())
	case <-time.After(300 * time.Millisecond):
	}
	if err := os.WriteFile(filepath.Join(e.Project, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := waitRun(t, joined, joinedDone); err != nil || !strings.Contains(joinedOut.String(), "joined-done") {
		t.Errorf("the joined run wants to finish (%v):\n%s", err, joinedOut.String())
	}
	if err := waitRun(t, first, done); err != nil || !strings.Contains(firstOut.String(), "first-wrote\nsecond-wrote") {
		t.Fatalf("the first run wants to end well, having seen the second's /tmp (%v):\n%s", err, firstOut.String())
	}

	// Stopped while it waits (a Ctrl-C), the first devbox ends what
	// joined, which says so.
	first, firstOut, done = startRun(t, e, "sh", "-c", "touch started2; until [ -e end2 ]; do sleep 0.05; done; touch ended2")
	waitFile(t, filepath.Join(e.Project, "started2"), firstOut)
	_, joinedOut, joinedDone = startRun(t, e, "sh", "-c", "touch joined2; sleep 60")
	waitFile(t, filepath.Join(e.Project, "joined2"), joinedOut)
	if err := os.WriteFile(filepath.Join(e.Project, "end2"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(e.Project, "ended2"), firstOut)
	// Until its pid 1 has reaped the first command, a Ctrl-C is the
	// command's: sent again until the joined run ends.
	deadline := time.After(runTimeout)
	for stopped := false; !stopped; {
		first.Process.Signal(syscall.SIGINT)
		select {
		case err = <-joinedDone:
			stopped = true
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("the joined run outlived a Ctrl-C to the first")
		}
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 137 || !strings.Contains(joinedOut.String(), "was stopped from the terminal that started it") {
		t.Errorf("a joined run stopped from the first terminal wants status 137 and a notice (%v):\n%s", err, joinedOut.String())
	}
	if err := waitRun(t, first, done); err != nil {
		t.Errorf("the first run, stopped while it waited: %v\n%s", err, firstOut.String())
	}

	third := e.mustRun(t, "run", "--", "sh", "-c", "ls /usr/sbin /usr/bin")
	for _, want := range []string{"from-first", "from-second", "from-root"} {
		if !strings.Contains(third.Stdout, want) {
			t.Errorf("the project's layer lost %s; %s", want, third)
		}
	}
	if strings.Contains(third.Stdout, "from-ephemeral") {
		t.Errorf("the --ephemeral run's change was kept; %s", third)
	}
}

// TestRunPipelineInOneSandbox: two runs of a project joined by a pipe share
// its sandbox, and end whichever of them ends first: the first devbox lets
// its end of the pipe go while it waits for the other.
func TestRunPipelineInOneSandbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	e.mustRun(t, "run", "--", "true")
	for _, tt := range []struct{ name, script, want string }{
		// The writer ends first: the reader waits for the end of its input.
		{"writer first", `%[1]s run -- sh -c 'echo a; echo b; sleep 0.4' | (sleep 0.1; %[1]s run -- wc -l)`, "2\n"},
		// The reader ends first: the writer gets SIGPIPE.
		{"reader first", `(sleep 0.1; %[1]s run -- yes) | %[1]s run -- sh -c 'sleep 0.3; head -n 1'`, "y\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "sh", "-c", fmt.Sprintf(tt.script, suite.bin))
			cmd.Dir, cmd.Env = e.Project, e.environ()
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
			cmd.WaitDelay = 5 * time.Second
			out, err := cmd.Output()
			if ctx.Err() != nil {
				t.Fatalf("the pipeline hung: %s", out)
			}
			if string(out) != tt.want {
				t.Errorf("the pipeline printed %q (%v), want %q", out, err, tt.want)
			}
		})
	}
}

// TestRunJoinsWhenTheSandboxEnds: a run that finds the project's layer
// taken, but the sandbox gone before it answers (devbox run -- a | devbox
// run -- b with a done at once), takes the layer itself: no throwaway
// layer, no notice.
func TestRunJoinsWhenTheSandboxEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	e.mustRun(t, "run", "--", "true")
	locks, _ := filepath.Glob(filepath.Join(e.Data, "devbox", "projects", "*", "upper.lock"))
	if len(locks) != 1 {
		t.Fatalf("want the project's upper.lock, found %q", locks)
	}
	// The test holds the layer as a starting sandbox would, with no
	// socket yet, and lets go while the run waits for it.
	lock, err := os.OpenFile(locks[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	run, out, done := startRun(t, e, "sh", "-c", "echo own-layer")
	time.Sleep(200 * time.Millisecond)
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if err := waitRun(t, run, done); err != nil || !strings.Contains(out.String(), "own-layer") {
		t.Fatalf("the run: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), "cannot be joined") || strings.Contains(out.String(), "throwaway") {
		t.Errorf("the run, whose sandbox had gone, wants the project's layer and no notice:\n%s", out.String())
	}
}

// startRun starts `devbox run -- args` in e's project, in a process group
// that the test's end kills; its output, both streams, goes to the buffer.
func startRun(t *testing.T, e *testEnv, args ...string) (*exec.Cmd, *syncBuffer, chan error) {
	t.Helper()
	cmd := exec.Command(suite.bin, append([]string{"run", "--"}, args...)...)
	cmd.Dir, cmd.Env = e.Project, e.environ()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	return cmd, out, done
}

// waitRun waits for a run that startRun started.
func waitRun(t *testing.T, cmd *exec.Cmd, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(runTimeout):
		t.Fatalf("%s did not end", cmd)
		return nil
	}
}

// waitFile waits for path to exist.
func waitFile(t *testing.T, path string, out *syncBuffer) {
	t.Helper()
	for deadline := time.Now().Add(runTimeout); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear; output: %s", path, out.String())
		}
	}
}

// TestShellProgram: [shell] program is a command line, arguments and all,
// and devbox shell exits with its status.
func TestShellProgram(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.writeConfig(t, imageTOML(imageRef(suite.registry, "busybox"))+"[shell]\nprogram = \"sh -c 'echo custom-$((6*7)); exit 3'\"\n")
	r := e.run(t, "shell")
	if r.Code != 3 || strings.TrimSpace(r.Stdout) != "custom-42" {
		t.Errorf("want the program's output custom-42 and its status 3; %s", r)
	}
}
