package image

import (
	"fmt"
	"path/filepath"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// EventKind says what an Event reports.
type EventKind int

// The events of a pull, in the order they happen for one layer.
const (
	LayerCached   EventKind = iota // the layer is already in the store
	LayerStarted                   // downloading and unpacking began
	LayerProgress                  // Done compressed bytes have been read
	LayerDone                      // the layer is unpacked and in place
)

// Event reports progress on one layer of a pull. Events for different
// layers may arrive concurrently.
type Event struct {
	Kind  EventKind
	Layer Layer
	Done  int64 // compressed bytes read so far
}

// Option configures Pull.
type Option func(*options) error

type options struct {
	platform *v1.Platform
	insecure []string
	mirrors  map[string][]mirror // by registry, as name.Registry spells it
	baseDir  string              // "" is the working directory
	progress func(Event)
	jobs     int
}

// WithPlatform picks the platform, as "os/arch[/variant]", when the image is
// a multi-platform index. The default is the host's.
func WithPlatform(p string) Option {
	return func(o *options) error {
		if p == "" {
			return nil
		}
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return fmt.Errorf("platform %q: %w", p, err)
		}
		o.platform = plat
		return nil
	}
}

// WithInsecureRegistries lists registries (host or host:port) that may be
// reached over plain HTTP. Loopback registries always may; the default list
// is empty.
func WithInsecureRegistries(hosts []string) Option {
	return func(o *options) error {
		o.insecure = append(o.insecure, hosts...)
		return nil
	}
}

// WithProgress receives an Event as each layer advances. The default
// reports nothing. fn must be safe for concurrent use.
func WithProgress(fn func(Event)) Option {
	return func(o *options) error {
		o.progress = fn
		return nil
	}
}

// WithJobs bounds how many layers are fetched at once. The default is 3.
func WithJobs(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("jobs must be at least 1, not %d", n)
		}
		o.jobs = n
		return nil
	}
}

func makeOptions(opts ...Option) (*options, error) {
	o := &options{
		platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
		jobs:     3,
		progress: func(Event) {},
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// WithBaseDir is the directory that relative paths of local sources
// (oci-layout:, docker-archive:, rootfs:) are relative to. The default is
// the working directory.
func WithBaseDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return nil
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("base directory %q: %w", dir, err)
		}
		o.baseDir = abs
		return nil
	}
}

// CheckOptions returns the first error that opts hold, as Pull would
// report it, without pulling anything: a command can check its settings
// before it starts.
func CheckOptions(opts ...Option) error {
	_, err := makeOptions(opts...)
	return err
}
