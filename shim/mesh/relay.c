/*
 * relay.c — the mTLS relays of the engine thread (see relay.h for their
 * states).
 *
 * Each direction has one buffer of at most 16 KiB (a TLS record), taken
 * while it holds bytes and given back when it is empty, so an idle
 * connection costs its SSL (small: SSL_MODE_RELEASE_BUFFERS) and this
 * struct. A side is read only when the buffer toward the other side is
 * empty: a slow reader slows its writer down, nothing piles up.
 *
 * Each direction is either moving, finished, or waiting for one event
 * (up_wait, down_wait); the pump moves both until neither can, then each
 * descriptor is watched (level-triggered) for exactly what the waits name.
 * A read shorter than asked for ends its direction's turn: the socket was
 * empty a moment ago, and epoll says when it is not, so the pump does not
 * spend a system call per wake-up learning EAGAIN. OpenSSL may hold bytes
 * it has read but not yet returned (tls_pending) while the socket is not
 * readable: those are asked for before waiting.
 *
 * An end is carried as an end (FIN, or close_notify then FIN), a reset as a
 * reset, as the application's own TCP socket would show them: a TCP reset
 * or a broken TLS record makes the application's end read ECONNRESET after
 * the bytes before it (conn_pair_reset); the application's close with bytes
 * unread, or with SO_LINGER 0, resets the TCP connection (abort_net).
 */
#include "mesh/relay.h"
#include "mesh/fdtable.h"
#include "mesh/http.h"
#include "mesh/httptap.h"
#include "mesh/threadtrace.h"
#include "mesh/sockname.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <utlist.h>

#include "engine/engine.h"
#include "engine/placeholder.h"
#include "libc/ownfd.h"
#include "libc/real.h"
#include "mesh/attempt.h"
#include "mesh/dial.h"
#include "mesh/ktls.h"
#include "mesh/mtls.h"
#include "mesh/termsig.h"
#include "meshim/sniff.h"
#include "observe/accesslog.h"
#include "observe/log.h"
#include "observe/metrics.h"

#define BUF_SIZE 16384
#define HANDSHAKE_TIMEOUT_NS (10ull * 1000000000u)
#define HANDSHAKE_BEHIND_NS (30ull * 1000000000u)    /* see waits_for_engine */
#define BEHIND_RECHECK_NS (500ull * 1000000u)
#define FIRST_BYTE_TIMEOUT_NS (SNIFF_FIRST_BYTE_MS * 1000000ull)   /* an inbound client that says nothing */
#define LATE_SERVER_NS (200ull * 1000000u)            /* relay_late_at */
#define PENDING_SOFT_MIN 128        /* inbound handshakes per port before the silent are evicted */
#define PENDING_SOFT_MAX 2048       /* ... (from the descriptor limit, between these) */
#define PENDING_PORTS 64
#define EXIT_FLUSH_NS (2ull * 1000000000u)
#define EXIT_END_NS (200ull * 1000000u)       /* then every relay ends, this long at most */
#define PUMP_ROUNDS 32              /* then other connections get a turn */

enum relay_state { R_SNIFF, R_HANDSHAKE, R_HANDOFF, R_OPEN, R_PLAIN };

/* Kernel TLS is in place but the application's descriptor is still
 * blocking: an event loop makes it non-blocking right after accept(), and
 * on one CPU the handshake can end first. Looked at again after 1, 2, 4,
 * 8 and 16 ms before the relay takes it. */
#define HANDOFF_TRIES 5

/* What a blocked step waits for. */
enum { NET_IN = 1, NET_OUT = 2, APP_IN = 4, APP_OUT = 8 };

struct buf {
    char *data;
    size_t off, len;
};

struct relay {
    struct engine_task task;
    struct engine_io net_io, app_io;
    struct engine_timer timer;      /* handshake deadline; or "pump again" */
    struct conn *conn;              /* one reference */
    struct tls_identity *id;        /* one reference */
    const struct inbound_config *in;    /* inbound: its port's section */
    SSL *ssl;                       /* NULL: plaintext (permissive, or an http port without TLS) */
    struct http_tap *tap;           /* inbound protocol = http: what passes is counted */
    int net, app;
    int state;
    unsigned up_wait, down_wait;    /* what each direction waits for; 0: it can move */
    struct buf up, down;            /* app → net, net → app */
    bool app_eof;                   /* the application's end read EOF */
    bool up_done;                   /* close_notify and FIN sent (or the net is dead) */
    bool net_eof;                   /* the peer finished sending (or failed) */
    bool down_done;                 /* the application's end was shut down for writing */
    bool net_dead;                  /* a TCP or TLS error: no close_notify */
    bool net_reset;                 /* ... a reset, not an end: the application's end is
                                       reset too (conn_pair_reset) */
    bool exiting;                   /* the process exits: flush what is queued */
    bool counted;                   /* in `unflushed` */
    bool pending;                   /* inbound: counted in its port's pending handshakes */
    bool heard;                     /* the network side has been readable once */
    bool judged;                    /* inbound: the client's first bytes were looked at */
    bool let_speak;                 /* permissive: its end was emptied of the hand-off's
                                     * filler so that it could speak first (silence_step) */
    bool quiet;                     /* the peer agreed on kernel TLS: FIN, never close_notify */
    struct relay_handoff handoff;   /* inbound: the application's number while it is full */
    unsigned handoff_tries;
    struct engine_slow handshake;   /* its next handshake step, queued as slow work */
    uint64_t accepted_ns;
    uint64_t orphaned_ns;           /* keeper: no process holds the application's end since */
    uint64_t app_gone_ns;           /* the application closed every copy of its end (after
                                       its last byte) at: its FIN_WAIT2 ends at fin_timeout */
    struct relay *prev, *next;      /* live relays (engine thread only) */
};

static struct relay *live;          /* utlist DL: the relays begun and not yet freed */
static bool relays_shared;          /* atomic: this process forked, or passed a relayed
                                       descriptor to another, while it had relays */
static bool passed;                 /* atomic: ... passed one (a connect perhaps under way) */
static bool keeping;                /* the fork under way is a keeper's (relay_keep) */
/* relay_keep's question to the engine thread, and its answer: KEEP_DONE,
 * the relays went to a keeper, and the exit leaves them be; KEEP_HANDED,
 * they went to a keeper before an exec, and this process goes on without
 * them. */
enum { KEEP_ASKED, KEEP_DONE, KEEP_HANDED, KEEP_NOT };
static int keep_answer;             /* atomic */
static bool keep_for_exec;          /* the question is relay_keep_before_exec's */
static bool exit_asked;             /* engine thread only: the process is ending */
/* Relays in `live` (written by the engine thread only, atomically: relay_exit
 * reads it from the exiting one); the most since the last trim. */
static unsigned live_n, live_peak;
static int unflushed;               /* atomic: relays whose upstream is not done */
static int unbegun;                 /* atomic: handed to the engine, not in `live` yet */

/* Inbound handshakes under way, per port. Each holds three descriptors
 * (the client's socket and a socketpair) until it ends, so a flood of
 * clients that never finish one could take a program's descriptors (review
 * finding 11). The caps come from the descriptor limit: `soft` is a
 * sixteenth of it (between PENDING_SOFT_MIN and _MAX), so handshakes at the
 * hard cap (twice soft) hold at most three eighths of the descriptors (768
 * of the common 1024, 3,072 of 8,192). The limit is the hard one when it
 * leaves the shim room above the soft one for its own descriptors
 * (libc/ownfd.h): two of the three then live there, and the program's one
 * is what a server without the mesh would spend. So a burst of 900 real
 * clients under the common 1024/524288 is not cut short by a cap made for
 * 1024 (wrk -c 900 lost 679 connections to evictions). Beyond soft on a port,
 * each new client has the engine evict the oldest one there that has not
 * sent a byte (a real client sends its ClientHello at once, so it is not
 * the one to go); at the hard cap a new client is refused at once. */
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned pending_soft, pending_hard;     /* under pending_lock, set once */
static struct pending_port {
    uint16_t port;
    unsigned n;
} pending_ports[PENDING_PORTS];

static void evict_run(struct engine_task *t);
static bool detects_silence(const struct relay *r);
static void sniff_plaintext(struct relay *r);
static struct engine_task evict_task = { .run = evict_run };
static int evict_queued;            /* atomic: evict_task is posted and has not run */
static int evict_wanted;            /* atomic: evictions asked for */

/* Under pending_lock: the count of port; with `add`, a free slot taken
 * for it when it has none. NULL: none (and with `add`, no slot free). */
static struct pending_port *pending_of(uint16_t port, bool add)
{
    struct pending_port *free_slot = NULL;
    for (size_t i = 0; i < PENDING_PORTS; i++) {
        if (pending_ports[i].n && pending_ports[i].port == port)
            return &pending_ports[i];
        if (!pending_ports[i].n && !free_slot)
            free_slot = &pending_ports[i];
    }
    if (add && free_slot)
        free_slot->port = port;
    return add ? free_slot : NULL;
}

/* Under pending_lock: the caps, from the descriptor limit on first use. */
static void pending_caps(void)
{
    if (pending_soft)
        return;
    struct rlimit rl;
    rlim_t soft = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        soft = (rl.rlim_max > rl.rlim_cur ? rl.rlim_max : rl.rlim_cur) / 16;
    pending_soft = soft < PENDING_SOFT_MIN ? PENDING_SOFT_MIN
                 : soft > PENDING_SOFT_MAX ? PENDING_SOFT_MAX : (unsigned)soft;
    pending_hard = 2 * pending_soft;
}

bool relay_pending_take(uint16_t port)
{
    bool ok = false, evict = false;
    pthread_mutex_lock(&pending_lock);
    pending_caps();
    struct pending_port *p = pending_of(port, true);
    if (p && p->n < pending_hard) {
        evict = p->n >= pending_soft;
        p->n++;
        ok = true;
    }
    pthread_mutex_unlock(&pending_lock);
    if (evict) {
        __atomic_add_fetch(&evict_wanted, 1, __ATOMIC_ACQ_REL);
        if (!__atomic_exchange_n(&evict_queued, 1, __ATOMIC_ACQ_REL) && !engine_post(&evict_task))
            __atomic_store_n(&evict_queued, 0, __ATOMIC_RELEASE);
    }
    return ok;
}

static bool over_soft_cap(uint16_t port)
{
    pthread_mutex_lock(&pending_lock);
    struct pending_port *p = pending_of(port, false);
    bool over = p && p->n > pending_soft;
    pthread_mutex_unlock(&pending_lock);
    return over;
}

void relay_pending_give(uint16_t port)
{
    pthread_mutex_lock(&pending_lock);
    struct pending_port *p = pending_of(port, false);
    if (p)
        p->n--;
    pthread_mutex_unlock(&pending_lock);
}

/* The handshake phase of an inbound relay is over (open, refused, ended). */
static void handshake_over(struct relay *r)
{
    if (r->pending) {
        r->pending = false;
        relay_pending_give(r->in->port);
    }
}

/* --------------------------------------------------------------- buffers -- */

static bool buf_take(struct buf *b)
{
    if (!b->data)
        b->data = malloc(BUF_SIZE);
    b->off = b->len = 0;
    return b->data != NULL;
}

static void buf_give_back(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = 0;
}

static void set_up_done(struct relay *r)
{
    r->up_done = true;
    if (r->counted) {
        r->counted = false;
        __atomic_sub_fetch(&unflushed, 1, __ATOMIC_ACQ_REL);
    }
}

/* A TCP or TLS error: nothing more can be sent or received. A reset (or a
 * broken record) reaches the application as a reset; the peer's FIN
 * without close_notify as an end, as TCP shows a peer that crashed. */
static void net_failed(struct relay *r, bool reset)
{
    r->net_dead = true;
    r->net_reset |= reset;
    r->net_eof = true;
    r->up.len = 0;
    set_up_done(r);
}

/* ---------------------------------------------------------------- steps -- */

/* Plaintext or TLS write of b to the network; bytes written, 0 blocked. */
static size_t net_write(struct relay *r, const char *data, size_t len)
{
    if (!r->ssl) {
        ssize_t n = real_send(r->net, data, len, MSG_NOSIGNAL);
        if (n > 0)
            return (size_t)n;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            r->up_wait = NET_OUT;
        else
            net_failed(r, true);
        return 0;
    }
    size_t n = 0;
    switch (tls_write(r->ssl, data, len, &n)) {
    case TLS_IO_DONE: return n;
    case TLS_IO_WANT_WRITE: r->up_wait = NET_OUT; break;
    case TLS_IO_WANT_READ: r->up_wait = NET_IN; break;
    case TLS_IO_RESET: net_failed(r, true); break;
    default: net_failed(r, false); break;
    }
    return 0;
}

/* The application closed its end with SO_LINGER 0 set: a socket option of
 * a relayed descriptor is the TCP socket's (meshim_setsockopt), so it is
 * read there. One system call per application close. */
static bool lingers_zero(struct relay *r)
{
    struct linger l;
    socklen_t len = sizeof(l);
    return real_getsockopt(r->net, SOL_SOCKET, SO_LINGER, &l, &len) == 0 && l.l_onoff &&
           !l.l_linger;
}

/* The application reset its end: it closed it with bytes unread (which
 * the kernel tells the engine's end as ECONNRESET) or with SO_LINGER 0 set.
 * Its own TCP socket would have sent a reset and dropped what was not sent
 * yet, so the relay does the same: no close_notify, nothing flushed, the
 * socket closed with SO_LINGER 0 (relay_end). */
static void abort_net(struct relay *r)
{
    static const struct linger abort_now = { .l_onoff = 1, .l_linger = 0 };
    real_setsockopt(r->net, SOL_SOCKET, SO_LINGER, &abort_now, sizeof(abort_now));
    net_failed(r, false);           /* no close_notify, nothing drained */
    r->down.len = 0;                /* and nobody to read the peer's bytes */
    r->down_done = true;
}

/* No process holds r's application end any more: every copy of it is
 * closed, and the engine's end reads as hung up. */
static bool app_end_gone(const struct relay *r)
{
    struct pollfd p = { .fd = r->app, .events = POLLIN };
    return poll(&p, 1, 0) >= 0 && (p.revents & POLLHUP);
}

/* A TCP socket the application closed whole waits for the peer's FIN in
 * FIN_WAIT2 at most net.ipv4.tcp_fin_timeout (the kernel's own bound on an
 * orphan); so does a relay whose application end is gone. Read once, from
 * the engine's network namespace. */
static uint64_t fin_timeout_ns(void)
{
    static uint64_t ns;             /* engine thread only */
    if (!ns) {
        long secs = 60;
        FILE *f = fopen("/proc/sys/net/ipv4/tcp_fin_timeout", "re");
        if (f) {
            if (fscanf(f, "%ld", &secs) != 1 || secs <= 0)
                secs = 60;
            fclose(f);
        }
        ns = (uint64_t)secs * 1000000000u;
    }
    return ns;
}

/* The application's bytes toward the peer. */
static bool up_step(struct relay *r)
{
    if (r->up_wait || r->up_done)
        return false;
    bool moved = false, drained = false;
    if (!r->up.len && !r->app_eof) {
        if (!buf_take(&r->up))
            return false;
        ssize_t n = real_recv(r->app, r->up.data, BUF_SIZE, MSG_DONTWAIT);
        if (n > 0) {
            r->up.len = (size_t)n;
            httptap_answers(r->tap, r->up.data, (size_t)n);
            drained = n < BUF_SIZE && !r->exiting;
            moved = true;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR) || r->exiting) {
            r->app_eof = true;      /* at exit: nothing more will come */
            if ((n < 0 && errno == ECONNRESET) || (n == 0 && !r->exiting && lingers_zero(r))) {
                abort_net(r);
                return true;
            }
            if (n == 0 && !r->exiting && app_end_gone(r))
                r->app_gone_ns = now_ns();
            moved = true;
        } else {
            r->up_wait = APP_IN;
        }
    }
    while (r->up.len) {
        size_t n = net_write(r, r->up.data + r->up.off, r->up.len);
        if (!n)
            break;
        r->up.off += n;
        r->up.len -= n;
        r->conn->bytes_sent += n;
        moved = true;
    }
    if (!r->up.len && r->up.data)
        buf_give_back(&r->up);
    if (r->app_eof && !r->up.len && !r->up_done) {
        if (r->ssl && !r->quiet && tls_close_notify(r->ssl) == TLS_IO_WANT_WRITE) {
            r->up_wait = NET_OUT;
            return moved;
        }
        shutdown(r->net, SHUT_WR);
        set_up_done(r);
        moved = true;
    } else if (drained && !r->up.len && !r->up_wait) {
        r->up_wait = APP_IN;
    }
    return moved;
}

/* Plaintext or TLS read from the network into b; bytes read, 0 blocked or
 * finished (net_eof). */
static size_t net_read(struct relay *r, char *data, size_t len)
{
    if (!r->ssl) {
        ssize_t n = real_recv(r->net, data, len, MSG_DONTWAIT);
        if (n > 0)
            return (size_t)n;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            r->down_wait = NET_IN;
        else if (n == 0)
            r->net_eof = true;
        else
            net_failed(r, true);
        return 0;
    }
    size_t n = 0;
    switch (tls_read(r->ssl, data, len, &n)) {
    case TLS_IO_DONE: return n;
    case TLS_IO_WANT_READ: r->down_wait = NET_IN; break;
    case TLS_IO_WANT_WRITE: r->down_wait = NET_OUT; break;
    case TLS_IO_CLOSED: r->net_eof = true; break;
    case TLS_IO_RESET: net_failed(r, true); break;
    default: net_failed(r, false); break;   /* a FIN without close_notify */
    }
    return 0;
}

/* The peer's bytes toward the application. */
static bool down_step(struct relay *r)
{
    if (r->down_wait || r->down_done)
        return false;
    bool moved = false, drained = false;
    if (!r->down.len && !r->net_eof) {
        if (!buf_take(&r->down))
            return false;
        size_t n = net_read(r, r->down.data, BUF_SIZE);
        r->down.len = n;
        httptap_requests(r->tap, r->down.data, n);
        drained = n > 0 && n < BUF_SIZE && !r->exiting && !(r->ssl && tls_pending(r->ssl));
        moved = n > 0 || r->net_eof;
    }
    while (r->down.len) {
        struct threadtrace *tt = r->conn->tt;
        if (tt)
            threadtrace_move_begin(tt);
        ssize_t n = real_send(r->app, r->down.data + r->down.off, r->down.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (tt)
            threadtrace_move_end(tt, n > 0 ? (size_t)n : 0);
        if (n > 0) {
            r->down.off += (size_t)n;
            r->down.len -= (size_t)n;
            r->conn->bytes_received += (uint64_t)n;
            moved = true;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            r->down_wait = APP_OUT;
            break;
        } else {
            /* The application closed its end: nothing more goes to it. */
            r->down.len = 0;
            r->net_eof = true;
            r->down_done = true;
            r->net_reset = false;   /* no one to tell */
            moved = true;
        }
    }
    if (!r->down.len && r->down.data)
        buf_give_back(&r->down);
    if (r->net_eof && !r->down.len && !r->down_done) {
        if (!r->net_reset)
            shutdown(r->app, SHUT_WR);  /* a reset is told at the end (conn_pair_reset) */
        r->down_done = true;
        moved = true;
    } else if (drained && !r->down.len && !r->down_wait) {
        r->down_wait = NET_IN;
    }
    return moved;
}

/* ----------------------------------------------------------------- life -- */

/* After a burst (a thousand handshakes at once), the TLS state and buffers
 * of the relays that ended lie free in malloc's arenas, and glibc gives an
 * arena's free pages back only from its top: the program would keep the
 * burst's memory for good. When the relays have fallen to a quarter of their
 * peak, malloc_trim hands the free pages back (once per fall, not per end). */
#define TRIM_PEAK_MIN 64

static void trim_after_burst(void)
{
    if (live_peak >= TRIM_PEAK_MIN && live_n <= live_peak / 4) {
        malloc_trim(0);
        live_peak = live_n;
    }
}

/* The application's end was filled for a hand-off that did not happen:
 * the filler is read out (so that it reads EOF, not a reset, if the relay
 * ends now) and the end gets its send buffer back. */
static void unfill(struct relay *r)
{
    char scratch[4096];
    while (r->handoff.filler) {
        size_t want = r->handoff.filler < sizeof(scratch) ? r->handoff.filler : sizeof(scratch);
        ssize_t n = real_recv(r->app, scratch, want, MSG_DONTWAIT);
        if (n <= 0)
            break;                  /* cannot be: it was all written before */
        r->handoff.filler -= (size_t)n;
    }
    r->handoff.filler = 0;
    swap_lock();
    if (placeholder_at(r->handoff.fd, &r->handoff.ph))
        real_setsockopt(r->handoff.fd, SOL_SOCKET, SO_SNDBUF, &r->handoff.sndbuf, sizeof(int));
    swap_unlock();
}

/* Bytes left unread at close make the kernel reset the connection and
 * drop what it has not sent yet (RFC 2525). The peer's bytes that no one
 * will read now (its session tickets, the rest of an answer) are read out
 * first, so that what the application wrote still goes out, then FIN:
 * seen when a process ended right after writing 256 KiB (114688 arrived). */
static void drain_net(struct relay *r)
{
    static char scratch[16384];     /* engine thread only */
    /* net_dead: broken, or (hand_over) the application's socket now, whose
     * bytes are its own to read. */
    for (int i = 0; i < 64 && !r->net_dead; i++)
        if (real_recv(r->net, scratch, sizeof(scratch), MSG_DONTWAIT) <= 0)
            break;
}

/* What relay_end and let_go leave the same: the relay's memory and its
 * place in `live`. */
static void relay_free(struct relay *r)
{
    httptap_free(r->tap);
    conn_unref(r->conn);
    tls_identity_put(r->id);
    buf_give_back(&r->up);
    buf_give_back(&r->down);
    DL_DELETE(live, r);
    __atomic_sub_fetch(&live_n, 1, __ATOMIC_RELEASE);
    engine_retire(r);
    trim_after_burst();
}

/* What relay_end and let_go do first: this engine forgets r (its waits,
 * its TLS state, close_notify sent when asked) and the connection no
 * longer names its socket. */
static void relay_detach(struct relay *r, bool close_notify)
{
    handshake_over(r);
    engine_timer_cancel(&r->timer);
    engine_slow_cancel(&r->handshake);
    engine_unwatch(&r->net_io);     /* by hand: a keeper's copies may keep the sockets open */
    engine_unwatch(&r->app_io);
    tls_free(r->ssl, close_notify);
    set_up_done(r);
    swap_lock();
    if (r->conn->sock == r->net)
        r->conn->sock = -1;         /* the pair end answers now (dial.c target) */
    swap_unlock();
}

static void relay_end(struct relay *r)
{
    if (r->handoff.filler)
        unfill(r);
    relay_detach(r, !r->net_dead && r->state == R_OPEN && !r->quiet);
    drain_net(r);
    own_close_nowait(r->net);       /* with SO_LINGER 0 after abort_net: a reset */
    if (r->net_reset && !r->exiting)
        conn_pair_reset(r->conn);   /* before the close below */
    own_close(r->app);
    relay_free(r);
}

/* After the application's end of what it sends (shutdown(SHUT_WR), or a
 * close seen while a copy of its end was still open), its end is watched
 * for the hang-up alone while nothing else is asked of it: a program that
 * shuts down, then closes, leaves a relay toward a peer that may never end,
 * which fin_timeout bounds as the kernel bounds FIN_WAIT2 (rearm). */
static bool app_close_awaited(const struct relay *r)
{
    return r->up_done && !r->down_done && !r->app_gone_ns && !r->exiting;
}

static void rearm(struct relay *r)
{
    unsigned want = r->up_wait | r->down_wait;
    uint32_t net = (want & NET_IN ? EPOLLIN : 0) | (want & NET_OUT ? EPOLLOUT : 0);
    uint32_t app = (want & APP_IN ? EPOLLIN : 0) | (want & APP_OUT ? EPOLLOUT : 0);
    if (!app && app_close_awaited(r))
        app = EPOLLHUP;
    if (!engine_interest(&r->net_io, net) || !engine_interest(&r->app_io, app)) {
        log_warn("relay: cannot watch a connection: %s; closing it", strerror(errno));
        net_failed(r, true);
        r->down_done = true;
        relay_end(r);
        return;
    }
    if (r->app_gone_ns && !r->timer.armed)
        engine_timer_set(&r->timer, r->app_gone_ns + fin_timeout_ns());
}

static void pump(struct relay *r)
{
    int round = 0;
    bool moved = true;
    while (moved && round++ < PUMP_ROUNDS) {
        moved = up_step(r);
        moved |= down_step(r);
    }
    if (r->up_done && r->down_done) {
        relay_end(r);
        return;
    }
    if (moved)
        engine_timer_set(&r->timer, 0);     /* more to do: after the others */
    rearm(r);
}

/* -------------------------------------------------------------- inbound -- */

/* Ends a relay whose handshake failed: the application reads EOF, nothing
 * else. */
static void end_unopened(struct relay *r, enum stats_result result)
{
    r->conn->result = (int)result;
    net_failed(r, false);
    r->down_done = true;
    relay_end(r);
}

static void inbound_refused(struct relay *r, enum stats_result result, const char *why)
{
    handshake_over(r);
    log_warn("inbound:%u: client %s refused: %s", r->in->port, r->conn->peer, why);
    metrics_inbound(r->in->port, result);
    conn_flag(r->conn, FLAG_DENY);
    end_unopened(r, result);
}

/* Are the client's bytes waiting unread in its socket? */
static bool bytes_waiting(struct relay *r)
{
    unsigned char next;
    return real_recv(r->net, &next, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Whether a client has sent a byte: asked of its socket, since the event
 * that says so may be waiting behind this task. */
static bool heard_now(struct relay *r)
{
    if (!r->heard)
        r->heard = bytes_waiting(r);
    return r->heard;
}

/* Past its deadline, is an inbound handshake waiting for this engine, not
 * for its client? Its next step is queued behind other handshakes (a
 * reconnect storm on a busy machine), or the client's bytes wait unread.
 * Such a handshake is not cut at HANDSHAKE_TIMEOUT_NS, which is there for
 * clients that stall or trickle: the time is the server's. It still ends at
 * HANDSHAKE_BEHIND_NS from its accept. */
static bool waits_for_engine(struct relay *r, uint64_t now)
{
    return now < r->accepted_ns + HANDSHAKE_BEHIND_NS && (r->handshake.queued || bytes_waiting(r));
}

/* Engine: ends the oldest silent handshakes of ports over their soft cap,
 * as many as were asked for (see the caps above). */
static void evict_run(struct engine_task *t)
{
    (void)t;
    __atomic_store_n(&evict_queued, 0, __ATOMIC_RELEASE);
    while (__atomic_load_n(&evict_wanted, __ATOMIC_ACQUIRE) > 0) {
        struct relay *oldest = NULL;
        for (struct relay *r = live; r; r = r->next)
            if (r->pending && (!oldest || r->accepted_ns < oldest->accepted_ns) &&
                over_soft_cap(r->in->port) && !heard_now(r))
                oldest = r;
        if (!oldest) {
            __atomic_store_n(&evict_wanted, 0, __ATOMIC_RELEASE);
            break;
        }
        __atomic_sub_fetch(&evict_wanted, 1, __ATOMIC_ACQ_REL);
        if (detects_silence(oldest))
            sniff_plaintext(oldest);   /* silent on a permissive port: the application's to serve */
        else
            inbound_refused(oldest, RESULT_OVERFLOW,
                            "evicted: too many TLS handshakes under way on this port, and it had sent nothing");
    }
}

static void inbound_open(struct relay *r)
{
    struct conn *c = r->conn;
    c->connected_ns = now_ns();
    c->result = RESULT_OK;
    handshake_over(r);
    metrics_inbound(r->in->port, RESULT_OK);
    engine_timer_cancel(&r->timer);
    r->up_wait = r->down_wait = 0;  /* the handshake's wait is over */
    pump(r);
}

enum hand_over { HANDED, STILL_BLOCKING, GONE };

/* The TCP socket, keys installed, on the application's number in place of
 * its (full) end of the pair. HANDED: done, and the relay is over (r and
 * its connection may be gone). GONE: the number no longer holds the pair. */
static enum hand_over hand_over(struct relay *r)
{
    struct conn *c = r->conn;
    enum hand_over h = GONE;
    swap_lock();
    if (placeholder_at(r->handoff.fd, &r->handoff.ph))
        h = real_fcntl(r->handoff.fd, F_GETFL, NULL) & O_NONBLOCK ? HANDED : STILL_BLOCKING;
    if (h == HANDED) {
        /* The record is whole before the application can touch the
         * socket (and close it: its line is written from this). */
        c->connected_ns = now_ns();
        c->result = RESULT_OK;
        c->tls = CONN_TLS_KTLS;
        c->tls_why[0] = '\0';
        if (placeholder_restore(r->handoff.fd, &r->handoff.ph, r->net)) {
            ktls_mark(r->handoff.fd);
            c->sock = -1;
            __atomic_store_n(&c->state, CONN_OPEN, __ATOMIC_RELEASE);
        } else {
            h = GONE;
        }
    }
    swap_unlock();
    if (h != HANDED)
        return h;
    r->handoff.filler = 0;          /* its file is gone with the number */
    metrics_inbound(r->in->port, RESULT_OK);
    metrics_tls_continued(DIRECTION_INBOUND, true);
    placeholder_done();             /* relayed no more */
    net_failed(r, false);           /* nothing left to flush */
    r->down_done = true;
    relay_end(r);
    return HANDED;
}

/* Kernel TLS is in place: the socket goes to the application's number, or
 * (still blocking after HANDOFF_TRIES looks, or closed) the relay moves
 * plaintext over the kernel's TLS. */
static void handoff_step(struct relay *r)
{
    enum hand_over h = hand_over(r);
    if (h == HANDED)
        return;
    if (h == STILL_BLOCKING && r->handoff_tries < HANDOFF_TRIES) {
        engine_unwatch(&r->net_io);
        engine_unwatch(&r->app_io);
        engine_timer_set(&r->timer, now_ns() + (1000000ull << r->handoff_tries++));
        return;
    }
    ktls_record(r->conn, DIRECTION_INBOUND, false,
                "the application's socket is blocking (kernel TLS under the relay)");
    r->state = R_PLAIN;
    unfill(r);
    inbound_open(r);
}

/* Handshake done, client allowed: kernel TLS or the relay. */
static void inbound_continue(struct relay *r)
{
    struct conn *c = r->conn;
    char why[TLS_WHY_MAX] = "";
    int k;
    r->quiet = tls_ktls_quiet(r->ssl);
    if (!r->handoff.filler) {
        const char *off = ktls_unavailable();
        snprintf(why, sizeof(why), "%s",
                 off            ? off
                 : r->let_speak ? "the client was silent past detect_timeout (the server was let speak first)"
                                : "the server accepts on a blocking socket");
        tls_ktls_forget(r->ssl);
        k = 0;
    } else {
        k = ktls_take(c, r->ssl, r->net, why, sizeof(why));
    }
    if (k < 0) {
        inbound_refused(r, RESULT_TLS_ERROR, "kernel TLS could not be set up");
        return;
    }
    if (k == 1) {
        /* The SSL never touches the socket again. */
        tls_free(r->ssl, false);
        r->ssl = NULL;
        r->state = R_HANDOFF;
        handoff_step(r);
        return;
    }
    ktls_record(c, DIRECTION_INBOUND, false, why);
    r->state = R_OPEN;
    unfill(r);
    inbound_open(r);
}

/* ------------------------------------------------- outbound, accepted late -- */

/* The handshake of a connect reported before it (relay_outbound's late):
 * the identity as a connect checks it, then the relay opens. h: as
 * tls_handshake's, or -2 when it timed out. */
static void late_handshake_done(struct relay *r, int h, char *why, size_t len)
{
    struct conn *c = r->conn;
    if (h == -2 || mtls_finish(c, r->ssl, h, why, len) != 0) {
        char dest[64];
        endpoint_text(c->ep, c->port, dest, sizeof(dest));
        log_warn("%s: %s, which accepted after the connect was reported: %s; the connection ends",
                 c->svc->name, dest, why);
        /* The connect counted as a success when it was reported; the
         * endpoint's circuit hears how it ended (a server that never
         * accepts is ejected as one that refuses). */
        attempt_record(c->svc, c->ep, c->port, h == -2 ? ETIMEDOUT : ECONNRESET, 0);
        end_unopened(r, RESULT_TLS_ERROR);
        return;
    }
    engine_timer_cancel(&r->timer);
    c->tls = CONN_TLS_RELAY;
    tls_ktls_forget(r->ssl);        /* the application may have written already */
    ktls_record(c, DIRECTION_OUTBOUND, false,
                "the server accepted late (the connect was reported before the handshake)");
    r->quiet = tls_ktls_quiet(r->ssl);
    r->state = R_OPEN;
    r->up_wait = r->down_wait = 0;  /* the handshake's wait is over */
    pump(r);
}

/* Inbound: a client whose first bytes cannot begin a ClientHello is not
 * speaking TLS. OpenSSL says so once a record header's 5 bytes are here
 * ("http request", "wrong version number"); fewer, and it would wait for
 * the rest until the handshake's deadline, while a plaintext client that
 * sent one short line waits for its answer. Judged once, from the first
 * bytes (meshim/sniff.h), before OpenSSL reads any: bytes that came
 * between a look that found none and OpenSSL's read would be taken unseen,
 * and the client called silent at the first byte's deadline. A TLS server
 * has nothing to say first, so until then the handshake only waits.
 * Returns JUDGE_WAIT (no byte yet), JUDGE_GONE (closed or reset before
 * its first byte), JUDGE_TLS (or another error: the handshake says) or
 * JUDGE_PLAINTEXT. */
enum judgement { JUDGE_WAIT, JUDGE_GONE, JUDGE_TLS, JUDGE_PLAINTEXT };

static enum judgement judge_client(struct relay *r)
{
    unsigned char first[SNIFF_BYTES];
    ssize_t n = real_recv(r->net, first, sizeof(first), MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return JUDGE_WAIT;
    r->judged = true;
    r->heard |= n > 0;
    if (n == 0 || (n < 0 && errno == ECONNRESET))
        return JUDGE_GONE;
    return n > 0 && n < 5 && sniff_first_bytes(first, (size_t)n) == SNIFF_PLAINTEXT ? JUDGE_PLAINTEXT
                                                                                      : JUDGE_TLS;
}

/* A client that left before its first byte checked that the port is open:
 * a TCP probe (Kubernetes' tcpSocket, a load balancer's health check,
 * `nc -z`). It sent nothing, so nothing was refused: an info line rather
 * than a refusal's warning (one every probe period), no handshake
 * counted, and in the access log "abandoned" with Envoy's DC (the
 * downstream ended it). */
static void inbound_gone(struct relay *r)
{
    handshake_over(r);
    log_info("inbound:%u: client %s closed before its first byte (a port check)", r->in->port,
             r->conn->peer);
    conn_flag(r->conn, FLAG_DC);
    end_unopened(r, RESULT_OK);
}

static void handshake_step(struct relay *r)
{
    bool want_write = false;
    char why[TLS_WHY_MAX];
    if (r->in && !r->judged) {
        enum judgement j = judge_client(r);
        if (j == JUDGE_WAIT) {
            r->down_wait = NET_IN;
            rearm(r);
            return;
        }
        if (j == JUDGE_GONE) {
            inbound_gone(r);
            return;
        }
        if (j == JUDGE_PLAINTEXT) {
            metrics_handshake(DIRECTION_INBOUND, RESULT_TLS_ERROR);
            inbound_refused(r, RESULT_TLS_ERROR, "TLS handshake: plaintext (the client's first bytes are not TLS)");
            return;
        }
    }
    int h = tls_handshake(r->ssl, &want_write, why, sizeof(why));
    if (h == 0) {
        r->down_wait = want_write ? NET_OUT : NET_IN;
        rearm(r);
        return;
    }
    if (!r->in) {
        late_handshake_done(r, h, why, sizeof(why));
        return;
    }
    if (h < 0) {
        metrics_handshake(DIRECTION_INBOUND, RESULT_TLS_ERROR);
        inbound_refused(r, RESULT_TLS_ERROR, why);
        return;
    }
    metrics_handshake(DIRECTION_INBOUND, RESULT_OK);
    struct conn *c = r->conn;
    bool allowed = tls_peer_check(r->ssl, (const char *const *)r->in->allow.v, r->in->allow.n,
                                  c->peer_identity, sizeof(c->peer_identity), why, sizeof(why));
    c->tls = CONN_TLS_RELAY;
    if (!allowed) {
        inbound_refused(r, RESULT_DENIED, why);
        return;
    }
    inbound_continue(r);
}

/* A permissive port's client is plaintext: its connection is the
 * application's as it came (the relay carries its bytes both ways). */
static void sniff_plaintext(struct relay *r)
{
    r->state = R_PLAIN;
    tls_free(r->ssl, false);
    r->ssl = NULL;
    if (r->handoff.filler)
        unfill(r);
    inbound_open(r);
}

/* Has the application written to a client it is waiting to know? Not
 * while its end starts full for a hand-off (it cannot write). */
static bool app_spoke(struct relay *r)
{
    unsigned char next;
    return !r->handoff.filler && real_recv(r->app, &next, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Still to be told, on a permissive port whose detect_timeout is set: its
 * silence can make it plaintext. */
static bool detects_silence(const struct relay *r)
{
    return r->state == R_SNIFF && r->in->detect_timeout_ms;
}

/* When a permissive port's silent client (detect_timeout set) is
 * plaintext: meshim/sniff.h says why. */
static uint64_t silent_until(struct relay *r, bool spoke)
{
    return r->accepted_ns + sniff_silent_for(r->in->detect_timeout_ms, spoke) * 1000000ull;
}

/* Timer: a permissive port's client has said nothing yet. */
static void silence_step(struct relay *r)
{
    uint64_t now = now_ns();
    if (r->handoff.filler && now >= silent_until(r, true)) {
        /* Its end starts full for a kernel TLS hand-off, so the
         * application cannot speak first: it may now, and is asked at the
         * next turn. A TLS client after this is relayed (inbound_continue). */
        unfill(r);
        r->let_speak = true;
    }
    bool spoke = app_spoke(r);
    if (now < silent_until(r, spoke)) {
        /* Asked again each detect_timeout: a greeting may come late
         * (sendmail's greet_pause). */
        uint64_t next = now + r->in->detect_timeout_ms * 1000000ull, last = silent_until(r, false);
        engine_timer_set(&r->timer, next < last ? next : last);
        return;
    }
    log_debug("inbound:%u: client %s silent for %llu ms, %s: plaintext", r->in->port, r->conn->peer,
              (unsigned long long)((now - r->accepted_ns) / 1000000u),
              spoke ? "the server spoke first" : "the server waiting too");
    sniff_plaintext(r);
}

/* Permissive: TLS or plaintext from the bytes already here (meshim/sniff.h
 * says why it never waits for more). */
static void sniff_step(struct relay *r)
{
    unsigned char first[SNIFF_BYTES];
    ssize_t n = real_recv(r->net, first, sizeof(first), MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        r->down_wait = NET_IN;
        rearm(r);
        return;
    }
    if (sniff_first_bytes(first, n > 0 ? (size_t)n : 0) == SNIFF_TLS) {
        if (!r->ssl) {
            inbound_refused(r, RESULT_TLS_ERROR, "a TLS client, and this process has no usable mTLS identity "
                                                 "(only plaintext clients are served)");
            return;
        }
        r->judged = true;
        r->state = R_HANDSHAKE;
        handshake_step(r);
        return;
    }
    /* Plaintext; or gone before its first byte, which the application
     * then sees as an empty connection. */
    sniff_plaintext(r);
}

/* ---------------------------------------------------------------- events -- */

static void step(struct relay *r)
{
    switch (r->state) {
    case R_SNIFF:
        sniff_step(r);
        break;
    case R_HANDSHAKE:
        handshake_step(r);
        break;
    case R_HANDOFF:
        break;                      /* its timer says when */
    default:
        pump(r);
    }
}

/* The waits that an event on a descriptor ends (an error or hang-up ends
 * both: the next call says what happened). */
static void wake(struct relay *r, uint32_t events, unsigned in, unsigned out)
{
    unsigned ended = (events & (EPOLLIN | EPOLLHUP | EPOLLERR) ? in : 0) |
                     (events & (EPOLLOUT | EPOLLHUP | EPOLLERR) ? out : 0);
    if (r->up_wait & ended)
        r->up_wait = 0;
    if (r->down_wait & ended)
        r->down_wait = 0;
}

/* Handshake steps (a signature, a chain to verify) are slow work: they
 * wait for the bytes of the open connections (engine_slow). */
static void handshake_turn(struct engine_slow *s)
{
    step(container_of(s, struct relay, handshake));
}

static void step_soon(struct relay *r)
{
    if (r->state == R_SNIFF || r->state == R_HANDSHAKE) {
        /* Unwatched until its turn: a level-triggered event repeated
         * every turn meanwhile would crowd out the open connections'. */
        engine_unwatch(&r->net_io);
        engine_unwatch(&r->app_io);
        engine_slow(&r->handshake);
    } else {
        step(r);
    }
}

static void net_ready(struct engine_io *io, uint32_t events)
{
    struct relay *r = container_of(io, struct relay, net_io);
    r->heard |= (events & EPOLLIN) != 0;
    wake(r, events, NET_IN, NET_OUT);
    step_soon(r);
}

static void app_ready(struct engine_io *io, uint32_t events)
{
    struct relay *r = container_of(io, struct relay, app_io);
    if ((events & EPOLLHUP) && app_close_awaited(r))
        r->app_gone_ns = now_ns();  /* every copy of the application's end is closed */
    wake(r, events, APP_IN, APP_OUT);
    step_soon(r);
}

static void timer_fired(struct engine_timer *t)
{
    struct relay *r = container_of(t, struct relay, timer);
    if (r->state == R_HANDOFF) {
        handoff_step(r);
        return;
    }
    if (!r->in && r->state == R_HANDSHAKE) {
        char why[TLS_WHY_MAX] = "TLS handshake: the server did not accept within 10 s";
        metrics_handshake(DIRECTION_OUTBOUND, RESULT_TIMEOUT);
        late_handshake_done(r, -2, why, sizeof(why));
        return;
    }
    if (detects_silence(r) && !heard_now(r)) {
        silence_step(r);
        return;
    }
    if (r->state == R_SNIFF || r->state == R_HANDSHAKE) {
        /* 3 s for a first byte, 10 s for the whole handshake. */
        uint64_t now = now_ns(), until = r->accepted_ns + HANDSHAKE_TIMEOUT_NS;
        /* Asked of the socket: on a busy engine the timer can come before
         * the event that says the client's first bytes are here. */
        if (heard_now(r) && now < until) {
            engine_timer_set(&r->timer, until);
            return;
        }
        if (r->heard && waits_for_engine(r, now)) {
            engine_timer_set(&r->timer, now + BEHIND_RECHECK_NS);
            return;
        }
        const char *why = "TLS handshake: timed out after 10 s";
        if (!r->heard)
            why = "TLS handshake: no byte from the client in 3 s";
        else if (now >= r->accepted_ns + HANDSHAKE_BEHIND_NS)
            why = "TLS handshake: not done 30 s after the accept";
        metrics_handshake(DIRECTION_INBOUND, RESULT_TIMEOUT);
        inbound_refused(r, RESULT_TIMEOUT, why);
        return;
    }
    if (r->app_gone_ns && now_ns() >= r->app_gone_ns + fin_timeout_ns()) {
        /* The application is gone and the peer never ended: as the
         * kernel drops an orphan in FIN_WAIT2, without a reset. */
        r->down.len = 0;
        r->down_done = true;
        set_up_done(r);
        relay_end(r);
        return;
    }
    pump(r);
}

/* The process is ending: what the application has written is the end of
 * what it sends. */
static void exit_one(struct relay *r)
{
    r->exiting = true;
    if (r->state == R_OPEN || r->state == R_PLAIN) {
        r->up_wait = r->down_wait = 0;  /* read to EAGAIN now: that is the end */
        pump(r);
    } else {
        set_up_done(r);             /* a handshake: nothing of the application's yet */
    }
}

static void begin(struct engine_task *t)
{
    struct relay *r = container_of(t, struct relay, task);
    /* Records go out whole (up to 16 KiB each): no Nagle delay on them. */
    int one = 1;
    real_setsockopt(r->net, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    DL_PREPEND(live, r);
    if (__atomic_add_fetch(&live_n, 1, __ATOMIC_RELEASE) > live_peak)
        live_peak = live_n;
    __atomic_sub_fetch(&unbegun, 1, __ATOMIC_ACQ_REL);
    if (exit_asked) {
        /* Handed over just before the exit (its application wrote and
         * exited before this ran). */
        exit_one(r);
        return;
    }
    if (r->in && r->state == R_PLAIN) {
        inbound_open(r);            /* protocol = http in the clear: no handshake */
        return;
    }
    if (r->in && (r->state == R_SNIFF || r->state == R_HANDSHAKE)) {
        r->accepted_ns = now_ns();
        heard_now(r);
        engine_timer_set(&r->timer, detects_silence(r) ? silent_until(r, true)
                                                       : r->accepted_ns + FIRST_BYTE_TIMEOUT_NS);
    } else if (r->state == R_HANDSHAKE) {
        engine_timer_set(&r->timer, now_ns() + HANDSHAKE_TIMEOUT_NS);   /* accepted late */
    }
    step_soon(r);
}

/* ------------------------------------------------------------ hand-over -- */

/* A fork child, the relay handed over and not begun yet: as for the relays
 * in `live` (relay_atfork_child), the child closes its copy of the
 * engine's end. */
static void forget_in_child(struct engine_task *t)
{
    own_close(container_of(t, struct relay, task)->app);
}

static bool start(struct conn *c, struct tls_identity *id, SSL *ssl, int net, int app, int state,
                  const struct inbound_config *in, const struct relay_handoff *h)
{
    termsig_arm();              /* from now on, what it writes must outlive a SIGTERM too */
    struct relay *r = calloc(1, sizeof(*r));
    if (r) {
        if (h)
            r->handoff = *h;
        r->quiet = state == R_OPEN && ssl && tls_ktls_quiet(ssl);
        r->conn = c;
        r->id = id;
        r->ssl = ssl;
        r->net = net;
        r->app = app;
        r->state = state;
        r->in = in;
        r->pending = in != NULL && state != R_PLAIN;    /* no handshake: none pending */
        if (in && in->protocol == PROTO_HTTP && !(r->tap = httptap_new(c, in->port)))
            log_warn("inbound:%u: out of memory: a connection's requests are not counted", in->port);
        r->counted = true;
        __atomic_add_fetch(&unflushed, 1, __ATOMIC_ACQ_REL);
        __atomic_add_fetch(&unbegun, 1, __ATOMIC_ACQ_REL);
        r->task.run = begin;
        r->task.forget = forget_in_child;
        r->net_io = (struct engine_io){ .ready = net_ready, .fd = net };
        r->app_io = (struct engine_io){ .ready = app_ready, .fd = app };
        r->timer.fire = timer_fired;
        r->handshake.run = handshake_turn;
        if (engine_post(&r->task))
            return true;
        __atomic_sub_fetch(&unflushed, 1, __ATOMIC_ACQ_REL);
        __atomic_sub_fetch(&unbegun, 1, __ATOMIC_ACQ_REL);
        free(r);
    }
    log_error("cannot relay a connection: %s; it is closed", r ? "no background thread" : "out of memory");
    if (in && state != R_PLAIN)
        relay_pending_give(in->port);
    tls_free(ssl, false);
    swap_lock();
    if (c->sock == net)
        c->sock = -1;
    swap_unlock();
    own_close(net);
    own_close(app);
    conn_unref(c);
    tls_identity_put(id);
    return false;
}

bool relay_outbound(struct conn *c, struct tls_identity *id, SSL *ssl, int net, int app, bool late)
{
    if (late)
        log_debug("%s: the server has not answered the TLS handshake yet: the connect is reported, "
                  "the handshake goes on in the relay", c->svc->name);
    return start(c, id, ssl, net, app, late ? R_HANDSHAKE : R_OPEN, NULL, NULL);
}

uint64_t relay_late_at(const struct service *svc, uint64_t started_ns, uint64_t now)
{
    return service_cfg(svc)->late_accept ? now + LATE_SERVER_NS + 2 * (now - started_ns) : UINT64_MAX;
}

bool relay_inbound(struct conn *c, const struct inbound_config *in, struct tls_identity *id, int net,
                   int app, const struct relay_handoff *h)
{
    /* No identity (a permissive port only, mtls.c): no TLS session; the
     * sniff refuses a TLS client. */
    SSL *ssl = id ? mtls_server(id, net, h && h->filler) : NULL;
    if (id && !ssl) {
        log_error("inbound:%u: cannot start a TLS session; the client is closed", in->port);
        relay_pending_give(in->port);
        own_close(net);
        own_close(app);
        conn_unref(c);
        tls_identity_put(id);
        return false;
    }
    return start(c, id, ssl, net, app, in->tls == INBOUND_PERMISSIVE ? R_SNIFF : R_HANDSHAKE, in, h);
}

bool relay_inbound_plain(struct conn *c, const struct inbound_config *in, int net, int app)
{
    return start(c, NULL, NULL, net, app, R_PLAIN, in, NULL);
}

bool relay_pair(int flags, int net, int *app, int *engine)
{
    int sv[2];
    if (real_socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (flags & SOCK_NONBLOCK), 0, sv) < 0)
        return false;
    *app = sv[0];
    *engine = ownfd_move(sv[1]);
    if (*engine < 0) {
        real_close(sv[0]);
        *app = -1;              /* closed: the caller must not close that number again */
        return false;
    }
    real_fcntl(*engine, F_SETFL, (void *)(long)O_NONBLOCK);
    sockname_carry(*app, *engine, net);
    return true;
}

/* ----------------------------------------------------------------- fork -- */

/* The relays are the parent's: its engine goes on relaying them, and the
 * child's copy of their TLS state must never write to the shared sockets
 * (at its exit, a flush would send the parent's close_notify). The child
 * writes into the shared socketpair ends like any other descriptor; their
 * memory is left, no lock is safe to take here (the engine was paused for
 * the fork, so the list is whole).
 *
 * The child closes its copies of the engine's ends, though. Otherwise a
 * child that outlives its parent (a program that connects, then
 * daemonizes) held both ends of each pair: its reads waited forever and
 * its writes went nowhere once the parent's relay was gone. Now they see
 * the end, as the relay's own close would show them. The TCP sockets stay:
 * a child's socket options on its copy of the connection reach them. */
void relay_atfork_child(void)
{
    pthread_mutex_init(&pending_lock, NULL);
    if (keeping)
        return;                     /* the keeper: they are its to carry on (relay_keep) */
    for (struct relay *r = live; r; r = r->next)
        own_close(r->app);
    live = NULL;
    live_n = live_peak = 0;
    exit_asked = false;
    unflushed = 0;
    memset(pending_ports, 0, sizeof(pending_ports));
    evict_queued = evict_wanted = 0;
    unbegun = 0;
    relays_shared = passed = false;
}

/* ----------------------------------------------------------------- exit -- */

static void exit_run(struct engine_task *t)
{
    (void)t;
    exit_asked = true;
    for (struct relay *r = live, *next; r; r = next) {
        next = r->next;
        exit_one(r);
    }
}

/* Then every relay ends (close_notify where it is due): the connections
 * the application has closed already, whose relays wait for their peer,
 * get their access-log line now, not never. */
static int ended;                   /* atomic: end_all has run */

/* A relay ends once the peer has acknowledged every byte sent to it (the
 * FIN too): if the peer's bytes still arrive after the close (its session
 * tickets, sent just after the handshake), the kernel resets the
 * connection and drops what it had not sent yet. Meanwhile what comes is
 * read out. Bounded: the caller waits EXIT_END_NS for all of them. */
#define EXIT_LINGER_NS (EXIT_END_NS * 3 / 4)
static uint64_t linger_until;           /* engine thread only */

static bool unacknowledged(struct relay *r)
{
    int queued = 0;
    drain_net(r);
    return !r->net_dead && real_ioctl(r->net, SIOCOUTQ, &queued) == 0 && queued > 0;
}

/* The end of every relay; again each millisecond (its own timer) while
 * some still linger. */
static void end_all_run(struct engine_timer *t)
{
    (void)t;
    bool lingering = now_ns() < linger_until;
    for (struct relay *r = live, *next; r; r = next) {
        next = r->next;
        if (!lingering || !unacknowledged(r))
            relay_end(r);
    }
    if (!live) {
        __atomic_store_n(&ended, 1, __ATOMIC_RELEASE);
        return;
    }
    static struct engine_timer again = { .fire = end_all_run };
    engine_timer_set(&again, now_ns() + 1000000);      /* look again in 1 ms */
}

static void end_all(struct engine_task *t)
{
    (void)t;
    linger_until = now_ns() + EXIT_LINGER_NS;
    end_all_run(NULL);
}

/* At exit() (the destructor) and at _exit() or exit_group (their hooks):
 * the bytes the application wrote go out and the relays end, as the kernel
 * would still send what sits in a socket's buffer. _exit may be called from
 * a signal handler, so this takes no lock and allocates nothing: the engine
 * is asked through its signal-safe slot, and the caller only sleeps,
 * bounded (EXIT_FLUSH_NS, then EXIT_END_NS). */
void mesh_exit_flush(void)
{
    relay_exit();
    http_exit();
}

bool relay_carries(int fd)
{
    enum fd_kind kind = fdtable_kind(fd);
    if (kind == FD_TRACE_IN || kind == FD_TRACE_OUT)
        return true;
    struct conn *c = fdtable_get(fd);
    bool carried = c && (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == CONN_RELAYED || c->http);
    conn_unref(c);
    return carried;
}

/* The exiting thread's bounded waits (relay_exit, relay_keep, keep_ask):
 * a millisecond's sleep, or false once the deadline has passed.
 * Async-signal-safe. */
static bool nap_before(uint64_t deadline)
{
    if (now_ns() >= deadline)
        return false;
    struct timespec ms = { 0, 1000000 };
    nanosleep(&ms, NULL);
    return true;
}

void relay_exit(void)
{
    static struct engine_task flush_task = { .run = exit_run };
    static struct engine_task end_task = { .run = end_all };
    /* unflushed counts the relays handed over and not begun yet too. */
    if (__atomic_load_n(&keep_answer, __ATOMIC_ACQUIRE) == KEEP_DONE ||
        (!__atomic_load_n(&live_n, __ATOMIC_ACQUIRE) && !__atomic_load_n(&unflushed, __ATOMIC_ACQUIRE)) ||
        !engine_post_signal_safe(&flush_task))
        return;
    uint64_t deadline = now_ns() + EXIT_FLUSH_NS;
    while (__atomic_load_n(&unflushed, __ATOMIC_ACQUIRE) && nap_before(deadline))
        ;
    /* The slot is free again once the flush task has run. */
    while (!engine_post_signal_safe(&end_task))
        if (!nap_before(deadline))
            return;
    deadline = now_ns() + EXIT_END_NS;
    while (!__atomic_load_n(&ended, __ATOMIC_ACQUIRE) && nap_before(deadline))
        ;
}

/* ---------------------------------------------------------------- keeper -- */

/* A relay lives in the engine of the process that made the connection, and
 * a fork child shares the application's end of it. When that process ends
 * while such a child lives on with the connection (`ssh -f`, a program
 * that connects and then daemonizes), ending the relay would end the
 * child's connection. So a process that forked (or passed a relayed
 * descriptor on) while it had relays hands them, at exit(), _exit() or
 * daemon(), to a keeper: a process its engine thread forks, which closes
 * every descriptor of the program's, carries the relays on under their
 * usual rules, and ends with the last of them. A relay whose
 * application end no process holds any more ends at once, as at a close:
 * when no child kept one, the keeper is gone as soon as it has sent what
 * the program wrote, as the exit would have.
 *
 * An exec ends the engine with the image, while the new image keeps every
 * descriptor not marked close-on-exec: a program that connects and then
 * execs another with the connection (`tcpclient`, a shell's `exec`) would
 * lose it, and what it wrote last. So an exec hands the relays to a keeper
 * too, and this process's engine lets go of them (let_go) and goes on, in
 * case the exec fails. */

#define KEEP_WAIT_NS (200ull * 1000000u)    /* for relays handed over and not begun */

/* Any thread: relays in `live`, or handed over and not begun yet. */
static bool has_relays(void)
{
    return __atomic_load_n(&live_n, __ATOMIC_ACQUIRE) || __atomic_load_n(&unbegun, __ATOMIC_ACQUIRE);
}

void relay_atfork_parent(void)
{
    if (has_relays())
        __atomic_store_n(&relays_shared, true, __ATOMIC_RELAXED);
}

/* A descriptor passed to another process (SCM_RIGHTS) is held there as a
 * fork child holds its copy: a program that connects, passes the
 * connection on and exits (`nc -F`, for ssh's ProxyUseFdpass) hands its
 * relays to a keeper at its end, as one that forked does. nc passes it as
 * soon as its non-blocking connect() returns, the connect still under way
 * in the engine (or just relayed, its relay not handed over yet): the
 * engine's connects are waited for at the exit (relay_keep). Such a
 * connect ends in a relay even when plain or handed to kernel TLS
 * (`passed`, dial.c): the other process's copy is the placeholder's end,
 * and the socket put on this process's number would never reach it. */
static void note_passed_fd(int fd)
{
    struct conn *c = fdtable_get(fd);
    if (!c)
        return;
    swap_lock();                    /* dial.c reads `passed` under it, where it settles */
    int state = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
    if (state == CONN_DIALING)
        c->passed = true;
    swap_unlock();
    if (state == CONN_DIALING || state == CONN_RELAYED) {
        __atomic_store_n(&passed, true, __ATOMIC_RELAXED);
        __atomic_store_n(&relays_shared, true, __ATOMIC_RELAXED);
    }
    conn_unref(c);
}

void relay_note_passed(const struct msghdr *msg)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR((struct msghdr *)msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len < CMSG_LEN(0))
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
            note_passed_fd(fd);
        }
    }
}

static bool none_left(void)
{
    return live == NULL;
}

/* The keeper: each relay goes on in its loop, watched again. An open one
 * is pumped first thing. One still in its handshake (a server that execs
 * its handler right after accept(), a connect reported before the
 * server's answer) takes it up again under its deadline; the program's
 * number is not in this process, so it ends in the relay, never handed to
 * kernel TLS (a hand-off already under way: handoff_step finds the number
 * gone, and the relay carries the kernel's TLS). */
static void adopt(struct relay *r)
{
    uint64_t due = r->timer.armed ? r->timer.due_ns : 0;
    r->handshake.queued = false;
    r->timer.armed = false;
    struct engine_io *ios[] = { &r->net_io, &r->app_io };
    for (size_t i = 0; i < 2; i++) {
        uint32_t events = ios[i]->events;
        ios[i]->watched = false;
        ios[i]->events = 0;
        engine_interest(ios[i], events);
    }
    if (r->state == R_SNIFF || r->state == R_HANDSHAKE) {
        if (r->handoff.filler)
            unfill(r);
        if (due)
            engine_timer_set(&r->timer, due);
        step_soon(r);
        return;
    }
    engine_timer_set(&r->timer, 0);
}

/* In the keeper, a relay whose application end no process holds any more
 * (every copy closed: the engine's end reads as hung up) ends as at an
 * exit: what was written goes out, then it ends once the peer has
 * acknowledged it (KEEP_LINGER_NS at most), where a live process's relay
 * would wait for the peer's end. Looked at every KEEP_SWEEP_NS. */
#define KEEP_SWEEP_NS (50ull * 1000000u)
#define KEEP_LINGER_NS (2ull * 1000000000u)

static void keeper_sweep(struct engine_timer *t)
{
    uint64_t now = now_ns();
    for (struct relay *r = live, *next; r; r = next) {
        next = r->next;
        if (!app_end_gone(r))
            continue;
        if (!r->exiting) {
            r->orphaned_ns = now;
            exit_one(r);            /* it may end here */
        } else if (r->up_done && (!unacknowledged(r) || now - r->orphaned_ns >= KEEP_LINGER_NS)) {
            relay_end(r);
        }
    }
    if (live)
        engine_timer_set(t, now + KEEP_SWEEP_NS);
}

static bool relay_uses(int fd)
{
    for (struct relay *r = live; r; r = r->next)
        if (r->net == fd || r->app == fd)
            return true;
    return false;
}

/* The shim's own sockets that no relay uses (a connect the parent still
 * made in the engine, a health probe, a resolver's) are the parent's
 * business: a connection held open by the keeper would outlive it. Its
 * files (the access log) stay. */
static void close_other_sockets(void)
{
    struct stat st;
    for (int fd = ownfd_next(0), next; fd >= 0; fd = next) {
        next = ownfd_next((unsigned)fd + 1);
        if (!relay_uses(fd) && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
            own_close(fd);
    }
}

static _Noreturn void keeper_main(void)
{
    hooks_internal_thread("meshim-keeper");
    setsid();                       /* out of the terminal's session: its hang-up is not ours */
    struct sigaction dfl = { .sa_handler = SIG_DFL }, ign = { .sa_handler = SIG_IGN };
    for (int sig = 1; sig < NSIG; sig++)    /* the program's handlers are not ours to run */
        real_sigaction(sig, sig == SIGPIPE || sig == SIGHUP ? &ign : &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    /* The connections are the keeper's to log now; the program's
     * descriptors of them go, and so do their references. */
    for (struct relay *r = live; r; r = r->next) {
        r->conn->ended = false;
        fdtable_forget(r->conn);
    }
    ownfd_close_range(0, ~0u, 0);   /* every descriptor of the program's */
    close_other_sockets();
    if (engine_keeper_begin()) {
        for (struct relay *r = live, *next; r; r = next) {
            next = r->next;
            adopt(r);
        }
        static struct engine_timer sweep = { .fire = keeper_sweep };
        engine_timer_set(&sweep, now_ns() + KEEP_SWEEP_NS);
        engine_keeper_run(none_left);
    }
    metrics_exit();
    for (;;)
        real_syscall(SYS_exit_group, 0, 0, 0, 0, 0, 0);
}

/* Engine thread: does some relay's application end still have a holder
 * (in this process or in its children)? If not, none needs a keeper. */
static bool still_held(void)
{
    for (struct relay *r = live; r; r = r->next)
        if (!app_end_gone(r))
            return true;
    return false;
}

/* Before an exec, in this process, once the keeper has r: r is the
 * keeper's to carry on, from the same TLS sequence numbers. This engine
 * stops watching it and closes its copies without a word on the wire (no
 * close_notify, no reset, no read of the peer's bytes: all the keeper's)
 * and without its access-log line (the keeper writes it). A relay still
 * filling a hand-off is left to the keeper's end to read out. Should the
 * exec fail, the program's descriptor is what a fork child's is: a
 * socketpair end whose addresses it carries (sockname.h), no longer in the
 * table. */
static void let_go(struct relay *r)
{
    relay_detach(r, false);
    r->conn->ended = true;
    fdtable_forget(r->conn);
    own_close(r->net);
    own_close(r->app);
    relay_free(r);
}

/* On the engine thread, between two pieces of its work (so a fork finds
 * whole every object it touches), asked by relay_keep or
 * relay_keep_before_exec. */
#define KEEP_ANSWER_NS (1000ull * 1000000u)

static void keep_run(struct engine_task *t)
{
    (void)t;
    if (live && still_held()) {
        keeping = true;
        pid_t pid = fork();
        if (pid == 0)
            keeper_main();
        keeping = false;
        if (pid > 0) {
            log_debug("the relays of %u connections go on in process %d", live_n, (int)pid);
            if (keep_for_exec) {
                while (live)
                    let_go(live);
                __atomic_store_n(&keep_answer, KEEP_HANDED, __ATOMIC_RELEASE);
                return;
            }
            /* What this thread carried is the keeper's, access-log lines
             * included: it touches none of it again, and waits for the
             * process's end. */
            for (struct relay *r = live; r; r = r->next)
                r->conn->ended = true;
            __atomic_store_n(&keep_answer, KEEP_DONE, __ATOMIC_RELEASE);
            for (;;)
                pause();            /* every signal is blocked here */
        }
    }
    __atomic_store_n(&keep_answer, KEEP_NOT, __ATOMIC_RELEASE);
}

/* The question to the engine thread, from a thread that may be in a
 * signal handler (_exit): it takes no lock and allocates nothing; the
 * engine thread forks (a fork here could wait forever on a lock the
 * interrupted code holds), and the caller waits for the answer, bounded:
 * if the engine cannot fork in time, the exit or exec goes on as without
 * a keeper. */
static int keep_ask(bool exec)
{
    static struct engine_task task = { .run = keep_run };
    /* Relays handed over just now go into `live` first (bounded). */
    uint64_t deadline = now_ns() + KEEP_WAIT_NS;
    while (__atomic_load_n(&unbegun, __ATOMIC_ACQUIRE) && nap_before(deadline))
        ;
    keep_for_exec = exec;
    __atomic_store_n(&keep_answer, KEEP_ASKED, __ATOMIC_RELEASE);
    if (__atomic_load_n(&unbegun, __ATOMIC_ACQUIRE) || !engine_post_signal_safe(&task))
        return KEEP_NOT;
    deadline = now_ns() + KEEP_ANSWER_NS;
    while (__atomic_load_n(&keep_answer, __ATOMIC_ACQUIRE) == KEEP_ASKED && nap_before(deadline))
        ;
    return __atomic_load_n(&keep_answer, __ATOMIC_ACQUIRE);
}

#define KEEP_DIAL_NS (3000ull * 1000000u)   /* for a passed connect still under way */

bool relay_keep(void)
{
    if (!__atomic_load_n(&relays_shared, __ATOMIC_RELAXED) || http_live() || !engine_here())
        return false;
    uint64_t deadline = now_ns() + KEEP_DIAL_NS;
    while (__atomic_load_n(&passed, __ATOMIC_RELAXED) && dial_unsettled() && nap_before(deadline))
        ;
    if (!has_relays())
        return false;
    return keep_ask(false) == KEEP_DONE;
}

/* Unlike at an exit, no fork before is asked for: the exec'ing process
 * itself holds the ends the new image goes on with. An HTTP proxy's
 * connections are not kept (the new image's requests on them would reach
 * no proxy); their relays to mTLS endpoints go to the keeper and end there
 * once the exec has closed the proxy's ends. */
bool relay_keep_before_exec(void)
{
    if (!has_relays() || !engine_here())
        return false;
    return keep_ask(true) == KEEP_HANDED;
}
