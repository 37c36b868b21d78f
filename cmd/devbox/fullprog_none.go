//go:build !devbox_lean

package main

// Built without the devbox_lean tag, devbox is the full program itself.
var (
	fullProgram    []byte
	fullProgramSum string
)
