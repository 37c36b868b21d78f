// Package network connects a sandbox that has its own network namespace.
// A driver is split by the side it runs on, as rootlesskit's are: a
// ParentDriver runs in devbox's own namespaces once the sandbox's network
// namespace exists and before its command starts; what pid 1 does inside
// (bringing up loopback) is the same for every driver and lives in package
// rootless. One package per driver; none is the reference. Only cmd/devbox
// chooses a driver, and no driver reads flags or the environment.
package network

// ParentDriver connects a sandbox's network namespace to the outside.
type ParentDriver interface {
	// ConfigureNetwork connects the namespaces of the process pid (the
	// sandbox's pid 1, as seen from the host) and returns the function
	// that undoes it, which the caller defers.
	ConfigureNetwork(pid int) (cleanup func() error, err error)
	// DNS is the name server the sandbox should use, or "" for none.
	DNS() string
}

// Port forwards a port on the host to a port inside the sandbox.
type Port struct {
	Proto     string // "tcp" or "udp"
	HostIP    string // the host address to listen on
	HostPort  int
	ChildPort int
}
