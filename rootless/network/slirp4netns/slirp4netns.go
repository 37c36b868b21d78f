// Package slirp4netns connects a sandbox's network namespace to the
// outside through slirp4netns, a user-mode TCP/IP stack: the sandbox gets
// tap0 at 10.0.2.100 with gateway 10.0.2.2 and DNS at 10.0.2.3, connections
// to the host's loopback are refused (--disable-host-loopback), and ports
// are forwarded from the host through slirp4netns's API socket.
//
// slirp4netns opens /dev/net/tun inside the sandbox's namespaces, as the
// user: where /dev/net/tun is mode 0600 (Debian's default), an unprivileged
// user cannot use it; 'devbox doctor' says so and names the fix.
package slirp4netns

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/devboxhq/devbox/rootless/network"
)

// Opt configures the driver.
type Opt struct {
	// Binary is the slirp4netns executable; "" looks it up in PATH.
	Binary string
	// Ports are forwarded from the host into the sandbox.
	Ports []network.Port
	// StateDir is an existing directory for the API socket.
	StateDir string
	// MTU of tap0; 0 means 65520, which is fastest.
	MTU int
}

type parentDriver struct{ opt Opt }

var _ network.ParentDriver = (*parentDriver)(nil)

// NewParentDriver checks opt and returns the driver.
func NewParentDriver(opt Opt) (network.ParentDriver, error) {
	if opt.Binary == "" {
		p, err := exec.LookPath("slirp4netns")
		if err != nil {
			return nil, errors.New(`network mode "isolated" needs slirp4netns: install it (Debian: apt-get install slirp4netns)`)
		}
		opt.Binary = p
	}
	if opt.MTU == 0 {
		opt.MTU = 65520
	}
	if opt.StateDir == "" {
		return nil, errors.New("slirp4netns: no state directory for the API socket")
	}
	return &parentDriver{opt: opt}, nil
}

func (d *parentDriver) DNS() string { return "10.0.2.3" }

// readyTimeout bounds how long slirp4netns may take to configure tap0.
const readyTimeout = 10 * time.Second

func (d *parentDriver) ConfigureNetwork(pid int) (func() error, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return nil, err
	}
	sock := filepath.Join(d.opt.StateDir, fmt.Sprintf("slirp4netns-%d.sock", pid))
	os.Remove(sock)
	ns := fmt.Sprintf("/proc/%d/ns/", pid)
	cmd := exec.Command(d.opt.Binary,
		"--configure", "--mtu="+strconv.Itoa(d.opt.MTU), "--disable-host-loopback",
		"--userns-path="+ns+"user", "--netns-type=path",
		"--ready-fd=3", "--exit-fd=4", "--api-socket", sock,
		ns+"net", "tap0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.ExtraFiles = []*os.File{readyW, exitR}
	// If devbox dies, so does its network helper.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		readyW.Close()
		exitR.Close()
		exitW.Close()
		return nil, fmt.Errorf("start slirp4netns: %w", err)
	}
	readyW.Close()
	exitR.Close()
	cleanup := func() error {
		exitW.Close()
		err := cmd.Wait()
		os.Remove(sock)
		return err
	}
	fail := func(err error) (func() error, error) {
		cmd.Process.Kill()
		cleanup()
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, lastLine(msg))
		}
		if strings.Contains(stderr.String(), "/dev/net/tun") {
			err = fmt.Errorf("%w (an unprivileged user needs a usable /dev/net/tun: run 'devbox doctor')", err)
		}
		return nil, err
	}
	if err := waitReady(readyR); err != nil {
		return fail(fmt.Errorf("slirp4netns: %w", err))
	}
	for _, p := range d.opt.Ports {
		if err := addHostFwd(sock, p); err != nil {
			err = fmt.Errorf("forward %s:%d to port %d: %w", p.HostIP, p.HostPort, p.ChildPort, err)
			if inUse(p) {
				// slirp4netns says only "slirp_add_hostfwd failed".
				cmd.Process.Kill()
				cleanup()
				return nil, fmt.Errorf("forward %s %s:%d to port %d: the host port is in use (another sandbox or program listens there): choose another host port in [network] ports",
					p.Proto, p.HostIP, p.HostPort, p.ChildPort)
			}
			return fail(err)
		}
	}
	return cleanup, nil
}

// inUse reports whether p's host address is taken: devbox cannot bind it
// either.
func inUse(p network.Port) bool {
	addr := net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort))
	var err error
	if p.Proto == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp", addr); err == nil {
			c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			l.Close()
		}
	}
	return errors.Is(err, syscall.EADDRINUSE)
}

// waitReady waits for slirp4netns to write to its ready fd.
func waitReady(r *os.File) error {
	r.SetReadDeadline(time.Now().Add(readyTimeout))
	buf := make([]byte, 1)
	if _, err := r.Read(buf); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("not ready after %v", readyTimeout)
		}
		return errors.New("exited before the network was configured")
	}
	return nil
}

// addHostFwd asks slirp4netns, over its API socket, to forward p.
func addHostFwd(sock string, p network.Port) error {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := map[string]any{"execute": "add_hostfwd", "arguments": map[string]any{
		"proto": p.Proto, "host_addr": p.HostIP, "host_port": p.HostPort, "guest_port": p.ChildPort,
	}}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return err
	}
	conn.(*net.UnixConn).CloseWrite()
	var resp struct {
		Error *struct {
			Desc string `json:"desc"`
		} `json:"error"`
	}
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return fmt.Errorf("read slirp4netns's answer: %w", err)
	}
	if resp.Error != nil {
		return errors.New(resp.Error.Desc)
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(s, "\n")
	return lines[len(lines)-1]
}
