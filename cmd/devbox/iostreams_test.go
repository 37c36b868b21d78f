package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/creack/pty"
)

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	(&IOStreams{ErrOut: &buf}).Logger().Info("pulling debian")
	if got := buf.String(); got != "INFO pulling debian\n" {
		t.Errorf("to a buffer: %q", got)
	}
	buf.Reset()
	(&IOStreams{ErrOut: &buf, Quiet: true}).Logger().Info("pulling debian")
	if buf.Len() != 0 {
		t.Errorf("--quiet printed %q", buf.String())
	}

	// On a terminal the level is coloured, unless NO_COLOR is set.
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	read := func() string {
		t.Helper()
		b := make([]byte, 256)
		n, err := ptmx.Read(b)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		return string(b[:n])
	}
	(&IOStreams{ErrOut: tty}).Logger().Info("pulling debian")
	if got := read(); !strings.Contains(got, "\x1b[") || !strings.Contains(got, "INFO") || !strings.Contains(got, "pulling debian") {
		t.Errorf("to a terminal: %q, want a coloured level", got)
	}
	t.Setenv("NO_COLOR", "1")
	(&IOStreams{ErrOut: tty}).Logger().Info("pulling debian")
	if got := read(); strings.Contains(got, "\x1b[") {
		t.Errorf("to a terminal with NO_COLOR: %q", got)
	}
}
