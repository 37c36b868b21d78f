//go:build !devbox_lean

package image

// Tests of registry mirrors: two in-process registries, the real one and a
// mirror that has the image, lacks it or fails, and request counters that
// show which one served the blobs. Helpers are prefixed mirror.

import (
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// mirrorBlobGets counts the blob GETs of repo that reg received.
func mirrorBlobGets(reg *pullTestRegistry, repo string, layers []Layer) int {
	n := 0
	for _, l := range layers {
		n += reg.count(http.MethodGet, regBlobPath(repo, l.Digest))
	}
	return n
}

// mirrorManifestGets counts the manifest GETs of repo that reg received,
// by tag or digest. (Pushing sends HEADs, never GETs.)
func mirrorManifestGets(reg *pullTestRegistry, repo string, idents ...string) int {
	n := 0
	for _, id := range idents {
		n += reg.count(http.MethodGet, "/v2/"+repo+"/manifests/"+id)
	}
	return n
}

func TestPullThroughMirror(t *testing.T) {
	t.Parallel()
	const repo = "test/mirrored"
	tests := []struct {
		name string
		// setup pushes the image where the case needs it and breaks what
		// it breaks; mirrors are the registries listed as mirrors, in order.
		setup func(t *testing.T, upstream *pullTestRegistry, mirrors []*pullTestRegistry, img v1.Image)
		// nMirrors is how many mirror registries the case has.
		nMirrors int
		// byDigest: pull repo@digest instead of repo:v1.
		byDigest bool
		// servedBy is the index of the mirror that must serve every blob;
		// -1 for the upstream registry.
		servedBy int
		// wantUpstreamManifest: the upstream registry was asked for the
		// manifest.
		wantUpstreamManifest bool
	}{
		{
			name:     "mirror has the image",
			nMirrors: 1,
			setup: func(t *testing.T, up *pullTestRegistry, ms []*pullTestRegistry, img v1.Image) {
				up.push(t, repo+":v1", img)
				ms[0].push(t, repo+":v1", img)
			},
			servedBy: 0,
		},
		{
			name:     "mirror has the image, pulled by digest",
			nMirrors: 1,
			byDigest: true,
			setup: func(t *testing.T, up *pullTestRegistry, ms []*pullTestRegistry, img v1.Image) {
				up.push(t, repo+":v1", img)
				ms[0].push(t, repo+":v1", img)
			},
			servedBy: 0,
		},
		{
			name:     "mirror lacks the image",
			nMirrors: 1,
			setup: func(t *testing.T, up *pullTestRegistry, _ []*pullTestRegistry, img v1.Image) {
				up.push(t, repo+":v1", img)
			},
			servedBy:             -1,
			wantUpstreamManifest: true,
		},
		{
			name:     "mirror answers 500 to everything",
			nMirrors: 1,
			setup: func(t *testing.T, up *pullTestRegistry, ms []*pullTestRegistry, img v1.Image) {
				up.push(t, repo+":v1", img)
				ms[0].push(t, repo+":v1", img)
				ms[0].setHook(regStatusHook("/v2/", http.StatusInternalServerError, "UNKNOWN"))
			},
			servedBy:             -1,
			wantUpstreamManifest: true,
		},
		{
			name:     "first mirror lacks the image, second has it",
			nMirrors: 2,
			setup: func(t *testing.T, up *pullTestRegistry, ms []*pullTestRegistry, img v1.Image) {
				up.push(t, repo+":v1", img)
				ms[1].push(t, repo+":v1", img)
			},
			servedBy: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			upstream := newPullTestRegistry(t)
			var mirrors []*pullTestRegistry
			var hosts []string
			for range tt.nMirrors {
				m := newPullTestRegistry(t)
				mirrors = append(mirrors, m)
				hosts = append(hosts, m.host)
			}
			img, trees := pullMultiLayerImage(t)
			tt.setup(t, upstream, mirrors, img)
			digest := pullDigest(t, img)
			ref := upstream.ref(repo + ":v1")
			if tt.byDigest {
				ref = upstream.ref(repo + "@" + digest.String())
			}
			s := newPullStore(t)

			rec, err := s.Pull(pullTestContext(t), ref, WithMirrors(map[string][]string{upstream.host: hosts}))
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			// The mirror is an implementation detail: the record is the
			// original reference's, with the image's own digest.
			if rec.Ref != ref {
				t.Errorf("Ref = %s, want %s", rec.Ref, ref)
			}
			if rec.Digest != digest {
				t.Errorf("Digest = %s, want %s", rec.Digest, digest)
			}
			layers := pullWantLayers(t, img)
			if !reflect.DeepEqual(rec.Layers, layers) {
				t.Errorf("Layers = %+v, want %+v", rec.Layers, layers)
			}
			for i, l := range layers {
				pullCheckTree(t, s.LayerDir(l.DiffID), trees[i])
			}
			for i, m := range mirrors {
				want := 0
				if i == tt.servedBy {
					want = len(layers)
				}
				if n := mirrorBlobGets(m, repo, layers); n != want {
					t.Errorf("mirror %d served %d blobs, want %d", i, n, want)
				}
			}
			wantUp := 0
			if tt.servedBy == -1 {
				wantUp = len(layers)
			}
			if n := mirrorBlobGets(upstream, repo, layers); n != wantUp {
				t.Errorf("upstream served %d blobs, want %d", n, wantUp)
			}
			if n := mirrorManifestGets(upstream, repo, "v1", digest.String()); (n > 0) != tt.wantUpstreamManifest {
				t.Errorf("upstream got %d manifest requests; want some: %v", n, tt.wantUpstreamManifest)
			}
			if tmp := pullTmpEntries(t, s.Dir()); len(tmp) > 0 {
				t.Errorf("temporary entries left behind: %q", tmp)
			}
			// Lookup knows the image by the original reference alone.
			upstream.close()
			for _, m := range mirrors {
				m.close()
			}
			if got, err := s.Lookup(ref); err != nil || !reflect.DeepEqual(got, rec) {
				t.Errorf("Lookup(%s) = %+v, %v; want %+v", ref, got, err, rec)
			}
			for _, h := range hosts {
				if tt.byDigest {
					break // a digest is found by digest, whatever the name
				}
				if _, err := s.Lookup(strings.Replace(ref, upstream.host, h, 1)); !errors.Is(err, ErrNotPresent) {
					t.Errorf("Lookup by the mirror's name: %v, want ErrNotPresent", err)
				}
			}
		})
	}
}

// TestPullMirrorFailsMidBlob: the mirror serves the manifest and some
// blobs, then fails one blob; the pull falls back to the registry, which
// serves only what is still missing, and the mirror is not retried.
func TestPullMirrorFailsMidBlob(t *testing.T) {
	t.Parallel()
	const repo = "test/midblob"
	upstream, mirror := newPullTestRegistry(t), newPullTestRegistry(t)
	img, trees := pullMultiLayerImage(t)
	ref := upstream.push(t, repo+":v1", img)
	mirror.push(t, repo+":v1", img)
	layers := pullWantLayers(t, img)
	broken := regBlobPath(repo, layers[1].Digest)
	mirror.setHook(regStatusHook(broken, http.StatusInternalServerError, "UNKNOWN"))
	s := newPullStore(t)

	var events pullEventLog
	rec, err := s.Pull(pullTestContext(t), ref, WithMirrors(map[string][]string{upstream.host: {mirror.host}}), WithProgress(events.add), WithJobs(1))
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if rec.Ref != ref || rec.Digest != pullDigest(t, img) {
		t.Errorf("record %s@%s, want %s@%s", rec.Ref, rec.Digest, ref, pullDigest(t, img))
	}
	for i, l := range layers {
		pullCheckTree(t, s.LayerDir(l.DiffID), trees[i])
	}
	if n := mirror.count(http.MethodGet, broken); n != 1 {
		t.Errorf("mirror got %d requests for the broken blob, want 1 (no retries)", n)
	}
	if n := upstream.count(http.MethodGet, broken); n != 1 {
		t.Errorf("upstream got %d requests for the broken blob, want 1", n)
	}
	// One job at a time: each other layer was fetched once, from the
	// mirror before the broken blob failed (and then found in place), or
	// from the registry after it.
	for i, l := range layers {
		if i == 1 {
			continue
		}
		p := regBlobPath(repo, l.Digest)
		m, u := mirror.count(http.MethodGet, p), upstream.count(http.MethodGet, p)
		if m+u != 1 {
			t.Errorf("layer %d requested %d times from the mirror and %d from upstream, want once in all", i, m, u)
		}
		want := []string{"LayerStarted", "LayerDone"}
		if m == 1 {
			want = append(want, "LayerCached")
		}
		if k := pullKinds(events.of(l.DiffID)); !slices.Equal(k, want) {
			t.Errorf("layer %d: events %v, want %v", i, k, want)
		}
	}
	if tmp := pullTmpEntries(t, s.Dir()); len(tmp) > 0 {
		t.Errorf("temporary entries left behind: %q", tmp)
	}
}

// TestPullMirrorAndRegistryFail: when the registry fails after its mirrors,
// the error is the registry's, naming the mirrors' failures too, and the
// store is unchanged.
func TestPullMirrorAndRegistryFail(t *testing.T) {
	t.Parallel()
	const repo = "test/nowhere"
	upstream, mirror := newPullTestRegistry(t), newPullTestRegistry(t)
	mirror.setHook(regStatusHook("/v2/"+repo+"/manifests/", http.StatusInternalServerError, "UNKNOWN"))
	ref := upstream.ref(repo + ":v1")
	s := newPullStore(t)
	_, err := s.Pull(pullTestContext(t), ref, WithMirrors(map[string][]string{upstream.host: {mirror.host}}))
	if err == nil {
		t.Fatal("Pull succeeded")
	}
	t.Logf("error: %v", err)
	for _, w := range []string{"pull " + ref + ": not found in registry " + upstream.host, "after the mirrors failed: mirror " + mirror.host, "HTTP 500"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusNotFound {
		t.Errorf("transport.Error in the chain: %v; want the registry's 404", te)
	}
	if n := mirrorManifestGets(mirror, repo, "v1"); n != 1 {
		t.Errorf("mirror got %d manifest requests, want 1 (no retries)", n)
	}
	srcCheckEmptyStore(t, s, false)
}

// TestPullDockerHubMirror: a mirror for docker.io serves "busybox" as
// library/busybox, the way Docker's registry-mirrors do, without the
// network; the record names docker.io.
func TestPullDockerHubMirror(t *testing.T) {
	t.Parallel()
	mirror := newPullTestRegistry(t)
	img, _ := pullMultiLayerImage(t)
	mirror.push(t, "library/busybox:1.36", img)
	tests := []struct {
		name string
		key  string
	}{
		{name: "docker.io", key: "docker.io"},
		{name: "index.docker.io", key: "index.docker.io"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newPullStore(t)
			rec, err := s.Pull(pullTestContext(t), "busybox:1.36", WithMirrors(map[string][]string{tt.key: {"http://" + mirror.host}}))
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if rec.Ref != "index.docker.io/library/busybox:1.36" || rec.Digest != pullDigest(t, img) {
				t.Errorf("record %s@%s", rec.Ref, rec.Digest)
			}
			if _, err := s.Lookup("busybox:1.36"); err != nil {
				t.Errorf("Lookup: %v", err)
			}
		})
	}
}

// TestPullMirrorPlainHTTP: a mirror on a private address is reached over
// plain HTTP only when written as http:// or listed insecure.
func TestPullMirrorPlainHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mirror   string
		insecure []string
		wantHTTP bool
	}{
		{name: "bare host", mirror: "10.0.0.7:5000", wantHTTP: false},
		{name: "https scheme", mirror: "https://10.0.0.7:5000", wantHTTP: false},
		{name: "http scheme", mirror: "http://10.0.0.7:5000", wantHTTP: true},
		{name: "listed insecure", mirror: "10.0.0.7:5000", insecure: []string{"10.0.0.7:5000"}, wantHTTP: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rt := &pullRecordingTransport{err: errors.New("test network is offline")}
			s := newPullStore(t)
			_, err := s.Pull(withTransport(pullTestContext(t), rt), "registry.example.com/app:1",
				WithInsecureRegistries(tt.insecure),
				WithMirrors(map[string][]string{"registry.example.com": {tt.mirror}}))
			if err == nil {
				t.Fatal("Pull succeeded over an offline network")
			}
			var toMirror, toRegistry, plain []string
			for _, u := range rt.sent() {
				switch {
				case strings.Contains(u, "10.0.0.7:5000"):
					toMirror = append(toMirror, u)
					if strings.HasPrefix(u, "http://") {
						plain = append(plain, u)
					}
				case strings.Contains(u, "registry.example.com"):
					toRegistry = append(toRegistry, u)
				}
			}
			if len(toMirror) == 0 || len(toRegistry) == 0 {
				t.Errorf("requests to the mirror %q and to the registry %q: want both (fallback)", toMirror, toRegistry)
			}
			if (len(plain) > 0) != tt.wantHTTP {
				t.Errorf("plain HTTP to the mirror: %q, want some: %v", plain, tt.wantHTTP)
			}
			if !strings.Contains(err.Error(), "mirror 10.0.0.7:5000") {
				t.Errorf("error %q does not name the mirror", err)
			}
		})
	}
}

func TestWithMirrors(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string][]string
		want    map[string][]mirror
		wantErr string
	}{
		{name: "none", in: nil, want: nil},
		{
			name: "docker.io is index.docker.io",
			in:   map[string][]string{"docker.io": {"127.0.0.1:5001", "https://mirror.gcr.io/"}, "ghcr.io": {"http://10.0.0.2:5000"}},
			want: map[string][]mirror{
				"index.docker.io": {{host: "127.0.0.1:5001"}, {host: "mirror.gcr.io"}},
				"ghcr.io":         {{host: "10.0.0.2:5000", plainHTTP: true}},
			},
		},
		{
			name: "lists add up in sorted key order",
			in:   map[string][]string{"index.docker.io": {"b:1"}, "docker.io": {"a:1"}},
			want: map[string][]mirror{"index.docker.io": {{host: "a:1"}, {host: "b:1"}}},
		},
		{name: "mirror with a path", in: map[string][]string{"docker.io": {"mirror.example/dockerhub"}}, wantErr: `mirrors for docker.io: "mirror.example/dockerhub": a mirror is a registry host[:port], without a path`},
		{name: "empty mirror", in: map[string][]string{"docker.io": {""}}, wantErr: `mirrors for docker.io: "" is not a registry host[:port]`},
		{name: "bad mirror", in: map[string][]string{"docker.io": {"a b"}}, wantErr: `"a b" is not a registry host[:port]`},
		{name: "bad registry", in: map[string][]string{"ghcr.io/x": {"m:1"}}, wantErr: `mirrors: "ghcr.io/x" is not a registry name`},
		{name: "empty registry", in: map[string][]string{"": {"m:1"}}, wantErr: `mirrors: "" is not a registry name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := makeOptions(WithMirrors(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("makeOptions = %v, want an error containing %q", err, tt.wantErr)
				}
				if cerr := CheckOptions(WithMirrors(tt.in)); cerr == nil || cerr.Error() != err.Error() {
					t.Errorf("CheckOptions = %v, want %v", cerr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o.mirrors, tt.want) {
				t.Errorf("mirrors = %+v, want %+v", o.mirrors, tt.want)
			}
		})
	}
}
