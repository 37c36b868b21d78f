package rootless

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/devboxhq/devbox/mounts"
	"golang.org/x/sys/unix"
)

// A sandbox whose Spec has Share runs more commands on request, the way
// `docker exec` does: a second terminal's `devbox shell` or `devbox run`
// joins the project's running sandbox instead of starting one beside it,
// and shares its writable layer, /tmp, processes and sockets. Once the
// first command runs, pid 1 listens on a unix socket at Share, in the
// project's state directory (mode 0700), which it opened before
// pivot_root; only the user who started it may join. The joiner is that
// user, who could start such a sandbox anyway: what it asks to run is
// checked for fitting the sandbox, not for privilege. A joined command:
//
//   - is started by pid 1 on a thread of its own, with no_new_privs and,
//     as root, root emulation, in a session of its own;
//   - gets the joiner's standard streams, passed over the socket, or a
//     pty of the sandbox whose master side goes back the same way;
//   - ends with everything in its session when it exits or when the joiner
//     goes away. The sandbox waits for it when the first command ends
//     first, unless that command's devbox is told to stop.
//
// The conversation on the socket, in sendMessage's frames:
//
//	joiner → pid 1:  one byte carrying its stdin, stdout and stderr
//	                 (SCM_RIGHTS), then the length of its Spec and the Spec
//	pid 1 → joiner:  msgAccepted, or msgNotJoinable and why; for a
//	                 terminal one byte carrying the pty's master; then
//	                 msgStarted (or msgSetupError) and msgExited
//	joiner → pid 1:  msgSignal with a signal's number, at any time

const (
	msgAccepted    msgType = "accepted"
	msgNotJoinable msgType = "not-joinable"
	msgSignal      msgType = "signal"
)

// maxJoinSpec bounds the Spec a joiner may send: its arguments and
// environment, which the kernel bounds at exec too.
const maxJoinSpec = 16 << 20

// NotJoinableError is Join's error when the running sandbox cannot take
// the command: it has ended (Ended), it was started from another
// devbox.toml, or nobody answers at its socket.
type NotJoinableError struct {
	Reason string
	// Ended: the sandbox has ended, or ends; the caller may start one.
	Ended bool
}

func (e *NotJoinableError) Error() string {
	return "the running sandbox cannot be joined: " + e.Reason
}

// ErrSandboxEnded is Join's error when the sandbox ended under the joined
// command: its first command had exited, and a signal to its devbox, a
// Ctrl-C say, stopped what still ran.
var ErrSandboxEnded = errors.New("the sandbox this command joined was stopped from the terminal that started it")

// socketAddr names path by a descriptor of its directory, which keeps the
// address within the 108 bytes of sun_path however deep the state
// directory is. The caller closes dir once connected.
func socketAddr(path string) (addr *unix.SockaddrUnix, dir int, err error) {
	dir, err = unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, -1, &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	return &unix.SockaddrUnix{Name: inDir(dir, filepath.Base(path))}, dir, nil
}

// inDir is the path of name in the directory that the descriptor dir is
// open on.
func inDir(dir int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dir) + "/" + name
}

// listenShare listens for joiners at name in the directory dir. A socket
// there is an earlier sandbox's: the caller holds the project's writable
// layer, so no other sandbox of the project runs.
func listenShare(dir int, name string) (int, error) {
	if err := unix.Unlinkat(dir, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return -1, &os.PathError{Op: "remove", Path: name, Err: err}
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, &os.SyscallError{Syscall: "socket", Err: err}
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: inDir(dir, name)}); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "bind", Path: name, Err: err}
	}
	if err := unix.Listen(fd, 16); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "listen", Path: name, Err: err}
	}
	return fd, nil
}

// joined tracks the commands pid 1 runs for joiners, so that its reaping
// loop can hand each its status. The sandbox lives until the last of its
// commands ends: when the first one exits while joined ones run, what it
// left is killed and pid 1 waits for them.
type joined struct {
	mu     sync.Mutex
	status map[int]chan exit
	// pending counts commands being started: one may exit, and be reaped,
	// before it is registered, so until then early keeps what is reaped.
	pending int
	early   map[int]exit
	// firstExited: the first command has exited. killed: everything in
	// the sandbox has been killed.
	firstExited, killed bool
	wg                  sync.WaitGroup
	// ln is the joiners' listening socket and sudoLn sudo's (-1 for
	// none), owner the sandbox's Spec, and served whether a joiner ever
	// came.
	ln, sudoLn int
	owner      *Spec
	served     bool
	// aptOnce binds apt's configuration for root once (aptStaysRoot).
	aptOnce sync.Once
}

func newJoined(owner *Spec) *joined {
	return &joined{status: map[int]chan exit{}, early: map[int]exit{}, ln: -1, sudoLn: -1, owner: owner}
}

// exit is how a joined command ended: its status, and whether the
// sandbox was stopped under it.
type exit struct {
	status  int
	stopped bool
}

// live is the number of joined commands running or being started.
func (j *joined) live() int { return len(j.status) + j.pending }

// exited hands a reaped process's status to its joiner, if it is a joined
// command, and reports whether it was the sandbox's last command.
func (j *joined) exited(pid, status int) (last bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e := exit{status: status, stopped: j.killed}
	if ch, ok := j.status[pid]; ok {
		ch <- e
		delete(j.status, pid)
		return j.firstExited && j.live() == 0
	}
	if j.pending > 0 {
		j.early[pid] = e
	}
	return false
}

// accept registers a new joiner, unless the sandbox is ending. One may
// join after the first command has exited, while joined ones run: that
// devbox still holds the project's writable layer, which a sandbox of the
// joiner's own could not have.
func (j *joined) accept() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.killed {
		return false
	}
	j.served = true
	j.wg.Add(1)
	return true
}

// starting counts a command about to start, unless the sandbox is ending.
func (j *joined) starting() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.killed {
		return false
	}
	j.pending++
	return true
}

// started registers the command started as pid (0 if it was not) and
// returns where its status will come, and whether, having exited
// already, it was the sandbox's last command.
func (j *joined) started(pid int) (status chan exit, last bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.pending--
	ch := make(chan exit, 1)
	if s, ok := j.early[pid]; ok {
		ch <- s
		last = j.firstExited
	} else if pid > 0 {
		j.status[pid] = ch
	}
	if j.pending == 0 {
		clear(j.early)
	}
	return ch, last && j.live() == 0
}

// firstExit records that the first command has exited and returns the
// sessions of the joined commands still running.
func (j *joined) firstExit() (sessions []int, pending int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.firstExited = true
	for pid := range j.status {
		sessions = append(sessions, pid)
	}
	return sessions, j.pending
}

// stopping reports whether the signal s, which the first command's devbox
// passed on, stops the sandbox: after the first command exited, its
// devbox only waits for the joined ones, and a Ctrl-C there ends them.
func (j *joined) stopping(s os.Signal) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.firstExited && s != unix.SIGWINCH && s != unix.SIGUSR1 && s != unix.SIGUSR2
}

// killAll ends everything in the sandbox: as pid 1, kill(-1) reaches
// every other process in it.
func (j *joined) killAll() {
	j.mu.Lock()
	j.killed = true
	j.mu.Unlock()
	unix.Kill(-1, unix.SIGKILL)
}

// wait gives the joiners' handlers a moment to report the end.
func (j *joined) wait() {
	j.mu.Lock()
	served := j.served
	j.mu.Unlock()
	if !served {
		return
	}
	done := make(chan struct{})
	go func() {
		j.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(200 * time.Millisecond):
	}
}

// serve makes the sockets on which pid 1 takes more commands, and
// accepts them: the joiners' at name in the host directory dir (none when
// dir is -1), and with sudo, sudo's in the sandbox's /dev. No thread waits
// in accept(2), which would cost every run a thread of pid 1's: the kernel
// signals SIGIO when a client connects, and reap's signal loop calls
// acceptAll. pid 1 handles SIGIO by then (its default would end pid 1).
func (j *joined) serve(dir int, name string, sudo bool) {
	ln, sudoLn := -1, -1
	if dir >= 0 {
		// On failure, joiners find nobody there and run on their own.
		ln, _ = listenShare(dir, name)
		unix.Close(dir)
	}
	if sudo {
		// On failure, sudo finds nobody there and says so.
		sudoLn, _ = listenSudo()
	}
	j.adopt(ln, sudoLn)
}

// adopt serves the listening sockets ln and sudoLn (-1 for none), and
// accepts whoever waits on them already.
func (j *joined) adopt(ln, sudoLn int) {
	for _, fd := range []int{ln, sudoLn} {
		if fd >= 0 {
			unix.FcntlInt(uintptr(fd), unix.F_SETOWN, os.Getpid())
			unix.FcntlInt(uintptr(fd), unix.F_SETFL, unix.O_NONBLOCK|unix.O_ASYNC)
		}
	}
	j.mu.Lock()
	j.ln, j.sudoLn = ln, sudoLn
	j.mu.Unlock()
	j.acceptAll()
}

// listenSudo listens at sudoSocket. Any id of the sandbox may connect;
// serveJoin takes requests from the sandbox's user and root only.
func listenSudo() (int, error) {
	dir, err := unix.Open(filepath.Dir(sudoSocket), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dir)
	fd, err := listenShare(dir, filepath.Base(sudoSocket))
	if err == nil {
		err = unix.Chmod(sudoSocket, 0o666)
	}
	return fd, err
}

// acceptAll accepts every client waiting, each served on a goroutine of
// its own.
func (j *joined) acceptAll() {
	j.mu.Lock()
	ln, sudoLn := j.ln, j.sudoLn
	j.mu.Unlock()
	for _, l := range []int{ln, sudoLn} {
		for l >= 0 {
			conn, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
				continue
			}
			if err != nil { // EAGAIN: nobody else waits
				break
			}
			// Served in blocking mode, whatever the listener's flags.
			unix.SetNonblock(conn, false)
			if !j.accept() {
				unix.Close(conn)
				continue
			}
			sudo := l == sudoLn
			go func() {
				defer j.wg.Done()
				serveJoin(conn, j, sudo)
			}()
		}
	}
}

// serveJoin runs one client's command and reports on it: a joiner's, or
// with sudo a sudo request's, as root.
func serveJoin(fd int, j *joined, sudo bool) {
	conn := os.NewFile(uintptr(fd), "join")
	defer conn.Close()
	owner := j.owner
	// Only the user who started the sandbox: the joiners' socket's
	// directory is theirs alone, and this says so again. sudo's is open to
	// the sandbox's ids, of which the user's own and root's may ask, not
	// another of a subuid sandbox. Root's is 0, or, for a root command in
	// a user namespace of its own (single mode), pid 1's own id.
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil || (!sudo && int(cred.Uid) != os.Getuid()) {
		return
	}
	stdio, spec, err := readJoin(fd, conn)
	defer func() {
		for _, f := range stdio {
			f.Close()
		}
	}()
	switch {
	case err != nil:
	case sudo && cred.Uid != owner.Process.UID && cred.Uid != 0 && int(cred.Uid) != os.Getuid():
		// Read first, so that the answer reaches the asker.
		err = fmt.Errorf("uid %d is neither the sandbox's user nor root", cred.Uid)
	case sudo:
		spec, err = sudoSpec(owner, spec)
	default:
		err = joinable(owner, spec)
	}
	if err != nil {
		sendMessage(conn, message{Type: msgNotJoinable, Error: err.Error()})
		return
	}
	// The sizes of a subuid sandbox's maps, which its user's commands are
	// mapped into, are the sandbox's: Run set them on the first Spec only.
	spec.UIDMapSize, spec.GIDMapSize = owner.UIDMapSize, owner.GIDMapSize
	// Root joining a sandbox whose set-up did not tell apt to stay root
	// (its first command was not root): pid 1 binds that now, for every
	// root command after it too.
	if aptStaysRoot(spec) && !aptStaysRoot(owner) {
		var err error
		j.aptOnce.Do(func() { err = writeEtcFiles(map[string][]byte{aptConfigName: []byte(aptConfig)}) })
		if err != nil {
			sendMessage(conn, message{Type: msgNotJoinable, Error: "tell apt to stay root: " + err.Error()})
			return
		}
	}
	sendMessage(conn, message{Type: msgAccepted})
	if spec.Process.Terminal {
		master, slave, err := openPty(&spec.Process)
		if err != nil {
			sendMessage(conn, message{Type: msgSetupError, Error: err.Error()})
			return
		}
		err = unix.Sendmsg(fd, []byte{0}, unix.UnixRights(int(master.Fd())), nil, 0)
		master.Close()
		if err != nil {
			slave.Close()
			return
		}
		stdio = append(terminalStdio(&spec.Process, slave, stdio[1], stdio[2]), stdio...)
	}
	pid, status, err := startJoined(spec, stdio[:3], j)
	if err != nil && status != 0 {
		fmt.Fprintf(stdio[2], "devbox: %v\n", err)
		sendMessage(conn, message{Type: msgStarted})
		sendMessage(conn, message{Type: msgExited, Status: status})
		return
	}
	if err != nil {
		sendMessage(conn, message{Type: msgSetupError, Error: err.Error()})
		return
	}
	sendMessage(conn, message{Type: msgStarted})
	for _, f := range stdio {
		f.Close()
	}
	stdio = nil
	statusCh, last := j.started(pid)
	if last {
		j.killAll()
	}
	// The joiner passes signals on; when it goes away, so does its
	// command.
	go func() {
		msgs := bufio.NewReader(conn)
		for {
			m, err := readMessage(msgs)
			if err != nil {
				killSession(pid)
				return
			}
			if m.Type == msgSignal && m.Status > 0 && m.Status < 65 {
				unix.Kill(pid, syscall.Signal(m.Status))
			}
		}
	}()
	e := <-statusCh
	killSession(pid)
	if e.stopped {
		sendMessage(conn, message{Type: msgExited, Status: e.status, Error: ErrSandboxEnded.Error()})
		return
	}
	sendMessage(conn, message{Type: msgExited, Status: e.status})
}

// readJoin reads a joiner's standard streams and Spec.
func readJoin(fd int, conn *os.File) ([]*os.File, *Spec, error) {
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(3*4))
	_, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, nil, &os.SyscallError{Syscall: "recvmsg", Err: err}
	}
	var fds []int
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) == 1 {
		fds, _ = unix.ParseUnixRights(&msgs[0])
	}
	stdio := make([]*os.File, len(fds))
	for i, fd := range fds {
		stdio[i] = os.NewFile(uintptr(fd), "stdio")
	}
	if len(fds) != 3 {
		return stdio, nil, errors.New("the joiner sent no standard streams")
	}
	// Unbuffered: what follows the Spec on the socket is read elsewhere.
	n, err := binary.ReadUvarint(byteReader{conn})
	if err == nil && n > maxJoinSpec {
		err = fmt.Errorf("a spec of %d bytes", n)
	}
	if err != nil {
		return stdio, nil, err
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(conn, data); err != nil {
		return stdio, nil, err
	}
	var spec Spec
	if err := spec.UnmarshalBinary(data); err != nil {
		return stdio, nil, err
	}
	return stdio, &spec, nil
}

// joinable says why spec cannot run in the sandbox of owner, if it
// cannot: the two must have the same root filesystem, network and
// identity mapping, and the same mounts but for the home directory, which
// differs between the user and root. The user's command cannot join a
// root sandbox: that sandbox has neither the user's entry in /etc/passwd
// nor their home, and its pid 1's threads may carry root emulation, which
// the user's command must not inherit. Root joins the user's sandbox:
// every image knows root, and /root is its home.
func joinable(owner, spec *Spec) error {
	// What Spec.check asks of a command; pid 1 would fail on it, or worse.
	if len(spec.Process.Args) == 0 || spec.Process.Args[0] == "" || !filepath.IsAbs(spec.Process.Cwd) {
		return errors.New("it needs a command and an absolute working directory")
	}
	if spec.Network != owner.Network || spec.Userns != owner.Userns || spec.RootDir != owner.RootDir {
		return errors.New("it was started with another network or user namespace mode")
	}
	if !slices.EqualFunc(viewOf(owner), viewOf(spec), mountsEqual) {
		return errors.New("its image, layers or mounts differ from this command's: devbox.toml or the lock changed since it started")
	}
	if owner.Process.UID == 0 && spec.Process.UID != 0 {
		return errors.New("it runs as root, and this command runs as you")
	}
	return nil
}

// HostServices is the directory of the host's services inside a sandbox
// (the SSH agent's socket, the certificate bundle).
const HostServices = "/run/host-services"

// viewOf is spec's mounts without those that differ between two
// terminals of one user on one project: the home directory's (the user's
// or root's), the host's services (one terminal has an SSH agent, another
// none), and sudo's, whose source is the pid 1 program of the devbox that
// made the spec (a devbox upgraded while the sandbox runs names another).
// A joined command runs with what the sandbox has of them.
func viewOf(spec *Spec) []mounts.Mount {
	home := strings.TrimSuffix(spec.User.Home, "/")
	var view []mounts.Mount
	for _, m := range spec.Mounts {
		if (home != "" && mounts.IsBeneath(m.Target, home)) || mounts.IsBeneath(m.Target, HostServices) || m.Target == sudoPath {
			continue
		}
		view = append(view, m)
	}
	return view
}

func mountsEqual(a, b mounts.Mount) bool {
	return a.Type == b.Type && a.Source == b.Source && a.Target == b.Target && a.ReadOnly == b.ReadOnly &&
		a.Recursive == b.Recursive && a.Optional == b.Optional && a.Data == b.Data && slices.Equal(a.Lower, b.Lower) &&
		a.Upper == b.Upper && a.Work == b.Work && a.Helper == b.Helper
}

// startJoined starts a joined command on a thread of its own, locked and
// never unlocked, so that the thread ends with it and takes its
// no_new_privs and seccomp filter along.
func startJoined(spec *Spec, stdio []*os.File, j *joined) (pid, status int, err error) {
	type result struct {
		pid, status int
		err         error
	}
	if !j.starting() {
		return 0, 0, errors.New("the sandbox has ended")
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var r result
		r.err = unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
		if r.err == nil && spec.Process.RootEmulation && spec.Process.UID == 0 {
			r.err = installRootEmulation()
		}
		if r.err == nil {
			r.pid, r.status, r.err = startCommand(spec, stdio, true)
		}
		done <- r
	}()
	r := <-done
	if r.err != nil {
		j.started(0)
	}
	return r.pid, r.status, r.err
}

// killSession kills every process of the session sid (a joined command
// and what it started).
func killSession(sid int) {
	unix.Kill(-sid, unix.SIGKILL)
	killWhere(func(session int) bool { return session == sid })
}

// killOutside kills every process outside the sessions given: what the
// first command left, while joined commands run on.
func killOutside(sessions []int) {
	killWhere(func(session int) bool { return !slices.Contains(sessions, session) })
}

// killWhere kills every process but pid 1 whose session kill says to, as
// pid 1 sees them in /proc.
func killWhere(kill func(session int) bool) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...; comm may hold spaces and
		// parentheses, so the fields count from the last ')'.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 4 {
			continue
		}
		if session, err := strconv.Atoi(f[3]); err == nil && kill(session) {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// Join runs spec's command in the running sandbox that listens at socket,
// and returns its exit status as Run does. A *NotJoinableError says that
// it did not run and why; ErrSandboxEnded, that the sandbox ended under
// it. While nothing answers at the socket, Join waits for up to a second,
// as long as running (nil: always) reports the sandbox still there: it
// binds the socket once its command has started.
func Join(ctx context.Context, socket string, spec *Spec, stdio IO, running func() bool) (int, error) {
	conn, err := dialShare(socket, running)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	fd := int(conn.Fd())
	if err := unix.Sendmsg(fd, []byte{0}, unix.UnixRights(int(stdio.In.Fd()), int(stdio.Out.Fd()), int(stdio.Err.Fd())), nil, 0); err != nil {
		return 0, &NotJoinableError{Reason: err.Error()}
	}
	data, err := spec.MarshalBinary()
	if err != nil {
		return 0, err
	}
	if _, err := conn.Write(append(binary.AppendUvarint(nil, uint64(len(data))), data...)); err != nil {
		return 0, &NotJoinableError{Reason: err.Error()}
	}
	// Unbuffered until the pty's master has come: a buffered read would
	// take the byte that carries it and lose the descriptor.
	m, err := readMessage(byteReader{conn})
	switch {
	case err != nil:
		return 0, &NotJoinableError{Reason: "it ended", Ended: true}
	case m.Type == msgNotJoinable:
		return 0, &NotJoinableError{Reason: m.Error}
	case m.Type != msgAccepted:
		return 0, fmt.Errorf("sandbox sent an unknown message %q", m.Type)
	}
	if spec.Process.Terminal {
		t := relayTerminal(stdio, conn)
		defer t.close()
		if err := t.start(); err != nil {
			return 0, err
		}
		defer t.drain()
	}
	msgs := bufio.NewReader(conn)
	if err := waitStarted(msgs); err != nil {
		return 0, err
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			sendMessage(conn, message{Type: msgSignal, Status: int(s.(syscall.Signal))})
		}
	}()
	stop := context.AfterFunc(ctx, func() {
		if !errors.Is(context.Cause(ctx), ErrSignaled) {
			sendMessage(conn, message{Type: msgSignal, Status: int(unix.SIGTERM)})
		}
	})
	defer stop()
	m, err = readMessage(msgs)
	switch {
	case err != nil:
		return 128 + int(unix.SIGKILL), ErrSandboxEnded
	case m.Type != msgExited:
		return 0, fmt.Errorf("sandbox sent an unknown message %q", m.Type)
	case m.Error != "":
		return m.Status, ErrSandboxEnded
	}
	return m.Status, nil
}

// dialShare connects to the sandbox at socket. Its pid 1 binds the socket
// once its command has started, a few milliseconds after the sandbox took
// the project's writable layer: a moment's wait covers that, unless
// running says that the sandbox has gone meanwhile (the socket a sandbox
// left refuses connections too).
func dialShare(socket string, running func() bool) (*os.File, error) {
	addr, dir, err := socketAddr(socket)
	if err != nil {
		return nil, &NotJoinableError{Reason: err.Error()}
	}
	defer unix.Close(dir)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &os.SyscallError{Syscall: "socket", Err: err}
	}
	for try := 0; ; try++ {
		err = unix.Connect(fd, addr)
		if err == nil {
			return os.NewFile(uintptr(fd), "join"), nil
		}
		if !(errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED)) || try == 50 {
			unix.Close(fd)
			return nil, &NotJoinableError{Reason: fmt.Sprintf("nothing answers at %s: %v", socket, err)}
		}
		if running != nil && !running() {
			unix.Close(fd)
			return nil, &NotJoinableError{Reason: "it ended", Ended: true}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// byteReader reads one byte per read(2).
type byteReader struct{ f *os.File }

func (r byteReader) ReadByte() (byte, error) {
	var b [1]byte
	if _, err := io.ReadFull(r.f, b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}
