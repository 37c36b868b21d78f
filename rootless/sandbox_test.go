package rootless

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devboxhq/devbox/mounts"
	"github.com/devboxhq/devbox/rootless/network"
	"github.com/devboxhq/devbox/rootless/network/none"
	"github.com/devboxhq/devbox/rootless/network/slirp4netns"
	"golang.org/x/sys/unix"
)

// The sandbox's pid 1 is the test binary itself, re-executed by Run.
func TestMain(m *testing.M) {
	if IsInit() {
		os.Exit(Init())
	}
	if IsSudo() {
		os.Exit(Sudo(os.Args[1:]))
	}
	if sig := os.Getenv("ROOTLESS_TEST_SIGNAL_BEFORE_RUN"); sig != "" {
		signalBeforeRun(sig)
	}
	os.Exit(m.Run())
}

// signalBeforeRun is the helper process of TestSignalBeforeRun: it starts
// a sandbox, prints pid 1's pid, sends itself sig before Run and exits 0
// if that did not end it.
func signalBeforeRun(sig string) {
	null, _ := os.Open(os.DevNull)
	sb, err := Start(Launch{Network: NetworkHost, Userns: UsernsSingle}, IO{In: null, Out: null, Err: null})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	fmt.Println(sb.init.pid)
	<-sb.caught
	s := map[string]syscall.Signal{"INT": unix.SIGINT, "HUP": unix.SIGHUP, "TERM": unix.SIGTERM}[sig]
	unix.Kill(os.Getpid(), s)
	time.Sleep(200 * time.Millisecond)
	sb.Close()
	os.Exit(0)
}

// busyboxLayer makes a layer directory with a static busybox and its
// applets, or skips the test when the host has no static busybox.
func busyboxLayer(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs a static busybox (Debian: busybox-static)")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "ls", "cat", "echo", "sleep", "id", "touch", "test", "kill", "readlink", "true", "false", "chown", "nc", "su", "stat", "cp", "mv"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// sandbox is a Spec over layers with a fresh upper layer, running args.
func sandbox(t *testing.T, layers []string, args ...string) *Spec {
	t.Helper()
	state := t.TempDir()
	for _, d := range []string{"upper", "work", "root", "project"} {
		// The upper layer's own mode is the mode of the sandbox's "/".
		if err := os.Mkdir(filepath.Join(state, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	project := filepath.Join(state, "project")
	return &Spec{
		RootDir: filepath.Join(state, "root"),
		Mounts: mounts.Plan(mounts.View{
			Layers: layers, Upper: filepath.Join(state, "upper"), Work: filepath.Join(state, "work"),
			WorkTree: project,
		}),
		Network: NetworkHost,
		Process: Process{
			Args: args, Env: []string{"PATH=/bin"}, Cwd: project,
			UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
		},
	}
}

// driverFor is the network driver of spec's mode, for the modes a test can
// use everywhere.
func driverFor(spec *Spec) network.ParentDriver {
	if spec.Network == NetworkNone {
		return none.NewParentDriver()
	}
	return nil
}

// run runs spec with the output captured, bounded by a minute so that a
// sandbox that never ends fails the test instead of hanging it.
func run(t *testing.T, spec *Spec) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	stdout, _ := os.Create(filepath.Join(dir, "stdout"))
	stderr, _ := os.Create(filepath.Join(dir, "stderr"))
	stdin, _ := os.Open(os.DevNull)
	defer stdin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, err := Run(ctx, spec, IO{In: stdin, Out: stdout, Err: stderr}, driverFor(spec))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	stdout.Close()
	stderr.Close()
	out, _ := os.ReadFile(stdout.Name())
	errOut, _ := os.ReadFile(stderr.Name())
	return code, string(out), string(errOut)
}

func TestRunExitStatus(t *testing.T) {
	layer := busyboxLayer(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"success", []string{"true"}, 0, ""},
		{"exit code", []string{"sh", "-c", "exit 7"}, 7, ""},
		{"false", []string{"false"}, 1, ""},
		{"killed by a signal", []string{"sh", "-c", "kill -TERM $$"}, 128 + 15, ""},
		{"not found", []string{"no-such-command"}, 127, "no-such-command: command not found"},
		{"not executable", []string{"/bin"}, 126, "cannot execute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, sandbox(t, []string{layer}, tt.args...))
			if code != tt.code {
				t.Errorf("status %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.stderr)
			}
		})
	}
}

func TestRunIdentityAndIsolation(t *testing.T) {
	layer := busyboxLayer(t)
	spec := sandbox(t, []string{layer}, "sh", "-c", "id -u; id -g; echo $$; ls /proc; touch made-here")
	code, out, stderr := run(t, spec)
	if code != 0 {
		t.Fatalf("status %d: %s", code, stderr)
	}
	lines := strings.Fields(out)
	if lines[0] != strconv.Itoa(os.Getuid()) || lines[1] != strconv.Itoa(os.Getgid()) {
		t.Errorf("id inside = %s:%s, want %d:%d", lines[0], lines[1], os.Getuid(), os.Getgid())
	}
	// pid 1 is devbox's init, whose threads take the next few ids; the
	// command comes right after them in its own pid namespace.
	if pid, err := strconv.Atoi(lines[2]); err != nil || pid > 20 {
		t.Errorf("command's pid = %s, want a small number", lines[2])
	}
	for _, name := range lines[3:] {
		if pid, err := strconv.Atoi(name); err == nil && pid > 50 {
			t.Errorf("/proc inside shows pid %d: not the sandbox's own pid namespace", pid)
		}
	}
	fi, err := os.Stat(filepath.Join(spec.Process.Cwd, "made-here"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != uint32(os.Getuid()) {
		t.Errorf("file made inside is owned by %d on the host, want %d", uid, os.Getuid())
	}
}

// TestCommandCapabilities: the user's command has no capabilities, and
// pid 1's (ambient ones, in single mode) do not leak into it.
func TestCommandCapabilities(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("run by root, the command is root inside and keeps root's capabilities")
	}
	layer := busyboxLayer(t)
	code, out, stderr := run(t, sandbox(t, []string{layer}, "sh", "-c", "grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status; mount -t tmpfs tmpfs /tmp && echo mounted"))
	if code == 0 || strings.Contains(out, "mounted") {
		t.Errorf("the command mounted a tmpfs (status %d): %s%s", code, out, stderr)
	}
	sets := strings.Fields(out)
	if len(sets) != 8 {
		t.Fatalf("capability sets: %q", out)
	}
	for i := 0; i < len(sets); i += 2 {
		if strings.Trim(sets[i+1], "0") != "" {
			t.Errorf("%s %s, want none", sets[i], sets[i+1])
		}
	}
}

func TestRunKillsLeftovers(t *testing.T) {
	layer := busyboxLayer(t)
	// If the background sleep outlived the command, pid 1 would wait for
	// it and run() would fail at its deadline.
	code, _, stderr := run(t, sandbox(t, []string{layer}, "sh", "-c", "sleep 1000 & exit 3"))
	if code != 3 {
		t.Fatalf("status %d, want 3: %s", code, stderr)
	}
}

// TestStartThenRun: a sandbox started before its spec is known runs the
// spec once; one closed without running leaves no process behind; a spec
// that needs another kind of sandbox is refused before anything runs.
func TestStartThenRun(t *testing.T) {
	layer := busyboxLayer(t)
	stdio := IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
	t.Run("run", func(t *testing.T) {
		spec := sandbox(t, []string{layer}, "sh", "-c", "exit 4")
		sb, err := Start(LaunchOf(spec), stdio)
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		if code, err := sb.Run(context.Background(), spec, nil); err != nil || code != 4 {
			t.Fatalf("Run = %d, %v; want 4", code, err)
		}
		if _, err := sb.Run(context.Background(), spec, nil); err == nil {
			t.Error("a second Run of the same sandbox succeeded")
		}
	})
	t.Run("closed unused", func(t *testing.T) {
		sb, err := Start(Launch{Network: NetworkHost, Userns: UsernsSingle}, stdio)
		if err != nil {
			t.Fatal(err)
		}
		pid := sb.init.pid
		sb.Close()
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			t.Errorf("pid 1 (%d) still exists after Close: kill(0) = %v", pid, err)
		}
	})
	t.Run("launch mismatch", func(t *testing.T) {
		spec := sandbox(t, []string{layer}, "touch", "ran")
		sb, err := Start(Launch{Network: NetworkNone, Userns: UsernsSingle}, stdio)
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		if _, err := sb.Run(context.Background(), spec, nil); err == nil || !strings.Contains(err.Error(), "was started for") {
			t.Errorf("Run of a host-network spec in a sandbox started for network none: %v", err)
		}
		if _, err := os.Stat(filepath.Join(spec.Process.Cwd, "ran")); err == nil {
			t.Error("the command ran")
		}
	})
}

func TestRunNetworkNone(t *testing.T) {
	layer := busyboxLayer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The host's loopback listener must be out of reach: inside, 127.0.0.1
	// is the sandbox's own loopback, where nothing listens.
	probe := fmt.Sprintf("if echo | nc -w 1 127.0.0.1 %d; then echo REACHED; fi; cat /proc/net/dev", ln.Addr().(*net.TCPAddr).Port)
	spec := sandbox(t, []string{layer}, "sh", "-c", probe)
	spec.Network = NetworkNone
	code, out, stderr := run(t, spec)
	if code != 0 {
		t.Fatalf("status %d: %s", code, stderr)
	}
	if strings.Contains(out, "REACHED") {
		t.Errorf("a sandbox without network reached the host's loopback")
	}
	for _, line := range strings.Split(out[strings.Index(out, "Inter-"):], "\n")[2:] {
		if name, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && name != "lo" {
			t.Errorf("network namespace has interface %q besides lo", name)
		}
	}
}

// requireNetworkTests skips a test of isolated networking where it cannot
// run (no slirp4netns, or a /dev/net/tun this user cannot open), unless
// DEVBOX_TEST_REQUIRE_NETWORK=1 says it must: CI sets it.
func requireNetworkTests(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("slirp4netns")
	if err == nil {
		var f *os.File
		if f, err = os.OpenFile("/dev/net/tun", os.O_RDWR, 0); err == nil {
			f.Close()
		}
	}
	if err != nil {
		if os.Getenv("DEVBOX_TEST_REQUIRE_NETWORK") == "1" {
			t.Fatalf("isolated networking cannot run here: %v", err)
		}
		t.Skipf("isolated networking cannot run here (%v); DEVBOX_TEST_REQUIRE_NETWORK=1 makes this fail", err)
	}
}

// TestRunNetworkIsolated: a server inside answers on a forwarded host
// port, and the sandbox cannot reach the host's loopback.
func TestRunNetworkIsolated(t *testing.T) {
	requireNetworkTests(t)
	layer := busyboxLayer(t)
	hostLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostLn.Close()
	go func() {
		for {
			c, err := hostLn.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("host-loopback\n"))
			c.Close()
		}
	}()
	hostPort := hostLn.Addr().(*net.TCPAddr).Port
	fwd, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fwdPort := fwd.Addr().(*net.TCPAddr).Port
	fwd.Close()
	script := fmt.Sprintf("if echo | nc -w 2 10.0.2.2 %d | grep -q host-loopback; then echo REACHED; fi; echo inside-reply | nc -l -p 80", hostPort)
	spec := sandbox(t, []string{layer}, "sh", "-c", script)
	spec.Network = NetworkIsolated
	driver, err := slirp4netns.NewParentDriver(slirp4netns.Opt{StateDir: t.TempDir(),
		Ports: []network.Port{{Proto: "tcp", HostIP: "127.0.0.1", HostPort: fwdPort, ChildPort: 80}}})
	if err != nil {
		t.Fatal(err)
	}
	answer := make(chan string, 1)
	go func() {
		// The server inside starts after the loopback probe: retry until
		// it answers, within the test's deadline.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", fwdPort), time.Second)
			if err == nil {
				b, _ := io.ReadAll(c)
				c.Close()
				if len(b) > 0 {
					answer <- string(b)
					return
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		answer <- ""
	}()
	dir := t.TempDir()
	out, _ := os.Create(filepath.Join(dir, "out"))
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	code, err := Run(context.Background(), spec, IO{In: null, Out: out, Err: out}, driver)
	if err != nil {
		t.Fatal(err)
	}
	out.Close()
	output, _ := os.ReadFile(out.Name())
	if got := <-answer; !strings.Contains(got, "inside-reply") {
		t.Errorf("the forwarded port answered %q, want inside-reply (status %d, output %q)", got, code, output)
	}
	if strings.Contains(string(output), "REACHED") {
		t.Errorf("the sandbox reached the host's loopback through the gateway")
	}
}

// A forwarded port that something on the host already listens on is an
// error that says so, not slirp4netns's "slirp_add_hostfwd failed".
func TestRunNetworkIsolatedPortInUse(t *testing.T) {
	requireNetworkTests(t)
	layer := busyboxLayer(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	spec := sandbox(t, []string{layer}, "true")
	spec.Network = NetworkIsolated
	driver, err := slirp4netns.NewParentDriver(slirp4netns.Opt{StateDir: t.TempDir(),
		Ports: []network.Port{{Proto: "tcp", HostIP: "127.0.0.1", HostPort: port, ChildPort: 80}}})
	if err != nil {
		t.Fatal(err)
	}
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	_, err = Run(context.Background(), spec, IO{In: null, Out: null, Err: null}, driver)
	want := fmt.Sprintf("forward tcp 127.0.0.1:%d to port 80: the host port is in use", port)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Run = %v, want an error containing %q", err, want)
	}
}

// TestHostileImageSymlinks: an image whose /etc, /tmp, /dev, /proc or
// /sys is a symlink to a host path must never make devbox mount over or
// create files in that host path. Resolved inside the root, such a link
// dangles; devbox refuses it at setup rather than follow it out.
func TestHostileImageSymlinks(t *testing.T) {
	for _, name := range []string{"etc", "tmp", "dev", "proc", "sys"} {
		t.Run(name, func(t *testing.T) {
			layer := busyboxLayer(t)
			victim := t.TempDir()
			if err := os.Symlink(victim, filepath.Join(layer, name)); err != nil {
				t.Fatal(err)
			}
			spec := sandbox(t, []string{layer}, "sh", "-c", "echo x > /tmp/written; echo y > /etc/written")
			spec.Mounts = append(spec.Mounts, mounts.Mount{Type: mounts.Bind, Source: "/etc/resolv.conf", Target: "/etc/resolv.conf", ReadOnly: true, Optional: true})
			runHostile(t, spec)
			if entries := readDir(t, victim); len(entries) != 0 {
				t.Errorf("the host directory the image's /%s names was written to: %v", name, entries)
			}
		})
	}
}

// runHostile runs spec, which a hostile image's symlinks may make devbox
// refuse at set-up: it either runs or fails with a SetupError.
func runHostile(t *testing.T, spec *Spec) {
	t.Helper()
	stdin, _ := os.Open(os.DevNull)
	defer stdin.Close()
	_, err := Run(context.Background(), spec, IO{In: stdin, Out: stdin, Err: stdin}, nil)
	var se *SetupError
	if err != nil && !errors.As(err, &se) {
		t.Fatalf("Run: %v, want success or a SetupError", err)
	}
}

// readDir is the entries of dir; the test stops if it cannot be read.
func readDir(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// TestSysReadOnly: /sys is read-only inside with every mount the host has
// beneath it, such as its cgroup hierarchy and tracefs.
func TestSysReadOnly(t *testing.T) {
	layer := busyboxLayer(t)
	code, out, stderr := run(t, sandbox(t, []string{layer}, "cat", "/proc/self/mountinfo"))
	if code != 0 {
		t.Fatalf("status %d: %s", code, stderr)
	}
	var sys, under int
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 6 || (f[4] != "/sys" && !strings.HasPrefix(f[4], "/sys/")) {
			continue
		}
		if f[4] == "/sys" {
			sys++
		} else {
			under++
		}
		if !slices.Contains(strings.Split(f[5], ","), "ro") {
			t.Errorf("%s is mounted %s inside, want ro", f[4], f[5])
		}
	}
	if sys == 0 {
		t.Fatalf("no /sys inside:\n%s", out)
	}
	if under == 0 {
		t.Skip("the host has no mounts beneath /sys to check")
	}
}

// TestRootEmulation: as root inside, chown to ids that are not mapped
// fails with EINVAL, unless root emulation fakes success.
func TestRootEmulation(t *testing.T) {
	layer := busyboxLayer(t)
	for _, emulate := range []bool{false, true} {
		t.Run(fmt.Sprintf("emulation=%v", emulate), func(t *testing.T) {
			spec := sandbox(t, []string{layer}, "sh", "-c", "touch /tmp/f && chown 123:456 /tmp/f && id -u")
			spec.Process.UID, spec.Process.GID, spec.Process.RootEmulation = 0, 0, emulate
			code, out, stderr := run(t, spec)
			if emulate && (code != 0 || strings.TrimSpace(out) != "0") {
				t.Errorf("with root emulation: status %d, output %q, stderr %q; want 0 and uid 0", code, out, stderr)
			}
			if !emulate && code == 0 {
				t.Errorf("without root emulation chown to an unmapped id succeeded")
			}
		})
	}
}

// TestEtcPasswd: root inside has the image's own /etc/passwd, which it can
// replace by a rename as useradd does (a package that adds a system user
// needs that); a user the image does not know gets an entry, in a copy.
func TestEtcPasswd(t *testing.T) {
	layer := busyboxLayer(t)
	if err := os.Mkdir(filepath.Join(layer, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"passwd": "root:x:0:0:root:/root:/bin/sh\n", "group": "root:x:0:\n"} {
		if err := os.WriteFile(filepath.Join(layer, "etc", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("root adds a user", func(t *testing.T) {
		spec := sandbox(t, []string{layer}, "sh", "-c",
			"cp /etc/passwd /etc/passwd+ && echo svc:x:999:999::/:/bin/false >> /etc/passwd+ && mv /etc/passwd+ /etc/passwd && cat /etc/passwd")
		spec.User = User{Name: "root", Home: "/root", Shell: "/bin/sh"}
		spec.Process.UID, spec.Process.GID, spec.Process.RootEmulation = 0, 0, true
		code, out, stderr := run(t, spec)
		if code != 0 || out != "root:x:0:0:root:/root:/bin/sh\nsvc:x:999:999::/:/bin/false\n" {
			t.Errorf("status %d, /etc/passwd %q, stderr %q; want the image's root entry and the new one", code, out, stderr)
		}
	})
	t.Run("the user", func(t *testing.T) {
		spec := sandbox(t, []string{layer}, "sh", "-c", "cat /etc/passwd /etc/group")
		spec.User = User{Name: "dev", Home: "/home/dev", Shell: "/bin/sh"}
		uid, gid := spec.Process.UID, spec.Process.GID
		code, out, stderr := run(t, spec)
		// Run by root, the test is a user the image knows.
		want := "root:x:0:0:root:/root:/bin/sh\nroot:x:0:\n"
		if uid != 0 {
			want = fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\ndev:x:%d:%d:dev:/home/dev:/bin/sh\nroot:x:0:\n", uid, gid)
			if gid != 0 {
				want += fmt.Sprintf("dev:x:%d:\n", gid)
			}
		}
		if code != 0 || out != want {
			t.Errorf("status %d, output %q, stderr %q; want %q", code, out, stderr, want)
		}
	})
}

// TestHostsNamesTheSandbox: /etc/hostname is the sandbox's host name, and
// on the host's network, /etc/hosts is the host's with that name added, so
// that the name resolves without DNS.
func TestHostsNamesTheSandbox(t *testing.T) {
	host, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Skip("the host has no /etc/hosts")
	}
	spec := sandbox(t, []string{busyboxLayer(t)}, "cat", "/etc/hosts", "/etc/hostname")
	spec.Hostname = "devbox-test-host"
	code, out, stderr := run(t, spec)
	if want := string(host) + "127.0.1.1\tdevbox-test-host\ndevbox-test-host\n"; code != 0 || out != want {
		t.Errorf("status %d, /etc/hosts and /etc/hostname %q (stderr %q); want %q", code, out, stderr, want)
	}
}

// TestAptStaysRoot: a root sandbox with root emulation tells apt to stay
// root, in an image that has apt; a setup step (no user entry) and the user
// are left alone.
func TestAptStaysRoot(t *testing.T) {
	layer := busyboxLayer(t)
	if err := os.MkdirAll(filepath.Join(layer, "etc", "apt", "apt.conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	const read = "cat /etc/apt/apt.conf.d/* 2>/dev/null; true"
	for _, tt := range []struct {
		name string
		user string
		root bool
		want bool
	}{
		{"root", "root", true, true},
		{"setup step", "", true, false},
		{"the user", "dev", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := sandbox(t, []string{layer}, "sh", "-c", read)
			spec.User = User{Name: tt.user, Home: "/home/dev", Shell: "/bin/sh"}
			if tt.root {
				spec.Process.UID, spec.Process.GID, spec.Process.RootEmulation = 0, 0, true
			}
			code, out, stderr := run(t, spec)
			if got := strings.Contains(out, `APT::Sandbox::User "root";`); code != 0 || got != tt.want {
				t.Errorf("status %d, apt.conf.d holds %q (stderr %q); want the setting: %v", code, out, stderr, tt.want)
			}
		})
	}
	t.Run("root joins the user's sandbox", func(t *testing.T) {
		owner := sandbox(t, []string{layer}, "sh", "-c", "read line")
		owner.User = User{Name: "dev", Home: "/home/dev", Shell: "/bin/sh"}
		feed, done := runShared(t, owner)
		for _, name := range []string{"first", "second"} {
			root := *owner
			root.Share, root.User = "", User{Name: "root", Home: "/root", Shell: "/bin/sh"}
			root.Process.Args = []string{"sh", "-c", read}
			root.Process.UID, root.Process.GID, root.Process.RootEmulation = 0, 0, true
			code, out, err := joinCaptured(t, owner.Share, &root)
			if err != nil || code != 0 || !strings.Contains(out, `APT::Sandbox::User "root";`) {
				t.Errorf("the %s root joiner: %d, %v, apt.conf.d holds %q; want the setting", name, code, err, out)
			}
		}
		feed.Close()
		if r := <-done; r.err != nil {
			t.Error(r.err)
		}
	})
}

// TestRunSubuid: with a full id range, a process inside really switches
// to another user, and files the user makes in the work tree stay theirs.
func TestRunSubuid(t *testing.T) {
	if os.Getuid() != 0 {
		if _, err := exec.LookPath("newuidmap"); err != nil {
			t.Skip("needs newuidmap (Debian: uidmap)")
		}
		if _, _, err := subuidMaps(); err != nil {
			t.Skipf("needs a subuid range: %v", err)
		}
	}
	layer := busyboxLayer(t)
	os.Chmod(layer, 0o755)
	os.MkdirAll(filepath.Join(layer, "etc"), 0o755)
	os.WriteFile(filepath.Join(layer, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(layer, "etc", "group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)

	spec := sandbox(t, []string{layer}, "su", "-s", "/bin/sh", "nobody", "-c", "id -u; id -g")
	spec.Userns = UsernsSubuid
	spec.Process.UID, spec.Process.GID = 0, 0
	code, out, stderr := run(t, spec)
	if code != 0 || strings.Fields(out)[0] != "65534" || strings.Fields(out)[1] != "65534" {
		t.Errorf("su nobody: status %d, output %q, stderr %q; want 65534 65534", code, out, stderr)
	}

	spec = sandbox(t, []string{layer}, "sh", "-c", "id -u; touch mine")
	spec.Userns = UsernsSubuid
	code, out, stderr = run(t, spec)
	if code != 0 || strings.TrimSpace(out) != strconv.Itoa(os.Getuid()) {
		t.Errorf("as the user: status %d, output %q, stderr %q; want uid %d", code, out, stderr, os.Getuid())
	}
	fi, err := os.Stat(filepath.Join(spec.Process.Cwd, "mine"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != uint32(os.Getuid()) {
		t.Errorf("a file made in the work tree is owned by %d on the host, want %d", uid, os.Getuid())
	}

	// A command of the user joins it, mapped as the first one was.
	spec = sandbox(t, []string{layer}, "sh", "-c", "read line")
	spec.Userns = UsernsSubuid
	feed, ownerDone := runShared(t, spec)
	joiner := *spec
	joiner.Share = ""
	joiner.Process.Args = []string{"id", "-u"}
	code, out, err = joinCaptured(t, spec.Share, &joiner)
	if err != nil || code != 0 || strings.TrimSpace(out) != strconv.Itoa(os.Getuid()) {
		t.Errorf("a joined command of the user: %d, %v, output %q; want uid %d", code, err, out, os.Getuid())
	}
	feed.Close()
	if r := <-ownerDone; r.err != nil {
		t.Errorf("the owner: %v", r.err)
	}
}

// runResult is what Run returned.
type runResult struct {
	code int
	err  error
}

// runShared runs spec, shared at a socket of its own, in the background,
// with a pipe for its standard input: closing feed ends a command that
// reads it, and done gives what Run returned.
func runShared(t *testing.T, spec *Spec) (feed *os.File, done <-chan runResult) {
	t.Helper()
	spec.Share = filepath.Join(t.TempDir(), "sandbox.sock")
	in, feed, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { feed.Close() })
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan runResult, 1)
	go func() {
		code, err := Run(context.Background(), spec, IO{In: in, Out: null, Err: null}, nil)
		null.Close()
		ch <- runResult{code, err}
	}()
	return feed, ch
}

// joinCaptured joins spec to the sandbox at socket, its output and error
// captured together.
func joinCaptured(t *testing.T, socket string, spec *Spec) (int, string, error) {
	t.Helper()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	code, err := Join(context.Background(), socket, spec, IO{In: null, Out: out, Err: out}, nil)
	b, _ := os.ReadFile(out.Name())
	return code, string(b), err
}

func TestIDRanges(t *testing.T) {
	if got := fmt.Sprint(outerRanges(1000, 100000, 65536)); got != "[{0 1000 1} {1 100000 65536}]" {
		t.Errorf("outerRanges = %s", got)
	}
	tests := []struct {
		id, size int
		want     []IDRange
	}{
		{1000, 65537, []IDRange{{0, 1, 1000}, {1000, 0, 1}, {1001, 1001, 64536}}},
		{0, 65537, []IDRange{{0, 0, 1}, {1, 1, 65536}}},
		{70000, 65537, []IDRange{{0, 1, 65536}, {70000, 0, 1}}},
	}
	for _, tt := range tests {
		got := innerRanges(tt.id, tt.size)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("innerRanges(%d, %d) = %v, want %v", tt.id, tt.size, got, tt.want)
		}
		// A map is a bijection onto the outer ids 0..size-1.
		seen := map[int]bool{}
		for _, r := range got {
			for i := 0; i < r.Size; i++ {
				if seen[r.Host+i] || r.Host+i >= tt.size {
					t.Errorf("innerRanges(%d, %d) maps outer id %d twice or out of range", tt.id, tt.size, r.Host+i)
				}
				seen[r.Host+i] = true
			}
		}
	}
}

// TestRootFSModes: the same layers (a whiteout, an opaque directory) give
// the same view through kernel overlayfs, fuse-overlayfs and a flattened
// copy, and writes land in the writable layer or copy, not in the layers.
func TestRootFSModes(t *testing.T) {
	base := busyboxLayer(t)
	os.Chmod(base, 0o755)
	for _, p := range []string{"data/gone", "data/kept", "opq/old"} {
		os.MkdirAll(filepath.Join(base, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(base, p), []byte(p), 0o644)
	}
	top := t.TempDir()
	os.Chmod(top, 0o755)
	os.MkdirAll(filepath.Join(top, "data"), 0o755)
	if err := unix.Mknod(filepath.Join(top, "data", "gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(top, "opq"), 0o755)
	if err := unix.Setxattr(filepath.Join(top, "opq"), "user.overlay.opaque", []byte("y"), 0); err != nil {
		t.Skipf("no user xattrs: %v", err)
	}
	os.WriteFile(filepath.Join(top, "opq", "new"), []byte("new"), 0o644)
	layers := []string{base, top}

	fuse, fuseErr := exec.LookPath("fuse-overlayfs")
	if fuseErr == nil {
		var f *os.File
		if f, fuseErr = os.OpenFile("/dev/fuse", os.O_RDWR, 0); fuseErr == nil {
			f.Close()
		}
	}
	for _, mode := range []mounts.RootFS{mounts.RootFSOverlay, mounts.RootFSFuse, mounts.RootFSCopy} {
		t.Run(string(mode), func(t *testing.T) {
			if mode == mounts.RootFSFuse && fuseErr != nil {
				if os.Getenv("DEVBOX_TEST_REQUIRE_FUSE") == "1" {
					t.Fatalf("fuse-overlayfs cannot run here: %v", fuseErr)
				}
				t.Skipf("fuse-overlayfs cannot run here (%v); DEVBOX_TEST_REQUIRE_FUSE=1 makes this fail", fuseErr)
			}
			spec := sandbox(t, layers, "sh", "-c", "ls /data /opq; echo x > /written")
			v := mounts.View{Layers: layers, RootFS: mode, FuseHelper: fuse,
				Upper: spec.Mounts[0].Upper, Work: spec.Mounts[0].Work, WorkTree: spec.Process.Cwd}
			if mode == mounts.RootFSCopy {
				v.Flat = t.TempDir()
				os.Chmod(v.Flat, 0o755)
				if err := mounts.Flatten(layers, v.Flat); err != nil {
					t.Fatal(err)
				}
			}
			spec.Mounts = mounts.Plan(v)
			code, out, stderr := run(t, spec)
			if code != 0 || strings.Join(strings.Fields(out), " ") != "/data: kept /opq: new" {
				t.Errorf("status %d, view %q (stderr %q); want /data: kept /opq: new", code, out, stderr)
			}
			written := filepath.Join(v.Upper, "written")
			if mode == mounts.RootFSCopy {
				written = filepath.Join(v.Flat, "written")
			}
			if _, err := os.Stat(written); err != nil {
				t.Errorf("the write did not land in the writable layer: %v", err)
			}
			for _, l := range layers {
				if _, err := os.Stat(filepath.Join(l, "written")); err == nil {
					t.Errorf("the write landed in a shared layer")
				}
			}
		})
	}
}

func TestSpecCheck(t *testing.T) {
	good := func() *Spec {
		return &Spec{RootDir: t.TempDir(), Mounts: []mounts.Mount{{Type: mounts.Overlay, Target: "/"}}, Network: NetworkHost,
			Process: Process{Args: []string{"sh"}, Cwd: "/"}}
	}
	tests := []struct {
		name   string
		modify func(*Spec)
		want   string
	}{
		{"valid", func(*Spec) {}, ""},
		{"relative root", func(s *Spec) { s.RootDir = "root" }, "not an absolute path"},
		{"no command", func(s *Spec) { s.Process.Args = nil }, "no command"},
		{"relative cwd", func(s *Spec) { s.Process.Cwd = "src" }, "not an absolute path"},
		{"no mounts", func(s *Spec) { s.Mounts = nil }, "no mounts"},
		{"unmapped uid", func(s *Spec) { s.Process.UID = uint32(os.Getuid()) + 1 }, "single-uid mode"},
		{"network", func(s *Spec) { s.Network = "bridge" }, "unknown network mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			tt.modify(s)
			err := s.check()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("check() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tool"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o644)
	env := []string{"PATH=/nonexistent:" + dir}
	if p, _, err := lookPath("tool", env); err != nil || p != filepath.Join(dir, "tool") {
		t.Errorf("lookPath(tool) = %q, %v", p, err)
	}
	if _, code, err := lookPath("data", env); err == nil || code != 127 {
		t.Errorf("lookPath(data) = %d, %v; want 127 and an error", code, err)
	}
	if p, _, err := lookPath("./x/y", env); err != nil || p != "./x/y" {
		t.Errorf("a path with a slash is used as is, got %q, %v", p, err)
	}
}

// TestNoDescriptorLeaks: the command gets its standard streams and nothing
// else of devbox's or pid 1's (CVE-2024-21626 was a host directory
// descriptor leaked into a container).
func TestNoDescriptorLeaks(t *testing.T) {
	layer := busyboxLayer(t)
	// "; true" keeps sh from replacing itself with ls, whose own
	// descriptor on the directory it lists would show.
	spec := sandbox(t, []string{layer}, "sh", "-c", "ls /proc/$$/fd; true")
	code, out, errOut := run(t, spec)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if fds := strings.Fields(out); !slices.Equal(fds, []string{"0", "1", "2"}) {
		t.Errorf("the command's descriptors are %v, want 0 1 2", fds)
	}
}

// TestSignalBeforeRun: devbox catches the forwarded signals from Start on,
// but until Run they do what they would without a handler. SIGINT and
// SIGHUP end devbox, and pid 1 with it; SIGTERM is left to the caller
// (devbox cancels what it is doing), so the process lives on.
func TestSignalBeforeRun(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		sig  string
		dies syscall.Signal
	}{{"INT", unix.SIGINT}, {"HUP", unix.SIGHUP}, {"TERM", 0}} {
		t.Run(tt.sig, func(t *testing.T) {
			cmd := exec.Command(self, "-test.run", "^$")
			cmd.Env = append(os.Environ(), "ROOTLESS_TEST_SIGNAL_BEFORE_RUN="+tt.sig)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			pid, perr := strconv.Atoi(strings.TrimSpace(string(out)))
			if perr != nil {
				t.Fatalf("helper printed %q: %v; %s", out, err, stderr.String())
			}
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if tt.dies != 0 && (!ws.Signaled() || ws.Signal() != tt.dies) {
				t.Errorf("SIG%s before Run: helper ended with %v, want killed by %v; %s", tt.sig, ws, tt.dies, stderr.String())
			}
			if tt.dies == 0 && err != nil {
				t.Errorf("SIG%s before Run: helper ended with %v, want it to live on; %s", tt.sig, err, stderr.String())
			}
			// pid 1 goes with devbox (its parent-death signal) or with
			// Close: within seconds either way.
			deadline := time.Now().Add(10 * time.Second)
			for unix.Kill(pid, 0) == nil {
				if time.Now().After(deadline) {
					t.Fatalf("pid 1 (%d) outlived the helper", pid)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestJoin: a sandbox with Share runs the commands that join it in its
// own namespaces, each with its own streams, identity and status, and
// ends them with itself; one with another view is refused.
func TestJoin(t *testing.T) {
	layer := busyboxLayer(t)
	owner := sandbox(t, []string{layer}, "sh", "-c", "echo owned > /tmp/x; echo $$ > /tmp/owner-pid; read line; sleep 60 & echo $! > left")
	feed, ownerDone := runShared(t, owner)
	join := func(t *testing.T, uid uint32, args ...string) (int, string, error) {
		t.Helper()
		spec := *owner
		spec.Share = ""
		spec.Process.Args, spec.Process.UID, spec.Process.GID = args, uid, uint32(os.Getgid())
		if uid == 0 {
			spec.Process.GID, spec.Process.RootEmulation = 0, true
		}
		return joinCaptured(t, owner.Share, &spec)
	}
	user := uint32(os.Getuid())

	t.Run("shares the sandbox", func(t *testing.T) {
		// The owner's /tmp and its pid namespace, where the owner's shell
		// is a sibling of this one.
		code, out, err := join(t, user, "sh", "-c", "until [ -e /tmp/x ]; do sleep 0.01; done; cat /tmp/x; test -d /proc/$(cat /tmp/owner-pid) && echo sees-owner; id -u")
		if err != nil || code != 0 || out != fmt.Sprintf("owned\nsees-owner\n%d\n", user) {
			t.Errorf("Join = %d, %v, output %q", code, err, out)
		}
	})
	t.Run("status", func(t *testing.T) {
		if code, out, err := join(t, user, "sh", "-c", "exit 9"); err != nil || code != 9 {
			t.Errorf("Join = %d, %v (%s); want 9", code, err, out)
		}
		if code, out, err := join(t, user, "no-such-command"); err != nil || code != 127 || !strings.Contains(out, "command not found") {
			t.Errorf("Join = %d, %v (%s); want 127 and why", code, err, out)
		}
	})
	t.Run("root with root emulation", func(t *testing.T) {
		// The owner runs as the user: without the emulation this chown
		// to an unmapped id fails.
		code, out, err := join(t, 0, "sh", "-c", "touch /tmp/r && chown 5:5 /tmp/r && id -u")
		if err != nil || code != 0 || out != "0\n" {
			t.Errorf("Join as root = %d, %v, output %q", code, err, out)
		}
	})
	t.Run("leftovers end with the joined command", func(t *testing.T) {
		if code, out, err := join(t, user, "sh", "-c", "sleep 60 & echo $! > /tmp/left"); err != nil || code != 0 {
			t.Fatalf("Join = %d, %v (%s)", code, err, out)
		}
		code, out, err := join(t, user, "sh", "-c", "if [ -d /proc/$(cat /tmp/left) ]; then echo alive; fi")
		if err != nil || code != 0 || out != "" {
			t.Errorf("the background sleep of an ended joined command: %q (%d, %v), want it gone", out, code, err)
		}
	})
	t.Run("another view is refused", func(t *testing.T) {
		spec := *owner
		spec.Mounts = append(slices.Clone(owner.Mounts), mounts.Mount{Type: mounts.Tmpfs, Target: "/data"})
		spec.Process.Args = []string{"touch", "/tmp/refused-ran"}
		_, _, err := joinCaptured(t, owner.Share, &spec)
		var nj *NotJoinableError
		if !errors.As(err, &nj) || !strings.Contains(err.Error(), "mounts differ") {
			t.Errorf("Join with another mount: %v, want a NotJoinableError", err)
		}
		if code, _, _ := join(t, user, "test", "-e", "/tmp/refused-ran"); code == 0 {
			t.Error("the refused command ran")
		}
	})
	t.Run("the sandbox waits for joined commands", func(t *testing.T) {
		// The owner leaves a sleep behind and exits while a joined command
		// runs: the sleep goes, the joined command stays, and the owner's
		// Run returns once it ends.
		joined := make(chan string, 1)
		go func() {
			code, out, err := join(t, user, "sh", "-c", "touch joined; until [ -e release ]; do sleep 0.01; done; "+
				"if [ -d /proc/$(cat left) ]; then echo left-alive; else echo left-gone; fi")
			joined <- fmt.Sprintf("%d %v %s", code, err, out)
		}()
		waitForFile(t, filepath.Join(owner.Process.Cwd, "joined"))
		io.WriteString(feed, "leave\n")
		feed.Close()
		waitForFile(t, filepath.Join(owner.Process.Cwd, "left"))
		select {
		case r := <-ownerDone:
			t.Fatalf("the owner's Run returned (%d, %v) while a joined command ran", r.code, r.err)
		case <-time.After(300 * time.Millisecond):
		}
		// The sandbox still runs: another command may join it.
		if code, out, err := join(t, user, "test", "-e", "joined"); code != 0 || err != nil {
			t.Errorf("a join after the first command ended: %d, %v (%s)", code, err, out)
		}
		if err := os.WriteFile(filepath.Join(owner.Process.Cwd, "release"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if got := <-joined; got != "0 <nil> left-gone\n" {
			t.Errorf("the joined command: %q, want status 0 and the owner's sleep gone", got)
		}
		select {
		case r := <-ownerDone:
			if r.code != 0 || r.err != nil {
				t.Errorf("the owner's Run: %d, %v", r.code, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the owner's Run did not return after the last joined command")
		}
		if _, _, err := join(t, user, "true"); !errors.As(err, new(*NotJoinableError)) {
			t.Errorf("Join after the sandbox ended: %v, want a NotJoinableError", err)
		}
	})
}

// waitForFile waits up to ten seconds for path to exist.
func waitForFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
	}
}

func TestJoinable(t *testing.T) {
	owner := &Spec{
		RootDir: "/s/root", Network: NetworkHost, Userns: UsernsSingle,
		Mounts: []mounts.Mount{
			{Type: mounts.Overlay, Target: "/", Lower: []string{"/l/a"}, Upper: "/s/upper", Work: "/s/work"},
			{Type: mounts.Bind, Source: "/s/home", Target: "/home/u"},
			{Type: mounts.Bind, Source: "/h/.gitconfig", Target: "/home/u/.gitconfig", ReadOnly: true},
			{Type: mounts.Bind, Source: "/p", Target: "/p"},
		},
		Process: Process{Args: []string{"true"}, Cwd: "/p", UID: 1000, GID: 1000},
		User:    User{Name: "u", Home: "/home/u"},
	}
	root := func(s *Spec) {
		s.Process.UID, s.Process.GID, s.Process.RootEmulation = 0, 0, true
		s.User = User{Name: "root", Home: "/root"}
		s.Mounts = []mounts.Mount{owner.Mounts[0],
			{Type: mounts.Bind, Source: "/s/home", Target: "/root"},
			{Type: mounts.Bind, Source: "/h/.gitconfig", Target: "/root/.gitconfig", ReadOnly: true},
			owner.Mounts[3]}
	}
	for _, tt := range []struct {
		name   string
		change func(owner, spec *Spec)
		want   string // in the error; "" for joinable
	}{
		{"the same", func(_, _ *Spec) {}, ""},
		{"root joins the user", func(_, s *Spec) { root(s) }, ""},
		{"the user joins root", func(o, _ *Spec) { root(o) }, "runs as root"},
		{"another network", func(_, s *Spec) { s.Network = NetworkNone }, "network"},
		{"another layer", func(_, s *Spec) { s.Mounts[0].Lower = []string{"/l/b"} }, "mounts differ"},
		{"no command", func(_, s *Spec) { s.Process.Args = nil }, "needs a command"},
		{"a relative working directory", func(_, s *Spec) { s.Process.Cwd = "p" }, "absolute working directory"},
		{"a mount more", func(_, s *Spec) {
			s.Mounts = append(s.Mounts, mounts.Mount{Type: mounts.Bind, Source: "/d", Target: "/data"})
		}, "mounts differ"},
		// A devbox upgraded while the sandbox runs has another pid 1
		// program, which its sudo mount names; a devbox before sudo had none.
		{"another devbox's sudo", func(o, s *Spec) {
			o.Mounts = append(o.Mounts, mounts.Mount{Type: mounts.Bind, Source: "/c/devbox-init-1", Target: sudoPath, ReadOnly: true})
			s.Mounts = append(s.Mounts, mounts.Mount{Type: mounts.Bind, Source: "/c/devbox-init-2", Target: sudoPath, ReadOnly: true})
		}, ""},
		{"a devbox without sudo", func(_, s *Spec) {
			s.Mounts = append(s.Mounts, mounts.Mount{Type: mounts.Bind, Source: "/c/devbox-init-2", Target: sudoPath, ReadOnly: true})
		}, ""},
		// The terminal that joins has an SSH agent; the sandbox's had none.
		{"an SSH agent", func(_, s *Spec) {
			s.Mounts = append(s.Mounts, mounts.Mount{Type: mounts.Bind, Source: "/tmp/ssh-x/agent.1", Target: HostServices + "/ssh-auth.sock"})
		}, ""},
		{"a mount named like a service's directory", func(_, s *Spec) {
			s.Mounts = append(s.Mounts, mounts.Mount{Type: mounts.Bind, Source: "/d", Target: HostServices + "-data"})
		}, "mounts differ"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, s := *owner, *owner
			o.Mounts, s.Mounts = slices.Clone(owner.Mounts), slices.Clone(owner.Mounts)
			tt.change(&o, &s)
			err := joinable(&o, &s)
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("joinable = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestJoinWhileStarting: with nothing at the socket yet, Join waits while
// the sandbox runs, and gives up at once, saying it ended, once it does
// not.
func TestJoinWhileStarting(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "sandbox.sock")
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	spec := &Spec{Process: Process{Args: []string{"true"}}}
	asked := 0
	_, err := Join(context.Background(), socket, spec, IO{In: null, Out: null, Err: null}, func() bool { asked++; return false })
	var nj *NotJoinableError
	if !errors.As(err, &nj) || !nj.Ended || asked != 1 {
		t.Errorf("Join once the sandbox is gone: %v (asked %d times), want an ended NotJoinableError at the first ask", err, asked)
	}
	asked = 0
	_, err = Join(context.Background(), socket, spec, IO{In: null, Out: null, Err: null}, func() bool { asked++; return true })
	if !errors.As(err, &nj) || nj.Ended || asked < 10 {
		t.Errorf("Join while a sandbox that never answers runs: %v (asked %d times), want a NotJoinableError, not ended, after waiting", err, asked)
	}
}
