// Package parsecache keeps what devbox parsed and checked from a file, in
// devbox's own binary form (internal/wire), so that a warm run reads that
// rather than parsing and checking the file again: devbox.toml and
// devbox.lock as TOML, an image record as JSON. A fresh process decodes
// the binary form in microseconds; JSON and TOML cost it a quarter of a
// millisecond per type or more.
//
// A cached result is used only for the very same file (device, inode,
// size, mtime and ctime, which no user can set) read by the very same
// devbox executable.
package parsecache

import (
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/devboxhq/devbox/internal/fsutil"
	"github.com/devboxhq/devbox/internal/wire"
	"golang.org/x/sys/unix"
)

// Stamp identifies one version of a file.
type Stamp struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64
}

// StampOf is the stamp of the file st describes.
func StampOf(st *unix.Stat_t) Stamp {
	return Stamp{
		Dev: st.Dev, Ino: st.Ino, Size: st.Size,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(),
	}
}

func (s Stamp) encode(e *wire.Encoder) {
	e.Uint(s.Dev)
	e.Uint(s.Ino)
	e.Int(s.Size)
	e.Int(s.Mtime)
	e.Int(s.Ctime)
}

func decodeStamp(d *wire.Decoder) Stamp {
	return Stamp{Dev: d.Uint(), Ino: d.Uint(), Size: d.Int(), Mtime: d.Int(), Ctime: d.Int()}
}

// Exe is the stamp of the running executable: a devbox that checks a file
// differently must not take another one's word for it.
var Exe = sync.OnceValue(func() Stamp {
	var st unix.Stat_t
	if unix.Stat("/proc/self/exe", &st) != nil {
		return Stamp{}
	}
	return StampOf(&st)
})

// A Codec is the wire form of a parsed file's value.
type Codec[T any] struct {
	Encode func(*wire.Encoder, T)
	Decode func(*wire.Decoder) T
}

// version starts a record: its version, the stamps of the file and the
// executable, and the value.
const version = 1

// Record is the cache record of v, parsed from the file with stamp file by
// the executable with stamp exe.
func Record[T any](file, exe Stamp, v T, c Codec[T]) []byte {
	e := &wire.Encoder{B: make([]byte, 0, 512)}
	e.Uint(version)
	file.encode(e)
	exe.encode(e)
	c.Encode(e, v)
	return e.B
}

// ReadRecord returns the value in record b when it was made for file and
// exe, or false.
func ReadRecord[T any](b []byte, file, exe Stamp, c Codec[T]) (T, bool) {
	d := &wire.Decoder{B: b}
	if d.Uint() != version || decodeStamp(d) != file || decodeStamp(d) != exe {
		var zero T
		return zero, false
	}
	v := c.Decode(d)
	return v, d.Done() == nil
}

// RacyWindow: a file changed this recently may change again within the
// resolution of its timestamps without its stamp changing, so its parse is
// not cached (as git does with its index).
const RacyWindow = 2 * time.Second

// Parse returns parse's result for the contents of the file at path: from
// the record in the file cache when it holds the result for this version
// of the file, otherwise by parsing, and then it records that result in
// cache. A missing file is an error that wraps os.ErrNotExist.
func Parse[T any](path, cache string, parse func(src []byte) (T, error), c Codec[T]) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, err
	}
	defer f.Close()
	// The stamp comes first: a change after it makes the next run parse
	// again, whichever content this one read.
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return zero, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	stamp, exe := StampOf(&st), Exe()
	if b, err := os.ReadFile(cache); err == nil && exe != (Stamp{}) {
		if v, ok := ReadRecord(b, stamp, exe, c); ok {
			return v, nil
		}
	}
	src, err := io.ReadAll(f)
	if err != nil {
		return zero, err
	}
	v, err := parse(src)
	if err != nil {
		return zero, err
	}
	if exe != (Stamp{}) && time.Since(time.Unix(0, max(stamp.Mtime, stamp.Ctime))) > RacyWindow {
		if os.MkdirAll(filepath.Dir(cache), 0o700) == nil {
			fsutil.WriteAtomic(cache, Record(stamp, exe, v, c), 0o600)
		}
	}
	return v, nil
}
