package rootless

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// User is the passwd entry of the sandbox's user.
type User struct {
	Name  string `json:"name"`
	Home  string `json:"home"`
	Shell string `json:"shell,omitempty"`
}

// etcFiles are the files pid 1 writes into the sandbox's /etc: the image's
// /etc/passwd and /etc/group plus an entry for the user (so that the
// command's uid and gid have names), /etc/hostname and /etc/hosts, and for
// a sandbox with its own network, /etc/resolv.conf. /etc/hosts names the
// sandbox's host name, which tools resolve (Java's InetAddress.getLocalHost,
// Erlang nodes, Python's getfqdn) and which would otherwise go to DNS, and
// fail or wait for its timeout offline: on the host's network it is the
// host's file, hostHosts, with the name added. It runs after pivot_root:
// every path here is inside the sandbox.
//
// An image that has an entry for the id already (root, always) keeps its
// own file, which root can change: useradd, and the package scripts that
// call it (postgresql's, openssh-server's), replace /etc/passwd by a
// rename, which a file bound over it refuses.
func etcFiles(spec *Spec, hostHosts []byte) map[string][]byte {
	files := map[string][]byte{}
	if u := spec.User; u.Name != "" {
		uid, gid := spec.Process.UID, spec.Process.GID
		if b, added := mergeEntry(readFile("/etc/passwd"), u.Name, strconv.Itoa(int(uid)),
			fmt.Sprintf("%s:x:%d:%d:%s:%s:%s", u.Name, uid, gid, u.Name, u.Home, u.Shell)); added {
			files["passwd"] = b
		}
		if b, added := mergeEntry(readFile("/etc/group"), u.Name, strconv.Itoa(int(gid)),
			fmt.Sprintf("%s:x:%d:", u.Name, gid)); added {
			files["group"] = b
		}
	}
	if aptStaysRoot(spec) {
		files[aptConfigName] = []byte(aptConfig)
	}
	if name := spec.hostname() + "\n"; string(readFile("/etc/hostname")) != name {
		files["hostname"] = []byte(name)
	}
	if spec.Network == NetworkHost {
		files["hosts"] = withHostName(hostHosts, spec.hostname())
	} else {
		files["hosts"] = []byte("127.0.0.1\tlocalhost " + spec.hostname() + "\n::1\tlocalhost ip6-localhost ip6-loopback\n")
		if spec.DNS != "" {
			files["resolv.conf"] = []byte("nameserver " + spec.DNS + "\n")
		}
	}
	return files
}

// aptStaysRoot reports whether spec's command needs apt told to stay root.
// Root with root emulation: apt switches to its _apt user to download,
// then checks that it did, which the emulation only pretends ("Could not
// switch group"). Told to stay root, apt works. Setup steps, which run
// without a user entry, tell it on the command line (env/steps.go) and
// keep the file out of their layers.
func aptStaysRoot(spec *Spec) bool {
	return spec.User.Name != "" && spec.Process.UID == 0 && spec.Process.RootEmulation && isDir("/etc/apt/apt.conf.d")
}

// aptConfigName, under /etc, is where a root sandbox tells apt to stay
// root. A missing file is made empty in the project's writable layer, as
// every bind mount's target is; apt reads nothing from it there.
const (
	aptConfigName = "apt/apt.conf.d/00devbox-root-emulation"
	aptConfig     = "// devbox: root emulation maps one id, so apt cannot switch to its _apt user.\nAPT::Sandbox::User \"root\";\n"
)

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// writeEtcFiles binds each file read-only over /etc/NAME from the
// sandbox's own /dev tmpfs, so that neither the image nor the project's
// writable layer changes.
func writeEtcFiles(files map[string][]byte) error {
	if len(files) == 0 {
		return nil
	}
	for name, data := range files {
		// Written to the sandbox's own /dev tmpfs, bind-mounted over the
		// image's file, then unlinked: the bind mount keeps it alive.
		src, dst := "/dev/.devbox-etc-"+strings.ReplaceAll(name, "/", "-"), "/etc/"+name
		if err := os.WriteFile(src, data, 0o644); err != nil {
			return err
		}
		if err := ensureFile(dst); err != nil {
			return err
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return &os.SyscallError{Syscall: "mount bind " + dst, Err: err}
		}
		if err := unix.Mount("", dst, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return &os.SyscallError{Syscall: "remount ro " + dst, Err: err}
		}
		if err := os.Remove(src); err != nil {
			return err
		}
	}
	return nil
}

// mergeEntry returns the lines of a passwd or group file with entry for
// name and id, and whether it added it: the lines are kept as they are when
// an entry has that id already (the image knows the user, e.g. uid 0 or a
// "node" user at 1000), otherwise entry is added and any other entry of
// that name removed.
func mergeEntry(data []byte, name, id, entry string) ([]byte, bool) {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) > 2 && fields[2] == id {
			return data, false
		}
		if len(fields) > 0 && fields[0] == name {
			continue
		}
		out.WriteString(sc.Text() + "\n")
	}
	out.WriteString(entry + "\n")
	return out.Bytes(), true
}

// withHostName returns a hosts file with name in it: hosts as it is when
// an entry names it already, else with "127.0.1.1 name" added, as Debian
// names a machine's own host.
func withHostName(hosts []byte, name string) []byte {
	for line := range strings.Lines(string(hosts)) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if fields := strings.Fields(line); len(fields) > 1 && slices.Contains(fields[1:], name) {
			return hosts
		}
	}
	out := slices.Clip(hosts)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, "127.0.1.1\t"+name+"\n"...)
}

func readFile(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// ensureFile creates path if it does not exist, so that it can be a bind
// mount target. After pivot_root a symlink here can only lead inside the
// sandbox.
func ensureFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}
