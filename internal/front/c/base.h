/*
 * What the front's parts share: system calls without libc, and the few
 * string helpers they need. Everything is inlined (see front.c).
 */

#define INLINE static inline __attribute__((always_inline))
/* Constant data in .text: the object then has no relocations. */
#define TEXT __attribute__((section(".text#")))

typedef unsigned long u64;
typedef long i64;

enum {
	SYS_read = 0, SYS_write = 1, SYS_open = 2, SYS_close = 3, SYS_stat = 4,
	SYS_poll = 7, SYS_rt_sigprocmask = 14, SYS_ioctl = 16, SYS_access = 21,
	SYS_dup2 = 33, SYS_getpid = 39, SYS_sendto = 44, SYS_recvmsg = 47,
	SYS_shutdown = 48, SYS_socketpair = 53, SYS_clone = 56,
	SYS_execve = 59, SYS_exit = 60, SYS_wait4 = 61, SYS_kill = 62,
	SYS_fcntl = 72, SYS_flock = 73, SYS_getcwd = 79, SYS_getuid = 102,
	SYS_getgid = 104, SYS_setpgid = 109, SYS_capget = 125,
	SYS_capset = 126, SYS_prctl = 157, SYS_exit_group = 231,
	SYS_signalfd4 = 289, SYS_pipe2 = 293, SYS_close_range = 436,
	SYS_fstat = 5, SYS_lstat = 6, SYS_mmap = 9, SYS_munmap = 11,
	SYS_fork = 57, SYS_uname = 63, SYS_chdir = 80, SYS_mkdir = 83,
	SYS_unlink = 87, SYS_pivot_root = 155, SYS_mount = 165,
	SYS_umount2 = 166, SYS_sethostname = 170, SYS_openat = 257,
	SYS_mkdirat = 258, SYS_symlinkat = 266, SYS_openat2 = 437,
	SYS_mount_setattr = 442, SYS_socket = 41, SYS_bind = 49, SYS_listen = 50,
	SYS_chmod = 90, SYS_unlinkat = 263, SYS_execveat = 322,
	SYS_sendmsg = 46, SYS_setsid = 112,
};

enum {
	CLONE_NEWNS = 0x00020000, CLONE_NEWUTS = 0x04000000,
	CLONE_NEWIPC = 0x08000000, CLONE_NEWUSER = 0x10000000,
	CLONE_NEWPID = 0x20000000,
	SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGKILL = 9, SIGTERM = 15,
	SIGCHLD = 17,
	O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CLOEXEC = 02000000,
	TCGETS = 0x5401, SIG_BLOCK = 0, SIG_SETMASK = 2,
	PR_SET_PDEATHSIG = 1, PR_CAP_AMBIENT = 47, PR_CAP_AMBIENT_RAISE = 2,
	POLLIN = 1, POLLHUP = 0x10, X_OK = 1, EINTR = 4, F_GETFD = 1,
	LOCK_SH = 1, LOCK_NB = 4, F_DUPFD_CLOEXEC = 1030, AF_UNIX = 1,
	SOCK_STREAM = 1, SOCK_SEQPACKET = 5, MSG_NOSIGNAL = 0x4000, SHUT_WR = 1,
	MSG_CMSG_CLOEXEC = 0x40000000, SIGWINCH = 28, TCSETS = 0x5402,
	TIOCGWINSZ = 0x5413, TIOCSWINSZ = 0x5414, EAGAIN = 11,
	ENOENT = 2, EEXIST = 17, EACCES = 13, ENOEXEC = 8, ENOSYS = 38,
	EPERM = 1, LOCK_EX = 2, O_CREAT = 0100, O_EXCL = 0200,
	O_TRUNC = 01000, O_NOFOLLOW = 0400000, O_DIRECTORY = 0200000,
	O_PATH = 010000000, PROT_READ = 1, PROT_WRITE = 2, MAP_PRIVATE = 2,
	S_IFMT = 0170000, S_IFDIR = 0040000, S_IFREG = 0100000,
	PR_SET_NO_NEW_PRIVS = 38, CLOSE_RANGE_CLOEXEC = 4, O_NONBLOCK = 04000,
	SIGUSR1 = 10, SIGUSR2 = 12, WNOHANG = 1, F_SETFD = 2, FD_CLOEXEC = 1,
	AT_EMPTY_PATH = 0x1000, O_NOCTTY = 0400, TIOCSCTTY = 0x540E,
	TIOCGPTPEER = 0x5441, TIOCSPTLCK = 0x40045431,
};

INLINE i64 sys6(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f) {
	register i64 r10 __asm__("r10") = d;
	register i64 r8 __asm__("r8") = e;
	register i64 r9 __asm__("r9") = f;
	i64 r;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}
#define sys(n, a, b, c) sys6(n, (i64)(a), (i64)(b), (i64)(c), 0, 0, 0)

INLINE int streq(const char *a, const char *b) {
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

INLINE int has_prefix(const char *s, const char *p) {
	while (*p)
		if (*s++ != *p++)
			return 0;
	return 1;
}

INLINE u64 slen(const char *s) {
	u64 n = 0;
	while (s[n])
		n++;
	return n;
}

/* The value of NAME in envp, or 0. */
INLINE const char *getenv_(char **envp, const char *name_eq) {
	for (; *envp; envp++)
		if (has_prefix(*envp, name_eq))
			return *envp + slen(name_eq);
	return 0;
}

/* Appends s to the buffer b of size n at *at; 0 when it does not fit. */
INLINE int append(char *b, u64 n, u64 *at, const char *s) {
	u64 l = slen(s);
	if (*at + l >= n)
		return 0;
	for (u64 i = 0; i < l; i++)
		b[*at + i] = s[i];
	*at += l;
	b[*at] = 0;
	return 1;
}

INLINE void append_uint(char *b, u64 *at, u64 v) {
	char d[24];
	int n = 0;
	do {
		d[n++] = '0' + v % 10;
		v /= 10;
	} while (v);
	while (n)
		b[(*at)++] = d[--n];
	b[*at] = 0;
}

INLINE int write_file(const char *path, const char *data, u64 len) {
	i64 fd = sys(SYS_open, path, O_WRONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	i64 n = sys(SYS_write, fd, data, len);
	sys(SYS_close, fd, 0, 0);
	return n == (i64)len;
}


/* Reads the uvarint (encoding/binary) at b[*at:n] into *v, moving *at
   past it; 0 when it is cut short or too large. */
INLINE int uvarint(const unsigned char *b, u64 n, u64 *at, u64 *v) {
	*v = 0;
	for (int shift = 0; *at < n && shift < 64; shift += 7) {
		unsigned char c = b[(*at)++];
		if (shift == 63 && c > 1)
			return 0; /* beyond 64 bits, as binary.Uvarint says */
		*v |= (u64)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return 1;
	}
	return 0;
}

struct cap_header {
	unsigned int version;
	int pid;
};
struct cap_data {
	unsigned int effective, permitted, inheritable;
};

INLINE int isatty_(int fd) {
	char t[64];
	return sys(SYS_ioctl, fd, TCGETS, t) == 0;
}

struct pollfd_ {
	int fd;
	short events, revents;
};

struct siginfo_ {
	unsigned int signo;
	char rest[124];
};

/* sendmsg(2) and recvmsg(2) of one byte with one descriptor (SCM_RIGHTS). */
struct iovec_ {
	void *base;
	u64 len;
};
struct cmsg_fd {
	u64 len;
	int level, type, fd, pad;
};
struct msghdr_ {
	void *name;
	u64 namelen;
	struct iovec_ *iov;
	u64 iovlen;
	struct cmsg_fd *control;
	u64 controllen;
	int flags, pad;
};

/* A wait status as a shell's: the exit code, or 128 plus the signal. */
INLINE i64 exit_status(int ws) {
	return (ws & 0x7f) == 0 ? (ws >> 8) & 0xff : 128 + (ws & 0x7f);
}
