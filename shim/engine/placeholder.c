/*
 * placeholder.c — the socketpair that stands in for a connecting socket,
 * and the swaps that move a descriptor number and its epoll registrations
 * between the two (see placeholder.h).
 */
#include "engine/placeholder.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "libc/real.h"

int placeholders_live;

static pthread_mutex_t swap_mutex = PTHREAD_MUTEX_INITIALIZER;

void swap_lock(void)
{
    pthread_mutex_lock(&swap_mutex);
}

void swap_unlock(void)
{
    pthread_mutex_unlock(&swap_mutex);
}

/* ----------------------------------------------------------- epoll sets -- */

/* Held for writing while a swap moves registrations (read them, dup3, add
 * them again), for reading by the application's epoll_ctl while swaps are
 * possible. Without it, an asyncio loop that registers a connecting socket
 * just after the engine read the (empty) registrations and just before its
 * dup3 loses the registration with the placeholder and never hears that
 * the connect finished: seen under real network delay (make chaos-netem),
 * about once per thousand connections. */
static pthread_rwlock_t moving = PTHREAD_RWLOCK_INITIALIZER;

int placeholder_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    pthread_rwlock_rdlock(&moving);
    int rc = real_epoll_ctl(epfd, op, fd, ev);
    int err = errno;
    pthread_rwlock_unlock(&moving);
    errno = err;
    return rc;
}

/* Every epoll set the application created; a number that is no longer an
 * epoll set is pruned when met. */
static pthread_mutex_t epoll_mutex = PTHREAD_MUTEX_INITIALIZER;
static int *epoll_sets;
static size_t n_epoll_sets, cap_epoll_sets;

void placeholder_epoll_created(int epfd)
{
    pthread_mutex_lock(&epoll_mutex);
    bool known = false;
    for (size_t i = 0; i < n_epoll_sets && !known; i++)
        known = epoll_sets[i] == epfd;
    if (!known && n_epoll_sets == cap_epoll_sets) {
        size_t cap = cap_epoll_sets ? cap_epoll_sets * 2 : 8;
        int *grown = realloc(epoll_sets, cap * sizeof(*grown));
        if (grown) {
            epoll_sets = grown;
            cap_epoll_sets = cap;
        }
    }
    if (!known && n_epoll_sets < cap_epoll_sets)
        epoll_sets[n_epoll_sets++] = epfd;
    pthread_mutex_unlock(&epoll_mutex);
}

struct registration {
    int epfd;
    struct epoll_event ev;
};

#define MAX_REGISTRATIONS 8

/* Reads /proc/self/fdinfo/EPFD: its "tfd:" lines are the registrations,
 * "tfd: FD events: HEX data: HEX pos:N ino:HEX sdev:HEX". Appends those of
 * (fd, ino) to regs. Returns false when epfd is not an epoll set. */
static bool scan_set(int epfd, int fd, ino_t ino, struct registration *regs, size_t *n)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    char line[256];
    bool is_epoll = false;
    while (fgets(line, sizeof(line), f)) {
        int tfd;
        unsigned events;
        unsigned long long data;
        unsigned long tino;
        if (sscanf(line, "tfd: %d events: %x data: %llx pos:%*d ino:%lx", &tfd, &events, &data,
                   &tino) != 4)
            continue;
        is_epoll = true;
        if (tfd == fd && (ino_t)tino == ino && *n < MAX_REGISTRATIONS) {
            regs[*n].epfd = epfd;
            regs[*n].ev.events = events;
            regs[*n].ev.data.u64 = data;
            (*n)++;
        }
    }
    fclose(f);
    if (!is_epoll) {
        /* An empty set has no tfd lines: ask the link what it is. */
        char link[64], target[64];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", epfd);
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        is_epoll = len > 0 && (size_t)len == strlen("anon_inode:[eventpoll]") &&
                   memcmp(target, "anon_inode:[eventpoll]", (size_t)len) == 0;
    }
    return is_epoll;
}

static size_t find_registrations(int fd, ino_t ino, struct registration *regs)
{
    size_t n = 0;
    pthread_mutex_lock(&epoll_mutex);
    for (size_t i = 0; i < n_epoll_sets;) {
        if (scan_set(epoll_sets[i], fd, ino, regs, &n))
            i++;
        else
            epoll_sets[i] = epoll_sets[--n_epoll_sets];
    }
    pthread_mutex_unlock(&epoll_mutex);
    return n;
}

static bool identity(int fd, ino_t *ino, dev_t *dev)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return false;
    *ino = st.st_ino;
    *dev = st.st_dev;
    return true;
}

/* Replaces the file at fd with the one at `with`, moving fd's epoll
 * registrations (those of file `ino`) to the new file. */
static int swap_file(int fd, ino_t ino, int with)
{
    struct registration regs[MAX_REGISTRATIONS];
    pthread_rwlock_wrlock(&moving);
    size_t n = find_registrations(fd, ino, regs);
    int fdflags = real_fcntl(fd, F_GETFD, NULL);
    for (size_t i = 0; i < n; i++)
        real_epoll_ctl(regs[i].epfd, EPOLL_CTL_DEL, fd, NULL);
    int rc = real_dup3(with, fd, fdflags > 0 && (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0);
    int err = errno;
    for (size_t i = 0; i < n; i++)
        real_epoll_ctl(regs[i].epfd, EPOLL_CTL_ADD, fd, &regs[i].ev);
    pthread_rwlock_unlock(&moving);
    errno = err;
    return rc;
}

/* ----------------------------------------------------------- placeholder -- */

int high_fd(int fd)
{
    struct rlimit rl;
    int base = 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 64)
        base = (int)(rl.rlim_cur / 2);
    if (base > 1 << 16)
        base = 1 << 16;
    int high = real_fcntl(fd, F_DUPFD_CLOEXEC, (void *)(long)base);
    if (high < 0)
        high = real_fcntl(fd, F_DUPFD_CLOEXEC, (void *)3L);
    return high;
}

/* Fills the send buffer of the application's end so that it is not
 * writable (AF_UNIX: writable while a quarter of the buffer is free). */
static bool fill(int fd)
{
    int size = 1;       /* the kernel makes it its minimum, a few KiB */
    real_setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    static const char zeros[4096];
    for (int i = 0; i < 64; i++) {
        if (send(fd, zeros, sizeof(zeros), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            return errno == EAGAIN;
    }
    return false;
}

int placeholder_install(int fd, struct placeholder *ph)
{
    int sv[2];
    ino_t sock_ino;
    dev_t sock_dev;
    if (!identity(fd, &sock_ino, &sock_dev) ||
        real_socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    int sock = -1;
    ph->peer = high_fd(sv[1]);
    real_close(sv[1]);
    if (ph->peer < 0 || !fill(sv[0]) || !identity(sv[0], &ph->ino, &ph->dev) ||
        (sock = high_fd(fd)) < 0 || swap_file(fd, sock_ino, sv[0]) < 0) {
        int err = errno ? errno : ENOMEM;
        if (sock >= 0)
            real_close(sock);
        if (ph->peer >= 0)
            real_close(ph->peer);
        real_close(sv[0]);
        errno = err;
        return -1;
    }
    real_close(sv[0]);
    __atomic_add_fetch(&placeholders_live, 1, __ATOMIC_ACQ_REL);
    return sock;
}

bool placeholder_at(int fd, const struct placeholder *ph)
{
    ino_t ino;
    dev_t dev;
    return identity(fd, &ino, &dev) && ino == ph->ino && dev == ph->dev;
}

bool placeholder_restore(int fd, const struct placeholder *ph, int sock)
{
    if (!placeholder_at(fd, ph))
        return false;
    /* fcntl(F_SETFL) made while connecting went to the placeholder. */
    int fl = real_fcntl(fd, F_GETFL, NULL);
    if (fl >= 0)
        real_fcntl(sock, F_SETFL, (void *)(long)fl);
    return swap_file(fd, ph->ino, sock) >= 0;
}

int placeholder_put_back(int fd, int sock)
{
    ino_t ino;
    dev_t dev;
    if (!identity(fd, &ino, &dev))
        return -1;
    return swap_file(fd, ino, sock);
}

void placeholder_release(struct placeholder *ph)
{
    if (ph->peer >= 0) {
        /* Closing with the filler unread gives the application's end
         * ECONNRESET and HUP: a poll() asleep on it wakes up. */
        real_close(ph->peer);
        ph->peer = -1;
    }
}

void placeholder_hold(void)
{
    __atomic_add_fetch(&placeholders_live, 1, __ATOMIC_ACQ_REL);
}

void placeholder_done(void)
{
    __atomic_sub_fetch(&placeholders_live, 1, __ATOMIC_ACQ_REL);
}

/* ----------------------------------------------------------------- fork -- */

void placeholder_atfork_prepare(void)
{
    pthread_mutex_lock(&swap_mutex);
    pthread_rwlock_wrlock(&moving);
    pthread_mutex_lock(&epoll_mutex);
}

void placeholder_atfork_parent(void)
{
    pthread_mutex_unlock(&epoll_mutex);
    pthread_rwlock_unlock(&moving);
    pthread_mutex_unlock(&swap_mutex);
}

void placeholder_atfork_child(void)
{
    pthread_mutex_init(&epoll_mutex, NULL);
    pthread_rwlock_init(&moving, NULL);
    pthread_mutex_init(&swap_mutex, NULL);
}
