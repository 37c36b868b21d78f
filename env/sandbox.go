package env

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/devboxhq/devbox/internal/fsutil"
	"github.com/devboxhq/devbox/mounts"
	"github.com/devboxhq/devbox/rootless"
	"github.com/devboxhq/devbox/rootless/network"
)

// User is who runs devbox; inside the sandbox they are themself.
type User struct {
	UID, GID uint32
	Name     string
	Home     string // inside the sandbox
}

// CurrentUser describes the user running devbox.
func CurrentUser() User {
	u := User{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	if pw, err := user.LookupId(strconv.Itoa(int(u.UID))); err == nil {
		u.Name, u.Home = pw.Username, pw.HomeDir
	}
	if u.Name == "" {
		u.Name = "user" + strconv.Itoa(int(u.UID))
	}
	switch {
	case u.UID == 0:
		u.Home = "/root"
	case u.Home == "" || u.Home == "/" || u.Home == "/nonexistent":
		u.Home = "/home/" + u.Name
	}
	return u
}

// hostEnv are the host variables a sandbox inherits; nothing else of the
// host's environment goes in, so that runs are reproducible.
var hostEnv = []string{"TERM", "LANG", "LC_ALL", "TZ", "COLORTERM"}

// imageFiles are the directories that hold a sandbox's root filesystem,
// for looking up what the image has: the writable layer, a flattened copy
// and the layers. Whiteouts are not read; a file one layer removed still
// counts.
type imageFiles struct {
	dirs []string
	// h looks at the first mutable dirs, the writable layer and the
	// flattened copy, which change as sandboxes run (the layers do not),
	// and at the host's variables that environment reads beside them.
	h       host
	mutable int
}

// images are the image files in dirs, none of which changes.
func images(dirs ...string) imageFiles { return imageFiles{dirs: dirs} }

func filesOf(view mounts.View, h host) imageFiles {
	return imageFiles{dirs: append([]string{view.Upper, view.Flat}, view.Layers...), h: h, mutable: 2}
}

// stat finds rel in the image.
func (f imageFiles) stat(rel string) (os.FileInfo, bool) {
	for i, dir := range f.dirs {
		if dir == "" {
			continue
		}
		stat := os.Stat
		if i < f.mutable {
			stat = f.h.stat
		}
		if fi, err := stat(filepath.Join(dir, rel)); err == nil {
			return fi, true
		}
	}
	return nil, false
}

// zoneFor is the host's time zone for a sandbox: its name, when TZ is not
// set, localtime (/etc/localtime) names a zone (a link into zoneinfo, as
// systemd and every major distribution make it) and the image has that
// zone's file, which programs inside then read. Most hosts say their time
// zone only so; without it, the sandbox's clock would read UTC while the
// host's does not.
func zoneFor(img imageFiles, localtime string) string {
	if _, ok := img.h.lookupEnv("TZ"); ok || localtime == "" {
		return ""
	}
	name := img.h.zoneName(localtime)
	if name == "" {
		return ""
	}
	if fi, ok := img.stat(filepath.Join("usr/share/zoneinfo", name)); ok && fi.Mode().IsRegular() {
		return name
	}
	return ""
}

// localeFor is the locale the sandbox gets for the host's LANG or LC_ALL
// value name: name, or C.UTF-8 (C for another codeset) where the image's
// glibc cannot load it. A host's en_US.UTF-8 in an image that has only
// C.UTF-8, as Debian's and Ubuntu's have, makes perl (and so apt and
// dpkg) print four lines of warnings at every start, and bash one. An
// image without glibc's locale directory (musl, busybox) takes any name;
// one with a locale archive is taken to have it.
func localeFor(name string, img imageFiles) string {
	lang, codeset, _ := strings.Cut(name, ".")
	if lang == "" || lang == "C" || lang == "POSIX" {
		return name
	}
	if fi, ok := img.stat("usr/lib/locale"); !ok || !fi.IsDir() {
		return name
	}
	for _, n := range []string{"locale-archive", name, lang + "." + normalizeCodeset(codeset)} {
		if _, ok := img.stat(filepath.Join("usr/lib/locale", n)); ok {
			return name
		}
	}
	if strings.HasPrefix(normalizeCodeset(codeset), "utf8") {
		return "C.UTF-8"
	}
	return "C"
}

// terminfoDirs are where ncurses looks for a terminal's description, by
// default, on Debian, Ubuntu, Fedora and Alpine.
var terminfoDirs = []string{"etc/terminfo", "lib/terminfo", "usr/share/terminfo", "usr/lib/terminfo"}

// termFor is the host's TERM for a sandbox of img: the same, unless the
// image has a terminal database without an entry for it, as Debian's and
// Ubuntu's lack kitty's, alacritty's, foot's or ghostty's, where less,
// vim, top and bash's line editing would refuse or misbehave ("unknown
// terminal type"). Those terminals speak xterm's language: TERM becomes
// xterm-256color, or xterm, whichever the image has. An image without a
// terminal database (busybox) takes any name.
func termFor(term string, img imageFiles) string {
	if term == "" || term == "dumb" || strings.ContainsAny(term, "/.") {
		return term
	}
	has := func(name string) bool {
		for _, d := range terminfoDirs {
			// The first letter's directory, or its hex code's (macOS's
			// layout, which some builds of ncurses use).
			for _, sub := range []string{name[:1], fmt.Sprintf("%02x", name[0])} {
				if _, ok := img.stat(filepath.Join(d, sub, name)); ok {
					return true
				}
			}
		}
		return false
	}
	// The image knowing the terminal, the usual case, is looked up first.
	if has(term) || !slices.ContainsFunc(terminfoDirs, func(d string) bool {
		fi, ok := img.stat(d)
		return ok && fi.IsDir()
	}) {
		return term
	}
	for _, fallback := range []string{"xterm-256color", "xterm"} {
		if has(fallback) {
			return fallback
		}
	}
	return term
}

// normalizeCodeset is glibc's name of a codeset in locale directories:
// lower case, letters and digits only ("UTF-8@euro" is "utf8@euro").
func normalizeCodeset(codeset string) string {
	codeset, modifier, hasModifier := strings.Cut(codeset, "@")
	var b strings.Builder
	for _, r := range strings.ToLower(codeset) {
		if ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') {
			b.WriteRune(r)
		}
	}
	if hasModifier {
		b.WriteString("@" + modifier)
	}
	return b.String()
}

// zoneName is the zone that the link localtime points to, "" if it is not
// a link into a zoneinfo directory.
func (h host) zoneName(localtime string) string {
	target, err := h.readlink(localtime)
	if err != nil {
		return ""
	}
	_, name, ok := strings.Cut(target, "/zoneinfo/")
	if !ok || !filepath.IsLocal(name) {
		return ""
	}
	return name
}

// Invocation is one command to run in a project's sandbox.
type Invocation struct {
	Args []string
	// Cwd is the working directory on the host; inside it is the same path.
	Cwd string
	// Root runs the command as root inside (still the user outside), with
	// root emulation so that package managers work.
	Root bool
	// Ephemeral gives the sandbox a throwaway writable layer: nothing it
	// changes outside the work tree and home outlives it.
	Ephemeral bool
	// Env, NAME=VALUE each, is set last, over the image's, [env] and the
	// host's few (devbox run --env).
	Env []string
	// Join: while another sandbox of the project runs on its writable
	// layer, the command joins that sandbox (SandboxSpec's join) rather
	// than getting a throwaway layer of its own.
	Join bool
	// Terminal and TerminalOutput: see rootless.Process.
	Terminal, TerminalOutput bool
	Rows, Cols               uint16
	// Log reports what the user should know about the sandbox, one line
	// each; nil says nothing.
	Log func(msg string)
	// Inputs, when set, notes what SandboxSpec looked at.
	Inputs *Inputs
}

// agentSocketTarget is where the host's SSH agent socket appears inside
// (the path Docker Desktop uses, which some tools know).
const agentSocketTarget = rootless.HostServices + "/ssh-auth.sock"

// hostIntegration shares, on purpose, the few host files a developer
// expects to follow them into the sandbox: git's configuration
// (~/.gitconfig, and ~/.config/git/config where git's XDG file is) and
// ~/.ssh/known_hosts read-only, and the SSH agent's socket (GnuPG's agent:
// gpgAgent; the host's certificates: certificateMounts). It returns the
// mounts of the files, which lie in the home directory, and of the
// agent's socket, which does not (nil without an agent).
func (h host) hostIntegration(u User) (files, agent []mounts.Mount) {
	var ms []mounts.Mount
	if home, err := h.homeDir(); err == nil {
		xdgConfig := h.getenv("XDG_CONFIG_HOME")
		if xdgConfig == "" {
			xdgConfig = filepath.Join(home, ".config")
		}
		for _, f := range []struct{ src, dst string }{
			{filepath.Join(home, ".gitconfig"), ".gitconfig"},
			{filepath.Join(xdgConfig, "git", "config"), ".config/git/config"},
			{filepath.Join(home, ".ssh", "known_hosts"), ".ssh/known_hosts"},
		} {
			ms = append(ms, mounts.Mount{Type: mounts.Bind, Source: f.src,
				Target: filepath.Join(u.Home, f.dst), ReadOnly: true, Optional: true})
		}
	}
	sock := h.sshAgentSocket()
	if sock == "" {
		return ms, nil
	}
	return ms, []mounts.Mount{{Type: mounts.Bind, Source: sock, Target: agentSocketTarget}}
}

// sshAgentSocket is the socket of the host's SSH agent, "" without one.
func (h host) sshAgentSocket() string {
	sock := h.getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return ""
	}
	if fi, err := h.stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return ""
	}
	return sock
}

// certificateMounts binds the host's certificate bundle at caTarget where
// the host trusts authorities of its own (hostCertificates), for setup
// steps and sandboxes alike; nil elsewhere.
func (h host) certificateMounts() []mounts.Mount {
	if bundle := h.hostCertificates("/"); bundle != "" {
		return []mounts.Mount{{Type: mounts.Bind, Source: bundle, Target: caTarget, ReadOnly: true}}
	}
	return nil
}

// caTarget is where the host's certificate bundle appears inside, beside
// the SSH agent's socket.
const caTarget = rootless.HostServices + "/ca-certificates.crt"

// caVariables point the usual TLS clients at a certificate bundle: OpenSSL
// (curl, Python, Ruby, Go), Node.js, Python's requests (pip), libcurl and
// git.
var caVariables = []string{"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"}

// hostCertificates is the host's certificate bundle, where the host
// trusts certificate authorities of its own: a company's TLS-inspecting
// proxy, a private registry's CA. An image trusts the public ones only, so
// npm install, go mod download, pip and curl, which work on the host,
// failed inside with "certificate signed by unknown authority". Such a
// host has files in one of the directories its distribution takes local
// authorities from; its bundle, with them, is bound read-only at
// caTarget, and caVariables name it. "" where the host adds none.
func (h host) hostCertificates(root string) string {
	local := slices.ContainsFunc([]string{"usr/local/share/ca-certificates", "etc/pki/ca-trust/source/anchors", "etc/ca-certificates/trust-source/anchors", "etc/pki/trust/anchors"}, func(d string) bool {
		// One entry tells; a run reads no more.
		f, err := h.open(filepath.Join(root, d))
		if err != nil {
			return false
		}
		defer f.Close()
		names, _ := f.Readdirnames(1)
		return len(names) > 0
	})
	if !local {
		return ""
	}
	for _, b := range []string{"etc/ssl/certs/ca-certificates.crt", "etc/pki/tls/certs/ca-bundle.crt", "etc/ssl/ca-bundle.pem", "etc/ssl/cert.pem"} {
		if fi, err := h.stat(filepath.Join(root, b)); err == nil && fi.Mode().IsRegular() {
			return filepath.Join(root, b)
		}
	}
	return ""
}

// HostChecks says, for devbox doctor, what of the host's own a sandbox
// gets: the SSH agent, GnuPG's agent and the certificate bundle. None is
// required; a missing agent is a warning with its fix, where git inside
// would miss it.
func HostChecks() []rootless.Check {
	ssh := rootless.Check{Name: "SSH agent (git over ssh inside)"}
	if sock := (host{}).sshAgentSocket(); sock != "" {
		ssh.OK, ssh.Detail = true, "forwarded: "+sock
	} else {
		ssh.Detail = "SSH_AUTH_SOCK names no agent's socket: git over ssh inside asks for keys it cannot use"
		ssh.Fix = "start an agent (eval $(ssh-agent); ssh-add) in the shell that runs devbox"
	}
	gpg := rootless.Check{Name: "GnuPG agent (signed commits inside)", OK: true, Detail: "none runs in GnuPG's default home: nothing to forward"}
	if ms := (host{}).gpgAgent(User{}); ms != nil {
		gpg.Detail = "forwarded: " + ms[0].Source
	}
	ca := rootless.Check{Name: "certificate authorities", OK: true, Detail: "the host trusts the public ones only, as images do"}
	if ms := (host{}).certificateMounts(); ms != nil {
		ca.Detail = "the host trusts authorities of its own: its bundle " + ms[0].Source + " is at " + caTarget + " inside, named by SSL_CERT_FILE"
	}
	return []rootless.Check{ssh, gpg, ca}
}

// gpgAgent shares the host's GnuPG agent, so that git signs commits inside
// with the keys it holds, as Dev Containers do: its extra socket, the one
// GnuPG offers for remote use (it signs and decrypts, but neither exports
// nor changes keys), at ~/.gnupg/S.gpg-agent inside, where gpg looks in a
// home without /run/user, and the public keyring read-only beside it. The
// trust database stays the sandbox's: gpg writes to it as it checks it,
// and fails on a read-only one. The agent asks for a passphrase on the
// host, as for the host's own gpg. Only GnuPG's default home is looked at
// (a GNUPGHOME elsewhere names its sockets by a hash), and nothing without
// an agent.
func (h host) gpgAgent(u User) []mounts.Mount {
	home, err := h.homeDir()
	if err != nil {
		return nil
	}
	return h.gpgAgentIn(home, filepath.Join("/run/user", strconv.Itoa(os.Getuid())), u)
}

// gpgAgentIn is gpgAgent for the host's home directory and runtime
// directory (/run/user/UID), where GnuPG puts its sockets when it exists.
func (h host) gpgAgentIn(home, runDir string, u User) []mounts.Mount {
	gnupg := filepath.Join(home, ".gnupg")
	if g := h.getenv("GNUPGHOME"); g != "" && filepath.Clean(g) != gnupg {
		return nil
	}
	for _, sock := range []string{
		filepath.Join(runDir, "gnupg", "S.gpg-agent.extra"),
		filepath.Join(gnupg, "S.gpg-agent.extra"),
	} {
		if fi, err := h.stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
			continue
		}
		inside := filepath.Join(u.Home, ".gnupg")
		ms := []mounts.Mount{{Type: mounts.Bind, Source: sock, Target: filepath.Join(inside, "S.gpg-agent")}}
		for _, f := range []string{"pubring.kbx", "pubring.gpg"} {
			ms = append(ms, mounts.Mount{Type: mounts.Bind, Source: filepath.Join(gnupg, f),
				Target: filepath.Join(inside, f), ReadOnly: true, Optional: true})
		}
		return ms
	}
	return nil
}

// SandboxSpec describes the sandbox that runs inv in e. The caller runs
// cleanup once the sandbox has ended. A sandbox on the project's writable
// layer shares itself with commands that join it. With inv.Join, while
// such a sandbox runs, join is its socket and spec is the command to run
// there (rootless.Join); if that sandbox refuses, SandboxSpec again
// without Join gives a sandbox of its own.
func SandboxSpec(e *Environment, u User, inv Invocation) (spec *rootless.Spec, join string, cleanup func(), err error) {
	cfg := e.Config
	h := host{inv.Inputs}
	if inv.Root {
		u = User{Name: "root", Home: "/root"}
	}
	network, err := networkMode(cfg)
	if err != nil {
		return nil, "", nil, err
	}
	userMounts, err := h.configMounts(cfg)
	if err != nil {
		return nil, "", nil, err
	}
	gpg := h.gpgAgent(u)
	if gpg != nil {
		// gpg wants its home private: made here, 0700, rather than by
		// the mounts inside it.
		if err := os.Mkdir(filepath.Join(e.Project.HomeDir(), ".gnupg"), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, "", nil, err
		}
	}
	view, running, cleanup, err := rootView(e, inv)
	if err != nil {
		return nil, "", nil, err
	}
	// The layers and the writable layer by identity: the latter changes
	// as the sandbox runs, and a reset or a rebuild replaces them.
	h.in.AddIdentity(view.Layers...)
	h.in.AddIdentity(view.Upper, view.Work, view.Flat, e.Project.HomeDir(), e.Project.RootDir())
	share := ""
	if !running && view.Upper == e.Project.UpperDir() && e.RootFS != mounts.RootFSCopy {
		share = e.Project.ShareSocket()
	}
	if running {
		join = e.Project.ShareSocket()
	}
	tree := e.Project.Dir
	if cfg.Shell.Workdir == "" {
		hostHome, _ := h.homeDir()
		tree = h.repositoryRoot(e.Project.Dir, u.Home, hostHome)
	}
	view.WorkTree = tree
	view.WorkTreeTarget = cfg.Shell.Workdir
	view.Home, view.HomeTarget = e.Project.HomeDir(), u.Home
	view.HostNetworkFiles = network == rootless.NetworkHost
	homeFiles, agent := h.hostIntegration(u)
	homeFiles = append(homeFiles, gpg...)
	services := append(h.certificateMounts(), agent...)
	view.Early = append([]mounts.Mount{rootless.SudoMount()}, services...)
	view.Extra = append(homeFiles, userMounts...)
	if m, ok := h.gitDirMount(tree); ok {
		view.Extra = append(view.Extra, m)
	}
	// The command starts where the user is, when that is in the mounted
	// tree, and in the project otherwise.
	target := cfg.Shell.Workdir
	if target == "" {
		target = tree
	}
	from := e.Project.Dir
	if mounts.IsBeneath(inv.Cwd, tree) {
		from = inv.Cwd
	}
	rel, _ := filepath.Rel(tree, from)
	cwd := filepath.Join(target, rel)
	userns := usernsMode(cfg)
	return &rootless.Spec{
		Share:    share,
		Sudo:     true,
		RootDir:  e.Project.RootDir(),
		Mounts:   mounts.Plan(view),
		Hostname: "devbox",
		Network:  network,
		Userns:   userns,
		User:     rootless.User{Name: u.Name, Home: u.Home, Shell: "/bin/sh"},
		Process: rootless.Process{
			Args:           inv.Args,
			Env:            withEnv(environment(e.Image.Config.Env, cfg, u, cwd, services, filesOf(view, h), "/etc/localtime"), inv.Env),
			Cwd:            cwd,
			UID:            u.UID,
			GID:            u.GID,
			RootEmulation:  inv.Root && userns == rootless.UsernsSingle,
			Terminal:       inv.Terminal,
			TerminalOutput: inv.TerminalOutput,
			Rows:           inv.Rows,
			Cols:           inv.Cols,
		},
	}, join, cleanup, nil
}

// SandboxRunning reports whether a sandbox of p runs on its writable
// layer, the one a new run or shell joins.
func (p *Project) SandboxRunning() bool {
	return fsutil.Held(p.UpperLock())
}

// SandboxRunningIn reports, as Project.SandboxRunning does, whether a
// sandbox of the project in dir runs on its writable layer, without
// opening the project: devbox asks before it starts a sandbox's pid 1,
// which a command that joins that sandbox does not need.
func SandboxRunningIn(dirs Dirs, dir string) bool {
	return fsutil.Held(filepath.Join(projectStateDir(dirs, dir), upperLock))
}

// upperLock, in a project's state directory, is held by the sandbox that
// uses the project's writable layer (rootView).
const upperLock = "upper.lock"

// throwawayPrefix names the throwaway writable layers in a project's state
// directory; GC removes those that killed sandboxes left.
const throwawayPrefix = ".tmp-ephemeral-"

// rootView is the root filesystem part of a sandbox's view: the layers
// under the project's writable layer, or with ephemeral under a throwaway
// one; where the root filesystem is a flattened copy, the project's copy
// (made again when the layers change) or a throwaway copy.
//
// One overlay at a time may use the project's writable layer: the kernel
// leaves two overlays on one upper directory undefined, and in practice
// the second one's mount resets the work directory under the first, whose
// next copy-up fails (EPERM, ENOENT). The sandbox holds upper.lock until
// cleanup. With inv.Join, a command started beside it joins it (running
// is true). Otherwise it gets a throwaway layer, and inv.Log says so; a
// root one is refused instead: root inside is how a user installs into
// the project's layer, and would lose the install.
func rootView(e *Environment, inv Invocation) (view mounts.View, running bool, cleanup func(), err error) {
	view = mounts.View{Layers: e.Layers, RootFS: e.RootFS, FuseHelper: e.FuseHelper,
		Upper: e.Project.UpperDir(), Work: e.Project.WorkDir()}
	ephemeral := inv.Ephemeral
	if !ephemeral && e.RootFS != mounts.RootFSCopy {
		release, err := fsutil.TryLock(e.Project.UpperLock())
		switch {
		case err == nil:
			return view, false, release, nil
		case !errors.Is(err, fsutil.ErrLocked):
			return view, false, nil, err
		case inv.Join:
			return view, true, func() {}, nil
		}
		if inv.Root {
			return view, false, nil, errors.New("another sandbox of this project is running and uses its writable layer, which takes the changes of one sandbox at a time: end it first so that what runs as root here persists, or add --ephemeral")
		}
		ephemeral = true
		if inv.Log != nil {
			inv.Log("another sandbox of this project is running and uses its writable layer: this one gets a throwaway one, and what it changes outside the work tree and home is gone when it ends")
		}
	}
	if ephemeral {
		tmp, err := os.MkdirTemp(e.Project.StateDir, throwawayPrefix)
		if err != nil {
			return view, false, nil, err
		}
		cleanup := func() { removeTree(tmp) }
		view.Upper, view.Work, view.Flat = filepath.Join(tmp, "upper"), filepath.Join(tmp, "work"), filepath.Join(tmp, "flat")
		for _, d := range []string{view.Upper, view.Work, view.Flat} {
			if err := os.Mkdir(d, 0o755); err != nil {
				cleanup()
				return view, false, nil, err
			}
		}
		if e.RootFS == mounts.RootFSCopy {
			if err := mounts.Flatten(e.Layers, view.Flat); err != nil {
				cleanup()
				return view, false, nil, err
			}
		}
		return view, false, cleanup, nil
	}
	flat, err := e.Project.flatCopy(e.Layers)
	view.Flat = flat
	return view, false, func() {}, err
}

// networkMode maps [network] mode to the sandbox's.
// LaunchFor is the rootless.Launch of the sandboxes SandboxSpec gives for
// cfg, so that a caller can start one before the spec is known.
func LaunchFor(cfg *Config, terminal bool) (rootless.Launch, error) {
	network, err := networkMode(cfg)
	if err != nil {
		return rootless.Launch{}, err
	}
	return rootless.Launch{Network: network, Userns: usernsMode(cfg), Terminal: terminal}, nil
}

func usernsMode(cfg *Config) rootless.Userns {
	if cfg.Sandbox.Userns == "subuid" {
		return rootless.UsernsSubuid
	}
	return rootless.UsernsSingle
}

func networkMode(cfg *Config) (rootless.Network, error) {
	switch cfg.Network.Mode {
	case "", "host":
		return rootless.NetworkHost, nil
	case "none":
		return rootless.NetworkNone, nil
	case "isolated":
		return rootless.NetworkIsolated, nil
	}
	return "", fmt.Errorf("unknown network mode %q", cfg.Network.Mode)
}

// Ports are the forwarded ports of [network] ports.
func (e *Environment) Ports() ([]network.Port, error) {
	var ports []network.Port
	for _, s := range e.Config.Network.Ports {
		p, err := ParsePort(s)
		if err != nil {
			return nil, err
		}
		ports = append(ports, network.Port{Proto: "tcp", HostIP: p.HostIP, HostPort: p.HostPort, ChildPort: p.ChildPort})
	}
	return ports, nil
}

// repositoryRoot is the directory mounted as the work tree of the
// project in dir: the git repository's top level when dir is a
// subdirectory of one (a monorepo's project), so that git, and paths to
// the project's siblings such as a Go module's replace of ../lib or an npm
// workspace's root, work inside as they do outside; dir itself otherwise.
// Dev Containers mount the same. A repository at or above home (a home
// directory kept in git) is not mounted: it would bring all of the host's
// home in, where the sandbox has a home of its own.
func (h host) repositoryRoot(dir string, homes ...string) string {
	if _, err := h.lstat(filepath.Join(dir, ".git")); err == nil {
		return dir
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if _, err := h.lstat(filepath.Join(d, ".git")); err == nil {
			for _, h := range homes {
				if h != "" && mounts.IsBeneath(h, d) {
					return dir
				}
			}
			return d
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}

// gitDirMount is a bind of the git directory of a project whose .git is a
// file naming a directory outside it, as 'git worktree add' and submodules
// make: the directory holds the repository, without which git inside
// finds none. It is the repository's common directory for a worktree, and
// the gitdir itself for a submodule, mounted read-write at its own path.
// Only a directory that names the project back is mounted (a worktree's
// "gitdir" file, a submodule's core.worktree), so that a .git file alone
// cannot bring any host directory in.
func (h host) gitDirMount(project string) (mounts.Mount, bool) {
	dotGit := filepath.Join(project, ".git")
	b, err := h.readFile(dotGit)
	if err != nil { // no .git, or the usual .git directory
		return mounts.Mount{}, false
	}
	gitdir, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
	if !ok {
		return mounts.Mount{}, false
	}
	dir := resolveFrom(project, strings.TrimSpace(gitdir))
	if back, err := h.readFile(filepath.Join(dir, "gitdir")); err == nil {
		// A worktree: its directory in the repository names its .git file.
		common, err := h.readFile(filepath.Join(dir, "commondir"))
		if err != nil || !h.samePath(resolveFrom(dir, strings.TrimSpace(string(back))), dotGit) {
			return mounts.Mount{}, false
		}
		dir = resolveFrom(dir, strings.TrimSpace(string(common)))
	} else if wt, ok := h.coreWorktree(filepath.Join(dir, "config")); !ok || !h.samePath(resolveFrom(dir, wt), project) {
		return mounts.Mount{}, false // not a submodule's directory either
	}
	if mounts.IsBeneath(dir, project) {
		return mounts.Mount{}, false // inside the project, which is mounted
	}
	return mounts.Mount{Type: mounts.Bind, Source: dir, Target: dir, Optional: true}, true
}

// coreWorktree is core.worktree from the git config file at path.
func (h host) coreWorktree(path string) (string, bool) {
	b, err := h.readFile(path)
	if err != nil {
		return "", false
	}
	section := ""
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = strings.ToLower(strings.Trim(line, "[] "))
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && section == "core" && strings.EqualFold(strings.TrimSpace(k), "worktree") {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// samePath reports whether a and b name the same file.
func (h host) samePath(a, b string) bool {
	x, errA := h.stat(a)
	y, errB := h.stat(b)
	return errA == nil && errB == nil && os.SameFile(x, y)
}

// resolveFrom is path, made absolute against dir when it is relative.
func resolveFrom(dir, path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(dir, path)
}

// configMounts turns [[mounts]] into bind mounts; "~/" in a source is the
// host user's home, and a relative source is relative to the project.
func (h host) configMounts(cfg *Config) ([]mounts.Mount, error) {
	var ms []mounts.Mount
	for i, m := range cfg.Mounts {
		src := m.Source
		if rest, ok := strings.CutPrefix(src, "~/"); ok {
			home, err := h.homeDir()
			if err != nil {
				return nil, err
			}
			src = filepath.Join(home, rest)
		} else {
			src = resolveFrom(cfg.Dir(), src)
		}
		if _, err := h.stat(src); err != nil {
			return nil, fmt.Errorf("%s: mounts[%d].source: %s does not exist on the host", displayName(cfg.Path), i, src)
		}
		ms = append(ms, mounts.Mount{Type: mounts.Bind, Source: src, Target: path.Clean(m.Target), ReadOnly: m.ReadOnly, Recursive: true})
	}
	return ms, nil
}

// ShellArgs is the command of 'devbox shell': [shell] init, then the
// [shell] program, or bash where the image has it and sh otherwise.
func (e *Environment) ShellArgs() []string {
	program := "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"
	if p := e.Config.Shell.Program; p != "" {
		// A command line, so that it may take arguments (zsh -l).
		program = "exec " + p
	}
	if init := e.Config.Shell.Init; init != "" {
		program = init + "\n" + program
	}
	return []string{"/bin/sh", "-c", program}
}

// ScriptArgs is the command of 'devbox run NAME ARGS...' for the script
// NAME, with ARGS as its positional parameters; ok is false when there is
// no such script.
func (e *Environment) ScriptArgs(name string, args []string) ([]string, bool) {
	script, ok := e.Config.Scripts[name]
	if !ok {
		return nil, false
	}
	return append([]string{"/bin/sh", "-c", script, name}, args...), true
}

// withEnv is env with the NAME=VALUE entries of set, which replace those
// of the same names.
func withEnv(env, set []string) []string {
	for _, kv := range set {
		name, _, _ := strings.Cut(kv, "=")
		env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, name+"=") })
		env = append(env, kv)
	}
	return env
}

// IsVariableName reports whether name may name an environment variable
// in devbox.toml's [env] or devbox run --env.
func IsVariableName(name string) bool { return envPattern().MatchString(name) }

// environment is, in order, the image's Env, the PATH entries of archives,
// the user's identity, the variables of the host's services (the SSH
// agent's socket, the certificate bundle), [env] from devbox.toml (with
// its references expanded: envref.go), and the few host variables in
// hostEnv, their locales ones the image has (localeFor). Later entries replace earlier ones. Where nothing set TZ,
// it names the host's time zone by localtime (zoneFor); "" leaves it.
func environment(imageEnv []string, cfg *Config, u User, cwd string, services []mounts.Mount, img imageFiles, localtime string) []string {
	var keys []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	set("PATH", rootless.DefaultPath)
	for _, kv := range imageEnv {
		if k, v, ok := strings.Cut(kv, "="); ok {
			set(k, v)
		}
	}
	var extra []string
	for _, a := range cfg.Tools.Archive {
		for _, p := range a.Path {
			extra = append(extra, path.Join(a.DestDir(), p))
		}
	}
	// Archives link their bin entries into /usr/local/bin, and devbox's
	// sudo is there, which some images leave out of PATH.
	if !slices.Contains(filepath.SplitList(vals["PATH"]), "/usr/local/bin") {
		extra = append(extra, "/usr/local/bin")
	}
	if len(extra) > 0 {
		set("PATH", strings.Join(extra, ":")+":"+vals["PATH"])
	}
	set("HOME", u.Home)
	set("USER", u.Name)
	set("LOGNAME", u.Name)
	set("PWD", cwd)
	set("DEVBOX", "1")
	for _, m := range services {
		switch m.Target {
		case agentSocketTarget:
			set("SSH_AUTH_SOCK", m.Target)
		case caTarget:
			for _, k := range caVariables {
				set(k, m.Target)
			}
		}
	}
	// [env], whose ${containerEnv:NAME} are the values before it.
	before := maps.Clone(vals)
	container := func(k string) (string, bool) {
		v, ok := before[k]
		return v, ok
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		set(k, expandEnvRefs(cfg.Env[k], img.h.lookupEnv, container))
	}
	for _, k := range hostEnv {
		if v, ok := img.h.lookupEnv(k); ok {
			switch k {
			case "LANG", "LC_ALL":
				v = localeFor(v, img)
			case "TERM":
				v = termFor(v, img)
			}
			set(k, v)
		}
	}
	if _, ok := vals["TZ"]; !ok {
		if zone := zoneFor(img, localtime); zone != "" {
			set("TZ", zone)
		}
	}
	env := make([]string, len(keys))
	for i, k := range keys {
		env[i] = fmt.Sprintf("%s=%s", k, vals[k])
	}
	return env
}
