// Package env decides what a project's environment is: it loads and
// validates devbox.toml, locates the per-project state, and turns the
// configuration into plain data for packages image, mounts and rootless.
// It parses no tar streams and touches no namespaces.
package env
