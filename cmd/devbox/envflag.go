package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/devboxhq/devbox/env"
)

// envFlagUsage is the help of run's and shell's --env.
const envFlagUsage = "set `NAME[=VALUE]` inside: to VALUE, or without one to the host's NAME (left out where unset); repeatable; wins over the image and [env], as docker run -e does"

// envFlags resolves --env values: NAME=VALUE as given, NAME alone as the
// host's value, left out where the host has none.
func envFlags(values []string) ([]string, error) {
	var kvs []string
	for _, v := range values {
		name, _, hasValue := strings.Cut(v, "=")
		if !env.IsVariableName(name) {
			return nil, &FlagError{Err: fmt.Errorf("--env %q: %q is not a variable name: write NAME=VALUE, or NAME to pass the host's", v, name)}
		}
		if hasValue {
			kvs = append(kvs, v)
		} else if val, ok := os.LookupEnv(name); ok {
			kvs = append(kvs, name+"="+val)
		}
	}
	return kvs, nil
}
