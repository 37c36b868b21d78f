package e2e

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestSubuid: with userns = "subuid" a process inside switches to another
// user for real, files it makes belong to that user's subordinate id, you
// are still yourself, and 'devbox reset' removes what the other user left.
func TestSubuid(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		if _, err := exec.LookPath("newuidmap"); err != nil {
			t.Skip("needs newuidmap (Debian: uidmap)")
		}
		if b, err := os.ReadFile("/etc/subuid"); err != nil || !hasSubuid(string(b)) {
			t.Skip("needs a range in /etc/subuid for this user")
		}
	}
	e := newEnv(t, "")
	e.writeConfig(t, "[image]\nref = \""+imageRef(suite.registry, "busybox")+"\"\n[sandbox]\nuserns = \"subuid\"\n")
	r := e.mustRun(t, "run", "--root", "--", "sh", "-c", `mkdir -p /srv/db && chown 65534:65534 /srv/db && su -s /bin/sh nobody -c "touch /srv/db/x; id -u"`)
	if strings.TrimSpace(r.Stdout) != "65534" {
		t.Errorf("su nobody runs as %q, want 65534; %s", r.Stdout, r)
	}
	r = e.mustRun(t, "run", "--", "sh", "-c", "id -u; stat -c %u /srv/db/x")
	if got := strings.Fields(r.Stdout); len(got) != 2 || got[0] != strconv.Itoa(os.Getuid()) || got[1] != "65534" {
		t.Errorf("as the user: %q, want uid %d and a file of 65534; %s", r.Stdout, os.Getuid(), r)
	}
	e.mustRun(t, "reset")
	if r := e.run(t, "run", "--", "ls", "/srv/db"); r.Code == 0 {
		t.Errorf("after reset, /srv/db is still there: %s", r)
	}
}

// hasSubuid reports whether the current uid has a line in /etc/subuid.
func hasSubuid(file string) bool {
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		return false
	}
	return strings.Contains("\n"+file, "\n"+strings.TrimSpace(string(out))+":")
}
