/*
 * The front's pure parts as a program of their own, for the tests of
 * internal/front, which compare them with the Go code they stand in for.
 * Built as front.c is, plus _start:
 *
 *   harness check RECORD PROG CWD ARG...   record_check of RECORD for
 *       devbox's arguments ARG... in CWD, with this program's environment:
 *       "stale: WHY", or "ok", whether sandbox_plain takes it, and the
 *       command, a line each. Exit 0 when it holds, 1 when stale.
 *   harness merge FILE NAME ID ENTRY   merge_entry: the file, or "keep"
 *   harness hosts FILE NAME   hosts_name: "named" or "not named"
 *   harness path NAME VAR...   look_path of NAME in the environment VAR...:
 *       the program, or "not found"
 */

#include "base.h"
#include "record.h"
#include "sandbox.h"

__asm__(".globl _start\n_start:\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall harness\n\thlt\n");

INLINE void out(const char *s, u64 n) {
	sys(SYS_write, 1, s, n);
}

INLINE void line(const char *s) {
	TEXT static const char nl[] = "\n";
	out(s, slen(s));
	out(nl, 1);
}

/* path, mapped privately; its size in *n. 0 when it cannot be. */
INLINE char *map_file(const char *path, u64 *n) {
	i64 fd = sys(SYS_open, path, O_RDONLY | O_CLOEXEC, 0);
	struct kstat st;
	if (fd < 0 || sys(SYS_fstat, fd, &st, 0) != 0)
		return 0;
	*n = (u64)st.size;
	if (st.size == 0)
		return (char *)sys6(SYS_mmap, 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	i64 m = sys6(SYS_mmap, 0, st.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	return m < 0 ? 0 : (char *)m;
}

__attribute__((used)) void harness(long *sp) {
	TEXT static const char check[] = "check", merge[] = "merge", hosts[] = "hosts",
			       stale[] = "stale: ", ok[] = "ok", plain[] = "plain",
			       notplain[] = "not plain", keep[] = "keep", named[] = "named",
			       notnamed[] = "not named", path[] = "path", notfound[] = "not found",
			       usage[] = "usage: harness check|merge|hosts|path ...";
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	u64 n = 0;
	char *f = argc > 2 ? map_file(argv[2], &n) : 0;
	if (argc >= 6 && streq(argv[1], check) && f) {
		struct rd d = {(unsigned char *)f, n, 0, 0};
		static struct rec r;
		const char *why = record_check(&d, &r, argv[3], argv[4], envp, argv + 5);
		if (why) {
			out(stale, slen(stale));
			line(why);
			sys(SYS_exit_group, 1, 0, 0);
		}
		line(ok);
		line(sandbox_plain(&r.spec, (u64)sys(SYS_getuid, 0, 0, 0), (u64)sys(SYS_getgid, 0, 0, 0)) ? plain : notplain);
		for (char **c = r.cmd; *c; c++)
			line(*c);
		sys(SYS_exit_group, 0, 0, 0);
	}
	if (argc == 6 && streq(argv[1], merge) && f) {
		static char buf[1 << 20];
		i64 m = merge_entry(f, n, argv[3], argv[4], argv[5], buf, sizeof buf);
		if (m == 0)
			line(keep);
		else if (m > 0)
			out(buf, (u64)m);
		sys(SYS_exit_group, m < 0 ? 1 : 0, 0, 0);
	}
	if (argc >= 3 && streq(argv[1], path)) {
		static char b[PATH_MAX_];
		line(look_path(argv[2], argv + 3, b, sizeof b) ? b : notfound);
		sys(SYS_exit_group, 0, 0, 0);
	}
	if (argc == 4 && streq(argv[1], hosts) && f) {
		line(hosts_name(f, n, argv[3]) ? named : notnamed);
		sys(SYS_exit_group, 0, 0, 0);
	}
	line(usage);
	sys(SYS_exit_group, 2, 0, 0);
}
