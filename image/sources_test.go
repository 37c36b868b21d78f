//go:build !devbox_lean

package image

// Tests of local sources: OCI layouts (directories and archives), docker
// save archives and rootfs tarballs, each built here with
// go-containerregistry or archive/tar, pulled through Store.Pull and
// checked like registry pulls in pull_test.go. Helpers are prefixed src.

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/mholt/archiver/v4"
)

// srcLayoutItem is one entry of an OCI layout's index.json.
type srcLayoutItem struct {
	img      v1.Image
	idx      v1.ImageIndex
	tag      string
	platform *v1.Platform
}

// srcWriteLayout writes an OCI image layout of items into dir.
func srcWriteLayout(t testing.TB, dir string, items ...srcLayoutItem) {
	t.Helper()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		var opts []layout.Option
		if it.tag != "" {
			opts = append(opts, layout.WithAnnotations(map[string]string{refNameAnnotation: it.tag}))
		}
		if it.platform != nil {
			opts = append(opts, layout.WithPlatform(*it.platform))
		}
		if it.img != nil {
			err = lp.AppendImage(it.img, opts...)
		} else {
			err = lp.AppendIndex(it.idx, opts...)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// srcTarDir writes the tree under dir into the tar archive file, with
// names relative to dir.
func srcTarDir(t testing.TB, dir, file string) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// srcWriteTar writes a tar archive of files (name → content) in the given
// order; a content that starts with "->" makes a symlink to the rest.
func srcWriteTar(t testing.TB, file string, names []string, files map[string][]byte) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range names {
		c := files[n]
		hdr := &tar.Header{Name: n, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(c))}
		if target, ok := bytes.CutPrefix(c, []byte("->")); ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, string(target), 0
			c = nil
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// srcSaved is one image of a docker save archive and its RepoTags.
type srcSaved struct {
	img  v1.Image
	tags []string
}

// srcDockerSave writes file as "docker save" (before Docker 25) does:
// manifest.json, a config "<id>.json" and an uncompressed "<dir>/layer.tar"
// per layer, where a layer already written for another image is a symlink
// to it. corrupt, if set, changes the bytes of the first layer file.
func srcDockerSave(t testing.TB, file string, saved []srcSaved, corrupt func([]byte) []byte) {
	t.Helper()
	files := map[string][]byte{}
	var names []string
	add := func(n string, c []byte) {
		names = append(names, n)
		files[n] = c
	}
	var manifest tarball.Manifest
	written := map[v1.Hash]string{}
	for i, s := range saved {
		cfg, err := s.img.RawConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%x", sha256.Sum256(cfg))
		add(id+".json", cfg)
		d := tarball.Descriptor{Config: id + ".json", RepoTags: s.tags}
		layers, err := s.img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for j, l := range layers {
			diffID, err := l.DiffID()
			if err != nil {
				t.Fatal(err)
			}
			dir := fmt.Sprintf("img%d-layer%d", i, j)
			if first, ok := written[diffID]; ok {
				add(dir+"/layer.tar", []byte("->../"+first+"/layer.tar"))
			} else {
				rc, err := l.Uncompressed()
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				if corrupt != nil && len(written) == 0 {
					b = corrupt(b)
				}
				add(dir+"/layer.tar", b)
				written[diffID] = dir
			}
			d.Layers = append(d.Layers, dir+"/layer.tar")
		}
		manifest = append(manifest, d)
	}
	mb, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	add("manifest.json", mb)
	srcWriteTar(t, file, names, files)
}

// srcMultiRefArchive writes file with tarball.MultiRefWriteToFile, which
// stores layers compressed, as go-containerregistry and crane do.
func srcMultiRefArchive(t testing.TB, file string, imgs map[string]v1.Image) {
	t.Helper()
	refs := map[name.Reference]v1.Image{}
	for tag, img := range imgs {
		r, err := name.NewTag(tag)
		if err != nil {
			t.Fatal(err)
		}
		refs[r] = img
	}
	if err := tarball.MultiRefWriteToFile(file, refs); err != nil {
		t.Fatal(err)
	}
}

// srcCompress compresses b with archiver's compressor for format ("" for
// none).
func srcCompress(t testing.TB, format string, b []byte) []byte {
	t.Helper()
	var c archiver.Compressor
	switch format {
	case "":
		return b
	case "gz":
		c = archiver.Gz{}
	case "zst":
		c = archiver.Zstd{}
	case "xz":
		c = archiver.Xz{}
	case "bz2":
		c = archiver.Bz2{}
	default:
		t.Fatalf("no compressor %q", format)
	}
	var out bytes.Buffer
	w, err := c.OpenWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func srcWriteFile(t testing.TB, file string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func srcSHA256(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// srcRootFSTar is a small root filesystem and the tree it unpacks to.
func srcRootFSTar(t testing.TB) ([]byte, map[string]pullFileWant) {
	t.Helper()
	b := pullTar(t,
		pullTarEntry{name: "./", typ: tar.TypeDir, mode: 0o755},
		pullTarEntry{name: "./bin/", typ: tar.TypeDir, mode: 0o755},
		pullTarEntry{name: "./bin/sh", mode: 0o755, body: "#!/bin/true\n"},
		pullTarEntry{name: "./etc/", typ: tar.TypeDir, mode: 0o755},
		pullTarEntry{name: "./etc/os-release", mode: 0o644, body: "ID=rootfs\n"},
		pullTarEntry{name: "./usr/", typ: tar.TypeDir, mode: 0o755},
		pullTarEntry{name: "./usr/big.txt", mode: 0o644, body: pullRandomText(11, 400<<10)},
		pullTarEntry{name: "./lib", typ: tar.TypeSymlink, link: "usr/lib"},
	)
	return b, map[string]pullFileWant{
		"bin":            {dir: true, mode: 0o755},
		"bin/sh":         {content: "#!/bin/true\n", mode: 0o755},
		"etc":            {dir: true, mode: 0o755},
		"etc/os-release": {content: "ID=rootfs\n", mode: 0o644},
		"usr":            {dir: true, mode: 0o755},
		"usr/big.txt":    {content: pullRandomText(11, 400<<10), mode: 0o644},
		"lib":            {link: "usr/lib"},
	}
}

// srcAppImages are two images that share their base layer, and the trees
// of their layers.
func srcAppImages(t testing.TB) (a, b v1.Image, trees map[v1.Hash]map[string]pullFileWant) {
	t.Helper()
	baseTar := pullTar(t,
		pullTarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		pullTarEntry{name: "etc/base.txt", mode: 0o644, body: pullRandomText(21, 300<<10)})
	aTar := pullTar(t, pullTarEntry{name: "a.txt", mode: 0o600, body: "a\n"})
	bTar := pullTar(t, pullTarEntry{name: "b.txt", mode: 0o644, body: "b\n"},
		pullTarEntry{name: "link", typ: tar.TypeSymlink, link: "/etc/base.txt"})
	base, la, lb := pullGzipLayer(t, baseTar), pullZstdLayer(t, aTar), pullGzipLayer(t, bTar)
	cfg := v1.Config{Env: []string{"PATH=/bin", "APP=1"}, Cmd: []string{"/bin/app"}, WorkingDir: "/srv"}
	a, b = pullImage(t, cfg, base, la), pullImage(t, cfg, base, lb)
	trees = map[v1.Hash]map[string]pullFileWant{}
	for l, tree := range map[v1.Layer]map[string]pullFileWant{
		base: {"etc": {dir: true, mode: 0o755}, "etc/base.txt": {content: pullRandomText(21, 300<<10), mode: 0o644}},
		la:   {"a.txt": {content: "a\n", mode: 0o600}},
		lb:   {"b.txt": {content: "b\n", mode: 0o644}, "link": {link: "/etc/base.txt"}},
	} {
		d, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		trees[d] = tree
	}
	return a, b, trees
}

// srcDiffIDs lists the diffIDs of img's layers.
func srcDiffIDs(t testing.TB, img v1.Image) []v1.Hash {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.RootFS.DiffIDs
}

// srcUncompressedLayers is the record of img's layers as stored
// uncompressed in a docker save archive: digest = diffID.
func srcUncompressedLayers(t testing.TB, img v1.Image) []Layer {
	t.Helper()
	var out []Layer
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Layer{Digest: srcSHA256(b), DiffID: srcSHA256(b), Size: int64(len(b)), MediaType: string(types.OCIUncompressedLayer)})
	}
	return out
}

// srcCheckEmptyStore fails unless the store holds no record, reference or
// temporary entry, and, unless layersOK, no layer: complete layers from a
// failed pull may stay, as from a registry.
func srcCheckEmptyStore(t testing.TB, s *Store, layersOK bool) {
	t.Helper()
	dirs := []string{s.imagesDir(), s.refsDir()}
	if !layersOK {
		dirs = append(dirs, s.layersDir())
	}
	for _, d := range dirs {
		if names := pullDirNames(t, d); len(names) > 0 {
			t.Errorf("%s holds %q after a failed pull", d, names)
		}
	}
	if tmp := pullTmpEntries(t, s.Dir()); len(tmp) > 0 {
		t.Errorf("temporary entries left behind: %q", tmp)
	}
}

func TestPullLocalSources(t *testing.T) {
	t.Parallel()
	imgA, imgB, trees := srcAppImages(t)
	rootfs, rootfsTree := srcRootFSTar(t)
	rootfsGz := srcCompress(t, "gz", rootfs)
	rootfsDiffID := srcSHA256(rootfs)
	for d, tree := range map[v1.Hash]map[string]pullFileWant{rootfsDiffID: rootfsTree} {
		trees[d] = tree
	}
	cfgA, err := imgA.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		// setup writes the source into dir and returns the reference, with
		// a path relative to dir, and the source's path to delete.
		setup func(t *testing.T, dir string) (ref, path string)
		// wantRef is the recorded Ref; {dir} stands for dir.
		wantRef    string
		wantDigest func(t *testing.T) v1.Hash // nil: not checked
		wantLayers func(t *testing.T) []Layer
		wantConfig v1.Config
		platform   string
	}{
		{
			name: "oci layout directory, one image",
			setup: func(t *testing.T, dir string) (string, string) {
				srcWriteLayout(t, filepath.Join(dir, "layout"), srcLayoutItem{img: imgA})
				return "oci-layout:layout", filepath.Join(dir, "layout")
			},
			wantRef:    "oci-layout:{dir}/layout",
			wantDigest: func(t *testing.T) v1.Hash { return pullDigest(t, imgA) },
			wantLayers: func(t *testing.T) []Layer { return pullWantLayers(t, imgA) },
			wantConfig: cfgA.Config,
		},
		{
			name: "oci layout directory by tag",
			setup: func(t *testing.T, dir string) (string, string) {
				srcWriteLayout(t, filepath.Join(dir, "layout"), srcLayoutItem{img: imgB, tag: "b"}, srcLayoutItem{img: imgA, tag: "a"})
				return "oci-layout:./sub/../layout:a", filepath.Join(dir, "layout")
			},
			wantRef:    "oci-layout:{dir}/layout:a",
			wantDigest: func(t *testing.T) v1.Hash { return pullDigest(t, imgA) },
			wantLayers: func(t *testing.T) []Layer { return pullWantLayers(t, imgA) },
			wantConfig: cfgA.Config,
		},
		{
			name: "oci layout directory holding an index",
			setup: func(t *testing.T, dir string) (string, string) {
				idx, _, _ := pullPlatformIndex(t)
				srcWriteLayout(t, filepath.Join(dir, "layout"), srcLayoutItem{idx: idx, tag: "multi"})
				return "oci-layout:layout:multi", filepath.Join(dir, "layout")
			},
			platform:   "linux/arm64",
			wantRef:    "oci-layout:{dir}/layout:multi",
			wantDigest: func(t *testing.T) v1.Hash { _, _, arm := pullPlatformIndex(t); return pullDigest(t, arm) },
			wantLayers: func(t *testing.T) []Layer { _, _, arm := pullPlatformIndex(t); return pullWantLayers(t, arm) },
		},
		{
			name: "oci layout directory, one image per platform in index.json",
			setup: func(t *testing.T, dir string) (string, string) {
				_, amd, arm := pullPlatformIndex(t)
				srcWriteLayout(t, filepath.Join(dir, "layout"),
					srcLayoutItem{img: amd, platform: &v1.Platform{OS: "linux", Architecture: "amd64"}},
					srcLayoutItem{img: arm, platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}})
				return "oci-layout:layout", filepath.Join(dir, "layout")
			},
			platform:   "linux/amd64",
			wantRef:    "oci-layout:{dir}/layout",
			wantDigest: func(t *testing.T) v1.Hash { _, amd, _ := pullPlatformIndex(t); return pullDigest(t, amd) },
			wantLayers: func(t *testing.T) []Layer { _, amd, _ := pullPlatformIndex(t); return pullWantLayers(t, amd) },
		},
		{
			name: "oci layout archive",
			setup: func(t *testing.T, dir string) (string, string) {
				tmp := t.TempDir()
				srcWriteLayout(t, tmp, srcLayoutItem{img: imgA, tag: "latest"}, srcLayoutItem{img: imgB, tag: "b"})
				srcTarDir(t, tmp, filepath.Join(dir, "image.tar"))
				return "oci-layout:image.tar:latest", filepath.Join(dir, "image.tar")
			},
			wantRef:    "oci-layout:{dir}/image.tar:latest",
			wantDigest: func(t *testing.T) v1.Hash { return pullDigest(t, imgA) },
			wantLayers: func(t *testing.T) []Layer { return pullWantLayers(t, imgA) },
			wantConfig: cfgA.Config,
		},
		{
			name: "oci layout archive as docker-archive",
			setup: func(t *testing.T, dir string) (string, string) {
				tmp := t.TempDir()
				srcWriteLayout(t, tmp, srcLayoutItem{img: imgA})
				srcTarDir(t, tmp, filepath.Join(dir, "image.tar"))
				return "docker-archive:image.tar", filepath.Join(dir, "image.tar")
			},
			wantRef:    "docker-archive:{dir}/image.tar",
			wantDigest: func(t *testing.T) v1.Hash { return pullDigest(t, imgA) },
			wantLayers: func(t *testing.T) []Layer { return pullWantLayers(t, imgA) },
			wantConfig: cfgA.Config,
		},
		{
			name: "docker save archive with several tags",
			setup: func(t *testing.T, dir string) (string, string) {
				srcDockerSave(t, filepath.Join(dir, "saved.tar"), []srcSaved{
					{img: imgB, tags: []string{"example.com/app:b"}},
					{img: imgA, tags: []string{"app:a", "app:latest"}},
				}, nil)
				return "docker-archive:saved.tar:app", filepath.Join(dir, "saved.tar")
			},
			wantRef:    "docker-archive:{dir}/saved.tar:app",
			wantLayers: func(t *testing.T) []Layer { return srcUncompressedLayers(t, imgA) },
			wantConfig: cfgA.Config,
		},
		{
			name: "docker save archive, image whose layer is a symlink",
			setup: func(t *testing.T, dir string) (string, string) {
				srcDockerSave(t, filepath.Join(dir, "saved.tar"), []srcSaved{
					{img: imgA, tags: []string{"app:a"}},
					{img: imgB, tags: []string{"example.com/app:b"}},
				}, nil)
				return "docker-archive:saved.tar:example.com/app:b", filepath.Join(dir, "saved.tar")
			},
			wantRef:    "docker-archive:{dir}/saved.tar:example.com/app:b",
			wantLayers: func(t *testing.T) []Layer { return srcUncompressedLayers(t, imgB) },
			wantConfig: cfgA.Config,
		},
		{
			name: "archive written by tarball.MultiRefWriteToFile",
			setup: func(t *testing.T, dir string) (string, string) {
				srcMultiRefArchive(t, filepath.Join(dir, "multi.tar"), map[string]v1.Image{"app:a": imgA, "app:b": imgB})
				return "docker-archive:multi.tar:app:a", filepath.Join(dir, "multi.tar")
			},
			wantRef: "docker-archive:{dir}/multi.tar:app:a",
			wantLayers: func(t *testing.T) []Layer {
				// The manifest devbox writes for an archive gives OCI media types.
				ls := pullWantLayers(t, imgA)
				for i := range ls {
					if ls[i].MediaType == string(types.DockerLayer) {
						ls[i].MediaType = string(types.OCILayer)
					}
				}
				return ls
			},
			wantConfig: cfgA.Config,
		},
		{
			name: "rootfs tarball",
			setup: func(t *testing.T, dir string) (string, string) {
				srcWriteFile(t, filepath.Join(dir, "root.tar.gz"), rootfsGz)
				return "rootfs:root.tar.gz", filepath.Join(dir, "root.tar.gz")
			},
			platform: "linux/arm64/v8",
			wantRef:  "rootfs:{dir}/root.tar.gz",
			wantLayers: func(*testing.T) []Layer {
				return []Layer{{Digest: srcSHA256(rootfsGz), DiffID: rootfsDiffID, Size: int64(len(rootfsGz)), MediaType: string(types.OCILayer)}}
			},
			wantConfig: v1.Config{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ref, srcPath := tt.setup(t, dir)
			s := newPullStore(t)
			var events pullEventLog
			opts := []Option{WithBaseDir(dir), WithProgress(events.add), WithPlatform(tt.platform)}

			rec, err := s.Pull(pullTestContext(t), ref, opts...)
			if err != nil {
				t.Fatalf("Pull(%s): %v", ref, err)
			}
			if want := strings.ReplaceAll(tt.wantRef, "{dir}", dir); rec.Ref != want {
				t.Errorf("Ref = %s, want %s", rec.Ref, want)
			}
			if tt.wantDigest != nil {
				if want := tt.wantDigest(t); rec.Digest != want {
					t.Errorf("Digest = %s, want %s", rec.Digest, want)
				}
			}
			if want := tt.wantLayers(t); !reflect.DeepEqual(rec.Layers, want) {
				t.Errorf("Layers =\n%+v\nwant\n%+v", rec.Layers, want)
			}
			if tt.wantConfig.Env != nil && !reflect.DeepEqual(rec.Config, tt.wantConfig) {
				t.Errorf("Config = %+v, want %+v", rec.Config, tt.wantConfig)
			}
			if tt.platform != "" && rec.Platform != tt.platform {
				t.Errorf("Platform = %s, want %s", rec.Platform, tt.platform)
			}
			for _, l := range rec.Layers {
				if tree, ok := trees[l.DiffID]; ok {
					pullCheckTree(t, s.LayerDir(l.DiffID), tree)
				} else if _, err := os.Stat(s.LayerDir(l.DiffID)); err != nil {
					t.Errorf("layer %s: %v", l.DiffID, err)
				}
				var evs []Event
				for _, ev := range events.events {
					if ev.Layer.Digest == l.Digest {
						evs = append(evs, ev)
					}
				}
				if k := pullKinds(evs); !slices.Equal(k, []string{"LayerStarted", "LayerDone"}) {
					t.Errorf("layer %s: events %v, want LayerStarted then LayerDone", l.Digest, k)
				}
				if last := evs[len(evs)-1]; last.Layer != l || last.Done != l.Size {
					t.Errorf("layer %s: LayerDone carries %+v and %d bytes, want %+v and %d", l.Digest, last.Layer, last.Done, l, l.Size)
				}
				if p := evs[len(evs)-2]; p.Kind != LayerProgress || p.Done != l.Size {
					t.Errorf("layer %s: last progress %s with %d bytes, want LayerProgress with %d", l.Digest, pullKindName(p.Kind), p.Done, l.Size)
				}
			}
			if tmp := pullTmpEntries(t, s.Dir()); len(tmp) > 0 {
				t.Errorf("temporary entries left behind: %q", tmp)
			}

			// Pulled again: the same image, every layer from the store.
			var again pullEventLog
			rec2, err := s.Pull(pullTestContext(t), ref, WithBaseDir(dir), WithProgress(again.add), WithPlatform(tt.platform))
			if err != nil {
				t.Fatalf("second Pull: %v", err)
			}
			if !reflect.DeepEqual(rec2, rec) {
				t.Errorf("second Pull =\n%+v\nwant the first's\n%+v", rec2, rec)
			}
			for _, ev := range again.events {
				if ev.Kind != LayerCached {
					t.Errorf("second Pull: event %s for %s, want LayerCached only", pullKindName(ev.Kind), ev.Layer.Digest)
				}
			}

			// Lookup needs nothing of the source.
			if err := os.RemoveAll(srcPath); err != nil {
				t.Fatal(err)
			}
			got, err := s.Lookup(rec.Ref)
			if err != nil {
				t.Fatalf("Lookup(%s) after the source was deleted: %v", rec.Ref, err)
			}
			if !reflect.DeepEqual(got, rec) {
				t.Errorf("Lookup = %+v, want %+v", got, rec)
			}
			if _, err := s.Lookup(ref); !errors.Is(err, ErrNotPresent) {
				t.Errorf("Lookup(%s) relative to the test's working directory: %v, want ErrNotPresent", ref, err)
			}
			if _, err := s.Pull(pullTestContext(t), ref, WithBaseDir(dir)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Pull of the deleted source: %v, want an error that is fs.ErrNotExist", err)
			}
		})
	}
}

// TestPullLocalSharedLayers pulls images that share layers from different
// kinds of sources: a layer is unpacked once per diffID, whatever the
// source and however it is compressed there.
func TestPullLocalSharedLayers(t *testing.T) {
	t.Parallel()
	imgA, imgB, _ := srcAppImages(t)
	rootfs, _ := srcRootFSTar(t)
	base := srcDiffIDs(t, imgA)[0]
	tests := []struct {
		name          string
		first, second func(t *testing.T, dir string) string
		shared        v1.Hash // the diffID both share
		fresh         bool    // the second has a layer of its own
	}{
		{
			name: "oci layout, then docker save archive",
			first: func(t *testing.T, dir string) string {
				srcWriteLayout(t, filepath.Join(dir, "layout"), srcLayoutItem{img: imgA})
				return "oci-layout:" + filepath.Join(dir, "layout")
			},
			second: func(t *testing.T, dir string) string {
				srcDockerSave(t, filepath.Join(dir, "b.tar"), []srcSaved{{img: imgB, tags: []string{"b:1"}}}, nil)
				return "docker-archive:" + filepath.Join(dir, "b.tar")
			},
			shared: base,
			fresh:  true,
		},
		{
			name: "docker save archive, then oci layout archive",
			first: func(t *testing.T, dir string) string {
				srcDockerSave(t, filepath.Join(dir, "b.tar"), []srcSaved{{img: imgB, tags: []string{"b:1"}}}, nil)
				return "docker-archive:" + filepath.Join(dir, "b.tar")
			},
			second: func(t *testing.T, dir string) string {
				tmp := t.TempDir()
				srcWriteLayout(t, tmp, srcLayoutItem{img: imgA})
				srcTarDir(t, tmp, filepath.Join(dir, "a.tar"))
				return "oci-layout:" + filepath.Join(dir, "a.tar")
			},
			shared: base,
			fresh:  true,
		},
		{
			name: "rootfs, then the same rootfs elsewhere",
			first: func(t *testing.T, dir string) string {
				srcWriteFile(t, filepath.Join(dir, "one.tar.zst"), srcCompress(t, "zst", rootfs))
				return "rootfs:" + filepath.Join(dir, "one.tar.zst")
			},
			second: func(t *testing.T, dir string) string {
				srcWriteFile(t, filepath.Join(dir, "copy/two.tar.zst"), srcCompress(t, "zst", rootfs))
				return "rootfs:" + filepath.Join(dir, "copy/two.tar.zst")
			},
			shared: srcSHA256(rootfs),
		},
		{
			name: "rootfs, then the same rootfs compressed otherwise",
			first: func(t *testing.T, dir string) string {
				srcWriteFile(t, filepath.Join(dir, "one.tar.gz"), srcCompress(t, "gz", rootfs))
				return "rootfs:" + filepath.Join(dir, "one.tar.gz")
			},
			second: func(t *testing.T, dir string) string {
				srcWriteFile(t, filepath.Join(dir, "two.tar.xz"), srcCompress(t, "xz", rootfs))
				return "rootfs:" + filepath.Join(dir, "two.tar.xz")
			},
			// Unpacked again (the digest is new), then found in place.
			shared: srcSHA256(rootfs),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := newPullStore(t)
			first, err := s.Pull(pullTestContext(t), tt.first(t, dir))
			if err != nil {
				t.Fatalf("first Pull: %v", err)
			}
			before := pullInode(t, s.LayerDir(tt.shared))
			var events pullEventLog
			second, err := s.Pull(pullTestContext(t), tt.second(t, dir), WithProgress(events.add))
			if err != nil {
				t.Fatalf("second Pull: %v", err)
			}
			if after := pullInode(t, s.LayerDir(tt.shared)); after != before {
				t.Errorf("shared layer directory was replaced")
			}
			var sharedKinds []string
			fresh := 0
			for _, l := range second.Layers {
				var evs []Event
				for _, ev := range events.events {
					if ev.Layer.Digest == l.Digest {
						evs = append(evs, ev)
					}
				}
				switch k := pullKinds(evs); {
				case l.DiffID == tt.shared:
					sharedKinds = k
				case slices.Equal(k, []string{"LayerStarted", "LayerDone"}):
					fresh++
				default:
					t.Errorf("layer %s: events %v, want LayerStarted and LayerDone", l.DiffID, k)
				}
			}
			wantShared := []string{"LayerCached"}
			if strings.Contains(tt.name, "otherwise") {
				wantShared = []string{"LayerStarted", "LayerDone"}
			}
			if !slices.Equal(sharedKinds, wantShared) {
				t.Errorf("shared layer %s: events %v, want %v", tt.shared, sharedKinds, wantShared)
			}
			if tt.fresh != (fresh > 0) {
				t.Errorf("%d fresh layers, want some: %v", fresh, tt.fresh)
			}
			if tmp := pullTmpEntries(t, s.Dir()); len(tmp) > 0 {
				t.Errorf("temporary entries left behind: %q", tmp)
			}
			for _, rec := range []*Image{first, second} {
				if got, err := s.Lookup(rec.Ref); err != nil || got.Digest != rec.Digest {
					t.Errorf("Lookup(%s) = %v, %v; want %s", rec.Ref, got, err, rec.Digest)
				}
			}
		})
	}
}

func TestPullRootFSCompressions(t *testing.T) {
	t.Parallel()
	rootfs, tree := srcRootFSTar(t)
	tests := []struct {
		format string
		want   types.MediaType
	}{
		{format: "", want: types.OCIUncompressedLayer},
		{format: "gz", want: types.OCILayer},
		{format: "zst", want: types.OCILayerZStd},
		{format: "xz", want: "application/vnd.oci.image.layer.v1.tar+xz"},
		{format: "bz2", want: "application/vnd.oci.image.layer.v1.tar+bz2"},
	}
	for _, tt := range tests {
		t.Run("format "+tt.format, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "rootfs")
			blob := srcCompress(t, tt.format, rootfs)
			srcWriteFile(t, file, blob)
			digests := map[string]v1.Hash{}
			for _, platform := range []string{"linux/amd64", "linux/arm64", "linux/amd64"} {
				s := newPullStore(t)
				rec, err := s.Pull(pullTestContext(t), "rootfs:"+file, WithPlatform(platform))
				if err != nil {
					t.Fatalf("Pull: %v", err)
				}
				want := Layer{Digest: srcSHA256(blob), DiffID: srcSHA256(rootfs), Size: int64(len(blob)), MediaType: string(tt.want)}
				if len(rec.Layers) != 1 || rec.Layers[0] != want {
					t.Errorf("Layers = %+v, want [%+v]", rec.Layers, want)
				}
				pullCheckTree(t, s.LayerDir(want.DiffID), tree)
				if d, ok := digests[platform]; ok && d != rec.Digest {
					t.Errorf("%s: digest %s, then %s: not deterministic", platform, d, rec.Digest)
				}
				digests[platform] = rec.Digest
			}
			if digests["linux/amd64"] == digests["linux/arm64"] {
				t.Errorf("the same digest %s for two platforms", digests["linux/amd64"])
			}
		})
	}
}

// TestPullRootFSConcurrent pulls one rootfs from several goroutines, each
// with its own Store: it is unpacked once.
func TestPullRootFSConcurrent(t *testing.T) {
	t.Parallel()
	rootfs, tree := srcRootFSTar(t)
	file := filepath.Join(t.TempDir(), "rootfs.tar.gz")
	srcWriteFile(t, file, srcCompress(t, "gz", rootfs))
	storeDir := filepath.Join(t.TempDir(), "store")
	all := pullInGoroutines(t, 4, "rootfs:"+file, storeDir)
	done := 0
	for i, evs := range all {
		switch k := pullKinds(evs); {
		case slices.Equal(k, []string{"LayerStarted", "LayerDone"}):
			done++
		case slices.Equal(k, []string{"LayerCached"}):
		default:
			t.Errorf("puller %d: events %v", i, k)
		}
		if last := evs[len(evs)-1]; last.Layer.DiffID != srcSHA256(rootfs) {
			t.Errorf("puller %d: last event carries diffID %s, want %s", i, last.Layer.DiffID, srcSHA256(rootfs))
		}
	}
	if done != 1 {
		t.Errorf("rootfs unpacked %d times, want once", done)
	}
	s, err := OpenStore(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	pullCheckTree(t, s.LayerDir(srcSHA256(rootfs)), tree)
	if tmp := pullTmpEntries(t, storeDir); len(tmp) > 0 {
		t.Errorf("temporary entries left behind: %q", tmp)
	}
}

func TestPullLocalErrors(t *testing.T) {
	t.Parallel()
	imgA, imgB, _ := srcAppImages(t)
	rootfs, _ := srcRootFSTar(t)
	layerA := pullWantLayers(t, imgA)
	corruptLayoutBlob := func(t *testing.T, dir string, h v1.Hash, edit func([]byte) []byte) {
		p := filepath.Join(dir, "blobs", h.Algorithm, h.Hex)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		srcWriteFile(t, p, edit(b))
	}
	flip := func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b }
	tests := []struct {
		name string
		// setup returns the reference; {dir} in wantErr stands for dir.
		setup        func(t *testing.T, dir string) string
		platform     string
		wantErr      []string
		wantNotExist bool
		// layersOK: the other layers may be complete in the store.
		layersOK bool
	}{
		{
			name:         "oci layout missing",
			setup:        func(*testing.T, string) string { return "oci-layout:nothing" },
			wantErr:      []string{"pull oci-layout:{dir}/nothing: no such file or directory"},
			wantNotExist: true,
		},
		{
			name: "oci layout without index.json",
			setup: func(t *testing.T, dir string) string {
				srcWriteFile(t, filepath.Join(dir, "l/oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`))
				return "oci-layout:l"
			},
			wantErr:      []string{"pull oci-layout:{dir}/l: not an OCI image layout: it has no index.json"},
			wantNotExist: true,
		},
		{
			name: "oci layout tag missing",
			setup: func(t *testing.T, dir string) string {
				srcWriteLayout(t, filepath.Join(dir, "l"), srcLayoutItem{img: imgA, tag: "v1"}, srcLayoutItem{img: imgB, tag: "v2"})
				return "oci-layout:l:v9"
			},
			wantErr: []string{`pull oci-layout:{dir}/l:v9: no image tagged "v9" in the layout; it has v1, v2`},
		},
		{
			name: "oci layout with two images and no tag given",
			setup: func(t *testing.T, dir string) string {
				srcWriteLayout(t, filepath.Join(dir, "l"), srcLayoutItem{img: imgA, tag: "v1"}, srcLayoutItem{img: imgB, tag: "v2"})
				return "oci-layout:l"
			},
			wantErr: []string{"pull oci-layout:{dir}/l: the layout holds 2 images: name one as oci-layout:{dir}/l:TAG; it has v1, v2"},
		},
		{
			name: "oci layout index without the platform",
			setup: func(t *testing.T, dir string) string {
				idx, _, _ := pullPlatformIndex(t)
				srcWriteLayout(t, filepath.Join(dir, "l"), srcLayoutItem{idx: idx})
				return "oci-layout:l"
			},
			platform: "linux/s390x",
			wantErr:  []string{"pull oci-layout:{dir}/l: no image for platform linux/s390x; the image offers linux/amd64, linux/arm64/v8"},
		},
		{
			// gunzip ignores the header's MTIME: only the digest catches it.
			name: "oci layout layer blob corrupted in the gzip header",
			setup: func(t *testing.T, dir string) string {
				srcWriteLayout(t, filepath.Join(dir, "l"), srcLayoutItem{img: imgA})
				corruptLayoutBlob(t, filepath.Join(dir, "l"), layerA[0].Digest, func(b []byte) []byte { b[4] ^= 0xff; return b })
				return "oci-layout:l"
			},
			wantErr:  []string{"pull oci-layout:{dir}/l: layer " + layerA[0].Digest.String() + ":", "checksum mismatch"},
			layersOK: true,
		},
		{
			name: "oci layout layer blob corrupted in the compressed data",
			setup: func(t *testing.T, dir string) string {
				srcWriteLayout(t, filepath.Join(dir, "l"), srcLayoutItem{img: imgA})
				corruptLayoutBlob(t, filepath.Join(dir, "l"), layerA[0].Digest, flip)
				return "oci-layout:l"
			},
			wantErr:  []string{"pull oci-layout:{dir}/l: layer " + layerA[0].Digest.String() + ":"},
			layersOK: true,
		},
		{
			name: "oci layout layer blob truncated",
			setup: func(t *testing.T, dir string) string {
				srcWriteLayout(t, filepath.Join(dir, "l"), srcLayoutItem{img: imgA})
				corruptLayoutBlob(t, filepath.Join(dir, "l"), layerA[1].Digest, func(b []byte) []byte { return b[:len(b)-10] })
				return "oci-layout:l"
			},
			wantErr:  []string{"pull oci-layout:{dir}/l: layer " + layerA[1].Digest.String() + ":", "but its descriptor gives"},
			layersOK: true,
		},
		{
			name: "oci layout layer blob with trailing bytes",
			setup: func(t *testing.T, dir string) string {
				srcWriteLayout(t, filepath.Join(dir, "l"), srcLayoutItem{img: imgA})
				corruptLayoutBlob(t, filepath.Join(dir, "l"), layerA[1].Digest, func(b []byte) []byte { return append(b, 0) })
				return "oci-layout:l"
			},
			wantErr:  []string{"pull oci-layout:{dir}/l: layer " + layerA[1].Digest.String() + ":", "is larger than"},
			layersOK: true,
		},
		{
			name: "oci layout layer blob missing",
			setup: func(t *testing.T, dir string) string {
				srcWriteLayout(t, filepath.Join(dir, "l"), srcLayoutItem{img: imgA})
				if err := os.Remove(filepath.Join(dir, "l/blobs/sha256", layerA[1].Digest.Hex)); err != nil {
					t.Fatal(err)
				}
				return "oci-layout:l"
			},
			wantErr:      []string{"pull oci-layout:{dir}/l: layer " + layerA[1].Digest.String() + ":"},
			wantNotExist: true,
			layersOK:     true,
		},
		{
			name: "oci layout manifest corrupted",
			setup: func(t *testing.T, dir string) string {
				srcWriteLayout(t, filepath.Join(dir, "l"), srcLayoutItem{img: imgA})
				corruptLayoutBlob(t, filepath.Join(dir, "l"), pullDigest(t, imgA), flip)
				return "oci-layout:l"
			},
			wantErr: []string{"pull oci-layout:{dir}/l: checksum mismatch: blob " + pullDigest(t, imgA).String()},
		},
		{
			name:         "docker archive missing",
			setup:        func(*testing.T, string) string { return "docker-archive:gone.tar" },
			wantErr:      []string{"pull docker-archive:{dir}/gone.tar: no such file or directory"},
			wantNotExist: true,
		},
		{
			name: "docker archive is a directory",
			setup: func(t *testing.T, dir string) string {
				srcWriteLayout(t, filepath.Join(dir, "l"), srcLayoutItem{img: imgA})
				return "docker-archive:l"
			},
			wantErr: []string{"pull docker-archive:{dir}/l: is a directory, not a docker save archive (an OCI layout directory is oci-layout:PATH)"},
		},
		{
			name: "docker archive is not an archive",
			setup: func(t *testing.T, dir string) string {
				srcWriteFile(t, filepath.Join(dir, "notes.txt"), []byte(strings.Repeat("not a tar\n", 100)))
				return "docker-archive:notes.txt"
			},
			wantErr: []string{"pull docker-archive:{dir}/notes.txt: not a tar archive"},
		},
		{
			name: "docker archive is compressed",
			setup: func(t *testing.T, dir string) string {
				srcDockerSave(t, filepath.Join(dir, "saved.tar"), []srcSaved{{img: imgA, tags: []string{"a:1"}}}, nil)
				b, err := os.ReadFile(filepath.Join(dir, "saved.tar"))
				if err != nil {
					t.Fatal(err)
				}
				srcWriteFile(t, filepath.Join(dir, "saved.tar.gz"), srcCompress(t, "gz", b))
				return "docker-archive:saved.tar.gz"
			},
			wantErr: []string{"pull docker-archive:{dir}/saved.tar.gz: is compressed (gz): decompress it first"},
		},
		{
			name: "docker archive without manifest.json",
			setup: func(t *testing.T, dir string) string {
				srcWriteTar(t, filepath.Join(dir, "x.tar"), []string{"hello.txt"}, map[string][]byte{"hello.txt": []byte("hi")})
				return "docker-archive:x.tar"
			},
			wantErr: []string{"pull docker-archive:{dir}/x.tar: not a docker save archive: it has no manifest.json"},
		},
		{
			name: "docker archive tag missing",
			setup: func(t *testing.T, dir string) string {
				srcDockerSave(t, filepath.Join(dir, "saved.tar"), []srcSaved{{img: imgA, tags: []string{"a:1", "a:latest"}}, {img: imgB, tags: []string{"b:2"}}}, nil)
				return "docker-archive:saved.tar:c:3"
			},
			wantErr: []string{"pull docker-archive:{dir}/saved.tar:c:3: no image tagged c:3 in the archive; it has a:1, a:latest, b:2"},
		},
		{
			name: "docker archive with two images and no tag given",
			setup: func(t *testing.T, dir string) string {
				srcMultiRefArchive(t, filepath.Join(dir, "multi.tar"), map[string]v1.Image{"a:1": imgA, "b:2": imgB})
				return "docker-archive:multi.tar"
			},
			wantErr: []string{"pull docker-archive:{dir}/multi.tar: the archive holds 2 images: name one as docker-archive:{dir}/multi.tar:REPO:TAG; it has a:1, b:2"},
		},
		{
			name: "docker archive layer corrupted",
			setup: func(t *testing.T, dir string) string {
				srcDockerSave(t, filepath.Join(dir, "saved.tar"), []srcSaved{{img: imgA, tags: []string{"a:1"}}}, func(b []byte) []byte { return flip(b) })
				return "docker-archive:saved.tar"
			},
			wantErr:  []string{"pull docker-archive:{dir}/saved.tar: layer sha256:", "checksum mismatch"},
			layersOK: true,
		},
		{
			name: "oci layout archive without index.json",
			setup: func(t *testing.T, dir string) string {
				srcWriteTar(t, filepath.Join(dir, "x.tar"), []string{"hello.txt"}, map[string][]byte{"hello.txt": []byte("hi")})
				return "oci-layout:x.tar"
			},
			wantErr: []string{"pull oci-layout:{dir}/x.tar: not an OCI image layout archive: it has no index.json"},
		},
		{
			name:         "rootfs missing",
			setup:        func(*testing.T, string) string { return "rootfs:gone.tar" },
			wantErr:      []string{"pull rootfs:{dir}/gone.tar: no such file or directory"},
			wantNotExist: true,
		},
		{
			name: "rootfs is a directory",
			setup: func(t *testing.T, dir string) string {
				if err := os.Mkdir(filepath.Join(dir, "root"), 0o755); err != nil {
					t.Fatal(err)
				}
				return "rootfs:root"
			},
			wantErr: []string{"pull rootfs:{dir}/root: is a directory: rootfs: takes a tar archive of a root filesystem"},
		},
		{
			name: "rootfs is not an archive",
			setup: func(t *testing.T, dir string) string {
				srcWriteFile(t, filepath.Join(dir, "notes.txt"), []byte(strings.Repeat("not a tar\n", 100)))
				return "rootfs:notes.txt"
			},
			wantErr: []string{"pull rootfs:{dir}/notes.txt: not a tar archive, compressed or not"},
		},
		{
			name: "rootfs is an empty file",
			setup: func(t *testing.T, dir string) string {
				srcWriteFile(t, filepath.Join(dir, "empty"), nil)
				return "rootfs:empty"
			},
			wantErr: []string{"pull rootfs:{dir}/empty: not a tar archive, compressed or not"},
		},
		{
			name: "rootfs is compressed text",
			setup: func(t *testing.T, dir string) string {
				srcWriteFile(t, filepath.Join(dir, "notes.gz"), srcCompress(t, "gz", []byte(strings.Repeat("text\n", 200))))
				return "rootfs:notes.gz"
			},
			wantErr: []string{"pull rootfs:{dir}/notes.gz: is compressed (gz), but not a tar archive inside"},
		},
		{
			name: "rootfs is a zip archive",
			setup: func(t *testing.T, dir string) string {
				var b bytes.Buffer
				zw := zip.NewWriter(&b)
				w, _ := zw.Create("etc/os-release")
				io.WriteString(w, "ID=zip\n")
				zw.Close()
				srcWriteFile(t, filepath.Join(dir, "root.zip"), b.Bytes())
				return "rootfs:root.zip"
			},
			wantErr: []string{"pull rootfs:{dir}/root.zip: is a zip archive, not a tar archive"},
		},
		{
			name: "rootfs with a hostile entry",
			setup: func(t *testing.T, dir string) string {
				srcWriteFile(t, filepath.Join(dir, "evil.tar.gz"), srcCompress(t, "gz", pullTar(t,
					pullTarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
					pullTarEntry{name: "etc/ok", mode: 0o644, body: "ok"},
					pullTarEntry{name: "../escape", mode: 0o644, body: "out"})))
				return "rootfs:evil.tar.gz"
			},
			wantErr: []string{"pull rootfs:{dir}/evil.tar.gz: layer sha256:", `entry "../escape"`},
		},
		{
			name: "rootfs truncated",
			setup: func(t *testing.T, dir string) string {
				gz := srcCompress(t, "gz", rootfs)
				srcWriteFile(t, filepath.Join(dir, "cut.tar.gz"), gz[:len(gz)*2/3])
				return "rootfs:cut.tar.gz"
			},
			wantErr: []string{"pull rootfs:{dir}/cut.tar.gz: layer sha256:"},
		},
		{
			name:    "source without a path",
			setup:   func(*testing.T, string) string { return "oci-layout:" },
			wantErr: []string{`"oci-layout:" names no path: write oci-layout:PATH`},
		},
		{
			name:    "docker archive with a bad tag",
			setup:   func(*testing.T, string) string { return "docker-archive:x.tar:Bad/Name:v1" },
			wantErr: []string{`"docker-archive:x.tar:Bad/Name:v1": "Bad/Name:v1" is not a REPO:TAG`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ref := tt.setup(t, dir)
			s := newPullStore(t)
			rec, err := s.Pull(pullTestContext(t), ref, WithBaseDir(dir), WithPlatform(tt.platform))
			if err == nil {
				t.Fatalf("Pull(%s) = %+v, want an error", ref, rec)
			}
			t.Logf("error: %v", err)
			for _, w := range tt.wantErr {
				if w = strings.ReplaceAll(w, "{dir}", dir); !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is more than one line: %q", err)
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tt.wantNotExist {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v", got, tt.wantNotExist)
			}
			srcCheckEmptyStore(t, s, tt.layersOK)
			if _, err := os.Lstat(filepath.Join(dir, "escape")); err == nil {
				t.Errorf("a hostile entry was written outside the layer")
			}
		})
	}
}

// TestPullLocalCanceled: a pull whose context is cancelled stops and
// leaves nothing behind, for local sources as for registries.
func TestPullLocalCanceled(t *testing.T) {
	t.Parallel()
	imgA, _, _ := srcAppImages(t)
	rootfs, _ := srcRootFSTar(t)
	dir := t.TempDir()
	srcWriteLayout(t, filepath.Join(dir, "l"), srcLayoutItem{img: imgA})
	srcWriteFile(t, filepath.Join(dir, "root.tar"), rootfs)
	for _, ref := range []string{"oci-layout:l", "rootfs:root.tar"} {
		t.Run(ref, func(t *testing.T) {
			s := newPullStore(t)
			ctx, cancel := context.WithCancel(context.Background())
			var once sync.Once
			// Cancelled as soon as the first layer starts.
			progress := func(ev Event) {
				if ev.Kind == LayerStarted {
					once.Do(cancel)
				}
			}
			_, err := s.Pull(ctx, ref, WithBaseDir(dir), WithProgress(progress), WithJobs(1))
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Pull = %v, want context.Canceled", err)
			}
			srcCheckEmptyStore(t, s, false)
		})
	}
}

func TestParseSource(t *testing.T) {
	tests := []struct {
		in       string
		kind     SourceKind
		path     string
		tag      string
		str      string // String(); "" means in
		wantErr  string
		registry string // Ref.Name() of a registry source
	}{
		{in: "debian:bookworm", kind: RegistrySource, registry: "index.docker.io/library/debian:bookworm", str: "index.docker.io/library/debian:bookworm"},
		{in: "oci-layout:img", kind: OCILayoutSource, path: "img"},
		{in: "oci-layout:/abs/img:v1.2", kind: OCILayoutSource, path: "/abs/img", tag: "v1.2"},
		{in: "oci-layout:./img:docker.io/library/busybox:latest", kind: OCILayoutSource, path: "./img", tag: "docker.io/library/busybox:latest"},
		{in: "docker-archive:save.tar", kind: DockerArchiveSource, path: "save.tar"},
		{in: "docker-archive:save.tar:busybox", kind: DockerArchiveSource, path: "save.tar", tag: "busybox"},
		{in: "docker-archive:../save.tar:127.0.0.1:5000/app:v1", kind: DockerArchiveSource, path: "../save.tar", tag: "127.0.0.1:5000/app:v1"},
		{in: "rootfs:root.tar.gz", kind: RootFSSource, path: "root.tar.gz"},
		{in: "rootfs:/a:b/root.tar", kind: RootFSSource, path: "/a:b/root.tar"},
		{in: "oci-layout:", wantErr: `"oci-layout:" names no path: write oci-layout:PATH`},
		{in: "rootfs:", wantErr: `"rootfs:" names no path: write rootfs:PATH`},
		{in: "oci-layout:img:", wantErr: `"oci-layout:img:" ends in an empty tag`},
		{in: "docker-archive::v1", wantErr: `"docker-archive::v1" names no path`},
		{in: "docker-archive:x.tar:UPPER:v1", wantErr: `"UPPER:v1" is not a REPO:TAG`},
		{in: "Not A Ref", wantErr: `"Not A Ref" is not an image reference`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			src, err := ParseSource(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSource(%q) = %+v, %v; want an error containing %q", tt.in, src, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSource(%q): %v", tt.in, err)
			}
			if src.Kind != tt.kind || src.Path != tt.path || src.Tag != tt.tag {
				t.Errorf("ParseSource(%q) = kind %d path %q tag %q; want kind %d path %q tag %q", tt.in, src.Kind, src.Path, src.Tag, tt.kind, tt.path, tt.tag)
			}
			if src.IsLocal() != (tt.kind != RegistrySource) {
				t.Errorf("IsLocal() = %v", src.IsLocal())
			}
			if tt.registry != "" && src.Ref.Name() != tt.registry {
				t.Errorf("Ref = %v, want %s", src.Ref, tt.registry)
			}
			want := tt.str
			if want == "" {
				want = tt.in
			}
			if src.String() != want {
				t.Errorf("String() = %q, want %q", src.String(), want)
			}
			// String round-trips.
			again, err := ParseSource(src.String())
			if err != nil || again.String() != src.String() {
				t.Errorf("ParseSource(String()) = %v, %v", again.String(), err)
			}
		})
	}
}

func TestSourceAbs(t *testing.T) {
	tests := []struct {
		in, dir string
		want    string
		wantErr string
	}{
		{in: "oci-layout:img:v1", dir: "/proj", want: "oci-layout:/proj/img:v1"},
		{in: "oci-layout:./a/../img", dir: "/proj/", want: "oci-layout:/proj/img"},
		{in: "docker-archive:../s.tar:app:v1", dir: "/proj/sub", want: "docker-archive:/proj/s.tar:app:v1"},
		{in: "rootfs:/abs//r.tar", dir: "/proj", want: "rootfs:/abs/r.tar"},
		{in: "rootfs:r.tar", dir: "/pro:j", want: "rootfs:/pro:j/r.tar"},
		{in: "oci-layout:img", dir: "/pro:j", wantErr: "has a ':', which oci-layout cannot name"},
		{in: "busybox", dir: "/proj", want: "index.docker.io/library/busybox:latest"},
	}
	for _, tt := range tests {
		t.Run(tt.in+" in "+tt.dir, func(t *testing.T) {
			src, err := ParseSource(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			abs, err := src.Abs(tt.dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Abs = %v, %v; want an error containing %q", abs, err, tt.wantErr)
				}
				return
			}
			if err != nil || abs.String() != tt.want {
				t.Errorf("Abs(%q) = %q, %v; want %q", tt.dir, abs.String(), err, tt.want)
			}
		})
	}
}

// TestLookupLocalRelative: Lookup resolves a relative local path against
// the working directory, as Pull does without WithBaseDir.
func TestLookupLocalRelative(t *testing.T) {
	rootfs, _ := srcRootFSTar(t)
	dir := t.TempDir()
	srcWriteFile(t, filepath.Join(dir, "root.tar"), rootfs)
	t.Chdir(dir)
	s := newPullStore(t)
	rec, err := s.Pull(pullTestContext(t), "rootfs:root.tar")
	if err != nil {
		t.Fatal(err)
	}
	if want := "rootfs:" + filepath.Join(dir, "root.tar"); rec.Ref != want {
		t.Errorf("Ref = %s, want %s", rec.Ref, want)
	}
	for _, ref := range []string{"rootfs:root.tar", "rootfs:./root.tar", rec.Ref} {
		if got, err := s.Lookup(ref); err != nil || got.Digest != rec.Digest {
			t.Errorf("Lookup(%s) = %v, %v", ref, got, err)
		}
	}
	tags, err := s.Tags()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tags[rec.Ref]; !ok || len(tags) != 1 {
		t.Errorf("Tags() = %v, want %s alone", tags, rec.Ref)
	}
}

func TestVerifiedReader(t *testing.T) {
	blob := []byte("some blob content")
	digest := srcSHA256(blob)
	tests := []struct {
		name    string
		content []byte
		want    v1.Hash
		size    int64
		wantErr string
	}{
		{name: "exact", content: blob, want: digest, size: int64(len(blob))},
		{name: "other content", content: []byte("some blob CONTENT"), want: digest, size: int64(len(blob)), wantErr: "checksum mismatch: blob " + digest.String()},
		{name: "short", content: blob[:5], want: digest, size: int64(len(blob)), wantErr: "has 5 bytes, but its descriptor gives 17"},
		{name: "long", content: append(slices.Clone(blob), 'x'), want: digest, size: int64(len(blob)), wantErr: "is larger than the 17 bytes"},
		{name: "other algorithm", content: blob, want: v1.Hash{Algorithm: "sha512", Hex: "00"}, size: 17, wantErr: `unsupported digest algorithm "sha512"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vr, err := newVerifiedReader(io.NopCloser(bytes.NewReader(tt.content)), tt.want, tt.size)
			if err == nil {
				_, err = io.ReadAll(vr)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("read: %v, want an error containing %q", err, tt.wantErr)
			}
			var de *DigestError
			if got, want := errors.As(err, &de), strings.Contains(tt.wantErr, "checksum"); got != want {
				t.Errorf("errors.As(err, *DigestError) = %v, want %v", got, want)
			}
		})
	}
}
