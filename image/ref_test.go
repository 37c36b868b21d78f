package image

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

func TestParseReference(t *testing.T) {
	digest := "sha256:" + strings.Repeat("1f", 32)
	tests := []struct {
		in      string
		want    string // Name(); "" when an error is expected
		wantDig string // Digest, for digest references
	}{
		{in: "busybox", want: "index.docker.io/library/busybox:latest"},
		{in: "docker.io/library/busybox:1.36", want: "index.docker.io/library/busybox:1.36"},
		{in: "ghcr.io/org/app:v1", want: "ghcr.io/org/app:v1"},
		{in: "localhost:5000/app", want: "localhost:5000/app:latest"},
		{in: "alpine@" + digest, want: "index.docker.io/library/alpine@" + digest, wantDig: digest},
		{in: "127.0.0.1:5000/a/b@" + digest, want: "127.0.0.1:5000/a/b@" + digest, wantDig: digest},
		{in: "Busybox"},
		{in: "busybox:"},
		{in: "alpine@sha256:1234"},
		{in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseReference(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseReference(%q) = %s, want an error", tt.in, r.Name())
				}
				if want := fmt.Sprintf("%q is not an image reference", tt.in); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseReference(%q): %v", tt.in, err)
			}
			if r.Name() != tt.want {
				t.Errorf("ParseReference(%q) = %s, want %s", tt.in, r.Name(), tt.want)
			}
			if r.Digest != tt.wantDig {
				t.Errorf("ParseReference(%q): digest %q, want %q", tt.in, r.Digest, tt.wantDig)
			}
		})
	}
}

// The references every test of ParseReference starts from.
var referenceSeeds = []string{
	"busybox", "busybox:1.36", "docker.io/busybox", "docker.io/library/busybox:1.36",
	"index.docker.io/busybox@sha256:" + strings.Repeat("ab", 32),
	"debian:bookworm@sha256:" + strings.Repeat("01", 32),
	"ghcr.io/org/app:v1", "localhost/app", "localhost:5000/app", "127.0.0.1:5000/a/b/c:t",
	"[::1]:5000/app:v", "host:/app", "host:5000:6000/app", "Upper/app", "app:", "app@sha384:" + strings.Repeat("c", 96),
	"app@sha512:" + strings.Repeat("d", 128), "app@md5:" + strings.Repeat("e", 32), "a@b@c", "http://host/app",
	"user@host/app", "host%41/app", "h!st.io/app", "app:tag-with.dots_and_UPPER", "a//b", "/app", "app/",
	"registry.example.com:443/team/app:1.0", "x" + strings.Repeat("y", 300), "app:" + strings.Repeat("t", 129),
}

// FuzzParseReference holds ParseReference to go-containerregistry's name
// package, which pulls use: both accept the same strings, and read them as
// the same registry, repository, tag or digest. ParseRegistry is held to
// name.NewRegistry in the same way.
func FuzzParseReference(f *testing.F) {
	for _, s := range referenceSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseReference(s)
		want, wantErr := name.ParseReference(s, name.WithDefaultTag("latest"))
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("ParseReference(%q): error %v; go-containerregistry: %v", s, err, wantErr)
		}
		if err == nil {
			if got.Name() != want.Name() || got.String() != want.String() ||
				got.Registry != want.Context().RegistryStr() || got.RepositoryStr() != want.Context().RepositoryStr() {
				t.Fatalf("ParseReference(%q) = %q (%s, %s), go-containerregistry: %q (%s, %s)", s,
					got.Name(), got.Registry, got.RepositoryStr(), want.Name(), want.Context().RegistryStr(), want.Context().RepositoryStr())
			}
			d := "sha256:" + strings.Repeat("9", 64)
			if got.Digested(d).String() != want.Context().Digest(d).String() {
				t.Fatalf("%q pinned: %q, go-containerregistry: %q", s, got.Digested(d), want.Context().Digest(d))
			}
		}
		reg, err := ParseRegistry(s)
		wantReg, wantErr := name.NewRegistry(s, name.StrictValidation)
		if (err == nil) != (wantErr == nil) || (err == nil && reg != wantReg.RegistryStr()) {
			t.Fatalf("ParseRegistry(%q) = %q, %v; go-containerregistry: %q, %v", s, reg, err, wantReg.RegistryStr(), wantErr)
		}
	})
}
