/*
 * fuzz_dns.c — libFuzzer: a DNS answer from the network (dns_parse: A,
 * AAAA, SRV, compression pointers and their loops, truncation), then the
 * SRV records as endpoints; and the same bytes as the name server's
 * response to a program's own query, rewritten into the shim's answer
 * (dnsreply.h; a PTR one too when its name is an address's) in a buffer
 * only just large enough, then read back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshim/discovery.h"
#include "meshim/dnsreply.h"

#define CAP 512

static void reply(const uint8_t *data, size_t size)
{
    static unsigned char msg[65536 + DNS_REPLY_GROWTH];
    struct dns_question q;
    if (size > 65535 || !dns_reply_question(data, size, &q))
        return;
    struct netaddr addrs[2] = { { .family = AF_INET }, { .family = AF_INET6 } };
    memcpy(msg, data, size);
    size_t len = dns_reply_build(msg, size + (size & 31), &q, addrs, 2, DNS_REPLY_TTL_S);
    if (len > size + (size & 31))
        abort();
    static struct dns_record recs[4];
    if (len && dns_parse(msg, (int)len, recs, 4) < 0)
        abort();        /* the shim's answer must read as a DNS message */
    struct in_addr vip;
    if (dns_reply_ptr_address(q.name, &vip)) {
        memcpy(msg, data, size);
        len = dns_reply_build_ptr(msg, size + (size & 31), &q, "orders.shop.svc", DNS_REPLY_TTL_S);
        if (len > size + (size & 31) || (len && dns_parse(msg, (int)len, recs, 4) < 0))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct dns_record recs[CAP];
    static struct endpoint_spec out[CAP];
    int n = dns_parse(data, (int)(size > 65536 ? 65536 : size), recs, CAP);
    if (n > 0)
        discovery_srv_endpoints(recs, (size_t)n, out, CAP);
    reply(data, size);
    return 0;
}
