/*
 * persist_bench.c -- persist latency and throughput through any librpmem
 * (ours or PMDK's), to put pairings side by side in one run.
 *
 * usage: persist_bench TARGET POOL_SET SECONDS
 *   POOL_SET: OPTION NOHDRS, at least 64 MiB. One lane. For SECONDS each:
 *   64-byte persists (flags 0) one after another, then 1 MiB persists.
 *   Prints "64B p50 <us> p99 <us> n <count>" and "1MiB <GiB/s> n <count>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librpmem.h>

#define POOL_SIZE	((size_t)64 << 20)
#define MAXN		(1 << 20)

static unsigned char pool[POOL_SIZE] __attribute__((aligned(4096)));
static double lat[MAXN];

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int
main(int argc, char *argv[])
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s TARGET POOL_SET SECONDS\n", argv[0]);
		return 2;
	}
	double secs = atof(argv[3]);
	unsigned nlanes = 1;
	struct rpmem_pool_attr attr;
	memset(&attr, 0, sizeof(attr));
	memset(pool, 0x5a, POOL_SIZE);
	RPMEMpool *rpp = rpmem_create(argv[1], argv[2], pool, POOL_SIZE,
			&nlanes, &attr);
	if (!rpp) {
		fprintf(stderr, "rpmem_create: %s\n", rpmem_errormsg());
		return 1;
	}
	size_t n = 0;
	double end = now() + secs;
	while (n < MAXN && now() < end) {
		double t0 = now();
		if (rpmem_persist(rpp, (n % 1024) * 64, 64, 0, 0)) {
			fprintf(stderr, "rpmem_persist: %s\n", rpmem_errormsg());
			return 1;
		}
		lat[n++] = now() - t0;
	}
	qsort(lat, n, sizeof(lat[0]), cmp);
	printf("64B p50 %.1f p99 %.1f n %zu\n", lat[n / 2] * 1e6,
		lat[n * 99 / 100] * 1e6, n);
	size_t big = 0;
	double t0 = now();
	end = t0 + secs;
	while (now() < end) {
		size_t off = (big % 63) << 20;
		if (rpmem_persist(rpp, off, 1 << 20, 0, 0)) {
			fprintf(stderr, "rpmem_persist: %s\n", rpmem_errormsg());
			return 1;
		}
		big++;
	}
	printf("1MiB %.2f n %zu\n", (double)big / 1024 / (now() - t0), big);
	if (rpmem_close(rpp)) {
		fprintf(stderr, "rpmem_close: %s\n", rpmem_errormsg());
		return 1;
	}
	return 0;
}
