/*
 * A tracing stand-in for librpmem.so.1: built as a shared library with the
 * soname librpmem.so.1 and put first on LD_LIBRARY_PATH, it is what
 * libpmemobj/libpmempool dlopen. Every call is forwarded to the real library
 * (dlopen'ed by the absolute path in RPMEM_TRACE_REAL) and logged, one line per
 * call, to the file named by RPMEM_TRACE_FILE:
 *
 *   create target=T set=S size=N nlanes_in=A nlanes_out=B attr=1 sig=PMEMOBJ rc=0
 *   persist off=O len=L lane=N flags=F rc=0
 *
 * The e2e tests read these lines to learn (and assert) what libpmemobj asks of
 * librpmem. Build: cc -shared -fPIC -Wl,-soname,librpmem.so.1 -o librpmem.so.1
 * pmemobj_trace.c -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct rpmem_pool RPMEMpool;

struct rpmem_pool_attr {
	char signature[8];
	uint32_t major;
	uint32_t compat_features;
	uint32_t incompat_features;
	uint32_t ro_compat_features;
	unsigned char poolset_uuid[16];
	unsigned char uuid[16];
	unsigned char next_uuid[16];
	unsigned char prev_uuid[16];
	unsigned char user_flags[16];
};

static struct {
	RPMEMpool *(*create)(const char *, const char *, void *, size_t,
		unsigned *, const struct rpmem_pool_attr *);
	RPMEMpool *(*open)(const char *, const char *, void *, size_t,
		unsigned *, struct rpmem_pool_attr *);
	int (*set_attr)(RPMEMpool *, const struct rpmem_pool_attr *);
	int (*close)(RPMEMpool *);
	int (*flush)(RPMEMpool *, size_t, size_t, unsigned, unsigned);
	int (*drain)(RPMEMpool *, unsigned, unsigned);
	int (*persist)(RPMEMpool *, size_t, size_t, unsigned, unsigned);
	int (*deep_persist)(RPMEMpool *, size_t, size_t, unsigned);
	int (*read)(RPMEMpool *, void *, size_t, size_t, unsigned);
	int (*remove)(const char *, const char *, int);
	const char *(*check_version)(unsigned, unsigned);
	const char *(*errormsg)(void);
} real;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int log_fd = -1;

#define LOAD(field, name)                                                      \
	do {                                                                   \
		*(void **)&real.field = dlsym(h, name);                        \
		if (!real.field) {                                             \
			fprintf(stderr, "pmemobj_trace: no %s in %s\n", name,  \
				path);                                         \
			abort();                                               \
		}                                                              \
	} while (0)

static void
init(void)
{
	const char *path = getenv("RPMEM_TRACE_REAL");
	if (!path) {
		fprintf(stderr, "pmemobj_trace: RPMEM_TRACE_REAL is not set\n");
		abort();
	}
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "pmemobj_trace: %s\n", dlerror());
		abort();
	}
	LOAD(create, "rpmem_create");
	LOAD(open, "rpmem_open");
	LOAD(set_attr, "rpmem_set_attr");
	LOAD(close, "rpmem_close");
	LOAD(flush, "rpmem_flush");
	LOAD(drain, "rpmem_drain");
	LOAD(persist, "rpmem_persist");
	LOAD(deep_persist, "rpmem_deep_persist");
	LOAD(read, "rpmem_read");
	LOAD(remove, "rpmem_remove");
	LOAD(check_version, "rpmem_check_version");
	LOAD(errormsg, "rpmem_errormsg");
	const char *file = getenv("RPMEM_TRACE_FILE");
	if (file)
		log_fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			0644);
}

static void
trace(const char *fmt, ...)
{
	if (log_fd < 0)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	/* one write per line: O_APPEND keeps lines whole across threads */
	ssize_t w = write(log_fd, buf, (size_t)n);
	(void)w;
}

static const char *
sig(const struct rpmem_pool_attr *a, char out[9])
{
	memcpy(out, a->signature, 8);
	out[8] = '\0';
	for (int i = 0; i < 8; i++)
		if (out[i] && (out[i] < 0x21 || out[i] > 0x7e))
			out[i] = '?';
	return out;
}

RPMEMpool *
rpmem_create(const char *target, const char *set, void *addr, size_t size,
	unsigned *nlanes, const struct rpmem_pool_attr *attr)
{
	pthread_once(&once, init);
	unsigned in = nlanes ? *nlanes : 0;
	RPMEMpool *p = real.create(target, set, addr, size, nlanes, attr);
	int err = errno;
	char s[9] = "";
	trace("create target=%s set=%s size=%zu addr_page_off=%zu nlanes_in=%u "
	      "nlanes_out=%u attr=%d sig=%s major=%u incompat=%#x rc=%d "
	      "errno=%d",
		target, set, size, (size_t)((uintptr_t)addr & 4095), in,
		nlanes ? *nlanes : 0, attr != NULL, attr ? sig(attr, s) : "",
		attr ? attr->major : 0, attr ? attr->incompat_features : 0,
		p ? 0 : -1, p ? 0 : err);
	errno = err;
	return p;
}

RPMEMpool *
rpmem_open(const char *target, const char *set, void *addr, size_t size,
	unsigned *nlanes, struct rpmem_pool_attr *attr)
{
	pthread_once(&once, init);
	unsigned in = nlanes ? *nlanes : 0;
	RPMEMpool *p = real.open(target, set, addr, size, nlanes, attr);
	int err = errno;
	char s[9] = "";
	trace("open target=%s set=%s size=%zu nlanes_in=%u nlanes_out=%u "
	      "attr=%d sig=%s major=%u incompat=%#x rc=%d errno=%d",
		target, set, size, in, nlanes ? *nlanes : 0, attr != NULL,
		(attr && p) ? sig(attr, s) : "", (attr && p) ? attr->major : 0,
		(attr && p) ? attr->incompat_features : 0, p ? 0 : -1,
		p ? 0 : err);
	errno = err;
	return p;
}

int
rpmem_set_attr(RPMEMpool *rpp, const struct rpmem_pool_attr *attr)
{
	pthread_once(&once, init);
	int rc = real.set_attr(rpp, attr);
	int err = errno;
	char s[9] = "";
	trace("set_attr attr=%d sig=%s rc=%d errno=%d", attr != NULL,
		attr ? sig(attr, s) : "", rc, rc ? err : 0);
	errno = err;
	return rc;
}

int
rpmem_close(RPMEMpool *rpp)
{
	pthread_once(&once, init);
	int rc = real.close(rpp);
	int err = errno;
	trace("close rc=%d errno=%d", rc, rc ? err : 0);
	errno = err;
	return rc;
}

int
rpmem_flush(RPMEMpool *rpp, size_t off, size_t len, unsigned lane,
	unsigned flags)
{
	pthread_once(&once, init);
	int rc = real.flush(rpp, off, len, lane, flags);
	int err = errno;
	trace("flush off=%zu len=%zu lane=%u flags=%u rc=%d errno=%d", off, len,
		lane, flags, rc, rc ? err : 0);
	errno = err;
	return rc;
}

int
rpmem_drain(RPMEMpool *rpp, unsigned lane, unsigned flags)
{
	pthread_once(&once, init);
	int rc = real.drain(rpp, lane, flags);
	int err = errno;
	trace("drain lane=%u flags=%u rc=%d errno=%d", lane, flags, rc,
		rc ? err : 0);
	errno = err;
	return rc;
}

int
rpmem_persist(RPMEMpool *rpp, size_t off, size_t len, unsigned lane,
	unsigned flags)
{
	pthread_once(&once, init);
	int rc = real.persist(rpp, off, len, lane, flags);
	int err = errno;
	trace("persist off=%zu len=%zu lane=%u flags=%u rc=%d errno=%d", off,
		len, lane, flags, rc, rc ? err : 0);
	errno = err;
	return rc;
}

int
rpmem_deep_persist(RPMEMpool *rpp, size_t off, size_t len, unsigned lane)
{
	pthread_once(&once, init);
	int rc = real.deep_persist(rpp, off, len, lane);
	int err = errno;
	trace("deep_persist off=%zu len=%zu lane=%u rc=%d errno=%d", off, len,
		lane, rc, rc ? err : 0);
	errno = err;
	return rc;
}

int
rpmem_read(RPMEMpool *rpp, void *buf, size_t off, size_t len, unsigned lane)
{
	pthread_once(&once, init);
	int rc = real.read(rpp, buf, off, len, lane);
	int err = errno;
	trace("read off=%zu len=%zu lane=%u rc=%d errno=%d", off, len, lane, rc,
		rc ? err : 0);
	errno = err;
	return rc;
}

int
rpmem_remove(const char *target, const char *set, int flags)
{
	pthread_once(&once, init);
	int rc = real.remove(target, set, flags);
	int err = errno;
	trace("remove target=%s set=%s flags=%d rc=%d errno=%d", target, set,
		flags, rc, rc ? err : 0);
	errno = err;
	return rc;
}

const char *
rpmem_check_version(unsigned major, unsigned minor)
{
	pthread_once(&once, init);
	const char *r = real.check_version(major, minor);
	trace("check_version major=%u minor=%u ok=%d", major, minor, r == NULL);
	return r;
}

const char *
rpmem_errormsg(void)
{
	pthread_once(&once, init);
	return real.errormsg();
}
