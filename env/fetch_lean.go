//go:build devbox_lean

package env

import (
	"context"
	"io"

	"github.com/devboxhq/devbox/internal/fullprog"
)

// The lean program leaves out the HTTP client and the archive decoders
// (see package fullprog): downloading or unpacking an archive needs the
// full program.

func (b *Builder) download(ctx context.Context, a ArchiveConfig, want string) (string, error) {
	return "", fullprog.ErrNeeded
}

func archiveToTar(ctx context.Context, r io.Reader, a ArchiveConfig, w io.Writer) error {
	return fullprog.ErrNeeded
}
