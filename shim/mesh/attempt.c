/*
 * attempt.c — one connect's attempts, whichever thread makes them (the
 * caller's in connect.c, the engine's in dial.c and mtls.c): which endpoint
 * is next, what an outcome does to its circuit, the balancer's latency and
 * the counters, whether a retry may follow, and the lines that say why.
 */
#include "mesh/attempt.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "libc/real.h"
#include "mesh/conn.h"
#include "observe/accesslog.h"
#include "observe/log.h"
#include "observe/metrics.h"
#include "observe/sharedfile.h"

static bool reachable(const struct pick *p, size_t i)
{
    const struct netaddr *a = &p->eps->ep[i]->addr;
    if (p->family == AF_INET)
        return a->family == AF_INET;
    return a->family == AF_INET6 || !p->v6only;
}

/* The endpoint's health verdict: the host's checker's while it is fresh
 * (it checks every interval; three missed rounds and this process's own
 * view counts again), else this process's. *by_other: someone else's. */
static bool health_down(const struct pick *p, const struct endpoint *ep, struct shared_entry *e,
                        bool *by_other)
{
    *by_other = false;
    if (!e)
        return ep->health.down;
    struct health h;
    uint64_t checked;
    shared_health_unpack(__atomic_load_n(&e->health, __ATOMIC_ACQUIRE), &h, &checked);
    const struct service_config *cfg = service_cfg(p->svc);
    uint64_t fresh_ms = 3ull * cfg->health_interval_ms + cfg->health_timeout_ms;
    if (checked == 0 || checked + fresh_ms < p->now / 1000000u)
        return ep->health.down;
    *by_other = h.down && shared_lease_holder(__atomic_load_n(&e->checker, __ATOMIC_RELAXED),
                                              p->now / 1000000u) != shared_pid();
    return h.down;
}

/* The endpoint's circuit now: the host's (the table) where it has an
 * entry there, else this process's. */
static void circuit_of(const struct endpoint *ep, const struct shared_entry *e,
                       struct circuit *c)
{
    if (e)
        shared_circuit_load(e, c);
    else
        *c = ep->circuit;
}

/* Changes the endpoint's circuit with fn: the host's by compare-and-swap,
 * else this process's. ep->circuit holds the result either way. */
static bool circuit_change(struct endpoint *ep, struct shared_entry *e, shared_circuit_fn fn,
                           void *arg)
{
    return e ? shared_circuit_apply(e, fn, arg, &ep->circuit) : fn(&ep->circuit, arg);
}

/* Is the circuit closed to new connections? *by_other: because another
 * process ejected it or holds its probe (the host's table); *probing:
 * because its half-open probe is out, whose outcome may open it. */
static bool circuit_shut(const struct pick *p, const struct endpoint *ep, struct shared_entry *e,
                         bool *by_other, bool *probing)
{
    *by_other = *probing = false;
    struct circuit c;
    circuit_of(ep, e, &c);
    if (!circuit_blocked(&c, p->now))
        return false;
    *probing = c.state == CIRCUIT_HALF_OPEN;
    if (e) {
        const int32_t *who = c.state == CIRCUIT_OPEN ? &e->ejector : &e->prober;
        *by_other = __atomic_load_n(who, __ATOMIC_RELAXED) != shared_pid();
    }
    return true;
}

static bool usable(size_t i, void *ctx)
{
    struct pick *p = ctx;
    if (p->skip_tried && i < 64 && (p->tried >> i & 1))
        return false;
    struct endpoint *ep = p->eps->ep[i];
    if (!reachable(p, i))
        return false;
    if (p->panic)
        return true;
    /* Health is the address's; the circuit is the port's (endpoint_at_port). */
    struct endpoint *cep = endpoint_at_port(ep, p->port);
    struct shared_entry *e = shared_entry_of(p->svc, ep, p->now);
    struct shared_entry *ce = cep == ep ? e : shared_entry_of(p->svc, cep, p->now);
    bool other_down = false, other_shut = false, probing = false;
    if (!health_down(p, ep, e, &other_down) && !circuit_shut(p, cep, ce, &other_shut, &probing))
        return true;
    p->probe_out |= probing;        /* false when health checks took it out */
    if ((other_down || other_shut) && i < 64)
        p->shared_skips |= (uint64_t)1 << i;
    return false;
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

/* How long a half-open probe holds the endpoint: its connect, a handshake,
 * and a margin. A probe whose outcome never comes (its process killed)
 * lets the next one through after this. */
static uint64_t probe_lease_ns(const struct service *svc)
{
    return (2ull * service_cfg(svc)->connect_timeout_ms + 5000u) * 1000000u;
}

struct admit {
    uint64_t now, lease;
    bool probe;
};

static bool admit_fn(struct circuit *c, void *arg)
{
    struct admit *a = arg;
    return circuit_admit(c, a->now, a->lease, &a->probe);
}

/* Admits the connection through the endpoint's circuit: in the host's table
 * by compare-and-swap, where another process may have taken the half-open
 * probe since the look. False: not admitted. */
static bool admit(struct pick *p, struct endpoint *ep)
{
    struct admit a = { .now = p->now, .lease = probe_lease_ns(p->svc) };
    ep = endpoint_at_port(ep, p->port);
    struct shared_entry *e = shared_entry_of(p->svc, ep, p->now);
    if (!circuit_change(ep, e, admit_fn, &a))
        return false;
    if (a.probe && e)
        __atomic_store_n(&e->prober, shared_pid(), __ATOMIC_RELAXED);
    return true;
}

/* affinity = process: the endpoint this process chose before, while it is
 * untried by this connect, usable and admitted; -1 otherwise, and then the
 * pick that follows becomes the process's endpoint. Found by address, so a
 * new set (discovery, a reload) that still has it keeps it. */
static ssize_t affine_pick(struct pick *p)
{
    if (service_cfg(p->svc)->affinity != AFFINITY_PROCESS || !p->svc->affine.family)
        return -1;
    ssize_t i = endpoint_set_index(p->eps, &p->svc->affine);
    return i >= 0 && usable((size_t)i, p) && (p->panic || admit(p, p->eps->ep[i])) ? i : -1;
}

/* Is the service in panic (breaker_panic)? Counts the endpoints this
 * socket reaches and, of those, the usable ones, tried by this connect or
 * not; under the service's lock. */
static bool in_panic(struct pick *p, size_t *n_usable, size_t *n_reach)
{
    uint32_t threshold = service_cfg(p->svc)->panic_threshold;
    *n_usable = *n_reach = 0;
    if (!threshold)
        return false;
    uint64_t skips = p->shared_skips;       /* usable() notes them: the pick that follows counts */
    bool probe_out = p->probe_out;          /* and this, for endpoints the pick may take */
    p->panic = p->skip_tried = false;
    for (size_t i = 0; i < p->eps->n; i++)
        if (reachable(p, i)) {
            ++*n_reach;
            *n_usable += usable(i, p);
        }
    p->shared_skips = skips;
    p->probe_out = probe_out;
    return breaker_panic(*n_usable, *n_reach, threshold);
}

/* Picks among the usable endpoints (untried ones first) and admits the
 * choice; under the service's lock. -1: none. In panic every endpoint the
 * socket reaches is usable, and none is asked to admit. */
static ssize_t pick_admitted(struct pick *p)
{
    struct endpoint_set *set = p->eps;
    p->skip_tried = true;
    ssize_t affine = affine_pick(p);
    if (affine >= 0)
        return affine;
    /* p2c decides on this process's own latency samples, not the host's
     * EWMA (which is recorded and shown by meshim stats): every fresh
     * process reading the same costs chose alike, and one slow connect
     * kept an endpoint from every process of the host until it decayed
     * (~20 s; t_clients in user-mode Linux: 0 of 30 wget on one backend). */
    for (size_t round = 0; round <= set->n; round++) {
        p->skip_tried = true;
        ssize_t i = balancer_pick(&set->balancer, usable, p, rng_thread(), p->now);
        if (i < 0 && p->tried) {
            p->skip_tried = false;
            i = balancer_pick(&set->balancer, usable, p, rng_thread(), p->now);
        }
        if (i < 0)
            return i;
        if (p->panic || admit(p, set->ep[i])) {
            p->svc->affine = set->ep[i]->addr;     /* kept only under affinity = process */
            return i;
        }
        if (i < 64)
            p->tried |= (uint64_t)1 << i;      /* lost the probe to another process */
    }
    return -1;
}

bool pick_another(const struct pick *p, unsigned retry)
{
    struct service *svc = p->svc;
    if (retry >= service_cfg(svc)->retries)
        return false;
    /* Asked on a copy: retry_next marks the endpoint tried, if it comes to that. */
    struct pick q = *p;
    pick_tried(&q);
    q.skip_tried = true;
    q.now = now_ns();
    pthread_mutex_lock(&svc->lock);
    bool another = svc->eps != q.eps;       /* a new set: the retry picks from it */
    for (size_t i = 0; !another && q.eps && i < q.eps->n; i++)
        another = usable(i, &q);
    pthread_mutex_unlock(&svc->lock);
    return another;
}

/* One line when a service goes into panic, and one when it leaves. */
static void panic_note(const struct service *svc, bool panic, size_t n_usable, size_t n_reach)
{
    uint32_t threshold = service_cfg(svc)->panic_threshold;
    if (!panic && !threshold)
        log_info("%s: out of panic (panic_threshold = 0 now)", svc->name);
    else if (panic)
        log_warn("%s: panic: %zu of %zu endpoints usable, below panic_threshold %u%%: connects go to "
                 "every endpoint, ejected or not", svc->name, n_usable, n_reach, threshold);
    else
        log_info("%s: out of panic: %zu of %zu endpoints usable", svc->name, n_usable, n_reach);
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
    p->port = app_port;
    p->shared_skips = 0;
    p->probe_out = false;
    size_t n_usable, n_reach;
    p->panic = in_panic(p, &n_usable, &n_reach);
    bool panic_changed = p->panic != svc->panic;
    svc->panic = p->panic;
    ssize_t i = pick_admitted(p);
    struct endpoint *ep = i >= 0 ? p->eps->ep[i] : NULL;
    if (ep)
        p->last = (size_t)i;
    pthread_mutex_unlock(&svc->lock);
    endpoint_set_unref(old);
    if (panic_changed)
        panic_note(svc, p->panic, n_usable, n_reach);
    if (ep && p->panic)
        metrics_panic(svc);
    if (p->shared_skips) {
        p->flags |= FLAG_SE;
        for (size_t k = 0; k < p->eps->n && k < 64; k++)
            if (p->shared_skips >> k & 1)
                metrics_shared_skip(svc, p->eps->ep[k]);
    }
    if (ep)
        *len = endpoint_addr(ep, p->family, app_port, ss);
    return ep;
}

size_t pick_addresses(struct service *svc, struct netaddr *out, size_t max)
{
    static unsigned turn;       /* rotates the start: each lookup leads with another */
    struct pick p = { .svc = svc, .family = AF_UNSPEC };
    size_t n = 0;
    pthread_mutex_lock(&svc->lock);
    struct endpoint_set *set = svc->eps;
    p.eps = set;
    p.now = now_ns();
    size_t start = set->n ? __atomic_fetch_add(&turn, 1, __ATOMIC_RELAXED) % set->n : 0;
    for (int pass = 0; pass < 2; pass++)        /* usable ones, then the rest */
        for (size_t k = 0; k < set->n && n < max; k++) {
            size_t i = (start + k) % set->n;
            if (usable(i, &p) == (pass == 0))
                out[n++] = set->ep[i]->addr;
        }
    pthread_mutex_unlock(&svc->lock);
    return n;
}

bool pick_has_ipv6(struct service *svc)
{
    bool v6 = false;
    pthread_mutex_lock(&svc->lock);
    for (size_t i = 0; i < svc->eps->n && !v6; i++)
        v6 = svc->eps->ep[i]->addr.family == AF_INET6;
    pthread_mutex_unlock(&svc->lock);
    return v6;
}

void pick_tried(struct pick *p)
{
    if (p->last < 64)
        p->tried |= (uint64_t)1 << p->last;
}

bool pick_may_wait(const struct pick *p, uint64_t deadline_ns)
{
    return p->probe_out && now_ns() + PICK_WAIT_STEP_NS <= deadline_ns;
}

/* Circuits not closed among the service's endpoints for this port now,
 * as the host's table knows them where it can (under the service's lock). */
static size_t ejected_now(const struct service *svc, uint16_t port, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < svc->eps->n; i++) {
        struct endpoint *ep = endpoint_at_port(svc->eps->ep[i], port);
        struct circuit c;
        circuit_of(ep, shared_entry_of(svc, ep, now), &c);
        n += c.state != CIRCUIT_CLOSED;
    }
    return n;
}

struct outcome {
    int err;
    uint64_t now;
    const struct breaker_policy *policy;
    bool may_eject;
    bool alive;             /* a timeout, from an endpoint that answered lately (answered_lately) */
    struct circuit before;
};

static bool outcome_fn(struct circuit *c, void *arg)
{
    struct outcome *o = arg;
    o->before = *c;
    if (!o->err) {
        circuit_success(c, o->now);
        return false;
    }
    if (o->alive && c->state == CIRCUIT_CLOSED)
        return false;       /* not a failure of the endpoint's (a probe's always is) */
    return circuit_failure(c, o->policy, o->now, o->may_eject);
}

/* Did ep complete an attempt after `since` (this process's: answered_ns;
 * another's of the host: a success the table's EWMA stamped)?
 *
 * A connect that times out although its endpoint answered another within
 * a connect_timeout of it meets a server that is alive but whose accept
 * queue was full: Linux drops the SYNs that do not fit, and the client
 * resends after 1 s, the default connect_timeout. Its retry goes through
 * where the kernel's resend would have. Counted, the burst's timeouts,
 * all at once, were eject_after consecutive failures, and a lone endpoint
 * was refused to every process of the host for 30 s (Erlang's gen_tcp,
 * 200 connects to a backlog of 128: 28 failed, where the same program
 * unmeshed took 1.3 s for all). A black hole answers nothing and is
 * ejected as before; a server that dies is ejected one connect_timeout
 * later. Under the service's lock. */
static bool answered_lately(const struct endpoint *ep, const struct shared_entry *e, uint64_t since)
{
    if (__atomic_load_n(&ep->answered_ns, __ATOMIC_RELAXED) > since)
        return true;
    struct lb_target host;
    if (!e)
        return false;
    shared_ewma_load(e, &host);
    return host.ewma_at_ns > since;
}

/* Feeds the outcome to the circuit of ep (endpoint_at_port's: the host's,
 * or this process's); true when it ejected the endpoint for the port.
 * Under the service's lock. */
static bool record_circuit(struct service *svc, struct endpoint *ep, uint16_t port,
                           struct shared_entry *e, struct outcome *o)
{
    size_t n = svc->eps->n;
    uint32_t cap = svc->breaker.max_eject_percent;
    /* Counting the ejected endpoints reads every circuit: only a failure
     * that may eject needs it (an alive one leaves a closed circuit as it
     * was, and the cap means nothing to the others). */
    o->may_eject = o->err && !o->alive && breaker_may_eject(ejected_now(svc, port, o->now), n, cap);
    bool ejected = circuit_change(ep, e, outcome_fn, o);
    if (!ejected || !e)
        return ejected;
    /* Another process may have ejected another endpoint at the same time:
     * max_eject_percent holds for the host, so the later one stands down
     * (its circuit goes back as it was, if nobody changed it since). */
    if (o->before.state == CIRCUIT_CLOSED &&
        !breaker_may_eject(ejected_now(svc, port, o->now) - 1, n, cap) &&
        shared_circuit_restore(e, &ep->circuit, &o->before)) {
        ep->circuit = o->before;
        return false;
    }
    __atomic_store_n(&e->ejector, shared_pid(), __ATOMIC_RELAXED);
    return true;
}

/* An outcome for ep's circuit and, with `started` and no error, its
 * latency; `count`: also an attempt in the stats. */
static void record(struct service *svc, struct endpoint *ep, uint16_t app_port, int err,
                   uint64_t started, bool count)
{
    struct outcome o = { .err = err, .now = now_ns(), .policy = &svc->breaker };
    struct endpoint *cep = endpoint_at_port(ep, app_port);
    struct shared_entry *e = shared_entry_of(svc, ep, o.now);
    struct shared_entry *ce = cep == ep ? e : shared_entry_of(svc, cep, o.now);
    uint64_t window = (uint64_t)service_cfg(svc)->connect_timeout_ms * 1000000u;
    pthread_mutex_lock(&svc->lock);
    o.alive = err == ETIMEDOUT && started && answered_lately(ep, e, started > window ? started - window : 0);
    bool ejected = record_circuit(svc, cep, app_port, ce, &o);
    if (!err && started) {
        __atomic_store_n(&ep->answered_ns, o.now, __ATOMIC_RELAXED);
        balancer_observe(&ep->target, o.now - started, o.now);
        if (e)
            shared_ewma_observe(e, o.now - started, o.now);
    }
    enum circuit_state before = o.before.state;
    uint64_t for_ns = cep->circuit.open_until_ns - o.now;
    pthread_mutex_unlock(&svc->lock);
    if (count)
        metrics_attempt(svc, ep, metrics_result_of(err), !err && started ? o.now - started : 0);
    if (ejected || (!err && before != CIRCUIT_CLOSED))
        metrics_ejected(svc, ep, ejected);
    if (ejected)
        log_warn("%s: endpoint %s ejected for %llus after %s", svc->name, cep->label,
                 (unsigned long long)(for_ns / 1000000000u),
                 before == CIRCUIT_CLOSED ? "consecutive failures" : "a failed probe");
}

void attempt_record(struct service *svc, struct endpoint *ep, uint16_t app_port, int err,
                    uint64_t started)
{
    record(svc, ep, app_port, err, started, true);
}

void request_connect_record(struct service *svc, struct endpoint *ep, uint16_t app_port, int err,
                            uint64_t started)
{
    if (err) {
        record(svc, ep, app_port, err, started, true);     /* started: answered_lately's window */
        return;
    }
    uint64_t now = now_ns();
    __atomic_store_n(&ep->answered_ns, now, __ATOMIC_RELAXED);     /* alive, for answered_lately */
    metrics_attempt(svc, ep, RESULT_OK, now - started);
}

void request_record(struct service *svc, struct endpoint *ep, uint16_t app_port, bool failed,
                    uint64_t started)
{
    /* EPROTO: any errno, for a circuit that only tells failure from success. */
    record(svc, ep, app_port, failed ? EPROTO : 0, started, false);
}

/* When the first of the pick's ejected endpoints comes back (its circuit's
 * end, for the pick's port), 0 if none is ejected; *by_other: another
 * process of the host ejected that one (the host's table). */
static uint64_t first_back_ns(const struct pick *p, uint64_t now, bool *by_other)
{
    uint64_t first = 0;
    pthread_mutex_lock(&p->svc->lock);      /* the circuits change under it */
    for (size_t i = 0; i < p->eps->n; i++) {
        if (!reachable(p, i))
            continue;
        struct endpoint *cep = endpoint_at_port(p->eps->ep[i], p->port);
        struct shared_entry *e = shared_entry_of(p->svc, cep, now);
        struct circuit c;
        circuit_of(cep, e, &c);
        if (c.state != CIRCUIT_OPEN || c.open_until_ns <= now || (first && c.open_until_ns >= first))
            continue;
        first = c.open_until_ns;
        *by_other = e && __atomic_load_n(&e->ejector, __ATOMIC_RELAXED) != shared_pid();
    }
    pthread_mutex_unlock(&p->svc->lock);
    return first;
}

/* "no healthy endpoint" says when the first ejection ends and whether
 * another process of the host made it: a program started after an outage
 * is otherwise refused for a cause it never saw. */
static void no_healthy(const struct pick *p, size_t reach)
{
    if (!log_wants(LOG_WARN))
        return;                     /* no walk over the circuits for a line not written */
    char when[96] = "";
    bool by_other = false;
    uint64_t now = now_ns(), back = first_back_ns(p, now, &by_other);
    /* Rounded to the nearest second (the host's table keeps the end in ms,
     * rounded up: a ceiling would say 31 s of a 30 s ejection), never 0. */
    uint64_t secs = (back - now + 500000000u) / 1000000000u;
    if (back)
        snprintf(when, sizeof(when), " (an ejection ends in %llu s%s)",
                 (unsigned long long)(secs ? secs : 1),
                 by_other ? ", made by another process of this host" : "");
    else if (p->probe_out)
        snprintf(when, sizeof(when), " (a half-open probe is out, and had no outcome within the connect's timeout)");
    log_warn("%s: no healthy endpoint: all %zu are ejected or failing health checks%s", p->svc->name,
             reach, when);
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
        no_healthy(p, reach);
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
    /* EADDRNOTAVAIL: no local port is left for that destination (its
     * TIME_WAIT connections hold them); another endpoint is another
     * destination, whose ports are counted apart. */
    return err == ECONNREFUSED || err == ETIMEDOUT || err == EHOSTUNREACH || err == ENETUNREACH ||
           err == ECONNRESET || err == ECONNABORTED || err == EHOSTDOWN || err == ENETDOWN ||
           err == EADDRNOTAVAIL;
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

bool fault_drawn(double share)
{
    return share > 0 && (double)rng_below(rng_thread(), 1000000) < share * 1000000;
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

void attempt_failed_log(struct conn *c, const struct endpoint *ep, uint16_t app_port, int err,
                        const char *why, char *last, size_t len)
{
    char addr[64];
    endpoint_text(ep, app_port, addr, sizeof(addr));
    why = why ? why : strerror(err);
    snprintf(last, len, "%s: %s", addr, why);
    conn_attempt_failed(c, addr, why);
    log_info("%s: attempt %u to %s failed: %s", c->svc->name, c->attempts, addr, why);
}

