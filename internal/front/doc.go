// Package front links devbox's front into the lean devbox (tag
// devbox_front, amd64): C code (c/front.c) that runs from the executable's
// entry point before the Go runtime starts, for a warm `devbox run`.
//
// Go starts in about 1.6 ms here, and a warm run was two Go programs'
// starts, devbox's and its sandbox's pid 1's, one after the other. The
// front takes devbox's place for `devbox run [--] COMMAND...` and `devbox
// shell` without options: it creates pid 1 as rootless.Start would (the
// same namespaces, maps, capabilities and descriptors) and relays its
// messages, signals and exit status and, on a terminal, the sandbox's pty,
// as rootless.terminal does.
//
// pid 1, still the front's C, reads the record the last such run in the
// directory left (rootless.Front), checks that nothing it was made from
// changed and takes the project's locks (c/record.h). For a plain run (the
// host's network, one mapped id, a terminal or not) it then forks a child that
// sets the sandbox up as rootless.setupView does and executes the command
// (c/sandbox.h), and stays the sandbox's pid 1 in C: it makes the sockets
// of joiners and sudo, forwards signals, reaps, ends what the command
// leaves and reports its status. No Go program starts on that way. The
// first joiner or sudo to come makes pid 1 execute its Go program, which
// takes the sockets and the command over (rootless.Init) and serves them.
// For any other run pid 1's Go program sets the sandbox up, as it does for
// the CLI. When the record cannot be used, or anything else stands in the
// way, the front undoes what it did and returns, and the Go program runs
// as it does for every other command: the front can make a run faster,
// never different.
//
// The C is compiled freestanding (no libc) into an object without
// relocations, which Go's own linker links as it is: `make build` does
// that (front_amd64.syso) and checks it. Without the object, or on another
// architecture, devbox has no front. c/harness.c makes its pure parts a
// program of their own, which package rootless's tests compare with the
// Go they stand in for.
package front
