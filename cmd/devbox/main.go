// Command devbox opens reproducible, rootless development environments
// described by a project's devbox.toml.
package main

import (
	"os"
	"path/filepath"

	"github.com/devboxhq/devbox/internal/fullprog"
	"github.com/devboxhq/devbox/rootless"
)

func main() {
	// A sandbox's pid 1 may be this same binary, re-executed (see
	// UseInitProgram); it must not build the CLI, so the check comes first.
	if rootless.IsInit() {
		os.Exit(rootless.Init())
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
	// parsed (startEarly).
	release := func() {}
	if len(os.Args) > 1 && (os.Args[1] == "run" || os.Args[1] == "shell") {
		release = startEarly(f)
	}
	code := Main(f)
	release()
	os.Exit(code)
}
