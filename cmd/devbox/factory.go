package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/devboxhq/devbox/env"
	"github.com/devboxhq/devbox/image"
	"github.com/google/go-containerregistry/pkg/name"
)

// Factory carries the streams and lazy constructors the commands share, so
// that a command builds only what it uses and a test can replace any of
// them.
type Factory struct {
	IO *IOStreams
	// Dirs locates the user's devbox directories.
	Dirs func() (env.Dirs, error)
	// Config finds and loads the devbox.toml governing the working
	// directory.
	Config func() (*env.Config, error)
	// Store opens the image store.
	Store func() (*image.Store, error)
	// PullOptions are the registry settings (insecure registries, mirrors)
	// from the environment and the user's config file.
	PullOptions func() ([]image.Option, error)
}

// NewFactory wires the real implementations.
func NewFactory(io *IOStreams) *Factory {
	f := &Factory{IO: io, Dirs: env.DefaultDirs}
	f.Config = func() (*env.Config, error) {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		path, err := env.Find(wd)
		if err != nil {
			return nil, err
		}
		return env.Load(path)
	}
	f.Store = func() (*image.Store, error) {
		dirs, err := f.Dirs()
		if err != nil {
			return nil, err
		}
		return image.OpenStore(dirs.Data)
	}
	f.PullOptions = func() ([]image.Option, error) {
		rs, err := readRegistrySettings(os.Getenv)
		if err != nil {
			return nil, err
		}
		return []image.Option{image.WithInsecureRegistries(rs.Insecure), image.WithMirrors(rs.Mirrors)}, nil
	}
	return f
}

// Registry settings come from three places: DEVBOX_INSECURE_REGISTRIES
// and DEVBOX_REGISTRY_MIRRORS in the environment, and the [registry]
// table of the user's config file. A setting is the user's, not a
// project's, so devbox.toml has none.
const (
	insecureRegistriesEnv = "DEVBOX_INSECURE_REGISTRIES"
	registryMirrorsEnv    = "DEVBOX_REGISTRY_MIRRORS"
)

// tomlTypeError is how BurntSushi/toml words a value of the wrong type.
var tomlTypeError = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// registrySettings are the user's registry settings.
type registrySettings struct {
	// Mirrors lists, per registry, the mirrors to try before it, in order.
	Mirrors map[string][]string
	// Insecure registries may be reached over plain HTTP.
	Insecure []string
}

// userConfig is the user's config file,
// ${XDG_CONFIG_HOME:-~/.config}/devbox/config.toml:
//
//	[registry]
//	mirrors = { "docker.io" = ["mirror.example:5000"] }
//	insecure = ["registry.lan:5000"]
type userConfig struct {
	Registry struct {
		Mirrors  map[string][]string `toml:"mirrors"`
		Insecure []string            `toml:"insecure"`
	} `toml:"registry"`
}

// userConfigPath is where the user's config file is; "" when neither
// XDG_CONFIG_HOME (absolute) nor HOME is set.
func userConfigPath(getenv func(string) string) string {
	if d := getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "devbox", "config.toml")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "devbox", "config.toml")
	}
	return ""
}

// readRegistrySettings reads the registry settings. The insecure
// registries of the environment and the file add up;
// DEVBOX_REGISTRY_MIRRORS, when set, replaces the file's mirrors. Its
// value is a comma-separated list of registry=mirror pairs, tried in the
// order given for each registry; a bare mirror is one for docker.io, as
// Docker's registry-mirrors are:
//
//	DEVBOX_REGISTRY_MIRRORS=docker.io=127.0.0.1:5001,ghcr.io=mirror.example:5000
//	DEVBOX_REGISTRY_MIRRORS=mirror.gcr.io
func readRegistrySettings(getenv func(string) string) (*registrySettings, error) {
	rs := &registrySettings{}
	if p := userConfigPath(getenv); p != "" {
		uc, err := readUserConfig(p)
		if err != nil {
			return nil, err
		}
		rs.Mirrors, rs.Insecure = uc.Registry.Mirrors, uc.Registry.Insecure
	}
	for _, h := range strings.Split(getenv(insecureRegistriesEnv), ",") {
		if h = strings.TrimSpace(h); h != "" {
			rs.Insecure = append(rs.Insecure, h)
		}
	}
	if v := getenv(registryMirrorsEnv); strings.TrimSpace(v) != "" {
		m, err := parseMirrorsEnv(v)
		if err != nil {
			return nil, &env.ConfigError{File: "$" + registryMirrorsEnv, Msg: err.Error()}
		}
		rs.Mirrors = m
	}
	return rs, nil
}

// parseMirrorsEnv parses the value of DEVBOX_REGISTRY_MIRRORS.
func parseMirrorsEnv(v string) (map[string][]string, error) {
	m := map[string][]string{}
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		reg, mirror, ok := strings.Cut(item, "=")
		if !ok {
			reg, mirror = "docker.io", item
		}
		reg, mirror = strings.TrimSpace(reg), strings.TrimSpace(mirror)
		if reg == "" || mirror == "" {
			return nil, fmt.Errorf("%q is not registry=mirror (e.g. docker.io=127.0.0.1:5001)", item)
		}
		m[reg] = append(m[reg], mirror)
	}
	if err := image.CheckOptions(image.WithMirrors(m)); err != nil {
		return nil, err
	}
	return m, nil
}

// readUserConfig reads the user's config file strictly: unknown keys and
// invalid values are errors that name the file and line. A missing file
// is an empty config.
func readUserConfig(path string) (*userConfig, error) {
	src, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &userConfig{}, nil
	}
	if err != nil {
		return nil, err
	}
	var uc userConfig
	md, err := toml.Decode(string(src), &uc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &env.ConfigError{File: path, Line: pe.Position.Line, Col: pe.Position.Col, Msg: pe.Message, Detail: pe.ErrorWithPosition(), Err: err}
		}
		// A value of the wrong type: "toml: line 2 (last key "a.b"): incompatible types: ..."
		if m := tomlTypeError.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, &env.ConfigError{File: path, Line: line, Key: m[2], Msg: m[3], Err: err}
		}
		return nil, &env.ConfigError{File: path, Msg: err.Error(), Err: err}
	}
	bad := func(key []string, msg string) error {
		line, col := tomlKeyLine(string(src), key)
		return &env.ConfigError{File: path, Line: line, Col: col, Key: toml.Key(key).String(), Msg: msg}
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, bad(und[0], "unknown key: the config file knows registry.mirrors and registry.insecure")
	}
	if err := image.CheckOptions(image.WithMirrors(uc.Registry.Mirrors)); err != nil {
		return nil, bad([]string{"registry", "mirrors"}, err.Error())
	}
	for _, h := range uc.Registry.Insecure {
		if _, err := name.NewRegistry(h, name.StrictValidation); err != nil || h == "" || strings.Contains(h, "/") {
			return nil, bad([]string{"registry", "insecure"}, fmt.Sprintf("%q is not a registry host[:port]", h))
		}
	}
	return &uc, nil
}

// tomlKeyLine is the 1-based line and column where a TOML document first
// writes key or a table or key/value line that holds it; 0, 0 when it
// cannot tell. It knows table headers and dotted and quoted keys, enough
// for the small user config file.
func tomlKeyLine(src string, key []string) (line, col int) {
	var table []string
	for i, text := range strings.Split(src, "\n") {
		trimmed := strings.TrimLeft(text, " \t")
		indent := len(text) - len(trimmed)
		var full []string
		switch {
		case trimmed == "" || trimmed[0] == '#':
			continue
		case trimmed[0] == '[':
			header := strings.Trim(trimmed, "[")
			if end := strings.Index(header, "]"); end >= 0 {
				header = header[:end]
			}
			table = splitTOMLKey(header)
			full = table
		default:
			eq := strings.Index(trimmed, "=")
			if eq < 0 {
				continue
			}
			full = append(slices.Clone(table), splitTOMLKey(trimmed[:eq])...)
		}
		if slices.Equal(full, key) || (len(full) > len(table) && len(full) <= len(key) && slices.Equal(full, key[:len(full)])) {
			return i + 1, indent + 1
		}
	}
	return 0, 0
}

// splitTOMLKey splits a dotted TOML key, honouring quotes.
func splitTOMLKey(s string) []string {
	var parts []string
	var cur strings.Builder
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		case c == ' ' || c == '\t':
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String())
}
