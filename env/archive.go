package env

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/devboxhq/devbox/image"
	"golang.org/x/sys/unix"
)

// downloadsDir holds downloaded archives, named by their sha256.
func downloadsDir(dirs Dirs) string { return filepath.Join(dirs.Cache, "downloads", "sha256") }

// resolveArchives returns the sha256 of every archive: from devbox.toml,
// else from the lock, else (trust on first use) from downloading it now.
func (b *Builder) resolveArchives(ctx context.Context, cfg *Config, lock *Lock, frozen bool) ([]string, error) {
	shas := make([]string, len(cfg.Tools.Archive))
	for i, a := range cfg.Tools.Archive {
		shas[i] = a.SHA256
		if shas[i] == "" {
			shas[i] = lock.archiveSHA256(a.StepName(), a.URL)
		}
		if shas[i] != "" {
			continue
		}
		if frozen {
			return nil, &StaleLockError{Why: fmt.Sprintf("does not pin archive %s", a.StepName())}
		}
		sum, err := b.download(ctx, a, "")
		if err != nil {
			return nil, err
		}
		shas[i] = sum
	}
	return shas, nil
}

// ChecksumError is a download whose sha256 is not the expected one.
type ChecksumError struct {
	Archive, URL string
	Want, Got    string
	// Source is the file the expected sha256 comes from: devbox.toml, or
	// devbox.lock when devbox.toml gives none.
	Source string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("archive %s: %s has sha256 %s, but %s expects %s; nothing was installed",
		e.Archive, e.URL, e.Got, e.Source, e.Want)
}

// buildArchive unpacks the archive of st into the new layer directory
// layer, under the archive's dest, and links its bin entries into
// /usr/local/bin. The archive is rewritten into a tar stream and applied by
// the same unpacker as image layers, so the same rules hold: nothing is
// written outside layer, whatever the archive contains.
func (b *Builder) buildArchive(ctx context.Context, st Step, layer string) error {
	a := st.archive
	if _, err := b.download(ctx, a, st.sha256); err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(downloadsDir(b.Dirs), st.sha256))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.Mkdir(layer, 0o755); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archiveToTar(ctx, f, a, pw)) }()
	_, err = image.ApplyTar(layer, pr, image.ApplyLimits{})
	pr.CloseWithError(err)
	if err != nil {
		return fmt.Errorf("archive %s: %w", a.StepName(), err)
	}
	root, err := os.OpenFile(layer, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := checkEntries(root, a); err != nil {
		return fmt.Errorf("archive %s: %w", a.StepName(), err)
	}
	if err := linkBins(root, a); err != nil {
		return fmt.Errorf("archive %s: %w", a.StepName(), err)
	}
	return nil
}

// checkEntries reports a path or bin entry that the archive lacks, in the
// layer root: PATH would name nothing, or the link nothing, and the tool
// would be "not found" inside.
func checkEntries(root *os.File, a ArchiveConfig) error {
	for _, rel := range a.Path {
		dir := path.Join(a.DestDir(), rel)
		f, err := pathrs.OpenatInRoot(root, dir)
		if err != nil {
			return fmt.Errorf("path %q: the archive has no directory %s%s", rel, dir, stripHint(root, a, rel))
		}
		f.Close()
	}
	for _, rel := range a.Bin {
		target := path.Join(a.DestDir(), rel)
		f, err := pathrs.OpenatInRoot(root, target)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("bin %q: the archive has no %s%s", rel, target, stripHint(root, a, rel))
		}
		if err != nil {
			return fmt.Errorf("bin %q: %w", rel, err)
		}
		f.Close()
	}
	return nil
}

// stripHint says, for the bin or path entry rel that the archive lacks,
// where it is: most often under a top directory that strip should drop,
// else what dest holds. It reads inside the layer root: the archive's
// symlinks lead nowhere else.
func stripHint(root *os.File, a ArchiveConfig, rel string) string {
	handle, err := pathrs.OpenatInRoot(root, a.DestDir())
	if err != nil {
		return ""
	}
	defer handle.Close()
	dir, err := pathrs.Reopen(handle, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return ""
	}
	defer dir.Close()
	entries, _ := dir.ReadDir(6)
	if len(entries) == 0 {
		return ""
	}
	slices.SortFunc(entries, func(x, y fs.DirEntry) int { return strings.Compare(x.Name(), y.Name()) })
	if len(entries) == 1 && entries[0].IsDir() {
		deeper := path.Join(a.DestDir(), entries[0].Name(), rel)
		if f, err := pathrs.OpenatInRoot(root, deeper); err == nil {
			f.Close()
			return fmt.Sprintf(" (it is at %s: strip = %d would drop %s/)", deeper, a.Strip+1, entries[0].Name())
		}
	}
	var names []string
	for _, e := range entries[:min(len(entries), 5)] {
		names = append(names, e.Name())
	}
	if len(entries) > 5 {
		names = append(names, "...")
	}
	return fmt.Sprintf(" (%s holds %s)", a.DestDir(), strings.Join(names, ", "))
}

// linkBins creates /usr/local/bin/NAME → DEST/BIN for each bin entry,
// which checkEntries found, in the layer root, resolving /usr/local/bin
// inside it: the archive may have made any of those components a symlink.
func linkBins(root *os.File, a ArchiveConfig) error {
	if len(a.Bin) == 0 {
		return nil
	}
	bin, err := pathrs.MkdirAllHandle(root, "usr/local/bin", 0o755)
	if err != nil {
		return err
	}
	defer bin.Close()
	for _, rel := range a.Bin {
		target := path.Join(a.DestDir(), rel)
		name := path.Base(rel)
		unix.Unlinkat(int(bin.Fd()), name, 0)
		if err := unix.Symlinkat(target, int(bin.Fd()), name); err != nil {
			return &os.PathError{Op: "symlink", Path: "/usr/local/bin/" + name, Err: err}
		}
	}
	return nil
}
