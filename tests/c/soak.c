/*
 * soak.c -- lanes persist at random until a crash stops them.
 *
 * usage: soak TARGET SET POOL_SIZE NLANES ROUND SEED create|open
 * Lane threads each own a stripe of the pool past its 4 KiB header and fill
 * it with 256-byte blocks, front to back, by a random mix of persist (flags
 * 0 or RELAXED, one or several blocks), flushes then a drain, and
 * deep_persist; after each call that returned 0 they print "ack LANE BLOCK
 * COUNT" for the blocks it made durable. Another thread sets the attributes
 * over and over ("attrsend N" before the call, "attr N" after it returned
 * 0; major = N). A thread stops at its first failure ("fail ..."); once
 * every lane has stopped, the pool is closed ("closed RC") and the program
 * exits 0.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librpmem.h>

#define BLOCK 256
static RPMEMpool *rpp;
static unsigned char *pool;
static size_t stripe_blocks;
static unsigned round_no, seed;
static volatile int lanes_left;
static pthread_mutex_t out = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *fmt, unsigned long a, unsigned long b, unsigned long c) {
	pthread_mutex_lock(&out);
	printf(fmt, a, b, c);
	fflush(stdout);
	pthread_mutex_unlock(&out);
}
static unsigned char pattern(unsigned lane, size_t block, size_t j) {
	return (unsigned char)((round_no * 131 + lane * 31 + block * 7 + j) % 251 + 1);
}
static void fill(unsigned lane, size_t first, size_t n) {
	for (size_t b = first; b < first + n; b++)
		for (size_t j = 0; j < BLOCK; j++)
			pool[4096 + (lane * stripe_blocks + b) * BLOCK + j] = pattern(lane, b, j);
}
static size_t off(unsigned lane, size_t b) {
	return 4096 + (lane * stripe_blocks + b) * BLOCK;
}
static void failed(const char *what, unsigned lane) {
	pthread_mutex_lock(&out);
	printf("fail %s %u %d %s\n", what, lane, errno, rpmem_errormsg());
	fflush(stdout);
	pthread_mutex_unlock(&out);
}
static void *lane_main(void *arg) {
	unsigned lane = (unsigned)(size_t)arg;
	unsigned r = seed * 7919 + lane;
	size_t b = 0;
	while (b < stripe_blocks) {
		size_t n = 1 + rand_r(&r) % 8;
		if (n > stripe_blocks - b)
			n = stripe_blocks - b;
		fill(lane, b, n);
		int op = rand_r(&r) % 10, rc = 0;
		if (op < 5) {
			unsigned fl = (op % 2) ? RPMEM_PERSIST_RELAXED : 0;
			rc = rpmem_persist(rpp, off(lane, b), n * BLOCK, lane, fl);
		} else if (op < 8) {
			for (size_t k = 0; k < n && !rc; k++) {
				unsigned fl = (k % 2) ? RPMEM_FLUSH_RELAXED : 0;
				rc = rpmem_flush(rpp, off(lane, b + k), BLOCK, lane, fl);
			}
			if (!rc)
				rc = rpmem_drain(rpp, lane, 0);
		} else {
			rc = rpmem_deep_persist(rpp, off(lane, b), n * BLOCK, lane);
		}
		if (rc) {
			failed("lane", lane);
			break;
		}
		say("ack %lu %lu %lu\n", lane, b, n);
		b += n;
	}
	__sync_fetch_and_sub(&lanes_left, 1);
	return NULL;
}
static void *attr_main(void *arg) {
	(void)arg;
	struct rpmem_pool_attr a;
	memset(&a, 0, sizeof(a));
	memcpy(a.signature, "SOAKTEST", 8);
	memset(a.poolset_uuid, 0x5a, sizeof(a.poolset_uuid));
	for (unsigned k = 1; lanes_left > 0; k++) {
		unsigned n = round_no * 100000 + k;
		a.major = n;
		memcpy(a.uuid, &n, sizeof(n));
		say("attrsend %lu\n", n, 0, 0);
		if (rpmem_set_attr(rpp, &a)) {
			failed("set_attr", 0);
			break;
		}
		say("attr %lu\n", n, 0, 0);
	}
	return NULL;
}
int main(int argc, char **argv) {
	if (argc != 8) return 64;
	size_t size = strtoull(argv[3], NULL, 0);
	unsigned nlanes = (unsigned)strtoul(argv[4], NULL, 0);
	round_no = (unsigned)strtoul(argv[5], NULL, 0);
	seed = (unsigned)strtoul(argv[6], NULL, 0);
	if (posix_memalign((void **)&pool, 4096, size)) return 65;
	memset(pool, 0, size);
	unsigned want = nlanes;
	struct rpmem_pool_attr a;
	memset(&a, 0, sizeof(a));
	memcpy(a.signature, "SOAKTEST", 8);
	memset(a.poolset_uuid, 0x5a, sizeof(a.poolset_uuid));
	if (strcmp(argv[7], "create") == 0)
		rpp = rpmem_create(argv[1], argv[2], pool, size, &nlanes, &a);
	else
		rpp = rpmem_open(argv[1], argv[2], pool, size, &nlanes, &a);
	if (!rpp || nlanes != want) {
		printf("open-failed %d %s\n", errno, rpmem_errormsg());
		return 2;
	}
	printf("opened\n");
	fflush(stdout);
	stripe_blocks = (size - 4096) / nlanes / BLOCK;
	lanes_left = (int)nlanes;
	pthread_t t[64], at;
	for (unsigned l = 0; l < nlanes; l++)
		pthread_create(&t[l], NULL, lane_main, (void *)(size_t)l);
	pthread_create(&at, NULL, attr_main, NULL);
	for (unsigned l = 0; l < nlanes; l++)
		pthread_join(t[l], NULL);
	pthread_join(at, NULL);
	printf("closed %d\n", rpmem_close(rpp));
	fflush(stdout);
	return 0;
}
