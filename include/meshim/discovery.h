/*
 * discovery.h — what DNS answers mean for a service's endpoints (SPEC §3.4).
 *
 * Pure policy, for watch.c (which asks the questions, with the C library's
 * resolver, from its own thread) and the unit tests: reading the records
 * out of an answer, clamping their TTL, and turning SRV records and the
 * addresses of their targets into weighted, prioritised endpoints.
 */
#ifndef MESHIM_DISCOVERY_H
#define MESHIM_DISCOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "meshim/config.h"
#include "meshim/util.h"

/* How long a discovered set is kept before it is asked for again. */
#define DISCOVERY_TTL_MIN_S 1
#define DISCOVERY_TTL_MAX_S 300

#define DNS_NAME_MAX 256

enum dns_section { DNS_ANSWER, DNS_ADDITIONAL };

struct dns_record {
    enum dns_section section;
    int type;                       /* ns_t_a, ns_t_aaaa or ns_t_srv */
    char owner[DNS_NAME_MAX];       /* lower case, no trailing dot */
    uint32_t ttl;
    struct netaddr addr;            /* A, AAAA (port 0) */
    uint16_t priority, weight, port;
    char target[DNS_NAME_MAX];      /* SRV, lower case, no trailing dot */
};

/* The A, AAAA and SRV records of the answer and additional sections of a
 * DNS response (others are skipped). Returns how many were stored in out
 * (at most cap), or -1 when the message is malformed. */
int dns_parse(const unsigned char *msg, int len, struct dns_record *out, int cap);

/* A TTL in seconds, clamped to [DISCOVERY_TTL_MIN_S, DISCOVERY_TTL_MAX_S]. */
uint32_t discovery_ttl_s(uint32_t ttl);

/* The balancer weight of an SRV weight: proportional, and a weight of 0
 * gets a very small share when others are larger (RFC 2782). */
uint32_t discovery_srv_weight(uint16_t weight);

/* The endpoints of SRV records (section DNS_ANSWER, type SRV) whose target
 * has an address among addrs (A/AAAA records, any section): one per
 * address, with the record's port, priority and weight. Returns how many
 * were stored (at most cap). */
size_t discovery_srv_endpoints(const struct dns_record *recs, size_t n, struct endpoint_spec *out,
                               size_t cap);

#endif
