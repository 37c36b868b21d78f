// Package e2e tests the built devbox binary end to end: a real registry, real
// images (built by internal/testimages), a real user-namespace sandbox. It
// runs as whichever user starts it, root or not, and assumes neither.
//
// # Running
//
//	make build && go test -c -o bin/e2e.test ./test
//	DEVBOX_BIN=$PWD/bin/devbox bin/e2e.test -test.v
//
// DEVBOX_BIN (required) is the devbox binary under test. DEVBOX_TEST_REGISTRY
// (optional) is the host:port of a registry to push the test images to and
// pull them from; without it the tests start their own docker-registry on a
// free loopback port. Tests that stop a registry always start their own.
//
// The Debian tests (env_test.go) run only with DEVBOX_TEST_DEBIAN set, and
// then fail unless the registry holds debian:bookworm: .ci/run builds a
// root filesystem with test/debian-rootfs.sh and pushes it there with
// test/cmd/pushimages -debian. When the tests start their own registry,
// DEVBOX_TEST_DEBIAN_TAR names such a root filesystem tarball to push:
//
//	test/debian-rootfs.sh /var/tmp/bookworm.tar
//	DEVBOX_TEST_DEBIAN=1 DEVBOX_TEST_DEBIAN_TAR=/var/tmp/bookworm.tar make e2e
package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/devboxhq/devbox/internal/testimages"
	"golang.org/x/sys/unix"
)

// suite is set once by TestMain before any test runs and read only after.
var suite struct {
	bin      string // absolute path of the devbox binary
	registry string // host:port of the registry holding busybox:latest and layered:latest
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	bin, err := devboxBin()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	suite.bin = bin

	suite.registry = os.Getenv("DEVBOX_TEST_REGISTRY")
	if suite.registry == "" {
		dir, err := os.MkdirTemp("", "devbox-e2e-registry-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		r, err := startRegistry(dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: start a registry: %v\n", err)
			return 1
		}
		defer r.Stop()
		suite.registry = r.Addr
		if tar := os.Getenv("DEVBOX_TEST_DEBIAN_TAR"); tar != "" {
			if err := pushDebian(r.Addr, tar); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: DEVBOX_TEST_DEBIAN_TAR=%s: %v\n", tar, err)
				return 1
			}
		}
	} else if !registryUp(suite.registry) {
		fmt.Fprintf(os.Stderr, "e2e: DEVBOX_TEST_REGISTRY=%s does not answer on http://%s/v2/\n", suite.registry, suite.registry)
		return 1
	}
	if err := testimages.PushAll(suite.registry); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: push test images: %v\n", err)
		return 1
	}
	return m.Run()
}

// pushDebian builds the Debian test image from a root filesystem tarball
// (test/debian-rootfs.sh) and pushes it to registry as debianRepo.
func pushDebian(registry, rootfsTar string) error {
	tmp, err := os.MkdirTemp("", "devbox-e2e-debian-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	img, err := testimages.Debian(rootfsTar, tmp)
	if err != nil {
		return err
	}
	return testimages.Push(img, registry+"/"+debianRepo)
}

// devboxBin returns the absolute path of DEVBOX_BIN after checking that it
// is an executable file.
func devboxBin() (string, error) {
	bin := os.Getenv("DEVBOX_BIN")
	if bin == "" {
		return "", fmt.Errorf("DEVBOX_BIN is not set: build devbox (make build) and set DEVBOX_BIN to its path")
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return "", fmt.Errorf("DEVBOX_BIN=%s: %w", bin, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("DEVBOX_BIN=%s: %w", bin, err)
	}
	if !fi.Mode().IsRegular() || unix.Access(abs, unix.X_OK) != nil {
		return "", fmt.Errorf("DEVBOX_BIN=%s is not a file this user can execute (mode %s)", bin, fi.Mode())
	}
	return abs, nil
}
