/*
 * A plain warm run's sandbox, set up in C: the host's network, one
 * mapped id, the kernel's overlay or a bind mount as root, on a terminal
 * or not (sandbox_plain says which records qualify). pid 1 forks a child that
 * does what rootless.setupView and rootless.startCommand do, in the same
 * order, and then executes the command, while pid 1 reaps for it (the
 * reaper in front.c). Anything this code does not handle, or any
 * failure, is a fallback: the child tells the front so, and the Go
 * program runs the command, the way it would have without the front.
 *
 * The mount plan is mounts.Plan's, applied as mounts.Apply applies it:
 * each target is resolved inside the new root with openat2
 * RESOLVE_IN_ROOT, made when missing by mkdirat or O_CREAT|O_EXCL in a
 * directory resolved so, and mounted on the /proc/self/fd path of that
 * handle, so that an image's symlink can never redirect a mount, or a
 * write, onto a host path.
 */

enum {
	RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_IN_ROOT = 0x10,
	AT_RECURSIVE = 0x8000, MOUNT_ATTR_RDONLY = 1,
	MS_RDONLY = 1, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8,
	MS_REMOUNT = 32, MS_BIND = 4096, MS_REC = 16384, MS_PRIVATE = 1 << 18,
	MS_SLAVE = 1 << 19, MNT_DETACH = 2, MAP_ANONYMOUS = 0x20,
	ETC_MAX = 1 << 20, PATH_MAX_ = 4096,
};

struct open_how_ {
	u64 flags, mode, resolve;
};

struct mount_attr_ {
	u64 attr_set, attr_clr, propagation, userns_fd;
};

/* Whether the kernel has the system call nr (openat2, Linux 5.6, and
 * mount_setattr, 5.12): a call with a bad descriptor fails with EBADF, or
 * EINVAL, where it does, and with ENOSYS where it does not. */
INLINE int kernel_has(i64 nr) {
	return sys6(nr, -1, 0, 0, 0, 0, 0) != -ENOSYS;
}

/* Whether the C sets up the sandbox of spec s, for a process of uid and
 * gid: rootless.setup's plain case, without the Go program's fallbacks
 * (fuse-overlayfs, root emulation, nested namespaces, and a kernel
 * without openat2 or mount_setattr, where the Go program has other
 * ways). */
INLINE int sandbox_plain(const struct spec *s, u64 uid, u64 gid) {
	TEXT static const char host[] = "host", single[] = "single",
			       overlay[] = "overlay", bind[] = "bind", slash[] = "/";
	if (s->rootemu || !streq(s->network, host) || s->uid != uid || s->gid != gid)
		return 0;
	if (s->userns[0] && !streq(s->userns, single))
		return 0;
	if (s->nm == 0 || !streq(s->m[0].target, slash))
		return 0;
	const struct mnt *m = &s->m[0];
	if (!streq(m->type, bind) && !(streq(m->type, overlay) && !m->helper[0] && m->nlower > 0))
		return 0;
	return kernel_has(SYS_openat2) && kernel_has(SYS_mount_setattr);
}

/* Appends v as a uvarint (encoding/binary) to b at *n. */
INLINE void put_uvarint(unsigned char *b, u64 *n, u64 v) {
	while (v >= 0x80) {
		b[(*n)++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	b[(*n)++] = (unsigned char)v;
}

/* Sends pid 1's message kind, with status and text (rootless.sendMessage:
 * a uvarint length, then the kind, the status zig-zag encoded and the
 * text), in one write. */
INLINE void send_msg(int fd, const char *kind, i64 status, const char *text) {
	unsigned char body[192], frame[200];
	u64 n = 0, f = 0, k = slen(kind), t = slen(text);
	/* Opaque, or gcc would store a constant status and length from a
	 * constant pool, which takes a relocation. */
	__asm__("" : "+r"(status), "+r"(t));
	if (t > 120)
		t = 120;
	put_uvarint(body, &n, k);
	for (u64 i = 0; i < k; i++)
		body[n++] = (unsigned char)kind[i];
	put_uvarint(body, &n, (u64)(status << 1) ^ (u64)(status >> 63));
	put_uvarint(body, &n, t);
	for (u64 i = 0; i < t; i++)
		body[n++] = (unsigned char)text[i];
	put_uvarint(frame, &f, n);
	for (u64 i = 0; i < n; i++)
		frame[f++] = body[i];
	sys(SYS_write, fd, frame, f);
}

/* Sends pid 1's message "fallback" with why on the sync pipe, and ends the
 * process: the front then hands the run to the Go program. */
INLINE void __attribute__((noreturn)) fallback(int sync_w, const char *why) {
	TEXT static const char kind[] = "fallback";
	send_msg(sync_w, kind, 0, why);
	sys(SYS_exit_group, 0, 0, 0);
	__builtin_unreachable();
}

/* path inside root, O_PATH, as mounts.openInRoot: -errno on failure. */
INLINE i64 open_in_root(int root, const char *path) {
	struct open_how_ how = {O_PATH | O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
	i64 fd;
	for (int try = 0; try < 32; try++) {
		fd = sys6(SYS_openat2, root, (i64)path, (i64)&how, sizeof how, 0, 0);
		if (fd != -EAGAIN && fd != -EINTR)
			break;
	}
	return fd;
}

/* The length of the directory part of the clean absolute path p: p[:n]
 * is filepath.Dir(p), with 1 for "/". */
INLINE u64 dir_len(const char *p) {
	u64 n = slen(p);
	while (n > 0 && p[n - 1] != '/')
		n--;
	return n > 1 ? n - 1 : 1;
}

/* The last element of the clean absolute path p (filepath.Base). */
INLINE const char *base_of(const char *p) {
	u64 n = dir_len(p);
	return p + n + (n > 1);
}

/* The directory dir (dir[:n]) inside root, made (0755, with its missing
 * parents) where missing, as mounts.dirInRoot: each is made by mkdirat in
 * a parent resolved inside root. */
INLINE i64 dir_in_root(int root, const char *dir, u64 n) {
	char p[PATH_MAX_];
	if (n >= sizeof p)
		return -ENOENT;
	for (u64 i = 0; i < n; i++)
		p[i] = dir[i];
	p[n] = 0;
	i64 fd = open_in_root(root, p);
	if (fd != -ENOENT)
		return fd;
	/* From the top down: each component opened, or made and opened. */
	TEXT static const char slash[] = "/";
	i64 parent = open_in_root(root, slash);
	for (u64 end = 1; parent >= 0 && end <= n; end++) {
		if (end < n && p[end] != '/')
			continue;
		char c = p[end];
		p[end] = 0;
		u64 base = end;
		while (base > 0 && p[base - 1] != '/')
			base--;
		if (base == end) { /* "//", or "/" itself */
			p[end] = c;
			continue;
		}
		fd = open_in_root(root, p);
		if (fd == -ENOENT) {
			i64 e = sys(SYS_mkdirat, parent, p + base, 0755);
			fd = e == 0 || e == -EEXIST ? open_in_root(root, p) : e;
		}
		p[end] = c;
		sys(SYS_close, parent, 0, 0);
		parent = fd;
	}
	return parent;
}

/* A handle on target inside root, made when missing: a directory, or an
 * empty file when !isdir (mounts.resolveTarget). */
INLINE i64 resolve_target(int root, const char *target, int isdir) {
	i64 fd = open_in_root(root, target);
	if (fd != -ENOENT)
		return fd;
	if (isdir)
		return dir_in_root(root, target, slen(target));
	i64 parent = dir_in_root(root, target, dir_len(target));
	if (parent < 0)
		return parent;
	fd = sys6(SYS_openat, parent, (i64)base_of(target),
		  O_CREAT | O_EXCL | O_NOFOLLOW | O_RDONLY | O_CLOEXEC, 0644, 0, 0);
	sys(SYS_close, parent, 0, 0);
	return fd;
}

/* The /proc/self/fd path of fd, into b (32 bytes at least); its length. */
INLINE u64 fd_path(char *b, i64 fd) {
	TEXT static const char self[] = "/proc/self/fd/";
	u64 at = 0;
	append(b, 32, &at, self);
	append_uint(b, &at, (u64)fd);
	return at;
}

/* One entry of the plan after the root, as mounts.apply; 0 or -errno. */
INLINE i64 mount_one(int root, const struct mnt *m) {
	TEXT static const char symlink[] = "symlink", bind[] = "bind",
			       tmpfs[] = "tmpfs", proc[] = "proc",
			       devpts[] = "devpts", mqueue[] = "mqueue", empty[] = "";
	if (streq(m->type, symlink)) {
		i64 parent = dir_in_root(root, m->target, dir_len(m->target));
		if (parent < 0)
			return parent;
		i64 e = sys(SYS_symlinkat, m->source, parent, base_of(m->target));
		sys(SYS_close, parent, 0, 0);
		return e == -EEXIST ? 0 : e;
	}
	const char *src = m->type, *fstype = m->type, *data = m->data;
	u64 flags;
	int isdir = 1;
	if (streq(m->type, bind)) {
		struct kstat st;
		i64 e = sys(SYS_stat, m->source, &st, 0);
		if (e == -ENOENT && m->opt)
			return 0;
		if (e < 0)
			return e;
		isdir = (st.mode & S_IFMT) == S_IFDIR;
		src = m->source, fstype = empty, data = empty;
		flags = MS_BIND | (m->rec ? MS_REC : 0);
	} else if (streq(m->type, tmpfs)) {
		flags = MS_NOSUID | MS_NODEV;
	} else if (streq(m->type, proc)) {
		flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
		data = empty;
	} else if (streq(m->type, devpts)) {
		flags = MS_NOSUID | MS_NOEXEC;
	} else if (streq(m->type, mqueue)) {
		flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
		data = empty;
	} else {
		return -ENOSYS;
	}
	i64 fd = resolve_target(root, m->target, isdir);
	if (fd < 0)
		return fd;
	char at[32];
	fd_path(at, fd);
	i64 e = sys6(SYS_mount, (i64)src, (i64)at, (i64)fstype, flags, (i64)(data[0] ? data : 0), 0);
	sys(SYS_close, fd, 0, 0);
	if (e < 0 || !m->ro)
		return e;
	/* Read-only with mount_setattr, on the mount and, for a recursive
	 * bind, every one beneath it. Where the kernel refuses it, the Go
	 * program remounts instead. */
	fd = open_in_root(root, m->target);
	if (fd < 0)
		return fd;
	struct mount_attr_ attr = {MOUNT_ATTR_RDONLY, 0, 0, 0};
	e = sys6(SYS_mount_setattr, fd, (i64)empty, AT_EMPTY_PATH | (m->rec ? AT_RECURSIVE : 0),
		 (i64)&attr, sizeof attr, 0);
	sys(SYS_close, fd, 0, 0);
	return e;
}

/* The kernel's overlay of m at root (mounts.mountOverlay): the layers
 * named relative to their common directory, which becomes the working
 * directory. 0 or -errno. */
INLINE i64 mount_overlay(const struct spec *s, const struct mnt *m) {
	TEXT static const char lowerdir[] = "lowerdir=", upperdir[] = ",upperdir=",
			       workdir[] = ",workdir=", userxattr[] = ",userxattr",
			       colon[] = ":", overlay[] = "overlay";
	char *const *lower = s->lower + m->lower;
	/* The deepest directory that holds every path. */
	u64 base = dir_len(lower[0]);
	for (u64 i = 0; i <= m->nlower + 1; i++) {
		const char *p = i < m->nlower ? lower[i] : i == m->nlower ? m->upper : m->work;
		for (;;) {
			u64 j = 0;
			while (j < base && p[j] == lower[0][j])
				j++;
			if (base == 1 || (j == base && p[base] == '/'))
				break;
			base--;
			while (base > 1 && lower[0][base] != '/')
				base--;
		}
	}
	u64 skip = base == 1 ? 1 : base + 1;
	/* Names overlayfs cannot take (',', ':' or '\\') are the Go
	 * program's to report. */
	for (u64 i = 0; i <= m->nlower + 1; i++) {
		const char *p = i < m->nlower ? lower[i] : i == m->nlower ? m->upper : m->work;
		for (p += skip; *p; p++)
			if (*p == ',' || *p == ':' || *p == '\\')
				return -ENOSYS;
	}
	char data[4096], dir[PATH_MAX_];
	u64 at = 0;
	int ok = append(data, sizeof data, &at, lowerdir);
	for (u64 i = m->nlower; ok && i-- > 0;)
		ok = append(data, sizeof data, &at, lower[i] + skip) &&
		     (i == 0 || append(data, sizeof data, &at, colon));
	ok = ok && append(data, sizeof data, &at, upperdir) &&
	     append(data, sizeof data, &at, m->upper + skip) &&
	     append(data, sizeof data, &at, workdir) && append(data, sizeof data, &at, m->work + skip) &&
	     append(data, sizeof data, &at, userxattr);
	if (!ok || base >= sizeof dir)
		return -ENOSYS;
	for (u64 i = 0; i < base; i++)
		dir[i] = lower[0][i];
	dir[base] = 0;
	i64 e = sys(SYS_chdir, dir, 0, 0);
	if (e < 0)
		return e;
	return sys6(SYS_mount, (i64)overlay, (i64)s->root, (i64)overlay, 0, (i64)data, 0);
}

/* Reads path into b (at most n bytes); its length, 0 when it is missing,
 * -1 when it does not fit or cannot be read. */
INLINE i64 read_file(const char *path, char *b, u64 n) {
	i64 fd = sys(SYS_open, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return -1;
	u64 have = 0;
	for (;;) {
		i64 r = sys(SYS_read, fd, b + have, n - have);
		if (r == -EINTR)
			continue;
		if (r <= 0 || (have += (u64)r) == n) {
			sys(SYS_close, fd, 0, 0);
			return r < 0 || have == n ? -1 : (i64)have;
		}
	}
}

/* /etc/NAME, read-only, over the image's, from the sandbox's /dev tmpfs
 * (rootless.writeEtcFiles). */
INLINE int etc_file(const char *name, const char *data, u64 len) {
	TEXT static const char devp[] = "/dev/.devbox-etc-", etcp[] = "/etc/", etc[] = "/etc";
	char src[64], dst[64];
	u64 a = 0, b = 0;
	if (!append(src, sizeof src, &a, devp) || !append(src, sizeof src, &a, name) ||
	    !append(dst, sizeof dst, &b, etcp) || !append(dst, sizeof dst, &b, name))
		return 0;
	i64 fd = sys(SYS_open, src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return 0;
	i64 w = sys(SYS_write, fd, data, len);
	sys(SYS_close, fd, 0, 0);
	if (w != (i64)len)
		return 0;
	i64 e = sys(SYS_mkdir, etc, 0755, 0);
	if (e < 0 && e != -EEXIST)
		return 0;
	if ((fd = sys(SYS_open, dst, O_CREAT | O_RDONLY | O_CLOEXEC, 0644)) < 0)
		return 0;
	sys(SYS_close, fd, 0, 0);
	if (sys6(SYS_mount, (i64)src, (i64)dst, 0, MS_BIND, 0, 0) != 0 ||
	    sys6(SYS_mount, 0, (i64)dst, 0, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, 0, 0) != 0)
		return 0;
	return sys(SYS_unlink, src, 0, 0) == 0;
}

/* Whether b[0:n] equals s. */
INLINE int bytes_eq(const char *b, u64 n, const char *s) {
	u64 i = 0;
	while (i < n && s[i] && b[i] == s[i])
		i++;
	return i == n && !s[i];
}

/* The passwd or group file in[0:n] with entry for name and id, into out,
 * as rootless.mergeEntry: its length, or 0 when an entry has that id
 * already (the file stays as it is), -1 when it does not fit. Lines are
 * bufio.Scanner's: a final line without its newline counts, and a
 * trailing CR goes. */
INLINE i64 merge_entry(const char *in, u64 n, const char *name, const char *id,
		       const char *entry, char *out, u64 size) {
	u64 w = 0;
	for (u64 at = 0; at < n;) {
		u64 end = at;
		while (end < n && in[end] != '\n')
			end++;
		u64 next = end < n ? end + 1 : end, stop = end;
		if (stop > at && in[stop - 1] == '\r')
			stop--;
		/* The first and third fields. */
		u64 f1 = at;
		while (f1 < stop && in[f1] != ':')
			f1++;
		u64 f3 = f1 < stop ? f1 + 1 : stop;
		while (f3 < stop && in[f3] != ':')
			f3++;
		if (f3 < stop) {
			u64 e3 = f3 + 1;
			while (e3 < stop && in[e3] != ':')
				e3++;
			if (bytes_eq(in + f3 + 1, e3 - f3 - 1, id))
				return 0;
		}
		if (!bytes_eq(in + at, f1 - at, name)) {
			if (w + (stop - at) + 1 >= size)
				return -1;
			for (u64 i = at; i < stop; i++)
				out[w++] = in[i];
			out[w++] = '\n';
		}
		at = next;
	}
	u64 l = slen(entry);
	if (w + l + 1 >= size)
		return -1;
	for (u64 i = 0; i < l; i++)
		out[w++] = entry[i];
	out[w++] = '\n';
	return (i64)w;
}

INLINE int is_space(char c) {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Whether a hosts file names host (rootless.withHostName's test): a
 * line's second field or later, comments aside. */
INLINE int hosts_name(const char *h, u64 n, const char *host) {
	for (u64 at = 0; at < n;) {
		u64 end = at;
		while (end < n && h[end] != '\n' && h[end] != '#')
			end++;
		for (u64 i = at, field = 0; i < end;) {
			while (i < end && is_space(h[i]))
				i++;
			u64 s = i;
			while (i < end && !is_space(h[i]))
				i++;
			if (i > s && field++ > 0 && bytes_eq(h + s, i - s, host))
				return 1;
		}
		while (end < n && h[end] != '\n')
			end++;
		at = end + 1;
	}
	return 0;
}

/* The sandbox's /etc/passwd, /etc/group, /etc/hostname and /etc/hosts,
 * as rootless.etcFiles makes them; hosts is the host's /etc/hosts, of
 * size hn, in a buffer with room for a line more. buf is scratch. */
INLINE int etc_files(const struct spec *s, const char *host, char *hosts, i64 hn, char *buf) {
	TEXT static const char passwd[] = "/etc/passwd", group[] = "/etc/group",
			       hostname[] = "/etc/hostname", x[] = ":x:",
			       colon[] = ":", nl[] = "\n", local[] = "127.0.1.1\t",
			       pw[] = "passwd", gr[] = "group", hn_[] = "hostname",
			       hs[] = "hosts";
	char *in = buf, *out = buf + ETC_MAX;
	if (s->uname[0]) {
		char entry[PATH_MAX_ * 3], uid[24], gid[24];
		u64 a = 0, b = 0, e = 0;
		append_uint(uid, &a, s->uid);
		append_uint(gid, &b, s->gid);
		int ok = append(entry, sizeof entry, &e, s->uname) && append(entry, sizeof entry, &e, x) &&
			 append(entry, sizeof entry, &e, uid) && append(entry, sizeof entry, &e, colon) &&
			 append(entry, sizeof entry, &e, gid) && append(entry, sizeof entry, &e, colon) &&
			 append(entry, sizeof entry, &e, s->uname) && append(entry, sizeof entry, &e, colon) &&
			 append(entry, sizeof entry, &e, s->uhome) && append(entry, sizeof entry, &e, colon) &&
			 append(entry, sizeof entry, &e, s->ushell);
		i64 n = read_file(passwd, in, ETC_MAX);
		i64 m = ok && n >= 0 ? merge_entry(in, (u64)n, s->uname, uid, entry, out, ETC_MAX) : -1;
		if (m < 0 || (m > 0 && !etc_file(pw, out, (u64)m)))
			return 0;
		e = 0;
		ok = append(entry, sizeof entry, &e, s->uname) && append(entry, sizeof entry, &e, x) &&
		     append(entry, sizeof entry, &e, gid) && append(entry, sizeof entry, &e, colon);
		n = read_file(group, in, ETC_MAX);
		m = ok && n >= 0 ? merge_entry(in, (u64)n, s->uname, gid, entry, out, ETC_MAX) : -1;
		if (m < 0 || (m > 0 && !etc_file(gr, out, (u64)m)))
			return 0;
	}
	u64 a = 0;
	if (!append(out, 256, &a, host) || !append(out, 256, &a, nl))
		return 0;
	i64 n = read_file(hostname, in, ETC_MAX);
	if (n < 0 || (!bytes_eq(in, (u64)n, out) && !etc_file(hn_, out, a)))
		return 0;
	if (!hosts_name(hosts, (u64)hn, host)) {
		if (hn > 0 && hosts[hn - 1] != '\n')
			hosts[hn++] = '\n';
		u64 at = (u64)hn;
		append(hosts, (u64)hn + 300, &at, local);
		append(hosts, (u64)hn + 300, &at, host);
		append(hosts, (u64)hn + 300, &at, nl);
		hn = (i64)at;
	}
	return etc_file(hs, hosts, (u64)hn);
}

/* The PATH of env, the last one set, or rootless.DefaultPath. */
INLINE const char *path_of(char *const *env) {
	TEXT static const char pathv[] = "PATH=",
			       dflt[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	const char *path = dflt;
	for (; *env; env++)
		if (has_prefix(*env, pathv))
			path = *env + 5;
	return path;
}

/* The command's program, looked up in the PATH of env as a shell would
 * (rootless.lookPath), into b; 0 when it is not there. */
INLINE int look_path(const char *name, char *const *env, char *b, u64 size) {
	TEXT static const char slash[] = "/", dot[] = ".";
	for (const char *c = name; *c; c++)
		if (*c == '/') {
			u64 at = 0;
			return append(b, size, &at, name);
		}
	const char *path = path_of(env);
	if (!*path) /* no directory at all, as filepath.SplitList says */
		return 0;
	for (const char *d = path;;) {
		const char *e = d;
		while (*e && *e != ':')
			e++;
		u64 at = 0;
		if (e == d)
			append(b, size, &at, dot);
		else if ((u64)(e - d) < size)
			for (const char *c = d; c < e; c++)
				b[at++] = *c;
		b[at] = 0;
		struct kstat st;
		if (at > 0 && append(b, size, &at, slash) && append(b, size, &at, name) &&
		    sys(SYS_stat, b, &st, 0) == 0 && (st.mode & S_IFMT) == S_IFREG && (st.mode & 0111))
			return 1;
		if (!*e)
			return 0;
		d = e + 1;
	}
}

/* The sandbox's terminal, as rootless.openStdio makes it: a pty of the
 * sandbox's own devpts at the caller's size, its master sent to the front
 * over the socket pty, its slave this process's controlling terminal in a
 * session of its own, its standard input, its output with TerminalOutput,
 * and its error too where the caller's is a terminal (terminalStdio).
 * 0 on failure. */
INLINE int terminal(const struct spec *s, int pty) {
	TEXT static const char ptmx[] = "/dev/ptmx";
	i64 m = sys(SYS_open, ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC, 0);
	if (m < 0)
		return 0;
	int unlock = 0;
	i64 sl = sys(SYS_ioctl, m, TIOCSPTLCK, &unlock) == 0
		     ? sys(SYS_ioctl, m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)
		     : -1;
	unsigned short ws[4];
	if (sl >= 0 && sys(SYS_ioctl, 0, TIOCGWINSZ, ws) == 0 && ws[0] && ws[1])
		sys(SYS_ioctl, m, TIOCSWINSZ, ws);
	/* One byte, and the master as SCM_RIGHTS. */
	char byte = 0;
	struct iovec_ iov = {&byte, 1};
	struct cmsg_fd cm = {20, 1, 1, (int)m, 0};
	struct msghdr_ msg = {0, 0, &iov, 1, &cm, 24, 0, 0};
	i64 sent = sl >= 0 ? sys(SYS_sendmsg, pty, &msg, MSG_NOSIGNAL) : -1;
	sys(SYS_close, m, 0, 0);
	sys(SYS_close, pty, 0, 0);
	if (sent != 1 || sys(SYS_setsid, 0, 0, 0) < 0 || sys(SYS_ioctl, sl, TIOCSCTTY, 0) != 0)
		return 0;
	int err_tty = isatty_(2);
	if (sys(SYS_dup2, sl, 0, 0) != 0 || (s->termout && sys(SYS_dup2, sl, 1, 0) != 1) ||
	    (s->termout && err_tty && sys(SYS_dup2, sl, 2, 0) != 2))
		return 0;
	if (sl > 2)
		sys(SYS_close, sl, 0, 0);
	return 1;
}

/* Writes "devbox: NAME: what[PATH]more" to stderr. */
INLINE void say(const char *name, const char *what, const char *path, const char *more) {
	TEXT static const char devbox[] = "devbox: ", colon[] = ": ", nl[] = "\n";
	char line[8192];
	u64 at = 0;
	append(line, sizeof line, &at, devbox);
	append(line, sizeof line, &at, name);
	append(line, sizeof line, &at, colon);
	append(line, sizeof line, &at, what);
	if (path)
		append(line, sizeof line, &at, path);
	append(line, sizeof line, &at, more);
	append(line, sizeof line, &at, nl);
	sys(SYS_write, 2, line, at);
}

/*
 * The child of pid 1 that sets the sandbox of r up and becomes its
 * command; it does not return. On a terminal, it sends the front the
 * sandbox's over pty. It writes 'S' on ready once the sandbox is
 * set up, before it looks for the command: pid 1 may then make its
 * sockets in the sandbox's tree, which is its own too from pivot_root on.
 */
INLINE void __attribute__((noreturn)) sandbox(const struct rec *r, int sync_w, int ready, int pty) {
	TEXT static const char slash[] = "/", dot[] = ".", etchosts[] = "/etc/hosts",
			       overlay[] = "overlay",
			       dflt[] = "devbox", notfound[] = "command not found in the sandbox (PATH=",
			       paren[] = ")", cannot[] = "cannot execute: ",
			       eacces[] = "permission denied", enoexec[] = "exec format error",
			       enoent[] = "no such file or directory",
			       loader[] = " (a missing interpreter or loader?)", none[] = "";
	TEXT static const char e_private[] = "mount / rprivate", e_mem[] = "no memory for /etc",
			       e_root[] = "mount the root filesystem", e_open[] = "open the root",
			       e_mount[] = "mount the plan", e_pivot[] = "pivot_root",
			       e_cwd[] = "chdir to the working directory", e_host[] = "sethostname",
			       e_etc[] = "write /etc files", e_nnp[] = "no_new_privs",
			       e_fds[] = "close_range", e_caps[] = "drop capabilities",
			       e_ready[] = "report the sandbox ready",
			       e_tty[] = "open the sandbox's terminal", errno_[] = "errno ";
	const struct spec *s = &r->spec;
	const char *host = s->hostname[0] ? s->hostname : dflt;
	char *buf = (char *)sys6(SYS_mmap, 0, 2 * ETC_MAX + 65536 + PATH_MAX_, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if ((i64)buf < 0)
		fallback(sync_w, e_mem);
	/* Private propagation first: nothing mounted below reaches the
	 * host's mount namespace, nor the host's mounts the sandbox. */
	if (sys6(SYS_mount, 0, (i64)slash, 0, MS_REC | MS_PRIVATE, 0, 0) != 0)
		fallback(sync_w, e_private);
	/* The host's /etc/hosts, while it is at hand. */
	char *hosts = buf + 2 * ETC_MAX;
	i64 hn = read_file(etchosts, hosts, 65536 - 512);
	if (hn < 0)
		fallback(sync_w, e_etc);
	const struct mnt *m = &s->m[0];
	i64 e;
	if (streq(m->type, overlay))
		e = mount_overlay(s, m);
	else
		e = sys6(SYS_mount, (i64)m->source, (i64)s->root, (i64)none, MS_BIND, 0, 0);
	if (e != 0)
		fallback(sync_w, e_root);
	i64 root = sys(SYS_open, s->root, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	if (root < 0)
		fallback(sync_w, e_open);
	for (u64 i = 1; i < s->nm; i++)
		if (mount_one((int)root, &s->m[i]) != 0)
			fallback(sync_w, e_mount);
	sys(SYS_close, root, 0, 0);
	/* The new root becomes "/", and the host's is detached: no host path
	 * is reachable from inside any more (rootless.pivotRoot). */
	if (sys(SYS_chdir, s->root, 0, 0) != 0 || sys(SYS_pivot_root, dot, dot, 0) != 0 ||
	    sys6(SYS_mount, 0, (i64)dot, 0, MS_SLAVE | MS_REC, 0, 0) != 0 ||
	    sys(SYS_umount2, dot, MNT_DETACH, 0) != 0 || sys(SYS_chdir, slash, 0, 0) != 0)
		fallback(sync_w, e_pivot);
	if (sys(SYS_chdir, s->cwd, 0, 0) != 0)
		fallback(sync_w, e_cwd);
	if (sys(SYS_sethostname, host, slen(host), 0) != 0)
		fallback(sync_w, e_host);
	if (!etc_files(s, host, hosts, hn, buf))
		fallback(sync_w, e_etc);
	/* no_new_privs: nothing the command executes gains privileges by a
	 * setuid bit or file capabilities. */
	if (sys6(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0) != 0)
		fallback(sync_w, e_nnp);
	/* No descriptor beyond the streams reaches the command. */
	if (sys(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
		fallback(sync_w, e_fds);
	/* No inheritable capability, and so no ambient one, reaches the
	 * command (rootless.dropInheritable). */
	struct cap_header h = {0x20080522, 0};
	struct cap_data d[2];
	if (sys(SYS_capget, &h, d, 0) != 0)
		fallback(sync_w, e_caps);
	d[0].inheritable = d[1].inheritable = 0;
	if (sys(SYS_capset, &h, d, 0) != 0)
		fallback(sync_w, e_caps);
	if (s->terminal && !terminal(s, pty))
		fallback(sync_w, e_tty);
	TEXT static const char set[] = "S";
	if (sys(SYS_write, ready, set, 1) != 1)
		fallback(sync_w, e_ready);
	char *const *argv = r->cmd;
	char *path = buf + 2 * ETC_MAX + 65536;
	if (!look_path(argv[0], s->env, path, PATH_MAX_)) {
		say(argv[0], notfound, path_of(s->env), paren);
		sys(SYS_exit_group, 127, 0, 0);
	}
	e = sys(SYS_execve, path, argv, s->env);
	if (e == -EACCES || e == -ENOEXEC) {
		say(argv[0], cannot, 0, e == -EACCES ? eacces : enoexec);
		sys(SYS_exit_group, 126, 0, 0);
	}
	if (e == -ENOENT) {
		say(argv[0], cannot, enoent, loader);
		sys(SYS_exit_group, 127, 0, 0);
	}
	/* Past 'S' pid 1 has reported the start: no fallback, but a
	 * failure, as a shell's. */
	char num[32];
	u64 at = 0;
	append(num, sizeof num, &at, errno_);
	append_uint(num, &at, (u64)-e);
	say(argv[0], cannot, 0, num);
	sys(SYS_exit_group, 126, 0, 0);
	__builtin_unreachable();
}
