package testimages

import (
	"fmt"
	"net"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push writes img to the registry as ref. A registry on a loopback address
// (127.0.0.0/8, ::1, localhost) is spoken to over plain HTTP; any other over
// HTTPS. No credentials are sent.
func Push(img v1.Image, ref string) error {
	var opts []name.Option
	if r, err := name.ParseReference(ref); err == nil && isLoopback(r.Context().RegistryStr()) {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return fmt.Errorf("parse reference %q: %w", ref, err)
	}
	if err := remote.Write(r, img); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// isLoopback reports whether a registry host[:port] names this machine.
func isLoopback(registry string) bool {
	host, _, err := net.SplitHostPort(registry)
	if err != nil {
		host = registry
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
