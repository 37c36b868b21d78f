package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSignalsForwarded: a signal sent to devbox reaches the command
// inside, which may handle it and exit with its own status.
func TestSignalsForwarded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	e.mustRun(t, "pull")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
			defer cancel()
			script := fmt.Sprintf(`trap 'echo got-%d; exit 5' %d; echo ready; while :; do sleep 1; done`, int(sig), int(sig))
			cmd := exec.CommandContext(ctx, suite.bin, "run", "--", "sh", "-c", script)
			cmd.Dir, cmd.Env = e.Project, e.environ()
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			for !strings.Contains(out.String(), "ready") {
				if ctx.Err() != nil {
					t.Fatalf("the command never got ready: %s", out.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			cmd.Process.Signal(sig)
			cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != 5 || !strings.Contains(out.String(), fmt.Sprintf("got-%d", int(sig))) {
				t.Errorf("after %v: exit %d, output %q; want the trap's exit 5", sig, code, out.String())
			}
		})
	}
}

// TestNothingOutlivesRun: a process the command leaves in the background
// is killed when the command exits.
func TestNothingOutlivesRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, imageRef(suite.registry, "busybox"))
	marker := fmt.Sprintf("%d", 400000+os.Getpid()%100000)
	e.mustRun(t, "run", "--", "sh", "-c", "sleep "+marker+" & echo started")
	out, _ := exec.Command("pgrep", "-f", "sleep "+marker).Output()
	if len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("a background sleep outlived devbox run: pids %s", out)
	}
}

// syncBuffer is a bytes.Buffer safe for the writer and a polling reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
