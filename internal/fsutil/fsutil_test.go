package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	shared1, err := LockShared(path)
	if err != nil {
		t.Fatal(err)
	}
	shared2, err := LockShared(path)
	if err != nil {
		t.Fatalf("a second shared lock: %v", err)
	}
	if _, err := TryLock(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLock while shared locks are held = %v, want ErrLocked", err)
	}
	shared1()
	if _, err := TryLock(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLock while one shared lock is held = %v, want ErrLocked", err)
	}
	shared2()
	release, err := TryLock(path)
	if err != nil {
		t.Fatalf("TryLock once every lock is released: %v", err)
	}
	release()
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "file")
	for _, content := range []string{"first", "second"} {
		if err := WriteAtomic(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != content {
			t.Errorf("content %q, want %q", got, content)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries beside the file, want none: %v", len(entries)-1, entries)
	}
}

func TestMarkTopDir(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	before, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Skipf("the filesystem of %s has no inode flags: %v", dir, err)
	}
	// Whether the filesystem keeps FS_TOPDIR_FL at all (ext4 does).
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(before|fsTopDirFlag)); err != nil {
		t.Skipf("the filesystem of %s does not take FS_TOPDIR_FL: %v", dir, err)
	}
	if after, _ := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); after&fsTopDirFlag == 0 {
		t.Skipf("the filesystem of %s drops FS_TOPDIR_FL", dir)
	}
	unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(before))

	MarkTopDir(dir)
	after, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Fatal(err)
	}
	if after&fsTopDirFlag == 0 {
		t.Errorf("flags %#x after MarkTopDir: FS_TOPDIR_FL not set", after)
	}
	if after&^fsTopDirFlag != before&^fsTopDirFlag {
		t.Errorf("flags %#x after MarkTopDir, were %#x: other flags changed", after, before)
	}
	MarkTopDir(filepath.Join(dir, "missing"))
}
