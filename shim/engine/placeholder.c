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

#include "libc/ownfd.h"
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

/* ------------------------------------------------- epoll registrations -- */

/* Held for writing while a swap moves registrations (take them, dup3, add
 * them again), for reading by the application's epoll_ctl. Without it, an
 * asyncio loop that registers a connecting socket just after the engine
 * took the registrations and just before its dup3 loses the registration
 * with the placeholder and never hears that the connect finished: seen
 * under real network delay (make chaos-netem), once per ~1000 connects. */
static pthread_rwlock_t moving = PTHREAD_RWLOCK_INITIALIZER;

struct registration {
    int epfd;
    struct epoll_event ev;
};

/* The registrations of each descriptor number, as the application made them
 * (epoll_ctl is interposed): a swap moves them in O(its own registrations),
 * whatever the number of descriptors in the program's epoll sets. Issue 18
 * measured the earlier way, reading every set's /proc fdinfo, at 12.8 ms per
 * connect() with 10,000 descriptors in the set. An entry can outlive its
 * registration (the file closed, the set closed): a swap's EPOLL_CTL_DEL
 * says which still exist, and drops the others. */
struct fd_registrations {
    uint32_t n, cap;
    struct registration *v;
};

/* The hook changes the table holding `moving` for reading (so hooks in two
 * threads need this too); a swap, holding it for writing, needs nothing
 * more. */
static pthread_mutex_t table_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct fd_registrations *table;          /* indexed by descriptor */
static size_t table_len;

#define MOVE_MAX 64                 /* registrations one swap moves */

static struct fd_registrations *slot(int fd, bool grow)
{
    if (fd < 0)
        return NULL;
    if ((size_t)fd >= table_len) {
        if (!grow)
            return NULL;
        size_t len = table_len ? table_len : 64;
        while (len <= (size_t)fd)
            len *= 2;
        struct fd_registrations *t = realloc(table, len * sizeof(*t));
        if (!t)
            return NULL;
        memset(t + table_len, 0, (len - table_len) * sizeof(*t));
        table = t;
        table_len = len;
    }
    return &table[fd];
}

static void record_set(int fd, int epfd, const struct epoll_event *ev)
{
    struct fd_registrations *r = slot(fd, true);
    if (!r)
        return;
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->v[i].epfd == epfd) {
            r->v[i].ev = *ev;
            return;
        }
    }
    if (r->n == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 1;
        struct registration *v = realloc(r->v, cap * sizeof(*v));
        if (!v)
            return;
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n].epfd = epfd;
    r->v[r->n].ev = *ev;
    r->n++;
}

static void record_drop(int fd, int epfd)
{
    struct fd_registrations *r = slot(fd, false);
    for (uint32_t i = 0; r && i < r->n; i++) {
        if (r->v[i].epfd == epfd) {
            r->v[i] = r->v[--r->n];
            return;
        }
    }
}

int placeholder_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    pthread_rwlock_rdlock(&moving);
    int rc = real_epoll_ctl(epfd, op, fd, ev);
    int err = errno;
    bool set = rc == 0 && (op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && ev;
    bool gone = (rc == 0 && op == EPOLL_CTL_DEL) || (rc < 0 && err == ENOENT);
    if (set || gone) {
        pthread_mutex_lock(&table_mutex);
        if (set)
            record_set(fd, epfd, ev);
        else
            record_drop(fd, epfd);
        pthread_mutex_unlock(&table_mutex);
    }
    pthread_rwlock_unlock(&moving);
    errno = err;
    return rc;
}

/* A one-shot registration that has fired is disarmed in the kernel, which
 * the table cannot know: its state is read from the set's fdinfo, "tfd: FD
 * events: HEX data: HEX pos:N ino:HEX sdev:HEX" (O(the set), one-shot only).
 * Added again it stays disarmed but for EPOLLERR|EPOLLHUP, which the kernel
 * always arms: a socket that fails to connect still reports it once. */
static void refresh_one_shot(struct registration *reg, int fd, ino_t ino)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", reg->epfd);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        int tfd;
        unsigned events;
        unsigned long tino;
        if (sscanf(line, "tfd: %d events: %x data: %*s pos:%*d ino:%lx", &tfd, &events, &tino) == 3 &&
            tfd == fd && (ino_t)tino == ino) {
            reg->ev.events = events;
            break;
        }
    }
    fclose(f);
}

/* Takes fd's registrations out of every set that still has them (under
 * `moving`, held for writing). Returns how many, in regs. */
static size_t take_registrations(int fd, ino_t ino, struct registration *regs)
{
    size_t n = 0;
    struct fd_registrations *r = slot(fd, false);
    for (uint32_t i = 0; r && i < r->n && n < MOVE_MAX; i++)
        regs[n++] = r->v[i];

    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (regs[i].ev.events & EPOLLONESHOT)
            refresh_one_shot(&regs[i], fd, ino);
        if (real_epoll_ctl(regs[i].epfd, EPOLL_CTL_DEL, fd, NULL) == 0)
            regs[kept++] = regs[i];
        else
            record_drop(fd, regs[i].epfd);
    }
    return kept;
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
    struct registration regs[MOVE_MAX];
    pthread_rwlock_wrlock(&moving);
    size_t n = take_registrations(fd, ino, regs);
    int fdflags = real_fcntl(fd, F_GETFD, NULL);
    int rc = real_dup3(with, fd, fdflags > 0 && (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0);
    int err = errno;
    for (size_t i = 0; i < n; i++)
        real_epoll_ctl(regs[i].epfd, EPOLL_CTL_ADD, fd, &regs[i].ev);
    pthread_rwlock_unlock(&moving);
    errno = err;
    return rc;
}

/* ----------------------------------------------------------- placeholder -- */

size_t placeholder_fill(int fd, struct placeholder *ph)
{
    if (!identity(fd, &ph->ino, &ph->dev))
        return 0;
    int size = 1;       /* the kernel makes it its minimum, a few KiB */
    real_setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    static const char zeros[4096];
    size_t written = 0;
    for (int i = 0; i < 64; i++) {
        ssize_t n = real_send(fd, zeros, sizeof(zeros), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN && written ? written : 0;
        written += (size_t)n;
    }
    return 0;
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
    ph->peer = ownfd_move(sv[1]);
    if (ph->peer < 0 || !(ph->filler = placeholder_fill(sv[0], ph)) ||
        (sock = ownfd_high(fd)) < 0 || swap_file(fd, sock_ino, sv[0]) < 0) {
        int err = errno ? errno : ENOMEM;
        if (sock >= 0)
            own_close(sock);
        if (ph->peer >= 0)
            own_close(ph->peer);
        real_close(sv[0]);
        errno = err;
        return -1;
    }
    real_close(sv[0]);          /* the application's number holds it now */
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

int placeholder_open(int fd, struct placeholder *ph)
{
    /* The engine's end was never changed: its send buffer is a new end's. */
    int sndbuf;
    socklen_t len = sizeof(sndbuf);
    if (fd >= 0 && real_getsockopt(ph->peer, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) == 0) {
        sndbuf /= 2;                /* the kernel doubles what it is given */
        real_setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    }
    /* Every byte of the filler out, and not one more: what the application
     * writes once its end is writable is the relay's to read. */
    char scratch[4096];
    while (ph->filler) {
        size_t want = ph->filler < sizeof(scratch) ? ph->filler : sizeof(scratch);
        ssize_t n = real_recv(ph->peer, scratch, want, MSG_DONTWAIT);
        if (n <= 0) {
            errno = n < 0 ? errno : EPIPE;
            return -1;
        }
        ph->filler -= (size_t)n;
    }
    int engine = ph->peer;
    ph->peer = -1;
    return engine;
}

void placeholder_release(struct placeholder *ph)
{
    if (ph->peer >= 0) {
        /* Closing with the filler unread gives the application's end
         * ECONNRESET and HUP: a poll() asleep on it wakes up. */
        own_close(ph->peer);
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
    pthread_mutex_lock(&table_mutex);
}

void placeholder_atfork_parent(void)
{
    pthread_mutex_unlock(&table_mutex);
    pthread_rwlock_unlock(&moving);
    pthread_mutex_unlock(&swap_mutex);
}

/* The child keeps the table: its descriptors and their registrations are
 * the parent's at the fork (the sets themselves are shared with it). */
void placeholder_atfork_child(void)
{
    pthread_mutex_init(&table_mutex, NULL);
    pthread_rwlock_init(&moving, NULL);
    pthread_mutex_init(&swap_mutex, NULL);
}
