package rootless

import (
	"fmt"
	"io"
	"sync"

	"github.com/devboxhq/devbox/internal/embedded"
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

// InitExecutable is the path Start executes as pid 1 (a Front record's
// Init).
func InitExecutable() string { return initExecutable() }

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

// installInitProgram returns the path of dir's copy of the init program
// data, made on first use (embedded.Install).
func installInitProgram(dir string, data []byte, sum string) (string, error) {
	return embedded.Install(dir, "devbox-init", sum, int64(len(data)), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
