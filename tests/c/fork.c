/*
 * fork.c -- a child process cannot use, or close, its parent's pool.
 *
 * usage: fork TARGET POOL_SET
 * The pool set must have no headers and a single part of POOL_SIZE bytes.
 * The parent opens the pool and forks. The child's persist, read, drain,
 * set_attr and close each fail with EPERM (and a message naming the
 * process that opened the pool); the child exits. The parent then persists,
 * reads back and closes as if nothing happened. Prints "ok" on success.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <librpmem.h>

#define POOL_SIZE	((size_t)4 << 20)

static unsigned char pool[POOL_SIZE] __attribute__((aligned(4096)));

#define FAIL(...) do { \
	fprintf(stderr, "fork: " __VA_ARGS__); \
	fprintf(stderr, " [errno %d: %s]\n", errno, rpmem_errormsg()); \
	exit(1); \
} while (0)

static void
child_refused(int ret, const char *what)
{
	if (ret != -1 || errno != EPERM) {
		fprintf(stderr, "child: %s returned %d, errno %d: %s\n", what,
			ret, errno, rpmem_errormsg());
		_exit(2);
	}
	if (strstr(rpmem_errormsg(), "fork") == NULL) {
		fprintf(stderr, "child: %s: message does not say why: %s\n",
			what, rpmem_errormsg());
		_exit(3);
	}
}

int
main(int argc, char *argv[])
{
	if (argc != 3) {
		fprintf(stderr, "usage: fork TARGET POOL_SET\n");
		return 2;
	}
	unsigned nlanes = 2;
	RPMEMpool *rpp = rpmem_open(argv[1], argv[2], pool, POOL_SIZE, &nlanes,
		NULL);
	if (rpp == NULL)
		FAIL("rpmem_open");
	memset(pool, 0x11, 4096);
	if (rpmem_persist(rpp, 0, 4096, 0, 0))
		FAIL("parent persist before fork");

	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork");
	if (pid == 0) {
		unsigned char b[64];
		memset(pool, 0x22, 4096);
		child_refused(rpmem_persist(rpp, 0, 4096, 0, 0), "persist");
		child_refused(rpmem_flush(rpp, 0, 64, 1, 0), "flush");
		child_refused(rpmem_drain(rpp, 0, 0), "drain");
		child_refused(rpmem_read(rpp, b, 0, sizeof(b), 0), "read");
		child_refused(rpmem_set_attr(rpp, NULL), "set_attr");
		child_refused(rpmem_close(rpp), "close");
		_exit(0);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid)
		FAIL("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "fork: child failed (status %#x)\n", status);
		return 1;
	}

	unsigned char back[4096];
	if (rpmem_read(rpp, back, 0, sizeof(back), 1))
		FAIL("parent read after the child");
	for (size_t i = 0; i < sizeof(back); i++)
		if (back[i] != 0x11)
			FAIL("byte %zu is %#x: the child wrote", i, back[i]);
	memset(pool, 0x33, 4096);
	if (rpmem_persist(rpp, 0, 4096, 1, 0))
		FAIL("parent persist after the child");
	if (rpmem_read(rpp, back, 0, sizeof(back), 0))
		FAIL("parent read");
	if (back[0] != 0x33 || back[4095] != 0x33)
		FAIL("parent's persist did not land");
	if (rpmem_close(rpp))
		FAIL("parent close");
	printf("ok\n");
	return 0;
}
