package env

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

// A warm run reads devbox.toml and devbox.lock as they were parsed and
// validated the last time, from the project's state directory in devbox's
// own binary form (internal/wire, which a fresh process reads sooner than
// JSON),
// rather than parsing and validating TOML again. A cached result is used
// only for the very same file (device, inode, size, mtime and ctime, which
// no user can set) read by the very same devbox executable.

// fileStamp identifies one version of a file.
type fileStamp struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64
}

func stampOf(st *unix.Stat_t) fileStamp {
	return fileStamp{
		Dev: st.Dev, Ino: st.Ino, Size: st.Size,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(),
	}
}

// exeStamp is the stamp of the running executable: a devbox that checks
// devbox.toml differently must not take another one's word for it.
var exeStamp = sync.OnceValue(func() fileStamp {
	var st unix.Stat_t
	if unix.Stat("/proc/self/exe", &st) != nil {
		return fileStamp{}
	}
	return stampOf(&st)
})

// cacheVersion starts a parse cache record: its version, the stamps of the
// file and the executable, and the value.
const cacheVersion = 1

func (f fileStamp) encode(e *wire.Encoder) {
	e.Uint(f.Dev)
	e.Uint(f.Ino)
	e.Int(f.Size)
	e.Int(f.Mtime)
	e.Int(f.Ctime)
}

func decodeStamp(d *wire.Decoder) fileStamp {
	return fileStamp{Dev: d.Uint(), Ino: d.Uint(), Size: d.Int(), Mtime: d.Int(), Ctime: d.Int()}
}

// A codec is the wire form of a parsed file's value.
type codec[T any] struct {
	encode func(*wire.Encoder, T)
	decode func(*wire.Decoder) T
}

// readRecord returns the value in a parse cache record made for file and
// exe, or false.
func readRecord[T any](b []byte, file, exe fileStamp, c codec[T]) (T, bool) {
	d := &wire.Decoder{B: b}
	if d.Uint() != cacheVersion || decodeStamp(d) != file || decodeStamp(d) != exe {
		var zero T
		return zero, false
	}
	v := c.decode(d)
	return v, d.Done() == nil
}

func record[T any](file, exe fileStamp, v T, c codec[T]) []byte {
	e := &wire.Encoder{B: make([]byte, 0, 512)}
	e.Uint(cacheVersion)
	file.encode(e)
	exe.encode(e)
	c.encode(e, v)
	return e.B
}

// racyWindow: a file changed this recently may change again within the
// resolution of its timestamps without its stamp changing, so its parse is
// not cached (as git does with its index).
const racyWindow = 2 * time.Second

// cachedParse returns parse's result for the contents of the file at
// path: from the file cache when it holds the result for this version
// of the file, otherwise by parsing, and then it records that result in
// cache. A missing file is an error that wraps os.ErrNotExist.
func cachedParse[T any](path, cache string, parse func(src []byte) (T, error), c codec[T]) (T, error) {
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
	stamp, exe := stampOf(&st), exeStamp()
	if b, err := os.ReadFile(cache); err == nil && exe != (fileStamp{}) {
		if v, ok := readRecord(b, stamp, exe, c); ok {
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
	if exe != (fileStamp{}) && time.Since(time.Unix(0, max(stamp.Mtime, stamp.Ctime))) > racyWindow {
		if os.MkdirAll(filepath.Dir(cache), 0o700) == nil {
			fsutil.WriteAtomic(cache, record(stamp, exe, v, c), 0o600)
		}
	}
	return v, nil
}

// parseCacheDir is where the parses of the files of the project in dir
// are kept.
func parseCacheDir(dirs Dirs, dir string) string {
	return filepath.Join(projectStateDir(dirs, dir), "parsed")
}

// LoadCached is Load, through the parse cache of the project's state in
// dirs.
func LoadCached(dirs Dirs, path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return cachedParse(abs, filepath.Join(parseCacheDir(dirs, filepath.Dir(abs)), FileName),
		func(src []byte) (*Config, error) { return Parse(abs, src) },
		codec[*Config]{encodeConfig, decodeConfig})
}

// readLockCached is ReadLock, through the parse cache of the project in
// dir (the directory of path).
func readLockCached(dirs Dirs, path string) (*Lock, error) {
	l, err := cachedParse(path, filepath.Join(parseCacheDir(dirs, filepath.Dir(path)), LockFileName),
		func(src []byte) (*Lock, error) { return parseLock(path, src) },
		codec[*Lock]{encodeLock, decodeLock})
	if os.IsNotExist(err) {
		return nil, nil
	}
	return l, err
}
