/*
 * abi.c -- the header and the library agree, without any target:
 * struct layout, constants, version check, errno and rpmem_errormsg()
 * for calls refused on the initiator. Compiled with -std=c99 -pedantic.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <librpmem.h>

#define STATIC_ASSERT(c, m) typedef char static_assert_##m[(c) ? 1 : -1]

STATIC_ASSERT(sizeof(struct rpmem_pool_attr) == 104, attr_size);
STATIC_ASSERT(offsetof(struct rpmem_pool_attr, major) == 8, major);
STATIC_ASSERT(offsetof(struct rpmem_pool_attr, compat_features) == 12, compat);
STATIC_ASSERT(offsetof(struct rpmem_pool_attr, incompat_features) == 16, incompat);
STATIC_ASSERT(offsetof(struct rpmem_pool_attr, ro_compat_features) == 20, ro);
STATIC_ASSERT(offsetof(struct rpmem_pool_attr, poolset_uuid) == 24, psuuid);
STATIC_ASSERT(offsetof(struct rpmem_pool_attr, uuid) == 40, uuid);
STATIC_ASSERT(offsetof(struct rpmem_pool_attr, next_uuid) == 56, next);
STATIC_ASSERT(offsetof(struct rpmem_pool_attr, prev_uuid) == 72, prev);
STATIC_ASSERT(offsetof(struct rpmem_pool_attr, user_flags) == 88, flags);
STATIC_ASSERT(RPMEM_MAJOR_VERSION == 1 && RPMEM_MINOR_VERSION == 3, version);
STATIC_ASSERT(RPMEM_MIN_POOL == 8192 && RPMEM_MIN_PART == 2097152, sizes);
STATIC_ASSERT(RPMEM_PERSIST_RELAXED == 1 && RPMEM_FLUSH_RELAXED == 1, relaxed);
STATIC_ASSERT(RPMEM_REMOVE_FORCE == 1 && RPMEM_REMOVE_POOL_SET == 2, remove);
STATIC_ASSERT(RPMEM_POOL_HDR_SIG_LEN == 8 && RPMEM_POOL_HDR_UUID_LEN == 16 &&
	RPMEM_POOL_USER_FLAGS_LEN == 16, lens);

static int failures;

static void
expect(int cond, const char *what)
{
	if (!cond) {
		failures++;
		printf("FAIL %s (errno %d, msg \"%s\")\n", what, errno,
			rpmem_errormsg());
	} else {
		printf("ok   %s\n", what);
	}
}

static unsigned char pool[8192] __attribute__((aligned(4096)));

int
main(void)
{
	const char *m;
	unsigned nlanes = 0;

	expect(rpmem_errormsg() != NULL && rpmem_errormsg()[0] == '\0',
		"rpmem_errormsg() is \"\" before any failure");
	expect(rpmem_check_version(RPMEM_MAJOR_VERSION, RPMEM_MINOR_VERSION)
		== NULL, "check_version(1, 3) is NULL");
	expect(rpmem_check_version(1, 0) == NULL, "check_version(1, 0) is NULL");
	m = rpmem_check_version(2, 0);
	expect(m && strcmp(m, "librpmem major version mismatch (need 2, found 1)")
		== 0, "check_version(2, 0) names the major mismatch");
	m = rpmem_check_version(1, 4);
	expect(m && strcmp(m, "librpmem minor version mismatch (need 4, found 3)")
		== 0, "check_version(1, 4) names the minor mismatch");

	errno = 0;
	expect(rpmem_create("localhost", "x.set", pool, sizeof(pool), &nlanes,
		NULL) == NULL && errno == EINVAL, "create with *nlanes == 0: EINVAL");
	expect(strstr(rpmem_errormsg(), "nlanes") != NULL,
		"message mentions nlanes");
	errno = 0;
	expect(rpmem_persist(NULL, 0, 8, 0, 0) == -1 && errno == EINVAL,
		"persist(NULL): -1, EINVAL");
	expect(strcmp(rpmem_errormsg(), "rpp is NULL") == 0,
		"message names the argument (not the function)");
	errno = 0;
	expect(rpmem_remove("localhost", "x.set", 0x8) != 0 && errno == EINVAL,
		"remove with unknown flags: EINVAL");
	errno = 0;
	expect(rpmem_close(NULL) != 0 && errno == EINVAL, "close(NULL): EINVAL");

	printf("%d failures\n", failures);
	return failures != 0;
}
