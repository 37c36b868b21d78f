package rootless

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// selfExe is what a sandbox's pid 1 runs without an init program: this
// executable again, whose main calls Init first.
const selfExe = "/proc/self/exe"

// initProg is the program set by UseInitProgram.
var initProg struct {
	data []byte
	sum  string
	dir  func() (string, error)
	once sync.Once
	path string
	err  error // why path is selfExe
}

// UseInitProgram makes Start run data, an executable whose main calls Init
// (cmd/devbox-init), as a sandbox's pid 1 instead of this executable: a
// program that links only this package starts in about half the time of
// the whole CLI. sum is the hex sha256 of data; dir says where to keep the
// copy of it that is executed, made on first use. If the copy cannot be
// made or executed from there, pid 1 is this executable, as without an
// init program.
func UseInitProgram(data []byte, sum string, dir func() (string, error)) {
	initProg.data, initProg.sum, initProg.dir = data, sum, dir
}

// initExecutable is the path Start executes as pid 1.
func initExecutable() string {
	if initProg.data == nil {
		return selfExe
	}
	initProg.once.Do(func() {
		initProg.path = selfExe
		dir, err := initProg.dir()
		if err == nil {
			var path string
			if path, err = installInitProgram(dir, initProg.data, initProg.sum); err == nil {
				initProg.path = path
			}
		}
		initProg.err = err
	})
	return initProg.path
}

// checkInitProgram says which program a sandbox's pid 1 runs.
func checkInitProgram() Check {
	c := Check{Name: "sandbox init (pid 1)"}
	switch {
	case initProg.data == nil:
		c.Detail = "devbox re-executes itself: it was built without the devbox-init program that 'make build' embeds"
		c.Fix = "build devbox with 'make build': a sandbox then starts about 2 ms sooner"
	case initExecutable() == selfExe:
		c.Detail = fmt.Sprintf("devbox re-executes itself: its copy of devbox-init is unusable: %v", initProg.err)
		c.Fix = "set XDG_CACHE_HOME to a writable directory on a filesystem mounted without noexec"
	default:
		c.OK, c.Detail = true, initExecutable()
	}
	return c
}

// installInitProgram returns dir/devbox-init-SUM, written (complete, by a
// rename) unless it is there already with data's size. It refuses a dir on
// a noexec mount, and removes the old copies that other versions left.
func installInitProgram(dir string, data []byte, sum string) (string, error) {
	if len(sum) < 16 {
		return "", fmt.Errorf("init program: checksum %q is too short", sum)
	}
	path := filepath.Join(dir, "devbox-init-"+sum[:16])
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() == int64(len(data)) {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", err
	}
	if st.Flags&unix.ST_NOEXEC != 0 {
		return "", &os.PathError{Op: "exec", Path: dir, Err: unix.EACCES}
	}
	tmp, err := os.CreateTemp(dir, ".tmp-devbox-init-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o700)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	// Copies of other versions go once they are a day old: two devbox
	// versions used by turns would otherwise remove each other's on every
	// run and write their own again.
	old, _ := filepath.Glob(filepath.Join(dir, "devbox-init-*"))
	for _, o := range old {
		if fi, err := os.Stat(o); err == nil && o != path && time.Since(fi.ModTime()) > staleInitProgram {
			os.Remove(o)
		}
	}
	return path, nil
}

// staleInitProgram is the age at which another version's copy of the init
// program is removed.
const staleInitProgram = 24 * time.Hour
