package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/devboxhq/devbox/internal/testimages"
)

// TestHostIntegration: inside, the environment is the image's, [env] and
// a few host variables, and nothing else of the host's; no variable of
// devbox's own leaks; ~/.gitconfig and git's XDG file are there read-only
// and the SSH agent's socket is forwarded, as is GnuPG's agent with the
// public keyring.
func TestHostIntegration(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.writeConfig(t, "[image]\nref = \""+imageRef(suite.registry, "busybox")+"\"\n[env]\nFROM_CONFIG = \"yes\"\n"+
		"NAMED = \"${localEnv:HOST_NAMED}\"\nPROXY = \"${localEnv:HOST_UNSET:none}\"\nMORE_PATH = \"/opt/x:${containerEnv:PATH}\"\n")
	if err := os.WriteFile(filepath.Join(e.Home, ".gitconfig"), []byte("[user]\n\tname = Tester\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// git's XDG file, under $XDG_CONFIG_HOME, which the harness sets.
	if err := os.MkdirAll(filepath.Join(e.Config, "git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.Config, "git", "config"), []byte("[alias]\n\tst = status\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := fakeAgent(t, "agent.sock")

	// GnuPG's agent, by its extra socket, and the public keyring.
	gnupg := filepath.Join(e.Home, ".gnupg")
	if err := os.Mkdir(gnupg, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gnupg, "pubring.kbx"), []byte("public-keys\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gpgLn, err := net.Listen("unix", filepath.Join(gnupg, "S.gpg-agent.extra"))
	if err != nil {
		t.Fatal(err)
	}
	defer gpgLn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	script := `env; test -S "$SSH_AUTH_SOCK" && echo agent-ok; cat ~/.gitconfig ~/.config/git/config; echo x >> ~/.gitconfig || echo gitconfig-readonly
test -S ~/.gnupg/S.gpg-agent && echo gpg-agent-ok; stat -c gnupg-mode=%a ~/.gnupg; cat ~/.gnupg/pubring.kbx; echo x >> ~/.gnupg/pubring.kbx || echo pubring-readonly`
	cmd := exec.CommandContext(ctx, suite.bin, "run", "--", "sh", "-c", script)
	cmd.Dir = e.Project
	cmd.Env = append(e.environ(), "LANG=C.UTF-8", "TZ=Europe/Paris", "HOST_SECRET=leak", "HOST_NAMED=named",
		"SSH_AUTH_SOCK="+agent)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("devbox run: %v\n%s", err, out)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			vars[k] = v
		}
	}
	for k, want := range map[string]string{
		"LANG": "C.UTF-8", "TZ": "Europe/Paris", "FROM_CONFIG": "yes",
		"SSH_AUTH_SOCK": "/run/host-services/ssh-auth.sock", "DEVBOX_TEST_IMAGE": "busybox", "DEVBOX": "1",
		// What [env] names of the host's, and of the image's.
		"NAMED": "named", "PROXY": "none", "MORE_PATH": "/opt/x:/usr/local/bin:" + testimages.ImagePath,
	} {
		if vars[k] != want {
			t.Errorf("%s = %q inside, want %q", k, vars[k], want)
		}
	}
	for k := range vars {
		if k == "HOST_SECRET" || k == "HOST_NAMED" || strings.HasPrefix(k, "_DEVBOX") || k == "XDG_DATA_HOME" {
			t.Errorf("%s leaked into the sandbox", k)
		}
	}
	for _, want := range []string{"agent-ok", "name = Tester", "st = status", "gitconfig-readonly",
		"gpg-agent-ok", "gnupg-mode=700", "public-keys", "pubring-readonly"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	checkHostCertificates(t, e)
}

// checkHostCertificates: a host that trusts certificate authorities of
// its own (Debian's /usr/local/share/ca-certificates, as this machine's
// TLS-inspecting egress proxy needs) has its bundle inside, named by
// SSL_CERT_FILE and the other clients' variables; another host has none.
func checkHostCertificates(t *testing.T, e *testEnv) {
	t.Helper()
	local, _ := filepath.Glob("/usr/local/share/ca-certificates/*")
	bundle, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	r := e.mustRun(t, "run", "--", "sh", "-c", `echo "$SSL_CERT_FILE $NODE_EXTRA_CA_CERTS $REQUESTS_CA_BUNDLE"; test -n "$SSL_CERT_FILE" && cat "$SSL_CERT_FILE"`)
	first, inside, _ := strings.Cut(r.Stdout, "\n")
	if len(local) == 0 || err != nil {
		if strings.TrimSpace(first) != "" {
			t.Errorf("a host without authorities of its own: want no certificate variables inside; %s", r)
		}
		return
	}
	want := "/run/host-services/ca-certificates.crt"
	if first != want+" "+want+" "+want || inside != string(bundle) {
		t.Errorf("want the host's bundle at %s, named by the variables; %s", want, r)
	}
}

// TestOfflineWithoutNetwork: once an environment is built, devbox run
// works inside a network namespace with nothing but a loopback that is
// down: no registry, no name server, no route.
func TestOfflineWithoutNetwork(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	e := newEnv(t, "")
	e.writeConfig(t, "[image]\nref = \""+imageRef(suite.registry, "busybox")+"\"\n[setup]\nrun = [\"echo built > /etc/built\"]\n")
	e.mustRun(t, "run", "--", "true")

	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", "--map-root-user", "--", suite.bin, "run", "--", "cat", "/etc/built")
	cmd.Dir, cmd.Env = e.Project, e.environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("devbox run without a network: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "built") || strings.Contains(string(out), "pulling") || strings.Contains(string(out), "building") {
		t.Errorf("want the built environment with no pull or build; got:\n%s", out)
	}
}

// TestRunEnvFlag: --env sets a variable, or passes the host's, over the
// image's and [env]; a host variable that is unset stays out.
func TestRunEnvFlag(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.writeConfig(t, imageTOML(imageRef(suite.registry, "busybox"))+"[env]\nA = \"from devbox.toml\"\n")
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, suite.bin, "run", "-e", "A=from the flag", "-e", "FROM_HOST", "-e", "UNSET_ON_HOST", "-e", "PATH=/opt/x:/bin", "--",
		"sh", "-c", `echo "A=$A"; echo "FROM_HOST=$FROM_HOST"; echo "UNSET_ON_HOST=${UNSET_ON_HOST-unset}"; echo "PATH=$PATH"`)
	cmd.Dir, cmd.Env = e.Project, append(e.environ(), "FROM_HOST=host value")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("devbox run: %v\n%s", err, out)
	}
	want := map[string]string{"A": "from the flag", "FROM_HOST": "host value", "UNSET_ON_HOST": "unset", "PATH": "/opt/x:/bin"}
	if got := keyValues(string(out)); !maps.Equal(got, want) {
		t.Errorf("inside: %q, want %q", got, want)
	}
}

// TestDoctor: devbox doctor passes on this machine (the e2e tests run
// here), and says what of the host's a sandbox gets: the SSH agent as
// forwarded or a warning with its fix, and the host's certificates as
// they are.
func TestDoctor(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	agent := fakeAgent(t, "agent.sock")
	for _, tt := range []struct {
		sock, wantSSH string
		sshOK         bool
	}{
		{agent, "forwarded: " + agent, true},
		{"", "SSH_AUTH_SOCK names no agent's socket", false},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		cmd := exec.CommandContext(ctx, suite.bin, "doctor", "--json")
		cmd.Dir, cmd.Env = e.Project, append(e.environ(), "SSH_AUTH_SOCK="+tt.sock)
		out, err := cmd.Output()
		cancel()
		if err != nil {
			t.Fatalf("devbox doctor: %v\n%s", err, out)
		}
		var checks []struct {
			Name, Detail, Fix string
			OK, Required      bool
		}
		if err := json.Unmarshal(out, &checks); err != nil {
			t.Fatalf("doctor --json: %v\n%s", err, out)
		}
		found := map[string]bool{}
		for _, c := range checks {
			switch {
			case c.Required && !c.OK:
				t.Errorf("required check %q failed: %s", c.Name, c.Detail)
			case strings.HasPrefix(c.Name, "SSH agent"):
				found["ssh"] = true
				if c.OK != tt.sshOK || !strings.HasPrefix(c.Detail, tt.wantSSH) || (!c.OK && c.Fix == "") {
					t.Errorf("SSH_AUTH_SOCK=%q: %+v, want ok=%v and %q", tt.sock, c, tt.sshOK, tt.wantSSH)
				}
			case strings.HasPrefix(c.Name, "warm runs"):
				// make build links the front on amd64.
				found["front"] = true
				if c.OK != (runtime.GOARCH == "amd64") {
					t.Errorf("the front: %+v, want ok on amd64 only", c)
				}
			case c.Name == "certificate authorities":
				found["ca"] = true
				local, _ := filepath.Glob("/usr/local/share/ca-certificates/*")
				if own := strings.Contains(c.Detail, "authorities of its own"); own != (len(local) > 0) {
					t.Errorf("certificates: %q, with %d local authorities on the host", c.Detail, len(local))
				}
			}
		}
		if !found["ssh"] || !found["ca"] || !found["front"] {
			t.Errorf("doctor lacks the host's lines:\n%s", out)
		}
	}
}
