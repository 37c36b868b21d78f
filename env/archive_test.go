package env

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func tarGz(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func zipArchive(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("tool/bin/tool")
	w.Write([]byte("#!/bin/sh\necho tool\n"))
	h := &zip.FileHeader{Name: "tool/bin/alias"}
	h.SetMode(os.ModeSymlink | 0o777)
	w, _ = zw.CreateHeader(h)
	w.Write([]byte("tool"))
	zw.Close()
	return buf.Bytes()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// serve serves files by path and counts requests.
func serve(t *testing.T, files map[string][]byte) (*httptest.Server, *int) {
	t.Helper()
	n := new(int)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*n++
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, n
}

func testBuilder(t *testing.T) *Builder {
	root := t.TempDir()
	return &Builder{Dirs: Dirs{Cache: filepath.Join(root, "cache"), Data: filepath.Join(root, "data")}, Log: func(string) {}}
}

func TestBuildArchive(t *testing.T) {
	tgz := tarGz(t, []tarEntry{
		{name: "hello-1.0/", typ: tar.TypeDir, mode: 0o755},
		{name: "hello-1.0/bin/hello", typ: tar.TypeReg, mode: 0o755, body: "#!/bin/sh\necho hello\n"},
		{name: "hello-1.0/bin/hi", typ: tar.TypeLink, link: "hello-1.0/bin/hello"},
		{name: "hello-1.0/README", typ: tar.TypeReg, body: "readme"},
	})
	zipped := zipArchive(t)
	srv, _ := serve(t, map[string][]byte{"/hello.tar.gz": tgz, "/tool.zip": zipped})
	tests := []struct {
		name  string
		a     ArchiveConfig
		data  []byte
		files map[string]string // path in layer → content, or "->target" for a symlink
	}{
		{"tar.gz with strip and bin", ArchiveConfig{Name: "hello", URL: srv.URL + "/hello.tar.gz", Strip: 1, Bin: []string{"bin/hello"}}, tgz,
			map[string]string{"opt/hello/bin/hello": "#!/bin/sh\necho hello\n", "opt/hello/bin/hi": "#!/bin/sh\necho hello\n",
				"opt/hello/README": "readme", "usr/local/bin/hello": "->/opt/hello/bin/hello"}},
		{"tar.gz kept whole at dest", ArchiveConfig{Name: "h", URL: srv.URL + "/hello.tar.gz", Dest: "/usr/local/h"}, tgz,
			map[string]string{"usr/local/h/hello-1.0/README": "readme"}},
		{"zip with a symlink", ArchiveConfig{Name: "tool", URL: srv.URL + "/tool.zip", Strip: 1, Bin: []string{"bin/alias"}}, zipped,
			map[string]string{"opt/tool/bin/tool": "#!/bin/sh\necho tool\n", "opt/tool/bin/alias": "->tool", "usr/local/bin/alias": "->/opt/tool/bin/alias"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := testBuilder(t)
			layer := filepath.Join(t.TempDir(), "layer")
			if err := b.buildArchive(context.Background(), Step{archive: tt.a, sha256: sum(tt.data)}, layer); err != nil {
				t.Fatal(err)
			}
			for p, want := range tt.files {
				full := filepath.Join(layer, p)
				if target, ok := strings.CutPrefix(want, "->"); ok {
					if got, err := os.Readlink(full); err != nil || got != target {
						t.Errorf("%s: link %q, %v; want %q", p, got, err, target)
					}
					continue
				}
				if got, err := os.ReadFile(full); err != nil || string(got) != want {
					t.Errorf("%s: %q, %v; want %q", p, got, err, want)
				}
			}
		})
	}
}

func TestArchiveChecksumMismatch(t *testing.T) {
	tgz := tarGz(t, []tarEntry{{name: "x", typ: tar.TypeReg, body: "x"}})
	srv, _ := serve(t, map[string][]byte{"/x.tar.gz": tgz})
	b := testBuilder(t)
	wrong := strings.Repeat("0", 64)
	layer := filepath.Join(t.TempDir(), "layer")
	err := b.buildArchive(context.Background(), Step{archive: ArchiveConfig{Name: "x", URL: srv.URL + "/x.tar.gz"}, sha256: wrong}, layer)
	var ce *ChecksumError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), sum(tgz)) {
		t.Fatalf("err = %v, want a ChecksumError naming both hashes", err)
	}
	if _, err := os.Stat(layer); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a layer was created for a bad download")
	}
	entries, _ := os.ReadDir(downloadsDir(b.Dirs))
	if len(entries) != 0 {
		t.Errorf("the bad download stayed in the cache: %v", entries)
	}
}

func TestArchiveDownloadedOnce(t *testing.T) {
	tgz := tarGz(t, []tarEntry{{name: "x", typ: tar.TypeReg, body: "x"}})
	srv, requests := serve(t, map[string][]byte{"/x.tar.gz": tgz})
	b := testBuilder(t)
	a := ArchiveConfig{Name: "x", URL: srv.URL + "/x.tar.gz"}
	got, err := b.download(context.Background(), a, "")
	if err != nil || got != sum(tgz) {
		t.Fatalf("download = %s, %v", got, err)
	}
	if _, err := b.download(context.Background(), a, got); err != nil {
		t.Fatal(err)
	}
	if *requests != 1 {
		t.Errorf("%d requests, want 1: a cached archive is not downloaded again", *requests)
	}
}

// TestHostileArchive: an archive cannot write outside its layer, neither
// by its own names nor through the links devbox adds for bin.
func TestHostileArchive(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name    string
		entries []tarEntry
		bin     []string
		dest    string
	}{
		{"dot-dot name", []tarEntry{{name: "../../escape", typ: tar.TypeReg, body: "x"}}, nil, ""},
		{"usr/local is a link out", []tarEntry{
			{name: "usr/local", typ: tar.TypeSymlink, link: outside},
			{name: "bin/tool", typ: tar.TypeReg, body: "x"},
		}, []string{"bin/tool"}, "/"},
		{"write through a link out", []tarEntry{
			{name: "d", typ: tar.TypeSymlink, link: outside},
			{name: "d/escape", typ: tar.TypeReg, body: "x"},
		}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tarGz(t, tt.entries)
			srv, _ := serve(t, map[string][]byte{"/a.tar.gz": data})
			b := testBuilder(t)
			layer := filepath.Join(t.TempDir(), "layer")
			a := ArchiveConfig{Name: "a", URL: srv.URL + "/a.tar.gz", Bin: tt.bin, Dest: tt.dest}
			b.buildArchive(context.Background(), Step{archive: a, sha256: sum(data)}, layer)
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Errorf("the archive wrote outside its layer: %v", entries)
			}
		})
	}
}

// TestArchiveEntriesMissing: a bin or path entry the archive lacks fails
// the step, and says what dest holds: here the archive's top directory,
// which strip would drop, or else what it holds.
func TestArchiveEntriesMissing(t *testing.T) {
	tgz := tarGz(t, []tarEntry{
		{name: "go/", typ: tar.TypeDir, mode: 0o755},
		{name: "go/bin/go", typ: tar.TypeReg, mode: 0o755, body: "#!/bin/sh\n"},
	})
	srv, _ := serve(t, map[string][]byte{"/go.tar.gz": tgz})
	for _, tt := range []struct {
		a    ArchiveConfig
		want string
	}{
		{ArchiveConfig{Name: "go", URL: srv.URL + "/go.tar.gz", Path: []string{"bin"}},
			`archive go: path "bin": the archive has no directory /opt/go/bin (it is at /opt/go/go/bin: strip = 1 would drop go/)`},
		{ArchiveConfig{Name: "go", URL: srv.URL + "/go.tar.gz", Bin: []string{"bin/go"}},
			`archive go: bin "bin/go": the archive has no /opt/go/bin/go (it is at /opt/go/go/bin/go: strip = 1 would drop go/)`},
		{ArchiveConfig{Name: "go", URL: srv.URL + "/go.tar.gz", Strip: 1, Path: []string{"sbin"}},
			`archive go: path "sbin": the archive has no directory /opt/go/sbin (/opt/go holds bin)`},
	} {
		layer := filepath.Join(t.TempDir(), "layer")
		err := testBuilder(t).buildArchive(context.Background(), Step{archive: tt.a, sha256: sum(tgz)}, layer)
		if err == nil || err.Error() != tt.want {
			t.Errorf("buildArchive = %v, want %s", err, tt.want)
		}
	}
}
