package image

import (
	"fmt"

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
