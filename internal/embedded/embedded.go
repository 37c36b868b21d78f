// Package embedded keeps executable copies of the programs devbox carries
// (the sandbox's pid 1, the full CLI) in the user's cache. It is apart
// from fsutil so that the init program, which links it, links nothing
// more: fsutil's random names bring crypto/rand.
package embedded

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Stale is the age at which Install removes another
// version's copy of a program.
const Stale = 24 * time.Hour

// mode is a copy's: executable by every id of a sandbox, where the
// sandbox's sudo is the init program (rootless.Sudo). dir, 0700, keeps it
// the user's on the host.
const mode = 0o755

// Install returns dir/NAME-SUM, an executable copy of a program
// that devbox embeds, made on first use. sum is the program's hex sha256
// (its first 16 digits name the copy) and size its length; write writes
// the program. The copy appears complete or not at all (writeCopy), unless
// it is there already with that size and mode. A dir on a noexec mount is refused. Copies
// of other versions go once they are a day old: two devbox versions used
// by turns would otherwise remove each other's on every run and write
// their own again.
func Install(dir, name, sum string, size int64, write func(io.Writer) error) (string, error) {
	if len(sum) < 16 {
		return "", fmt.Errorf("%s: checksum %q is too short", name, sum)
	}
	path := filepath.Join(dir, name+"-"+sum[:16])
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() == size && fi.Mode().Perm() == mode {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", err
	}
	if st.Flags&unix.ST_NOEXEC != 0 {
		return "", &os.PathError{Op: "exec", Path: dir, Err: unix.EACCES}
	}
	if err := writeCopy(dir, path, name, size, write); err != nil {
		return "", err
	}
	old, _ := filepath.Glob(filepath.Join(dir, name+"-*"))
	for _, o := range old {
		if fi, err := os.Stat(o); err == nil && o != path && time.Since(fi.ModTime()) > Stale {
			os.Remove(o)
		}
	}
	return path, nil
}

// writeCopy writes the program to path: into an unnamed file (O_TMPFILE)
// that is linked into place once complete, so that a devbox killed while
// it writes leaves nothing behind; where the filesystem has no unnamed
// files, into a named temporary file renamed into place.
func writeCopy(dir, path, name string, size int64, write func(io.Writer) error) error {
	f, err := os.OpenFile(dir, unix.O_TMPFILE|os.O_WRONLY|unix.O_CLOEXEC, mode)
	named := err != nil
	if named {
		if f, err = os.CreateTemp(dir, ".tmp-"+name+"-"); err != nil {
			return err
		}
		defer os.Remove(f.Name())
	}
	defer f.Close()
	if err := write(f); err != nil {
		return err
	}
	// The mode, whatever the umask.
	if err := f.Chmod(mode); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != size {
		return fmt.Errorf("%s: wrote %d bytes, want %d", name, fi.Size(), size)
	}
	if named {
		return os.Rename(f.Name(), path)
	}
	// A copy of another size or mode (one a crash of an older devbox
	// left) goes first; one that another devbox linked meanwhile stays.
	os.Remove(path)
	err = unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", f.Fd()), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: f.Name(), New: path, Err: err}
	}
	return nil
}
