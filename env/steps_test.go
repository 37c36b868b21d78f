package env

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/mounts"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func testImage(t *testing.T, digest string) *image.Image {
	t.Helper()
	h, err := v1.NewHash("sha256:" + digest)
	if err != nil {
		t.Fatal(err)
	}
	return &image.Image{Ref: "r", Digest: h}
}

const (
	digestA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func baseConfig() *Config {
	return &Config{
		Image: ImageConfig{Ref: "debian"},
		Tools: ToolsConfig{
			Packages: []string{"jq"},
			Archive:  []ArchiveConfig{{Name: "hello", URL: "http://h/hello.tgz", Strip: 1}},
		},
		Setup: SetupConfig{Run: []string{"make deps"}},
	}
}

// TestStepKeys: a step's key changes exactly when it or anything before it
// changes, so editing a later step reuses the earlier layers.
func TestStepKeys(t *testing.T) {
	base := planSteps(baseConfig(), testImage(t, digestA), []string{"s1"}, mounts.RootFSOverlay)
	if len(base) != 3 || base[0].Kind != StepPackages || base[1].Kind != StepArchive || base[2].Kind != StepSetup {
		t.Fatalf("steps = %+v", base)
	}
	tests := []struct {
		name    string
		modify  func(*Config)
		digest  string
		sha     string
		changed []bool // per step: does its key change?
	}{
		{"nothing", func(*Config) {}, digestA, "s1", []bool{false, false, false}},
		{"shell init", func(c *Config) { c.Shell.Init = "echo hi" }, digestA, "s1", []bool{false, false, false}},
		{"env and scripts", func(c *Config) { c.Env = map[string]string{"A": "1"}; c.Scripts = map[string]string{"t": "x"} }, digestA, "s1", []bool{false, false, false}},
		{"setup", func(c *Config) { c.Setup.Run = []string{"make deps", "make more"} }, digestA, "s1", []bool{false, false, true}},
		{"archive checksum", func(*Config) {}, digestA, "s2", []bool{false, true, true}},
		{"archive strip", func(c *Config) { c.Tools.Archive[0].Strip = 0 }, digestA, "s1", []bool{false, true, true}},
		{"packages", func(c *Config) { c.Tools.Packages = []string{"jq", "make"} }, digestA, "s1", []bool{true, true, true}},
		{"image", func(*Config) {}, digestB, "s1", []bool{true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig()
			tt.modify(cfg)
			steps := planSteps(cfg, testImage(t, tt.digest), []string{tt.sha}, mounts.RootFSOverlay)
			for i, want := range tt.changed {
				if got := steps[i].Key != base[i].Key; got != want {
					t.Errorf("step %s: key changed = %v, want %v", steps[i].Name, got, want)
				}
			}
		})
	}
}

func TestStepKeysOfSnapshots(t *testing.T) {
	overlay := planSteps(baseConfig(), testImage(t, digestA), []string{"s1"}, mounts.RootFSOverlay)
	snapshot := planSteps(baseConfig(), testImage(t, digestA), []string{"s1"}, mounts.RootFSCopy)
	for i := range overlay {
		if overlay[i].Key == snapshot[i].Key {
			t.Errorf("step %s: a snapshot layer shares its key with a diff layer", overlay[i].Name)
		}
	}
}

func TestDetectPackageManager(t *testing.T) {
	mk := func(t *testing.T, files ...string) string {
		dir := t.TempDir()
		for _, f := range files {
			p := filepath.Join(dir, f)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	whiteout := func(t *testing.T, file string) string {
		dir := t.TempDir()
		p := filepath.Join(dir, file)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink("/nowhere", p); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tests := []struct {
		name   string
		layers func(t *testing.T) []string
		want   string
	}{
		{"debian", func(t *testing.T) []string { return []string{mk(t, "usr/bin/apt-get", "usr/bin/dpkg")} }, "apt"},
		{"alpine", func(t *testing.T) []string { return []string{mk(t, "sbin/apk")} }, "apk"},
		{"fedora in an upper layer", func(t *testing.T) []string { return []string{mk(t, "etc/x"), mk(t, "usr/bin/dnf")} }, "dnf"},
		{"ubi micro", func(t *testing.T) []string { return []string{mk(t, "usr/bin/microdnf")} }, "microdnf"},
		{"hidden by an upper layer", func(t *testing.T) []string { return []string{mk(t, "usr/bin/apt-get"), whiteout(t, "usr/bin/apt-get")} }, ""},
		{"busybox", func(t *testing.T) []string { return []string{mk(t, "bin/busybox")} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pm, ok := detectPackageManager(tt.layers(t))
			if pm.name != tt.want || ok != (tt.want != "") {
				t.Errorf("detected %q (%v), want %q", pm.name, ok, tt.want)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"jq": "'jq'", "a b": "'a b'", "it's": `'it'\''s'`, "$(x)": "'$(x)'"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
