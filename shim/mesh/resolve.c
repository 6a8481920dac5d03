/*
 * resolve.c — service names in the resolver calls (SPEC §3.2).
 *
 * getaddrinfo answers a service host with its VIP by asking the real
 * getaddrinfo for the numeric VIP, so the result is allocated by libc and
 * freed by the ordinary freeaddrinfo. IPv6 callers get the IPv4-mapped VIP,
 * which an AF_INET6 socket can connect to, and so do callers of any family
 * when the service has IPv6 endpoints (answer_ipv6). The gethostby* calls fill a
 * hostent in the caller's (or a per-thread) buffer; getnameinfo and
 * gethostbyaddr answer a VIP with the service's name. Everything else goes
 * to the real resolver untouched.
 *
 * A Go program is the exception: it connects with its own system calls, so
 * getaddrinfo answers it with the endpoints' addresses (endpoint_answer).
 *
 * A program may leave a lookup by siglongjmp from a signal handler (GNU
 * wget's --timeout bounds its getaddrinfo with alarm(); older code bounds
 * gethostbyname so). getaddrinfo's answer for a service name takes the
 * service's lock and allocates (the result is malloc's), so it holds the
 * program's asynchronous signals from start to end, as a blocking connect
 * does (connect.c, connect_held), and lets them in only while it waits for
 * a service's first DNS answer (watch_wait, with the program's own mask):
 * a jump leaves from that wait, never from the middle of the work. Before,
 * a jump from the work could leave the lock held, and every later lookup
 * and connect of that service in the process waited for good (t_jump's
 * lookup storm). The gethostby* and getnameinfo answers take no lock and
 * allocate nothing: they hold nothing. A name that is not a service's goes
 * to the C library as it would without the shim.
 */
#include "mesh/resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/health.h"
#include "engine/watch.h"
#include "libc/jumpguard.h"
#include "libc/program.h"
#include "libc/real.h"
#include "mesh/attempt.h"
#include "observe/log.h"
#include "meshim/mesh.h"

const char *resolve_vip_name(const struct service *svc)
{
    const struct service_config *cfg = service_cfg(svc);
    for (size_t i = 0; i < cfg->hosts.n; i++)
        if (cfg->hosts.v[i][0] != '*')
            return cfg->hosts.v[i];
    return svc->name;
}

/* The real getaddrinfo's answer for one numeric address (IPv4 text; with
 * AF_INET6 hints its IPv4-mapped form), appended to the list at *tail. */
static int numeric_answer(const struct netaddr *a, const char *service, const struct addrinfo *h,
                          struct addrinfo ***tail)
{
    char ip[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN + 8];
    inet_ntop(a->family, &a->ip, ip, sizeof(ip));
    snprintf(text, sizeof(text), "%s%s",
             a->family == AF_INET && h->ai_family == AF_INET6 ? "::ffff:" : "", ip);
    struct addrinfo *r = NULL;
    int rc = real_getaddrinfo(text, service, h, &r);
    if (rc)
        return rc;
    **tail = r;
    while (r->ai_next)
        r = r->ai_next;
    *tail = &r->ai_next;
    return 0;
}

/* Go dials with its own system calls (program.h): a VIP would lead nowhere,
 * so such a program gets the endpoints' own addresses, usable ones first.
 * Its dialer tries them in order: it reaches them and fails over, without
 * retries, balancing or mTLS. A service that wants mTLS gets no answer: the
 * program would speak plaintext to it. */
static int endpoint_answer(struct service *svc, const char *service, const struct addrinfo *h,
                           struct addrinfo **res)
{
    static int told;
    if (service_cfg(svc)->tls == TLS_MTLS) {
        log_warn("%s: not resolved: this Go program connects without libc, so the shim "
                 "cannot give its connections the mTLS this service requires", svc->name);
        return EAI_FAIL;
    }
    if (!__atomic_exchange_n(&told, 1, __ATOMIC_RELAXED))
        log_info("this is a Go program: it connects without libc, so service names resolve to "
                 "endpoint addresses; no retries, balancing or mTLS for this program");
    struct netaddr addrs[64];
    size_t n = pick_addresses(svc, addrs, sizeof(addrs) / sizeof(addrs[0]));
    struct addrinfo **tail = res;
    *res = NULL;
    /* Numeric addresses of the hints' family: an error (memory, an unknown
     * service name) would be the same for every one of them. */
    int rc = EAI_NONAME;
    for (size_t i = 0; i < n; i++)
        if ((addrs[i].family == AF_INET || h->ai_family != AF_INET) &&
            (rc = numeric_answer(&addrs[i], service, h, &tail)) != 0)
            break;
    if (rc && *res) {
        freeaddrinfo(*res);
        *res = NULL;
    }
    return rc;
}

/* Should an AF_UNSPEC caller get the IPv4-mapped VIP? Yes when the service
 * has an IPv6 endpoint: the caller then makes an AF_INET6 socket, which
 * reaches endpoints of both families, where an AF_INET one would reach only
 * the IPv4 ones (none, in an IPv6-only cluster). A service found by DNS is
 * asked first, as the real resolver would wait for its server. */
static bool answer_ipv6(struct service *svc)
{
    watch_wait(svc, service_cfg(svc)->connect_timeout_ms);
    return pick_has_ipv6(svc);
}

/* The service whose name getaddrinfo answers for node, or NULL: the real
 * resolver's. AI_NUMERICHOST asks whether node is an address written out
 * (squid's and ssh's test for one): a service name is not, as without the
 * shim. Families other than the IP ones are not the mesh's either. */
static struct service *answering(struct registry *reg, const char *node, const struct addrinfo *hints)
{
    if (!node || (hints && (hints->ai_flags & AI_NUMERICHOST)))
        return NULL;
    if (hints && hints->ai_family != AF_UNSPEC && hints->ai_family != AF_INET &&
        hints->ai_family != AF_INET6)
        return NULL;
    return registry_by_name(reg, node);
}

/* getaddrinfo's answer for node, the name of svc. */
static int answer(struct service *svc, const char *node, const char *service,
                  const struct addrinfo *hints, struct addrinfo **res)
{
    health_start(svc);      /* a connect is likely to follow: check ahead of it */
    watch_start();          /* and discover its endpoints ahead of it */

    /* glibc's defaults when hints is NULL. */
    struct addrinfo h = { .ai_flags = AI_V4MAPPED | AI_ADDRCONFIG, .ai_family = AF_UNSPEC };
    if (hints)
        h = *hints;

    bool canon = h.ai_flags & AI_CANONNAME;
    /* Numeric now; AI_ADDRCONFIG would drop a loopback VIP on hosts whose
     * only IPv4 address is loopback. */
    h.ai_flags = (h.ai_flags | AI_NUMERICHOST) & ~(AI_ADDRCONFIG | AI_CANONNAME | AI_V4MAPPED | AI_ALL);
    h.ai_canonname = NULL;
    h.ai_addr = NULL;
    h.ai_next = NULL;
    int rc;
    if (program_is_go()) {
        rc = endpoint_answer(svc, service, &h, res);
    } else {
        struct netaddr vip = { .family = AF_INET, .ip.v4 = svc->vip };
        struct addrinfo **tail = res;
        if (h.ai_family == AF_UNSPEC && answer_ipv6(svc))
            h.ai_family = AF_INET6;
        rc = numeric_answer(&vip, service, &h, &tail);
    }
    if (rc == 0 && canon && *res) {
        /* glibc frees ai_canonname with free(): a strdup is ours to give. */
        (*res)->ai_canonname = strdup(node);
        if (!(*res)->ai_canonname) {
            freeaddrinfo(*res);
            *res = NULL;
            return EAI_MEMORY;
        }
    }
    return rc;
}

/* answer(), with the program's asynchronous signals held but while it
 * waits (the top of this file). */
struct answer_hold {
    struct jump_guard guard;        /* a jump from the wait: the section's count back */
    struct signals_held held;
};

static void answer_left(void *arg)
{
    signals_left(&((struct answer_hold *)arg)->held);
}

static int answer_held(struct service *svc, const char *node, const char *service,
                       const struct addrinfo *hints, struct addrinfo **res)
{
    struct answer_hold h;
    signals_hold(&h.held);
    jump_guard_push(&h.guard, answer_left, &h);
    int rc = answer(svc, node, service, hints, res);
    jump_guard_pop(&h.guard);
    signals_release(&h.held);
    return rc;
}

int meshim_getaddrinfo(struct registry *reg, const char *node, const char *service,
                       const struct addrinfo *hints, struct addrinfo **res)
{
    struct service *svc = answering(reg, node, hints);
    return svc ? answer_held(svc, node, service, hints, res) : real_getaddrinfo(node, service, hints, res);
}

/* getaddrinfo_a's notification for a list the mesh answered whole (glibc
 * gives it when the last of its requests ends; it has none here): the
 * signal, or the function on a thread of its own. A thread that cannot be
 * made runs the function here, before the call returns: late, never lost. */
struct gai_notice {
    void (*fn)(union sigval);
    union sigval value;
};

static void *gai_notice_run(void *arg)
{
    struct gai_notice n = *(struct gai_notice *)arg;
    sigset_t none;                  /* glibc's notification thread blocks nothing */
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    free(arg);
    n.fn(n.value);
    return NULL;
}

static void gai_notify(const struct sigevent *sev)
{
    if (sev->sigev_notify == SIGEV_SIGNAL) {
        sigqueue(getpid(), sev->sigev_signo, sev->sigev_value);
        return;
    }
    if (sev->sigev_notify != SIGEV_THREAD || !sev->sigev_notify_function)
        return;
    /* The program's thread attributes as it gave them, else a detached
     * thread: as glibc's notification does. */
    struct gai_notice *n = malloc(sizeof(*n));
    pthread_attr_t own, *attr = sev->sigev_notify_attributes;
    pthread_t t;
    bool started = false;
    if (n && (attr || pthread_attr_init(attr = &own) == 0)) {
        *n = (struct gai_notice){ sev->sigev_notify_function, sev->sigev_value };
        if (attr == &own)
            pthread_attr_setdetachstate(&own, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&t, attr, gai_notice_run, n) == 0;
        if (attr == &own)
            pthread_attr_destroy(&own);
    }
    if (!started) {
        free(n);
        sev->sigev_notify_function(sev->sigev_value);
    }
}

/* getaddrinfo_a (glibc's asynchronous look-ups) answers its requests on
 * threads of its own, whose getaddrinfo is the C library's, bound inside
 * it: no hook sees it, and a service name went to DNS and failed (vibe.d's
 * resolver, OpenThread's). The requests for names the mesh answers are
 * answered here, at once, as getaddrinfo answers them (gai_error,
 * gai_suspend and gai_cancel then see them done); the others go to glibc's
 * with the notification, which is given here when none is left for it. */
int meshim_getaddrinfo_a(struct registry *reg, int mode, struct gaicb *list[], int n,
                         struct sigevent *sev)
{
    if (mode != GAI_WAIT && mode != GAI_NOWAIT)    /* glibc's error, nothing answered */
        return real_getaddrinfo_a(mode, list, n, sev);
    struct gaicb **rest = n > 0 ? calloc((size_t)n, sizeof(*rest)) : NULL;
    if (n > 0 && !rest)
        return EAI_MEMORY;
    int left = 0, answered = 0;
    for (int i = 0; i < n; i++) {
        struct gaicb *r = list[i];
        struct service *svc = r ? answering(reg, r->ar_name, r->ar_request) : NULL;
        if (svc) {
            r->ar_result = NULL;
            r->__return = answer_held(svc, r->ar_name, r->ar_service, r->ar_request, &r->ar_result);
            answered++;
        } else {
            rest[left++] = r;
        }
    }
    int rc = 0;
    if (left || !answered)          /* rest is list when none was a service's */
        rc = real_getaddrinfo_a(mode, rest, left, sev);
    else if (mode == GAI_NOWAIT && sev)
        gai_notify(sev);
    free(rest);
    return rc;
}

/* Lays out a hostent with one name, no aliases and one address in buf.
 * Returns 0 or ERANGE. */
static int fill_hostent(const char *name, int af, const void *addr, struct hostent *ret, char *buf,
                        size_t buflen)
{
    size_t addr_len = af == AF_INET6 ? 16 : 4;
    size_t name_len = strlen(name) + 1;
    uintptr_t p = (uintptr_t)buf;
    uintptr_t aligned = (p + sizeof(char *) - 1) & ~(uintptr_t)(sizeof(char *) - 1);
    size_t need = (aligned - p) + 3 * sizeof(char *) + 16 + name_len;
    if (buflen < need)
        return ERANGE;
    char **ptrs = (char **)aligned;         /* aliases[0], addr_list[0..1] */
    char *addr_copy = (char *)(ptrs + 3);
    char *name_copy = addr_copy + 16;
    memcpy(addr_copy, addr, addr_len);
    memcpy(name_copy, name, name_len);
    ptrs[0] = NULL;
    ptrs[1] = addr_copy;
    ptrs[2] = NULL;
    ret->h_name = name_copy;
    ret->h_aliases = &ptrs[0];
    ret->h_addrtype = af;
    ret->h_length = (int)addr_len;
    ret->h_addr_list = &ptrs[1];
    return 0;
}

int meshim_gethostbyname_r(struct registry *reg, const char *name, int af, struct hostent *ret,
                           char *buf, size_t buflen, struct hostent **result, int *h_errnop,
                           bool *handled)
{
    struct service *svc = name ? registry_by_name(reg, name) : NULL;
    *handled = svc && (af == AF_INET || af == AF_INET6);
    if (!*handled)
        return 0;
    if (af == AF_INET6) {
        /* As glibc does for a name with only an A record: no IPv6 answer, so
         * callers such as `getent hosts` fall back to AF_INET. getaddrinfo
         * with AF_INET6 hints does get the IPv4-mapped VIP. */
        *result = NULL;
        if (h_errnop)
            *h_errnop = NO_DATA;
        return 0;
    }
    int rc = fill_hostent(name, AF_INET, &svc->vip, ret, buf, buflen);
    *result = rc ? NULL : ret;
    if (h_errnop)
        *h_errnop = rc ? NETDB_INTERNAL : 0;
    return rc;
}

/* The service behind an IPv4 VIP or its IPv4-mapped IPv6 form. */
static struct service *service_of_vip(struct registry *reg, const void *addr, socklen_t len, int af)
{
    struct in_addr v4;
    if (af == AF_INET && len == 4) {
        memcpy(&v4, addr, 4);
    } else if (af == AF_INET6 && len == 16 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)addr)) {
        memcpy(&v4, (const unsigned char *)addr + 12, 4);
    } else {
        return NULL;
    }
    return registry_by_vip(reg, v4);
}

int meshim_gethostbyaddr_r(struct registry *reg, const void *addr, socklen_t len, int type,
                           struct hostent *ret, char *buf, size_t buflen, struct hostent **result,
                           int *h_errnop, bool *handled)
{
    struct service *svc = addr ? service_of_vip(reg, addr, len, type) : NULL;
    *handled = svc != NULL;
    if (!svc)
        return 0;
    int rc = fill_hostent(resolve_vip_name(svc), type, addr, ret, buf, buflen);
    *result = rc ? NULL : ret;
    if (h_errnop)
        *h_errnop = rc ? NETDB_INTERNAL : 0;
    return rc;
}

int meshim_getnameinfo(struct registry *reg, const struct sockaddr *sa, socklen_t salen, char *host,
                       socklen_t hostlen, char *serv, socklen_t servlen, int flags, bool *handled)
{
    struct netaddr a;
    struct service *svc = NULL;
    *handled = false;
    if (!host || hostlen == 0 || (flags & NI_NUMERICHOST) || !sa ||
        !netaddr_from_sockaddr(sa, salen, &a) || a.family != AF_INET ||
        !(svc = registry_by_vip(reg, a.ip.v4)))
        return 0;
    *handled = true;
    const char *name = resolve_vip_name(svc);
    if (strlen(name) >= hostlen)
        return EAI_OVERFLOW;
    if (serv && servlen) {
        int rc = real_getnameinfo(sa, salen, NULL, 0, serv, servlen, flags);
        if (rc)
            return rc;
    }
    strcpy(host, name);
    return 0;
}
