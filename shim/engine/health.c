/*
 * health.c — active health checks (see health.h): TCP (the connect) and
 * HTTP (a GET of health_path answered 2xx or 3xx, as Kubernetes' probes and
 * HAProxy's httpchk judge one).
 *
 * One round of checks per service at a time, on the engine. A round probes
 * every endpoint of the service's set as it is when the round starts (so
 * endpoints found by DNS or a reload are checked from the next round on):
 *
 *   IDLE --(health_interval over)--> connect to every endpoint; those that
 *                                    settle at once have their result (tcp)
 *   PROBING --(health_timeout over)--> the probes still out fail
 *   all results in --> IDLE
 *
 * and each probe of the round:
 *
 *   CONNECTING --(writable: SO_ERROR)--> tcp: its result; http: on to
 *   HANDSHAKE  (tls = mtls only: the mesh's own TLS client, as a connect's;
 *               the server's identity checked) --> ASKING
 *   ASKING     --(GET health_path sent)--> READING
 *   READING    --(the answer's head)--> 2xx or 3xx: healthy, else not
 *
 * A service that no longer asks for checks (a reload), or that a reload
 * removed, stops them at its next round.
 *
 * One checker per endpoint per host: with the host's endpoint table
 * (shared.h), a round probes only the endpoints whose lease this process
 * holds or can take (free, expired, or its own: renewed each round), and
 * the verdict goes into the table, where every process's picks read it. A
 * holder killed -9 loses its lease after two intervals and a timeout; the
 * next round of another process takes it over.
 */
#include "engine/health.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "engine/engine.h"
#include "libc/ownfd.h"
#include "libc/real.h"
#include "meshim/http1.h"
#include "observe/log.h"
#include "observe/sharedfile.h"

struct checks;

enum probe_step { P_CONNECTING, P_HANDSHAKE, P_ASKING, P_READING };

struct probe {
    struct engine_io io;
    struct checks *checks;
    struct endpoint *ep;
    bool in_flight;
    enum probe_step step;
    size_t sent;                    /* ASKING: bytes of the request sent */
    SSL *ssl;                       /* tls = mtls, from HANDSHAKE on */
    struct tls_identity *id;        /* the identity ssl holds a reference of */
    bool parsing;                   /* READING: answer is initialised */
    struct h1_parser answer;
    char why[160];                  /* why the probe failed, for the "is down" line */
};

static health_tls_client_fn *tls_client;   /* set once at start (health_use_tls) */
static health_tls_ready_fn *tls_ready;

struct checks {
    struct engine_task task;
    struct engine_timer timer;
    struct service *svc;
    struct endpoint_set *set;       /* the round's endpoints, with a reference */
    struct probe *probes;           /* parallel to set->ep */
    size_t in_flight;
    bool no_identity;               /* the last round was not made: no mTLS identity here */
};

static uint16_t check_port(const struct service_config *cfg, const struct endpoint *ep)
{
    /* config.c makes sure one of them is there for static endpoints; a
     * discovered one without a port and no `ports` cannot be checked. */
    return ep->addr.port ? ep->addr.port : cfg->ports.n ? cfg->ports.v[0].lo : 0;
}

static void result(struct checks *c, struct probe *p, bool ok)
{
    struct service *svc = c->svc;
    const struct service_config *cfg = service_cfg(svc);
    if (p->ssl) {
        tls_free(p->ssl, true);     /* close_notify first: the server's relay sees an end, not a cut */
        tls_identity_put(p->id);
        p->ssl = NULL;
        p->id = NULL;
    }
    if (p->in_flight) {
        engine_unwatch(&p->io);
        own_close(p->io.fd);
        p->in_flight = false;
        c->in_flight--;
    }
    if (p->parsing) {
        h1_free(&p->answer);
        p->parsing = false;
    }
    uint64_t now = now_ns();
    struct shared_entry *e = shared_entry_of(svc, p->ep, now);
    bool flipped, down;
    pthread_mutex_lock(&svc->lock);
    if (e) {
        flipped = shared_health_observe(e, ok, cfg->healthy_threshold, cfg->unhealthy_threshold,
                                        now / 1000000u, &down);
        p->ep->health.down = down;
    } else {
        flipped = health_observe(&p->ep->health, ok, cfg->healthy_threshold,
                                 cfg->unhealthy_threshold);
        down = p->ep->health.down;
    }
    pthread_mutex_unlock(&svc->lock);
    if (flipped)
        log_warn("%s: endpoint %s is %s (health check)%s%s", svc->name, p->ep->label,
                 down ? "down" : "up again", down && *p->why ? ": " : "", down ? p->why : "");
}

static void round_over(struct checks *c)
{
    const struct service_config *cfg = service_cfg(c->svc);
    engine_timer_set(&c->timer, now_ns() + (uint64_t)cfg->health_interval_ms * 1000000u);
}

/* A probe's step gives 1 (healthy), 0 (not) or -1 (no verdict yet: it
 * waits for the socket again). */

static const char *health_path(const struct checks *c)
{
    const char *path = service_cfg(c->svc)->health_path;
    return path ? path : "/";
}

/* 0, with why the probe failed. */
static int failed(struct probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int failed(struct probe *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, sizeof(p->why), fmt, ap);
    va_end(ap);
    return 0;
}

static int wait_for(struct probe *p, uint32_t events)
{
    return engine_interest(&p->io, events) ? -1 : 0;
}

/* READING: the answer so far, into the parser. */
static int answer_read(struct probe *p)
{
    for (;;) {
        char buf[2048];
        size_t got;
        if (p->ssl) {
            enum tls_io r = tls_read(p->ssl, buf, sizeof(buf), &got);
            if (r == TLS_IO_WANT_READ)
                return wait_for(p, EPOLLIN);
            if (r == TLS_IO_WANT_WRITE)
                return wait_for(p, EPOLLIN | EPOLLOUT);
            if (r != TLS_IO_DONE)
                return failed(p, "the connection ended before an answer");
        } else {
            ssize_t n = real_recv(p->io.fd, buf, sizeof(buf), 0);
            if (n < 0)
                return errno == EAGAIN || errno == EINTR ? -1 : failed(p, "%s", strerror(errno));
            if (n == 0)
                return failed(p, "the connection ended before an answer");
            got = (size_t)n;
        }
        size_t used;
        switch (h1_feed(&p->answer, buf, got, &used)) {
        case H1_MORE:
            continue;
        case H1_HEAD: {
            int status = h1_head(&p->answer)->status;
            if (status >= 200 && status < 400)
                return 1;
            return failed(p, "GET %s answered %d", health_path(p->checks), status);
        }
        default:
            return failed(p, "not an HTTP answer (%s)", h1_error(&p->answer));
        }
    }
}

/* ASKING: GET health_path, Host the service's name, and the connection's
 * end after the answer. */
static int ask(struct checks *c, struct probe *p)
{
    char req[1280];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: meshim-health-check\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n", health_path(c), c->svc->name);
    if (n < 0 || (size_t)n >= sizeof(req) || p->sent > (size_t)n)
        return failed(p, "the request does not fit");
    size_t done = 0;
    if (p->ssl) {
        enum tls_io r = tls_write(p->ssl, req + p->sent, (size_t)n - p->sent, &done);
        if (r == TLS_IO_WANT_READ || r == TLS_IO_WANT_WRITE)
            return wait_for(p, r == TLS_IO_WANT_READ ? EPOLLIN : EPOLLOUT);
        if (r != TLS_IO_DONE)
            return failed(p, "the connection ended before the request was sent");
    } else {
        ssize_t w = real_send(p->io.fd, req + p->sent, (size_t)n - p->sent, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN || errno == EINTR ? wait_for(p, EPOLLOUT) : failed(p, "%s", strerror(errno));
        done = (size_t)w;
    }
    p->sent += done;
    if (p->sent < (size_t)n)
        return wait_for(p, EPOLLOUT);
    h1_init(&p->answer, H1_RESPONSE);
    h1_response_to(&p->answer, "GET");
    p->parsing = true;
    p->step = P_READING;
    if (!engine_interest(&p->io, EPOLLIN))
        return failed(p, "out of memory");
    return answer_read(p);
}

/* HANDSHAKE: TLS 1.3 as the mesh's own connects make it (no kernel TLS
 * offered: the answer is read here), then the server's identity. */
static int handshake(struct checks *c, struct probe *p)
{
    char why[TLS_WHY_MAX];
    bool want_write;
    int h = tls_handshake(p->ssl, &want_write, why, sizeof(why));
    if (h == 0)
        return wait_for(p, want_write ? EPOLLOUT : EPOLLIN);
    const char *identity = service_cfg(c->svc)->identity;
    const char *patterns[1] = { identity };
    char name[256];
    if (h < 0 || !tls_peer_check(p->ssl, patterns, identity && *identity ? 1 : 0, name, sizeof(name), why,
                                 sizeof(why)))
        return failed(p, "%s", why);
    p->step = P_ASKING;
    return ask(c, p);
}

/* CONNECTING: the connect's outcome. */
static int connected(struct checks *c, struct probe *p)
{
    const struct service_config *cfg = service_cfg(c->svc);
    int err = 0;
    socklen_t len = sizeof(err);
    if (real_getsockopt(p->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err)
        return failed(p, "%s", strerror(err));
    if (cfg->health_check != HEALTH_HTTP)
        return 1;
    if (cfg->tls != TLS_MTLS) {
        p->step = P_ASKING;
        return ask(c, p);
    }
    char why[TLS_WHY_MAX] = "no TLS client was given to the checks";
    if (tls_client)
        p->ssl = tls_client(c->svc, p->ep, check_port(cfg, p->ep), p->io.fd, false, &p->id, why, sizeof(why));
    if (!p->ssl)
        return failed(p, "%s", why);
    p->step = P_HANDSHAKE;
    return handshake(c, p);
}

static void probe_ready(struct engine_io *io, uint32_t events)
{
    (void)events;
    struct probe *p = container_of(io, struct probe, io);
    struct checks *c = p->checks;
    int verdict = -1;
    switch (p->step) {
    case P_CONNECTING: verdict = connected(c, p); break;
    case P_HANDSHAKE: verdict = handshake(c, p); break;
    case P_ASKING: verdict = ask(c, p); break;
    case P_READING: verdict = answer_read(p); break;
    }
    if (verdict < 0)
        return;
    result(c, p, verdict == 1);
    if (c->in_flight == 0) {
        engine_timer_cancel(&c->timer);
        round_over(c);
    }
}

/* Starts one probe; false when it settled at once (result given). */
static bool probe_start(struct checks *c, struct probe *p, const struct service_config *cfg)
{
    struct sockaddr_storage ss;
    uint16_t port = check_port(cfg, p->ep);
    int fd = port ? real_socket(p->ep->addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
                  : -1;
    if (fd < 0) {
        failed(p, "%s", port ? strerror(errno) : "no port to check");
        result(c, p, false);
        return false;
    }
    ownfd_mark(fd);
    socklen_t len = netaddr_to_sockaddr(&p->ep->addr, port, p->ep->addr.family, &ss);
    int err = real_connect(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : errno;
    p->io = (struct engine_io){ .ready = probe_ready, .fd = fd };
    /* An http check waits for its answer even when the connect settled. */
    bool wait = err == EINPROGRESS || (err == 0 && cfg->health_check == HEALTH_HTTP);
    if (wait && engine_watch(&p->io, EPOLLOUT)) {
        p->in_flight = true;
        c->in_flight++;
        return true;
    }
    own_close(fd);
    if (err)
        failed(p, "%s", strerror(err));
    result(c, p, err == 0);
    return false;
}

/* Does this process check the endpoint this round? Always without the
 * host's table; with it, only while it holds the endpoint's lease. */
static bool checker_here(const struct service *svc, struct endpoint *ep,
                         const struct service_config *cfg, uint64_t now)
{
    struct shared_entry *e = shared_entry_of(svc, ep, now);
    uint64_t lease_ms = 2ull * cfg->health_interval_ms + cfg->health_timeout_ms;
    return !e || shared_lease_take(&e->checker, shared_pid(), now / 1000000u, lease_ms);
}

static void stop(struct checks *c)
{
    __atomic_store_n(&c->svc->health_started, 0, __ATOMIC_RELEASE);
    endpoint_set_unref(c->set);
    free(c->probes);
    engine_retire(c);
}

static void round_start(struct checks *c)
{
    const struct service_config *cfg = service_cfg(c->svc);
    if (cfg->health_check == HEALTH_OFF || __atomic_load_n(&c->svc->removed, __ATOMIC_ACQUIRE)) {
        stop(c);
        return;
    }
    struct endpoint_set *set = service_endpoints(c->svc);
    if (set != c->set) {
        struct probe *probes = calloc(set->n + 1, sizeof(*probes));
        if (!probes) {
            endpoint_set_unref(set);
            round_over(c);      /* out of memory: the next round tries again */
            return;
        }
        free(c->probes);
        endpoint_set_unref(c->set);
        c->probes = probes;
        c->set = set;
    } else {
        endpoint_set_unref(set);
    }
    /* An mTLS check needs this process's identity. Without one (its files
     * missing, expired) every probe would fail for a fault of this
     * process, and the verdicts go into the host's table, where other
     * processes' picks read them: no probe, no lease taken, so that a
     * process that has one checks instead. */
    char why[TLS_WHY_MAX];
    bool ready = cfg->health_check != HEALTH_HTTP || cfg->tls != TLS_MTLS || !tls_ready ||
                 tls_ready(why, sizeof(why));
    if (ready == c->no_identity) {       /* it changed since the last round */
        if (ready)
            log_info("%s: health checks made again: this process has an mTLS identity", c->svc->name);
        else
            log_warn("%s: health checks not made until this process has a usable mTLS identity: %s",
                     c->svc->name, why);
        c->no_identity = !ready;
    }
    if (!ready) {
        round_over(c);
        return;
    }
    uint64_t now = now_ns();
    for (size_t i = 0; i < c->set->n; i++) {
        c->probes[i] = (struct probe){ .checks = c, .ep = c->set->ep[i] };
        if (checker_here(c->svc, c->set->ep[i], cfg, now))
            probe_start(c, &c->probes[i], cfg);
    }
    if (c->in_flight)
        engine_timer_set(&c->timer, now_ns() + (uint64_t)cfg->health_timeout_ms * 1000000u);
    else
        round_over(c);
}

static void timer_fired(struct engine_timer *t)
{
    struct checks *c = container_of(t, struct checks, timer);
    if (!c->in_flight) {
        round_start(c);
        return;
    }
    for (size_t i = 0; i < c->set->n; i++)      /* health_timeout */
        if (c->probes[i].in_flight)
            result(c, &c->probes[i], failed(&c->probes[i], "no answer within health_timeout (%ums)",
                                            service_cfg(c->svc)->health_timeout_ms));
    round_over(c);
}

static void begin(struct engine_task *t)
{
    struct checks *c = container_of(t, struct checks, task);
    engine_timer_set(&c->timer, now_ns());
}

void health_use_tls(health_tls_client_fn *client, health_tls_ready_fn *ready)
{
    tls_client = client;
    tls_ready = ready;
}

void health_start(struct service *svc)
{
    if (service_cfg(svc)->health_check == HEALTH_OFF ||
        __atomic_load_n(&svc->health_started, __ATOMIC_ACQUIRE) ||
        __atomic_exchange_n(&svc->health_started, 1, __ATOMIC_ACQ_REL))
        return;
    int saved = errno;
    struct checks *c = calloc(1, sizeof(*c));
    if (!c) {
        log_error("%s: out of memory: health checks are off", svc->name);
        errno = saved;
        return;
    }
    c->svc = svc;
    c->task.run = begin;
    c->timer.fire = timer_fired;
    if (!engine_post(&c->task)) {
        free(c);
        __atomic_store_n(&svc->health_started, 0, __ATOMIC_RELEASE);
    }
    errno = saved;
}
