/*
 * dial.c — a non-blocking connect's attempts, made by the engine (see
 * dial.h), and what the socket calls of the application see meanwhile.
 *
 * One dial, on the engine thread:
 *
 *   WAITING    --(backoff or fault_delay over)--> next attempt
 *              --(nothing to pick: the service's-> WAITING again, until
 *                 first DNS answer, or a half-       connect_timeout
 *                 open probe's outcome, pending)     from the connect()
 *   CONNECTING --(SO_ERROR 0)-------------------> connected: socket back on
 *                                                 the app's number, done
 *                                                 (mTLS: HANDSHAKE)
 *              --(failed, timed out)------------> retry allowed? WAITING
 *                                                 : FAILED, done
 *   HANDSHAKE  --(done, identity matches)-------> SETTLE
 *              --(failed, timed out)------------> as a failed attempt
 *   SETTLE     --(the server's tickets read, ---> kernel TLS: the socket
 *                 when both ends agreed on           back on the app's
 *                 kernel TLS; at once if not)        number; else a relay
 *                                                    there; done
 *              --(failed, timed out)------------> as a failed attempt
 *   any        --(the app closed its number)----> abandoned, done
 */
#include "mesh/dial.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "engine/engine.h"
#include "engine/placeholder.h"
#include "libc/ownfd.h"
#include "libc/real.h"
#include "mesh/fdtable.h"
#include "mesh/ktls.h"
#include "mesh/mtls.h"
#include "mesh/relay.h"
#include "mesh/sockname.h"
#include "meshim/mesh.h"
#include "observe/accesslog.h"
#include "observe/log.h"

struct dial {
    struct engine_task task;        /* the hand-over */
    struct engine_io sock_io;       /* the real socket, while an attempt is in flight */
    struct engine_io peer_io;       /* the engine's end: HUP when the app closed its number */
    struct engine_timer timer;      /* the attempt's deadline, or the end of a wait */
    struct conn *conn;              /* one reference */
    struct placeholder ph;
    struct pick pick;
    struct dial_spec spec;
    int fd;                         /* the application's number */
    int sock;                       /* the real socket, at a high number */
    bool peer_watched;
    SSL *ssl;                       /* mTLS: the handshake under way, or done */
    struct tls_identity *id;
    bool handshaking;
    bool settling;                  /* handshake done: reading the server's tickets */
    bool heard;                     /* the server has sent a byte of the handshake */
    uint64_t late_at;               /* silent until then: it accepts late (relay.h) */
    struct dial *prev, *next;       /* in `dials`, from begin() to dial_free() */
};

static struct dial *dials;          /* engine thread only: every dial begun */
unsigned dials_unsettled;           /* atomic: dials handed to the engine and not freed */

/* When the attempt in flight has failed if it is not over. */
static uint64_t attempt_deadline(const struct dial *d)
{
    return d->spec.started_ns + (uint64_t)d->spec.timeout_ms * 1000000u;
}

/* The dial is over: nothing of it stays in the engine. The real socket has
 * been given away or closed by the caller. */
static void dial_free(struct dial *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else if (dials == d)
        dials = d->next;
    if (d->next)
        d->next->prev = d->prev;
    engine_timer_cancel(&d->timer);
    tls_free(d->ssl, false);
    tls_identity_put(d->id);
    if (d->peer_watched)
        engine_unwatch(&d->peer_io);
    placeholder_release(&d->ph);
    conn_unref(d->conn);
    pick_done(&d->pick);
    engine_retire(d);
    __atomic_sub_fetch(&dials_unsettled, 1, __ATOMIC_ACQ_REL);
}

static void set_state(struct conn *c, enum conn_state state, int sock, int err)
{
    conn_set_error(c, err);
    c->sock = sock;
    __atomic_store_n(&c->state, state, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------- outcomes -- */

static void handshake_begin(struct dial *d);
static void give_up(struct dial *d, int err);

/* mTLS, handshake done: the placeholder's pair becomes the relay's. The
 * application's end stays on its number (its file flags and epoll
 * registrations with it, nothing to move) and becomes writable as the
 * engine's end reads the filler out; the socket stays the engine's. */
static void relayed(struct dial *d, bool late)
{
    if (d->peer_watched)
        engine_unwatch(&d->peer_io);    /* the relay watches that end now */
    d->peer_watched = false;
    int engine = -1, err = 0;
    swap_lock();
    bool on_number = placeholder_at(d->fd, &d->ph);
    /* Passed to another process (relay.c, relay_note_passed), the
     * placeholder's end is held there whatever this number holds now. */
    bool here = on_number || d->conn->passed;
    if (on_number) {
        fdtable_set_dialing(d->fd, false);          /* the pair end stays: relayed */
        sockname_carry(d->fd, d->ph.peer, d->sock);
        /* SO_RCVTIMEO/SO_SNDTIMEO the application set before the connect,
         * or while it went on, are on the socket: its reads and writes are
         * on its end of the pair from now on. */
        sockname_copy_timeouts(d->sock, d->fd);
    }
    if (here) {
        engine = placeholder_open(on_number ? d->fd : -1, &d->ph);
        err = errno;
    }
    if (engine >= 0) {
        d->conn->sock = d->sock;
        d->conn->pair_ino = on_number ? conn_ino(d->fd) : 0;
        __atomic_store_n(&d->conn->connect_owed, true, __ATOMIC_RELAXED);
        __atomic_store_n(&d->conn->state, CONN_RELAYED, __ATOMIC_RELEASE);
    } else if (!here) {
        set_state(d->conn, CONN_OPEN, -1, 0);   /* the application closed it meanwhile */
    }
    swap_unlock();
    if (here && engine < 0) {
        snprintf(d->spec.last, sizeof(d->spec.last), "cannot relay the TLS connection: %s",
                 strerror(err));
        give_up(d, err);
        return;
    }
    if (here) {
        conn_ref(d->conn);          /* the relayed connection keeps placeholders_live */
        relay_outbound(d->conn, d->id, d->ssl, d->sock, engine, late);
    } else {
        placeholder_done();
        tls_free(d->ssl, false);
        tls_identity_put(d->id);
        own_close(d->sock);
    }
    d->ssl = NULL;
    d->id = NULL;
    dial_free(d);
}

static void connected(struct dial *d)
{
    struct service *svc = d->conn->svc;
    if (mtls_wanted(d->conn) && !d->ssl) {
        handshake_begin(d);
        return;
    }
    attempt_record(svc, d->conn->ep, d->spec.app_port, 0, d->spec.started_ns);
    conn_connected(d->conn);
    if (d->ssl && d->conn->tls != CONN_TLS_KTLS) {
        relayed(d, false);
        return;
    }
    if (d->ssl) {
        /* Kernel TLS: the socket goes back on the number as a plain one. */
        tls_free(d->ssl, false);
        tls_identity_put(d->id);
        d->ssl = NULL;
        d->id = NULL;
    }
    /* connect() once more, as an application polling with connect() would:
     * the socket is then "connected" to the kernel too, and the
     * application's own connect() answers EISCONN, not EALREADY; the 0
     * this call takes is owed to the application's next one. */
    struct sockaddr_storage ss;
    real_connect(d->sock, (struct sockaddr *)&ss,
                 endpoint_addr(d->conn->ep, d->pick.family, d->spec.app_port, &ss));
    swap_lock();
    bool passed = d->conn->passed;
    if (!passed) {
        if (placeholder_restore(d->fd, &d->ph, d->sock)) {
            fdtable_set_dialing(d->fd, false);
            if (d->conn->tls == CONN_TLS_KTLS)
                ktls_mark(d->fd);
        }
        __atomic_store_n(&d->conn->connect_owed, true, __ATOMIC_RELAXED);
        set_state(d->conn, CONN_OPEN, -1, 0);
    }
    swap_unlock();
    if (passed) {
        /* Another process holds the placeholder's end (relay.c,
         * relay_note_passed): it becomes a relay's, in the clear over the
         * socket (plain, or the kernel's TLS). */
        relayed(d, false);
        return;
    }
    own_close(d->sock);        /* the number holds it now (or the app closed it) */
    placeholder_done();
    dial_free(d);
}

static void give_up(struct dial *d, int err)
{
    struct service *svc = d->conn->svc;
    if (d->conn->attempts)
        attempts_failed(svc, d->conn->attempts, d->spec.last, err);
    conn_failed(d->conn, d->conn->attempts ? err : 0, d->pick.flags);
    reset_socket(d->sock);
    swap_lock();
    set_state(d->conn, CONN_FAILED, d->sock, err);  /* the conn owns the socket now */
    if (placeholder_at(d->fd, &d->ph))
        fdtable_set_dialing(d->fd, false);          /* settled: failed */
    swap_unlock();
    dial_free(d);
}

static void next_attempt(struct dial *d);

static void attempt_failed_why(struct dial *d, int err, const char *why)
{
    struct service *svc = d->conn->svc;
    struct endpoint *ep = d->conn->ep;
    attempt_record(svc, ep, d->spec.app_port, err, d->spec.started_ns);
    attempt_failed_log(d->conn, ep, d->spec.app_port, err, why, d->spec.last, sizeof(d->spec.last));
    d->spec.err = err;
    if (!retry_next(&d->pick, err, d->spec.retry)) {
        give_up(d, err);
        return;
    }
    reset_socket(d->sock);
    d->spec.retry++;
    engine_timer_set(&d->timer, now_ns() + retry_delay_ns(svc, d->spec.retry));
}

static void attempt_failed(struct dial *d, int err)
{
    attempt_failed_why(d, err, NULL);
}

/* -------------------------------------------------------------- mTLS -- */

static void handshake_failed(struct dial *d, int err, const char *why)
{
    engine_unwatch(&d->sock_io);
    engine_timer_cancel(&d->timer);
    d->handshaking = d->settling = false;
    d->spec.connecting = false;
    tls_free(d->ssl, false);
    tls_identity_put(d->id);
    d->ssl = NULL;
    d->id = NULL;
    attempt_failed_why(d, err, why);
}

/* Handshake done: when both ends agreed on kernel TLS the server's session
 * tickets are read first (the kernel cannot take them after), then kernel
 * TLS or a relay. */
static void settle_step(struct dial *d)
{
    bool want_write = false;
    char why[TLS_WHY_MAX];
    int s = tls_ktls_settle(d->ssl, &want_write, why, sizeof(why));
    if (s == 0) {
        engine_interest(&d->sock_io, want_write ? EPOLLOUT : EPOLLIN);
        return;
    }
    if (s == -2) {
        handshake_failed(d, ECONNRESET, why);
        return;
    }
    if (mtls_ktls(d->conn, d->ssl, d->sock, DIRECTION_OUTBOUND, s == -1 ? why : NULL) < 0) {
        handshake_failed(d, ECONNRESET, "kernel TLS could not be set up");
        return;
    }
    engine_unwatch(&d->sock_io);
    engine_timer_cancel(&d->timer);
    d->handshaking = d->settling = false;
    d->spec.connecting = false;
    connected(d);
}

static void handshake_step(struct dial *d)
{
    if (d->settling) {
        settle_step(d);
        return;
    }
    bool want_write = false;
    char why[TLS_WHY_MAX];
    int h = tls_handshake(d->ssl, &want_write, why, sizeof(why));
    if (h == 0) {
        engine_interest(&d->sock_io, want_write ? EPOLLOUT : EPOLLIN);
        return;
    }
    int err = mtls_finish(d->conn, d->ssl, h, why, sizeof(why));
    if (err) {
        handshake_failed(d, err, why);
        return;
    }
    d->settling = true;
    settle_step(d);
}

/* TCP is connected: the handshake goes on within the attempt's time. */
static void handshake_begin(struct dial *d)
{
    char why[TLS_WHY_MAX];
    d->ssl = mtls_begin(d->conn, d->sock, &d->id, why, sizeof(why));
    if (!d->ssl) {
        attempt_failed_why(d, ECONNRESET, why);
        return;
    }
    uint64_t deadline = attempt_deadline(d);
    d->handshaking = true;
    d->heard = false;
    d->late_at = relay_late_at(d->conn->svc, d->spec.started_ns, now_ns());
    d->spec.connecting = true;
    engine_timer_set(&d->timer, d->late_at < deadline ? d->late_at : deadline);
    handshake_step(d);
}

/* The server has said nothing since the ClientHello: it accepts late
 * (relay.h). The connect is done; the relay finishes the handshake. */
static void accepted_late(struct dial *d)
{
    engine_unwatch(&d->sock_io);
    d->handshaking = false;
    d->spec.connecting = false;
    attempt_record(d->conn->svc, d->conn->ep, d->spec.app_port, 0, d->spec.started_ns);
    conn_connected(d->conn);
    relayed(d, true);
}

/* ------------------------------------------------------------- attempts -- */

int dial_connect_error(int sock, uint32_t events)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (real_getsockopt(sock, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (!err && (events & (EPOLLERR | EPOLLHUP)))
        err = ECONNREFUSED;
    return err;
}

static void sock_ready(struct engine_io *io, uint32_t events)
{
    struct dial *d = container_of(io, struct dial, sock_io);
    if (d->handshaking) {
        d->heard |= (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0;
        handshake_step(d);
        return;
    }
    engine_timer_cancel(&d->timer);
    engine_unwatch(&d->sock_io);
    d->spec.connecting = false;
    int err = dial_connect_error(d->sock, events);
    if (err)
        attempt_failed(d, err);
    else
        connected(d);
}

static void next_attempt(struct dial *d)
{
    struct sockaddr_storage ss;
    socklen_t len;
    /* Asked before the pick: an answer that comes between the two is then
     * seen by the next look, not taken for "no endpoints" (the set and the
     * flag change under one lock). */
    bool waiting = !d->conn->attempts && service_waiting(d->conn->svc);
    struct endpoint *ep = pick_target(&d->pick, d->spec.app_port, &ss, &len);
    uint64_t deadline = conn_deadline_ns(d->conn, d->spec.timeout_ms);
    if (!ep && ((waiting && now_ns() < service_wait_deadline(d->conn->svc, deadline)) ||
                pick_may_wait(&d->pick, deadline))) {
        /* The service's DNS has not answered yet, or a half-open probe's
         * outcome is pending: look again shortly. */
        engine_timer_set(&d->timer, now_ns() + PICK_WAIT_STEP_NS);
        return;
    }
    if (!ep) {
        give_up(d, d->conn->attempts ? d->spec.err : no_endpoint(&d->pick));
        return;
    }
    d->spec.started_ns = conn_attempt(d->conn, ep);
    conn_flag(d->conn, d->pick.flags);
    int err = real_connect(d->sock, (struct sockaddr *)&ss, len) == 0 ? 0 : errno;
    if (err == 0) {
        connected(d);
    } else if (err == EINPROGRESS) {
        d->spec.connecting = true;
        engine_watch(&d->sock_io, EPOLLOUT);
        engine_timer_set(&d->timer, attempt_deadline(d));
    } else {
        attempt_failed(d, err);
    }
}

static void timer_fired(struct engine_timer *t)
{
    struct dial *d = container_of(t, struct dial, timer);
    if (!d->spec.connecting) {
        next_attempt(d);
        return;
    }
    if (d->handshaking) {
        if (!d->heard && !d->settling && now_ns() >= d->late_at) {
            accepted_late(d);
            return;
        }
        if (now_ns() < attempt_deadline(d)) {
            engine_timer_set(&d->timer, attempt_deadline(d));
            return;
        }
        if (!d->heard && !d->settling && mtls_unaccepted_waits(d->conn, &d->pick, d->spec.retry)) {
            accepted_late(d);
            return;
        }
        handshake_failed(d, ETIMEDOUT, "TLS handshake: timed out");
        return;
    }
    engine_unwatch(&d->sock_io);
    d->spec.connecting = false;
    attempt_failed(d, ETIMEDOUT);
}

/* The application's end of the placeholder was shut down: closed (the
 * number no longer holds it), or only shut down, which changes nothing. */
static void peer_ready(struct engine_io *io, uint32_t events)
{
    (void)events;
    struct dial *d = container_of(io, struct dial, peer_io);
    engine_unwatch(&d->peer_io);
    d->peer_watched = false;
    swap_lock();
    bool closed = !placeholder_at(d->fd, &d->ph);
    if (closed)
        set_state(d->conn, CONN_OPEN, -1, 0);   /* forgotten: the socket is ours to close */
    swap_unlock();
    if (!closed)
        return;
    log_debug("%s: connect abandoned by the application", d->conn->svc->name);
    conn_flag(d->conn, FLAG_DC);
    if (d->spec.connecting)
        engine_unwatch(&d->sock_io);
    own_close(d->sock);
    placeholder_done();
    dial_free(d);
}

static void begin(struct engine_task *t)
{
    struct dial *d = container_of(t, struct dial, task);
    d->next = dials;
    if (dials)
        dials->prev = d;
    dials = d;
    d->peer_watched = engine_watch(&d->peer_io, EPOLLRDHUP);
    if (d->spec.tcp_up) {
        d->spec.connecting = false;
        connected(d);               /* the handshake starts at once */
    } else if (d->spec.connecting) {
        engine_watch(&d->sock_io, EPOLLOUT);
        engine_timer_set(&d->timer, attempt_deadline(d));
    } else {
        engine_timer_set(&d->timer, now_ns() + d->spec.delay_ns);
    }
}

/* ----------------------------------------------------------------- fork -- */

/* A fork child of a process whose connect was still under way in the
 * engine: the dial is the parent's, which puts the socket on its own
 * number only. The child's number keeps the placeholder. With the child's
 * copy of the engine's end open, neither placeholder ever reported a
 * failed connect (the parent's end closing was not the last): the parent's
 * poll and the child's waited for ever. So the child closes its copies
 * (its placeholder reports IN|OUT|ERR|HUP once the parent's dial ends and
 * closes its end too), and its connect is failed, ECONNABORTED: it cannot
 * have the connection the parent is making. No lock, no allocation. */
static void forget(struct dial *d)
{
    own_close(d->ph.peer);
    own_close(d->sock);
    set_state(d->conn, CONN_FAILED, -1, ECONNABORTED);
}

static void forget_in_child(struct engine_task *t)
{
    forget(container_of(t, struct dial, task));
}

void dial_atfork_child(void)
{
    for (struct dial *d = dials; d; d = d->next)
        forget(d);
    dials = NULL;
    dials_unsettled = 0;
}

/* ------------------------------------------------------------ hand-over -- */

/* The engine could not take it (see dial.h). A plain attempt in flight
 * goes on unobserved; an mTLS one is aborted and the connect fails: the
 * handshake is the engine's, and without it the application would write
 * in the clear to a server that wants TLS. */
static int not_handed(int fd, struct conn *c, struct pick *p, const struct dial_spec *spec)
{
    bool no_thread = errno == EAGAIN;
    int cause = no_thread ? ENOMEM : errno;
    bool tls = mtls_wanted(c);
    pick_done(p);
    log_warn("%s: cannot continue the connect in the background: %s%s", c->svc->name,
             no_thread ? "no background thread" : strerror(cause),
             spec->connecting && tls ? "; the mTLS connect fails" : "");
    if (spec->connecting && !tls) {
        conn_unref(c);
        errno = EINPROGRESS;
        return -1;
    }
    int err = spec->err;            /* a retry's wait: its last failure */
    if (spec->connecting) {
        reset_socket(fd);
        err = cause;
    }
    conn_failed(c, err, 0);
    fdtable_drop(fd);
    conn_unref(c);
    errno = err;
    return -1;
}

int dial_start(int fd, struct conn *c, struct pick *p, const struct dial_spec *spec)
{
    struct dial *d = calloc(1, sizeof(*d));
    if (!d) {
        errno = ENOMEM;
        return not_handed(fd, c, p, spec);
    }
    int sock = placeholder_install(fd, &d->ph);
    if (sock < 0) {
        free(d);
        return not_handed(fd, c, p, spec);
    }
    d->conn = c;
    d->pick = *p;
    d->spec = *spec;
    d->fd = fd;
    d->sock = sock;
    d->task.run = begin;
    d->task.forget = forget_in_child;
    d->sock_io = (struct engine_io){ .ready = sock_ready, .fd = sock };
    d->peer_io = (struct engine_io){ .ready = peer_ready, .fd = d->ph.peer };
    d->timer.fire = timer_fired;
    swap_lock();
    set_state(c, CONN_DIALING, sock, 0);
    fdtable_set_dialing(fd, true);      /* before the engine can settle it */
    swap_unlock();
    __atomic_add_fetch(&dials_unsettled, 1, __ATOMIC_ACQ_REL);
    if (!engine_post(&d->task)) {
        __atomic_sub_fetch(&dials_unsettled, 1, __ATOMIC_ACQ_REL);
        swap_lock();
        if (placeholder_restore(fd, &d->ph, sock))
            fdtable_set_dialing(fd, false);
        set_state(c, CONN_OPEN, -1, 0);
        swap_unlock();
        own_close(sock);
        placeholder_release(&d->ph);
        placeholder_done();
        free(d);
        errno = EAGAIN;
        return not_handed(fd, c, p, spec);
    }
    errno = EINPROGRESS;
    return -1;
}

void dial_revive(int fd, struct conn *c)
{
    swap_lock();
    int sock = -1;
    if (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == CONN_FAILED) {
        sock = c->sock;
        placeholder_put_back(fd, sock);
        set_state(c, CONN_OPEN, -1, 0);
    }
    swap_unlock();
    if (sock >= 0) {
        own_close(sock);
        placeholder_done();
    }
    fdtable_drop(fd);
}

/* --------------------------------------------------- the app's socket calls -- */

/* Socket options about the application's own calls on its descriptor:
 * on a relayed one they belong to its end of the pair. */
static bool own_option(int level, int name)
{
    return level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO ||
                                   name == SO_RCVLOWAT || name == SO_SNDLOWAT);
}

/* The descriptor a call on fd goes to: the real socket while the connection
 * at fd is dialing, failed or relayed, else fd. `mine`: the call is about
 * the application's own end, which a relayed descriptor's pair end answers
 * (own_option). Once a relay has closed the real socket, `after_end` says
 * whether the pair end answers (see below); else -1, ENOTCONN. Call under
 * swap_lock. */
static int target(int fd, const struct conn *c, bool mine, bool after_end)
{
    int state = c ? __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) : CONN_OPEN;
    if (state == CONN_OPEN || (state == CONN_RELAYED && mine))
        return fd;
    if (c->sock >= 0)
        return c->sock;
    if (state == CONN_RELAYED && after_end)
        return fd;
    errno = ENOTCONN;
    return -1;
}

/* A relayed connection that is over (its relay closed the real socket) is
 * still a socket to the program, as a closed TCP socket is: its addresses
 * and socket-level options are answered by the pair end, whose names carry
 * the addresses (sockname.h), and TCP or IP options set are taken (the
 * hook drops them: sockname_option_ignored). Only TCP or IP options asked
 * say ENOTCONN. asyncio sets TCP_NODELAY as it makes a transport for an
 * accepted socket, and drops the socket unclosed when that fails: each
 * client refused (a bad handshake) before the program got that far was a
 * descriptor lost. */
static bool answered_after_end(int level, bool set)
{
    return set || level == SOL_SOCKET;
}

/* A FAILED connection's errno, once; the placeholder's own reset goes
 * with it, so that the next read gives 0 and the next write EPIPE, as a
 * kernel socket's do after a failed connect. */
static int failure_take(int fd, struct conn *c)
{
    int err = conn_take_error(c);
    int own;
    socklen_t ownlen = sizeof(own);
    real_getsockopt(fd, SOL_SOCKET, SO_ERROR, &own, &ownlen);
    return err;
}

int meshim_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    struct conn *c = fdtable_get(fd);
    int rc;
    swap_lock();
    int state = c ? __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) : CONN_OPEN;
    swap_unlock();
    if (state != CONN_OPEN && level == SOL_SOCKET && name == SO_ERROR && val && len &&
        *len >= sizeof(int)) {
        /* While dialing nothing has failed yet; once failed, the errno of
         * the last attempt, once (the placeholder's own reset goes too). */
        int err = state == CONN_FAILED ? failure_take(fd, c) : 0;
        *(int *)val = err;
        *len = sizeof(int);
        rc = 0;
    } else {
        swap_lock();
        int to = target(fd, c, own_option(level, name), answered_after_end(level, false));
        rc = to < 0 ? -1 : real_getsockopt(to, level, name, val, len);
        swap_unlock();
    }
    conn_unref(c);
    return rc;
}

bool dial_pending(int fd, bool sending, int *timeout_ms)
{
    struct conn *c = fdtable_get(fd);
    if (!c)
        return false;
    swap_lock();
    bool pending = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == CONN_DIALING;     /* c->sock is the socket */
    if (pending && timeout_ms) {
        /* The program's timeouts are on the socket (setsockopt goes there
         * while the connect is in the engine). */
        struct timeval tv = { 0, 0 };
        socklen_t len = sizeof(tv);
        if (real_getsockopt(c->sock, SOL_SOCKET, sending ? SO_SNDTIMEO : SO_RCVTIMEO, &tv, &len) < 0)
            tv = (struct timeval){ 0, 0 };
        long long ms = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
        *timeout_ms = ms <= 0 ? -1 : ms > 0x7fffffff ? 0x7fffffff : (int)ms;
    }
    swap_unlock();
    conn_unref(c);
    return pending;
}

int dial_take_failure(int fd)
{
    struct conn *c = fdtable_get(fd);
    if (!c)
        return 0;
    int err = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == CONN_FAILED &&
                      __atomic_load_n(&c->error, __ATOMIC_ACQUIRE)
                  ? failure_take(fd, c)
                  : 0;
    conn_unref(c);
    return err;
}

int meshim_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    struct conn *c = fdtable_get(fd);
    swap_lock();
    int to = target(fd, c, own_option(level, name), answered_after_end(level, true));
    int rc = to < 0 ? -1 : real_setsockopt(to, level, name, val, len);
    swap_unlock();
    conn_unref(c);
    return rc;
}

int dial_getname(int fd, struct sockaddr *addr, socklen_t *len, bool peer, bool *relayed_end)
{
    struct conn *c = fdtable_get(fd);
    swap_lock();
    int to = target(fd, c, false, true);
    int rc = to < 0 ? -1 : peer ? real_getpeername(to, addr, len) : real_getsockname(to, addr, len);
    swap_unlock();
    *relayed_end = c && to == fd;   /* the pair end answered, for a TCP connection */
    conn_unref(c);
    return rc;
}
