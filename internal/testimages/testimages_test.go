package testimages

import (
	"archive/tar"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// tarEntry is what a test needs from one tar header and its content.
type tarEntry struct {
	hdr  *tar.Header
	body string
}

// readTar returns the entries of an uncompressed tar stream by name.
func readTar(t *testing.T, rc io.ReadCloser) map[string]tarEntry {
	t.Helper()
	defer rc.Close()
	out := map[string]tarEntry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", h.Name, err)
		}
		out[strings.TrimSuffix(h.Name, "/")] = tarEntry{hdr: h, body: string(b)}
	}
}

func layerEntries(t *testing.T, l v1.Layer) map[string]tarEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatalf("uncompressed layer: %v", err)
	}
	return readTar(t, rc)
}

func checkConfig(t *testing.T, img v1.Image, marker string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	wantEnv := []string{"PATH=" + ImagePath, MarkerVar + "=" + marker}
	if !slices.Equal(cf.Config.Env, wantEnv) {
		t.Errorf("Env = %q, want %q", cf.Config.Env, wantEnv)
	}
	if !slices.Equal(cf.Config.Cmd, []string{"sh"}) {
		t.Errorf("Cmd = %q, want [sh]", cf.Config.Cmd)
	}
	if cf.OS != "linux" {
		t.Errorf("OS = %q, want linux", cf.OS)
	}
}

func TestBusybox(t *testing.T) {
	img, err := Busybox()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("media type = %s, want %s", mt, types.OCIManifestSchema1)
	}
	checkConfig(t, img, "busybox")
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	files := layerEntries(t, layers[0])
	if e, ok := files["bin/busybox"]; !ok || e.hdr.Mode&0o111 == 0 {
		t.Errorf("bin/busybox missing or not executable")
	}
	for _, a := range requiredApplets {
		if e, ok := files["bin/"+a]; !ok || e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != "busybox" {
			t.Errorf("bin/%s is not a symlink to busybox", a)
		}
	}
	if e := files["etc/passwd"]; !strings.HasPrefix(e.body, "root:x:0:0:") {
		t.Errorf("etc/passwd = %q, want a root entry first", e.body)
	}
	if e, ok := files["tmp"]; !ok || e.hdr.Typeflag != tar.TypeDir || e.hdr.Mode != 0o1777 {
		t.Errorf("tmp is not a 1777 directory")
	}
	if _, ok := files["root"]; !ok {
		t.Errorf("root missing")
	}
}

func TestLayered(t *testing.T) {
	img, err := Layered()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if mt, _ := img.MediaType(); mt != types.DockerManifestSchema2 {
		t.Errorf("media type = %s, want %s", mt, types.DockerManifestSchema2)
	}
	checkConfig(t, img, "layered")
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 3 {
		t.Fatalf("%d layers, want 3", len(layers))
	}

	l2 := layerEntries(t, layers[1])
	for name, want := range map[string]string{"data/keep": KeepV2, "data/gone": Gone, "data/dir/a": DirA, "opaque/old": Old} {
		if got := l2[name].body; got != want {
			t.Errorf("layer 2 %s = %q, want %q", name, got, want)
		}
	}
	if h := l2["data/hard"].hdr; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "data/keep" {
		t.Errorf("layer 2 data/hard is not a hardlink to data/keep")
	}
	if h := l2["data/abs"].hdr; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != AbsTarget {
		t.Errorf("layer 2 data/abs is not a symlink to %s", AbsTarget)
	}
	if h := l2["data/rel"].hdr; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != RelTarget {
		t.Errorf("layer 2 data/rel is not a symlink to %s", RelTarget)
	}

	l3 := layerEntries(t, layers[2])
	for _, name := range []string{"data/.wh.gone", "opaque/.wh..wh..opq", "opaque/new", "data/keep"} {
		if _, ok := l3[name]; !ok {
			t.Errorf("layer 3 lacks %s", name)
		}
	}

	// go-containerregistry's own flattening applies whiteouts and opaque
	// markers; it is a second opinion on what the layers mean.
	flat := readTar(t, mutate.Extract(img))
	for _, name := range []string{"data/gone", "opaque/old"} {
		if _, ok := flat[name]; ok {
			t.Errorf("flattened image has %s", name)
		}
	}
	if got := flat["opaque/new"].body; got != New {
		t.Errorf("flattened opaque/new = %q, want %q", got, New)
	}
	if got := flat["data/keep"].body; got != KeepV3 {
		t.Errorf("flattened data/keep = %q, want %q", got, KeepV3)
	}
}

func TestDeterministic(t *testing.T) {
	for _, build := range []func() (v1.Image, error){Busybox, Layered} {
		a, err := build()
		if err != nil {
			t.Fatal(err)
		}
		b, err := build()
		if err != nil {
			t.Fatal(err)
		}
		da, _ := a.Digest()
		db, _ := b.Digest()
		if da != db {
			t.Errorf("two builds differ: %s, %s", da, db)
		}
	}
}

func TestPushAll(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	if err := PushAll(host); err != nil {
		t.Fatal(err)
	}
	imgs, err := All()
	if err != nil {
		t.Fatal(err)
	}
	for n, img := range imgs {
		ref, err := name.ParseReference(host+"/"+n+":latest", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		gd, _ := got.Digest()
		wd, _ := img.Digest()
		if gd != wd {
			t.Errorf("%s: pushed %s, registry has %s", n, wd, gd)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		registry string
		want     bool
	}{
		{"127.0.0.1:5000", true},
		{"127.0.0.2", true},
		{"localhost:5000", true},
		{"[::1]:5000", true},
		{"registry.example.com", false},
		{"10.0.0.1:5000", false},
	}
	for _, tt := range tests {
		t.Run(tt.registry, func(t *testing.T) {
			if got := isLoopback(tt.registry); got != tt.want {
				t.Errorf("isLoopback(%q) = %v, want %v", tt.registry, got, tt.want)
			}
		})
	}
}
