/*
 * connect.c — what connect() and accept() do for meshed destinations.
 *
 * A connect to a service VIP, or to one of a service's `addresses`, goes to
 * an endpoint the service's balancer picks, on the application's own socket
 * (so every option it set before connect applies), skipping endpoints whose
 * circuit is open. A blocking socket makes its attempts here, in the
 * caller's thread: each bounded by connect_timeout, retried on another
 * endpoint with backoff while the retry budget allows, every outcome fed to
 * the endpoint's circuit. A non-blocking socket never blocks: attempts
 * that settle inside connect() (loopback) are made here, and the first one
 * that does not, or a retry that must wait, goes on in the engine (dial.c).
 * Anything else — UDP, Unix sockets, other TCP — is passed through after one
 * table look-up.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "attempt.h"
#include "conn.h"
#include "dial.h"
#include "fdtable.h"
#include "health.h"
#include "hooks.h"
#include "log.h"
#include "mesh.h"
#include "metrics.h"
#include "mtls.h"
#include "placeholder.h"
#include "watch.h"

/* ------------------------------------------------------ attempt helpers -- */

static bool reachable(const struct pick *p, size_t i)
{
    const struct netaddr *a = &p->eps->ep[i]->addr;
    if (p->family == AF_INET)
        return a->family == AF_INET;
    return a->family == AF_INET6 || !p->v6only;
}

static bool usable(size_t i, void *ctx)
{
    const struct pick *p = ctx;
    if (p->skip_tried && i < 64 && (p->tried >> i & 1))
        return false;
    const struct endpoint *ep = p->eps->ep[i];
    return reachable(p, i) && !ep->health.down && !circuit_blocked(&ep->circuit, p->now);
}

static int socket_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);
    if (getsockopt(fd, level, name, &v, &len) < 0)
        return -1;
    return v;
}

static int fail(int err)
{
    errno = err;
    return -1;
}

void pick_init(struct pick *p, struct service *svc, int family)
{
    /* The set is taken by the first pick_target, under the lock it takes
     * anyway (one lock per connect, not two). */
    *p = (struct pick){ .svc = svc, .family = family };
}

void pick_done(struct pick *p)
{
    endpoint_set_unref(p->eps);
    p->eps = NULL;
}

struct endpoint *pick_target(struct pick *p, uint16_t app_port, struct sockaddr_storage *ss,
                             socklen_t *len)
{
    struct service *svc = p->svc;
    struct endpoint_set *old = NULL;
    pthread_mutex_lock(&svc->lock);
    if (svc->eps != p->eps) {
        /* The first pick, or the service has a new set (discovery, a
         * reload): use it. What this connect tried is forgotten with the
         * old indexes. */
        old = p->eps;
        p->eps = svc->eps;
        __atomic_add_fetch(&p->eps->refs, 1, __ATOMIC_RELAXED);
        p->tried = 0;
    }
    p->now = now_ns();
    p->skip_tried = true;
    ssize_t i = balancer_pick(&p->eps->balancer, usable, p, rng_thread(), p->now);
    if (i < 0 && p->tried) {
        p->skip_tried = false;
        i = balancer_pick(&p->eps->balancer, usable, p, rng_thread(), p->now);
    }
    bool probe;
    struct endpoint *ep = i >= 0 ? p->eps->ep[i] : NULL;
    if (ep) {
        circuit_admit(&ep->circuit, p->now, &probe);
        p->last = (size_t)i;
    }
    pthread_mutex_unlock(&svc->lock);
    endpoint_set_unref(old);
    if (ep)
        *len = endpoint_addr(ep, p->family, app_port, ss);
    return ep;
}

void pick_tried(struct pick *p)
{
    if (p->last < 64)
        p->tried |= (uint64_t)1 << p->last;
}

/* Circuits not closed among the service's endpoints now (under its lock). */
static size_t ejected_now(const struct service *svc)
{
    size_t n = 0;
    for (size_t i = 0; i < svc->eps->n; i++)
        n += svc->eps->ep[i]->circuit.state != CIRCUIT_CLOSED;
    return n;
}

void attempt_record(struct service *svc, struct endpoint *ep, int err, uint64_t started)
{
    uint64_t now = now_ns();
    struct circuit *c = &ep->circuit;
    pthread_mutex_lock(&svc->lock);
    enum circuit_state before = c->state;
    bool ejected = false;
    if (!err) {
        circuit_success(c, now);
        if (started)
            balancer_observe(&ep->target, now - started, now);
    } else {
        bool may = breaker_may_eject(ejected_now(svc), svc->eps->n, svc->breaker.max_eject_percent);
        ejected = circuit_failure(c, &svc->breaker, now, may);
    }
    uint64_t for_ns = c->open_until_ns - now;
    pthread_mutex_unlock(&svc->lock);
    metrics_attempt(svc, ep, metrics_result_of(err), !err && started ? now - started : 0);
    if (ejected || (!err && before != CIRCUIT_CLOSED))
        metrics_ejected(svc, ep, ejected);
    if (ejected)
        log_warn("%s: endpoint %s ejected for %llus after %s", svc->name, ep->label,
                 (unsigned long long)(for_ns / 1000000000u),
                 before == CIRCUIT_CLOSED ? "consecutive failures" : "a failed probe");
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

int no_endpoint(const struct pick *p)
{
    size_t reach = 0, n = p->eps ? p->eps->n : 0;
    for (size_t i = 0; i < n; i++)
        reach += reachable(p, i);
    const struct service_config *cfg = service_cfg(p->svc);
    if (n == 0 && service_waiting(p->svc))
        log_warn("%s: no endpoints yet: %s %s has not been answered", p->svc->name,
                 cfg->srv ? "srv" : "dns", cfg->srv ? cfg->srv : cfg->dns);
    else if (n == 0)
        log_warn("%s: no endpoints (the service's sources list none)", p->svc->name);
    else if (reach == 0)
        log_warn("%s: no endpoint reachable from an %s socket", p->svc->name,
                 p->family == AF_INET ? "IPv4" : "IPv6");
    else
        log_warn("%s: no healthy endpoint: all %zu are ejected or failing health checks",
                 p->svc->name, reach);
    return ECONNREFUSED;
}

socklen_t endpoint_addr(const struct endpoint *ep, int family, uint16_t app_port,
                        struct sockaddr_storage *ss)
{
    return netaddr_to_sockaddr(&ep->addr, ep->addr.port ? ep->addr.port : app_port, family, ss);
}

void endpoint_text(const struct endpoint *ep, uint16_t app_port, char *buf, size_t len)
{
    struct netaddr to = ep->addr;
    to.port = to.port ? to.port : app_port;
    netaddr_format(&to, buf, len);
}

bool retryable(int err)
{
    return err == ECONNREFUSED || err == ETIMEDOUT || err == EHOSTUNREACH || err == ENETUNREACH ||
           err == ECONNRESET || err == ECONNABORTED || err == EHOSTDOWN || err == ENETDOWN;
}

void budget_first(struct service *svc)
{
    pthread_mutex_lock(&svc->lock);
    budget_attempt(&svc->budget, now_ns());
    pthread_mutex_unlock(&svc->lock);
}

bool budget_retry(struct service *svc)
{
    pthread_mutex_lock(&svc->lock);
    bool allowed = budget_try_retry(&svc->budget, now_ns());
    pthread_mutex_unlock(&svc->lock);
    if (!allowed)
        log_warn("%s: retry budget (%g%%) exhausted, not retrying", svc->name,
                 service_cfg(svc)->retry_budget * 100);
    return allowed;
}

uint64_t retry_delay_ns(const struct service *svc, unsigned retry)
{
    const struct service_config *cfg = service_cfg(svc);
    return backoff_delay_ns((uint64_t)cfg->retry_backoff_ms * 1000000u,
                            (uint64_t)cfg->retry_backoff_max_ms * 1000000u, retry - 1,
                            rng_thread());
}

void reset_socket(int fd)
{
    struct sockaddr sa = { .sa_family = AF_UNSPEC };
    real_connect(fd, &sa, sizeof(sa));
}

void attempts_failed(const struct service *svc, unsigned attempts, const char *last, int err)
{
    (void)err;
    log_warn("%s: connect failed after %u attempt%s; last: %s", svc->name, attempts,
             attempts == 1 ? "" : "s", last);
}

bool retry_next(struct pick *p, int err, unsigned retry)
{
    pick_tried(p);
    bool again = retryable(err) && retry < service_cfg(p->svc)->retries && budget_retry(p->svc);
    if (again)
        metrics_retry(p->svc);
    return again;
}

void attempt_failed_log(const struct service *svc, const struct endpoint *ep, uint16_t app_port,
                        unsigned n, int err, const char *why, char *last, size_t len)
{
    char addr[64];
    endpoint_text(ep, app_port, addr, sizeof(addr));
    why = why ? why : strerror(err);
    snprintf(last, len, "%s: %s", addr, why);
    log_info("%s: attempt %u to %s failed: %s", svc->name, n, addr, why);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------- blocking socket -- */

/* One attempt on a blocking socket, bounded by timeout_ms: the socket is
 * non-blocking for the attempt, then gets its flags back. A signal does not
 * cut the attempt short. Returns 0 or the errno of the failure. */
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
            int n = poll(&p, 1, left);
            if (n > 0) {
                socklen_t elen = sizeof(err);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                    err = errno;
                break;
            }
            if (n == 0) {
                err = ETIMEDOUT;
                break;
            }
            if (errno != EINTR) {
                err = errno;
                break;
            }
        }
    }
    real_fcntl(fd, F_SETFL, (void *)(long)flags);
    return err;
}

/* The per-attempt bound: connect_timeout, or SO_SNDTIMEO when shorter
 * (blocking sockets only: it means nothing to a non-blocking one). */
static uint32_t attempt_timeout_ms(int fd, const struct service *svc, bool blocking)
{
    uint32_t cfg_ms = service_cfg(svc)->connect_timeout_ms;
    uint32_t ms = cfg_ms ? cfg_ms : UINT32_MAX;
    struct timeval tv;
    socklen_t len = sizeof(tv);
    if (blocking && getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0 &&
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
    conn_failed(c, attempts ? err : 0, 0);
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
    uint32_t timeout_ms = attempt_timeout_ms(fd, svc, true);
    int err = 0;
    char last[LAST_MAX] = "";
    budget_first(svc);
    if (service_waiting(svc))
        watch_wait(svc, now_ns() + (uint64_t)timeout_ms * 1000000u);
    for (unsigned retry = 0;; retry++) {
        if (retry > 0) {
            sleep_ns(retry_delay_ns(svc, retry));
            reset_socket(fd);
        }
        struct sockaddr_storage ss;
        socklen_t sslen;
        struct endpoint *ep = pick_target(p, app_port, &ss, &sslen);
        if (!ep)
            break;
        uint64_t started = conn_attempt(c, ep);
        err = attempt_blocking(fd, (struct sockaddr *)&ss, sslen, flags, timeout_ms);
        struct tls_identity *id = NULL;
        SSL *ssl = NULL;
        int net = -1;
        char why_tls[TLS_WHY_MAX];
        const char *why = NULL;
        if (err == 0 && mtls_wanted(c)) {
            err = mtls_handshake_blocking(fd, c, timeout_ms, &id, &ssl, &net, why_tls,
                                          sizeof(why_tls));
            why = err ? why_tls : NULL;
        }
        attempt_record(svc, ep, err, started);
        if (err == 0) {
            conn_connected(c);
            int rc = ssl ? mtls_relay_blocking(fd, c, id, ssl, net) : 0;
            conn_unref(c);
            pick_done(p);
            return rc;
        }
        attempt_failed_log(svc, ep, app_port, c->attempts, err, why, last, sizeof(last));
        if (!retry_next(p, err, retry))
            break;
    }
    return all_failed(fd, p, c, err, last);
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
    int err = socket_int(fd, SOL_SOCKET, SO_ERROR);
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
        if (!ep)
            break;
        uint64_t started = conn_attempt(c, ep);
        int err = real_connect(fd, (struct sockaddr *)&ss, sslen) == 0 ? 0 : errno;
        if (err == EINPROGRESS)
            err = settled(fd);
        if (err == 0 && mtls_wanted(c))
            err = EINPROGRESS;      /* the handshake is the engine's */
        if (err == EINPROGRESS || err == EINTR) {
            spec.connecting = true;
            spec.started_ns = started;
            return dial_start(fd, c, p, &spec);
        }
        attempt_record(svc, ep, err, started);
        if (err == 0) {
            conn_connected(c);
            conn_unref(c);
            pick_done(p);
            return fail(EINPROGRESS);     /* what the kernel said; it is connected */
        }
        spec.err = err;
        attempt_failed_log(svc, ep, app_port, c->attempts, err, NULL, spec.last, sizeof(spec.last));
        if (!retry_next(p, err, retry))
            break;
        reset_socket(fd);
        delay_ns = retry_delay_ns(svc, retry + 1);
    }
    return all_failed(fd, p, c, spec.err, spec.last);
}

/* ---------------------------------------------------------- meshim_connect -- */

/* Shares are drawn per connection: fault_abort fails it on purpose. */
static bool draw(double share)
{
    return share > 0 && (double)rng_below(rng_thread(), 1000000) < share * 1000000;
}

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
        int err = __atomic_exchange_n(&c->error, 0, __ATOMIC_ACQ_REL);
        if (err) {
            *rc = fail(err);
            return true;
        }
        dial_revive(fd, c);
        return false;
    }
    default:
        /* Polling a non-blocking connect with connect(), as some libraries
         * do: same endpoint, so the kernel answers EALREADY / EISCONN. */
        if (!c->ep)
            return false;
        *rc = real_connect(fd, (struct sockaddr *)&ss, endpoint_addr(c->ep, family, port, &ss));
        return true;
    }
}

int meshim_connect(struct registry *reg, int fd, const struct sockaddr *addr, socklen_t len)
{
    struct netaddr dst;
    struct service *svc;
    if (!addr || !netaddr_from_sockaddr(addr, len, &dst) || !(svc = registry_match(reg, &dst)))
        return real_connect(fd, addr, len);

    struct conn *existing = fdtable_get(fd);
    if (existing) {
        int rc = 0;
        bool answered = registry_routes_to(svc, existing->svc) &&
                        connect_again(fd, existing, addr->sa_family, dst.port, &rc);
        conn_unref(existing);
        if (answered)
            return rc;
    }

    /* TCP only (UDP to a VIP is not meshed); the family is the address's.
     * socket() told us, unless the descriptor came another way. */
    int saved = errno;
    enum fd_kind kind = fdtable_kind(fd);
    if (kind == FD_UNKNOWN)
        kind = socket_int(fd, SOL_SOCKET, SO_PROTOCOL) == IPPROTO_TCP ? FD_TCP : FD_NOT_TCP;
    errno = saved;
    if (kind != FD_TCP)
        return real_connect(fd, addr, len);

    /* A split service hands each new connection to one of its targets,
     * whose endpoints and policies then apply. */
    svc = registry_split(svc, rng_thread());
    const struct service_config *cfg = service_cfg(svc);
    health_start(svc);
    watch_start();
    if (__atomic_load_n(&svc->active, __ATOMIC_RELAXED) >= cfg->max_connections) {
        log_warn("%s: max_connections (%u) reached, connection refused", svc->name,
                 cfg->max_connections);
        conn_refused(svc, dst.port, RESULT_OVERFLOW, FLAG_UO);
        return fail(ECONNREFUSED);
    }
    if (draw(cfg->fault_abort)) {
        log_warn("%s: connection failed on purpose (fault_abort)", svc->name);
        conn_refused(svc, dst.port, RESULT_FAULT, FLAG_FI);
        return fail(ECONNREFUSED);
    }
    uint64_t delay_ns = draw(cfg->fault_delay_percent) ? (uint64_t)cfg->fault_delay_ms * 1000000u : 0;

    bool v6only = addr->sa_family == AF_INET6 && socket_int(fd, IPPROTO_IPV6, IPV6_V6ONLY) == 1;
    errno = saved;
    int flags = real_fcntl(fd, F_GETFL, NULL);
    if (flags < 0)
        return -1;
    /* One connection record for the whole connect(), whatever its attempts. */
    struct conn *c = track(fd, svc, dst.port);
    if (!c)
        return fail(ENOMEM);
    struct pick p;
    pick_init(&p, svc, addr->sa_family);
    p.v6only = v6only;
    c->flags |= delay_ns ? FLAG_DI : 0;
    if (flags & O_NONBLOCK)
        return connect_nonblocking(fd, &p, c, dst.port, delay_ns);
    if (delay_ns)
        sleep_ns(delay_ns);
    return connect_blocking(fd, &p, c, dst.port, flags);
}

/* ---------------------------------------------------------------- accept -- */

static uint16_t local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    struct netaddr a;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        !netaddr_from_sockaddr((struct sockaddr *)&ss, len, &a))
        return 0;
    return a.port;
}

int meshim_accept(struct registry *reg, int fd, struct sockaddr *addr, socklen_t *len, int flags,
                  bool use_accept4)
{
    const struct inbound_config *in = NULL;
    if (reg->cfg->n_inbound) {
        int saved = errno;
        in = registry_inbound(reg, local_port(fd));
        errno = saved;
        if (in && in->tls == INBOUND_OFF)
            in = NULL;
    }
    for (;;) {
        int cfd = use_accept4 ? real_accept4(fd, addr, len, flags) : real_accept(fd, addr, len);
        if (cfd < 0)
            return cfd;
        fdtable_drop(cfd);          /* a stale slot left by a close we did not see */
        if (!in)
            return cfd;
        /* A client that cannot even be handed to a relay is closed and
         * never reaches the application: accept goes on with the next one
         * (or EAGAIN). */
        if (mtls_accept(cfd, in, use_accept4 ? flags : 0) >= 0)
            return cfd;
    }
}
