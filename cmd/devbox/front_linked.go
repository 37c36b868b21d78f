//go:build devbox_front

package main

// The front runs from the executable's entry point (make build links it
// with -E); it needs the init program, which devbox_init embeds.
import _ "github.com/devboxhq/devbox/internal/front"

// frontLinked: this devbox starts at the front, which runs warm runs from
// records that the CLI writes (saveFront).
const frontLinked = true
