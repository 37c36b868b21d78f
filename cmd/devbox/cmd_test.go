package main

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/devboxhq/devbox/env"
)

func testFactory() (*Factory, *bytes.Buffer, *bytes.Buffer) {
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	return NewFactory(&IOStreams{Out: out, ErrOut: errOut}), out, errOut
}

func TestNewCmdRun(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []string
		wantErr bool
	}{
		{"after dashes", []string{"--", "make", "test"}, []string{"make", "test"}, false},
		{"flags of the command stay its own", []string{"ls", "-la", "--color"}, []string{"ls", "-la", "--color"}, false},
		{"dashes inside the command", []string{"--", "sh", "-c", "echo -- x"}, []string{"sh", "-c", "echo -- x"}, false},
		{"no command", []string{}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, _ := testFactory()
			var got *RunOptions
			cmd := NewCmdRun(f, func(o *RunOptions) error { got = o; return nil })
			cmd.SetArgs(tt.args)
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			err := cmd.Execute()
			if tt.wantErr {
				var fe *FlagError
				if !errors.As(err, &fe) {
					t.Fatalf("err = %v, want a FlagError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got.Args, "\x00") != strings.Join(tt.want, "\x00") {
				t.Errorf("args = %q, want %q", got.Args, tt.want)
			}
		})
	}
}

func TestNewCmdPull(t *testing.T) {
	f, _, _ := testFactory()
	var got *PullOptions
	cmd := NewCmdPull(f, func(o *PullOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--platform", "linux/arm64", "debian:bookworm"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Ref != "debian:bookworm" || got.Platform != "linux/arm64" {
		t.Errorf("opts = %+v", got)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"success", nil, 0, ""},
		{"command status", &ExitError{Code: 42}, 42, ""},
		{"usage", &FlagError{Err: errors.New("bad flag")}, 2, "devbox: bad flag\n"},
		{"config", &env.ConfigError{File: "devbox.toml", Line: 3, Col: 1, Key: "image.reff", Msg: "unknown key"}, 2, "devbox: devbox.toml:3:1: image.reff: unknown key\n"},
		{"no config", &env.NoConfigError{Dir: "/p"}, 2, "devbox: no devbox.toml in /p or any parent directory; run 'devbox init' to create one\n"},
		{"runtime", errors.New("registry unreachable"), 1, "devbox: registry unreachable\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if code := exitCode(tt.err, &buf); code != tt.code {
				t.Errorf("exitCode = %d, want %d", code, tt.code)
			}
			if buf.String() != tt.msg {
				t.Errorf("printed %q, want %q", buf.String(), tt.msg)
			}
		})
	}
}

func TestRootHelpAndUnknownCommand(t *testing.T) {
	f, out, errOut := testFactory()
	root := NewCmdRoot(f)
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"run", "shell", "pull", "version"} {
		if !strings.Contains(out.String(), verb) {
			t.Errorf("--help does not list %q", verb)
		}
	}
	root = NewCmdRoot(f)
	root.SetArgs([]string{"bogus"})
	if code := exitCode(root.Execute(), errOut); code != 2 {
		t.Errorf("unknown command exits %d, want 2", code)
	}
}

func TestEnvFlags(t *testing.T) {
	t.Setenv("DEVBOX_TEST_FROM_HOST", "host value")
	os.Unsetenv("DEVBOX_TEST_UNSET")
	f, _, _ := testFactory()
	var got *RunOptions
	cmd := NewCmdRun(f, func(o *RunOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"-e", "A=1", "--env", "B=x=y", "-e", "DEVBOX_TEST_FROM_HOST", "-e", "DEVBOX_TEST_UNSET", "-e", "EMPTY=", "--", "env", "-e"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "B=x=y", "DEVBOX_TEST_FROM_HOST=host value", "EMPTY="}
	if !slices.Equal(got.Env, want) || !slices.Equal(got.Args, []string{"env", "-e"}) {
		t.Errorf("env %q, args %q; want %q and the command's own -e", got.Env, got.Args, want)
	}
	for _, bad := range []string{"1A=2", "=x", "A-B", ""} {
		cmd := NewCmdShell(f, func(*ShellOptions) error { return nil })
		cmd.SetArgs([]string{"-e", bad})
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		var fe *FlagError
		if err := cmd.Execute(); !errors.As(err, &fe) {
			t.Errorf("shell -e %q: err = %v, want a FlagError", bad, err)
		}
	}
}
