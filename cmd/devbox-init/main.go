// Command devbox-init is the pid 1 of devbox's sandboxes, and their sudo
// (rootless.Sudo): a program of its own links only package rootless and so
// starts in a fraction of the time of the whole CLI re-executed. `make build` embeds
// it in devbox (see cmd/devbox/initprog_embed.go); devbox built without it
// re-executes itself instead.
package main

import (
	"fmt"
	"os"

	"github.com/devboxhq/devbox/rootless"
)

func main() {
	// Inside a sandbox, this program is its sudo too.
	if rootless.IsSudo() {
		os.Exit(rootless.Sudo(os.Args[1:]))
	}
	if !rootless.IsInit() {
		fmt.Fprintln(os.Stderr, "devbox-init: this is the pid 1 of devbox's sandboxes; run devbox instead")
		os.Exit(2)
	}
	os.Exit(rootless.Init())
}
