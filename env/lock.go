package env

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// LockFileName is the name of the lock file, beside devbox.toml.
const LockFileName = "devbox.lock"

// lockVersion is the format version this devbox writes and reads.
const lockVersion = 1

// Lock pins what devbox.toml resolved to: the image's manifest digest per
// platform and the sha256 of every archive. It is written deterministically:
// the same content gives the same bytes.
type Lock struct {
	Version int         `toml:"version"`
	Image   LockImage   `toml:"image"`
	Archive []LockEntry `toml:"archive"`
}

// LockImage pins the image.
type LockImage struct {
	Ref string `toml:"ref"`
	// Digests maps "os/arch[/variant]" to the manifest digest.
	Digests map[string]string `toml:"digests"`
}

// LockEntry pins one archive.
type LockEntry struct {
	Name   string `toml:"name"`
	URL    string `toml:"url"`
	SHA256 string `toml:"sha256"`
}

// ReadLock reads the lock file at path. A missing file is (nil, nil).
func ReadLock(path string) (*Lock, error) {
	src, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseLock(path, src)
}

// parseLock checks src, the contents of the lock file at path.
func parseLock(path string, src []byte) (*Lock, error) {
	name := displayName(path)
	var l Lock
	md, err := toml.Decode(string(src), &l)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &ConfigError{File: name, Line: pe.Position.Line, Col: pe.Position.Col, Msg: pe.Message + " (delete the file and run 'devbox update' to write it anew)", Err: err}
		}
		return nil, &ConfigError{File: name, Msg: err.Error(), Err: err}
	}
	if und := md.Undecoded(); len(und) > 0 {
		line, col := findKey(string(src), und[0])
		return nil, &ConfigError{File: name, Line: line, Col: col, Key: und[0].String(), Msg: "unknown key: this lock file was not written by this devbox"}
	}
	if l.Version != lockVersion {
		return nil, &ConfigError{File: name, Key: "version", Msg: fmt.Sprintf("version %d is not %d: written by another devbox? run 'devbox update' to rewrite it", l.Version, lockVersion)}
	}
	return &l, nil
}

// Write writes l to path atomically, in a canonical form.
func (l *Lock) Write(path string) error {
	data := l.Marshal()
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Marshal renders l canonically: fixed key order, digests sorted by
// platform, archives in devbox.toml's order.
func (l *Lock) Marshal() []byte {
	var b strings.Builder
	b.WriteString("# devbox.lock: what devbox.toml resolved to. Written by devbox; commit it.\n")
	b.WriteString("# 'devbox update' refreshes it; 'devbox run --frozen' refuses to change it.\n")
	fmt.Fprintf(&b, "version = %d\n\n[image]\nref = %s\n\n[image.digests]\n", lockVersion, strconv.Quote(l.Image.Ref))
	for _, p := range slices.Sorted(maps.Keys(l.Image.Digests)) {
		fmt.Fprintf(&b, "%s = %s\n", strconv.Quote(p), strconv.Quote(l.Image.Digests[p]))
	}
	for _, a := range l.Archive {
		fmt.Fprintf(&b, "\n[[archive]]\nname = %s\nurl = %s\nsha256 = %s\n", strconv.Quote(a.Name), strconv.Quote(a.URL), strconv.Quote(a.SHA256))
	}
	return []byte(b.String())
}

// archiveSHA256 is the pinned sha256 of the archive with this name and URL.
func (l *Lock) archiveSHA256(name, url string) string {
	if l == nil {
		return ""
	}
	for _, a := range l.Archive {
		if a.Name == name && a.URL == url {
			return a.SHA256
		}
	}
	return ""
}

// imageDigest is the pinned manifest digest of ref for platform.
func (l *Lock) imageDigest(ref, platform string) string {
	if l == nil || l.Image.Ref != ref {
		return ""
	}
	return l.Image.Digests[platform]
}
