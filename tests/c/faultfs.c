/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * faultfs: a FUSE file system that passes everything through to a backing
 * directory, except that fsync fails with EIO while a control file exists.
 * msync(MS_SYNC) of a shared mapping of one of its files ends in that fsync,
 * so it lets a test make the target's durability calls fail for real.
 *
 * usage: faultfs BACKING-DIR CONTROL-FILE MOUNTPOINT [fuse options]
 * Runs in the foreground, single-threaded, until unmounted.
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static const char *backing;
static const char *control;

/* The backing path of `path` (which starts with '/'). */
static int real(char *buf, const char *path)
{
	int n = snprintf(buf, PATH_MAX, "%s%s", backing, path);
	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

#define REAL(var, path)                                                        \
	char var[PATH_MAX];                                                    \
	do {                                                                   \
		int r_ = real(var, path);                                      \
		if (r_)                                                        \
			return r_;                                             \
	} while (0)

static int ff_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (fi)
		return fstat((int)fi->fh, st) ? -errno : 0;
	REAL(p, path);
	return lstat(p, st) ? -errno : 0;
}

static int ff_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off;
	(void)fi;
	(void)flags;
	REAL(p, path);
	DIR *d = opendir(p);
	if (!d)
		return -errno;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (fill(buf, e->d_name, NULL, 0, 0))
			break;
	closedir(d);
	return 0;
}

static int ff_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	REAL(p, path);
	int fd = open(p, fi->flags, mode);
	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int ff_open(const char *path, struct fuse_file_info *fi)
{
	REAL(p, path);
	int fd = open(p, fi->flags);
	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int ff_read(const char *path, char *buf, size_t n, off_t off, struct fuse_file_info *fi)
{
	(void)path;
	ssize_t r = pread((int)fi->fh, buf, n, off);
	return r < 0 ? -errno : (int)r;
}

static int ff_write(const char *path, const char *buf, size_t n, off_t off,
		    struct fuse_file_info *fi)
{
	(void)path;
	ssize_t r = pwrite((int)fi->fh, buf, n, off);
	return r < 0 ? -errno : (int)r;
}

static int ff_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	if (access(control, F_OK) == 0)
		return -EIO;
	int r = datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh);
	return r ? -errno : 0;
}

static int ff_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	close((int)fi->fh);
	return 0;
}

static int ff_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	if (fi)
		return ftruncate((int)fi->fh, size) ? -errno : 0;
	REAL(p, path);
	return truncate(p, size) ? -errno : 0;
}

static int ff_fallocate(const char *path, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	(void)path;
	return fallocate((int)fi->fh, mode, off, len) ? -errno : 0;
}

static int ff_unlink(const char *path)
{
	REAL(p, path);
	return unlink(p) ? -errno : 0;
}

static int ff_rename(const char *from, const char *to, unsigned int flags)
{
	if (flags)
		return -EINVAL;
	REAL(a, from);
	REAL(b, to);
	return rename(a, b) ? -errno : 0;
}

static int ff_mkdir(const char *path, mode_t mode)
{
	REAL(p, path);
	return mkdir(p, mode) ? -errno : 0;
}

static int ff_rmdir(const char *path)
{
	REAL(p, path);
	return rmdir(p) ? -errno : 0;
}

static int ff_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)fi;
	REAL(p, path);
	return chmod(p, mode) ? -errno : 0;
}

static int ff_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	(void)fi;
	REAL(p, path);
	return utimensat(AT_FDCWD, p, tv, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

static void *ff_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	/* No attribute or data caching beyond the kernel's page cache. */
	cfg->use_ino = 1;
	cfg->attr_timeout = 0;
	cfg->entry_timeout = 0;
	cfg->negative_timeout = 0;
	return NULL;
}

static const struct fuse_operations ops = {
	.init = ff_init,
	.getattr = ff_getattr,
	.readdir = ff_readdir,
	.create = ff_create,
	.open = ff_open,
	.read = ff_read,
	.write = ff_write,
	.fsync = ff_fsync,
	.release = ff_release,
	.truncate = ff_truncate,
	.fallocate = ff_fallocate,
	.unlink = ff_unlink,
	.rename = ff_rename,
	.mkdir = ff_mkdir,
	.rmdir = ff_rmdir,
	.chmod = ff_chmod,
	.utimens = ff_utimens,
};

int main(int argc, char *argv[])
{
	if (argc < 4) {
		fprintf(stderr, "usage: faultfs BACKING-DIR CONTROL-FILE MOUNTPOINT [fuse options]\n");
		return 2;
	}
	static char b[PATH_MAX];
	if (!realpath(argv[1], b)) {
		perror(argv[1]);
		return 1;
	}
	backing = b;
	control = argv[2];
	/* fuse_main gets: prog, -f (foreground), -s (one thread), the rest. */
	char **args = calloc((size_t)argc + 2, sizeof(char *));
	if (!args)
		return 1;
	int n = 0;
	args[n++] = argv[0];
	args[n++] = "-f";
	args[n++] = "-s";
	for (int i = 3; i < argc; i++)
		args[n++] = argv[i];
	return fuse_main(n, args, &ops, NULL);
}
