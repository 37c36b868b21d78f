package e2e

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Archives that the archive server serves, and what their one program
// prints.
const (
	helloArchive = "hello-1.0.tar.gz" // hello-1.0/bin/hello
	toolArchive  = "tool-2.1.zip"     // tool-2.1/bin/tool
	helloMarker  = "hello-from-the-test-archive"
	toolMarker   = "tool-from-the-test-zip"
)

// archiveServer serves the test archives over HTTP on a loopback port and
// counts the requests for each.
type archiveServer struct {
	srv *httptest.Server

	mu    sync.Mutex
	files map[string][]byte // by name: helloArchive, toolArchive
	hits  map[string]int
}

// newArchiveServer builds the archives and serves them until the test
// ends (or Close).
func newArchiveServer(t *testing.T) *archiveServer {
	t.Helper()
	hello, err := tarGz(map[string]string{"hello-1.0/bin/hello": "#!/bin/sh\necho " + helloMarker + " \"$@\"\n"})
	if err != nil {
		t.Fatal(err)
	}
	tool, err := zipOf(map[string]string{"tool-2.1/bin/tool": "#!/bin/sh\necho " + toolMarker + "\n"})
	if err != nil {
		t.Fatal(err)
	}
	s := &archiveServer{files: map[string][]byte{helloArchive: hello, toolArchive: tool}, hits: map[string]int{}}
	// httptest listens on 127.0.0.1.
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := strings.TrimPrefix(r.URL.Path, "/")
		s.mu.Lock()
		s.hits[n]++
		b, ok := s.files[n]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(b)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is where the archive called name is served.
func (s *archiveServer) URL(name string) string { return s.srv.URL + "/" + name }

// SHA256 is the hex sha256 of the archive called name.
func (s *archiveServer) SHA256(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return hex.EncodeToString(sha256Of(string(s.files[name])))
}

// Set replaces the tar.gz served as name with one of files, as when a
// release is rebuilt upstream under the same URL.
func (s *archiveServer) Set(t *testing.T, name string, files map[string]string) {
	t.Helper()
	b, err := tarGz(files)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[name] = b
}

func sha256Of(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// Hits is how many requests asked for name so far.
func (s *archiveServer) Hits(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[name]
}

// Close stops the server and checks that it no longer answers.
func (s *archiveServer) Close(t *testing.T) {
	t.Helper()
	s.srv.Close()
	c := http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get(s.URL(helloArchive)); err == nil {
		resp.Body.Close()
		t.Fatalf("archive server %s still answers after Close", s.srv.URL)
	}
}

// tarGz is a gzip-compressed tar of files (path → content), every file
// executable, with its parent directories.
func tarGz(files map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	epoch := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		var dirs []string
		for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
			dirs = append([]string{d}, dirs...)
		}
		for _, d := range dirs {
			if seen[d] {
				continue
			}
			seen[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return nil, err
			}
		}
		body := files[p]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o755, Size: int64(len(body)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// zipOf is a zip of files (path → content), every file executable.
func zipOf(files map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range slices.Sorted(maps.Keys(files)) {
		h := &zip.FileHeader{Name: p, Method: zip.Deflate, Modified: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
		h.SetMode(0o755)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write([]byte(files[p])); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// debianRepo is the repository and tag of the Debian test image in the
// suite's registry (test/cmd/pushimages -debian, or TestMain with
// DEVBOX_TEST_DEBIAN_TAR).
const debianRepo = "debian:bookworm"

// requireDebian skips the test unless DEVBOX_TEST_DEBIAN is set, and fails
// it if it is set but the suite's registry lacks the Debian image.
func requireDebian(t *testing.T) {
	t.Helper()
	if os.Getenv("DEVBOX_TEST_DEBIAN") == "" {
		t.Skip("DEVBOX_TEST_DEBIAN is not set: the Debian tests need debian:bookworm in the registry " +
			"(.ci/run pushes it; locally, as root: test/debian-rootfs.sh /var/tmp/bookworm.tar, " +
			"then DEVBOX_TEST_DEBIAN=1 DEVBOX_TEST_DEBIAN_TAR=/var/tmp/bookworm.tar make e2e)")
	}
	ref := suite.registry + "/" + debianRepo
	if _, err := registryDigest(ref); err != nil {
		t.Fatalf("DEVBOX_TEST_DEBIAN is set but %s is not there: %v\n"+
			"push it with: go run ./test/cmd/pushimages -registry %s -debian ROOTFS.tar (see test/debian-rootfs.sh), "+
			"or set DEVBOX_TEST_DEBIAN_TAR=ROOTFS.tar and no DEVBOX_TEST_REGISTRY", ref, err, suite.registry)
	}
}

// registryDigest is the manifest digest that the registry serves for ref.
func registryDigest(ref string) (string, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	desc, err := remote.Head(r, remote.WithContext(ctx))
	if err != nil {
		return "", err
	}
	return desc.Digest.String(), nil
}

// ownDebianRegistry starts a registry for one test (see ownRegistry) and
// copies the suite's Debian image into it.
func ownDebianRegistry(t *testing.T) *registry {
	t.Helper()
	reg := ownRegistry(t)
	src, err := name.ParseReference(suite.registry+"/"+debianRepo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := name.ParseReference(reg.Addr+"/"+debianRepo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := remote.Image(src, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("read %s: %v", src, err)
	}
	if err := remote.Write(dst, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
	return reg
}

// lockFile is what devbox.lock says, parsed independently of package env.
type lockFile struct {
	Version int `toml:"version"`
	Image   struct {
		Ref     string            `toml:"ref"`
		Digests map[string]string `toml:"digests"`
	} `toml:"image"`
	Archive []struct {
		Name   string `toml:"name"`
		URL    string `toml:"url"`
		SHA256 string `toml:"sha256"`
	} `toml:"archive"`
}

// hostPlatform is the platform devbox pins by default.
const hostPlatform = "linux/" + runtime.GOARCH

// lockPath is the project's devbox.lock.
func (e *testEnv) lockPath() string { return filepath.Join(e.Project, "devbox.lock") }

// readLock returns the bytes of the project's devbox.lock and their parse;
// it fails the test if the file is missing or not TOML.
func (e *testEnv) readLock(t *testing.T) ([]byte, lockFile) {
	t.Helper()
	b, err := os.ReadFile(e.lockPath())
	if err != nil {
		t.Fatalf("devbox.lock: %v", err)
	}
	var l lockFile
	if _, err := toml.Decode(string(b), &l); err != nil {
		t.Fatalf("devbox.lock is not TOML: %v\n%s", err, b)
	}
	return b, l
}

// checkLock fails the test unless the lock pins ref at digest for the host
// platform and exactly the archives in want (name → sha256).
func checkLock(t *testing.T, l lockFile, ref, digest string, want map[string]string) {
	t.Helper()
	if l.Image.Ref != ref {
		t.Errorf("devbox.lock image ref = %q, want %q", l.Image.Ref, ref)
	}
	if got := l.Image.Digests[hostPlatform]; got != digest {
		t.Errorf("devbox.lock pins %s for %s, want %s (what the registry serves); digests: %v", got, hostPlatform, digest, l.Image.Digests)
	}
	got := map[string]string{}
	for _, a := range l.Archive {
		got[a.Name] = a.SHA256
	}
	if len(got) != len(want) {
		t.Errorf("devbox.lock pins archives %v, want %v", got, want)
	}
	for n, sha := range want {
		if got[n] != sha {
			t.Errorf("devbox.lock pins archive %s at %q, want %s", n, got[n], sha)
		}
	}
}

// stepLayers lists the step layers in the store (the entries of
// $XDG_DATA_HOME/devbox/steps not starting with a dot: those are locks and
// in-progress builds).
func (e *testEnv) stepLayers(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.Data, "devbox", "steps"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ents {
		if !strings.HasPrefix(d.Name(), ".") {
			out = append(out, d.Name())
		}
	}
	return out
}

// buildLine is how devbox announces a step it builds: "building NAME
// (KEY12)".
var buildLine = regexp.MustCompile(`\bbuilding (.+?) \([0-9a-f]{12}\)`)

// builtSteps returns the names of the steps that stderr says were built,
// in order. When it finds none, it fails the test if a line of stderr
// mentions building at all, so that a changed message cannot pass for
// "nothing built". (A step's own output, such as apt's "Building
// dependency tree", may mention it.)
func builtSteps(t *testing.T, r result) []string {
	t.Helper()
	var steps, other []string
	for _, l := range lines(r.Stderr) {
		if m := buildLine.FindStringSubmatch(l); m != nil {
			steps = append(steps, m[1])
		} else if strings.Contains(strings.ToLower(l), "building") {
			other = append(other, l)
		}
	}
	if len(steps) == 0 && len(other) > 0 {
		t.Errorf("stderr mentions building, but not as a step announcement: %q; %s", other, r)
	}
	return steps
}

// networkLines are the lines of stderr that say devbox pulled or
// downloaded something.
func networkLines(r result) []string {
	var out []string
	for _, l := range lines(r.Stderr) {
		low := strings.ToLower(l)
		for _, w := range []string{"pulling", "pulled", "downloading", "downloaded"} {
			if strings.Contains(low, w) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// checkBuilt fails the test unless exactly the steps in want were built
// (in that order) and, with offline, nothing was pulled or downloaded.
func checkBuilt(t *testing.T, r result, offline bool, want ...string) {
	t.Helper()
	if got := builtSteps(t, r); !slices.Equal(got, want) {
		t.Errorf("built steps %q, want %q; %s", got, want, r)
	}
	if n := networkLines(r); offline && len(n) > 0 {
		t.Errorf("want no pulls or downloads, stderr says %q; %s", n, r)
	}
}

// stepCacheCase is one edit of devbox.toml and the steps it must rebuild.
type stepCacheCase struct {
	name  string
	init  string   // [shell] init
	setup []string // [setup] run
	built []string // the steps that must be built, in order
	want  string   // what /etc/devbox-setup holds afterwards; "none" if absent
}

// stepCacheCases edit [shell] init and [setup] of an environment whose
// other steps are built: only a changed [setup] builds anything, and a
// setup seen before is found in the cache.
var stepCacheCases = []stepCacheCase{
	{name: "nothing changed", want: "none"},
	{name: "shell init only", init: "export DEVBOX_E2E_INIT=1", want: "none"},
	{name: "setup added", init: "export DEVBOX_E2E_INIT=1", setup: []string{"echo setup-v1 > /etc/devbox-setup"}, built: []string{"setup"}, want: "setup-v1"},
	{name: "setup changed", init: "export DEVBOX_E2E_INIT=1", setup: []string{"echo setup-v2 > /etc/devbox-setup"}, built: []string{"setup"}, want: "setup-v2"},
	{name: "shell init changed again", init: "export DEVBOX_E2E_INIT=2", setup: []string{"echo setup-v2 > /etc/devbox-setup"}, want: "setup-v2"},
	{name: "setup back to the first", init: "export DEVBOX_E2E_INIT=2", setup: []string{"echo setup-v1 > /etc/devbox-setup"}, want: "setup-v1"},
	{name: "setup removed", init: "export DEVBOX_E2E_INIT=2", want: "none"},
}

// runStepCacheCases runs stepCacheCases in e, in order: config renders
// devbox.toml for a [shell] init and [setup] run; probe is a shell command
// whose output lines must be wantProbe in every case. With offline, no
// case may pull or download. devbox.lock must stay as it is.
func runStepCacheCases(t *testing.T, e *testEnv, config func(init string, setup []string) string, probe string, wantProbe []string, offline bool) {
	t.Helper()
	lockBefore, _ := e.readLock(t)
	for _, tt := range stepCacheCases {
		ok := t.Run(tt.name, func(t *testing.T) {
			e.writeConfig(t, config(tt.init, tt.setup))
			r := e.mustRun(t, "run", "--", "sh", "-c", probe+"; cat /etc/devbox-setup 2>/dev/null || echo none")
			checkBuilt(t, r, offline, tt.built...)
			want := append(slices.Clone(wantProbe), tt.want)
			if got := lines(r.Stdout); !slices.Equal(got, want) {
				t.Errorf("output %q, want %q; %s", got, want, r)
			}
			if lock, _ := e.readLock(t); !bytes.Equal(lock, lockBefore) {
				t.Errorf("devbox.lock changed:\n%s\nwas:\n%s", lock, lockBefore)
			}
			checkStoreClean(t, e)
		})
		if !ok {
			// Later cases assume the cache that this one left.
			return
		}
	}
}

// tomlStrings renders a TOML array of strings.
func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = tomlQuote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// tomlQuote renders a TOML basic string. The tests' strings are printable
// ASCII, for which Go's quoting is TOML's.
func tomlQuote(s string) string { return strconv.Quote(s) }
