package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/devboxhq/devbox/internal/testimages"
)

// imageTOML is the [image] table naming ref.
func imageTOML(ref string) string {
	return fmt.Sprintf("[image]\nref = %s\n\n", tomlQuote(ref))
}

// helloTOML is the [[tools.archive]] of the hello tar.gz on srv, linked
// into /usr/local/bin; an empty sha leaves it to devbox.lock.
func helloTOML(srv *archiveServer, sha string) string {
	s := fmt.Sprintf("[[tools.archive]]\nname = \"hello\"\nurl = %s\nstrip = 1\nbin = [\"bin/hello\"]\n", tomlQuote(srv.URL(helloArchive)))
	if sha != "" {
		s += fmt.Sprintf("sha256 = %q\n", sha)
	}
	return s + "\n"
}

// toolTOML is the [[tools.archive]] of the tool zip on srv, named after
// its file and added to PATH; an empty sha leaves it to devbox.lock.
func toolTOML(srv *archiveServer, sha string) string {
	s := fmt.Sprintf("[[tools.archive]]\nurl = %s\nstrip = 1\npath = [\"bin\"]\n", tomlQuote(srv.URL(toolArchive)))
	if sha != "" {
		s += fmt.Sprintf("sha256 = %q\n", sha)
	}
	return s + "\n"
}

// shellSetupTOML is the [shell] init and [setup] run tables, each only if
// set.
func shellSetupTOML(init string, setup []string) string {
	var s string
	if init != "" {
		s += fmt.Sprintf("[shell]\ninit = %s\n\n", tomlQuote(init))
	}
	if len(setup) > 0 {
		s += fmt.Sprintf("[setup]\nrun = %s\n\n", tomlStrings(setup))
	}
	return s
}

// The busybox image's PATH lacks /usr/local/bin, where [[tools.archive]]
// bin links go; the busybox tests call the link by its path.
const helloBin = "/usr/local/bin/hello"

// TestEnvDebian is the environment of the "done when": Debian
// bookworm with a package and an archive, built once, then used with the
// registry and the archive server gone, and edited without rebuilding what
// did not change. One store across the subtests: installing jq takes
// seconds.
func TestEnvDebian(t *testing.T) {
	t.Parallel()
	requireDebian(t)
	reg := ownDebianRegistry(t)
	srv := newArchiveServer(t)
	ref := reg.Addr + "/" + debianRepo
	digest, err := registryDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	config := func(init string, setup []string) string {
		return imageTOML(ref) + "[tools]\npackages = [\"jq\"]\n\n" + helloTOML(srv, "") + shellSetupTOML(init, setup)
	}
	const probe = "jq --version; hello"
	wantProbe := []string{"jq-1.6", helloMarker}

	e := newEnv(t, "")
	e.writeConfig(t, config("", nil))
	var lock []byte
	ok := t.Run("first run builds packages and archive", func(t *testing.T) {
		r := e.mustRun(t, "run", "--", "jq", "--version")
		if got := strings.TrimSpace(r.Stdout); got != "jq-1.6" {
			t.Errorf("jq --version printed %q, want jq-1.6; %s", got, r)
		}
		checkBuilt(t, r, false, "packages", "archive hello")
		if len(networkLines(r)) == 0 {
			t.Errorf("the first run says nothing of pulling the image; %s", r)
		}
		r = e.mustRun(t, "run", "--", "hello", "a", "b")
		if got, want := strings.TrimSpace(r.Stdout), helloMarker+" a b"; got != want {
			t.Errorf("hello printed %q, want %q; %s", got, want, r)
		}
		checkBuilt(t, r, true)
		var l lockFile
		lock, l = e.readLock(t)
		checkLock(t, l, ref, digest, map[string]string{"hello": srv.SHA256(helloArchive)})
		if n := srv.Hits(helloArchive); n != 1 {
			t.Errorf("the archive was requested %d times, want once", n)
		}
		checkStoreClean(t, e)
	})
	if !ok {
		return
	}
	ok = t.Run("offline", func(t *testing.T) {
		if err := reg.Stop(); err != nil {
			t.Fatal(err)
		}
		if registryUp(reg.Addr) {
			t.Fatalf("registry %s still answers after Stop", reg.Addr)
		}
		srv.Close(t)
		for range 2 {
			r := e.mustRun(t, "run", "--", "sh", "-c", probe)
			if got := lines(r.Stdout); !slices.Equal(got, wantProbe) {
				t.Errorf("output %q, want %q; %s", got, wantProbe, r)
			}
			checkBuilt(t, r, true)
			if got, _ := e.readLock(t); !bytes.Equal(got, lock) {
				t.Errorf("devbox.lock changed:\n%s\nwas:\n%s", got, lock)
			}
		}
	})
	if !ok {
		return
	}
	ok = t.Run("edits", func(t *testing.T) {
		runStepCacheCases(t, e, config, probe, wantProbe, true)
	})
	if !ok {
		return
	}
	ok = t.Run("the host's time zone", func(t *testing.T) {
		// The host says its zone by /etc/localtime, as most do, and TZ is
		// not set (environ): the image has the zone's file, so TZ names it.
		target, err := os.Readlink("/etc/localtime")
		_, zone, linked := strings.Cut(target, "/zoneinfo/")
		if err != nil || !linked {
			t.Skipf("the host's /etc/localtime names no zone (%q, %v)", target, err)
		}
		r := e.mustRun(t, "run", "--", "sh", "-c", `echo "TZ=$TZ"; date +%Z`)
		if !strings.HasPrefix(r.Stdout, "TZ="+zone+"\n") {
			t.Errorf("want TZ=%s inside; %s", zone, r)
		}
		want, _ := exec.Command("date", "+%Z").Output()
		if !strings.HasSuffix(r.Stdout, string(want)) {
			t.Errorf("the zone's abbreviation differs from the host's (%q); %s", want, r)
		}
	})
	if !ok {
		return
	}
	ok = t.Run("a host locale the image lacks", func(t *testing.T) {
		// The image has C.UTF-8 only: the host's en_US.UTF-8 would make
		// perl, and so apt and dpkg, warn at every start.
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, suite.bin, "run", "--", "sh", "-c", `perl -e 'print "LANG=$ENV{LANG}\n"'`)
		cmd.Dir, cmd.Env = e.Project, append(e.environ(), "LANG=en_US.UTF-8")
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "LANG=C.UTF-8\n" {
			t.Errorf("want LANG=C.UTF-8 and no warning (%v):\n%s", err, out)
		}
	})
	if !ok {
		return
	}
	ok = t.Run("a host terminal the image lacks", func(t *testing.T) {
		// Debian's terminal database has no kitty: xterm-256color stands
		// in, and tput finds it; one the image has stays.
		for term, want := range map[string]string{"xterm-kitty": "xterm-256color", "linux": "linux"} {
			ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
			cmd := exec.CommandContext(ctx, suite.bin, "run", "--", "sh", "-c", `echo "$TERM"; tput colors`)
			cmd.Dir, cmd.Env = e.Project, append(e.environ(), "TERM="+term)
			out, err := cmd.CombinedOutput()
			cancel()
			if got := strings.Fields(string(out)); err != nil || len(got) != 2 || got[0] != want {
				t.Errorf("TERM=%s on the host: want TERM=%s inside and tput working (%v):\n%s", term, want, err, out)
			}
		}
	})
	if !ok {
		return
	}
	ok = t.Run("the host name resolves", func(t *testing.T) {
		r := e.mustRun(t, "run", "--", "getent", "hosts", "devbox")
		if got := strings.Fields(r.Stdout); !slices.Equal(got, []string{"127.0.1.1", "devbox"}) {
			t.Errorf("getent hosts devbox printed %q, want 127.0.1.1 devbox; %s", got, r)
		}
	})
	if !ok {
		return
	}
	t.Run("root adds a system user", func(t *testing.T) {
		// useradd replaces /etc/passwd by a rename, as the scripts of
		// packages that add a system user do through it: root must have
		// the layer's own file, not a copy bound over it. apt, asked by the
		// user rather than by a setup step, must download without
		// switching to its _apt user, which root emulation only pretends.
		e.mustRun(t, "run", "--root", "--", "useradd", "--system", "--no-create-home", "devbox-svc")
		e.mustRun(t, "run", "--root", "--", "sh", "-c",
			"apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends uuid-runtime")
		me, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		r := e.mustRun(t, "run", "--", "sh", "-c", "for u in devbox-svc uuidd; do getent passwd $u | cut -d: -f1; done; id -un")
		want := []string{"devbox-svc", "uuidd", me.Username}
		if got := lines(r.Stdout); !slices.Equal(got, want) {
			t.Errorf("after useradd and apt-get install as root, output %q, want %q; %s", got, want, r)
		}
	})
	t.Run("sudo installs a package", func(t *testing.T) {
		// The user's own command, as typed in a shell: sudo runs apt as
		// root in the same sandbox, and the package stays in the
		// project's writable layer.
		r := e.mustRun(t, "run", "--", "sh", "-c",
			"sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tree >/dev/null && tree --version")
		if !strings.HasPrefix(r.Stdout, "tree v") {
			t.Errorf("after sudo apt-get install tree; %s", r)
		}
		if r := e.mustRun(t, "run", "--", "sh", "-c", "command -v tree; dpkg-query -W -f='${Status}' tree"); r.Stdout != "/usr/bin/tree\ninstall ok installed" {
			t.Errorf("tree is not installed in a later run; %s", r)
		}
	})
}

// TestEnvStepCache is TestEnvDebian's edits on busybox, without packages:
// it runs without the Debian image.
func TestEnvStepCache(t *testing.T) {
	t.Parallel()
	srv := newArchiveServer(t)
	ref := imageRef(suite.registry, "busybox")
	config := func(init string, setup []string) string {
		return imageTOML(ref) + helloTOML(srv, "") + shellSetupTOML(init, setup)
	}
	e := newEnv(t, "")
	e.writeConfig(t, config("", nil))
	r := e.mustRun(t, "run", "--", helloBin)
	checkBuilt(t, r, false, "archive hello")
	// The archive is pinned and built: nothing needs the server any more.
	srv.Close(t)
	runStepCacheCases(t, e, config, helloBin, []string{helloMarker}, true)
}

// TestEnvArchiveChecksum: an archive whose sha256 is not the expected one
// fails the build, names both hashes, and leaves nothing behind.
func TestEnvArchiveChecksum(t *testing.T) {
	t.Parallel()
	ref := imageRef(suite.registry, "busybox")
	tests := []struct {
		name string
		// prepare writes the project's devbox.toml (and devbox.lock) and
		// returns the sha256 that devbox must expect and the one it must
		// find.
		prepare func(t *testing.T, srv *archiveServer, e *testEnv) (want, got string)
	}{
		{
			name: "wrong sha256 in devbox.toml",
			prepare: func(t *testing.T, srv *archiveServer, e *testEnv) (string, string) {
				wrong := fmt.Sprintf("%x", sha256Of("not the archive"))
				e.writeConfig(t, imageTOML(ref)+helloTOML(srv, wrong))
				return wrong, srv.SHA256(helloArchive)
			},
		},
		{
			// devbox.lock pinned the archive on another machine; the
			// server now serves something else at the same URL.
			name: "archive changed since devbox.lock pinned it",
			prepare: func(t *testing.T, srv *archiveServer, e *testEnv) (string, string) {
				first := newEnv(t, "")
				first.writeConfig(t, imageTOML(ref)+helloTOML(srv, ""))
				first.mustRun(t, "run", "--", "true")
				pinned := srv.SHA256(helloArchive)
				srv.Set(t, helloArchive, map[string]string{"hello-1.0/bin/hello": "#!/bin/sh\necho changed\n"})
				for _, f := range []string{"devbox.toml", "devbox.lock"} {
					b, err := os.ReadFile(filepath.Join(first.Project, f))
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(e.Project, f), b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				return pinned, srv.SHA256(helloArchive)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newArchiveServer(t)
			e := newEnv(t, "")
			want, got := tt.prepare(t, srv, e)
			if want == got {
				t.Fatalf("bad test: the expected and the served sha256 are both %s", want)
			}
			lockBefore, _ := os.ReadFile(e.lockPath())

			r := e.run(t, "run", "--", "true")
			if r.Code != 1 {
				t.Errorf("want exit 1; %s", r)
			}
			for _, s := range []string{want, got, "hello"} {
				if !strings.Contains(r.Stderr, s) {
					t.Errorf("stderr does not contain %q; %s", s, r)
				}
			}
			if layers := e.stepLayers(t); len(layers) > 0 {
				t.Errorf("a failed archive left step layers %q", layers)
			}
			checkStoreClean(t, e)
			dl, err := os.ReadDir(filepath.Join(e.Cache, "devbox", "downloads", "sha256"))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			for _, d := range dl {
				t.Errorf("the download cache kept %s of an archive that failed its check", d.Name())
			}
			lockAfter, _ := os.ReadFile(e.lockPath())
			if !bytes.Equal(lockAfter, lockBefore) {
				t.Errorf("devbox.lock changed:\n%s\nwas:\n%s", lockAfter, lockBefore)
			}
		})
	}
}

// TestEnvFrozen: --frozen needs a devbox.lock that pins everything
// devbox.toml names, and never changes it.
func TestEnvFrozen(t *testing.T) {
	t.Parallel()
	srv := newArchiveServer(t)
	ref := imageRef(suite.registry, "busybox")
	base := imageTOML(ref) + helloTOML(srv, "")
	e := newEnv(t, "")
	e.writeConfig(t, base)

	checkStale := func(t *testing.T, r result) {
		t.Helper()
		if r.Code == 0 {
			t.Errorf("want a failure; %s", r)
		}
		for _, s := range []string{"devbox.lock", "devbox update"} {
			if !strings.Contains(r.Stderr, s) {
				t.Errorf("stderr does not mention %q; %s", s, r)
			}
		}
	}

	r := e.run(t, "run", "--frozen", "--", "true")
	checkStale(t, r)
	if n := networkLines(r); len(n) > 0 {
		t.Errorf("--frozen without devbox.lock fetched something first: %q", n)
	}
	if _, err := os.Stat(e.lockPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--frozen wrote devbox.lock (stat: %v)", err)
	}

	e.mustRun(t, "run", "--", "true")
	lock, _ := e.readLock(t)
	r = e.mustRun(t, "run", "--frozen", "--", helloBin)
	if got := strings.TrimSpace(r.Stdout); got != helloMarker {
		t.Errorf("hello printed %q, want %q; %s", got, helloMarker, r)
	}

	tests := []struct {
		name   string
		config string
		ok     bool // --frozen must still work
	}{
		{"env changed", base + "[env]\nFOO = \"bar\"\n", true},
		{"archive added without sha256", base + toolTOML(srv, ""), false},
		{"archive added with sha256", base + toolTOML(srv, srv.SHA256(toolArchive)), false},
		{"image changed", imageTOML(imageRef(suite.registry, "layered")) + helloTOML(srv, ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.writeConfig(t, tt.config)
			r := e.run(t, "run", "--frozen", "--", "true")
			if tt.ok && r.Code != 0 {
				t.Errorf("want exit 0; %s", r)
			}
			if !tt.ok {
				checkStale(t, r)
			}
			if got, _ := e.readLock(t); !bytes.Equal(got, lock) {
				t.Errorf("--frozen changed devbox.lock:\n%s\nwas:\n%s", got, lock)
			}
			checkStoreClean(t, e)
		})
	}

	t.Run("update", func(t *testing.T) {
		e.writeConfig(t, base+toolTOML(srv, ""))
		e.mustRun(t, "update")
		r := e.mustRun(t, "run", "--frozen", "--", "sh", "-c", "tool; "+helloBin)
		if got, want := lines(r.Stdout), []string{toolMarker, helloMarker}; !slices.Equal(got, want) {
			t.Errorf("output %q, want %q; %s", got, want, r)
		}
		_, l := e.readLock(t)
		digest, err := registryDigest(ref)
		if err != nil {
			t.Fatal(err)
		}
		checkLock(t, l, ref, digest, map[string]string{"hello": srv.SHA256(helloArchive), "tool-2.1": srv.SHA256(toolArchive)})
	})
}

// status is the part of 'devbox status --json' that the tests read.
type status struct {
	Lock  string `json:"lock"`
	Image struct {
		Ref     string `json:"ref"`
		Digest  string `json:"digest"`
		Present bool   `json:"present"`
		Layers  int    `json:"layers"`
	} `json:"image"`
	Steps []struct {
		Name  string `json:"name"`
		Key   string `json:"key"`
		Built bool   `json:"built"`
	} `json:"steps"`
	Writable struct {
		Size int64 `json:"size"`
	} `json:"writableLayer"`
	LayerCount int  `json:"layerCount"`
	Running    bool `json:"running"`
}

func (e *testEnv) status(t *testing.T) status {
	t.Helper()
	r := e.mustRun(t, "status", "--json")
	var st status
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("status --json: %v; %s", err, r)
	}
	return st
}

var stepKey = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestEnvStatusAndReset: 'devbox status --json' reports the image and the
// steps; 'devbox reset' discards what 'devbox run --root' wrote outside the
// project.
func TestEnvStatusAndReset(t *testing.T) {
	t.Parallel()
	srv := newArchiveServer(t)
	ref := imageRef(suite.registry, "busybox")
	e := newEnv(t, "")
	e.writeConfig(t, imageTOML(ref)+helloTOML(srv, "")+toolTOML(srv, "")+shellSetupTOML("", []string{"echo set-up > /etc/devbox-setup"}))

	st := e.status(t)
	if st.Lock != "missing" || st.Image.Present || len(st.Steps) != 0 {
		t.Errorf("before any run: lock %q, image present %v, steps %+v; want missing, false, none", st.Lock, st.Image.Present, st.Steps)
	}

	e.mustRun(t, "run", "--", "true")
	digest, err := registryDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	st = e.status(t)
	if st.Lock != "pinned" || !st.Image.Present || st.Image.Digest != digest || st.Image.Ref != ref {
		t.Errorf("after a run: lock %q, image %+v; want pinned, present, %s at %s", st.Lock, st.Image, ref, digest)
	}
	var names []string
	keys := map[string]bool{}
	for _, s := range st.Steps {
		names = append(names, s.Name)
		if !s.Built {
			t.Errorf("step %s is not built", s.Name)
		}
		if !stepKey.MatchString(s.Key) || keys[s.Key] {
			t.Errorf("step %s has key %q: want 64 hex digits, distinct", s.Name, s.Key)
		}
		keys[s.Key] = true
	}
	if want := []string{"archive hello", "archive tool-2.1", "setup"}; !slices.Equal(names, want) {
		t.Errorf("steps %q, want %q", names, want)
	}
	if want := st.Image.Layers + 3; st.LayerCount != want {
		t.Errorf("layerCount %d, want %d (image layers + steps)", st.LayerCount, want)
	}
	if st.Writable.Size != 0 {
		t.Errorf("writable layer has %d bytes before anything wrote to it", st.Writable.Size)
	}

	const marker = "/usr/devbox-e2e-marker"
	check := `if test -e ` + marker + `; then cat ` + marker + `; else echo absent; fi; cat /etc/devbox-setup; cat kept`
	e.mustRun(t, "run", "--root", "--", "sh", "-c", "echo written > "+marker+"; echo kept > kept")
	r := e.mustRun(t, "run", "--", "sh", "-c", check)
	if got, want := lines(r.Stdout), []string{"written", "set-up", "kept"}; !slices.Equal(got, want) {
		t.Fatalf("after run --root: output %q, want %q; %s", got, want, r)
	}
	if st := e.status(t); st.Writable.Size == 0 || st.Running {
		t.Errorf("status after run --root wrote %s: writable layer of %d bytes, running %v; want bytes, not running", marker, st.Writable.Size, st.Running)
	}
	_, out, done := startRun(t, e, "sh", "-c", "touch started; until [ -e end ]; do sleep 0.05; done")
	waitFile(t, filepath.Join(e.Project, "started"), out)
	if st := e.status(t); !st.Running {
		t.Errorf("status while a sandbox runs: running %v, want true", st.Running)
	}
	if r := e.mustRun(t, "status"); !strings.Contains(r.Stdout, "sandbox         running: a 'devbox run' or 'devbox shell' here joins it") {
		t.Errorf("status while a sandbox runs does not say so; %s", r)
	}
	if err := os.WriteFile(filepath.Join(e.Project, "end"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the sandbox: %v\n%s", err, out)
	}

	e.mustRun(t, "reset")
	r = e.mustRun(t, "run", "--", "sh", "-c", check)
	// The marker is gone; the setup step and the work tree are not.
	if got, want := lines(r.Stdout), []string{"absent", "set-up", "kept"}; !slices.Equal(got, want) {
		t.Errorf("after reset: output %q, want %q; %s", got, want, r)
	}
	checkBuilt(t, r, true)
	for _, s := range e.status(t).Steps {
		if !s.Built {
			t.Errorf("after reset, step %s is not built", s.Name)
		}
	}
}

// TestEnvScripts: 'devbox run NAME ARGS' runs the [scripts] entry NAME with
// ARGS as "$@"; after "--", NAME is always a command.
func TestEnvScripts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.writeConfig(t, imageTOML(imageRef(suite.registry, "busybox"))+`[scripts]
greet = 'echo "greet:$#:$1:$2"'
args = 'for a in "$@"; do echo "[$a]"; done'
echo = "echo script-not-command"
fail = "exit 4"
`)
	tests := []struct {
		name string
		args []string
		out  []string
		code int
	}{
		{"script with arguments", []string{"greet", "a", "b"}, []string{"greet:2:a:b"}, 0},
		{"script without arguments", []string{"greet"}, []string{"greet:0::"}, 0},
		{"arguments keep their spaces", []string{"args", "a b", "", "*"}, []string{"[a b]", "[]", "[*]"}, 0},
		{"script named like a command", []string{"echo", "x"}, []string{"script-not-command"}, 0},
		{"command after --", []string{"--", "echo", "command-ran"}, []string{"command-ran"}, 0},
		{"script name after -- is a command", []string{"--", "greet", "a"}, nil, 127},
		{"not a script", []string{"echo-not-a-script"}, nil, 127},
		{"script's exit status", []string{"fail"}, nil, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(t, append([]string{"run"}, tt.args...)...)
			if r.Code != tt.code {
				t.Errorf("want exit %d; %s", tt.code, r)
			}
			if got := lines(r.Stdout); !slices.Equal(got, tt.out) {
				t.Errorf("output %q, want %q; %s", got, tt.out, r)
			}
		})
	}
}

// TestEnvVarsAndMounts: [env] is set inside and wins over the image's
// config; [[mounts]] binds host directories, read-only when asked.
func TestEnvVarsAndMounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	ro, rw := filepath.Join(e.Home, "ro"), filepath.Join(e.Home, "rw")
	for _, d := range []string{ro, rw} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "file"), []byte("content of "+filepath.Base(d)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.writeConfig(t, imageTOML(imageRef(suite.registry, "busybox"))+fmt.Sprintf(`[env]
%s = "from devbox.toml"
DEVBOX_E2E_VAR = "a b=c"

[[mounts]]
source = %s
target = "/ro"
readonly = true

[[mounts]]
source = %s
target = "/rw"
`, testimages.MarkerVar, tomlQuote(ro), tomlQuote(rw)))
	script := `echo "marker=$` + testimages.MarkerVar + `"
echo "var=$DEVBOX_E2E_VAR"
echo "ro=$(cat /ro/file)"
echo "rw=$(cat /rw/file)"
if echo new > /ro/new 2>/dev/null; then echo ro-write=ok; else echo ro-write=failed; fi
if echo changed > /ro/file 2>/dev/null; then echo ro-change=ok; else echo ro-change=failed; fi
if echo new > /rw/new 2>/dev/null; then echo rw-write=ok; else echo rw-write=failed; fi
`
	r := e.mustRun(t, "run", "--", "sh", "-c", script)
	kv := keyValues(r.Stdout)
	want := map[string]string{
		"marker":    "from devbox.toml",
		"var":       "a b=c",
		"ro":        "content of ro",
		"rw":        "content of rw",
		"ro-write":  "failed",
		"ro-change": "failed",
		"rw-write":  "ok",
	}
	for k, w := range want {
		if kv[k] != w {
			t.Errorf("%s = %q, want %q", k, kv[k], w)
		}
	}
	if t.Failed() {
		t.Logf("%s", r)
	}
	if _, err := os.Stat(filepath.Join(ro, "new")); err == nil {
		t.Errorf("a file written to the read-only mount appeared on the host")
	}
	if b, _ := os.ReadFile(filepath.Join(ro, "file")); string(b) != "content of ro\n" {
		t.Errorf("the read-only mount's file on the host is now %q", b)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "new")); err != nil || string(b) != "new\n" {
		t.Errorf("the file written to the read-write mount is not on the host: %q, %v", b, err)
	}
}

// TestEnvSetupFails: a failing [setup] command fails the run with the
// step's name, its exit status and its last output, and leaves no layer.
func TestEnvSetupFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	ref := imageRef(suite.registry, "busybox")
	e.writeConfig(t, imageTOML(ref)+shellSetupTOML("", []string{"echo about to fail", "exit 3"}))
	// Twice: a failure is not cached.
	for i := range 2 {
		r := e.run(t, "run", "--", "echo", "must-not-run")
		if r.Code != 1 {
			t.Errorf("run %d: want exit 1; %s", i+1, r)
		}
		if strings.Contains(r.Stdout, "must-not-run") {
			t.Errorf("run %d: the command ran after its setup failed; %s", i+1, r)
		}
		for _, s := range []string{"setup", "exit status 3", "about to fail"} {
			if !strings.Contains(r.Stderr, s) {
				t.Errorf("run %d: stderr does not contain %q; %s", i+1, s, r)
			}
		}
		checkBuilt(t, r, i > 0, "setup")
		if layers := e.stepLayers(t); len(layers) > 0 {
			t.Errorf("run %d: a failed setup left step layers %q", i+1, layers)
		}
		checkStoreClean(t, e)
	}
	// The same environment with a setup that works: the failure was the
	// step's.
	e.writeConfig(t, imageTOML(ref)+shellSetupTOML("", []string{"echo about to succeed"}))
	r := e.mustRun(t, "run", "--", "echo", "ran")
	if strings.TrimSpace(r.Stdout) != "ran" {
		t.Errorf("want ran; %s", r)
	}
	if layers := e.stepLayers(t); len(layers) != 1 {
		t.Errorf("step layers %q, want one", layers)
	}
}

// TestSetupSudo: a setup step copied from a guide that says sudo runs, as
// root, and what it writes is in the step's layer.
func TestSetupSudo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.writeConfig(t, imageTOML(imageRef(suite.registry, "busybox"))+shellSetupTOML("", []string{"sudo sh -c 'id -u > /setup-by-sudo'"}))
	if r := e.mustRun(t, "run", "--", "cat", "/setup-by-sudo"); r.Stdout != "0\n" {
		t.Errorf("want root's uid written by the step through sudo; %s", r)
	}
}
