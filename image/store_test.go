//go:build !devbox_lean

package image

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestOpenStore(t *testing.T) {
	root := filepath.Join(t.TempDir(), "a", "b")
	s, err := OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir() != root {
		t.Errorf("Dir() = %s, want %s", s.Dir(), root)
	}
	for _, d := range []string{"layers/sha256", "images/sha256", "refs", "locks"} {
		fi, err := os.Stat(filepath.Join(root, d))
		if err != nil {
			t.Errorf("%s: %v", d, err)
			continue
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want a 0700 directory", d, fi.Mode())
		}
	}
	// Opening again is harmless.
	if _, err := OpenStore(root); err != nil {
		t.Errorf("second OpenStore: %v", err)
	}
	h := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	if got, want := s.LayerDir(h), filepath.Join(root, "layers", "sha256", h.Hex); got != want {
		t.Errorf("LayerDir = %s, want %s", got, want)
	}

	file := filepath.Join(t.TempDir(), "file")
	pullWriteFile(t, file, "")
	if _, err := OpenStore(file); err == nil || !strings.Contains(err.Error(), "open image store") {
		t.Errorf("OpenStore on a file: %v, want an error that says open image store", err)
	}
}

// TestLookupIncomplete breaks a pulled image in the store in one way each
// and checks what Lookup makes of it.
func TestLookupIncomplete(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		breakIt func(t *testing.T, s *Store, rec *Image)
		wantErr error  // errors.Is target, or nil
		wantMsg string // substring, when wantErr is nil
	}{
		{
			name:    "intact",
			breakIt: func(*testing.T, *Store, *Image) {},
		},
		{
			name: "a layer directory is gone",
			breakIt: func(t *testing.T, s *Store, rec *Image) {
				if err := RemoveAll(s.LayerDir(rec.Layers[1].DiffID)); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrNotPresent,
		},
		{
			name: "image record is gone",
			breakIt: func(t *testing.T, s *Store, rec *Image) {
				if err := os.Remove(filepath.Join(s.imagesDir(), rec.Digest.Hex+".json")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrNotPresent,
		},
		{
			name: "image record is corrupt",
			breakIt: func(t *testing.T, s *Store, rec *Image) {
				pullWriteFile(t, filepath.Join(s.imagesDir(), rec.Digest.Hex+".json"), "{")
			},
			wantMsg: "image record " + "sha256:",
		},
		{
			name: "reference file is corrupt",
			breakIt: func(t *testing.T, s *Store, rec *Image) {
				pullWriteFile(t, filepath.Join(s.refsDir(), refFileName(rec.Ref)), "not a digest\n")
			},
			wantMsg: "corrupt reference file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := newPullTestRegistry(t)
			img, _ := pullMultiLayerImage(t)
			ref := reg.push(t, "test/lookup:v1", img)
			s := newPullStore(t)
			rec, err := s.Pull(pullTestContext(t), ref)
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			tt.breakIt(t, s, rec)

			got, err := s.Lookup(ref)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Lookup = %+v, %v; want %v", got, err, tt.wantErr)
				}
			case tt.wantMsg != "":
				if err == nil || errors.Is(err, ErrNotPresent) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("Lookup = %+v, %v; want an error containing %q", got, err, tt.wantMsg)
				}
			default:
				if err != nil || !reflect.DeepEqual(got, rec) {
					t.Errorf("Lookup = %+v, %v; want %+v", got, err, rec)
				}
			}
		})
	}
}

func TestLookupInvalidReference(t *testing.T) {
	s := newPullStore(t)
	_, err := s.Lookup("Not A Reference")
	if err == nil || errors.Is(err, ErrNotPresent) || !strings.Contains(err.Error(), `"Not A Reference"`) {
		t.Errorf("Lookup of an invalid reference: %v, want a parse error naming it", err)
	}
}

// TestStoreRecord checks that a record and its reference are replaced
// whole, with no temporary file left beside them.
func TestStoreRecord(t *testing.T) {
	s := newPullStore(t)
	ref := "example.com/app:v1"
	first := &Image{Ref: ref, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("01", 32)}, Platform: "linux/amd64",
		Config: v1.Config{Env: []string{"A=1"}}}
	second := &Image{Ref: ref, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("02", 32)}, Platform: "linux/arm64",
		Config: v1.Config{Env: []string{"A=2"}}}
	for _, img := range []*Image{first, second} {
		if err := s.record(img, ref); err != nil {
			t.Fatal(err)
		}
		// No layers: the image is complete as soon as it is recorded.
		got, err := s.Lookup(ref)
		if err != nil {
			t.Fatalf("Lookup: %v", err)
		}
		if !reflect.DeepEqual(got, img) {
			t.Errorf("Lookup = %+v, want %+v", got, img)
		}
	}
	b, err := os.ReadFile(filepath.Join(s.refsDir(), refFileName(ref)))
	if err != nil || string(b) != second.Digest.String()+"\n" {
		t.Errorf("reference file %q (%v), want %q", b, err, second.Digest.String()+"\n")
	}
	if tmp := pullTmpEntries(t, s.Dir()); len(tmp) > 0 {
		t.Errorf("temporary files left behind: %q", tmp)
	}
	// The first record stays: another reference may still point at it.
	if got, err := s.readImage(first.Digest); err != nil || !reflect.DeepEqual(got, first) {
		t.Errorf("first record: %+v, %v", got, err)
	}
}
