package rootless

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/devboxhq/devbox/rootless/network"
	"golang.org/x/sys/unix"
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

// Run starts the sandbox that spec describes, waits for its command and
// returns the command's exit status (128+n when signal n killed it). An
// error means the sandbox could not be set up; the command did not run.
// net connects a sandbox with its own network namespace (nil for the host's
// network); it runs before the sandbox's pid 1 receives its spec, so the
// network is up before anything inside starts.
func Run(ctx context.Context, spec *Spec, stdio IO, net network.ParentDriver) (int, error) {
	if err := spec.check(); err != nil {
		return 0, err
	}
	if (spec.Network == NetworkHost) != (net == nil) {
		return 0, fmt.Errorf("network mode %q and the network driver do not go together", spec.Network)
	}
	if net != nil {
		withDNS := *spec
		withDNS.DNS = net.DNS()
		spec = &withDNS
	}
	// Catch the forwarded signals before the sandbox exists: one that
	// arrives while it starts waits in sigs and is passed on once pid 1
	// handles signals, rather than killing devbox and leaving the command
	// orphaned.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)
	specR, specW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer specR.Close()
	defer specW.Close()
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer syncR.Close()
	defer syncW.Close()

	var uids, gids []IDRange
	if spec.Userns == UsernsSubuid {
		if uids, gids, err = subuidMaps(); err != nil {
			return 0, err
		}
		sized := *spec
		sized.UIDMapSize, sized.GIDMapSize = mapSize(uids), mapSize(gids)
		spec = &sized
	}
	// An unprivileged user's subuid maps are written by newuidmap after the
	// clone; until then pid 1 waits in its first stage.
	helperMaps := spec.Userns == UsernsSubuid && os.Getuid() != 0
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"devbox-init"}
	cmd.Env = []string{initEnv + "=1"}
	if helperMaps {
		cmd.Env = []string{initEnv + "=" + stageAwaitIDMap}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.In, stdio.Out, stdio.Err
	cmd.ExtraFiles = []*os.File{specR, syncW}
	cmd.SysProcAttr = sysProcAttr(spec, uids, gids, helperMaps)

	var term *terminal
	if spec.Process.Terminal {
		term, err = newTerminal(stdio)
		if err != nil {
			return 0, err
		}
		defer term.close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, term.childSock)
	}
	if err := cmd.Start(); err != nil {
		return 0, startError(err)
	}
	specR.Close()
	syncW.Close()
	if term != nil {
		term.childSock.Close()
	}
	if helperMaps {
		err := writeIDMaps(cmd.Process.Pid, uids, gids)
		if err == nil {
			_, err = specW.Write([]byte(idmapDone))
		}
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return 0, fmt.Errorf("userns = \"subuid\": %w", err)
		}
	}
	if net != nil {
		cleanup, err := net.ConfigureNetwork(cmd.Process.Pid)
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return 0, fmt.Errorf("network: %w", err)
		}
		defer cleanup()
	}
	err = json.NewEncoder(specW).Encode(spec)
	specW.Close()
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, fmt.Errorf("send spec to sandbox: %w", err)
	}
	if term != nil {
		if err := term.start(); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return 0, err
		}
	}
	dec := json.NewDecoder(syncR)
	if err := waitStarted(dec); err != nil {
		cmd.Wait()
		return 0, err
	}
	exited := make(chan int, 1)
	go func() {
		var m message
		if dec.Decode(&m) == nil && m.Type == msgExited {
			exited <- m.Status
		}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	returned := make(chan struct{})
	defer close(returned)
	go func() {
		done := ctx.Done()
		for {
			select {
			case <-returned:
				return
			case s := <-sigs:
				cmd.Process.Signal(s)
			case <-done:
				// A signal that cancelled ctx arrives on sigs as well.
				if !errors.Is(context.Cause(ctx), ErrSignaled) {
					cmd.Process.Signal(unix.SIGTERM)
				}
				done = nil
			}
		}
	}()

	select {
	case status := <-exited:
		// pid 1 has reaped every process of the sandbox; what is left is
		// the kernel tearing its namespaces down, which need not delay the
		// caller. The goroutine above still reaps pid 1.
		if term != nil {
			term.drain()
		}
		return status, nil
	case err := <-waited:
		if term != nil {
			term.drain()
		}
		return exitStatus(cmd.ProcessState, err)
	}
}

// sysProcAttr creates the sandbox's namespaces in one clone(2). In single
// mode the uid and gid maps are written by the Go runtime before the child
// runs any code: the user's own id becomes root inside, which gives pid 1
// the capabilities to mount, and nothing else of the host is mapped. A
// subuid sandbox gets its full range here only when devbox runs as real
// root; otherwise helperMaps says newuidmap writes it after the clone.
func sysProcAttr(spec *Spec, uids, gids []IDRange, helperMaps bool) *syscall.SysProcAttr {
	flags := uintptr(unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if spec.Network != NetworkHost {
		flags |= unix.CLONE_NEWNET
	}
	attr := &syscall.SysProcAttr{
		Cloneflags: flags,
		// If devbox dies, pid 1 dies, and with it everything in the sandbox.
		Pdeathsig: unix.SIGKILL,
		// Without a terminal of its own the sandbox gets its own process
		// group, so that a Ctrl-C at the caller's terminal reaches it once,
		// forwarded by Run, rather than directly and forwarded again.
		Setpgid: !spec.Process.Terminal,
	}
	switch {
	case helperMaps:
	case uids != nil:
		attr.UidMappings, attr.GidMappings = sysProcIDMaps(uids), sysProcIDMaps(gids)
		attr.GidMappingsEnableSetgroups = true
	default:
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	}
	return attr
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

// exitStatus is the command's status as a shell reports it.
func exitStatus(ps *os.ProcessState, err error) (int, error) {
	if ps == nil {
		return 0, err
	}
	ws := ps.Sys().(syscall.WaitStatus)
	switch {
	case ws.Exited():
		return ws.ExitStatus(), nil
	case ws.Signaled():
		return 128 + int(ws.Signal()), nil
	}
	return 0, fmt.Errorf("sandbox ended in an unexpected state: %v", ps)
}
