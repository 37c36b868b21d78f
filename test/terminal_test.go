package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// TestShellTerminal drives 'devbox shell' through a pseudo-terminal as a
// person would: the shell has a terminal of its own, sees the window size
// and its changes, has job control, Ctrl-C interrupts the foreground job,
// and the caller's terminal settings are as they were after devbox exits.
func TestShellTerminal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	e.mustRun(t, "pull")

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd, master, slave, out, before := shellOnTerminal(ctx, t, e, 24, 80)

	send := stepper(ctx, t, cmd, master, out)
	send("tty", 10*time.Second)
	send("stty size", 10*time.Second)
	if err := pty.Setsize(master, &pty.Winsize{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	// The new size travels by SIGWINCH to devbox and into the sandbox's
	// own terminal; ask until it arrives.
	for i := 0; i < 20; i++ {
		send("stty size", 10*time.Second)
		if out.waitFor(ctx, 0, "30 100") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	send("sleep 60 & jobs", 10*time.Second)
	send("kill %1; wait", 10*time.Second)
	// Ctrl-C must interrupt a foreground sleep at once: without it the
	// step would take a minute and fail.
	io.WriteString(master, "sleep 60\n")
	time.Sleep(500 * time.Millisecond)
	master.Write([]byte{0x03})
	send("true", 15*time.Second)
	io.WriteString(master, "exit 0\n")

	err := cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("devbox shell did not finish; output:\n%s", out)
	}
	if err != nil {
		t.Fatalf("devbox shell: %v; output:\n%s", err, out)
	}
	text := out.String()
	for _, want := range []string{"/dev/pts/", "24 80", "30 100", "Running", "sleep 60"} {
		if !strings.Contains(text, want) {
			t.Errorf("the terminal session lacks %q; output:\n%s", want, text)
		}
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if *after != *before {
		t.Errorf("devbox left the terminal changed:\nbefore %+v\nafter  %+v", *before, *after)
	}
}

// TestRunTerminalPipedOutput: with a terminal on standard input and a pipe
// on standard output, as in 'devbox run -- git push | tee log', the
// command's output goes to the pipe alone, and what it writes to /dev/tty
// (a passphrase prompt) reaches the caller's terminal, not the pipe.
func TestRunTerminalPipedOutput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	e.mustRun(t, "pull")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd, master, _ := onTerminal(ctx, t, e, "run", "--", "sh", "-c", "echo prompt-on-tty > /dev/tty; echo on-stdout")
	var stdout strings.Builder
	cmd.Stdout = &stdout
	out := newPtyOutput(master)
	if err := cmd.Run(); err != nil {
		t.Fatalf("devbox run: %v; stdout %q, terminal:\n%s", err, stdout.String(), out)
	}
	if got := stdout.String(); got != "on-stdout\n" {
		t.Errorf("standard output got %q, want only the command's own output", got)
	}
	if !out.waitFor(ctx, 10*time.Second, "prompt-on-tty") {
		t.Errorf("what the command wrote to /dev/tty did not reach the terminal:\n%s", out)
	}
}

// TestRunTerminalStderrToFile: on a terminal, 'devbox run -- cmd 2>file'
// sends the command's standard error to the file, and its output to the
// terminal.
func TestRunTerminalStderrToFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	e.mustRun(t, "pull")

	errFile, err := os.Create(filepath.Join(t.TempDir(), "errors.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd, master, _ := onTerminal(ctx, t, e, "run", "--", "sh", "-c", "echo on-terminal; echo in-file >&2")
	cmd.Stderr = errFile
	out := newPtyOutput(master)
	if err := cmd.Run(); err != nil {
		t.Fatalf("devbox run: %v; terminal:\n%s", err, out)
	}
	if !out.waitFor(ctx, 10*time.Second, "on-terminal") {
		t.Errorf("the command's output did not reach the terminal:\n%s", out)
	}
	if got, _ := os.ReadFile(errFile.Name()); string(got) != "in-file\n" {
		t.Errorf("the file got %q, want the command's standard error", got)
	}
	if strings.Contains(out.String(), "in-file") {
		t.Errorf("standard error reached the terminal:\n%s", out)
	}
}

// stepper returns a function that types a line into the shell on master
// and waits, up to within, for it to finish. Each step ends by printing a
// marker that its own input line cannot contain (the shell computes it),
// so waiting for the marker waits for the step.
// A step that does not finish lists the processes under devbox (their
// state and signal masks), to tell a stuck shell from a stuck relay.
func stepper(ctx context.Context, t *testing.T, cmd *exec.Cmd, master *os.File, out *ptyOutput) func(line string, within time.Duration) {
	step := 0
	return func(line string, within time.Duration) {
		t.Helper()
		step++
		marker := fmt.Sprintf("step-%d-done", step)
		io.WriteString(master, fmt.Sprintf("%s; echo step-$((%d+0))-done\n", line, step))
		if !out.waitFor(ctx, within, marker) {
			t.Fatalf("step %d (%q) did not finish in %v; output:\n%s\nprocesses under devbox:\n%s", step, line, within, out, processesUnder(cmd.Process.Pid))
		}
	}
}

// processesUnder describes every process descended from pid, from /proc:
// its command, state and the signals it blocks, ignores and catches.
func processesUnder(pid int) string {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(status)) {
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				parent[p], _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
	}
	var b strings.Builder
	for p := range parent {
		for a := parent[p]; a > 1; a = parent[a] {
			if a != pid {
				continue
			}
			status, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "status"))
			fmt.Fprintf(&b, "pid %d:", p)
			for line := range strings.Lines(string(status)) {
				for _, k := range []string{"Name:", "State:", "SigBlk:", "SigIgn:", "SigCgt:"} {
					if strings.HasPrefix(line, k) {
						fmt.Fprintf(&b, " %s", strings.Join(strings.Fields(line), " "))
					}
				}
			}
			b.WriteString("\n")
			break
		}
	}
	return b.String()
}

// TestShellSudo: in 'devbox shell', sudo runs commands as root in the same
// sandbox, on a terminal of their own: a root login shell (sudo -i) reads
// what is typed, Ctrl-C interrupts its foreground job, the window size
// follows, and what root writes stays in the project's writable layer.
func TestShellSudo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	e.mustRun(t, "pull")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd, master, _, out, _ := shellOnTerminal(ctx, t, e, 33, 111)
	send := stepper(ctx, t, cmd, master, out)
	send("echo user=$(id -u)", 10*time.Second)
	// What is typed before sudo has exited would go to it: the marker,
	// computed, says that the user's shell reads again.
	io.WriteString(master, "sudo -i; echo sudo-$((6*7))\n")
	send("echo root=$(id -u) home=$HOME; stty size", 10*time.Second)
	io.WriteString(master, "sleep 60\n")
	time.Sleep(500 * time.Millisecond)
	master.Write([]byte{0x03})
	send("echo made-by-root > /etc/root-made", 15*time.Second)
	io.WriteString(master, "exit\n")
	if !out.waitFor(ctx, 10*time.Second, "sudo-42") {
		t.Fatalf("sudo -i did not end; output:\n%s", out)
	}
	send("echo back=$(id -u)", 10*time.Second)
	io.WriteString(master, "exit 0\n")
	if err := cmd.Wait(); err != nil || ctx.Err() != nil {
		t.Fatalf("devbox shell: %v; output:\n%s", err, out)
	}
	uid := strconv.Itoa(os.Getuid())
	text := out.String()
	for _, want := range []string{"user=" + uid, "root=0 home=/root", "33 111", "back=" + uid} {
		if !strings.Contains(text, want) {
			t.Errorf("the terminal session lacks %q; output:\n%s", want, text)
		}
	}
	if r := e.mustRun(t, "run", "--", "cat", "/etc/root-made"); r.Stdout != "made-by-root\n" {
		t.Errorf("what root wrote is not in the project's layer; %s", r)
	}
}

// shellOnTerminal starts 'devbox shell' in e's project as onTerminal
// does, on a terminal of rows by cols, and waits for its prompt. before
// is the terminal's settings before devbox started.
func shellOnTerminal(ctx context.Context, t *testing.T, e *testEnv, rows, cols uint16) (cmd *exec.Cmd, master, slave *os.File, out *ptyOutput, before *unix.Termios) {
	t.Helper()
	cmd, master, slave = onTerminal(ctx, t, e, "shell")
	if err := pty.Setsize(master, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out = newPtyOutput(master)
	if !out.waitFor(ctx, 20*time.Second, "$ ", "# ") {
		t.Fatalf("no prompt; output:\n%s", out)
	}
	return cmd, master, slave, out, before
}

// onTerminal is devbox ARGS in e's project as a person at a terminal runs
// it: in a session of its own whose controlling terminal is a new pty,
// with that terminal as standard input, output and error (a caller changes
// the latter two to redirect them). The pty closes when the test ends.
func onTerminal(ctx context.Context, t *testing.T, e *testEnv, args ...string) (cmd *exec.Cmd, master, slave *os.File) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		master.Close()
		slave.Close()
	})
	cmd = exec.CommandContext(ctx, suite.bin, args...)
	cmd.Dir, cmd.Env = e.Project, e.environ()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd, master, slave
}
