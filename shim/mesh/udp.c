/*
 * udp.c — datagram sockets to a service VIP (see udp.h).
 *
 * Each such socket has a few routes, VIP and port -> endpoint and port,
 * kept in a table by descriptor number. Only sockets the descriptor table
 * marks FD_UDP_VIP are ever looked up, so every other socket's receive
 * costs one byte's load; a closed descriptor loses the mark (close and
 * the calls that reuse a number clear it) and its stale routes are never
 * read, then overwritten by the next socket that needs them. One lock for
 * the table: only the sockets concerned take it.
 */
#include "mesh/udp.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "libc/jumpguard.h"
#include "libc/real.h"
#include "mesh/attempt.h"
#include "mesh/fdtable.h"
#include "meshim/util.h"
#include "observe/log.h"

#define ROUTES_MAX 4            /* VIPs one socket sends to; a fifth replaces the oldest */
#define CHUNK_BITS 10
#define CHUNK_SLOTS (1u << CHUNK_BITS)
#define MAX_CHUNKS 1024         /* as fdtable.c: 2^20 descriptors */
#define CANDIDATES 16           /* endpoints looked at for one that this socket reaches */

struct route {
    struct netaddr vip;         /* with the application's port */
    struct netaddr ep;          /* with the port datagrams go to */
};

struct routes {
    unsigned n, next;           /* next: the slot a new route takes when all are used */
    struct route r[ROUTES_MAX];
};

/* A pointer per descriptor, in chunks made on first need; a descriptor's
 * routes are made the first time it needs them and kept for the next
 * socket at that number (a few hundred bytes each, only for UDP to VIPs). */
static struct routes **chunks[MAX_CHUNKS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Under lock. */
static struct routes *routes_of(int fd, bool create)
{
    if (fd < 0 || (unsigned)fd >= MAX_CHUNKS * CHUNK_SLOTS)
        return NULL;
    struct routes ***chunk = &chunks[(unsigned)fd >> CHUNK_BITS];
    if (!*chunk && create)
        *chunk = calloc(CHUNK_SLOTS, sizeof(**chunk));
    if (!*chunk)
        return NULL;
    struct routes **slot = &(*chunk)[(unsigned)fd & (CHUNK_SLOTS - 1)];
    if (!*slot && create)
        *slot = calloc(1, sizeof(**slot));
    return *slot;
}

static bool same(const struct netaddr *a, const struct netaddr *b)
{
    return a->port == b->port && netaddr_same_ip(a, b);
}

/* One of svc's endpoints that a socket of this family reaches: the usable
 * ones first, each call starting at the next (pick_addresses). */
static bool choose(struct service *svc, int family, bool v6only, uint16_t app_port, struct netaddr *ep)
{
    struct netaddr cand[CANDIDATES];
    size_t n = pick_addresses(svc, cand, CANDIDATES);
    for (size_t i = 0; i < n; i++) {
        bool v6 = cand[i].family == AF_INET6;
        if (family == AF_INET ? v6 : (v6only && !v6))
            continue;
        *ep = cand[i];
        ep->port = ep->port ? ep->port : app_port;
        return true;
    }
    return false;
}

/* Under lock: fd's route for this VIP, or NULL. */
static struct route *route_of(int fd, const struct netaddr *vip)
{
    struct routes *rs = fdtable_kind(fd) == FD_UDP_VIP ? routes_of(fd, false) : NULL;
    for (unsigned i = 0; rs && i < rs->n; i++)
        if (same(&rs->r[i].vip, vip))
            return &rs->r[i];
    return NULL;
}

/* The endpoint fd sends to for this VIP: the one it was given, unless
 * `fresh` (a connect: a conversation starts, and a program that connects
 * again after ECONNREFUSED gets the next endpoint), else a new route.
 * errno and false when there is none, or the service must not get
 * plaintext. */
static bool route_unheld(int fd, struct service *svc, const struct netaddr *vip, int family, bool fresh,
                  struct netaddr *ep)
{
    if (!service_meshes_port(svc, vip->port)) {     /* registry_vip_closed */
        log_warn("%s: port %u is not one of the service's ports: UDP refused", svc->name, vip->port);
        errno = ECONNREFUSED;
        return false;
    }
    pthread_mutex_lock(&lock);
    struct route *known = fresh ? NULL : route_of(fd, vip);
    if (known)
        *ep = known->ep;
    pthread_mutex_unlock(&lock);
    if (known)
        return true;

    svc = registry_split(svc, rng_thread());
    if (service_cfg(svc)->tls == TLS_MTLS) {
        log_warn("%s: UDP refused: the service is tls = mtls, and a datagram would go in the clear",
                 svc->name);
        errno = EPERM;
        return false;
    }
    bool v6only = family == AF_INET6 && real_getsockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY) == 1;
    if (!choose(svc, family, v6only, vip->port, ep)) {
        log_warn("%s: UDP: no endpoint an %s socket reaches", svc->name, family == AF_INET ? "IPv4" : "IPv6");
        errno = EHOSTUNREACH;
        return false;
    }

    pthread_mutex_lock(&lock);
    struct route *r = route_of(fd, vip);
    struct routes *rs = r ? NULL : routes_of(fd, true);
    if (rs) {
        if (fdtable_kind(fd) != FD_UDP_VIP)
            rs->n = rs->next = 0;       /* a number reused: the old socket's routes go */
        r = &rs->r[rs->n < ROUTES_MAX ? rs->n++ : rs->next++ % ROUTES_MAX];
    }
    if (r) {
        *r = (struct route){ .vip = *vip, .ep = *ep };
        fdtable_set_kind(fd, FD_UDP_VIP);
    }
    pthread_mutex_unlock(&lock);
    return true;                        /* out of memory: sent, not remembered */
}

/* The shim's work for a datagram in the program's thread (the routes'
 * lock, a pick, an allocation) holds the program's signals: old UDP
 * clients bound sendto and recvfrom with alarm() and leave them by
 * siglongjmp, and a jump out of this work left the lock held (jumpguard.h;
 * t_udp's storm). The waits in recvfrom and its kin are the program's and
 * are not held. */
static bool route(int fd, struct service *svc, const struct netaddr *vip, int family, bool fresh,
                  struct netaddr *ep)
{
    struct signals_held held;
    signals_hold(&held);
    bool ok = route_unheld(fd, svc, vip, family, fresh, ep);
    signals_release(&held);     /* errno is kept */
    return ok;
}

/* The service if addr is a VIP and fd a datagram socket, else NULL. */
static struct service *vip_service(const struct registry *reg, int fd, const struct sockaddr *addr,
                                   socklen_t len, struct netaddr *vip)
{
    struct service *svc;
    if (!addr || !netaddr_from_sockaddr(addr, len, vip) || vip->family != AF_INET ||
        !(svc = registry_by_vip(reg, vip->ip.v4)))
        return NULL;
    int saved = errno;
    bool dgram = fdtable_kind(fd) == FD_UDP_VIP || real_getsockopt_int(fd, SOL_SOCKET, SO_TYPE) == SOCK_DGRAM;
    errno = saved;
    return dgram ? svc : NULL;
}

int udp_connect(const struct registry *reg, int fd, const struct sockaddr *addr, socklen_t len)
{
    struct netaddr vip, ep;
    struct service *svc = vip_service(reg, fd, addr, len, &vip);
    if (!svc)
        return real_connect(fd, addr, len);
    if (!route(fd, svc, &vip, addr->sa_family, true, &ep))
        return -1;
    struct sockaddr_storage ss;
    socklen_t sl = netaddr_to_sockaddr(&ep, ep.port, addr->sa_family, &ss);
    return real_connect(fd, (struct sockaddr *)&ss, sl);
}

socklen_t udp_destination(const struct registry *reg, int fd, const struct sockaddr *addr,
                          socklen_t len, struct sockaddr_storage *out)
{
    struct netaddr vip, ep;
    struct service *svc = vip_service(reg, fd, addr, len, &vip);
    if (!svc)
        return 0;
    if (!route(fd, svc, &vip, addr->sa_family, false, &ep))
        return (socklen_t)-1;
    return netaddr_to_sockaddr(&ep, ep.port, addr->sa_family, out);
}

void udp_source(int fd, struct sockaddr *addr, socklen_t *len, socklen_t room)
{
    struct netaddr from;
    if (!addr || !len || !netaddr_from_sockaddr(addr, *len < room ? *len : room, &from))
        return;
    int family = addr->sa_family;
    struct signals_held held;       /* see route() */
    signals_hold(&held);
    pthread_mutex_lock(&lock);
    struct routes *rs = routes_of(fd, false);
    for (unsigned i = 0; rs && i < rs->n; i++) {
        if (same(&rs->r[i].ep, &from)) {
            struct sockaddr_storage ss;
            socklen_t sl = netaddr_to_sockaddr(&rs->r[i].vip, rs->r[i].vip.port, family, &ss);
            if (sl) {
                memcpy(addr, &ss, sl < room ? sl : room);
                *len = sl;
            }
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    signals_release(&held);
}

struct lent {
    struct sockaddr_storage to;
    socklen_t to_len;               /* 0: this datagram's address stays */
    void *name;                     /* the caller's */
    socklen_t len;
};

static int sendmmsg_unheld(const struct registry *reg, int fd, struct mmsghdr *vec, unsigned int n, int flags)
{
    struct lent *lent = NULL;
    for (unsigned int i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = udp_destination(reg, fd, vec[i].msg_hdr.msg_name, vec[i].msg_hdr.msg_namelen, &ss);
        if (sl == (socklen_t)-1) {
            if (i == 0)
                return -1;          /* lent is made only for a datagram after the first */
            n = i;
            break;
        }
        if (sl && !lent && !(lent = calloc(n, sizeof(*lent)))) {
            errno = ENOMEM;
            return -1;
        }
        if (sl)
            lent[i].to = ss, lent[i].to_len = sl;
    }
    if (!lent)
        return real_sendmmsg(fd, vec, n, flags);
    for (unsigned int i = 0; i < n; i++) {
        lent[i].name = vec[i].msg_hdr.msg_name;
        lent[i].len = vec[i].msg_hdr.msg_namelen;
        if (lent[i].to_len) {
            vec[i].msg_hdr.msg_name = &lent[i].to;
            vec[i].msg_hdr.msg_namelen = lent[i].to_len;
        }
    }
    int rc = real_sendmmsg(fd, vec, n, flags);
    int err = errno;
    for (unsigned int i = 0; i < n; i++) {
        vec[i].msg_hdr.msg_name = lent[i].name;
        vec[i].msg_hdr.msg_namelen = lent[i].len;
    }
    free(lent);
    errno = err;
    return rc;
}

/* Held whole, as route(): its one wait is a send on a full buffer. */
int udp_sendmmsg(const struct registry *reg, int fd, struct mmsghdr *vec, unsigned int n, int flags)
{
    struct signals_held held;
    signals_hold(&held);
    int rc = sendmmsg_unheld(reg, fd, vec, n, flags);
    signals_release(&held);
    return rc;
}

int udp_recvmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags, struct timespec *timeout)
{
    struct signals_held held;       /* around the allocation and the free, not the wait */
    signals_hold(&held);
    socklen_t few[16], *room = n <= 16 ? few : malloc(n * sizeof(*room));
    signals_release(&held);
    for (unsigned int i = 0; room && i < n; i++)
        room[i] = vec[i].msg_hdr.msg_namelen;
    int rc = real_recvmmsg(fd, vec, n, flags, timeout);
    int err = errno;
    for (int i = 0; room && i < rc; i++)
        if (vec[i].msg_hdr.msg_name)
            udp_source(fd, vec[i].msg_hdr.msg_name, &vec[i].msg_hdr.msg_namelen, room[i]);
    signals_hold(&held);
    if (room != few)
        free(room);
    signals_release(&held);
    errno = err;
    return rc;
}

void udp_share(int from, int to)
{
    struct signals_held held;       /* see route() */
    signals_hold(&held);
    pthread_mutex_lock(&lock);
    struct routes *src = routes_of(from, false), *dst = routes_of(to, true);
    if (src && dst)
        *dst = *src;
    else
        fdtable_set_kind(to, FD_NOT_TCP);   /* no routes to read there */
    pthread_mutex_unlock(&lock);
    signals_release(&held);
}

void udp_atfork_child(void)
{
    pthread_mutex_init(&lock, NULL);
}
