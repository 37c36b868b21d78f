package env

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/devboxhq/devbox/image"
	"github.com/mholt/archiver/v4"
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

// download fetches a's URL into the download cache unless a file with sha
// want is there already, verifies it and returns its sha256.
func (b *Builder) download(ctx context.Context, a ArchiveConfig, want string) (string, error) {
	dir := downloadsDir(b.Dirs)
	if want != "" {
		if _, err := os.Stat(filepath.Join(dir, want)); err == nil {
			return want, nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	b.Log(fmt.Sprintf("downloading %s", a.URL))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return "", err
	}
	client := &http.Client{Timeout: 30 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("archive %s: %w", a.StepName(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("archive %s: %s answered %s", a.StepName(), a.URL, resp.Status)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("archive %s: download %s: %w", a.StepName(), a.URL, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want != "" && got != want {
		source := FileName
		if a.SHA256 == "" {
			source = LockFileName
		}
		return "", &ChecksumError{Archive: a.StepName(), URL: a.URL, Want: want, Got: got, Source: source}
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, got)); err != nil {
		return "", err
	}
	return got, nil
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
	if err := linkBins(layer, a); err != nil {
		return fmt.Errorf("archive %s: %w", a.StepName(), err)
	}
	return nil
}

// archiveToTar reads any archive format mholt/archiver identifies (tar in
// any compression, zip) and writes its entries as a tar stream to w, with
// Strip leading components removed and the result placed under DestDir.
func archiveToTar(ctx context.Context, r io.Reader, a ArchiveConfig, w io.Writer) error {
	format, stream, err := archiver.Identify(path.Base(a.URL), r)
	if err != nil {
		return fmt.Errorf("identify the archive format: %w", err)
	}
	ex, ok := format.(archiver.Extractor)
	if !ok {
		return fmt.Errorf("%s is not an archive devbox can unpack (tar, tar.gz/xz/zst/bz2, zip)", format.Name())
	}
	tw := tar.NewWriter(w)
	dest := strings.TrimPrefix(a.DestDir(), "/")
	rename := func(name string) (string, bool) {
		parts := strings.Split(strings.Trim(path.Clean("/"+name), "/"), "/")
		if len(parts) <= a.Strip || (len(parts) == 1 && parts[0] == "") {
			return "", false
		}
		return path.Join(dest, strings.Join(parts[a.Strip:], "/")), true
	}
	err = ex.Extract(ctx, stream, nil, func(ctx context.Context, f archiver.File) error {
		name, ok := rename(f.NameInArchive)
		if !ok {
			return nil
		}
		hdr, err := tar.FileInfoHeader(f.FileInfo, f.LinkTarget)
		if err != nil {
			return fmt.Errorf("entry %q: %w", f.NameInArchive, err)
		}
		hdr.Name = name
		if th, ok := f.Header.(*tar.Header); ok && th.Typeflag == tar.TypeLink {
			target, ok := rename(th.Linkname)
			if !ok {
				return fmt.Errorf("entry %q: hardlink to %q, which strip removes", f.NameInArchive, th.Linkname)
			}
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, target, 0
		}
		if hdr.Typeflag == tar.TypeSymlink && hdr.Linkname == "" && f.Open != nil {
			// zip stores a symlink's target as its content.
			rc, err := f.Open()
			if err != nil {
				return err
			}
			target, err := io.ReadAll(io.LimitReader(rc, 4096))
			rc.Close()
			if err != nil {
				return err
			}
			hdr.Linkname, hdr.Size = string(target), 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg || f.Open == nil {
			return nil
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(tw, rc)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// linkBins creates /usr/local/bin/NAME → DEST/BIN for each bin entry, in
// the layer directory, resolving /usr/local/bin inside it: the archive may
// have made any of those components a symlink.
func linkBins(layer string, a ArchiveConfig) error {
	if len(a.Bin) == 0 {
		return nil
	}
	root, err := os.OpenFile(layer, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer root.Close()
	bin, err := pathrs.MkdirAllHandle(root, "usr/local/bin", 0o755)
	if err != nil {
		return err
	}
	defer bin.Close()
	for _, rel := range a.Bin {
		target := path.Join(a.DestDir(), rel)
		f, err := pathrs.OpenatInRoot(root, target)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("bin %q: the archive has no %s", rel, target)
		}
		if err != nil {
			return fmt.Errorf("bin %q: %w", rel, err)
		}
		f.Close()
		name := path.Base(rel)
		unix.Unlinkat(int(bin.Fd()), name, 0)
		if err := unix.Symlinkat(target, int(bin.Fd()), name); err != nil {
			return &os.PathError{Op: "symlink", Path: "/usr/local/bin/" + name, Err: err}
		}
	}
	return nil
}
