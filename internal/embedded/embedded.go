// Package embedded keeps executable copies of the programs devbox carries
// (the sandbox's pid 1, the full CLI) in the user's cache. It is apart
// from fsutil so that the init program, which links it, links nothing
// more: fsutil's random names bring crypto/rand.
package embedded

import (
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
// the program. The copy is written complete, by a rename, unless it is
// there already with that size and mode. A dir on a noexec mount is refused. Copies
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
	tmp, err := os.CreateTemp(dir, ".tmp-"+name+"-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	err = write(tmp)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(tmp.Name())
	if err != nil {
		return "", err
	}
	if fi.Size() != size {
		return "", fmt.Errorf("%s: wrote %d bytes, want %d", name, fi.Size(), size)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
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
