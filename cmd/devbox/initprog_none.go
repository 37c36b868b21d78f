//go:build !devbox_init

package main

// Built without the devbox_init tag (go build, go install), devbox has no
// init program of its own: a sandbox's pid 1 is devbox re-executed.
var (
	initProgram    []byte
	initProgramSum string
)
