/*
 * fuzz_endpoints.c — libFuzzer: an endpoints_file's text
 * (config_parse_endpoints), as an agent or an attacker may write it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshim/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = strndup((const char *)data, size);
    if (!text)
        return 0;
    struct endpoint_list l = { 0 };
    char err[512];
    if (config_parse_endpoints("fuzz.endpoints", text, &l, err, sizeof(err)))
        free(l.v);
    free(text);
    return 0;
}
