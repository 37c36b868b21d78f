package env

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"

	"github.com/BurntSushi/toml"
)

// FileName is the name of a project's configuration file.
const FileName = "devbox.toml"

// Config is a parsed and validated devbox.toml. devbox.toml.example at the
// repository's root documents every key.
type Config struct {
	// Image names the base image of the environment.
	Image ImageConfig `toml:"image"`
	// Tools are installed on top of the image, each step a cached layer.
	Tools ToolsConfig `toml:"tools"`
	// Setup runs once, as root inside, after the tools.
	Setup SetupConfig `toml:"setup"`
	// Shell configures interactive shells and the working directory.
	Shell ShellConfig `toml:"shell"`
	// Env is added to the image's environment.
	Env map[string]string `toml:"env"`
	// Scripts are named commands for 'devbox run NAME'.
	Scripts map[string]string `toml:"scripts"`
	// Mounts are extra host directories or files in the sandbox.
	Mounts []MountConfig `toml:"mounts"`
	// Network is the sandbox's network.
	Network NetworkConfig `toml:"network"`
	// Sandbox selects how identities are mapped.
	Sandbox SandboxConfig `toml:"sandbox"`

	// Path is the absolute path of the file the Config was read from.
	Path string `toml:"-"`
}

// ImageConfig is the [image] table.
type ImageConfig struct {
	// Ref is an image reference ("busybox", "ghcr.io/org/img:tag",
	// "127.0.0.1:5000/busybox@sha256:...") or a local source relative to
	// the project ("oci-layout:PATH[:TAG]", "docker-archive:FILE",
	// "rootfs:FILE").
	Ref string `toml:"ref"`
	// Platform overrides the host platform when the image is an index,
	// as "os/arch" or "os/arch/variant". Empty means the host's.
	Platform string `toml:"platform"`
}

// ToolsConfig is the [tools] table.
type ToolsConfig struct {
	// Packages are installed with the image's package manager.
	Packages []string `toml:"packages"`
	// Archive are downloaded, verified and unpacked, one layer each.
	Archive []ArchiveConfig `toml:"archive"`
}

// ArchiveConfig is one [[tools.archive]].
type ArchiveConfig struct {
	Name   string `toml:"name"`   // names the step; default: the URL's file name
	URL    string `toml:"url"`    // http(s) URL of a tar.gz/xz/zst/bz2 or zip archive
	SHA256 string `toml:"sha256"` // of the archive; empty: pinned in devbox.lock on first download
	Strip  int    `toml:"strip"`  // leading path components to drop from each entry
	Dest   string `toml:"dest"`   // where to unpack inside; default /opt/NAME
	// Bin are files, relative to Dest, linked into /usr/local/bin.
	Bin []string `toml:"bin"`
	// Path are directories, relative to Dest, added to PATH.
	Path []string `toml:"path"`
}

// SetupConfig is the [setup] table.
type SetupConfig struct {
	// Run are shell commands run in order, as root inside, with the
	// project mounted; their result is cached as one layer.
	Run []string `toml:"run"`
}

// ShellConfig is the [shell] table.
type ShellConfig struct {
	// Init runs, as the user, at the start of every 'devbox shell'.
	Init string `toml:"init"`
	// Workdir is the working directory inside; default: the project's
	// own path.
	Workdir string `toml:"workdir"`
	// Program is the interactive shell, a command line that sh runs with
	// exec (so "zsh -l" passes -l); default: bash if the image has it,
	// else sh.
	Program string `toml:"program"`
}

// MountConfig is one [[mounts]].
type MountConfig struct {
	Source   string `toml:"source"` // host path; "~/" is the host home
	Target   string `toml:"target"` // absolute path inside
	ReadOnly bool   `toml:"readonly"`
}

// NetworkConfig is the [network] table.
type NetworkConfig struct {
	// Mode is "host" (default), "isolated" or "none".
	Mode string `toml:"mode"`
	// Ports forwarded from the host to an isolated sandbox, as
	// "HOSTPORT:PORT" or "IP:HOSTPORT:PORT".
	Ports []string `toml:"ports"`
}

// SandboxConfig is the [sandbox] table.
type SandboxConfig struct {
	// Userns is "single" (default: only the user's id is mapped) or
	// "subuid" (a full range from /etc/subuid, through newuidmap).
	Userns string `toml:"userns"`
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

// DecodeFile decodes the TOML file at path into v, a pointer to a struct
// with toml tags, as strictly as devbox.toml: syntax errors, unknown keys
// and wrong types are *ConfigErrors that name the file, line and column.
// A missing file leaves v alone. It returns the file's content, for
// KeyError.
func DecodeFile(path string, v any) ([]byte, error) {
	src, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var raw map[string]any
	if _, err := toml.Decode(string(src), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &ConfigError{File: path, Line: pe.Position.Line, Col: pe.Position.Col, Msg: pe.Message, Detail: excerpt(pe), Err: err}
		}
		return nil, &ConfigError{File: path, Msg: err.Error(), Err: err}
	}
	if err := checkSchema(raw, structSchema(reflect.TypeOf(v).Elem()), nil); err != nil {
		return nil, locate(path, src, err.(*schemaError))
	}
	if _, err := toml.Decode(string(src), v); err != nil {
		return nil, &ConfigError{File: path, Msg: err.Error(), Err: err}
	}
	return src, nil
}

// KeyError is a problem with the value of key in the TOML document src of
// the file path, pointing at the line that writes it.
func KeyError(path string, src []byte, key []string, msg string) *ConfigError {
	return locate(path, src, &schemaError{Key: key, Msg: msg})
}
