/*
 * dnsmsg.h — DNS messages written out byte by byte, for the unit tests of
 * what reads them (test_discovery, test_dnsreply).
 */
#ifndef MESHIM_TEST_DNSMSG_H
#define MESHIM_TEST_DNSMSG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct msg {
    unsigned char b[2048];
    size_t n;
};

static inline void put16(struct msg *m, unsigned v)
{
    m->b[m->n++] = (unsigned char)(v >> 8);
    m->b[m->n++] = (unsigned char)v;
}

static inline void put32(struct msg *m, uint32_t v)
{
    put16(m, v >> 16);
    put16(m, v & 0xffff);
}

/* "a.b" as labels, then the root. */
static inline void put_name(struct msg *m, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t len = dot ? (size_t)(dot - name) : strlen(name);
        m->b[m->n++] = (unsigned char)len;
        memcpy(m->b + m->n, name, len);
        m->n += len;
        name += len + (dot ? 1 : 0);
    }
    m->b[m->n++] = 0;
}

#endif
