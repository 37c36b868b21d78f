/*
 * refsandbox: the sandbox of a warm `devbox run`, written as plainly as ch-run is, for
 * bench/compare's reference row. It does what devbox's default sandbox does (see
 * mounts.Plan and rootless.setup), in one small C program instead of two Go ones:
 *
 *   user, mount, pid, UTS and IPC namespaces, the user's own id mapped to itself;
 *   an overlay of ROOTFS under a writable layer in STATE; a fresh /proc; /sys read-only;
 *   a /dev tmpfs with null, zero, full, random, urandom, tty, a devpts instance, ptmx,
 *   /dev/shm, /dev/mqueue and the /dev/fd links; a /tmp tmpfs; /etc/resolv.conf and
 *   /etc/hosts read-only; /etc/passwd and /etc/group with the user added; the home
 *   directory and the work tree bound at their paths; pivot_root; no_new_privs;
 *   and a pid 1 that runs the command, reaps, and reports its status, which this
 *   program exits with as soon as it has it. Like devbox, it does not wait for the
 *   kernel to tear the namespaces down: the overlay's unmount syncs the filesystem of
 *   its writable layer, which can take milliseconds.
 *
 * What it leaves out, because a warm devbox run does not pay for it either or it does
 * not change the time: resolving mount targets with openat2 (a few microseconds each),
 * the spec, root emulation and the terminal. It is a measuring stick, not a sandbox to
 * use: it trusts ROOTFS, which devbox never does.
 *
 * usage: refsandbox ROOTFS STATE WORKTREE -- COMMAND [ARG]...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fputs("refsandbox: ", stderr);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, ": %s\n", strerror(errno));
	va_end(ap);
	exit(125);
}

static void write_file(const char *path, const char *data, size_t len) {
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0)
		die("write %s", path);
}

static void mnt(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
	if (mount(src, dst, type, flags, data) < 0)
		die("mount %s on %s", src ? src : "(none)", dst);
}

/* mkdirs makes path and its missing parents. */
static void mkdirs(const char *path) {
	char p[4096];
	snprintf(p, sizeof p, "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s == '/') {
			*s = 0;
			mkdir(p, 0755);
			*s = '/';
		}
	}
	mkdir(p, 0755);
}

/* in returns root + path in a static buffer of four, enough for one mount call. */
static const char *in(const char *root, const char *path) {
	static char bufs[4][4096];
	static int next;
	char *b = bufs[next++ % 4];
	snprintf(b, sizeof bufs[0], "%s%s", root, path);
	return b;
}

static void bind_file(const char *src, const char *dst, int readonly) {
	int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
	mnt(src, dst, NULL, MS_BIND, NULL);
	if (readonly)
		mnt(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/* add_entry binds a copy of /etc/NAME with line appended over it, as devbox does for the
 * user's passwd and group entries. Called after pivot_root. */
static void add_entry(const char *name, const char *line) {
	char src[64], dst[64], data[65536];
	snprintf(src, sizeof src, "/dev/.etc-%s", name);
	snprintf(dst, sizeof dst, "/etc/%s", name);
	size_t n = 0;
	int fd = open(dst, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t r;
		while (n < sizeof data - 512 && (r = read(fd, data + n, sizeof data - 512 - n)) > 0)
			n += r;
		close(fd);
	}
	n += snprintf(data + n, sizeof data - n, "%s\n", line);
	write_file(src, data, n);
	bind_file(src, dst, 1);
	unlink(src);
}

int main(int argc, char **argv) {
	if (argc < 6 || strcmp(argv[4], "--") != 0) {
		fprintf(stderr, "usage: refsandbox ROOTFS STATE WORKTREE -- COMMAND [ARG]...\n");
		return 2;
	}
	const char *rootfs = argv[1], *state = argv[2], *tree = argv[3];
	char **cmd = argv + 5;
	const char *home = getenv("HOME"), *user = getenv("USER");
	if (!home || !user) {
		fprintf(stderr, "refsandbox: HOME and USER must be set\n");
		return 2;
	}
	uid_t uid = getuid();
	gid_t gid = getgid();
	char upper[4096], work[4096], root[4096], homesrc[4096];
	snprintf(upper, sizeof upper, "%s/upper", state);
	snprintf(work, sizeof work, "%s/work", state);
	snprintf(root, sizeof root, "%s/root", state);
	snprintf(homesrc, sizeof homesrc, "%s/home", state);
	mkdir(state, 0700);
	mkdir(upper, 0755);
	mkdir(work, 0700);
	mkdir(root, 0700);
	mkdir(homesrc, 0700);

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC) < 0)
		die("unshare");
	char map[64];
	write_file("/proc/self/setgroups", "deny", 4);
	write_file("/proc/self/uid_map", map, snprintf(map, sizeof map, "%u %u 1", uid, uid));
	write_file("/proc/self/gid_map", map, snprintf(map, sizeof map, "%u %u 1", gid, gid));

	int report[2];
	if (pipe2(report, O_CLOEXEC) < 0)
		die("pipe");
	pid_t pid1 = fork();
	if (pid1 < 0)
		die("fork");
	if (pid1 > 0) {
		unsigned char status;
		close(report[1]);
		if (read(report[0], &status, 1) == 1)
			return status;
		int st; /* pid 1 failed before it could report */
		if (waitpid(pid1, &st, 0) < 0)
			die("wait");
		return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
	close(report[0]);

	/* pid 1 */
	mnt(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	char opts[16384];
	snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s,userxattr", rootfs, upper, work);
	mnt("overlay", root, "overlay", 0, opts);
	mnt("proc", in(root, "/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mnt("/sys", in(root, "/sys"), NULL, MS_BIND | MS_REC, NULL);
	mnt(NULL, in(root, "/sys"), NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mnt("tmpfs", in(root, "/dev"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=65536k");
	static const char *nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
	for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
		char dev[64];
		snprintf(dev, sizeof dev, "/dev/%s", nodes[i]);
		bind_file(dev, in(root, dev), 0);
	}
	mkdir(in(root, "/dev/pts"), 0755);
	mnt("devpts", in(root, "/dev/pts"), "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620");
	symlink("pts/ptmx", in(root, "/dev/ptmx"));
	mkdir(in(root, "/dev/shm"), 01777);
	mnt("tmpfs", in(root, "/dev/shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k");
	mkdir(in(root, "/dev/mqueue"), 0755);
	mnt("mqueue", in(root, "/dev/mqueue"), "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	symlink("/proc/self/fd", in(root, "/dev/fd"));
	symlink("/proc/self/fd/0", in(root, "/dev/stdin"));
	symlink("/proc/self/fd/1", in(root, "/dev/stdout"));
	symlink("/proc/self/fd/2", in(root, "/dev/stderr"));
	mnt("tmpfs", in(root, "/tmp"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	bind_file("/etc/resolv.conf", in(root, "/etc/resolv.conf"), 1);
	bind_file("/etc/hosts", in(root, "/etc/hosts"), 1);
	mkdirs(in(root, home));
	mnt(homesrc, in(root, home), NULL, MS_BIND, NULL);
	mkdirs(in(root, tree));
	mnt(tree, in(root, tree), NULL, MS_BIND, NULL);

	if (chdir(root) < 0)
		die("chdir %s", root);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		die("pivot_root");
	mnt(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL);
	if (umount2(".", MNT_DETACH) < 0)
		die("umount the old root");
	if (chdir(tree) < 0)
		die("chdir %s", tree);
	if (sethostname("refsandbox", 10) < 0)
		die("sethostname");
	char line[4096];
	snprintf(line, sizeof line, "%s:x:%u:%u:%s:%s:/bin/sh", user, uid, gid, user, home);
	add_entry("passwd", line);
	snprintf(line, sizeof line, "%s:x:%u:", user, gid);
	add_entry("group", line);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("no_new_privs");

	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		execvp(cmd[0], cmd);
		die("exec %s", cmd[0]);
	}
	int status = 0, st;
	pid_t w;
	while ((w = wait(&st)) > 0 || (w < 0 && errno == EINTR)) {
		if (w == child) {
			status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			kill(-1, SIGKILL);
		}
	}
	unsigned char b = status;
	if (write(report[1], &b, 1) != 1)
		die("report the status");
	return status;
}
