//go:build devbox_init

package main

import (
	_ "embed"
	"strings"
)

// The sandbox init program (cmd/devbox-init) and its sha256, which `make
// build` puts in initprog/ before it builds devbox with the devbox_init
// tag.
var (
	//go:embed initprog/devbox-init
	initProgram []byte
	//go:embed initprog/devbox-init.sha256
	initProgramSum string
)

func init() {
	initProgramSum = strings.TrimSpace(initProgramSum)
}
