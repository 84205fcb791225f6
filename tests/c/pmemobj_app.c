/*
 * A small libpmemobj application for the e2e tests: it runs on Debian's
 * libpmemobj, which replicates to remote replicas through librpmem.so.1.
 *
 *   pmemobj_app write  POOLSET LAYOUT N SEED   open; in one transaction
 *                                              allocate N objects and fill
 *                                              them from SEED; commit; close
 *   pmemobj_app verify POOLSET LAYOUT N SEED   open; check the N objects
 *   pmemobj_app flags  POOLSET LAYOUT          open; write the root's note
 *                                              and pmemobj_xpersist it with
 *                                              PMEMOBJ_F_RELAXED, then write
 *                                              it again and pmemobj_persist
 *                                              it, then pmemobj_flush +
 *                                              pmemobj_drain; close
 *   pmemobj_app threads POOLSET LAYOUT T K     open; T threads each run K
 *                                              transactions that allocate
 *                                              and fill one object; close,
 *                                              reopen and check every object
 *
 * Prints one line per step; exits 0 on success, 1 with a message otherwise.
 * Build: cc pmemobj_app.c -lpmemobj -lpthread
 */
#include <errno.h>
#include <inttypes.h>
#include <libpmemobj.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#define MAX_OBJS 64
#define OBJ_SIZE 4000
#define MAX_THREADS 16
#define MAX_TX 32
#define MT_SIZE 512

struct root {
	uint64_t nobjs;
	uint64_t seed;
	PMEMoid objs[MAX_OBJS];
	char note[64];
	PMEMoid mt[MAX_THREADS][MAX_TX];
};

static void
fill(unsigned char *buf, size_t len, uint64_t seed, uint64_t i)
{
	uint64_t x = seed * 6364136223846793005ULL + i * 1442695040888963407ULL +
		1;
	for (size_t k = 0; k < len; k++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		buf[k] = (unsigned char)(x >> 56);
	}
}

static PMEMobjpool *
open_pool(const char *set, const char *layout)
{
	PMEMobjpool *pop = pmemobj_open(set, layout);
	if (!pop) {
		fprintf(stderr, "pmemobj_open %s: %s (errno %d)\n", set,
			pmemobj_errormsg(), errno);
		exit(1);
	}
	printf("opened %s\n", set);
	return pop;
}

static int
do_write(const char *set, const char *layout, uint64_t n, uint64_t seed)
{
	PMEMobjpool *pop = open_pool(set, layout);
	PMEMoid root = pmemobj_root(pop, sizeof(struct root));
	if (OID_IS_NULL(root)) {
		fprintf(stderr, "pmemobj_root: %s\n", pmemobj_errormsg());
		return 1;
	}
	struct root *r = pmemobj_direct(root);
	int failed = 0;
	TX_BEGIN(pop)
	{
		pmemobj_tx_add_range(root, 0, sizeof(struct root));
		for (uint64_t i = 0; i < n; i++) {
			PMEMoid o = pmemobj_tx_alloc(OBJ_SIZE, 1);
			fill(pmemobj_direct(o), OBJ_SIZE, seed, i);
			r->objs[i] = o;
		}
		r->nobjs = n;
		r->seed = seed;
		snprintf(r->note, sizeof(r->note), "written by pmemobj_app");
	}
	TX_ONABORT
	{
		fprintf(stderr, "transaction aborted: %s\n",
			pmemobj_errormsg());
		failed = 1;
	}
	TX_END
	if (failed)
		return 1;
	printf("committed %" PRIu64 " objects\n", n);
	printf("root offset %" PRIu64 " size %zu\n", root.off,
		sizeof(struct root));
	for (uint64_t i = 0; i < n; i++)
		printf("object %" PRIu64 " offset %" PRIu64 " size %d\n", i,
			r->objs[i].off, OBJ_SIZE);
	pmemobj_close(pop);
	printf("closed\n");
	return 0;
}

static int
do_verify(const char *set, const char *layout, uint64_t n, uint64_t seed)
{
	PMEMobjpool *pop = open_pool(set, layout);
	PMEMoid root = pmemobj_root(pop, sizeof(struct root));
	struct root *r = pmemobj_direct(root);
	if (r->nobjs != n || r->seed != seed) {
		fprintf(stderr, "root holds %" PRIu64 " objects seed %" PRIu64
				", want %" PRIu64 " seed %" PRIu64 "\n",
			r->nobjs, r->seed, n, seed);
		return 1;
	}
	static unsigned char want[OBJ_SIZE];
	for (uint64_t i = 0; i < n; i++) {
		fill(want, OBJ_SIZE, seed, i);
		if (pmemobj_alloc_usable_size(r->objs[i]) < OBJ_SIZE ||
		    memcmp(pmemobj_direct(r->objs[i]), want, OBJ_SIZE) != 0) {
			fprintf(stderr, "object %" PRIu64 " differs\n", i);
			return 1;
		}
	}
	printf("verified %" PRIu64 " objects\n", n);
	pmemobj_close(pop);
	printf("closed\n");
	return 0;
}

static int
do_flags(const char *set, const char *layout)
{
	PMEMobjpool *pop = open_pool(set, layout);
	PMEMoid root = pmemobj_root(pop, sizeof(struct root));
	struct root *r = pmemobj_direct(root);
	snprintf(r->note, sizeof(r->note), "relaxed persist");
	if (pmemobj_xpersist(pop, r->note, sizeof(r->note),
		    PMEMOBJ_F_RELAXED)) {
		fprintf(stderr, "pmemobj_xpersist: %s\n", pmemobj_errormsg());
		return 1;
	}
	printf("relaxed persist done\n");
	snprintf(r->note, sizeof(r->note), "plain persist");
	pmemobj_persist(pop, r->note, sizeof(r->note));
	printf("plain persist done\n");
	snprintf(r->note, sizeof(r->note), "flush and drain");
	pmemobj_flush(pop, r->note, sizeof(r->note));
	pmemobj_drain(pop);
	printf("flush and drain done\n");
	pmemobj_close(pop);
	printf("closed\n");
	return 0;
}

struct worker {
	PMEMobjpool *pop;
	struct root *r;
	unsigned t;
	unsigned k;
	int failed;
};

static void *
worker(void *arg)
{
	struct worker *w = arg;
	for (unsigned i = 0; i < w->k; i++) {
		TX_BEGIN(w->pop)
		{
			PMEMoid o = pmemobj_tx_alloc(MT_SIZE, 2);
			fill(pmemobj_direct(o), MT_SIZE, 1000 + w->t, i);
			pmemobj_tx_add_range_direct(&w->r->mt[w->t][i],
				sizeof(PMEMoid));
			w->r->mt[w->t][i] = o;
		}
		TX_ONABORT
		{
			w->failed = 1;
		}
		TX_END
		if (w->failed)
			break;
	}
	return NULL;
}

static int
do_threads(const char *set, const char *layout, unsigned nt, unsigned k)
{
	if (nt > MAX_THREADS)
		nt = MAX_THREADS;
	if (k > MAX_TX)
		k = MAX_TX;
	PMEMobjpool *pop = open_pool(set, layout);
	PMEMoid root = pmemobj_root(pop, sizeof(struct root));
	struct worker w[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	for (unsigned t = 0; t < nt; t++) {
		w[t] = (struct worker){pop, pmemobj_direct(root), t, k, 0};
		if (pthread_create(&th[t], NULL, worker, &w[t])) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	}
	int failed = 0;
	for (unsigned t = 0; t < nt; t++) {
		pthread_join(th[t], NULL);
		failed |= w[t].failed;
	}
	if (failed) {
		fprintf(stderr, "a transaction aborted: %s\n",
			pmemobj_errormsg());
		return 1;
	}
	printf("%u threads committed %u transactions each\n", nt, k);
	pmemobj_close(pop);
	pop = open_pool(set, layout);
	struct root *r = pmemobj_direct(pmemobj_root(pop, sizeof(struct root)));
	static unsigned char want[MT_SIZE];
	for (unsigned t = 0; t < nt; t++)
		for (unsigned i = 0; i < k; i++) {
			fill(want, MT_SIZE, 1000 + t, i);
			if (OID_IS_NULL(r->mt[t][i]) ||
			    memcmp(pmemobj_direct(r->mt[t][i]), want,
				    MT_SIZE) != 0) {
				fprintf(stderr, "thread %u object %u differs\n",
					t, i);
				return 1;
			}
		}
	printf("verified %u objects\n", nt * k);
	pmemobj_close(pop);
	printf("closed\n");
	return 0;
}

int
main(int argc, char *argv[])
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 6 && strcmp(argv[1], "write") == 0) {
		uint64_t n = strtoull(argv[4], NULL, 0);
		if (n > MAX_OBJS)
			n = MAX_OBJS;
		return do_write(argv[2], argv[3], n,
			strtoull(argv[5], NULL, 0));
	}
	if (argc == 6 && strcmp(argv[1], "verify") == 0) {
		uint64_t n = strtoull(argv[4], NULL, 0);
		if (n > MAX_OBJS)
			n = MAX_OBJS;
		return do_verify(argv[2], argv[3], n,
			strtoull(argv[5], NULL, 0));
	}
	if (argc == 4 && strcmp(argv[1], "flags") == 0)
		return do_flags(argv[2], argv[3]);
	if (argc == 6 && strcmp(argv[1], "threads") == 0)
		return do_threads(argv[2], argv[3],
			(unsigned)strtoul(argv[4], NULL, 0),
			(unsigned)strtoul(argv[5], NULL, 0));
	fprintf(stderr,
		"usage: %s write|verify POOLSET LAYOUT N SEED | flags POOLSET "
		"LAYOUT | threads POOLSET LAYOUT T K\n",
		argv[0]);
	return 2;
}
