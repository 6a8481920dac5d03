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
#include "observe/log.h"
#include "observe/metrics.h"

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

