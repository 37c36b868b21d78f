//go:build !devbox_lean

package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// pullMultiLayerImage is a three-layer image (gzip, zstd and uncompressed
// layers) and the files each layer's directory must hold.
func pullMultiLayerImage(t testing.TB) (v1.Image, []map[string]pullFileWant) {
	t.Helper()
	l0 := pullGzipLayer(t, pullTar(t,
		pullTarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		pullTarEntry{name: "etc/os-release", mode: 0o644, body: "ID=devbox\n"},
		pullTarEntry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		pullTarEntry{name: "bin/tool", mode: 0o755, body: "#!/bin/sh\necho tool\n"},
	))
	l1 := pullZstdLayer(t, pullTar(t,
		pullTarEntry{name: "usr/", typ: tar.TypeDir, mode: 0o755},
		pullTarEntry{name: "usr/share/", typ: tar.TypeDir, mode: 0o755},
		pullTarEntry{name: "usr/share/doc.txt", mode: 0o644, body: pullRandomText(1, 300<<10)},
	))
	l2 := pullPlainLayer(pullTar(t,
		pullTarEntry{name: "app/", typ: tar.TypeDir, mode: 0o750},
		pullTarEntry{name: "app/main.txt", mode: 0o600, body: "hello\n"},
		pullTarEntry{name: "app/os-release", typ: tar.TypeSymlink, link: "/etc/os-release"},
	))
	cfg := v1.Config{
		Env:        []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"},
		Cmd:        []string{"/bin/tool"},
		WorkingDir: "/app",
		User:       "1000:1000",
	}
	trees := []map[string]pullFileWant{
		{
			"etc":            {dir: true, mode: 0o755},
			"etc/os-release": {content: "ID=devbox\n", mode: 0o644},
			"bin":            {dir: true, mode: 0o755},
			"bin/tool":       {content: "#!/bin/sh\necho tool\n", mode: 0o755},
		},
		{
			"usr":               {dir: true, mode: 0o755},
			"usr/share":         {dir: true, mode: 0o755},
			"usr/share/doc.txt": {content: pullRandomText(1, 300<<10), mode: 0o644},
		},
		{
			"app":            {dir: true, mode: 0o750},
			"app/main.txt":   {content: "hello\n", mode: 0o600},
			"app/os-release": {link: "/etc/os-release"},
		},
	}
	return pullImage(t, cfg, l0, l1, l2), trees
}

func TestPullMultiLayer(t *testing.T) {
	t.Parallel()
	reg := newPullTestRegistry(t)
	img, trees := pullMultiLayerImage(t)
	reg.push(t, "test/multi:latest", img)
	s := newPullStore(t)

	var events pullEventLog
	got, err := s.Pull(pullTestContext(t), reg.ref("test/multi"), WithProgress(events.add))
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}

	want := &Image{
		Ref:      reg.ref("test/multi:latest"),
		Digest:   pullDigest(t, img),
		Platform: "linux/amd64",
		Config: v1.Config{
			Env:        []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"},
			Cmd:        []string{"/bin/tool"},
			WorkingDir: "/app",
			User:       "1000:1000",
		},
		Layers: pullWantLayers(t, img),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Pull returned\n%+v\nwant\n%+v", got, want)
	}

	for i, l := range got.Layers {
		t.Run(fmt.Sprintf("layer %d", i), func(t *testing.T) {
			pullCheckTree(t, s.LayerDir(l.DiffID), trees[i])
			if d := s.LayerDirs(got)[i]; d != s.LayerDir(l.DiffID) {
				t.Errorf("LayerDirs()[%d] = %s, want %s", i, d, s.LayerDir(l.DiffID))
			}
			evs := events.of(l.DiffID)
			if k := pullKinds(evs); !slices.Equal(k, []string{"LayerStarted", "LayerDone"}) {
				t.Errorf("events %v, want LayerStarted then LayerDone", k)
			}
			var last int64
			for _, ev := range evs {
				if ev.Kind == LayerProgress {
					if ev.Done < last {
						t.Errorf("progress went back from %d to %d bytes", last, ev.Done)
					}
					last = ev.Done
				}
				if ev.Layer != l {
					t.Errorf("event %s carries layer %+v, want %+v", pullKindName(ev.Kind), ev.Layer, l)
				}
			}
			if last != l.Size {
				t.Errorf("last progress event says %d bytes, want the blob's %d", last, l.Size)
			}
			if done := evs[len(evs)-1]; done.Kind != LayerDone || done.Done != l.Size {
				t.Errorf("last event %s with %d bytes, want LayerDone with %d", pullKindName(done.Kind), done.Done, l.Size)
			}
		})
	}
	if tmp := pullTmpEntries(t, s.Dir()); len(tmp) > 0 {
		t.Errorf("temporary entries left behind: %q", tmp)
	}

	// Lookup never touches the network: the registry is gone.
	reg.close()
	tests := []struct {
		name    string
		ref     string
		wantErr error
	}{
		{name: "reference as pulled", ref: reg.ref("test/multi")},
		{name: "explicit latest tag", ref: reg.ref("test/multi:latest")},
		{name: "manifest digest", ref: reg.ref("test/multi@" + want.Digest.String())},
		{name: "tag never pulled", ref: reg.ref("test/multi:v2"), wantErr: ErrNotPresent},
		{name: "repository never pulled", ref: "busybox", wantErr: ErrNotPresent},
		{name: "digest never pulled", ref: reg.ref("test/multi@sha256:" + strings.Repeat("0", 64)), wantErr: ErrNotPresent},
	}
	for _, tt := range tests {
		t.Run("Lookup "+tt.name, func(t *testing.T) {
			rec, err := s.Lookup(tt.ref)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Lookup(%q) = %+v, %v; want %v", tt.ref, rec, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Lookup(%q): %v", tt.ref, err)
			}
			if !reflect.DeepEqual(rec, got) {
				t.Errorf("Lookup(%q) =\n%+v\nwant what Pull returned\n%+v", tt.ref, rec, got)
			}
		})
	}
}

func TestPullSharedLayer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		first, other string // repo:tag of the two images
	}{
		{name: "same repository", first: "test/app:a", other: "test/app:b"},
		{name: "other repository", first: "test/a:v1", other: "test/b:v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := newPullTestRegistry(t)
			base := pullGzipLayer(t, pullTar(t,
				pullTarEntry{name: "base.txt", mode: 0o644, body: pullRandomText(2, 64<<10)}))
			appA := pullGzipLayer(t, pullTar(t, pullTarEntry{name: "a.txt", mode: 0o644, body: "a\n"}))
			appB := pullGzipLayer(t, pullTar(t, pullTarEntry{name: "b.txt", mode: 0o644, body: "b\n"}))
			imgA := pullImage(t, v1.Config{}, base, appA)
			imgB := pullImage(t, v1.Config{}, base, appB)
			refA := reg.push(t, tt.first, imgA)
			refB := reg.push(t, tt.other, imgB)
			s := newPullStore(t)

			if _, err := s.Pull(pullTestContext(t), refA); err != nil {
				t.Fatalf("pull %s: %v", refA, err)
			}
			baseDiffID, _ := base.DiffID()
			before := pullInode(t, s.LayerDir(baseDiffID))

			var events pullEventLog
			rec, err := s.Pull(pullTestContext(t), refB, WithProgress(events.add))
			if err != nil {
				t.Fatalf("pull %s: %v", refB, err)
			}
			if k := pullKinds(events.of(baseDiffID)); !slices.Equal(k, []string{"LayerCached"}) {
				t.Errorf("shared layer: events %v, want LayerCached alone", k)
			}
			if n := len(events.of(baseDiffID)); n != 1 {
				t.Errorf("shared layer: %d events, want 1 (no progress for a cached layer)", n)
			}
			bDiffID, _ := appB.DiffID()
			if k := pullKinds(events.of(bDiffID)); !slices.Equal(k, []string{"LayerStarted", "LayerDone"}) {
				t.Errorf("new layer: events %v, want LayerStarted then LayerDone", k)
			}
			if after := pullInode(t, s.LayerDir(baseDiffID)); after != before {
				t.Errorf("shared layer directory was replaced: pullInode %v, was %v", after, before)
			}
			pullCheckTree(t, s.LayerDir(bDiffID), map[string]pullFileWant{"b.txt": {content: "b\n", mode: 0o644}})
			if want := []string{s.LayerDir(baseDiffID), s.LayerDir(bDiffID)}; !slices.Equal(s.LayerDirs(rec), want) {
				t.Errorf("LayerDirs = %q, want %q", s.LayerDirs(rec), want)
			}
			// The first image is still complete.
			if _, err := s.Lookup(refA); err != nil {
				t.Errorf("Lookup(%s) after pulling %s: %v", refA, refB, err)
			}
		})
	}
}

// TestPullRepeatedLayer pulls an image that lists the same layer twice (as
// images built with identical steps do): both entries are fetched
// concurrently by the same Pull, and the layer lock makes one of them wait
// and find it in place.
func TestPullRepeatedLayer(t *testing.T) {
	t.Parallel()
	reg := newPullTestRegistry(t)
	same := pullGzipLayer(t, pullTar(t, pullTarEntry{name: "same.txt", mode: 0o644, body: pullRandomText(6, 32<<10)}))
	other := pullGzipLayer(t, pullTar(t, pullTarEntry{name: "other.txt", mode: 0o644, body: "other\n"}))
	img := pullImage(t, v1.Config{}, same, other, same)
	ref := reg.push(t, "test/repeat:v1", img)
	s := newPullStore(t)
	var events pullEventLog
	rec, err := s.Pull(pullTestContext(t), ref, WithProgress(events.add))
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if !reflect.DeepEqual(rec.Layers, pullWantLayers(t, img)) {
		t.Errorf("layers %+v, want %+v", rec.Layers, pullWantLayers(t, img))
	}
	diffID, _ := same.DiffID()
	k := pullKinds(events.of(diffID))
	slices.Sort(k)
	if want := []string{"LayerCached", "LayerDone", "LayerStarted"}; !slices.Equal(k, want) {
		t.Errorf("repeated layer: events %v, want one LayerStarted+LayerDone and one LayerCached", k)
	}
	pullCheckTree(t, s.LayerDir(diffID), map[string]pullFileWant{"same.txt": {content: pullRandomText(6, 32<<10), mode: 0o644}})
}

type pullDevIno struct{ dev, ino uint64 }

func pullInode(t testing.TB, path string) pullDevIno {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return pullDevIno{uint64(st.Dev), st.Ino}
}

// Environment of the helper process that TestPullConcurrent starts.
const (
	pullHelperEnv       = "DEVBOX_TEST_PULL_HELPER"
	pullHelperRefEnv    = "DEVBOX_TEST_PULL_REF"
	pullHelperStoreEnv  = "DEVBOX_TEST_PULL_STORE"
	pullHelperEventsEnv = "DEVBOX_TEST_PULL_EVENTS"
)

// TestPullHelperProcess is not a test: TestPullConcurrent runs the test
// binary again with only this function and the environment above, to pull
// from another process. It waits for a byte on stdin before it pulls.
func TestPullHelperProcess(t *testing.T) {
	if os.Getenv(pullHelperEnv) != "1" {
		t.Skip("helper process for TestPullConcurrent")
	}
	if err := pullReadGoAhead(os.Stdin); err != nil {
		t.Fatalf("wait for go-ahead: %v", err)
	}
	s, err := OpenStore(os.Getenv(pullHelperStoreEnv))
	if err != nil {
		t.Fatal(err)
	}
	var events pullEventLog
	if _, err := s.Pull(pullTestContext(t), os.Getenv(pullHelperRefEnv), WithProgress(events.add)); err != nil {
		t.Fatalf("Pull: %v", err)
	}
	b, err := json.Marshal(events.events)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv(pullHelperEventsEnv), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// pullInProcesses pulls ref into storeDir from n helper processes that all
// start pulling at once, and returns each one's events.
func pullInProcesses(t *testing.T, n int, ref, storeDir string) [][]Event {
	t.Helper()
	type helper struct {
		cmd    *exec.Cmd
		out    bytes.Buffer
		events string
	}
	helpers := make([]*helper, n)
	var goAhead []io.WriteCloser
	for i := range helpers {
		h := &helper{events: filepath.Join(t.TempDir(), "events.json")}
		h.cmd = exec.CommandContext(pullTestContext(t), os.Args[0], "-test.run=^TestPullHelperProcess$", "-test.count=1", "-test.v")
		h.cmd.Env = append(os.Environ(),
			pullHelperEnv+"=1", pullHelperRefEnv+"="+ref, pullHelperStoreEnv+"="+storeDir, pullHelperEventsEnv+"="+h.events)
		h.cmd.Stdout, h.cmd.Stderr = &h.out, &h.out
		stdin, err := h.cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := h.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		goAhead = append(goAhead, stdin)
		helpers[i] = h
	}
	// All processes are running: let them go at once.
	for _, w := range goAhead {
		if _, err := w.Write([]byte{1}); err != nil {
			t.Error(err)
		}
		w.Close()
	}
	var all [][]Event
	for i, h := range helpers {
		if err := h.cmd.Wait(); err != nil {
			t.Fatalf("helper process %d: %v\n%s", i, err, h.out.String())
		}
		b, err := os.ReadFile(h.events)
		if err != nil {
			t.Fatalf("helper process %d wrote no events: %v\n%s", i, err, h.out.String())
		}
		var evs []Event
		if err := json.Unmarshal(b, &evs); err != nil {
			t.Fatal(err)
		}
		all = append(all, evs)
	}
	return all
}

// pullInGoroutines pulls ref into storeDir from n goroutines, each with its
// own Store, that all start at once, and returns each one's events.
func pullInGoroutines(t *testing.T, n int, ref, storeDir string) [][]Event {
	t.Helper()
	logs := make([]pullEventLog, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			s, err := OpenStore(storeDir)
			if err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = s.Pull(pullTestContext(t), ref, WithProgress(logs[i].add))
		})
	}
	close(start)
	wg.Wait()
	var all [][]Event
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("puller %d: %v", i, errs[i])
		}
		all = append(all, logs[i].events)
	}
	return all
}

func TestPullConcurrent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pullers int
		pull    func(t *testing.T, n int, ref, storeDir string) [][]Event
	}{
		{name: "two goroutines", pullers: 2, pull: pullInGoroutines},
		{name: "four goroutines", pullers: 4, pull: pullInGoroutines},
		{name: "two processes", pullers: 2, pull: pullInProcesses},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := newPullTestRegistry(t)
			img, trees := pullMultiLayerImage(t)
			ref := reg.push(t, "test/shared:v1", img)
			// No puller gets a blob before all have fetched the manifest,
			// so all of them are pulling at the same time.
			reg.setHook(regGateHook("test/shared", tt.pullers, reg.done))
			storeDir := filepath.Join(t.TempDir(), "store")

			perPuller := tt.pull(t, tt.pullers, ref, storeDir)

			layers := pullWantLayers(t, img)
			for _, l := range layers {
				done := 0
				for i, evs := range perPuller {
					var mine []Event
					for _, ev := range evs {
						if ev.Layer.DiffID == l.DiffID {
							mine = append(mine, ev)
						}
					}
					k := pullKinds(mine)
					switch {
					case slices.Equal(k, []string{"LayerStarted", "LayerDone"}):
						done++
					case slices.Equal(k, []string{"LayerCached"}):
					default:
						t.Errorf("puller %d, layer %s: events %v, want LayerStarted+LayerDone or LayerCached", i, l.DiffID, k)
					}
				}
				if done != 1 {
					t.Errorf("layer %s was unpacked %d times, want once", l.DiffID, done)
				}
			}
			s, err := OpenStore(storeDir)
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range layers {
				pullCheckTree(t, s.LayerDir(l.DiffID), trees[i])
			}
			rec, err := s.Lookup(ref)
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			if rec.Digest != pullDigest(t, img) {
				t.Errorf("record digest %s, want %s", rec.Digest, pullDigest(t, img))
			}
			if tmp := pullTmpEntries(t, storeDir); len(tmp) > 0 {
				t.Errorf("temporary entries left behind: %q", tmp)
			}
		})
	}
}

// pullFailTarget tells a failure case's hook which blobs to break.
type pullFailTarget struct {
	top      string      // blob path of the top layer, the one meant to fail
	siblings []string    // blob paths of the other layers
	blocked  chan string // with watch: each stalled blob's path, once its download blocks
}

func TestPullFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	const repo = "test/fail"
	wrongDiffID := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	flipByte := func(at func(n int) int) func([]byte) []byte {
		return func(b []byte) []byte { b[at(len(b))] ^= 0xff; return b }
	}
	tests := []struct {
		name string
		// hook breaks the registry.
		hook func(t *testing.T, reg *pullTestRegistry, ft pullFailTarget) regHook
		// editConfig, if set, changes the config before it is pushed.
		editConfig func(*v1.ConfigFile)
		// unreachable: Pull the image from an address where nothing listens.
		unreachable bool
		// wantNetError: callers must find a net.Error in the chain.
		wantNetError bool
		// watch: Pull runs over a stallWatcher that reports on ft.blocked.
		watch bool
		// cancelAfter, if set, cancels Pull's context once that many
		// downloads are blocked.
		cancelAfter int
		// wantErr are substrings of the error; {ref}, {layer} and {wrongDiffID}
		// stand for the reference, the top layer's digest and wrongDiffID.
		wantErr []string
		// wantCanceled: the error is the caller's cancellation; otherwise it
		// must not be a cancellation but its cause.
		wantCanceled bool
		// noLayers: nothing may be unpacked at all, not even the other layers.
		noLayers bool
		// minGets is how often the top layer's blob must have been requested.
		minGets int
		// wantStatus, if set, is the HTTP status of the *transport.Error
		// that callers must find in the chain with errors.As.
		wantStatus int
	}{
		{
			name: "manifest not found",
			hook: func(*testing.T, *pullTestRegistry, pullFailTarget) regHook {
				return regStatusHook("/v2/"+repo+"/manifests/", http.StatusNotFound, "MANIFEST_UNKNOWN")
			},
			wantErr:    []string{"pull {ref}:", "not found"},
			noLayers:   true,
			wantStatus: http.StatusNotFound,
		},
		{
			name: "manifest unauthorized",
			hook: func(*testing.T, *pullTestRegistry, pullFailTarget) regHook {
				return regStatusHook("/v2/"+repo+"/manifests/", http.StatusUnauthorized, "UNAUTHORIZED")
			},
			wantErr:    []string{"pull {ref}:", "denied access", "HTTP 401"},
			noLayers:   true,
			wantStatus: http.StatusUnauthorized,
		},
		{
			name:         "registry unreachable",
			unreachable:  true,
			wantErr:      []string{"pull {ref}:", "unreachable", "connection refused"},
			noLayers:     true,
			wantNetError: true,
		},
		{
			name: "blob answers 500 every time",
			hook: func(_ *testing.T, _ *pullTestRegistry, ft pullFailTarget) regHook {
				return regStatusHook(ft.top, http.StatusInternalServerError, "UNKNOWN")
			},
			wantErr:    []string{"pull {ref}:", "layer {layer}"},
			minGets:    2,
			wantStatus: http.StatusInternalServerError,
		},
		{
			name: "connection dropped mid-blob",
			hook: func(t *testing.T, reg *pullTestRegistry, ft pullFailTarget) regHook {
				return reg.dropHook(t, ft.top)
			},
			wantErr: []string{"pull {ref}:", "layer {layer}"},
		},
		{
			// The gzip header's MTIME is not checked by gunzip: only the
			// blob digest can catch this byte.
			name: "blob byte corrupted in gzip header",
			hook: func(_ *testing.T, reg *pullTestRegistry, ft pullFailTarget) regHook {
				return reg.rewriteHook(ft.top, flipByte(func(int) int { return 4 }))
			},
			wantErr: []string{"pull {ref}:", "layer {layer}", "checksum"},
		},
		{
			name: "blob byte corrupted in compressed data",
			hook: func(_ *testing.T, reg *pullTestRegistry, ft pullFailTarget) regHook {
				return reg.rewriteHook(ft.top, flipByte(func(n int) int { return n / 2 }))
			},
			wantErr: []string{"pull {ref}:", "layer {layer}"},
		},
		{
			name: "layer content does not match config diffID",
			editConfig: func(cfg *v1.ConfigFile) {
				cfg.RootFS.DiffIDs[len(cfg.RootFS.DiffIDs)-1] = wrongDiffID
			},
			wantErr: []string{"pull {ref}:", "layer {layer}", "{wrongDiffID}"},
		},
		{
			// The other layers are mid-download when the top one fails:
			// Pull must stop them, clean up, and report the top layer's
			// error, not a cancellation.
			name: "other layers in flight when one fails",
			hook: func(_ *testing.T, reg *pullTestRegistry, ft pullFailTarget) regHook {
				fail := reg.afterStalls(ft.top, ft.blocked, len(ft.siblings),
					regStatusHook(ft.top, http.StatusNotFound, "BLOB_UNKNOWN"))
				return reg.stallHook(ft.siblings, fail)
			},
			watch:    true,
			wantErr:  []string{"pull {ref}:", "layer {layer}", "BLOB_UNKNOWN"},
			noLayers: true,
		},
		{
			name: "caller cancels mid-download",
			hook: func(_ *testing.T, reg *pullTestRegistry, ft pullFailTarget) regHook {
				return reg.stallHook(append([]string{ft.top}, ft.siblings...), nil)
			},
			watch:        true,
			cancelAfter:  3,
			wantErr:      []string{"pull {ref}:", "context canceled"},
			wantCanceled: true,
			noLayers:     true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := newPullTestRegistry(t)
			layers := []v1.Layer{
				pullGzipLayer(t, pullTar(t, pullTarEntry{name: "base.txt", mode: 0o644, body: pullRandomText(3, 64<<10)})),
				pullGzipLayer(t, pullTar(t, pullTarEntry{name: "mid.txt", mode: 0o644, body: pullRandomText(4, 64<<10)})),
				pullGzipLayer(t, pullTar(t, pullTarEntry{name: "top.txt", mode: 0o644, body: pullRandomText(5, 128<<10)})),
			}
			img := pullImage(t, v1.Config{}, layers...)
			var ref string
			if tt.editConfig != nil {
				ref = reg.pushEditedConfig(t, repo+":v1", img, tt.editConfig)
			} else {
				ref = reg.push(t, repo+":v1", img)
			}
			info := pullWantLayers(t, img)
			top := info[len(info)-1]
			ft := pullFailTarget{top: regBlobPath(repo, top.Digest), blocked: make(chan string, len(info))}
			for _, l := range info[:len(info)-1] {
				ft.siblings = append(ft.siblings, regBlobPath(repo, l.Digest))
			}
			var watcher http.RoundTripper
			if tt.watch {
				sw := &regStallWatcher{next: remote.DefaultTransport, sent: map[string]int64{}, blocked: ft.blocked}
				for _, l := range info {
					sw.sent[regBlobPath(repo, l.Digest)] = l.Size / 2
				}
				watcher = sw
			}
			if tt.hook != nil {
				reg.setHook(tt.hook(t, reg, ft))
			}
			if tt.unreachable {
				ref = regRefusingAddr(t) + "/" + repo + ":v1"
			}
			// A Pull that returns only when this deadline passes has failed
			// to stop its own downloads; nothing here takes a second.
			ctx, cancel := context.WithTimeoutCause(context.Background(), 10*time.Second, errPullTestDeadline)
			defer cancel()
			if watcher != nil {
				ctx = withTransport(ctx, watcher)
			}
			if tt.cancelAfter > 0 {
				go func() {
					for range tt.cancelAfter {
						select {
						case <-ft.blocked:
						case <-ctx.Done():
							return
						}
					}
					cancel()
				}()
			}
			s := newPullStore(t)

			rec, err := s.Pull(ctx, ref)
			if err == nil {
				t.Fatalf("Pull succeeded with %+v, want an error", rec)
			}
			t.Logf("error: %v", err)
			if context.Cause(ctx) == errPullTestDeadline {
				t.Errorf("Pull returned only when its context expired: it did not stop the downloads in flight")
			}
			r := strings.NewReplacer("{ref}", ref, "{layer}", top.Digest.String(), "{wrongDiffID}", wrongDiffID.String())
			for _, w := range tt.wantErr {
				if w = r.Replace(w); !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if got := errors.Is(err, context.Canceled); got != tt.wantCanceled {
				t.Errorf("errors.Is(err, context.Canceled) = %v, want %v", got, tt.wantCanceled)
			}
			if tt.wantStatus != 0 {
				var te *transport.Error
				if !errors.As(err, &te) {
					t.Errorf("no *transport.Error in the chain of %q", err)
				} else if te.StatusCode != tt.wantStatus {
					t.Errorf("transport.Error status %d, want %d", te.StatusCode, tt.wantStatus)
				}
			}
			if tt.wantNetError {
				var ne net.Error
				if !errors.As(err, &ne) {
					t.Errorf("no net.Error in the chain of %q", err)
				}
			}
			if n := reg.count(http.MethodGet, ft.top); n < tt.minGets {
				t.Errorf("top layer's blob was requested %d times, want at least %d (retries)", n, tt.minGets)
			}

			if tmp := pullTmpEntries(t, s.Dir()); len(tmp) > 0 {
				t.Errorf("temporary entries left behind: %q", tmp)
			}
			for _, d := range []v1.Hash{top.DiffID, wrongDiffID} {
				if _, err := os.Lstat(s.LayerDir(d)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("layer directory %s exists after the failure (%v)", d, err)
				}
			}
			if tt.noLayers {
				if names := pullDirNames(t, s.layersDir()); len(names) > 0 {
					t.Errorf("layers unpacked although the pull failed: %q", names)
				}
			}
			if names := pullDirNames(t, s.imagesDir()); len(names) > 0 {
				t.Errorf("image records written: %q", names)
			}
			if names := pullDirNames(t, s.refsDir()); len(names) > 0 {
				t.Errorf("reference files written: %q", names)
			}
			if rec, err := s.Lookup(ref); !errors.Is(err, ErrNotPresent) {
				t.Errorf("Lookup after failed pull = %+v, %v; want ErrNotPresent", rec, err)
			}
		})
	}
}

var errPullTestDeadline = errors.New("test deadline for Pull")

func TestPullRemovesStaleTempDir(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// fill writes what a killed pull left in dir.
		fill func(t *testing.T, dir string)
	}{
		{
			name: "partial layer",
			fill: func(t *testing.T, dir string) {
				pullWriteFile(t, filepath.Join(dir, "usr/bin/half-written"), "garbage")
			},
		},
		{
			// Killed after ApplyTar set the final directory modes.
			name: "read-only directories",
			fill: func(t *testing.T, dir string) {
				pullWriteFile(t, filepath.Join(dir, "ro/sub/file"), "garbage")
				for _, d := range []string{"ro/sub", "ro"} {
					if err := os.Chmod(filepath.Join(dir, d), 0o555); err != nil {
						t.Fatal(err)
					}
				}
			},
		},
		{name: "empty", fill: func(*testing.T, string) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := newPullTestRegistry(t)
			layer := pullGzipLayer(t, pullTar(t, pullTarEntry{name: "fresh.txt", mode: 0o644, body: "fresh\n"}))
			ref := reg.push(t, "test/stale:v1", pullImage(t, v1.Config{}, layer))
			s := newPullStore(t)
			diffID, _ := layer.DiffID()

			stale := filepath.Join(s.layersDir(), ".tmp-"+diffID.Hex+"-deadbeef")
			if err := os.Mkdir(stale, 0o755); err != nil {
				t.Fatal(err)
			}
			tt.fill(t, stale)
			// Another layer's temporary directory may belong to a pull
			// running right now in another process: it must survive.
			other := filepath.Join(s.layersDir(), ".tmp-"+strings.Repeat("cd", 32)+"-cafebabe")
			pullWriteFile(t, filepath.Join(other, "in-progress"), "x")

			if _, err := s.Pull(pullTestContext(t), ref); err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stale %s still there (%v)", stale, err)
			}
			if _, err := os.Lstat(filepath.Join(other, "in-progress")); err != nil {
				t.Errorf("another layer's temporary directory was touched: %v", err)
			}
			pullCheckTree(t, s.LayerDir(diffID), map[string]pullFileWant{"fresh.txt": {content: "fresh\n", mode: 0o644}})
		})
	}
}

func pullWriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pullPlatformIndex is an index of two random images for linux/amd64 and
// linux/arm64/v8, and those images.
func pullPlatformIndex(t testing.TB) (idx v1.ImageIndex, amd64, arm64 v1.Image) {
	t.Helper()
	var imgs []v1.Image
	for seed := range int64(2) {
		img, err := random.Image(4<<10, 2, random.WithSource(mrand.NewSource(seed)))
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	idx = mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: imgs[0], Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: imgs[1], Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	return idx, imgs[0], imgs[1]
}

func TestPullPlatform(t *testing.T) {
	t.Parallel()
	reg := newPullTestRegistry(t)
	idx, amd64, arm64 := pullPlatformIndex(t)
	ref := reg.pushIndex(t, "test/multiarch:v1", idx)

	tests := []struct {
		platform string
		want     v1.Image // nil: the pull must fail
		wantErr  []string
	}{
		{platform: "linux/arm64", want: arm64},
		{platform: "linux/arm64/v8", want: arm64},
		{platform: "linux/amd64", want: amd64},
		{platform: "linux/s390x", wantErr: []string{ref, "linux/s390x", "linux/amd64", "linux/arm64"}},
		{platform: "windows/amd64", wantErr: []string{"windows/amd64", "linux/amd64", "linux/arm64"}},
	}
	for _, tt := range tests {
		t.Run(tt.platform, func(t *testing.T) {
			t.Parallel()
			s := newPullStore(t)
			rec, err := s.Pull(pullTestContext(t), ref, WithPlatform(tt.platform))
			if tt.want == nil {
				if err == nil {
					t.Fatalf("Pull succeeded with %s, want an error", rec.Digest)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %q", err, w)
					}
				}
				if names := pullDirNames(t, s.layersDir()); len(names) > 0 {
					t.Errorf("layers unpacked: %q", names)
				}
				return
			}
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if want := pullDigest(t, tt.want); rec.Digest != want {
				t.Errorf("picked manifest %s, want %s", rec.Digest, want)
			}
			if !reflect.DeepEqual(rec.Layers, pullWantLayers(t, tt.want)) {
				t.Errorf("layers %+v, want %+v", rec.Layers, pullWantLayers(t, tt.want))
			}
			for _, d := range s.LayerDirs(rec) {
				if _, err := os.Stat(d); err != nil {
					t.Errorf("layer directory: %v", err)
				}
			}
			if got, err := s.Lookup(ref); err != nil || got.Digest != rec.Digest {
				t.Errorf("Lookup(%s) = %v, %v; want %s", ref, got, err, rec.Digest)
			}
		})
	}
}

// TestLookupAfterPullByIndexDigest pins a multi-platform image by the
// digest of its index, as a lock file would: Lookup of that same reference
// must find what Pull recorded.
func TestLookupAfterPullByIndexDigest(t *testing.T) {
	t.Parallel()
	reg := newPullTestRegistry(t)
	idx, _, arm64 := pullPlatformIndex(t)
	reg.pushIndex(t, "test/pinned:v1", idx)
	ref := reg.ref("test/pinned@" + pullDigest(t, idx).String())
	s := newPullStore(t)

	rec, err := s.Pull(pullTestContext(t), ref, WithPlatform("linux/arm64"))
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if rec.Digest != pullDigest(t, arm64) {
		t.Fatalf("picked %s, want the arm64 manifest %s", rec.Digest, pullDigest(t, arm64))
	}
	reg.close()
	got, err := s.Lookup(ref)
	if err != nil {
		t.Fatalf("Lookup(%s) right after pulling it: %v", ref, err)
	}
	if !reflect.DeepEqual(got, rec) {
		t.Errorf("Lookup = %+v, want %+v", got, rec)
	}
}

func TestPullOptionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ref     string
		opts    []Option
		wantErr string
	}{
		{name: "zero jobs", ref: "127.0.0.1:1/x", opts: []Option{WithJobs(0)}, wantErr: "jobs must be at least 1, not 0"},
		{name: "bad platform", ref: "127.0.0.1:1/x", opts: []Option{WithPlatform("linux/arm64/v8/x")}, wantErr: `platform "linux/arm64/v8/x"`},
		{name: "bad reference", ref: "127.0.0.1:1/X:@", wantErr: `"127.0.0.1:1/X:@" is not an image reference`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newPullStore(t)
			_, err := s.Pull(context.Background(), tt.ref, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Pull error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// BenchmarkPull pulls a ~20 MB, three-layer random image from the
// in-process registry into a fresh store each time.
func BenchmarkPull(b *testing.B) {
	reg := newPullTestRegistry(b)
	img, err := random.Image(7<<20, 3, random.WithSource(mrand.NewSource(42)))
	if err != nil {
		b.Fatal(err)
	}
	ref := reg.push(b, "bench/pull:v1", img)
	var total int64
	for _, l := range pullWantLayers(b, img) {
		total += l.Size
	}
	b.SetBytes(total)
	base := b.TempDir()
	ctx := context.Background()
	i := 0
	for b.Loop() {
		dir := filepath.Join(base, fmt.Sprint(i))
		i++
		s, err := OpenStore(dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Pull(ctx, ref); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func TestPlainHTTPAllowed(t *testing.T) {
	tests := []struct {
		host     string
		insecure []string
		want     bool
	}{
		{host: "127.0.0.1:5000", want: true},
		{host: "127.0.0.1", want: true},
		{host: "127.1.2.3:5000", want: true},
		{host: "localhost:5000", want: true},
		{host: "localhost", want: true},
		{host: "[::1]:5000", want: true},
		{host: "::1", want: true},
		{host: "10.0.0.1:5000", want: false},
		{host: "172.16.0.1:5000", want: false},
		{host: "192.168.1.2", want: false},
		{host: "example.com", want: false},
		{host: "example.com:5000", want: false},
		{host: "localhost.example.com:5000", want: false},
		{host: "10.0.0.1:5000", insecure: []string{"10.0.0.1:5000"}, want: true},
		{host: "192.168.1.2", insecure: []string{"192.168.1.2"}, want: true},
		{host: "example.com", insecure: []string{"EXAMPLE.com"}, want: true},
		{host: "10.0.0.1:5001", insecure: []string{"10.0.0.1:5000"}, want: false},
		{host: "example.com", insecure: []string{"other.example.com", "10.0.0.1:5000"}, want: false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s insecure=%q", tt.host, tt.insecure), func(t *testing.T) {
			if got := plainHTTPAllowed(tt.host, tt.insecure); got != tt.want {
				t.Errorf("plainHTTPAllowed(%q, %q) = %v, want %v", tt.host, tt.insecure, got, tt.want)
			}
		})
	}
}

// pullRecordingTransport records the URL of every request that reaches it and
// answers each with err, or with 200 when err is nil.
type pullRecordingTransport struct {
	mu   sync.Mutex
	urls []string
	err  error
}

func (rt *pullRecordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.urls = append(rt.urls, req.URL.String())
	rt.mu.Unlock()
	if rt.err != nil {
		return nil, rt.err
	}
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

func (rt *pullRecordingTransport) sent() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.urls)
}

func TestHTTPSOnly(t *testing.T) {
	tests := []struct {
		url      string
		insecure []string
		wantSent bool
	}{
		{url: "http://10.0.0.1:5000/v2/", wantSent: false},
		{url: "http://192.168.1.2/v2/", wantSent: false},
		{url: "http://example.com/v2/x/blobs/sha256:00", wantSent: false},
		{url: "http://10.0.0.1:5000/v2/", insecure: []string{"10.0.0.1:5000"}, wantSent: true},
		{url: "http://127.0.0.1:5000/v2/", wantSent: true},
		{url: "http://localhost:5000/v2/", wantSent: true},
		{url: "http://[::1]:5000/v2/", wantSent: true},
		{url: "https://10.0.0.1:5000/v2/", wantSent: true},
		{url: "https://example.com/v2/", wantSent: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s insecure=%q", tt.url, tt.insecure), func(t *testing.T) {
			next := &pullRecordingTransport{}
			req, err := http.NewRequest(http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&httpsOnly{next: next, insecure: tt.insecure}).RoundTrip(req)
			if sent := len(next.sent()) > 0; sent != tt.wantSent {
				t.Fatalf("request sent: %v, want %v", sent, tt.wantSent)
			}
			if tt.wantSent {
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Errorf("RoundTrip = %v, %v; want the next transport's answer", resp, err)
				}
				return
			}
			if resp != nil || err == nil {
				t.Fatalf("RoundTrip = %v, %v; want an error", resp, err)
			}
			for _, w := range []string{"refusing plain HTTP to " + req.URL.Host, "DEVBOX_INSECURE_REGISTRIES"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestPullPlainHTTPPolicy runs Pull over a transport that records what
// reaches the network and fails it, and checks that no plain-HTTP request
// to a registry outside the policy is ever sent, including the HTTP
// fallback that go-containerregistry tries for private addresses.
func TestPullPlainHTTPPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ref      string
		insecure []string
		wantHTTP bool // some request went out over plain HTTP
	}{
		{name: "private address", ref: "10.0.0.1:5000/app:1", wantHTTP: false},
		{name: "private address listed insecure", ref: "10.0.0.1:5000/app:1", insecure: []string{"10.0.0.1:5000"}, wantHTTP: true},
		{name: "public registry", ref: "registry.example.com/app:1", wantHTTP: false},
		{name: "loopback", ref: "127.0.0.1:5000/app:1", wantHTTP: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rt := &pullRecordingTransport{err: errors.New("test network is offline")}
			s := newPullStore(t)
			_, err := s.Pull(withTransport(pullTestContext(t), rt), tt.ref, WithInsecureRegistries(tt.insecure))
			if err == nil {
				t.Fatal("Pull succeeded over an offline network")
			}
			sent := rt.sent()
			if len(sent) == 0 {
				t.Fatalf("no request reached the transport (error %v)", err)
			}
			gotHTTP := slices.ContainsFunc(sent, func(u string) bool { return strings.HasPrefix(u, "http://") })
			if gotHTTP != tt.wantHTTP {
				t.Errorf("plain HTTP sent: %v, want %v; requests: %q", gotHTTP, tt.wantHTTP, sent)
			}
		})
	}
}
