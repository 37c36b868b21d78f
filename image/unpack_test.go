//go:build !devbox_lean

package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/mholt/archiver/v4"
	"golang.org/x/sys/unix"
)

// applyTestPwned is what hostile test layers try to write outside.
const applyTestPwned = "devbox-unpack-test-pwned\n"

// applyTestTime is the default mtime of test entries.
var applyTestTime = time.Unix(1_600_000_000, 0)

// applyTestEntry is one entry of a test layer.
type applyTestEntry struct {
	hdr  tar.Header
	body string
}

func applyTestFile(name, body string, mode int64) applyTestEntry {
	return applyTestEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body: body}
}

func applyTestDir(name string, mode int64) applyTestEntry {
	return applyTestEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
}

func applyTestSymlink(name, target string) applyTestEntry {
	return applyTestEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func applyTestHardlink(name, target string) applyTestEntry {
	return applyTestEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}}
}

func applyTestNode(name string, typ byte, major, minor int64) applyTestEntry {
	return applyTestEntry{hdr: tar.Header{Typeflag: typ, Name: name, Mode: 0o666, Devmajor: major, Devminor: minor}}
}

// applyTestWith returns e with its header changed by f.
func applyTestWith(e applyTestEntry, f func(*tar.Header)) applyTestEntry {
	f(&e.hdr)
	return e
}

// applyTestTar writes entries as a PAX tar stream with an end-of-archive
// marker. It panics on error: it also builds fuzz seeds outside any test.
func applyTestTar(entries ...applyTestEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.ModTime.IsZero() && h.Typeflag != tar.TypeXGlobalHeader {
			h.ModTime = applyTestTime
		}
		if h.Format == tar.FormatUnknown {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			panic(fmt.Sprintf("tar header %q: %v", h.Name, err))
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			panic(fmt.Sprintf("tar body %q: %v", h.Name, err))
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// applyTestHeaderOnly returns the bytes of one header that claims size bytes
// of content, with no content after it: a stream cut right after the header.
func applyTestHeaderOnly(name string, size int64) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: applyTestTime, Format: tar.FormatPAX}); err != nil {
		panic(err)
	}
	if err := tw.Flush(); err == nil {
		panic("flush of a short entry succeeded")
	}
	return buf.Bytes()
}

// applyTestBlock is a raw 512-byte tar header, for what archive/tar's writer
// refuses to produce. gnu selects the GNU magic instead of USTAR's; fill may
// set more fields before the checksum is computed.
func applyTestBlock(name string, typ byte, size int64, gnu bool, fill func(b []byte)) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", applyTestTime.Unix()))
	b[156] = typ
	if gnu {
		copy(b[257:265], "ustar  \x00")
	} else {
		copy(b[257:265], "ustar\x0000")
	}
	if fill != nil {
		fill(b)
	}
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// applyTestBase256 writes v into a numeric tar field in base-256 form.
func applyTestBase256(field []byte, v int64) {
	clear(field)
	field[0] = 0x80
	binary.BigEndian.PutUint64(field[len(field)-8:], uint64(v))
}

// applyTestPad pads data to whole 512-byte blocks.
func applyTestPad(data []byte) []byte {
	if n := len(data) % 512; n != 0 {
		data = append(data, make([]byte, 512-n)...)
	}
	return data
}

// applyTestPAX is a PAX extended header carrying one record, followed by a
// regular file header named name, without validation by archive/tar's writer.
func applyTestPAX(key, value, name string) []byte {
	rec := " " + key + "=" + value + "\n"
	n := len(rec) + 1
	for len(strconv.Itoa(n))+len(rec) != n {
		n++
	}
	rec = strconv.Itoa(n) + rec
	out := applyTestBlock("PaxHeaders/"+name, tar.TypeXHeader, int64(len(rec)), false, nil)
	out = append(out, applyTestPad([]byte(rec))...)
	out = append(out, applyTestBlock(name, tar.TypeReg, 0, false, nil)...)
	return append(out, make([]byte, 1024)...)
}

// applyTestSparse is an old-GNU sparse entry that claims size bytes with 512
// bytes of data at its end: a few kilobytes of input that claim a terabyte.
func applyTestSparse(name string, size int64) []byte {
	out := applyTestBlock(name, tar.TypeGNUSparse, 512, true, func(b []byte) {
		applyTestBase256(b[386:398], size-512)
		copy(b[398:410], fmt.Sprintf("%011o\x00", 512))
		applyTestBase256(b[483:495], size)
	})
	out = append(out, bytes.Repeat([]byte{'A'}, 512)...)
	return append(out, make([]byte, 1024)...)
}

// applyTestEnv is a layer directory with a sentinel directory beside it.
// The layer sits at base/x/y/layer, so that "../../.." from it is base and
// "../../../sentinel" is the sentinel: an applier that followed a symlink
// out of the layer would write where the snapshot sees it.
type applyTestEnv struct {
	base, layer, sentinel string
}

func newApplyTestEnv(t testing.TB) applyTestEnv {
	t.Helper()
	base := t.TempDir()
	env := applyTestEnv{
		base:     base,
		layer:    filepath.Join(base, "x", "y", "layer"),
		sentinel: filepath.Join(base, "sentinel"),
	}
	for _, d := range []string{env.layer, filepath.Join(env.sentinel, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{
		"passwd":   "root:x:0:0:root:/root:/bin/sh\n",
		"secret":   "s3cret\n",
		"sub/file": "sub\n",
	} {
		if err := os.WriteFile(filepath.Join(env.sentinel, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Runs before t.TempDir's own cleanup, which cannot remove the
	// directories with mode 0000 that some layers hold.
	t.Cleanup(func() {
		if err := RemoveAll(env.layer); err != nil {
			t.Errorf("RemoveAll(layer): %v", err)
		}
	})
	return env
}

// applyTestSnapshot describes every file under env.base except the layer,
// and what an escape would leave in the host's /etc: what no layer may change.
func applyTestSnapshot(t testing.TB, env applyTestEnv) map[string]string {
	t.Helper()
	snap := make(map[string]string)
	describe := func(p string) {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			snap[p] = err.Error()
			return
		}
		d := fmt.Sprintf("mode=%o size=%d mtime=%d.%d ino=%d", st.Mode, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ino)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			d += " -> " + target
		case unix.S_IFREG:
			if body, err := os.ReadFile(p); err == nil {
				d += fmt.Sprintf(" sha256=%x", sha256.Sum256(body))
			}
		}
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, buf); err == nil {
			d += " xattrs=" + strings.ReplaceAll(string(buf[:n]), "\x00", ",")
		}
		snap[p] = d
	}
	err := filepath.WalkDir(env.base, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == env.layer {
			return filepath.SkipDir
		}
		describe(p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The host's /etc is not snapshotted whole: other programs change it.
	// A layer that escaped would leave its marker or its files there.
	passwd, _ := os.ReadFile("/etc/passwd")
	snap["/etc/passwd has the marker"] = strconv.FormatBool(bytes.Contains(passwd, []byte(applyTestPwned)))
	for _, p := range []string{"/etc/x", "/etc/y", "/passwd"} {
		_, err := os.Lstat(p)
		snap[p+" exists"] = strconv.FormatBool(err == nil)
	}
	return snap
}

// applyTestSnapshotDiff describes the differences between two snapshots.
func applyTestSnapshotDiff(before, after map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(maps.Collect(func(yield func(string, string) bool) {
		maps.All(before)(yield)
		maps.All(after)(yield)
	}))) {
		if before[k] != after[k] {
			fmt.Fprintf(&b, "%s:\n  before: %s\n  after:  %s\n", k, before[k], after[k])
		}
	}
	return b.String()
}

// applyTestUserXattrs reports whether the filesystem of t.TempDir() stores
// user xattrs, which opaque directories need.
func applyTestUserXattrs(t testing.TB) bool {
	t.Helper()
	p := filepath.Join(t.TempDir(), "probe")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return unix.Setxattr(p, "user.devbox.probe", []byte("1"), 0) == nil
}

func applyTestLstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func applyTestWantMode(t *testing.T, p string, typ, perm uint32) {
	t.Helper()
	st := applyTestLstat(t, p)
	if st.Mode&unix.S_IFMT != typ || st.Mode&0o7777 != perm {
		t.Errorf("%s: mode %o, want type %o perm %o", p, st.Mode, typ, perm)
	}
}

func applyTestWantContent(t *testing.T, p, want string) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s: content %q, want %q", p, got, want)
	}
}

func applyTestWantLink(t *testing.T, p, want string) {
	t.Helper()
	got, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("%s: symlink target %q, want %q", p, got, want)
	}
}

func applyTestWantAbsent(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: exists (%v), want absent", p, err)
	}
}

func applyTestWantWhiteout(t *testing.T, p string) {
	t.Helper()
	st := applyTestLstat(t, p)
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("%s: mode %o rdev %d, want a 0:0 character device", p, st.Mode, st.Rdev)
	}
}

func applyTestWantOpaque(t *testing.T, p string) {
	t.Helper()
	buf := make([]byte, 16)
	n, err := unix.Lgetxattr(p, applyOpaqueXattr, buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("%s: %s = %q (%v), want \"y\"", p, applyOpaqueXattr, buf[:max(n, 0)], err)
	}
}

func applyTestWantMtime(t *testing.T, p string, want time.Time) {
	t.Helper()
	st := applyTestLstat(t, p)
	if got := time.Unix(st.Mtim.Sec, st.Mtim.Nsec); !got.Equal(want) {
		t.Errorf("%s: mtime %v, want %v", p, got, want)
	}
}

// applyTestSameInode checks that two paths are hardlinks of one inode.
func applyTestSameInode(t *testing.T, a, b string) {
	t.Helper()
	sa, sb := applyTestLstat(t, a), applyTestLstat(t, b)
	if sa.Ino != sb.Ino || sa.Dev != sb.Dev {
		t.Errorf("%s and %s are different inodes", a, b)
	}
}

// applyHostileCase is one row of the hostile-layer table. layers builds the
// tar streams to apply in order into one directory, given the absolute path
// of the sentinel directory (fuzz seeds use a path that does not exist).
type applyHostileCase struct {
	name       string
	lim        ApplyLimits
	layers     func(abs string) [][]byte
	wantErr    bool
	noEntry    bool   // the error is about the stream, not one entry
	entry      string // else the error is an *EntryError naming this entry
	unsafe     bool   // the error wraps ErrUnsafeEntry
	errIs      error  // the error also wraps this
	needsXattr bool
	check      func(t *testing.T, env applyTestEnv)
}

// applyTestLayer is the layers func of a one-layer case that needs no path.
func applyTestLayer(entries ...applyTestEntry) func(string) [][]byte {
	return func(string) [][]byte { return [][]byte{applyTestTar(entries...)} }
}

// applyTestRaw is the layers func of a one-layer case given as raw bytes.
func applyTestRaw(data []byte) func(string) [][]byte {
	return func(string) [][]byte { return [][]byte{data} }
}

func applyHostileCases() []applyHostileCase {
	const pwned = applyTestPwned
	sentinelRel := "../../../sentinel"
	valid := applyTestTar(applyTestFile("a", "a\n", 0o644))
	big := applyTestTar(applyTestFile("big", strings.Repeat("x", 10000), 0o644))
	twoFiles := applyTestTar(applyTestFile("first", "1", 0o644), applyTestFile("second", "2", 0o644))
	return []applyHostileCase{
		// Names.
		{name: "dotdot name", layers: applyTestLayer(applyTestFile("../escape", pwned, 0o644)), wantErr: true, entry: "../escape", unsafe: true},
		{name: "dotdot inside name", layers: applyTestLayer(applyTestFile("a/../../escape", pwned, 0o644)), wantErr: true, entry: "a/../../escape", unsafe: true},
		{name: "dotdot to sentinel", layers: applyTestLayer(applyTestFile(sentinelRel+"/passwd", pwned, 0o644)), wantErr: true, entry: sentinelRel + "/passwd", unsafe: true},
		{name: "dotdot directory", layers: applyTestLayer(applyTestDir("a/..", 0o777)), wantErr: true, entry: "a/..", unsafe: true},
		{name: "absolute name stays inside", layers: applyTestLayer(applyTestFile("/etc/x", "x\n", 0o644), applyTestFile("//./etc//y", "y\n", 0o644)),
			check: func(t *testing.T, env applyTestEnv) {
				applyTestWantContent(t, filepath.Join(env.layer, "etc/x"), "x\n")
				applyTestWantContent(t, filepath.Join(env.layer, "etc/y"), "y\n")
			}},
		{name: "empty name", layers: applyTestLayer(applyTestFile("", pwned, 0o644)), wantErr: true, entry: "", unsafe: true},
		{name: "NUL in pax path", layers: applyTestRaw(applyTestPAX("path", "a\x00/../../escape", "placeholder")), wantErr: true, noEntry: true},
		{name: "NUL in pax xattr name", layers: applyTestRaw(applyTestPAX("SCHILY.xattr.user.a\x00b", "v", "placeholder")), wantErr: true, noEntry: true},
		{name: "NUL in ustar name ends it", layers: applyTestRaw(append(applyTestBlock("ok\x00/../../../sentinel/passwd", tar.TypeReg, 0, false, nil), make([]byte, 1024)...)),
			check: func(t *testing.T, env applyTestEnv) {
				applyTestWantContent(t, filepath.Join(env.layer, "ok"), "")
			}},
		{name: "over-long name", layers: applyTestLayer(applyTestFile(strings.Repeat("n/", 2100)+"f", pwned, 0o644)), wantErr: true, entry: strings.Repeat("n/", 2100) + "f", unsafe: true},
		{name: "over-long symlink target", layers: applyTestLayer(applyTestSymlink("l", strings.Repeat("t", 5000))), wantErr: true, entry: "l", unsafe: true},
		{name: "over-long component", layers: applyTestLayer(applyTestFile(strings.Repeat("c", 300), pwned, 0o644)), wantErr: true, entry: strings.Repeat("c", 300), errIs: unix.ENAMETOOLONG},

		// Symlinks followed by a write through them, in the same layer and
		// in a later one.
		{name: "write through symlink to /etc", layers: applyTestLayer(applyTestSymlink("link", "/etc"), applyTestFile("link/passwd", pwned, 0o644)),
			check: func(t *testing.T, env applyTestEnv) {
				applyTestWantLink(t, filepath.Join(env.layer, "link"), "/etc")
				applyTestWantContent(t, filepath.Join(env.layer, "etc/passwd"), pwned)
			}},
		{name: "write through symlink to ../../..", layers: applyTestLayer(applyTestSymlink("link", "../../.."), applyTestFile("link/passwd", pwned, 0o644)),
			check: func(t *testing.T, env applyTestEnv) {
				applyTestWantContent(t, filepath.Join(env.layer, "passwd"), pwned)
			}},
		{name: "write through symlink to sentinel", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestSymlink("link", abs), applyTestFile("link/passwd", pwned, 0o644), applyTestSymlink("rel", sentinelRel), applyTestFile("rel/secret", pwned, 0o644))}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantContent(t, filepath.Join(env.layer, env.sentinel, "passwd"), pwned)
			applyTestWantContent(t, filepath.Join(env.layer, "sentinel/secret"), pwned)
		}},
		{name: "write through symlink to /etc in a later layer", layers: func(string) [][]byte {
			return [][]byte{applyTestTar(applyTestSymlink("link", "/etc")), applyTestTar(applyTestFile("link/passwd", pwned, 0o644))}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantContent(t, filepath.Join(env.layer, "etc/passwd"), pwned)
		}},
		{name: "write through symlink to ../../.. in a later layer", layers: func(string) [][]byte {
			return [][]byte{applyTestTar(applyTestSymlink("link", "../../..")), applyTestTar(applyTestFile("link/passwd", pwned, 0o644))}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantContent(t, filepath.Join(env.layer, "passwd"), pwned)
		}},
		{name: "write through symlink to sentinel in a later layer", layers: func(abs string) [][]byte {
			return [][]byte{
				applyTestTar(applyTestSymlink("link", abs), applyTestSymlink("rel", sentinelRel)),
				applyTestTar(applyTestFile("link/passwd", pwned, 0o644), applyTestFile("rel/sub/file", pwned, 0o644)),
			}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantContent(t, filepath.Join(env.layer, env.sentinel, "passwd"), pwned)
			applyTestWantContent(t, filepath.Join(env.layer, "sentinel/sub/file"), pwned)
		}},
		{name: "symlink replaced by a file", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(
				applyTestSymlink("f", abs+"/passwd"), applyTestFile("f", "new\n", 0o644),
				applyTestSymlink("g", sentinelRel+"/secret"), applyTestFile("g", "", 0o600),
			)}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantContent(t, filepath.Join(env.layer, "f"), "new\n")
			applyTestWantMode(t, filepath.Join(env.layer, "g"), unix.S_IFREG, 0o600)
		}},
		{name: "symlink replaced by a file in a later layer", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestSymlink("f", abs+"/passwd")), applyTestTar(applyTestFile("f", "new\n", 0o644))}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantContent(t, filepath.Join(env.layer, "f"), "new\n")
		}},

		// Hardlinks.
		{name: "hardlink to ../../x", layers: applyTestLayer(applyTestHardlink("h", "../../x")), wantErr: true, entry: "h", unsafe: true},
		{name: "hardlink to absolute sentinel file", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestHardlink("h", abs+"/passwd"))}
		}, wantErr: true, entry: "h", errIs: fs.ErrNotExist},
		{name: "hardlink to a symlink", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestSymlink("s", abs+"/passwd"), applyTestHardlink("h", "s"))}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantLink(t, filepath.Join(env.layer, "h"), env.sentinel+"/passwd")
			applyTestSameInode(t, filepath.Join(env.layer, "h"), filepath.Join(env.layer, "s"))
		}},
		{name: "hardlink through symlink to /etc", layers: applyTestLayer(applyTestSymlink("link", "/etc"), applyTestHardlink("h", "link/passwd")),
			wantErr: true, entry: "h", errIs: fs.ErrNotExist},
		{name: "hardlink through symlink to sentinel", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestSymlink("link", abs), applyTestHardlink("h", "link/passwd"))}
		}, wantErr: true, entry: "h", errIs: fs.ErrNotExist},
		{name: "hardlink through relative symlink to sentinel", layers: applyTestLayer(applyTestSymlink("link", sentinelRel), applyTestHardlink("h", "link/passwd")),
			wantErr: true, entry: "h", errIs: fs.ErrNotExist},
		{name: "hardlink through symlink inside the layer", layers: applyTestLayer(applyTestFile("etc/passwd", "inside\n", 0o644), applyTestSymlink("link", "/etc"), applyTestHardlink("h", "link/passwd")),
			check: func(t *testing.T, env applyTestEnv) {
				applyTestSameInode(t, filepath.Join(env.layer, "h"), filepath.Join(env.layer, "etc/passwd"))
			}},
		{name: "hardlink to a directory", layers: applyTestLayer(applyTestDir("d", 0o755), applyTestHardlink("h", "d")), wantErr: true, entry: "h", unsafe: true},
		{name: "hardlink to the root", layers: applyTestLayer(applyTestHardlink("h", "./")), wantErr: true, entry: "h", unsafe: true},
		{name: "hardlink to a missing file", layers: applyTestLayer(applyTestHardlink("h", "nope")), wantErr: true, entry: "h", errIs: fs.ErrNotExist},
		{name: "hardlink to itself", layers: applyTestLayer(applyTestFile("f", "f\n", 0o644), applyTestHardlink("f", "f")),
			check: func(t *testing.T, env applyTestEnv) {
				applyTestWantContent(t, filepath.Join(env.layer, "f"), "f\n")
			}},

		// chmod and utimes must not go through symlinks.
		{name: "directory entry over a symlink", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(
				applyTestSymlink("link", abs), applyTestWith(applyTestDir("link", 0o777), func(h *tar.Header) { h.ModTime = time.Unix(1e9, 0) }),
				applyTestSymlink("rel", sentinelRel+"/sub"), applyTestDir("rel/", 0o700),
			)}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantMode(t, filepath.Join(env.layer, "link"), unix.S_IFDIR, 0o777)
			applyTestWantMtime(t, filepath.Join(env.layer, "link"), time.Unix(1e9, 0))
			applyTestWantMode(t, filepath.Join(env.layer, "rel"), unix.S_IFDIR, 0o700)
		}},
		{name: "directory entry through a symlink parent", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestSymlink("link", abs), applyTestDir("link/sub", 0o777), applyTestFile("link/secret", "", 0o777))}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantMode(t, filepath.Join(env.layer, env.sentinel, "sub"), unix.S_IFDIR, 0o777)
		}},
		{name: "directory entry over a symlink in a later layer", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestSymlink("link", abs)), applyTestTar(applyTestDir("link", 0o777))}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantMode(t, filepath.Join(env.layer, "link"), unix.S_IFDIR, 0o777)
		}},
		{name: "directory replaced by a symlink after its entry", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestDir("d", 0o777), applyTestSymlink("d", abs))}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantLink(t, filepath.Join(env.layer, "d"), env.sentinel)
		}},

		// Whiteouts.
		{name: "whiteout of empty name", layers: applyTestLayer(applyTestFile(".wh.", "", 0o644)), wantErr: true, entry: ".wh.", unsafe: true},
		{name: "whiteout of dot", layers: applyTestLayer(applyTestFile("a/.wh..", "", 0o644)), wantErr: true, entry: "a/.wh..", unsafe: true},
		{name: "whiteout of dotdot", layers: applyTestLayer(applyTestFile(".wh...", "", 0o644)), wantErr: true, entry: ".wh...", unsafe: true},
		{name: "whiteout prefix as a directory", layers: applyTestLayer(applyTestFile(".wh.x/y", "", 0o644)), wantErr: true, entry: ".wh.x/y", unsafe: true},
		{name: "whiteout through a symlink parent", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestSymlink("link", abs), applyTestFile("link/.wh.passwd", "", 0o644), applyTestSymlink("rel", sentinelRel), applyTestFile("rel/.wh.secret", "", 0o644))}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantWhiteout(t, filepath.Join(env.layer, env.sentinel, "passwd"))
			applyTestWantWhiteout(t, filepath.Join(env.layer, "sentinel/secret"))
		}},
		{name: "opaque marker through a symlink parent", needsXattr: true, layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestSymlink("link", abs), applyTestFile("link/.wh..wh..opq", "", 0o644))}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantOpaque(t, filepath.Join(env.layer, env.sentinel))
		}},
		{name: "opaque marker after children", needsXattr: true, layers: applyTestLayer(
			applyTestFile("d/before", "b\n", 0o644), applyTestFile("d/.wh..wh..opq", "", 0o644), applyTestFile("d/after", "a\n", 0o644)),
			check: func(t *testing.T, env applyTestEnv) {
				applyTestWantContent(t, filepath.Join(env.layer, "d/before"), "b\n")
				applyTestWantContent(t, filepath.Join(env.layer, "d/after"), "a\n")
				applyTestWantOpaque(t, filepath.Join(env.layer, "d"))
				applyTestWantAbsent(t, filepath.Join(env.layer, "d/.wh..wh..opq"))
			}},
		{name: "whiteout of a file of the same layer", layers: applyTestLayer(applyTestFile("d/a", "a\n", 0o644), applyTestFile("d/.wh.a", "", 0o644), applyTestFile("d/.wh.b", "", 0o644)),
			check: func(t *testing.T, env applyTestEnv) {
				applyTestWantContent(t, filepath.Join(env.layer, "d/a"), "a\n")
				applyTestWantWhiteout(t, filepath.Join(env.layer, "d/b"))
			}},
		{name: "forged opaque xattr", layers: applyTestLayer(applyTestWith(applyTestDir("d", 0o755), func(h *tar.Header) {
			h.PAXRecords = map[string]string{"SCHILY.xattr." + applyOpaqueXattr: "y"}
		})), wantErr: true, entry: "d", unsafe: true},
		{name: "forged redirect xattr", layers: applyTestLayer(applyTestWith(applyTestFile("f", "", 0o644), func(h *tar.Header) {
			h.PAXRecords = map[string]string{"SCHILY.xattr.user.overlay.redirect": "/etc"}
		})), wantErr: true, entry: "f", unsafe: true},

		// A parent resolved for one entry and replaced before the next.
		{name: "parent symlink replaced by a file between entries", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestSymlink("link", abs), applyTestFile("link/a", "a\n", 0o644), applyTestFile("link", "file\n", 0o644), applyTestFile("link/b", pwned, 0o644))}
		}, wantErr: true, entry: "link/b", errIs: unix.ENOTDIR},
		{name: "parent directory replaced by a symlink between entries", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestFile("d/a", "a\n", 0o644), applyTestSymlink("d", "/e"), applyTestFile("d/b", "b\n", 0o644),
				applyTestFile("s/a", "a\n", 0o644), applyTestSymlink("s", sentinelRel), applyTestFile("s/c", pwned, 0o644))}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantLink(t, filepath.Join(env.layer, "d"), "/e")
			applyTestWantContent(t, filepath.Join(env.layer, "e/b"), "b\n")
			applyTestWantAbsent(t, filepath.Join(env.layer, "e/a"))
			applyTestWantContent(t, filepath.Join(env.layer, "sentinel/c"), pwned)
		}},

		// Duplicates and flips.
		{name: "duplicate entries and flips", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(
				applyTestFile("dup", "one\n", 0o644), applyTestFile("dup", "two\n", 0o600),
				applyTestFile("f2d", "file\n", 0o644), applyTestDir("f2d", 0o755), applyTestFile("f2d/child", "c\n", 0o644),
				applyTestDir("d2f", 0o755), applyTestFile("d2f/child", "c\n", 0o644), applyTestDir("d2f/sub", 0o000), applyTestFile("d2f", "now a file\n", 0o644),
				applyTestDir("d2l", 0o755), applyTestFile("d2l/child", "c\n", 0o644), applyTestSymlink("d2l", abs),
				applyTestDir("d2d", 0o700), applyTestFile("d2d/child", "c\n", 0o644), applyTestDir("d2d", 0o750),
			)}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantContent(t, filepath.Join(env.layer, "dup"), "two\n")
			applyTestWantMode(t, filepath.Join(env.layer, "dup"), unix.S_IFREG, 0o600)
			applyTestWantContent(t, filepath.Join(env.layer, "f2d/child"), "c\n")
			applyTestWantContent(t, filepath.Join(env.layer, "d2f"), "now a file\n")
			applyTestWantLink(t, filepath.Join(env.layer, "d2l"), env.sentinel)
			applyTestWantMode(t, filepath.Join(env.layer, "d2d"), unix.S_IFDIR, 0o750)
			applyTestWantContent(t, filepath.Join(env.layer, "d2d/child"), "c\n")
		}},

		// Entries that a worker creates, followed by entries that depend
		// on them.
		{name: "file replaced by a symlink and written through", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestFile("f", "file\n", 0o644), applyTestSymlink("f", abs), applyTestFile("f/passwd", pwned, 0o644))}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantLink(t, filepath.Join(env.layer, "f"), env.sentinel)
			applyTestWantContent(t, filepath.Join(env.layer, env.sentinel, "passwd"), pwned)
		}},
		{name: "directory of queued files replaced by a symlink", layers: applyTestLayer(
			applyTestFile("d/a", "a\n", 0o644), applyTestFile("d/b", "b\n", 0o644), applyTestSymlink("d/c", "/etc/passwd"),
			applyTestSymlink("d", sentinelRel), applyTestFile("d/passwd", pwned, 0o644)),
			check: func(t *testing.T, env applyTestEnv) {
				applyTestWantLink(t, filepath.Join(env.layer, "d"), sentinelRel)
				applyTestWantContent(t, filepath.Join(env.layer, "sentinel/passwd"), pwned)
				applyTestWantAbsent(t, filepath.Join(env.layer, "sentinel/a"))
			}},
		{name: "missing directories under a queued symlink", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestSymlink("link", abs), applyTestFile("link/new/passwd", pwned, 0o644),
				applyTestSymlink("rel", sentinelRel), applyTestFile("rel/sub/new/secret", pwned, 0o644))}
		}, check: func(t *testing.T, env applyTestEnv) {
			applyTestWantContent(t, filepath.Join(env.layer, env.sentinel, "new/passwd"), pwned)
			applyTestWantContent(t, filepath.Join(env.layer, "sentinel/sub/new/secret"), pwned)
		}},
		{name: "hardlink through a queued symlink to a queued file", layers: applyTestLayer(
			applyTestFile("a/f", "f\n", 0o644), applyTestSymlink("l", "/a"), applyTestHardlink("h", "l/f")),
			check: func(t *testing.T, env applyTestEnv) {
				applyTestSameInode(t, filepath.Join(env.layer, "h"), filepath.Join(env.layer, "a/f"))
			}},

		// The root.
		{name: "root entry that is a symlink", layers: applyTestLayer(applyTestSymlink("./", "/")), wantErr: true, entry: "./", unsafe: true},
		{name: "root entry that is a symlink to the sentinel", layers: func(abs string) [][]byte {
			return [][]byte{applyTestTar(applyTestSymlink("/", abs), applyTestFile("passwd", pwned, 0o644))}
		}, wantErr: true, entry: "/", unsafe: true},
		{name: "root entry that is a file", layers: applyTestLayer(applyTestFile(".", pwned, 0o644)), wantErr: true, entry: ".", unsafe: true},

		// Devices and modes.
		{name: "device nodes are skipped", layers: applyTestLayer(
			applyTestNode("dev/null", tar.TypeChar, 1, 3), applyTestNode("dev/sda", tar.TypeBlock, 8, 0), applyTestNode("fake-whiteout", tar.TypeChar, 0, 0)),
			check: func(t *testing.T, env applyTestEnv) {
				applyTestWantAbsent(t, filepath.Join(env.layer, "dev"))
				applyTestWantAbsent(t, filepath.Join(env.layer, "fake-whiteout"))
			}},
		{name: "setuid and setgid dropped", layers: applyTestLayer(applyTestFile("bin/su", "#!/bin/sh\n", 0o4755), applyTestFile("bin/wall", "", 0o2755), applyTestDir("g", 0o3775)),
			check: func(t *testing.T, env applyTestEnv) {
				applyTestWantMode(t, filepath.Join(env.layer, "bin/su"), unix.S_IFREG, 0o755)
				applyTestWantMode(t, filepath.Join(env.layer, "bin/wall"), unix.S_IFREG, 0o755)
				applyTestWantMode(t, filepath.Join(env.layer, "g"), unix.S_IFDIR, 0o1775)
			}},

		// Limits.
		{name: "huge sparse entry", layers: applyTestRaw(applyTestSparse("sparse", 1<<40)), wantErr: true, entry: "sparse", unsafe: true,
			check: func(t *testing.T, env applyTestEnv) { applyTestWantAbsent(t, filepath.Join(env.layer, "sparse")) }},
		{name: "header size larger than the limit", layers: applyTestRaw(applyTestHeaderOnly("huge", 1<<40)), wantErr: true, entry: "huge", unsafe: true,
			check: func(t *testing.T, env applyTestEnv) { applyTestWantAbsent(t, filepath.Join(env.layer, "huge")) }},
		{name: "MaxBytes exceeded", lim: ApplyLimits{MaxBytes: 1000}, layers: applyTestLayer(applyTestFile("a", strings.Repeat("a", 600), 0o644), applyTestFile("b", strings.Repeat("b", 600), 0o644)),
			wantErr: true, entry: "b", unsafe: true},
		{name: "MaxEntries exceeded", lim: ApplyLimits{MaxEntries: 3}, layers: applyTestLayer(
			applyTestFile("1", "", 0o644), applyTestFile("2", "", 0o644), applyTestFile("3", "", 0o644), applyTestFile("4", "", 0o644)),
			wantErr: true, entry: "4", unsafe: true},
		{name: "MaxDepth exceeded", lim: ApplyLimits{MaxDepth: 4}, layers: applyTestLayer(applyTestFile("a/b/c/d/e", "", 0o644)), wantErr: true, entry: "a/b/c/d/e", unsafe: true},
		{name: "MaxNameLen exceeded by a hardlink target", lim: ApplyLimits{MaxNameLen: 64}, layers: applyTestLayer(applyTestFile("f", "", 0o644), applyTestHardlink("h", strings.Repeat("./", 40)+"f")),
			wantErr: true, entry: "h", unsafe: true},

		// The stream.
		{name: "truncated in file content", layers: applyTestRaw(big[:512+5000]), wantErr: true, entry: "big", errIs: io.ErrUnexpectedEOF},
		{name: "truncated in a header", layers: applyTestRaw(twoFiles[:512*2+100]), wantErr: true, noEntry: true, errIs: io.ErrUnexpectedEOF},
		{name: "trailing garbage", layers: applyTestRaw(append(slices.Clone(valid), "GARBAGE"...)), wantErr: true, noEntry: true, unsafe: true},
		{name: "trailing garbage after zero padding", layers: applyTestRaw(append(append(slices.Clone(valid), make([]byte, 10240)...), 1)), wantErr: true, noEntry: true, unsafe: true},
		{name: "zero padding", layers: applyTestRaw(append(slices.Clone(valid), make([]byte, 10240)...)),
			check: func(t *testing.T, env applyTestEnv) { applyTestWantContent(t, filepath.Join(env.layer, "a"), "a\n") }},
		{name: "zero padding beyond MaxBytes", lim: ApplyLimits{MaxBytes: 4096}, layers: applyTestRaw(append(slices.Clone(valid), make([]byte, 8192)...)),
			wantErr: true, noEntry: true, unsafe: true},
		{name: "no end-of-archive marker", layers: applyTestRaw(valid[:1024]),
			check: func(t *testing.T, env applyTestEnv) { applyTestWantContent(t, filepath.Join(env.layer, "a"), "a\n") }},
	}
}

func TestApplyTarHostile(t *testing.T) {
	xattrs := applyTestUserXattrs(t)
	for _, tc := range applyHostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needsXattr && !xattrs {
				t.Skip("the filesystem of t.TempDir() does not store user xattrs")
			}
			env := newApplyTestEnv(t)
			before := applyTestSnapshot(t, env)
			layers := tc.layers(env.sentinel)
			var err error
			start := time.Now()
			for i, data := range layers {
				_, err = ApplyTar(env.layer, bytes.NewReader(data), tc.lim)
				if err != nil && i < len(layers)-1 {
					t.Fatalf("layer %d: %v", i, err)
				}
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
			if diff := applyTestSnapshotDiff(before, applyTestSnapshot(t, env)); diff != "" {
				t.Errorf("files outside the layer changed:\n%s", diff)
			}
			applyTestCheckErr(t, tc, err)
			if tc.check != nil && !t.Failed() {
				tc.check(t, env)
			}
		})
	}
}

func applyTestCheckErr(t *testing.T, tc applyHostileCase, err error) {
	t.Helper()
	if !tc.wantErr {
		if err != nil {
			t.Fatalf("ApplyTar: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatal("ApplyTar succeeded, want an error")
	}
	t.Logf("error: %v", err)
	var ee *EntryError
	switch {
	case tc.noEntry && errors.As(err, &ee):
		t.Errorf("error names entry %q, want a stream error", ee.Entry)
	case !tc.noEntry && !errors.As(err, &ee):
		t.Errorf("error is not an *EntryError")
	case !tc.noEntry && ee.Entry != tc.entry:
		t.Errorf("error names entry %q, want %q", ee.Entry, tc.entry)
	case !tc.noEntry && !strings.Contains(err.Error(), strconv.Quote(tc.entry)):
		t.Errorf("error text does not quote the entry %q", tc.entry)
	}
	if got := errors.Is(err, ErrUnsafeEntry); got != tc.unsafe {
		t.Errorf("errors.Is(err, ErrUnsafeEntry) = %v, want %v", got, tc.unsafe)
	}
	if tc.errIs != nil && !errors.Is(err, tc.errIs) {
		t.Errorf("error does not wrap %v", tc.errIs)
	}
}

func TestApplyTar(t *testing.T) {
	t0 := time.Unix(1_500_000_000, 0)
	t1 := time.Unix(1_500_000_001, 123456789)
	t2 := time.Unix(1_500_000_002, 0)
	at := func(e applyTestEntry, mt time.Time) applyTestEntry {
		return applyTestWith(e, func(h *tar.Header) { h.ModTime = mt })
	}
	xattr := func(e applyTestEntry, rec map[string]string) applyTestEntry {
		return applyTestWith(e, func(h *tar.Header) { h.PAXRecords = rec })
	}
	entries := []applyTestEntry{
		at(applyTestDir("./", 0o750), t0),
		at(applyTestDir("etc/", 0o755), t2),
		at(applyTestFile("etc/hosts", "127.0.0.1 localhost\n", 0o644), t1),
		applyTestFile("etc/shadow", "root:*:1::::::\n", 0o640),
		applyTestFile("usr/bin/tool", "#!/bin/sh\n", 0o755),
		applyTestDir("tmp/", 0o1777),
		at(applyTestDir("ro/", 0o555), t2),
		applyTestFile("ro/f", "read only\n", 0o444),
		applyTestDir("locked/", 0o000),
		applyTestDir("locked/inner/", 0o700),
		applyTestFile("locked/inner/f", "hidden\n", 0o600),
		at(applyTestSymlink("lib/libc.so", "/lib/x86_64-linux-gnu/libc.so.6"), t1),
		applyTestSymlink("rel", "../../../etc"),
		applyTestFile("bin/sh", "shell\n", 0o755),
		applyTestHardlink("bin/bash", "bin/sh"),
		applyTestHardlink("/bin/dash", "/bin/sh"),
		applyTestFile("old/.wh.gone", "", 0o644),
		applyTestFile("opq/before", "b\n", 0o644),
		applyTestFile("opq/.wh..wh..opq", "", 0o644),
		applyTestFile("opq/after", "a\n", 0o644),
		at(applyTestWith(applyTestNode("fifo", tar.TypeFifo, 0, 0), func(h *tar.Header) { h.Mode = 0o640 }), t1),
		xattr(applyTestFile("x.txt", "x\n", 0o644), map[string]string{
			"SCHILY.xattr.user.mime":           "text/plain",
			"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00",
			"SCHILY.xattr.trusted.evil":        "1",
		}),
		xattr(applyTestDir("xd", 0o755), map[string]string{"SCHILY.xattr.user.dir": "yes"}),
		applyTestNode("dev/null", tar.TypeChar, 1, 3),
		{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "global"}}},
	}
	var wantBytes int64
	for _, e := range entries {
		wantBytes += int64(len(e.body))
	}

	xattrs := applyTestUserXattrs(t)
	if !xattrs {
		// Without user xattrs the opaque marker fails the layer.
		entries = slices.DeleteFunc(entries, func(e applyTestEntry) bool { return strings.HasSuffix(e.hdr.Name, ".wh..wh..opq") })
	}
	env := newApplyTestEnv(t)
	stats, err := ApplyTar(env.layer, bytes.NewReader(applyTestTar(entries...)), ApplyLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Entries != len(entries) || stats.Bytes != wantBytes {
		t.Errorf("stats = %+v, want %d entries and %d bytes", stats, len(entries), wantBytes)
	}
	l := func(p string) string { return filepath.Join(env.layer, p) }

	applyTestWantMode(t, env.layer, unix.S_IFDIR, 0o750)
	applyTestWantMtime(t, env.layer, t0)
	applyTestWantMode(t, l("etc"), unix.S_IFDIR, 0o755)
	applyTestWantMtime(t, l("etc"), t2) // after its children were written
	applyTestWantContent(t, l("etc/hosts"), "127.0.0.1 localhost\n")
	applyTestWantMode(t, l("etc/hosts"), unix.S_IFREG, 0o644)
	applyTestWantMtime(t, l("etc/hosts"), t1)
	applyTestWantMtime(t, l("etc/shadow"), applyTestTime)
	applyTestWantMode(t, l("etc/shadow"), unix.S_IFREG, 0o640)
	applyTestWantContent(t, l("usr/bin/tool"), "#!/bin/sh\n")
	applyTestWantMode(t, l("tmp"), unix.S_IFDIR, 0o1777)
	applyTestWantMode(t, l("ro"), unix.S_IFDIR, 0o555)
	applyTestWantMtime(t, l("ro"), t2)
	applyTestWantContent(t, l("ro/f"), "read only\n")
	applyTestWantMode(t, l("locked"), unix.S_IFDIR, 0o000)
	applyTestWantLink(t, l("lib/libc.so"), "/lib/x86_64-linux-gnu/libc.so.6")
	applyTestWantMtime(t, l("lib/libc.so"), t1)
	applyTestWantLink(t, l("rel"), "../../../etc")
	applyTestSameInode(t, l("bin/sh"), l("bin/bash"))
	applyTestSameInode(t, l("bin/sh"), l("bin/dash"))
	applyTestWantWhiteout(t, l("old/gone"))
	applyTestWantAbsent(t, l("old/.wh.gone"))
	applyTestWantContent(t, l("opq/before"), "b\n")
	applyTestWantContent(t, l("opq/after"), "a\n")
	applyTestWantMode(t, l("fifo"), unix.S_IFIFO, 0o640)
	applyTestWantMtime(t, l("fifo"), t1)
	applyTestWantAbsent(t, l("dev"))

	buf := make([]byte, 64)
	for _, name := range []string{"security.capability", "trusted.evil"} {
		if _, err := unix.Lgetxattr(l("x.txt"), name, buf); err == nil {
			t.Errorf("x.txt has xattr %s, want it dropped", name)
		}
	}
	if !xattrs {
		t.Skip("the filesystem of t.TempDir() does not store user xattrs")
	}
	applyTestWantOpaque(t, l("opq"))
	if n, err := unix.Lgetxattr(l("x.txt"), "user.mime", buf); err != nil || string(buf[:n]) != "text/plain" {
		t.Errorf("x.txt user.mime = %q (%v)", buf[:max(n, 0)], err)
	}
	if n, err := unix.Lgetxattr(l("xd"), "user.dir", buf); err != nil || string(buf[:n]) != "yes" {
		t.Errorf("xd user.dir = %q (%v)", buf[:max(n, 0)], err)
	}
}

// applyTestMany returns files prefix/dNN/fMM, dirs by files of them, each
// with its own content and a size that varies from empty to a few KiB. Every
// other directory has an entry of its own before its files; the others are
// created as parents.
func applyTestMany(prefix string, dirs, files int) []applyTestEntry {
	var entries []applyTestEntry
	for d := range dirs {
		dir := fmt.Sprintf("%s/d%02d", prefix, d)
		if d%2 == 0 {
			entries = append(entries, applyTestDir(dir+"/", 0o755))
		}
		for f := range files {
			name := fmt.Sprintf("%s/f%02d", dir, f)
			entries = append(entries, applyTestFile(name, strings.Repeat(name+"\n", (d*files+f)%97), 0o644))
		}
	}
	return entries
}

// applyTestWantEntries checks that the layer holds what the last entry of
// each name among entries wrote, for regular files and symlinks that no
// later entry removed with a parent. Whiteouts are left to the caller.
func applyTestWantEntries(t *testing.T, layer string, entries []applyTestEntry) {
	t.Helper()
	last := make(map[string]applyTestEntry)
	for _, e := range entries {
		last[strings.TrimPrefix(filepath.Clean("/"+e.hdr.Name), "/")] = e
	}
	removed := func(name string) bool {
		for dir := filepath.Dir(name); dir != "."; dir = filepath.Dir(dir) {
			if e, ok := last[dir]; ok && e.hdr.Typeflag != tar.TypeDir {
				return true
			}
		}
		return strings.HasPrefix(filepath.Base(name), applyWhiteoutPrefix)
	}
	for name, e := range last {
		if removed(name) {
			continue
		}
		p := filepath.Join(layer, name)
		switch e.hdr.Typeflag {
		case tar.TypeReg:
			applyTestWantMode(t, p, unix.S_IFREG, uint32(e.hdr.Mode)&0o1777)
			if e.hdr.Mode&0o400 != 0 || os.Geteuid() == 0 {
				applyTestWantContent(t, p, e.body)
			}
		case tar.TypeSymlink:
			applyTestWantLink(t, p, e.hdr.Linkname)
		}
	}
}

// applyTestDescribe describes every path in the layer, to compare two
// moments of it.
func applyTestDescribe(t *testing.T, layer string) map[string]string {
	t.Helper()
	tree := make(map[string]string)
	err := filepath.WalkDir(layer, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		tree[p] = fmt.Sprintf("mode=%o size=%d mtime=%d.%d ino=%d", st.Mode, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ino)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// TestApplyTarParallel covers what the workers could break: files created
// out of stream order must give the layer that stream order gives.
func TestApplyTarParallel(t *testing.T) {
	many := applyTestMany("m", 40, 30)
	large := strings.Repeat("L", applyJobMaxSize+1)
	xattrs := applyTestUserXattrs(t)
	cases := []struct {
		name       string
		entries    []applyTestEntry
		needsXattr bool
		check      func(t *testing.T, layer string)
	}{
		{name: "many files in many directories, duplicates later", entries: slices.Concat(many, []applyTestEntry{
			applyTestFile("m/big", large, 0o644),
			applyTestFile("m/d03/f05", "second\n", 0o600),
			applyTestFile("m/d17/f29", "", 0o400),
			applyTestSymlink("m/d20/f00", "/etc/passwd"),
			applyTestFile("m/d21/f01", strings.Repeat("x", 100<<10), 0o755),
			applyTestFile("m/d03/f05", "third\n", 0o640),
			applyTestFile("m/big", "small now\n", 0o644),
		}), check: func(t *testing.T, layer string) {
			applyTestWantContent(t, filepath.Join(layer, "m/d03/f05"), "third\n")
		}},
		{name: "file replaced by a directory and back", entries: func() []applyTestEntry {
			var es []applyTestEntry
			for i := range 20 {
				x, y := fmt.Sprintf("x/%02d", i), fmt.Sprintf("y/%02d", i)
				es = append(es,
					applyTestFile(x, "one\n", 0o644), applyTestFile(y, "one\n", 0o644),
					applyTestDir(x, 0o755), applyTestFile(x+"/child", "c\n", 0o644),
					applyTestDir(y, 0o750), applyTestFile(y+"/child", "c\n", 0o644),
					applyTestFile(x, "two\n", 0o640),
				)
			}
			return es
		}(), check: func(t *testing.T, layer string) {
			for i := range 20 {
				applyTestWantContent(t, filepath.Join(layer, fmt.Sprintf("x/%02d", i)), "two\n")
				applyTestWantMode(t, filepath.Join(layer, fmt.Sprintf("y/%02d", i)), unix.S_IFDIR, 0o750)
				applyTestWantContent(t, filepath.Join(layer, fmt.Sprintf("y/%02d/child", i)), "c\n")
			}
		}},
		{name: "hardlink to a file queued just before", entries: func() []applyTestEntry {
			var es []applyTestEntry
			for i := range 30 {
				f := fmt.Sprintf("h/f%02d", i)
				es = append(es, applyTestFile(f, f+"\n", 0o644), applyTestHardlink(fmt.Sprintf("h/l%02d", i), f), applyTestHardlink(fmt.Sprintf("o/l%02d", i), "/"+f))
			}
			return es
		}(), check: func(t *testing.T, layer string) {
			for i := range 30 {
				f := filepath.Join(layer, fmt.Sprintf("h/f%02d", i))
				applyTestSameInode(t, f, filepath.Join(layer, fmt.Sprintf("h/l%02d", i)))
				applyTestSameInode(t, f, filepath.Join(layer, fmt.Sprintf("o/l%02d", i)))
			}
		}},
		{name: "whiteout after files in the same directory", entries: slices.Concat(applyTestMany("w", 3, 40), []applyTestEntry{
			applyTestFile("w/d01/.wh.f05", "", 0o644),
			applyTestFile("w/d01/.wh.gone", "", 0o644),
			applyTestSymlink("w/d02/s", "f00"),
			applyTestFile("w/d02/.wh.s", "", 0o644),
			applyTestFile("w/d02/.wh.f39", "", 0o644),
		}), check: func(t *testing.T, layer string) {
			applyTestWantWhiteout(t, filepath.Join(layer, "w/d01/gone"))
			applyTestWantAbsent(t, filepath.Join(layer, "w/d01/.wh.f05"))
			applyTestWantLink(t, filepath.Join(layer, "w/d02/s"), "f00")
		}},
		{name: "opaque marker after files in the same directory", needsXattr: true, entries: slices.Concat(applyTestMany("q", 2, 50), []applyTestEntry{
			applyTestFile("q/d01/.wh..wh..opq", "", 0o644),
			applyTestFile("q/d01/after", "a\n", 0o644),
		}), check: func(t *testing.T, layer string) {
			applyTestWantOpaque(t, filepath.Join(layer, "q/d01"))
		}},
		{name: "symlink and file flips", entries: func() []applyTestEntry {
			var es []applyTestEntry
			for i := range 30 {
				n := fmt.Sprintf("s/%02d", i)
				es = append(es, applyTestSymlink(n, "/etc/passwd"), applyTestFile(n+"x", "x\n", 0o644), applyTestFile(n, "file\n", 0o644), applyTestSymlink(n+"x", "/etc/shadow"))
			}
			return es
		}()},
		{name: "modes", entries: []applyTestEntry{
			applyTestFile("m0644", "a", 0o644), applyTestFile("m0755", "a", 0o755), applyTestFile("m0444", "a", 0o444),
			applyTestFile("m0000", "a", 0o000), applyTestFile("m0600", "a", 0o600), applyTestFile("m0640", "a", 0o640),
			applyTestFile("m0666", "a", 0o666), applyTestFile("m0777", "a", 0o777), applyTestFile("m1755", "a", 0o1755),
			applyTestFile("big0444", large, 0o444),
			applyTestWith(applyTestFile("x0444", "a", 0o444), func(h *tar.Header) {
				h.PAXRecords = map[string]string{"SCHILY.xattr.user.k": "v"}
			}),
		}},
	}
	for _, tc := range cases {
		for _, noTmpfile := range []bool{false, true} {
			name := tc.name
			if noTmpfile {
				name += ", created by name"
			}
			t.Run(name, func(t *testing.T) {
				if tc.needsXattr && !xattrs {
					t.Skip("the filesystem of t.TempDir() does not store user xattrs")
				}
				env := newApplyTestEnv(t)
				before := applyTestSnapshot(t, env)
				stats, err := applyTar(env.layer, bytes.NewReader(applyTestTar(tc.entries...)), ApplyLimits{}, applyOptions{noTmpfile: noTmpfile})
				if err != nil {
					t.Fatal(err)
				}
				var wantBytes int64
				for _, e := range tc.entries {
					wantBytes += int64(len(e.body))
				}
				if stats.Entries != len(tc.entries) || stats.Bytes != wantBytes {
					t.Errorf("stats = %+v, want %d entries and %d bytes", stats, len(tc.entries), wantBytes)
				}
				if diff := applyTestSnapshotDiff(before, applyTestSnapshot(t, env)); diff != "" {
					t.Errorf("files outside the layer changed:\n%s", diff)
				}
				applyTestWantEntries(t, env.layer, tc.entries)
				if tc.check != nil {
					tc.check(t, env.layer)
				}
			})
		}
	}
}

// TestApplyTarModes checks that files get exactly the mode of their entry,
// whether they are created with it or fchmodded to it: with several umasks,
// and under a default ACL, which takes the umask's place.
func TestApplyTarModes(t *testing.T) {
	var entries []applyTestEntry
	for _, m := range []int64{0o644, 0o755, 0o444, 0o000, 0o600, 0o640, 0o666, 0o777, 0o1755, 0o4755, 0o2711, 0o220} {
		entries = append(entries, applyTestFile(fmt.Sprintf("f%04o", m), "a", m), applyTestFile(fmt.Sprintf("d/f%04o", m), "b", m))
	}
	layer := applyTestTar(entries...)
	check := func(t *testing.T, dir string) {
		t.Helper()
		for _, e := range entries {
			applyTestWantMode(t, filepath.Join(dir, e.hdr.Name), unix.S_IFREG, uint32(e.hdr.Mode)&0o1777)
		}
	}
	for _, umask := range []int{0o022, 0, 0o077, 0o002} {
		for _, noTmpfile := range []bool{false, true} {
			t.Run(fmt.Sprintf("umask %04o, noTmpfile %v", umask, noTmpfile), func(t *testing.T) {
				env := newApplyTestEnv(t)
				// No test of this package that runs now creates files
				// in another goroutine: the tests that do are parallel
				// ones, which wait for this one to end.
				old := unix.Umask(umask)
				_, err := applyTar(env.layer, bytes.NewReader(layer), ApplyLimits{}, applyOptions{noTmpfile: noTmpfile})
				unix.Umask(old)
				if err != nil {
					t.Fatal(err)
				}
				check(t, env.layer)
			})
		}
	}
	t.Run("default ACL", func(t *testing.T) {
		env := newApplyTestEnv(t)
		// A default ACL of user::rwx group::--- other::---, in the
		// xattr format of <linux/posix_acl_xattr.h>.
		acl := binary.LittleEndian.AppendUint32(nil, 2)
		for _, e := range [][2]uint16{{0x01, 7}, {0x04, 0}, {0x20, 0}} {
			acl = binary.LittleEndian.AppendUint16(acl, e[0])
			acl = binary.LittleEndian.AppendUint16(acl, e[1])
			acl = binary.LittleEndian.AppendUint32(acl, 0xffffffff)
		}
		if err := unix.Setxattr(env.layer, "system.posix_acl_default", acl, 0); err != nil {
			t.Skipf("set a default ACL: %v", err)
		}
		if _, err := ApplyTar(env.layer, bytes.NewReader(layer), ApplyLimits{}); err != nil {
			t.Fatal(err)
		}
		check(t, env.layer)
	})
}

// TestApplyTarWorkerError fails entries in the workers, through the test
// hook and through the kernel, and checks that ApplyTar names the earliest
// one, writes nothing outside the layer and nothing at all once it returned.
func TestApplyTarWorkerError(t *testing.T) {
	injected := errors.New("injected failure")
	entries := applyTestMany("e", 20, 20)
	for d := range 20 {
		entries = append(entries, applyTestSymlink(fmt.Sprintf("e/d%02d/s", d), "f00"))
	}
	cases := []struct {
		name      string
		entries   []applyTestEntry
		fail      []string // entries that the hook fails
		slow      string   // an entry that the hook fails only after a while
		slowOK    string   // an entry that the hook lets through after a while
		noTmpfile bool
		entry     string // the entry that the error names
		errIs     error
	}{
		{name: "one file", entries: entries, fail: []string{"e/d07/f13"}, entry: "e/d07/f13", errIs: injected},
		{name: "two files, the earlier is named", entries: entries, fail: []string{"e/d15/f02", "e/d03/f11"}, entry: "e/d03/f11", errIs: injected},
		// d03 has no directory entry, so the wait for its parent keeps
		// earlier directories out of the workers' way: d03 and d04 are
		// handed out together, to two workers.
		{name: "two files, the earlier fails last", entries: entries, fail: []string{"e/d04/f02"}, slow: "e/d03/f19", entry: "e/d03/f19", errIs: injected},
		{name: "a failure while an earlier directory is still written", entries: entries, fail: []string{"e/d04/f02"}, slowOK: "e/d03/f10", entry: "e/d04/f02", errIs: injected},
		// More jobs than the queue holds after the failing one, and no
		// entry that waits for the workers: the reading goroutine sees
		// the failure itself, while a/f10 and the rest of a are due.
		{name: "a failure seen by the reading goroutine", entries: slices.Concat(applyTestMany("a", 1, 20), applyTestMany("b", 1, 4*applyJobQueue)),
			fail: []string{"b/d00/f02"}, slowOK: "a/d00/f10", entry: "b/d00/f02", errIs: injected},
		{name: "a symlink", entries: entries, fail: []string{"e/d11/s"}, entry: "e/d11/s", errIs: injected},
		{name: "a file and a later main-goroutine error", entries: slices.Concat(entries, []applyTestEntry{applyTestHardlink("e/h", "nope")}),
			fail: []string{"e/d19/f19"}, entry: "e/d19/f19", errIs: injected},
		{name: "one file, created by name", entries: entries, fail: []string{"e/d07/f13"}, entry: "e/d07/f13", errIs: injected, noTmpfile: true},
		{name: "a failure while an earlier directory is still written, by name", entries: entries, fail: []string{"e/d04/f02"}, slowOK: "e/d03/f10", entry: "e/d04/f02", errIs: injected, noTmpfile: true},
		{name: "name too long", entries: slices.Concat(entries[:200], []applyTestEntry{applyTestFile("e/d09/"+strings.Repeat("c", 300), "", 0o644)}, entries[200:]),
			entry: "e/d09/" + strings.Repeat("c", 300), errIs: unix.ENAMETOOLONG},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			layer := applyTestTar(tc.entries...)
			// Several rounds: which worker gets which directory, and when
			// the failure is seen, changes from run to run.
			for range 3 {
				env := newApplyTestEnv(t)
				before := applyTestSnapshot(t, env)
				var returned atomic.Bool
				var late atomic.Int32
				hook := func(entry string) error {
					if returned.Load() {
						late.Add(1)
					}
					if slices.Contains(tc.fail, entry) {
						return injected
					}
					if entry == tc.slow || entry == tc.slowOK {
						time.Sleep(50 * time.Millisecond)
						if entry == tc.slow {
							return injected
						}
					}
					time.Sleep(20 * time.Microsecond)
					return nil
				}
				_, err := applyTar(env.layer, bytes.NewReader(layer), ApplyLimits{}, applyOptions{hook: hook, noTmpfile: tc.noTmpfile})
				returned.Store(true)
				tree := applyTestDescribe(t, env.layer)
				applyTestCheckErr(t, applyHostileCase{wantErr: true, entry: tc.entry, errIs: tc.errIs}, err)
				time.Sleep(20 * time.Millisecond)
				if diff := applyTestSnapshotDiff(tree, applyTestDescribe(t, env.layer)); diff != "" {
					t.Errorf("the layer changed after ApplyTar returned:\n%s", diff)
				}
				if n := late.Load(); n != 0 {
					t.Errorf("%d jobs started after ApplyTar returned", n)
				}
				if diff := applyTestSnapshotDiff(before, applyTestSnapshot(t, env)); diff != "" {
					t.Errorf("files outside the layer changed:\n%s", diff)
				}
				// As in stream order, every entry before the one that
				// failed was applied.
				i := slices.IndexFunc(tc.entries, func(e applyTestEntry) bool { return e.hdr.Name == tc.entry })
				applyTestWantEntries(t, env.layer, tc.entries[:i])
			}
		})
	}
}

// TestApplyTarWorkerPermissionError has a worker fail in the kernel: a
// directory of an earlier layer that its unprivileged owner cannot write to.
func TestApplyTarWorkerPermissionError(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write to any directory")
	}
	env := newApplyTestEnv(t)
	if _, err := ApplyTar(env.layer, bytes.NewReader(applyTestTar(applyTestDir("ro", 0o500))), ApplyLimits{}); err != nil {
		t.Fatal(err)
	}
	before := applyTestSnapshot(t, env)
	entries := slices.Concat(applyTestMany("e", 10, 20), []applyTestEntry{applyTestFile("ro/f", applyTestPwned, 0o644)}, applyTestMany("g", 10, 20))
	_, err := ApplyTar(env.layer, bytes.NewReader(applyTestTar(entries...)), ApplyLimits{})
	applyTestCheckErr(t, applyHostileCase{wantErr: true, entry: "ro/f", errIs: fs.ErrPermission}, err)
	if diff := applyTestSnapshotDiff(before, applyTestSnapshot(t, env)); diff != "" {
		t.Errorf("files outside the layer changed:\n%s", diff)
	}
}

func TestApplyTarReadsToEOF(t *testing.T) {
	// A digest-verifying reader underneath must see every byte, padding
	// included.
	data := append(applyTestTar(applyTestFile("a", "a\n", 0o644)), make([]byte, 4096)...)
	r := bytes.NewReader(data)
	env := newApplyTestEnv(t)
	if _, err := ApplyTar(env.layer, r, ApplyLimits{}); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Errorf("%d bytes left unread", r.Len())
	}
}

func TestApplyTarNotADirectory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ApplyTar(p, bytes.NewReader(applyTestTar()), ApplyLimits{}); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("ApplyTar on a file: %v, want ENOTDIR", err)
	}
}

func TestEntryError(t *testing.T) {
	cause := fmt.Errorf("%w: name has a .. component", ErrUnsafeEntry)
	err := error(&EntryError{Entry: "../x", Err: cause})
	if got, want := err.Error(), `entry "../x": image: unsafe layer entry: name has a .. component`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrUnsafeEntry) {
		t.Error("EntryError does not unwrap to its cause")
	}
}

// TestApplyTarDecompressionBomb feeds small compressed inputs that expand
// far beyond the limit, through Decompress as a layer pull would.
func TestApplyTarDecompressionBomb(t *testing.T) {
	const limit = 1 << 20
	cases := []struct {
		name  string
		write func(w io.Writer) error
		entry string
	}{
		{name: "one huge file", entry: "bomb", write: func(w io.Writer) error {
			tw := tar.NewWriter(w)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bomb", Mode: 0o644, Size: 256 << 20, ModTime: applyTestTime}); err != nil {
				return err
			}
			if _, err := io.CopyN(tw, applyTestZeros{}, 256<<20); err != nil {
				return err
			}
			return tw.Close()
		}},
		{name: "many files", entry: "f3", write: func(w io.Writer) error {
			tw := tar.NewWriter(w)
			for i := range 100 {
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "f" + strconv.Itoa(i), Mode: 0o644, Size: 300 << 10, ModTime: applyTestTime}); err != nil {
					return err
				}
				if _, err := io.CopyN(tw, applyTestZeros{}, 300<<10); err != nil {
					return err
				}
			}
			return tw.Close()
		}},
		{name: "endless zero padding", write: func(w io.Writer) error {
			if _, err := w.Write(applyTestTar(applyTestFile("a", "a", 0o644))); err != nil {
				return err
			}
			_, err := io.CopyN(w, applyTestZeros{}, 256<<20)
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var gz bytes.Buffer
			zw, err := kgzip.NewWriterLevel(&gz, kgzip.BestSpeed)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.write(zw); err != nil {
				t.Fatal(err)
			}
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			env := newApplyTestEnv(t)
			start := time.Now()
			rc, err := Decompress(bytes.NewReader(gz.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			_, err = ApplyTar(env.layer, rc, ApplyLimits{MaxBytes: limit})
			t.Logf("%d compressed bytes, %v: %v", gz.Len(), time.Since(start), err)
			if !errors.Is(err, ErrUnsafeEntry) {
				t.Fatalf("ApplyTar: %v, want ErrUnsafeEntry", err)
			}
			var ee *EntryError
			if tc.entry != "" && (!errors.As(err, &ee) || ee.Entry != tc.entry) {
				t.Errorf("error %v does not name entry %q", err, tc.entry)
			}
			var used int64
			err = filepath.WalkDir(env.layer, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				var st unix.Stat_t
				if err := unix.Lstat(p, &st); err != nil {
					return err
				}
				used += st.Blocks * 512
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if used > 2*limit {
				t.Errorf("layer holds %d bytes on disk, limit %d", used, limit)
			}
		})
	}
}

// applyTestZeros is an endless stream of zero bytes.
type applyTestZeros struct{}

func (applyTestZeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestRemoveAll(t *testing.T) {
	env := newApplyTestEnv(t)
	data := applyTestTar(
		applyTestDir("locked", 0o000),
		applyTestDir("locked/ro", 0o555),
		applyTestFile("locked/ro/f", "f\n", 0o000),
		applyTestDir("noexec", 0o600),
		applyTestFile("noexec/f", "f\n", 0o644),
		applyTestSymlink("out", env.sentinel),
		applyTestSymlink("locked/out", env.sentinel+"/sub"),
		applyTestFile("whiteout/.wh.x", "", 0o644),
	)
	before := applyTestSnapshot(t, env)
	if _, err := ApplyTar(env.layer, bytes.NewReader(data), ApplyLimits{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(env.layer, 0o500); err != nil {
		t.Fatal(err)
	}
	if err := RemoveAll(env.layer); err != nil {
		t.Fatal(err)
	}
	applyTestWantAbsent(t, env.layer)
	after := applyTestSnapshot(t, env)
	// Removing the layer changes its parent's mtime, and nothing else.
	delete(before, filepath.Dir(env.layer))
	delete(after, filepath.Dir(env.layer))
	if diff := applyTestSnapshotDiff(before, after); diff != "" {
		t.Errorf("RemoveAll changed files outside the tree:\n%s", diff)
	}
	if err := RemoveAll(env.layer); err != nil {
		t.Errorf("RemoveAll of a missing directory: %v", err)
	}
	for _, bad := range []string{"/", ".", ".."} {
		if err := RemoveAll(bad); err == nil {
			t.Errorf("RemoveAll(%q) succeeded", bad)
		}
	}
}

func TestRemoveAllManyEntries(t *testing.T) {
	// More children than one directory read returns.
	dir := filepath.Join(t.TempDir(), "many")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range applyReadDirBatch + 7 {
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	if err := RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	applyTestWantAbsent(t, dir)
}

func TestDecompress(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = byte(rng.Uint32())
	}
	blob := bytes.Repeat(chunk, 48) // 3 MiB: several pgzip blocks
	layer := applyTestTar(applyTestFile("etc/os-release", "ID=test\n", 0o644), applyTestFile("blob", string(blob), 0o644))
	cases := []struct {
		name string
		open func(w io.Writer) (io.WriteCloser, error)
	}{
		{"gzip", func(w io.Writer) (io.WriteCloser, error) { return kgzip.NewWriter(w), nil }},
		{"gzip via archiver", archiver.Gz{}.OpenWriter},
		{"zstd", archiver.Zstd{}.OpenWriter},
		{"xz", archiver.Xz{}.OpenWriter},
		{"bzip2", archiver.Bz2{}.OpenWriter},
		{"plain", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := layer
			if tc.open != nil {
				var buf bytes.Buffer
				w, err := tc.open(&buf)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write(layer); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				data = buf.Bytes()
			}
			rc, err := Decompress(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			env := newApplyTestEnv(t)
			if _, err := ApplyTar(env.layer, rc, ApplyLimits{}); err != nil {
				t.Fatal(err)
			}
			applyTestWantContent(t, filepath.Join(env.layer, "etc/os-release"), "ID=test\n")
			applyTestWantContent(t, filepath.Join(env.layer, "blob"), string(blob))
		})
	}
}

func TestDecompressUnsupported(t *testing.T) {
	var buf bytes.Buffer
	w, err := archiver.Lz4{}.OpenWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(applyTestTar(applyTestFile("a", "a", 0o644))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Decompress(&buf); err == nil || !strings.Contains(err.Error(), "unsupported") {
		t.Errorf("Decompress(lz4) = %v, want an unsupported-compression error", err)
	}
}

func TestDecompressPassesThrough(t *testing.T) {
	for _, in := range []string{"", "not a tar and not compressed"} {
		rc, err := Decompress(strings.NewReader(in))
		if err != nil {
			t.Fatalf("Decompress(%q): %v", in, err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || string(got) != in {
			t.Errorf("Decompress(%q) read %q, %v", in, got, err)
		}
		rc.Close()
	}
}

func TestDecompressReadsForward(t *testing.T) {
	// archiver rewinds an io.Seeker to offset 0; Decompress must read from
	// where r is, as a digest-verifying reader would.
	var gz bytes.Buffer
	zw := kgzip.NewWriter(&gz)
	layer := applyTestTar(applyTestFile("a", "a\n", 0o644))
	if _, err := zw.Write(layer); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(p, append([]byte("prefix--"), gz.Bytes()...), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(8, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rc, err := Decompress(f)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, layer) {
		t.Errorf("decompressed %d bytes, want the %d-byte layer", len(got), len(layer))
	}
}

// BenchmarkApplyTar applies a synthetic layer of 5000 small files in 100
// directories and four 16 MiB files.
func BenchmarkApplyTar(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	var entries []applyTestEntry
	small := make([]byte, 4096)
	for i := range 5000 {
		n := 256 + rng.IntN(len(small)-256)
		for j := range n {
			small[j] = byte(rng.Uint32())
		}
		entries = append(entries, applyTestFile(fmt.Sprintf("usr/share/d%02d/f%04d", i/50, i), string(small[:n]), 0o644))
	}
	large := make([]byte, 16<<20)
	for j := range large {
		large[j] = byte(j * 7)
	}
	for i := range 4 {
		entries = append(entries, applyTestFile(fmt.Sprintf("usr/lib/large%d.so", i), string(large), 0o755))
	}
	layer := applyTestTar(entries...)
	base := b.TempDir()
	b.SetBytes(int64(len(layer)))
	b.ResetTimer()
	for i := range b.N {
		dir := filepath.Join(base, strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if _, err := ApplyTar(dir, bytes.NewReader(layer), ApplyLimits{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// applyBenchDebianTar is a Debian bookworm root filesystem as one tar, if the
// benchmark scripts of this machine left one.
const applyBenchDebianTar = "/var/tmp/devbox-bench/bookworm-minbase-amd64.tar"

// applyBenchTree returns a realistic layer: applyBenchDebianTar if it exists,
// else a tar of up to 7000 entries of this machine's /usr/share and
// /usr/lib/x86_64-linux-gnu, built in memory.
func applyBenchTree(b *testing.B) []byte {
	b.Helper()
	if data, err := os.ReadFile(applyBenchDebianTar); err == nil {
		return data
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	n := 0
	for _, top := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/share"} {
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil || n >= 7000 {
				return filepath.SkipDir
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			link := ""
			if info.Mode()&fs.ModeSymlink != 0 {
				if link, err = os.Readlink(p); err != nil {
					return nil
				}
			} else if !info.Mode().IsRegular() && !info.IsDir() {
				return nil
			}
			hdr, err := tar.FileInfoHeader(info, link)
			if err != nil {
				return nil
			}
			hdr.Name = strings.TrimPrefix(p, "/")
			var body []byte
			if info.Mode().IsRegular() {
				if body, err = os.ReadFile(p); err != nil {
					return nil
				}
				hdr.Size = int64(len(body))
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := tw.Write(body); err != nil {
				return err
			}
			n++
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkApplyTarDebian applies a real root filesystem (see applyBenchTree)
// on the real disk: /var/tmp, not a tmpfs, because creating files in the
// kernel is what an unpack mostly costs.
func BenchmarkApplyTarDebian(b *testing.B) {
	layer := applyBenchTree(b)
	base, err := os.MkdirTemp("/var/tmp", "devbox-bench-apply-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := RemoveAll(base); err != nil {
			b.Error(err)
		}
	})
	b.SetBytes(int64(len(layer)))
	// The CPU time of the process while ApplyTar runs, next to the wall
	// time: how much of it is the kernel's, and how many cores it keeps
	// busy.
	var cpu, sys time.Duration
	rusage := func() (user, sys time.Duration) {
		var ru unix.Rusage
		if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
	}
	b.ResetTimer()
	for i := range b.N {
		dir := filepath.Join(base, strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		u0, s0 := rusage()
		if _, err := ApplyTar(dir, bytes.NewReader(layer), ApplyLimits{}); err != nil {
			b.Fatal(err)
		}
		u1, s1 := rusage()
		cpu += u1 - u0 + s1 - s0
		sys += s1 - s0
		b.StopTimer()
		if err := RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(sys.Seconds()/float64(b.N), "sys-s/op")
}
