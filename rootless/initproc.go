package rootless

import (
	"os"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// initProc is a sandbox's pid 1 as its parent sees it. It is started with
// syscall.StartProcess rather than os/exec: os.StartProcess first checks,
// once per process, that pidfds work, with a clone of its own, and that
// check was on the path of every devbox run.
type initProc struct {
	pid  int
	done chan struct{} // closed once pid 1 is reaped
	// mu orders signals against reaping: a signal never reaches a process
	// that took over a reaped pid 1's pid.
	mu     sync.Mutex
	reaped bool
	status unix.WaitStatus
	err    error
}

// startInit starts pid 1 from prog with files as its descriptors 0, 1, 2,
// 3 and on, and reaps it in the background.
func startInit(prog string, argv, env []string, files []*os.File, attr *syscall.SysProcAttr) (*initProc, error) {
	fds := make([]uintptr, len(files))
	for i, f := range files {
		fds[i] = f.Fd()
	}
	pid, _, err := syscall.StartProcess(prog, argv, &syscall.ProcAttr{Env: env, Files: fds, Sys: attr})
	runtime.KeepAlive(files)
	if err != nil {
		return nil, &os.PathError{Op: "fork/exec", Path: prog, Err: err}
	}
	p := &initProc{pid: pid, done: make(chan struct{})}
	go p.reap()
	return p, nil
}

// reap waits for pid 1 to exit, then reaps it under mu.
func (p *initProc) reap() {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	p.mu.Lock()
	for {
		_, p.err = unix.Wait4(p.pid, &p.status, 0, nil)
		if p.err != unix.EINTR {
			break
		}
	}
	p.reaped = true
	p.mu.Unlock()
	close(p.done)
}

// signal sends s to pid 1 unless it has been reaped.
func (p *initProc) signal(s syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reaped {
		unix.Kill(p.pid, s)
	}
}

// kill ends pid 1 and waits until it is reaped.
func (p *initProc) kill() {
	p.signal(unix.SIGKILL)
	<-p.done
}
