// Package none is the network driver of a sandbox that reaches nothing but
// its own loopback: it connects nothing.
package none

import "github.com/devboxhq/devbox/rootless/network"

type parentDriver struct{}

var _ network.ParentDriver = parentDriver{}

// NewParentDriver returns the driver.
func NewParentDriver() network.ParentDriver { return parentDriver{} }

func (parentDriver) ConfigureNetwork(int) (func() error, error) {
	return func() error { return nil }, nil
}

func (parentDriver) DNS() string { return "" }
