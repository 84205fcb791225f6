/*
 * badcalls.c -- every misuse of the API, one row each, with the errno it
 * must produce and a non-empty rpmem_errormsg(). After every refused call
 * on a live handle, a valid rpmem_persist on that handle must still succeed.
 *
 * usage: badcalls TARGET [ESCAPE_SET]
 * ESCAPE_SET (default "../escape.set") is a pool set name that leads outside
 * the poolset directory; creating it must be refused with EINVAL.
 * The target's poolset directory must hold (the driver writes them):
 *   hdr.set        headers, one 8 MiB part
 *   exists.set     headers, one 8 MiB part
 *   nohdrs.set     OPTION NOHDRS, one 8 MiB part
 *   small.set      headers, one 2 MiB part
 *   nopool.set     headers, one 8 MiB part that does not exist
 *   mism-null.set  headers, one 8 MiB part (created with NULL attr: refused)
 *   mism-attr.set  OPTION NOHDRS, one 8 MiB part (created with attr: refused)
 * and no missing.set. RPMEM_SSH / RPMEM_CMD must reach it; some rows change
 * them with setenv() (the library reads the environment at every call).
 *
 * Prints one line per row; exits 1 if any row mismatched.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librpmem.h>

#define POOL_SIZE	((size_t)8 << 20)

static unsigned char pool[POOL_SIZE] __attribute__((aligned(4096)));
static unsigned char pool2[2 * POOL_SIZE] __attribute__((aligned(4096)));
static unsigned char buf[4096];
static const char *target;
static int rows, failures;

static const char *
errname(int e)
{
	switch (e) {
	case 0: return "0";
	case EINVAL: return "EINVAL";
	case ENOENT: return "ENOENT";
	case EEXIST: return "EEXIST";
	case EBUSY: return "EBUSY";
	case EFBIG: return "EFBIG";
	case ECONNRESET: return "ECONNRESET";
	case ECONNABORTED: return "ECONNABORTED";
	case ENOMEDIUM: return "ENOMEDIUM";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case EIO: return "EIO";
	case EPROTO: return "EPROTO";
	case EREMOTEIO: return "EREMOTEIO";
	case ENOTRECOVERABLE: return "ENOTRECOVERABLE";
	default: {
		static char s[32];
		snprintf(s, sizeof(s), "errno %d", e);
		return s;
	}
	}
}

/* After a refused call on `live`, a valid persist must still work. */
static int
still_usable(RPMEMpool *live)
{
	pool[4096] ^= 0xff;
	return rpmem_persist(live, 4096, 64, 0, 0) == 0;
}

static void
row(const char *what, int failed, int err, int want, RPMEMpool *live)
{
	const char *msg = rpmem_errormsg();
	int bad = 0;
	char why[256] = "";
	rows++;
	if (want == 0) {
		if (failed) {
			bad = 1;
			snprintf(why, sizeof(why), "failed with %s, want success",
				errname(err));
		}
	} else if (!failed) {
		bad = 1;
		snprintf(why, sizeof(why), "succeeded, want %s", errname(want));
	} else if (err != want) {
		bad = 1;
		snprintf(why, sizeof(why), "got %s, want %s", errname(err),
			errname(want));
	} else if (msg == NULL || msg[0] == '\0') {
		bad = 1;
		snprintf(why, sizeof(why), "empty rpmem_errormsg()");
	}
	if (!bad && live && !still_usable(live)) {
		bad = 1;
		snprintf(why, sizeof(why), "handle unusable afterwards: %s: %s",
			errname(errno), rpmem_errormsg());
	}
	if (bad) {
		failures++;
		printf("FAIL %-58s %s [%s]\n", what, why, msg ? msg : "(null)");
	} else if (want) {
		printf("ok   %-58s %s: %s\n", what, errname(err), msg);
	} else {
		printf("ok   %-58s success\n", what);
	}
	fflush(stdout);
}

/* int-returning call; want 0 for success */
#define ROW_I(what, expr, want, live) do { \
	errno = 0; \
	int r_ = (expr); \
	int e_ = errno; \
	row(what, r_ != 0, e_, want, live); \
} while (0)

/* handle-returning call that must fail; a handle it returns is closed */
#define ROW_P(what, expr, want) do { \
	errno = 0; \
	RPMEMpool *p_ = (expr); \
	int e_ = errno; \
	if (p_) \
		rpmem_close(p_); \
	row(what, p_ == NULL, e_, want, NULL); \
} while (0)

static struct rpmem_pool_attr attr;

static RPMEMpool *
must_create(const char *set, size_t size, const struct rpmem_pool_attr *a,
	unsigned *nlanes)
{
	RPMEMpool *rpp = rpmem_create(target, set, pool, size, nlanes, a);
	if (!rpp) {
		printf("FAIL setup: rpmem_create %s: %s: %s\n", set,
			errname(errno), rpmem_errormsg());
		exit(1);
	}
	return rpp;
}

static void
set_env(const char *name, const char *value)
{
	if (value)
		setenv(name, value, 1);
	else
		unsetenv(name);
}

static char *
dup_env(const char *name)
{
	const char *v = getenv(name);
	return v ? strdup(v) : NULL;
}

int
main(int argc, char *argv[])
{
	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: badcalls TARGET [ESCAPE_SET]\n");
		return 2;
	}
	target = argv[1];
	const char *escape = argc > 2 ? argv[2] : "../escape.set";
	memset(&attr, 0, sizeof(attr));
	memcpy(attr.signature, "BADCALL", 8);
	attr.major = 1;
	memset(attr.uuid, 0x42, sizeof(attr.uuid));
	memset(attr.user_flags, 0x17, sizeof(attr.user_flags));

	unsigned nl = 2, zero = 0;
	unsigned *nlp = &nl;
	/* ---- arguments refused on the initiator ---- */
	ROW_P("create: pool_addr not page-aligned", rpmem_create(target,
		"nohdrs.set", pool2 + 8, POOL_SIZE - 4096, nlp, NULL), EINVAL);
	ROW_P("create: pool_size not page-aligned", rpmem_create(target,
		"nohdrs.set", pool2, POOL_SIZE - 100, nlp, NULL), EINVAL);
	ROW_P("create: pool_size 0", rpmem_create(target, "nohdrs.set",
		pool2, 0, nlp, NULL), EINVAL);
	ROW_P("create: pool_size 4096 < RPMEM_MIN_POOL", rpmem_create(target,
		"nohdrs.set", pool2, 4096, nlp, NULL), EINVAL);
	ROW_P("create: target NULL", rpmem_create(NULL, "nohdrs.set", pool2,
		POOL_SIZE, nlp, NULL), EINVAL);
	ROW_P("create: pool_set_name NULL", rpmem_create(target, NULL, pool2,
		POOL_SIZE, nlp, NULL), EINVAL);
	ROW_P("create: pool_addr NULL", rpmem_create(target, "nohdrs.set",
		NULL, POOL_SIZE, nlp, NULL), EINVAL);
	ROW_P("create: nlanes NULL", rpmem_create(target, "nohdrs.set", pool2,
		POOL_SIZE, NULL, NULL), EINVAL);
	ROW_P("create: *nlanes == 0", rpmem_create(target, "nohdrs.set", pool2,
		POOL_SIZE, &zero, NULL), EINVAL);
	ROW_P("open: pool_addr not page-aligned", rpmem_open(target,
		"exists.set", pool2 + 8, POOL_SIZE - 4096, nlp, NULL), EINVAL);
	ROW_P("open: pool_size not page-aligned", rpmem_open(target,
		"exists.set", pool2, POOL_SIZE - 100, nlp, NULL), EINVAL);
	ROW_P("open: pool_size 4096 < RPMEM_MIN_POOL", rpmem_open(target,
		"exists.set", pool2, 4096, nlp, NULL), EINVAL);
	ROW_P("open: target NULL", rpmem_open(NULL, "exists.set", pool2,
		POOL_SIZE, nlp, NULL), EINVAL);
	ROW_P("open: pool_set_name NULL", rpmem_open(target, NULL, pool2,
		POOL_SIZE, nlp, NULL), EINVAL);
	ROW_P("open: pool_addr NULL", rpmem_open(target, "exists.set", NULL,
		POOL_SIZE, nlp, NULL), EINVAL);
	ROW_P("open: nlanes NULL", rpmem_open(target, "exists.set", pool2,
		POOL_SIZE, NULL, NULL), EINVAL);
	ROW_P("open: *nlanes == 0", rpmem_open(target, "exists.set", pool2,
		POOL_SIZE, &zero, NULL), EINVAL);
	ROW_I("remove: target NULL", rpmem_remove(NULL, "exists.set", 0),
		EINVAL, NULL);
	ROW_I("remove: pool_set NULL", rpmem_remove(target, NULL, 0), EINVAL,
		NULL);
	ROW_I("remove: unknown flag 0x4", rpmem_remove(target, "exists.set",
		0x4), EINVAL, NULL);
	ROW_I("remove: flags -1", rpmem_remove(target, "exists.set", -1),
		EINVAL, NULL);
	ROW_I("persist: rpp NULL", rpmem_persist(NULL, 4096, 8, 0, 0), EINVAL,
		NULL);
	ROW_I("deep_persist: rpp NULL", rpmem_deep_persist(NULL, 4096, 8, 0),
		EINVAL, NULL);
	ROW_I("flush: rpp NULL", rpmem_flush(NULL, 4096, 8, 0, 0), EINVAL,
		NULL);
	ROW_I("drain: rpp NULL", rpmem_drain(NULL, 0, 0), EINVAL, NULL);
	ROW_I("read: rpp NULL", rpmem_read(NULL, buf, 0, 8, 0), EINVAL, NULL);
	ROW_I("set_attr: rpp NULL", rpmem_set_attr(NULL, &attr), EINVAL, NULL);
	ROW_I("close: rpp NULL", rpmem_close(NULL), EINVAL, NULL);

	/* ---- no way to the target (the environment is read at every call) ---- */
	char *ssh = dup_env("RPMEM_SSH"), *cmd = dup_env("RPMEM_CMD");
	set_env("RPMEM_SSH", "/bin/false");
	nl = 1;
	ROW_P("create: RPMEM_SSH=/bin/false", rpmem_create(target,
		"nohdrs.set", pool2, POOL_SIZE, nlp, NULL), ECONNRESET);
	ROW_P("open: RPMEM_SSH=/bin/false", rpmem_open(target, "exists.set",
		pool2, POOL_SIZE, nlp, NULL), ECONNRESET);
	set_env("RPMEM_SSH", "/nonexistent/rpmem-no-such-ssh");
	ROW_P("create: RPMEM_SSH names no program", rpmem_create(target,
		"nohdrs.set", pool2, POOL_SIZE, nlp, NULL), ECONNRESET);
	set_env("RPMEM_SSH", ssh);
	set_env("RPMEM_CMD", "false");
	ROW_P("open: RPMEM_CMD=false (daemon exits at once)", rpmem_open(target,
		"exists.set", pool2, POOL_SIZE, nlp, NULL), ECONNRESET);
	set_env("RPMEM_CMD", cmd);
	set_env("RPMEM_ENABLE_SOCKETS", "0");
	ROW_P("open: RPMEM_ENABLE_SOCKETS=0 (no transport)", rpmem_open(target,
		"exists.set", pool2, POOL_SIZE, nlp, NULL), ENOMEDIUM);
	set_env("RPMEM_ENABLE_SOCKETS", NULL);

	/* ---- refused by the target ---- */
	ROW_P("create: poolset file missing", rpmem_create(target,
		"missing.set", pool2, POOL_SIZE, nlp, &attr), ENOENT);
	ROW_P("create: pool set name outside the poolset dir", rpmem_create(
		target, escape, pool2, POOL_SIZE, nlp, &attr), EINVAL);
	ROW_P("open: poolset file missing", rpmem_open(target, "missing.set",
		pool2, POOL_SIZE, nlp, NULL), ENOENT);
	ROW_P("open: pool (part file) missing", rpmem_open(target,
		"nopool.set", pool2, POOL_SIZE, nlp, NULL), ENOENT);
	ROW_I("remove: pool (part file) missing", rpmem_remove(target,
		"nopool.set", 0), ENOENT, NULL);
	ROW_I("remove: poolset file missing", rpmem_remove(target,
		"missing.set", 0), ENOENT, NULL);
	ROW_P("create: remote pool smaller than pool_size", rpmem_create(
		target, "small.set", pool2, POOL_SIZE, nlp, &attr), EFBIG);
	ROW_P("create: NULL attr on a set with headers", rpmem_create(target,
		"mism-null.set", pool2, POOL_SIZE, nlp, NULL), EINVAL);
	ROW_P("create: attr on an OPTION NOHDRS set", rpmem_create(target,
		"mism-attr.set", pool2, POOL_SIZE, nlp, &attr), EINVAL);

	nl = 2;
	RPMEMpool *ex = must_create("exists.set", POOL_SIZE, &attr, &nl);
	ROW_I("close: exists.set", rpmem_close(ex), 0, NULL);
	nl = 2;
	ROW_P("create: pool already exists", rpmem_create(target, "exists.set",
		pool2, POOL_SIZE, nlp, &attr), EEXIST);
	ROW_P("open: remote pool smaller than pool_size", rpmem_open(target,
		"exists.set", pool2, 2 * POOL_SIZE, nlp, NULL), EFBIG);

	/* ---- a live handle with headers ---- */
	unsigned lanes = 2;
	RPMEMpool *live = must_create("hdr.set", POOL_SIZE, &attr, &lanes);
	printf("info hdr.set created with %u lanes\n", lanes);
	ROW_I("persist: valid, offset 4096", rpmem_persist(live, 4096, 64, 0,
		0), 0, live);
	nl = 2;
	ROW_P("open: pool open elsewhere", rpmem_open(target, "hdr.set", pool2,
		POOL_SIZE, nlp, NULL), EBUSY);
	ROW_I("persist: offset 100 inside header", rpmem_persist(live, 100, 8,
		0, 0), EINVAL, live);
	ROW_I("persist: offset 0 length 4096", rpmem_persist(live, 0, 4096, 0,
		0), EINVAL, live);
	ROW_I("persist: offset 4095 straddles header end", rpmem_persist(live,
		4095, 2, 0, 0), EINVAL, live);
	ROW_I("deep_persist: offset 0 inside header", rpmem_deep_persist(live,
		0, 8, 0), EINVAL, live);
	ROW_I("flush: offset 100 inside header", rpmem_flush(live, 100, 8, 0,
		0), EINVAL, live);
	ROW_I("persist: offset+length > pool_size", rpmem_persist(live,
		POOL_SIZE - 8, 16, 0, 0), EINVAL, live);
	ROW_I("persist: offset == pool_size, length 1", rpmem_persist(live,
		POOL_SIZE, 1, 0, 0), EINVAL, live);
	ROW_I("persist: offset SIZE_MAX (overflow)", rpmem_persist(live,
		SIZE_MAX, 2, 0, 0), EINVAL, live);
	ROW_I("persist: length SIZE_MAX (overflow)", rpmem_persist(live, 4096,
		SIZE_MAX, 0, 0), EINVAL, live);
	ROW_I("flush: length SIZE_MAX - 100 (overflow)", rpmem_flush(live,
		4096, SIZE_MAX - 100, 0, 0), EINVAL, live);
	ROW_I("deep_persist: offset+length > pool_size", rpmem_deep_persist(
		live, POOL_SIZE - 8, 16, 0), EINVAL, live);
	ROW_I("read: offset+length > pool_size", rpmem_read(live, buf,
		POOL_SIZE - 8, 16, 0), EINVAL, live);
	ROW_I("read: offset SIZE_MAX (overflow)", rpmem_read(live, buf,
		SIZE_MAX, 2, 0), EINVAL, live);
	ROW_I("read: buff NULL, length 8", rpmem_read(live, NULL, 4096, 8, 0),
		EINVAL, live);
	ROW_I("persist: lane == nlanes", rpmem_persist(live, 4096, 8, lanes,
		0), EINVAL, live);
	ROW_I("persist: lane UINT_MAX", rpmem_persist(live, 4096, 8, UINT_MAX,
		0), EINVAL, live);
	ROW_I("deep_persist: lane == nlanes", rpmem_deep_persist(live, 4096, 8,
		lanes), EINVAL, live);
	ROW_I("flush: lane == nlanes", rpmem_flush(live, 4096, 8, lanes, 0),
		EINVAL, live);
	ROW_I("drain: lane == nlanes", rpmem_drain(live, lanes, 0), EINVAL,
		live);
	ROW_I("read: lane == nlanes", rpmem_read(live, buf, 4096, 8, lanes),
		EINVAL, live);
	ROW_I("persist: flags 0x2", rpmem_persist(live, 4096, 8, 0, 0x2),
		EINVAL, live);
	ROW_I("persist: flags 0x80000000", rpmem_persist(live, 4096, 8, 0,
		0x80000000U), EINVAL, live);
	ROW_I("flush: flags 0x2", rpmem_flush(live, 4096, 8, 0, 0x2), EINVAL,
		live);
	ROW_I("drain: flags 0x1", rpmem_drain(live, 0, 0x1), EINVAL, live);
	ROW_I("read: header (offset 0) is readable", rpmem_read(live, buf, 0,
		8, 0), 0, live);
	ROW_I("persist: RELAXED, last lane", rpmem_persist(live, 8192, 4096,
		lanes - 1, RPMEM_PERSIST_RELAXED), 0, live);
	ROW_I("flush + drain: valid", rpmem_flush(live, 8192, 4096, 0,
		RPMEM_FLUSH_RELAXED) || rpmem_drain(live, 0, 0), 0, live);
	ROW_I("close: hdr.set", rpmem_close(live), 0, NULL);

	/* opening without open_attr must not unprotect the header */
	lanes = 1;
	nl = 1;
	live = rpmem_open(target, "hdr.set", pool, POOL_SIZE, &lanes, NULL);
	if (!live) {
		printf("FAIL setup: rpmem_open hdr.set: %s: %s\n",
			errname(errno), rpmem_errormsg());
		return 1;
	}
	ROW_I("persist: offset 100 after open with open_attr NULL",
		rpmem_persist(live, 100, 8, 0, 0), EINVAL, live);
	ROW_I("close: hdr.set (reopened)", rpmem_close(live), 0, NULL);

	/* without headers the whole pool is usable */
	lanes = 1;
	live = must_create("nohdrs.set", POOL_SIZE, NULL, &lanes);
	ROW_I("persist: offset 0 on OPTION NOHDRS pool", rpmem_persist(live, 0,
		4096, 0, 0), 0, live);
	ROW_I("persist: lane == nlanes on OPTION NOHDRS pool", rpmem_persist(
		live, 0, 8, lanes, 0), EINVAL, live);
	ROW_I("close: nohdrs.set", rpmem_close(live), 0, NULL);

	/* the environment changes above left no trace */
	nl = 1;
	ex = rpmem_open(target, "exists.set", pool2, POOL_SIZE, nlp, NULL);
	ROW_I("open + close: exists.set with environment restored",
		ex ? rpmem_close(ex) : -1, 0, NULL);

	/* ---- removal ---- */
	ROW_I("remove: exists.set", rpmem_remove(target, "exists.set", 0), 0,
		NULL);
	ROW_P("open: removed pool", rpmem_open(target, "exists.set", pool2,
		POOL_SIZE, nlp, NULL), ENOENT);
	ROW_I("remove: nohdrs.set FORCE|POOL_SET", rpmem_remove(target,
		"nohdrs.set", RPMEM_REMOVE_FORCE | RPMEM_REMOVE_POOL_SET), 0,
		NULL);

	/* ---- version check ---- */
	const char *v = rpmem_check_version(RPMEM_MAJOR_VERSION,
			RPMEM_MINOR_VERSION);
	rows++;
	if (v) {
		failures++;
		printf("FAIL check_version(1, 3): %s\n", v);
	}
	v = rpmem_check_version(RPMEM_MAJOR_VERSION + 1, 0);
	rows++;
	if (!v || strcmp(v, "librpmem major version mismatch (need 2, found 1)")) {
		failures++;
		printf("FAIL check_version(2, 0): %s\n", v ? v : "NULL");
	}
	v = rpmem_check_version(1, 4);
	rows++;
	if (!v || strcmp(v, "librpmem minor version mismatch (need 4, found 3)")) {
		failures++;
		printf("FAIL check_version(1, 4): %s\n", v ? v : "NULL");
	}

	free(ssh);
	free(cmd);
	printf("%d rows, %d failures\n", rows, failures);
	return failures ? 1 : 0;
}
