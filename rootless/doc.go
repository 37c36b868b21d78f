// Package rootless runs a process in an unprivileged sandbox: user, mount,
// pid, UTS and IPC namespaces, a single-uid identity map written by devbox
// itself, an overlay root filesystem, pivot_root, and a small pid 1 that
// reaps and forwards signals. It executes a Spec and knows nothing about
// images or devbox.toml.
package rootless
