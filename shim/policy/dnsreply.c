/*
 * dnsreply.c — the shim's answer to a program's own DNS query for a
 * service name (see dnsreply.h).
 *
 * The answer is built over the name server's response in place: its
 * header and question stay where they are, so the program matches it to
 * its query as it would the server's (ID, question, case included: a
 * client that randomises the case of its names finds its own back), and
 * the answer records follow the question, their owner a compression
 * pointer to the question's name.
 */
#include "meshim/dnsreply.h"

#include <arpa/nameser.h>
#include <ctype.h>
#include <resolv.h>
#include <string.h>
#include "meshim/util.h"

#define HEADER_LEN 12
#define NAME_AT_QUESTION 0xc00c     /* a compression pointer to offset 12 */

/* Header flag bits, as <arpa/nameser.h>'s HEADER bit fields lay them out
 * (its NS_GET16 and NS_PUT16 read and write the words). */
#define F_QR 0x8000
#define F_OPCODE 0x7800
#define F_AA 0x0400
#define F_RD 0x0100
#define F_RA 0x0080
#define F_CD 0x0010

/* The length of the uncompressed name at p (labels, then the root), or 0
 * when it has a compression pointer or runs past eom. A question comes
 * first in its message, so a pointer in it could only point forward, into
 * records the answer replaces: such a message is not answered. */
static size_t plain_name_len(const unsigned char *p, const unsigned char *eom)
{
    const unsigned char *start = p;
    while (p < eom && *p != 0) {
        if (*p & 0xc0)
            return 0;
        p += 1 + *p;
    }
    return p < eom ? (size_t)(p + 1 - start) : 0;
}

bool dns_reply_question(const unsigned char *msg, size_t len, struct dns_question *q)
{
    if (!msg || len < HEADER_LEN || len > 65535)
        return false;
    uint16_t flags, questions;
    const unsigned char *h = msg + 2;
    NS_GET16(flags, h);
    NS_GET16(questions, h);
    if (!(flags & F_QR) || (flags & F_OPCODE) != 0 || questions != 1)
        return false;
    const unsigned char *eom = msg + len, *p = msg + HEADER_LEN;
    int n = dn_expand(msg, eom, p, q->name, sizeof(q->name));
    if (n < 0 || (size_t)n != plain_name_len(p, eom) || eom - (p + n) < 4)
        return false;
    for (char *c = q->name; *c; c++)
        *c = ascii_lower(*c);
    p += n;
    NS_GET16(q->type, p);
    NS_GET16(q->class, p);
    q->end = (size_t)(p - msg);
    return true;
}

static size_t rdata_len(uint16_t type)
{
    return type == ns_t_a ? 4 : type == ns_t_aaaa ? 16 : 0;
}

/* The header of an answer with `records` answer records, and nothing
 * after them. */
static void answer_header(unsigned char *msg, size_t records)
{
    uint16_t flags;
    const unsigned char *in = msg + 2;
    NS_GET16(flags, in);
    unsigned char *p = msg + 2;
    NS_PUT16(F_QR | F_AA | F_RA | (flags & (F_RD | F_CD)), p);
    p += 2;                                 /* questions: the one */
    NS_PUT16(records, p);                   /* answers */
    NS_PUT16(0, p);                         /* authority */
    NS_PUT16(0, p);                         /* additional */
}

/* An answer record's fixed part at p: its owner the question's name. */
static unsigned char *record_at(unsigned char *p, uint16_t type, uint32_t ttl, size_t rdlen)
{
    NS_PUT16(NAME_AT_QUESTION, p);
    NS_PUT16(type, p);
    NS_PUT16(ns_c_in, p);
    NS_PUT32(ttl, p);
    NS_PUT16(rdlen, p);
    return p;
}

size_t dns_reply_build(unsigned char *msg, size_t cap, const struct dns_question *q,
                       const struct netaddr *addrs, size_t n, uint32_t ttl)
{
    size_t rdlen = rdata_len(q->type);
    int family = q->type == ns_t_a ? AF_INET : AF_INET6;
    size_t records = 0;
    for (size_t i = 0; rdlen && i < n; i++)
        records += addrs[i].family == family;
    size_t len = q->end + records * (12 + rdlen);
    if (q->end < HEADER_LEN + 5 || len > cap || len > 65535)
        return 0;

    answer_header(msg, records);
    unsigned char *p = msg + q->end;
    for (size_t i = 0; rdlen && i < n; i++) {
        if (addrs[i].family != family)
            continue;
        p = record_at(p, q->type, ttl, rdlen);
        memcpy(p, family == AF_INET ? (const void *)&addrs[i].ip.v4 : (const void *)&addrs[i].ip.v6, rdlen);
        p += rdlen;
    }
    return len;
}

bool dns_reply_ptr_address(const char *name, struct in_addr *out)
{
    static const char SUFFIX[] = ".in-addr.arpa";
    size_t len = strlen(name), slen = sizeof(SUFFIX) - 1;
    if (len <= slen || strcmp(name + len - slen, SUFFIX) != 0)
        return false;
    unsigned char b[4];
    const char *p = name;
    for (int i = 3; i >= 0; i--) {
        unsigned v = 0, digits = 0;
        for (; *p >= '0' && *p <= '9' && digits < 3; p++, digits++)
            v = v * 10 + (unsigned)(*p - '0');
        if (!digits || v > 255 || (digits > 1 && p[-(int)digits] == '0'))
            return false;
        b[i] = (unsigned char)v;
        if (*p++ != '.')
            return false;
    }
    if (p != name + len - slen + 1)
        return false;               /* more labels than an address has */
    memcpy(out, b, 4);
    return true;
}

/* target as labels at out (room bytes): its length, or 0. */
static size_t name_wire(const char *target, unsigned char *out, size_t room)
{
    size_t used = 0;
    while (*target) {
        const char *dot = strchr(target, '.');
        size_t n = dot ? (size_t)(dot - target) : strlen(target);
        if (n == 0 || n > 63 || used + 1 + n + 1 > room || used + 1 + n + 1 > 255)
            return 0;
        out[used++] = (unsigned char)n;
        memcpy(out + used, target, n);
        used += n;
        target += n + (dot ? 1 : 0);
    }
    if (used == 0)
        return 0;
    out[used++] = 0;
    return used;
}

size_t dns_reply_build_ptr(unsigned char *msg, size_t cap, const struct dns_question *q,
                           const char *target, uint32_t ttl)
{
    unsigned char wire[256];
    size_t rdlen = name_wire(target, wire, sizeof(wire));
    size_t len = q->end + 12 + rdlen;
    if (!rdlen || q->type != ns_t_ptr || q->end < HEADER_LEN + 5 || len > cap)
        return 0;
    answer_header(msg, 1);
    memcpy(record_at(msg + q->end, q->type, ttl, rdlen), wire, rdlen);
    return len;
}
