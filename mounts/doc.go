// Package mounts is the vocabulary of a sandbox's filesystem view: it plans
// the mount table of a sandbox (root overlay, /proc, /dev, /tmp, the work
// tree, the home directory) as plain data, and applies such a plan inside the
// sandbox's mount namespace, resolving every target inside the new root.
// It reads no configuration files; package env decides what goes in a plan
// and package rootless decides when it is applied.
package mounts
