package mounts

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Flatten merges layers (directories in overlayfs format, base first) into
// dest, an empty directory, the way overlayfs would show them: a later
// layer's entry replaces an earlier one's (a directory replaces a symlink
// or file, and merges into a directory), a whiteout (a 0:0 character
// device) removes the entry, and an opaque directory
// (user.overlay.opaque=y) hides what earlier layers had in it. It is the
// root filesystem of last resort, where neither kernel overlayfs nor
// fuse-overlayfs can be mounted.
//
// Files are copied, never hardlinked: the copy is writable, and the layers
// are shared. Every operation works on directory descriptors with
// O_NOFOLLOW, so no symlink in a layer can make Flatten read or write
// outside the layer or dest.
func Flatten(layers []string, dest string) error {
	dst, err := openDir(unix.AT_FDCWD, dest)
	if err != nil {
		return err
	}
	defer unix.Close(dst)
	for _, l := range layers {
		src, err := openDir(unix.AT_FDCWD, l)
		if err != nil {
			return err
		}
		// An opaque root replaces everything below it: a whole-tree
		// snapshot layer is made that way.
		if isOpaque(src) {
			if err := emptyDir(dst, dest); err != nil {
				unix.Close(src)
				return err
			}
		}
		err = mergeDir(src, dst, l)
		unix.Close(src)
		if err != nil {
			return err
		}
	}
	return nil
}

func openDir(dirfd int, name string) (int, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return fd, nil
}

// mergeDir merges the directory src (whose path, for messages, is path)
// into dst.
func mergeDir(src, dst int, path string) error {
	names, err := readNames(src, path)
	if err != nil {
		return err
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "lstat", Path: path + "/" + name, Err: err}
		}
		if err := mergeEntry(src, dst, name, path+"/"+name, &st); err != nil {
			return err
		}
	}
	return nil
}

// readNames lists the entries of the directory fd without consuming fd.
func readNames(fd int, path string) ([]string, error) {
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(dup), path)
	defer f.Close()
	return f.Readdirnames(-1)
}

func mergeEntry(src, dst int, name, path string, st *unix.Stat_t) error {
	mode := st.Mode & unix.S_IFMT
	var cur unix.Stat_t
	exists := unix.Fstatat(dst, name, &cur, unix.AT_SYMLINK_NOFOLLOW) == nil
	curIsDir := exists && cur.Mode&unix.S_IFMT == unix.S_IFDIR
	// A whiteout removes what earlier layers had at this name.
	if mode == unix.S_IFCHR && st.Rdev == 0 {
		if exists {
			return removeAt(dst, name, curIsDir)
		}
		return nil
	}
	if exists && (mode != unix.S_IFDIR || !curIsDir) {
		if err := removeAt(dst, name, curIsDir); err != nil {
			return err
		}
		exists, curIsDir = false, false
	}
	switch mode {
	case unix.S_IFDIR:
		if !exists {
			if err := unix.Mkdirat(dst, name, 0o700); err != nil {
				return &os.PathError{Op: "mkdir", Path: path, Err: err}
			}
		}
		s, err := openDir(src, name)
		if err != nil {
			return err
		}
		defer unix.Close(s)
		d, err := openDir(dst, name)
		if err != nil {
			return err
		}
		defer unix.Close(d)
		if isOpaque(s) && exists {
			if err := emptyDir(d, path); err != nil {
				return err
			}
		}
		if err := mergeDir(s, d, path); err != nil {
			return err
		}
		// Directories stay writable by their owner (the user), so that a
		// later layer can still add to a directory an earlier one made
		// read-only.
		withOwner := *st
		withOwner.Mode |= 0o700
		return finish(d, &withOwner, path)
	case unix.S_IFLNK:
		target, err := readlinkAt(src, name)
		if err != nil {
			return &os.PathError{Op: "readlink", Path: path, Err: err}
		}
		if err := unix.Symlinkat(target, dst, name); err != nil {
			return &os.PathError{Op: "symlink", Path: path, Err: err}
		}
		return unix.UtimesNanoAt(dst, name, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
	case unix.S_IFREG:
		return copyFile(src, dst, name, path, st)
	case unix.S_IFIFO:
		if err := unix.Mkfifoat(dst, name, st.Mode&0o7777); err != nil {
			return &os.PathError{Op: "mkfifo", Path: path, Err: err}
		}
	}
	return nil
}

func copyFile(src, dst int, name, path string, st *unix.Stat_t) error {
	in, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	inf := os.NewFile(uintptr(in), path)
	defer inf.Close()
	out, err := unix.Openat(dst, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: path, Err: err}
	}
	outf := os.NewFile(uintptr(out), path)
	defer outf.Close()
	// A reflink where the filesystem can (btrfs, xfs), a copy otherwise.
	if err := unix.IoctlFileClone(out, in); err != nil {
		if _, err := io.Copy(outf, inf); err != nil {
			return fmt.Errorf("copy %s: %w", path, err)
		}
	}
	return finish(out, st, path)
}

// finish gives fd the mode and times of st.
func finish(fd int, st *unix.Stat_t, path string) error {
	if err := unix.Fchmod(fd, st.Mode&0o7777); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	if err := unix.Futimes(fd, []unix.Timeval{unix.NsecToTimeval(unix.TimespecToNsec(st.Atim)), unix.NsecToTimeval(unix.TimespecToNsec(st.Mtim))}); err != nil {
		return &os.PathError{Op: "utimes", Path: path, Err: err}
	}
	return nil
}

func isOpaque(fd int) bool {
	buf := make([]byte, 1)
	n, err := unix.Fgetxattr(fd, "user.overlay.opaque", buf)
	return err == nil && n == 1 && buf[0] == 'y'
}

// removeAt removes name in dir, recursively for a directory.
func removeAt(dir int, name string, isDir bool) error {
	if !isDir {
		return unix.Unlinkat(dir, name, 0)
	}
	unix.Fchmodat(dir, name, 0o700, 0)
	d, err := openDir(dir, name)
	if err != nil {
		return err
	}
	err = emptyDir(d, name)
	unix.Close(d)
	if err != nil {
		return err
	}
	return unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
}

// emptyDir removes everything in the directory fd.
func emptyDir(fd int, path string) error {
	names, err := readNames(fd, path)
	if err != nil {
		return err
	}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return err
		}
		if err := removeAt(fd, n, st.Mode&unix.S_IFMT == unix.S_IFDIR); err != nil {
			return err
		}
	}
	return nil
}

func readlinkAt(dir int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dir, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
