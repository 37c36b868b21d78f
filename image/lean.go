//go:build devbox_lean

package image

import (
	"context"

	"github.com/devboxhq/devbox/internal/fullprog"
)

// Pull needs the registry client or the decoders of local sources, which
// the lean program leaves out (see package fullprog). It checks opts, so
// that a bad option is reported by whichever program runs.
func (s *Store) Pull(ctx context.Context, ref string, opts ...Option) (*Image, error) {
	if _, err := makeOptions(opts...); err != nil {
		return nil, err
	}
	return nil, fullprog.ErrNeeded
}
