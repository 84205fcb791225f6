/*
 * fault_writer.c -- a C initiator that persists until a fault stops it.
 *
 * usage: fault_writer TARGET SET POOL_SIZE BLOCK
 * Creates SET without headers, then persists block 0, 1, 2, ... (wrapping)
 * on lane 0, every other one RPMEM_PERSIST_RELAXED, printing "ack B" after
 * each persist that returned 0. On the first failure prints "fail ERRNO MSG",
 * tries once more ("again ERRNO US MSG", US = how long that call took),
 * closes ("close RC US") and exits 0.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <librpmem.h>

static long long now_us(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}
static unsigned char pattern(size_t block, size_t j) {
	return (unsigned char)((block * 31 + j * 7) % 251 + 1);
}
int main(int argc, char **argv) {
	if (argc != 5) return 64;
	size_t size = strtoull(argv[3], NULL, 0), block = strtoull(argv[4], NULL, 0);
	unsigned char *pool;
	if (posix_memalign((void **)&pool, 4096, size)) return 65;
	memset(pool, 0, size);
	unsigned nlanes = 1;
	RPMEMpool *rpp = rpmem_create(argv[1], argv[2], pool, size, &nlanes, NULL);
	if (!rpp) {
		printf("create-failed %d %s\n", errno, rpmem_errormsg());
		return 2;
	}
	printf("created\n");
	fflush(stdout);
	size_t nblocks = size / block;
	for (size_t b = 0;; b = (b + 1) % nblocks) {
		for (size_t j = 0; j < block; j++)
			pool[b * block + j] = pattern(b, j);
		unsigned flags = (b % 2) ? RPMEM_PERSIST_RELAXED : 0;
		if (rpmem_persist(rpp, b * block, block, 0, flags)) {
			printf("fail %d %s\n", errno, rpmem_errormsg());
			fflush(stdout);
			long long t = now_us();
			int rc = rpmem_persist(rpp, 0, block, 0, 0);
			int e = errno;
			printf("again %d %lld %s\n", rc ? e : 0, now_us() - t, rpmem_errormsg());
			fflush(stdout);
			t = now_us();
			rc = rpmem_close(rpp);
			printf("close %d %lld\n", rc, now_us() - t);
			fflush(stdout);
			return 0;
		}
		printf("ack %zu\n", b);
		fflush(stdout);
	}
}
