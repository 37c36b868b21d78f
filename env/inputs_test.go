package env

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/devboxhq/devbox/mounts"
)

// TestInputsNoted checks that what making a Spec looks at on the host,
// found or not, is noted, and that the image's layers, which do not
// change, are not.
func TestInputsNoted(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	project := filepath.Join(repo, "svc")
	upper, layer := filepath.Join(dir, "upper"), filepath.Join(dir, "layer")
	for _, d := range []string{project, filepath.Join(repo, ".git"), upper, filepath.Join(layer, "usr/lib/locale")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "agent.sock")
	t.Setenv("SSH_AUTH_SOCK", sock)
	t.Setenv("LANG", "de_DE.UTF-8")
	t.Setenv("FROM_HOST", "x")

	in := &Inputs{}
	h := host{in}
	if got := h.repositoryRoot(project); got != repo {
		t.Fatalf("repositoryRoot = %s, want %s", got, repo)
	}
	h.sshAgentSocket()
	cfg := &Config{Env: map[string]string{"X": "${localEnv:FROM_HOST}"}}
	environment(nil, cfg, User{Name: "u", Home: "/home/u"}, "/p", nil, filesOf(mounts.View{Upper: upper, Layers: []string{layer}}, h), "")
	in.AddIdentity(layer)

	for _, p := range []string{filepath.Join(project, ".git"), filepath.Join(repo, ".git"), sock,
		filepath.Join(upper, "usr/lib/locale")} {
		if !slices.Contains(in.paths, p) {
			t.Errorf("%s is not noted; noted: %q", p, in.paths)
		}
	}
	for _, p := range in.paths {
		if mounts.IsBeneath(p, layer) {
			t.Errorf("%s, in a layer, is noted", p)
		}
	}
	for _, name := range []string{"FROM_HOST", "LANG", "SSH_AUTH_SOCK", "TERM", "TZ"} {
		if !slices.Contains(in.EnvNames(), name) {
			t.Errorf("variable %s is not noted; noted: %q", name, in.EnvNames())
		}
	}
	found := false
	for _, i := range in.Front() {
		if i.Path == layer {
			found = i.Identity
		}
		if i.Path == sock && i.Stat[0]>>63 == 0 {
			t.Errorf("the missing %s is noted as found", sock)
		}
	}
	if !found {
		t.Errorf("the layer is not noted by identity")
	}
}
