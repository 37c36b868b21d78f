//go:build !devbox_lean

package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/devboxhq/devbox/internal/fsutil"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/mholt/archiver/v4"
)

// refNameAnnotation tags a manifest in an OCI layout's index.json.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// rootfsEnv is the environment of the synthetic image config of a rootfs:
// source, which has none of its own.
const rootfsEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxMetadataSize caps the JSON documents read from a local source
// (index.json, manifest.json, manifests and configs), which are read into
// memory whole.
const maxMetadataSize = 16 << 20

// maxArchiveMembers caps the entries of an archive that is indexed.
const maxArchiveMembers = 1 << 20

// sourceError is a one-line error about a local source, with cause kept
// in the chain (an *fs.PathError, say) for errors.Is and errors.As.
func sourceError(src Source, cause error, format string, args ...any) error {
	return &pullError{msg: "pull " + src.String() + ": " + fmt.Sprintf(format, args...), err: cause}
}

// pathError is sourceError for an error from the file system, worded
// without the path the message names already.
func pathError(src Source, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return sourceError(src, err, "%v", pe.Err)
	}
	return sourceError(src, err, "%v", err)
}

// pullLocal pulls an image from a local source whose path is absolute.
func (s *Store) pullLocal(ctx context.Context, src Source, o *options) (*Image, error) {
	if src.Kind == RootFSSource {
		return s.pullRootFS(ctx, src, o)
	}
	img, closeSrc, err := openLocal(src, o.platform)
	if err != nil {
		return nil, err
	}
	defer closeSrc()
	rec, layers, err := describe(img, o.platform)
	if err != nil {
		return nil, sourceError(src, err, "%v", err)
	}
	rec.Ref = src.String()
	// Local layers are read under this context (countingReader checks
	// it), so cancelling it stops them as it stops a download.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := s.install(ctx, cancel, rec, layers, o); err != nil {
		return nil, err
	}
	return rec, nil
}

// openLocal opens the image of an oci-layout: or docker-archive: source.
// closeSrc releases the source once its layers have been read.
func openLocal(src Source, platform *v1.Platform) (img v1.Image, closeSrc func(), err error) {
	fi, err := os.Stat(src.Path)
	if err != nil {
		return nil, nil, pathError(src, err)
	}
	switch {
	case fi.IsDir() && src.Kind == OCILayoutSource:
		lp, err := layout.FromPath(src.Path)
		if err != nil {
			return nil, nil, sourceError(src, err, "not an OCI image layout: it has no index.json")
		}
		img, err := ociImage(src, layoutDir{lp}, platform)
		return img, func() {}, err
	case fi.IsDir():
		return nil, nil, sourceError(src, nil, "is a directory, not a docker save archive (an OCI layout directory is oci-layout:PATH)")
	case !fi.Mode().IsRegular():
		return nil, nil, sourceError(src, nil, "is not a regular file")
	}
	a, err := openTarArchive(src)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case src.Kind == DockerArchiveSource && a.has("manifest.json"):
		img, err = dockerArchiveImage(src, a)
	case a.has("index.json"):
		img, err = ociImage(src, a, platform)
	case src.Kind == DockerArchiveSource:
		err = sourceError(src, nil, "not a docker save archive: it has no manifest.json (nor the index.json of an OCI layout)")
	default:
		err = sourceError(src, nil, "not an OCI image layout archive: it has no index.json")
	}
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return img, func() { a.Close() }, nil
}

// ociStore is an OCI image layout: a directory or an archive of one.
type ociStore interface {
	blobOpener
	// indexJSON returns the layout's index.json.
	indexJSON() ([]byte, error)
}

// blobOpener opens a local source's blobs by digest, unverified.
type blobOpener interface {
	blob(h v1.Hash) (io.ReadCloser, error)
}

// layoutDir is an OCI image layout directory.
type layoutDir struct{ p layout.Path }

func (d layoutDir) indexJSON() ([]byte, error) {
	idx, err := d.p.ImageIndex()
	if err != nil {
		return nil, err
	}
	return idx.RawManifest()
}

func (d layoutDir) blob(h v1.Hash) (io.ReadCloser, error) { return d.p.Blob(h) }

// ociImage picks the image that src names from an OCI layout.
func ociImage(src Source, st ociStore, platform *v1.Platform) (v1.Image, error) {
	raw, err := st.indexJSON()
	if err != nil {
		return nil, sourceError(src, err, "read index.json: %v", err)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, sourceError(src, err, "index.json: %v", err)
	}
	tags := ociTags(idx.Manifests)
	cands := idx.Manifests
	if src.Tag != "" {
		cands = slices.DeleteFunc(slices.Clone(cands), func(d v1.Descriptor) bool { return d.Annotations[refNameAnnotation] != src.Tag })
		if len(cands) == 0 {
			return nil, sourceError(src, nil, "no image tagged %q in the layout; %s", src.Tag, tagList(tags))
		}
	}
	var desc v1.Descriptor
	switch {
	case len(cands) == 1:
		desc = cands[0]
	case len(cands) == 0:
		return nil, sourceError(src, nil, "the layout holds no image")
	case !slices.ContainsFunc(cands, func(d v1.Descriptor) bool { return d.Platform == nil }):
		// One image per platform, listed in index.json itself.
		if desc, err = pickPlatform(cands, platform); err != nil {
			return nil, sourceError(src, err, "%v", err)
		}
	case src.Tag != "":
		return nil, sourceError(src, nil, "%d images are tagged %q in the layout", len(cands), src.Tag)
	default:
		return nil, sourceError(src, nil, "the layout holds %d images: name one as %s:TAG; %s", len(cands), src, tagList(tags))
	}
	img, err := ociResolve(st, desc, platform, 0)
	if err != nil {
		return nil, sourceError(src, err, "%v", err)
	}
	return img, nil
}

// ociResolve returns the image desc names, picking platform's image from
// an index (nested at most a few deep).
func ociResolve(st ociStore, desc v1.Descriptor, platform *v1.Platform, depth int) (v1.Image, error) {
	if depth > 3 {
		return nil, fmt.Errorf("index %s: indexes nested too deep", desc.Digest)
	}
	raw, err := readBlob(st, desc)
	if err != nil {
		return nil, err
	}
	mt := desc.MediaType
	if mt == "" {
		mt = sniffMediaType(raw)
	}
	switch {
	case mt.IsIndex():
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		next := v1.Descriptor{}
		if len(idx.Manifests) == 1 {
			next = idx.Manifests[0]
		} else if next, err = pickPlatform(idx.Manifests, platform); err != nil {
			return nil, err
		}
		return ociResolve(st, next, platform, depth+1)
	case mt.IsImage():
		return newLocalImage(st, raw, mt)
	}
	return nil, fmt.Errorf("manifest %s has media type %q, which is neither an image nor an index", desc.Digest, mt)
}

// sniffMediaType guesses the media type of a manifest or index that its
// descriptor gives none for.
func sniffMediaType(raw []byte) types.MediaType {
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	json.Unmarshal(raw, &probe)
	switch {
	case probe.MediaType != "":
		return probe.MediaType
	case probe.Manifests != nil:
		return types.OCIImageIndex
	}
	return types.OCIManifestSchema1
}

// ociTags lists the ref.name annotations of an index's manifests.
func ociTags(ds []v1.Descriptor) []string {
	var tags []string
	for _, d := range ds {
		if t := d.Annotations[refNameAnnotation]; t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	slices.Sort(tags)
	return tags
}

func tagList(tags []string) string {
	if len(tags) == 0 {
		return "it has no tags"
	}
	return "it has " + strings.Join(tags, ", ")
}

// localImage is an image of a local source: its manifest and config read
// and verified, its layers read from the source when they are unpacked.
type localImage struct {
	blobs     blobOpener
	manifest  []byte
	parsed    *v1.Manifest
	mediaType types.MediaType
	config    []byte
}

var _ partial.CompressedImageCore = (*localImage)(nil)

// newLocalImage reads the config that manifest names from blobs.
func newLocalImage(blobs blobOpener, manifest []byte, mt types.MediaType) (v1.Image, error) {
	m, err := v1.ParseManifest(bytes.NewReader(manifest))
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	cfg, err := readBlob(blobs, m.Config)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return partial.CompressedToImage(&localImage{blobs: blobs, manifest: manifest, parsed: m, mediaType: mt, config: cfg})
}

func (i *localImage) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *localImage) MediaType() (types.MediaType, error) { return i.mediaType, nil }
func (i *localImage) RawManifest() ([]byte, error)        { return i.manifest, nil }

func (i *localImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, d := range i.parsed.Layers {
		if d.Digest == h {
			return &localLayer{blobs: i.blobs, desc: d}, nil
		}
	}
	return nil, fmt.Errorf("the manifest lists no layer %s", h)
}

// localLayer is one layer of a localImage.
type localLayer struct {
	blobs blobOpener
	desc  v1.Descriptor
}

var _ partial.CompressedLayer = (*localLayer)(nil)

func (l *localLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *localLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *localLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

// Compressed reads the blob, failing at its end unless it has the digest
// and size that the manifest gives.
func (l *localLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.blobs.blob(l.desc.Digest)
	if err != nil {
		return nil, err
	}
	return newVerifiedReader(rc, l.desc.Digest, l.desc.Size)
}

// readBlob reads a small blob (a manifest, index or config) whole and
// verifies it.
func readBlob(blobs blobOpener, d v1.Descriptor) ([]byte, error) {
	if d.Size < 0 || d.Size > maxMetadataSize {
		return nil, fmt.Errorf("blob %s: size %d is out of bounds (at most %d bytes)", d.Digest, d.Size, maxMetadataSize)
	}
	rc, err := blobs.blob(d.Digest)
	if err != nil {
		return nil, err
	}
	vr, err := newVerifiedReader(rc, d.Digest, d.Size)
	if err != nil {
		return nil, err
	}
	defer vr.Close()
	return io.ReadAll(vr)
}

// DigestError is a blob of a local source whose content does not match
// the digest it is known by.
type DigestError struct {
	Want, Got v1.Hash
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("checksum mismatch: blob %s holds content with digest %s", e.Want, e.Got)
}

// verifiedReader reads a blob and fails at its end unless it had exactly
// size bytes with digest want. It never reads more than size+1 bytes, so
// an oversized blob fails without being read whole.
type verifiedReader struct {
	rc   io.ReadCloser
	r    io.Reader
	h    hash.Hash
	n    int64
	want v1.Hash
	size int64
}

func newVerifiedReader(rc io.ReadCloser, want v1.Hash, size int64) (*verifiedReader, error) {
	if want.Algorithm != "sha256" {
		rc.Close()
		return nil, fmt.Errorf("blob %s: unsupported digest algorithm %q", want, want.Algorithm)
	}
	return &verifiedReader{rc: rc, r: io.LimitReader(rc, size+1), h: sha256.New(), want: want, size: size}, nil
}

func (v *verifiedReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.size {
		return n, fmt.Errorf("blob %s is larger than the %d bytes its descriptor gives", v.want, v.size)
	}
	if err == io.EOF {
		if v.n != v.size {
			return n, fmt.Errorf("blob %s has %d bytes, but its descriptor gives %d", v.want, v.n, v.size)
		}
		if got := (v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(v.h.Sum(nil))}); got != v.want {
			return n, &DigestError{Want: v.want, Got: got}
		}
	}
	return n, err
}

func (v *verifiedReader) Close() error { return v.rc.Close() }

// tarArchive is an uncompressed tar file whose members are indexed once
// and then read in place, in any order and concurrently (with pread).
type tarArchive struct {
	f       *os.File
	members map[string]tarMember // by cleaned name
}

type tarMember struct {
	typ       byte
	off, size int64
	link      string // a link's target, as a cleaned member name
}

// openTarArchive indexes the archive at src.Path.
func openTarArchive(src Source) (*tarArchive, error) {
	f, err := os.Open(src.Path)
	if err != nil {
		return nil, pathError(src, err)
	}
	a := &tarArchive{f: f, members: map[string]tarMember{}}
	if err := a.index(src); err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

func (a *tarArchive) index(src Source) error {
	format, _, err := archiver.Identify("", a.f)
	if err != nil && !errors.Is(err, archiver.ErrNoMatch) {
		return sourceError(src, err, "identify the archive: %v", err)
	}
	switch f := format.(type) {
	case archiver.Tar:
	case archiver.Compression: // or a CompressedArchive, which is one too
		return sourceError(src, nil, "is compressed (%s): decompress it first, e.g. with 'gunzip' or 'zstd -d'", strings.TrimPrefix(compressionOf(f).Name(), "."))
	case nil:
		return sourceError(src, nil, "not a tar archive")
	default:
		return sourceError(src, nil, "is a %s archive, not a tar archive", strings.TrimPrefix(f.Name(), "."))
	}
	if _, err := a.f.Seek(0, io.SeekStart); err != nil {
		return sourceError(src, err, "%v", err)
	}
	// archive/tar reads headers straight from the file, block by block,
	// and seeks over member data: right after Next, the file's offset is
	// where the member's data starts.
	tr := tar.NewReader(a.f)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return sourceError(src, err, "read the archive: %v", err)
		}
		if n == maxArchiveMembers {
			return sourceError(src, nil, "the archive has more than %d members", maxArchiveMembers)
		}
		off, err := a.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return sourceError(src, err, "%v", err)
		}
		name := cleanMemberName(hdr.Name)
		m := tarMember{typ: hdr.Typeflag, off: off, size: hdr.Size}
		switch hdr.Typeflag {
		case tar.TypeSymlink:
			target := hdr.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target)
			}
			m.link = cleanMemberName(target)
		case tar.TypeLink:
			m.link = cleanMemberName(hdr.Linkname)
		case tar.TypeReg:
			// A sparse member's data is not stored in one piece.
			for k := range hdr.PAXRecords {
				if strings.HasPrefix(k, "GNU.sparse.") {
					m.typ = tar.TypeGNUSparse
				}
			}
		}
		a.members[name] = m
	}
}

// cleanMemberName is the name of a member without "./", a leading "/" or
// "..": "./blobs/sha256/x" and "blobs/sha256/x" are one member.
func cleanMemberName(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

func (a *tarArchive) has(name string) bool {
	_, ok := a.members[name]
	return ok
}

// open returns the content of the regular file name, following links
// inside the archive.
func (a *tarArchive) open(name string) (io.ReadCloser, int64, error) {
	m, ok := a.members[name]
	for hops := 0; ok && m.link != ""; hops++ {
		if hops == 16 {
			return nil, 0, fmt.Errorf("%s: too many links", name)
		}
		m, ok = a.members[m.link]
	}
	if !ok {
		return nil, 0, fmt.Errorf("%s is not in the archive: %w", name, fs.ErrNotExist)
	}
	if m.typ != tar.TypeReg {
		return nil, 0, fmt.Errorf("%s is not a plain regular file in the archive", name)
	}
	return io.NopCloser(io.NewSectionReader(a.f, m.off, m.size)), m.size, nil
}

// readMember reads a small member whole.
func (a *tarArchive) readMember(name string) ([]byte, error) {
	rc, size, err := a.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxMetadataSize {
		return nil, fmt.Errorf("%s is %d bytes, more than %d", name, size, maxMetadataSize)
	}
	return io.ReadAll(rc)
}

func (a *tarArchive) indexJSON() ([]byte, error) { return a.readMember("index.json") }

// blob opens a blob of an OCI layout archive.
func (a *tarArchive) blob(h v1.Hash) (io.ReadCloser, error) {
	rc, _, err := a.open(path.Join("blobs", h.Algorithm, h.Hex))
	return rc, err
}

func (a *tarArchive) Close() error { return a.f.Close() }

// dockerBlobs are the layers of a docker save archive, by digest.
type dockerBlobs struct {
	a     *tarArchive
	paths map[v1.Hash]string
}

func (d *dockerBlobs) blob(h v1.Hash) (io.ReadCloser, error) {
	p, ok := d.paths[h]
	if !ok {
		return nil, fmt.Errorf("blob %s is not in the archive: %w", h, fs.ErrNotExist)
	}
	rc, _, err := d.a.open(p)
	return rc, err
}

// dockerArchiveImage reads the image that src names from a docker save
// archive (its manifest.json).
//
// A docker save archive has no manifest as a registry serves it, only a
// config and layer files, so devbox writes an OCI manifest for it, the same
// for the same archive every time: the config's digest, and for each layer
// its media type, size and digest. A layer stored uncompressed, as docker
// save writes them, has its diffID (from the config) as digest, checked
// when the layer is unpacked; a compressed layer is hashed here. go-
// containerregistry's tarball.Image would instead gzip every uncompressed
// layer just to compute the digests of a manifest, with a result that
// depends on its gzip implementation.
func dockerArchiveImage(src Source, a *tarArchive) (v1.Image, error) {
	raw, err := a.readMember("manifest.json")
	if err != nil {
		return nil, sourceError(src, err, "%v", err)
	}
	var m tarball.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, sourceError(src, err, "manifest.json: %v", err)
	}
	d, err := pickDockerImage(src, m)
	if err != nil {
		return nil, err
	}
	cfgRaw, err := a.readMember(cleanMemberName(d.Config))
	if err != nil {
		return nil, sourceError(src, err, "config: %v", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, sourceError(src, err, "config %s: %v", d.Config, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(d.Layers) {
		return nil, sourceError(src, nil, "manifest.json lists %d layers but the config lists %d diffIDs", len(d.Layers), len(cfg.RootFS.DiffIDs))
	}
	cfgDigest, cfgSize, err := v1.SHA256(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, err
	}
	man := &v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: cfgSize, Digest: cfgDigest},
	}
	blobs := &dockerBlobs{a: a, paths: map[v1.Hash]string{}}
	for i, p := range d.Layers {
		p = cleanMemberName(p)
		desc, err := describeArchiveLayer(a, p, cfg.RootFS.DiffIDs[i])
		if err != nil {
			return nil, sourceError(src, err, "layer %s: %v", p, err)
		}
		man.Layers = append(man.Layers, desc)
		blobs.paths[desc.Digest] = p
	}
	rawMan, err := json.Marshal(man)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&localImage{blobs: blobs, manifest: rawMan, parsed: man, mediaType: man.MediaType, config: cfgRaw})
}

// pickDockerImage picks the image of a docker save manifest.json that src
// names by its REPO:TAG, or the only one.
func pickDockerImage(src Source, m tarball.Manifest) (tarball.Descriptor, error) {
	var tags []string
	for _, d := range m {
		tags = append(tags, d.RepoTags...)
	}
	slices.Sort(tags)
	switch {
	case len(m) == 0:
		return tarball.Descriptor{}, sourceError(src, nil, "manifest.json lists no image")
	case src.Tag == "" && len(m) == 1:
		return m[0], nil
	case src.Tag == "":
		return tarball.Descriptor{}, sourceError(src, nil, "the archive holds %d images: name one as %s:REPO:TAG; %s", len(m), src, tagList(tags))
	}
	want, err := name.NewTag(src.Tag)
	if err != nil {
		return tarball.Descriptor{}, sourceError(src, err, "%q is not a REPO:TAG", src.Tag)
	}
	for _, d := range m {
		for _, t := range d.RepoTags {
			if have, err := name.NewTag(t); err == nil && have.Name() == want.Name() {
				return d, nil
			}
		}
	}
	return tarball.Descriptor{}, sourceError(src, nil, "no image tagged %s in the archive; %s", src.Tag, tagList(tags))
}

// describeArchiveLayer is the manifest descriptor of the layer file p.
func describeArchiveLayer(a *tarArchive, p string, diffID v1.Hash) (v1.Descriptor, error) {
	rc, size, err := a.open(p)
	if err != nil {
		return v1.Descriptor{}, err
	}
	format, _, err := archiver.Identify("", rc)
	rc.Close()
	if err != nil && !errors.Is(err, archiver.ErrNoMatch) {
		return v1.Descriptor{}, err
	}
	comp := compressionOf(format)
	if comp == nil {
		// Stored uncompressed: the blob is the tar stream the diffID names.
		return v1.Descriptor{MediaType: types.OCIUncompressedLayer, Size: size, Digest: diffID}, nil
	}
	rc, _, err = a.open(p)
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer rc.Close()
	digest, n, err := v1.SHA256(rc)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: layerMediaType(comp), Size: n, Digest: digest}, nil
}

// compressionOf is the compression of an archiver format, nil for none.
func compressionOf(format archiver.Format) archiver.Compression {
	switch f := format.(type) {
	case archiver.CompressedArchive: // which is a Compression too
		return f.Compression
	case archiver.Compression:
		return f
	}
	return nil
}

// layerMediaType is the OCI media type of a tar layer compressed with c.
func layerMediaType(c archiver.Compression) types.MediaType {
	switch c.(type) {
	case nil:
		return types.OCIUncompressedLayer
	case archiver.Gz:
		return types.OCILayer
	case archiver.Zstd:
		return types.OCILayerZStd
	}
	return types.MediaType(string(types.OCIUncompressedLayer) + "+" + strings.TrimPrefix(c.Name(), "."))
}

// pullRootFS pulls a rootfs: source: one layer, whose diffID is computed
// while it is unpacked, under a synthetic config.
func (s *Store) pullRootFS(ctx context.Context, src Source, o *options) (*Image, error) {
	f, err := os.Open(src.Path)
	if err != nil {
		return nil, pathError(src, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, pathError(src, err)
	}
	if fi.IsDir() {
		return nil, sourceError(src, nil, "is a directory: rootfs: takes a tar archive of a root filesystem (an OCI layout directory is oci-layout:PATH)")
	}
	if !fi.Mode().IsRegular() {
		return nil, sourceError(src, nil, "is not a regular file")
	}
	info, err := identifyRootFS(ctx, src, f)
	if err != nil {
		return nil, err
	}
	release, err := s.LockShared()
	if err != nil {
		return nil, err
	}
	defer release()
	unlock, err := s.ensureRootFSLayer(ctx, f, &info, o.progress)
	if err != nil {
		return nil, fmt.Errorf("pull %s: layer %s: %w", src, info.Digest, err)
	}
	// Held until the record that maps the digest to the diffID is written.
	defer unlock()
	rec, err := rootfsImage(src, info, o.platform)
	if err != nil {
		return nil, err
	}
	if err := s.record(rec, rec.Ref); err != nil {
		return nil, fmt.Errorf("pull %s: record image: %w", rec.Ref, err)
	}
	return rec, nil
}

// identifyRootFS checks that f is a tar archive, compressed or not, and
// returns its layer record without a DiffID: the digest and size of the
// file, and a media type for its compression.
func identifyRootFS(ctx context.Context, src Source, f *os.File) (Layer, error) {
	format, _, err := archiver.Identify("", f)
	if err != nil && !errors.Is(err, archiver.ErrNoMatch) {
		return Layer{}, sourceError(src, err, "identify the archive: %v", err)
	}
	switch ft := format.(type) {
	case archiver.Tar:
	case archiver.CompressedArchive:
		if _, ok := ft.Archival.(archiver.Tar); !ok {
			return Layer{}, sourceError(src, nil, "is a %s archive, not a tar archive", strings.TrimPrefix(ft.Name(), "."))
		}
	case archiver.Compression:
		return Layer{}, sourceError(src, nil, "is compressed (%s), but not a tar archive inside", strings.TrimPrefix(ft.Name(), "."))
	case nil:
		return Layer{}, sourceError(src, nil, "not a tar archive, compressed or not")
	default:
		return Layer{}, sourceError(src, nil, "is a %s archive, not a tar archive", strings.TrimPrefix(ft.Name(), "."))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Layer{}, pathError(src, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, &countingReader{ctx: ctx, r: f, report: func(int64) {}})
	if err != nil {
		return Layer{}, pathError(src, err)
	}
	return Layer{
		Digest:    v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))},
		Size:      n,
		MediaType: string(layerMediaType(compressionOf(format))),
	}, nil
}

// ensureRootFSLayer unpacks the rootfs in f into the store unless an
// earlier pull has, and sets info.DiffID. The diffID is known only once the
// file has been decompressed, so the store's records, not the file, say
// whether it is there already: an earlier pull of a rootfs with this
// digest recorded the diffID. A lock on the file's digest makes concurrent
// pulls of one rootfs unpack it once: ensureRootFSLayer returns holding it,
// and the caller releases it with unlock once it has recorded the image.
// The diffID's own lock decides which directory goes in place if two files
// hold the same content.
//
// Events for the layer carry no DiffID until LayerDone or LayerCached.
func (s *Store) ensureRootFSLayer(ctx context.Context, f *os.File, info *Layer, progress func(Event)) (unlock func(), err error) {
	unlock, err = fsutil.Lock(filepath.Join(s.locksDir(), "rootfs-"+info.Digest.Hex+".lock"))
	if err != nil {
		return nil, err
	}
	if err := s.unpackRootFSOnce(ctx, f, info, progress); err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// unpackRootFSOnce is ensureRootFSLayer under the rootfs's lock.
func (s *Store) unpackRootFSOnce(ctx context.Context, f *os.File, info *Layer, progress func(Event)) error {
	if d, ok := s.rootfsDiffID(info.Digest); ok {
		if _, err := os.Lstat(s.LayerDir(d)); err == nil {
			info.DiffID = d
			progress(Event{Kind: LayerCached, Layer: *info})
			return nil
		}
	}
	tmp, err := s.layerTemp("rootfs-" + info.Digest.Hex)
	if err != nil {
		return err
	}
	progress(Event{Kind: LayerStarted, Layer: *info})
	diffID, err := unpackRootFS(ctx, f, *info, tmp, progress)
	if err == nil {
		err = fsutil.SyncFS(tmp)
	}
	if err == nil {
		info.DiffID = diffID
		err = s.placeLayer(tmp, diffID)
	}
	if err != nil {
		RemoveAll(tmp)
		return err
	}
	progress(Event{Kind: LayerDone, Layer: *info, Done: info.Size})
	return nil
}

// placeLayer renames the complete layer tmp into place as diffID's, under
// the diffID's lock, or removes it when another source with the same
// content got there first.
func (s *Store) placeLayer(tmp string, diffID v1.Hash) error {
	unlock, err := fsutil.Lock(filepath.Join(s.locksDir(), diffID.Hex+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Lstat(s.LayerDir(diffID)); err == nil {
		return RemoveAll(tmp)
	}
	return os.Rename(tmp, s.LayerDir(diffID))
}

// rootfsDiffID is the diffID that an earlier pull of a rootfs with
// compressed digest d recorded. Only rootfs: records count: they are the
// ones whose diffID devbox computed itself from the same bytes.
func (s *Store) rootfsDiffID(d v1.Hash) (v1.Hash, bool) {
	imgs, err := s.Images()
	if err != nil {
		return v1.Hash{}, false
	}
	for _, img := range imgs {
		if strings.HasPrefix(img.Ref, sourcePrefixes[RootFSSource]) && len(img.Layers) == 1 && img.Layers[0].Digest == d {
			return img.Layers[0].DiffID, true
		}
	}
	return v1.Hash{}, false
}

// unpackRootFS reads f from its start, checks it against info's digest
// and size, and unpacks it into dir; it returns the diffID.
func unpackRootFS(ctx context.Context, f *os.File, info Layer, dir string, progress func(Event)) (v1.Hash, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return v1.Hash{}, err
	}
	vr, err := newVerifiedReader(io.NopCloser(f), info.Digest, info.Size)
	if err != nil {
		return v1.Hash{}, err
	}
	return applyBlob(ctx, vr, info, dir, progress)
}

// rootfsConfig is the config of a rootfs: image, with the fields of an OCI
// image config that it sets, in a fixed order: the same rootfs and
// platform give the same image digest, whatever go-containerregistry's
// ConfigFile comes to hold.
type rootfsConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
	Config       struct {
		Env []string `json:"Env"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// rootfsImage is the record of a rootfs: image with the one layer info.
func rootfsImage(src Source, info Layer, platform *v1.Platform) (*Image, error) {
	var cfg rootfsConfig
	cfg.Architecture, cfg.OS, cfg.Variant = platform.Architecture, platform.OS, platform.Variant
	cfg.Config.Env = []string{rootfsEnv}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{info.DiffID.String()}
	cfgRaw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgDigest, cfgSize, err := v1.SHA256(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, err
	}
	man, err := json.Marshal(&v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: cfgSize, Digest: cfgDigest},
		Layers:        []v1.Descriptor{{MediaType: types.MediaType(info.MediaType), Size: info.Size, Digest: info.Digest}},
	})
	if err != nil {
		return nil, err
	}
	digest, _, err := v1.SHA256(bytes.NewReader(man))
	if err != nil {
		return nil, err
	}
	return &Image{
		Ref:      src.String(),
		Digest:   digest,
		Platform: platform.String(),
		Config:   v1.Config{Env: []string{rootfsEnv}},
		Layers:   []Layer{info},
	}, nil
}
