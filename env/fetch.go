//go:build !devbox_lean

package env

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/mholt/archiver/v4"
)

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
