/*
 * http.c — the HTTP proxy of protocol = http services, on the engine
 * thread (http.h has the states).
 *
 * Buffers. `in` holds what the application sent and the proxy has not
 * dropped: the current request (its head at [0, head_len), its body after)
 * and, beyond the request's end, pipelined bytes not parsed yet. The
 * request stays whole in `in` until its answer is done, so that it can be
 * sent again; a body larger than retry_buffer is instead streamed (what was
 * sent is dropped) and the request is no longer retried. `up_head` is the
 * head as sent upstream (with x-meshim-attempt from the second attempt on).
 * `rx` holds what the upstream sent and was not yet parsed; `out` what is
 * owed to the application. Reading stops while a buffer is full: a slow
 * side slows the other down.
 *
 * Upstream connections are pooled per endpoint and port: an idle one is
 * watched, and closed as soon as its server closes it or sends anything;
 * none is kept idle longer than POOL_IDLE_NS (one timer for all pools,
 * pool_sweep, closes the oldest),
 * and at most POOL_IDLE_MAX per endpoint. That bound is far above the
 * requests a program has in flight to one endpoint: below them, each burst
 * of answers would close connections the next requests then make again,
 * a full handshake each over mTLS (with 32, wrk's 64 connections ran at
 * half the rate of 16). A request sent on a reused connection that ends
 * without a byte of answer (the server closed it just then) is sent again
 * on a new connection when its method allows, without counting as a
 * failure. A request whose connection is still being made takes the first
 * of its pool's to be ready (the spares' section).
 */
#include "mesh/http.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <uthash.h>
#include <utlist.h>

#include "engine/engine.h"
#include "engine/otlp.h"
#include "engine/placeholder.h"
#include "engine/sendq.h"
#include "libc/ownfd.h"
#include "libc/program.h"
#include "libc/real.h"
#include "mesh/attempt.h"
#include "mesh/dial.h"
#include "mesh/fdtable.h"
#include "mesh/mtls.h"
#include "mesh/sockname.h"
#include "mesh/termsig.h"
#include "mesh/threadtrace.h"
#include "meshim/http1.h"
#include "meshim/httpretry.h"
#include "meshim/mesh.h"
#include "meshim/route.h"
#include "observe/accesslog.h"
#include "observe/log.h"
#include "observe/metrics.h"

#define IO_CHUNK 16384
#define OUT_MAX (256u * 1024)       /* owed to the application before the upstream is read again */
#define IN_MIN (64u * 1024)         /* `in` may hold at least this, whatever retry_buffer says */
/* A request head as sent, at most: its strings (H1_HEAD_MAX) and the
 * separators and spaces around them; beyond, 431. */
#define HEAD_RAW_MAX (H1_HEAD_MAX + 16u * 1024)
#define POOL_IDLE_MAX 1024
#define POOL_IDLE_NS (30ull * 1000000000u)
#define ATTEMPT_HEADER "x-meshim-attempt"
#define UNACCEPTED_WAIT_NS (10ull * 1000000000u)   /* waits_for_accept, as relay.c's late handshakes */

enum px_state { PX_IDLE, PX_ATTEMPT, PX_EXCHANGE, PX_BACKOFF, PX_RAW, PX_CLOSING };

struct gbuf {
    char *data;
    size_t len, cap;
};

struct pool;

struct upstream {
    struct engine_io io;
    struct hproxy *px;              /* the proxy using it; NULL: idle in its pool */
    struct pool *pool;
    int fd;
    SSL *ssl;                       /* tls = mtls: the session over fd; NULL: plain */
    struct tls_identity *id;        /* the session's identity, a reference */
    bool want_write;                /* the handshake waits to write */
    bool heard;                     /* the handshake has had something to read */
    bool waits_accept;              /* past connect_timeout, for a server that has not accepted */
    bool connected;                 /* ready for requests; not yet with ssl: the handshake runs */
    bool send_queued;               /* a send of the request is queued (sendq.h): none
                                       more until it is done (up_sent) */
    bool send_now;                  /* one came back short: the next is made at once
                                       (EAGAIN then waits for EPOLLOUT, not a turn) */
    char peer_identity[128];        /* mTLS: the server's identity */
    /* mTLS: the service's `identity` it was checked against (a config's
     * string: configs are never freed). A reload that changes it retires
     * the connection rather than send a request to a server the service
     * no longer accepts (pin_holds). */
    const char *pin;
    /* It was pooled before this request (it carried an answer, or was made
     * as a spare): its connect is counted, and a server that closed it just
     * then is no failure (upstream_ended). */
    bool reused;
    uint64_t idle_since;
    struct upstream *next, *prev;   /* in its pool's idle list (utlist DL), newest first */

    /* A spare: a connection still being made whose request was handed
     * another one (hand_over). It is finished on its own and pooled. */
    bool tls;                       /* made for an mTLS pool */
    struct engine_timer timer;      /* connect_timeout */
    struct service *svc;            /* whose endpoint it records (services are never freed) */
    struct endpoint *ep;            /* with a reference */
    uint16_t port;
    uint64_t started;
    struct upstream *sprev, *snext; /* in `spares` */
};

/* Hashed as bytes: no padding (a copy need not keep padding bytes). An
 * mTLS connection is never handed to a request that wants plain TCP, nor
 * the reverse (a reload may change the service's tls). */
struct pool_key {
    struct endpoint *ep;
    uint32_t port;
    uint32_t tls;
};

struct pool {
    UT_hash_handle hh;
    struct pool_key key;            /* ep: a reference while the pool exists */
    struct upstream *idle;          /* newest first: idle->prev is the oldest */
    unsigned n_idle;
};

_Static_assert(sizeof(struct pool_key) == sizeof(void *) + 2 * sizeof(uint32_t), "pool_key has padding");

static struct pool *pools;          /* engine thread only */
static struct upstream *spares;     /* engine thread only */

struct hproxy {
    struct engine_task task;
    struct engine_io app_io;
    struct engine_timer try_timer;  /* connect_timeout, per_try_timeout, backoff */
    struct engine_timer req_timer;  /* request_timeout */
    struct conn *conn;              /* one reference */
    struct service *svc;            /* the service the application connected to */
    uint16_t port;                  /* the port it asked for */
    int app;                        /* the engine's end of the pair */
    int state;
    bool app_eof;                   /* the application finished sending */
    bool close_after;               /* close once `out` is written */
    bool reset_app;                 /* ... with a reset the application reads (the answer
                                       broke off: conn_pair_reset) */
    bool raw_up_done, raw_down_done;/* RAW: each direction finished */
    bool http_seen;                 /* a request was read on this connection */
    /* Readable as far as we know: set by epoll, cleared by a read that
     * came short (the socket was drained a moment ago), so a turn makes
     * no read() only to learn EAGAIN. */
    bool app_in_ready, up_in_ready;
    /* A send of `out` to the application is queued (sendq.h): `out` keeps
     * its bytes until it is done (app_sent), and nothing more is sent. */
    bool out_queued;
    bool out_now;                   /* one came back short: as send_now (upstream) */
    struct h1_parser req, resp;
    struct gbuf in, out, rx, up_head;
    size_t parsed;                  /* of `in`, fed to the request parser */
    size_t body_sent;               /* of `in`, the next byte to send upstream */
    size_t up_head_sent;
    struct upstream *up;

    /* The request in progress. */
    struct service *target;         /* where it goes (routed, split) */
    struct service *counted;        /* the service whose `requests` holds this one (max_requests) */
    const char *route;
    struct pick pick;
    bool picking;                   /* pick holds a set */
    struct endpoint *ep;            /* the current attempt's, with a reference */
    size_t head_len;                /* of `in` */
    bool head_read, req_done, retry_lost, idempotent, req_keep_alive, req_http11, upgrade;
    /* The application's HTTP/1.1 request said Connection: close: that is
     * its connection's business (closed after the answer, which says so),
     * not the pooled upstream connection's, so the line is not sent up. */
    bool close_stripped;
    /* The answer said Connection: close of the upstream connection only
     * (close_only_upstream): not forwarded, the application's goes on. */
    bool resp_close_stripped;
    bool committed;                 /* part of an answer reached the application */
    bool resp_started;              /* the upstream sent a byte of answer on this attempt */
    bool fresh_only;                /* the next attempt opens a new connection */
    bool up_tls;                    /* the attempt's connection is mTLS (the target's tls) */
    bool raw_tunnel;                /* not HTTP: RAW once connected */
    bool accept_waited;             /* an attempt waited for an unaccepting server (once a request) */
    int status;
    unsigned attempts, retries, flags;
    uint64_t req_start_ns, req_start_unix_ns, try_start_ns;
    uint64_t probe_wait_until_ns;   /* a pick waiting for a half-open probe's outcome gives
                                       up then (0: not waiting) */
    uint64_t req_bytes, resp_bytes;
    char method[16], authority[256], path[512];
    char peer_identity[128];        /* the current attempt's server, over mTLS */
    char last_why[128];
    bool traced;                    /* [tracing] on: the request has a client span */
    struct span_ids span;           /* ... whose context goes upstream in traceparent */
    bool owing;                     /* counted in exit_owing (the process is ending) */
    struct hproxy *prev, *next;     /* in `proxies`, from begin() to px_end() */
    /* In `waiters`: the attempt waits for a connection being made for it,
     * and takes the first of its pool's to be ready (hand_over). */
    bool waiting;
    struct hproxy *wprev, *wnext;
};

static struct hproxy *proxies;      /* engine thread only: every proxy begun */
static struct hproxy *waiters;      /* engine thread only, oldest first */

/* The process is ending (http_exit): each proxy first sends its upstream
 * what its application wrote. */
#define EXIT_FLUSH_NS (2ull * 1000000000u)
static bool exit_asked;             /* engine thread only */
static int exit_owing;              /* atomic: proxies that still owe their upstream bytes */
static int exit_counted;            /* atomic: the engine has counted them */
static int live_proxies;            /* atomic: handed to the engine, not ended */
static int unbegun;                 /* atomic: handed to the engine, not begun */

static void px_step(struct hproxy *px);
static void attempt_start(struct hproxy *px);
static void rearm(struct hproxy *px);
static bool hand_over(struct upstream *u, struct endpoint *ep, uint16_t port);

/* ----------------------------------------------------------------- buffers -- */

/* Freed buffers of IO_CHUNK bytes, the size nearly every buffer starts
 * and stays at, kept for the next proxy (engine thread only). Connections
 * that each carry one request free and take four of them each: through
 * malloc, the engine's heap kept shrinking (madvise) and growing again
 * (page faults), 10 % of such a connection's cost here. */
#define SPARE_BUFS 64
static char *spare_bufs[SPARE_BUFS];
static int n_spare_bufs;

static bool gbuf_reserve(struct gbuf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : IO_CHUNK;
    while (cap < b->len + more)
        cap *= 2;
    if (!b->cap && cap == IO_CHUNK && n_spare_bufs) {
        b->data = spare_bufs[--n_spare_bufs];
        b->cap = cap;
        return true;
    }
    char *grown = realloc(b->data, cap);
    if (!grown)
        return false;
    b->data = grown;
    b->cap = cap;
    return true;
}

static bool gbuf_append(struct gbuf *b, const char *p, size_t n)
{
    if (!gbuf_reserve(b, n))
        return false;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

static void gbuf_drop(struct gbuf *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static void gbuf_free(struct gbuf *b)
{
    if (b->cap == IO_CHUNK && n_spare_bufs < SPARE_BUFS)
        spare_bufs[n_spare_bufs++] = b->data;
    else
        free(b->data);
    *b = (struct gbuf){ 0 };
}

/* ------------------------------------------------------------------- pool -- */

static void upstream_close(struct upstream *u)
{
    sendq_cancel(u);
    engine_unwatch(&u->io);
    if (u->ssl) {
        /* close_notify when the session is sound: it stays resumable. */
        tls_free(u->ssl, u->connected);
        tls_identity_put(u->id);
    }
    own_close(u->fd);
    engine_retire(u);
}

static void pool_remove(struct pool *p, struct upstream *u)
{
    DL_DELETE(p->idle, u);
    p->n_idle--;
    if (!p->n_idle) {
        HASH_DEL(pools, p);
        endpoint_unref(p->key.ep);
        free(p);
    }
}

/* An idle connection's server closed it, or sent what nobody asked for
 * (over mTLS, a record that is not data, a session ticket, is only read). */
static void idle_ready(struct engine_io *io, uint32_t events)
{
    struct upstream *u = container_of(io, struct upstream, io);
    if (u->ssl && !(events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))) {
        char byte;
        size_t n;
        if (tls_read(u->ssl, &byte, 1, &n) == TLS_IO_WANT_READ && !tls_pending(u->ssl))
            return;
    }
    pool_remove(u->pool, u);
    upstream_close(u);
}

/* Closes the pool's connections idle for POOL_IDLE_NS, the oldest first;
 * false when none is left (p is freed). */
static bool pool_expire(struct pool *p, uint64_t now)
{
    while (now - p->idle->prev->idle_since >= POOL_IDLE_NS) {
        struct upstream *oldest = p->idle->prev;
        bool last = p->n_idle == 1;
        pool_remove(p, oldest);
        upstream_close(oldest);
        if (last)
            return false;
    }
    return true;
}

/* One timer for every pool, set when a connection goes idle and none is
 * set: a request that takes a connection and puts it back (a pool empty,
 * then not, every request) costs no timer work. When it fires, each
 * pool's expired connections are closed and it is set for the oldest left. */
static void pool_sweep_fired(struct engine_timer *t);
static struct engine_timer pool_sweep = { .fire = pool_sweep_fired };

static void pool_sweep_fired(struct engine_timer *t)
{
    uint64_t now = now_ns(), next = UINT64_MAX;
    struct pool *p, *tmp;
    HASH_ITER(hh, pools, p, tmp) {
        if (pool_expire(p, now) && p->idle->prev->idle_since + POOL_IDLE_NS < next)
            next = p->idle->prev->idle_since + POOL_IDLE_NS;
    }
    if (next != UINT64_MAX)
        engine_timer_set(t, next);
}

/* May u carry a request to svc: was its server checked against the
 * `identity` svc has now? */
static bool pin_holds(const struct upstream *u, const struct service *svc)
{
    if (!u->ssl)
        return true;
    const char *now = service_cfg(svc)->identity;
    return u->pin == now || strcmp(u->pin ? u->pin : "", now ? now : "") == 0;
}

/* The newest idle connection of the pool (ep, port, TLS or not) that svc
 * may use; one checked against another identity is closed. */
static struct upstream *pool_take(const struct service *svc, struct endpoint *ep, uint16_t port, bool tls,
                                  uint64_t now)
{
    struct pool_key key = { ep, port, tls };
    struct pool *p;
    HASH_FIND(hh, pools, &key, sizeof(key), p);
    while (p && pool_expire(p, now)) {
        struct upstream *u = p->idle;
        bool last = p->n_idle == 1;
        pool_remove(p, u);
        if (pin_holds(u, svc)) {
            u->pool = NULL;
            return u;
        }
        upstream_close(u);
        if (last)
            break;                  /* p was freed with its last connection */
    }
    return NULL;
}

/* A connection ready for a request (its answer done, or just made):
 * to the oldest attempt still waiting for one of its pool's, else idle in
 * the pool. */
static void pool_put(struct upstream *u, struct endpoint *ep, uint16_t port)
{
    if (hand_over(u, ep, port))
        return;
    struct pool_key key = { ep, port, u->tls };
    struct pool *p;
    HASH_FIND(hh, pools, &key, sizeof(key), p);
    if (!p) {
        if (!(p = calloc(1, sizeof(*p)))) {
            upstream_close(u);
            return;
        }
        p->key = key;
        endpoint_ref(ep);
        HASH_ADD(hh, pools, key, sizeof(key), p);
    }
    if (p->n_idle >= POOL_IDLE_MAX) {
        upstream_close(u);
        return;
    }
    u->px = NULL;
    u->pool = p;
    u->reused = true;
    u->idle_since = now_ns();
    u->io.ready = idle_ready;
    DL_PREPEND(p->idle, u);
    p->n_idle++;
    if (!pool_sweep.armed)
        engine_timer_set(&pool_sweep, u->idle_since + POOL_IDLE_NS);
    if (!engine_interest(&u->io, EPOLLIN | EPOLLRDHUP))
        idle_ready(&u->io, 0);
}

/* ------------------------------------------------------------ the request -- */

/* The service the request in progress goes to (its route's and split's),
 * or the one the application connected to before a request is read. */
static struct service *request_service(const struct hproxy *px)
{
    return px->target ? px->target : px->svc;
}

static const struct service_config *target_cfg(const struct hproxy *px)
{
    return service_cfg(request_service(px));
}

/* May the request be sent again after this failure (meshim/httpretry.h,
 * then the retry budget)? Counts the retry. */
static bool may_retry(struct hproxy *px, enum http_failure f, int status)
{
    struct http_attempt a = {
        .failure = f, .status = status, .committed = px->committed, .held_whole = !px->retry_lost,
        .idempotent = px->idempotent, .retries = px->retries,
    };
    if (!http_retry_allowed(target_cfg(px), &a) || !budget_retry(px->target))
        return false;
    px->retries++;
    px->flags |= FLAG_RETRY;
    metrics_retry(px->target);
    return true;
}

static void wait_leave(struct hproxy *px)
{
    if (px->waiting) {
        DL_DELETE2(waiters, px, wprev, wnext);
        px->waiting = false;
    }
}

static void attempt_end(struct hproxy *px)
{
    wait_leave(px);
    engine_timer_cancel(&px->try_timer);
    if (px->ep) {
        __atomic_sub_fetch(&px->ep->target.active, 1, __ATOMIC_RELAXED);
        endpoint_unref(px->ep);
        px->ep = NULL;
    }
}

static void upstream_drop(struct hproxy *px)
{
    wait_leave(px);
    if (px->up) {
        upstream_close(px->up);
        px->up = NULL;
    }
}

/* The request's client span, from what the request line says. */
static void client_span_end(struct hproxy *px, const struct service *svc, const char *endpoint)
{
    struct span s = { .ids = px->span, .kind = SPAN_CLIENT, .start_unix_ns = px->req_start_unix_ns,
                      .end_unix_ns = wall_ns(), .status = px->status, .port = px->port,
                      .attempts = px->attempts };
    SPAN_SET(s.method, px->method);
    SPAN_SET(s.path, px->path);
    SPAN_SET(s.authority, px->authority);
    SPAN_SET(s.peer, endpoint);
    SPAN_SET(s.peer_identity, px->peer_identity);
    SPAN_SET(s.service, svc->name);
    SPAN_SET(s.route, px->route ? px->route : "");
    if (px->flags & FLAG_LR)
        SPAN_SET(s.error, px->last_why);
    otlp_span_end(&s);
}

/* The request's line and counts (its answer's end, or a 101: what follows
 * is raw bytes); the connection's byte counts take its bytes. */
static void request_log(struct hproxy *px)
{
    uint64_t took = now_ns() - px->req_start_ns;
    struct service *svc = request_service(px);
    metrics_request(svc, px->ep, px->method, px->status, took, px->req_bytes, px->resp_bytes);
    bool logged = access_enabled();
    char endpoint[64] = "";
    if (px->ep && (logged || px->traced))
        endpoint_text(px->ep, px->port, endpoint, sizeof(endpoint));
    if (px->traced)
        client_span_end(px, svc, endpoint);
    if (logged) {
        struct access_request r = {
            .start_unix_ns = px->req_start_unix_ns, .pid = getpid(), .direction = DIRECTION_OUTBOUND,
            .service = svc->name, .route = px->route, .method = px->method,
            .authority = px->authority, .path = px->path, .status = px->status,
            .endpoint = endpoint, .peer_identity = px->peer_identity,
            .attempts = px->attempts, .flags = px->flags,
            .duration_ms = (double)took / 1e6,
            .bytes_sent = px->req_bytes, .bytes_received = px->resp_bytes,
            .span = px->traced ? &px->span : NULL,
        };
        access_write_request(&r);
    }
    __atomic_add_fetch(&px->conn->bytes_sent, px->req_bytes, __ATOMIC_RELAXED);
    __atomic_add_fetch(&px->conn->bytes_received, px->resp_bytes, __ATOMIC_RELAXED);
    px->req_bytes = px->resp_bytes = 0;
}

/* The request gives its place back (max_requests, request_admitted). */
static void request_uncount(struct hproxy *px)
{
    if (px->counted)
        __atomic_sub_fetch(&px->counted->requests, 1, __ATOMIC_RELEASE);
    px->counted = NULL;
}

/* The request is over (answered, by an endpoint or here): counted, logged,
 * and its bytes taken out of `in`. */
static void request_done(struct hproxy *px)
{
    request_uncount(px);
    request_log(px);
    attempt_end(px);
    engine_timer_cancel(&px->req_timer);
    if (px->picking) {
        pick_done(&px->pick);
        px->picking = false;
    }
    if (!px->req_keep_alive)
        px->close_after = true;
    if (px->req_done) {
        gbuf_drop(&px->in, px->parsed);
        px->parsed = 0;
    } else {
        px->close_after = true;     /* the rest of the request is not read: no next one */
    }
    if (px->upgrade)
        h1_upgrade_refused(&px->req);     /* no 101: HTTP goes on */
    px->head_read = px->req_done = px->committed = px->resp_started = false;
    px->retry_lost = px->upgrade = px->fresh_only = px->resp_close_stripped = false;
    px->up_head.len = 0;
    px->target = NULL;
    px->route = NULL;
    px->state = px->close_after ? PX_CLOSING : PX_IDLE;
}

/* The bytes of an answer made here, queued for the application: its head
 * (with connection: close when `close`) and, but to HEAD, a one-line body
 * saying why. Their count. */
static uint64_t answer_here(struct hproxy *px, int status, const char *reason, const char *why,
                            bool close)
{
    char body[256], head[512];
    int blen = snprintf(body, sizeof(body), "%s: %s\n", reason, why);
    int hlen = snprintf(head, sizeof(head),
                        "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
                        "x-meshim-error: %s\r\n%s\r\n",
                        status, reason, blen, why, close ? "connection: close\r\n" : "");
    gbuf_append(&px->out, head, (size_t)hlen);
    if (strcmp(px->method, "HEAD") == 0)
        return (uint64_t)hlen;
    gbuf_append(&px->out, body, (size_t)blen);
    return (uint64_t)hlen + (uint64_t)blen;
}

/* An answer made here (no endpoint could give one). */
static void respond_local(struct hproxy *px, int status, const char *reason, const char *why)
{
    upstream_drop(px);
    px->status = status;
    px->flags |= FLAG_LR;
    px->resp_bytes = answer_here(px, status, reason, why, !px->req_done);
    log_info("%s: %s %s%s answered %d here: %s", request_service(px)->name,
             px->method, px->authority, px->path, status, why);
    request_done(px);
}

/* Every attempt failed: 503, or 504 when the last one timed out. */
static void give_up(struct hproxy *px, enum http_failure f)
{
    px->flags |= px->attempts > 1 ? FLAG_URX : 0;
    if (f == HTTP_FAIL_TIMEOUT)
        respond_local(px, 504, "Gateway Timeout", px->last_why);
    else
        respond_local(px, 503, "Service Unavailable", px->last_why);
}

/* The attempt is over without an answer for the application: its
 * endpoint is told (a connect failure was, when it happened; a status
 * only when it is a 5xx), its connection closed. */
static void attempt_abandon(struct hproxy *px, enum http_failure f, int status, const char *why)
{
    snprintf(px->last_why, sizeof(px->last_why), "%s%s%s", px->ep ? px->ep->label : "",
             px->ep ? ": " : "", why);
    if (px->ep && f != HTTP_FAIL_CONNECT)
        request_record(px->target, px->ep, px->port,
                       f != HTTP_FAIL_STATUS || http_status_fails_endpoint(status), px->try_start_ns);
    upstream_drop(px);
    if (px->picking)
        pick_tried(&px->pick);
    attempt_end(px);
}

/* The next attempt, after retry_backoff (may_retry said yes). */
static void retry_later(struct hproxy *px)
{
    log_info("%s: %s %s retried: %s", px->target->name, px->method, px->path, px->last_why);
    px->state = PX_BACKOFF;
    engine_timer_set(&px->try_timer, now_ns() + retry_delay_ns(px->target, px->retries));
}

/* The attempt failed before its answer was forwarded: again, or give up. */
static void attempt_failed(struct hproxy *px, enum http_failure f, int status, const char *why)
{
    attempt_abandon(px, f, status, why);
    if (may_retry(px, f, status))
        retry_later(px);
    else
        give_up(px, f);
}

/* Does the head of len bytes at p end as heads do, with CRLF and the blank
 * line? Only such a head is rewritten (its last two bytes taken off and
 * lines added before them); any other goes as it came. */
static bool head_whole(const char *p, size_t len)
{
    return len >= 4 && memcmp(p + len - 4, "\r\n\r\n", 4) == 0;
}

/* Does the request's Connection: close concern only the application's
 * connection? HTTP/1.1, not an Upgrade, a head that ends as heads do, and
 * "close" is the header's only token (others name hop-by-hop headers the
 * server should see dropped with it). */
static bool close_only_downstream(const struct hproxy *px, const struct h1_head *h)
{
    const char *v = h1_header(h, "connection");
    return !h->keep_alive && h->major == 1 && h->minor == 1 && !h->upgrade && v &&
           ascii_casecmp(v, "close") == 0 && head_whole(px->in.data, px->head_len);
}

/* Is the header line at p (of n bytes) named name (with its colon)? */
static bool header_named(const char *p, size_t n, const char *name)
{
    size_t k = strlen(name);
    return n > k && ascii_ncasecmp(p, name, k) == 0;
}

/* Appends the head's lines in [from, to) but Connection ones (when
 * drop_connection) and traceparent (when drop_traceparent). The first line
 * (a request or status line) never reads as either: a method is a token,
 * without a colon, and a status line starts "HTTP/". */
static bool append_headers(struct gbuf *b, const char *from, const char *to, bool drop_connection,
                           bool drop_traceparent)
{
    if (!drop_connection && !drop_traceparent)
        return gbuf_append(b, from, (size_t)(to - from));
    while (from < to) {
        const char *eol = memchr(from, '\n', (size_t)(to - from));
        const char *next = eol ? eol + 1 : to;
        size_t n = (size_t)(next - from);
        bool drop = (drop_connection && header_named(from, n, "connection:")) ||
                    (drop_traceparent && header_named(from, n, "traceparent:"));
        if (!drop && !gbuf_append(b, from, n))
            return false;
        from = next;
    }
    return true;
}

/* The head as sent upstream: the application's, without a Connection:
 * close that is only the application's (close_stripped), with the client
 * span's traceparent when traced, and the attempt number from the second
 * attempt on (before the blank line that ends it). */
static bool build_up_head(struct hproxy *px)
{
    px->up_head.len = 0;
    px->up_head_sent = 0;
    if (px->attempts <= 1 && !px->close_stripped && !px->traced)
        return gbuf_append(&px->up_head, px->in.data, px->head_len);
    /* Its lines but the blank one, then ours, then the blank line. */
    const char *head = px->in.data;
    bool ok = append_headers(&px->up_head, head, head + px->head_len - 2, px->close_stripped, px->traced);
    char extra[128];
    if (ok && px->traced) {
        struct trace_context c;
        span_context(&px->span, &c);
        memcpy(extra, "traceparent: ", 13);
        trace_format_traceparent(&c, extra + 13);
        memcpy(extra + 13 + TRACEPARENT_LEN, "\r\n", 2);
        ok = gbuf_append(&px->up_head, extra, 13 + TRACEPARENT_LEN + 2);
    }
    if (ok && px->attempts > 1) {
        int n = snprintf(extra, sizeof(extra), ATTEMPT_HEADER ": %u\r\n", px->attempts);
        ok = gbuf_append(&px->up_head, extra, (size_t)n);
    }
    return ok && gbuf_append(&px->up_head, "\r\n", 2);
}

/* ---------------------------------------------------------------- upstream -- */

static void upstream_ready(struct engine_io *io, uint32_t events);

/* The upstream connection is ready for requests (TCP connected and, over
 * mTLS, the server authenticated), new or from the pool. */
static void connected(struct hproxy *px)
{
    wait_leave(px);
    px->up->connected = true;
    memcpy(px->peer_identity, px->up->peer_identity, sizeof(px->peer_identity));
    px->up_in_ready = px->up->ssl && tls_pending(px->up->ssl);   /* else epoll says */
    if (!px->up->reused)
        request_connect_record(px->target, px->ep, px->port, 0, px->try_start_ns);
    engine_timer_cancel(&px->try_timer);
    if (px->raw_tunnel) {
        /* Not HTTP: no request line will name the endpoint, so the
         * connection's own line does. The connection takes the attempt's
         * endpoint, with its reference and its place in `active`, which
         * conn_unref gives back. */
        struct conn *c = px->conn;
        c->attempts = px->attempts;
        snprintf(c->peer_identity, sizeof(c->peer_identity), "%s", px->peer_identity);
        if (!c->ep) {
            __atomic_store_n(&c->ep, px->ep, __ATOMIC_RELEASE);
            px->ep = NULL;
        }
        px->state = PX_RAW;
        px->body_sent = 0;
        return;
    }
    uint32_t per_try = target_cfg(px)->per_try_timeout_ms;
    if (per_try)
        engine_timer_set(&px->try_timer, px->try_start_ns + (uint64_t)per_try * 1000000u);
    px->state = PX_EXCHANGE;
    h1_free(&px->resp);             /* the last answer's large head, if any */
    h1_init(&px->resp, H1_RESPONSE);
    h1_response_to(&px->resp, px->method);
    px->rx.len = 0;
    if (!build_up_head(px)) {
        respond_local(px, 503, "Service Unavailable", "out of memory");
        return;
    }
    px->body_sent = px->head_len;
}

/* The connection could not be made (err), or its handshake failed (why):
 * a connect failure for the endpoint and for retry_on. */
static void connect_failed_why(struct hproxy *px, int err, const char *why)
{
    request_connect_record(px->target, px->ep, px->port, err, px->try_start_ns);
    px->flags |= FLAG_UF;
    if (px->raw_tunnel) {
        /* Not HTTP: no answer can be made; the application reads EOF. */
        log_warn("%s: %s", px->svc->name, why);
        upstream_drop(px);
        attempt_end(px);
        px->close_after = true;
        px->state = PX_CLOSING;
        return;
    }
    attempt_failed(px, HTTP_FAIL_CONNECT, 0, why);
}

static void connect_failed(struct hproxy *px, int err)
{
    char why[96];
    snprintf(why, sizeof(why), "connect: %s", err == ETIMEDOUT ? "timed out" : strerror(err));
    connect_failed_why(px, err, why);
}

/* One step of u's mTLS handshake, made for svc's endpoint ep: 0 while it
 * goes on; 1 when it has ended and the server's identity is the one svc's
 * `identity` asks for (u->pin keeps which); -1 when it failed (msg says
 * why, logged). */
static int upstream_handshake(struct upstream *u, const struct service *svc, const struct endpoint *ep,
                              char *msg, size_t len)
{
    char why[TLS_WHY_MAX];
    int h = tls_handshake(u->ssl, &u->want_write, why, sizeof(why));
    if (h == 0)
        return 0;
    const char *pin = service_cfg(svc)->identity;   /* before the check: a reload then only retires u */
    if (mtls_server_check(svc, u->ssl, h, u->peer_identity, sizeof(u->peer_identity), why, sizeof(why)) == 0) {
        u->pin = pin;
        return 1;
    }
    snprintf(msg, len, "mTLS: %s", why);
    log_warn("%s: %s: %s", svc->name, ep->label, msg);
    return -1;
}

/* u's TCP connect is made (to svc's endpoint ep, port): no Nagle delay on
 * it; plain, it is ready (1); over mTLS its session begins and the
 * ClientHello goes out (upstream_handshake's answer), or -1 with u->ssl
 * NULL when the session cannot begin (msg says why). */
static int upstream_tcp_made(struct upstream *u, const struct service *svc, const struct endpoint *ep,
                             uint16_t port, char *msg, size_t len)
{
    int one = 1;
    real_setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!u->tls)
        return 1;
    char why[TLS_WHY_MAX];
    u->ssl = mtls_client(svc, ep, port, u->fd, false, &u->id, why, sizeof(why));
    if (!u->ssl) {
        snprintf(msg, len, "mTLS: %s", why);
        return -1;
    }
    return upstream_handshake(u, svc, ep, msg, len);
}

/* What a step of px's connection came to (upstream_tcp_made's or
 * upstream_handshake's answer): ready, or a connect failure (nothing was
 * sent, and nothing is ever sent in the clear), or nothing yet. */
static void attempt_stepped(struct hproxy *px, int made, const char *msg)
{
    if (made > 0) {
        connected(px);
    } else if (made < 0) {
        if (!px->up->ssl)
            log_warn("%s: %s", px->target->name, msg);     /* upstream_handshake logged its own */
        connect_failed_why(px, ECONNRESET, msg);
    }
}

static void handshake_step(struct hproxy *px)
{
    char msg[TLS_WHY_MAX + 16];
    attempt_stepped(px, upstream_handshake(px->up, px->target, px->ep, msg, sizeof(msg)), msg);
}

static void tcp_connected(struct hproxy *px)
{
    char msg[TLS_WHY_MAX + 16];
    attempt_stepped(px, upstream_tcp_made(px->up, px->target, px->ep, px->port, msg, sizeof(msg)), msg);
}

/* ------------------------------------------------------------------ spares --
 *
 * An attempt that opens a connection waits in `waiters` until it is made.
 * Whichever connection of its pool is ready first serves it: its own, or
 * one that another request has just finished with, or one made for an
 * attempt that has been served meanwhile. So a burst of requests at a
 * process's start, or at a server that accepts slowly, waits for the first
 * handshake to end and then for the requests before it, not for a
 * handshake of its own behind every other one: the pending requests of
 * Envoy's connection pools. The connection the attempt gave up goes on as a
 * spare and is pooled when made; a later attempt takes it over while it is
 * being made rather than open one more. A spare that fails counts against
 * its endpoint as a failed connect (no request is failed by it); one whose
 * server has not said a word by connect_timeout (a program that has not
 * accepted it) is closed without blame. */

/* The events an unmade connection waits for: the TCP connect, or the
 * handshake's next read or write. */
static uint32_t unmade_events(const struct upstream *u)
{
    return u->ssl && !u->want_write ? EPOLLIN : EPOLLOUT;
}

static void spare_leave(struct upstream *c)
{
    DL_DELETE2(spares, c, sprev, snext);
    engine_timer_cancel(&c->timer);
}

static void spare_close(struct upstream *c)
{
    spare_leave(c);
    endpoint_unref(c->ep);
    upstream_close(c);
}

static void spare_failed(struct upstream *c, int err, const char *why)
{
    request_connect_record(c->svc, c->ep, c->port, err, c->started);
    log_info("%s: %s: a spare connection failed: %s", c->svc->name, c->ep->label,
             why ? why : strerror(err));
    spare_close(c);
}

/* Made: counted as a connect of its endpoint, then pooled (or handed to
 * an attempt waiting for one). */
static void spare_made(struct upstream *c)
{
    spare_leave(c);
    c->connected = true;
    request_connect_record(c->svc, c->ep, c->port, 0, c->started);
    log_info("%s: %s: a connection made for a request served meanwhile is ready for the next",
             c->svc->name, c->ep->label);
    struct endpoint *ep = c->ep;
    c->ep = NULL;
    pool_put(c, ep, c->port);
    endpoint_unref(ep);
}

/* What a step of spare c came to (as attempt_stepped's). */
static void spare_stepped(struct upstream *c, int made, const char *msg)
{
    if (made > 0)
        spare_made(c);
    else if (made < 0)
        spare_failed(c, ECONNRESET, msg);
    else if (!engine_interest(&c->io, unmade_events(c)))
        spare_failed(c, errno, NULL);
}

static void spare_handshake_step(struct upstream *c)
{
    char msg[TLS_WHY_MAX + 16];
    spare_stepped(c, upstream_handshake(c, c->svc, c->ep, msg, sizeof(msg)), msg);
}

static void spare_ready(struct engine_io *io, uint32_t events)
{
    struct upstream *c = container_of(io, struct upstream, io);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
        c->heard = true;
    if (c->ssl) {
        spare_handshake_step(c);
        return;
    }
    int err = dial_connect_error(c->fd, events);
    if (err) {
        spare_failed(c, err, NULL);
        return;
    }
    char msg[TLS_WHY_MAX + 16];
    spare_stepped(c, upstream_tcp_made(c, c->svc, c->ep, c->port, msg, sizeof(msg)), msg);
}

static void spare_timer_fired(struct engine_timer *t)
{
    struct upstream *c = container_of(t, struct upstream, timer);
    if (c->ssl && !c->heard) {
        /* Its server's program has not accepted it (no request waits). */
        spare_close(c);
        return;
    }
    spare_failed(c, ETIMEDOUT, NULL);
}

/* px's connection, not made yet, goes on without it as a spare. */
static void spare_keep(struct hproxy *px)
{
    struct upstream *c = px->up;
    px->up = NULL;
    c->px = NULL;
    c->svc = px->target;
    c->ep = px->ep;
    endpoint_ref(c->ep);
    c->port = px->port;
    c->started = px->try_start_ns;
    c->io.ready = spare_ready;
    c->timer = (struct engine_timer){ .fire = spare_timer_fired };
    DL_APPEND2(spares, c, sprev, snext);
    engine_timer_set(&c->timer, c->started + (uint64_t)target_cfg(px)->connect_timeout_ms * 1000000u);
    if (!engine_interest(&c->io, unmade_events(c)))
        spare_failed(c, errno, NULL);
}

/* A spare being made for px's pool: px's attempt takes it over. */
static struct upstream *spare_claim(struct hproxy *px)
{
    struct upstream *c;
    DL_FOREACH2(spares, c, snext)
        if (c->ep == px->ep && c->port == px->port && c->tls == px->up_tls)
            break;
    if (!c)
        return NULL;
    spare_leave(c);
    endpoint_unref(c->ep);          /* px->ep holds one */
    c->ep = NULL;
    c->px = px;
    c->io.ready = upstream_ready;
    return c;
}

/* u, ready, serves the oldest attempt waiting for a connection of its
 * pool (ep, port, TLS or not), whose own connection becomes a spare. */
static bool hand_over(struct upstream *u, struct endpoint *ep, uint16_t port)
{
    struct hproxy *w;
    DL_FOREACH2(waiters, w, wnext)
        if (w->ep == ep && w->port == port && w->up_tls == u->tls && !w->raw_tunnel && pin_holds(u, w->target))
            break;
    if (!w)
        return false;
    wait_leave(w);
    spare_keep(w);
    u->px = w;
    u->reused = true;
    u->io.ready = upstream_ready;
    w->up = u;
    connected(w);
    rearm(w);                       /* its request goes when epoll says u is writable */
    return true;
}

/* px's attempt waits for a connection of its pool (its own, px->up, is
 * being made). */
static void wait_join(struct hproxy *px)
{
    px->waiting = true;
    DL_APPEND2(waiters, px, wprev, wnext);
}

/* No attempt can be made (px->last_why says why): the request is answered
 * here, or a tunnel, which has no HTTP to answer with, closes. */
static void no_attempt(struct hproxy *px)
{
    if (px->raw_tunnel) {
        px->close_after = true;
        px->state = PX_CLOSING;
        return;
    }
    give_up(px, HTTP_FAIL_CONNECT);
}

static void attempt_start(struct hproxy *px)
{
    const struct service_config *cfg = target_cfg(px);
    struct sockaddr_storage ss;
    socklen_t sslen;
    /* mTLS without an identity of this process: no attempt, no endpoint
     * blamed, no retry (connect.c, meshim_connect, says why). */
    char why[TLS_WHY_MAX];
    if (cfg->tls == TLS_MTLS && !mtls_identity_ready(why, sizeof(why))) {
        snprintf(px->last_why, sizeof(px->last_why), "no usable mTLS identity in this process: %.86s", why);
        log_warn("%s: %s %s refused: %s", px->target->name, px->method, px->path, px->last_why);
        no_attempt(px);
        return;
    }
    if (!px->picking) {
        pick_init(&px->pick, px->target, AF_INET6);
        px->picking = true;
        budget_first(px->target);
    }
    struct endpoint *ep = pick_target(&px->pick, px->port, &ss, &sslen);
    if (!ep && !px->probe_wait_until_ns)
        px->probe_wait_until_ns = now_ns() + (uint64_t)cfg->connect_timeout_ms * 1000000u;
    if (!ep && pick_may_wait(&px->pick, px->probe_wait_until_ns)) {
        px->state = PX_BACKOFF;     /* a half-open probe is out: its outcome decides */
        engine_timer_set(&px->try_timer, now_ns() + PICK_WAIT_STEP_NS);
        return;
    }
    px->probe_wait_until_ns = 0;
    if (!ep) {
        px->flags |= px->attempts ? 0 : FLAG_UH;
        if (!px->attempts)
            no_endpoint(&px->pick);
        snprintf(px->last_why, sizeof(px->last_why), "no healthy endpoint");
        no_attempt(px);
        return;
    }
    endpoint_ref(ep);
    px->ep = ep;
    __atomic_add_fetch(&ep->target.active, 1, __ATOMIC_RELAXED);
    px->attempts++;
    px->try_start_ns = now_ns();
    px->peer_identity[0] = '\0';
    px->resp_started = false;
    px->up_tls = cfg->tls == TLS_MTLS;
    /* A stream that is not HTTP goes on a connection of its own: on one
     * that carried requests, its first bytes (h2c's preface) would reach
     * the server as the next request's. */
    bool fresh = px->fresh_only || px->raw_tunnel;
    struct upstream *u = fresh ? NULL : pool_take(px->target, ep, px->port, px->up_tls, px->try_start_ns);
    px->fresh_only = false;
    if (u) {
        u->px = px;
        u->io.ready = upstream_ready;
        px->up = u;
        connected(px);
        return;
    }
    /* connect_timeout bounds the TCP connect and the handshake together. */
    uint64_t timeout_ns = (uint64_t)cfg->connect_timeout_ms * 1000000u;
    if ((u = spare_claim(px))) {
        px->up = u;
        px->state = PX_ATTEMPT;
        wait_join(px);
        engine_timer_set(&px->try_timer, u->started + timeout_ns);
        return;
    }
    /* Its own family: an IPv4 endpoint gets an IPv4 socket (IPv6 may be off). */
    sslen = endpoint_addr(ep, ep->addr.family, px->port, &ss);
    int fd = real_socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0)
        fd = ownfd_move(fd);
    if (fd < 0 || !(u = calloc(1, sizeof(*u)))) {
        int err = errno;
        if (fd >= 0)
            own_close(fd);
        snprintf(px->last_why, sizeof(px->last_why), "cannot open a socket: %s", strerror(err));
        attempt_end(px);
        give_up(px, HTTP_FAIL_CONNECT);
        return;
    }
    u->fd = fd;
    u->px = px;
    u->tls = px->up_tls;
    u->io = (struct engine_io){ .ready = upstream_ready, .fd = fd };
    px->up = u;
    px->state = PX_ATTEMPT;
    wait_join(px);
    engine_timer_set(&px->try_timer, px->try_start_ns + timeout_ns);
    int err = real_connect(fd, (struct sockaddr *)&ss, sslen) == 0 ? 0 : errno;
    if (err == 0)
        tcp_connected(px);
    else if (err != EINPROGRESS)
        connect_failed(px, err);
}

/* max_requests of the target: the request holds one of its places until
 * request_done; false (answered 503 here, UO) when none is free. */
static bool request_admitted(struct hproxy *px)
{
    uint32_t max = target_cfg(px)->max_requests;
    if (__atomic_add_fetch(&px->target->requests, 1, __ATOMIC_ACQ_REL) > max) {
        __atomic_sub_fetch(&px->target->requests, 1, __ATOMIC_RELEASE);
        px->flags |= FLAG_UO;
        snprintf(px->last_why, sizeof(px->last_why), "max_requests (%u) reached", max);
        respond_local(px, 503, "Service Unavailable", px->last_why);
        return false;
    }
    px->counted = px->target;
    return true;
}

/* fault_delay, drawn from cfg: the first attempt waits until `from` plus
 * the delay. True when it was drawn. */
static bool fault_delay_drawn(struct hproxy *px, const struct service_config *cfg, uint64_t from)
{
    if (!cfg->fault_delay_ms || !fault_drawn(cfg->fault_delay_percent))
        return false;
    px->state = PX_BACKOFF;
    engine_timer_set(&px->try_timer, from + (uint64_t)cfg->fault_delay_ms * 1000000u);
    return true;
}

/* The target's fault_abort and fault_delay, drawn for the request just
 * begun, as Envoy's HTTP fault filter draws them: answered 503 here (FI),
 * or its first attempt put off (DI).
 * True when the request does not go on now. */
static bool fault_injected(struct hproxy *px)
{
    const struct service_config *cfg = target_cfg(px);
    if (fault_drawn(cfg->fault_abort)) {
        px->flags |= FLAG_FI;
        snprintf(px->last_why, sizeof(px->last_why), "fault injected (fault_abort)");
        respond_local(px, 503, "Service Unavailable", px->last_why);
        return true;
    }
    if (fault_delay_drawn(px, cfg, px->req_start_ns)) {
        px->flags |= FLAG_DI;
        return true;
    }
    return false;
}

/* A connection carried as TCP has no request to fail: the service's
 * faults are drawn once for it, as a TCP service's connect draws them. An
 * aborted one is reset (the application reads ECONNRESET; its line says
 * `fault`, FI); a delayed one connects upstream fault_delay later (DI).
 * True when the tunnel does not start now. */
static bool raw_fault_injected(struct hproxy *px)
{
    const struct service_config *cfg = service_cfg(px->svc);
    if (fault_drawn(cfg->fault_abort)) {
        log_warn("%s: connection reset on purpose (fault_abort)", px->svc->name);
        px->conn->result = RESULT_FAULT;
        conn_flag(px->conn, FLAG_FI);
        px->close_after = px->reset_app = true;
        px->state = PX_CLOSING;
        return true;
    }
    if (fault_delay_drawn(px, cfg, now_ns())) {
        conn_flag(px->conn, FLAG_DI);
        return true;
    }
    return false;
}

/* What the request's line and Host say, and when it began (a head cut
 * short by an error may have none of them yet). */
static void request_head_take(struct hproxy *px, const struct h1_head *h)
{
    text_copy(px->method, sizeof(px->method), h->method ? h->method : "");
    text_copy(px->authority, sizeof(px->authority), h->authority ? h->authority : "");
    text_copy(px->path, sizeof(px->path), h->target ? h->target : "");
    px->req_start_ns = now_ns();
    px->req_start_unix_ns = wall_ns();
}

static void request_begin(struct hproxy *px)
{
    const struct h1_head *h = h1_head(&px->req);
    request_head_take(px, h);
    px->idempotent = http_method_idempotent(px->method);
    px->req_keep_alive = h->keep_alive;
    px->req_http11 = h->major == 1 && h->minor == 1;
    px->close_stripped = close_only_downstream(px, h);
    px->upgrade = h->upgrade;
    px->head_read = true;
    px->http_seen = true;
    px->status = 0;
    px->attempts = px->retries = px->flags = 0;
    px->accept_waited = false;
    px->req_bytes = px->resp_bytes = 0;
    px->last_why[0] = '\0';
    struct trace_context served;    /* trace_propagation = thread: the writer's request */
    struct threadtrace *tt = px->conn->tt;     /* `in` holds what was read past the head's start */
    bool inherited = tt && threadtrace_request(tt, threadtrace_moved(tt) - px->in.len, &served);
    px->traced = otlp_span_begin(&px->span, h, inherited ? &served : NULL);
    struct service *routed = route_request(px->svc, h, &px->route);
    px->target = registry_split(routed, rng_thread());
    uint32_t whole = target_cfg(px)->request_timeout_ms;
    if (whole)
        engine_timer_set(&px->req_timer, px->req_start_ns + (uint64_t)whole * 1000000u);
    if (!request_admitted(px) || fault_injected(px))
        return;
    attempt_start(px);
}

/* ------------------------------------------------------------ application -- */

static size_t in_limit(const struct hproxy *px)
{
    size_t keep = target_cfg(px)->retry_buffer;
    size_t limit = px->head_len + (keep > IN_MIN ? keep : IN_MIN);
    /* Room for a whole head, so that the parser sees where it ends or
     * that it is too large (before, a head past 64 KiB waited for ever). */
    return !px->head_read && limit < HEAD_RAW_MAX ? HEAD_RAW_MAX : limit;
}

/* Reads what the application sent, while there is room and a use for it. */
static bool app_read(struct hproxy *px)
{
    /* Read ahead of the request in progress too (pipelined requests wait
     * in `in`, bounded): the descriptor stays watched for reading, with no
     * epoll_ctl per request. */
    if (px->app_eof || !px->app_in_ready || px->state == PX_CLOSING ||
        px->in.len >= in_limit(px) || !gbuf_reserve(&px->in, IO_CHUNK))
        return false;
    struct threadtrace *tt = px->conn->tt;
    if (tt)
        threadtrace_move_begin(tt);
    ssize_t n = real_read(px->app, px->in.data + px->in.len, IO_CHUNK);
    if (tt)
        threadtrace_move_end(tt, n > 0 ? (size_t)n : 0);
    if (n > 0) {
        px->in.len += (size_t)n;
        if (n < IO_CHUNK)
            px->app_in_ready = false;
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        px->app_in_ready = errno != EAGAIN;
        return false;
    }
    px->app_eof = true;         /* EOF, or an error that ends the stream the same way */
    return true;
}

/* What a send of `out` to the application did: n bytes, or -errno. True
 * when that changed anything. */
static bool app_wrote(struct hproxy *px, ssize_t n)
{
    if (n > 0) {
        gbuf_drop(&px->out, (size_t)n);
        return true;
    }
    if (n < 0 && n != -EAGAIN && n != -EINTR) {
        /* The application closed its end: nothing more can reach it. */
        px->out.len = 0;
        px->app_eof = true;
        px->close_after = true;
        if (px->head_read)
            px->flags |= FLAG_DC;
        return true;
    }
    return false;
}

static void app_sent(void *owner, ssize_t n, size_t len)
{
    struct hproxy *px = owner;
    px->out_queued = false;
    app_wrote(px, n);
    px->out_now = n < (ssize_t)len;
    px_step(px);
}

/* A short answer goes with the turn's other queued sends; the rest now. */
static bool app_write(struct hproxy *px)
{
    if (!px->out.len || px->out_queued)
        return false;
    if (!px->out_now && sendq_add(px->app, px->out.data, px->out.len, app_sent, px)) {
        px->out_queued = true;
        return false;
    }
    px->out_now = false;
    ssize_t n = real_send(px->app, px->out.data, px->out.len, MSG_NOSIGNAL);
    return app_wrote(px, n < 0 ? -errno : n);
}

/* A request head llhttp refused for its body's length (Content-Length with
 * Transfer-Encoding, two lengths, a length that is not a number), or any
 * broken head after a first good request: 400, and the connection closes,
 * as Envoy and nginx answer it; a head beyond the limits (http1.h): 431,
 * as Envoy answers it. Never carried on as TCP, though the stream spoke
 * HTTP/1.x: its routes would be bypassed, and a body framed two ways is
 * how a request is smuggled past a proxy into the next one. */
static void refuse_head(struct hproxy *px, bool large)
{
    int status = large ? 431 : 400;
    log_warn("%s: a request answered %d here, its connection closed: %s", px->svc->name, status,
             px->last_why);
    /* Counted and logged as any answer made here: the connection's
     * service (no route was looked at), no endpoint, LR, nothing sent up,
     * and what of the head was read whole. */
    request_head_take(px, h1_head(&px->req));
    px->target = NULL;
    px->route = NULL;
    px->traced = false;
    px->attempts = 0;
    px->status = status;
    px->flags = FLAG_LR;
    px->req_bytes = 0;
    px->resp_bytes = answer_here(px, status, large ? "Request Header Fields Too Large" : "Bad Request",
                                 px->last_why, true);
    request_log(px);
    px->close_after = true;
    px->state = PX_CLOSING;
}

/* Feeds the request parser what `in` holds past `parsed`. */
static void parse_request(struct hproxy *px)
{
    while (!px->req_done && px->parsed < px->in.len && px->state != PX_CLOSING &&
           !px->raw_tunnel) {
        size_t used = 0;
        enum h1_event e = h1_feed(&px->req, px->in.data + px->parsed, px->in.len - px->parsed, &used);
        px->parsed += used;
        switch (e) {
        case H1_MORE:
            break;
        case H1_HEAD: {
            px->head_len = px->parsed;
            /* A request without a body ends where its head does: known
             * before it is sent, so that an answer made here keeps the
             * connection. */
            size_t more = 0;
            enum h1_event end = h1_feed(&px->req, px->in.data + px->parsed, px->in.len - px->parsed,
                                        &more);
            if (end == H1_ERROR) {
                e = H1_ERROR;
                break;
            }
            px->parsed += more;
            px->req_done = end == H1_END || end == H1_UPGRADE;
            request_begin(px);
            continue;
        }
        case H1_END:
        case H1_UPGRADE:
            px->req_done = true;
            break;
        case H1_ERROR:
            break;
        }
        if (e == H1_ERROR) {
            bool refuse = h1_spoke_http(&px->req) &&
                          (h1_bad_length(&px->req) || h1_too_large(&px->req));
            if (!px->http_seen && !refuse) {
                /* The first bytes are not HTTP/1.x (h2c's preface, a binary
                 * protocol), or are HTTP/1.x that llhttp refuses for what a
                 * lenient server takes (bare LF line ends): this connection
                 * goes on as plain TCP. A body's length never is (refuse_head). */
                log_warn("%s: not HTTP/1.x (%s): this connection is carried as TCP",
                         px->svc->name, h1_error(&px->req));
                px->raw_tunnel = true;
                px->target = px->svc;
                if (!raw_fault_injected(px))
                    attempt_start(px);
                return;
            }
            /* A broken request on a connection that speaks HTTP: 400. */
            snprintf(px->last_why, sizeof(px->last_why), "bad request: %s", h1_error(&px->req));
            if (px->head_read)
                respond_local(px, 400, "Bad Request", px->last_why);
            else
                refuse_head(px, h1_too_large(&px->req));
            return;
        }
        if (e == H1_MORE)
            break;
    }
    if (!px->head_read && px->parsed >= HEAD_RAW_MAX && px->state != PX_CLOSING && !px->raw_tunnel) {
        /* A head that never ends (spaces llhttp skips are not in its
         * strings, so H1_HEAD_MAX alone does not bound it). */
        snprintf(px->last_why, sizeof(px->last_why), "bad request: head too large");
        refuse_head(px, true);
    }
}

/* A TLS step that moved no byte, as send() or read() would say it: 0 at
 * the peer's close_notify, else -1 with EAGAIN (try when ready) or
 * ECONNRESET (broken; a FIN without close_notify too: an answer read
 * until EOF may be cut). */
static ssize_t tls_as_socket(enum tls_io r)
{
    if (r == TLS_IO_CLOSED)
        return 0;
    errno = r == TLS_IO_WANT_READ || r == TLS_IO_WANT_WRITE ? EAGAIN : ECONNRESET;
    return -1;
}

/* send() and read() on the upstream connection, through TLS over mTLS. */
static ssize_t up_send(struct upstream *u, const void *p, size_t n)
{
    if (!u->ssl)
        return real_send(u->fd, p, n, MSG_NOSIGNAL);
    size_t done = 0;
    enum tls_io r = tls_write(u->ssl, p, n, &done);
    return r == TLS_IO_DONE ? (ssize_t)done : tls_as_socket(r);
}

/* *more: the socket (or OpenSSL's buffer) may hold more right now. */
static ssize_t up_recv(struct upstream *u, void *p, size_t n, bool *more)
{
    if (!u->ssl) {
        ssize_t r = real_read(u->fd, p, n);
        *more = r == (ssize_t)n;
        return r;
    }
    size_t done = 0;
    enum tls_io r = tls_read(u->ssl, p, n, &done);
    if (r != TLS_IO_DONE)
        return tls_as_socket(r);
    *more = done == n || tls_pending(u->ssl);
    return (ssize_t)done;
}

/* What a send of the request upstream did: w bytes of its head (`head`)
 * or of its body went. */
static void up_wrote(struct hproxy *px, bool head, size_t w)
{
    if (head)
        px->up_head_sent += w;
    else
        px->body_sent += w;
    px->req_bytes += (uint64_t)w;
    if (px->state == PX_RAW) {
        gbuf_drop(&px->in, px->body_sent);
        px->body_sent = 0;
    } else if (!head && !px->req_done &&
               px->in.len - px->head_len >= target_cfg(px)->retry_buffer) {
        /* More body than retry_buffer: stream it; no retry for this one. */
        size_t sent = px->body_sent - px->head_len;
        memmove(px->in.data + px->head_len, px->in.data + px->body_sent, px->in.len - px->body_sent);
        px->in.len -= sent;
        px->parsed -= sent;
        px->body_sent = px->head_len;
        px->retry_lost = true;
    }
}

/* What of the request goes upstream next: the rest of its head (*head),
 * else the body read and not sent yet (a tunnel's: all it read). False
 * when nothing. */
static bool up_pending(const struct hproxy *px, bool *head, const char **p, size_t *n)
{
    *head = px->up_head_sent < px->up_head.len && px->state == PX_EXCHANGE;
    if (*head) {
        *p = px->up_head.data + px->up_head_sent;
        *n = px->up_head.len - px->up_head_sent;
        return true;
    }
    size_t end = px->state == PX_RAW ? px->in.len : px->parsed;
    *p = px->in.data + px->body_sent;
    *n = end > px->body_sent ? end - px->body_sent : 0;
    return *n != 0;
}

/* A queued send of the request is done: n of its len bytes went, or
 * -errno (the error the read side reports, as after a send). Nothing else
 * was sent meanwhile, so what up_pending says is what was queued. */
static void up_sent(void *owner, ssize_t n, size_t len)
{
    struct upstream *u = owner;
    struct hproxy *px = u->px;
    u->send_queued = false;
    bool head;
    const char *p;
    size_t left;
    up_pending(px, &head, &p, &left);
    if (n > 0)
        up_wrote(px, head, (size_t)n);
    u->send_now = n < (ssize_t)len;
    px_step(px);
}

/* Writes the request (head, then body as read) upstream. A plain
 * connection's head, and its whole body once read, go with the turn's
 * other queued sends when short. */
static bool up_write(struct hproxy *px)
{
    struct upstream *u = px->up;
    bool head;
    const char *p;
    size_t n;
    if (!u || !u->connected || u->send_queued || !up_pending(px, &head, &p, &n))
        return false;
    bool queue = !u->ssl && !u->send_now && px->state == PX_EXCHANGE && (head || px->req_done);
    if (queue && sendq_add(u->fd, p, n, up_sent, u)) {
        u->send_queued = true;
        return false;
    }
    u->send_now = false;
    ssize_t w = up_send(u, p, n);
    if (w <= 0)
        return false;       /* EAGAIN, or the error the read side reports */
    up_wrote(px, head, (size_t)w);
    return true;
}

/* ---------------------------------------------------------------- answers -- */

/* The answer's head is in: true to forward it, false when the request is
 * sent again instead (its status is one retry_on names). */
static bool response_head(struct hproxy *px)
{
    const struct h1_head *h = h1_head(&px->resp);
    if (http_status_interim(h->status))
        return true;
    px->status = h->status;
    if (may_retry(px, HTTP_FAIL_STATUS, h->status)) {
        char why[32];
        snprintf(why, sizeof(why), "answered %d", h->status);
        attempt_abandon(px, HTTP_FAIL_STATUS, h->status, why);
        retry_later(px);
        return false;
    }
    engine_timer_cancel(&px->try_timer);    /* per_try_timeout: until the head */
    return true;
}

/* The answer ended (at EOF when `eof`): the request is done. */
static void response_end(struct hproxy *px, bool eof)
{
    request_record(px->target, px->ep, px->port, http_status_fails_endpoint(px->status), px->try_start_ns);
    const struct h1_head *h = h1_head(&px->resp);
    bool reuse = !eof && h->keep_alive && (px->req_keep_alive || px->close_stripped) &&
                 px->rx.len == 0 && px->req_done &&
                 px->up && px->up_head_sent == px->up_head.len && px->body_sent == px->parsed;
    if (reuse) {
        struct upstream *u = px->up;
        px->up = NULL;
        pool_put(u, px->ep, px->port);
    } else {
        upstream_drop(px);
    }
    /* An answer that ends at EOF cannot be followed on the application's
     * connection by another one it could tell apart. One that says the
     * connection ends and was forwarded as it is (HTTP/1.0 without
     * keep-alive; see close_only_upstream) ends the application's
     * connection with it: an HTTP/1.0 client (ab -k) told nothing else
     * reads until it does. */
    if (eof || (!h->keep_alive && !px->resp_close_stripped))
        px->close_after = true;
    request_done(px);
}

/* The answer broke off after part of it reached the application: the
 * application sees its connection end; with `reset` (the upstream was
 * reset, or its answer broke the protocol) as a reset, so that an answer
 * that ends with the connection never reads as whole. */
static void answer_cut(struct hproxy *px, bool reset)
{
    upstream_drop(px);
    px->flags |= FLAG_UC;
    px->close_after = true;
    px->reset_app = reset;
    request_done(px);
}

/* Forwards the first `len` bytes of rx to the application. */
static void forward(struct hproxy *px, size_t len)
{
    gbuf_append(&px->out, px->rx.data, len);
    px->resp_bytes += len;
    px->committed = true;
    gbuf_drop(&px->rx, len);
}

/* Does the answer's Connection: close concern only the upstream connection?
 * That connection is one hop and the application's another, whose next
 * requests may go to any endpoint: a server that closes after this answer
 * (nginx after its keepalive_requests, one draining) closes its own
 * connection, and the application's goes on, as behind Envoy. So when the
 * application's request kept its connection (HTTP/1.1, or HTTP/1.0 with
 * Connection: keep-alive), the answer is HTTP/1.1 framed by a length, or
 * by chunks to an HTTP/1.1 request (its end is not the connection's), and
 * its one Connection line says only "close", the line is not forwarded
 * (forward_head). An HTTP/1.0 answer, or one that ends at EOF,
 * still ends the application's connection: that is how its end is told. */
static bool close_only_upstream(const struct hproxy *px, const struct h1_head *h)
{
    if (!px->req_keep_alive || h->keep_alive || h->major != 1 || h->minor != 1 || h->upgrade ||
        h->until_eof || http_status_interim(h->status) ||
        (!px->req_http11 && h1_header(h, "transfer-encoding")))
        return false;
    int lines = 0;
    const char *value = NULL;
    for (int i = 0; i < h->nheaders; i++) {
        if (ascii_casecmp(h->headers[i].name, "connection") == 0) {
            lines++;
            value = h->headers[i].value;
        }
    }
    return lines == 1 && ascii_casecmp(value, "close") == 0;
}

/* Forwards the answer's head (its first `len` bytes of rx, head_whole)
 * rewritten: its Connection lines dropped when drop_connection, and `line`
 * added last. False, and nothing forwarded, without memory for the copy. */
static bool forward_head_rewritten(struct hproxy *px, size_t len, bool drop_connection, const char *line)
{
    const char *head = px->rx.data;
    size_t before = px->out.len;
    if (!append_headers(&px->out, head, head + len - 2, drop_connection, false) ||
        !gbuf_append(&px->out, line, strlen(line)) || !gbuf_append(&px->out, "\r\n", 2)) {
        px->out.len = before;
        return false;
    }
    px->resp_bytes += px->out.len - before;
    px->committed = true;
    gbuf_drop(&px->rx, len);
    return true;
}

/* Forwards the answer's head (its first `len` bytes of rx). Its Connection
 * line is about the application's connection, a hop of its own: a close of
 * the upstream connection only (close_only_upstream) is dropped, and an
 * HTTP/1.0 client reads keep-alive instead, as nginx's own answer would
 * tell it; when the application asked for Connection: close and the line
 * was not sent up (close_stripped), the answer says it. Without memory for
 * a rewrite the head goes as it came, and the connection ends after it. */
static void forward_head(struct hproxy *px, size_t len)
{
    static const char KEEP[] = "connection: keep-alive\r\n", CLOSE[] = "connection: close\r\n";
    const struct h1_head *h = h1_head(&px->resp);
    bool whole = head_whole(px->rx.data, len);
    if (whole && close_only_upstream(px, h) &&
        forward_head_rewritten(px, len, true, px->req_http11 ? "" : KEEP)) {
        px->resp_close_stripped = true;
        return;
    }
    if (whole && px->close_stripped && !http_status_interim(h->status) && h->keep_alive &&
        forward_head_rewritten(px, len, false, CLOSE))
        return;
    forward(px, len);
}

static void parse_response(struct hproxy *px)
{
    /* Fed even when rx is empty: an answer without a body (to HEAD, a
     * 204) ends where its head did, reported by the next call. */
    while (px->state == PX_EXCHANGE) {
        size_t used = 0;
        enum h1_event e = h1_feed(&px->resp, px->rx.data, px->rx.len, &used);
        switch (e) {
        case H1_MORE:
            forward(px, used);
            return;
        case H1_HEAD:
            if (!response_head(px))
                return;
            forward_head(px, used);
            continue;
        case H1_END: {
            forward(px, used);
            if (http_status_interim(h1_head(&px->resp)->status)) {
                h1_response_to(&px->resp, px->method);
                continue;
            }
            response_end(px, false);
            return;
        }
        case H1_UPGRADE:
            /* 101 or a 2xx to CONNECT: raw bytes from here on, both ways. */
            forward(px, used);
            request_record(px->target, px->ep, px->port, false, px->try_start_ns);
            px->status = h1_head(&px->resp)->status;
            engine_timer_cancel(&px->try_timer);
            engine_timer_cancel(&px->req_timer);
            request_log(px);
            px->head_read = false;
            px->state = PX_RAW;
            gbuf_drop(&px->in, px->parsed);     /* the request went up; what follows is raw */
            px->parsed = px->body_sent = 0;
            forward(px, px->rx.len);
            return;
        case H1_ERROR:
            snprintf(px->last_why, sizeof(px->last_why), "%s: not an HTTP/1.x answer (%s)",
                     px->ep ? px->ep->label : "", h1_error(&px->resp));
            if (!px->committed) {
                request_record(px->target, px->ep, px->port, true, px->try_start_ns);
                respond_local(px, 502, "Bad Gateway", px->last_why);
            } else {
                answer_cut(px, true);
            }
            return;
        }
    }
}

/* The upstream ended (EOF) or failed (err) in EXCHANGE. */
static void upstream_ended(struct hproxy *px, int err)
{
    if (!err && h1_finish(&px->resp) == H1_END && px->resp_started) {
        response_end(px, true);
        return;
    }
    if (!px->resp_started && px->up && px->up->reused && !px->committed &&
        (px->idempotent || target_cfg(px)->retry_non_idempotent) && !px->retry_lost) {
        /* A pooled connection its server had just closed: once more, on a
         * new connection, with no count against the endpoint. */
        upstream_drop(px);
        attempt_end(px);
        px->attempts--;
        px->fresh_only = true;
        attempt_start(px);
        return;
    }
    if (px->committed) {
        request_record(px->target, px->ep, px->port, true, px->try_start_ns);
        answer_cut(px, err != 0);
        return;
    }
    px->flags |= FLAG_UC;
    attempt_failed(px, HTTP_FAIL_RESET, 0, err ? strerror(err) : "connection closed before an answer");
}

static bool up_read(struct hproxy *px)
{
    struct upstream *u = px->up;
    if (!u || !u->connected || !px->up_in_ready || px->out.len >= OUT_MAX ||
        !gbuf_reserve(&px->rx, IO_CHUNK))
        return false;
    bool more = false;
    ssize_t n = up_recv(u, px->rx.data + px->rx.len, IO_CHUNK, &more);
    if (n > 0) {
        px->rx.len += (size_t)n;
        px->up_in_ready = more;
        px->resp_started = true;
        if (px->state == PX_RAW)
            forward(px, px->rx.len);
        else
            parse_response(px);
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        px->up_in_ready = errno != EAGAIN;
        return false;
    }
    int err = n < 0 ? errno : 0;
    if (px->state == PX_RAW) {
        px->raw_down_done = true;
        if (err)
            px->close_after = px->reset_app = true;     /* told at the end */
        else
            shutdown(px->app, SHUT_WR);
        return true;
    }
    upstream_ended(px, err);
    return true;
}

/* --------------------------------------------------------------- the loop -- */

static void px_end(struct hproxy *px)
{
    if (px->owing)
        __atomic_sub_fetch(&exit_owing, 1, __ATOMIC_RELEASE);
    __atomic_sub_fetch(&live_proxies, 1, __ATOMIC_RELEASE);
    if (px->head_read && px->state != PX_RAW) {
        /* The application left before its answer. */
        px->flags |= FLAG_DC;
        request_done(px);
    }
    /* What a tunnel moved after its 101 or 2xx (the request's line is written). */
    __atomic_add_fetch(&px->conn->bytes_sent, px->req_bytes, __ATOMIC_RELAXED);
    __atomic_add_fetch(&px->conn->bytes_received, px->resp_bytes, __ATOMIC_RELAXED);
    attempt_end(px);
    engine_timer_cancel(&px->req_timer);
    request_uncount(px);
    if (px->picking)
        pick_done(&px->pick);
    upstream_drop(px);
    sendq_cancel(px);
    engine_unwatch(&px->app_io);
    if (px->reset_app)
        conn_pair_reset(px->conn);  /* before the close below */
    own_close(px->app);
    gbuf_free(&px->in);
    gbuf_free(&px->out);
    gbuf_free(&px->rx);
    gbuf_free(&px->up_head);
    h1_free(&px->req);
    h1_free(&px->resp);
    conn_unref(px->conn);
    DL_DELETE(proxies, px);
    engine_retire(px);
}

/* While the process ends: has the application written what has not gone
 * upstream yet, and could still go? Bytes unread in the pair (room for
 * them in `in`), a whole request not sent yet (its connection still
 * opening, or a backoff), or a tunnel's bytes. A request cut short, or one
 * waiting behind another's answer, could not go: not waited for. */
static bool owes_upstream(struct hproxy *px)
{
    if (px->state == PX_CLOSING)
        return false;
    int unread = 0;
    if (!px->app_eof && px->in.len < in_limit(px) && real_ioctl(px->app, FIONREAD, &unread) == 0 &&
        unread > 0)
        return true;
    if (px->state == PX_RAW)
        return px->body_sent < px->in.len;
    if (!px->head_read || !px->req_done)
        return false;
    if (px->state == PX_ATTEMPT || px->state == PX_BACKOFF)
        return true;
    return px->state == PX_EXCHANGE &&
           (px->up_head_sent < px->up_head.len || px->body_sent < px->parsed);
}

/* While the process ends (exit_asked): px counted in exit_owing or not. */
static void owe_update(struct hproxy *px)
{
    bool owes = owes_upstream(px);
    if (owes != px->owing) {
        px->owing = owes;
        if (owes)
            __atomic_add_fetch(&exit_owing, 1, __ATOMIC_RELEASE);
        else
            __atomic_sub_fetch(&exit_owing, 1, __ATOMIC_RELEASE);
    }
}

static void rearm(struct hproxy *px)
{
    bool app_in = !px->app_eof && px->in.len < in_limit(px) && px->state != PX_CLOSING;
    uint32_t app = (app_in ? EPOLLIN : 0) | (px->out.len && !px->out_queued ? EPOLLOUT : 0);
    bool ok = engine_interest(&px->app_io, app);
    struct upstream *u = px->up;
    if (u) {
        uint32_t up = 0;
        if (!u->connected)
            up = unmade_events(u);
        else {
            bool more = px->state == PX_RAW ? px->in.len > px->body_sent
                      : px->up_head_sent < px->up_head.len || px->body_sent < px->parsed;
            /* EPOLLRDHUP as in the pool: no epoll_ctl as it goes in and out. */
            up = (more && !u->send_queued ? EPOLLOUT : 0) |
                 (px->out.len < OUT_MAX && !(px->state == PX_RAW && px->raw_down_done)
                  ? EPOLLIN | EPOLLRDHUP : 0);
        }
        ok &= engine_interest(&u->io, up);
    }
    if (!ok) {
        log_warn("%s: cannot watch a connection: %s; closing it", px->svc->name, strerror(errno));
        px_end(px);
    }
}

static void px_step(struct hproxy *px)
{
    for (int round = 0; round < 64; round++) {
        bool moved = false;
        moved |= app_read(px);
        if (px->state == PX_IDLE || (px->head_read && !px->req_done && px->state != PX_CLOSING))
            parse_request(px);
        if (px->state == PX_EXCHANGE || px->state == PX_RAW)
            moved |= up_write(px);
        if (px->state == PX_EXCHANGE || px->state == PX_RAW)
            moved |= up_read(px);
        moved |= app_write(px);
        if (px->state == PX_RAW && px->app_eof && !px->raw_up_done && px->in.len == px->body_sent &&
            px->up) {
            px->raw_up_done = true;
            if (px->up->ssl)
                tls_close_notify(px->up->ssl);
            shutdown(px->up->fd, SHUT_WR);
            moved = true;
        }
        if (px->app_eof && px->head_read && !px->req_done && px->state != PX_RAW &&
            px->state != PX_CLOSING) {
            /* The application left mid-request: nothing of it is sent on. */
            px->flags |= FLAG_DC;
            upstream_drop(px);
            request_done(px);
            moved = true;
        }
        if (!moved)
            break;
    }
    bool idle_gone = px->state == PX_IDLE && px->app_eof && !px->out.len;
    bool closing_done = px->state == PX_CLOSING && !px->out.len;
    bool raw_done = px->state == PX_RAW && ((px->raw_up_done && px->raw_down_done && !px->out.len) ||
                                            (px->close_after && !px->out.len));
    bool gone = px->app_eof && px->state != PX_RAW && px->state != PX_IDLE && px->close_after &&
                !px->out.len;
    if (idle_gone || closing_done || raw_done || gone) {
        px_end(px);
        return;
    }
    if (exit_asked)
        owe_update(px);
    rearm(px);
}

static void upstream_ready(struct engine_io *io, uint32_t events)
{
    struct upstream *u = container_of(io, struct upstream, io);
    struct hproxy *px = u->px;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
        px->up_in_ready = u->heard = true;
    if (!u->connected && !u->ssl) {
        int err = dial_connect_error(u->fd, events);
        if (err)
            connect_failed(px, err);
        else
            tcp_connected(px);
    } else if (!u->connected) {
        handshake_step(px);
    }
    px_step(px);
}

static void app_ready(struct engine_io *io, uint32_t events)
{
    struct hproxy *px = container_of(io, struct hproxy, app_io);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
        px->app_in_ready = true;
    px_step(px);
}

/* At connect_timeout, an mTLS handshake whose server has said nothing: is
 * that a server whose program has not accepted yet (busy workers, a pause),
 * which a retry could not take to another endpoint? Then the attempt waits
 * for it, as a plain client waits in its backlog, rather than fail three
 * times and eject an endpoint that is only slow (the question the
 * connect path asks: mtls_unaccepted_waits_at). Bounded by
 * per_try_timeout when set, else UNACCEPTED_WAIT_NS more; request_timeout
 * still answers 504. */
static bool waits_for_accept(struct hproxy *px)
{
    struct upstream *u = px->up;
    if (!u || !u->ssl || px->accept_waited || u->heard)
        return false;               /* once a request: its retries do not wait again */
    char c;
    ssize_t n = real_recv(u->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
        return false;               /* it spoke, closed or failed: not a backlog */
    bool retried = http_retry_on_names(target_cfg(px)->retry_on, NULL, HTTP_FAIL_CONNECT, 0);
    const struct pick *retry = retried ? &px->pick : NULL;
    if (!mtls_unaccepted_waits_at(px->target, px->ep, px->port, retry, px->retries, "the request waits for it"))
        return false;
    u->waits_accept = px->accept_waited = true;
    uint32_t per_try = target_cfg(px)->per_try_timeout_ms;
    uint64_t until = per_try ? px->try_start_ns + (uint64_t)per_try * 1000000u
                             : now_ns() + UNACCEPTED_WAIT_NS;
    engine_timer_set(&px->try_timer, until);
    return true;
}

static void try_timer_fired(struct engine_timer *t)
{
    struct hproxy *px = container_of(t, struct hproxy, try_timer);
    if (px->state == PX_BACKOFF) {
        attempt_start(px);
    } else if (px->state == PX_ATTEMPT) {
        if (px->up && px->up->waits_accept)
            connect_failed_why(px, ETIMEDOUT, "TLS handshake: the server did not accept in time");
        else if (!waits_for_accept(px))
            connect_failed(px, ETIMEDOUT);
    } else if (px->state == PX_EXCHANGE && !px->committed) {
        char why[64];
        snprintf(why, sizeof(why), "no answer within per_try_timeout (%ums)",
                 target_cfg(px)->per_try_timeout_ms);
        attempt_failed(px, HTTP_FAIL_TIMEOUT, 0, why);
    }
    px_step(px);
}

static void req_timer_fired(struct engine_timer *t)
{
    struct hproxy *px = container_of(t, struct hproxy, req_timer);
    if (!px->head_read) {
        px_step(px);
        return;
    }
    px->flags |= FLAG_UT;
    if (!px->committed) {
        char why[64];
        snprintf(why, sizeof(why), "request_timeout (%ums)", target_cfg(px)->request_timeout_ms);
        if (px->ep)
            request_record(px->target, px->ep, px->port, true, px->try_start_ns);
        respond_local(px, 504, "Gateway Timeout", why);
    } else {
        upstream_drop(px);
        px->close_after = true;
        request_done(px);
    }
    px_step(px);
}

static void begin(struct engine_task *t)
{
    struct hproxy *px = container_of(t, struct hproxy, task);
    DL_PREPEND(proxies, px);
    if (!engine_watch(&px->app_io, EPOLLIN)) {
        log_warn("%s: cannot watch a connection: %s; closing it", px->svc->name, strerror(errno));
        px_end(px);
    } else {
        px_step(px);
    }
    /* Only now: while the process ends, px_step has just counted it in
     * exit_owing. Taken out of unbegun before that, it would be in neither
     * count for a moment, and http_exit could stop waiting then. */
    __atomic_sub_fetch(&unbegun, 1, __ATOMIC_RELEASE);
}

/* A fork child, the proxy handed over and not begun yet: its copy of the
 * engine's end is closed, as for the proxies begun (http_atfork_child). */
static void forget_in_child(struct engine_task *t)
{
    own_close(container_of(t, struct hproxy, task)->app);
}

/* ------------------------------------------------------------------ entry -- */

bool http_live(void)
{
    return __atomic_load_n(&live_proxies, __ATOMIC_ACQUIRE) != 0;
}

bool http_wanted(const struct service *svc)
{
    return service_cfg(svc)->protocol == PROTO_HTTP && !program_is_go();
}

int http_connect(int fd, struct conn *c, struct service *svc, const struct sockaddr *dst,
                 socklen_t dstlen)
{
    termsig_arm();              /* a request written just before SIGTERM goes up too (http_exit) */
    int flags = real_fcntl(fd, F_GETFL, NULL);
    struct hproxy *px = calloc(1, sizeof(*px));
    int sv[2] = { -1, -1 };
    if (!px || flags < 0 ||
        real_socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (flags & O_NONBLOCK ? SOCK_NONBLOCK : 0), 0,
                        sv) < 0 ||
        (sv[1] = ownfd_move(sv[1])) < 0) {
        int err = px ? errno : ENOMEM;
        if (sv[0] >= 0)
            real_close(sv[0]);
        free(px);
        conn_failed(c, 0, 0);
        conn_unref(c);
        errno = err;
        return -1;
    }
    real_fcntl(sv[1], F_SETFL, (void *)(long)O_NONBLOCK);
    struct sockaddr_storage local;
    socklen_t llen = sizeof(local);
    if (real_getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
        llen = 0;
    sockname_carry_addrs(sv[0], sv[1], llen ? (struct sockaddr *)&local : NULL, llen, dst, dstlen);
    sockname_copy_timeouts(fd, sv[0]);
    if (threadtrace_outbound(mesh_registry()->cfg))
        c->tt = threadtrace_new(sv[1]);
    c->pair_ino = conn_ino(sv[0]);
    swap_lock();
    placeholder_put_back(fd, sv[0]);
    swap_unlock();
    real_close(sv[0]);          /* the application's number holds it now */
    if (c->tt)
        fdtable_set_kind(fd, FD_TRACE_OUT);
    if (service_cfg(svc)->tls == TLS_MTLS) {
        /* Its requests go over the pooled mTLS connections, which the
         * engine relays: the connection's line says so, not "none". */
        c->tls = CONN_TLS_RELAY;
        snprintf(c->tls_why, sizeof(c->tls_why), "protocol = http");
    }
    conn_connected(c);
    px->conn = c;
    px->svc = svc;
    px->port = c->port;
    px->app = sv[1];
    px->state = PX_IDLE;
    h1_init(&px->req, H1_REQUEST);
    px->app_in_ready = true;
    px->task.run = begin;
    px->task.forget = forget_in_child;
    px->app_io = (struct engine_io){ .ready = app_ready, .fd = sv[1] };
    px->try_timer.fire = try_timer_fired;
    px->req_timer.fire = req_timer_fired;
    __atomic_add_fetch(&live_proxies, 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&unbegun, 1, __ATOMIC_RELEASE);
    if (!engine_post(&px->task)) {
        __atomic_sub_fetch(&live_proxies, 1, __ATOMIC_RELEASE);
        __atomic_sub_fetch(&unbegun, 1, __ATOMIC_RELEASE);
        log_error("%s: cannot proxy HTTP: no background thread; the connection is closed", svc->name);
        own_close(sv[1]);
        free(px);
        conn_unref(c);
        errno = ECONNRESET;
        return -1;
    }
    return 0;
}

/* The proxies and the pools are the parent's: its engine goes on with
 * them (it was paused for the fork, so the lists are whole). The child
 * forgets them and closes its copies of their descriptors: a child that
 * outlives its parent must see its connection end, not wait on the other
 * end of its pair, which it held itself; and an upstream server must see
 * a connection the parent closes end, not wait for every child to exit. */
void http_atfork_child(void)
{
    for (struct hproxy *px = proxies; px; px = px->next) {
        own_close(px->app);
        if (px->up)
            own_close(px->up->fd);
    }
    proxies = NULL;
    for (struct pool *p = pools; p; p = p->hh.next)
        for (struct upstream *u = p->idle; u; u = u->next)
            own_close(u->fd);
    pools = NULL;
    pool_sweep.armed = false;       /* the child's engine has no timers */
    for (struct upstream *c = spares; c; c = c->snext)
        own_close(c->fd);
    spares = NULL;
    waiters = NULL;
    exit_asked = false;
    exit_owing = exit_counted = live_proxies = unbegun = 0;
}

/* ----------------------------------------------------------------- exit -- */

static void exit_run(struct engine_task *t)
{
    (void)t;
    exit_asked = true;
    for (struct hproxy *px = proxies, *next; px; px = next) {
        next = px->next;
        px->app_in_ready = true;    /* bytes whose event has not come yet */
        px_step(px);
    }
    __atomic_store_n(&exit_counted, 1, __ATOMIC_RELEASE);
}

/* At exit() and _exit(), and before a signal ends the process: what the
 * application wrote on protocol = http connections goes upstream (a
 * script's request written to /dev/tcp just before it exits), within
 * EXIT_FLUSH_NS. The answers are not waited for: nobody would read them.
 * Signal-safe, as relay_exit: no lock, no allocation, the engine asked
 * through its signal-safe slot (which relay_exit may hold a moment). */
void http_exit(void)
{
    static struct engine_task exit_task = { .run = exit_run };
    if (!__atomic_load_n(&live_proxies, __ATOMIC_ACQUIRE) || !engine_here())
        return;
    struct timespec ms = { 0, 1000000 };
    uint64_t deadline = now_ns() + EXIT_FLUSH_NS;
    while (!engine_post_signal_safe(&exit_task)) {
        if (now_ns() >= deadline || !engine_here())
            return;
        nanosleep(&ms, NULL);
    }
    while ((!__atomic_load_n(&exit_counted, __ATOMIC_ACQUIRE) || __atomic_load_n(&exit_owing, __ATOMIC_ACQUIRE) ||
            __atomic_load_n(&unbegun, __ATOMIC_ACQUIRE)) &&
           now_ns() < deadline)
        nanosleep(&ms, NULL);
}
