/*
 * roundtrip.c -- data and attributes survive close and reopen.
 *
 * usage: roundtrip TARGET POOL_SET create|open|verify
 *   create: rpmem_create with non-zero attributes; persist pattern 1 at
 *           DATA_OFF (flags 0), pattern 2 at DEEP_OFF (rpmem_deep_persist),
 *           pattern 3 at ODD_OFF (rpmem_flush RELAXED + rpmem_drain); close.
 *   open:   rpmem_create again fails with EEXIST; rpmem_open returns the
 *           attributes create stored; rpmem_read returns the patterns and the
 *           header signature; persist pattern 4 at DATA_OFF; rpmem_set_attr
 *           with ATTR2; close.
 *   verify: rpmem_open returns ATTR2; DATA_OFF holds pattern 4; close.
 * The pool set must have headers and a single part of POOL_SIZE bytes, so
 * pool offset X is byte X of the part file (the driver checks that).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librpmem.h>

#define POOL_SIZE	((size_t)8 << 20)
#define DATA_OFF	((size_t)8192)
#define DATA_LEN	((size_t)65536)
#define DEEP_OFF	((size_t)1 << 20)
#define DEEP_LEN	((size_t)4096)
#define ODD_OFF		(((size_t)2 << 20) + 3)
#define ODD_LEN		((size_t)1000)

static unsigned char pool[POOL_SIZE] __attribute__((aligned(4096)));
static unsigned char buf[DATA_LEN];

#define FAIL(...) do { \
	fprintf(stderr, "roundtrip: " __VA_ARGS__); \
	fprintf(stderr, " [errno %d: %s]\n", errno, rpmem_errormsg()); \
	exit(1); \
} while (0)

/* byte i of pattern `seed` (the driver computes the same) */
static unsigned char
pat(unsigned seed, size_t i)
{
	return (unsigned char)(seed * 131 + i * 7 + (i >> 8));
}

static void
fill(unsigned seed, size_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		pool[off + i] = pat(seed, i);
}

static void
check_remote(RPMEMpool *rpp, unsigned seed, size_t off, size_t len)
{
	memset(buf, 0xee, len);
	if (rpmem_read(rpp, buf, off, len, 0))
		FAIL("rpmem_read(%zu, %zu)", off, len);
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pat(seed, i))
			FAIL("remote byte %zu: 0x%02x, want 0x%02x (pattern %u)",
				off + i, buf[i], pat(seed, i), seed);
}

static void
make_attr(struct rpmem_pool_attr *a, unsigned char base)
{
	memset(a, 0, sizeof(*a));
	memcpy(a->signature, "RTTEST\0", 8);
	a->major = base;
	a->compat_features = 0x1;
	a->incompat_features = 0x0;
	a->ro_compat_features = base + 2;
	memset(a->poolset_uuid, base + 3, RPMEM_POOL_HDR_UUID_LEN);
	memset(a->uuid, base + 4, RPMEM_POOL_HDR_UUID_LEN);
	memset(a->next_uuid, base + 5, RPMEM_POOL_HDR_UUID_LEN);
	memset(a->prev_uuid, base + 6, RPMEM_POOL_HDR_UUID_LEN);
	for (int i = 0; i < RPMEM_POOL_USER_FLAGS_LEN; i++)
		a->user_flags[i] = (unsigned char)(base + 0x40 + i);
}

static void
check_attr(const struct rpmem_pool_attr *got, const struct rpmem_pool_attr *want)
{
	if (memcmp(got, want, sizeof(*want)) == 0)
		return;
	const unsigned char *g = (const void *)got, *w = (const void *)want;
	for (size_t i = 0; i < sizeof(*want); i++)
		if (g[i] != w[i])
			fprintf(stderr, "attr byte %zu: 0x%02x, want 0x%02x\n",
				i, g[i], w[i]);
	errno = 0;
	FAIL("attributes differ");
}

static RPMEMpool *
open_pool(const char *target, const char *set, struct rpmem_pool_attr *attr)
{
	unsigned nlanes = 2;
	RPMEMpool *rpp = rpmem_open(target, set, pool, POOL_SIZE, &nlanes, attr);
	if (!rpp)
		FAIL("rpmem_open");
	if (nlanes < 1 || nlanes > 2)
		FAIL("rpmem_open granted %u lanes", nlanes);
	return rpp;
}

int
main(int argc, char *argv[])
{
	if (argc != 4) {
		fprintf(stderr, "usage: roundtrip TARGET POOL_SET create|open|verify\n");
		return 2;
	}
	const char *target = argv[1], *set = argv[2], *mode = argv[3];
	struct rpmem_pool_attr attr1, attr2, got;
	make_attr(&attr1, 7);
	make_attr(&attr2, 9);
	unsigned nlanes = 2;

	if (strcmp(mode, "create") == 0) {
		RPMEMpool *rpp = rpmem_create(target, set, pool, POOL_SIZE,
				&nlanes, &attr1);
		if (!rpp)
			FAIL("rpmem_create");
		fill(1, DATA_OFF, DATA_LEN);
		if (rpmem_persist(rpp, DATA_OFF, DATA_LEN, 0, 0))
			FAIL("rpmem_persist");
		fill(2, DEEP_OFF, DEEP_LEN);
		if (rpmem_deep_persist(rpp, DEEP_OFF, DEEP_LEN, nlanes - 1))
			FAIL("rpmem_deep_persist");
		fill(3, ODD_OFF, ODD_LEN);
		if (rpmem_flush(rpp, ODD_OFF, ODD_LEN / 2, 0, RPMEM_FLUSH_RELAXED))
			FAIL("rpmem_flush");
		if (rpmem_flush(rpp, ODD_OFF + ODD_LEN / 2, ODD_LEN / 2, 0, 0))
			FAIL("rpmem_flush");
		if (rpmem_drain(rpp, 0, 0))
			FAIL("rpmem_drain");
		if (rpmem_close(rpp))
			FAIL("rpmem_close");
	} else if (strcmp(mode, "open") == 0) {
		RPMEMpool *rpp = rpmem_create(target, set, pool, POOL_SIZE,
				&nlanes, &attr1);
		if (rpp)
			FAIL("second rpmem_create succeeded");
		if (errno != EEXIST)
			FAIL("second rpmem_create: errno %d, want EEXIST", errno);
		memset(pool, 0, POOL_SIZE);
		memset(&got, 0xa5, sizeof(got));
		rpp = open_pool(target, set, &got);
		check_attr(&got, &attr1);
		check_remote(rpp, 1, DATA_OFF, DATA_LEN);
		check_remote(rpp, 2, DEEP_OFF, DEEP_LEN);
		check_remote(rpp, 3, ODD_OFF, ODD_LEN);
		/* the header may be read: it starts with the signature */
		memset(buf, 0, 4096);
		if (rpmem_read(rpp, buf, 0, 4096, 0))
			FAIL("rpmem_read of the header");
		if (memcmp(buf, attr1.signature, RPMEM_POOL_HDR_SIG_LEN) != 0)
			FAIL("header does not start with the signature");
		fill(4, DATA_OFF, DATA_LEN);
		if (rpmem_persist(rpp, DATA_OFF, DATA_LEN, 0, RPMEM_PERSIST_RELAXED))
			FAIL("rpmem_persist");
		if (rpmem_set_attr(rpp, &attr2))
			FAIL("rpmem_set_attr");
		if (rpmem_close(rpp))
			FAIL("rpmem_close");
	} else if (strcmp(mode, "verify") == 0) {
		memset(&got, 0xa5, sizeof(got));
		RPMEMpool *rpp = open_pool(target, set, &got);
		check_attr(&got, &attr2);
		check_remote(rpp, 4, DATA_OFF, DATA_LEN);
		check_remote(rpp, 2, DEEP_OFF, DEEP_LEN);
		if (rpmem_close(rpp))
			FAIL("rpmem_close");
	} else {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	printf("roundtrip %s: ok\n", mode);
	return 0;
}
