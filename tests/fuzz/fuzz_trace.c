/*
 * fuzz_trace.c — libFuzzer: what a request or a config brings to tracing
 * (policy/trace.c). The input, cut at its first newline into a traceparent
 * header's value and an otlp_endpoint URL. Beyond memory safety: a value
 * accepted is written back as the same 55 characters of version 00 when it
 * was version 00; ids accepted are never all zeros; a span whose texts are
 * the input encodes to OTLP/JSON without a raw control character, or not
 * at all (0), never cut.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshim/trace.h"

static void check_traceparent(const char *v)
{
    struct trace_context c;
    if (!trace_parse_traceparent(v, &c))
        return;
    int zero = 1;
    for (int i = 0; i < 16; i++)
        zero &= c.trace_id[i] == 0;
    if (zero)
        abort();
    char out[TRACEPARENT_LEN + 1];
    trace_format_traceparent(&c, out);
    out[TRACEPARENT_LEN] = '\0';
    const char *p = v + strspn(v, " \t");
    if (strncmp(p, "00-", 3) == 0 && strncmp(p, out, TRACEPARENT_LEN) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *nl = memchr(text, '\n', size);
    const char *url = nl ? nl + 1 : "";
    if (nl)
        *nl = '\0';
    check_traceparent(text);

    struct otlp_url u;
    if (!otlp_parse_url(url, &u) && (!*u.host || !*u.port || u.path[0] != '/'))
        abort();

    struct span s = { .kind = size % 2 ? SPAN_CLIENT : SPAN_SERVER, .status = (int)(size % 600) };
    SPAN_SET(s.method, text);
    SPAN_SET(s.path, url);
    SPAN_SET(s.authority, text);
    SPAN_SET(s.peer, url);
    SPAN_SET(s.service, text);
    SPAN_SET(s.error, url);
    static char json[16384];
    size_t n = otlp_encode(text, 1, &s, 1, json, sizeof(json));
    if (n && (strlen(json) != n || json[n - 1] != '}'))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)json[i] < 0x20)
            abort();
    free(text);
    return 0;
}
