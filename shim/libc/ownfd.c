/*
 * ownfd.c — which descriptors are the shim's (see ownfd.h).
 */
#include "libc/ownfd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <linux/close_range.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
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
 * mTLS failed with EMFILE where it ran without the mesh. So the shim keeps
 * its own at or above the program's soft limit, between it and the hard
 * limit, where the program's numbers never go.
 *
 * The kernel hands out (and dups onto) only numbers under the soft limit,
 * so the shim raises it for the moment of its move and puts it back
 * (raise_for_move, lower_after_move): a descriptor above the limit stays
 * valid, and the limit the program reads, the numbers it is given and the
 * limit every child inherits (fork, vfork, posix_spawn, Go's clone) stay
 * the program's own. A raise that stayed (as the shim had it before) was
 * seen by getrlimit, inherited by whatever the program started with vfork
 * or posix_spawn (Python's subprocess, Rust's Command), and let open() and
 * pipe() give a program past its limit numbers at or past FD_SETSIZE, where
 * select() overflows its fd_set.
 *
 * The moment is not atomic for the program's other threads: one that takes
 * a descriptor in it while its own numbers are all in use gets one in the
 * room. So the hooks that hand the program a new descriptor (socket,
 * accept, dup, fcntl's F_DUPFD, epoll_create, socketpair) close one at or
 * past the program's limit and fail with EMFILE, as without the shim
 * (ownfd_program_limit: one load, and the kernel asked only for a number
 * at or past the limit the last move saw). A fork waits for a move to
 * end (ownfd_atfork_prepare). */

/* A raise goes this far past the numbers the shim holds: numbers of the
 * program's may sit above its limit too (it lowered the limit after it
 * opened them), and the move must still find a free one up there. */
#define LIMIT_ROOM 32

static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;
static bool raised_now;             /* atomic: a raise for a move is in force */
static rlim_t program_seen;         /* atomic: the program's limit as last seen, 0 before a move */

/* Under limit_lock: rl is the limit in force, the program's. Raised to
 * past what the shim holds above it, within the hard limit: the soft limit
 * set, or 0 when there is no room (soft = hard) or the kernel says no. */
static rlim_t raise_for_move(const struct rlimit *rl)
{
    if (rl->rlim_cur == RLIM_INFINITY || rl->rlim_cur >= rl->rlim_max)
        return 0;
    rlim_t need = rl->rlim_cur + (rlim_t)__atomic_load_n(&n_owned, __ATOMIC_RELAXED) + 1;
    struct rlimit want = { need + LIMIT_ROOM, rl->rlim_max };
    if (want.rlim_cur > rl->rlim_max)
        want.rlim_cur = rl->rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) != 0)
        return 0;
    __atomic_store_n(&program_seen, rl->rlim_cur, __ATOMIC_RELAXED);
    __atomic_store_n(&raised_now, true, __ATOMIC_RELAXED);
    return want.rlim_cur;
}

/* Under limit_lock: the program's limit (program, the raise was `raised`)
 * back. Swapped in one call, so a limit the program set in the meantime
 * (neither ours nor what it had) is seen, and put back: the program's own
 * call wins. */
static void lower_after_move(const struct rlimit *program, rlim_t raised)
{
    struct rlimit was;
    if (prlimit(0, RLIMIT_NOFILE, program, &was) == 0 &&
        (was.rlim_cur != raised || was.rlim_max != program->rlim_max))
        prlimit(0, RLIMIT_NOFILE, &was, NULL);
    __atomic_store_n(&raised_now, false, __ATOMIC_RELAXED);
}

rlim_t ownfd_program_limit(int fd)
{
    rlim_t seen = __atomic_load_n(&program_seen, __ATOMIC_RELAXED);
    if (fd < 0 || !seen || (rlim_t)fd < seen)
        return 0;
    /* Rare: the program is at its limit, or has set a higher one since
     * (servers raise theirs to the hard limit). Under the lock, a move
     * under way is over and the limit in force is the program's. */
    struct rlimit rl;
    pthread_mutex_lock(&limit_lock);
    bool known = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY;
    pthread_mutex_unlock(&limit_lock);
    if (!known)
        return 0;
    if ((rlim_t)fd < rl.rlim_cur) {
        __atomic_store_n(&program_seen, rl.rlim_cur, __ATOMIC_RELAXED);
        return 0;
    }
    return rl.rlim_cur;
}

bool ownfd_limit_raised(void)
{
    return __atomic_load_n(&raised_now, __ATOMIC_RELAXED);
}

/* fork: no move is under way while the kernel copies the process, so the
 * child starts with the program's limit. (The copy of the limits and of
 * memory are not one instant for the other threads: a child forked in a
 * move's moment had the raise in force and, in memory, no sign of it.) */
void ownfd_atfork_prepare(void)
{
    pthread_mutex_lock(&limit_lock);
}

void ownfd_atfork_parent(void)
{
    pthread_mutex_unlock(&limit_lock);
}

void ownfd_atfork_child(void)
{
    pthread_mutex_init(&limit_lock, NULL);
}

/* With no room, where the shim's numbers go: half the limit, and no
 * higher than 1024, the first number past select()'s. Not higher: the
 * kernel's descriptor table of a process grows to the highest number in it
 * and never shrinks, and a fork child's copy is as large. Under
 * Kubernetes' usual 1048576 for both limits, half the limit (65536, the
 * old cap) made it 131072 entries, 1 MiB of kernel memory in every meshed
 * process and in each of its fork children (and in the program each one
 * execs), where 1024 makes it 16 KiB. */
#define NO_ROOM_BASE 1024

static int no_room_base(rlim_t limit)
{
    if (limit <= 64)
        return 3;
    return limit / 2 < NO_ROOM_BASE ? (int)(limit / 2) : NO_ROOM_BASE;
}

int ownfd_high(int fd)
{
    pthread_mutex_lock(&limit_lock);
    struct rlimit rl;
    rlim_t raised = 0;
    int base = 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        raised = raise_for_move(&rl);
        /* Above the program's numbers, else where no_room_base says. */
        base = raised ? (int)rl.rlim_cur : no_room_base(rl.rlim_cur);
    }
    if (base > 1 << 16)
        base = 1 << 16;
    int high = real_fcntl(fd, F_DUPFD_CLOEXEC, (void *)(long)base);
    if (high < 0)
        high = real_fcntl(fd, F_DUPFD_CLOEXEC, (void *)3L);
    int err = errno;
    if (raised)
        lower_after_move(&rl, raised);
    pthread_mutex_unlock(&limit_lock);
    ownfd_mark(high);
    errno = err;
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

bool ownfd_shortage(void)
{
    /* An eventfd needs nothing but a free number: no file, no folder, no
     * permission that could fail for another reason. */
    int saved = errno;
    int fd = eventfd(0, EFD_CLOEXEC);
    bool short_of = fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOMEM);
    if (fd >= 0)
        real_close(fd);
    errno = saved;
    return short_of;
}

/* ------------------------------------------------------ lingering close -- */

/* Set once the program gives a socket SO_LINGER with a time: until then no
 * close can wait, and none is looked at. */
static int linger_set;

void ownfd_saw_setsockopt(int level, int name, const void *val, socklen_t len)
{
    const struct linger *l = val;
    if (level == SOL_SOCKET && name == SO_LINGER && l && len >= sizeof(*l) && l->l_onoff && l->l_linger > 0)
        __atomic_store_n(&linger_set, 1, __ATOMIC_RELAXED);
}

/* Would fd's last close wait? Asked only once the program set such a
 * linger somewhere. errno is kept. */
static bool lingers(int fd)
{
    if (!__atomic_load_n(&linger_set, __ATOMIC_RELAXED))
        return false;
    int saved = errno;
    struct linger l;
    socklen_t len = sizeof(l);
    bool yes = real_getsockopt(fd, SOL_SOCKET, SO_LINGER, &l, &len) == 0 && l.l_onoff && l.l_linger > 0;
    errno = saved;
    return yes;
}

int ownfd_lingering(int fd)
{
    int saved = errno;
    int copy = lingers(fd) ? ownfd_high(fd) : -1;
    errno = saved;
    return copy;
}

int own_close_nowait(int fd)
{
    if (lingers(fd)) {
        static const struct linger off = { 0, 0 };
        real_setsockopt(fd, SOL_SOCKET, SO_LINGER, &off, sizeof(off));
    }
    return own_close(fd);
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
