package mounts

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The helper of TestReadOnlyRecursive runs in the test binary, re-executed
// in a user and mount namespace of its own.
func TestMain(m *testing.M) {
	if dir := os.Getenv("MOUNTS_TEST_READONLY_DIR"); dir != "" {
		if err := readOnlyHelper(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestReadOnlyRecursive: a read-only recursive bind is read-only all the
// way down, by mount_setattr and by the remount an older kernel gets, and
// the source stays writable.
func TestReadOnlyRecursive(t *testing.T) {
	cmd := exec.Command("/proc/self/exe", "-test.run", "^$")
	cmd.Env = append(os.Environ(), "MOUNTS_TEST_READONLY_DIR="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("no user namespaces here: %v", err)
	}
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// readOnlyHelper makes, under dir, a tmpfs with a tmpfs mounted inside it,
// binds it recursively twice, and makes one bind read-only by setReadOnly
// and the other by remountReadOnly.
func readOnlyHelper(dir string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	src := filepath.Join(dir, "src")
	for _, d := range []string{src, filepath.Join(src, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, ""); err != nil {
			return err
		}
	}
	// A space in the path: mountinfo escapes it, and the remount must
	// still find the submount.
	if err := os.Mkdir(filepath.Join(src, "sub", "a dir"), 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", filepath.Join(src, "sub", "a dir"), "tmpfs", 0, ""); err != nil {
		return err
	}
	for name, makeReadOnly := range map[string]func(fd int, recursive bool) error{
		"setattr": setReadOnly, "remount": remountReadOnly,
	} {
		dst := filepath.Join(dir, name)
		if err := os.Mkdir(dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		fd, err := unix.Open(dst, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = makeReadOnly(fd, true)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, rel := range []string{"f", "sub/f", "sub/a dir/f"} {
			err := os.WriteFile(filepath.Join(dst, rel), nil, 0o644)
			if !errors.Is(err, unix.EROFS) {
				return fmt.Errorf("%s: writing %s in the read-only bind: %v, want EROFS", name, rel, err)
			}
			if err := os.WriteFile(filepath.Join(src, rel), nil, 0o644); err != nil {
				return fmt.Errorf("%s: the source is no longer writable: %v", name, err)
			}
		}
	}
	return nil
}

func TestMountPointsUnder(t *testing.T) {
	info := `22 1 0:20 / / rw - ext4 /dev/vda rw
30 22 0:25 / /r/sys rw - sysfs sysfs rw
31 30 0:26 / /r/sys/fs/cgroup rw - tmpfs tmpfs rw
32 22 0:27 / /r/system rw - tmpfs tmpfs rw
33 22 0:28 / /r/sys\040x/in\134side rw - tmpfs tmpfs rw
34 30 0:29 / /r/sys/kernel/tracing rw - tracefs none rw
`
	got := mountPointsUnder([]byte(info), "/r/sys")
	want := []string{"/r/sys/fs/cgroup", "/r/sys/kernel/tracing"}
	if !slices.Equal(got, want) {
		t.Errorf("under /r/sys: %q, want %q", got, want)
	}
	got = mountPointsUnder([]byte(info), "/r/sys x/")
	if want := []string{`/r/sys x/in\side`}; !slices.Equal(got, want) {
		t.Errorf("under /r/sys x: %q, want %q", got, want)
	}
	if got := mountPointsUnder([]byte(strings.Repeat("x\n", 3)), "/"); len(got) != 0 {
		t.Errorf("lines that are not mountinfo gave %q", got)
	}
}

// FuzzMountPointsUnder: any mountinfo is read without a panic, every mount
// point found lies beneath the directory, and a path escaped as the kernel
// escapes it reads back as it was.
func FuzzMountPointsUnder(f *testing.F) {
	f.Add("31 30 0:26 / /r/sys/fs/cgroup rw - tmpfs tmpfs rw\n", "/r/sys", "/a b\\c")
	f.Add("33 22 0:28 / /r/sys\\040x/in\\134side rw - tmpfs tmpfs rw\n", "/r/sys x", "\t\n")
	f.Add("1 2 3 4 /\\0\\777\\", "/", "\\040")
	f.Fuzz(func(t *testing.T, mountinfo, dir, path string) {
		prefix := strings.TrimSuffix(dir, "/") + "/"
		for _, mp := range mountPointsUnder([]byte(mountinfo), dir) {
			if !strings.HasPrefix(mp, prefix) {
				t.Errorf("mount point %q is not beneath %q", mp, dir)
			}
		}
		var escaped strings.Builder
		for i := 0; i < len(path); i++ {
			switch c := path[i]; c {
			case ' ', '\t', '\n', '\\':
				fmt.Fprintf(&escaped, "\\%03o", c)
			default:
				escaped.WriteByte(c)
			}
		}
		if got := unescapeMountinfo(escaped.String()); got != path {
			t.Errorf("unescape(%q) = %q, want %q", escaped.String(), got, path)
		}
	})
}
