package env

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devboxhq/devbox/image"
)

// rootfsTar is a one-file root filesystem tarball.
func rootfsTar(t *testing.T, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "etc/os-release", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(content))
	tw.Close()
	return buf.Bytes()
}

// TestResolveLocalImage resolves a rootfs: image named relative to
// devbox.toml, with and without a lock that pins it, as the file changes.
func TestResolveLocalImage(t *testing.T) {
	ctx := context.Background()
	type step struct {
		name string
		// content, if set, is written to the rootfs file first; "-" deletes it.
		content string
		// pin: the lock pins the digest the named earlier step resolved to.
		pin string
		// update: as 'devbox update' (the lock is ignored).
		update  bool
		wantErr []string // substrings; {digest:NAME} is a step's digest
		// wantPull: the source is read (Builder.Pull is called).
		wantPull bool
		// sameAs: the image is the one the named step resolved to.
		sameAs string
	}
	steps := []step{
		{name: "first run", content: "ID=one\n", wantPull: true},
		{name: "pinned, in the store", pin: "first run", sameAs: "first run"},
		{name: "pinned, the file gone", content: "-", pin: "first run", sameAs: "first run"},
		{name: "unpinned, the file gone: the store's copy", sameAs: "first run"},
		{name: "update reads the new file", content: "ID=two\n", update: true, wantPull: true},
		{name: "pinned to the old image, the store's copy moved on", pin: "first run", wantPull: true,
			wantErr: []string{"image rootfs:root.tar now holds {digest:update reads the new file}, but devbox.lock pins {digest:first run}", "devbox update"}},
		{name: "the old file restored", content: "ID=one\n", pin: "first run", wantPull: true, sameAs: "first run"},
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "root.tar")
	cfg := &Config{Image: ImageConfig{Ref: "rootfs:root.tar"}, Path: filepath.Join(dir, FileName)}
	store, err := image.OpenStore(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	var pulled []string
	b := &Builder{Store: store, Pull: func(ctx context.Context, ref, platform string) (*image.Image, error) {
		pulled = append(pulled, ref)
		return store.Pull(ctx, ref, image.WithPlatform(platform))
	}}
	resolved := map[string]*image.Image{}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			switch st.content {
			case "":
			case "-":
				if err := os.Remove(file); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.WriteFile(file, rootfsTar(t, st.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var lock *Lock
			if st.pin != "" {
				lock = &Lock{Version: lockVersion, Image: LockImage{Ref: cfg.Image.Ref, Digests: map[string]string{hostPlatform(cfg): resolved[st.pin].Digest.String()}}}
			}
			pulled = nil
			img, err := b.resolveImage(ctx, cfg, lock, false, st.update)
			if len(pulled) > 0 != st.wantPull {
				t.Errorf("Builder.Pull called with %q; want a call: %v", pulled, st.wantPull)
			}
			for _, p := range pulled {
				if p != "rootfs:"+file {
					t.Errorf("Builder.Pull(%q), want the absolute path rootfs:%s", p, file)
				}
			}
			if len(st.wantErr) > 0 {
				if err == nil {
					t.Fatalf("resolveImage = %s, want an error", img.Digest)
				}
				var ice *ImageChangedError
				if !errors.As(err, &ice) {
					t.Errorf("error %T is not an *ImageChangedError", err)
				}
				for _, w := range st.wantErr {
					for name, img := range resolved {
						w = strings.ReplaceAll(w, "{digest:"+name+"}", img.Digest.String())
					}
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("resolveImage: %v", err)
			}
			if img.Ref != "rootfs:"+file {
				t.Errorf("Ref = %s, want rootfs:%s", img.Ref, file)
			}
			if st.sameAs != "" && img.Digest != resolved[st.sameAs].Digest {
				t.Errorf("resolved %s, want %s's %s", img.Digest, st.sameAs, resolved[st.sameAs].Digest)
			}
			if st.sameAs == "" && st.update && img.Digest == resolved["first run"].Digest {
				t.Errorf("update resolved the old image %s", img.Digest)
			}
			resolved[st.name] = img
		})
	}
}

func TestValidateLocalImageRef(t *testing.T) {
	tests := []struct {
		ref     string
		wantErr string
	}{
		{ref: "rootfs:./root.tar.zst"},
		{ref: "oci-layout:build/image:v1"},
		{ref: "docker-archive:/srv/saved.tar:app:v1"},
		{ref: "oci-layout:", wantErr: `image.ref: "oci-layout:" names no path`},
		{ref: "docker-archive:x.tar:Bad:v1", wantErr: `image.ref: "docker-archive:x.tar:Bad:v1": "Bad:v1" is not a REPO:TAG`},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			c := &Config{Image: ImageConfig{Ref: tt.ref}}
			err := c.validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
