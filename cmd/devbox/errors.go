package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/devboxhq/devbox/env"
)

// FlagError is a usage error: bad flags or arguments. It exits 2.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// ExitError carries a sandboxed command's exit status out of a command; it
// prints nothing.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// exitCode decides the process's exit status for err, in one place: the
// sandboxed command's own status, 2 for usage and configuration errors, 1
// for everything else. It prints err as one line (plus the source excerpt
// of a TOML syntax error).
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	fmt.Fprintf(stderr, "devbox: %v\n", err)
	var ce *env.ConfigError
	if errors.As(err, &ce) && ce.Detail != "" {
		fmt.Fprintf(stderr, "\n%s\n", ce.Detail)
	}
	var fe *FlagError
	if errors.As(err, &fe) || errors.As(err, &ce) || errors.Is(err, env.ErrNoConfig) {
		return 2
	}
	return 1
}
