/*
 * The record a warm run starts from (rootless.Front, in internal/wire's
 * form), and the check that nothing it was made from changed: pid 1 reads
 * it before anything else, and any doubt hands the run to the Go program.
 *
 * A record is read from a private writable mapping of its file. Each
 * string is made NUL-terminated where it lies, by moving its bytes one to
 * the left, over the last byte of its length, which was read already.
 */

/* The most of each list a record may hold; a record with more is left to
 * the Go program. */
enum {
	MAX_NAMES = 256, MAX_ARGS = 512, MAX_MOUNTS = 128, MAX_LOWER = 256,
	MAX_ENV = 1024,
};

struct rd {
	unsigned char *b;
	u64 n, at;
	int err;
};

INLINE u64 rd_uint(struct rd *d) {
	u64 v = 0;
	if (!d->err && !uvarint(d->b, d->n, &d->at, &v))
		d->err = 1;
	return d->err ? 0 : v;
}

/* An unsigned integer below limit (wire.Decoder.Below). */
INLINE u64 rd_below(struct rd *d, u64 limit) {
	u64 v = rd_uint(d);
	if (v >= limit)
		d->err = 1;
	return d->err ? 0 : v;
}

INLINE int rd_bool(struct rd *d) {
	u64 v = rd_uint(d);
	if (v > 1)
		d->err = 1;
	return v == 1;
}

/* A list's length (wire.Encoder.Len: 0 is nil, else the length plus one),
 * for items of at least one byte. */
INLINE u64 rd_len(struct rd *d) {
	u64 v = rd_uint(d);
	if (v == 0)
		return 0;
	if (v - 1 > d->n - d->at)
		d->err = 1;
	return d->err ? 0 : v - 1;
}

INLINE char *rd_str(struct rd *d) {
	TEXT static const char none[] = "";
	u64 l = rd_uint(d);
	if (d->err || l > d->n - d->at) {
		d->err = 1;
		return (char *)none;
	}
	char *s = (char *)d->b + d->at - 1;
	for (u64 i = 0; i < l; i++)
		s[i] = s[i + 1];
	s[l] = 0;
	d->at += l;
	return s;
}

/* A list of strings into v (at most max, then a NULL); its length, or
 * max + 1 when it does not fit. */
INLINE u64 rd_strs(struct rd *d, char **v, u64 max) {
	u64 n = rd_len(d);
	for (u64 i = 0; i < n; i++) {
		char *s = rd_str(d);
		if (i < max)
			v[i] = s;
	}
	if (n > max)
		return max + 1;
	v[n] = 0;
	return n;
}

/* One mounts.Mount of the Spec; lower indexes the Spec's layers. */
struct mnt {
	char *type, *source, *target, *data, *upper, *work, *helper;
	int ro, rec, opt;
	u64 lower, nlower;
};

/* The Spec (rootless/wire.go), what of it the front uses. */
struct spec {
	char *root, *cwd, *hostname, *network, *userns, *uname, *uhome,
		*ushell, *share;
	u64 nm, nlower, nenv, uid, gid;
	int rootemu, terminal, termout, sudo;
	struct mnt m[MAX_MOUNTS];
	char *lower[MAX_LOWER + 1];
	char *env[MAX_ENV + 1];
};

/* Parses the Spec; 0 when it is not one, or holds more than fits. */
INLINE int rd_spec(struct rd *d, struct spec *s) {
	char *unused[2];
	if (rd_uint(d) != 4) /* specVersion */
		return 0;
	s->root = rd_str(d);
	s->nm = rd_len(d);
	if (s->nm > MAX_MOUNTS)
		return 0;
	s->nlower = 0;
	for (u64 i = 0; i < s->nm; i++) {
		struct mnt *m = &s->m[i];
		m->type = rd_str(d);
		m->source = rd_str(d);
		m->target = rd_str(d);
		m->ro = rd_bool(d);
		m->rec = rd_bool(d);
		m->opt = rd_bool(d);
		m->data = rd_str(d);
		m->lower = s->nlower;
		m->nlower = rd_strs(d, s->lower + s->nlower, MAX_LOWER - s->nlower);
		if (m->nlower > MAX_LOWER - s->nlower)
			return 0;
		s->nlower += m->nlower;
		m->upper = rd_str(d);
		m->work = rd_str(d);
		m->helper = rd_str(d);
	}
	if (rd_strs(d, unused, 0) != 0) /* Process.Args: the record has none */
		return 0;
	s->nenv = rd_strs(d, s->env, MAX_ENV);
	if (s->nenv > MAX_ENV)
		return 0;
	s->cwd = rd_str(d);
	s->uid = rd_below(d, 1UL << 32);
	s->gid = rd_below(d, 1UL << 32);
	s->rootemu = rd_bool(d);
	s->terminal = rd_bool(d);
	s->termout = rd_bool(d);
	rd_below(d, 1 << 16);	/* Rows */
	rd_below(d, 1 << 16);	/* Cols */
	s->hostname = rd_str(d);
	s->network = rd_str(d);
	s->userns = rd_str(d);
	rd_below(d, 1UL << 32);	/* UIDMapSize */
	rd_below(d, 1UL << 32);	/* GIDMapSize */
	rd_str(d);		/* DNS */
	s->uname = rd_str(d);
	s->uhome = rd_str(d);
	s->ushell = rd_str(d);
	s->share = rd_str(d);
	s->sudo = rd_bool(d);
	return !d->err && d->at == d->n;
}

/* What a record says, beside the checks made while it is read. */
struct rec {
	char *project_lock, *upper_lock, *running;
	char *cmd[MAX_ARGS + 1]; /* the command: rootless.Front.commandOf */
	struct spec spec;
};

/* The stat(2) of Linux amd64. */
struct kstat {
	u64 dev, ino, nlink;
	unsigned int mode, uid, gid, pad;
	u64 rdev;
	i64 size, blksize, blocks, atime, atime_ns, mtime, mtime_ns, ctime,
		ctime_ns, unused[3];
};

/* What path is now, as rootless.stamp (full) or rootless.identity puts
 * it, into out; the number of values. */
INLINE int stamp(const char *path, int full, u64 *out) {
	int n = 0;
	for (int pass = full ? 0 : 1; pass < 2; pass++) {
		struct kstat st;
		i64 r = sys(pass == 0 ? SYS_lstat : SYS_stat, path, &st, 0);
		int width = full ? 7 : 2;
		for (int i = 0; i < width; i++)
			out[n + i] = 0;
		if (r < 0) {
			out[n] = 1UL << 63 | (u64)-r;
		} else if (!full) {
			out[n] = st.dev, out[n + 1] = st.ino;
		} else {
			out[n] = st.dev, out[n + 1] = st.ino, out[n + 2] = st.mode;
			out[n + 3] = (u64)st.size;
			out[n + 4] = (u64)(st.mtime * 1000000000 + st.mtime_ns);
			out[n + 5] = (u64)(st.ctime * 1000000000 + st.ctime_ns);
			out[n + 6] = st.nlink;
		}
		n += width;
	}
	return n;
}

/* Byte order of two strings, as Go compares them. */
INLINE int strcmp_(const char *a, const char *b) {
	while (*a && *a == *b)
		a++, b++;
	return (int)(unsigned char)*a - (int)(unsigned char)*b;
}

/* Whether the variable kv is one of names (rootless.EnvHash). */
INLINE int env_counts(const char *kv, char **names, u64 nn) {
	u64 k = 0;
	while (kv[k] && kv[k] != '=')
		k++;
	for (u64 i = 0; i < nn; i++) {
		u64 l = slen(names[i]), j = 0;
		int prefix = l > 0 && names[i][l - 1] == '*';
		if (prefix ? k < l - 1 : k != l)
			continue;
		u64 cmp = prefix ? l - 1 : l;
		while (j < cmp && kv[j] == names[i][j])
			j++;
		if (j == cmp)
			return 1;
	}
	return 0;
}

/* rootless.EnvHash of envp over names; 0 with *ok unset when there are
 * more such variables than fit. */
INLINE u64 env_hash(char **envp, char **names, u64 nn, int *ok) {
	char *set[MAX_ENV];
	u64 n = 0;
	*ok = 1;
	for (; *envp; envp++) {
		if (!env_counts(*envp, names, nn))
			continue;
		if (n == MAX_ENV) {
			*ok = 0;
			return 0;
		}
		/* Sorted as it comes in. */
		u64 i = n++;
		while (i > 0 && strcmp_(set[i - 1], *envp) > 0) {
			set[i] = set[i - 1];
			i--;
		}
		set[i] = *envp;
	}
	u64 h = 0xcbf29ce484222325UL;
	for (u64 i = 0; i < n; i++) {
		for (const char *c = set[i]; *c; c++)
			h = (h ^ (unsigned char)*c) * 0x100000001b3UL;
		h *= 0x100000001b3UL; /* the NUL after each */
	}
	return h;
}

/*
 * Reads the record in d for a run of devbox's arguments args (from "run"
 * or "shell" on) in cwd, with envp, of pid 1's program prog, and checks it
 * as rootless.Front did: 0 when it holds, else why not. The command and
 * the Spec go to r.
 */
INLINE const char *record_check(struct rd *d, struct rec *r, const char *prog,
				const char *cwd, char **envp, char **args) {
	TEXT static const char bad[] = "the record cannot be read",
			       other[] = "another devbox wrote it",
			       kernel[] = "another kernel runs",
			       user[] = "another user runs devbox",
			       dir[] = "it is another directory's",
			       envch[] = "the environment changed",
			       changed[] = "a file it was made from changed",
			       big[] = "the record holds more than the front takes",
			       shell[] = "shell", dashdash[] = "--", sh[] = "/bin/sh",
			       dashc[] = "-c";
	if (rd_uint(d) != 2 || d->err) /* rootless.frontVersion */
		return bad;
	if (!streq(rd_str(d), prog))
		return d->err ? bad : other;
	char uts[390];
	if (sys(SYS_uname, uts, 0, 0) != 0 || !streq(rd_str(d), uts + 130))
		return d->err ? bad : kernel;
	u64 uid = rd_uint(d), gid = rd_uint(d);
	if (uid != (u64)sys(SYS_getuid, 0, 0, 0) || gid != (u64)sys(SYS_getgid, 0, 0, 0))
		return d->err ? bad : user;
	if (!streq(rd_str(d), cwd))
		return d->err ? bad : dir;
	char *names[MAX_NAMES + 1];
	u64 nn = rd_strs(d, names, MAX_NAMES);
	if (nn > MAX_NAMES)
		return big;
	int ok;
	u64 want = rd_uint(d), h = env_hash(envp, names, nn, &ok);
	if (d->err)
		return bad;
	if (!ok)
		return big;
	if (h != want)
		return envch;
	for (u64 i = 0, n = rd_len(d); i < n; i++) {
		char *path = rd_str(d);
		int identity = rd_bool(d);
		u64 now[14];
		u64 k = rd_len(d), have = (u64)stamp(path, !identity, now);
		int same = k == have;
		for (u64 j = 0; j < k; j++)
			if (rd_uint(d) != now[j < have ? j : 0] || j >= have)
				same = 0;
		if (d->err)
			return bad;
		if (!same)
			return changed;
	}
	/* The command (rootless.Front.commandOf): the shell's, the words
	 * after "--", a [scripts] entry's, or the words. */
	const char *name = streq(args[0], shell) ? 0 : args[1];
	char *script = 0;
	for (u64 i = 0, n = rd_len(d); i < n; i++) {
		char *k = rd_str(d), *v = rd_str(d);
		if (name && streq(k, name))
			script = v;
	}
	char *shellv[MAX_ARGS + 1];
	u64 ns = rd_strs(d, shellv, MAX_ARGS);
	u64 nc = 0;
	if (!name) {
		if (ns > MAX_ARGS)
			return big;
		for (; nc < ns; nc++)
			r->cmd[nc] = shellv[nc];
	} else {
		char **words = args + 1;
		if (streq(words[0], dashdash)) {
			words++;
		} else if (script) {
			r->cmd[nc++] = (char *)sh;
			r->cmd[nc++] = (char *)dashc;
			r->cmd[nc++] = script;
		}
		for (; *words; words++) {
			if (nc == MAX_ARGS)
				return big;
			r->cmd[nc++] = *words;
		}
	}
	r->cmd[nc] = 0;
	r->project_lock = rd_str(d);
	r->upper_lock = rd_str(d);
	r->running = rd_str(d);
	/* The Spec, a string of its own, read in place. */
	u64 l = rd_uint(d);
	if (d->err || l != d->n - d->at)
		return bad;
	struct rd sd = {d->b + d->at, l, 0, 0};
	if (!rd_spec(&sd, &r->spec))
		return sd.err ? bad : big;
	return 0;
}
