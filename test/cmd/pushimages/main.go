// Command pushimages builds the test images of internal/testimages and pushes
// them to a registry as busybox:latest and layered:latest:
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
	return 0
}
