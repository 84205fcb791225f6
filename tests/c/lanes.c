/*
 * lanes.c -- one pool, four threads, one lane each, disjoint stripes.
 *
 * usage: lanes TARGET POOL_SET IMAGE_FILE
 * Creates a pool with headers asking for 4 lanes (all 4 must be granted).
 * Thread t owns stripes t, t+4, t+8, ... of the data area (from offset 4096)
 * and rewrites them ROUNDS times, alternating rpmem_persist (flags 0 and
 * RPMEM_PERSIST_RELAXED), rpmem_flush + rpmem_drain and rpmem_deep_persist,
 * all on its own lane. Afterwards every stripe is read back through
 * rpmem_read and compared with the local pool, and the data area of the
 * local pool is written to IMAGE_FILE for the driver to compare with the
 * part file.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librpmem.h>

#define POOL_SIZE	((size_t)8 << 20)
#define DATA_OFF	((size_t)4096)
#define NTHREADS	4
#define STRIPE		((size_t)8192 + 64)	/* not a page multiple on purpose */
#define NSTRIPES	256			/* 64 per thread */
#ifndef ROUNDS
#define ROUNDS		400	/* -DROUNDS=N for fewer */
#endif
#define DATA_LEN	(STRIPE * NSTRIPES)

static unsigned char pool[POOL_SIZE] __attribute__((aligned(4096)));
static RPMEMpool *rpp;

struct worker {
	unsigned id;
	int failed;
	char why[512];
};

static void *
work(void *arg)
{
	struct worker *w = arg;
	unsigned lane = w->id;
	for (unsigned r = 0; r < ROUNDS; r++) {
		unsigned stripe = (r % (NSTRIPES / NTHREADS)) * NTHREADS + w->id;
		size_t off = DATA_OFF + stripe * STRIPE;
		unsigned char *p = pool + off;
		for (size_t i = 0; i < STRIPE; i++)
			p[i] = (unsigned char)(w->id * 61 + r * 13 + i * 3);
		int ret;
		const char *op;
		switch (r % 5) {
		case 0:
			op = "rpmem_persist";
			ret = rpmem_persist(rpp, off, STRIPE, lane, 0);
			break;
		case 1:
			op = "rpmem_persist(RELAXED)";
			ret = rpmem_persist(rpp, off, STRIPE, lane,
				RPMEM_PERSIST_RELAXED);
			break;
		case 2:
			op = "rpmem_flush";
			ret = rpmem_flush(rpp, off, STRIPE / 2, lane, 0);
			if (!ret)
				ret = rpmem_flush(rpp, off + STRIPE / 2,
					STRIPE - STRIPE / 2, lane,
					RPMEM_FLUSH_RELAXED);
			if (!ret) {
				op = "rpmem_drain";
				ret = rpmem_drain(rpp, lane, 0);
			}
			break;
		case 3:
			op = "rpmem_deep_persist";
			ret = rpmem_deep_persist(rpp, off, STRIPE, lane);
			break;
		default:
			/* many small flushes, one drain */
			op = "rpmem_flush(small)";
			ret = 0;
			for (size_t o = 0; o < STRIPE && !ret; o += 512) {
				size_t n = STRIPE - o < 512 ? STRIPE - o : 512;
				ret = rpmem_flush(rpp, off + o, n, lane, 0);
			}
			if (!ret) {
				op = "rpmem_drain";
				ret = rpmem_drain(rpp, lane, 0);
			}
			break;
		}
		if (ret) {
			w->failed = 1;
			snprintf(w->why, sizeof(w->why),
				"thread %u round %u %s: errno %d: %s",
				w->id, r, op, errno, rpmem_errormsg());
			return NULL;
		}
	}
	return NULL;
}

int
main(int argc, char *argv[])
{
	if (argc != 4) {
		fprintf(stderr, "usage: lanes TARGET POOL_SET IMAGE_FILE\n");
		return 2;
	}
	struct rpmem_pool_attr attr;
	memset(&attr, 0, sizeof(attr));
	memcpy(attr.signature, "LANES\0\0", 8);
	attr.major = 1;
	memset(attr.uuid, 0x5a, sizeof(attr.uuid));

	unsigned nlanes = NTHREADS;
	rpp = rpmem_create(argv[1], argv[2], pool, POOL_SIZE, &nlanes, &attr);
	if (!rpp) {
		fprintf(stderr, "rpmem_create: errno %d: %s\n", errno,
			rpmem_errormsg());
		return 1;
	}
	if (nlanes != NTHREADS) {
		fprintf(stderr, "granted %u lanes, need %d\n", nlanes, NTHREADS);
		return 1;
	}

	pthread_t th[NTHREADS];
	struct worker w[NTHREADS];
	for (unsigned t = 0; t < NTHREADS; t++) {
		memset(&w[t], 0, sizeof(w[t]));
		w[t].id = t;
		if (pthread_create(&th[t], NULL, work, &w[t])) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	}
	int failed = 0;
	for (unsigned t = 0; t < NTHREADS; t++) {
		pthread_join(th[t], NULL);
		if (w[t].failed) {
			fprintf(stderr, "%s\n", w[t].why);
			failed = 1;
		}
	}
	if (failed)
		return 1;

	/* read everything back, one stripe per call, spread over the lanes */
	static unsigned char back[STRIPE];
	for (unsigned s = 0; s < NSTRIPES; s++) {
		size_t off = DATA_OFF + s * STRIPE;
		memset(back, 0, STRIPE);
		if (rpmem_read(rpp, back, off, STRIPE, s % NTHREADS)) {
			fprintf(stderr, "rpmem_read stripe %u: errno %d: %s\n",
				s, errno, rpmem_errormsg());
			return 1;
		}
		if (memcmp(back, pool + off, STRIPE) != 0) {
			for (size_t i = 0; i < STRIPE; i++)
				if (back[i] != pool[off + i]) {
					fprintf(stderr, "stripe %u byte %zu: "
						"remote 0x%02x, local 0x%02x\n",
						s, i, back[i], pool[off + i]);
					break;
				}
			return 1;
		}
	}

	if (rpmem_close(rpp)) {
		fprintf(stderr, "rpmem_close: %s\n", rpmem_errormsg());
		return 1;
	}

	FILE *f = fopen(argv[3], "wb");
	if (!f || fwrite(pool + DATA_OFF, 1, DATA_LEN, f) != DATA_LEN ||
			fclose(f) != 0) {
		perror(argv[3]);
		return 1;
	}
	printf("lanes: ok (%d threads x %d rounds, %zu bytes)\n", NTHREADS,
		ROUNDS, (size_t)DATA_LEN);
	return 0;
}
