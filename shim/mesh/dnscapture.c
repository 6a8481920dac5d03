/*
 * dnscapture.c — service names in a program's own DNS queries (see
 * dnscapture.h).
 *
 * A VIP's reverse name (PTR, "y.x.77.127.in-addr.arpa") is answered with
 * the service's name, as getnameinfo answers it.
 *
 * Nothing is kept per query: the name server's response carries its
 * question, and that is what decides. So a response is answered the same
 * way however many queries are in flight, whichever socket or thread reads
 * it, and a MSG_PEEK and the read after it see the same answer.
 */
#include "mesh/dnscapture.h"

#include <arpa/nameser.h>
#include <errno.h>
#include <string.h>

#include "engine/health.h"
#include "engine/watch.h"
#include "libc/real.h"
#include "mesh/attempt.h"
#include "mesh/fdtable.h"
#include "mesh/resolve.h"
#include "meshim/dnsreply.h"
#include "meshim/mesh.h"
#include "observe/log.h"

#define DNS_PORT 53

bool dnscapture_live;

/* A datagram socket not yet watched: what the kernel says, for a number
 * the socket hook did not see made (a socket from before the shim's
 * config, or inherited). */
static bool unwatched_datagram(int fd)
{
    enum fd_kind kind = fdtable_kind(fd);
    if (kind == FD_DNS || kind == FD_TCP || kind == FD_KTLS || kind == FD_UDP_VIP)
        return false;
    int saved = errno;
    bool dgram = real_getsockopt_int(fd, SOL_SOCKET, SO_TYPE) == SOCK_DGRAM;
    errno = saved;
    return dgram;
}

/* A name server's address: any on port 53, or `[meshim] dns_server`
 * (Consul's 127.0.0.1:8600, which a program may be given too). */
static bool name_server(const struct mesh_config *cfg, const struct netaddr *to)
{
    const struct netaddr *ns = &cfg->dns_server_addr;
    return to->port == DNS_PORT || (ns->port && ns->port == to->port && netaddr_same_ip(ns, to));
}

void dnscapture_note(const struct registry *reg, int fd, const struct sockaddr *addr, socklen_t len)
{
    struct netaddr to;
    if (!reg->cfg->dns_capture || !netaddr_from_sockaddr(addr, len, &to) || !name_server(reg->cfg, &to) ||
        !unwatched_datagram(fd))
        return;
    fdtable_set_kind(fd, FD_DNS);
    __atomic_store_n(&dnscapture_live, true, __ATOMIC_RELEASE);
}

/* The service's addresses for a question of this type: its VIP for A; for
 * AAAA the IPv4-mapped VIP when the service has IPv6 endpoints (as
 * getaddrinfo answers AF_UNSPEC then: resolve.c), else none. */
static size_t addresses(struct service *svc, uint16_t type, struct netaddr *out)
{
    if (type == ns_t_a) {
        out[0] = (struct netaddr){ .family = AF_INET, .ip.v4 = svc->vip };
        return 1;
    }
    if (type == ns_t_aaaa && pick_has_ipv6(svc)) {
        out[0] = (struct netaddr){ .family = AF_INET6 };
        out[0].ip.v6.s6_addr[10] = out[0].ip.v6.s6_addr[11] = 0xff;
        memcpy(&out[0].ip.v6.s6_addr[12], &svc->vip, 4);
        return 1;
    }
    return 0;
}

/* A VIP's reverse name (PTR): the service's name, as getnameinfo answers
 * it. 0 with *svc NULL when the question is not one; else as
 * dns_reply_build_ptr. */
static size_t reverse(const struct registry *reg, unsigned char *buf, size_t cap,
                      const struct dns_question *q, struct service **svc)
{
    struct in_addr vip;
    if (q->type != ns_t_ptr || !dns_reply_ptr_address(q->name, &vip) || !(*svc = registry_by_vip(reg, vip)))
        return 0;
    return dns_reply_build_ptr(buf, cap, q, resolve_vip_name(*svc), DNS_REPLY_TTL_S);
}

/* A service name's question (A, AAAA or another type): its addresses.
 * 0 with *svc NULL when the name is not a service's; else as
 * dns_reply_build. */
static size_t forward(const struct registry *reg, unsigned char *buf, size_t cap,
                      const struct dns_question *q, struct service **svc)
{
    if (!(*svc = registry_by_name(reg, q->name)))
        return 0;
    health_start(*svc);     /* a connect is likely to follow, as after getaddrinfo */
    watch_start();
    struct netaddr addrs[1];
    return dns_reply_build(buf, cap, q, addrs, addresses(*svc, q->type, addrs), DNS_REPLY_TTL_S);
}

/* The length the program is given; *answered when buf now holds the
 * shim's answer. */
static ssize_t answer(int fd, void *buf, ssize_t n, size_t cap, bool *answered)
{
    struct registry *reg = mesh_registry();
    struct dns_question q;
    struct service *svc = NULL;
    /* n past cap: MSG_TRUNC's whole length of a datagram cut short. */
    if (n <= 0 || (size_t)n > cap || !reg || !reg->cfg->dns_capture ||
        !dns_reply_question(buf, (size_t)n, &q) || q.class != ns_c_in)
        return n;
    size_t len = reverse(reg, buf, cap, &q, &svc);
    if (!svc)
        len = forward(reg, buf, cap, &q, &svc);
    if (!svc)
        return n;           /* not the mesh's name: the server's answer */
    if (!len) {
        log_warn("%s: the DNS answer read on descriptor %d left as the name server sent it: "
                 "the program's buffer (%zu bytes) has no room for the service's record",
                 svc->name, fd, cap);
        return n;
    }
    log_debug("%s: the DNS answer to this program's own query (type %u) is the service's", svc->name,
              q.type);
    *answered = true;
    return (ssize_t)len;
}

ssize_t dnscapture_received(int fd, void *buf, ssize_t n, size_t cap)
{
    bool answered = false;
    return answer(fd, buf, n, cap, &answered);
}

/* A response this large is not one the shim answers: its question and one
 * record fit in a few hundred bytes. */
#define GATHER_MAX 4096

ssize_t dnscapture_receivedv(int fd, const struct iovec *iov, size_t iovcnt, ssize_t n)
{
    if (n <= 0 || !iov || iovcnt == 0)
        return n;
    if (iovcnt == 1)
        return dnscapture_received(fd, iov[0].iov_base, n, iov[0].iov_len);
    unsigned char flat[GATHER_MAX];
    size_t cap = 0, got = 0;
    for (size_t i = 0; i < iovcnt; i++)
        cap += iov[i].iov_len;
    if ((size_t)n > sizeof(flat))
        return n;
    cap = cap < sizeof(flat) ? cap : sizeof(flat);
    for (size_t i = 0; i < iovcnt && got < (size_t)n; i++) {
        size_t k = iov[i].iov_len < (size_t)n - got ? iov[i].iov_len : (size_t)n - got;
        memcpy(flat + got, iov[i].iov_base, k);
        got += k;
    }
    bool answered = false;
    ssize_t len = answer(fd, flat, n, cap, &answered);
    if (!answered)
        return n;
    size_t put = 0;
    for (size_t i = 0; i < iovcnt && put < (size_t)len; i++) {
        size_t k = iov[i].iov_len < (size_t)len - put ? iov[i].iov_len : (size_t)len - put;
        memcpy(iov[i].iov_base, flat + put, k);
        put += k;
    }
    return len;
}
