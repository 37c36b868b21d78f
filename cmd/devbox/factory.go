package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/devboxhq/devbox/env"
	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/rootless"
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
	// Sandbox creates a sandbox's pid 1 (rootless.Start). main may have
	// created one already (startEarly).
	Sandbox func(rootless.Launch, rootless.IO) (*rootless.Sandbox, error)
	// Joining: main found the project's sandbox running, which a run or a
	// shell joins; it starts a pid 1 of its own only if it cannot.
	Joining bool
}

// NewFactory wires the real implementations.
func NewFactory(io *IOStreams) *Factory {
	f := &Factory{IO: io, Dirs: env.DefaultDirs, Sandbox: rootless.Start}
	f.Config = func() (*env.Config, error) {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		path, err := env.Find(wd)
		if err != nil {
			return nil, err
		}
		dirs, err := f.Dirs()
		if err != nil {
			return env.Load(path)
		}
		return env.LoadCached(dirs, path)
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
	var uc userConfig
	src, err := env.DecodeFile(path, &uc)
	if err != nil {
		return nil, err
	}
	if err := image.CheckOptions(image.WithMirrors(uc.Registry.Mirrors)); err != nil {
		return nil, env.KeyError(path, src, []string{"registry", "mirrors"}, err.Error())
	}
	for _, h := range uc.Registry.Insecure {
		if _, err := image.ParseRegistry(h); err != nil || strings.Contains(h, "/") {
			return nil, env.KeyError(path, src, []string{"registry", "insecure"}, fmt.Sprintf("%q is not a registry host[:port]", h))
		}
	}
	return &uc, nil
}
