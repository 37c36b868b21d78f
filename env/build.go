package env

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/internal/fsutil"
	"github.com/devboxhq/devbox/internal/fullprog"
	"github.com/devboxhq/devbox/mounts"
	"github.com/devboxhq/devbox/rootless"
	"golang.org/x/sys/unix"
)

// Environment is a project's environment, resolved and built: the image,
// the step layers on top of it, and the per-project state.
type Environment struct {
	Config  *Config
	Project *Project
	Image   *image.Image
	// Layers are the directories of the image's layers and then the
	// steps' layers, base first.
	Layers []string
	Steps  []Step
	Lock   *Lock
	// RootFS and FuseHelper are the Builder's.
	RootFS     mounts.RootFS
	FuseHelper string
}

// Builder resolves and builds environments.
type Builder struct {
	Dirs  Dirs
	Store *image.Store
	// Pull fetches an image into Store; the caller reports progress.
	Pull func(ctx context.Context, ref, platform string) (*image.Image, error)
	// Out receives the output of build steps as they run.
	Out *os.File
	// Log reports what the builder does, one line each.
	Log func(msg string)
	// RootFS is how sandboxes make their root filesystem on this machine;
	// empty means mounts.RootFSOverlay. FuseHelper is the fuse-overlayfs
	// binary for mounts.RootFSFuse.
	RootFS     mounts.RootFS
	FuseHelper string
}

// PrepareOptions change how Prepare treats the lock file and the cache.
type PrepareOptions struct {
	// Frozen refuses to change devbox.lock: it must exist and pin
	// everything devbox.toml names.
	Frozen bool
	// Update ignores the lock's pins: the image's tag is resolved again in
	// the registry, and the lock is rewritten.
	Update bool
	// Rebuild builds every step again, even those in the cache.
	Rebuild bool
}

// StaleLockError says why --frozen refused to go on.
type StaleLockError struct{ Why string }

func (e *StaleLockError) Error() string {
	return LockFileName + " " + e.Why + ": run 'devbox update' and commit the lock file, or drop --frozen"
}

// Prepare resolves cfg's image and archives (through devbox.lock), builds
// the steps the cache lacks, and records the result in devbox.lock. With
// everything cached and pinned, it makes no network access.
func (b *Builder) Prepare(ctx context.Context, cfg *Config, opts PrepareOptions) (*Environment, error) {
	// Hold the store against gc until env.json names what this environment
	// uses.
	release, err := b.Store.LockShared()
	if err != nil {
		return nil, err
	}
	defer release()
	project, err := OpenProject(b.Dirs, cfg.Dir())
	if err != nil {
		return nil, err
	}
	lock, err := readLockCached(project)
	if err != nil {
		return nil, err
	}
	if opts.Frozen && lock == nil {
		return nil, &StaleLockError{Why: "does not exist"}
	}
	pinned := lock
	if opts.Update {
		lock = nil
	}
	img, err := b.resolveImage(ctx, cfg, lock, opts.Frozen, opts.Update)
	if err != nil {
		return nil, err
	}
	shas, err := b.resolveArchives(ctx, cfg, lock, opts.Frozen)
	if err != nil {
		return nil, err
	}
	e := &Environment{Config: cfg, Project: project, Image: img, Layers: b.Store.LayerDirs(img), RootFS: b.rootFS(), FuseHelper: b.FuseHelper}
	e.Lock = newLock(cfg, img, shas, lock)
	if opts.Frozen {
		// Checked before anything is built or downloaded.
		if pinned == nil || !bytes.Equal(pinned.Marshal(), e.Lock.Marshal()) {
			return nil, &StaleLockError{Why: "does not match devbox.toml"}
		}
	}
	e.Steps = planSteps(cfg, img, shas, e.RootFS)
	for _, st := range e.Steps {
		if err := b.ensureStep(ctx, e, st, opts.Rebuild); err != nil {
			return nil, err
		}
		e.Layers = append(e.Layers, StepDir(b.Dirs, st.Key))
	}
	if err := project.record(e); err != nil {
		return nil, fmt.Errorf("record the environment: %w", err)
	}
	if opts.Frozen {
		return e, nil
	}
	if err := e.Lock.Write(filepath.Join(cfg.Dir(), LockFileName)); err != nil {
		return nil, fmt.Errorf("write %s: %w", LockFileName, err)
	}
	return e, nil
}

func (b *Builder) rootFS() mounts.RootFS {
	if b.RootFS == "" {
		return mounts.RootFSOverlay
	}
	return b.RootFS
}

// hostPlatform is the platform an image is pulled for by default.
func hostPlatform(cfg *Config) string {
	if cfg.Image.Platform != "" {
		return cfg.Image.Platform
	}
	return "linux/" + runtime.GOARCH
}

// resolveImage returns the image cfg names: the digest the lock pins, or
// else the store's copy of the tag, or else a pull. A local source (a path
// relative to devbox.toml's directory) cannot be asked for a digest the way
// a registry can: the lock's digest is checked against what the store
// recorded for it, and against the source itself when that differs.
func (b *Builder) resolveImage(ctx context.Context, cfg *Config, lock *Lock, frozen, update bool) (*image.Image, error) {
	platform := hostPlatform(cfg)
	src, err := imageSource(cfg)
	if err != nil {
		return nil, err
	}
	// A local source goes to image with its absolute path; a registry
	// reference as devbox.toml writes it.
	ref := cfg.Image.Ref
	if src.IsLocal() {
		ref = src.String()
	}
	if digest := lock.imageDigest(cfg.Image.Ref, platform); digest != "" {
		if src.IsLocal() {
			return b.resolveLocalPinned(ctx, cfg, ref, digest)
		}
		pinned := src.Ref.Digested(digest).String()
		img, err := b.Store.Lookup(pinned)
		if errors.Is(err, image.ErrNotPresent) {
			return b.Pull(ctx, pinned, cfg.Image.Platform)
		}
		return img, err
	}
	if frozen {
		return nil, &StaleLockError{Why: fmt.Sprintf("does not pin image %s for %s", cfg.Image.Ref, platform)}
	}
	// Not pinned: the tag. For an update, ask the registry; otherwise (the
	// first run, or a ref the lock does not pin) the store's copy of the
	// tag, from an earlier pull, will do.
	if !update {
		if img, err := b.Store.Lookup(ref); err == nil {
			return img, nil
		}
	}
	return b.Pull(ctx, ref, cfg.Image.Platform)
}

// imageSource is the source of cfg's image, a local path made absolute
// against the directory of devbox.toml.
func imageSource(cfg *Config) (image.Source, error) {
	src, err := image.ParseSource(cfg.Image.Ref)
	if err != nil {
		return image.Source{}, err
	}
	return src.Abs(cfg.Dir())
}

// resolveLocalPinned returns the image of the local source ref if it is
// still the one the lock pins: from the store when its record says so,
// without reading the source, and otherwise from the source, which must
// hold that digest now.
func (b *Builder) resolveLocalPinned(ctx context.Context, cfg *Config, ref, digest string) (*image.Image, error) {
	img, err := b.Store.Lookup(ref)
	if err == nil && img.Digest.String() == digest {
		return img, nil
	}
	if err != nil && !errors.Is(err, image.ErrNotPresent) {
		return nil, err
	}
	if img, err = b.Pull(ctx, ref, cfg.Image.Platform); err != nil {
		return nil, err
	}
	if img.Digest.String() != digest {
		return nil, &ImageChangedError{Ref: cfg.Image.Ref, Locked: digest, Current: img.Digest.String()}
	}
	return img, nil
}

// ImageChangedError is a local image source whose content is no longer the
// image devbox.lock pins.
type ImageChangedError struct {
	Ref     string // as devbox.toml writes it
	Locked  string // the digest devbox.lock pins
	Current string // the digest the source holds now
}

func (e *ImageChangedError) Error() string {
	return fmt.Sprintf("image %s now holds %s, but %s pins %s: restore the file, or run 'devbox update' to pin the new image",
		e.Ref, e.Current, LockFileName, e.Locked)
}

// newLock records what cfg resolved to, keeping the old lock's digests for
// other platforms of the same image.
func newLock(cfg *Config, img *image.Image, shas []string, old *Lock) *Lock {
	l := &Lock{Version: lockVersion, Image: LockImage{Ref: cfg.Image.Ref, Digests: map[string]string{}}}
	if old != nil && old.Image.Ref == cfg.Image.Ref {
		for p, d := range old.Image.Digests {
			l.Image.Digests[p] = d
		}
	}
	l.Image.Digests[hostPlatform(cfg)] = img.Digest.String()
	for i, a := range cfg.Tools.Archive {
		l.Archive = append(l.Archive, LockEntry{Name: a.StepName(), URL: a.URL, SHA256: shas[i]})
	}
	return l
}

// ensureStep builds st unless its layer is in the cache. A lock per key
// makes concurrent devbox processes build it once.
func (b *Builder) ensureStep(ctx context.Context, e *Environment, st Step, rebuild bool) error {
	dir := StepDir(b.Dirs, st.Key)
	if _, err := os.Stat(dir); err == nil && !rebuild {
		return nil
	}
	if err := os.MkdirAll(stepsDir(b.Dirs), 0o700); err != nil {
		return err
	}
	unlock, err := fsutil.Lock(filepath.Join(stepsDir(b.Dirs), "."+st.Key+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(dir); err == nil {
		if !rebuild {
			return nil
		}
		if err := image.RemoveAll(dir); err != nil {
			return fmt.Errorf("rebuild %s: %w", st.Name, err)
		}
	}
	if st.Kind == StepArchive && fullprog.Lean() {
		return fullprog.ErrNeeded
	}
	b.Log(fmt.Sprintf("building %s (%s)", st.Name, st.Key[:12]))
	fsutil.MarkTopDir(stepsDir(b.Dirs))
	tmp, err := os.MkdirTemp(stepsDir(b.Dirs), ".tmp-"+st.Key+"-")
	if err != nil {
		return err
	}
	defer image.RemoveAll(tmp)
	layer := filepath.Join(tmp, "layer")
	switch st.Kind {
	case StepArchive:
		err = b.buildArchive(ctx, st, layer)
	case StepPackages:
		pm, ok := detectPackageManager(e.Layers)
		if !ok {
			return fmt.Errorf("step %s: the image %s has no package manager devbox knows (apt, apk, dnf, microdnf, yum, zypper, pacman)", st.Name, e.Image.Ref)
		}
		quoted := make([]string, len(st.packages))
		for i, p := range st.packages {
			quoted[i] = shellQuote(p)
		}
		err = b.buildInSandbox(ctx, e, st, tmp, "set -e\n"+pm.script(strings.Join(quoted, " ")))
	case StepSetup:
		err = b.buildInSandbox(ctx, e, st, tmp, "set -e\n"+strings.Join(st.run, "\n"))
	}
	if err != nil {
		return err
	}
	if err := fsutil.SyncFS(layer); err != nil {
		return err
	}
	return os.Rename(layer, dir)
}

// StepError is a build step whose command failed.
type StepError struct {
	Step string
	Code int
	Tail []string // the last lines of its output
}

func (e *StepError) Error() string {
	msg := fmt.Sprintf("step %s failed with exit status %d", e.Step, e.Code)
	if len(e.Tail) > 0 {
		msg += "; its last output:\n    " + strings.Join(e.Tail, "\n    ")
	}
	return msg
}

// buildInSandbox runs script as root (with root emulation) on the layers
// built so far, with the project mounted, and keeps what it changed as the
// step's layer in tmp/layer. Where the root filesystem is a flattened copy
// (mounts.RootFSCopy), there is no upper layer to keep: the step runs on a
// copy of everything so far, and that whole tree, its root marked opaque,
// is the layer.
func (b *Builder) buildInSandbox(ctx context.Context, e *Environment, st Step, tmp, script string) error {
	upper, work, root := filepath.Join(tmp, "layer"), filepath.Join(tmp, "work"), filepath.Join(tmp, "root")
	for _, d := range []string{upper, work, root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	// A step that downloads (pip, npm, curl) trusts what the host trusts;
	// one copied from a guide may say sudo, which root runs too.
	services := (host{}).certificateMounts()
	view := mounts.View{
		Layers: e.Layers, Upper: upper, Work: work, RootFS: e.RootFS, FuseHelper: e.FuseHelper,
		WorkTree: e.Project.Dir, HostNetworkFiles: true, Early: append([]mounts.Mount{rootless.SudoMount()}, services...),
	}
	if e.RootFS == mounts.RootFSCopy {
		if err := mounts.Flatten(e.Layers, upper); err != nil {
			return fmt.Errorf("step %s: %w", st.Name, err)
		}
		if err := unix.Setxattr(upper, "user.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("step %s: mark the snapshot opaque: %w", st.Name, err)
		}
		view.Flat = upper
	}
	spec := &rootless.Spec{
		RootDir:  root,
		Mounts:   mounts.Plan(view),
		Hostname: "devbox",
		Network:  rootless.NetworkHost,
		Sudo:     true,
		Process: rootless.Process{
			Args:          []string{"/bin/sh", "-c", script},
			Env:           environment(e.Image.Config.Env, e.Config, User{Name: "root", Home: "/root"}, e.Project.Dir, services, filesOf(view, host{}), ""),
			Cwd:           e.Project.Dir,
			RootEmulation: true,
		},
	}
	out, tail, done, err := teeOutput(b.Out)
	if err != nil {
		return err
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	code, err := rootless.Run(ctx, spec, rootless.IO{In: null, Out: out, Err: out}, nil)
	out.Close()
	<-done
	if err != nil {
		return fmt.Errorf("step %s: %w", st.Name, err)
	}
	if code != 0 {
		return &StepError{Step: st.Name, Code: code, Tail: tail.lines()}
	}
	return nil
}

// teeOutput returns a pipe whose output is copied to w and kept in a ring
// of the last lines; done closes when the copy has finished.
func teeOutput(w io.Writer) (*os.File, *lineRing, chan struct{}, error) {
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, err
	}
	ring := &lineRing{max: 15}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.Close()
		dst := io.Writer(ring)
		if w != nil {
			dst = io.MultiWriter(w, ring)
		}
		io.Copy(dst, r)
	}()
	return pw, ring, done, nil
}

// lineRing keeps the last max lines written to it.
type lineRing struct {
	mu      sync.Mutex
	max     int
	partial []byte
	ring    []string
}

func (l *lineRing) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.push(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

func (l *lineRing) push(s string) {
	l.ring = append(l.ring, strings.TrimRight(s, "\r"))
	if len(l.ring) > l.max {
		l.ring = l.ring[1:]
	}
}

func (l *lineRing) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.push(string(l.partial))
		l.partial = nil
	}
	return append([]string(nil), l.ring...)
}
