// Command pushimages builds the test images of internal/testimages and pushes
// them to a registry as busybox:latest and layered:latest, and with -debian
// a Debian image as debian:bookworm:
//
//	go run ./test/cmd/pushimages -registry 127.0.0.1:5000
//
// A loopback registry is spoken to over plain HTTP.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/devboxhq/devbox/internal/testimages"
)

func main() {
	os.Exit(run())
}

func run() int {
	registry := flag.String("registry", "127.0.0.1:5000", "registry `host:port` to push to")
	debian := flag.String("debian", "", "also push debian:bookworm, built from this root filesystem `tarball` (see test/debian-rootfs.sh)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "pushimages: unexpected arguments %q\n", flag.Args())
		return 2
	}
	if err := testimages.PushAll(*registry); err != nil {
		fmt.Fprintf(os.Stderr, "pushimages: %v\n", err)
		return 1
	}
	for _, n := range []string{"busybox", "layered"} {
		fmt.Printf("pushed %s/%s:latest\n", *registry, n)
	}
	if *debian == "" {
		return 0
	}
	tmp, err := os.MkdirTemp("", "pushimages-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "pushimages: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	img, err := testimages.Debian(*debian, tmp)
	if err == nil {
		err = testimages.Push(img, *registry+"/debian:bookworm")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pushimages: debian: %v\n", err)
		return 1
	}
	fmt.Printf("pushed %s/debian:bookworm\n", *registry)
	return 0
}
