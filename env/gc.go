package env

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/internal/fsutil"
	"github.com/devboxhq/devbox/rootless"
	"golang.org/x/sys/unix"
)

// envRecord is what a project used last: written by Prepare to
// projects/<id>/env.json, read by GC as a root.
type envRecord struct {
	Image string   `json:"image"` // manifest digest
	Steps []string `json:"steps"` // step keys
}

// runRecord lists the layers of a running sandbox: written to
// projects/<id>/running/<name>.json and held with a shared flock for the
// sandbox's lifetime (see Running). GC keeps those layers even if the project's
// devbox.toml has moved on, and deletes records nobody holds any more.
type runRecord struct {
	Layers []string `json:"layers"`
}

func (p *Project) envRecordPath() string { return filepath.Join(p.StateDir, "env.json") }
func (p *Project) runningDir() string    { return filepath.Join(p.StateDir, "running") }

// record writes e's env.json.
func (p *Project) record(e *Environment) error {
	rec := envRecord{Image: e.Image.Digest.String()}
	for _, s := range e.Steps {
		rec.Steps = append(rec.Steps, s.Key)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	// Most runs use what the last one did: no write then.
	if old, err := os.ReadFile(p.envRecordPath()); err == nil && bytes.Equal(old, b) {
		return nil
	}
	return fsutil.WriteAtomic(p.envRecordPath(), b, 0o600)
}

// Running records that a sandbox of e runs, until release: Reset refuses
// to run meanwhile, and GC keeps every layer the sandbox uses.
//
// Sandboxes that run the same layers share one record, named after its
// content and each holding a shared flock on it. It is linked into place
// complete, once; a later run only opens and locks it, which keeps the
// common warm start free of writes.
func (e *Environment) Running() (release func(), err error) {
	unlockProject, err := fsutil.LockShared(e.Project.Lock())
	if err != nil {
		return nil, err
	}
	path, b := e.runRecord()
	f, err := holdRecord(path, b)
	if err != nil {
		unlockProject()
		return nil, fmt.Errorf("record the running sandbox: %w", err)
	}
	return func() {
		f.Close()
		unlockProject()
	}, nil
}

// RunningRecord is the file Running holds while a sandbox of e runs.
func (e *Environment) RunningRecord() string {
	path, _ := e.runRecord()
	return path
}

// runRecord is the path and contents of the record Running holds.
func (e *Environment) runRecord() (string, []byte) {
	b, _ := json.Marshal(runRecord{Layers: e.Layers}) // strings only: no error
	sum := sha256.Sum256(b)
	return filepath.Join(e.Project.runningDir(), hex.EncodeToString(sum[:8])+".json"), b
}

// holdRecord opens the record at path, making it with data when it is
// missing, and holds a shared flock on it. GC removes a record that nobody
// holds while it holds an exclusive flock on it: a record removed between
// the open and the flock here is made again.
func holdRecord(path string, data []byte) (*os.File, error) {
	for try := 0; try < 16; try++ {
		f, err := fsutil.LockExisting(path, unix.LOCK_SH)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := linkRecord(path, data); err != nil {
				return nil, err
			}
		case errors.Is(err, fsutil.ErrReplaced):
		default:
			return f, err
		}
	}
	return nil, fmt.Errorf("%s: removed as soon as it is made", path)
}

// linkRecord makes the file path with data, complete or not at all; one
// that another process made first is kept.
func linkRecord(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+fsutil.RandomSuffix())
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

// GCOptions change what GC removes.
type GCOptions struct {
	// All also removes images that only a tag keeps (pulled, but used by
	// no project).
	All bool
	// DryRun reports what would go, and removes nothing.
	DryRun bool
}

// GCReport says what GC removed (or would remove).
type GCReport struct {
	Images      []string `json:"images"`
	Layers      int      `json:"layers"`
	Steps       int      `json:"steps"`
	Projects    []string `json:"projects"`
	Temporaries int      `json:"temporaries"`
	// Records are warm-run records (rootless.Front) of projects that are
	// gone.
	Records int   `json:"records"`
	Freed   int64 `json:"freed"`
}

// GC removes what nothing references. The roots are every known project
// (a state directory under projects/ whose project still has a
// devbox.toml): the image and steps it last used (env.json), the images
// its devbox.lock pins, and the layers of its running sandboxes; and,
// unless opts.All, every image a tag still names. State of projects whose
// directory or devbox.toml is gone is removed too, unless a sandbox of
// theirs runs. Pulls wait while GC runs.
func GC(dirs Dirs, store *image.Store, opts GCOptions) (*GCReport, error) {
	release, err := store.LockExclusive()
	if err != nil {
		return nil, err
	}
	defer release()
	r := &GCReport{}
	keepImages, keepSteps, keepDirs, err := gcRoots(dirs, store, opts, r)
	if err != nil {
		return nil, err
	}
	imgs, err := store.Images()
	if err != nil {
		return nil, err
	}
	if !opts.All {
		tags, err := store.Tags()
		if err != nil {
			return nil, err
		}
		for _, d := range tags {
			keepImages[d.String()] = true
		}
	}
	keepLayers := map[string]bool{}
	for _, img := range imgs {
		if !keepImages[img.Digest.String()] {
			r.Images = append(r.Images, img.Ref+"@"+img.Digest.String())
			if !opts.DryRun {
				if err := store.RemoveImage(img.Digest); err != nil {
					return nil, err
				}
			}
			continue
		}
		for _, d := range store.LayerDirs(img) {
			keepLayers[d] = true
		}
	}
	ids, err := store.LayerIDs()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		dir := store.LayerDir(id)
		if keepLayers[dir] || keepDirs[dir] {
			continue
		}
		r.Layers++
		r.Freed += fsutil.TreeSize(dir)
		if !opts.DryRun {
			if err := store.RemoveLayer(id); err != nil {
				return nil, err
			}
		}
	}
	if err := gcSteps(dirs, keepSteps, keepDirs, opts, r); err != nil {
		return nil, err
	}
	if err := gcFront(dirs, opts, r); err != nil {
		return nil, err
	}
	if !opts.DryRun {
		n, err := store.RemoveTemporaries()
		r.Temporaries += n
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// gcFront removes the warm-run records (rootless.SaveFront) whose
// project's state is gone: each has a link to its project's lock beside
// it, which then names nothing. Records of projects that remain are
// checked at every use, and replaced when stale.
func gcFront(dirs Dirs, opts GCOptions, r *GCReport) error {
	dir := filepath.Join(dirs.Data, "front")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		record, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name())); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		r.Records++
		if !opts.DryRun {
			for _, name := range append(slices.Clone(rootless.FrontModes), ".lock") {
				if err := os.Remove(filepath.Join(dir, record+name)); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
		}
	}
	return nil
}

// gcRoots walks the known projects and returns the image digests, step
// keys and layer directories they keep; it removes the state of projects
// that are gone, and running records that nobody holds.
func gcRoots(dirs Dirs, store *image.Store, opts GCOptions, r *GCReport) (images, steps, layerDirs map[string]bool, err error) {
	images, steps, layerDirs = map[string]bool{}, map[string]bool{}, map[string]bool{}
	projects, err := os.ReadDir(filepath.Join(dirs.Data, "projects"))
	if errors.Is(err, os.ErrNotExist) {
		return images, steps, layerDirs, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	for _, pe := range projects {
		p := &Project{StateDir: filepath.Join(dirs.Data, "projects", pe.Name())}
		b, _ := os.ReadFile(filepath.Join(p.StateDir, "path"))
		p.Dir = strings.TrimSpace(string(b))
		running := gcRunning(p, layerDirs, opts)
		if _, err := os.Stat(filepath.Join(p.Dir, FileName)); (p.Dir == "" || err != nil) && !running {
			r.Projects = append(r.Projects, p.Dir)
			if !opts.DryRun {
				if err := removeTree(p.StateDir); err != nil {
					return nil, nil, nil, fmt.Errorf("remove the state of %s: %w", p.Dir, err)
				}
			}
			continue
		}
		if !running {
			if err := gcThrowaway(p, opts, r); err != nil {
				return nil, nil, nil, err
			}
		}
		if b, err := os.ReadFile(p.envRecordPath()); err == nil {
			var rec envRecord
			if json.Unmarshal(b, &rec) == nil {
				images[rec.Image] = true
				for _, k := range rec.Steps {
					steps[k] = true
				}
			}
		}
		if lock, err := ReadLock(filepath.Join(p.Dir, LockFileName)); err == nil && lock != nil {
			for _, d := range lock.Image.Digests {
				images[d] = true
			}
		}
	}
	return images, steps, layerDirs, nil
}

// throwawayGrace is how old a throwaway writable layer must be for GC to
// take it for a leftover: one younger may belong to a sandbox that is
// starting and has not recorded itself as running yet.
const throwawayGrace = 10 * time.Minute

// gcThrowaway removes the throwaway writable layers that sandboxes of p
// left when they were killed; none of p's sandboxes runs.
func gcThrowaway(p *Project, opts GCOptions, r *GCReport) error {
	dirs, _ := filepath.Glob(filepath.Join(p.StateDir, throwawayPrefix+"*"))
	for _, d := range dirs {
		if fi, err := os.Lstat(d); err != nil || time.Since(fi.ModTime()) < throwawayGrace {
			continue
		}
		r.Temporaries++
		r.Freed += fsutil.TreeSize(d)
		if !opts.DryRun {
			if err := removeTree(d); err != nil {
				return fmt.Errorf("remove a throwaway writable layer of %s: %w", p.Dir, err)
			}
		}
	}
	return nil
}

// gcRunning adds the layers of p's running sandboxes to layerDirs and
// removes the records of sandboxes that are gone; it reports whether any
// sandbox of p runs.
func gcRunning(p *Project, layerDirs map[string]bool, opts GCOptions) bool {
	records, _ := filepath.Glob(filepath.Join(p.runningDir(), "*.json"))
	running := false
	for _, path := range records {
		unlock, err := fsutil.TryLock(path)
		if err == nil {
			// Nobody holds it: the sandbox is gone.
			if !opts.DryRun {
				os.Remove(path)
			}
			unlock()
			continue
		}
		running = true
		var rec runRecord
		if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &rec) == nil {
			for _, d := range rec.Layers {
				layerDirs[d] = true
			}
		}
	}
	return running
}

// gcSteps removes step layers no root keeps, and temporary step
// directories whose build is not running.
func gcSteps(dirs Dirs, keep, keepDirs map[string]bool, opts GCOptions, r *GCReport) error {
	entries, err := os.ReadDir(stepsDir(dirs))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(stepsDir(dirs), name)
		switch {
		case strings.HasPrefix(name, ".tmp-"):
			key, _, _ := strings.Cut(strings.TrimPrefix(name, ".tmp-"), "-")
			unlock, err := fsutil.TryLock(filepath.Join(stepsDir(dirs), "."+key+".lock"))
			if err != nil {
				continue // a build is running
			}
			if !opts.DryRun {
				image.RemoveAll(path)
			}
			unlock()
			r.Temporaries++
		case strings.HasPrefix(name, "."):
		case !keep[name] && !keepDirs[path]:
			r.Steps++
			r.Freed += fsutil.TreeSize(path)
			if !opts.DryRun {
				if err := image.RemoveAll(path); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
