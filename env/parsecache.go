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

// parseCacheDir is where the parses of a project's files are kept, in its
// state directory.
func parseCacheDir(stateDir string) string {
	return filepath.Join(stateDir, "parsed")
}

// LoadCached is Load, through the parse cache of the project's state in
// dirs.
func LoadCached(dirs Dirs, path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	cfg, err := parsecache.Parse(abs, filepath.Join(parseCacheDir(projectStateDir(dirs, filepath.Dir(abs))), FileName),
		func(src []byte) (*Config, error) { return Parse(abs, src) }, configCodec)
	if err != nil {
		return nil, err
	}
	// The parse may have been cached through another path to the same
	// file (a symlink on the way): the project is where the user is.
	cfg.Path = abs
	return cfg, nil
}

// readLockCached is ReadLock of p's devbox.lock, through p's parse cache.
func readLockCached(p *Project) (*Lock, error) {
	path := filepath.Join(p.Dir, LockFileName)
	l, err := parsecache.Parse(path, filepath.Join(parseCacheDir(p.StateDir), LockFileName),
		func(src []byte) (*Lock, error) { return parseLock(path, src) }, lockCodec)
	if os.IsNotExist(err) {
		return nil, nil
	}
	return l, err
}
