/*
 * dnsreply.h — the shim's answer to a program's own DNS query for a
 * service name.
 *
 * Programs with a DNS client of their own (nginx's `resolver`, HAProxy's
 * `resolvers`, c-ares) ask the name server over UDP, which knows nothing
 * of the mesh's names. The shim lets their query go out as it is, so that
 * the server's response makes the socket readable as it would have, and
 * when that response is for a service name it is read as the shim's own
 * answer: the service's VIP, as getaddrinfo gives it, and for a VIP's
 * reverse name the service's name, as getnameinfo gives it
 * (mesh/dnscapture.h).
 *
 * Pure policy over bytes from the network: every length is checked
 * against the message's end; names are read by the resolver's dn_expand.
 */
#ifndef MESHIM_DNSREPLY_H
#define MESHIM_DNSREPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdint.h>

#include "meshim/discovery.h"
#include "meshim/util.h"

/* How long a program may keep the answer: a VIP stays the service's for
 * as long as the config names it, and a reload that drops the service
 * should be seen soon. */
#define DNS_REPLY_TTL_S 30

/* Room for the answer records the shim gives: one address. */
#define DNS_REPLY_GROWTH (12 + 16)

struct dns_question {
    char name[DNS_NAME_MAX];    /* lower case, no trailing dot */
    uint16_t type, class;
    size_t end;                 /* offset of the byte after the question */
};

/* A response to a standard query (QR set, opcode QUERY) with exactly one
 * question: true and that question in *q. Anything else (a query, a
 * notify, a malformed message): false. */
bool dns_reply_question(const unsigned char *msg, size_t len, struct dns_question *q);

/* Rewrites the response in msg (its question q, as dns_reply_question
 * read it) into the shim's answer: the same ID, question and RD and CD
 * bits; authoritative, no error; `n` answer records of q's type (A: IPv4
 * addresses, AAAA: IPv6, each `addrs` entry of that family), TTL `ttl`;
 * no authority or additional records. n = 0 is "the name exists, but has
 * no record of this type". Returns the answer's length, or 0 (msg
 * untouched) when it does not fit in `cap` bytes. */
size_t dns_reply_build(unsigned char *msg, size_t cap, const struct dns_question *q,
                       const struct netaddr *addrs, size_t n, uint32_t ttl);

/* The IPv4 address a PTR question's name stands for ("4.3.2.1.in-addr.arpa",
 * lower case as dns_reply_question leaves it): true and *out; any other
 * name (a partial one, ip6.arpa): false. */
bool dns_reply_ptr_address(const char *name, struct in_addr *out);

/* As dns_reply_build, for a PTR question (q->type ns_t_ptr): one record
 * naming `target` (a host name, written out as labels). 0 (msg untouched)
 * when it does not fit in cap, or target is not a name a record can hold. */
size_t dns_reply_build_ptr(unsigned char *msg, size_t cap, const struct dns_question *q,
                           const char *target, uint32_t ttl);

#endif
