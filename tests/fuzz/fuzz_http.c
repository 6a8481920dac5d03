/*
 * fuzz_http.c — libFuzzer: the exporter's request head (exporter_route),
 * as any local client can send it: at most 8 KiB, NUL-terminated as read.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "exporter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char head[8192];
    size_t n = size < sizeof(head) - 1 ? size : sizeof(head) - 1;
    memcpy(head, data, n);
    head[n] = '\0';
    bool head_only;
    exporter_route(head, &head_only);
    return 0;
}
