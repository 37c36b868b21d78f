package rootless

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// A sandbox's terminal is a pty of its own devpts instance: pid 1 opens it
// inside, so that tty(1), job control and /dev/pts all agree, and sends the
// master side to the parent over a socket. The parent relays it to the
// caller's terminal, which it puts in raw mode and restores on every path
// out of Run.

// openStdio returns the command's standard streams: the caller's, or for a
// terminal the pty's slave side (for standard input, and for output and
// error where the caller's are a terminal too).
func openStdio(spec *Spec) ([]*os.File, error) {
	if !spec.Process.Terminal {
		return []*os.File{os.Stdin, os.Stdout, os.Stderr}, nil
	}
	master, slave, err := openPty(&spec.Process)
	if err != nil {
		return nil, err
	}
	defer master.Close()
	if err := unix.Sendmsg(fdPty, []byte{0}, unix.UnixRights(int(master.Fd())), nil, 0); err != nil {
		slave.Close()
		return nil, &os.SyscallError{Syscall: "sendmsg(pty)", Err: err}
	}
	unix.Close(fdPty)
	return terminalStdio(&spec.Process, slave, os.Stdout, os.Stderr), nil
}

// openPty opens a pty of the sandbox's devpts, of p's size.
func openPty(p *Process) (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, &os.SyscallError{Syscall: "ioctl(TIOCSPTLCK)", Err: err}
	}
	// TIOCGPTPEER opens the slave through the master, never by a path that
	// could be swapped.
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, master.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		master.Close()
		return nil, nil, &os.SyscallError{Syscall: "ioctl(TIOCGPTPEER)", Err: errno}
	}
	if p.Rows > 0 && p.Cols > 0 {
		unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: p.Rows, Col: p.Cols})
	}
	return master, os.NewFile(sfd, "pty"), nil
}

// terminalStdio is the command's standard streams with a terminal: the
// pty's slave for input, for output with TerminalOutput, and for error too
// unless the caller sent it elsewhere (2>errors.log).
func terminalStdio(p *Process, slave, out, errOut *os.File) []*os.File {
	stdio := []*os.File{slave, out, errOut}
	if p.TerminalOutput {
		stdio[1] = slave
		if term.IsTerminal(int(errOut.Fd())) {
			stdio[2] = slave
		}
	}
	return stdio
}

// terminal is the parent's side of a sandbox's pty.
type terminal struct {
	stdio      IO
	parentSock *os.File
	childSock  *os.File
	master     *os.File
	restore    func()
	outDone    chan struct{}
	winch      chan os.Signal
}

func newTerminal(stdio IO) (*terminal, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &os.SyscallError{Syscall: "socketpair", Err: err}
	}
	t := relayTerminal(stdio, os.NewFile(uintptr(fds[0]), "pty-parent"))
	t.childSock = os.NewFile(uintptr(fds[1]), "pty-child")
	return t, nil
}

// relayTerminal is the parent's side of a pty whose master side comes
// over sock (terminal.start).
func relayTerminal(stdio IO, sock *os.File) *terminal {
	return &terminal{stdio: stdio, parentSock: sock, restore: func() {}, outDone: make(chan struct{})}
}

// start receives the master side from the sandbox and begins relaying.
func (t *terminal) start() error {
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(t.parentSock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return &os.SyscallError{Syscall: "recvmsg(pty)", Err: err}
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return errors.New("sandbox did not send its terminal")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return errors.New("sandbox did not send its terminal")
	}
	t.master = os.NewFile(uintptr(fds[0]), "pty-master")

	if in := int(t.stdio.In.Fd()); term.IsTerminal(in) {
		state, err := term.MakeRaw(in)
		if err != nil {
			return fmt.Errorf("set terminal raw: %w", err)
		}
		t.restore = func() { term.Restore(in, state) }
		t.resize()
		t.winch = make(chan os.Signal, 1)
		signal.Notify(t.winch, unix.SIGWINCH)
		go func() {
			for range t.winch {
				t.resize()
			}
		}()
	}
	go func() { io.Copy(t.master, t.stdio.In) }()
	screen := t.screen()
	go func() {
		// Reading the master fails with EIO once every slave is closed,
		// which is when the sandbox is gone.
		io.Copy(screen, t.master)
		close(t.outDone)
	}()
	return nil
}

// screen is where the pty's output goes: the caller's standard output when
// that is a terminal, as the command's output then goes through the pty
// too. Otherwise the command writes to the caller's output (a pipe, a
// file) directly, and what the pty shows, the echo of what is typed and
// what the command writes to /dev/tty (a passphrase prompt, say), belongs
// on the caller's terminal: standard error's, or else standard input's.
// It never stops reading the pty, so a screen that goes away cannot block
// the command.
func (t *terminal) screen() io.Writer {
	for _, f := range []*os.File{t.stdio.Out, t.stdio.Err, t.stdio.In} {
		if f != nil && term.IsTerminal(int(f.Fd())) {
			return screenWriter{f}
		}
	}
	return io.Discard
}

// screenWriter writes to a terminal and drops what it cannot write.
type screenWriter struct{ f *os.File }

func (w screenWriter) Write(p []byte) (int, error) {
	w.f.Write(p)
	return len(p), nil
}

// resize copies the caller's window size to the sandbox's terminal; the
// kernel then signals SIGWINCH to its foreground process group.
func (t *terminal) resize() {
	ws, err := unix.IoctlGetWinsize(int(t.stdio.In.Fd()), unix.TIOCGWINSZ)
	if err == nil {
		unix.IoctlSetWinsize(int(t.master.Fd()), unix.TIOCSWINSZ, ws)
	}
}

// drain waits for the output still buffered in the pty after the sandbox
// has exited.
func (t *terminal) drain() {
	if t.master == nil {
		return
	}
	select {
	case <-t.outDone:
	case <-time.After(2 * time.Second):
	}
}

// close restores the caller's terminal and releases the descriptors.
func (t *terminal) close() {
	t.restore()
	if t.winch != nil {
		signal.Stop(t.winch)
		close(t.winch)
	}
	t.parentSock.Close()
	t.childSock.Close()
	if t.master != nil {
		t.master.Close()
	}
}
