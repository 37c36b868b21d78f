# devbox: build, test and demo. `make test` is what CI runs (.ci/run).

GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
# staticcheck 2026.2.2; override with STATICCHECK_VERSION=latest.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK := $(GOBIN)/staticcheck

# The unprivileged user that root runs the e2e tests as a second time.
E2E_USER ?= devbox-test
E2E_FLAGS ?= -test.v -test.timeout 15m
E2E_PATH := /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

DEMO_PORT ?= 5000
DEMO_DIR ?= $(CURDIR)/.devbox-demo/registry
# Debian packages that the demo and the e2e tests use.
DEPS := docker-registry busybox-static curl uidmap slirp4netns fuse-overlayfs gcc binutils

.PHONY: all build e2e-bin test vet lint unit e2e e2e-unprivileged e2e-unprivileged-run unit-bins e2e-user demo demo-stop deps clean

all: build

# One static binary: no cgo, so it runs on any Linux of the architecture and
# starts without the dynamic loader. It carries two programs of its own,
# each built first:
# - the sandbox's pid 1 (cmd/devbox-init), which starts in half the time of
#   devbox re-executed;
# - the full CLI (package internal/fullprog). bin/devbox is the lean build
#   (tag devbox_lean): without the registry client and the archive
#   decoders it starts a millisecond sooner, and it executes the full
#   program for a command that needs them (a pull, a download).
# `go build ./cmd/devbox` alone makes a full devbox that re-executes itself
# as pid 1.
# On amd64 the lean build also starts at the front (internal/front): C
# that runs a warm `devbox run` before the Go runtime would start. It is
# compiled freestanding, into an object without relocations that Go's own
# linker links (checked here), and names the init program's copy.
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath
LDFLAGS := -s -w
INITPROG := cmd/devbox/initprog/devbox-init
FULLPROG := cmd/devbox/fullprog/devbox-full
FRONT := internal/front/front_amd64.syso
FRONT_CFLAGS := -O2 -std=gnu11 -Wall -Wextra -Werror -ffreestanding -fno-builtin \
	-fno-stack-protector -fno-asynchronous-unwind-tables -fno-jump-tables \
	-fno-tree-loop-distribute-patterns -fcf-protection=none -mgeneral-regs-only -fpie -nostdlib
ifeq ($(shell $(GO) env GOARCH),amd64)
LEAN_BUILD_TAGS := devbox_init,devbox_lean,devbox_front
LEAN_LDFLAGS := $(LDFLAGS) -E _devbox_entry
else
LEAN_BUILD_TAGS := devbox_init,devbox_lean
LEAN_LDFLAGS := $(LDFLAGS)
endif

build:
	@mkdir -p $(dir $(INITPROG)) $(dir $(FULLPROG))
	$(GOBUILD) -ldflags "$(LDFLAGS)" -o $(INITPROG) ./cmd/devbox-init
	sha256sum $(INITPROG) | cut -d' ' -f1 > $(INITPROG).sha256
	$(GOBUILD) -ldflags "$(LDFLAGS)" -tags devbox_init -o $(FULLPROG) ./cmd/devbox
	sha256sum $(FULLPROG) | cut -d' ' -f1 > $(FULLPROG).sha256
ifeq ($(shell $(GO) env GOARCH),amd64)
	$(CC) $(FRONT_CFLAGS) -DDEVBOX_INIT_NAME='"devbox-init-'"$$(cut -c1-16 $(INITPROG).sha256)"'"' \
		-c internal/front/c/front.c -o $(FRONT)
	@if objdump -r $(FRONT) | grep -q R_X86; then echo "$(FRONT) has relocations, which Go's linker cannot apply" >&2; exit 1; fi
endif
	$(GOBUILD) -ldflags "$(LEAN_LDFLAGS)" -tags $(LEAN_BUILD_TAGS) -o bin/devbox ./cmd/devbox

e2e-bin:
	$(GO) test -c -o bin/e2e.test ./test

test: deps vet lint unit e2e

# Both builds of devbox: the full one (the default, which the unit tests
# run) and the lean one, which needs the programs `build` embeds.
LEAN_TAGS := $(LEAN_BUILD_TAGS)

vet: build
	$(GO) vet ./...
	$(GO) vet -tags $(LEAN_TAGS) ./...

lint: $(STATICCHECK) build
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags $(LEAN_TAGS) ./...

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Every package but the e2e tests, which need the built binary (see e2e).
# Static test binaries, as devbox is: a sandbox's sudo is its pid 1's
# program, the test binary itself in package rootless's tests, and an
# image without the host's dynamic loader could not run it.
unit:
	CGO_ENABLED=0 $(GO) test $$($(GO) list ./... | grep -v '/devbox/test$$')

# The e2e tests as the current user and, when that is root, again as
# $(E2E_USER): the sandbox must work for an ordinary user. The Debian tests
# run with DEVBOX_TEST_DEBIAN=1 and debian:bookworm in DEVBOX_TEST_REGISTRY
# (as .ci/run does), or, without a registry, DEVBOX_TEST_DEBIAN_TAR naming
# a root filesystem from test/debian-rootfs.sh (readable by $(E2E_USER)).
e2e: build e2e-bin
	DEVBOX_BIN=$(CURDIR)/bin/devbox bin/e2e.test $(E2E_FLAGS)
	@if [ "$$(id -u)" -eq 0 ]; then $(MAKE) --no-print-directory e2e-unprivileged; fi

# Runs as root: the binaries go to a fresh 755 dir that $(E2E_USER) can
# read, and the tests run from there with nothing of root's environment,
# beside the front's C, which rootless's tests compile.
e2e-unprivileged: build e2e-bin unit-bins e2e-user
	@set -e; \
	dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; chmod 755 "$$dir"; \
	home=$$(getent passwd $(E2E_USER) | cut -d: -f6); \
	mkdir -p "$$dir/internal/front"; cp -r internal/front/c "$$dir/internal/front/"; chmod -R a+rX "$$dir/internal"; \
	for t in rootless image; do \
		mkdir -p "$$dir/$$t"; install -m 755 bin/$$t.test "$$dir/$$t/"; \
		if [ -d $$t/testdata ]; then cp -r $$t/testdata "$$dir/$$t/"; chmod -R a+rX "$$dir/$$t"; fi; \
		echo "== $$t unit tests as $(E2E_USER)"; \
		(cd "$$dir/$$t" && setpriv --reuid $(E2E_USER) --regid $(E2E_USER) --init-groups \
			env -i HOME="$$home" PATH=$(E2E_PATH) \
			$(if $(DEVBOX_TEST_REQUIRE_NETWORK),DEVBOX_TEST_REQUIRE_NETWORK=$(DEVBOX_TEST_REQUIRE_NETWORK)) \
			$(if $(DEVBOX_TEST_REQUIRE_FUSE),DEVBOX_TEST_REQUIRE_FUSE=$(DEVBOX_TEST_REQUIRE_FUSE)) \
			./$$t.test -test.timeout 10m) || exit 1; \
	done
	$(MAKE) --no-print-directory e2e-unprivileged-run

# The unit tests of the packages that run sandboxes and unpack layers, built
# to run as $(E2E_USER) too.
unit-bins:
	CGO_ENABLED=0 $(GO) test -c -o bin/rootless.test ./rootless
	CGO_ENABLED=0 $(GO) test -c -o bin/image.test ./image

# $(E2E_USER) exists and has a subordinate id range, for userns = "subuid".
e2e-user:
	id -u $(E2E_USER) >/dev/null 2>&1 || useradd -m $(E2E_USER)
	grep -q '^$(E2E_USER):' /etc/subuid || usermod --add-subuids 300000-365535 --add-subgids 300000-365535 $(E2E_USER)

e2e-unprivileged-run: build e2e-bin e2e-user
	@set -e; \
	dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; chmod 755 "$$dir"; \
	install -m 755 bin/devbox bin/e2e.test "$$dir/"; \
	home=$$(getent passwd $(E2E_USER) | cut -d: -f6); \
	echo "== e2e as $(E2E_USER) (uid $$(id -u $(E2E_USER)))"; \
	cd "$$dir" && setpriv --reuid $(E2E_USER) --regid $(E2E_USER) --init-groups \
		env -i HOME="$$home" PATH=$(E2E_PATH) DEVBOX_BIN="$$dir/devbox" \
		$(if $(DEVBOX_TEST_REGISTRY),DEVBOX_TEST_REGISTRY=$(DEVBOX_TEST_REGISTRY)) \
		$(if $(DEVBOX_TEST_DEBIAN),DEVBOX_TEST_DEBIAN=$(DEVBOX_TEST_DEBIAN)) \
		$(if $(DEVBOX_TEST_REQUIRE_NETWORK),DEVBOX_TEST_REQUIRE_NETWORK=$(DEVBOX_TEST_REQUIRE_NETWORK)) \
		$(if $(DEVBOX_TEST_DEBIAN_TAR),DEVBOX_TEST_DEBIAN_TAR=$(abspath $(DEVBOX_TEST_DEBIAN_TAR))) \
		./e2e.test $(E2E_FLAGS)

# Starts a registry on 127.0.0.1:$(DEMO_PORT) unless one answers there, puts
# the test images in it and runs devbox in examples/hello.
demo: deps build
	@if curl -fsS -o /dev/null http://127.0.0.1:$(DEMO_PORT)/v2/ 2>/dev/null; then \
		echo "a registry answers on 127.0.0.1:$(DEMO_PORT)"; \
	else \
		test/registry.sh start "$(DEMO_DIR)" $(DEMO_PORT); \
	fi
	$(GO) run ./test/cmd/pushimages -registry 127.0.0.1:$(DEMO_PORT)
	cd examples/hello && ../../bin/devbox run -- sh -c 'echo hello from $$(uname -s) as $$(id -u); ls'

# Stops the registry that demo started.
demo-stop:
	test/registry.sh stop "$(DEMO_DIR)"

# Installs the Debian packages in $(DEPS) that are missing (as root), or
# names them.
deps:
	@missing=; for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" -eq 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else \
		echo "missing Debian packages:$$missing; run: sudo apt-get install$$missing" >&2; exit 1; \
	fi

clean:
	rm -rf bin
