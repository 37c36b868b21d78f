// Package fullprog runs devbox's full program in place of the lean one.
//
// `make build` makes devbox in two programs. The lean one is what users run:
// it leaves out the registry client and the decoders of archives and
// compressed layers, whose package initialisation and size cost about a
// millisecond at every start, and it handles every command whose work is
// already cached: a warm `devbox run` or `devbox shell` never needs them.
// The full program is the whole CLI; the lean one carries it and executes
// it with the same arguments when a command needs a pull, an archive
// download or an extraction, before it has changed anything. It is
// carried uncompressed: Go's gzip takes about 100 ms to inflate it, which
// the first pull of every user would wait for, against about 10 ms to
// write it out as it is.
package fullprog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"github.com/devboxhq/devbox/internal/embedded"
	"golang.org/x/sys/unix"
)

// ErrNeeded is returned by the lean program's stand-ins for the code it
// leaves out. cmd/devbox's main then executes the full program.
var ErrNeeded = errors.New("devbox: this needs the full program (registry client and archive decoders)")

// program is the full program set by Use.
var program struct {
	data []byte
	sum  string
	dir  func() (string, error)
}

// Use sets the full program: data is the executable and sum its hex
// sha256; dir says where to keep its copy, made on first use.
func Use(data []byte, sum string, dir func() (string, error)) {
	program.data, program.sum, program.dir = data, sum, dir
}

// Lean reports whether this is the lean program, with a full program to
// hand over to. A caller checks it before it reports work (a "pulling"
// line, say) that ErrNeeded would then stop, and that the full program
// would report again.
func Lean() bool { return program.data != nil }

// Exec executes the full program in place of this process, with the same
// arguments and environment. It returns only when it cannot: without a
// full program (a build that needs none never gets ErrNeeded), or when no
// copy of it can be made and executed.
func Exec() error {
	if program.data == nil {
		return ErrNeeded
	}
	path, err := Copy()
	if err != nil {
		// A cache on a noexec mount, say: run it from memory instead.
		var mem *os.File
		if mem, err = inMemory(); err == nil {
			defer mem.Close()
			path = "/proc/self/fd/" + strconv.Itoa(int(mem.Fd()))
		}
	}
	if err == nil {
		err = syscall.Exec(path, os.Args, os.Environ())
	}
	return fmt.Errorf("run devbox's full program: %w", err)
}

// Copy returns the path of the cache's copy of the full program, made if
// it is not there yet.
func Copy() (string, error) {
	dir, err := program.dir()
	if err != nil {
		return "", err
	}
	return embedded.Install(dir, "devbox-full", program.sum, int64(len(program.data)), write)
}

// inMemory writes the full program to a memfd. It is not close-on-exec:
// the exec runs the program from it.
func inMemory() (*os.File, error) {
	fd, err := unix.MemfdCreate("devbox-full", 0)
	if err != nil {
		return nil, &os.SyscallError{Syscall: "memfd_create", Err: err}
	}
	f := os.NewFile(uintptr(fd), "devbox-full")
	if err := write(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// write writes the full program to w.
func write(w io.Writer) error {
	_, err := w.Write(program.data)
	return err
}
