package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devboxhq/devbox/env"
	"github.com/devboxhq/devbox/templates"
)

func TestNewCmdInit(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    InitOptions
		wantErr string // part of the FlagError's message; "" for success
	}{
		{"defaults", nil, InitOptions{Dir: "."}, ""},
		{"directory", []string{"svc"}, InitOptions{Dir: "svc"}, ""},
		{"all flags", []string{"--template", "python", "--image", "127.0.0.1:5000/debian:trixie", "--force", "svc"},
			InitOptions{Dir: "svc", Template: "python", Image: "127.0.0.1:5000/debian:trixie", Force: true}, ""},
		{"short flags", []string{"-t", "go", "-f"}, InitOptions{Dir: ".", Template: "go", Force: true}, ""},
		{"unknown template", []string{"--template", "cobol"}, InitOptions{},
			`unknown template "cobol": choose one of ` + strings.Join(templates.Names(), ", ")},
		{"bad image", []string{"--image", "Not An Image"}, InitOptions{}, `--image: "Not An Image" is not an image reference`},
		{"two directories", []string{"a", "b"}, InitOptions{}, "init takes one directory, not 2 arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, _ := testFactory()
			var got *InitOptions
			cmd := NewCmdInit(f, func(o *InitOptions) error { got = o; return nil })
			cmd.SetArgs(tt.args)
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			err := cmd.Execute()
			if tt.wantErr != "" {
				var fe *FlagError
				if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want a FlagError containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.F = nil
			if *got != tt.want {
				t.Errorf("opts = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestInitHelp(t *testing.T) {
	f, out, _ := testFactory()
	root := NewCmdRoot(f)
	root.SetArgs([]string{"init", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Usage:\n  devbox init [DIR]", "  go       go.mod\n", "  gradle   build.gradle, build.gradle.kts\n",
		"  generic  (none of the above)\n", "--force", "Examples:", templates.DefaultImage} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}

func Test_initRun(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string // in the project directory before init
		opts     InitOptions       // Dir is set to the project directory
		template string            // whose rendering devbox.toml must hold
		image    string
		out      string // with DIR standing for the project directory
	}{
		{
			name:     "go project",
			files:    map[string]string{"go.mod": "module example.com/x\n"},
			template: "go",
			out:      "DIR/devbox.toml written for a Go project (found go.mod)\n",
		},
		{
			name:     "node project",
			files:    map[string]string{"package.json": "{}\n"},
			template: "node",
			out:      "DIR/devbox.toml written for a Node.js project (found package.json)\n",
		},
		{
			name:     "go beats node",
			files:    map[string]string{"package.json": "{}\n", "go.mod": "module x\n"},
			template: "go",
			out:      "DIR/devbox.toml written for a Go project (found go.mod)\n",
		},
		{
			name:     "nothing known",
			files:    map[string]string{"README": "hi\n"},
			template: templates.Generic,
			out:      "DIR/devbox.toml written from the generic template (no project file it knows of; --template picks one)\n",
		},
		{
			name:     "template and image chosen",
			files:    map[string]string{"go.mod": "module x\n"},
			opts:     InitOptions{Template: "rust", Image: "127.0.0.1:5000/debian:trixie"},
			template: "rust",
			image:    "127.0.0.1:5000/debian:trixie",
			out:      "DIR/devbox.toml written for a Rust project (--template rust)\n",
		},
		{
			name:     "force replaces",
			files:    map[string]string{"Cargo.toml": "[package]\n", env.FileName: "old\n"},
			opts:     InitOptions{Force: true},
			template: "rust",
			out:      "DIR/devbox.toml written for a Rust project (found Cargo.toml)\n",
		},
		{
			name:     "quiet",
			files:    map[string]string{"Gemfile": "source 'https://rubygems.org'\n"},
			template: "ruby",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "myproj")
			writeFiles(t, dir, tt.files)
			f, out, errOut := testFactory()
			f.IO.Quiet = tt.out == ""
			opts := tt.opts
			opts.F, opts.Dir = f, dir
			if err := initRun(&opts); err != nil {
				t.Fatal(err)
			}
			want := ""
			if tt.out != "" {
				want = strings.ReplaceAll(tt.out, "DIR", dir) + "Review it, then run 'devbox shell' to open the environment.\n"
			}
			if out.String() != want || errOut.Len() != 0 {
				t.Errorf("stdout %q, stderr %q; want stdout %q", out, errOut, want)
			}
			wantSrc, err := templates.Render(tt.template, templates.Data{Project: "myproj", Image: tt.image})
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, env.FileName))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, wantSrc) {
				t.Errorf("devbox.toml is not the %s template:\n%s", tt.template, got)
			}
			if _, err := env.Load(filepath.Join(dir, env.FileName)); err != nil {
				t.Errorf("written devbox.toml does not load: %v", err)
			}
			if fi, err := os.Stat(filepath.Join(dir, env.FileName)); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("mode = %v, %v; want 0644", fi.Mode(), err)
			}
			assertOnlyFiles(t, dir, tt.files)
		})
	}
}

func Test_initRunErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		dir   string // relative to the temporary directory
		want  string // with DIR standing for it
	}{
		{"existing devbox.toml", map[string]string{"go.mod": "module x\n", env.FileName: "keep me\n"}, ".",
			"DIR/devbox.toml already exists: use --force to overwrite it"},
		{"no such directory", nil, "missing", "DIR/missing: no such directory"},
		{"a file", map[string]string{"go.mod": "module x\n"}, "go.mod", "DIR/go.mod is not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			f, out, _ := testFactory()
			err := initRun(&InitOptions{F: f, Dir: filepath.Join(root, tt.dir)})
			var fe *FlagError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a FlagError", err)
			}
			var msg bytes.Buffer
			if code := exitCode(err, &msg); code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if want := "devbox: " + strings.ReplaceAll(tt.want, "DIR", filepath.Clean(root)) + "\n"; msg.String() != want {
				t.Errorf("printed %q, want %q", msg.String(), want)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q, want nothing", out)
			}
			assertUnchanged(t, root, tt.files)
		})
	}
}

// Test_initRunWorkingDirectory runs init as 'devbox init' without DIR,
// through the root command, in a directory with a package.json.
func Test_initRunWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"package.json": "{}\n"})
	t.Chdir(dir)
	f, out, _ := testFactory()
	root := NewCmdRoot(f)
	root.SetArgs([]string{"init"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "devbox.toml written for a Node.js project (found package.json)\n") {
		t.Errorf("stdout %q", out)
	}
	cfg, err := env.Load(env.FileName)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Scripts["test"] != "npm test" || cfg.Image.Ref != templates.DefaultImage {
		t.Errorf("config = %+v", cfg)
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// assertOnlyFiles checks that dir holds the files given and devbox.toml, and
// nothing else: no temporary file is left behind.
func assertOnlyFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := files[e.Name()]; !ok && e.Name() != env.FileName {
			t.Errorf("unexpected file %s", e.Name())
		}
	}
}

// assertUnchanged checks that dir holds exactly the files given, with their
// contents.
func assertUnchanged(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(files) {
		t.Errorf("%d files in %s, want %d", len(entries), dir, len(files))
	}
	for name, content := range files {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != content {
			t.Errorf("%s = %q, %v; want %q", name, got, err, content)
		}
	}
}
