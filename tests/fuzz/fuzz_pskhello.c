/*
 * fuzz_pskhello.c — libFuzzer: the ClientHello parts a psk-only server reads
 * (a client's bytes). The input is cut into the three extension bodies (the
 * first two bytes give the first two lengths), each copied to a buffer of
 * its own size, so that a read past one is ASan's to see. Beyond memory
 * safety: an identity returned lies inside the pre_shared_key body, and a
 * suite picked is one of the client's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshim/pskhello.h"

static unsigned char *piece(const uint8_t **data, size_t *size, size_t want, size_t *len)
{
    *len = want < *size ? want : *size;
    unsigned char *p = malloc(*len ? *len : 1);
    if (p && *len)
        memcpy(p, *data, *len);
    *data += *len;
    *size -= *len;
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t a = data[0], b = data[1];
    data += 2;
    size -= 2;
    struct psk_hello h;
    unsigned char *psk = piece(&data, &size, a, &h.psk_len);
    unsigned char *modes = piece(&data, &size, b, &h.modes_len);
    unsigned char *groups = piece(&data, &size, size, &h.groups_len);
    h.psk = psk, h.modes = modes, h.groups = groups;
    const unsigned char *id;
    size_t len;
    if (psk && modes && groups && psk_hello_identity(&h, &id, &len) &&
        (id < psk || len == 0 || id + len > psk + h.psk_len))
        abort();
    uint16_t suite = groups ? psk_hello_suite(groups, h.groups_len) : 0;
    if (suite && !psk_hello_suite_hash(suite))
        abort();
    free(psk);
    free(modes);
    free(groups);
    return 0;
}
