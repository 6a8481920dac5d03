/*
 * fuzz_sniff.c — libFuzzer: permissive inbound's first-bytes detector. Any
 * bytes, any length; beyond memory safety it checks what the relay relies
 * on: the verdict looks at SNIFF_BYTES at most, and more bytes can turn TLS
 * into plaintext but never plaintext into TLS (a client whose first segment
 * was judged plaintext would have been judged so on any longer one).
 */
#include <stdint.h>
#include <stdlib.h>

#include "meshim/sniff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum sniff_verdict whole = sniff_first_bytes(data, size);
    if (size > SNIFF_BYTES && sniff_first_bytes(data, SNIFF_BYTES) != whole)
        abort();            /* looked past SNIFF_BYTES */
    for (size_t n = 0; n < size && n < SNIFF_BYTES; n++)
        if (sniff_first_bytes(data, n) == SNIFF_PLAINTEXT && n > 0 && whole == SNIFF_TLS)
            abort();        /* plaintext on a prefix, TLS on more of it */
    return 0;
}
