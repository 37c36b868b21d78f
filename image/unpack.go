package image

import (
	"archive/tar"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// ErrUnsafeEntry is wrapped by every error that ApplyTar returns because the
// layer itself is hostile or exceeds its ApplyLimits: a name that climbs out
// with "..", a hardlink to a directory, a forged overlayfs xattr, trailing
// data after the end of the archive, too many bytes, entries or components.
var ErrUnsafeEntry = errors.New("image: unsafe layer entry")

// EntryError names the tar entry, exactly as written in its header, that
// ApplyTar could not apply. Errors for hostile input wrap ErrUnsafeEntry.
type EntryError struct {
	Entry string // the entry's name in the tar header
	Err   error  // what went wrong
}

func (e *EntryError) Error() string { return fmt.Sprintf("entry %q: %v", e.Entry, e.Err) }

// Unwrap returns the underlying error.
func (e *EntryError) Unwrap() error { return e.Err }

// ApplyLimits bounds what one layer may contain. A zero field means the default.
type ApplyLimits struct {
	MaxBytes   int64 // total regular-file bytes (default 64 GiB)
	MaxEntries int   // tar entries (default 1<<20)
	MaxDepth   int   // path components (default 256)
	MaxNameLen int   // bytes in one entry name or link target (default 4096)
}

// ApplyStats reports what was written.
type ApplyStats struct {
	Entries int   // tar entries read, including those skipped on purpose
	Bytes   int64 // regular-file content bytes written
}

const (
	applyDefaultMaxBytes   = 64 << 30
	applyDefaultMaxEntries = 1 << 20
	applyDefaultMaxDepth   = 256
	applyDefaultMaxNameLen = 4096

	// applyBufSize is the size of the one copy buffer an applier reuses for
	// every file and for draining the stream.
	applyBufSize = 1 << 20

	applyWhiteoutPrefix = ".wh."
	applyWhiteoutMeta   = ".wh..wh."
	applyOpaqueMarker   = ".wh..wh..opq"
	applyOpaqueXattr    = "user.overlay.opaque"
	applyXattrPAXPrefix = "SCHILY.xattr."
)

func (l ApplyLimits) withDefaults() ApplyLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = applyDefaultMaxBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = applyDefaultMaxEntries
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = applyDefaultMaxDepth
	}
	if l.MaxNameLen <= 0 {
		l.MaxNameLen = applyDefaultMaxNameLen
	}
	return l
}

// ApplyTar reads an uncompressed tar stream to its end and writes it into
// dir, an existing empty directory, in overlayfs format. It never writes
// outside dir. On error, dir holds partial content that the caller discards
// (with RemoveAll, since modes in the layer may deny the owner access).
//
// Every name in the layer is untrusted. A leading "/" or "./" is stripped, so
// "/etc/x" means "etc/x" inside dir; a name with a ".." component, an empty
// name or a name with a NUL byte is refused, never cleaned into something
// else. The parent of each entry is resolved inside dir with openat2
// RESOLVE_IN_ROOT semantics (a symlink in the layer is followed as if dir were
// "/"), and the final component is acted on relative to that parent without
// following a symlink. An existing final component is replaced; a directory
// entry over an existing directory only updates its metadata.
//
// The result is a layer directory for a rootless overlayfs mount with the
// userxattr option: a whiteout ".wh.NAME" becomes a 0:0 character device NAME
// (which needs Linux 5.8 or later when unprivileged), and an opaque marker
// ".wh..wh..opq" sets the xattr "user.overlay.opaque" to "y" on its directory
// (which needs a filesystem that stores user xattrs; otherwise ApplyTar fails
// rather than let lower layers show through). As the OCI image spec requires,
// a whiteout only hides lower layers: if NAME is part of this layer too, it is
// kept and the whiteout is not created; an opaque marker likewise keeps the
// directory's children from this layer, whether listed before or after it.
//
// ApplyTar refuses with an error that wraps ErrUnsafeEntry:
//   - names and hardlink targets with a ".." component, empty names, names with
//     a NUL byte, and names or link targets longer than MaxNameLen;
//   - names deeper than MaxDepth components, and more than MaxEntries entries;
//   - regular files whose header sizes add up to more than MaxBytes (checked
//     against the header before any byte is written, so a sparse or truncated
//     entry that claims terabytes fails at once);
//   - a root entry ("/", ".", "./") that is not a directory;
//   - a hardlink to the root, or to anything but a regular file or symlink;
//   - ".wh.", ".wh..", ".wh..." and directories named ".wh.*";
//   - xattrs in the "user.overlay." namespace, which would forge overlayfs
//     metadata (a hidden opaque directory or redirect) from a tar entry;
//   - non-zero bytes after the end-of-archive marker. Zero padding after it is
//     read and accepted, and counts against MaxBytes, so that a reader that
//     verifies a digest underneath sees every byte without an endless stream
//     of zeros keeping ApplyTar busy.
//
// A hardlink whose target does not exist (yet) in this layer, an empty
// symlink target and an unknown entry type are errors too, without
// ErrUnsafeEntry. A tar stream that ends without an end-of-archive marker,
// after a complete entry, is accepted, as archive/tar does; one cut inside a
// header or inside file content is an error.
//
// ApplyTar deliberately drops, without error:
//   - ownership: it never chowns; everything belongs to whoever runs devbox;
//   - the setuid and setgid bits (the sticky bit and permission bits are kept);
//   - character and block devices: creating them needs privilege, and a
//     device node in an image would give the sandbox a door to host hardware;
//     a 0:0 character device in the tar is skipped too, so a layer cannot
//     forge a whiteout except with a ".wh." name;
//   - xattrs outside the "user." namespace: file capabilities
//     ("security.capability"), ACLs, SELinux labels and "trusted.*"; "user.*"
//     xattrs are set on regular files and directories where the filesystem
//     permits (ENOTSUP and EPERM are ignored); LIBARCHIVE.xattr records are
//     not read;
//   - aufs metadata entries ".wh..wh.*" other than the opaque marker, which
//     docker never exports in a layer;
//   - pax global headers, which hold no file.
//
// Fifos are created with their mode; symlink targets are stored exactly as
// written, absolute or relative, and never followed (they are read later
// inside the sandbox, where "/" is the rootfs); hardlinks must name a regular
// file or symlink that this layer already wrote, resolved inside dir like any
// other path. Directories are created u+rwx while the stream is applied, and
// their final modes and mtimes are set after the end of the stream, deepest
// first, because adding children changes a directory's mtime and a mode
// without u+wx would stop the rest of the layer from being written.
// Directories that the layer does not list are created 0755, less the umask.
//
// ApplyTar does not protect against another process that changes dir while
// it runs (dir is meant to be a private temporary directory, renamed into
// place afterwards), and it needs /proc, as pathrs-lite does, to change the
// mode of a directory or fifo through a descriptor that cannot follow a
// symlink. If a directory that denies its owner search permission is reached
// through a symlink by a deeper directory entry, an unprivileged caller fails
// to set that entry's final metadata.
func ApplyTar(dir string, r io.Reader, lim ApplyLimits) (ApplyStats, error) {
	root, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ApplyStats{}, fmt.Errorf("open layer directory: %w", err)
	}
	defer root.Close()

	a := &applier{
		root:   root,
		rootFd: int(root.Fd()),
		lim:    lim.withDefaults(),
		buf:    make([]byte, applyBufSize),
		dirs:   make(map[string]applyDirMeta),
	}
	defer a.closeParent()
	err = a.applyStream(r)
	return a.stats, err
}

// applier holds the state of one ApplyTar call.
type applier struct {
	root   *os.File // dir, the only way any path in the layer is reached
	rootFd int
	lim    ApplyLimits
	stats  ApplyStats
	buf    []byte // the reused copy buffer
	// parent is the handle of the last parent directory, parentName its
	// name in the layer. Layers list a directory's entries together, and
	// resolving the same parent again for each of them is most of the cost
	// of a small file. The handle was resolved inside the root and stays
	// there (the applier never moves a directory); parentName is cleared
	// whenever the applier removes anything, the one operation that can
	// change what an already resolved name refers to.
	parent     *os.File
	parentName string
	// dirs holds the final metadata of every directory entry, by cleaned
	// name, to apply after the whole stream.
	dirs map[string]applyDirMeta
}

// applyDirMeta is what a directory entry asks for, and which inode it created
// or kept, so that the final pass touches that directory and no other.
type applyDirMeta struct {
	entry    string // the name in the tar header, for errors
	mode     uint32
	mtime    time.Time
	dev, ino uint64
}

// applyXattr is one user xattr from an entry's PAX records.
type applyXattr struct{ name, value string }

// applyWriter hides (*os.File).ReadFrom from io.CopyBuffer: ReadFrom falls
// back to io.Copy with a fresh 32 KiB buffer for every file, and the applier
// reuses one buffer instead.
type applyWriter struct{ io.Writer }

func (a *applier) applyStream(r io.Reader) error {
	tr := tar.NewReader(r)
	last := ""
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// With GODEBUG=tarinsecurepath=0 archive/tar flags absolute names
		// and ".." but still returns the header: absolute names are valid
		// here and the applier does its own checks, so only that error is
		// let through.
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			if last == "" {
				return fmt.Errorf("read layer tar: %w", err)
			}
			return fmt.Errorf("read layer tar after entry %q: %w", last, err)
		}
		last = hdr.Name
		a.stats.Entries++
		if a.stats.Entries > a.lim.MaxEntries {
			return &EntryError{Entry: hdr.Name, Err: fmt.Errorf("%w: more than %d entries", ErrUnsafeEntry, a.lim.MaxEntries)}
		}
		if err := a.applyEntry(tr, hdr); err != nil {
			return &EntryError{Entry: hdr.Name, Err: err}
		}
	}
	if err := a.drain(r); err != nil {
		return err
	}
	return a.finishDirs()
}

// drain reads r after the end-of-archive marker, so that a digest-verifying
// reader underneath sees the whole blob (as go-containerregistry's
// extractLayer does), and refuses anything but zero padding: data hidden
// behind the end of the archive would be checked by the digest but never seen
// by a tar reader, a classic way to smuggle a second payload past a scanner.
func (a *applier) drain(r io.Reader) error {
	budget := a.lim.MaxBytes - a.stats.Bytes
	for {
		n, err := r.Read(a.buf)
		if slices.ContainsFunc(a.buf[:n], func(b byte) bool { return b != 0 }) {
			return fmt.Errorf("%w: data after the end of the tar archive", ErrUnsafeEntry)
		}
		budget -= int64(n)
		if budget < 0 {
			return fmt.Errorf("%w: zero padding after the end of the tar archive exceeds %d bytes", ErrUnsafeEntry, a.lim.MaxBytes)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read layer after end of tar archive: %w", err)
		}
	}
}

// applyEntry validates one header and writes it. The returned error is
// wrapped in an EntryError by the caller.
func (a *applier) applyEntry(r io.Reader, hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := a.cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if len(hdr.Linkname) > a.lim.MaxNameLen {
		return fmt.Errorf("%w: link target is %d bytes, more than %d", ErrUnsafeEntry, len(hdr.Linkname), a.lim.MaxNameLen)
	}
	xattrs, err := applyUserXattrs(hdr.PAXRecords)
	if err != nil {
		return err
	}
	if name == "" {
		return a.applyRoot(hdr, xattrs)
	}
	dirName, base := applySplit(name)
	// A directory named ".wh.*" would be a whiteout marker used as a parent:
	// no tool writes one, and its children would be a layer's way to create
	// files that the whiteout rules never look at.
	if strings.HasPrefix(dirName, applyWhiteoutPrefix) || strings.Contains(dirName, "/"+applyWhiteoutPrefix) {
		return fmt.Errorf("%w: a parent directory has the whiteout prefix %q", ErrUnsafeEntry, applyWhiteoutPrefix)
	}

	isWhiteout := strings.HasPrefix(base, applyWhiteoutPrefix)
	if !isWhiteout {
		switch hdr.Typeflag {
		case tar.TypeChar, tar.TypeBlock:
			// Refused by design (see ApplyTar): skipped before anything,
			// not even its parent, is created.
			return nil
		case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
			// Refuse early, by the header's claim: a sparse entry or a
			// truncated stream can claim terabytes in a few bytes of input,
			// and nothing of it should reach the disk.
			if hdr.Size > a.lim.MaxBytes-a.stats.Bytes {
				return fmt.Errorf("%w: %d bytes of file content would exceed the layer limit of %d bytes", ErrUnsafeEntry, hdr.Size, a.lim.MaxBytes)
			}
		case tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
		default:
			return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
		}
	} else if base != applyOpaqueMarker && strings.HasPrefix(base, applyWhiteoutMeta) {
		// aufs metadata (.wh..wh.plnk, .wh..wh.aufs): skipped, see ApplyTar.
		return nil
	}

	// The parent is resolved inside the root: a symlink anywhere in dirName
	// (say "link" -> "/etc" or "../../..") is followed as if dir were "/",
	// so "link/passwd" lands in dir/etc/passwd and never in the host's /etc.
	// Missing parents are created, each one inside the root, with the same
	// guarantee.
	pfd, err := a.openParent(dirName)
	if err != nil {
		return err
	}

	if isWhiteout {
		return a.applyWhiteout(pfd, base)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return a.applyDir(pfd, base, name, hdr, xattrs)
	case tar.TypeSymlink:
		return a.applySymlink(pfd, base, hdr)
	case tar.TypeLink:
		return a.applyHardlink(pfd, base, hdr)
	case tar.TypeFifo:
		return a.applyFifo(pfd, base, hdr)
	default:
		return a.applyFile(r, pfd, base, name, hdr, xattrs)
	}
}

// cleanName validates a name from the layer and returns it relative to the
// root, without a leading "/" or "./"; "" is the root itself. Names are
// rejected rather than cleaned: "a/../../etc" does not become "etc", because a
// name that climbs is a sign of a hostile or broken layer.
func (a *applier) cleanName(raw string) (string, error) {
	switch {
	case raw == "":
		return "", fmt.Errorf("%w: empty name", ErrUnsafeEntry)
	case len(raw) > a.lim.MaxNameLen:
		return "", fmt.Errorf("%w: name is %d bytes, more than %d", ErrUnsafeEntry, len(raw), a.lim.MaxNameLen)
	case strings.IndexByte(raw, 0) >= 0:
		return "", fmt.Errorf("%w: name contains a NUL byte", ErrUnsafeEntry)
	}
	depth := 0
	for comp := range strings.SplitSeq(raw, "/") {
		switch comp {
		case "..":
			return "", fmt.Errorf("%w: name has a .. component", ErrUnsafeEntry)
		case "", ".":
		default:
			depth++
		}
	}
	if depth > a.lim.MaxDepth {
		return "", fmt.Errorf("%w: name has %d components, more than %d", ErrUnsafeEntry, depth, a.lim.MaxDepth)
	}
	return strings.TrimPrefix(path.Clean("/"+raw), "/"), nil
}

// applySplit splits a cleaned, non-root name into its parent ("" for the
// root) and final component.
func applySplit(name string) (dirName, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// applyUserXattrs returns the "user." xattrs of an entry and refuses forged
// overlayfs metadata. Every other namespace is dropped: "security.capability"
// would grant file capabilities, and "trusted."/"security." cannot be set
// without privilege anyway.
func applyUserXattrs(pax map[string]string) ([]applyXattr, error) {
	var xs []applyXattr
	for k, v := range pax {
		name, ok := strings.CutPrefix(k, applyXattrPAXPrefix)
		if !ok {
			continue
		}
		// overlayfs mounted with userxattr reads its own metadata
		// (opaque, redirect, metacopy, origin) from user.overlay.*: a layer
		// that could set them would hide lower directories or redirect
		// lookups to paths it chooses.
		if name == "user.overlay" || strings.HasPrefix(name, "user.overlay.") {
			return nil, fmt.Errorf("%w: xattr %q would forge overlayfs metadata", ErrUnsafeEntry, name)
		}
		if strings.HasPrefix(name, "user.") {
			xs = append(xs, applyXattr{name: name, value: v})
		}
	}
	return xs, nil
}

// openParent returns a descriptor of dirName resolved inside the root,
// creating missing directories; "" is the root itself. The descriptor stays
// valid until the next call.
func (a *applier) openParent(dirName string) (int, error) {
	if dirName == "" {
		return a.rootFd, nil
	}
	if a.parent != nil && a.parentName == dirName {
		return int(a.parent.Fd()), nil
	}
	a.closeParent()
	p, err := pathrs.MkdirAllHandle(a.root, dirName, 0o755)
	if errors.Is(err, unix.ENOTDIR) {
		// A symlink in dirName names a directory that does not exist yet
		// ("var/run" -> "/run" listed before "run/"), and MkdirAllHandle
		// does not create through a dangling symlink. SecureJoin resolves
		// the symlinks lexically, within dir, into a path without them;
		// MkdirAllHandle then creates that path, again resolving every
		// component inside the root, so the lexical step only chooses
		// names and never opens or creates anything itself.
		var joined, rel string
		joined, err = securejoin.SecureJoin(a.root.Name(), dirName)
		if err == nil {
			rel, err = filepath.Rel(a.root.Name(), joined)
		}
		if err == nil {
			p, err = pathrs.MkdirAllHandle(a.root, rel, 0o755)
		}
	}
	if err != nil {
		return -1, fmt.Errorf("resolve parent directory %q inside the layer: %w", dirName, err)
	}
	a.parent, a.parentName = p, dirName
	return int(p.Fd()), nil
}

// closeParent releases the cached parent handle.
func (a *applier) closeParent() {
	if a.parent != nil {
		a.parent.Close()
		a.parent, a.parentName = nil, ""
	}
}

// applyRoot handles an entry for the root itself ("/", ".", "./"): it may
// only describe the directory, never replace it, because dir is the only
// anchor that keeps the rest of the layer inside.
func (a *applier) applyRoot(hdr *tar.Header, xattrs []applyXattr) error {
	if hdr.Typeflag != tar.TypeDir {
		return fmt.Errorf("%w: the layer root must be a directory, not type %q", ErrUnsafeEntry, hdr.Typeflag)
	}
	if err := applySetXattrs(a.rootFd, ".", xattrs); err != nil {
		return err
	}
	a.dirs[""] = applyDirMeta{entry: hdr.Name, mode: applyMode(hdr.Mode), mtime: hdr.ModTime}
	return nil
}

// applyMode keeps the permission and sticky bits of a tar mode and drops
// setuid and setgid: a setuid binary from an image must not become one that
// runs with the privileges of the user who unpacked it.
func applyMode(m int64) uint32 {
	return uint32(m) & 0o1777
}

// replace makes room for a new final component base in pfd. It never follows
// a symlink: fstatat and unlinkat act on the link itself, so replacing a
// symlink to "/etc/passwd" with a file removes the link and leaves the target
// alone. A directory replaced by a non-directory is removed with its tree.
// When wantDir is set and base is already a directory, it is kept (made u+rwx
// so that the layer can add to it) and replace reports true.
func (a *applier) replace(pfd int, base string, wantDir bool) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, &os.PathError{Op: "fstatat", Path: base, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || !wantDir {
		// base may be a directory or symlink on the cached parent's path:
		// resolve the next parent afresh. The handle itself (pfd) stays
		// open until then.
		a.parentName = ""
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(pfd, base, 0); err != nil {
			return false, &os.PathError{Op: "unlinkat", Path: base, Err: err}
		}
		return false, nil
	}
	if !wantDir {
		if err := applyRemoveAllAt(pfd, base); err != nil {
			return false, fmt.Errorf("replace directory %q: %w", base, err)
		}
		return false, nil
	}
	if st.Mode&0o700 != 0o700 {
		if err := applyChmodAt(pfd, base, unix.S_IFDIR, st.Mode&0o1777|0o700); err != nil {
			return false, err
		}
	}
	return true, nil
}

func (a *applier) applyDir(pfd int, base, name string, hdr *tar.Header, xattrs []applyXattr) error {
	exists, err := a.replace(pfd, base, true)
	if err != nil {
		return err
	}
	if !exists {
		// u+rwx while the layer is applied; the final mode comes at the end.
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
			return &os.PathError{Op: "mkdirat", Path: base, Err: err}
		}
	}
	// O_NOFOLLOW|O_DIRECTORY: the descriptor is this directory or nothing.
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "openat", Path: base, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: base, Err: err}
	}
	if err := applySetXattrs(fd, base, xattrs); err != nil {
		return err
	}
	a.dirs[name] = applyDirMeta{entry: hdr.Name, mode: applyMode(hdr.Mode), mtime: hdr.ModTime, dev: st.Dev, ino: st.Ino}
	return nil
}

func (a *applier) applyFile(r io.Reader, pfd int, base, name string, hdr *tar.Header, xattrs []applyXattr) error {
	if _, err := a.replace(pfd, base, false); err != nil {
		return err
	}
	// O_CREAT|O_EXCL|O_NOFOLLOW: the file is new, created here. Opening an
	// existing name, and above all O_TRUNC through a symlink that the layer
	// planted, would write wherever that link points.
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "openat", Path: base, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	if err := a.writeFile(f, r, hdr, xattrs); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return applyUtimes(pfd, base, hdr.ModTime)
}

func (a *applier) writeFile(f *os.File, r io.Reader, hdr *tar.Header, xattrs []applyXattr) error {
	// The copy is capped at the header size, whatever the reader does.
	n, err := io.CopyBuffer(applyWriter{f}, io.LimitReader(r, hdr.Size), a.buf)
	a.stats.Bytes += n
	if err != nil {
		return fmt.Errorf("write file content: %w", err)
	}
	if n != hdr.Size {
		return fmt.Errorf("write file content: %w", io.ErrUnexpectedEOF)
	}
	fd := int(f.Fd())
	// xattrs before the mode: a user xattr needs write permission, which
	// the final mode may deny.
	if err := applySetXattrs(fd, f.Name(), xattrs); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, applyMode(hdr.Mode)); err != nil {
		return &os.PathError{Op: "fchmod", Path: f.Name(), Err: err}
	}
	return nil
}

func (a *applier) applySymlink(pfd int, base string, hdr *tar.Header) error {
	switch {
	case hdr.Linkname == "":
		return errors.New("symlink has an empty target")
	case strings.IndexByte(hdr.Linkname, 0) >= 0:
		return fmt.Errorf("%w: symlink target contains a NUL byte", ErrUnsafeEntry)
	}
	if _, err := a.replace(pfd, base, false); err != nil {
		return err
	}
	// The target is stored as written, absolute or with "..": it is only
	// ever resolved later inside the sandbox, or by this applier inside dir.
	if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
		return &os.PathError{Op: "symlinkat", Path: base, Err: err}
	}
	return applyUtimes(pfd, base, hdr.ModTime)
}

func (a *applier) applyHardlink(pfd int, base string, hdr *tar.Header) error {
	target, err := a.cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target: %w", err)
	}
	if target == "" {
		return fmt.Errorf("%w: hardlink to the layer root", ErrUnsafeEntry)
	}
	// The target's parent is resolved inside the root like any path (so
	// "link/passwd" with link -> /etc names dir/etc/passwd) and its final
	// component is examined without following it: a hardlink can only join
	// an inode that this layer wrote, never a host file such as /etc/shadow.
	tdir, tbase := applySplit(target)
	tparent := a.root
	if tdir != "" {
		tparent, err = pathrs.OpenatInRoot(a.root, tdir)
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("hardlink target %q is not in this layer: %w", hdr.Linkname, fs.ErrNotExist)
		}
		if err != nil {
			return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
		}
		defer tparent.Close()
	}
	tpfd := int(tparent.Fd())
	var tst unix.Stat_t
	if err := unix.Fstatat(tpfd, tbase, &tst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("hardlink target %q is not in this layer: %w", hdr.Linkname, fs.ErrNotExist)
		}
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, &os.PathError{Op: "fstatat", Path: tbase, Err: err})
	}
	if t := tst.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFLNK {
		return fmt.Errorf("%w: hardlink target %q is not a regular file or symlink", ErrUnsafeEntry, hdr.Linkname)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Dev == tst.Dev && st.Ino == tst.Ino {
		// Already this inode (a duplicate entry, or a link to itself):
		// replacing it first would delete the target.
		return nil
	}
	if _, err := a.replace(pfd, base, false); err != nil {
		return err
	}
	// Flags 0, not AT_SYMLINK_FOLLOW: a link to a symlink links the
	// symlink itself, never what it points at.
	if err := unix.Linkat(tpfd, tbase, pfd, base, 0); err != nil {
		return &os.PathError{Op: "linkat", Path: base, Err: err}
	}
	return nil
}

func (a *applier) applyFifo(pfd int, base string, hdr *tar.Header) error {
	if _, err := a.replace(pfd, base, false); err != nil {
		return err
	}
	if err := unix.Mkfifoat(pfd, base, 0o600); err != nil {
		return &os.PathError{Op: "mkfifoat", Path: base, Err: err}
	}
	// A fifo cannot be opened without blocking, so its mode is set through
	// an O_PATH descriptor.
	if err := applyChmodAt(pfd, base, unix.S_IFIFO, applyMode(hdr.Mode)); err != nil {
		return err
	}
	return applyUtimes(pfd, base, hdr.ModTime)
}

// applyWhiteout handles ".wh.NAME" and ".wh..wh..opq" in the directory pfd.
func (a *applier) applyWhiteout(pfd int, base string) error {
	if base == applyOpaqueMarker {
		// The opaque xattr is the applier's to write; the layer only asks
		// for it with the marker entry.
		if err := unix.Fsetxattr(pfd, applyOpaqueXattr, []byte("y"), 0); err != nil {
			return &os.PathError{Op: "setxattr " + applyOpaqueXattr, Path: base, Err: err}
		}
		return nil
	}
	orig := strings.TrimPrefix(base, applyWhiteoutPrefix)
	switch orig {
	case "", ".", "..":
		// A whiteout of "" or "." would hide this directory itself, and
		// one of ".." its parent: none names a file of a lower layer.
		return fmt.Errorf("%w: whiteout %q names no file", ErrUnsafeEntry, base)
	}
	var st unix.Stat_t
	err := unix.Fstatat(pfd, orig, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		// orig is part of this layer (or already whited out): a whiteout
		// only hides lower layers, so the layer's own file is kept.
		return nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "fstatat", Path: orig, Err: err}
	}
	// A 0:0 character device (no permission bits) is overlayfs's whiteout.
	// mknodat never follows a symlink in its final component, and creating
	// 0:0 needs no privilege since Linux 5.8.
	if err := unix.Mknodat(pfd, orig, unix.S_IFCHR, 0); err != nil {
		return &os.PathError{Op: "mknodat whiteout", Path: orig, Err: err}
	}
	return nil
}

// applySetXattrs sets user xattrs on fd, skipping what the filesystem or the
// kernel does not permit.
func applySetXattrs(fd int, name string, xattrs []applyXattr) error {
	for _, x := range xattrs {
		err := unix.Fsetxattr(fd, x.name, []byte(x.value), 0)
		if err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return &os.PathError{Op: "setxattr " + x.name, Path: name, Err: err}
		}
	}
	return nil
}

// applyUtimes sets the access and modification times of base in pfd to t,
// on the link itself if base is a symlink.
func applyUtimes(pfd int, base string, t time.Time) error {
	ts, err := unix.TimeToTimespec(t)
	if err != nil {
		return fmt.Errorf("mtime %v: %w", t, err)
	}
	if err := unix.UtimesNanoAt(pfd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: base, Err: err}
	}
	return nil
}

// applyOpenPath opens base in pfd as an O_PATH descriptor without following a
// symlink and checks that it is of type typ (an S_IF* constant).
func applyOpenPath(pfd int, base string, typ uint32) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, st, &os.PathError{Op: "openat", Path: base, Err: err}
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, &os.PathError{Op: "fstat", Path: base, Err: err}
	}
	if st.Mode&unix.S_IFMT != typ {
		unix.Close(fd)
		errno := unix.EINVAL
		if typ == unix.S_IFDIR {
			errno = unix.ENOTDIR
		}
		return -1, st, &os.PathError{Op: "openat", Path: base, Err: errno}
	}
	return fd, st, nil
}

// applyChmodFd sets the mode of the inode behind an O_PATH descriptor. The
// /proc/self/fd magic link names exactly that inode, so the chmod cannot be
// redirected by a symlink, which fchmodat without fchmodat2 (Linux 6.6) can
// only do by following it; and unlike fchmod it needs no read permission,
// which a directory with mode 0000 denies even its owner.
func applyChmodFd(fd int, mode uint32) error {
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Fchmodat(unix.AT_FDCWD, p, mode, 0); err != nil {
		return &os.PathError{Op: "chmod", Path: p, Err: err}
	}
	return nil
}

// applyChmodAt sets the mode of base in pfd, which must be of type typ,
// without following a symlink.
func applyChmodAt(pfd int, base string, typ, mode uint32) error {
	fd, _, err := applyOpenPath(pfd, base, typ)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return applyChmodFd(fd, mode)
}

// finishDirs applies the final mode and mtime of every directory entry after
// the whole stream, deepest first, so that no later step changes them and no
// restrictive mode stops the resolution of a deeper directory.
func (a *applier) finishDirs() error {
	names := make([]string, 0, len(a.dirs))
	for n := range a.dirs {
		names = append(names, n)
	}
	slices.SortFunc(names, func(x, y string) int {
		if c := cmp.Compare(applyDepth(y), applyDepth(x)); c != 0 {
			return c
		}
		return strings.Compare(x, y)
	})
	for _, n := range names {
		m := a.dirs[n]
		if err := a.finishDir(n, m); err != nil {
			return &EntryError{Entry: m.entry, Err: fmt.Errorf("set directory metadata: %w", err)}
		}
	}
	return nil
}

func applyDepth(name string) int {
	if name == "" {
		return 0
	}
	return strings.Count(name, "/") + 1
}

func (a *applier) finishDir(name string, m applyDirMeta) error {
	if name == "" {
		if err := unix.Fchmod(a.rootFd, m.mode); err != nil {
			return &os.PathError{Op: "fchmod", Path: ".", Err: err}
		}
		return applyUtimes(a.rootFd, ".", m.mtime)
	}
	// Re-resolve inside the root: the stream may have replaced a parent by
	// a symlink since the entry was written, and the metadata must still
	// land inside dir.
	dirName, base := applySplit(name)
	parent := a.root
	if dirName != "" {
		p, err := pathrs.OpenatInRoot(a.root, dirName)
		if err != nil {
			if applyGone(err) {
				return nil
			}
			return err
		}
		defer p.Close()
		parent = p
	}
	pfd := int(parent.Fd())
	fd, st, err := applyOpenPath(pfd, base, unix.S_IFDIR)
	if err != nil {
		if applyGone(err) {
			return nil
		}
		return err
	}
	defer unix.Close(fd)
	// Only the directory that the entry created or kept gets its metadata.
	// If a later entry replaced it (by a file, a symlink to a host path, or a
	// new directory reached through another name), the entry no longer
	// describes anything and is skipped.
	if st.Dev != m.dev || st.Ino != m.ino {
		return nil
	}
	if err := applyChmodFd(fd, m.mode); err != nil {
		return err
	}
	return applyUtimes(pfd, base, m.mtime)
}

// applyGone reports whether err means that a path no longer names a
// directory: removed, replaced by a non-directory or by a symlink.
func applyGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}

// RemoveAll removes a directory tree written by ApplyTar, even where modes
// deny the owner write or search permission (each such directory is made
// u+rwx first). It never follows symlinks: a symlink in the tree is removed,
// never what it points at. A missing dir is not an error.
func RemoveAll(dir string) error {
	clean := filepath.Clean(dir)
	parentDir, base := filepath.Split(clean)
	if base == "" || base == "." || base == ".." {
		return &os.PathError{Op: "removeall", Path: dir, Err: unix.EINVAL}
	}
	if parentDir == "" {
		parentDir = "."
	}
	pfd, err := unix.Open(parentDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "open", Path: parentDir, Err: err}
	}
	defer unix.Close(pfd)
	if err := applyRemoveAllAt(pfd, base); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// applyRemoveAllAt removes name in pfd and, if it is a directory, its tree,
// always relative to directory descriptors and without following symlinks: a
// symlink in the tree is unlinked, never descended into.
func applyRemoveAllAt(pfd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "fstatat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(pfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return &os.PathError{Op: "unlinkat", Path: name, Err: err}
		}
		return nil
	}
	// A layer may hold directories with mode 0555 or 0000; their owner
	// cannot list or empty them until they are u+rwx.
	if st.Mode&0o700 != 0o700 {
		if err := applyChmodAt(pfd, name, unix.S_IFDIR, 0o700); err != nil {
			return err
		}
	}
	for {
		n, err := applyRemoveChildren(pfd, name)
		if err != nil {
			return err
		}
		if n < applyReadDirBatch {
			break
		}
	}
	if err := unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "unlinkat", Path: name, Err: err}
	}
	return nil
}

// applyReadDirBatch is how many names applyRemoveChildren reads at once.
const applyReadDirBatch = 1024

// applyRemoveChildren removes one batch of the children of the directory
// name in pfd and returns the batch size. The directory is reopened for each
// batch: removing entries may reorder it, and reading on could skip names
// (see Go issue 20841, which os.RemoveAll handles the same way).
func applyRemoveChildren(pfd int, name string) (int, error) {
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "openat", Path: name, Err: err}
	}
	d := os.NewFile(uintptr(fd), name)
	defer d.Close()
	names, err := d.Readdirnames(applyReadDirBatch)
	if err != nil && err != io.EOF {
		return 0, err
	}
	for _, child := range names {
		if err := applyRemoveAllAt(fd, child); err != nil {
			return 0, err
		}
	}
	return len(names), nil
}
