// Package image owns the bytes of container images: references, the
// registry client, local sources, the content-addressed blob store, the safe
// layer unpacker and the shared layer store. It knows nothing about
// devbox.toml; package env decides which image a project uses.
package image
