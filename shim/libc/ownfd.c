/*
 * ownfd.c — which descriptors are the shim's (see ownfd.h).
 */
#include "libc/ownfd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <linux/close_range.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "libc/real.h"

/* Per number, how many of the shim's descriptors are on it: 0 or 1, for a
 * moment 2 when one thread has closed a number (and not yet unmarked it)
 * that another has already reopened for the shim. A count, not a bit, so
 * that the late unmark never leaves the new one unprotected. */
static uint8_t owned[OWNFD_MAX];
static int n_owned;                 /* atomic: marks set; 0 lets close_range skip the scan */
static unsigned max_owned;          /* atomic: the highest number ever marked (bounds it) */

void ownfd_mark(int fd)
{
    if (fd < 0 || fd >= OWNFD_MAX)
        return;
    unsigned max = __atomic_load_n(&max_owned, __ATOMIC_RELAXED);
    while ((unsigned)fd > max &&
           !__atomic_compare_exchange_n(&max_owned, &max, (unsigned)fd, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED))
        ;
    __atomic_add_fetch(&owned[fd], 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&n_owned, 1, __ATOMIC_RELAXED);
}

static void unmark(int fd)
{
    if (fd < 0 || fd >= OWNFD_MAX || !__atomic_load_n(&owned[fd], __ATOMIC_ACQUIRE))
        return;
    __atomic_sub_fetch(&owned[fd], 1, __ATOMIC_RELEASE);
    __atomic_sub_fetch(&n_owned, 1, __ATOMIC_RELAXED);
}

bool ownfd_is(int fd)
{
    return fd >= 0 && fd < OWNFD_MAX && __atomic_load_n(&owned[fd], __ATOMIC_ACQUIRE);
}

int ownfd_next(unsigned from)
{
    if (!__atomic_load_n(&n_owned, __ATOMIC_RELAXED))
        return -1;
    unsigned last = __atomic_load_n(&max_owned, __ATOMIC_ACQUIRE);
    for (unsigned fd = from; fd <= last; fd++)
        if (__atomic_load_n(&owned[fd], __ATOMIC_ACQUIRE))
            return (int)fd;
    return -1;
}

/* ---------------------------------------------------- the program's limit -- */

/* The shim's descriptors do not come out of the program's allowance. A
 * relayed mTLS connection holds two (its real socket, the engine's end of
 * the pair), so under a soft RLIMIT_NOFILE of 1024 a program ran out of
 * descriptors at about 340 such connections: redis-benchmark -c 400 over
 * mTLS failed with EMFILE where it ran without the mesh. So while the soft
 * limit is the program's (what it started with, or last set itself), the
 * shim raises it to that plus what the shim holds, with some room, within
 * the hard limit, and puts its own descriptors in that room, at or above
 * the program's limit.
 *
 * The kernel cannot tell whose a number is: a program that has used up its
 * own limit would be given numbers in the room, at or past FD_SETSIZE for
 * the usual 1024, where select() overflows its fd_set (a crash under
 * _FORTIFY_SOURCE, memory corruption without) instead of the EMFILE it
 * handles. So the hooks that hand the program a new descriptor (socket,
 * accept, dup, fcntl's F_DUPFD, epoll_create, socketpair) close one at or
 * past the program's limit and fail with EMFILE, as without the shim
 * (ownfd_program_limit). A fork child gets the program's limit back, so
 * that a program it execs starts with the limit its parent had. */
#define LIMIT_ROOM 32

static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;
static rlim_t program_soft;         /* under limit_lock */
static rlim_t raised_to;            /* under limit_lock: what the shim set last, 0 none */
static rlim_t program_cap;          /* atomic: program_soft while the shim's raise is in force, else 0 */

/* Under limit_lock: a limit in force that is not the shim's raise is the
 * program's own, or one it has set since; no cap applies then. */
static void follow_program(const struct rlimit *rl)
{
    if (rl->rlim_cur != raised_to) {
        program_soft = rl->rlim_cur;
        __atomic_store_n(&program_cap, 0, __ATOMIC_RELAXED);
    }
}

/* Under limit_lock: rl is the limit in force; raised when the shim's
 * descriptors need room. */
static void make_room(struct rlimit *rl)
{
    follow_program(rl);
    rlim_t need = program_soft + (rlim_t)__atomic_load_n(&n_owned, __ATOMIC_RELAXED) + 1;
    if (need <= rl->rlim_cur || rl->rlim_cur >= rl->rlim_max)
        return;
    struct rlimit want = { need + LIMIT_ROOM, rl->rlim_max };
    if (want.rlim_cur > rl->rlim_max)
        want.rlim_cur = rl->rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) {
        raised_to = want.rlim_cur;
        rl->rlim_cur = want.rlim_cur;
        __atomic_store_n(&program_cap, program_soft, __ATOMIC_RELAXED);
    }
}

/* The limit in force, in rl, with room made first (read under the lock:
 * another thread may have just raised it). */
static bool limit_with_room(struct rlimit *rl)
{
    pthread_mutex_lock(&limit_lock);
    bool ok = getrlimit(RLIMIT_NOFILE, rl) == 0;
    if (ok && rl->rlim_cur != RLIM_INFINITY)
        make_room(rl);
    pthread_mutex_unlock(&limit_lock);
    return ok;
}

rlim_t ownfd_program_limit(int fd)
{
    rlim_t cap = __atomic_load_n(&program_cap, __ATOMIC_RELAXED);
    if (fd < 0 || !cap || (rlim_t)fd < cap)
        return 0;
    /* Rare: the program is past its limit, or has set a limit of its own
     * since (servers raise theirs to the hard limit): ask the kernel. */
    struct rlimit rl;
    pthread_mutex_lock(&limit_lock);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        follow_program(&rl);
    cap = __atomic_load_n(&program_cap, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&limit_lock);
    return cap && (rlim_t)fd >= cap ? cap : 0;
}

bool ownfd_limit_raised(void)
{
    return __atomic_load_n(&program_cap, __ATOMIC_RELAXED) != 0;
}

/* Runs in the child of fork (only this thread is left). The raise goes:
 * a program the child execs starts with the limit the program had; the
 * shim raises it again when the child holds descriptors of its own. */
void ownfd_atfork_child(void)
{
    pthread_mutex_init(&limit_lock, NULL);
    struct rlimit rl;
    if (__atomic_load_n(&program_cap, __ATOMIC_RELAXED) && getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        rl.rlim_cur == raised_to) {
        rl.rlim_cur = program_soft;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            raised_to = 0;
    }
    __atomic_store_n(&program_cap, 0, __ATOMIC_RELAXED);
}

int ownfd_high(int fd)
{
    struct rlimit rl;
    int base = 256;
    if (limit_with_room(&rl) && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 64) {
        rlim_t cap = __atomic_load_n(&program_cap, __ATOMIC_RELAXED);
        /* In the room the raise made, above the program's numbers. */
        base = cap && cap < rl.rlim_cur ? (int)cap : (int)(rl.rlim_cur / 2);
    }
    if (base > 1 << 16)
        base = 1 << 16;
    int high = real_fcntl(fd, F_DUPFD_CLOEXEC, (void *)(long)base);
    if (high < 0)
        high = real_fcntl(fd, F_DUPFD_CLOEXEC, (void *)3L);
    ownfd_mark(high);
    return high;
}

int ownfd_move(int fd)
{
    if (fd < 0)
        return -1;
    int high = ownfd_high(fd);
    int err = errno;
    real_close(fd);
    errno = err;
    return high;
}

/* Closed first, unmarked after: in between, the number is free and still
 * marked, so at worst a program's close of that number, reopened in that
 * instant, is refused; the shim never closes a descriptor of the program. */
int own_close(int fd)
{
    int rc = real_close(fd);
    int err = errno;
    unmark(fd);
    errno = err;
    return rc;
}

/* [first, last] closed (or marked close-on-exec) with one system call. */
static int close_span(unsigned first, unsigned last, int flags)
{
    int rc = real_close_range(first, last, flags);
    if (rc == 0 || errno != ENOSYS)
        return rc;
    rc = (int)real_syscall(SYS_close_range, first, last, flags, 0, 0, 0);
    if (rc == 0 || errno != ENOSYS || (flags & ~CLOSE_RANGE_UNSHARE))
        return rc;
    for (unsigned fd = first; fd <= last && fd < OWNFD_MAX; fd++)   /* before Linux 5.9 */
        real_close((int)fd);
    return 0;
}

/* The gaps between the shim's descriptors, each with one call (a close
 * range of a process that has none of them is one call, as before). */
int ownfd_close_range(unsigned first, unsigned last, int flags)
{
    int rc = 0, err = 0;
    unsigned from = first;
    for (int own; from <= last && (own = ownfd_next(from)) >= 0 && (unsigned)own <= last;
         from = (unsigned)own + 1) {
        if ((unsigned)own > from && close_span(from, (unsigned)own - 1, flags) < 0 && !err)
            err = errno;
    }
    if (from <= last)
        rc = close_span(from, last, flags);
    if (err) {
        errno = err;
        return -1;
    }
    return rc;
}

/* Up to the highest of ours by ranges, then the rest with libc's own. */
void ownfd_closefrom(int low)
{
    bool any = __atomic_load_n(&n_owned, __ATOMIC_RELAXED) != 0;
    int last = any ? (int)__atomic_load_n(&max_owned, __ATOMIC_ACQUIRE) : -1;
    if (low >= 0 && last >= low) {
        ownfd_close_range((unsigned)low, (unsigned)last, 0);
        low = last + 1;
    }
    real_closefrom(low);
}
