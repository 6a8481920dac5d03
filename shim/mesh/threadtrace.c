/*
 * threadtrace.c — trace_propagation = thread (threadtrace.h says what and
 * why). The state of one connection is a struct threadtrace, owned by its
 * conn; the state of one thread, what it serves, is thread-local.
 */
#include "mesh/threadtrace.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "libc/real.h"
#include "mesh/conn.h"
#include "mesh/fdtable.h"
#include "meshim/config.h"

#define MARKS 8                     /* heads given to the application, not yet read */
#define STAMPS 4                    /* the last writes on an outbound connection */
/* A hook's tries to read a count between two moves of the engine: first
 * by sched_yield, then by naps (a few ms in all before it gives up). */
#define SEQ_YIELDS 64
#define SEQ_NAPS 100
#define SEQ_NAP_NS 20000            /* 20 µs */

struct mark {
    uint64_t at;                    /* the head's end in what goes to the application */
    struct trace_context ctx;
};

struct stamp {
    uint64_t from, to;              /* the write's bytes in what the application wrote */
    bool has;                       /* the writer served a request: ctx is its context */
    struct trace_context ctx;
};

struct threadtrace {
    unsigned seq;                   /* atomic: odd while the engine moves bytes */
    uint64_t moved;                 /* atomic: bytes moved across the pair */
    int engine_end;                 /* outbound: the engine's end (-1 inbound) */
    uint64_t id;                    /* tells one connection from a later one at its number */
    struct mark marks[MARKS];       /* under lock, as the stamps */       /* first, first+1, … : oldest first */
    unsigned first, n;
    bool overflowed;                /* a head found no room: positions no longer say which */
    struct stamp stamps[STAMPS];
    unsigned next_stamp;
};

bool threadtrace_live;

/* What this thread serves. */
static __thread struct serving {
    bool never;                     /* it read a head while serving another connection */
    bool on;
    int fd;                         /* the inbound descriptor it serves */
    uint64_t id;                    /* ... whose threadtrace this was */
    struct trace_context ctx;       /* the request's server span */
} serving __attribute__((tls_model("initial-exec")));

static uint64_t next_id;            /* atomic */
/* Every connection's marks and stamps: held for a few loads and stores,
 * never around a call, and taken last of the shim's locks (fork takes it). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

bool threadtrace_inbound(const struct mesh_config *cfg, const struct inbound_config *in)
{
    return cfg->otlp_endpoint && in->protocol == PROTO_HTTP &&
           in->trace_propagation == PROPAGATE_THREAD;
}

bool threadtrace_outbound(const struct mesh_config *cfg)
{
    for (size_t i = 0; i < cfg->n_inbound; i++)
        if (threadtrace_inbound(cfg, &cfg->inbound[i]))
            return true;
    return false;
}

struct threadtrace *threadtrace_new(int engine_end)
{
    struct threadtrace *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->engine_end = engine_end;
    t->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&threadtrace_live, true, __ATOMIC_RELAXED);
    return t;
}

void threadtrace_free(struct threadtrace *t)
{
    free(t);
}

uint64_t threadtrace_moved(const struct threadtrace *t)
{
    return __atomic_load_n(&t->moved, __ATOMIC_RELAXED);    /* the engine's own count */
}

void threadtrace_atfork_prepare(void)
{
    pthread_mutex_lock(&lock);
}

void threadtrace_atfork_parent(void)
{
    pthread_mutex_unlock(&lock);
}

void threadtrace_atfork_child(void)
{
    pthread_mutex_init(&lock, NULL);
}

/* ----------------------------------------------------------------- engine -- */

void threadtrace_move_begin(struct threadtrace *t)
{
    __atomic_add_fetch(&t->seq, 1, __ATOMIC_SEQ_CST);
}

void threadtrace_move_end(struct threadtrace *t, size_t n)
{
    __atomic_add_fetch(&t->moved, n, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&t->seq, 1, __ATOMIC_SEQ_CST);
}

void threadtrace_head(struct threadtrace *t, uint64_t at, const struct trace_context *ctx)
{
    pthread_mutex_lock(&lock);
    if (t->n == MARKS) {
        t->overflowed = true;       /* more than MARKS heads unread: pipelining, give up */
    } else {
        t->marks[(t->first + t->n) % MARKS] = (struct mark){ .at = at, .ctx = *ctx };
        t->n++;
    }
    pthread_mutex_unlock(&lock);
}

bool threadtrace_request(struct threadtrace *t, uint64_t at, struct trace_context *out)
{
    bool found = false;
    pthread_mutex_lock(&lock);
    /* The newest write holding the head's first byte. */
    for (unsigned i = 0; i < STAMPS; i++) {
        const struct stamp *s = &t->stamps[(t->next_stamp + STAMPS - 1 - i) % STAMPS];
        if (s->from <= at && at < s->to) {
            found = s->has;
            *out = s->ctx;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

/* ------------------------------------------------------------------ hooks -- */

/* The bytes the application has read (inbound: moved less what waits in
 * its socket fd) or written (outbound: moved plus what waits in the
 * engine's end), read between two moves of the engine. False: no answer
 * (the socket said nothing, or the engine kept moving). */
static bool position(struct threadtrace *t, int fd, bool inbound, uint64_t *out)
{
    int saved = errno;
    bool ok = false;
    for (int i = 0; i < SEQ_YIELDS + SEQ_NAPS && !ok; i++) {
        unsigned s = __atomic_load_n(&t->seq, __ATOMIC_SEQ_CST);
        if (s & 1) {
            /* The engine is inside its send: the very send that woke this
             * thread's read, which returns before the send does. A yield
             * lets it finish when it shares this CPU; but when the
             * scheduler keeps picking this thread (the engine has run
             * more), only a sleep hands the CPU over. */
            if (i < SEQ_YIELDS)
                sched_yield();
            else
                nanosleep(&(struct timespec){ 0, SEQ_NAP_NS }, NULL);
            continue;
        }
        uint64_t moved = __atomic_load_n(&t->moved, __ATOMIC_SEQ_CST);
        int waiting = 0;
        if (real_ioctl(inbound ? fd : t->engine_end, FIONREAD, &waiting) < 0 || waiting < 0)
            break;
        if (__atomic_load_n(&t->seq, __ATOMIC_SEQ_CST) != s)
            continue;
        *out = inbound ? moved - (uint64_t)waiting : moved + (uint64_t)waiting;
        ok = !inbound || (uint64_t)waiting <= moved;
        break;
    }
    errno = saved;
    return ok;
}

static void stop_serving(void)
{
    serving.on = false;
    serving.fd = -1;
}

/* A read on fd (connection id) may have passed a head: the thread ends
 * what it served; if that was another connection, it is an event loop. */
static void leave_serving(int fd, uint64_t id)
{
    if (serving.on && (serving.fd != fd || serving.id != id))
        serving.never = true;       /* two connections at once: an event loop */
    stop_serving();
}

void threadtrace_read(int fd)
{
    struct conn *c = fdtable_get(fd);
    struct threadtrace *t = c ? c->tt : NULL;
    uint64_t read_to;
    if (!t) {
        conn_unref(c);
        return;
    }
    if (!position(t, fd, true, &read_to)) {
        /* Which bytes it read is not known, so neither is whether a head
         * passed: lend nothing that is not certain. */
        leave_serving(fd, t->id);
        conn_unref(c);
        return;
    }
    struct trace_context ctx;
    unsigned passed = 0;
    pthread_mutex_lock(&lock);
    while (t->n && t->marks[t->first].at <= read_to) {
        ctx = t->marks[t->first].ctx;
        t->first = (t->first + 1) % MARKS;
        t->n--;
        passed++;
    }
    bool lost = t->overflowed;
    pthread_mutex_unlock(&lock);
    uint64_t id = t->id;
    conn_unref(c);
    if (!passed)
        return;                     /* a body, or the rest of a head */
    leave_serving(fd, id);
    if (passed > 1 || lost || serving.never)
        return;                     /* which request it serves is not certain */
    serving = (struct serving){ .on = true, .fd = fd, .id = id, .ctx = ctx };
}

/* The context this thread serves, if its descriptor still holds the same
 * connection (another thread may have closed it and the number been
 * reused). */
static bool served_context(struct trace_context *out)
{
    if (!serving.on)
        return false;
    struct conn *c = fdtable_get(serving.fd);
    bool same = c && c->tt && c->tt->id == serving.id;
    conn_unref(c);
    if (!same) {
        stop_serving();
        return false;
    }
    *out = serving.ctx;
    return true;
}

static void stamp(int fd, size_t len)
{
    struct conn *c = fdtable_get(fd);
    struct threadtrace *t = c ? c->tt : NULL;
    uint64_t from;
    if (t && position(t, fd, false, &from)) {
        struct stamp s = { .from = from, .to = from + len };
        s.has = served_context(&s.ctx);
        pthread_mutex_lock(&lock);
        t->stamps[t->next_stamp] = s;
        t->next_stamp = (t->next_stamp + 1) % STAMPS;
        pthread_mutex_unlock(&lock);
    }
    conn_unref(c);
}

void threadtrace_write(int fd, bool outbound, size_t len)
{
    if (outbound) {
        if (len)
            stamp(fd, len);
    } else if (serving.on && serving.fd == fd) {
        stop_serving();             /* the answer begins */
    }
}

void threadtrace_closing(int fd)
{
    if (serving.on && serving.fd == fd)
        stop_serving();
}
