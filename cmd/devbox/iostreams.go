package main

import (
	"encoding/json"
	"io"
	"os"

	"github.com/charmbracelet/log"
	"golang.org/x/term"
)

// IOStreams are the standard streams of one devbox invocation, and the
// decisions that depend on them (terminal or not, colour, verbosity).
type IOStreams struct {
	In     *os.File
	Out    io.Writer
	ErrOut io.Writer
	// OutFile and ErrFile are Out and ErrOut when they are files, for
	// handing to a sandbox; nil otherwise.
	OutFile, ErrFile *os.File
	// Quiet suppresses progress and informational messages.
	Quiet bool
}

// System returns the process's own streams.
func System() *IOStreams {
	return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, OutFile: os.Stdout, ErrFile: os.Stderr}
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	return f != nil && term.IsTerminal(int(f.Fd()))
}

// Logger writes messages to ErrOut; NO_COLOR and non-terminals get plain
// text.
func (s *IOStreams) Logger() *log.Logger {
	l := log.NewWithOptions(s.ErrOut, log.Options{ReportTimestamp: false})
	if s.Quiet {
		l.SetLevel(log.WarnLevel)
	}
	return l
}

// printJSON writes v to w as indented JSON, for --json.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
