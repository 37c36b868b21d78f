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
