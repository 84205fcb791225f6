/*
 * example.c -- the example of librpmem(7), adapted to API 1.3:
 * rpmem_persist() takes a flags argument, and the local pool is page-aligned
 * as rpmem_create(3) requires.
 *
 * usage: example [target [pool_set [unaligned]]]
 *   target defaults to "localhost", pool_set to "pool.set" (a set with
 *   OPTION NOHDRS: the attributes are zeroed).
 *   With "unaligned", runs the original example's call with a pool address
 *   that is not page-aligned and expects it to be refused with EINVAL.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <librpmem.h>

#define POOL_SIZE	(32 * 1024 * 1024)
#define NLANES		4

unsigned char pool[POOL_SIZE] __attribute__((aligned(4096)));

static int
unaligned(const char *target, const char *pool_set)
{
	unsigned nlanes = NLANES;
	struct rpmem_pool_attr pool_attr;
	memset(&pool_attr, 0, sizeof(pool_attr));

	/* a global array is not page-aligned in general; make sure it is not */
	RPMEMpool *rpp = rpmem_create(target, pool_set, pool + 64,
			POOL_SIZE - 4096, &nlanes, &pool_attr);
	if (rpp) {
		fprintf(stderr, "unaligned pool_addr accepted\n");
		rpmem_close(rpp);
		return 1;
	}
	if (errno != EINVAL) {
		fprintf(stderr, "unaligned pool_addr: errno %d (%s), want EINVAL\n",
			errno, strerror(errno));
		return 1;
	}
	printf("unaligned pool_addr refused: %s\n", rpmem_errormsg());
	return 0;
}

int
main(int argc, char *argv[])
{
	const char *target = argc > 1 ? argv[1] : "localhost";
	const char *pool_set = argc > 2 ? argv[2] : "pool.set";
	int ret;
	unsigned nlanes = NLANES;

	if (argc > 3 && strcmp(argv[3], "unaligned") == 0)
		return unaligned(target, pool_set);

	/* fill pool_attributes */
	struct rpmem_pool_attr pool_attr;
	memset(&pool_attr, 0, sizeof(pool_attr));

	/* create a remote pool */
	RPMEMpool *rpp = rpmem_create(target, pool_set,
			pool, POOL_SIZE, &nlanes, &pool_attr);
	if (!rpp) {
		fprintf(stderr, "rpmem_create: %s\n", rpmem_errormsg());
		return 1;
	}

	/* store data on local pool */
	memset(pool, 0, POOL_SIZE);

	/* make local data persistent on remote node */
	ret = rpmem_persist(rpp, 0, POOL_SIZE, 0, 0);
	if (ret) {
		fprintf(stderr, "rpmem_persist: %s\n", rpmem_errormsg());
		return 1;
	}

	/* close the remote pool */
	ret = rpmem_close(rpp);
	if (ret) {
		fprintf(stderr, "rpmem_close: %s\n", rpmem_errormsg());
		return 1;
	}

	printf("example: ok (%u lanes)\n", nlanes);
	return 0;
}
