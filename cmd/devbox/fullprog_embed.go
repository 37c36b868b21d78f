//go:build devbox_lean

package main

import (
	_ "embed"
	"strings"
)

// The full program (package fullprog): devbox built without the
// devbox_lean tag, and its sha256, which `make build` puts in fullprog/
// before it builds the lean devbox.
var (
	//go:embed fullprog/devbox-full
	fullProgram []byte
	//go:embed fullprog/devbox-full.sha256
	fullProgramSum string
)

func init() {
	fullProgramSum = strings.TrimSpace(fullProgramSum)
}
