package env

import (
	"slices"
	"strings"
	"testing"
)

func TestExpandEnvRefs(t *testing.T) {
	local := map[string]string{"NPM_TOKEN": "s3cret", "EMPTY": ""}
	container := map[string]string{"PATH": "/usr/bin:/bin", "HOME": "/home/u"}
	lookup := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	for _, tt := range []struct{ in, want string }{
		{"plain", "plain"},
		{"${localEnv:NPM_TOKEN}", "s3cret"},
		{"/opt/x/bin:${containerEnv:PATH}", "/opt/x/bin:/usr/bin:/bin"},
		{"${containerEnv:HOME}/.cache and ${localEnv:NPM_TOKEN}!", "/home/u/.cache and s3cret!"},
		{"${localEnv:UNSET}", ""},
		{"${localEnv:UNSET:fallback}", "fallback"},
		{"${localEnv:UNSET:http://proxy:3128}", "http://proxy:3128"},
		{"${localEnv:EMPTY:fallback}", ""},
		{"${containerEnv:PATH}", "/usr/bin:/bin"},
		// The host's value is not the container's, and other ${...} stay.
		{"${containerEnv:NPM_TOKEN:none}", "none"},
		{"${HOME}/bin:${debian_chroot:+x}", "${HOME}/bin:${debian_chroot:+x}"},
		{"$${localEnv:NPM_TOKEN}", "$s3cret"},
	} {
		if got := expandEnvRefs(tt.in, lookup(local), lookup(container)); got != tt.want {
			t.Errorf("expandEnvRefs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEnvRefsMalformed(t *testing.T) {
	for _, v := range []string{"${localEnv:X", "${LocalEnv:X}", "${CONTAINERENV:X}", "${localEnv:}", "${localEnv:1X}", "${containerEnv:A-B}"} {
		if _, err := envRefs(v); err == nil {
			t.Errorf("envRefs(%q) accepted it", v)
		}
	}
}

// TestEnvironmentRefs: [env] takes host variables only where a value names
// them, and ${containerEnv:PATH} is the PATH before [env].
func TestEnvironmentRefs(t *testing.T) {
	t.Setenv("DEVBOX_TEST_TOKEN", "tok")
	t.Setenv("DEVBOX_TEST_UNNAMED", "leak")
	cfg := &Config{Env: map[string]string{
		"TOKEN": "${localEnv:DEVBOX_TEST_TOKEN}",
		"PATH":  "/opt/tool/bin:${containerEnv:PATH}",
	}}
	env := environment([]string{"PATH=/usr/bin:/bin"}, cfg, User{Name: "u", Home: "/home/u"}, "/p", nil, imageFiles{}, "")
	for _, want := range []string{"TOKEN=tok", "PATH=/opt/tool/bin:/usr/local/bin:/usr/bin:/bin"} {
		if !slices.Contains(env, want) {
			t.Errorf("environment %q lacks %s", env, want)
		}
	}
	for _, kv := range env {
		if strings.Contains(kv, "leak") {
			t.Errorf("a host variable no value names came in: %s", kv)
		}
	}
}

// FuzzEnvRefs: any value is either refused or split into references
// that are "${...}" spans in order, and expanding it never fails.
func FuzzEnvRefs(f *testing.F) {
	for _, s := range []string{"${localEnv:A}", "x${containerEnv:PATH:/bin}y", "${localEnv:", "${LOCALENV:X}", "${a:b}", "$${localEnv:A:}}", "${containerEnv:A:${localEnv:B}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		refs, err := envRefs(v)
		if err != nil {
			return
		}
		last := 0
		for _, r := range refs {
			if r.start < last || r.end <= r.start || !strings.HasPrefix(v[r.start:r.end], "${"+r.kind+":"+r.name) || v[r.end-1] != '}' {
				t.Fatalf("envRefs(%q): bad span %+v", v, r)
			}
			last = r.end
		}
		none := func(string) (string, bool) { return "", false }
		if out := expandEnvRefs(v, none, none); len(refs) == 0 && out != v {
			t.Fatalf("expandEnvRefs(%q) = %q without references", v, out)
		}
	})
}
