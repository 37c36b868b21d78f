package mounts

import (
	"path/filepath"
	"strings"
)

// IsBeneath reports whether the absolute path is dir or lies beneath it.
func IsBeneath(path, dir string) bool {
	path, dir = filepath.Clean(path), filepath.Clean(dir)
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// Type is the kind of a Mount.
type Type string

// The mount types a plan uses.
const (
	// Overlay is the root filesystem: Lower layers under a writable Upper.
	Overlay Type = "overlay"
	// Bind makes the host path Source visible at Target.
	Bind Type = "bind"
	// Tmpfs is a fresh in-memory filesystem.
	Tmpfs Type = "tmpfs"
	// Proc is a fresh procfs for the sandbox's pid namespace.
	Proc Type = "proc"
	// Devpts is a private devpts instance with its own ptmx.
	Devpts Type = "devpts"
	// Mqueue is a POSIX message-queue filesystem for the IPC namespace.
	Mqueue Type = "mqueue"
	// Symlink is not a mount: it creates a symbolic link at Target whose
	// content is Source (used for /dev/fd, /dev/stdin, ...).
	Symlink Type = "symlink"
)

// Mount is one entry of a sandbox's mount table. Target is a path inside
// the sandbox; every other path is on the host.
type Mount struct {
	Type   Type   `json:"type"`
	Source string `json:"source,omitempty"` // Bind: host path; Symlink: link content
	Target string `json:"target"`           // absolute, inside the sandbox
	// ReadOnly remounts the mount read-only once it is in place.
	ReadOnly bool `json:"readOnly,omitempty"`
	// Recursive binds the submounts of Source too (rbind).
	Recursive bool `json:"recursive,omitempty"`
	// Optional skips a Bind whose Source does not exist.
	Optional bool `json:"optional,omitempty"`
	// Data is the filesystem's mount options, e.g. "mode=1777" for Tmpfs.
	Data string `json:"data,omitempty"`
	// Lower are the read-only layers of an Overlay, base layer first.
	Lower []string `json:"lower,omitempty"`
	// Upper and Work are an Overlay's writable layer and its scratch
	// directory, on the same filesystem.
	Upper string `json:"upper,omitempty"`
	Work  string `json:"work,omitempty"`
	// Helper is the fuse-overlayfs binary that mounts an Overlay in
	// RootFSFuse mode.
	Helper string `json:"helper,omitempty"`
}

// RootFS is how a sandbox's root filesystem is made.
type RootFS string

const (
	// RootFSOverlay is kernel overlayfs mounted inside the user namespace
	// (Linux 5.11+): the layers are shared and nothing is copied.
	RootFSOverlay RootFS = "overlay"
	// RootFSFuse is fuse-overlayfs: the same layers and writable layer,
	// through FUSE, where the kernel refuses overlayfs to a user namespace.
	RootFSFuse RootFS = "fuse-overlayfs"
	// RootFSCopy flattens the layers into one writable copy (see Flatten):
	// the last resort, slow to prepare and heavy on disk.
	RootFSCopy RootFS = "copy"
)

// View describes what a sandbox should see; Plan turns it into mounts.
type View struct {
	// Layers are the root filesystem's read-only layers, base layer first.
	Layers []string
	// Upper and Work hold the root filesystem's writable layer.
	Upper, Work string
	// RootFS selects how the layers become the root filesystem; empty means
	// RootFSOverlay. With RootFSCopy, Flat is the flattened copy (Layers,
	// Upper and Work are unused); with RootFSFuse, FuseHelper is the
	// fuse-overlayfs binary.
	RootFS     RootFS
	Flat       string
	FuseHelper string
	// WorkTree is the host directory of the project, mounted read-write at
	// WorkTreeTarget, or at the same path inside when that is empty.
	WorkTree, WorkTreeTarget string
	// Home is the host directory mounted read-write at HomeTarget.
	Home, HomeTarget string
	// HostNetworkFiles binds the host's /etc/resolv.conf read-only, for a
	// sandbox that shares the host's network. Its /etc/hosts is the host's
	// too, with the sandbox's host name added: pid 1 writes it.
	HostNetworkFiles bool
	// Early mounts go at fixed paths of the image's own tree (devbox's
	// sudo, the SSH agent's socket), before the home directory and the
	// work tree: an image's symlink on the way to their targets then leads
	// into the image's tree, never into a host directory mounted there.
	Early []Mount
	// Extra mounts go last, on top of everything else.
	Extra []Mount
}

// devices are the host device nodes a sandbox gets. Binding them keeps
// devbox free of mknod, which a user namespace does not allow.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// Plan returns the mount table for v, in the order it must be applied: the
// root first, then each mount after the mounts it lies beneath.
func Plan(v View) []Mount {
	root := Mount{Type: Overlay, Target: "/", Lower: v.Layers, Upper: v.Upper, Work: v.Work}
	switch v.RootFS {
	case RootFSCopy:
		root = Mount{Type: Bind, Source: v.Flat, Target: "/"}
	case RootFSFuse:
		root.Helper = v.FuseHelper
	}
	ms := []Mount{
		root,
		{Type: Proc, Target: "/proc"},
		// Recursive: in a user namespace the kernel refuses a bind of /sys
		// without the submounts the host has locked on it.
		{Type: Bind, Source: "/sys", Target: "/sys", Recursive: true, ReadOnly: true},
		{Type: Tmpfs, Target: "/dev", Data: "mode=755,size=65536k"},
	}
	for _, d := range devices {
		ms = append(ms, Mount{Type: Bind, Source: "/dev/" + d, Target: "/dev/" + d})
	}
	ms = append(ms,
		Mount{Type: Devpts, Target: "/dev/pts", Data: "newinstance,ptmxmode=0666,mode=620"},
		Mount{Type: Symlink, Source: "pts/ptmx", Target: "/dev/ptmx"},
		Mount{Type: Tmpfs, Target: "/dev/shm", Data: "mode=1777,size=65536k"},
		Mount{Type: Mqueue, Target: "/dev/mqueue"},
		Mount{Type: Symlink, Source: "/proc/self/fd", Target: "/dev/fd"},
		Mount{Type: Symlink, Source: "/proc/self/fd/0", Target: "/dev/stdin"},
		Mount{Type: Symlink, Source: "/proc/self/fd/1", Target: "/dev/stdout"},
		Mount{Type: Symlink, Source: "/proc/self/fd/2", Target: "/dev/stderr"},
		Mount{Type: Tmpfs, Target: "/tmp", Data: "mode=1777"},
	)
	if v.HostNetworkFiles {
		ms = append(ms,
			Mount{Type: Bind, Source: "/etc/resolv.conf", Target: "/etc/resolv.conf", ReadOnly: true, Optional: true},
		)
	}
	ms = append(ms, v.Early...)
	// The home directory goes before the work tree: a project usually lives
	// beneath its owner's home, and the later mount must stay on top.
	if v.Home != "" {
		ms = append(ms, Mount{Type: Bind, Source: v.Home, Target: v.HomeTarget})
	}
	if v.WorkTree != "" {
		target := v.WorkTreeTarget
		if target == "" {
			target = v.WorkTree
		}
		ms = append(ms, Mount{Type: Bind, Source: v.WorkTree, Target: filepath.Clean(target)})
	}
	return append(ms, v.Extra...)
}
