/*
 * pskhello.c — reading a ClientHello for a resumption without a key
 * exchange (see pskhello.h). Every length is checked against what is left:
 * the bytes are the client's.
 */
#include "meshim/pskhello.h"

#define PSK_MODE_KE 0               /* psk_ke: no (EC)DHE */

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* A list of 2-byte values after a 2-byte length, whole? */
static bool list16_whole(const unsigned char *p, size_t len)
{
    return p && len >= 2 && get16(p) == len - 2 && (len - 2) % 2 == 0;
}

/* Does such a list hold v? */
static bool list16_has(const unsigned char *p, size_t len, unsigned v)
{
    if (!list16_whole(p, len))
        return false;
    for (size_t i = 2; i < len; i += 2)
        if (get16(p + i) == v)
            return true;
    return false;
}

/* A list of 1-byte values after a 1-byte length: does it hold v? */
static bool list8_has(const unsigned char *p, size_t len, unsigned v)
{
    if (!p || len < 1 || p[0] != len - 1)
        return false;
    for (size_t i = 1; i < len; i++)
        if (p[i] == v)
            return true;
    return false;
}

bool psk_hello_identity(const struct psk_hello *h, const unsigned char **id, size_t *len)
{
    if (!h->psk || !list8_has(h->modes, h->modes_len, PSK_MODE_KE) || !list16_whole(h->groups, h->groups_len) ||
        list16_has(h->groups, h->groups_len, PSKHELLO_DECOY))
        return false;
    /* identities<7..2^16-1>: { identity<1..2^16-1>, obfuscated_ticket_age u32 }... */
    const unsigned char *p = h->psk;
    size_t n = h->psk_len;
    if (n < 4)
        return false;
    size_t identities = get16(p), first = get16(p + 2);
    if (identities + 2 > n || first == 0 || 2 + first + 4 > identities)
        return false;
    *id = p + 4;
    *len = first;
    return true;
}

uint16_t psk_hello_suite(const unsigned char *ciphers, size_t len)
{
    for (size_t i = 0; i + 1 < len; i += 2) {
        uint16_t s = (uint16_t)get16(ciphers + i);
        if (psk_hello_suite_hash(s))
            return s;
    }
    return 0;
}

int psk_hello_suite_hash(uint16_t suite)
{
    switch (suite) {
    case 0x1301:                    /* TLS_AES_128_GCM_SHA256 */
    case 0x1303:                    /* TLS_CHACHA20_POLY1305_SHA256 */
        return 256;
    case 0x1302:                    /* TLS_AES_256_GCM_SHA384 */
        return 384;
    default:
        return 0;
    }
}
