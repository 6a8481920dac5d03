/*
 * fuzz_identity.c — libFuzzer: SAN and identity matching. The input is
 * "pattern\0uri\0uri2\0dns": a pattern against the names of a peer's
 * certificate, both glob modes, and the SPIFFE ID syntax checks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshim/identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *part[4] = { "", "", "", "" };
    size_t k = 0;
    for (size_t i = 0, start = 0; i <= size && k < 4; i++)
        if (buf[i] == '\0') {
            part[k++] = buf + start;
            start = i + 1;
        }
    identity_glob(part[0], part[1], false);
    identity_glob(part[0], part[3], true);
    identity_pattern_valid(part[0]);
    identity_spiffe_valid(part[1]);
    const char *uris[2] = { part[1], part[2] };
    const char *dns[1] = { part[3] };
    struct peer_names one = { uris, 1, dns, 1 }, two = { uris, 2, dns, 1 };
    const char *patterns[1] = { part[0] };
    identity_allowed(patterns, 1, &one);
    identity_allowed(patterns, 1, &two);
    char shown[128];
    identity_copy(shown, sizeof(shown), identity_name(&one));
    free(buf);
    return 0;
}
