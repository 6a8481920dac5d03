/*
 * health.c — active TCP health checks (see health.h).
 *
 * One probe per endpoint, each with its own timer:
 *
 *   IDLE --(interval over)--> connect: settled at once? result
 *                                      : IN_FLIGHT
 *   IN_FLIGHT --(writable: SO_ERROR)--> result
 *             --(health_timeout over)-> result: failed
 *   result --> IDLE, next round after health_interval
 */
#include "health.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "engine.h"
#include "hooks.h"
#include "log.h"

struct probe {
    struct engine_io io;
    struct engine_timer timer;
    struct service *svc;
    size_t endpoint;
    bool in_flight;
};

struct checks {
    struct engine_task task;
    size_t n;
    struct probe probes[];
};

static uint16_t check_port(const struct service *svc, size_t i)
{
    uint16_t port = svc->endpoints[i].addr.port;
    return port ? port : svc->cfg->ports.v[0].lo;      /* config.c ensures one of them */
}

static void result(struct probe *p, bool ok)
{
    struct service *svc = p->svc;
    const struct service_config *cfg = svc->cfg;
    if (p->in_flight) {
        engine_unwatch(&p->io);
        real_close(p->io.fd);
        p->in_flight = false;
    }
    pthread_mutex_lock(&svc->lock);
    bool flipped = health_observe(&svc->health[p->endpoint], ok, cfg->healthy_threshold,
                                  cfg->unhealthy_threshold);
    bool down = svc->health[p->endpoint].down;
    pthread_mutex_unlock(&svc->lock);
    if (flipped)
        log_warn("%s: endpoint %s is %s (health check)", svc->name, svc->endpoints[p->endpoint].label,
                 down ? "down" : "up again");
    engine_timer_set(&p->timer, now_ns() + (uint64_t)cfg->health_interval_ms * 1000000u);
}

static void probe_ready(struct engine_io *io, uint32_t events)
{
    (void)events;
    struct probe *p = container_of(io, struct probe, io);
    int err = 0;
    socklen_t len = sizeof(err);
    if (real_getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    engine_timer_cancel(&p->timer);
    result(p, err == 0);
}

static void probe_due(struct engine_timer *t)
{
    struct probe *p = container_of(t, struct probe, timer);
    if (p->in_flight) {
        result(p, false);       /* health_timeout */
        return;
    }
    const struct endpoint *ep = &p->svc->endpoints[p->endpoint];
    struct sockaddr_storage ss;
    socklen_t len = netaddr_to_sockaddr(&ep->addr, check_port(p->svc, p->endpoint), ep->addr.family, &ss);
    int fd = real_socket(ep->addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        result(p, false);
        return;
    }
    int err = real_connect(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : errno;
    p->io.fd = fd;
    if (err == EINPROGRESS && engine_watch(&p->io, EPOLLOUT)) {
        p->in_flight = true;
        engine_timer_set(&p->timer, now_ns() + (uint64_t)p->svc->cfg->health_timeout_ms * 1000000u);
        return;
    }
    real_close(fd);
    result(p, err == 0);
}

static void begin(struct engine_task *t)
{
    struct checks *c = container_of(t, struct checks, task);
    uint64_t now = now_ns();
    for (size_t i = 0; i < c->n; i++)
        engine_timer_set(&c->probes[i].timer, now);
}

void health_start(struct service *svc)
{
    if (svc->cfg->health_check != HEALTH_TCP ||
        __atomic_load_n(&svc->health_started, __ATOMIC_ACQUIRE) ||
        __atomic_exchange_n(&svc->health_started, 1, __ATOMIC_ACQ_REL))
        return;
    int saved = errno;
    struct checks *c = calloc(1, sizeof(*c) + svc->n_endpoints * sizeof(c->probes[0]));
    if (!c) {
        log_error("%s: out of memory: health checks are off", svc->name);
        errno = saved;
        return;
    }
    c->n = svc->n_endpoints;
    c->task.run = begin;
    for (size_t i = 0; i < c->n; i++) {
        c->probes[i] = (struct probe){ .io = { .ready = probe_ready, .fd = -1 },
                                       .timer = { .fire = probe_due },
                                       .svc = svc, .endpoint = i };
    }
    if (!engine_post(&c->task)) {
        free(c);
        __atomic_store_n(&svc->health_started, 0, __ATOMIC_RELEASE);
    }
    errno = saved;
}
