// Package mounts plans a sandbox's filesystem view as a list of mounts; it
// makes no mount(2) calls itself: package rootless applies the plan inside
// the sandbox's mount namespace.
package mounts
