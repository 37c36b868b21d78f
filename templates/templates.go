package templates

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"unicode"
)

// DefaultImage is the base image of every template: Debian's stable
// release, whose packages provide each ecosystem's toolchain.
const DefaultImage = "debian:trixie"

// Generic is the template for a directory that no other template fits.
const Generic = "generic"

//go:embed files
var files embed.FS

// Template describes one embedded template.
type Template struct {
	// Name is how --template names it: "go".
	Name string
	// Title names the ecosystem in messages: "Go", as in "a Go project".
	Title string
	// Markers are the files whose presence in a project directory selects
	// the template, in the order Detect looks for them. Generic has none.
	Markers []string
}

// List returns the templates in detection order, Generic last.
func List() []Template {
	return []Template{
		{Name: "go", Title: "Go", Markers: []string{"go.mod"}},
		{Name: "rust", Title: "Rust", Markers: []string{"Cargo.toml"}},
		{Name: "java", Title: "Java (Maven)", Markers: []string{"pom.xml"}},
		{Name: "gradle", Title: "Gradle", Markers: []string{"build.gradle", "build.gradle.kts"}},
		{Name: "python", Title: "Python", Markers: []string{"pyproject.toml", "requirements.txt"}},
		{Name: "ruby", Title: "Ruby", Markers: []string{"Gemfile"}},
		{Name: "node", Title: "Node.js", Markers: []string{"package.json"}},
		{Name: Generic, Title: "generic"},
	}
}

// Names returns the names of the templates in detection order.
func Names() []string {
	var names []string
	for _, t := range List() {
		names = append(names, t.Name)
	}
	return names
}

// Lookup returns the template called name.
func Lookup(name string) (Template, bool) {
	for _, t := range List() {
		if t.Name == name {
			return t, true
		}
	}
	return Template{}, false
}

// Detect returns the name of the template that fits the project in dir and
// the marker file that told it ("go", "go.mod"). It tries the markers of
// each template in the order of List and returns the first one present as a
// file; with none, it returns Generic and "".
func Detect(dir string) (name, evidence string) {
	for _, t := range List() {
		for _, m := range t.Markers {
			if fi, err := os.Stat(filepath.Join(dir, m)); err == nil && !fi.IsDir() {
				return t.Name, m
			}
		}
	}
	return Generic, ""
}

// Data fills in a template.
type Data struct {
	// Project names the project in the file's first comment, usually its
	// directory's name.
	Project string
	// Image is the base image's reference; empty means DefaultImage.
	Image string
}

// view is what the template files see.
type view struct {
	Data
	Name string // the template's name
}

// Render returns the devbox.toml that template name produces for data.
func Render(name string, data Data) ([]byte, error) {
	if _, ok := Lookup(name); !ok {
		return nil, fmt.Errorf("templates: unknown template %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	if data.Image == "" {
		data.Image = DefaultImage
	}
	data.Project = commentText(data.Project)
	t, err := template.New(name).Funcs(template.FuncMap{"quote": tomlString}).
		ParseFS(files, "files/common.tmpl", "files/"+name+".toml.tmpl")
	if err != nil {
		return nil, fmt.Errorf("templates: %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, name+".toml.tmpl", view{Data: data, Name: name}); err != nil {
		return nil, fmt.Errorf("templates: %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// commentText makes s safe inside a TOML comment: valid UTF-8 on one line,
// with no control characters.
func commentText(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
