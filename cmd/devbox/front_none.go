//go:build !devbox_front

package main

// frontLinked: without the front, records would go unread.
const frontLinked = false
