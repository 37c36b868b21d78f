package env

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/devboxhq/devbox/mounts"
)

func TestZoneName(t *testing.T) {
	dir := t.TempDir()
	for target, want := range map[string]string{
		"/usr/share/zoneinfo/Europe/Berlin":       "Europe/Berlin",
		"../usr/share/zoneinfo/America/New_York":  "America/New_York",
		"/var/db/timezone/zoneinfo/Asia/Tokyo":    "Asia/Tokyo",
		"/usr/share/zoneinfo/../../../etc/passwd": "",
		"/etc/some-file":                          "",
		"/usr/share/zoneinfo/":                    "",
	} {
		link := filepath.Join(dir, "localtime")
		os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if got := (host{}).zoneName(link); got != want {
			t.Errorf("localtime -> %s: zone %q, want %q", target, got, want)
		}
	}
	file := filepath.Join(dir, "copied")
	if err := os.WriteFile(file, []byte("TZif"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := (host{}).zoneName(file); got != "" {
		t.Errorf("a localtime that is a file, not a link: zone %q, want none", got)
	}
}

func TestZoneFor(t *testing.T) {
	dir := t.TempDir()
	localtime := filepath.Join(dir, "localtime")
	if err := os.Symlink("/usr/share/zoneinfo/Europe/Berlin", localtime); err != nil {
		t.Fatal(err)
	}
	withZone, without, upper := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(withZone, "usr/share/zoneinfo/Europe"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(withZone, "usr/share/zoneinfo/Europe/Berlin"), []byte("TZif"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TZ", "")
	os.Unsetenv("TZ")
	if got := zoneFor(filesOf(mounts.View{Layers: []string{without, withZone}, Upper: upper}, host{}), localtime); got != "Europe/Berlin" {
		t.Errorf("an image with the host's zone: %q, want Europe/Berlin", got)
	}
	// Without the zone's file, TZ would name a zone that programs inside
	// cannot read, and their clock would be UTC under another name.
	if got := zoneFor(filesOf(mounts.View{Layers: []string{without}, Upper: upper}, host{}), localtime); got != "" {
		t.Errorf("an image without the host's zone: %q, want none", got)
	}
	t.Setenv("TZ", "Asia/Tokyo")
	if got := zoneFor(filesOf(mounts.View{Layers: []string{withZone}}, host{}), localtime); got != "" {
		t.Errorf("with TZ set on the host: %q, want none (TZ comes in itself)", got)
	}
}

func TestEnvironmentHostVars(t *testing.T) {
	dir := t.TempDir()
	localtime := filepath.Join(dir, "localtime")
	if err := os.Symlink("/usr/share/zoneinfo/Europe/Berlin", localtime); err != nil {
		t.Fatal(err)
	}
	img := images(imageDir(t, "usr/share/zoneinfo/Europe/Berlin", "usr/lib/locale/C.utf8/LC_CTYPE"))
	t.Setenv("TZ", "")
	os.Unsetenv("TZ")
	t.Setenv("LANG", "en_US.UTF-8")
	u := User{Name: "u", Home: "/home/u"}
	get := func(env []string, k string) string {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, k+"="); ok {
				return v
			}
		}
		return "(unset)"
	}
	env := environment(nil, &Config{}, u, "/p", nil, img, localtime)
	if get(env, "TZ") != "Europe/Berlin" || get(env, "LANG") != "C.UTF-8" {
		t.Errorf("TZ=%s LANG=%s, want the host's zone and C.UTF-8 for a locale the image lacks", get(env, "TZ"), get(env, "LANG"))
	}
	if got := get(environment([]string{"TZ=UTC"}, &Config{}, u, "/p", nil, img, localtime), "TZ"); got != "UTC" {
		t.Errorf("TZ = %s, want the image's", got)
	}
	if got := get(environment(nil, &Config{Env: map[string]string{"TZ": "Etc/GMT+3"}}, u, "/p", nil, img, localtime), "TZ"); got != "Etc/GMT+3" {
		t.Errorf("TZ = %s, want [env]'s", got)
	}
	// Setup steps: no zone.
	if got := get(environment(nil, &Config{}, u, "/p", nil, img, ""), "TZ"); got != "(unset)" {
		t.Errorf("TZ = %s, want it unset", got)
	}
	t.Setenv("TZ", "Asia/Tokyo")
	if got := get(environment([]string{"TZ=UTC"}, &Config{}, u, "/p", nil, img, localtime), "TZ"); got != "Asia/Tokyo" {
		t.Errorf("TZ = %s, want the host's TZ", got)
	}
}

func TestLocaleFor(t *testing.T) {
	debian := images(imageDir(t, "usr/lib/locale/C.utf8/LC_CTYPE"))
	generated := images("", imageDir(t, "usr/lib/locale/de_DE.utf8/LC_CTYPE"), debian.dirs[0])
	archive := images(imageDir(t, "usr/lib/locale/locale-archive"))
	musl := images(imageDir(t, "lib/ld-musl-x86_64.so.1"))
	for _, tt := range []struct {
		name string
		img  imageFiles
		want string
	}{
		{"en_US.UTF-8", debian, "C.UTF-8"},
		{"en_US.utf8", debian, "C.UTF-8"},
		{"de_DE.ISO-8859-1", debian, "C"},
		{"C.UTF-8", debian, "C.UTF-8"},
		{"POSIX", debian, "POSIX"},
		{"de_DE.UTF-8", generated, "de_DE.UTF-8"},
		{"fr_FR.UTF-8", generated, "C.UTF-8"},
		{"fr_FR.UTF-8", archive, "fr_FR.UTF-8"},
		{"en_US.UTF-8", musl, "en_US.UTF-8"},
		{"sr_RS.UTF-8@latin", debian, "C.UTF-8"},
	} {
		if got := localeFor(tt.name, tt.img); got != tt.want {
			t.Errorf("localeFor(%q) in %v = %q, want %q", tt.name, tt.img, got, tt.want)
		}
	}
}

// imageDir makes a directory holding the files rel, empty.
func imageDir(t *testing.T, rel ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, r := range rel {
		p := filepath.Join(dir, r)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestTermFor(t *testing.T) {
	debian := images(imageDir(t, "usr/lib/terminfo/x/xterm-256color", "usr/lib/terminfo/x/xterm", "usr/lib/terminfo/l/linux"))
	withKitty := images("", imageDir(t, "usr/share/terminfo/x/xterm-kitty"), debian.dirs[0])
	hexLayout := images(imageDir(t, "usr/share/terminfo/78/xterm-256color", "usr/share/terminfo/61/alacritty"))
	xtermOnly := images(imageDir(t, "etc/terminfo/x/xterm"))
	busybox := images(imageDir(t, "bin/busybox"))
	for _, tt := range []struct {
		term string
		img  imageFiles
		want string
	}{
		{"xterm-kitty", debian, "xterm-256color"},
		{"xterm-256color", debian, "xterm-256color"},
		{"linux", debian, "linux"},
		{"xterm-kitty", withKitty, "xterm-kitty"},
		{"alacritty", hexLayout, "alacritty"},
		{"foot", hexLayout, "xterm-256color"},
		{"ghostty", xtermOnly, "xterm"},
		{"xterm-kitty", busybox, "xterm-kitty"},
		{"dumb", debian, "dumb"},
		{"", debian, ""},
		{"../../x", debian, "../../x"},
	} {
		if got := termFor(tt.term, tt.img); got != tt.want {
			t.Errorf("termFor(%q) in %v = %q, want %q", tt.term, tt.img, got, tt.want)
		}
	}
}

// TestHostCertificates: the host's bundle comes in where the host trusts
// authorities of its own, in the layouts of Debian, Fedora, and others.
func TestHostCertificates(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files []string
		want  string
	}{
		{"Debian with a local authority", []string{"usr/local/share/ca-certificates/corp.crt", "etc/ssl/certs/ca-certificates.crt"}, "etc/ssl/certs/ca-certificates.crt"},
		{"Fedora with an anchor", []string{"etc/pki/ca-trust/source/anchors/corp.pem", "etc/pki/tls/certs/ca-bundle.crt"}, "etc/pki/tls/certs/ca-bundle.crt"},
		{"Debian with the public authorities only", []string{"etc/ssl/certs/ca-certificates.crt"}, ""},
		{"a local authority without a bundle", []string{"usr/local/share/ca-certificates/corp.crt"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := imageDir(t, tt.files...)
			want := ""
			if tt.want != "" {
				want = filepath.Join(root, tt.want)
			}
			if got := (host{}).hostCertificates(root); got != want {
				t.Errorf("hostCertificates = %q, want %q", got, want)
			}
		})
	}
	// The variables name the bundle, and [env] may still say otherwise.
	ca := []mounts.Mount{{Type: mounts.Bind, Source: "/etc/ssl/certs/ca-certificates.crt", Target: caTarget, ReadOnly: true}}
	env := environment(nil, &Config{Env: map[string]string{"GIT_SSL_CAINFO": "/own.crt"}}, User{Name: "u", Home: "/home/u"}, "/p", ca, imageFiles{}, "")
	for _, want := range []string{"SSL_CERT_FILE=" + caTarget, "NODE_EXTRA_CA_CERTS=" + caTarget, "REQUESTS_CA_BUNDLE=" + caTarget, "CURL_CA_BUNDLE=" + caTarget, "GIT_SSL_CAINFO=/own.crt"} {
		if !slices.Contains(env, want) {
			t.Errorf("environment %q lacks %s", env, want)
		}
	}
}
