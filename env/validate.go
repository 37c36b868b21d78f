package env

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/devboxhq/devbox/image"
)

// The patterns are compiled on first use: a warm run reads devbox.toml
// from the parse cache and validates nothing, and should not pay for them.
var (
	namePattern    = lazyRegexp(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	envPattern     = lazyRegexp(`^[A-Za-z_][A-Za-z0-9_]*$`)
	sha256Pattern  = lazyRegexp(`^[0-9a-f]{64}$`)
	packagePattern = lazyRegexp(`^[A-Za-z0-9][A-Za-z0-9.+_:=~<>@/-]*$`)
)

func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// validate checks the values that the schema's types cannot, returning the
// first problem as a *schemaError.
func (c *Config) validate() error {
	bad := func(msg string, key ...string) error { return &schemaError{Key: key, Msg: msg} }
	if strings.TrimSpace(c.Image.Ref) == "" {
		return &schemaError{Key: []string{"image", "ref"}, Msg: `is required: name the base image, e.g. ref = "debian:bookworm"`, missing: true}
	}
	if _, err := image.ParseSource(c.Image.Ref); err != nil {
		return bad(err.Error(), "image", "ref")
	}
	if p := c.Image.Platform; p != "" {
		parts := strings.Split(p, "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return bad(fmt.Sprintf(`%q is not a platform: write os/arch or os/arch/variant, e.g. "linux/arm64"`, p), "image", "platform")
		}
	}
	for i, p := range c.Tools.Packages {
		if !packagePattern().MatchString(p) {
			return bad(fmt.Sprintf("%q is not a package name", p), "tools", "packages", fmt.Sprintf("[%d]", i))
		}
	}
	names := map[string]bool{}
	for i, a := range c.Tools.Archive {
		key := func(k string) []string { return []string{"tools", "archive", fmt.Sprintf("[%d]", i), k} }
		u, err := url.Parse(a.URL)
		switch {
		case a.URL == "":
			return &schemaError{Key: key("url"), Msg: "is required: where to download the archive", missing: true}
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			return bad(fmt.Sprintf("%q is not an http(s) URL", a.URL), key("url")...)
		case a.SHA256 != "" && !sha256Pattern().MatchString(a.SHA256):
			return bad("must be 64 lowercase hex digits (the output of sha256sum)", key("sha256")...)
		case a.Strip < 0:
			return bad("must be 0 or more", key("strip")...)
		case a.Dest != "" && !path.IsAbs(a.Dest):
			return bad(fmt.Sprintf("%q must be an absolute path inside the sandbox", a.Dest), key("dest")...)
		}
		name := a.StepName()
		if !namePattern().MatchString(name) {
			return bad(fmt.Sprintf("%q is not a name: use letters, digits, '.', '_' and '-'", name), key("name")...)
		}
		if names[name] {
			return bad(fmt.Sprintf("%q names two archives: give each a distinct name", name), key("name")...)
		}
		names[name] = true
		for _, f := range []struct {
			key  string
			rels []string
		}{{"bin", a.Bin}, {"path", a.Path}} {
			for _, r := range f.rels {
				if r == "" || path.IsAbs(r) || strings.HasPrefix(path.Clean(r), "..") {
					return bad(fmt.Sprintf("%q must be a path relative to dest, inside it", r), key(f.key)...)
				}
			}
		}
	}
	for i, r := range c.Setup.Run {
		if strings.TrimSpace(r) == "" {
			return bad("is an empty command", "setup", "run", fmt.Sprintf("[%d]", i))
		}
	}
	if w := c.Shell.Workdir; w != "" && !path.IsAbs(w) {
		return bad(fmt.Sprintf("%q must be an absolute path inside the sandbox", w), "shell", "workdir")
	}
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		if !envPattern().MatchString(k) {
			return bad("is not a variable name", "env", k)
		}
		if _, err := envRefs(c.Env[k]); err != nil {
			return bad(err.Error(), "env", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.Scripts)) {
		v := c.Scripts[k]
		if !namePattern().MatchString(k) {
			return bad("is not a script name: use letters, digits, '.', '_' and '-'", "scripts", k)
		}
		if strings.TrimSpace(v) == "" {
			return bad("is an empty command", "scripts", k)
		}
	}
	for i, m := range c.Mounts {
		key := func(k string) []string { return []string{"mounts", fmt.Sprintf("[%d]", i), k} }
		switch {
		case m.Source == "":
			return &schemaError{Key: key("source"), Msg: "is required: the host path to mount", missing: true}
		case m.Target == "":
			return &schemaError{Key: key("target"), Msg: "is required: where the mount appears inside", missing: true}
		case !path.IsAbs(m.Target):
			return bad(fmt.Sprintf("%q must be an absolute path inside the sandbox", m.Target), key("target")...)
		}
	}
	switch c.Network.Mode {
	case "", "host", "none", "isolated":
	default:
		return bad(fmt.Sprintf(`%q is not a network mode: use "host", "isolated" or "none"`, c.Network.Mode), "network", "mode")
	}
	for i, p := range c.Network.Ports {
		if _, err := ParsePort(p); err != nil {
			return bad(err.Error(), "network", "ports", fmt.Sprintf("[%d]", i))
		}
	}
	if len(c.Network.Ports) > 0 && c.Network.Mode != "isolated" {
		return bad(`ports are forwarded only with mode = "isolated"`, "network", "ports")
	}
	switch c.Sandbox.Userns {
	case "", "single", "subuid":
	default:
		return bad(fmt.Sprintf(`%q is not a user namespace mode: use "single" or "subuid"`, c.Sandbox.Userns), "sandbox", "userns")
	}
	return nil
}

// StepName is the name of the archive's build step: Name, or the file
// name of its URL without archive extensions.
func (a ArchiveConfig) StepName() string {
	if a.Name != "" {
		return a.Name
	}
	u, err := url.Parse(a.URL)
	if err != nil {
		return ""
	}
	base := path.Base(u.Path)
	for _, ext := range []string{".gz", ".tgz", ".xz", ".zst", ".bz2", ".tar", ".zip"} {
		base = strings.TrimSuffix(base, ext)
	}
	return base
}

// DestDir is where the archive is unpacked inside the sandbox.
func (a ArchiveConfig) DestDir() string {
	if a.Dest != "" {
		return path.Clean(a.Dest)
	}
	return "/opt/" + a.StepName()
}

// Port is one forwarded port.
type Port struct {
	HostIP    string
	HostPort  int
	ChildPort int
}

// ParsePort parses "HOSTPORT:PORT" or "IP:HOSTPORT:PORT".
func ParsePort(s string) (Port, error) {
	parts := strings.Split(s, ":")
	p := Port{HostIP: "127.0.0.1"}
	if len(parts) == 3 {
		p.HostIP, parts = parts[0], parts[1:]
		if net.ParseIP(p.HostIP) == nil {
			return Port{}, fmt.Errorf("%q: %q is not an IP address", s, p.HostIP)
		}
	}
	if len(parts) != 2 {
		return Port{}, fmt.Errorf(`%q is not a port mapping: write "HOSTPORT:PORT", e.g. "8080:80"`, s)
	}
	for i, dst := range []*int{&p.HostPort, &p.ChildPort} {
		n, err := strconv.Atoi(parts[i])
		if err != nil || n < 1 || n > 65535 {
			return Port{}, fmt.Errorf("%q: %q is not a port number (1-65535)", s, parts[i])
		}
		*dst = n
	}
	return p, nil
}
