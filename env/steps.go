package env

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/mounts"
)

// stepFormat changes when the way a step is built changes, so that layers
// built the old way are not reused.
const stepFormat = "devbox-step-1"

// StepKind is what a build step does.
type StepKind string

// The kinds of steps, in the order an environment builds them.
const (
	StepPackages StepKind = "packages" // [tools] packages, with the image's package manager
	StepArchive  StepKind = "archive"  // one [[tools.archive]]
	StepSetup    StepKind = "setup"    // [setup] run
)

// Step is one cached layer of an environment, on top of the image.
type Step struct {
	Kind StepKind `json:"kind"`
	// Name is how messages name the step: "packages", "archive hello",
	// "setup".
	Name string `json:"name"`
	// Key is the step's content key: a hash of the image digest, of every
	// earlier step and of this step's own content. Equal keys mean equal
	// layers, in any project.
	Key string `json:"key"`

	packages []string
	archive  ArchiveConfig
	sha256   string // of the archive
	run      []string
}

// planSteps lists the steps of cfg on img, each keyed on everything before
// it. archiveSHA gives the sha256 of each archive, in order. Steps built on
// a flattened copy are whole-tree snapshots, not diffs, and get keys of
// their own.
func planSteps(cfg *Config, img *image.Image, archiveSHA []string, rootfs mounts.RootFS) []Step {
	var steps []Step
	prev := img.Digest.String()
	if rootfs == mounts.RootFSCopy {
		prev += " snapshot"
	}
	add := func(s Step, content any) {
		b, err := json.Marshal(content)
		if err != nil {
			panic(err) // plain data always marshals
		}
		h := sha256.New()
		h.Write([]byte(stepFormat + "\n" + prev + "\n" + string(s.Kind) + "\n"))
		h.Write(b)
		s.Key = hex.EncodeToString(h.Sum(nil))
		prev = s.Key
		steps = append(steps, s)
	}
	if len(cfg.Tools.Packages) > 0 {
		add(Step{Kind: StepPackages, Name: "packages", packages: cfg.Tools.Packages}, cfg.Tools.Packages)
	}
	for i, a := range cfg.Tools.Archive {
		content := struct {
			ArchiveConfig
			SHA256 string
			Dest   string
		}{a, archiveSHA[i], a.DestDir()}
		add(Step{Kind: StepArchive, Name: "archive " + a.StepName(), archive: a, sha256: archiveSHA[i]}, content)
	}
	if len(cfg.Setup.Run) > 0 {
		add(Step{Kind: StepSetup, Name: "setup", run: cfg.Setup.Run}, cfg.Setup.Run)
	}
	return steps
}

// stepsDir holds built step layers, shared by all projects of a user.
func stepsDir(dirs Dirs) string { return filepath.Join(dirs.Data, "steps") }

// StepDir is the layer directory of a step with the given key.
func StepDir(dirs Dirs, key string) string { return filepath.Join(stepsDir(dirs), key) }

// packageManager is how to install packages in an image.
type packageManager struct {
	name string
	// probe are paths (relative to the root) whose presence identifies it.
	probe []string
	// script installs the packages, already shell-quoted.
	script func(pkgs string) string
}

// packageManagers are tried in order; the first whose probe exists wins.
// apt's sandbox user is root: with root emulation, apt's switch to _apt
// only pretends to happen, and apt would then refuse to run its methods.
var packageManagers = []packageManager{
	{"apt", []string{"usr/bin/apt-get"}, func(p string) string {
		return "export DEBIAN_FRONTEND=noninteractive\n" +
			"apt-get -o APT::Sandbox::User=root update\n" +
			"apt-get -o APT::Sandbox::User=root install -y --no-install-recommends " + p + "\n" +
			"apt-get clean\nrm -rf /var/lib/apt/lists/*"
	}},
	{"apk", []string{"sbin/apk", "usr/sbin/apk"}, func(p string) string { return "apk add --no-cache " + p }},
	{"microdnf", []string{"usr/bin/microdnf"}, func(p string) string {
		return "microdnf install -y --nodocs " + p + "\nmicrodnf clean all"
	}},
	{"dnf", []string{"usr/bin/dnf"}, func(p string) string { return "dnf install -y " + p + "\ndnf clean all" }},
	{"yum", []string{"usr/bin/yum"}, func(p string) string { return "yum install -y " + p + "\nyum clean all" }},
	{"zypper", []string{"usr/bin/zypper"}, func(p string) string {
		return "zypper --non-interactive install --no-recommends " + p + "\nzypper clean --all"
	}},
	{"pacman", []string{"usr/bin/pacman"}, func(p string) string {
		return "pacman -Sy --noconfirm " + p + "\npacman -Scc --noconfirm"
	}},
}

// detectPackageManager looks for a package manager in layers (base first),
// checking the topmost layer that has each probe. It reads only the layer
// directories; merged-/usr images are found through their usr/ paths.
func detectPackageManager(layers []string) (packageManager, bool) {
	for _, pm := range packageManagers {
		for _, probe := range pm.probe {
			for i := len(layers) - 1; i >= 0; i-- {
				fi, err := os.Lstat(filepath.Join(layers[i], probe))
				if err != nil {
					continue
				}
				if fi.Mode().IsRegular() {
					return pm, true
				}
				break // a whiteout or something else hides the lower layers'

			}
		}
	}
	return packageManager{}, false
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
