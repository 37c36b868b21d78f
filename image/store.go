package image

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/devboxhq/devbox/internal/parsecache"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Store is the shared, content-addressed image store of one user.
//
// # Layout
//
// Under the data directory:
//
//	layers/sha256/<diffID hex>/   one unpacked layer, in overlayfs format
//	images/sha256/<hex>.json      an image record (manifest digest → config, layers)
//	images/sha256/<hex>.json.parsed  the record as devbox last decoded it (a cache)
//	refs/<escaped reference>      the manifest digest a reference last resolved to
//	locks/<hex>.lock              flock(2) files that serialize work on one layer
//	locks/rootfs-<hex>.lock       the same for a rootfs: file (by its digest),
//	                              whose diffID is known only once it is unpacked
//
// Everything in progress is written under a name that starts with ".tmp-"
// and renamed into place when complete, so a crash never leaves a partial
// layer or record that a later run would use.
type Store struct {
	dataDir string
}

// OpenStore opens (creating it if needed) the store rooted at dataDir.
func OpenStore(dataDir string) (*Store, error) {
	s := &Store{dataDir: dataDir}
	for _, d := range []string{s.layersDir(), s.imagesDir(), s.refsDir(), s.locksDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open image store: %w", err)
		}
	}
	return s, nil
}

// Dir is the root directory of the store.
func (s *Store) Dir() string { return s.dataDir }

func (s *Store) layersDir() string { return filepath.Join(s.dataDir, "layers", "sha256") }
func (s *Store) imagesDir() string { return filepath.Join(s.dataDir, "images", "sha256") }
func (s *Store) refsDir() string   { return filepath.Join(s.dataDir, "refs") }
func (s *Store) locksDir() string  { return filepath.Join(s.dataDir, "locks") }

// LayerDir is the directory holding the unpacked layer with the given
// uncompressed digest (diffID). It exists only once the layer is complete.
func (s *Store) LayerDir(diffID v1.Hash) string {
	return filepath.Join(s.layersDir(), diffID.Hex)
}

// Image is what the store records about one pulled image.
type Image struct {
	// Ref is the reference the image was pulled by: a registry reference
	// in full, or a local source with its absolute path (see Source).
	Ref string `json:"ref"`
	// Digest is the digest of the image manifest (for a multi-platform
	// image, of the chosen platform's manifest).
	Digest v1.Hash `json:"digest"`
	// Platform is the image's os/arch[/variant].
	Platform string `json:"platform"`
	// Config is the image configuration: Env, Cmd, WorkingDir, User...
	Config v1.Config `json:"config"`
	// Layers are the image's layers, base layer first.
	Layers []Layer `json:"layers"`
}

// Layer describes one layer of an Image.
type Layer struct {
	Digest    v1.Hash `json:"digest"`    // of the compressed blob
	DiffID    v1.Hash `json:"diffID"`    // of the uncompressed tar stream
	Size      int64   `json:"size"`      // of the compressed blob, in bytes
	MediaType string  `json:"mediaType"` // as the manifest gives it
}

// LayerDirs are the directories of img's unpacked layers, base layer first.
func (s *Store) LayerDirs(img *Image) []string {
	dirs := make([]string, len(img.Layers))
	for i, l := range img.Layers {
		dirs[i] = s.LayerDir(l.DiffID)
	}
	return dirs
}

// ErrNotPresent is returned by Lookup when the store has no complete copy of
// an image.
var ErrNotPresent = errors.New("image: not in the local store")

// Lookup returns the image that ref last resolved to, if the store holds it
// complete. It makes no network access, and reads nothing of a local
// source: ref may name a file that is gone since it was pulled. A relative
// path in a local source is relative to the working directory (resolve it
// with Source.Abs first to look up what Pull with WithBaseDir recorded).
func (s *Store) Lookup(ref string) (*Image, error) {
	src, err := ParseSource(ref)
	if err != nil {
		return nil, err
	}
	if src.IsLocal() {
		if src, err = src.Abs(""); err != nil {
			return nil, err
		}
	}
	// The reference file comes first, also for a digest reference: the
	// digest of a multi-platform index resolves to the manifest of one
	// platform, and only the reference file records which.
	digest := ""
	b, err := os.ReadFile(filepath.Join(s.refsDir(), refFileName(src.String())))
	switch {
	case err == nil:
		digest = strings.TrimSpace(string(b))
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("look up %s: %w", ref, err)
	case src.Ref.Digest != "":
		digest = src.Ref.Digest
	default:
		return nil, ErrNotPresent
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, fmt.Errorf("look up %s: corrupt reference file: %w", ref, err)
	}
	img, err := s.readImage(h)
	if err != nil {
		return nil, err
	}
	for _, l := range img.Layers {
		if _, err := os.Lstat(s.LayerDir(l.DiffID)); err != nil {
			return nil, ErrNotPresent
		}
	}
	return img, nil
}

func (s *Store) readImage(h v1.Hash) (*Image, error) {
	path := s.recordPath(h)
	img, err := parsecache.Parse(path, path+recordCacheSuffix, parseRecord, imageCodec)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotPresent
	}
	if err != nil {
		return nil, fmt.Errorf("image record %s: %w", h, err)
	}
	return img, nil
}

// refFileName escapes a reference into one file name.
func refFileName(ref string) string {
	return url.PathEscape(ref)
}
