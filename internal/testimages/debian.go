package testimages

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DebianPath is the PATH of the Debian image.
const DebianPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Debian returns a two-layer Docker image of a Debian root filesystem
// tarball (as test/debian-rootfs.sh makes with debootstrap): everything but
// /usr, then /usr, so that tests see a real distribution with apt spread
// over several layers. Its config sets PATH and MarkerVar to "debian", with
// Cmd ["bash"]. The layers are written as temporary files under dir.
func Debian(rootfsTar, dir string) (v1.Image, error) {
	base, usr, err := splitUsr(rootfsTar, dir)
	if err != nil {
		return nil, err
	}
	var layers []v1.Layer
	for _, p := range []string{base, usr} {
		l, err := tarball.LayerFromFile(p, tarball.WithMediaType(types.DockerLayer))
		if err != nil {
			return nil, err
		}
		layers = append(layers, plainLayer{l})
	}
	img, err := build(types.DockerManifestSchema2, types.DockerConfigJSON, "debian", layers...)
	if err != nil {
		return nil, err
	}
	return withConfig(img, []string{"PATH=" + DebianPath, MarkerVar + "=debian"}, []string{"bash"})
}

// splitUsr copies the entries of src into two tar files under dir: the
// ones outside /usr and the ones inside it.
func splitUsr(src, dir string) (string, string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", "", err
	}
	defer in.Close()
	outs := [2]*os.File{}
	writers := [2]*tar.Writer{}
	for i, name := range []string{"base.tar", "usr.tar"} {
		if outs[i], err = os.Create(path.Join(dir, name)); err != nil {
			return "", "", err
		}
		defer outs[i].Close()
		writers[i] = tar.NewWriter(outs[i])
	}
	inUsr := func(name string) int {
		name = strings.TrimPrefix(path.Clean("/"+name), "/")
		if name == "usr" || strings.HasPrefix(name, "usr/") {
			return 1
		}
		return 0
	}
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", "", fmt.Errorf("read %s: %w", src, err)
		}
		i := inUsr(h.Name)
		if h.Typeflag == tar.TypeLink && inUsr(h.Linkname) != i {
			return "", "", fmt.Errorf("%s: hardlink %s → %s crosses the /usr split", src, h.Name, h.Linkname)
		}
		if err := writers[i].WriteHeader(h); err != nil {
			return "", "", err
		}
		if _, err := io.Copy(writers[i], tr); err != nil {
			return "", "", err
		}
	}
	for _, w := range writers {
		if err := w.Close(); err != nil {
			return "", "", err
		}
	}
	return outs[0].Name(), outs[1].Name(), nil
}

// withConfig replaces the Env and Cmd of img's config.
func withConfig(img v1.Image, env, cmd []string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg := cf.Config
	cfg.Env, cfg.Cmd = env, cmd
	return mutate.Config(img, cfg)
}
