/*
 * connect.c — what connect() and accept() do for meshed destinations.
 *
 * A connect to a service VIP, or to one of a service's `addresses`, goes to
 * an endpoint the service's balancer picks, on the application's own socket
 * (so every option it set before connect applies), skipping endpoints whose
 * circuit is open. A blocking socket makes its attempts here, in the
 * caller's thread: each bounded by connect_timeout, retried on another
 * endpoint with backoff while the retry budget allows, every outcome fed to
 * the endpoint's circuit; a signal that should interrupt it hands the rest
 * to the engine and fails with EINTR. A non-blocking socket never blocks: attempts
 * that settle inside connect() (loopback) are made here, and the first one
 * that does not, or a retry that must wait, goes on in the engine (dial.c).
 * Anything else — UDP, Unix sockets, other TCP — is passed through after one
 * table look-up.
 */
#include "mesh/connect.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "engine/health.h"
#include "engine/placeholder.h"
#include "engine/watch.h"
#include "libc/jumpguard.h"
#include "libc/ownfd.h"
#include "libc/real.h"
#include "mesh/attempt.h"
#include "mesh/conn.h"
#include "mesh/dial.h"
#include "mesh/dnscapture.h"
#include "mesh/fdtable.h"
#include "mesh/http.h"
#include "mesh/ktls.h"
#include "mesh/mtls.h"
#include "mesh/udp.h"
#include "meshim/mesh.h"
#include "observe/accesslog.h"
#include "observe/log.h"
#include "observe/metrics.h"

/* --------------------------------------------------------------- helpers -- */

static int fail(int err)
{
    errno = err;
    return -1;
}

/* A connection object for this connect(), put at fd: the table holds one
 * reference and the caller gets another (dropped with conn_unref). */
static struct conn *track(int fd, struct service *svc, uint16_t app_port)
{
    struct conn *c = conn_new(svc, app_port);
    if (c) {
        conn_ref(c);
        fdtable_set(fd, c);
    }
    return c;
}

/* A signal handler ran while this thread waited (poll and nanosleep fail
 * with EINTR whatever SA_RESTART says): true when that handler has no
 * SA_RESTART. Such a program is written for a blocking connect() that
 * fails with EINTR and goes on in the background, as the kernel's does
 * (alarm() around a connect, python's Ctrl-C). With SA_RESTART, the
 * kernel's connect would have gone on waiting, and so does the shim's.
 * The program's handlers are run by the shim's trampoline, which says
 * which kind ran (jump_wait_signals). A handler it did not run (set by a
 * raw system call) is not known: then true when some handler of an
 * asynchronous signal in the kernel has no SA_RESTART (the shim's own,
 * termsig.c, has it, as the SIG_DFL it stands in for would not
 * interrupt). */
static bool interrupting_handler(void)
{
    if (jump_wait_signals != WAIT_NO_HANDLER)
        return jump_wait_signals == WAIT_INTERRUPTING;
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        /* A fault's signal (crash handlers have no SA_RESTART) is never
         * the one that interrupted the wait. */
        if (sig != SIGKILL && sig != SIGSTOP && !signal_is_synchronous(sig) && real_sigaction(sig, NULL, &sa) == 0 &&
            sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN && !(sa.sa_flags & SA_RESTART))
            return true;
    }
    return false;
}

/* Sleeps ns; returns what is left when such a handler cut it short, else 0. */
static uint64_t sleep_ns(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
    uint64_t left = 0;
    jump_park();
    while (!jump_sleep(&ts, &ts) && errno == EINTR) {
        if (interrupting_handler()) {
            left = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + 1;
            break;
        }
    }
    jump_unpark();
    return left;
}

/* ------------------------------------------------------- blocking socket -- */

/* One attempt on a blocking socket, bounded by timeout_ms: the socket is
 * non-blocking for the attempt, then gets its flags back. Returns 0, the
 * errno of the failure, or EINTR when a handler without SA_RESTART cut the
 * wait short (interrupting_handler): the connect is still in flight. */
static int attempt_blocking(int fd, const struct sockaddr *sa, socklen_t len, int flags,
                            uint32_t timeout_ms)
{
    real_fcntl(fd, F_SETFL, (void *)(long)(flags | O_NONBLOCK));
    int err = real_connect(fd, sa, len) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
        uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        for (;;) {
            uint64_t now = now_ns();
            int left = now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
            jump_park();
            int n = jump_poll(&p, 1, left);
            jump_unpark();
            if (n > 0) {
                socklen_t elen = sizeof(err);
                if (real_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                    err = errno;
                break;
            }
            if (n == 0) {
                err = ETIMEDOUT;
                break;
            }
            if (errno != EINTR || interrupting_handler()) {
                err = errno;
                break;
            }
        }
    }
    real_fcntl(fd, F_SETFL, (void *)(long)flags);
    return err;
}

/* A signal interrupted a blocking connect (attempt_blocking, sleep_ns):
 * connect() fails with EINTR, and the connect goes on in the engine as a
 * non-blocking one would, with the retries left. A program that then waits
 * for the socket to be writable (python) gets its outcome; one that closes
 * it ends it. The placeholder keeps the application's blocking flags, which
 * the socket gets back when the engine is done. */
static int interrupted(int fd, struct pick *p, struct conn *c, const struct dial_spec *spec, int flags)
{
    real_fcntl(fd, F_SETFL, (void *)(long)(flags | O_NONBLOCK));    /* the engine's, from here */
    dial_start(fd, c, p, spec);     /* -1, and EINPROGRESS when the engine has it */
    if (errno != EINPROGRESS)
        return -1;
    real_fcntl(fd, F_SETFL, (void *)(long)flags);       /* the placeholder's */
    return fail(EINTR);
}

/* The per-attempt bound: connect_timeout, or SO_SNDTIMEO when shorter
 * (blocking sockets only: it means nothing to a non-blocking one). */
static uint32_t attempt_timeout_ms(int fd, const struct service *svc, bool blocking)
{
    uint32_t cfg_ms = service_cfg(svc)->connect_timeout_ms;
    uint32_t ms = cfg_ms ? cfg_ms : UINT32_MAX;
    struct timeval tv;
    socklen_t len = sizeof(tv);
    if (blocking && real_getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0 &&
        (tv.tv_sec || tv.tv_usec)) {
        uint64_t snd = (uint64_t)tv.tv_sec * 1000 + (uint64_t)(tv.tv_usec + 999) / 1000;
        if (snd < ms)
            ms = (uint32_t)snd;
    }
    return ms == UINT32_MAX ? 120000 : ms;
}

/* Every attempt of this connect() failed, the last with err at `last`, or
 * none could be made: the record ends, the application gets the errno. */
static int all_failed(int fd, struct pick *p, struct conn *c, int err, const char *last)
{
    unsigned attempts = c->attempts;
    conn_failed(c, attempts ? err : 0, p->flags);
    fdtable_drop(fd);
    conn_unref(c);
    if (attempts == 0) {
        err = no_endpoint(p);
        pick_done(p);
        return fail(err);
    }
    pick_done(p);
    /* A timed-out attempt's SYN is still in flight: abort it, or the kernel
     * could complete a connection the application was told had failed. */
    reset_socket(fd);
    attempts_failed(p->svc, attempts, last, err);
    return fail(err);
}

/* A blocking socket: attempts in the caller's thread, on its own socket,
 * each on another endpoint where one is left, with backoff and the budget. */
static int connect_blocking(int fd, struct pick *p, struct conn *c, uint16_t app_port, int flags)
{
    struct service *svc = p->svc;
    /* The attempt, the retries made and the last failure: what the engine
     * takes over when a signal cuts the connect short (interrupted). */
    struct dial_spec spec = { .timeout_ms = attempt_timeout_ms(fd, svc, true), .app_port = app_port,
                              .err = ECONNREFUSED };
    budget_first(svc);
    watch_wait(svc, spec.timeout_ms);
    for (unsigned retry = 0;; retry++) {
        spec.retry = retry;
        if (retry > 0) {
            reset_socket(fd);
            spec.delay_ns = sleep_ns(retry_delay_ns(svc, retry));
            if (spec.delay_ns)
                return interrupted(fd, p, c, &spec, flags);
        }
        struct sockaddr_storage ss;
        socklen_t sslen;
        struct endpoint *ep;
        while (!(ep = pick_target(p, app_port, &ss, &sslen)) &&
               pick_may_wait(p, conn_deadline_ns(c, spec.timeout_ms))) {
            /* A half-open probe is out: its outcome decides (pick_may_wait). */
            spec.delay_ns = sleep_ns(PICK_WAIT_STEP_NS);
            if (spec.delay_ns)
                return interrupted(fd, p, c, &spec, flags);
        }
        if (!ep)
            break;
        uint64_t started = conn_attempt(c, ep);
        conn_flag(c, p->flags);
        int err = attempt_blocking(fd, (struct sockaddr *)&ss, sslen, flags, spec.timeout_ms);
        if (err == EINTR) {
            spec.connecting = true;
            spec.started_ns = started;
            return interrupted(fd, p, c, &spec, flags);
        }
        struct tls_identity *id = NULL;
        SSL *ssl = NULL;
        int net = -1;
        bool late = false;
        char why_tls[TLS_WHY_MAX];
        const char *why = NULL;
        if (err == 0 && mtls_wanted(c)) {
            err = mtls_handshake_blocking(fd, c, p, retry, started, spec.timeout_ms, &id, &ssl, &net, &late,
                                          why_tls, sizeof(why_tls));
            why = err ? why_tls : NULL;
        }
        attempt_record(svc, ep, app_port, err, started);
        if (err == 0) {
            conn_connected(c);
            int rc = ssl ? mtls_relay_blocking(fd, c, id, ssl, net, late) : 0;
            conn_unref(c);
            pick_done(p);
            return rc;
        }
        spec.err = err;
        attempt_failed_log(c, ep, app_port, err, why, spec.last, sizeof(spec.last));
        if (!retry_next(p, err, retry))
            break;
    }
    return all_failed(fd, p, c, spec.err, spec.last);
}

/* A signal handler's longjmp left a blocking connect() while it waited
 * (jumpguard.h: wget --timeout's alarm): the program has given it up, as it
 * would the kernel's. The socket gets its flags back and is reset (a SYN
 * in flight, or a handshake half made, must not become a connection the
 * program was never given), the record ends "abandoned" (DC) and the pick
 * lets go of its endpoints. Left anywhere but in a wait, the frame's state
 * is lost instead (jumpguard.h says why). */
struct left_connect {
    struct jump_guard guard;
    int fd, flags;
    struct pick *p;
    struct conn *c;
};

static void connect_left(void *arg)
{
    struct left_connect *l = arg;
    if (!jump_parked())
        return;
    int saved = errno;
    real_fcntl(l->fd, F_SETFL, (void *)(long)l->flags);
    reset_socket(l->fd);
    conn_flag(l->c, l->p->flags | FLAG_DC);
    fdtable_drop(l->fd);
    conn_unref(l->c);
    pick_done(l->p);
    errno = saved;
}

/* connect_blocking, after a fault_delay's wait, with that guard. */
static int connect_blocking_guarded(int fd, struct pick *p, struct conn *c, uint16_t app_port, int flags,
                                    uint64_t delay_ns)
{
    struct left_connect left = { .fd = fd, .flags = flags, .p = p, .c = c };
    jump_guard_push(&left.guard, connect_left, &left);
    if (delay_ns)
        sleep_ns(delay_ns);
    int rc = connect_blocking(fd, p, c, app_port, flags);
    jump_guard_pop(&left.guard);
    return rc;
}

/* --------------------------------------------------- non-blocking socket -- */

/* Right after connect() returned EINPROGRESS: has it finished already? (On
 * loopback the handshake, or the refusal, happens inside connect().)
 * Returns 0, the errno of the failure, or EINPROGRESS. */
static int settled(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLOUT };
    if (poll(&pfd, 1, 0) <= 0)
        return EINPROGRESS;
    if (!(pfd.revents & (POLLERR | POLLHUP)))
        return 0;
    int err = real_getsockopt_int(fd, SOL_SOCKET, SO_ERROR);
    return err > 0 ? err : ECONNREFUSED;
}

/* A non-blocking socket: never blocks the caller. Attempts that settle at
 * once are made here; the first one that does not, or a retry that must
 * wait for its backoff, goes on in the engine (dial.c) behind a placeholder,
 * and connect() returns EINPROGRESS. */
static int connect_nonblocking(int fd, struct pick *p, struct conn *c, uint16_t app_port,
                               uint64_t delay_ns)
{
    struct service *svc = p->svc;
    struct dial_spec spec = { .timeout_ms = attempt_timeout_ms(fd, svc, false),
                              .app_port = app_port, .err = ECONNREFUSED };
    budget_first(svc);
    /* Endpoints from DNS that has not answered yet: the engine waits for
     * them (up to connect_timeout), not the caller. */
    if (!delay_ns && service_waiting(svc))
        delay_ns = 1;
    for (unsigned retry = 0;; retry++) {
        spec.retry = retry;
        if (delay_ns) {
            /* Waits in the engine, which then makes the next attempt. */
            spec.delay_ns = delay_ns;
            return dial_start(fd, c, p, &spec);
        }
        struct sockaddr_storage ss;
        socklen_t sslen;
        struct endpoint *ep = pick_target(p, app_port, &ss, &sslen);
        if (!ep && pick_may_wait(p, conn_deadline_ns(c, spec.timeout_ms))) {
            /* A half-open probe is out: the engine waits for its outcome. */
            spec.delay_ns = PICK_WAIT_STEP_NS;
            return dial_start(fd, c, p, &spec);
        }
        if (!ep)
            break;
        uint64_t started = conn_attempt(c, ep);
        conn_flag(c, p->flags);
        int err = real_connect(fd, (struct sockaddr *)&ss, sslen) == 0 ? 0 : errno;
        if (err == EINPROGRESS)
            err = settled(fd);
        spec.tcp_up = err == 0;
        if (err == 0 && mtls_wanted(c))
            err = EINPROGRESS;      /* the handshake is the engine's */
        if (err == EINPROGRESS || err == EINTR) {
            spec.connecting = true;
            spec.started_ns = started;
            return dial_start(fd, c, p, &spec);
        }
        attempt_record(svc, ep, app_port, err, started);
        if (err == 0) {
            conn_connected(c);
            conn_unref(c);
            pick_done(p);
            return fail(EINPROGRESS);     /* what the kernel said; it is connected */
        }
        spec.err = err;
        attempt_failed_log(c, ep, app_port, err, NULL, spec.last, sizeof(spec.last));
        if (!retry_next(p, err, retry))
            break;
        reset_socket(fd);
        delay_ns = retry_delay_ns(svc, retry + 1);
    }
    return all_failed(fd, p, c, spec.err, spec.last);
}

/* ---------------------------------------------------------- meshim_connect -- */

/* connect() on a descriptor whose connection is already meshed. Returns
 * true when that answers the call (*rc set), false to mesh it anew. */
static bool connect_again(int fd, struct conn *c, int family, uint16_t port, int *rc)
{
    struct sockaddr_storage ss;
    /* Under swap_lock: the engine may be putting the socket back just now
     * (the application can see EPOLLOUT before the state says OPEN). */
    swap_lock();
    int state = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
    swap_unlock();
    /* The kernel answers the first connect() after a non-blocking one
     * completed with 0, then EISCONN; when the engine completed it, its
     * own call took that 0 (dial.c). A loop that polls with connect()
     * until it returns 0 would otherwise read EISCONN as a failure. */
    if ((state == CONN_RELAYED || state == CONN_OPEN) &&
        __atomic_exchange_n(&c->connect_owed, false, __ATOMIC_RELAXED)) {
        *rc = 0;
        return true;
    }
    switch (state) {
    case CONN_DIALING:
        *rc = fail(EALREADY);
        return true;
    case CONN_RELAYED:
        *rc = fail(EISCONN);
        return true;
    case CONN_FAILED: {
        /* The kernel reports a failed connect's error once, then lets the
         * socket connect again: put the real socket back and start over. */
        int err = conn_take_error(c);
        if (err) {
            *rc = fail(err);
            return true;
        }
        dial_revive(fd, c);
        return false;
    }
    default:
        if (c->http) {
            *rc = fail(EISCONN);
            return true;
        }
        /* Polling a non-blocking connect with connect(), as some libraries
         * do: same endpoint, so the kernel answers EALREADY / EISCONN. */
        if (!c->ep)
            return false;
        *rc = real_connect(fd, (struct sockaddr *)&ss, endpoint_addr(c->ep, family, port, &ss));
        return true;
    }
}

/* Is fd a TCP socket? socket() told us, unless the descriptor came another
 * way; errno is kept. */
static bool is_tcp(int fd)
{
    enum fd_kind kind = fdtable_kind(fd);
    if (kind != FD_UNKNOWN)
        return kind == FD_TCP;
    int saved = errno;
    bool tcp = real_getsockopt_int(fd, SOL_SOCKET, SO_PROTOCOL) == IPPROTO_TCP;
    errno = saved;
    return tcp;
}

/* A VIP on a port its service does not mesh (registry_vip_closed):
 * ECONNREFUSED, saying why. */
static bool vip_closed(const struct registry *reg, const struct netaddr *dst)
{
    struct service *svc = registry_vip_closed(reg, dst);
    if (svc)
        log_warn("%s: port %u is not one of the service's ports: connection refused", svc->name,
                 dst->port);
    return svc != NULL;
}

/* mTLS without an identity of our own (its files missing or unreadable,
 * a Secret not mounted yet, expired): every endpoint would fail alike, and
 * the fault is this process's. No attempt is made, so no endpoint is
 * blamed (its circuit, the host's table, which other processes trust) and
 * no retry is spent: the connect is refused (ECONNREFUSED), saying why;
 * or, when the process is out of descriptors (it could not load or read
 * what it needs: the next connect with one free tries again), it fails as
 * the kernel's calls fail there (EMFILE). 0 when ready. Its own frame: the
 * reason's buffer is not on every connect's stack. */
static int identity_ready(struct service *svc, uint16_t port)
{
    char why[TLS_WHY_MAX];
    if (mtls_identity_ready(why, sizeof(why)))
        return 0;
    int err = ownfd_shortage() ? EMFILE : ECONNREFUSED;
    log_warn("%s: %s: no usable mTLS identity in this process: %s", svc->name,
             err == EMFILE ? "no descriptor free" : "connection refused", why);
    conn_refused(svc, port, RESULT_TLS_ERROR, 0);
    return err;
}

/* A connect to a service, at the application's port: its identity read,
 * its attempts and handshakes made (a blocking socket's in this thread). */
static int connect_service(int fd, const struct sockaddr *addr, socklen_t len, struct service *svc,
                           uint16_t port, int flags)
{
    /* A split service hands each new connection to one of its targets,
     * whose endpoints and policies then apply; an HTTP service splits
     * each request instead (http.c). */
    bool http = http_wanted(svc);
    if (!http)
        svc = registry_split(svc, rng_thread());
    const struct service_config *cfg = service_cfg(svc);
    health_start(svc);
    watch_start();
    if (__atomic_load_n(&svc->active, __ATOMIC_RELAXED) >= cfg->max_connections) {
        log_warn("%s: max_connections (%u) reached, connection refused", svc->name,
                 cfg->max_connections);
        conn_refused(svc, port, RESULT_OVERFLOW, FLAG_UO);
        return fail(ECONNREFUSED);
    }
    /* An HTTP service draws its faults per request (http.c). */
    if (!http && fault_drawn(cfg->fault_abort)) {
        log_warn("%s: connection failed on purpose (fault_abort)", svc->name);
        conn_refused(svc, port, RESULT_FAULT, FLAG_FI);
        return fail(ECONNREFUSED);
    }
    int unready = !http && cfg->tls == TLS_MTLS ? identity_ready(svc, port) : 0;
    if (unready)
        return fail(unready);
    uint64_t delay_ns =
        !http && fault_drawn(cfg->fault_delay_percent) ? (uint64_t)cfg->fault_delay_ms * 1000000u : 0;

    int saved = errno;
    bool v6only = addr->sa_family == AF_INET6 && real_getsockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY) == 1;
    errno = saved;
    /* One connection record for the whole connect(), whatever its attempts. */
    struct conn *c = track(fd, svc, port);
    if (!c)
        return fail(ENOMEM);
    if (http) {
        c->http = true;
        if (http_connect(fd, c, svc, addr, len) == 0)
            return 0;
        int err = errno;
        fdtable_drop(fd);
        return fail(err);
    }
    struct pick p;
    pick_init(&p, svc, addr->sa_family);
    p.v6only = v6only;
    conn_flag(c, delay_ns ? FLAG_DI : 0);
    if (flags & O_NONBLOCK)
        return connect_nonblocking(fd, &p, c, port, delay_ns);
    return connect_blocking_guarded(fd, &p, c, port, flags, delay_ns);
}

/* A connect to a service does file reads under the identity's lock, and
 * poll, read and write in its attempts and handshakes: cancellation points
 * all. A thread cancelled in one (pthread_cancel) would leave that lock
 * held, or its connection counted open for max_connections with its pick
 * and TLS object, for good. So the shim works with cancellation held off;
 * a request that came meanwhile acts as the hook returns (connect() is a
 * cancellation point, as the kernel's).
 *
 * The connect also holds the program's asynchronous signals (jumpguard.h,
 * signals_hold), and lets them in only while it waits: a handler that
 * jumps out of the connect (wget -T) then always leaves a wait, where the
 * repairs find the shim's state whole. Left from its work the jump could
 * leave a lock held, the shim's or OpenSSL's or malloc's, and the next
 * connect hung for good (t_jump's storms, blocking and non-blocking).
 * Held, a signal costs nothing until one comes. (A blocking handshake
 * also holds SIGPIPE: mtls.c.) */
struct held {
    struct jump_guard guard;    /* a longjmp out of the connect gives both back */
    int cancel_state;
    struct signals_held signals;
};

static void held_left(void *arg)
{
    struct held *h = arg;
    signals_left(&h->signals);
    pthread_setcancelstate(h->cancel_state, NULL);
}

static void held_enter(struct held *h)
{
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &h->cancel_state);
    signals_hold(&h->signals);
    jump_guard_push(&h->guard, held_left, h);
}

/* Last: a handler of a signal that came meanwhile runs in signals_release,
 * and may jump from there, with the held work done. errno is left as it is. */
static void held_leave(struct held *h)
{
    jump_guard_pop(&h->guard);
    pthread_setcancelstate(h->cancel_state, NULL);
    signals_release(&h->signals);
}

static int connect_held(int fd, const struct sockaddr *addr, socklen_t len, struct service *svc,
                        uint16_t port)
{
    int flags = real_fcntl(fd, F_GETFL, NULL);
    if (flags < 0)
        return -1;
    struct held held;
    held_enter(&held);
    int rc = connect_service(fd, addr, len, svc, port, flags);
    held_leave(&held);
    return rc;
}

int meshim_connect(struct registry *reg, int fd, const struct sockaddr *addr, socklen_t len)
{
    struct netaddr dst;
    struct service *svc;
    if (!addr || !netaddr_from_sockaddr(addr, len, &dst))
        return real_connect(fd, addr, len);
    if (!(svc = registry_match(reg, &dst))) {
        dnscapture_note(reg, fd, addr, len);    /* a name server's port: its answers are looked at */
        return vip_closed(reg, &dst) ? fail(ECONNREFUSED) : real_connect(fd, addr, len);
    }

    struct conn *existing = fdtable_get(fd);
    if (existing) {
        int rc = 0;
        bool answered = registry_routes_to(svc, existing->svc) &&
                        connect_again(fd, existing, addr->sa_family, dst.port, &rc);
        conn_unref(existing);
        if (answered)
            return rc;
    }

    /* TCP only; a datagram socket to a VIP is given an endpoint (udp.h). */
    if (!is_tcp(fd))
        return udp_connect(reg, fd, addr, len);
    return connect_held(fd, addr, len, svc, dst.port);
}

int meshim_fastopen(struct registry *reg, int fd, const struct sockaddr *addr, socklen_t len)
{
    struct netaddr dst;
    if (!netaddr_from_sockaddr(addr, len, &dst))
        return 1;
    if (!registry_match(reg, &dst))
        return vip_closed(reg, &dst) ? fail(ECONNREFUSED) : 1;
    if (!is_tcp(fd))
        return 1;
    struct conn *existing = fdtable_get(fd);
    if (existing) {
        conn_unref(existing);   /* connected through the mesh already: just the data */
        return 0;
    }
    return meshim_connect(reg, fd, addr, len) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- accept -- */

static uint16_t local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    struct netaddr a;
    if (real_getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        !netaddr_from_sockaddr((struct sockaddr *)&ss, len, &a))
        return 0;
    return a.port;
}

/* ------------------------------------------------ reads and writes meanwhile -- */

int meshim_data_wait(int fd, int msg_flags, bool sending)
{
    /* A non-blocking call is the placeholder's (EAGAIN, as the socket's in
     * SYN_SENT): asked first, before the table's and the swaps' locks. */
    if (msg_flags & MSG_DONTWAIT)
        return 0;
    int fl = real_fcntl(fd, F_GETFL, NULL);
    int timeout_ms;
    if (fl < 0 || (fl & O_NONBLOCK) || !dial_pending(fd, sending, &timeout_ms))
        return 0;
    /* The wait is a held section's, parked: handlers run in it, and a jump
     * out of it leaves nothing of the shim's held. Cancellation waits for
     * the call itself, a cancellation point, right after. */
    uint64_t deadline = timeout_ms < 0 ? 0 : now_ns() + (uint64_t)timeout_ms * 1000000u;
    int err = 0;
    struct held held;           /* as a connect's: a jump out of the wait gives both back */
    held_enter(&held);
    do {
        int left = -1;
        if (deadline) {
            uint64_t now = now_ns();
            if (now >= deadline) {
                err = EAGAIN;       /* SO_SNDTIMEO/SO_RCVTIMEO ran out, as the kernel's */
                break;
            }
            left = (int)((deadline - now + 999999) / 1000000);
        }
        /* The placeholder is never writable: the engine's end closing
         * (connected, or failed) or reading its filler out (relayed) wakes
         * this, and a swap before it leaves the socket here, writable. */
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        jump_park();
        int n = jump_poll(&p, 1, left);
        jump_unpark();
        /* A signal: with a timeout the kernel's wait fails with EINTR
         * whatever the handler's SA_RESTART; without, SA_RESTART goes on. */
        if (n < 0 && errno == EINTR && (deadline || interrupting_handler())) {
            err = EINTR;
            break;
        }
    } while (dial_pending(fd, sending, NULL));
    held_leave(&held);
    return err;
}

void meshim_listening(struct registry *reg, int fd)
{
    if (!reg->cfg->n_inbound)
        return;
    int saved = errno;
    const struct inbound_config *in = registry_inbound(reg, local_port(fd));
    if (in) {
        /* The identity is read under its locks: held as a connect is. */
        struct held held;
        held_enter(&held);
        inbound_listening(in);
        held_leave(&held);
    }
    errno = saved;
}

/* accept or accept4, as the program called it; the new number's stale
 * slot, left by a close we did not see, goes (fdtable_fresh). */
static int accept_as_called(int fd, struct sockaddr *addr, socklen_t *len, int flags, bool use_accept4)
{
    int cfd = use_accept4 ? real_accept4(fd, addr, len, flags) : real_accept(fd, addr, len);
    if (cfd >= 0)
        fdtable_fresh(cfd, FD_UNKNOWN);
    return cfd;
}

int meshim_accept(struct registry *reg, int fd, struct sockaddr *addr, socklen_t *len, int flags,
                  bool use_accept4)
{
    const struct inbound_config *in = NULL;
    if (reg->cfg->n_inbound) {
        int saved = errno;
        in = registry_inbound(reg, local_port(fd));
        errno = saved;
        if (in && in->tls == INBOUND_OFF && in->protocol != PROTO_HTTP)
            in = NULL;
    }
    /* An event loop's listening socket is non-blocking: its connections may
     * go to kernel TLS (relay.h says why only theirs); an http port's stay
     * in the relay, which reads their requests. */
    bool event_loop = in && in->protocol != PROTO_HTTP && ktls_offered() &&
                      ((use_accept4 && (flags & SOCK_NONBLOCK)) || (real_fcntl(fd, F_GETFL, NULL) & O_NONBLOCK));
    if (!in)
        return accept_as_called(fd, addr, len, flags, use_accept4);
    for (;;) {
        /* The client's address is asked for whether or not the program
         * asks: its refusal and record name it (mtls.c peer_text). */
        struct sockaddr_storage client;
        socklen_t client_len = sizeof(client);
        int cfd = accept_as_called(fd, (struct sockaddr *)&client, &client_len, flags, use_accept4);
        if (cfd < 0)
            return cfd;
        /* A client that cannot even be handed to a relay is closed and
         * never reaches the application: accept goes on with the next one
         * (or EAGAIN). The identity is read under its lock, with
         * cancellation held off (see connect_held); a request acts at the
         * program's next cancellation point, once it has the descriptor.
         * The hand-off (a socketpair moved high under ownfd's lock, the
         * fd table, the relay's allocations) also holds the program's
         * asynchronous signals, as a blocking connect's work does: a
         * handler that jumped out of it (alarm() around accept in older
         * servers) left a lock held, and the next accept hung for good
         * (t_jump's accept storm). Held, the signal comes as the hand-off
         * ends; a jump then loses the descriptor, as one right after the
         * kernel's accept would. The wait in accept itself is not held. */
        int cancel_state;
        struct signals_held held;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
        signals_hold(&held);
        int handed = inbound_accept(cfd, in, use_accept4 ? flags : 0, event_loop, (struct sockaddr *)&client,
                                    client_len);
        pthread_setcancelstate(cancel_state, NULL);
        signals_release(&held);
        if (handed < 0)
            continue;
        if (addr && len) {          /* as the kernel: truncated to the room given, the full length said */
            memcpy(addr, &client, *len < client_len ? *len : client_len);
            *len = client_len;
        }
        return cfd;
    }
}
