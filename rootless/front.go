package rootless

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/devboxhq/devbox/internal/fsutil"
	"github.com/devboxhq/devbox/internal/wire"
	"golang.org/x/sys/unix"
)

// A warm `devbox run` or `devbox shell` skips the Go CLI: devbox's front
// (internal/front), C code that runs from the executable's entry point
// before the Go runtime, creates the sandbox's pid 1 as Start would. pid 1
// reads the Front record that the last run in that directory left, which
// holds the Spec and everything the CLI read to make it, checks that none
// of it changed, and takes the project's locks, all still in C
// (internal/front/c/record.h). When anything changed, or the record is
// missing, pid 1 says so (msgFallback) and exits, and the CLI runs as it
// always does and writes a new record. For a plain run the front sets the
// sandbox up, starts the command and reaps as pid 1 in C
// (internal/front/c/sandbox.h), until a joiner or sudo comes: then pid 1
// executes its Go program (Init, stage "front", with frontCommandEnv),
// which takes over. For any other run pid 1 executes its Go program at
// once, with the record and the command, and it sets the sandbox up.

// frontStage is the value of initEnv in a pid 1 that the front started.
const frontStage = "front"

// msgFallback is pid 1's answer to the front when it cannot run the
// command from the record: the CLI is to run it.
const msgFallback msgType = "fallback"

// frontVersion starts an encoded Front record.
const frontVersion = 2

// Front is what a warm `devbox run` in one directory needs without the
// CLI: the Spec of the last run there, and what the CLI read to make it.
type Front struct {
	// Init is pid 1's program (the Spec's sudo is bound from it): a
	// record another devbox version wrote is not used.
	Init string
	// Kernel is the kernel release the root filesystem was chosen for.
	Kernel   string
	UID, GID uint32
	// Cwd is the directory devbox ran in. EnvNames are the variables
	// the CLI read (a name ending in "*" stands for every one it
	// begins), and Env hashes their values (EnvHash).
	Cwd      string
	EnvNames []string
	Env      uint64
	// Inputs are the files and directories the CLI read or looked for,
	// with what they were: a change to any (a new inode, size, time or
	// mode, or one that appeared or went) makes the record stale.
	Inputs []Input
	// Scripts are devbox.toml's [scripts], for `devbox run NAME`, and
	// Shell is the command of `devbox shell`.
	Scripts map[string]string
	Shell   []string
	// ProjectLock, UpperLock and Running are the project's locks, which
	// pid 1 holds as the CLI would (env.Environment.Running, rootView).
	ProjectLock, UpperLock, Running string
	// Spec is the sandbox, its command's arguments aside.
	Spec Spec
}

// Input is one file the CLI read or looked for, and what it was.
type Input struct {
	Path string
	// Identity: only which file path is counts (its device and inode),
	// for a directory whose contents change as the sandbox runs (the
	// writable layer).
	Identity bool
	Stat     []uint64
}

// NewInput records path as it is now.
func NewInput(path string) Input { return Input{Path: path, Stat: stamp(path)} }

// NewIdentityInput records which file path is now.
func NewIdentityInput(path string) Input {
	return Input{Path: path, Identity: true, Stat: identity(path)}
}

// identity is path's device and inode, or the error of its stat(2).
func identity(path string) []uint64 {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		var errno unix.Errno
		errors.As(err, &errno)
		return []uint64{1<<63 | uint64(errno), 0}
	}
	return []uint64{st.Dev, st.Ino}
}

// stamp is what path is: its lstat(2) and stat(2) identity, size, mode and
// times, or the errors of each.
func stamp(path string) []uint64 {
	out := make([]uint64, 0, 14)
	for _, f := range []func(string, *unix.Stat_t) error{unix.Lstat, unix.Stat} {
		var st unix.Stat_t
		if err := f(path, &st); err != nil {
			var errno unix.Errno
			errors.As(err, &errno)
			out = append(out, 1<<63|uint64(errno), 0, 0, 0, 0, 0, 0)
			continue
		}
		out = append(out, st.Dev, st.Ino, uint64(st.Mode), uint64(st.Size),
			uint64(st.Mtim.Nano()), uint64(st.Ctim.Nano()), uint64(st.Nlink))
	}
	return out
}

// Settled reports whether no input of r changed since t, while the CLI
// read it: a record of inputs that did could describe them as they were
// after it read them, and a run would take it for current.
func (r *Front) Settled(t time.Time) bool {
	// File times come from a clock that may lag by a tick (4 ms at 250 Hz).
	since := t.Add(-10 * time.Millisecond).UnixNano()
	for _, in := range r.Inputs {
		if in.Identity {
			continue
		}
		// lstat's, then stat's: each a device, an inode, the mode, the
		// size, mtime, ctime and links, or an error.
		for part := 0; part+6 < len(in.Stat); part += 7 {
			s := in.Stat[part:]
			if s[0]>>63 == 0 && (int64(s[4]) >= since || int64(s[5]) >= since) {
				return false
			}
		}
	}
	return true
}

// EnvHash hashes the variables of env (os.Environ()) that names name
// (see Front.EnvNames), in any order, and which of them are unset.
func EnvHash(env, names []string) uint64 {
	counts := func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.ContainsFunc(names, func(n string) bool {
			if prefix, ok := strings.CutSuffix(n, "*"); ok {
				return strings.HasPrefix(name, prefix)
			}
			return n == name
		})
	}
	var set []string
	for _, kv := range env {
		if counts(kv) {
			set = append(set, kv)
		}
	}
	slices.Sort(set)
	h := fnv.New64a()
	for _, kv := range set {
		h.Write([]byte(kv))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// FrontPath is where the Front record of a run in cwd is kept, under
// devbox's data directory.
func FrontPath(dataDir, cwd string) string {
	h := fnv.New64a()
	h.Write([]byte(cwd))
	return filepath.Join(dataDir, "front", strconv.FormatUint(h.Sum64(), 16))
}

// FrontModes are the suffixes of the records of one directory
// (FrontPath), one per kind of run: without a terminal, with one on
// stdin, and with one on stdin and stdout (Process.Terminal and
// TerminalOutput), whose sandboxes differ.
var FrontModes = []string{"", ".t", ".tt"}

// frontMode is the suffix of the record of a run with a terminal on stdin
// (terminal) and on stdout (output).
func frontMode(terminal, output bool) string {
	switch {
	case terminal && output:
		return FrontModes[2]
	case terminal:
		return FrontModes[1]
	}
	return FrontModes[0]
}

// SaveFront writes r as the record of its kind of run in the directory
// whose records path names (FrontPath), complete or not at all, and
// beside it path.lock, a link to the lock of the project's writable layer:
// the front probes that before it starts pid 1, and leaves a run that
// would join the project's running sandbox to the CLI.
func SaveFront(path string, r *Front) error {
	spec, err := r.Spec.MarshalBinary()
	if err != nil {
		return err
	}
	e := &wire.Encoder{B: make([]byte, 0, 4096)}
	e.Uint(frontVersion)
	e.String(r.Init)
	e.String(r.Kernel)
	e.Uint(uint64(r.UID))
	e.Uint(uint64(r.GID))
	e.String(r.Cwd)
	e.Strings(r.EnvNames)
	e.Uint(r.Env)
	e.Len(len(r.Inputs), r.Inputs == nil)
	for _, in := range r.Inputs {
		e.String(in.Path)
		e.Bool(in.Identity)
		e.Len(len(in.Stat), in.Stat == nil)
		for _, v := range in.Stat {
			e.Uint(v)
		}
	}
	e.Map(r.Scripts)
	e.Strings(r.Shell)
	e.String(r.ProjectLock)
	e.String(r.UpperLock)
	e.String(r.Running)
	e.String(string(spec))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := fsutil.WriteAtomic(path+frontMode(r.Spec.Process.Terminal, r.Spec.Process.TerminalOutput), e.B, 0o600); err != nil {
		return err
	}
	if target, err := os.Readlink(path + ".lock"); err == nil && target == r.UpperLock {
		return nil
	}
	tmp := path + ".lock-" + fsutil.RandomSuffix()
	if err := os.Symlink(r.UpperLock, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path+".lock"); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// decodeFront decodes the record SaveFront wrote.
func decodeFront(b []byte) (*Front, error) {
	d := &wire.Decoder{B: b}
	if v := d.Uint(); v != frontVersion && d.Err == nil {
		return nil, fmt.Errorf("record version %d, want %d", v, frontVersion)
	}
	r := &Front{Init: d.String(), Kernel: d.String(), UID: uint32(d.Uint()), GID: uint32(d.Uint()), Cwd: d.String(), EnvNames: d.Strings(), Env: d.Uint()}
	r.Inputs = wire.Slice[Input](d, 2)
	for i := range r.Inputs {
		r.Inputs[i].Path = d.String()
		r.Inputs[i].Identity = d.Bool()
		r.Inputs[i].Stat = wire.Slice[uint64](d, 1)
		for j := range r.Inputs[i].Stat {
			r.Inputs[i].Stat[j] = d.Uint()
		}
	}
	r.Scripts = d.Map()
	r.Shell = d.Strings()
	r.ProjectLock, r.UpperLock, r.Running = d.String(), d.String(), d.String()
	spec := d.String()
	if err := d.Done(); err != nil {
		return nil, err
	}
	if err := r.Spec.UnmarshalBinary([]byte(spec)); err != nil {
		return nil, err
	}
	return r, nil
}

// The descriptors the front gives pid 1 beside fdSpec, fdSync and fdPty
// (internal/front/c/front.c): the project's three locks, which pid 1
// holds until the sandbox's last process is gone, and when the front
// started the command (frontCommandEnv), the sockets it listens on for
// joiners and for sudo, where one of them has come (-1 for none).
const (
	fdUpperLock    = 6
	fdProjectLock  = 7
	fdRunning      = 8
	fdJoinListener = 9
	fdSudoListener = 10
)

// frontCommandEnv names, in a pid 1 the front started, the pid of the
// sandbox's command when the front set the sandbox up, started the
// command and reaped for it until a joiner or sudo came: this program
// takes over from there.
const frontCommandEnv = "_DEVBOX_FRONT_COMMAND"

// frontSpec is the Spec of the command args in the record the front
// checked (on fdSpec) for pid 1, and the release of the locks the front
// took: as the CLI's, they are held until the sandbox's last process is
// gone.
func frontSpec(args []string) (*Spec, []func(), error) {
	var held []func()
	for _, fd := range []int{fdUpperLock, fdProjectLock, fdRunning} {
		held = append(held, func() { unix.Close(fd) })
	}
	f := os.NewFile(fdSpec, "record")
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return nil, held, err
	}
	r, err := decodeFront(b)
	if err != nil {
		return nil, held, err
	}
	spec := &r.Spec
	spec.Process.Args = args
	if spec.Process.Terminal {
		// The sandbox's terminal starts at the size of the caller's
		// now, not the last run's.
		if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
			spec.Process.Rows, spec.Process.Cols = ws.Row, ws.Col
		}
	}
	return spec, held, nil
}
