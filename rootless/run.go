package rootless

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/devboxhq/devbox/rootless/network"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// initEnv marks the re-executed devbox binary as a sandbox's pid 1.
const initEnv = "_DEVBOX_SANDBOX_INIT"

// IO are the standard streams of the sandboxed command.
type IO struct {
	In, Out, Err *os.File
}

// ErrSignaled is the cause (context.Cause) a caller gives a context it
// cancels because devbox received one of the forwarded signals: Run passes
// the signal itself on and does not add a SIGTERM of its own.
var ErrSignaled = errors.New("signal received")

// forwarded are the signals Run passes on to the sandbox; its pid 1 passes
// them on to the command.
var forwarded = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT}

// Launch is what creating a sandbox's pid 1 depends on. The rest of its
// Spec may be worked out while pid 1 starts (Start, then Sandbox.Run).
type Launch struct {
	// Network: NetworkHost keeps the host's network namespace; any other
	// mode gets a namespace of its own.
	Network Network
	Userns  Userns
	// Terminal: the command gets a pty (Process.Terminal).
	Terminal bool
}

// LaunchOf is the Launch that spec needs.
func LaunchOf(spec *Spec) Launch {
	return Launch{Network: spec.Network, Userns: spec.Userns, Terminal: spec.Process.Terminal}
}

// Sandbox is a pid 1 that has been created and waits for its spec.
type Sandbox struct {
	launch       Launch
	init         *initProc
	specW, syncR *os.File
	term         *terminal
	// stdio are the caller's streams, which the command got.
	stdio IO
	// uids and gids are the subuid ranges (userns = "subuid"), nil in
	// single mode.
	uids, gids []IDRange
	used       bool
	// sigs receives the forwarded signals from Start on (catchSignals);
	// caught is closed once it does. forward, set by Run, is the pid 1
	// they go to; stop, closed by Close, ends their handling.
	sigs         chan os.Signal
	caught, stop chan struct{}
	forward      atomic.Pointer[initProc]
	closed       bool
}

// Run starts the sandbox that spec describes, waits for its command and
// returns the command's exit status (128+n when signal n killed it). An
// error means the sandbox could not be set up; the command did not run.
// net connects a sandbox with its own network namespace (nil for the host's
// network); it runs before the sandbox's pid 1 receives its spec, so the
// network is up before anything inside starts.
func Run(ctx context.Context, spec *Spec, stdio IO, net network.ParentDriver) (int, error) {
	sb, err := Start(LaunchOf(spec), stdio)
	if err != nil {
		return 0, err
	}
	defer sb.Close()
	return sb.Run(ctx, spec, net)
}

// Start creates a sandbox's namespaces and its pid 1, which starts up and
// then waits for Sandbox.Run to send the spec; a caller overlaps that
// start-up with the work that yields the spec. Close releases a sandbox
// whose Run was never called.
func Start(l Launch, stdio IO) (_ *Sandbox, err error) {
	sb := &Sandbox{launch: l, stdio: stdio}
	defer func() {
		if err != nil {
			sb.Close()
		}
	}()
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer specR.Close()
	sb.specW = specW
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer syncW.Close()
	sb.syncR = syncR

	if l.Userns == UsernsSubuid {
		if sb.uids, sb.gids, err = subuidMaps(); err != nil {
			return nil, err
		}
	}
	// An unprivileged user's subuid maps are written by newuidmap after the
	// clone; until then pid 1 waits in its first stage.
	helperMaps := l.Userns == UsernsSubuid && os.Getuid() != 0
	if l.Terminal {
		if sb.term, err = newTerminal(stdio); err != nil {
			return nil, err
		}
	}
	// Registered while pid 1 starts: see catchSignals.
	sb.catchSignals()
	prog := initExecutable()
	p, err := sb.startInit(prog, l, stdio, specR, syncW, helperMaps)
	if err != nil && prog != selfExe {
		// The init program's copy went away or cannot be executed: this
		// executable can be pid 1 as well.
		p, err = sb.startInit(selfExe, l, stdio, specR, syncW, helperMaps)
	}
	if err != nil {
		return nil, startError(err)
	}
	sb.init = p
	if sb.term != nil {
		sb.term.childSock.Close()
	}
	if helperMaps {
		err := writeIDMaps(p.pid, sb.uids, sb.gids)
		if err == nil {
			_, err = specW.Write([]byte(idmapDone))
		}
		if err != nil {
			return nil, fmt.Errorf("userns = \"subuid\": %w", err)
		}
	}
	return sb, nil
}

// startInit starts pid 1 from the program prog.
func (sb *Sandbox) startInit(prog string, l Launch, stdio IO, specR, syncW *os.File, helperMaps bool) (*initProc, error) {
	// pid 1 works on one thread (it locks it for the set-up), but it gets
	// two Ps: with one, the Go runtime's sysmon takes the P from a thread
	// that has been in a system call for over 20 µs, as most mounts are,
	// hands it to another thread, and the set-up's thread waits to get it
	// back when the mount returns. While the other P is idle, sysmon leaves
	// the P alone (runtime.retake). Measured: up to 0.2 ms less per run
	// than with one P, and the default, one P per core, would start more
	// threads on a large machine for nothing.
	stage := "1"
	if helperMaps {
		stage = stageAwaitIDMap
	}
	env := []string{initEnv + "=" + stage, "GOMAXPROCS=2"}
	files := []*os.File{stdio.In, stdio.Out, stdio.Err, specR, syncW}
	if sb.term != nil {
		files = append(files, sb.term.childSock)
	}
	return startInit(prog, []string{"devbox-init"}, env, files, sysProcAttr(l, sb.uids, sb.gids, helperMaps))
}

// catchSignals registers sigs for the forwarded signals and handles them
// until Close, on a goroutine of its own. The registration costs a round
// trip to the Go runtime's signal-mask thread per signal, about a quarter
// of a millisecond in all, and Start's caller need not wait for it: Run
// does, before pid 1 can start the command. Once Run has set forward, a
// signal goes to pid 1. Before, it does what it would do without a
// handler: SIGTERM is left to the caller (devbox cancels what it is
// doing), and the others end devbox, and pid 1 with it.
func (sb *Sandbox) catchSignals() {
	sb.sigs = make(chan os.Signal, 8)
	sb.caught, sb.stop = make(chan struct{}), make(chan struct{})
	go func() {
		signal.Notify(sb.sigs, forwarded...)
		close(sb.caught)
		for {
			select {
			case <-sb.stop:
				return
			case s := <-sb.sigs:
				switch p := sb.forward.Load(); {
				case p != nil:
					p.signal(s.(syscall.Signal))
				case s != unix.SIGTERM:
					signal.Reset(s)
					unix.Kill(unix.Getpid(), s.(syscall.Signal))
				}
			}
		}
	}()
}

// Close releases the sandbox. Before Run, it ends pid 1, which has not
// started anything yet.
func (sb *Sandbox) Close() {
	if sb.closed {
		return
	}
	sb.closed = true
	if sb.stop != nil {
		close(sb.stop)
		// signal.Stop waits for the signal loop to go idle (up to a
		// quarter of a millisecond): not on the way out of devbox.
		go signal.Stop(sb.sigs)
	}
	if sb.init != nil && !sb.used {
		sb.init.kill()
	}
	if sb.term != nil {
		sb.term.close()
	}
	if sb.specW != nil {
		sb.specW.Close()
	}
	if sb.syncR != nil {
		sb.syncR.Close()
	}
}

// Run sends spec to the sandbox's pid 1, which sets the sandbox up and runs
// the command, and returns as the package-level Run does. A Sandbox runs
// once.
func (sb *Sandbox) Run(ctx context.Context, spec *Spec, net network.ParentDriver) (int, error) {
	if sb.used {
		return 0, errors.New("a sandbox runs one command")
	}
	if err := spec.check(); err != nil {
		return 0, err
	}
	if LaunchOf(spec) != sb.launch {
		return 0, fmt.Errorf("the sandbox was started for %+v, not for this spec (%+v)", sb.launch, LaunchOf(spec))
	}
	if (spec.Network == NetworkHost) != (net == nil) {
		return 0, fmt.Errorf("network mode %q and the network driver do not go together", spec.Network)
	}
	sb.used = true
	p := sb.init
	fail := func(err error) (int, error) {
		p.kill()
		return 0, err
	}
	if net != nil {
		withDNS := *spec
		withDNS.DNS = net.DNS()
		spec = &withDNS
	}
	if sb.uids != nil {
		sized := *spec
		sized.UIDMapSize, sized.GIDMapSize = mapSize(sb.uids), mapSize(sb.gids)
		spec = &sized
	}
	if net != nil {
		cleanup, err := net.ConfigureNetwork(p.pid)
		if err != nil {
			return fail(fmt.Errorf("network: %w", err))
		}
		defer cleanup()
	}
	// The forwarded signals are caught before the command can start: one
	// that arrives while it starts is passed on to pid 1, which handles
	// signals before it starts the command, rather than killing devbox
	// and leaving the command orphaned.
	<-sb.caught
	sb.forward.Store(p)
	data, err := spec.MarshalBinary()
	if err == nil {
		_, err = sb.specW.Write(data)
	}
	sb.specW.Close()
	if err != nil {
		return fail(fmt.Errorf("send spec to sandbox: %w", err))
	}
	if sb.term != nil {
		if err := sb.term.start(); err != nil {
			return fail(err)
		}
	}
	msgs := bufio.NewReader(sb.syncR)
	if err := waitStarted(msgs); err != nil {
		<-p.done
		return 0, err
	}
	exited, waiting := make(chan int, 1), make(chan int, 1)
	go func() {
		for {
			m, err := readMessage(msgs)
			if err != nil {
				return
			}
			switch m.Type {
			case msgWaiting:
				waiting <- m.Status
			case msgExited:
				exited <- m.Status
				return
			}
		}
	}()

	returned := make(chan struct{})
	defer close(returned)
	go func() {
		select {
		case <-returned:
		case <-ctx.Done():
			// A signal that cancelled ctx reaches pid 1 through sigs.
			if !errors.Is(context.Cause(ctx), ErrSignaled) {
				p.signal(unix.SIGTERM)
			}
		}
	}()

	var notice <-chan time.Time
	waitingFor := 0
	for {
		select {
		case waitingFor = <-waiting:
			// The command has exited; commands that joined the sandbox
			// still run. The terminal is the caller's again, so that a
			// Ctrl-C there reaches devbox, and through pid 1 ends them;
			// the other streams are let go, for a joined command may be
			// the other end of a pipe (devbox run -- a | devbox run -- b)
			// and wait for its end. A wait that lasts is said.
			if sb.term != nil {
				sb.term.drain()
				sb.term.restore()
			}
			sb.releaseStreams()
			notice = time.After(500 * time.Millisecond)
		case <-notice:
			if term.IsTerminal(int(sb.stdio.Err.Fd())) {
				fmt.Fprintf(sb.stdio.Err, "devbox: waiting for the %d other command(s) in this sandbox, which joined it; Ctrl-C stops them\n", waitingFor)
			}
		case status := <-exited:
			// pid 1 has reaped every process of the sandbox; what is left is
			// the kernel tearing its namespaces down, which need not delay the
			// caller. The goroutine above still reaps pid 1.
			if sb.term != nil {
				sb.term.drain()
			}
			return status, nil
		case <-p.done:
			if sb.term != nil {
				sb.term.drain()
			}
			return exitStatus(p.status, p.err)
		}
	}
}

// sysProcAttr creates the sandbox's namespaces in one clone(2). In single
// mode the uid and gid maps are written by the Go runtime before the child
// runs any code. They map the user's own ids to themselves and nothing
// else of the host: pid 1 is the user inside, and keeps the namespace's
// capabilities (to mount, pivot and name the host) across its exec as
// ambient ones. It drops them before it starts the command, which is
// then the user with no capabilities, in pid 1's namespace: a command
// that only forks (no user namespace of its own) starts sooner. A subuid
// sandbox gets its full range here only when devbox runs as real root;
// otherwise helperMaps says newuidmap writes it after the clone.
func sysProcAttr(l Launch, uids, gids []IDRange, helperMaps bool) *syscall.SysProcAttr {
	flags := uintptr(unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if l.Network != NetworkHost {
		flags |= unix.CLONE_NEWNET
	}
	attr := &syscall.SysProcAttr{
		Cloneflags: flags,
		// If devbox dies, pid 1 dies, and with it everything in the sandbox.
		Pdeathsig: unix.SIGKILL,
		// Without a terminal of its own the sandbox gets its own process
		// group, so that a Ctrl-C at the caller's terminal reaches it once,
		// forwarded by Run, rather than directly and forwarded again.
		Setpgid: !l.Terminal,
	}
	switch {
	case helperMaps:
	case uids != nil:
		attr.UidMappings, attr.GidMappings = sysProcIDMaps(uids), sysProcIDMaps(gids)
		attr.GidMappingsEnableSetgroups = true
	default:
		asUser(attr)
	}
	return attr
}

// asUser maps the user's own uid and gid to themselves in attr's new user
// namespace, and keeps the namespace's capabilities across the exec as
// ambient ones: a single-mode pid 1 runs so, and so do doctor's probes.
func asUser(attr *syscall.SysProcAttr) {
	uid, gid := os.Getuid(), os.Getgid()
	attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
	attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
	attr.AmbientCaps = allCapabilities()
}

// allCapabilities lists every capability the kernel knows: pid 1 keeps
// them all, as the root of its namespace would.
func allCapabilities() []uintptr {
	last := unix.CAP_AUDIT_READ // Linux 4.3, which brought ambient capabilities
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
			last = n
		}
	}
	caps := make([]uintptr, last+1)
	for i := range caps {
		caps[i] = uintptr(i)
	}
	return caps
}

// startError explains the usual reasons a sandbox cannot be created.
func startError(err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("create user namespace: %w: unprivileged user namespaces are disabled here; run 'devbox doctor' for the fix", err)
	case errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("create user namespace: %w: the limit user.max_user_namespaces is reached (sysctl user.max_user_namespaces)", err)
	}
	return fmt.Errorf("start sandbox: %w", err)
}

// exitStatus is the command's status as a shell reports it, from pid 1's
// wait status.
func exitStatus(ws unix.WaitStatus, err error) (int, error) {
	if err != nil {
		return 0, fmt.Errorf("wait for the sandbox: %w", err)
	}
	switch {
	case ws.Exited():
		return ws.ExitStatus(), nil
	case ws.Signaled():
		return 128 + int(ws.Signal()), nil
	}
	return 0, fmt.Errorf("sandbox ended in an unexpected state (wait status %#x)", uint32(ws))
}

// releaseStreams points the caller's standard streams that are not a
// terminal at /dev/null, so that devbox no longer holds the pipes they may
// be: a reader of the command's output sees its end, a writer to its
// input gets SIGPIPE.
func (sb *Sandbox) releaseStreams() {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer null.Close()
	for _, f := range []*os.File{sb.stdio.In, sb.stdio.Out, sb.stdio.Err} {
		if f != nil && !term.IsTerminal(int(f.Fd())) {
			unix.Dup3(int(null.Fd()), int(f.Fd()), 0)
		}
	}
}
