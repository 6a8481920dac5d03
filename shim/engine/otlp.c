/*
 * otlp.c — the span exporter (otlp.h): a bounded queue and one thread that
 * posts batches to the collector over OTLP/HTTP, JSON encoded.
 *
 * The thread's loop:
 *
 *   WAIT   --(a span queued)-------------------------> GATHER
 *   GATHER --(BATCH_MAX queued, BATCH_WAIT_MS over,
 *             or a flush asked at exit)--------------> SEND (up to BATCH_MAX)
 *   SEND   --(2xx)-----------------------------------> exported; WAIT
 *          --(429, 502, 503, 504, no connection,
 *             timeout: a try of TRIES left)----------> back off, SEND again
 *          --(anything else, or no try left)---------> dropped; WAIT
 *
 * Each try is bounded (CONNECT_MS to connect, IO_MS for the exchange), so a
 * collector that is down or black-holed costs the exporter time, never the
 * application: its threads only copy spans into the queue, and when the
 * queue is full they drop the span and count it. The connection to the
 * collector is kept between batches (HTTP/1.1 keep-alive) and opened again
 * when the collector closed it. One warning per WARN_EVERY_NS at most.
 *
 * The collector's URL and the service name are read from the registry in
 * force at each batch (a reload may change them; a published registry is
 * never freed). The socket is the shim's (ownfd.h): a program that closes
 * every descriptor cannot take it.
 */
#include "engine/otlp.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "libc/ownfd.h"
#include "libc/real.h"
#include "meshim/http1.h"
#include "meshim/mesh.h"
#include "observe/log.h"
#include "observe/metrics.h"

#define QUEUE_MAX 2048              /* spans waiting; more are dropped */
#define BATCH_MAX 256
#define BATCH_WAIT_MS 200           /* a batch waits this long to fill */
#define SPAN_JSON_MAX 3072          /* one span's JSON at most (its texts are bounded) */
#define CONNECT_MS 1000
#define IO_MS 3000
#define TRIES 3
#define BACKOFF_MS 100              /* before the second try; doubled before the third */
#define WARN_EVERY_NS (10ull * 1000000000u)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;         /* the exporter: spans queued, or a flush asked */
static pthread_cond_t drained;      /* otlp_exit: the queue is empty and nothing in flight */
static bool cond_ready, running, flushing, busy;
static struct span *queue;          /* a ring of QUEUE_MAX, allocated with the thread */
static unsigned head, count;
static uint64_t sampled, overflowed; /* spans submitted; of them, dropped for a full queue (under lock) */

/* The exporter thread's own. */
static struct span *batch;
static char *body;
static size_t body_cap;
static int collector = -1;
static char collector_url[600];     /* what `collector` is connected to */
static uint64_t last_warn_ns;
static struct h1_parser resp;

/* Is tracing on in cfg (an otlp_endpoint)? */
static bool otlp_enabled(const struct mesh_config *cfg)
{
    return cfg && cfg->otlp_endpoint;
}

static void init_conds(void)
{
    engine_cond_init(&wake);
    engine_cond_init(&drained);
    cond_ready = true;
}

static struct timespec in_ms(unsigned ms)
{
    return engine_timespec(now_ns() + (uint64_t)ms * 1000000u);
}

static void warn_limited(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn_limited(const char *fmt, ...)
{
    uint64_t now = now_ns();
    if (last_warn_ns && now - last_warn_ns < WARN_EVERY_NS)
        return;
    last_warn_ns = now;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    log_warn("tracing: %s", line);
}

/* ------------------------------------------------------------- the wire -- */

static void collector_close(void)
{
    if (collector >= 0)
        own_close(collector);
    collector = -1;
}

/* Waits for events on the collector's socket until the deadline (ms on
 * CLOCK_MONOTONIC); false on timeout or error. */
static bool wait_for(int fd, short events, uint64_t deadline_ns)
{
    for (;;) {
        uint64_t now = now_ns();
        if (now >= deadline_ns)
            return false;
        struct pollfd p = { .fd = fd, .events = events };
        int n = poll(&p, 1, (int)((deadline_ns - now) / 1000000u) + 1);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

static bool collector_connect(const struct otlp_url *u, char *why, size_t len)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *ai;
    int rc = real_getaddrinfo(u->host, u->port, &hints, &ai);
    if (rc != 0) {
        snprintf(why, len, "cannot resolve %.200s: %s", u->host, gai_strerror(rc));
        return false;
    }
    int err = 0;
    for (struct addrinfo *a = ai; a && collector < 0; a = a->ai_next) {
        int fd = real_socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        fd = ownfd_move(fd);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (real_connect(fd, a->ai_addr, a->ai_addrlen) == 0 ||
            (errno == EINPROGRESS && wait_for(fd, POLLOUT, now_ns() + CONNECT_MS * 1000000ull))) {
            socklen_t l = sizeof(err);
            err = 0;
            if (real_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0 && err == 0) {
                collector = fd;
                break;
            }
        } else {
            err = errno == EINPROGRESS ? ETIMEDOUT : errno;
        }
        own_close(fd);
    }
    freeaddrinfo(ai);
    if (collector < 0)
        snprintf(why, len, "cannot connect to %.200s:%s: %s", u->host, u->port, strerror(err));
    return collector >= 0;
}

static bool send_all(const char *p, size_t n, uint64_t deadline_ns)
{
    while (n) {
        ssize_t k = real_send(collector, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        } else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_for(collector, POLLOUT, deadline_ns))
                return false;
        } else {
            return false;
        }
    }
    return true;
}

/* Reads the answer to a POST: its status (0: none whole before the
 * deadline, or the connection ended); *keep: the connection may carry the
 * next one. */
static int read_answer(uint64_t deadline_ns, bool *keep)
{
    char buf[4096];
    int status = 0;
    h1_free(&resp);
    h1_init(&resp, H1_RESPONSE);
    h1_response_to(&resp, "POST");
    *keep = false;
    for (;;) {
        ssize_t n = real_recv(collector, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_for(collector, POLLIN, deadline_ns))
                return 0;
            continue;
        }
        if (n <= 0)
            return h1_finish(&resp) == H1_END ? status : 0;
        size_t off = 0;
        while (off < (size_t)n) {
            size_t used;
            enum h1_event e = h1_feed(&resp, buf + off, (size_t)n - off, &used);
            off += used;
            if (e == H1_HEAD) {
                status = h1_head(&resp)->status;
                *keep = h1_head(&resp)->keep_alive;
            } else if (e == H1_END && status >= 200) {
                return status;      /* an interim answer (100) is followed by the final one */
            } else if (e == H1_ERROR || e == H1_UPGRADE) {
                return 0;
            } else if (e == H1_MORE) {
                break;
            }
        }
    }
}

/* One try: the body POSTed, the answer's status (0: no answer, why says). */
static int post(const struct otlp_url *u, size_t len, char *why, size_t whylen)
{
    char url[sizeof(collector_url)];
    snprintf(url, sizeof(url), "%s:%s%s", u->host, u->port, u->path);
    if (collector >= 0 && strcmp(url, collector_url) != 0)
        collector_close();          /* a reload moved the collector */
    bool reused = collector >= 0;
    if (!reused && !collector_connect(u, why, whylen))
        return 0;
    snprintf(collector_url, sizeof(collector_url), "%s", url);
    const char *v6 = strchr(u->host, ':') ? "[" : "";
    char head[1024];
    int hlen = snprintf(head, sizeof(head),
                        "POST %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nUser-Agent: meshim\r\n\r\n",
                        u->path, v6, u->host, *v6 ? "]" : "", u->port, len);
    uint64_t deadline = now_ns() + IO_MS * 1000000ull;
    bool keep = false;
    int status = 0;
    if (send_all(head, (size_t)hlen, deadline) && send_all(body, len, deadline))
        status = read_answer(deadline, &keep);
    if (!keep || status == 0)
        collector_close();
    if (status == 0 && reused)
        return post(u, len, why, whylen);   /* the collector had closed the kept one: once more */
    if (status == 0)
        snprintf(why, whylen, "no answer from %.200s:%s within %d ms", u->host, u->port, IO_MS);
    return status;
}

static bool retryable(int status)
{
    return status == 0 || status == 429 || status == 502 || status == 503 || status == 504;
}

/* Sends n spans: true when the collector took them. */
static bool export_batch(size_t n)
{
    struct registry *reg = mesh_registry();
    const struct mesh_config *cfg = reg ? reg->cfg : NULL;
    struct otlp_url u;
    char why[256];
    if (!otlp_enabled(cfg) || otlp_parse_url(cfg->otlp_endpoint, &u))
        return false;       /* a reload turned tracing off: what was queued goes */
    const char *name = cfg->trace_service_name ? cfg->trace_service_name
                                               : program_invocation_short_name;
    size_t len = otlp_encode(name, getpid(), batch, n, body, body_cap);
    if (!len) {
        warn_limited("a batch of %zu spans does not encode in %zu bytes", n, body_cap);
        return false;
    }
    int status = 0;
    int tries = __atomic_load_n(&flushing, __ATOMIC_RELAXED) ? 1 : TRIES;
    for (int try = 0; try < tries; try++) {
        if (try)
            usleep((useconds_t)(BACKOFF_MS << (try - 1)) * 1000);
        status = post(&u, len, why, sizeof(why));
        if (status >= 200 && status < 300)
            return true;
        if (status)
            snprintf(why, sizeof(why), "%s answered %d", cfg->otlp_endpoint, status);
        if (!retryable(status))
            break;
    }
    warn_limited("%zu spans dropped: %s", n, why);
    return false;
}

/* -------------------------------------------------------------- the loop -- */

/* The exporter yields to the program: ten nice levels below the thread
 * that started it (19 at most), under the ordinary time-sharing policy
 * when the program runs real-time (its threads must not wait for spans),
 * else under the program's own policy (idle priority stays idle).
 *
 * Why not idle priority for everyone (this file until 2026-12): where the
 * program keeps its cores busy, an idle-priority thread never runs, and
 * the bench's saturated http row dropped nine spans in ten for a full
 * queue, just when traces matter. Ten levels down, a busy core gives the
 * exporter about a twentieth of its time against the program's two
 * threads (weights 110 against 1024 each), enough for every span at the
 * bench's rate, and a core with room to spare gives it the room. */
static void lower_priority(void)
{
    pid_t tid = (pid_t)real_syscall4(SYS_gettid, 0, 0, 0, 0);
    int policy = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
    if (policy == SCHED_FIFO || policy == SCHED_RR) {
        struct sched_param none = { 0 };
        pthread_setschedparam(pthread_self(), SCHED_OTHER, &none);
    }
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, (id_t)tid);
    if (errno == 0)
        setpriority(PRIO_PROCESS, (id_t)tid, nice + 10 > 19 ? 19 : nice + 10);
}

static void *exporter(void *arg)
{
    (void)arg;
    /* Named for top -H and bench/run -f (it inherited the engine's name,
     * and so its CPU was counted as the engine's). */
    hooks_internal_thread("meshim-otlp");
    lower_priority();
    pthread_mutex_lock(&lock);
    for (;;) {
        while (count == 0)
            pthread_cond_wait(&wake, &lock);
        struct timespec until = in_ms(BATCH_WAIT_MS);
        while (count < BATCH_MAX && !flushing)
            if (pthread_cond_timedwait(&wake, &lock, &until) == ETIMEDOUT)
                break;
        size_t n = count < BATCH_MAX ? count : BATCH_MAX;
        for (size_t i = 0; i < n; i++)
            batch[i] = queue[(head + i) % QUEUE_MAX];
        head = (head + (unsigned)n) % QUEUE_MAX;
        count -= (unsigned)n;
        busy = true;
        pthread_mutex_unlock(&lock);

        bool ok = export_batch(n);
        metrics_spans(ok ? SPANS_EXPORTED : SPANS_DROPPED, n);

        pthread_mutex_lock(&lock);
        busy = false;
        if (count == 0)
            pthread_cond_broadcast(&drained);
    }
    return NULL;
}

/* With the lock held: the queue, the batch and the thread. */
static bool start(void)
{
    if (!cond_ready)
        init_conds();
    body_cap = (size_t)BATCH_MAX * SPAN_JSON_MAX + 4096;
    queue = queue ? queue : malloc(QUEUE_MAX * sizeof(*queue));
    batch = batch ? batch : malloc(BATCH_MAX * sizeof(*batch));
    body = body ? body : malloc(body_cap);
    if (!queue || !batch || !body) {
        log_error("tracing: out of memory for the span queue; spans are dropped");
        return false;
    }
    int rc = engine_spawn(exporter, 0);
    if (rc != 0) {
        log_error("tracing: cannot start the exporter thread: %s; spans are dropped", strerror(rc));
        return false;
    }
    running = true;
    return true;
}

static void submit(const struct span *s)
{
    pthread_mutex_lock(&lock);
    bool queued = (running || start()) && count < QUEUE_MAX;
    sampled++;
    overflowed += running && !queued;     /* not a thread that never started: said then */
    if (queued) {
        queue[(head + count) % QUEUE_MAX] = *s;
        if (++count == 1 || count == BATCH_MAX)
            pthread_cond_signal(&wake);
    }
    pthread_mutex_unlock(&lock);
    if (!queued)
        metrics_spans(SPANS_DROPPED, 1);
}

static uint64_t draw(void *state)
{
    return rng_next(state);
}

bool otlp_span_begin(struct span_ids *ids, const struct h1_head *h, const struct trace_context *inherited)
{
    struct registry *reg = mesh_registry();
    if (!reg || !otlp_enabled(reg->cfg))
        return false;
    span_begin(ids, h1_header(h, "traceparent"), inherited, reg->cfg->trace_sample_rate, draw,
               rng_thread());
    return true;
}

void otlp_span_end(const struct span *s)
{
    if (s->ids.flags & TRACE_FLAG_SAMPLED)
        submit(s);
    else
        metrics_spans(SPANS_NOT_SAMPLED, 1);
}

void otlp_exit(unsigned ms)
{
    pthread_mutex_lock(&lock);
    if (running && (count || busy)) {
        __atomic_store_n(&flushing, true, __ATOMIC_RELAXED);    /* export_batch reads it unlocked */
        pthread_cond_signal(&wake);
        struct timespec until = in_ms(ms);
        while ((count || busy) && pthread_cond_timedwait(&drained, &lock, &until) != ETIMEDOUT)
            ;
    }
    uint64_t lost = overflowed, of = sampled;
    pthread_mutex_unlock(&lock);
    /* Said once, at the end: a full queue is not an error a line per span
     * could help with, but a program whose traces have holes should say so
     * where its user looks. */
    if (lost)
        log_warn("tracing: %llu of %llu sampled spans were dropped: the queue was full (the exporter "
                 "could not keep up; lower [tracing] sample_rate)", (unsigned long long)lost,
                 (unsigned long long)of);
}

void otlp_atfork_child(void)
{
    pthread_mutex_init(&lock, NULL);
    if (cond_ready)
        init_conds();
    running = flushing = busy = false;
    head = count = 0;
    sampled = overflowed = 0;
    if (collector >= 0)
        own_close(collector);   /* the parent's connection: its copy stays the parent's */
    collector = -1;
    collector_url[0] = '\0';
}
