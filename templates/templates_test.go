package templates

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/devboxhq/devbox/env"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestRenderGolden")

// TestRenderGolden renders every template and compares it with
// testdata/NAME.toml: the files are product output, read by people.
func TestRenderGolden(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			got, err := Render(name, Data{Project: "example"})
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".toml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("Render(%q) differs from %s; run go test ./templates/ -update and review the diff", name, golden)
			}
		})
	}
}

// TestRenderParses checks that every template, rendered, is a devbox.toml
// that env accepts, with the image asked for, its packages and, except for
// generic, a test script.
func TestRenderParses(t *testing.T) {
	const image = "127.0.0.1:5000/debian:trixie"
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			src, err := Render(name, Data{Project: "demo", Image: image})
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := env.Parse(filepath.Join(t.TempDir(), env.FileName), src)
			if err != nil {
				t.Fatalf("rendered template does not parse: %v\n%s", err, src)
			}
			if cfg.Image.Ref != image {
				t.Errorf("image.ref = %q, want %q", cfg.Image.Ref, image)
			}
			for _, p := range []string{"git", "make", "ca-certificates"} {
				if !slices.Contains(cfg.Tools.Packages, p) {
					t.Errorf("packages %q lack %q", cfg.Tools.Packages, p)
				}
			}
			if _, ok := cfg.Scripts["test"]; !ok && name != Generic {
				t.Errorf("no test script in %v", cfg.Scripts)
			}
			if !strings.Contains(string(src), "devbox.toml.example") {
				t.Error("does not point at devbox.toml.example")
			}
			if strings.Contains(string(src), "\n\n\n") || !strings.HasSuffix(string(src), "\n") || strings.HasSuffix(string(src), "\n\n") {
				t.Error("blank lines are doubled, or the file does not end in exactly one newline")
			}
		})
	}
}

func TestRenderData(t *testing.T) {
	tests := []struct {
		name string
		data Data
		want []string // lines the output must contain
	}{
		{"default image", Data{Project: "p"}, []string{`ref = "` + DefaultImage + `"`, "development environment of p."}},
		{"image", Data{Project: "p", Image: "ghcr.io/org/img:1"}, []string{`ref = "ghcr.io/org/img:1"`}},
		{"quotes and escapes", Data{Image: "a\"b\\c\n"}, []string{`ref = "a\"b\\c\u000A"`}},
		{"project stays in its comment", Data{Project: "two\nlines\x00"}, []string{"development environment of two lines ."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := Render(Generic, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(src), w) {
					t.Errorf("output lacks %q:\n%s", w, src)
				}
			}
		})
	}
}

func TestRenderUnknown(t *testing.T) {
	_, err := Render("cobol", Data{})
	if err == nil || !strings.Contains(err.Error(), `"cobol"`) || !strings.Contains(err.Error(), "go, rust") {
		t.Errorf("err = %v, want one naming the template and the known ones", err)
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name     string
		files    []string
		dirs     []string
		want     string
		evidence string
	}{
		{"empty", nil, nil, Generic, ""},
		{"go", []string{"go.mod", "go.sum"}, nil, "go", "go.mod"},
		{"node", []string{"package.json"}, nil, "node", "package.json"},
		{"pyproject", []string{"pyproject.toml"}, nil, "python", "pyproject.toml"},
		{"requirements", []string{"requirements.txt"}, nil, "python", "requirements.txt"},
		{"pyproject before requirements", []string{"requirements.txt", "pyproject.toml"}, nil, "python", "pyproject.toml"},
		{"rust", []string{"Cargo.toml"}, nil, "rust", "Cargo.toml"},
		{"ruby", []string{"Gemfile"}, nil, "ruby", "Gemfile"},
		{"maven", []string{"pom.xml"}, nil, "java", "pom.xml"},
		{"gradle", []string{"build.gradle"}, nil, "gradle", "build.gradle"},
		{"gradle kotlin", []string{"build.gradle.kts"}, nil, "gradle", "build.gradle.kts"},
		{"go service with web assets", []string{"package.json", "go.mod"}, nil, "go", "go.mod"},
		{"rails app", []string{"package.json", "Gemfile"}, nil, "ruby", "Gemfile"},
		{"maven before gradle", []string{"build.gradle", "pom.xml"}, nil, "java", "pom.xml"},
		{"python with docs tooling in ruby", []string{"Gemfile", "pyproject.toml"}, nil, "python", "pyproject.toml"},
		{"a directory is no marker", []string{"package.json"}, []string{"go.mod"}, "node", "package.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, d := range tt.dirs {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			name, evidence := Detect(dir)
			if name != tt.want || evidence != tt.evidence {
				t.Errorf("Detect = %q, %q; want %q, %q", name, evidence, tt.want, tt.evidence)
			}
		})
	}
}

// TestList checks the catalogue against the embedded files: every template
// has a file and every file a template, names are unique and only Generic
// lacks markers.
func TestList(t *testing.T) {
	entries, err := files.ReadDir("files")
	if err != nil {
		t.Fatal(err)
	}
	var embedded []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".toml.tmpl"); ok {
			embedded = append(embedded, n)
		}
	}
	names := Names()
	if !slices.Equal(slices.Sorted(slices.Values(names)), embedded) {
		t.Errorf("templates %q, embedded files %q", names, embedded)
	}
	if names[len(names)-1] != Generic {
		t.Errorf("%q is not last in %q", Generic, names)
	}
	for _, tpl := range List() {
		if (len(tpl.Markers) == 0) != (tpl.Name == Generic) || tpl.Title == "" {
			t.Errorf("template %+v", tpl)
		}
		if got, ok := Lookup(tpl.Name); !ok || got.Name != tpl.Name {
			t.Errorf("Lookup(%q) = %+v, %v", tpl.Name, got, ok)
		}
	}
	if _, ok := Lookup("cobol"); ok {
		t.Error(`Lookup("cobol") found a template`)
	}
}
