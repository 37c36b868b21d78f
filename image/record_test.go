package image

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/devboxhq/devbox/internal/parsecache"
	"github.com/devboxhq/devbox/internal/wire"
	"github.com/devboxhq/devbox/internal/wire/wiretest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

func encodeImageValue(img Image) []byte {
	e := &wire.Encoder{}
	encodeImage(e, &img)
	return e.B
}

func decodeImageValue(b []byte) (Image, error) {
	d := &wire.Decoder{B: b}
	img := decodeImage(d)
	return *img, d.Done()
}

func TestImageWire(t *testing.T) {
	wiretest.Check(t, encodeImageValue, decodeImageValue)
}

// FuzzImageWire: any bytes are decoded or refused without a panic, and
// what is decoded survives a round trip.
func FuzzImageWire(f *testing.F) {
	for _, img := range []Image{{}, wiretest.Empty[Image](), wiretest.Full[Image]()} {
		f.Add(encodeImageValue(img))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		wiretest.Stable(t, data, encodeImageValue, decodeImageValue)
	})
}

// A record is read from its parse cache while it is unchanged, decoded
// again when it changes, and removed with its cache.
func TestRecordParseCache(t *testing.T) {
	t.Parallel()
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img := wiretest.Full[Image]()
	// JSON checks digests: valid ones, of the one image and its layers.
	img.Digest = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0a", 32)}
	for i := range img.Layers {
		img.Layers[i].Digest = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(fmt.Sprintf("%02x", 2*i+1), 32)}
		img.Layers[i].DiffID = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(fmt.Sprintf("%02x", 2*i+2), 32)}
	}
	b, err := json.Marshal(&img)
	if err != nil {
		t.Fatal(err)
	}
	path := s.recordPath(img.Digest)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// A record changed within the racy window is not cached; its ctime
	// cannot be set back, so wait the window out.
	time.Sleep(parsecache.RacyWindow + 50*time.Millisecond)

	got, err := s.readImage(img.Digest)
	if err != nil || !reflect.DeepEqual(*got, img) {
		t.Fatalf("readImage = %+v, %v; want %+v", got, err, img)
	}
	cache := path + recordCacheSuffix
	rec, err := os.ReadFile(cache)
	if err != nil {
		t.Fatalf("no parse cache: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	stamp := parsecache.StampOf(&st)
	cached, ok := parsecache.ReadRecord(rec, stamp, parsecache.Exe(), imageCodec)
	if !ok || !reflect.DeepEqual(*cached, img) {
		t.Fatalf("cache holds %+v (%v), want %+v", cached, ok, img)
	}

	// The cache is what the next read uses.
	cached.Platform = "from-the-cache"
	if err := os.WriteFile(cache, parsecache.Record(stamp, parsecache.Exe(), cached, imageCodec), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := s.readImage(img.Digest); err != nil || got.Platform != "from-the-cache" {
		t.Fatalf("readImage did not use its cache: %+v, %v", got, err)
	}

	// A rewritten record is decoded again.
	img.Platform = "linux/riscv64"
	b, _ = json.Marshal(&img)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := s.readImage(img.Digest); err != nil || got.Platform != "linux/riscv64" {
		t.Fatalf("after a rewrite: %+v, %v", got, err)
	}

	if err := s.RemoveImage(img.Digest); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, cache} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s after RemoveImage: %v", p, err)
		}
	}
	if _, err := s.readImage(img.Digest); err != ErrNotPresent {
		t.Errorf("readImage after RemoveImage: %v, want ErrNotPresent", err)
	}
}
