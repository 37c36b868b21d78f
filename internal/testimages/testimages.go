// Package testimages builds small OCI and Docker images for tests from the
// host's static busybox, and pushes them to a registry. It owns no store and
// no sandbox: the images are built in memory and only ever leave the process
// through Push.
//
// # Images
//
// Busybox is a one-layer OCI image: /bin/busybox with its applets linked in
// /bin, /etc/passwd and /etc/group with root, a 1777 /tmp and a /root. Layered
// is a three-layer Docker v2s2 image whose upper layers exercise an unpacker:
// a hardlink, absolute and relative symlinks, a whiteout, an opaque directory
// and a rewritten file. The contents of each layer are listed in the doc of
// Layered. Both images are deterministic: building one twice gives the same
// digest on one host.
//
// # Requirements
//
// The host must have a statically linked busybox at BusyboxPath (Debian's
// busybox-static package).
package testimages

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxPath is where the host's static busybox is read from.
const BusyboxPath = "/bin/busybox"

// ImagePath is the PATH set in the config of every test image.
const ImagePath = "/usr/sbin:/usr/bin:/sbin:/bin"

// MarkerVar is the environment variable that every test image sets in its
// config, to the image's name ("busybox" or "layered"), so that a test can
// tell that the image config's Env reached the command.
const MarkerVar = "DEVBOX_TEST_IMAGE"

// requiredApplets are the busybox applets that tests rely on. Busybox links
// every applet that the host's busybox lists; it fails if one of these is
// missing.
var requiredApplets = []string{
	"sh", "ls", "id", "cat", "echo", "sleep", "touch", "stat", "env", "pwd",
	"mkdir", "true", "false", "kill", "ps", "grep", "readlink", "wc", "test",
	"uname", "hostname", "whoami", "head", "tr", "tty",
}

// Contents of the files in Layered, for assertions.
const (
	KeepV2 = "keep from layer 2\n" // /data/keep in layer 2, and so /data/hard
	KeepV3 = "keep from layer 3\n" // /data/keep in layer 3
	DirA   = "a from layer 2\n"    // /data/dir/a, and /data/rel through its link
	Gone   = "gone in layer 3\n"   // /data/gone, whited out by layer 3
	Old    = "old in layer 2\n"    // /opaque/old, hidden by layer 3's opaque marker
	New    = "new in layer 3\n"    // /opaque/new
)

// Link targets in Layered, stored exactly as written.
const (
	AbsTarget = "/data/keep" // target of the symlink /data/abs
	RelTarget = "dir/a"      // target of the symlink /data/rel
)

// epoch is the modification time of every entry and the creation time of
// every image, so that digests do not depend on when an image was built.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// entry is one tar header plus, for regular files, its content.
type entry struct {
	hdr  tar.Header
	body []byte
}

func dir(name string, mode int64) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}}
}

func file(name string, mode int64, body []byte) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body: body}
}

func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}}
}

// layer writes entries, in order, to an uncompressed tar and wraps it as a
// gzip-compressed layer of media type mt.
func layer(mt types.MediaType, entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.ModTime = epoch
		h.Uname, h.Gname = "root", "root"
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("write tar header %s: %w", h.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("write tar entry %s: %w", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(mt))
	if err != nil {
		return nil, err
	}
	return plainLayer{l}, nil
}

// plainLayer hides the Descriptor method of a tarball layer, whose empty
// annotations map would make the in-memory manifest differ from the one that
// is serialized (validate.Image reports it); without it, mutate derives the
// descriptor from Digest, Size and MediaType alone.
type plainLayer struct{ v1.Layer }

// readBusybox returns the host's busybox binary and the applets it lists,
// sorted, after checking that it is statically linked: a dynamic one would
// not run in an image that has no libc.
func readBusybox() ([]byte, []string, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read busybox (install busybox-static): %w", err)
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return nil, nil, fmt.Errorf("%s is not an ELF binary: %w", BusyboxPath, err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, nil, fmt.Errorf("%s is dynamically linked; install busybox-static", BusyboxPath)
		}
	}
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("%s --list: %w", BusyboxPath, err)
	}
	seen := map[string]bool{}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" || strings.ContainsAny(a, "/.") || seen[a] {
			continue
		}
		seen[a] = true
		applets = append(applets, a)
	}
	sort.Strings(applets)
	var missing []string
	for _, a := range requiredApplets {
		if !seen[a] {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("%s lacks applets %s", BusyboxPath, strings.Join(missing, ", "))
	}
	return bin, applets, nil
}

// baseLayer is the single layer of Busybox and the first of Layered.
func baseLayer(mt types.MediaType) (v1.Layer, error) {
	bin, applets, err := readBusybox()
	if err != nil {
		return nil, err
	}
	entries := []entry{
		dir("bin", 0o755),
		file("bin/busybox", 0o755, bin),
	}
	for _, a := range applets {
		entries = append(entries, symlink("bin/"+a, "busybox"))
	}
	entries = append(entries,
		dir("dev", 0o755),
		dir("etc", 0o755),
		file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")),
		file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")),
		dir("home", 0o755),
		dir("proc", 0o555),
		dir("root", 0o700),
		dir("sys", 0o555),
		dir("tmp", 0o1777),
		dir("usr", 0o755),
		dir("usr/bin", 0o755),
		dir("usr/sbin", 0o755),
		dir("var", 0o755),
	)
	return layer(mt, entries)
}

// build stacks layers on an empty image of the given manifest and config
// media types and sets a config naming the image in MarkerVar.
func build(manifest, config types.MediaType, name string, layers ...v1.Layer) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, manifest), config)
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{Layer: l, History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: fmt.Sprintf("testimages: %s layer %d", name, i+1),
		}}
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("append layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: epoch}
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Config = v1.Config{
		Env: []string{"PATH=" + ImagePath, MarkerVar + "=" + name},
		Cmd: []string{"sh"},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	return img, nil
}

// Busybox returns a one-layer OCI image of the host's busybox: /bin/busybox,
// a symlink in /bin for each applet, /etc/passwd and /etc/group with root,
// /tmp (1777), /root, and empty /dev, /proc, /sys, /home, /usr/bin,
// /usr/sbin and /var. Its config sets PATH to ImagePath and MarkerVar to
// "busybox", with Cmd ["sh"].
func Busybox() (v1.Image, error) {
	base, err := baseLayer(types.OCILayer)
	if err != nil {
		return nil, err
	}
	return build(types.OCIManifestSchema1, types.OCIConfigJSON, "busybox", base)
}

// Layered returns a three-layer Docker v2s2 image whose config is that of
// Busybox with MarkerVar set to "layered":
//
//  1. the layer of Busybox;
//  2. /data/keep (KeepV2), /data/gone (Gone), /data/dir/a (DirA),
//     /opaque/old (Old), a hardlink /data/hard to /data/keep, a symlink
//     /data/abs to AbsTarget and a symlink /data/rel to RelTarget;
//  3. a whiteout /data/.wh.gone, an opaque marker /opaque/.wh..wh..opq,
//     /opaque/new (New), and /data/keep rewritten (KeepV3).
//
// Unpacked with overlay semantics, the image has no /data/gone and no
// /opaque/old; /data/keep holds KeepV3 while /data/hard keeps KeepV2, because
// layer 3 replaces the file at /data/keep and leaves layer 2's inode, which
// /data/hard names, as it was.
func Layered() (v1.Image, error) {
	base, err := baseLayer(types.DockerLayer)
	if err != nil {
		return nil, err
	}
	l2, err := layer(types.DockerLayer, []entry{
		dir("data", 0o755),
		file("data/keep", 0o644, []byte(KeepV2)),
		file("data/gone", 0o644, []byte(Gone)),
		dir("data/dir", 0o755),
		file("data/dir/a", 0o644, []byte(DirA)),
		hardlink("data/hard", "data/keep"),
		symlink("data/abs", AbsTarget),
		symlink("data/rel", RelTarget),
		dir("opaque", 0o755),
		file("opaque/old", 0o644, []byte(Old)),
	})
	if err != nil {
		return nil, err
	}
	l3, err := layer(types.DockerLayer, []entry{
		dir("data", 0o755),
		file("data/.wh.gone", 0o644, nil),
		file("data/keep", 0o644, []byte(KeepV3)),
		dir("opaque", 0o755),
		file("opaque/.wh..wh..opq", 0o644, nil),
		file("opaque/new", 0o644, []byte(New)),
	})
	if err != nil {
		return nil, err
	}
	return build(types.DockerManifestSchema2, types.DockerConfigJSON, "layered", base, l2, l3)
}

// All returns the test images by repository name: "busybox" and "layered".
func All() (map[string]v1.Image, error) {
	bb, err := Busybox()
	if err != nil {
		return nil, fmt.Errorf("build busybox image: %w", err)
	}
	layered, err := Layered()
	if err != nil {
		return nil, fmt.Errorf("build layered image: %w", err)
	}
	return map[string]v1.Image{"busybox": bb, "layered": layered}, nil
}

// PushAll builds every image of All and pushes each to
// registry/NAME:latest, where registry is a host:port.
func PushAll(registry string) error {
	imgs, err := All()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range []string{"busybox", "layered"} {
		if err := Push(imgs[n], registry+"/"+n+":latest"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
