package image

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// ParseReference parses a registry reference the way Docker writes them:
// "ubuntu" is docker.io/library/ubuntu:latest, "host:port/repo:tag" names
// another registry, and "@sha256:..." pins a digest.
func ParseReference(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref, name.WithDefaultTag("latest"))
	if err != nil {
		return nil, fmt.Errorf("%q is not an image reference: %w", ref, err)
	}
	return r, nil
}

// plainHTTPAllowed reports whether devbox may talk plain HTTP to the
// registry host (host or host:port): loopback registries always, others only
// when listed in insecure.
func plainHTTPAllowed(host string, insecure []string) bool {
	for _, h := range insecure {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
	}
	if hostname == "localhost" {
		return true
	}
	ip := net.ParseIP(hostname)
	return ip != nil && ip.IsLoopback()
}

// httpsOnly refuses plain-HTTP requests to registries that are neither on
// loopback nor listed as insecure. go-containerregistry would otherwise fall
// back to HTTP for private-range addresses, letting a network attacker
// downgrade the connection.
type httpsOnly struct {
	next     http.RoundTripper
	insecure []string
}

func (t *httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !plainHTTPAllowed(req.URL.Host, t.insecure) {
		return nil, fmt.Errorf("refusing plain HTTP to %s: list it in DEVBOX_INSECURE_REGISTRIES to allow it", req.URL.Host)
	}
	return t.next.RoundTrip(req)
}
