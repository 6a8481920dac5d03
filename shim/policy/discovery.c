/*
 * discovery.c — DNS answers as endpoints (see discovery.h).
 *
 * Names are expanded by the resolver's dn_expand (compression pointers,
 * bounds); the fixed fields are read with <arpa/nameser.h>'s NS_GET16 and
 * NS_GET32. Every length is checked against the end of the message: the
 * answer comes from the network.
 */
#include "meshim/discovery.h"

#include <arpa/nameser.h>
#include <ctype.h>
#include <resolv.h>
#include <string.h>
#include "meshim/util.h"

static void lower(char *s)
{
    for (; *s; s++)
        *s = ascii_lower(*s);
    /* dn_expand writes no trailing dot; the root is "" */
}

/* Skips one name at p; returns the next byte or NULL. */
static const unsigned char *name_at(const unsigned char *msg, const unsigned char *eom,
                                    const unsigned char *p, char *out)
{
    int n = dn_expand(msg, eom, p, out, DNS_NAME_MAX);
    if (n < 0)
        return NULL;
    lower(out);
    return p + n;
}

static bool read_rr(const unsigned char *msg, const unsigned char *eom, const unsigned char **pp,
                    struct dns_record *r, bool *keep)
{
    const unsigned char *p = name_at(msg, eom, *pp, r->owner);
    if (!p || eom - p < 10)
        return false;
    uint16_t type, class, rdlen;
    uint32_t ttl;
    NS_GET16(type, p);
    NS_GET16(class, p);
    NS_GET32(ttl, p);
    NS_GET16(rdlen, p);
    if (eom - p < rdlen)
        return false;
    const unsigned char *rdata = p;
    *pp = p + rdlen;
    r->type = type;
    r->ttl = ttl;
    *keep = false;
    if (class != ns_c_in)
        return true;
    if (type == ns_t_a && rdlen == 4) {
        r->addr = (struct netaddr){ .family = AF_INET };
        memcpy(&r->addr.ip.v4, rdata, 4);
        *keep = true;
    } else if (type == ns_t_aaaa && rdlen == 16) {
        r->addr = (struct netaddr){ .family = AF_INET6 };
        memcpy(&r->addr.ip.v6, rdata, 16);
        *keep = true;
    } else if (type == ns_t_srv && rdlen > 6) {
        const unsigned char *q = rdata;
        NS_GET16(r->priority, q);
        NS_GET16(r->weight, q);
        NS_GET16(r->port, q);
        if (!name_at(msg, rdata + rdlen, q, r->target))
            return false;
        *keep = true;
    }
    return true;
}

int dns_parse(const unsigned char *msg, int len, struct dns_record *out, int cap)
{
    if (len < NS_HFIXEDSZ)
        return -1;
    const unsigned char *eom = msg + len, *p = msg + 4;
    uint16_t qd, an, ns, ar;
    NS_GET16(qd, p);
    NS_GET16(an, p);
    NS_GET16(ns, p);
    NS_GET16(ar, p);
    char name[DNS_NAME_MAX];
    for (unsigned i = 0; i < qd; i++) {
        if (!(p = name_at(msg, eom, p, name)) || eom - p < 4)
            return -1;
        p += 4;                                     /* type, class */
    }
    int n = 0;
    unsigned total = (unsigned)an + ns + ar;
    for (unsigned i = 0; i < total; i++) {
        struct dns_record r;
        memset(&r, 0, sizeof(r));
        bool keep;
        if (!read_rr(msg, eom, &p, &r, &keep))
            return -1;
        if (i >= an && i < (unsigned)an + ns)
            continue;                               /* authority: not ours */
        r.section = i < an ? DNS_ANSWER : DNS_ADDITIONAL;
        if (keep && n < cap)
            out[n++] = r;
    }
    return n;
}

uint32_t discovery_ttl_s(uint32_t ttl)
{
    if (ttl < DISCOVERY_TTL_MIN_S)
        return DISCOVERY_TTL_MIN_S;
    return ttl > DISCOVERY_TTL_MAX_S ? DISCOVERY_TTL_MAX_S : ttl;
}

uint32_t discovery_srv_weight(uint16_t weight)
{
    return weight ? (uint32_t)weight * 100u : 1u;
}

size_t discovery_srv_endpoints(const struct dns_record *recs, size_t n, struct endpoint_spec *out,
                               size_t cap)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        const struct dns_record *srv = &recs[i];
        if (srv->section != DNS_ANSWER || srv->type != ns_t_srv || srv->port == 0)
            continue;
        for (size_t j = 0; j < n && count < cap; j++) {
            const struct dns_record *a = &recs[j];
            if ((a->type != ns_t_a && a->type != ns_t_aaaa) || strcmp(a->owner, srv->target) != 0)
                continue;
            out[count] = (struct endpoint_spec){ .addr = a->addr,
                                                 .weight = discovery_srv_weight(srv->weight),
                                                 .priority = srv->priority };
            out[count++].addr.port = srv->port;
        }
    }
    return count;
}
