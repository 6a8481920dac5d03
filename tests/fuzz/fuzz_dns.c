/*
 * fuzz_dns.c — libFuzzer: a DNS answer from the network (dns_parse: A,
 * AAAA, SRV, compression pointers and their loops, truncation), then the
 * SRV records as endpoints.
 */
#include <stdint.h>
#include <stdlib.h>

#include "meshim/discovery.h"

#define CAP 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct dns_record recs[CAP];
    static struct endpoint_spec out[CAP];
    int n = dns_parse(data, (int)(size > 65536 ? 65536 : size), recs, CAP);
    if (n > 0)
        discovery_srv_endpoints(recs, (size_t)n, out, CAP);
    return 0;
}
