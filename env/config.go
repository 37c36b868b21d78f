package env

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/devboxhq/devbox/image"
)

// FileName is the name of a project's configuration file.
const FileName = "devbox.toml"

// Config is a parsed and validated devbox.toml.
type Config struct {
	// Image names the base image of the environment.
	Image ImageConfig `toml:"image"`

	// Path is the absolute path of the file the Config was read from.
	Path string `toml:"-"`
}

// ImageConfig is the [image] table.
type ImageConfig struct {
	// Ref is an image reference: "busybox", "ghcr.io/org/img:tag",
	// "127.0.0.1:5000/busybox@sha256:...".
	Ref string `toml:"ref"`
	// Platform overrides the host platform when the image is an index,
	// as "os/arch" or "os/arch/variant". Empty means the host's.
	Platform string `toml:"platform"`
}

// Dir is the project directory: the directory holding devbox.toml.
func (c *Config) Dir() string { return filepath.Dir(c.Path) }

// ErrNoConfig is returned by Find when no devbox.toml exists in a directory
// or any of its parents.
var ErrNoConfig = errors.New("env: no devbox.toml")

// NoConfigError says where Find looked.
type NoConfigError struct{ Dir string }

func (e *NoConfigError) Error() string {
	return fmt.Sprintf("no %s in %s or any parent directory; run 'devbox init' to create one", FileName, e.Dir)
}

func (e *NoConfigError) Unwrap() error { return ErrNoConfig }

// Find returns the path of the devbox.toml that governs dir: the one in dir
// or in the nearest parent directory that has one.
func Find(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		p := filepath.Join(d, FileName)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
		if d == filepath.Dir(d) {
			return "", &NoConfigError{Dir: abs}
		}
	}
}

// Load reads and validates the devbox.toml at path.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	src, err := os.ReadFile(abs)
	if err != nil {
		return nil, err
	}
	return Parse(abs, src)
}

// Parse validates src, the contents of the devbox.toml at path. Every
// problem is reported as a *ConfigError that names the file, the line and
// column and the dotted key.
func Parse(path string, src []byte) (*Config, error) {
	name := displayName(path)
	var raw map[string]any
	if _, err := toml.Decode(string(src), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &ConfigError{File: name, Line: pe.Position.Line, Col: pe.Position.Col,
				Msg: pe.Message, Detail: excerpt(pe), Err: err}
		}
		return nil, &ConfigError{File: name, Msg: err.Error(), Err: err}
	}
	if err := checkSchema(raw, schemaOf(Config{}), nil); err != nil {
		return nil, locate(name, src, err.(*schemaError))
	}
	cfg := &Config{Path: path}
	if _, err := toml.Decode(string(src), cfg); err != nil {
		// checkSchema accepted the document, so this is a bug in the schema.
		return nil, &ConfigError{File: name, Msg: err.Error(), Err: err}
	}
	if err := cfg.validate(); err != nil {
		return nil, locate(name, src, err.(*schemaError))
	}
	return cfg, nil
}

func (c *Config) validate() error {
	if strings.TrimSpace(c.Image.Ref) == "" {
		return &schemaError{Key: []string{"image", "ref"}, Msg: "is required: name the base image, e.g. ref = \"debian:bookworm\"", missing: true}
	}
	if _, err := image.ParseReference(c.Image.Ref); err != nil {
		return &schemaError{Key: []string{"image", "ref"}, Msg: err.Error()}
	}
	if p := c.Image.Platform; p != "" {
		parts := strings.Split(p, "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return &schemaError{Key: []string{"image", "platform"}, Msg: fmt.Sprintf("%q is not a platform: write os/arch or os/arch/variant, e.g. \"linux/arm64\"", p)}
		}
	}
	return nil
}

// excerpt renders the source lines around a syntax error with a caret.
// The TOML library panics on some inputs found by fuzzing (an error on a
// line that ends the file); the one-line error is enough then.
func excerpt(pe toml.ParseError) (s string) {
	defer func() {
		if recover() != nil {
			s = ""
		}
	}()
	return pe.ErrorWithPosition()
}

// displayName shortens path relative to the working directory when that is
// shorter, as compilers print file names.
func displayName(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	if rel, err := filepath.Rel(wd, path); err == nil && len(rel) < len(path) {
		return rel
	}
	return path
}
