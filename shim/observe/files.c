/*
 * files.c — the shim's own files, opened without trusting their folders
 * (see files.h and the security review, findings 1 and 7).
 *
 * Descriptors are closed with real_close: they are the shim's, and the
 * close hook has nothing to do with them.
 */
#include "observe/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <dirent.h>
#include <unistd.h>

#include "libc/real.h"
#include "libc/sigpipe.h"
#include "meshim/util.h"

static bool dir_trusted(int fd, bool secure, struct stat *st, char *why, size_t len)
{
    if (fstat(fd, st) < 0) {
        snprintf(why, len, "%s", strerror(errno));
        return false;
    }
    enum dir_trust trust = dir_trust_of(st);
    if (!S_ISDIR(st->st_mode))
        snprintf(why, len, "not a folder");
    else if (trust == DIR_NOT_OURS)
        snprintf(why, len, "owned by uid %u, neither this user (%u) nor root", (unsigned)st->st_uid,
                 (unsigned)geteuid());
    else if (trust == DIR_OPEN)
        snprintf(why, len, "anyone may write to it and it is not sticky");
    else if (trust == DIR_TRUSTED_STICKY && secure)
        snprintf(why, len, "anyone may write to it, and this is a set-uid or set-gid program");
    else
        return true;
    return false;
}

int files_open_dir(const char *dir, bool secure, struct stat *st, char *why, size_t len)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            snprintf(why, len, "%s", strerror(errno));
            return -1;
        }
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
        snprintf(why, len, "%s", errno == ELOOP || errno == ENOTDIR ? "not a folder (a symlink?)"
                                                                     : strerror(errno));
        return -1;
    }
    if (!dir_trusted(fd, secure, st, why, len)) {
        real_close(fd);
        return -1;
    }
    return fd;
}

int files_create_private(int dirfd, const char *prefix, mode_t mode, char *name, size_t len,
                         struct stat *st)
{
    for (int tries = 0; tries < 16; tries++) {
        snprintf(name, len, "%s.%016llx", prefix, (unsigned long long)rng_next(rng_thread()));
        int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0)
            return -1;
        if (fstat(fd, st) == 0 && S_ISREG(st->st_mode) && st->st_nlink == 1 &&
            st->st_uid == geteuid())
            return fd;
        /* O_EXCL made it, yet it is not what we made: refuse it. Its name
         * goes too: a file of ours whose owner is not this process's user
         * by the fstat (its ids changed after the open, in another
         * thread's set*id call) was left behind; a test machine's folder
         * for nobody held 80 such empty files, root's. */
        real_close(fd);
        unlinkat(dirfd, name, 0);
        errno = EPERM;
        return -1;
    }
    errno = EEXIST;
    return -1;
}

int files_open_log(const char *path)
{
    /* ELOOP: a symlink; ENXIO: a FIFO nobody reads; EISDIR: a folder. */
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
                0644);
}

long files_write_line(int fd, const char *line, size_t len)
{
    struct sigpipe_hold hold;
    sigpipe_hold(&hold);
    long n = real_syscall4(SYS_write, fd, line, len, 0);
    sigpipe_release(&hold);
    return n;
}

void files_each_name(int dirfd, unsigned reads, bool (*fn)(int dirfd, const char *name, void *arg),
                     void *arg)
{
    char buf[8192] __attribute__((aligned(8)));
    for (unsigned r = 0; r < reads; r++) {
        long n = real_syscall4(SYS_getdents64, dirfd, buf, sizeof(buf), 0);
        for (long off = 0; off < n;) {
            const struct dirent64 *e = (const struct dirent64 *)(buf + off);
            off += e->d_reclen;
            if (!fn(dirfd, e->d_name, arg))
                return;
        }
        if (n <= 0)
            return;
    }
}

bool files_allocate(int fd, size_t off, size_t len, size_t file_size)
{
    size_t page = 4096, from = off & ~(page - 1), to = (off + len + page - 1) & ~(page - 1);
    if (to > file_size)
        to = file_size;     /* mode 0 would make the file longer */
    int rc;
    do
        rc = fallocate(fd, 0, (off_t)from, (off_t)(to - from));
    while (rc < 0 && errno == EINTR);
    return rc == 0 || errno == EOPNOTSUPP;
}
