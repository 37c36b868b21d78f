package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/devboxhq/devbox/env"
)

// factoryEnv is a fake environment for readRegistrySettings.
type factoryEnv map[string]string

func (e factoryEnv) get(k string) string { return e[k] }

func TestParseMirrorsEnv(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string][]string
		wantErr string
	}{
		{in: "127.0.0.1:5001", want: map[string][]string{"docker.io": {"127.0.0.1:5001"}}},
		{
			in:   "docker.io=127.0.0.1:5001, ghcr.io=mirror.example:5000,docker.io=https://mirror.gcr.io",
			want: map[string][]string{"docker.io": {"127.0.0.1:5001", "https://mirror.gcr.io"}, "ghcr.io": {"mirror.example:5000"}},
		},
		{in: " , mirror.gcr.io ,", want: map[string][]string{"docker.io": {"mirror.gcr.io"}}},
		{in: "docker.io=", wantErr: `"docker.io=" is not registry=mirror`},
		{in: "=mirror:5000", wantErr: `"=mirror:5000" is not registry=mirror`},
		{in: "docker.io=mirror.example/path", wantErr: `mirrors for docker.io: "mirror.example/path": a mirror is a registry host[:port], without a path`},
		{in: "ghcr.io/org=m:1", wantErr: `mirrors: "ghcr.io/org" is not a registry name`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseMirrorsEnv(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseMirrorsEnv = %v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseMirrorsEnv = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestReadRegistrySettings(t *testing.T) {
	tests := []struct {
		name string
		// file is the content of $XDG_CONFIG_HOME/devbox/config.toml; none
		// when empty.
		file string
		env  factoryEnv
		want *registrySettings
		// wantErr is the whole error; {file} stands for the file's path.
		wantErr string
	}{
		{name: "nothing set", want: &registrySettings{}},
		{
			name: "environment only",
			env:  factoryEnv{"DEVBOX_REGISTRY_MIRRORS": "127.0.0.1:5001", "DEVBOX_INSECURE_REGISTRIES": "10.0.0.1:5000, ,reg.lan"},
			want: &registrySettings{Mirrors: map[string][]string{"docker.io": {"127.0.0.1:5001"}}, Insecure: []string{"10.0.0.1:5000", "reg.lan"}},
		},
		{
			name: "file only",
			file: `# mirrors for my network
[registry]
mirrors = { "docker.io" = ["mirror.lan:5000", "https://mirror.gcr.io"], "ghcr.io" = ["ghcr-mirror.lan"] }
insecure = ["mirror.lan:5000"]
`,
			want: &registrySettings{
				Mirrors:  map[string][]string{"docker.io": {"mirror.lan:5000", "https://mirror.gcr.io"}, "ghcr.io": {"ghcr-mirror.lan"}},
				Insecure: []string{"mirror.lan:5000"},
			},
		},
		{
			name: "sub-table form",
			file: "[registry.mirrors]\n\"docker.io\" = [\"mirror.lan:5000\"]\n",
			want: &registrySettings{Mirrors: map[string][]string{"docker.io": {"mirror.lan:5000"}}},
		},
		{
			name: "environment replaces the file's mirrors, insecure lists add up",
			file: "[registry]\nmirrors = { \"docker.io\" = [\"file.lan\"] }\ninsecure = [\"file.lan\"]\n",
			env:  factoryEnv{"DEVBOX_REGISTRY_MIRRORS": "ghcr.io=env.lan", "DEVBOX_INSECURE_REGISTRIES": "env.lan"},
			want: &registrySettings{Mirrors: map[string][]string{"ghcr.io": {"env.lan"}}, Insecure: []string{"file.lan", "env.lan"}},
		},
		{
			name:    "unknown key",
			file:    "[registry]\ninsecure = []\nmirror = { \"docker.io\" = [\"m:1\"] }\n",
			wantErr: "{file}:3:1: registry.mirror: unknown key (did you mean registry.mirrors?)",
		},
		{
			name:    "unknown table",
			file:    "\n[registri]\nmirrors = {}\n",
			wantErr: "{file}:2:1: registri: unknown key (did you mean registry?)",
		},
		{
			name:    "bad mirror",
			file:    "[registry]\n\n  mirrors = { \"docker.io\" = [\"http://m.lan/x\"] }\n",
			wantErr: `{file}:3:3: registry.mirrors: mirrors for docker.io: "http://m.lan/x": a mirror is a registry host[:port], without a path`,
		},
		{
			name:    "bad insecure host",
			file:    "[registry]\ninsecure = [\"https://x\"]\n",
			wantErr: `{file}:2:1: registry.insecure: "https://x" is not a registry host[:port]`,
		},
		{
			name:    "wrong type",
			file:    "[registry]\ninsecure = \"x\"\n",
			wantErr: `{file}:2:1: registry.insecure: expected an array of strings, found the string "x"`,
		},
		{
			name:    "syntax error",
			file:    "[registry\n",
			wantErr: "{file}:2:10: expected '.' or ']' to end table name",
		},
		{
			name:    "bad environment",
			env:     factoryEnv{"DEVBOX_REGISTRY_MIRRORS": "docker.io="},
			wantErr: `$DEVBOX_REGISTRY_MIRRORS: "docker.io=" is not registry=mirror (e.g. docker.io=127.0.0.1:5001)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgHome := t.TempDir()
			file := filepath.Join(cfgHome, "devbox", "config.toml")
			if tt.file != "" {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			e := factoryEnv{"XDG_CONFIG_HOME": cfgHome, "HOME": "/nonexistent"}
			for k, v := range tt.env {
				e[k] = v
			}
			got, err := readRegistrySettings(e.get)
			if tt.wantErr != "" {
				want := strings.ReplaceAll(tt.wantErr, "{file}", file)
				if err == nil || !strings.HasPrefix(err.Error(), want) {
					t.Fatalf("readRegistrySettings = %+v, %v; want an error starting %q", got, err, want)
				}
				// Exit status 2, as for other configuration errors.
				var ce *env.ConfigError
				if !errors.As(err, &ce) {
					t.Errorf("error %T is not an *env.ConfigError", err)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is more than one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("readRegistrySettings: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("readRegistrySettings = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestUserConfigPath(t *testing.T) {
	tests := []struct {
		env  factoryEnv
		want string
	}{
		{env: factoryEnv{"XDG_CONFIG_HOME": "/cfg", "HOME": "/home/u"}, want: "/cfg/devbox/config.toml"},
		{env: factoryEnv{"XDG_CONFIG_HOME": "relative", "HOME": "/home/u"}, want: "/home/u/.config/devbox/config.toml"},
		{env: factoryEnv{"HOME": "/home/u"}, want: "/home/u/.config/devbox/config.toml"},
		{env: factoryEnv{}, want: ""},
	}
	for _, tt := range tests {
		if got := userConfigPath(tt.env.get); got != tt.want {
			t.Errorf("userConfigPath(%v) = %q, want %q", tt.env, got, tt.want)
		}
	}
}

// TestFactoryPullOptions: the Factory's PullOptions surface a bad setting
// as an error before any pull.
func TestFactoryPullOptions(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("DEVBOX_REGISTRY_MIRRORS", "docker.io=127.0.0.1:5001")
	f, _, _ := testFactory()
	opts, err := f.PullOptions()
	if err != nil || len(opts) == 0 {
		t.Fatalf("PullOptions = %d options, %v", len(opts), err)
	}
	t.Setenv("DEVBOX_REGISTRY_MIRRORS", "docker.io=bad/mirror")
	if _, err := f.PullOptions(); err == nil || exitCode(err, &strings.Builder{}) != 2 {
		t.Errorf("PullOptions with a bad mirror: %v, want a configuration error (exit 2)", err)
	}
}
