package image

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/devboxhq/devbox/internal/fsutil"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Garbage collection and pulls exclude each other through one store-wide
// lock: pulls share it, gc takes it alone, so gc never sees a layer that a
// pull has unpacked but not yet recorded in an image.

// LockShared holds the store against gc until release is called.
func (s *Store) LockShared() (release func(), err error) {
	return fsutil.LockShared(filepath.Join(s.locksDir(), "store.lock"))
}

// LockExclusive waits until no pull holds the store, and keeps new ones out
// until release is called.
func (s *Store) LockExclusive() (release func(), err error) {
	return fsutil.Lock(filepath.Join(s.locksDir(), "store.lock"))
}

// Images returns every image record in the store, sorted by reference.
func (s *Store) Images() ([]*Image, error) {
	entries, err := os.ReadDir(s.imagesDir())
	if err != nil {
		return nil, err
	}
	var imgs []*Image
	for _, e := range entries {
		hex, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		img, err := s.readImage(v1.Hash{Algorithm: "sha256", Hex: hex})
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Ref < imgs[j].Ref })
	return imgs, nil
}

// Tags maps each reference the store has resolved (by tag or digest) to
// the manifest digest it resolved to.
func (s *Store) Tags() (map[string]v1.Hash, error) {
	entries, err := os.ReadDir(s.refsDir())
	if err != nil {
		return nil, err
	}
	tags := map[string]v1.Hash{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		ref, err := url.PathUnescape(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.refsDir(), e.Name()))
		if err != nil {
			return nil, err
		}
		h, err := v1.NewHash(strings.TrimSpace(string(b)))
		if err != nil {
			continue
		}
		tags[ref] = h
	}
	return tags, nil
}

// LayerIDs lists the complete layers in the store.
func (s *Store) LayerIDs() ([]v1.Hash, error) {
	entries, err := os.ReadDir(s.layersDir())
	if err != nil {
		return nil, err
	}
	var ids []v1.Hash
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			ids = append(ids, v1.Hash{Algorithm: "sha256", Hex: e.Name()})
		}
	}
	return ids, nil
}

// RemoveImage deletes the record of the image with manifest digest d and
// every reference that resolves to it. Its layers stay; see RemoveLayer.
func (s *Store) RemoveImage(d v1.Hash) error {
	tags, err := s.Tags()
	if err != nil {
		return err
	}
	for ref, h := range tags {
		if h == d {
			if err := os.Remove(filepath.Join(s.refsDir(), refFileName(ref))); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	for _, path := range []string{s.recordPath(d), s.recordPath(d) + recordCacheSuffix} {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// RemoveLayer deletes a layer directory: first renamed out of the way, so
// that a crash halfway never leaves a partial layer under its real name.
func (s *Store) RemoveLayer(diffID v1.Hash) error {
	tmp := filepath.Join(s.layersDir(), ".tmp-"+diffID.Hex+"-"+fsutil.RandomSuffix())
	if err := os.Rename(s.LayerDir(diffID), tmp); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return RemoveAll(tmp)
}

// RemoveTemporaries deletes what killed pulls left behind: ".tmp-" entries
// of the store. It must run under LockExclusive.
func (s *Store) RemoveTemporaries() (int, error) {
	n := 0
	for _, dir := range []string{s.layersDir(), s.imagesDir(), s.refsDir()} {
		matches, err := filepath.Glob(filepath.Join(dir, ".tmp-*"))
		if err != nil {
			return n, err
		}
		for _, m := range matches {
			if err := RemoveAll(m); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
