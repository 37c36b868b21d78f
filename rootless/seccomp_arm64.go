package rootless

import "golang.org/x/sys/unix"

const auditArch = unix.AUDIT_ARCH_AARCH64

// fakedSyscalls are the calls root emulation turns into successes.
var fakedSyscalls = []int{
	unix.SYS_FCHOWN, unix.SYS_FCHOWNAT,
	unix.SYS_SETUID, unix.SYS_SETGID, unix.SYS_SETREUID, unix.SYS_SETREGID,
	unix.SYS_SETRESUID, unix.SYS_SETRESGID, unix.SYS_SETFSUID, unix.SYS_SETFSGID,
	unix.SYS_SETGROUPS,
}
