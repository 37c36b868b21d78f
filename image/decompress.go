//go:build !devbox_lean

package image

import (
	"errors"
	"fmt"
	"io"

	"github.com/mholt/archiver/v4"
)

// Decompress identifies the compression of r (gzip, zstd, xz, bzip2, or
// none) with archiver.Identify and returns the decompressed stream, opened
// with that format's OpenReader; gzip is decompressed by pgzip
// (archiver.Gz{Multithreaded: true}).
//
// The compression is read from the stream's magic bytes alone, never from a
// name. A stream that matches no compression (a plain tar, or an empty or
// unrecognised stream) is returned as it is, for the tar reader to judge; a
// compression other than the four above, such as lz4, snappy or zlib, is an
// error. r is read strictly forward from where it is, once, byte by byte in
// order, so that a digest-verifying reader underneath sees the whole blob:
// archiver would rewind an io.Seeker to offset 0, and Decompress hides that
// method from it. Close releases the decompressor (pgzip and zstd run
// goroutines) but does not close r.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	format, stream, err := archiver.Identify("", struct{ io.Reader }{r})
	if err != nil && !errors.Is(err, archiver.ErrNoMatch) {
		return nil, fmt.Errorf("identify layer compression: %w", err)
	}
	var comp archiver.Compression
	switch f := format.(type) {
	case archiver.CompressedArchive:
		comp = f.Compression
	case archiver.Compression:
		comp = f
	default:
		// A tar, or nothing recognised: not compressed.
		return io.NopCloser(stream), nil
	}
	switch comp.(type) {
	case archiver.Gz:
		// pgzip decompresses ahead on other cores while the applier writes.
		comp = archiver.Gz{Multithreaded: true}
	case archiver.Zstd, archiver.Xz, archiver.Bz2:
	default:
		return nil, fmt.Errorf("unsupported layer compression %q", comp.Name())
	}
	rc, err := comp.OpenReader(stream)
	if err != nil {
		return nil, fmt.Errorf("open %s decompressor: %w", comp.Name(), err)
	}
	return rc, nil
}
