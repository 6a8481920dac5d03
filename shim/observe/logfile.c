/*
 * logfile.c — an append-only file kept open, opened again when rotated
 * (see logfile.h for the slots and why writers take no lock).
 */
#include "observe/logfile.h"

#include <errno.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "libc/ownfd.h"
#include "libc/real.h"
#include "meshim/util.h"
#include "observe/files.h"

/* The second it is, as looked_s counts them: never 0, the "not yet". */
static int64_t now_s(void)
{
    return (int64_t)(now_ns() / 1000000000u) + 1;
}

/* Is the caller a process other than the owner of f's descriptors (a
 * vfork child)? Asked only where a descriptor would be kept, once a second
 * at most: a line written through a kept one needs no question, as a
 * vfork child has the same numbers for the same files. */
static bool foreign(const struct logfile *f)
{
    pid_t owner = __atomic_load_n(&f->owner, __ATOMIC_RELAXED);
    return owner && owner != getpid();
}

/* Once a second at most, by one thread: is the path still the file in
 * use? If not (rotated, removed, never opened), the other slot gets the
 * file there now, provided no line is still being written through it. */
static void look(struct logfile *f, const char *path, int64_t now)
{
    if (foreign(f))
        return;                     /* what it opened would be no descriptor of the owner's */
    if (__atomic_exchange_n(&f->busy, 1, __ATOMIC_ACQUIRE))
        return;                     /* another thread is at it: use what is open */
    if (__atomic_load_n(&f->looked_s, __ATOMIC_RELAXED) == now)
        goto done;
    __atomic_store_n(&f->looked_s, now, __ATOMIC_RELAXED);
    unsigned gen = __atomic_load_n(&f->gen, __ATOMIC_ACQUIRE);
    struct stat st;
    if (f->fd[gen & 1] >= 0 && stat(path, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino)
        goto done;
    unsigned next = (gen + 1) & 1;
    if (__atomic_load_n(&f->writers[next], __ATOMIC_ACQUIRE))
        goto done;                  /* a writer still holds it: next second */
    int fd = ownfd_move(files_open_log(path));
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            own_close(fd);
        goto done;                  /* the one in use (if any) goes on */
    }
    if (!S_ISREG(st.st_mode)) {
        /* A FIFO (a log shipper's) is not kept: once its reader has gone,
         * a write to it raises SIGPIPE in the writing thread, which an
         * application thread would die of; opened for each line, it gives
         * ENXIO instead. Nor is a device. Each line opens it. */
        own_close(fd);
        fd = -1;
    }
    if (f->fd[next] >= 0)
        own_close(f->fd[next]);
    __atomic_store_n(&f->fd[next], fd, __ATOMIC_RELEASE);
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    __atomic_store_n(&f->gen, gen + 1, __ATOMIC_RELEASE);
done:
    __atomic_store_n(&f->busy, 0, __ATOMIC_RELEASE);
}

/* What a write of len bytes that returned n says: 0, or why the line did
 * not go in whole. */
static int outcome(long n, size_t len)
{
    return n == (long)len ? 0 : n < 0 ? errno : ENOSPC;
}

/* One write of the whole line to a kept descriptor (a regular file). */
static int write_all(int fd, const char *line, size_t len)
{
    return outcome(real_syscall4(SYS_write, fd, line, len, 0), len);
}

/* One line through a descriptor of its own, while none is kept: a FIFO
 * (never kept) whose reader leaves after the open gives EPIPE, not a
 * SIGPIPE the program would die of. */
static bool write_opened(const char *path, const char *line, size_t len, int *write_error)
{
    int fd = files_open_log(path);
    if (fd < 0)
        return false;
    *write_error = outcome(files_write_line(fd, line, len), len);
    real_close(fd);
    return true;
}

bool logfile_write(struct logfile *f, const char *path, const char *line, size_t len, int *write_error)
{
    int ignored;
    if (!write_error)
        write_error = &ignored;
    *write_error = 0;
    int64_t now = now_s();
    if (__atomic_load_n(&f->looked_s, __ATOMIC_RELAXED) != now)
        look(f, path, now);
    /* Count this line against the slot in use, and make sure it still is
     * once counted: a reopen never closes a slot with lines counted. */
    unsigned gen, slot;
    for (;;) {
        gen = __atomic_load_n(&f->gen, __ATOMIC_ACQUIRE);
        slot = gen & 1;
        __atomic_add_fetch(&f->writers[slot], 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&f->gen, __ATOMIC_SEQ_CST) == gen)
            break;
        __atomic_sub_fetch(&f->writers[slot], 1, __ATOMIC_RELEASE);
    }
    int fd = __atomic_load_n(&f->fd[slot], __ATOMIC_ACQUIRE);
    int saved = errno;
    if (fd >= 0)
        *write_error = write_all(fd, line, len);
    __atomic_sub_fetch(&f->writers[slot], 1, __ATOMIC_RELEASE);
    /* Nothing open yet (another thread is opening it, or a descriptor of
     * the shim's own could not be had): this line opens the file for
     * itself, as every line once did. */
    if (fd < 0 && !write_opened(path, line, len, write_error))
        return false;
    errno = saved;
    return true;
}

void logfile_own(struct logfile *f)
{
    __atomic_store_n(&f->owner, getpid(), __ATOMIC_RELAXED);
}

void logfile_open_now(struct logfile *f, const char *path)
{
    if (foreign(f))
        return;
    int64_t now = now_s();
    __atomic_store_n(&f->looked_s, 0, __ATOMIC_RELAXED);     /* look even if looked this second */
    look(f, path, now);
}

void logfile_atfork_child(struct logfile *f)
{
    if (f->owner)
        f->owner = getpid();
    f->busy = 0;
    f->writers[0] = f->writers[1] = 0;
}
