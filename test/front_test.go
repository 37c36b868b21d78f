package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// frontRun is one devbox invocation that reports whether the front ran
// it, rather than the Go program: the front is one thread, a Go program
// several. The command must print a line first, and run on a while after.
type frontRun struct {
	args  []string
	env   []string // beside the test environment's
	stdin string
	dir   string // the project's directory when empty
	// plain, when set, is set to whether the front also set the
	// sandbox up and started the command itself (a plain run), rather
	// than pid 1's Go program (setUpByFront).
	plain *bool
}

// startedRun is a devbox invocation that has printed its first line.
type startedRun struct {
	cmd    *exec.Cmd
	first  string
	rest   *bufio.Reader
	stderr *bytes.Buffer
	// front: the front runs it, with one thread where a Go program has
	// several.
	front bool
}

// start starts fr under ctx and reads the first line its command prints.
func (fr frontRun) start(t *testing.T, e *testEnv, ctx context.Context) startedRun {
	t.Helper()
	cmd := exec.CommandContext(ctx, suite.bin, fr.args...)
	cmd.Dir = e.Project
	if fr.dir != "" {
		cmd.Dir = fr.dir
	}
	cmd.Env = append(append(e.environ(), "PWD="+cmd.Dir), fr.env...)
	cmd.Stdin = strings.NewReader(fr.stdin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := startedRun{cmd: cmd, rest: bufio.NewReader(out), stderr: new(bytes.Buffer)}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.first, _ = s.rest.ReadString('\n')
	s.front = strings.Contains(procStatus(cmd.Process.Pid), "Threads:\t1\n")
	return s
}

func (fr frontRun) run(t *testing.T, e *testEnv) (r result, front bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	s := fr.start(t, e, ctx)
	if fr.plain != nil {
		*fr.plain = s.front && setUpByFront(t, s.cmd.Process.Pid)
	}
	rest, _ := readAll(s.rest)
	s.cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("devbox %s timed out", strings.Join(fr.args, " "))
	}
	return result{Args: fr.args, Stdout: s.first + rest, Stderr: s.stderr.String(), Code: s.cmd.ProcessState.ExitCode()}, s.front
}

// setUpByFront reports whether the front set up the sandbox of the
// devbox process pid, which must be running, and started its command
// itself (a plain run): its pid 1 is still the front's C, or a Go program
// that took over from it for a joiner or sudo (rootless.frontCommandEnv).
func setUpByFront(t *testing.T, pid int) bool {
	t.Helper()
	comm, env := pid1Of(t, pid)
	return !strings.HasPrefix(comm, "devbox-init") || strings.Contains(env, "_DEVBOX_FRONT_COMMAND=")
}

// pid1Of is the name and the environment of the sandbox's pid 1, the
// child of the running devbox process pid.
func pid1Of(t *testing.T, pid int) (comm, environ string) {
	t.Helper()
	children, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", strconv.Itoa(pid), "children"))
	if err != nil {
		t.Fatal(err)
	}
	pid1 := strings.Fields(string(children))
	if len(pid1) != 1 {
		t.Fatalf("the front has children %q, want pid 1 alone", pid1)
	}
	c, err1 := os.ReadFile(filepath.Join("/proc", pid1[0], "comm"))
	env, err2 := os.ReadFile(filepath.Join("/proc", pid1[0], "environ"))
	if err1 != nil || err2 != nil {
		t.Fatal(errors.Join(err1, err2))
	}
	return string(c), string(env)
}

// procStatus is the status file of process pid.
func procStatus(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	return string(b)
}

func readAll(r *bufio.Reader) (string, error) {
	b, err := io.ReadAll(r)
	return string(b), err
}

// untilFront runs a devbox invocation, which reports whether the front
// ran it, until it does: the first may pull, the second writes the record.
func untilFront(t *testing.T, what string, run func() (front bool)) {
	t.Helper()
	for try := 1; try <= 3; try++ {
		if run() {
			return
		}
	}
	t.Fatalf("the front did not %s by its third run", what)
}

// warm runs fr until the front runs it (the first run pulls, the second
// writes the record) and returns that run.
func (fr frontRun) warm(t *testing.T, e *testEnv) result {
	t.Helper()
	var r result
	untilFront(t, "run devbox "+strings.Join(fr.args, " "), func() (front bool) {
		r, front = fr.run(t, e)
		return front
	})
	return r
}

// TestRunFront checks that a warm `devbox run` that the front runs does
// what the Go program does, and that whatever the run depends on, once
// changed, reaches the command.
func TestRunFront(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the front is amd64's")
	}
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	e.writeConfig(t, "[image]\nref = \""+imageRef(suite.registry, "busybox")+"\"\n[env]\nGREETING = \"hello\"\nFROM_HOST = \"${localEnv:DEVBOX_TEST_VALUE:unset}\"\n[scripts]\ngreet = \"echo $GREETING \\\"$1\\\"; sleep 0.3\"\n")
	var plain bool
	show := frontRun{args: []string{"run", "--", "sh", "-c", "echo $GREETING $FROM_HOST; sleep 0.3; echo err >&2; exit 3"}, plain: &plain}

	r := show.warm(t, e)
	if r.Code != 3 || r.Stdout != "hello unset\n" || r.Stderr != "err\n" {
		t.Errorf("the front's run: want exit 3, \"hello unset\" and \"err\"; %s", r)
	}
	if !plain {
		t.Error("the front left a plain run's sandbox to pid 1's Go program")
	}
	if _, front := (frontRun{args: show.args, env: []string{"DEVBOX_FRONT=0"}}).run(t, e); front {
		t.Error("DEVBOX_FRONT=0: the front ran devbox")
	}

	t.Run("a writable layer whose directories link to host paths", func(t *testing.T) {
		// Changed between runs, the writable layer is not part of the
		// record: the front sets up a sandbox on it as it is, and must
		// resolve every mount inside it, as the Go program does.
		uppers, _ := filepath.Glob(filepath.Join(e.Data, "devbox", "projects", "*", "upper"))
		if len(uppers) != 1 {
			t.Fatalf("want the project's writable layer, found %q", uppers)
		}
		for _, name := range []string{"etc", "tmp", "dev", "proc", "sys"} {
			write := frontRun{args: []string{"run", "--", "sh", "-c", "echo ready; echo x > /tmp/written; echo y > /etc/written; sleep 0.3"}}
			var plain bool
			write.plain = &plain
			write.warm(t, e)
			if !plain {
				t.Fatal("the front left a plain run's sandbox to pid 1's Go program")
			}
			victim := t.TempDir()
			dir, saved := filepath.Join(uppers[0], name), filepath.Join(t.TempDir(), name)
			moved := os.Rename(dir, saved) == nil
			if err := os.Symlink(victim, dir); err != nil {
				t.Fatal(err)
			}
			write.plain = nil
			r, _ := write.run(t, e)
			os.Remove(dir)
			if moved {
				if err := os.Rename(saved, dir); err != nil {
					t.Fatal(err)
				}
			}
			if entries, _ := os.ReadDir(victim); len(entries) != 0 {
				t.Errorf("/%s a link to %s: the run wrote %d entries there; %s", name, victim, len(entries), r)
			}
		}
	})
	t.Run("sudo, and a run that joins, in the front's sandbox", func(t *testing.T) {
		args := []string{"run", "--", "sh", "-c", "echo here > /tmp/marker; sudo id -u; sleep 1"}
		untilFront(t, "set up a sandbox that others join", func() (plain bool) {
			s := frontRun{args: args}.start(t, e, context.Background())
			plain = s.front && setUpByFront(t, s.cmd.Process.Pid)
			joined := e.run(t, "run", "--", "cat", "/tmp/marker")
			s.cmd.Wait()
			if code := s.cmd.ProcessState.ExitCode(); s.first != "0\n" || code != 0 {
				t.Errorf("sudo id -u: want 0 and exit 0, got %q, exit %d, stderr %q", s.first, code, s.stderr)
			}
			if joined.Code != 0 || joined.Stdout != "here\n" {
				t.Errorf("a run beside it: want it to join and see its /tmp; %s", joined)
			}
			return plain
		})
	})
	t.Run("the user's environment stays out of pid 1", func(t *testing.T) {
		// pid 1 of a plain run is the front's own process, whose
		// environment the sandbox could read in /proc/1/environ.
		secret := "FRONT_TEST_SECRET=s3cr3t-" + strconv.Itoa(os.Getpid())
		untilFront(t, "set up a sandbox", func() (plain bool) {
			s := frontRun{args: []string{"run", "--", "sh", "-c", "echo ready; sleep 0.3"}, env: []string{secret}}.start(t, e, context.Background())
			defer s.cmd.Wait()
			if !s.front {
				return false
			}
			if _, env := pid1Of(t, s.cmd.Process.Pid); strings.Contains(env, secret) {
				t.Errorf("pid 1's environment holds the user's %s", secret)
			}
			return setUpByFront(t, s.cmd.Process.Pid)
		})
	})
	t.Run("a script, and the words after it", func(t *testing.T) {
		r := frontRun{args: []string{"run", "greet", "world"}}.warm(t, e)
		if r.Code != 0 || r.Stdout != "hello world\n" {
			t.Errorf("want \"hello world\"; %s", r)
		}
	})
	t.Run("standard input", func(t *testing.T) {
		r := frontRun{args: []string{"run", "--", "sh", "-c", "echo ready; cat; sleep 0.3"}, stdin: "from stdin\n"}.warm(t, e)
		if r.Stdout != "ready\nfrom stdin\n" {
			t.Errorf("want stdin copied; %s", r)
		}
	})
	t.Run("the project reached through a symlink", func(t *testing.T) {
		link := filepath.Join(filepath.Dir(e.Project), "link")
		if err := os.Symlink(e.Project, link); err != nil {
			t.Fatal(err)
		}
		r := frontRun{args: []string{"run", "--", "sh", "-c", "pwd; sleep 0.3"}, dir: link}.warm(t, e)
		if r.Stdout != link+"\n" {
			t.Errorf("want the path the user came by; %s", r)
		}
	})
	t.Run("an environment larger than a socket's buffer", func(t *testing.T) {
		// 512 KiB, in variables that are not devbox's: inside they are unset.
		big := frontRun{args: []string{"run", "--", "sh", "-c", "echo ${#BIG0}; sleep 0.3"}}
		for i := range 8 {
			big.env = append(big.env, "BIG"+strconv.Itoa(i)+"="+strings.Repeat("x", 64<<10))
		}
		if r := big.warm(t, e); r.Code != 0 || r.Stdout != "0\n" {
			t.Errorf("want the command to run without BIG0; %s", r)
		}
	})
	t.Run("on a terminal", func(t *testing.T) {
		untilFront(t, "run devbox on a terminal", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
			cmd, master, slave := onTerminal(ctx, t, e, "run", "--", "sh", "-c", "test -t 0 && test -t 1 && echo both-terminals; stty size; read line; echo got $line; sleep 0.3")
			if err := pty.Setsize(master, &pty.Winsize{Rows: 31, Cols: 97}); err != nil {
				t.Fatal(err)
			}
			before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			out := newPtyOutput(master)
			if !out.waitFor(ctx, 10*time.Second, "31 97") {
				t.Fatalf("want the terminal's size inside; terminal:\n%s", out)
			}
			// The front, and its C set the sandbox up too.
			front := strings.Contains(procStatus(cmd.Process.Pid), "Threads:\t1\n") && setUpByFront(t, cmd.Process.Pid)
			master.Write([]byte("typed\r"))
			if !out.waitFor(ctx, 10*time.Second, "got typed") {
				t.Errorf("what is typed did not reach the command; terminal:\n%s", out)
			}
			err = cmd.Wait()
			cancel()
			if err != nil {
				t.Fatalf("devbox run on a terminal: %v; terminal:\n%s", err, out)
			}
			if !strings.Contains(out.String(), "both-terminals") {
				t.Errorf("want a terminal inside; terminal:\n%s", out)
			}
			after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
			if err != nil || *after != *before {
				t.Errorf("the terminal's settings were not restored: %+v, want %+v", after, before)
			}
			return front
		})
	})
	t.Run("on a terminal, with the output piped", func(t *testing.T) {
		untilFront(t, "run devbox with its output piped", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
			cmd, master, _ := onTerminal(ctx, t, e, "run", "--", "sh", "-c", "echo prompt-on-tty > /dev/tty; echo on-stdout; sleep 0.3")
			cmd.Stdout = nil
			pipe, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			out := newPtyOutput(master)
			first, _ := bufio.NewReader(pipe).ReadString('\n')
			front := strings.Contains(procStatus(cmd.Process.Pid), "Threads:\t1\n") && setUpByFront(t, cmd.Process.Pid)
			err = cmd.Wait()
			cancel()
			if err != nil || first != "on-stdout\n" || !out.waitFor(context.Background(), 10*time.Second, "prompt-on-tty") {
				t.Fatalf("want the output in the pipe and the prompt on the terminal: %v, stdout %q, terminal:\n%s", err, first, out)
			}
			return front
		})
	})
	t.Run("devbox shell", func(t *testing.T) {
		untilFront(t, "open devbox shell", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
			cmd, master, _, out, _ := shellOnTerminal(ctx, t, e, 24, 80)
			front := strings.Contains(procStatus(cmd.Process.Pid), "Threads:\t1\n")
			master.Write([]byte("echo $((6*7)); exit 3\r"))
			err := cmd.Wait()
			cancel()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 || !strings.Contains(out.String(), "42") {
				t.Fatalf("want the shell's 42 and its status 3; %v; terminal:\n%s", err, out)
			}
			return front
		})
	})
	t.Run("a command the image lacks", func(t *testing.T) {
		r, _ := frontRun{args: []string{"run", "--", "no-such-command"}}.run(t, e)
		r, front := frontRun{args: []string{"run", "--", "no-such-command"}}.run(t, e)
		if !front || r.Code != 127 || !strings.Contains(r.Stderr, "no-such-command: command not found") {
			t.Errorf("want the front's exit 127 and a message; front %v, %s", front, r)
		}
	})
	t.Run("devbox.toml changes", func(t *testing.T) {
		e.writeConfig(t, strings.Replace(readFile(t, filepath.Join(e.Project, "devbox.toml")), `"hello"`, `"bonjour"`, 1))
		r, front := show.run(t, e)
		if front || r.Stdout != "bonjour unset\n" {
			t.Errorf("want the CLI's run with the new [env]; front %v, %s", front, r)
		}
		if r := show.warm(t, e); r.Stdout != "bonjour unset\n" {
			t.Errorf("want the new [env] from the front; %s", r)
		}
	})
	t.Run("a host variable that [env] names", func(t *testing.T) {
		with := frontRun{args: show.args, env: []string{"DEVBOX_TEST_VALUE=one"}}
		if r := with.warm(t, e); r.Stdout != "bonjour one\n" {
			t.Errorf("want localEnv's value; %s", r)
		}
		with.env = []string{"DEVBOX_TEST_VALUE=two"}
		if r, _ := with.run(t, e); r.Stdout != "bonjour two\n" {
			t.Errorf("want the changed value; %s", r)
		}
		// A variable devbox does not read changes nothing.
		with.env = append(with.env, "SOMETHING_ELSE="+time.Now().String())
		if _, front := with.run(t, e); !front {
			t.Error("a variable devbox ignores made the CLI run devbox")
		}
	})
	t.Run("the SSH agent comes", func(t *testing.T) {
		sock := fakeAgent(t, "agent.sock")
		r, _ := frontRun{args: []string{"run", "--", "sh", "-c", "echo $SSH_AUTH_SOCK; test -S $SSH_AUTH_SOCK && echo socket; sleep 0.3"}, env: []string{"SSH_AUTH_SOCK=" + sock}}.run(t, e)
		if !strings.Contains(r.Stdout, "socket") {
			t.Errorf("want the agent's socket inside; %s", r)
		}
		os.Remove(sock)
		r, _ = frontRun{args: []string{"run", "--", "sh", "-c", "echo ${SSH_AUTH_SOCK:-none}; sleep 0.3"}, env: []string{"SSH_AUTH_SOCK=" + sock}}.run(t, e)
		if r.Stdout != "none\n" {
			t.Errorf("the agent's socket went: want no SSH_AUTH_SOCK inside; %s", r)
		}
	})
	t.Run("signals reach the command", func(t *testing.T) {
		fr := frontRun{args: []string{"run", "--", "sh", "-c", "trap 'echo term; exit 9' TERM; echo ready; while :; do sleep 0.1; done"}}
		fr.checkSignal(t, e)
	})
	t.Run("a reset", func(t *testing.T) {
		mark := frontRun{args: []string{"run", "--", "sh", "-c", "test -e /var/devbox-mark && echo kept || echo gone; sleep 0.3"}}
		e.mustRun(t, "run", "--", "touch", "/var/devbox-mark")
		if r := mark.warm(t, e); r.Stdout != "kept\n" {
			t.Fatalf("want the mark in the writable layer; %s", r)
		}
		e.mustRun(t, "reset")
		if r, _ := mark.run(t, e); r.Stdout != "gone\n" {
			t.Errorf("after a reset, want a fresh writable layer; %s", r)
		}
	})
}

// checkSignal runs a command that waits for SIGTERM through the front, sends
// devbox SIGTERM once it runs, and checks that the command got it.
func (fr frontRun) checkSignal(t *testing.T, e *testEnv) {
	t.Helper()
	untilFront(t, "run devbox "+strings.Join(fr.args, " "), func() bool {
		s := fr.start(t, e, context.Background())
		s.cmd.Process.Signal(syscall.SIGTERM)
		rest, _ := readAll(s.rest)
		s.cmd.Wait()
		if code := s.cmd.ProcessState.ExitCode(); rest != "term\n" || code != 9 {
			t.Errorf("SIGTERM to devbox (front %v): want the command's trap and exit 9, got %q, exit %d", s.front, rest, code)
		}
		return s.front
	})
}
