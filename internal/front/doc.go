// Package front links devbox's front into the lean devbox (tag
// devbox_front, amd64): C code (c/front.c) that runs from the executable's
// entry point before the Go runtime starts, for a warm `devbox run`.
//
// Go starts in about 1.6 ms here, and a warm run was two Go programs'
// starts, devbox's and its sandbox's pid 1's, one after the other. The
// front takes devbox's place for `devbox run [--] COMMAND...` and `devbox
// shell` without options: it creates
// pid 1 as rootless.Start would (the same namespaces, maps, capabilities
// and descriptors), hands it devbox's arguments, and relays its messages,
// signals and exit status and, on a terminal, the sandbox's pty, as
// rootless.terminal does. pid 1 reads the Spec from
// the record the last such run in the directory left (rootless.Front) and
// checks it first. When pid 1 cannot use the record, or anything else
// stands in the way, the front undoes what it did and returns, and the Go
// program runs as it does for every other command: the front can make a
// run faster, never different.
//
// The C is compiled freestanding (no libc) into an object without
// relocations, which Go's own linker links as it is: `make build` does
// that (front_amd64.syso) and checks it. Without the object, or on another
// architecture, devbox has no front.
package front
