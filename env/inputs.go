package env

import (
	"os"
	"slices"

	"github.com/devboxhq/devbox/rootless"
)

// Inputs notes the host's files that making a sandbox's Spec looked at,
// found or not, and the variables of its environment that it read, so
// that a record of the Spec (rootless.Front) can tell when it no longer
// holds. Every look at the host's files and environment on SandboxSpec's
// way goes through host, which notes it: one that did not would make such
// a record stale without its knowing.
type Inputs struct {
	paths, identities, env []string
}

// Add notes files whose contents or presence count.
func (in *Inputs) Add(paths ...string) {
	if in != nil {
		in.paths = append(in.paths, paths...)
	}
}

// AddIdentity notes directories of which only which one is there counts,
// not their contents: the layers, and the writable layer, which changes
// as the sandbox runs.
func (in *Inputs) AddIdentity(paths ...string) {
	if in != nil {
		in.identities = append(in.identities, paths...)
	}
}

// AddEnv notes variables of the host's environment that count; a name
// ending in "*" stands for every one it begins.
func (in *Inputs) AddEnv(names ...string) {
	if in != nil {
		in.env = append(in.env, names...)
	}
}

// EnvNames are the noted variables, sorted, once each.
func (in *Inputs) EnvNames() []string {
	names := slices.Clone(in.env)
	slices.Sort(names)
	return slices.Compact(names)
}

// Front is each noted file as it is now, once.
func (in *Inputs) Front() []rootless.Input {
	var out []rootless.Input
	seen := map[string]bool{}
	for _, p := range slices.Concat(in.paths, in.identities) {
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		if slices.Contains(in.paths, p) {
			out = append(out, rootless.NewInput(p))
		} else {
			out = append(out, rootless.NewIdentityInput(p))
		}
	}
	return out
}

// host looks at the host's files for SandboxSpec, and notes each path in
// in (nowhere when nil).
type host struct{ in *Inputs }

func (h host) stat(path string) (os.FileInfo, error) {
	h.in.Add(path)
	return os.Stat(path)
}

func (h host) lstat(path string) (os.FileInfo, error) {
	h.in.Add(path)
	return os.Lstat(path)
}

func (h host) readFile(path string) ([]byte, error) {
	h.in.Add(path)
	return os.ReadFile(path)
}

func (h host) readlink(path string) (string, error) {
	h.in.Add(path)
	return os.Readlink(path)
}

func (h host) lookupEnv(name string) (string, bool) {
	h.in.AddEnv(name)
	return os.LookupEnv(name)
}

func (h host) getenv(name string) string {
	v, _ := h.lookupEnv(name)
	return v
}

// homeDir is os.UserHomeDir, which is $HOME.
func (h host) homeDir() (string, error) {
	h.in.AddEnv("HOME")
	return os.UserHomeDir()
}

func (h host) open(path string) (*os.File, error) {
	h.in.Add(path)
	return os.Open(path)
}
