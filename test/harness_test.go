package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devboxhq/devbox/internal/testimages"
)

// runTimeout bounds one devbox invocation: a hung sandbox fails its test
// instead of the whole binary's -timeout.
const runTimeout = 2 * time.Minute

// registry is a CNCF distribution registry (Debian's docker-registry) that
// the harness started, serving plain HTTP on a loopback port.
type registry struct {
	Addr string // host:port
	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// registryConfig is the registry's config, the same shape as the one that
// test/registry.sh writes.
func registryConfig(dir, addr string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: devbox-test-registry
`, filepath.Join(dir, "storage"), addr)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago. Another process may take it before the registry binds it, so
// startRegistry retries.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startRegistry starts docker-registry with its config, storage and log in
// dir and returns once it answers on /v2/.
func startRegistry(dir string) (*registry, error) {
	var errs []error
	for range 3 {
		r, err := startRegistryOnce(dir)
		if err == nil {
			return r, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func startRegistryOnce(dir string) (*registry, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(registryConfig(dir, addr)), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "registry.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command("docker-registry", "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies without stopping it, the registry goes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start docker-registry (apt-get install docker-registry): %w", err)
	}
	r := &registry{Addr: addr, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(r.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if registryUp(addr) {
			return r, nil
		}
		select {
		case <-r.done:
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("docker-registry on %s exited: %s", addr, bytes.TrimSpace(log))
		case <-time.After(100 * time.Millisecond):
		}
	}
	_ = r.Stop()
	log, _ := os.ReadFile(logPath)
	return nil, fmt.Errorf("docker-registry on %s did not answer in 20s: %s", addr, bytes.TrimSpace(log))
}

// Stop kills the registry and waits for it to exit. It may be called more
// than once.
func (r *registry) Stop() error {
	select {
	case <-r.done:
		return nil
	default:
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-r.done
	return nil
}

// registryUp reports whether a registry answers on http://addr/v2/.
func registryUp(addr string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/v2/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// ownRegistry starts a registry for one test, pushes the test images to it
// and stops it when the test ends. Tests that stop the registry mid-way use
// it instead of the shared one.
func ownRegistry(t *testing.T) *registry {
	t.Helper()
	r, err := startRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	if err := testimages.PushAll(r.Addr); err != nil {
		t.Fatal(err)
	}
	return r
}

// testEnv is one isolated devbox user: its own HOME and XDG dirs, and a
// project directory with a devbox.toml. Every path is under t.TempDir(), so
// the current user owns it whether or not that user is root.
type testEnv struct {
	Home    string
	Cache   string // XDG_CACHE_HOME
	Data    string // XDG_DATA_HOME
	Config  string // XDG_CONFIG_HOME
	State   string // XDG_STATE_HOME
	Project string // the work tree; devbox runs with this as its working directory
}

// imageRef is the reference of a test image (busybox or layered) in a
// registry at addr.
func imageRef(addr, image string) string {
	return addr + "/" + image + ":latest"
}

// newEnv makes an isolated environment whose devbox.toml names ref. An empty
// ref writes no devbox.toml.
func newEnv(t *testing.T, ref string) *testEnv {
	t.Helper()
	// Resolve symlinks so that the path compares equal to what pwd prints
	// inside the sandbox.
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(func() { makeRemovable(root) })
	e := &testEnv{
		Home:    filepath.Join(root, "home"),
		Cache:   filepath.Join(root, "cache"),
		Data:    filepath.Join(root, "data"),
		Config:  filepath.Join(root, "config"),
		State:   filepath.Join(root, "state"),
		Project: filepath.Join(root, "project"),
	}
	for _, d := range []string{e.Home, e.Cache, e.Data, e.Config, e.State, e.Project} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if ref != "" {
		e.writeConfig(t, fmt.Sprintf("[image]\nref = %q\n", ref))
	}
	return e
}

// makeRemovable gives the owner write and search permission on every
// directory under root. Unpacked layers keep their images' modes (a 0555
// /proc, overlayfs's 0000 work/work), which as a non-root user would make the
// temp dir's removal fail; every entry is owned by the user, so chmod works.
func makeRemovable(root string) {
	// WalkDir visits a directory before reading it, so the chmod comes first.
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil && info.Mode().Perm()&0o700 != 0o700 {
			_ = os.Chmod(path, info.Mode().Perm()|0o700)
		}
		return nil
	})
}

// writeConfig replaces the project's devbox.toml.
func (e *testEnv) writeConfig(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(e.Project, "devbox.toml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// environ is the whole environment devbox runs with: nothing of the host's
// but PATH, so that a test sees only what devbox itself puts in.
func (e *testEnv) environ() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	return []string{
		"PATH=" + path,
		"HOME=" + e.Home,
		"XDG_CACHE_HOME=" + e.Cache,
		"XDG_DATA_HOME=" + e.Data,
		"XDG_CONFIG_HOME=" + e.Config,
		"XDG_STATE_HOME=" + e.State,
		"NO_COLOR=1",
		"TERM=dumb",
	}
}

// result is what one devbox invocation did.
type result struct {
	Args   []string
	Stdout string
	Stderr string
	Code   int // exit code; -1 if killed by a signal or not started
}

func (r result) String() string {
	return fmt.Sprintf("devbox %s: exit %d\n--- stdout:\n%s\n--- stderr:\n%s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// runDevbox runs the devbox binary with args in dir, with env's environment
// and no stdin, and returns its output and exit code. It fails the test only
// if devbox cannot be started or outlives runTimeout.
func runDevbox(t *testing.T, env *testEnv, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, suite.bin, args...)
	cmd.Dir = dir
	// PWD as a shell sets it: the path the user came by, symlinks and all.
	cmd.Env = append(env.environ(), "PWD="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Its own process group, so that a timeout kills the sandbox too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	r := result{Args: args, Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
	if ctx.Err() != nil {
		t.Fatalf("timed out after %s: %s", runTimeout, r)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run devbox %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// run is runDevbox in the project directory.
func (e *testEnv) run(t *testing.T, args ...string) result {
	t.Helper()
	return runDevbox(t, e, e.Project, args...)
}

// mustRun runs devbox in the project directory and fails the test unless it
// exits 0.
func (e *testEnv) mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := e.run(t, args...)
	if r.Code != 0 {
		t.Fatalf("want exit 0; %s", r)
	}
	return r
}

// checkStoreClean fails the test if the store holds an in-progress entry.
//
// Convention (shared with package image): a file or directory that is being
// written has a name starting with ".tmp" (devbox uses a ".tmp-" prefix) or
// ending in ".partial", and is renamed into place only once complete. After
// any devbox command has exited, successful or not, none may be left in
// XDG_DATA_HOME/devbox or XDG_CACHE_HOME/devbox.
func checkStoreClean(t *testing.T, e *testEnv) {
	t.Helper()
	for _, root := range []string{filepath.Join(e.Data, "devbox"), filepath.Join(e.Cache, "devbox")} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && path == root {
				return nil
			}
			if errors.Is(err, fs.ErrPermission) {
				// overlayfs leaves its workdir's "work" with mode 0000; its
				// name was checked on the visit before the failed read.
				return nil
			}
			if err != nil {
				t.Errorf("walk store: %v", err)
				return nil
			}
			if n := d.Name(); strings.HasPrefix(n, ".tmp") || strings.HasSuffix(n, ".partial") {
				t.Errorf("store has an in-progress entry left behind: %s", path)
				if d.IsDir() {
					return fs.SkipDir
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("walk %s: %v", root, err)
		}
	}
}

// fakeAgent listens on a unix socket, as an SSH or GnuPG agent does, at a
// path short enough for sun_path, and returns the path; both go when the
// test ends.
func fakeAgent(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agent")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, name))
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ln.Close()
		os.RemoveAll(dir)
	})
	return ln.Addr().String()
}

// readFile is the content of the file at path; the test stops if it
// cannot be read.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lines splits output into its non-empty lines, trimmed.
func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// keyValues parses "key=value" lines, ignoring any others.
func keyValues(s string) map[string]string {
	m := map[string]string{}
	for _, l := range lines(s) {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}
