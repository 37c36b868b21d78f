//go:build !devbox_lean

package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/devboxhq/devbox/internal/fsutil"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Pull resolves ref, downloads or reads the layers the store does not have
// yet (each at most once, even across processes), unpacks them and records
// the image under ref. It returns the recorded image.
//
// ref is a registry reference or a local source (see ParseSource). A
// registry with mirrors (WithMirrors) is asked through each mirror in turn
// and then itself; the image is recorded under ref whichever served it. A
// local source is recorded under its absolute path, so that Lookup finds it
// later without reading it again.
func (s *Store) Pull(ctx context.Context, ref string, opts ...Option) (*Image, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	src, err := ParseSource(ref)
	if err != nil {
		return nil, err
	}
	if src.IsLocal() {
		if src, err = src.Abs(o.baseDir); err != nil {
			return nil, err
		}
		return s.pullLocal(ctx, src, o)
	}
	// Parsed again by the registry client's own rules, which ParseSource
	// follows (FuzzParseReference).
	r, err := name.ParseReference(ref, name.WithDefaultTag("latest"))
	if err != nil {
		return nil, fmt.Errorf("%q is not an image reference: %w", ref, err)
	}
	return s.pullRegistry(ctx, r, o)
}

// pullFrom pulls r through from, which names the same repository and tag or
// digest as r in r's registry or in a mirror of it, and records the image
// under r. A mirror gets no retries: the next mirror, or the registry
// itself, is the retry.
func (s *Store) pullFrom(ctx context.Context, r, from name.Reference, o *options, m *mirror) (*Image, error) {
	insecure := o.insecure
	if m != nil && m.plainHTTP {
		insecure = append(slices.Clip(insecure), m.host)
	}
	from, err := onRegistry(from, from.Context().RegistryStr(), plainHTTPAllowed(from.Context().RegistryStr(), insecure))
	if err != nil {
		return nil, err
	}
	// The registry client reads every blob under this context, so cancelling
	// it is what stops the other layers' downloads when one layer fails.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next, ok := ctx.Value(transportKey{}).(http.RoundTripper)
	if !ok {
		next = remote.DefaultTransport
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithJobs(o.jobs),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithTransport(&httpsOnly{next: next, insecure: insecure}),
		remote.WithPlatform(*o.platform),
	}
	if m != nil {
		ropts = append(ropts, remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	}
	img, err := resolve(from, o.platform, ropts)
	if err != nil {
		return nil, registryError(from, err)
	}
	rec, layers, err := describe(img, o.platform)
	if err != nil {
		return nil, registryError(from, err)
	}
	rec.Ref = r.Name()
	if err := s.install(ctx, cancel, rec, layers, o); err != nil {
		return nil, err
	}
	return rec, nil
}

// install unpacks the layers of rec that the store lacks and records rec
// under rec.Ref, holding the store against gc meanwhile. cancel must cancel
// ctx and whatever the layers are read under (see fetchLayers).
func (s *Store) install(ctx context.Context, cancel context.CancelFunc, rec *Image, layers []v1.Layer, o *options) error {
	release, err := s.LockShared()
	if err != nil {
		return err
	}
	defer release()
	if err := s.fetchLayers(ctx, cancel, layers, rec.Layers, o); err != nil {
		return fmt.Errorf("pull %s: %w", rec.Ref, err)
	}
	if err := s.record(rec, rec.Ref); err != nil {
		return fmt.Errorf("pull %s: record image: %w", rec.Ref, err)
	}
	return nil
}

// resolve fetches the manifest of r and, for an index, picks the manifest of
// platform, failing with the list of platforms the index offers.
func resolve(r name.Reference, platform *v1.Platform, ropts []remote.Option) (v1.Image, error) {
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, err
	}
	if !desc.MediaType.IsIndex() {
		return desc.Image()
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	m, err := pickPlatform(im.Manifests, platform)
	if err != nil {
		return nil, err
	}
	return idx.Image(m.Digest)
}

// pickPlatform returns the first of an index's manifests that is for
// platform, or an error that lists the platforms the index offers.
func pickPlatform(manifests []v1.Descriptor, platform *v1.Platform) (v1.Descriptor, error) {
	var offered []string
	for _, m := range manifests {
		if m.Platform == nil {
			continue
		}
		if m.Platform.Satisfies(*platform) {
			return m, nil
		}
		if m.Platform.OS != "unknown" {
			offered = append(offered, m.Platform.String())
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no image for platform %s; the image offers %s (set [image] platform)",
		platform, strings.Join(offered, ", "))
}

// describe reads the manifest and config of img into an Image record.
// The caller sets the record's Ref.
func describe(img v1.Image, platform *v1.Platform) (*Image, []v1.Layer, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, nil, err
	}
	rec := &Image{Digest: digest, Config: cfg.Config, Platform: platform.String()}
	if cfg.OS != "" {
		rec.Platform = (&v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}).String()
	}
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		return nil, nil, fmt.Errorf("image %s: manifest lists %d layers but config lists %d diffIDs", digest, len(layers), len(cfg.RootFS.DiffIDs))
	}
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, nil, err
		}
		size, err := l.Size()
		if err != nil {
			return nil, nil, err
		}
		mt, err := l.MediaType()
		if err != nil {
			return nil, nil, err
		}
		rec.Layers = append(rec.Layers, Layer{Digest: d, DiffID: cfg.RootFS.DiffIDs[i], Size: size, MediaType: string(mt)})
	}
	return rec, layers, nil
}

// fetchLayers ensures every layer is in the store, o.jobs at a time, and
// returns the first error. On an error it calls cancel, which must cancel
// ctx and the context the layers were fetched with, to stop the others.
func (s *Store) fetchLayers(ctx context.Context, cancel context.CancelFunc, layers []v1.Layer, info []Layer, o *options) error {
	sem := make(chan struct{}, o.jobs)
	errs := make([]error, len(layers))
	var wg sync.WaitGroup
	for i := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			if err := s.ensureLayer(ctx, layers[i], info[i], o.progress); err != nil {
				errs[i] = fmt.Errorf("layer %s: %w", info[i].Digest, err)
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ensureLayer unpacks l into the store unless it is there already. The
// layer's lock makes concurrent devbox processes download it once: the
// second waits and then finds it in place.
func (s *Store) ensureLayer(ctx context.Context, l v1.Layer, info Layer, progress func(Event)) error {
	dir := s.LayerDir(info.DiffID)
	if _, err := os.Lstat(dir); err == nil {
		progress(Event{Kind: LayerCached, Layer: info})
		return nil
	}
	unlock, err := fsutil.Lock(filepath.Join(s.locksDir(), info.DiffID.Hex+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Lstat(dir); err == nil {
		progress(Event{Kind: LayerCached, Layer: info})
		return nil
	}
	tmp, err := s.layerTemp(info.DiffID.Hex)
	if err != nil {
		return err
	}
	progress(Event{Kind: LayerStarted, Layer: info})
	if err := unpackLayer(ctx, l, info, tmp, progress); err != nil {
		RemoveAll(tmp)
		return err
	}
	if err := fsutil.SyncFS(tmp); err != nil {
		RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		RemoveAll(tmp)
		return err
	}
	progress(Event{Kind: LayerDone, Layer: info, Done: info.Size})
	return nil
}

// layerTemp makes a fresh temporary directory ".tmp-NAME-RANDOM" for a
// layer whose unpacking the caller's lock guards. Whoever held that lock
// before may have been killed mid-unpack: its ".tmp-NAME-*" directories
// are garbage and go first.
func (s *Store) layerTemp(name string) (string, error) {
	fsutil.MarkTopDir(s.layersDir())
	prefix := filepath.Join(s.layersDir(), ".tmp-"+name+"-")
	stale, _ := filepath.Glob(prefix + "*")
	for _, d := range stale {
		if err := RemoveAll(d); err != nil {
			return "", fmt.Errorf("remove stale %s: %w", d, err)
		}
	}
	tmp := prefix + fsutil.RandomSuffix()
	return tmp, os.Mkdir(tmp, 0o755)
}

// unpackLayer streams the compressed blob of l through decompression into
// ApplyTar in one pass, and checks both digests: the blob's (at EOF, by the
// registry client or a local source's verifiedReader) and the uncompressed
// stream's against the diffID.
func unpackLayer(ctx context.Context, l v1.Layer, info Layer, dir string, progress func(Event)) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	diffID, err := applyBlob(ctx, rc, info, dir, progress)
	if err != nil {
		return err
	}
	if diffID != info.DiffID {
		return fmt.Errorf("uncompressed content is %s, but the image config says %s", diffID, info.DiffID)
	}
	return nil
}

// applyBlob decompresses the blob r into ApplyTar in one pass, reporting
// progress, reads r to its end (where a verifying reader checks the blob's
// digest) and returns the digest of the uncompressed stream: the diffID.
func applyBlob(ctx context.Context, r io.Reader, info Layer, dir string, progress func(Event)) (v1.Hash, error) {
	counted := &countingReader{ctx: ctx, r: r, report: func(n int64) {
		progress(Event{Kind: LayerProgress, Layer: info, Done: n})
	}}
	dec, err := Decompress(counted)
	if err != nil {
		return v1.Hash{}, err
	}
	defer dec.Close()
	h := sha256.New()
	if _, err := ApplyTar(dir, io.TeeReader(dec, h), ApplyLimits{}); err != nil {
		return v1.Hash{}, err
	}
	// Read the blob to its end so that its digest is verified even when the
	// compressed stream carries bytes after the tar stream's end.
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return v1.Hash{}, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, nil
}

// countingReader reports the bytes read through it, at most every 256 KiB,
// and stops when ctx is cancelled.
type countingReader struct {
	ctx     context.Context
	r       io.Reader
	n, last int64
	report  func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n-c.last >= 256<<10 || (err == io.EOF && c.n != c.last) {
		c.last = c.n
		c.report(c.n)
	}
	return n, err
}

// registryError turns an error from the registry client into one line that
// names the reference and the registry and says what to do.
func registryError(r name.Reference, err error) error {
	reg := r.Context().RegistryStr()
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusNotFound || hasCode(te, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode):
			return &pullError{msg: fmt.Sprintf("pull %s: not found in registry %s: check the repository name and tag", r.Name(), reg), err: err}
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return &pullError{msg: fmt.Sprintf("pull %s: registry %s denied access (HTTP %d): log in with 'docker login %s' (devbox reads ~/.docker/config.json)", r.Name(), reg, te.StatusCode, reg), err: err}
		default:
			return fmt.Errorf("pull %s: registry %s answered HTTP %d: %w", r.Name(), reg, te.StatusCode, err)
		}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		var oe *net.OpError
		cause := err
		if errors.As(err, &oe) {
			cause = oe.Err
		}
		return &pullError{msg: fmt.Sprintf("pull %s: registry %s is unreachable: %v", r.Name(), reg, cause), err: err}
	}
	return fmt.Errorf("pull %s: %w", r.Name(), err)
}

// pullError is a one-line message for people that keeps the registry
// client's error in the chain for errors.As (*transport.Error, net.Error).
type pullError struct {
	msg string
	err error
}

func (e *pullError) Error() string { return e.msg }
func (e *pullError) Unwrap() error { return e.err }

func hasCode(te *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range te.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// onRegistry is r (a tag or digest reference) in the registry host, with
// plain HTTP allowed when insecure.
func onRegistry(r name.Reference, host string, insecure bool) (name.Reference, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return nil, err
	}
	repo := reg.Repo(r.Context().RepositoryStr())
	if d, ok := r.(name.Digest); ok {
		return repo.Digest(d.DigestStr()), nil
	}
	return repo.Tag(r.Identifier()), nil
}

// pullRegistry pulls r through each mirror of its registry in turn, then
// from the registry itself. The caller's cancellation stops it at once;
// any other failure of a mirror moves on to the next. When the registry
// fails too, its error (with the mirrors' failures appended) is returned.
func (s *Store) pullRegistry(ctx context.Context, r name.Reference, o *options) (*Image, error) {
	var failed []string
	for _, m := range o.mirrors[r.Context().RegistryStr()] {
		from, err := onRegistry(r, m.host, false)
		if err != nil {
			return nil, err
		}
		rec, err := s.pullFrom(ctx, r, from, o, &m)
		if err == nil {
			return rec, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pull %s: %w", r.Name(), ctx.Err())
		}
		failed = append(failed, fmt.Sprintf("mirror %s: %v", m.host, err))
	}
	rec, err := s.pullFrom(ctx, r, r, o, nil)
	if err != nil && len(failed) > 0 {
		return nil, &pullError{msg: fmt.Sprintf("%v (after the mirrors failed: %s)", err, strings.Join(failed, "; ")), err: err}
	}
	return rec, err
}

// plainHTTPAllowed reports whether devbox may talk plain HTTP to the
// registry host (host or host:port): loopback registries always, others only
// when listed in insecure.
func plainHTTPAllowed(host string, insecure []string) bool {
	for _, h := range insecure {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
	}
	if hostname == "localhost" {
		return true
	}
	ip := net.ParseIP(hostname)
	return ip != nil && ip.IsLoopback()
}

// httpsOnly refuses plain-HTTP requests to registries that are neither on
// loopback nor listed as insecure. go-containerregistry would otherwise fall
// back to HTTP for private-range addresses, letting a network attacker
// downgrade the connection.
type httpsOnly struct {
	next     http.RoundTripper
	insecure []string
}

func (t *httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !plainHTTPAllowed(req.URL.Host, t.insecure) {
		return nil, fmt.Errorf("refusing plain HTTP to %s: list it in DEVBOX_INSECURE_REGISTRIES to allow it", req.URL.Host)
	}
	return t.next.RoundTrip(req)
}

// transportKey is the context key of an HTTP transport that replaces
// remote.DefaultTransport under httpsOnly: tests put one in the context
// they pull with.
type transportKey struct{}

// record writes img's record and points ref at it, each atomically.
func (s *Store) record(img *Image, ref string) error {
	b, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteAtomic(s.recordPath(img.Digest), b, 0o600); err != nil {
		return err
	}
	return fsutil.WriteAtomic(filepath.Join(s.refsDir(), refFileName(ref)), []byte(img.Digest.String()+"\n"), 0o600)
}
