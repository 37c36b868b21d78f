package rootless

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/devboxhq/devbox/mounts"
	"golang.org/x/sys/unix"
)

// Check is the result of one preflight check of 'devbox doctor'.
type Check struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Required checks must pass for the default mode to work; the others
	// are optional features.
	Required bool   `json:"required"`
	Detail   string `json:"detail"`
	// Fix says what to do when the check fails.
	Fix string `json:"fix,omitempty"`
}

// Doctor runs every preflight check. scratch is an empty directory on the
// filesystem of the store, for the overlay and xattr probes.
func Doctor(scratch string) []Check {
	fuse, _ := checkFuseOverlay(filepath.Join(scratch, "fuse"))
	return []Check{
		checkUserns(),
		checkOverlay(filepath.Join(scratch, "kernel")),
		fuse,
		checkUserXattr(scratch),
		checkSubuid(),
		checkBinary("slirp4netns", false, `network mode "isolated"`, "apt-get install slirp4netns"),
		checkTun(),
		checkInitProgram(),
	}
}

// checkUserns creates a user namespace, as every sandbox does.
func checkUserns() Check {
	c := Check{Name: "user namespaces", Required: true}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = []string{initEnv + "=" + probeUserns}
	cmd.SysProcAttr = probeAttr()
	out, err := cmd.CombinedOutput()
	if err == nil {
		c.OK, c.Detail = true, "an unprivileged user can create them"
		return c
	}
	c.Detail = strings.TrimSpace(fmt.Sprintf("%v %s", err, out))
	switch {
	case readInt("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == 1:
		c.Fix = "Ubuntu's AppArmor restricts them: run 'sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0' (persist it in /etc/sysctl.d/), or give devbox an AppArmor profile with 'userns,'"
	case readInt("/proc/sys/kernel/unprivileged_userns_clone") == 0 && fileExists("/proc/sys/kernel/unprivileged_userns_clone"):
		c.Fix = "run 'sudo sysctl -w kernel.unprivileged_userns_clone=1' and persist it in /etc/sysctl.d/"
	case readInt("/proc/sys/user/max_user_namespaces") == 0:
		c.Fix = "run 'sudo sysctl -w user.max_user_namespaces=15000' and persist it in /etc/sysctl.d/"
	default:
		c.Fix = "a container or security policy forbids them here; run devbox on the host, or allow user namespaces in the container (e.g. podman --security-opt seccomp=unconfined)"
	}
	return c
}

// checkOverlay mounts an overlay inside a user namespace, with userxattr,
// as every sandbox's root filesystem is, and makes a whiteout in it.
func checkOverlay(scratch string) Check {
	c := Check{Name: "overlayfs in a user namespace"}
	if err := probeDirs(scratch); err != nil {
		c.Detail = err.Error()
		return c
	}
	cmd := exec.Command("/proc/self/exe", scratch)
	cmd.Env = []string{initEnv + "=" + probeOverlay}
	cmd.SysProcAttr = probeAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.Detail = strings.TrimSpace(fmt.Sprintf("%v %s", err, out))
		c.Fix = "unprivileged overlayfs needs Linux 5.11 or newer (this is " + KernelRelease() + ") and a store on a filesystem overlayfs accepts as upper layer (ext4, xfs, btrfs, tmpfs); until then devbox falls back to fuse-overlayfs, or to a flattened copy of the layers (slower to prepare, more disk)"
		return c
	}
	c.OK, c.Detail = true, "kernel overlayfs with userxattr works on the store's filesystem (Linux "+KernelRelease()+")"
	return c
}

// checkUserXattr sets a user.* extended attribute, as the unpacker does for
// opaque directories.
func checkUserXattr(scratch string) Check {
	c := Check{Name: "user extended attributes", Required: true}
	p := filepath.Join(scratch, "xattr")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		c.Detail = err.Error()
		return c
	}
	if err := unix.Lsetxattr(p, "user.devbox.probe", []byte("y"), 0); err != nil {
		c.Detail = fmt.Sprintf("setxattr on %s: %v", scratch, err)
		c.Fix = "put the store on a filesystem with user xattrs (set XDG_DATA_HOME to a directory on ext4, xfs or btrfs)"
		return c
	}
	c.OK, c.Detail = true, "the store's filesystem keeps user.* attributes (opaque directories)"
	return c
}

// checkSubuid looks for newuidmap and the user's range in /etc/subuid, for
// userns = "subuid".
func checkSubuid() Check {
	c := Check{Name: "subordinate ids (userns = \"subuid\")"}
	u, err := user.Current()
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	if _, err := exec.LookPath("newuidmap"); err != nil {
		c.Detail, c.Fix = "newuidmap is not installed", "apt-get install uidmap"
		return c
	}
	start, count, err := SubIDRange("/etc/subuid", u.Username, u.Uid)
	if err != nil {
		c.Detail = err.Error()
		c.Fix = fmt.Sprintf("sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s", u.Username)
		return c
	}
	c.OK, c.Detail = true, fmt.Sprintf("%s has %d ids from %d", u.Username, count, start)
	return c
}

// checkTun opens /dev/net/tun, which slirp4netns needs.
func checkTun() Check {
	c := Check{Name: "/dev/net/tun (network mode \"isolated\")"}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		c.Detail = err.Error()
		c.Fix = "sudo chmod 0666 /dev/net/tun (Debian creates it 0600; the kernel still checks each use)"
		return c
	}
	f.Close()
	c.OK, c.Detail = true, "usable"
	return c
}

func checkBinary(name string, required bool, what, fix string) Check {
	c := Check{Name: name + " (" + what + ")", Required: required}
	p, err := exec.LookPath(name)
	if err != nil {
		c.Detail, c.Fix = "not installed", fix
		return c
	}
	c.OK, c.Detail = true, p
	return c
}

// SubIDRange finds the first range of name (or uid) in an /etc/subuid-style
// file.
func SubIDRange(file, name, uid string) (start, count int, err error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, fmt.Errorf("no %s: %w", file, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(fields) != 3 || (fields[0] != name && fields[0] != uid) {
			continue
		}
		start, err1 := strconv.Atoi(fields[1])
		count, err2 := strconv.Atoi(fields[2])
		if err := errors.Join(err1, err2); err != nil {
			return 0, 0, fmt.Errorf("%s: bad line %q", file, sc.Text())
		}
		return start, count, nil
	}
	return 0, 0, fmt.Errorf("%s has no range for %s", file, name)
}

// The probes 'devbox doctor' runs as re-executed children.
const (
	probeUserns  = "probe-userns"
	probeOverlay = "probe-overlay"
	probeFuse    = "probe-fuse"
	probeRemove  = "probe-remove"
)

// ProbeRootFS finds the best way to make root filesystems on this machine,
// in scratch (an empty directory on the store's filesystem): kernel
// overlayfs in a user namespace, else fuse-overlayfs, else a flattened
// copy. It returns the mode and, for fuse-overlayfs, the helper's path.
func ProbeRootFS(scratch string) (mounts.RootFS, string) {
	if checkOverlay(filepath.Join(scratch, "kernel")).OK {
		return mounts.RootFSOverlay, ""
	}
	if c, helper := checkFuseOverlay(filepath.Join(scratch, "fuse")); c.OK {
		return mounts.RootFSFuse, helper
	}
	return mounts.RootFSCopy, ""
}

// checkFuseOverlay mounts fuse-overlayfs inside a user namespace.
func checkFuseOverlay(scratch string) (Check, string) {
	c := Check{Name: "fuse-overlayfs (fallback root filesystem)"}
	helper, err := exec.LookPath("fuse-overlayfs")
	if err != nil {
		c.Detail, c.Fix = "not installed", "apt-get install fuse-overlayfs"
		return c, ""
	}
	if err := probeDirs(scratch); err != nil {
		c.Detail = err.Error()
		return c, ""
	}
	cmd := exec.Command("/proc/self/exe", scratch, helper)
	cmd.Env = []string{initEnv + "=" + probeFuse}
	cmd.SysProcAttr = probeAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.Detail = strings.TrimSpace(fmt.Sprintf("%v %s", err, out))
		c.Fix = "fuse-overlayfs needs a /dev/fuse the user can open (sudo chmod 0666 /dev/fuse) and Linux 4.18 or newer"
		return c, ""
	}
	c.OK, c.Detail = true, helper+" mounts in a user namespace"
	return c, helper
}

// probeDirs makes the directories of an overlay probe in scratch.
func probeDirs(scratch string) error {
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(scratch, d), 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(scratch, "lower", "gone"), nil, 0o644)
}

// probeAttr is a probe's user and mount namespaces, made as a sandbox's
// pid 1 gets them (asUser).
func probeAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID,
		Pdeathsig:  unix.SIGKILL,
	}
	asUser(attr)
	return attr
}

// runProbe is the child side of a probe; it returns the exit status.
func runProbe(kind string) int {
	switch kind {
	case probeUserns:
		return 0
	case probeOverlay, probeFuse:
		dir := os.Args[1]
		data := fmt.Sprintf("lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work", dir, dir, dir)
		var err error
		if kind == probeOverlay {
			err = unix.Mount("overlay", dir+"/merged", "overlay", 0, data+",userxattr")
		} else {
			var out []byte
			out, err = exec.Command(os.Args[2], "-o", data, dir+"/merged").CombinedOutput()
			if err != nil {
				err = fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "mount overlay: %v\n", err)
			return 1
		}
		if err := os.WriteFile(dir+"/merged/new", []byte("x"), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "write into the overlay: %v\n", err)
			return 1
		}
		if err := os.Remove(dir + "/merged/gone"); err != nil {
			fmt.Fprintf(os.Stderr, "whiteout a lower file: %v\n", err)
			return 1
		}
		return 0
	}
	if kind == probeRemove {
		// Make every directory searchable and writable first: a
		// sandbox's overlay leaves its work directory mode 0000.
		filepath.WalkDir(os.Args[1], func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
		if err := os.RemoveAll(os.Args[1]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown probe %q\n", kind)
	return 2
}

func readInt(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// KernelRelease is the running kernel's release, as uname -r prints it.
func KernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
