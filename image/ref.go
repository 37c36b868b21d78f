package image

import (
	"fmt"
	"net/url"
	"strings"
)

// DefaultRegistry is Docker Hub, the registry of a reference that names
// none; "docker.io" is written this way too.
const DefaultRegistry = "index.docker.io"

// Reference is a registry reference: a repository in a registry, and a
// tag or a digest.
//
// devbox reads references with the rules of go-containerregistry's name
// package, which the registry client uses (FuzzParseReference holds the
// two to the same answers), but not with that package: its initialisation
// compiles a dozen regular expressions, about 0.2 ms at every start of the
// lean program, which never talks to a registry (see package fullprog).
type Reference struct {
	// Registry is the host[:port], DefaultRegistry for Docker Hub.
	Registry string
	// Repository is the repository as written: "debian" on Docker Hub is
	// "library/debian" in RepositoryStr.
	Repository string
	// Tag is the tag, "latest" when neither a tag nor a digest is given;
	// empty in a digest reference.
	Tag string
	// Digest is "algorithm:hex" in a digest reference, else empty.
	Digest   string
	original string
}

// The characters that tags and repositories may have.
const (
	tagChars        = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
	repositoryChars = "abcdefghijklmnopqrstuvwxyz0123456789_-./"
)

// ParseReference parses a registry reference the way Docker writes them:
// "ubuntu" is docker.io/library/ubuntu:latest, "host:port/repo:tag" names
// another registry, and "@sha256:..." pins a digest.
func ParseReference(ref string) (Reference, error) {
	if strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://") {
		return Reference{}, fmt.Errorf("%q is not an image reference: it must not start with a URL scheme (a loopback registry, or one in DEVBOX_INSECURE_REGISTRIES, is reached over plain HTTP)", ref)
	}
	r, err := parseTagged(ref)
	if err != nil && strings.Contains(ref, "@") {
		// Not REPOSITORY:TAG: say what is wrong with it as a digest
		// reference, which is what it looks like.
		r, err = parseDigested(ref)
	}
	if err != nil {
		return Reference{}, fmt.Errorf("%q is not an image reference: %w", ref, err)
	}
	return r, nil
}

// parseTagged reads REPOSITORY[:TAG]. A last ':' followed by a '/' is a
// registry's port, not a tag.
func parseTagged(s string) (Reference, error) {
	base, tag := s, ""
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i+1:], "/") {
		base, tag = s[:i], s[i+1:]
		if tag == "" {
			return Reference{}, fmt.Errorf("no tag after the ':'")
		}
		if !onlyOf(tag, tagChars, 128) {
			return Reference{}, fmt.Errorf("tag %q: 1 to 128 letters, digits, '_', '-' and '.'", tag)
		}
	}
	r, err := parseRepository(base)
	if err != nil {
		return Reference{}, err
	}
	r.Tag = tag
	if tag == "" {
		r.Tag = "latest"
	}
	r.original = s
	return r, nil
}

// parseDigested reads REPOSITORY[:TAG]@DIGEST; a tag there is dropped.
func parseDigested(s string) (Reference, error) {
	base, digest, ok := strings.Cut(s, "@")
	if !ok || strings.Contains(digest, "@") {
		return Reference{}, fmt.Errorf("a digest reference has exactly one '@'")
	}
	if err := checkDigest(digest); err != nil {
		return Reference{}, err
	}
	if t, err := parseTagged(base); err == nil {
		base = t.repositoryName()
	}
	r, err := parseRepository(base)
	if err != nil {
		return Reference{}, err
	}
	r.Digest, r.original = digest, s
	return r, nil
}

// parseRepository reads [REGISTRY/]REPOSITORY. The first component is the
// registry when it is "localhost" or has a '.' or a ':'.
func parseRepository(s string) (Reference, error) {
	if s == "" {
		return Reference{}, fmt.Errorf("no repository")
	}
	registry, repo := "", s
	if first, rest, ok := strings.Cut(s, "/"); ok && (first == "localhost" || strings.ContainsAny(first, ".:")) {
		registry, repo = first, rest
	}
	if !onlyOf(repo, repositoryChars, 255) {
		return Reference{}, fmt.Errorf("repository %q: 1 to 255 lowercase letters, digits, '_', '-', '.' and '/'", repo)
	}
	reg, err := parseRegistry(registry)
	if err != nil {
		return Reference{}, err
	}
	return Reference{Registry: reg, Repository: repo}, nil
}

// ParseRegistry checks a registry name (host or host:port) and returns it
// as references spell it: "docker.io" is DefaultRegistry.
func ParseRegistry(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("no registry name")
	}
	return parseRegistry(s)
}

// parseRegistry is ParseRegistry that takes "" for Docker Hub.
func parseRegistry(s string) (string, error) {
	// A registry is a URI authority without user information (RFC 3986).
	if u, err := url.Parse("//" + s); err != nil || u.Host != s {
		return "", fmt.Errorf("registry %q is not a host[:port]", s)
	}
	if s == "" || s == "docker.io" {
		return DefaultRegistry, nil
	}
	return s, nil
}

// checkDigest accepts "sha256:", "sha384:" or "sha512:" and the digest in
// lowercase hex.
func checkDigest(d string) error {
	alg, hex, _ := strings.Cut(d, ":")
	size := 0
	switch alg {
	case "sha256":
		size = 64
	case "sha384":
		size = 96
	case "sha512":
		size = 128
	}
	if size == 0 || len(hex) != size || !onlyOf(hex, "0123456789abcdef", size) {
		return fmt.Errorf("digest %q: sha256:, sha384: or sha512: and the digest in lowercase hex", d)
	}
	return nil
}

// onlyOf reports whether s has 1 to max bytes, each in chars.
func onlyOf(s, chars string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(chars, s[i]) < 0 {
			return false
		}
	}
	return true
}

// RepositoryStr is the repository with Docker Hub's implicit "library/".
func (r Reference) RepositoryStr() string {
	if r.Registry == DefaultRegistry && !strings.Contains(r.Repository, "/") {
		return "library/" + r.Repository
	}
	return r.Repository
}

// repositoryName is REGISTRY/REPOSITORY in full.
func (r Reference) repositoryName() string {
	return r.Registry + "/" + r.RepositoryStr()
}

// Name is the reference in full: "index.docker.io/library/debian:bookworm".
func (r Reference) Name() string {
	if r.Digest != "" {
		return r.repositoryName() + "@" + r.Digest
	}
	return r.repositoryName() + ":" + r.Tag
}

// String is the reference as it was written.
func (r Reference) String() string { return r.original }

// Digested is the reference to digest d in r's repository, written in
// full.
func (r Reference) Digested(d string) Reference {
	pinned := Reference{Registry: r.Registry, Repository: r.RepositoryStr(), Digest: d}
	pinned.original = pinned.Name()
	return pinned
}
