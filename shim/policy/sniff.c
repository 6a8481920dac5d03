/*
 * sniff.c — TLS or plaintext from a client's first bytes (see sniff.h).
 */
#include "meshim/sniff.h"

#define TLS_CONTENT_HANDSHAKE 0x16
#define TLS_HANDSHAKE_CLIENT_HELLO 0x01
#define TLS_RECORD_MAX (16384 + 256)

enum sniff_verdict sniff_first_bytes(const unsigned char *buf, size_t n)
{
    if (n == 0 || buf[0] != TLS_CONTENT_HANDSHAKE)
        return SNIFF_PLAINTEXT;
    if (n > 1 && buf[1] != 0x03)
        return SNIFF_PLAINTEXT;
    if (n > 2 && buf[2] > 0x04)
        return SNIFF_PLAINTEXT;
    if (n > 4) {
        unsigned length = (unsigned)buf[3] << 8 | buf[4];
        if (length == 0 || length > TLS_RECORD_MAX)
            return SNIFF_PLAINTEXT;
    } else if (n > 3 && buf[3] > TLS_RECORD_MAX >> 8) {
        return SNIFF_PLAINTEXT;
    }
    if (n > 5 && buf[5] != TLS_HANDSHAKE_CLIENT_HELLO)
        return SNIFF_PLAINTEXT;
    return SNIFF_TLS;
}

uint64_t sniff_silent_for(uint32_t detect_ms, bool spoke)
{
    if (detect_ms == 0)
        return UINT64_MAX;
    return spoke || detect_ms > SNIFF_FIRST_BYTE_MS ? detect_ms : SNIFF_FIRST_BYTE_MS;
}
