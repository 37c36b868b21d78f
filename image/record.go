package image

import (
	"encoding/json"
	"path/filepath"
	"time"

	"github.com/devboxhq/devbox/internal/parsecache"
	"github.com/devboxhq/devbox/internal/wire"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// An image record is JSON, the store's format, which every devbox version
// reads. A warm run reads the record as the last run decoded it, from its
// parse cache beside it (internal/parsecache), rather than decoding JSON
// again: encoding/json takes a quarter of a millisecond for an Image in a
// fresh process.

// recordCacheSuffix names the parse cache of images/sha256/<hex>.json.
const recordCacheSuffix = ".parsed"

var imageCodec = parsecache.Codec[*Image]{Encode: encodeImage, Decode: decodeImage}

func parseRecord(b []byte) (*Image, error) {
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, err
	}
	return &img, nil
}

func (s *Store) recordPath(h v1.Hash) string {
	return filepath.Join(s.imagesDir(), h.Hex+".json")
}

func encodeHash(e *wire.Encoder, h v1.Hash) {
	e.String(h.Algorithm)
	e.String(h.Hex)
}

func decodeHash(d *wire.Decoder) v1.Hash {
	return v1.Hash{Algorithm: d.String(), Hex: d.String()}
}

func encodeImage(e *wire.Encoder, img *Image) {
	e.String(img.Ref)
	encodeHash(e, img.Digest)
	e.String(img.Platform)
	c := &img.Config
	e.Bool(c.AttachStderr)
	e.Bool(c.AttachStdin)
	e.Bool(c.AttachStdout)
	e.Strings(c.Cmd)
	e.Bool(c.Healthcheck != nil)
	if h := c.Healthcheck; h != nil {
		e.Strings(h.Test)
		e.Int(int64(h.Interval))
		e.Int(int64(h.Timeout))
		e.Int(int64(h.StartPeriod))
		e.Int(int64(h.Retries))
	}
	e.String(c.Domainname)
	e.Strings(c.Entrypoint)
	e.Strings(c.Env)
	e.String(c.Hostname)
	e.String(c.Image)
	e.Map(c.Labels)
	e.Strings(c.OnBuild)
	e.Bool(c.OpenStdin)
	e.Bool(c.StdinOnce)
	e.Bool(c.Tty)
	e.String(c.User)
	e.Set(c.Volumes)
	e.String(c.WorkingDir)
	e.Set(c.ExposedPorts)
	e.Bool(c.ArgsEscaped)
	e.Bool(c.NetworkDisabled)
	e.String(c.MacAddress)
	e.String(c.StopSignal)
	e.Strings(c.Shell)
	e.Len(len(img.Layers), img.Layers == nil)
	for _, l := range img.Layers {
		encodeHash(e, l.Digest)
		encodeHash(e, l.DiffID)
		e.Int(l.Size)
		e.String(l.MediaType)
	}
}

func decodeImage(d *wire.Decoder) *Image {
	img := &Image{Ref: d.String(), Digest: decodeHash(d), Platform: d.String()}
	c := &img.Config
	c.AttachStderr = d.Bool()
	c.AttachStdin = d.Bool()
	c.AttachStdout = d.Bool()
	c.Cmd = d.Strings()
	if d.Bool() {
		h := &v1.HealthConfig{Test: d.Strings()}
		h.Interval = time.Duration(d.Int())
		h.Timeout = time.Duration(d.Int())
		h.StartPeriod = time.Duration(d.Int())
		h.Retries = int(d.Int())
		c.Healthcheck = h
	}
	c.Domainname = d.String()
	c.Entrypoint = d.Strings()
	c.Env = d.Strings()
	c.Hostname = d.String()
	c.Image = d.String()
	c.Labels = d.Map()
	c.OnBuild = d.Strings()
	c.OpenStdin = d.Bool()
	c.StdinOnce = d.Bool()
	c.Tty = d.Bool()
	c.User = d.String()
	c.Volumes = d.Set()
	c.WorkingDir = d.String()
	c.ExposedPorts = d.Set()
	c.ArgsEscaped = d.Bool()
	c.NetworkDisabled = d.Bool()
	c.MacAddress = d.String()
	c.StopSignal = d.String()
	c.Shell = d.Strings()
	img.Layers = wire.Slice[Layer](d, 6)
	for i := range img.Layers {
		l := &img.Layers[i]
		l.Digest = decodeHash(d)
		l.DiffID = decodeHash(d)
		l.Size = d.Int()
		l.MediaType = d.String()
	}
	return img
}
