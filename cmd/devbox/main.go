// Command devbox opens reproducible, rootless development environments
// described by a project's devbox.toml.
package main

import (
	"os"

	"github.com/devboxhq/devbox/rootless"
)

func main() {
	// A sandbox's pid 1 is this same binary, re-executed; it must not
	// build the CLI, so the check comes first.
	if rootless.IsInit() {
		os.Exit(rootless.Init())
	}
	os.Exit(Main(NewFactory(System())))
}
