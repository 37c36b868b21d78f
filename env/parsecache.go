package env

import (
	"os"
	"path/filepath"

	"github.com/devboxhq/devbox/internal/parsecache"
)

// A warm run reads devbox.toml and devbox.lock as they were parsed and
// validated the last time, from the project's state directory
// (internal/parsecache), rather than parsing and validating TOML again.

var (
	configCodec = parsecache.Codec[*Config]{Encode: encodeConfig, Decode: decodeConfig}
	lockCodec   = parsecache.Codec[*Lock]{Encode: encodeLock, Decode: decodeLock}
)

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
	cfg, err := parsecache.Parse(abs, filepath.Join(parseCacheDir(dirs, filepath.Dir(abs)), FileName),
		func(src []byte) (*Config, error) { return Parse(abs, src) }, configCodec)
	if err != nil {
		return nil, err
	}
	// The parse may have been cached through another path to the same
	// file (a symlink on the way): the project is where the user is.
	cfg.Path = abs
	return cfg, nil
}

// readLockCached is ReadLock, through the parse cache of the project in
// dir (the directory of path).
func readLockCached(dirs Dirs, path string) (*Lock, error) {
	l, err := parsecache.Parse(path, filepath.Join(parseCacheDir(dirs, filepath.Dir(path)), LockFileName),
		func(src []byte) (*Lock, error) { return parseLock(path, src) }, lockCodec)
	if os.IsNotExist(err) {
		return nil, nil
	}
	return l, err
}
