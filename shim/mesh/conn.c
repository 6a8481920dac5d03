/*
 * conn.c — the life of one meshed connection (see conn.h): its references,
 * its active counts, and the record it leaves in the stats and the access
 * log when it ends.
 */
#include "mesh/conn.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utlist.h>
#include <linux/tcp.h>

#include "engine/placeholder.h"
#include "libc/ownfd.h"
#include "libc/real.h"
#include "mesh/attempt.h"
#include "mesh/fdtable.h"
#include "mesh/threadtrace.h"
#include "meshim/mesh.h"
#include "observe/accesslog.h"
#include "observe/callers.h"
#include "observe/metrics.h"

/* The kernel's TCP states (include/net/tcp_states.h; not in the uapi
 * headers, and netinet/tcp.h cannot be used beside linux/tcp.h). */
enum { STATE_TIME_WAIT = 6, STATE_CLOSE = 7, STATE_CLOSE_WAIT = 8, STATE_LAST_ACK = 9,
       STATE_CLOSING = 11 };

/* Every connection until it is freed, for conn_exit and the fork child.
 * A leaf lock: nothing else is taken while it is held. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *live;

static void live_add(struct conn *c)
{
    pthread_mutex_lock(&live_lock);
    DL_PREPEND2(live, c, live_prev, live_next);
    pthread_mutex_unlock(&live_lock);
}

static void live_remove(struct conn *c)
{
    pthread_mutex_lock(&live_lock);
    DL_DELETE2(live, c, live_prev, live_next);
    pthread_mutex_unlock(&live_lock);
}

static void count_active(struct conn *c, int delta)
{
    if (c->ep)
        __atomic_add_fetch(&c->ep->target.active, (uint32_t)delta, __ATOMIC_RELAXED);
}

static char *capture_callers(void)
{
    struct registry *reg = mesh_registry();
    return reg && reg->cfg->access_log_callers && access_enabled() ? callers_capture() : NULL;
}

struct conn *conn_new(struct service *svc, uint16_t app_port)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->refs = 1;
    c->svc = svc;
    c->sock = -1;
    c->port = app_port;
    c->callers = capture_callers();     /* first: unwinding is not connect time */
    c->started_ns = now_ns();
    c->started_unix_ns = wall_ns();
    __atomic_add_fetch(&svc->active, 1, __ATOMIC_RELAXED);
    live_add(c);
    return c;
}

struct conn *conn_new_inbound(uint16_t port, const char *peer)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->refs = 1;
    c->sock = -1;
    c->port = port;
    c->started_ns = now_ns();
    c->started_unix_ns = wall_ns();
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    live_add(c);
    return c;
}

uint64_t conn_attempt(struct conn *c, struct endpoint *ep)
{
    count_active(c, -1);
    endpoint_ref(ep);
    endpoint_unref(c->ep);
    c->ep = ep;
    count_active(c, 1);
    c->attempts++;
    return now_ns();
}

void conn_attempt_failed(struct conn *c, const char *endpoint, const char *why)
{
    if (!access_enabled() || c->n_failures >= ACCESS_FAILURES_MAX)
        return;
    if (!c->failures && !(c->failures = calloc(ACCESS_FAILURES_MAX, sizeof(*c->failures))))
        return;     /* out of memory: the line counts the attempts, names none */
    struct access_failure *f = &c->failures[c->n_failures++];
    snprintf(f->endpoint, sizeof(f->endpoint), "%s", endpoint);
    snprintf(f->why, sizeof(f->why), "%s", why);
}

void conn_connected(struct conn *c)
{
    c->connected_ns = now_ns();
    c->result = RESULT_OK;
    c->generation = metrics_generation();
    metrics_connected(c->svc, c->connected_ns - c->started_ns);
}

void conn_ref(struct conn *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

/* The access-log line and the closing stats, once. */
static void end(struct conn *c)
{
    if (__atomic_exchange_n(&c->ended, true, __ATOMIC_ACQ_REL))
        return;
    bool connected = c->connected_ns != 0;
    if (connected && c->svc && c->generation == metrics_generation())
        metrics_closed(c->svc, c->bytes_sent, c->bytes_received);
    if (!access_enabled())
        return;
    char endpoint[64] = "", inbound[32];
    if (c->ep)
        endpoint_text(c->ep, c->port, endpoint, sizeof(endpoint));
    if (!c->svc) {
        snprintf(inbound, sizeof(inbound), "inbound:%u", c->port);
        snprintf(endpoint, sizeof(endpoint), "%s", c->peer);
    }
    const char *result = connected || (conn_flags(c) & FLAG_UF) || c->result != RESULT_OK
                         ? stats_result_name((unsigned)c->result) : "abandoned";
    struct access_record r = {
        .start_unix_ns = c->started_unix_ns,
        .pid = (int)getpid(),
        .direction = c->svc ? DIRECTION_OUTBOUND : DIRECTION_INBOUND,
        .service = c->svc ? c->svc->name : inbound,
        .endpoint = endpoint,
        .attempts = c->attempts,
        .result = result,
        .flags = conn_flags(c),
        .tls = c->tls == CONN_TLS_KTLS ? "ktls" : c->tls == CONN_TLS_RELAY ? "relay" : "none",
        .tls_relay_why = c->tls == CONN_TLS_RELAY ? c->tls_why : NULL,
        .peer_identity = c->peer_identity,
        .connect_ms = connected ? (double)(c->connected_ns - c->started_ns) / 1e6 : -1,
        .duration_ms = (double)(now_ns() - c->started_ns) / 1e6,
        .bytes_sent = c->bytes_sent,
        .bytes_received = c->bytes_received,
        .callers = c->callers,
        .failures = c->failures,
        .n_failures = c->n_failures,
    };
    access_write(&r);
}

void conn_failed(struct conn *c, int err, unsigned flags)
{
    c->result = err ? (int)metrics_result_of(err) : RESULT_NO_ENDPOINT;
    conn_flag(c, flags | (err ? FLAG_UF : FLAG_UH) | (c->attempts > 1 ? FLAG_URX : 0));
    if (!err)
        metrics_unrouted(c->svc, RESULT_NO_ENDPOINT);
    end(c);
}

void conn_refused(struct service *svc, uint16_t app_port, int result, unsigned flags)
{
    metrics_unrouted(svc, (enum stats_result)result);
    if (!access_enabled())
        return;
    struct conn c = {
        .svc = svc, .port = app_port, .result = result,
        .flags = flags, .started_ns = now_ns(), .started_unix_ns = wall_ns(),
        .callers = capture_callers(),
    };
    end(&c);
    free(c.callers);
}

void conn_closing(struct conn *c, int fd)
{
    if (!c->connected_ns || __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) != CONN_OPEN ||
        (!metrics_on() && !access_enabled()))
        return;
    /* The kernel counts a socket's bytes: nothing of the shim needs to be in
     * the data path for them. What the application sent is what went out
     * once (payload only: no SYN or FIN, no retransmission) plus what is
     * still queued, not sent yet. One getsockopt: this is paid by every
     * meshed close. */
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (real_getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_retrans) + sizeof(ti.tcpi_bytes_retrans))
        return;     /* Linux < 5.5 */
    c->bytes_sent = ti.tcpi_bytes_sent - ti.tcpi_bytes_retrans + ti.tcpi_notsent_bytes;
    /* The kernel's received count includes the peer's FIN, if it came.
     * States after a FIN from the peer; CLOSE is after both FINs (or a
     * reset, where this undercounts by one). */
    bool fin = ti.tcpi_state == STATE_CLOSE_WAIT || ti.tcpi_state == STATE_LAST_ACK ||
               ti.tcpi_state == STATE_CLOSING || ti.tcpi_state == STATE_TIME_WAIT ||
               ti.tcpi_state == STATE_CLOSE;
    c->bytes_received = ti.tcpi_bytes_received - (fin && ti.tcpi_bytes_received ? 1 : 0);
}

unsigned long conn_ino(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (unsigned long)st.st_ino : 0;
}

/* A stream socketpair end reports ECONNRESET when its peer is closed with
 * bytes left unread in the peer's receive queue (once the bytes queued for
 * it are read), so one byte goes into the engine's end, written from a copy
 * of one of the application's descriptors of the connection. The copy is
 * written to only when it is the pair's end (its inode), never to a number
 * the application closed and reused. (Not by the ends' abstract names,
 * sockname.h: a connection reset before its pair was made has none.) */
void conn_pair_reset(struct conn *c)
{
    swap_lock();                    /* the hooks' closes and dup2s wait */
    int fd = c->pair_ino ? fdtable_find(c) : -1;
    int copy = fd >= 0 ? real_fcntl(fd, F_DUPFD_CLOEXEC, (void *)0L) : -1;
    swap_unlock();
    if (copy < 0)
        return;
    if (conn_ino(copy) == c->pair_ino)
        real_send(copy, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    real_close(copy);
}

int conn_errors_pending;

void conn_set_error(struct conn *c, int err)
{
    int was = __atomic_exchange_n(&c->error, err, __ATOMIC_ACQ_REL);
    int delta = (err != 0) - (was != 0);
    if (delta)
        __atomic_add_fetch(&conn_errors_pending, delta, __ATOMIC_RELAXED);
}

int conn_take_error(struct conn *c)
{
    int err = __atomic_exchange_n(&c->error, 0, __ATOMIC_ACQ_REL);
    if (err)
        __atomic_sub_fetch(&conn_errors_pending, 1, __ATOMIC_RELAXED);
    return err;
}

void conn_unref(struct conn *c)
{
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    live_remove(c);
    count_active(c, -1);
    if (c->svc)
        __atomic_sub_fetch(&c->svc->active, 1, __ATOMIC_RELAXED);
    end(c);
    endpoint_unref(c->ep);
    conn_take_error(c);             /* never told: no longer pending */
    if (c->state == CONN_FAILED) {
        /* The application closed a failed connection: the real socket it
         * stood for goes with it. */
        own_close(c->sock);
        placeholder_done();
    } else if (c->state == CONN_RELAYED) {
        placeholder_done();         /* the relay closed the real socket */
    }
    free(c->callers);
    free(c->failures);
    threadtrace_free(c->tt);
    free(c);
}

static void end_at_exit(int fd, struct conn *c)
{
    conn_closing(c, fd);
    end(c);
}

void conn_exit(void)
{
    fdtable_each(end_at_exit);
    /* Then those the program had closed and a thread of the shim still
     * held. Each is held here while its line is written outside the lock
     * (writing takes the access log's); none is freed meanwhile. */
    pthread_mutex_lock(&live_lock);
    size_t n = 0;
    for (struct conn *c = live; c; c = c->live_next)
        n += !__atomic_load_n(&c->ended, __ATOMIC_ACQUIRE);
    struct conn **left = n ? malloc(n * sizeof(*left)) : NULL;
    size_t k = 0;
    for (struct conn *c = live; c && left && k < n; c = c->live_next)
        if (!__atomic_load_n(&c->ended, __ATOMIC_ACQUIRE)) {
            conn_ref(c);
            left[k++] = c;
        }
    pthread_mutex_unlock(&live_lock);
    for (size_t i = 0; i < k; i++) {
        end(left[i]);
        conn_unref(left[i]);
    }
    free(left);
}

/* A fork child's copies of its parent's connections stay the parent's: the
 * parent writes each one's line (at its close, its relay's end, or its
 * exit), and the child, which shares the socket, writes none. Without this,
 * a child that exits with them open (a postgres backend, each of bash's
 * subshells after `exec 3<>/dev/tcp/...`) logged the connection again, as
 * "abandoned" when its relay was the parent's. Every connection alive at
 * the fork is the parent's, those only its engine held too. */
void conn_atfork_prepare(void)
{
    pthread_mutex_lock(&live_lock);
}

void conn_atfork_parent(void)
{
    pthread_mutex_unlock(&live_lock);
}

void conn_atfork_child(void)
{
    for (struct conn *c = live; c; c = c->live_next)
        c->ended = true;
    pthread_mutex_init(&live_lock, NULL);
}
