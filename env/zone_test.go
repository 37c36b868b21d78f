package env

import (
	"os"
	"path/filepath"
	"slices"
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
		if got := zoneName(link); got != want {
			t.Errorf("localtime -> %s: zone %q, want %q", target, got, want)
		}
	}
	file := filepath.Join(dir, "copied")
	if err := os.WriteFile(file, []byte("TZif"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := zoneName(file); got != "" {
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
	if got := zoneFor(mounts.View{Layers: []string{without, withZone}, Upper: upper}, localtime); got != "Europe/Berlin" {
		t.Errorf("an image with the host's zone: %q, want Europe/Berlin", got)
	}
	// Without the zone's file, TZ would name a zone that programs inside
	// cannot read, and their clock would be UTC under another name.
	if got := zoneFor(mounts.View{Layers: []string{without}, Upper: upper}, localtime); got != "" {
		t.Errorf("an image without the host's zone: %q, want none", got)
	}
	t.Setenv("TZ", "Asia/Tokyo")
	if got := zoneFor(mounts.View{Layers: []string{withZone}}, localtime); got != "" {
		t.Errorf("with TZ set on the host: %q, want none (TZ comes in itself)", got)
	}
}

func TestEnvironmentZone(t *testing.T) {
	t.Setenv("TZ", "")
	os.Unsetenv("TZ")
	u := User{Name: "u", Home: "/home/u"}
	tz := func(env []string) string {
		i := slices.IndexFunc(env, func(kv string) bool { return len(kv) > 3 && kv[:3] == "TZ=" })
		if i < 0 {
			return "(unset)"
		}
		return env[i][3:]
	}
	if got := tz(environment(nil, &Config{}, u, "/p", "", "Europe/Berlin")); got != "Europe/Berlin" {
		t.Errorf("TZ = %s, want the host's zone", got)
	}
	if got := tz(environment([]string{"TZ=UTC"}, &Config{}, u, "/p", "", "Europe/Berlin")); got != "UTC" {
		t.Errorf("TZ = %s, want the image's", got)
	}
	if got := tz(environment(nil, &Config{Env: map[string]string{"TZ": "Etc/GMT+3"}}, u, "/p", "", "Europe/Berlin")); got != "Etc/GMT+3" {
		t.Errorf("TZ = %s, want [env]'s", got)
	}
	if got := tz(environment(nil, &Config{}, u, "/p", "", "")); got != "(unset)" {
		t.Errorf("TZ = %s, want it unset", got)
	}
}
