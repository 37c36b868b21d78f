package env

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLockRoundTrip(t *testing.T) {
	l := &Lock{Version: lockVersion,
		Image: LockImage{Ref: "debian:bookworm", Digests: map[string]string{
			"linux/arm64": "sha256:" + digestB, "linux/amd64": "sha256:" + digestA}},
		Archive: []LockEntry{{Name: "b", URL: "http://x/b", SHA256: "22"}, {Name: "a", URL: "http://x/a", SHA256: "11"}},
	}
	path := filepath.Join(t.TempDir(), LockFileName)
	if err := l.Write(path); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(path)
	got, err := ReadLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Marshal()) != string(first) {
		t.Errorf("read and marshalled again, the lock differs:\n%s\nvs\n%s", got.Marshal(), first)
	}
	// Platforms are sorted, archives keep devbox.toml's order.
	text := string(first)
	if strings.Index(text, "linux/amd64") > strings.Index(text, "linux/arm64") || strings.Index(text, `"b"`) > strings.Index(text, `"a"`) {
		t.Errorf("lock is not canonical:\n%s", text)
	}
	if got.imageDigest("debian:bookworm", "linux/arm64") != "sha256:"+digestB || got.imageDigest("debian:trixie", "linux/arm64") != "" {
		t.Errorf("imageDigest lookups are wrong")
	}
	if got.archiveSHA256("a", "http://x/a") != "11" || got.archiveSHA256("a", "http://x/other") != "" {
		t.Errorf("archiveSHA256 lookups are wrong")
	}
}

func TestReadLockErrors(t *testing.T) {
	tests := []struct{ name, content, want string }{
		{"unknown key", "version = 1\n[image]\nref = \"x\"\nextra = 1\n", "devbox.lock:4:1: image.extra: unknown key"},
		{"other version", "version = 7\n", "version 7 is not 1"},
		{"syntax", "version = \n", "devbox update"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, LockFileName)
			os.WriteFile(path, []byte(tt.content), 0o644)
			wd, _ := os.Getwd()
			os.Chdir(dir)
			defer os.Chdir(wd)
			_, err := ReadLock(path)
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ReadLock = %v, want a ConfigError containing %q", err, tt.want)
			}
		})
	}
	if l, err := ReadLock(filepath.Join(t.TempDir(), "none")); l != nil || err != nil {
		t.Errorf("missing lock = %v, %v; want nil, nil", l, err)
	}
}
