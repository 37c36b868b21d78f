//go:build !devbox_lean

package image

// Test helpers: an in-process registry (go-containerregistry's pkg/registry
// behind httptest on 127.0.0.1, so plain HTTP is allowed) with a hook that
// breaks chosen responses, builders for layers and images from tar bytes
// written here, and checks on the store's directory.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// pullTestTimeout bounds every Pull in these tests, so that a hook that blocks
// by mistake fails the test instead of hanging it.
const pullTestTimeout = 30 * time.Second

// regHook may answer a request itself (returning true) or let the registry
// answer it (returning false).
type regHook func(w http.ResponseWriter, r *http.Request) bool

// pullTestRegistry is an in-process OCI registry listening on 127.0.0.1.
type pullTestRegistry struct {
	host  string       // 127.0.0.1:PORT
	inner http.Handler // the registry itself, without the hook
	srv   *httptest.Server
	done  chan struct{} // closed at cleanup: releases hooks that block

	mu       sync.Mutex
	hook     regHook
	requests map[string]int // by "METHOD /path"
}

func newPullTestRegistry(t testing.TB) *pullTestRegistry {
	t.Helper()
	reg := &pullTestRegistry{
		inner:    registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		done:     make(chan struct{}),
		requests: map[string]int{},
	}
	reg.srv = httptest.NewServer(reg)
	reg.host = strings.TrimPrefix(reg.srv.URL, "http://")
	t.Cleanup(reg.close)
	return reg
}

// close shuts the registry down; later pulls find nothing listening.
func (reg *pullTestRegistry) close() {
	select {
	case <-reg.done:
		return
	default:
	}
	close(reg.done)
	reg.srv.CloseClientConnections()
	reg.srv.Close()
}

func (reg *pullTestRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reg.mu.Lock()
	reg.requests[r.Method+" "+r.URL.Path]++
	hook := reg.hook
	reg.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	reg.inner.ServeHTTP(w, r)
}

// setHook installs h for the requests that follow (nil removes it).
func (reg *pullTestRegistry) setHook(h regHook) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	reg.hook = h
}

// count is how many requests the registry received for method and path.
func (reg *pullTestRegistry) count(method, path string) int {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return reg.requests[method+" "+path]
}

// ref is the reference of repoTag ("repo:tag" or "repo") in this registry.
func (reg *pullTestRegistry) ref(repoTag string) string { return reg.host + "/" + repoTag }

func (reg *pullTestRegistry) push(t testing.TB, repoTag string, img v1.Image) string {
	t.Helper()
	ref := reg.ref(repoTag)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

func (reg *pullTestRegistry) pushIndex(t testing.TB, repoTag string, idx v1.ImageIndex) string {
	t.Helper()
	ref := reg.ref(repoTag)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatalf("push index %s: %v", ref, err)
	}
	return ref
}

// regRawManifest is a manifest pushed byte for byte, for images that the
// mutate package would refuse to build.
type regRawManifest struct {
	b  []byte
	mt types.MediaType
}

func (m regRawManifest) RawManifest() ([]byte, error)        { return m.b, nil }
func (m regRawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// pushEditedConfig pushes img's layers, then a config that edit has
// changed and a manifest that points at it. It returns the reference.
func (reg *pullTestRegistry) pushEditedConfig(t testing.TB, repoTag string, img v1.Image, edit func(*v1.ConfigFile)) string {
	t.Helper()
	ref := reg.ref(repoTag)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		if err := remote.WriteLayer(r.Context(), l); err != nil {
			t.Fatalf("push layer: %v", err)
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	edit(cfg)
	cfgBytes, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	m = m.DeepCopy()
	cfgLayer := static.NewLayer(cfgBytes, m.Config.MediaType)
	if err := remote.WriteLayer(r.Context(), cfgLayer); err != nil {
		t.Fatalf("push config: %v", err)
	}
	if m.Config.Digest, err = cfgLayer.Digest(); err != nil {
		t.Fatal(err)
	}
	m.Config.Size = int64(len(cfgBytes))
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(r, regRawManifest{b: mb, mt: m.MediaType}); err != nil {
		t.Fatalf("push manifest: %v", err)
	}
	return ref
}

func regBlobPath(repo string, h v1.Hash) string { return "/v2/" + repo + "/blobs/" + h.String() }

func regIsManifestGet(r *http.Request, repo string) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v2/"+repo+"/manifests/")
}

// original is what the registry itself would answer to r.
func (reg *pullTestRegistry) original(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	reg.inner.ServeHTTP(rec, r)
	return rec
}

// regStatusHook answers every GET of path with status and a registry error body.
func regStatusHook(path string, status int, code string) regHook {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, path) {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"injected by the test"}]}`, code)
		return true
	}
}

// rewriteHook serves the blob at path with its bytes changed by edit and
// its headers (Content-Length, Docker-Content-Digest) as the registry sent them.
func (reg *pullTestRegistry) rewriteHook(path string, edit func([]byte) []byte) regHook {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || r.URL.Path != path {
			return false
		}
		orig := reg.original(r)
		for k, v := range orig.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(orig.Code)
		w.Write(edit(bytes.Clone(orig.Body.Bytes())))
		return true
	}
}

// dropHook promises the whole blob at path, sends half of it and closes the
// connection.
func (reg *pullTestRegistry) dropHook(t testing.TB, path string) regHook {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || r.URL.Path != path {
			return false
		}
		body := reg.original(r).Body.Bytes()
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return false
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", len(body))
		buf.Write(body[:len(body)/2])
		buf.Flush()
		return true
	}
}

// stallHook sends half of each blob in paths and then waits until the
// client goes away: a layer download that is in flight when something else
// goes wrong. Other requests go to other (if not nil), then to the registry.
func (reg *pullTestRegistry) stallHook(paths []string, other regHook) regHook {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !slices.Contains(paths, r.URL.Path) {
			return other != nil && other(w, r)
		}
		orig := reg.original(r)
		for k, v := range orig.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(orig.Code)
		w.Write(orig.Body.Bytes()[:orig.Body.Len()/2])
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
		case <-reg.done:
		}
		return true
	}
}

// regStallWatcher is an http.RoundTripper, under Pull, that reports on blocked
// the path of a blob from stallHook once the client has read everything the
// server sent and calls Read again: from then on, that download is
// certainly blocked on the network, and only cancelling its request (or
// closing its body) can end it.
type regStallWatcher struct {
	next    http.RoundTripper
	sent    map[string]int64 // blob path → bytes stallHook sends
	blocked chan<- string
}

func (sw *regStallWatcher) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := sw.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	if n, ok := sw.sent[req.URL.Path]; ok {
		resp.Body = &regWatchedBody{ReadCloser: resp.Body, want: n, path: req.URL.Path, blocked: sw.blocked}
	}
	return resp, nil
}

type regWatchedBody struct {
	io.ReadCloser
	got, want int64
	path      string
	blocked   chan<- string
	once      sync.Once
}

func (b *regWatchedBody) Read(p []byte) (int, error) {
	if b.got >= b.want {
		b.once.Do(func() { b.blocked <- b.path })
	}
	n, err := b.ReadCloser.Read(p)
	b.got += int64(n)
	return n, err
}

// afterStalls holds requests for path back until n paths have arrived on
// stalled (from a regStallWatcher), then lets h answer them: the failure of
// one layer is ordered after the other layers' downloads are blocked.
func (reg *pullTestRegistry) afterStalls(path string, stalled <-chan string, n int, h regHook) regHook {
	ready := make(chan struct{})
	go func() {
		for range n {
			select {
			case <-stalled:
			case <-reg.done:
				return
			}
		}
		close(ready)
	}()
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == path {
			select {
			case <-ready:
			case <-r.Context().Done():
			case <-reg.done:
			}
		}
		return h(w, r)
	}
}

// regGateHook holds back every blob of repo until n manifest GETs of repo have
// arrived, so that n pullers are certainly all under way before any of them
// can finish a layer.
func regGateHook(repo string, n int, done <-chan struct{}) regHook {
	var mu sync.Mutex
	seen := 0
	open := make(chan struct{})
	return func(w http.ResponseWriter, r *http.Request) bool {
		if regIsManifestGet(r, repo) {
			mu.Lock()
			if seen++; seen == n {
				close(open)
			}
			mu.Unlock()
			return false
		}
		if strings.HasPrefix(r.URL.Path, "/v2/"+repo+"/blobs/") {
			select {
			case <-open:
			case <-r.Context().Done():
			case <-done:
			}
		}
		return false
	}
}

// pullTarEntry is one entry of a layer tar written by pullTar.
type pullTarEntry struct {
	name string
	typ  byte // tar.TypeReg when zero
	mode int64
	body string
	link string
}

func pullTar(t testing.TB, entries ...pullTarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:     e.name,
			Typeflag: e.typ,
			Mode:     e.mode,
			Linkname: e.link,
			ModTime:  time.Unix(1700000000, 0),
			Format:   tar.FormatPAX,
		}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pullRandomText is n bytes of reproducible, incompressible printable data.
func pullRandomText(seed uint64, n int) string {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(' ' + rng.IntN(95))
	}
	return string(b)
}

func pullOpener(b []byte) tarball.Opener {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// pullGzipLayer is tarb compressed with gzip, as Docker pushes layers.
func pullGzipLayer(t testing.TB, tarb []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(pullOpener(tarb), tarball.WithCompressedCaching)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// pullZstdLayer is tarb compressed with zstd, as an OCI zstd layer.
func pullZstdLayer(t testing.TB, tarb []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(pullOpener(tarb),
		tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd), tarball.WithCompressedCaching)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// pullPlainLayer is tarb uncompressed.
func pullPlainLayer(tarb []byte) v1.Layer { return static.NewLayer(tarb, types.OCIUncompressedLayer) }

// pullImage is an OCI image of layers (base first) for linux/amd64 with
// the config cfg.
func pullImage(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// pullWantLayers is the record Pull should write for img's layers.
func pullWantLayers(t testing.TB, img v1.Image) []Layer {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []Layer
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		diffID, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		size, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		mt, err := l.MediaType()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Layer{Digest: d, DiffID: diffID, Size: size, MediaType: string(mt)})
	}
	return out
}

func pullDigest(t testing.TB, img interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pullEventLog collects the events of one or more pulls; it is safe for
// concurrent use, as WithProgress requires.
type pullEventLog struct {
	mu     sync.Mutex
	events []Event
}

func (e *pullEventLog) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, ev)
}

// of returns the events for the layer with diffID, in order.
func (e *pullEventLog) of(diffID v1.Hash) []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Event
	for _, ev := range e.events {
		if ev.Layer.DiffID == diffID {
			out = append(out, ev)
		}
	}
	return out
}

// pullKinds names the kinds of evs in order, leaving LayerProgress out.
func pullKinds(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Kind != LayerProgress {
			out = append(out, pullKindName(ev.Kind))
		}
	}
	return out
}

func pullKindName(k EventKind) string {
	switch k {
	case LayerCached:
		return "LayerCached"
	case LayerStarted:
		return "LayerStarted"
	case LayerProgress:
		return "LayerProgress"
	case LayerDone:
		return "LayerDone"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// withTransport is ctx with rt as the HTTP transport under Pull's
// httpsOnly guard.
func withTransport(ctx context.Context, rt http.RoundTripper) context.Context {
	return context.WithValue(ctx, transportKey{}, rt)
}

func newPullStore(t testing.TB) *Store {
	t.Helper()
	s, err := OpenStore(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pullTestContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), pullTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// pullTmpEntries lists every path under dir whose name starts with ".tmp-".
func pullTmpEntries(t testing.TB, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			found = append(found, path)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// pullDirNames lists the names in dir.
func pullDirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// pullFileWant is what one path in an unpacked layer should be.
type pullFileWant struct {
	content string      // for a regular file
	mode    fs.FileMode // permission bits of a regular file or directory
	link    string      // for a symlink: its target exactly as written
	dir     bool
}

func pullCheckTree(t testing.TB, root string, want map[string]pullFileWant) {
	t.Helper()
	for rel, w := range want {
		p := filepath.Join(root, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		switch {
		case w.link != "":
			got, err := os.Readlink(p)
			if err != nil || got != w.link {
				t.Errorf("%s: symlink to %q (%v), want %q", rel, got, err, w.link)
			}
		case w.dir:
			if !fi.IsDir() || fi.Mode().Perm() != w.mode {
				t.Errorf("%s: mode %v, want directory %v", rel, fi.Mode(), w.mode)
			}
		default:
			b, err := os.ReadFile(p)
			if err != nil || string(b) != w.content {
				t.Errorf("%s: content %q (%v), want %q", rel, b, err, w.content)
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != w.mode {
				t.Errorf("%s: mode %v, want regular file %v", rel, fi.Mode(), w.mode)
			}
		}
	}
	// Nothing else: a layer dir holds its own tar's files and no other's.
	var extra []string
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if _, ok := want[rel]; !ok {
			extra = append(extra, rel)
		}
		return nil
	})
	if len(extra) > 0 {
		t.Errorf("%s holds unexpected entries %q", root, extra)
	}
}

// pullReadGoAhead waits for one byte from r: the parent's go-ahead to the
// helper process.
func pullReadGoAhead(r io.Reader) error {
	_, err := bufio.NewReader(r).ReadByte()
	return err
}

// regRefusingAddr is a loopback address (127.0.0.1:PORT) that refuses
// connections: a socket is bound to it but never listens, so that the port
// cannot be given to another test's server while this test runs.
func regRefusingAddr(t testing.TB) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(os.NewSyscallError("socket", err))
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(os.NewSyscallError("bind", err))
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(os.NewSyscallError("getsockname", err))
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
}
