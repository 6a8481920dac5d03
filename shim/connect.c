/*
 * connect.c — what connect() and accept() do for meshed destinations.
 *
 * A connect to a service VIP, or to one of a service's `addresses`, goes to
 * an endpoint the service's balancer picks, on the application's own socket
 * (so every option it set before connect applies). A blocking socket returns
 * when connected; a non-blocking one returns EINPROGRESS as usual. Anything
 * else — UDP, Unix sockets, other TCP — is passed through after one table
 * look-up.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "fdtable.h"
#include "hooks.h"
#include "log.h"
#include "mesh.h"

/* ------------------------------------------------------------ connection -- */

struct conn *conn_new(struct service *svc, size_t endpoint)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->refs = 1;
    c->svc = svc;
    c->endpoint = endpoint;
    c->started_ns = now_ns();
    __atomic_add_fetch(&svc->targets[endpoint].active, 1, __ATOMIC_RELAXED);
    return c;
}

void conn_ref(struct conn *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void conn_unref(struct conn *c)
{
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    __atomic_sub_fetch(&c->svc->targets[c->endpoint].active, 1, __ATOMIC_RELAXED);
    free(c);
}

/* --------------------------------------------------------------- connect -- */

/* Which endpoints a socket of this family can reach. */
struct reach {
    const struct service *svc;
    int family;
    bool v6only;
};

static bool reachable(size_t i, void *ctx)
{
    const struct reach *r = ctx;
    const struct netaddr *a = &r->svc->endpoints[i].addr;
    if (r->family == AF_INET)
        return a->family == AF_INET;
    return a->family == AF_INET6 || !r->v6only;
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

static ssize_t pick_endpoint(struct service *svc, struct reach *reach)
{
    pthread_mutex_lock(&svc->lock);
    ssize_t i = balancer_pick(&svc->balancer, reachable, reach, rng_thread(), now_ns());
    pthread_mutex_unlock(&svc->lock);
    return i;
}

static void observe_latency(struct service *svc, size_t i, uint64_t started)
{
    uint64_t now = now_ns();
    pthread_mutex_lock(&svc->lock);
    balancer_observe(&svc->targets[i], now - started, now);
    pthread_mutex_unlock(&svc->lock);
}

static int connect_endpoint(int fd, struct service *svc, size_t i, int family, uint16_t app_port,
                            struct conn *c)
{
    const struct endpoint *ep = &svc->endpoints[i];
    struct sockaddr_storage ss;
    uint16_t port = ep->addr.port ? ep->addr.port : app_port;
    socklen_t sslen = netaddr_to_sockaddr(&ep->addr, port, family, &ss);

    int rc = real_connect(fd, (struct sockaddr *)&ss, sslen);
    int err = errno;
    if (rc == 0 && c)
        observe_latency(svc, i, c->started_ns);
    if (rc < 0 && err != EINPROGRESS && err != EINTR && err != EALREADY && err != EISCONN) {
        struct netaddr to = ep->addr;
        char text[64];
        to.port = port;
        netaddr_format(&to, text, sizeof(text));
        log_warn("%s: connect to %s failed: %s", svc->name, text, strerror(err));
    }
    errno = err;
    return rc;
}

int meshim_connect(struct registry *reg, int fd, const struct sockaddr *addr, socklen_t len)
{
    struct netaddr dst;
    struct service *svc;
    if (!addr || !netaddr_from_sockaddr(addr, len, &dst) || !(svc = registry_match(reg, &dst)))
        return real_connect(fd, addr, len);

    int saved = errno;
    int type = socket_int(fd, SOL_SOCKET, SO_TYPE);
    int family = socket_int(fd, SOL_SOCKET, SO_DOMAIN);
    errno = saved;
    if (type != SOCK_STREAM || (family != AF_INET && family != AF_INET6))
        return real_connect(fd, addr, len);     /* UDP to a VIP is not meshed */

    if (svc->cfg->tls == TLS_MTLS) {
        /* Fail closed: mTLS is configured but not built in this version. */
        log_warn("%s: tls = mtls is not built yet in this version; refusing to connect in plaintext",
                 svc->name);
        return fail(ECONNREFUSED);
    }

    /* connect() again on a socket already meshed (polling a non-blocking
     * connect with connect, as some libraries do): same endpoint, so the
     * kernel answers EALREADY / EISCONN as for a plain socket. */
    struct conn *existing = fdtable_get(fd);
    if (existing && existing->svc == svc) {
        int rc = connect_endpoint(fd, svc, existing->endpoint, family, dst.port, NULL);
        conn_unref(existing);
        return rc;
    }
    conn_unref(existing);

    struct reach reach = { svc, family, false };
    if (family == AF_INET6)
        reach.v6only = socket_int(fd, IPPROTO_IPV6, IPV6_V6ONLY) == 1;
    ssize_t i = pick_endpoint(svc, &reach);
    if (i < 0) {
        log_warn("%s: no endpoint reachable from an %s socket", svc->name,
                 family == AF_INET ? "IPv4" : "IPv6");
        return fail(ECONNREFUSED);
    }
    struct conn *c = conn_new(svc, (size_t)i);
    if (!c)
        return fail(ENOMEM);
    conn_ref(c);
    fdtable_set(fd, c);     /* the table holds one reference, we hold one */

    int rc = connect_endpoint(fd, svc, (size_t)i, family, dst.port, c);
    int err = errno;
    if (rc < 0 && err != EINPROGRESS && err != EINTR) {
        /* Failed at once: the descriptor is an unconnected socket again. */
        struct conn *owned = fdtable_take(fd);
        conn_unref(owned);
    }
    conn_unref(c);
    errno = err;
    return rc;
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
        /* Fail closed: the port requires mTLS, which is not built yet in this
         * version. The client is disconnected and never reaches the
         * application; accept goes on with the next one (or EAGAIN). */
        log_warn("inbound:%u: tls = %s is not built yet in this version; refusing the connection",
                 in->port, in->tls == INBOUND_STRICT ? "strict" : "permissive");
        real_close(cfd);
    }
}
