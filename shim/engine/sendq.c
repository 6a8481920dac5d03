/*
 * sendq.c — the engine's short sends of one turn, made together (see
 * sendq.h).
 *
 * The queue holds at most QUEUE_MAX sends and ARENA_SIZE bytes: a turn
 * handles at most 64 events, and a request or answer that fits SENDQ_MAX
 * is what is worth sharing a call for. A flush prepares one ring entry per
 * send still wanted, submits them in one io_uring_enter, and takes their
 * completions, which the kernel posted before the call returned (each send
 * was made at once: MSG_DONTWAIT). Then the queue is empty again, and only
 * then are the owners told, since each may queue its next send.
 *
 * Should a completion not be there (a kernel that parked a send after all),
 * the ring's requests are cancelled and waited for, so a flush never
 * leaves one behind, and the process stops using the ring: a parked send
 * could otherwise hold the engine.
 */
#include "engine/sendq.h"

#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>

#include "libc/ownfd.h"
#include "libc/real.h"
#include "meshim/mesh.h"
#include "observe/log.h"

#define QUEUE_MAX 64
#define RING_ENTRIES 128                /* the queue's sends and a cancel */
#define ARENA_SIZE (64u * 1024)
#define CANCEL_TAG UINT64_MAX           /* user_data of the cancel: no send's */

struct entry {
    int fd;
    uint32_t off, len;                  /* the bytes, in the arena */
    sendq_done_fn *done;
    void *owner;                        /* NULL: cancelled */
    ssize_t result;
};

enum ring_state { RING_UNTRIED, RING_ON, RING_OFF };

static enum ring_state state;           /* engine thread only, as all below */
static struct io_uring ring;
static struct entry queue[QUEUE_MAX];
static unsigned n_queued;
static char *arena;
static uint32_t arena_used;
/* The last flush's sends while their owners are told: a done may end
 * another owner (sendq_cancel), whose own done must then not run. */
static struct entry told[QUEUE_MAX];
static unsigned n_told;

/* ------------------------------------------------------------------ ring -- */

/* Major and minor of the running kernel, at least those given. */
static bool kernel_at_least(int major, int minor)
{
    struct utsname u;
    int ma = 0, mi = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
        return false;
    return ma > major || (ma == major && mi >= minor);
}

/* Why not, or NULL: the ring is made. */
static const char *ring_open(void)
{
    if (!kernel_at_least(6, 0))
        return "the kernel is older than 6.0";
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 0)
        return "the process runs under a seccomp filter";
    if (!arena && !(arena = malloc(ARENA_SIZE)))   /* kept from then on */
        return "no memory";
    /* One thread submits (the engine's), and it needs no interrupt to be
     * told of completions: it takes them in the same call. */
    struct io_uring_params p = { .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN };
    int rc = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
    if (rc < 0)
        return strerror(-rc);
    /* The program's close_range and closefrom must not reach it (ownfd.h). */
    int fd = ownfd_move(ring.ring_fd);
    if (fd < 0) {
        ring.ring_fd = ring.enter_ring_fd = -1;
        io_uring_queue_exit(&ring);
        return "no descriptor left";
    }
    ring.ring_fd = ring.enter_ring_fd = fd;
    return NULL;
}

static void ring_close(void)
{
    int fd = ring.ring_fd;
    ring.ring_fd = ring.enter_ring_fd = -1;     /* liburing's close: ours is own_close */
    io_uring_queue_exit(&ring);
    own_close(fd);
}

static bool ring_ready(void)
{
    if (state == RING_UNTRIED) {
        const char *why = ring_open();
        state = why ? RING_OFF : RING_ON;
        if (why)
            log_debug("engine: short sends are made one by one (no io_uring: %s)", why);
    }
    return state == RING_ON;
}

/* --------------------------------------------------------------- queueing -- */

/* [meshim] io_uring, as the config in force says (a reload may turn it
 * off, or on again). */
static bool config_wants_ring(void)
{
    const struct registry *reg = mesh_registry();
    return reg && reg->cfg->io_uring;
}

bool sendq_add(int fd, const void *data, size_t len, sendq_done_fn *done, void *owner)
{
    if (!len || len > SENDQ_MAX || n_queued == QUEUE_MAX || (arena && ARENA_SIZE - arena_used < len) ||
        !config_wants_ring() || !ring_ready())
        return false;
    struct entry *e = &queue[n_queued++];
    *e = (struct entry){ .fd = fd, .off = arena_used, .len = (uint32_t)len, .done = done, .owner = owner };
    memcpy(arena + arena_used, data, len);
    arena_used += (uint32_t)len;
    return true;
}

void sendq_cancel(void *owner)
{
    for (unsigned i = 0; i < n_queued; i++)
        if (queue[i].owner == owner)
            queue[i].owner = NULL;
    for (unsigned i = 0; i < n_told; i++)
        if (told[i].owner == owner)
            told[i].owner = NULL;
}

bool sendq_pending(void)
{
    return n_queued != 0;
}

bool sendq_ring_made(void)
{
    return state == RING_ON;
}

/* ------------------------------------------------------------------ flush -- */

/* Takes the completions there are; the count. */
static unsigned take_ready(void)
{
    unsigned got = 0;
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&ring, &cqe) == 0) {
        if (cqe->user_data != CANCEL_TAG) {
            queue[cqe->user_data].result = cqe->res;
            got++;
        }
        io_uring_cqe_seen(&ring, cqe);
    }
    return got;
}

/* Some send was not done when the call returned: every request of the
 * ring is cancelled, and all their completions waited for (a cancelled
 * send reports -ECANCELED: nothing of it went). */
static void cancel_parked(unsigned got, unsigned wanted)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    sqe->user_data = CANCEL_TAG;
    io_uring_submit(&ring);
    bool cancel_done = false;
    while (got < wanted || !cancel_done) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe(&ring, &cqe);
        if (rc == -EINTR)
            continue;
        if (rc < 0)
            break;
        if (cqe->user_data == CANCEL_TAG)
            cancel_done = true;
        else {
            queue[cqe->user_data].result = cqe->res;
            got++;
        }
        io_uring_cqe_seen(&ring, cqe);
    }
    log_warn("engine: the kernel held a send that was not to wait; sends are made one by one from now on");
}

/* Submits the queue's sends: true when each entry's result is set (the
 * ring may be given up after), false when nothing was sent. */
static bool submit(void)
{
    unsigned wanted = 0;
    for (unsigned i = 0; i < n_queued; i++) {
        struct entry *e = &queue[i];
        e->result = -ECANCELED;
        if (!e->owner)
            continue;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_send(sqe, e->fd, arena + e->off, e->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        sqe->user_data = i;
        wanted++;
    }
    if (!wanted)
        return true;
    int rc;
    do
        rc = io_uring_submit(&ring);
    while (rc == -EINTR);
    unsigned got = take_ready();
    if (rc == (int)wanted && got == wanted)
        return true;
    if (rc >= 0)
        cancel_parked(got, wanted);     /* (entries not taken yet go with the cancel's call) */
    else
        log_warn("engine: io_uring: %s; sends are made one by one from now on", strerror(-rc));
    /* Nothing was taken when rc < 0: those entries go with the ring. */
    ring_close();
    state = RING_OFF;
    return rc >= 0;
}

static unsigned live(void)
{
    unsigned n = 0;
    for (unsigned i = 0; i < n_queued; i++)
        n += queue[i].owner != NULL;
    return n;
}

static void flush_once(void)
{
    /* A send alone in its turn shares the call with nothing: send() costs
     * less than a ring entry and io_uring_enter. */
    bool by_ring = state == RING_ON && live() > 1 && submit();
    for (unsigned i = 0; i < n_queued; i++) {
        struct entry *e = &queue[i];
        if (!by_ring && e->owner) {
            ssize_t n = real_send(e->fd, arena + e->off, e->len, MSG_DONTWAIT | MSG_NOSIGNAL);
            e->result = n < 0 ? -errno : n;
        }
    }
    n_told = n_queued;
    memcpy(told, queue, n_told * sizeof(*told));
    n_queued = 0;
    arena_used = 0;
    for (unsigned i = 0; i < n_told; i++) {
        struct entry *e = &told[i];
        if (e->owner) {
            void *owner = e->owner;
            e->owner = NULL;
            e->done(owner, e->result == -ECANCELED ? -EAGAIN : e->result, e->len);
        }
    }
    n_told = 0;
}

void sendq_flush(void)
{
    /* A done may queue the owner's next send: a few rounds, the rest in
     * the next turn (which then does not wait). */
    for (int round = 0; n_queued && round < 4; round++)
        flush_once();
}

void sendq_atfork_child(void)
{
    if (state == RING_ON)
        ring_close();
    state = RING_UNTRIED;
    n_queued = n_told = 0;
    arena_used = 0;
}
