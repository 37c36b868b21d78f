package image

import (
	"archive/tar"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
	// every file too large for a worker and for draining the stream.
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
//
// The stream is read by one goroutine, which applies every entry in order,
// except that a regular file of up to 4 MiB or a symlink whose name does not
// exist yet is handed, with the file read into memory, to one of a few
// worker goroutines, which create it while the stream goes on: creating
// files is mostly kernel time. A file is created without a name (O_TMPFILE,
// where the file system has it) and linked in place once written, through
// /proc/self/fd, so that workers need not take turns in one directory.
// Anything that could observe or change what a worker creates first waits
// for every queued job: an entry whose name this call already created or
// that exists, a hardlink, a whiteout, the root entry, and a parent
// directory that must be made where a job might be in the way. The result is
// the one of applying the stream in order. A worker's error stops the apply
// and is returned as the EntryError of the earliest entry that failed, and
// ApplyTar returns only when no worker touches dir any more.
func ApplyTar(dir string, r io.Reader, lim ApplyLimits) (ApplyStats, error) {
	return applyTar(dir, r, lim, applyOptions{})
}

// applyOptions are ApplyTar's knobs for tests.
type applyOptions struct {
	// hook is called by a worker with the entry name before it creates
	// each file or symlink it was handed; an error from it fails that
	// entry.
	hook func(entry string) error
	// noTmpfile creates every file by name, as where O_TMPFILE is missing.
	noTmpfile bool
}

// applyTar is ApplyTar with options.
func applyTar(dir string, r io.Reader, lim ApplyLimits, opts applyOptions) (ApplyStats, error) {
	root, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ApplyStats{}, fmt.Errorf("open layer directory: %w", err)
	}
	defer root.Close()
	a, err := newApplier(root, lim.withDefaults())
	if err != nil {
		return ApplyStats{}, err
	}
	a.hook = opts.hook
	a.noTmpfile.Store(opts.noTmpfile)
	err = a.applyStream(r)
	// After stop no worker runs and every parent handle is closed; the
	// root is closed last, by the deferred call.
	a.stop()
	stats := a.stats
	stats.Bytes = a.written.Load()
	return stats, err
}

const (
	// applyJobMaxSize is the largest regular file handed to a worker. A
	// larger one is streamed by the reading goroutine through buf.
	applyJobMaxSize = 4 << 20
	// applyInFlightBytes bounds the file content read ahead for workers:
	// the buffers of queued and running jobs plus the pooled free ones.
	applyInFlightBytes = 32 << 20
	// applyJobQueue bounds the number of jobs waiting for a worker,
	// whatever their size (an empty file needs no buffer), and so the
	// parent handles they hold. It is how far the reading goroutine can
	// run ahead, over several directories, for the workers to take
	// different ones.
	applyJobQueue = 512
	// applyBufMinShift is the log2 of the smallest pooled buffer.
	applyBufMinShift = 12
	// applyBufClasses is the number of pooled buffer sizes, powers of two
	// from 4 KiB to applyJobMaxSize.
	applyBufClasses = 22 - applyBufMinShift + 1
)

// applier holds the state of one ApplyTar call. Everything but the fields
// marked otherwise belongs to the goroutine that reads the stream.
type applier struct {
	root   *os.File // dir, the only way any path in the layer is reached
	rootFd int
	lim    ApplyLimits
	stats  ApplyStats // Bytes is filled in from written at the end
	buf    []byte     // the reused copy buffer of the reading goroutine
	// rootParent is the root as a parent handle; parent is the handle of
	// the last other parent directory, parentName its name in the layer.
	// Layers list a directory's entries together, and resolving the same
	// parent again for each of them is most of the cost of a small file.
	// The handle was resolved inside the root and stays there (the applier
	// never moves a directory); parentName is cleared whenever the applier
	// removes anything, the one operation that can change what an already
	// resolved name refers to.
	rootParent *applyParent
	parent     *applyParent
	parentName string
	// dirs holds the final metadata of every directory entry, by cleaned
	// name, to apply after the whole stream.
	dirs map[string]applyDirMeta

	// names holds every name that this call created, or handed to a
	// worker to create, in a directory, by the directory's inode: a
	// superset of what it created, since it records each name before the
	// syscall that creates it. fresh holds the directories known to have
	// been empty at some point of this call, after which only this call
	// added names to them, each recorded in names (see applyEmptyDir and
	// mayExist). A name in a fresh directory that names does not hold
	// therefore does not exist, and needs no fstatat to find out.
	names map[applyNameKey]struct{}
	fresh map[applyDirKey]struct{}

	// exactModes is set when the umask is known, as umask, and no default
	// ACL takes its place: a regular file whose mode the umask keeps whole
	// is created with it (see newApplier and createFile).
	exactModes bool
	umask      uint32
	// noTmpfile is set when the file system has no O_TMPFILE or linking
	// through /proc/self/fd failed: files are then created by name. Shared
	// with the workers.
	noTmpfile atomic.Bool

	claimed int64        // file content read from the stream, against MaxBytes
	written atomic.Int64 // file content written; shared with the workers

	// The worker pool, started with the first job.
	started bool
	lanes   applyLanes
	workers sync.WaitGroup // running worker goroutines
	pending sync.WaitGroup // queued and running jobs: the barrier
	pool    applyBufPool
	hook    func(entry string) error // see applyTar; read by the workers
	// failSeq is the sequence number of the earliest entry that failed in
	// a worker (math.MaxInt64 while none did), werr its error. Workers skip
	// the jobs of later entries; the reading goroutine stops.
	failSeq atomic.Int64
	mu      sync.Mutex
	werr    error
}

// applyDirKey identifies a directory by its inode.
type applyDirKey struct{ dev, ino uint64 }

// applyNameKey is one name in one directory.
type applyNameKey struct {
	dir  applyDirKey
	base string
}

// applyParent is a parent directory handle, shared by the reading goroutine
// (while it is the cached parent) and every queued job in that directory: it
// is closed when the last of them releases it, never while a job uses it.
type applyParent struct {
	f    *os.File // nil for the root, which ApplyTar closes itself
	fd   int
	key  applyDirKey
	refs atomic.Int32
}

// release drops one reference, closing the handle with the last one.
func (p *applyParent) release() {
	if p.refs.Add(-1) == 0 && p.f != nil {
		p.f.Close()
	}
}

// applyJob is a regular file or a symlink for a worker to create.
type applyJob struct {
	seq      int64  // the entry's position in the stream
	entry    string // the name in the tar header, for errors
	name     string // the cleaned name, for errors
	parent   *applyParent
	base     string
	linkname string // the target of a symlink; "" for a file
	data     []byte // a file's content; its capacity is a pooled buffer, or nil
	mode     uint32
	times    [2]unix.Timespec
	xattrs   []applyXattr
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

// newApplier prepares an applier for root, a directory opened for reading.
func newApplier(root *os.File, lim ApplyLimits) (*applier, error) {
	rootFd := int(root.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(rootFd, &st); err != nil {
		return nil, fmt.Errorf("stat layer directory: %w", err)
	}
	a := &applier{
		root:   root,
		rootFd: rootFd,
		lim:    lim,
		buf:    make([]byte, applyBufSize),
		dirs:   make(map[string]applyDirMeta),
		names:  make(map[applyNameKey]struct{}),
		fresh:  make(map[applyDirKey]struct{}),
	}
	a.rootParent = &applyParent{fd: rootFd, key: applyDirKey{dev: st.Dev, ino: st.Ino}}
	a.rootParent.refs.Store(1)
	a.failSeq.Store(math.MaxInt64)
	a.pool.cond.L = &a.pool.mu
	if applyEmptyDir(rootFd) {
		a.fresh[a.rootParent.key] = struct{}{}
	}
	// A regular file used to be created 0600 and fchmodded to its mode.
	// Creating it with its mode instead gives the same result when the
	// kernel keeps every bit of that mode: when the umask clears none of
	// them and no default ACL replaces the umask. The umask is read from
	// /proc/self/status rather than with umask(2), whose set-and-restore
	// would give any file another thread created meanwhile the wrong
	// mode. Nothing in devbox changes the umask after it starts; if
	// something did while ApplyTar ran, files would get fewer permission
	// bits than the layer asks for, never more, since the umask and a
	// default ACL only take bits away. A default ACL is inherited only by
	// what is created inside a directory that has one, and ApplyTar never
	// sets one (it only sets "user." xattrs), so checking dir covers every
	// directory that ApplyTar creates in it.
	if umask, ok := applyReadUmask(); ok {
		_, err := unix.Fgetxattr(rootFd, "system.posix_acl_default", nil)
		a.exactModes = errors.Is(err, unix.ENODATA) || errors.Is(err, unix.EOPNOTSUPP)
		a.umask = umask
	}
	return a, nil
}

// applyReadUmask returns the umask of the process from /proc/self/status
// (Linux 4.7 and later), or false if it cannot.
func applyReadUmask() (uint32, bool) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return uint32(m), err == nil
		}
	}
	return 0, false
}

// applyEmptyDir reports whether the directory fd has no entries but "." and
// "..". It reads through a descriptor of its own, so that fd's offset is
// left alone; any error counts as not empty.
func applyEmptyDir(fd int) bool {
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(dfd)
	buf := make([]byte, 4096)
	for {
		n, err := unix.Getdents(dfd, buf)
		if err != nil {
			return false
		}
		if n <= 0 {
			return true
		}
		if _, count, _ := unix.ParseDirent(buf[:n], -1, nil); count > 0 {
			return false
		}
	}
}

func (a *applier) applyStream(r io.Reader) error {
	tr := tar.NewReader(r)
	last := ""
	for {
		if a.failSeq.Load() != math.MaxInt64 {
			return a.fail(nil)
		}
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
				return a.fail(fmt.Errorf("read layer tar: %w", err))
			}
			return a.fail(fmt.Errorf("read layer tar after entry %q: %w", last, err))
		}
		last = hdr.Name
		a.stats.Entries++
		if a.stats.Entries > a.lim.MaxEntries {
			return a.fail(&EntryError{Entry: hdr.Name, Err: fmt.Errorf("%w: more than %d entries", ErrUnsafeEntry, a.lim.MaxEntries)})
		}
		if err := a.applyEntry(tr, hdr); err != nil {
			return a.fail(&EntryError{Entry: hdr.Name, Err: err})
		}
	}
	if err := a.wait(); err != nil {
		return err
	}
	if err := a.drain(r); err != nil {
		return err
	}
	return a.finishDirs()
}

// wait is the barrier: it returns when no job is queued or running, with the
// error of the earliest entry that failed in a worker, if any.
func (a *applier) wait() error {
	a.pending.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.werr
}

// fail waits for the workers and returns the error to report for an apply
// that stops with err: a worker's error if there is one, since every job
// comes from an entry before the one that err is about, and err otherwise.
func (a *applier) fail(err error) error {
	if werr := a.wait(); werr != nil {
		return werr
	}
	return err
}

// stop ends the workers and releases the cached parent handle. No job may be
// queued after it.
func (a *applier) stop() {
	if a.started {
		a.lanes.close()
		a.workers.Wait()
	}
	a.closeParent()
}

// drain reads r after the end-of-archive marker, so that a digest-verifying
// reader underneath sees the whole blob (as go-containerregistry's
// extractLayer does), and refuses anything but zero padding: data hidden
// behind the end of the archive would be checked by the digest but never seen
// by a tar reader, a classic way to smuggle a second payload past a scanner.
func (a *applier) drain(r io.Reader) error {
	budget := a.lim.MaxBytes - a.claimed
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
		// The root entry only sets xattrs and records metadata, which no
		// job depends on; it still waits, being rare, so that everything
		// but new files keeps its place in the stream.
		if err := a.wait(); err != nil {
			return err
		}
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
			if hdr.Size > a.lim.MaxBytes-a.claimed {
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

	// A whiteout looks at what this layer wrote in its directory, and a
	// hardlink at its target, which may be a queued file: both wait for
	// every job first. So does a hardlink's own replace below.
	if isWhiteout || hdr.Typeflag == tar.TypeLink {
		if err := a.wait(); err != nil {
			return err
		}
	}

	// The parent is resolved inside the root: a symlink anywhere in dirName
	// (say "link" -> "/etc" or "../../..") is followed as if dir were "/",
	// so "link/passwd" lands in dir/etc/passwd and never in the host's /etc.
	// Missing parents are created, each one inside the root, with the same
	// guarantee.
	p, err := a.openParent(dirName)
	if err != nil {
		return err
	}

	if isWhiteout {
		return a.applyWhiteout(p, base)
	}
	// An entry whose name may exist must replace it, which can remove a
	// tree that queued jobs write into, or a file that a queued job has
	// not created yet: it waits for every job first, and so does every
	// later entry of that name (which names then holds). An entry whose
	// name does not exist only creates a new name, which no queued job
	// touches (each job creates its own new name and nothing else), so it
	// goes ahead without waiting.
	exists := a.mayExist(p, base)
	if exists {
		if err := a.wait(); err != nil {
			return err
		}
	}
	a.names[applyNameKey{dir: p.key, base: base}] = struct{}{}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return a.applyDir(p, base, name, hdr, xattrs, exists)
	case tar.TypeSymlink:
		return a.applySymlink(p, base, hdr, exists)
	case tar.TypeLink:
		return a.applyHardlink(p, base, hdr)
	case tar.TypeFifo:
		return a.applyFifo(p, base, hdr, exists)
	default:
		return a.applyFile(r, p, base, name, hdr, xattrs, exists)
	}
}

// mayExist reports whether base may exist in the directory p, or may be
// created there by a queued job. It is false only when base is known not to
// exist and not to be queued: p is fresh and this call never created base
// in it (a fresh directory holds only names this call created, all in
// names), or fstatat finds nothing and names does not hold base. Any error
// but ENOENT counts as existing, so that replace reports it.
func (a *applier) mayExist(p *applyParent, base string) bool {
	if _, ok := a.names[applyNameKey{dir: p.key, base: base}]; ok {
		return true
	}
	if _, ok := a.fresh[p.key]; ok {
		return false
	}
	var st unix.Stat_t
	err := unix.Fstatat(p.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	return !errors.Is(err, unix.ENOENT)
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

// openParent returns the directory dirName resolved inside the root,
// creating missing directories; "" is the root itself. The handle stays
// valid until the next call; a job that uses it takes a reference of its own.
func (a *applier) openParent(dirName string) (*applyParent, error) {
	if dirName == "" {
		return a.rootParent, nil
	}
	if a.parent != nil && a.parentName == dirName {
		return a.parent, nil
	}
	a.closeParent()
	// Most parents exist: OpenatInRoot resolves them with the same
	// RESOLVE_IN_ROOT rules as MkdirAllHandle and creates nothing, so it
	// can run while jobs write. Jobs only add files and symlinks under
	// names that did not exist, so they cannot change what a resolution
	// that succeeded went through, and one that needs a name that a job
	// has yet to create fails and takes the path below.
	f, err := pathrs.OpenatInRoot(a.root, dirName)
	if err == nil {
		p, err := applyNewParent(f)
		if err == nil {
			a.parent, a.parentName = p, dirName
			return p, nil
		}
		f.Close()
	} else if errors.Is(err, unix.ENOENT) {
		if p := a.makeParent(dirName); p != nil {
			a.parent, a.parentName = p, dirName
			return p, nil
		}
	}
	// Missing, not a directory, or not reachable: creating directories
	// must not race with a queued job of the same name, and the answer
	// may depend on one, so this waits for every job and then does what
	// the stream order says.
	if err := a.wait(); err != nil {
		return nil, err
	}
	f, err = pathrs.MkdirAllHandle(a.root, dirName, 0o755)
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
			f, err = pathrs.MkdirAllHandle(a.root, rel, 0o755)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("resolve parent directory %q inside the layer: %w", dirName, err)
	}
	// MkdirAllHandle may have created directories anywhere on the way,
	// in fresh directories too, without recording those names: no
	// directory is known to be fresh any more. The one it returns is
	// fresh again if it is empty now, which holds for every directory it
	// created.
	clear(a.fresh)
	p, err := applyNewParent(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("resolve parent directory %q inside the layer: %w", dirName, err)
	}
	if applyEmptyDir(p.fd) {
		a.fresh[p.key] = struct{}{}
	}
	a.parent, a.parentName = p, dirName
	return p, nil
}

// makeParent creates the directory dirName, which does not resolve, while
// jobs run, where that is what MkdirAllHandle would do after them: when its
// parent resolves, or is made the same way, and its final component r is a
// name that does not exist there and that no job was handed. mkdirat then
// creates r as a new name (it fails on anything that exists, a dangling
// symlink included, and follows nothing), no job creates r, and the new
// directory is opened without following a symlink. Every directory it makes
// is recorded in names and is fresh. It returns nil where it cannot, for
// openParent to wait for the jobs and call MkdirAllHandle, which picks up
// whatever was made.
func (a *applier) makeParent(dirName string) *applyParent {
	q, r := applySplit(dirName)
	pq := a.rootParent
	if q != "" {
		f, err := pathrs.OpenatInRoot(a.root, q)
		switch {
		case err == nil:
			if pq, err = applyNewParent(f); err != nil {
				f.Close()
				return nil
			}
		case errors.Is(err, unix.ENOENT):
			if pq = a.makeParent(q); pq == nil {
				return nil
			}
		default:
			return nil
		}
		defer pq.release()
	}
	key := applyNameKey{dir: pq.key, base: r}
	if _, ok := a.names[key]; ok {
		return nil
	}
	a.names[key] = struct{}{}
	if err := unix.Mkdirat(pq.fd, r, 0o755); err != nil {
		return nil
	}
	fd, err := unix.Openat(pq.fd, r, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), filepath.Join(a.root.Name(), dirName))
	p, err := applyNewParent(f)
	if err != nil {
		f.Close()
		return nil
	}
	a.fresh[p.key] = struct{}{}
	return p
}

// applyNewParent makes a parent handle, with one reference, of f, which
// must be a directory.
func applyNewParent(f *os.File) (*applyParent, error) {
	fd := int(f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, &os.PathError{Op: "open", Path: f.Name(), Err: unix.ENOTDIR}
	}
	p := &applyParent{f: f, fd: fd, key: applyDirKey{dev: st.Dev, ino: st.Ino}}
	p.refs.Store(1)
	return p, nil
}

// closeParent releases the cached parent handle.
func (a *applier) closeParent() {
	if a.parent != nil {
		a.parent.release()
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

func (a *applier) applyDir(p *applyParent, base, name string, hdr *tar.Header, xattrs []applyXattr, exists bool) error {
	kept := false
	if exists {
		var err error
		if kept, err = a.replace(p.fd, base, true); err != nil {
			return err
		}
	}
	if !kept {
		// u+rwx while the layer is applied; the final mode comes at the end.
		if err := unix.Mkdirat(p.fd, base, 0o700); err != nil {
			return &os.PathError{Op: "mkdirat", Path: base, Err: err}
		}
	}
	// O_NOFOLLOW|O_DIRECTORY: the descriptor is this directory or nothing.
	fd, err := unix.Openat(p.fd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "openat", Path: base, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: base, Err: err}
	}
	if !kept {
		// Just made by mkdirat and opened without following anything;
		// no job can be queued in it yet: empty, hence fresh. Its inode
		// number may be that of a directory that this call removed;
		// names may hold stale names under it, which only make mayExist
		// look again.
		a.fresh[applyDirKey{dev: st.Dev, ino: st.Ino}] = struct{}{}
	}
	if err := applySetXattrs(fd, base, xattrs); err != nil {
		return err
	}
	a.dirs[name] = applyDirMeta{entry: hdr.Name, mode: applyMode(hdr.Mode), mtime: hdr.ModTime, dev: st.Dev, ino: st.Ino}
	return nil
}

// applyFile writes a regular file: through a worker when it is small enough
// to be held in memory, else here, streamed from r.
func (a *applier) applyFile(r io.Reader, p *applyParent, base, name string, hdr *tar.Header, xattrs []applyXattr, exists bool) error {
	if exists {
		if _, err := a.replace(p.fd, base, false); err != nil {
			return err
		}
	}
	// base does not exist now, and until the next wait nothing but the
	// job below creates it: every later entry of the same name finds it
	// in names and waits.
	times, err := applyTimes(hdr.ModTime)
	if err != nil {
		return err
	}
	if hdr.Size > applyJobMaxSize {
		// Written here, streamed: like a job's, its name is new, so
		// it need not wait for the jobs either.
		return a.streamFile(r, p.fd, base, name, hdr, &times, xattrs)
	}
	var data []byte
	if hdr.Size > 0 {
		buf := a.pool.get(int(hdr.Size))
		data = buf[:hdr.Size]
		// The read is capped at the header size, whatever the reader does.
		if _, err := io.ReadFull(r, data); err != nil {
			a.pool.put(buf)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read file content: %w", err)
		}
		a.claimed += hdr.Size
	}
	a.queue(applyJob{
		entry: hdr.Name, name: name, parent: p, base: base,
		data: data, mode: applyMode(hdr.Mode), times: times, xattrs: xattrs,
	})
	return nil
}

// queue hands j, in the directory j.parent, to the workers, starting them
// with the first job: GOMAXPROCS workers, at least two, since most of the
// work of a file is the kernel's, and the reading goroutine needs its share.
func (a *applier) queue(j applyJob) {
	if !a.started {
		a.started = true
		a.lanes.init()
		n := max(2, runtime.GOMAXPROCS(0))
		a.workers.Add(n)
		for range n {
			go a.work()
		}
	}
	j.seq = int64(a.stats.Entries)
	j.parent.refs.Add(1)
	a.pending.Add(1)
	// Files need no lane unless O_TMPFILE turned out to be missing.
	a.lanes.push(j, j.linkname != "" || a.noTmpfile.Load())
}

// work runs jobs until the queue is closed. After a failure it skips the jobs
// of later entries, but still releases what each job holds.
func (a *applier) work() {
	defer a.workers.Done()
	for {
		lane, batch := a.lanes.take()
		if batch == nil {
			return
		}
		for batch != nil {
			for i := range batch {
				a.finishJob(&batch[i])
			}
			batch = a.lanes.next(lane)
		}
	}
}

// finishJob runs j unless an earlier entry failed, and releases what it holds.
func (a *applier) finishJob(j *applyJob) {
	if j.seq < a.failSeq.Load() {
		if err := a.runJob(j); err != nil {
			a.setErr(j.seq, &EntryError{Entry: j.entry, Err: err})
		}
	}
	if j.data != nil {
		a.pool.put(j.data)
	}
	j.parent.release()
	*j = applyJob{}
	a.pending.Done()
}

// setErr records the error of the entry seq if it is the earliest so far.
// Workers run every job of an entry before the earliest failure known, and
// jobs come only from entries before the one the reading goroutine is at:
// the error kept is the one that applying in stream order would return.
func (a *applier) setErr(seq int64, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if seq < a.failSeq.Load() {
		a.failSeq.Store(seq)
		a.werr = err
	}
}

func (a *applier) runJob(j *applyJob) error {
	if a.hook != nil {
		if err := a.hook(j.entry); err != nil {
			return err
		}
	}
	if j.linkname != "" {
		return applyMakeSymlink(j.parent.fd, j.base, j.linkname, &j.times)
	}
	tmp := !a.noTmpfile.Load()
	err := a.writeJob(j, tmp)
	var pe *os.PathError
	if tmp && errors.As(err, &pe) && pe.Op == "linkat" && (pe.Err == unix.ENOENT || pe.Err == unix.EPERM || pe.Err == unix.EACCES) {
		// /proc/self/fd is missing, or linking through it is refused,
		// where creating the file with a name would work. The file
		// that was never linked is gone with its descriptor: create it
		// again by name, as from now on every file.
		a.noTmpfile.Store(true)
		a.written.Add(-int64(len(j.data)))
		err = a.writeJob(j, false)
	}
	return err
}

// writeJob creates and writes the file of j, with O_TMPFILE if tmp.
func (a *applier) writeJob(j *applyJob, tmp bool) error {
	f, err := a.createFile(j.parent.fd, j.base, j.name, j.mode, j.xattrs, tmp)
	if err != nil {
		return err
	}
	if err := a.writeAll(f.fd, j.data); err != nil {
		unix.Close(f.fd)
		return fmt.Errorf("write file content: %w", err)
	}
	return f.finish(j.mode, &j.times, j.xattrs)
}

// streamFile creates base in pfd and copies its content from r, through the
// reading goroutine's buffer.
func (a *applier) streamFile(r io.Reader, pfd int, base, name string, hdr *tar.Header, times *[2]unix.Timespec, xattrs []applyXattr) error {
	mode := applyMode(hdr.Mode)
	// By name, not O_TMPFILE: if linking it failed, its content could
	// not be read again to create it another way; and such files are few.
	f, err := a.createFile(pfd, base, name, mode, xattrs, false)
	if err != nil {
		return err
	}
	// The copy is capped at the header size, whatever the reader does.
	for left := hdr.Size; left > 0; {
		n, rerr := io.ReadFull(r, a.buf[:min(int64(len(a.buf)), left)])
		a.claimed += int64(n)
		left -= int64(n)
		err := a.writeAll(f.fd, a.buf[:n])
		if err == nil && rerr != nil {
			err = rerr
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
		}
		if err != nil {
			unix.Close(f.fd)
			return fmt.Errorf("write file content: %w", err)
		}
	}
	return f.finish(mode, times, xattrs)
}

// applyOpenFile is a regular file being written: created as base in pfd, or
// still anonymous (O_TMPFILE) until finish links it there.
type applyOpenFile struct {
	fd, pfd    int
	base, name string // name is the cleaned name, for errors
	tmp        bool   // not linked yet
	chmod      bool   // created with another mode than its own
}

// createFile creates a regular file for base in pfd, open for writing.
//
// If tmp is set, it creates the file with O_TMPFILE, without a name, and
// finish links it as base: creating a file's inode is the costly part of a small file (on
// ext4 without a journal, which skips recently freed inodes one by one, it
// is most of it), and O_TMPFILE does it without the directory's lock, which
// O_CREAT holds throughout, so that workers create files in one directory
// at once. linkat fails on any name that exists, a symlink included, and
// never follows one at the new name, as O_CREAT|O_EXCL|O_NOFOLLOW would: it
// adds base or nothing, and nothing is written through a symlink that the
// layer planted. A file that is never linked disappears with its descriptor.
// Otherwise, and where the file system has no O_TMPFILE, base is created
// with O_CREAT|O_EXCL|O_NOFOLLOW directly.
//
// A descriptor that creates a file may write it whatever the mode, so a
// file can be created with its final mode, even 0444, when the kernel would
// keep every bit of it (see newApplier) and it has no user xattrs, which
// need write permission by mode and are set before the mode otherwise. The
// sticky bit always takes fchmod.
func (a *applier) createFile(pfd int, base, name string, mode uint32, xattrs []applyXattr, tmp bool) (applyOpenFile, error) {
	f := applyOpenFile{fd: -1, pfd: pfd, base: base, name: name, chmod: true}
	perm := uint32(0o600)
	if a.exactModes && len(xattrs) == 0 && mode&^0o777 == 0 && mode&a.umask == 0 {
		perm, f.chmod = mode, false
	}
	if tmp && !a.noTmpfile.Load() {
		fd, err := unix.Openat(pfd, ".", unix.O_WRONLY|unix.O_TMPFILE|unix.O_CLOEXEC, perm)
		if err == nil {
			f.fd, f.tmp = fd, true
			return f, nil
		}
		// EOPNOTSUPP: not on this file system; EISDIR: a kernel
		// before 3.11, which takes O_TMPFILE for O_DIRECTORY.
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) {
			return f, &os.PathError{Op: "openat O_TMPFILE", Path: base, Err: err}
		}
		a.noTmpfile.Store(true)
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if err != nil {
		return f, &os.PathError{Op: "openat", Path: base, Err: err}
	}
	f.fd = fd
	return f, nil
}

// finish sets the xattrs, the mode and the times of the file, links it as
// its name if it has none yet, and closes it.
func (f applyOpenFile) finish(mode uint32, times *[2]unix.Timespec, xattrs []applyXattr) error {
	err := applySetXattrs(f.fd, f.name, xattrs)
	if err == nil && f.chmod {
		if e := unix.Fchmod(f.fd, mode); e != nil {
			err = &os.PathError{Op: "fchmod", Path: f.name, Err: e}
		}
	}
	// After every write: futimens on the descriptor needs no path lookup
	// and cannot reach anything but this file. Linking it changes its
	// ctime, not its mtime.
	if err == nil {
		err = applyFutimens(f.fd, f.name, times)
	}
	if err == nil && f.tmp {
		// The /proc/self/fd magic link names exactly this inode, as in
		// applyChmodFd; linkat with AT_EMPTY_PATH would need
		// CAP_DAC_READ_SEARCH.
		if e := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(f.fd), f.pfd, f.base, unix.AT_SYMLINK_FOLLOW); e != nil {
			err = &os.PathError{Op: "linkat", Path: f.base, Err: e}
		}
	}
	if e := unix.Close(f.fd); e != nil && err == nil {
		err = &os.PathError{Op: "close", Path: f.name, Err: e}
	}
	return err
}

// writeAll writes data to fd, counting what it writes.
func (a *applier) writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if n > 0 {
			a.written.Add(int64(n))
			data = data[n:]
		}
		switch {
		case err == unix.EINTR:
		case err != nil:
			return err
		case n <= 0:
			return io.ErrShortWrite
		}
	}
	return nil
}

func (a *applier) applySymlink(p *applyParent, base string, hdr *tar.Header, exists bool) error {
	switch {
	case hdr.Linkname == "":
		return errors.New("symlink has an empty target")
	case strings.IndexByte(hdr.Linkname, 0) >= 0:
		return fmt.Errorf("%w: symlink target contains a NUL byte", ErrUnsafeEntry)
	}
	if exists {
		if _, err := a.replace(p.fd, base, false); err != nil {
			return err
		}
	}
	times, err := applyTimes(hdr.ModTime)
	if err != nil {
		return err
	}
	// A symlink is a new name like a queued file, and creating it is
	// inode allocation too, best done beside the files of its directory.
	// Until it exists, a path through it does not resolve, so a later
	// entry under it waits for the jobs in openParent, and a hardlink to
	// it waits anyway: nothing can see the layer without it.
	a.queue(applyJob{entry: hdr.Name, parent: p, base: base, linkname: hdr.Linkname, times: times})
	return nil
}

// applyMakeSymlink creates the symlink base in pfd with the target linkname,
// stored as written, absolute or with "..": it is only ever resolved later
// inside the sandbox, or by this applier inside dir.
func applyMakeSymlink(pfd int, base, linkname string, times *[2]unix.Timespec) error {
	if err := unix.Symlinkat(linkname, pfd, base); err != nil {
		return &os.PathError{Op: "symlinkat", Path: base, Err: err}
	}
	// On the link itself: AT_SYMLINK_NOFOLLOW.
	if err := unix.UtimesNanoAt(pfd, base, times[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: base, Err: err}
	}
	return nil
}

func (a *applier) applyHardlink(p *applyParent, base string, hdr *tar.Header) error {
	pfd := p.fd
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

func (a *applier) applyFifo(p *applyParent, base string, hdr *tar.Header, exists bool) error {
	if exists {
		if _, err := a.replace(p.fd, base, false); err != nil {
			return err
		}
	}
	if err := unix.Mkfifoat(p.fd, base, 0o600); err != nil {
		return &os.PathError{Op: "mkfifoat", Path: base, Err: err}
	}
	// A fifo cannot be opened without blocking, so its mode is set through
	// an O_PATH descriptor.
	if err := applyChmodAt(p.fd, base, unix.S_IFIFO, applyMode(hdr.Mode)); err != nil {
		return err
	}
	return applyUtimes(p.fd, base, hdr.ModTime)
}

// applyWhiteout handles ".wh.NAME" and ".wh..wh..opq" in the directory p,
// after every queued job.
func (a *applier) applyWhiteout(p *applyParent, base string) error {
	if base == applyOpaqueMarker {
		// The opaque xattr is the applier's to write; the layer only asks
		// for it with the marker entry. A parent handle may be O_PATH,
		// which takes no xattr: reopen it, through /proc like
		// MkdirAllHandle does, as the same directory.
		fd := a.rootFd
		if p.f != nil {
			d, err := pathrs.Reopen(p.f, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
			if err != nil {
				return fmt.Errorf("reopen directory for %s: %w", applyOpaqueXattr, err)
			}
			defer d.Close()
			fd = int(d.Fd())
		}
		if err := unix.Fsetxattr(fd, applyOpaqueXattr, []byte("y"), 0); err != nil {
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
	err := unix.Fstatat(p.fd, orig, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		// orig is part of this layer (or already whited out): a whiteout
		// only hides lower layers, so the layer's own file is kept.
		return nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "fstatat", Path: orig, Err: err}
	}
	a.names[applyNameKey{dir: p.key, base: orig}] = struct{}{}
	// A 0:0 character device (no permission bits) is overlayfs's whiteout.
	// mknodat never follows a symlink in its final component, and creating
	// 0:0 needs no privilege since Linux 5.8.
	if err := unix.Mknodat(p.fd, orig, unix.S_IFCHR, 0); err != nil {
		return &os.PathError{Op: "mknodat whiteout", Path: orig, Err: err}
	}
	return nil
}

// applyLanes is the queue of jobs. Files are taken in stream order by any
// worker: createFile allocates their inodes with O_TMPFILE, outside the
// directory's lock, and only the short linkat takes it. Symlinks, and files
// where O_TMPFILE is missing, are created by symlinkat and O_CREAT under the
// directory's lock, inode allocation and all: they go in one lane per
// directory, and a worker that takes a lane runs its jobs, and those queued
// there meanwhile, until it is empty, so that no two workers wait for each
// other on that lock (spinning on it, in kernel time). Between the two, the
// job that came first in the stream is taken first. The order of jobs does
// not otherwise matter: each creates its own new name and nothing else.
type applyLanes struct {
	mu     sync.Mutex
	work   sync.Cond // on mu: workers wait for a job
	room   sync.Cond // on mu: the reading goroutine waits for room
	files  []applyJob
	lanes  map[applyDirKey]*applyLane
	ready  []*applyLane // lanes with jobs and no worker, oldest first
	queued int          // jobs not yet taken by a worker
	closed bool
}

// applyLane holds the queued jobs of one directory.
type applyLane struct {
	key  applyDirKey
	jobs []applyJob
	held bool // a worker runs this lane's jobs
}

func (q *applyLanes) init() {
	q.work.L = &q.mu
	q.room.L = &q.mu
	q.lanes = make(map[applyDirKey]*applyLane)
}

// push queues j, in the lane of its directory if inLane, after waiting while
// applyJobQueue jobs are queued.
func (q *applyLanes) push(j applyJob, inLane bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.queued >= applyJobQueue {
		q.room.Wait()
	}
	q.queued++
	if !inLane {
		q.files = append(q.files, j)
		q.work.Signal()
		return
	}
	l := q.lanes[j.parent.key]
	if l == nil {
		l = &applyLane{key: j.parent.key}
		q.lanes[l.key] = l
	}
	l.jobs = append(l.jobs, j)
	if !l.held && len(l.jobs) == 1 {
		q.ready = append(q.ready, l)
		q.work.Signal()
	}
}

// take waits for work and returns the first queued file, with a nil lane, or
// the oldest ready lane, held for the caller, with its jobs; nil, nil once
// the queue is closed and empty.
func (q *applyLanes) take() (*applyLane, []applyJob) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.files) == 0 && len(q.ready) == 0 {
		if q.closed {
			return nil, nil
		}
		q.work.Wait()
	}
	if len(q.files) > 0 && (len(q.ready) == 0 || q.files[0].seq < q.ready[0].jobs[0].seq) {
		j := q.files[0]
		q.files[0] = applyJob{}
		q.files = q.files[1:]
		q.queued--
		q.room.Signal()
		return nil, []applyJob{j}
	}
	l := q.ready[0]
	q.ready[0] = nil
	q.ready = q.ready[1:]
	l.held = true
	return l, q.takeJobs(l)
}

// next returns the jobs queued in l, which the caller holds, since it last
// took them; when there are none it lets go of l and returns nil. A nil l
// has none.
func (q *applyLanes) next(l *applyLane) []applyJob {
	if l == nil {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(l.jobs) == 0 {
		l.held = false
		delete(q.lanes, l.key)
		return nil
	}
	return q.takeJobs(l)
}

func (q *applyLanes) takeJobs(l *applyLane) []applyJob {
	jobs := l.jobs
	l.jobs = nil
	q.queued -= len(jobs)
	q.room.Signal()
	return jobs
}

// close lets the workers end once the queue is empty.
func (q *applyLanes) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.work.Broadcast()
}

// applyBufPool hands out content buffers in power-of-two sizes and keeps the
// bytes of the buffers handed out plus those kept for reuse within
// applyInFlightBytes: get waits for a worker to put one back when the
// reading goroutine is that far ahead.
type applyBufPool struct {
	mu   sync.Mutex
	cond sync.Cond // on mu; signalled by put
	used int       // bytes handed out
	kept int       // bytes in free
	free [applyBufClasses][][]byte
}

// applyBufClass returns the pool class of a buffer of n bytes, n at most
// applyJobMaxSize.
func applyBufClass(n int) int {
	return max(0, bits.Len(uint(n-1))-applyBufMinShift)
}

// get returns a buffer of at least n bytes, 0 < n <= applyJobMaxSize.
func (p *applyBufPool) get(n int) []byte {
	c := applyBufClass(n)
	size := 1 << (c + applyBufMinShift)
	p.mu.Lock()
	for {
		if k := len(p.free[c]); k > 0 {
			b := p.free[c][k-1]
			p.free[c] = p.free[c][:k-1]
			p.kept -= size
			p.used += size
			p.mu.Unlock()
			return b
		}
		if p.used+p.kept+size <= applyInFlightBytes {
			p.used += size
			p.mu.Unlock()
			return make([]byte, size)
		}
		if p.kept > 0 {
			// Free buffers of other sizes are in the way: drop them.
			p.free = [applyBufClasses][][]byte{}
			p.kept = 0
			continue
		}
		p.cond.Wait()
	}
}

// put returns a buffer that get handed out.
func (p *applyBufPool) put(b []byte) {
	b = b[:cap(b)]
	c := applyBufClass(len(b))
	p.mu.Lock()
	p.used -= len(b)
	p.kept += len(b)
	p.free[c] = append(p.free[c], b)
	p.mu.Unlock()
	p.cond.Signal()
}

// applyTimes returns t as the access and modification times for utimensat.
func applyTimes(t time.Time) ([2]unix.Timespec, error) {
	ts, err := unix.TimeToTimespec(t)
	if err != nil {
		return [2]unix.Timespec{}, fmt.Errorf("mtime %v: %w", t, err)
	}
	return [2]unix.Timespec{ts, ts}, nil
}

// applyFutimens sets the times of the file open as fd: utimensat with a NULL
// path, which golang.org/x/sys/unix has no wrapper for.
func applyFutimens(fd int, name string, times *[2]unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(times)), 0, 0, 0)
	if errno != 0 {
		return &os.PathError{Op: "futimens", Path: name, Err: errno}
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
