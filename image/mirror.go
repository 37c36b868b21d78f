package image

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// mirror is one registry mirror: a registry that serves the same
// repositories as another one, as Docker's registry-mirrors do.
type mirror struct {
	host      string // host or host:port
	plainHTTP bool   // written as http://host: plain HTTP is allowed
}

// WithMirrors gives mirrors for registries: mirrors["docker.io"] lists, in
// order, the registries (host or host:port, optionally with an https:// or
// http:// scheme; http:// allows plain HTTP to that mirror) that Pull asks
// for an image of docker.io before docker.io itself. Pull falls back to
// the next mirror, and at last to the registry, when a mirror fails or
// lacks the image; mirrors get no retries of their own. The image is
// recorded under the reference as given, never the mirror's name, so a
// mirror changes neither Lookup nor the digest a lock pins. Registry names
// are spelled as in references ("docker.io" and "index.docker.io" are the
// same). WithMirrors may be given more than once; the lists add up. The
// default is no mirrors.
func WithMirrors(mirrors map[string][]string) Option {
	return func(o *options) error {
		// Sorted, so that "docker.io" and "index.docker.io" in one map
		// give one order.
		for _, reg := range slices.Sorted(maps.Keys(mirrors)) {
			list := mirrors[reg]
			canonical, err := ParseRegistry(reg)
			if err != nil {
				return fmt.Errorf("mirrors: %q is not a registry name (host or host:port)", reg)
			}
			for _, m := range list {
				parsed, err := parseMirror(m)
				if err != nil {
					return fmt.Errorf("mirrors for %s: %w", reg, err)
				}
				if o.mirrors == nil {
					o.mirrors = map[string][]mirror{}
				}
				o.mirrors[canonical] = append(o.mirrors[canonical], parsed)
			}
		}
		return nil
	}
}

// parseMirror reads "host[:port]", "https://host[:port]" or
// "http://host[:port]", with an optional trailing slash.
func parseMirror(s string) (mirror, error) {
	m := mirror{host: strings.TrimSuffix(s, "/")}
	if rest, ok := strings.CutPrefix(m.host, "https://"); ok {
		m.host = rest
	} else if rest, ok := strings.CutPrefix(m.host, "http://"); ok {
		m.host, m.plainHTTP = rest, true
	}
	if strings.Contains(m.host, "/") {
		return mirror{}, fmt.Errorf("%q: a mirror is a registry host[:port], without a path", s)
	}
	if _, err := ParseRegistry(m.host); err != nil {
		return mirror{}, fmt.Errorf("%q is not a registry host[:port]", s)
	}
	return m, nil
}
