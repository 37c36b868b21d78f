package image

// Local sources: images read from this machine instead of a registry. An
// OCI image layout (a directory, or a tar of one), what `docker save`
// writes, and a plain root filesystem tarball. They go through the same
// layer store as registry images: every blob is verified against its digest
// and size, every layer against its diffID, each layer is unpacked once per
// diffID into a temporary directory and renamed into place.

import (
	"fmt"
	"path/filepath"
	"strings"
)

// SourceKind says where a Source's image comes from.
type SourceKind int

// The kinds of Source. The prefix of each local kind is how a reference
// names it.
const (
	RegistrySource      SourceKind = iota // a registry reference: "debian:bookworm"
	OCILayoutSource                       // "oci-layout:PATH[:TAG]"
	DockerArchiveSource                   // "docker-archive:FILE[:REPO:TAG]"
	RootFSSource                          // "rootfs:FILE"
)

// sourcePrefixes are the prefixes of the local kinds, indexed by kind.
var sourcePrefixes = [...]string{
	OCILayoutSource:     "oci-layout:",
	DockerArchiveSource: "docker-archive:",
	RootFSSource:        "rootfs:",
}

// Source is where an image comes from: a registry, or a file or directory
// on this machine. ParseSource reads one from its string form.
//
// # Local sources
//
//   - "oci-layout:PATH[:TAG]" is an OCI image layout: a directory, or a tar
//     archive of one (as "podman save --format oci-archive" writes). TAG
//     selects the manifest whose "org.opencontainers.image.ref.name"
//     annotation is TAG. Without TAG the layout must hold one image, or an
//     index, or images for several platforms, of which the one for the
//     requested platform is taken.
//   - "docker-archive:FILE[:REPO:TAG]" is what "docker save" writes. With
//     several images in FILE, REPO:TAG picks one by its RepoTags (with
//     Docker's defaults: "busybox" is docker.io/library/busybox:latest). An
//     archive without manifest.json is read as an OCI layout archive. The
//     archive must not be compressed: random access to its members is what
//     makes reading it cheap.
//   - "rootfs:FILE" is a root filesystem as one tar archive, uncompressed or
//     compressed with gzip, zstd, xz or bzip2. It becomes a one-layer image
//     with a config that sets only PATH and the platform.
//
// PATH and FILE end at the first ':' (a rootfs: FILE runs to the end), so a
// path with a ':' can be named only by rootfs:. A relative path is relative
// to a base directory (see Abs and WithBaseDir). A reference that starts
// with one of these prefixes is always a local source, never a registry
// host called "rootfs" or the like.
type Source struct {
	Kind SourceKind
	// Ref is the reference of a registry source; zero for a local one.
	Ref Reference
	// Path is a local source's file or directory, as written, or absolute
	// once resolved with Abs.
	Path string
	// Tag picks one image of a local source that holds several: the
	// ref.name annotation of an OCI layout, the REPO:TAG of a docker save
	// archive. Empty when not given.
	Tag string
}

// ParseSource parses a registry reference (see ParseReference) or a local
// source (see Source).
func ParseSource(s string) (Source, error) {
	for kind, prefix := range sourcePrefixes {
		rest, ok := strings.CutPrefix(s, prefix)
		if prefix == "" || !ok {
			continue
		}
		src := Source{Kind: SourceKind(kind), Path: rest}
		hasTag := false
		if src.Kind != RootFSSource {
			src.Path, src.Tag, hasTag = strings.Cut(rest, ":")
		}
		switch {
		case src.Path == "":
			return Source{}, fmt.Errorf("%q names no path: write %sPATH", s, prefix)
		case hasTag && src.Tag == "":
			return Source{}, fmt.Errorf("%q ends in an empty tag: write %s%s:TAG, or leave out the ':'", s, prefix, src.Path)
		case src.Kind == DockerArchiveSource && hasTag:
			if _, err := parseTagged(src.Tag); err != nil {
				return Source{}, fmt.Errorf("%q: %q is not a REPO:TAG as docker save records it", s, src.Tag)
			}
		}
		return src, nil
	}
	r, err := ParseReference(s)
	if err != nil {
		return Source{}, err
	}
	return Source{Kind: RegistrySource, Ref: r}, nil
}

// IsLocal reports whether the image is read from this machine.
func (s Source) IsLocal() bool { return s.Kind != RegistrySource }

// String is the source as ParseSource reads it: a registry reference in
// full ("index.docker.io/library/debian:bookworm"), or a local source's
// prefix, path and tag.
func (s Source) String() string {
	if !s.IsLocal() {
		if s.Ref.Registry == "" {
			return ""
		}
		return s.Ref.Name()
	}
	str := sourcePrefixes[s.Kind] + s.Path
	if s.Tag != "" {
		str += ":" + s.Tag
	}
	return str
}

// Abs returns s with a relative local path made absolute against dir (the
// working directory when dir is empty) and cleaned, so that its String
// names the same image from any directory. A registry source is returned
// unchanged.
func (s Source) Abs(dir string) (Source, error) {
	if !s.IsLocal() {
		return s, nil
	}
	p := s.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	p, err := filepath.Abs(p)
	if err != nil {
		return Source{}, fmt.Errorf("%s: %w", s, err)
	}
	if s.Kind != RootFSSource && strings.Contains(p, ":") {
		return Source{}, fmt.Errorf("%s: the path %s has a ':', which %s cannot name (a ':' starts the tag)", s, p, strings.TrimSuffix(sourcePrefixes[s.Kind], ":"))
	}
	s.Path = p
	return s, nil
}
