// Command devbox opens reproducible, rootless development environments
// described by a project's devbox.toml.
package main

import (
	"os"
	"path/filepath"
	"runtime"

	"github.com/devboxhq/devbox/internal/fullprog"
	"github.com/devboxhq/devbox/rootless"
)

func main() {
	// A sandbox's pid 1 may be this same binary, re-executed (see
	// UseInitProgram); it must not build the CLI, so the check comes first.
	if rootless.IsInit() {
		os.Exit(rootless.Init())
	}
	// So may the sandbox's sudo, which is pid 1's program.
	if rootless.IsSudo() {
		os.Exit(rootless.Sudo(os.Args[1:]))
	}
	f := NewFactory(System())
	// The programs devbox carries run from copies in the user's cache.
	cacheDir := func(name string) func() (string, error) {
		return func() (string, error) {
			dirs, err := f.Dirs()
			if err != nil {
				return "", err
			}
			return filepath.Join(dirs.Cache, name), nil
		}
	}
	if initProgram != nil {
		rootless.UseInitProgram(initProgram, initProgramSum, cacheDir("init"))
	}
	if fullProgram != nil {
		fullprog.Use(fullProgram, fullProgramSum, cacheDir("full"))
	}
	// pid 1 of a run or a shell is created before the command line is
	// parsed (startEarly), unless the project's sandbox runs already: the
	// command joins it, and a pid 1 of its own would only cost time.
	release := func() {}
	if len(os.Args) > 1 && (os.Args[1] == "run" || os.Args[1] == "shell") {
		if fullProgram != nil {
			// The lean program's run and shell wait far more than they
			// compute, beside pid 1 starting up on the same cores: with
			// one P the Go runtime starts no threads to spin for work,
			// and exits with fewer (A/B: 0.22 ms less per warm run). The
			// full program, which a pull or an unpack needs and which
			// runs in place of this one, keeps one P per core.
			runtime.GOMAXPROCS(1)
		}
		if f.Joining = sandboxRunning(f); !f.Joining {
			release = startEarly(f)
		}
	}
	code := Main(f)
	release()
	os.Exit(code)
}
