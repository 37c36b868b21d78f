package rootless

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Root emulation. In single-uid mode only one id is mapped: root inside is
// the user outside. Package managers running as that root still chown files
// to system users, switch to unprivileged users (apt's _apt) and call
// setgroups, and every one of those calls fails with EINVAL or EPERM,
// because the ids they name do not exist in the namespace. A seccomp filter
// makes exactly those calls return success without doing anything, as
// Charliecloud's root emulation does: files stay owned by the user, and the
// process keeps running as root-inside. Nothing gains any privilege: the
// calls that are faked could only have lowered it.

// seccompData offsets (struct seccomp_data).
const (
	seccompDataNr   = 0
	seccompDataArch = 4
)

// rootEmulationFilter returns the BPF program: on the native architecture,
// the syscalls in fakedSyscalls return 0; everything else is allowed.
func rootEmulationFilter() []unix.SockFilter {
	stmt := func(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
	jump := func(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: code, K: k, Jt: jt, Jf: jf}
	}
	n := len(fakedSyscalls)
	prog := []unix.SockFilter{
		stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, seccompDataArch),
		// Another architecture's syscall numbers mean other calls: allow.
		jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, auditArch, 0, uint8(n+1)),
		stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, seccompDataNr),
	}
	for i, nr := range fakedSyscalls {
		// On a match, jump to the "fake success" return after the list.
		prog = append(prog, jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, uint32(nr), uint8(n-i), 0))
	}
	return append(prog,
		stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_ALLOW),
		// SECCOMP_RET_ERRNO with errno 0 in its low bits: "success".
		stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_ERRNO),
	)
}

// installRootEmulation loads the filter on the calling thread; the command
// forked from that thread inherits it. no_new_privs must be set already.
func installRootEmulation() error {
	filter := rootEmulationFilter()
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		return &os.SyscallError{Syscall: "prctl(PR_SET_SECCOMP)", Err: err}
	}
	return nil
}
