package env

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestParseErrors")

// TestParseErrors checks the exact message for every bad config in
// testdata/bad: the messages are product output.
func TestParseErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			abs, _ := filepath.Abs(file)
			_, err = Parse(abs, src)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Parse = %v, want a *ConfigError", err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".toml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("error\n got: %s want: %s", got, want)
			}
			if strings.Count(got, "\n") != 1 {
				t.Errorf("error is not one line: %q", got)
			}
		})
	}
}

func TestParseGood(t *testing.T) {
	tests := []struct {
		file, ref, platform string
	}{
		{"minimal.toml", "127.0.0.1:5000/busybox:latest", ""},
		{"platform.toml", "ghcr.io/org/img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "linux/arm64/v8"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := Load(filepath.Join("testdata/good", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Image.Ref != tt.ref || cfg.Image.Platform != tt.platform {
				t.Errorf("image = %+v, want ref %q platform %q", cfg.Image, tt.ref, tt.platform)
			}
			if !filepath.IsAbs(cfg.Path) || cfg.Dir() != filepath.Dir(cfg.Path) {
				t.Errorf("Path %q, Dir %q", cfg.Path, cfg.Dir())
			}
		})
	}
}

func TestParseFull(t *testing.T) {
	cfg, err := Load("testdata/good/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Tools.Archive
	if len(a) != 2 || a[0].StepName() != "hello" || a[0].DestDir() != "/opt/hello" || a[0].Strip != 1 {
		t.Errorf("archive 0 = %+v", a[0])
	}
	if a[1].StepName() != "tool-2.1" || a[1].DestDir() != "/opt/tool-2.1" || a[1].Path[0] != "bin" {
		t.Errorf("archive 1 = %+v (step %q, dest %q)", a[1], a[1].StepName(), a[1].DestDir())
	}
	if len(cfg.Tools.Packages) != 3 || len(cfg.Setup.Run) != 2 || cfg.Shell.Workdir != "/src" ||
		cfg.Env["CGO_ENABLED"] != "0" || cfg.Scripts["test"] != "make test" || !cfg.Mounts[0].ReadOnly ||
		cfg.Network.Mode != "isolated" || cfg.Sandbox.Userns != "single" {
		t.Errorf("config = %+v", cfg)
	}
	p, err := ParsePort(cfg.Network.Ports[1])
	if err != nil || p != (Port{HostIP: "127.0.0.1", HostPort: 5433, ChildPort: 5432}) {
		t.Errorf("port = %+v, %v", p, err)
	}
}

func TestFind(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Find(sub); !errors.Is(err, ErrNoConfig) || !strings.Contains(err.Error(), "devbox init") {
		t.Fatalf("Find without config = %v, want ErrNoConfig suggesting devbox init", err)
	}
	cfg := filepath.Join(root, "a", FileName)
	if err := os.WriteFile(cfg, []byte("[image]\nref = \"busybox\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Find(sub)
	if err != nil || got != cfg {
		t.Fatalf("Find = %q, %v; want %q", got, err, cfg)
	}
}

func TestFindKey(t *testing.T) {
	src := `# comment
top = 1
[image]
  ref = "x"
  "quoted.key" = 2
desc = """
[fake]
ref = 3
"""
[a.b]
c.d = 4
`
	tests := []struct {
		key       string
		line, col int
	}{
		{"top", 2, 1},
		{"image", 3, 1},
		{"image.ref", 4, 3},
		{"image.quoted.key", 0, 0},
		{"fake.ref", 0, 0},
		{"a.b.c.d", 11, 1},
		{"a.b", 10, 1},
		{"missing", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			line, col := findKey(src, strings.Split(tt.key, "."))
			if line != tt.line || col != tt.col {
				t.Errorf("findKey(%s) = %d:%d, want %d:%d", tt.key, line, col, tt.line, tt.col)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.toml")
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, err := Parse("/p/devbox.toml", src)
		if err == nil && cfg.Image.Ref == "" {
			t.Fatal("Parse accepted a config without image.ref")
		}
		var ce *ConfigError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("Parse error %v is not a *ConfigError", err)
		}
	})
}
