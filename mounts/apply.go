package mounts

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// MountError records a failed mount(2) with its arguments, the way runc's
// mountError does, so that the message says exactly what was attempted.
type MountError struct {
	Op     string // "mount", "remount", "resolve", "symlink"
	Type   Type
	Source string
	Target string // inside the sandbox
	Err    error
}

func (e *MountError) Error() string {
	s := fmt.Sprintf("%s %s", e.Op, e.Type)
	if e.Source != "" {
		s += " " + e.Source
	}
	return fmt.Sprintf("%s on %s: %v", s, e.Target, e.Err)
}

func (e *MountError) Unwrap() error { return e.Err }

// Apply mounts plan with root as the sandbox's future "/". It must run in a
// private mount namespace, before pivot_root, with the host's /proc still
// mounted at /proc. The first entry must be the root Overlay.
//
// Every target is resolved inside root (openat2 RESOLVE_IN_ROOT through
// filepath-securejoin's pathrs-lite): an image whose /etc or /tmp is a
// symlink to "/" or to a host path makes devbox mount inside the image,
// never over host files. Mounts are then made on the /proc/self/fd path of
// the resolved handle, so nothing can swap the path between the check and
// the mount. The handles are plain descriptors rather than *os.File: pid 1
// makes about forty of them on the way to the command, and an *os.File
// costs a fcntl and a finalizer each.
func Apply(root string, plan []Mount) error {
	if len(plan) == 0 || plan[0].Target != "/" {
		return errors.New("mounts: a plan must start with the root filesystem")
	}
	if err := mountRoot(root, plan[0]); err != nil {
		return err
	}
	rootDir, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer rootDir.Close()
	for _, m := range plan[1:] {
		if err := apply(rootDir, m); err != nil {
			return err
		}
	}
	return nil
}

func apply(root *os.File, m Mount) error {
	fail := func(op string, err error) error {
		return &MountError{Op: op, Type: m.Type, Source: m.Source, Target: m.Target, Err: err}
	}
	if m.Type == Symlink {
		if err := symlinkInRoot(root, m.Source, m.Target); err != nil {
			return fail("symlink", err)
		}
		return nil
	}
	isDir := true
	if m.Type == Bind {
		var st unix.Stat_t
		err := unix.Stat(m.Source, &st)
		if errors.Is(err, os.ErrNotExist) && m.Optional {
			return nil
		}
		if err != nil {
			return fail("mount", &os.PathError{Op: "stat", Path: m.Source, Err: err})
		}
		isDir = st.Mode&unix.S_IFMT == unix.S_IFDIR
	}
	target, err := resolveTarget(root, m.Target, isDir)
	if err != nil {
		return fail("resolve", err)
	}
	defer unix.Close(target)
	fdPath := procFdPath(target)
	var src, fstype, data string
	var flags uintptr
	switch m.Type {
	case Bind:
		src, flags = m.Source, unix.MS_BIND
		if m.Recursive {
			flags |= unix.MS_REC
		}
	case Tmpfs:
		src, fstype, data, flags = "tmpfs", "tmpfs", m.Data, unix.MS_NOSUID|unix.MS_NODEV
	case Proc:
		src, fstype, flags = "proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC
	case Devpts:
		src, fstype, data, flags = "devpts", "devpts", m.Data, unix.MS_NOSUID|unix.MS_NOEXEC
	case Mqueue:
		src, fstype, flags = "mqueue", "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC
	default:
		return fail("mount", fmt.Errorf("unknown mount type %q", m.Type))
	}
	if err := unix.Mount(src, fdPath, fstype, flags, data); err != nil {
		return fail("mount", err)
	}
	if m.ReadOnly {
		if err := readOnly(root, m.Target, m.Recursive); err != nil {
			return fail("remount", err)
		}
	}
	return nil
}

// resolveTarget returns a handle on target inside root, creating it (a
// directory, or an empty file when isDir is false) when it is missing.
// Symlinks on the way are followed as if root were "/".
func resolveTarget(root *os.File, target string, isDir bool) (int, error) {
	fd, err := openInRoot(root, target)
	if !errors.Is(err, os.ErrNotExist) {
		return fd, err
	}
	if isDir {
		return dirInRoot(root, target)
	}
	parent, err := dirInRoot(root, filepath.Dir(target))
	if err != nil {
		return -1, err
	}
	defer unix.Close(parent)
	// The new file's own descriptor is the handle: O_EXCL and O_NOFOLLOW
	// made a file, not a symlink's target, in a parent resolved inside
	// root.
	fd, err = unix.Openat(parent, filepath.Base(target),
		unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return -1, &os.PathError{Op: "create", Path: target, Err: err}
	}
	return fd, nil
}

// dirInRoot is the directory dir inside root, created (mode 0755, with its
// missing parents) when missing. Each directory is made by mkdirat in a
// parent resolved inside root, which never follows a symlink in the last
// component: an image's symlink there is then resolved inside root too.
func dirInRoot(root *os.File, dir string) (int, error) {
	dir = filepath.Clean("/" + dir)
	fd, err := openInRoot(root, dir)
	if !errors.Is(err, os.ErrNotExist) {
		return fd, err
	}
	parent, err := dirInRoot(root, filepath.Dir(dir))
	if err != nil {
		return -1, err
	}
	err = unix.Mkdirat(parent, filepath.Base(dir), 0o755)
	unix.Close(parent)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, &os.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	return openInRoot(root, dir)
}

// openInRoot opens an O_PATH handle on path inside root: openat2 with
// RESOLVE_IN_ROOT follows symlinks as if root were "/" and refuses magic
// links. It is pathrs-lite's lookup without the procfs readlink that only
// names the handle, which a mount target does not need; on a kernel
// without openat2 it is pathrs-lite's.
func openInRoot(root *os.File, path string) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for try := 0; ; try++ {
		fd, err := unix.Openat2(int(root.Fd()), path, &how)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.ENOSYS):
			return openInRootCompat(root, path)
		case (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)) && try < 32:
			// EAGAIN: a rename elsewhere raced with the lookup.
			continue
		}
		return -1, &os.PathError{Op: "openat2", Path: path, Err: err}
	}
}

// openInRootCompat is openInRoot on a kernel without openat2 (before 5.6).
func openInRootCompat(root *os.File, path string) (int, error) {
	f, err := pathrs.OpenatInRoot(root, path)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "dup", Path: path, Err: err}
	}
	return fd, nil
}

// readOnly makes the mount at target inside root read-only, and every
// mount beneath it when recursive: a recursive bind brings the source's
// submounts along, and making only the top read-only would leave them
// writable (the host's /sys/fs/cgroup under a read-only /sys, a disk
// mounted under a read-only [mounts] directory).
func readOnly(root *os.File, target string, recursive bool) error {
	fd, err := openInRoot(root, target)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return setReadOnly(fd, recursive)
}

// setReadOnly makes the mount fd is on read-only, with the mounts beneath
// it when recursive. mount_setattr (Linux 5.12) sets that one attribute on
// the whole tree in a call and leaves the flags the host locked alone; on
// an older kernel, or where a seccomp profile refuses it, every mount is
// remounted instead.
func setReadOnly(fd int, recursive bool) error {
	flags := unix.AT_EMPTY_PATH
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	err := unix.MountSetattr(fd, "", uint(flags), &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
		return err
	}
	return remountReadOnly(fd, recursive)
}

// remountReadOnly is setReadOnly by mount(2): the mount fd is on first,
// then, when recursive, each mount /proc/self/mountinfo lists beneath it.
func remountReadOnly(fd int, recursive bool) error {
	if err := remountFdReadOnly(fd); err != nil {
		return err
	}
	if !recursive {
		return nil
	}
	top, err := os.Readlink(procFdPath(fd))
	if err != nil {
		return err
	}
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, mp := range mountPointsUnder(info, top) {
		sub, err := unix.Open(mp, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: mp, Err: err}
		}
		err = remountFdReadOnly(sub)
		unix.Close(sub)
		if err != nil {
			return &os.PathError{Op: "remount", Path: mp, Err: err}
		}
	}
	return nil
}

// mountPointsUnder returns the mount points in mountinfo strictly beneath
// dir, in the order listed (a parent before its children).
func mountPointsUnder(mountinfo []byte, dir string) []string {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	var under []string
	for line := range strings.Lines(string(mountinfo)) {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		if mp := unescapeMountinfo(fields[4]); strings.HasPrefix(mp, prefix) {
			under = append(under, mp)
		}
	}
	return under
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) that
// /proc/self/mountinfo uses for white space and backslashes in paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// remountFdReadOnly remounts the mount fd is on read-only. A bind mount
// made in a user namespace keeps the flags the host locked on it (nosuid,
// nodev, noexec, atime), and a remount that drops any of them is refused,
// so they are read back and kept.
func remountFdReadOnly(fd int) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return err
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY)
	for _, fl := range []struct{ st, ms uintptr }{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&fl.st != 0 {
			flags |= fl.ms
		}
	}
	return unix.Mount("", procFdPath(fd), "", flags, "")
}

// symlinkInRoot creates the link target → content inside root; an existing
// entry is left alone.
func symlinkInRoot(root *os.File, content, target string) error {
	parent, err := dirInRoot(root, filepath.Dir(target))
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	err = unix.Symlinkat(content, parent, filepath.Base(target))
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

// mountRoot mounts the root filesystem m at root: an overlay, by the
// kernel or by fuse-overlayfs, or a bind mount of a flattened copy.
func mountRoot(root string, m Mount) error {
	switch {
	case m.Type == Bind:
		if err := unix.Mount(m.Source, root, "", unix.MS_BIND, ""); err != nil {
			return &MountError{Op: "mount", Type: Bind, Source: m.Source, Target: "/", Err: err}
		}
		return nil
	case m.Type == Overlay && m.Helper != "":
		return mountFuseOverlay(root, m)
	case m.Type == Overlay:
		return mountOverlay(root, m)
	}
	return &MountError{Op: "mount", Type: m.Type, Target: "/", Err: errors.New("not a root filesystem type")}
}

// mountFuseOverlay mounts a FUSE filesystem at root itself, on a /dev/fuse
// descriptor, and hands that descriptor to fuse-overlayfs to serve. The
// daemon runs in a mount namespace of its own: left in the sandbox's, it
// would be moved by pivot_root onto its own filesystem and deadlock
// resolving its own paths through itself.
func mountFuseOverlay(root string, m Mount) error {
	fail := func(err error) error {
		return &MountError{Op: "mount", Type: Overlay, Source: m.Helper, Target: "/", Err: err}
	}
	lower := make([]string, len(m.Lower))
	for i := range m.Lower {
		lower[len(m.Lower)-1-i] = m.Lower[i]
	}
	fuse, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fail(err)
	}
	defer fuse.Close()
	// The mount belongs to whoever mounts it: pid 1, the user in a single
	// sandbox and root in a subuid one.
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d,allow_other,default_permissions", fuse.Fd(), os.Getuid(), os.Getgid())
	if err := unix.Mount("fuse-overlayfs", root, "fuse", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		return fail(err)
	}
	opts := "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + m.Upper + ",workdir=" + m.Work
	cmd := exec.Command(m.Helper, "-o", opts, "/dev/fd/3")
	cmd.ExtraFiles = []*os.File{fuse}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS}
	if out, err := cmd.CombinedOutput(); err != nil {
		unix.Unmount(root, unix.MNT_DETACH)
		return fail(fmt.Errorf("%v: %s", err, bytes.TrimSpace(out)))
	}
	return nil
}

// mountOverlay mounts the root filesystem at root. Layer paths are given
// relative to their common parent directory, which mountOverlay makes the
// working directory, so that more layers fit in the one page that mount(2)
// accepts for options.
func mountOverlay(root string, m Mount) error {
	fail := func(err error) error {
		return &MountError{Op: "mount", Type: Overlay, Target: "/", Err: err}
	}
	if len(m.Lower) == 0 || m.Upper == "" || m.Work == "" {
		return fail(errors.New("an overlay needs at least one lower layer, an upper and a work directory"))
	}
	all := append(append([]string{}, m.Lower...), m.Upper, m.Work)
	base := commonDir(all)
	rel := make([]string, len(all))
	for i, p := range all {
		r, err := filepath.Rel(base, p)
		if err != nil {
			return fail(err)
		}
		if strings.ContainsAny(r, ",:\\") {
			return fail(fmt.Errorf("path %q contains a character overlayfs cannot take (',', ':' or '\\')", p))
		}
		rel[i] = r
	}
	lower := make([]string, len(m.Lower))
	for i := range m.Lower {
		lower[len(m.Lower)-1-i] = rel[i] // overlayfs wants the topmost layer first
	}
	data := "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + rel[len(rel)-2] + ",workdir=" + rel[len(rel)-1] + ",userxattr"
	if len(data) >= unix.Getpagesize() {
		return fail(fmt.Errorf("%d layers do not fit in one overlay mount (%d bytes of options)", len(m.Lower), len(data)))
	}
	if err := unix.Chdir(base); err != nil {
		return fail(err)
	}
	if err := unix.Mount("overlay", root, "overlay", 0, data); err != nil {
		return fail(fmt.Errorf("%w (options %s, relative to %s)", err, data, base))
	}
	return nil
}

// commonDir is the deepest directory that contains every path.
func commonDir(paths []string) string {
	dir := filepath.Dir(filepath.Clean(paths[0]))
	for _, p := range paths[1:] {
		p = filepath.Clean(p)
		for dir != "/" && !strings.HasPrefix(p, dir+"/") {
			dir = filepath.Dir(dir)
		}
	}
	return dir
}

func procFdPath(fd int) string {
	return "/proc/self/fd/" + strconv.Itoa(fd)
}
