/*
 * devbox's front: the code a warm `devbox run` executes instead of the Go
 * runtime. See doc.go for why it exists and what it may do.
 *
 * It runs first in the process, from the ELF entry point (entry_amd64.s),
 * before the Go runtime: no libc, no heap, no threads. It is compiled
 * freestanding into an object without relocations (the Makefile checks),
 * which Go's own linker can link: every function is inlined into
 * devbox_front, and every constant lives in .text.
 *
 * devbox_front returns 0 to let the Go runtime start, as it does for every
 * other command and whenever the fast path does not apply or gives up; it
 * does not return once the sandbox's command has started. The sandbox's
 * pid 1 is a clone of this process: it reads the record (record.h) and,
 * for a plain run, sets the sandbox up in a child of its own (sandbox.h)
 * and reaps for it (reaper, below).
 */

#include "base.h"
#include "record.h"
#include "sandbox.h"

/* The single-id maps of a sandbox: the user's uid and gid to themselves. */
INLINE int write_maps(i64 pid) {
	TEXT static const char proc[] = "/proc/", uidf[] = "/uid_map",
			       gidf[] = "/gid_map", groupsf[] = "/setgroups",
			       deny[] = "deny", one[] = " 1\n";
	char path[64], line[64];
	u64 at, base, n;
	at = 0;
	append(path, sizeof path, &at, proc);
	append_uint(path, &at, (u64)pid);
	base = at;

	n = 0;
	append_uint(line, &n, (u64)sys(SYS_getuid, 0, 0, 0));
	line[n++] = ' ';
	append_uint(line, &n, (u64)sys(SYS_getuid, 0, 0, 0));
	append(line, sizeof line, &n, one);
	append(path, sizeof path, &at, uidf);
	if (!write_file(path, line, n))
		return 0;

	at = base;
	append(path, sizeof path, &at, groupsf);
	if (!write_file(path, deny, 4))
		return 0;

	n = 0;
	append_uint(line, &n, (u64)sys(SYS_getgid, 0, 0, 0));
	line[n++] = ' ';
	append_uint(line, &n, (u64)sys(SYS_getgid, 0, 0, 0));
	append(line, sizeof line, &n, one);
	at = base;
	append(path, sizeof path, &at, gidf);
	return write_file(path, line, n);
}

/* The directory devbox runs in, as Go's os.Getwd names it: $PWD when
 * that is the working directory (a path through a symlink stays so),
 * else the kernel's. 0 when it does not fit. */
INLINE int getwd_(char **envp, char *b, u64 n) {
	TEXT static const char pwd[] = "PWD=", dot[] = ".";
	const char *p = getenv_(envp, pwd);
	if (p && p[0] == '/') {
		u64 a[18], c[18]; /* struct stat: st_dev, then st_ino */
		if (sys(SYS_stat, p, a, 0) == 0 && sys(SYS_stat, dot, c, 0) == 0 && a[0] == c[0] && a[1] == c[1]) {
			u64 at = 0;
			return append(b, n, &at, p);
		}
	}
	return sys(SYS_getcwd, b, n, 0) > 0;
}

/* The records of a run in cwd (rootless.FrontPath), in path: the name
 * that pid 1 adds its kind of run to, and beside which devbox links the
 * lock of the project's writable layer (".lock"). 0 when it does not fit. */
INLINE int record_path(char **envp, const char *cwd, char *path, u64 size) {
	TEXT static const char xdg[] = "XDG_DATA_HOME=", home[] = "HOME=",
			       share[] = "/.local/share", front[] = "/devbox/front/",
			       hex[] = "0123456789abcdef";
	u64 at = 0;
	const char *x = getenv_(envp, xdg), *h = getenv_(envp, home);
	if (x && x[0] == '/') {
		if (!append(path, size, &at, x))
			return 0;
	} else if (!h || !append(path, size, &at, h) || !append(path, size, &at, share)) {
		return 0;
	}
	if (!append(path, size, &at, front))
		return 0;
	/* FNV-1a, 64 bits, in hexadecimal without leading zeros. */
	u64 hash = 0xcbf29ce484222325UL;
	for (const char *c = cwd; *c; c++)
		hash = (hash ^ (unsigned char)*c) * 0x100000001b3UL;
	char digits[16];
	int n = 0;
	do {
		digits[n++] = hex[hash & 15];
		hash >>= 4;
	} while (hash);
	if (at + n >= size)
		return 0;
	while (n)
		path[at++] = digits[--n];
	path[at] = 0;
	return 1;
}

/* Takes the flock how on path for pid 1, as the CLI takes the project's
 * locks (fsutil.TryLock, and shared): the descriptor, or -1. existing:
 * the file must be there, and still be the one locked
 * (fsutil.LockExisting); else it is made. */
INLINE i64 lock(const char *path, int how, int existing) {
	i64 fd = sys(SYS_open, path, existing ? O_RDONLY | O_CLOEXEC : O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	struct kstat held, now;
	if (sys(SYS_flock, fd, how | LOCK_NB, 0) != 0 ||
	    (existing && (sys(SYS_fstat, fd, &held, 0) != 0 || sys(SYS_stat, path, &now, 0) != 0 ||
			  held.dev != now.dev || held.ino != now.ino))) {
		sys(SYS_close, fd, 0, 0);
		return -1;
	}
	return fd;
}

/* The descriptors of pid 1's Go program: each want[i] at fd 3 + i, or fd
 * 3 + i closed where want[i] < 0, and nothing else beyond the streams. */
INLINE int place_fds(i64 *want, int n) {
	for (int i = 0; i < n; i++)
		if (want[i] >= 0 && (want[i] = sys(SYS_fcntl, want[i], F_DUPFD_CLOEXEC, 64)) < 0)
			return 0;
	sys(SYS_close_range, 3, 63, 0);
	for (int i = 0; i < n; i++)
		if (want[i] >= 0 && sys(SYS_dup2, want[i], 3 + i, 0) != 3 + i)
			return 0;
	sys(SYS_close_range, 3 + n, ~0U, 0);
	return 1;
}

/* The signals pid 1 takes from a signalfd while it is C: SIGCHLD, and
 * those rootless.Init forwards to the command. */
#define REAPER_SIGNALS                                                                 \
	((1UL << (SIGCHLD - 1)) | (1UL << (SIGINT - 1)) | (1UL << (SIGTERM - 1)) |    \
	 (1UL << (SIGHUP - 1)) | (1UL << (SIGQUIT - 1)) | (1UL << (SIGUSR1 - 1)) |    \
	 (1UL << (SIGUSR2 - 1)) | (1UL << (SIGWINCH - 1)))

/* Listens at name in the directory dir, as rootless.listenShare: the
 * socket, or -1. */
INLINE i64 listen_at(i64 dir, const char *name) {
	TEXT static const char slash[] = "/";
	struct {
		unsigned short family;
		char path[108];
	} addr = {AF_UNIX, {0}};
	if (dir < 0)
		return -1;
	u64 at = fd_path(addr.path, dir);
	if (!append(addr.path, sizeof addr.path, &at, slash) || !append(addr.path, sizeof addr.path, &at, name))
		return -1;
	i64 e = sys(SYS_unlinkat, dir, name, 0);
	if (e != 0 && e != -ENOENT)
		return -1;
	i64 fd = sys(SYS_socket, AF_UNIX, SOCK_STREAM | O_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (sys(SYS_bind, fd, &addr, sizeof addr) != 0 || sys(SYS_listen, fd, 16, 0) != 0) {
		sys(SYS_close, fd, 0, 0);
		return -1;
	}
	return fd;
}

/* What pid 1 hands its Go program (see child). */
struct handover {
	const char *prog;
	char **cmd;
	i64 fds[8]; /* for fd 3 on: the record, messages, pty socket, locks, listeners */
	i64 progfd;
	u64 *oldmask;
};

/* pid 1 executes its Go program, with the descriptors of h and, with
 * started, the pid of the command that runs already. */
INLINE void __attribute__((noreturn)) exec_init(struct handover *h, i64 started) {
	TEXT static const char marker[] = "_DEVBOX_SANDBOX_INIT=front",
			       procs[] = "GOMAXPROCS=2", name[] = "devbox-init",
			       cmdenv[] = "_DEVBOX_FRONT_COMMAND=", empty[] = "";
	/* pid 1 keeps the namespace's capabilities across the exec, as
	 * ambient ones (rootless.asUser). */
	struct cap_header ch = {0x20080522, 0};
	struct cap_data cd[2];
	if (sys(SYS_capget, &ch, cd, 0) != 0)
		sys(SYS_exit, 125, 0, 0);
	cd[0].inheritable = cd[0].permitted;
	cd[1].inheritable = cd[1].permitted;
	if (sys(SYS_capset, &ch, cd, 0) != 0)
		sys(SYS_exit, 125, 0, 0);
	for (int c = 0; c < 64; c++)
		if (sys6(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0, 0) != 0)
			break;
	i64 fds[9];
	for (int i = 0; i < 8; i++)
		fds[i] = h->fds[i];
	fds[8] = h->progfd;
	if (!place_fds(fds, 9) || (h->progfd >= 0 && sys(SYS_fcntl, 11, F_SETFD, FD_CLOEXEC) != 0))
		sys(SYS_exit, 125, 0, 0);
	sys6(SYS_rt_sigprocmask, SIG_SETMASK, (i64)h->oldmask, 0, 8, 0, 0);
	/* argv: devbox-init, then the command. Its environment is what the
	 * CLI gives pid 1, and no more: the user's stays out of
	 * /proc/1/environ, where the sandbox could read it. */
	int argc = 0;
	while (h->cmd[argc])
		argc++;
	char *nargv[argc + 2];
	char pidenv[48];
	u64 pe = 0;
	if (started > 0) {
		append(pidenv, sizeof pidenv, &pe, cmdenv);
		append_uint(pidenv, &pe, (u64)started);
	}
	char *nenvp[4] = {(char *)marker, (char *)procs, pe ? pidenv : 0, 0};
	nargv[0] = (char *)name;
	for (int i = 0; i <= argc; i++)
		nargv[i + 1] = h->cmd[i];
	if (h->progfd >= 0)
		sys6(SYS_execveat, 11, (i64)empty, (i64)nargv, (i64)nenvp, AT_EMPTY_PATH, 0);
	else
		sys(SYS_execve, h->prog, nargv, nenvp);
	sys(SYS_exit, 125, 0, 0);
	__builtin_unreachable();
}

/*
 * pid 1 of a plain run, while the front's child (sandbox.h) sets the
 * sandbox up and executes the command, pid cmd: it makes the sockets that
 * joiners and sudo come to, reports the start, forwards signals, reaps,
 * ends what the command leaves and reports its status, as rootless.Init
 * does. Go is not needed for that. The first joiner or sudo to come makes
 * pid 1 execute its Go program, which takes the sockets over and serves
 * them (rootless.joined).
 */
INLINE void __attribute__((noreturn)) reaper(const struct rec *r, struct handover *h, i64 cmd,
					     int ready, i64 share_dir, i64 sigfd) {
	TEXT static const char started[] = "started", exited[] = "exited",
			       handoff[] = "handoff", none[] = "", root[] = "/",
			       dev[] = "/dev", sudo[] = ".devbox-sudo",
			       sudo_path[] = "/dev/.devbox-sudo";
	int sync_w = (int)h->fds[1];
	char b = 0;
	i64 n;
	while ((n = sys(SYS_read, ready, &b, 1)) == -EINTR)
		;
	/* Without its 'S', the child fell back, and told the front. */
	if (n != 1 || b != 'S')
		sys(SYS_exit_group, 0, 0, 0);
	sys(SYS_close, ready, 0, 0);
	sys(SYS_chdir, root, 0, 0);
	/* The sockets, which a failure leaves out: joiners then run on
	 * their own, and sudo says nobody is there. */
	if (share_dir >= 0) {
		h->fds[6] = listen_at(share_dir, base_of(r->spec.share));
		sys(SYS_close, share_dir, 0, 0);
	}
	if (r->spec.sudo) {
		i64 d = sys(SYS_open, dev, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
		h->fds[7] = listen_at(d, sudo);
		if (d >= 0)
			sys(SYS_close, d, 0, 0);
		if (h->fds[7] >= 0)
			sys(SYS_chmod, sudo_path, 0666, 0);
	}
	send_msg(sync_w, started, 0, none);
	int done = 0;
	i64 status = 0;
	for (;;) {
		struct pollfd_ p[3] = {{(int)sigfd, POLLIN, 0}, {done ? -1 : (int)h->fds[6], POLLIN, 0},
				       {done ? -1 : (int)h->fds[7], POLLIN, 0}};
		if (sys(SYS_poll, p, 3, -1) < 0)
			continue;
		if (p[0].revents & POLLIN) {
			struct siginfo_ si;
			if (sys(SYS_read, sigfd, &si, sizeof si) != sizeof si)
				continue;
			if (si.signo != SIGCHLD) {
				if (!done)
					sys(SYS_kill, cmd, si.signo, 0);
				continue;
			}
			for (;;) {
				int ws = 0;
				i64 w = sys6(SYS_wait4, -1, (i64)&ws, WNOHANG, 0, 0, 0);
				if (w == 0)
					break;
				if (w < 0) { /* ECHILD: the sandbox is empty */
					if (!done)
						break;
					/* The locks go first: the front returns on
					 * "exited", and the next run may come at once. */
					for (int i = 3; i < 6; i++)
						sys(SYS_close, h->fds[i], 0, 0);
					send_msg(sync_w, exited, status, none);
					sys(SYS_exit_group, status, 0, 0);
				}
				if (w == cmd) {
					status = exit_status(ws);
					done = 1;
					/* Nothing the command started outlives it. */
					sys(SYS_kill, -1, SIGKILL, 0);
				}
			}
			continue;
		}
		if (done || !((p[1].revents | p[2].revents) & POLLIN))
			continue;
		/* A joiner or sudo came. The front holds signals until the Go
		 * program reports its start; those here already go to the
		 * command, since the Go runtime lets go of blocked signals
		 * before it handles them, and pid 1 drops what it does not
		 * handle. */
		send_msg(sync_w, handoff, 0, none);
		struct siginfo_ si;
		while (sys(SYS_read, sigfd, &si, sizeof si) == sizeof si)
			if (si.signo != SIGCHLD)
				sys(SYS_kill, cmd, si.signo, 0);
		exec_init(h, cmd);
	}
}

/*
 * pid 1's side of the clone. It reads the record of this kind of run
 * (recs, the records' path, plus ".t" or ".tt"), checks it and takes the
 * project's locks. A plain run's sandbox, on a terminal or not, it sets
 * up in a child of its own (sandbox.h) and reaps for, until a joiner or
 * sudo needs its Go program (reaper); any other run's sandbox its Go
 * program sets up. Before the
 * exec of that program, what rootless.sysProcAttr asks of Go's ForkExec
 * for a single-id sandbox. The program finds fd 3 the record, 4 its
 * messages to the front, 5 (on a terminal) the socket to send the
 * sandbox's terminal over, 6 to 8 the locks, and after a plain run's
 * reaper 9 and 10 the sockets of the joiners and of sudo. Its arguments
 * are the command's; its environment says whether the command runs
 * already.
 */
INLINE void child(int maps_r, int sync_w, int pty_w, const char *prog, char **argv,
		  char **envp, const char *cwd, const char *recs, u64 *oldmask) {
	TEXT static const char t[] = ".t", e_rec[] = "no record of this kind of run",
			       e_locked[] = "the project is in use",
			       e_fork[] = "fork", e_share[] = "open the joiners' directory";
	char b;
	sys6(SYS_rt_sigprocmask, SIG_SETMASK, (i64)oldmask, 0, 8, 0, 0);
	/* The maps are written once this read returns. */
	if (sys(SYS_read, maps_r, &b, 1) != 1)
		sys(SYS_exit, 125, 0, 0);
	/* Without a terminal, its own process group, as Go's Setpgid gives:
	 * a Ctrl-C reaches the command once, forwarded. (With one, Ctrl-C is
	 * a byte for the sandbox's own terminal.) */
	if (pty_w < 0)
		sys(SYS_setpgid, 0, 0, 0);
	/* If devbox dies, pid 1 dies, and with it the sandbox. (Its parent
	 * is outside its pid namespace: getppid says 0, dead or alive.) */
	sys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0);

	/* The record, mapped privately: record_check writes in it. */
	char path[4096];
	u64 at = 0;
	if (!append(path, sizeof path, &at, recs) || (pty_w >= 0 && !append(path, sizeof path, &at, t)) ||
	    (pty_w >= 0 && isatty_(1) && !append(path, sizeof path, &at, t + 1)))
		fallback(sync_w, e_rec);
	i64 rf = sys(SYS_open, path, O_RDONLY | O_CLOEXEC, 0);
	struct kstat st;
	if (rf < 0 || sys(SYS_fstat, rf, &st, 0) != 0 || st.size <= 0)
		fallback(sync_w, e_rec);
	i64 map = sys6(SYS_mmap, 0, st.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, rf, 0);
	if (map < 0)
		fallback(sync_w, e_rec);
	struct rd d = {(unsigned char *)map, (u64)st.size, 0, 0};
	struct rec r;
	const char *why = record_check(&d, &r, prog, cwd, envp, argv + 1);
	if (why)
		fallback(sync_w, why);
	/* The project's locks, in the order of rootView and
	 * Environment.Running: the writable layer's (a running sandbox holds
	 * it, and the command would join that), the project's (a reset holds
	 * it), and the record of the layers in use (which gc keeps). */
	struct handover h = {prog, r.cmd, {rf, sync_w, pty_w, -1, -1, -1, -1, -1}, -1, oldmask};
	if ((h.fds[3] = lock(r.upper_lock, LOCK_EX, 0)) < 0 || (h.fds[4] = lock(r.project_lock, LOCK_SH, 0)) < 0 ||
	    (h.fds[5] = lock(r.running, LOCK_SH, 1)) < 0)
		fallback(sync_w, e_locked);
	if (!sandbox_plain(&r.spec, (u64)sys(SYS_getuid, 0, 0, 0), (u64)sys(SYS_getgid, 0, 0, 0)))
		exec_init(&h, 0);

	/* pid 1 stays this process: the user's environment goes from its
	 * memory, where the sandbox would find it (/proc/1/environ). The
	 * kernel put the strings one after the other. */
	if (envp[0]) {
		char **last = envp;
		while (last[1])
			last++;
		for (char *c = envp[0], *end = *last + slen(*last); c < end; c++)
			*c = 0;
	}
	/* A plain run: what pid 1 needs of the host's tree is opened before
	 * the child's pivot_root takes it away (its Go program, the
	 * directory of the joiners' socket), and its signals are blocked, to
	 * be read from a signalfd, before the child can exit. */
	h.progfd = sys(SYS_open, prog, O_PATH | O_CLOEXEC, 0);
	if (h.progfd < 0)
		fallback(sync_w, e_fork);
	i64 share_dir = -1;
	const char *share = r.spec.share;
	if (share[0]) {
		char dir[4096];
		u64 n = dir_len(share);
		if (share[0] != '/' || n >= sizeof dir)
			fallback(sync_w, e_share);
		for (u64 i = 0; i < n; i++)
			dir[i] = share[i];
		dir[n] = 0;
		if ((share_dir = sys(SYS_open, dir, O_PATH | O_DIRECTORY | O_CLOEXEC, 0)) < 0)
			fallback(sync_w, e_share);
	}
	u64 mask = REAPER_SIGNALS;
	sys6(SYS_rt_sigprocmask, SIG_BLOCK, (i64)&mask, 0, 8, 0, 0);
	i64 sigfd = sys6(SYS_signalfd4, -1, (i64)&mask, 8, O_CLOEXEC | O_NONBLOCK, 0, 0);
	int ready[2];
	if (sigfd < 0 || sys(SYS_pipe2, ready, O_CLOEXEC, 0) != 0)
		fallback(sync_w, e_fork);
	i64 pid = sys(SYS_fork, 0, 0, 0);
	if (pid < 0)
		fallback(sync_w, e_fork);
	if (pid == 0) {
		sys6(SYS_rt_sigprocmask, SIG_SETMASK, (i64)oldmask, 0, 8, 0, 0);
		sys(SYS_close, ready[0], 0, 0);
		sandbox(&r, sync_w, ready[1], pty_w);
	}
	sys(SYS_close, ready[1], 0, 0);
	/* The child sends the front the sandbox's terminal. */
	if (pty_w >= 0)
		sys(SYS_close, pty_w, 0, 0);
	h.fds[2] = -1;
	reaper(&r, &h, pid, ready[0], share_dir, sigfd);
}

/* pid 1's messages (rootless/messages.go): a uvarint length, then the
 * type as a uvarint-prefixed string, the status as a zigzag varint and the
 * error as a string. */
enum { MSG_NONE, MSG_STARTED, MSG_WAITING, MSG_EXITED, MSG_HANDOFF, MSG_OTHER };

/* Parses one message at the start of b[0:n]: its length in *used (0 while
 * incomplete), its kind and status. */
INLINE int message(const unsigned char *b, u64 n, u64 *used, i64 *status) {
	TEXT static const char started[] = "started", waiting[] = "waiting",
			       exited[] = "exited", handoff[] = "handoff";
	u64 at = 0, len, tlen, zz;
	*used = 0;
	if (!uvarint(b, n, &at, &len) || n - at < len)
		return MSG_NONE;
	u64 end = at + len;
	*used = end;
	if (!uvarint(b, end, &at, &tlen) || end - at < tlen)
		return MSG_OTHER;
	const unsigned char *t = b + at;
	at += tlen;
	if (!uvarint(b, end, &at, &zz))
		return MSG_OTHER;
	*status = (i64)(zz >> 1) ^ -(i64)(zz & 1);
	const char *want[4] = {started, waiting, exited, handoff};
	for (int k = 0; k < 4; k++) {
		u64 wl = slen(want[k]);
		if (wl != tlen)
			continue;
		u64 i = 0;
		while (i < wl && t[i] == (unsigned char)want[k][i])
			i++;
		if (i == wl)
			return MSG_STARTED + k;
	}
	return MSG_OTHER;
}

/* After the command exits while commands that joined the sandbox run:
 * the streams that are not a terminal go to /dev/null, so that a pipe's
 * other end sees its end (rootless.Sandbox.releaseStreams). */
INLINE void release_streams(void) {
	TEXT static const char null[] = "/dev/null";
	i64 fd = sys(SYS_open, null, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (!isatty_(i))
			sys(SYS_dup2, fd, i, 0);
	sys(SYS_close, fd, 0, 0);
}

INLINE void notice(i64 n) {
	TEXT static const char a[] = "devbox: waiting for the ",
			       b[] = " other command(s) in this sandbox, which joined it; Ctrl-C stops them\n";
	char line[160];
	u64 at = 0;
	if (!isatty_(2))
		return;
	append(line, sizeof line, &at, a);
	append_uint(line, &at, (u64)n);
	append(line, sizeof line, &at, b);
	sys(SYS_write, 2, line, at);
}

/* Waits for pid 1 and returns as rootless.exitStatus does. */
INLINE i64 wait_status(i64 pid) {
	int ws = 0;
	while (sys6(SYS_wait4, pid, (i64)&ws, 0, 0, 0, 0) == -EINTR)
		;
	return exit_status(ws);
}

/* The caller's terminal and the sandbox's, relayed as rootless.terminal
 * does: the caller's in raw mode while the sandbox has it, its window
 * size copied, what is typed to the sandbox's, what it shows to the
 * caller's screen. */
struct term_ {
	int sock;     /* pid 1 sends the sandbox's terminal over it; -1 once it has */
	int master;   /* the sandbox's terminal, -1 until then and once it ends */
	int in;       /* 0 while what is typed is relayed, -1 after its end */
	int screen;   /* the first terminal of stdout, stderr, stdin */
	int raw;
	unsigned char saved[64];
};

INLINE void term_restore(struct term_ *t) {
	if (t->raw)
		sys(SYS_ioctl, 0, TCSETS, t->saved);
	t->raw = 0;
}

INLINE void term_resize(struct term_ *t) {
	unsigned short ws[4];
	if (t->master >= 0 && sys(SYS_ioctl, 0, TIOCGWINSZ, ws) == 0)
		sys(SYS_ioctl, t->master, TIOCSWINSZ, ws);
}

/* Receives the sandbox's terminal, then puts the caller's in raw mode
 * (x/term's MakeRaw). 0 when pid 1 sent none. */
INLINE int term_start(struct term_ *t) {
	struct cmsg_fd cm = {0, 0, 0, -1, 0};
	char byte;
	struct iovec_ iov = {&byte, 1};
	struct msghdr_ msg = {0, 0, &iov, 1, &cm, 20, 0, 0};
	if (sys(SYS_recvmsg, t->sock, &msg, MSG_CMSG_CLOEXEC) <= 0 || cm.level != 1 || cm.type != 1 || cm.fd < 0)
		return 0;
	sys(SYS_close, t->sock, 0, 0);
	t->sock = -1;
	t->master = cm.fd;
	unsigned int *f = (unsigned int *)t->saved;
	if (sys(SYS_ioctl, 0, TCGETS, t->saved) == 0) {
		unsigned char raw[64];
		for (int i = 0; i < 64; i++)
			raw[i] = t->saved[i];
		unsigned int *r = (unsigned int *)raw;
		r[0] = f[0] & ~(0001u | 0002u | 0010u | 0040u | 0100u | 0200u | 0400u | 02000u);
		r[1] = f[1] & ~0001u;
		r[2] = (f[2] & ~(0060u | 0400u)) | 0060u;
		r[3] = f[3] & ~(0010u | 0100u | 0002u | 0001u | 0100000u);
		/* VMIN 1, VTIME 0: stored through an opaque value, which gcc
		 * would otherwise load from a constant pool, a relocation. */
		unsigned char one = 1;
		__asm__("" : "+r"(one));
		raw[17 + 6] = one;
		raw[17 + 5] = 0;
		if (sys(SYS_ioctl, 0, TCSETS, raw) == 0)
			t->raw = 1;
	}
	term_resize(t);
	return 1;
}

/* Copies what the sandbox's terminal shows to the screen; at its end
 * (EIO once nothing inside holds it) it is closed. */
INLINE void term_out(struct term_ *t) {
	unsigned char b[4096];
	i64 n = sys(SYS_read, t->master, b, sizeof b);
	if (n == -EAGAIN || n == -EINTR)
		return;
	if (n <= 0) {
		sys(SYS_close, t->master, 0, 0);
		t->master = -1;
		return;
	}
	if (t->screen >= 0)
		sys(SYS_write, t->screen, b, n);
}

/* What is typed goes to the sandbox's terminal, until its end. */
INLINE void term_in(struct term_ *t) {
	unsigned char b[4096];
	i64 n = sys(SYS_read, 0, b, sizeof b);
	if (n == -EAGAIN || n == -EINTR)
		return;
	if (n <= 0 || t->master < 0) {
		t->in = -1;
		return;
	}
	for (i64 at = 0; at < n;) {
		i64 w = sys(SYS_write, t->master, b + at, n - at);
		if (w <= 0)
			break;
		at += w;
	}
}

/* Waits, up to 2 s, for what the sandbox's terminal still holds once its
 * command has ended (rootless.terminal.drain), and gives the caller's
 * terminal back. */
INLINE void term_finish(struct term_ *t) {
	for (int i = 0; i < 200 && t->master >= 0; i++) {
		struct pollfd_ p = {t->master, POLLIN, 0};
		if (sys(SYS_poll, &p, 1, 10) > 0)
			term_out(t);
	}
	term_restore(t);
}

long devbox_front(long *sp) {
	TEXT static const char run[] = "run", shell[] = "shell", dashdash[] = "--",
			       xdg[] = "XDG_CACHE_HOME=", home[] = "HOME=",
			       cache[] = "/.cache", initdir[] = "/devbox/init/",
			       initname[] = DEVBOX_INIT_NAME,
			       off[] = "DEVBOX_FRONT=", zero[] = "0",
			       init[] = "_DEVBOX_SANDBOX_INIT=";
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;

	/* devbox run [--] COMMAND..., or devbox shell: options, a
	 * re-executed devbox, or DEVBOX_FRONT=0 leave it to the Go program. */
	if (argc == 2 ? !streq(argv[1], shell) : argc < 3 || !streq(argv[1], run))
		return 0;
	if (argc > 2 && (streq(argv[2], dashdash) ? argc < 4 : argv[2][0] == '-'))
		return 0;
	const char *o = getenv_(envp, off);
	if (o && streq(o, zero))
		return 0;
	if (getenv_(envp, init))
		return 0;
	/* The streams must be open: devbox gives a closed stdin /dev/null,
	 * and refuses a closed stdout or stderr. */
	for (int fd = 0; fd < 3; fd++)
		if (sys(SYS_fcntl, fd, F_GETFD, 0) < 0)
			return 0;
	struct term_ term = {-1, -1, 0, -1, 0, {0}};
	int tty = isatty_(0);
	if (tty)
		term.screen = isatty_(1) ? 1 : isatty_(2) ? 2 : 0;

	/* pid 1's program, where devbox keeps its copy (rootless
	 * UseInitProgram): $XDG_CACHE_HOME/devbox/init, or ~/.cache's. */
	char prog[4096];
	u64 at = 0;
	const char *x = getenv_(envp, xdg), *h = getenv_(envp, home);
	if (x && x[0] == '/') {
		if (!append(prog, sizeof prog, &at, x))
			return 0;
	} else if (h && h[0]) {
		if (!append(prog, sizeof prog, &at, h) || !append(prog, sizeof prog, &at, cache))
			return 0;
	} else {
		return 0;
	}
	if (!append(prog, sizeof prog, &at, initdir) || !append(prog, sizeof prog, &at, initname))
		return 0;
	if (sys(SYS_access, prog, X_OK, 0) != 0)
		return 0;
	/* Without a record here, or while the project's sandbox runs (the
	 * command joins it), the Go program runs the command. */
	char cwd[4096];
	if (!getwd_(envp, cwd, sizeof cwd))
		return 0;
	TEXT static const char lock[] = ".lock";
	char rec[4096], link[4096];
	u64 ln = 0;
	if (!record_path(envp, cwd, rec, sizeof rec) || !append(link, sizeof link, &ln, rec) ||
	    !append(link, sizeof link, &ln, lock))
		return 0;
	i64 lk = sys(SYS_open, link, O_RDONLY | O_CLOEXEC, 0);
	if (lk < 0)
		return 0;
	i64 busy = sys(SYS_flock, lk, LOCK_SH | LOCK_NB, 0);
	sys(SYS_close, lk, 0, 0);
	if (busy != 0)
		return 0;

	int syncp[2], mapsp[2], ptys[2] = {-1, -1};
	if (tty && sys6(SYS_socketpair, AF_UNIX, SOCK_SEQPACKET | O_CLOEXEC, 0, (i64)ptys, 0, 0) != 0)
		return 0;
	term.sock = ptys[0];
	if (sys(SYS_pipe2, syncp, O_CLOEXEC, 0) != 0)
		return 0;
	if (sys(SYS_pipe2, mapsp, O_CLOEXEC, 0) != 0) {
		sys(SYS_close, syncp[0], 0, 0);
		sys(SYS_close, syncp[1], 0, 0);
		return 0;
	}
	/* The forwarded signals, read from a signalfd from here on; the
	 * child restores the mask before its exec, and so does a fallback
	 * before the Go runtime starts. */
	u64 mask = (1UL << (SIGINT - 1)) | (1UL << (SIGTERM - 1)) |
		   (1UL << (SIGHUP - 1)) | (1UL << (SIGQUIT - 1));
	if (tty)
		mask |= 1UL << (SIGWINCH - 1);
	u64 oldmask = 0;
	sys6(SYS_rt_sigprocmask, SIG_BLOCK, (i64)&mask, (i64)&oldmask, 8, 0, 0);
	i64 sigfd = sys6(SYS_signalfd4, -1, (i64)&mask, 8, O_CLOEXEC, 0, 0);
	i64 pid = -1;
	if (sigfd >= 0)
		pid = sys6(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD, 0, 0, 0, 0, 0);
	if (pid == 0)
		child(mapsp[0], syncp[1], ptys[1], prog, argv, envp, cwd, rec, &oldmask);
	sys(SYS_close, mapsp[0], 0, 0);
	sys(SYS_close, syncp[1], 0, 0);
	if (tty)
		sys(SYS_close, ptys[1], 0, 0);
	char go = 1;
	int ok = pid > 0 && write_maps(pid) && sys(SYS_write, mapsp[1], &go, 1) == 1;
	sys(SYS_close, mapsp[1], 0, 0);

	/* Messages until the command's status; anything else before the
	 * command started hands the command to the Go program. */
	unsigned char buf[4096];
	u64 have = 0;
	int started = 0;
	/* The signals that came before pid 1 said the command started, or
	 * while it hands over to its Go program: the command may run
	 * already, so they are forwarded once pid 1 can, or end devbox
	 * should the run fall back. */
	unsigned int early = 0;
	u64 pending = 0;
	int holding = 0;
	i64 waiting = 0;
	int timeout = -1;
	while (ok) {
		/* The messages, the signals, then the terminals: pid 1's socket
		 * until it sent the sandbox's, then that and what is typed. */
		struct pollfd_ fds[5] = {{syncp[0], POLLIN, 0}, {(int)sigfd, POLLIN, 0},
					 {term.sock, POLLIN, 0}, {term.master, POLLIN, 0},
					 {term.master >= 0 ? term.in : -1, POLLIN, 0}};
		i64 r = sys(SYS_poll, fds, 5, timeout);
		if (r == -EINTR)
			continue;
		if (r < 0)
			break;
		if (r == 0) {
			timeout = -1;
			notice(waiting);
			continue;
		}
		if (fds[1].revents & POLLIN) {
			struct siginfo_ si;
			if (sys(SYS_read, sigfd, &si, sizeof si) == sizeof si) {
				if (si.signo == SIGWINCH) {
					term_resize(&term);
				} else if (started && !holding) {
					sys(SYS_kill, pid, si.signo, 0);
				} else {
					early = si.signo;
					pending |= 1UL << (si.signo - 1);
				}
			}
		}
		if (fds[2].revents && !term_start(&term))
			break;
		if (fds[3].revents)
			term_out(&term);
		if (fds[4].revents)
			term_in(&term);
		if (!(fds[0].revents & (POLLIN | POLLHUP)))
			continue;
		i64 n = sys(SYS_read, syncp[0], buf + have, sizeof buf - have);
		if (n <= 0) {
			if (!started)
				break;
			/* pid 1 died without its report. */
			term_finish(&term);
			sys(SYS_exit_group, wait_status(pid), 0, 0);
		}
		have += (u64)n;
		for (;;) {
			u64 used;
			i64 status = 0;
			int kind = message(buf, have, &used, &status);
			if (kind == MSG_NONE)
				break;
			for (u64 i = used; i < have; i++)
				buf[i - used] = buf[i];
			have -= used;
			switch (kind) {
			case MSG_STARTED:
				started = 1;
				holding = 0;
				for (unsigned int s = 1; s <= 64; s++)
					if (pending & 1UL << (s - 1))
						sys(SYS_kill, pid, s, 0);
				pending = 0;
				break;
			case MSG_HANDOFF:
				holding = 1;
				break;
			case MSG_WAITING:
				/* The terminal is the caller's again, so that a
				 * Ctrl-C there reaches devbox, and through pid 1
				 * ends the commands that joined. */
				term_finish(&term);
				term.in = -1;
				release_streams();
				waiting = status;
				timeout = 500;
				break;
			case MSG_EXITED:
				/* pid 1 reaped every process of the sandbox; the
				 * kernel tears its namespaces down without us. */
				term_finish(&term);
				sys(SYS_exit_group, status, 0, 0);
				break;
			default:
				if (!started)
					ok = 0;
			}
			if (!ok)
				break;
		}
		if (have == sizeof buf)
			break;
	}
	if (started) {
		/* Unreachable in practice: a broken report after the start. */
		sys(SYS_kill, pid, SIGKILL, 0);
		term_finish(&term);
		sys(SYS_exit_group, wait_status(pid), 0, 0);
	}
	term_restore(&term);
	if (term.sock >= 0)
		sys(SYS_close, term.sock, 0, 0);
	if (term.master >= 0)
		sys(SYS_close, term.master, 0, 0);
	/* Fallback: pid 1 is gone or told us to go on; so is everything this
	 * code made, and the Go runtime starts as if it had not run. Unless
	 * the user interrupted devbox meanwhile: then it ends, as the signal
	 * would have ended the Go program before its command started. */
	if (pid > 0) {
		sys(SYS_kill, pid, SIGKILL, 0);
		wait_status(pid);
	}
	sys(SYS_close, syncp[0], 0, 0);
	if (sigfd >= 0)
		sys(SYS_close, sigfd, 0, 0);
	sys6(SYS_rt_sigprocmask, SIG_SETMASK, (i64)&oldmask, 0, 8, 0, 0);
	if (early) {
		sys(SYS_kill, sys(SYS_getpid, 0, 0, 0), early, 0);
		sys(SYS_exit_group, 128 + early, 0, 0);
	}
	return 0;
}
