package main

import (
	"encoding/json"
	"io"
	"os"

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
func (s *IOStreams) Logger() *Logger {
	f, _ := s.ErrOut.(*os.File)
	return &Logger{w: s.ErrOut, quiet: s.Quiet, color: IsTerminal(f) && os.Getenv("NO_COLOR") == ""}
}

// Logger writes devbox's messages, a line each with its level first
// ("INFO pulling debian"). It is all the logging devbox does, which is why
// it is not a logging library: charmbracelet/log and its terminal
// packages cost about 0.2 ms of package initialisation at every start.
type Logger struct {
	w     io.Writer
	quiet bool
	color bool
}

// Info reports what devbox is doing; --quiet drops it.
func (l *Logger) Info(msg string) {
	if l.quiet {
		return
	}
	level := "INFO"
	if l.color {
		level = "\x1b[1;38;5;86m" + level + "\x1b[0m"
	}
	io.WriteString(l.w, level+" "+msg+"\n")
}

// printJSON writes v to w as indented JSON, for --json.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
