package rootless

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/devboxhq/devbox/mounts"
	"golang.org/x/sys/unix"
)

// The file descriptors Run passes to the sandbox's pid 1.
const (
	fdSpec = 3 // the Spec (from the front: the record it checked)
	fdSync = 4 // messages to the parent
	fdPty  = 5 // a socket to send the terminal's master side over
)

// IsInit reports whether this process is a sandbox's pid 1 (or a probe of
// 'devbox doctor'), re-executed by Run. main checks it first and calls
// Init instead of the CLI.
func IsInit() bool { return os.Getenv(initEnv) != "" }

// Init is the sandbox's pid 1. It sets the sandbox up, runs the command,
// reaps every process, and returns the command's exit status for main to
// exit with.
func Init() int {
	kind := os.Getenv(initEnv)
	switch kind {
	case "1", frontStage:
	case stageAwaitIDMap:
		return awaitIDMap()
	default:
		return runProbe(kind)
	}
	os.Unsetenv(initEnv)
	// The set-up below changes per-thread state (no_new_privs) that the
	// command must inherit: keep it all on one thread.
	runtime.LockOSThread()
	// Handle the signals pid 1 forwards before the command starts: the
	// parent passes a signal on as soon as it has, and without a handler
	// the Go runtime would end pid 1, and the sandbox with it. The first
	// signal.Notify starts a thread and waits for it (most of a
	// millisecond), so it runs beside the set-up.
	sigs := make(chan os.Signal, 16)
	handled := make(chan struct{})
	go func() {
		signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH, unix.SIGIO)
		close(handled)
	}()
	syncPipe := os.NewFile(fdSync, "sync")
	fail := func(err error) int {
		sendMessage(syncPipe, message{Type: msgSetupError, Error: err.Error()})
		return 1
	}
	var spec *Spec
	// The project's locks of a pid 1 the front started, held until the
	// sandbox's last process is gone: the front returns then, and so
	// does the CLI with the locks it holds (while the kernel tears the
	// namespaces down).
	var held []func()
	exited := func(status int) {
		for _, release := range held {
			release()
		}
		sendMessage(syncPipe, message{Type: msgExited, Status: status})
	}
	// The pid of the command, when the front set the sandbox up,
	// started it and reaped for it, until a joiner or sudo came
	// (internal/front/c: sandbox.h, and the reaper in front.c).
	frontCommand := 0
	if kind == frontStage {
		// Whatever stands in the way, the CLI runs the command instead,
		// and says what went wrong where something did.
		var err error
		if spec, held, err = frontSpec(os.Args[1:]); err != nil {
			sendMessage(syncPipe, message{Type: msgFallback, Error: err.Error()})
			return 0
		}
		fail = func(err error) int {
			sendMessage(syncPipe, message{Type: msgFallback, Error: err.Error()})
			return 0
		}
		frontCommand, _ = strconv.Atoi(os.Getenv(frontCommandEnv))
		os.Unsetenv(frontCommandEnv)
	} else {
		spec = new(Spec)
		specFile := os.NewFile(fdSpec, "spec")
		data, err := io.ReadAll(specFile)
		if err == nil {
			err = spec.UnmarshalBinary(data)
		}
		if err != nil {
			return fail(fmt.Errorf("read spec: %w", err))
		}
		specFile.Close()
	}
	var pid int
	var stdio []*os.File
	shareDir := -1
	if frontCommand > 0 {
		// The front set the sandbox up and runs the command, which a
		// joiner or sudo now comes to: serving them is this program's.
		pid, stdio = frontCommand, []*os.File{os.Stdin, os.Stdout, os.Stderr}
		if err := setupProcess(spec); err != nil {
			return fail(err)
		}
		<-handled
	} else {
		// The directory of the joiners' socket, opened while the host's
		// is at hand; the socket is made once the command runs, off its
		// way.
		if spec.Share != "" {
			var err error
			if shareDir, err = unix.Open(filepath.Dir(spec.Share), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
				return fail(&os.PathError{Op: "open", Path: filepath.Dir(spec.Share), Err: err})
			}
		}
		if err := setupView(spec); err != nil {
			return fail(err)
		}
		if err := setupProcess(spec); err != nil {
			return fail(err)
		}
		var err error
		if stdio, err = openStdio(spec); err != nil {
			return fail(err)
		}
		<-handled
		var status int
		pid, status, err = startCommand(spec, stdio, false)
		if err != nil && status != 0 {
			// The command could not be executed: say why on its stderr,
			// and exit as a shell would (127 not found, 126 not
			// executable).
			fmt.Fprintf(stdio[2], "devbox: %v\n", err)
			sendMessage(syncPipe, message{Type: msgStarted})
			exited(status)
			return status
		}
		if err != nil {
			return fail(err)
		}
	}
	sendMessage(syncPipe, message{Type: msgStarted})
	for _, f := range stdio {
		f.Close()
	}
	j := newJoined(spec)
	switch {
	case frontCommand > 0:
		j.adopt(validFd(fdJoinListener), validFd(fdSudoListener))
	case shareDir >= 0 || spec.Sudo:
		go j.serve(shareDir, filepath.Base(spec.Share), spec.Sudo)
	}
	status := reap(pid, sigs, j, func(n int) {
		sendMessage(syncPipe, message{Type: msgWaiting, Status: n})
	})
	// Everything in the sandbox is gone: the parent may return now, while
	// the kernel tears the namespaces down as this process exits.
	exited(status)
	return status
}

// setupView builds the sandbox's filesystem and names, in this order.
// The front's sandbox.h does the same for a plain run.
func setupView(spec *Spec) error {
	// Private propagation before the first mount: nothing mounted below may
	// propagate to the host's mount namespace, and no host mount event may
	// reach into the sandbox.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return &os.SyscallError{Syscall: "mount / rprivate", Err: err}
	}
	// The host's /etc/hosts, read while it is at hand: on the host's
	// network, the sandbox's is a copy with its own host name added.
	var hostHosts []byte
	if spec.Network == NetworkHost {
		hostHosts = readFile("/etc/hosts")
	}
	// The root filesystem and the view on it. Every target is resolved
	// inside the new root, so a hostile image cannot redirect a mount onto
	// a host path through a symlink.
	if err := mounts.Apply(spec.RootDir, spec.Mounts); err != nil {
		return err
	}
	if err := pivotRoot(spec.RootDir); err != nil {
		return err
	}
	if err := unix.Chdir(spec.Process.Cwd); err != nil {
		return &os.PathError{Op: "chdir", Path: spec.Process.Cwd, Err: err}
	}
	if err := unix.Sethostname([]byte(spec.hostname())); err != nil {
		return &os.SyscallError{Syscall: "sethostname", Err: err}
	}
	if spec.Network != NetworkHost {
		if err := configureOwnNetwork(); err != nil {
			return err
		}
	}
	if err := writeEtcFiles(etcFiles(spec, hostHosts)); err != nil {
		return fmt.Errorf("write /etc files: %w", err)
	}
	return nil
}

// validFd is fd when it is open, else -1.
func validFd(fd int) int {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return -1
	}
	return fd
}

// setupProcess sets up pid 1 itself, which forks the command and the
// commands that join, once the sandbox's view is in place.
func setupProcess(spec *Spec) error {
	// no_new_privs: nothing the command executes can gain privileges
	// through setuid bits or file capabilities. Set last, on this locked
	// thread, which is the one that forks the command.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return &os.SyscallError{Syscall: "prctl(PR_SET_NO_NEW_PRIVS)", Err: err}
	}
	// Root emulation comes after no_new_privs, which an unprivileged
	// seccomp filter requires, and also on this thread.
	if spec.Process.RootEmulation && spec.Process.UID == 0 {
		if err := installRootEmulation(); err != nil {
			return err
		}
	}
	// Close-on-exec for every inherited descriptor beyond the ones pid 1
	// still uses, so that no host file or directory leaks into the command
	// (CVE-2024-21626 was a leaked host directory descriptor in runc).
	return closeExecFrom(3)
}

// pivotRoot makes root the sandbox's "/" and detaches the host's root, so
// that no host path is reachable from inside any more.
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return &os.PathError{Op: "chdir", Path: root, Err: err}
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return &os.PathError{Op: "pivot_root", Path: root, Err: err}
	}
	// The old root is stacked under the new one at ".". Make it a slave so
	// that our unmount cannot propagate anywhere, then detach it.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return &os.SyscallError{Syscall: "mount old root rslave", Err: err}
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "umount old root", Path: root, Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}

// configureOwnNetwork sets up the sandbox's own network namespace from
// inside: loopback up, and every port bindable by the user (the namespace
// is the sandbox's alone, so a server inside may listen on port 80 as in a
// container).
func configureOwnNetwork() error {
	if err := loopbackUp(); err != nil {
		return err
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_unprivileged_port_start", []byte("0"), 0); err != nil {
		return fmt.Errorf("allow unprivileged ports: %w", err)
	}
	return nil
}

// loopbackUp brings up "lo" in the sandbox's own network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return &os.SyscallError{Syscall: "socket", Err: err}
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_UP | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return &os.SyscallError{Syscall: "ioctl(SIOCSIFFLAGS lo)", Err: err}
	}
	return nil
}

// closeExecFrom marks every open descriptor >= from close-on-exec: with
// one close_range(2) where the kernel has it (Linux 5.11), else one by one
// from /proc/self/fd.
func closeExecFrom(from int) error {
	if unix.CloseRange(uint(from), ^uint(0), unix.CLOSE_RANGE_CLOEXEC) == nil {
		return nil
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		var fd int
		if _, err := fmt.Sscanf(e.Name(), "%d", &fd); err != nil || fd < from {
			continue
		}
		unix.CloseOnExec(fd)
	}
	return nil
}

// startCommand starts the command as the child of pid 1, with no
// capabilities. In single mode pid 1 is the user (sysProcAttr): a command
// that runs as the user is pid 1's child in the same namespace, with pid
// 1's ambient capabilities dropped; root inside (setup steps, --root) gets
// a nested user namespace that maps root to the user, and is root of that
// one only. In a subuid sandbox pid 1 is root and a user's command gets a
// nested namespace that maps every id to one of pid 1's. It returns pid 0
// and the shell's status when the command cannot be executed, with an
// error saying why. newSession starts the command in a session of its own,
// as a joined command is.
func startCommand(spec *Spec, stdio []*os.File, newSession bool) (int, int, error) {
	p := spec.Process
	path, status, err := lookPath(p.Args[0], p.Env)
	if err != nil {
		return 0, status, err
	}
	attr := &syscall.SysProcAttr{Setsid: newSession}
	if p.Terminal {
		// The command leads a new session whose controlling terminal is
		// the sandbox's pty, so job control works inside.
		attr.Setsid, attr.Setctty, attr.Ctty = true, true, 0
	}
	switch {
	case spec.Userns == UsernsSubuid && (p.UID != 0 || p.GID != 0):
		attr.Cloneflags = unix.CLONE_NEWUSER
		attr.UidMappings = sysProcIDMaps(innerRanges(int(p.UID), spec.UIDMapSize))
		attr.GidMappings = sysProcIDMaps(innerRanges(int(p.GID), spec.GIDMapSize))
		attr.GidMappingsEnableSetgroups = true
	case spec.Userns == UsernsSubuid:
		// Root of a subuid sandbox: every id is mapped, nothing to emulate.
	case int(p.UID) != os.Getuid() || int(p.GID) != os.Getgid():
		attr.Cloneflags = unix.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: int(p.UID), HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: int(p.GID), HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	if err := dropInheritable(); err != nil {
		return 0, 0, err
	}
	fds := make([]uintptr, len(stdio))
	for i, f := range stdio {
		fds[i] = f.Fd()
	}
	pid, err := syscall.ForkExec(path, p.Args, &syscall.ProcAttr{Dir: p.Cwd, Env: p.Env, Files: fds, Sys: attr})
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENOEXEC) {
			return 0, 126, fmt.Errorf("%s: cannot execute: %v", p.Args[0], err)
		}
		if errors.Is(err, unix.ENOENT) {
			return 0, 127, fmt.Errorf("%s: cannot execute: %v (a missing interpreter or loader?)", p.Args[0], err)
		}
		return 0, 0, fmt.Errorf("start %s: %w", p.Args[0], err)
	}
	return pid, 0, nil
}

// dropInheritable empties the inheritable and ambient capability sets of
// this thread, which forks the command: pid 1 was started with every
// capability ambient (sysProcAttr), and none of that may reach the
// command. Its permitted and effective sets stay.
func dropInheritable() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return &os.SyscallError{Syscall: "capget", Err: err}
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	// Lowering the inheritable set clears the ambient one with it.
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return &os.SyscallError{Syscall: "capset", Err: err}
	}
	return nil
}

// lookPath finds name in the PATH of env, as a shell would.
func lookPath(name string, env []string) (string, int, error) {
	if strings.Contains(name, "/") {
		return name, 0, nil
	}
	pathEnv := DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, 0, nil
		}
	}
	return "", 127, fmt.Errorf("%s: command not found in the sandbox (PATH=%s)", name, pathEnv)
}

// reap is pid 1's loop: it forwards signals to the command, reaps every
// process that exits (orphans are re-parented to pid 1) and hands joined
// commands' statuses to j. When the command itself exits, it kills what
// is left in the sandbox, or while joined commands run, what the command
// left: it says so with waiting and waits for them. It returns the
// command's status. The goroutine that forwards signals, and accepts
// joiners on SIGIO, is left running: pid 1 exits right after, and
// signal.Stop would wait for the signal loop.
func reap(pid int, sigs chan os.Signal, j *joined, waiting func(n int)) int {
	go func() {
		for s := range sigs {
			switch {
			case s == unix.SIGIO:
				j.acceptAll()
			case j.stopping(s):
				j.killAll()
			default:
				unix.Kill(pid, s.(syscall.Signal))
			}
		}
	}()
	status := -1
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil { // ECHILD: nothing is left
			break
		}
		s := -1
		switch {
		case ws.Exited():
			s = ws.ExitStatus()
		case ws.Signaled():
			s = 128 + int(ws.Signal())
		}
		if wpid != pid {
			if j.exited(wpid, s) {
				j.killAll()
			}
			continue
		}
		status = s
		// Nothing the command started may outlive it, nor the sandbox its
		// last command.
		if sessions, pending := j.firstExit(); len(sessions)+pending > 0 {
			killOutside(sessions)
			waiting(len(sessions) + pending)
		} else {
			j.killAll()
		}
	}
	j.wait()
	return status
}
