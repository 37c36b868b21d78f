package main

import (
	"os"
	"strings"

	"github.com/devboxhq/devbox/env"
	"github.com/devboxhq/devbox/image"
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
	// PullOptions are the registry settings from the environment.
	PullOptions func() []image.Option
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
	f.PullOptions = func() []image.Option {
		var insecure []string
		for _, h := range strings.Split(os.Getenv("DEVBOX_INSECURE_REGISTRIES"), ",") {
			if h = strings.TrimSpace(h); h != "" {
				insecure = append(insecure, h)
			}
		}
		return []image.Option{image.WithInsecureRegistries(insecure)}
	}
	return f
}
