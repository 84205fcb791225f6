/*
 * pmdk_session.c -- one of each ssh-channel request of librpmem, with
 * attributes that are easy to recognise in captured bytes.
 *
 * usage: pmdk_session target pool_set [keep|create]
 *   create (attributes A, 4 lanes) -> persist 256 bytes at 4096 -> set_attr
 *   (attributes B) -> close; open (must return B) -> read back the 256 bytes
 *   -> close; remove (not with "keep"). Prints "ok" and exits 0 when every
 *   step did what it should. With "create", only creates and closes.
 *   Failures print "<call>: <message> (errno N)" on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <librpmem.h>

#define POOL_SIZE	(8 * 1024 * 1024)
#define HDR		4096
#define LEN		256

static unsigned char pool[POOL_SIZE] __attribute__((aligned(4096)));
static unsigned char back[POOL_SIZE] __attribute__((aligned(4096)));

static void
fill_attr(struct rpmem_pool_attr *a, unsigned char seed)
{
	memset(a, 0, sizeof(*a));
	memcpy(a->signature, "CAPTURE", 8);
	a->major = 7;
	a->compat_features = 0x01020304;
	a->incompat_features = 0x05060708;
	a->ro_compat_features = 0x090a0b0c;
	memset(a->poolset_uuid, seed + 1, RPMEM_POOL_HDR_UUID_LEN);
	memset(a->uuid, seed + 2, RPMEM_POOL_HDR_UUID_LEN);
	memset(a->next_uuid, seed + 3, RPMEM_POOL_HDR_UUID_LEN);
	memset(a->prev_uuid, seed + 4, RPMEM_POOL_HDR_UUID_LEN);
	memset(a->user_flags, seed + 5, RPMEM_POOL_USER_FLAGS_LEN);
}

#define FAIL(what) do { \
	fprintf(stderr, "%s: %s (errno %d)\n", what, rpmem_errormsg(), errno); \
	return 1; \
} while (0)

int
main(int argc, char *argv[])
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: %s target pool_set [keep|create]\n",
			argv[0]);
		return 2;
	}
	const char *mode = argc == 4 ? argv[3] : "";
	const char *target = argv[1];
	const char *set = argv[2];
	struct rpmem_pool_attr a, b, got;
	fill_attr(&a, 0x10);
	fill_attr(&b, 0x20);

	unsigned nlanes = 4;
	RPMEMpool *rpp = rpmem_create(target, set, pool, POOL_SIZE, &nlanes, &a);
	if (!rpp)
		FAIL("rpmem_create");
	if (strcmp(mode, "create") == 0) {
		if (rpmem_close(rpp))
			FAIL("rpmem_close");
		printf("ok\n");
		return 0;
	}
	for (int i = 0; i < LEN; i++)
		pool[HDR + i] = (unsigned char)(0xa0 ^ i);
	if (rpmem_persist(rpp, HDR, LEN, 0, 0))
		FAIL("rpmem_persist");
	if (rpmem_set_attr(rpp, &b))
		FAIL("rpmem_set_attr");
	if (rpmem_close(rpp))
		FAIL("rpmem_close");

	nlanes = 4;
	rpp = rpmem_open(target, set, back, POOL_SIZE, &nlanes, &got);
	if (!rpp)
		FAIL("rpmem_open");
	if (memcmp(&got, &b, sizeof(b)) != 0) {
		fprintf(stderr, "rpmem_open returned other attributes\n");
		return 1;
	}
	if (rpmem_read(rpp, back + HDR, HDR, LEN, 0))
		FAIL("rpmem_read");
	if (memcmp(back + HDR, pool + HDR, LEN) != 0) {
		fprintf(stderr, "read back other bytes\n");
		return 1;
	}
	if (rpmem_close(rpp))
		FAIL("rpmem_close");
	if (strcmp(mode, "keep") != 0 && rpmem_remove(target, set, 0))
		FAIL("rpmem_remove");
	printf("ok\n");
	return 0;
}
