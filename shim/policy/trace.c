/*
 * trace.c — W3C trace context, head sampling, spans in OTLP/JSON and the
 * collector's URL (trace.h). Pure functions: the caller owns every buffer.
 */
#include "meshim/trace.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "meshim/util.h"

/* ------------------------------------------------------------ traceparent -- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;          /* uppercase too: the recommendation says lowercase */
}

/* n bytes from 2n hex digits; false on a bad digit. */
static bool unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

bool trace_parse_traceparent(const char *value, struct trace_context *out)
{
    if (!value)
        return false;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t len = strlen(value);
    while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    uint8_t version;
    if (len < TRACEPARENT_LEN || !unhex(value, &version, 1) || version == 0xff)
        return false;
    if (version == 0 ? len != TRACEPARENT_LEN : len > TRACEPARENT_LEN && value[TRACEPARENT_LEN] != '-')
        return false;
    if (value[2] != '-' || value[35] != '-' || value[52] != '-')
        return false;
    struct trace_context c;
    if (!unhex(value + 3, c.trace_id, 16) || !unhex(value + 36, c.span_id, 8) ||
        !unhex(value + 53, &c.flags, 1))
        return false;
    if (all_zero(c.trace_id, 16) || all_zero(c.span_id, 8))
        return false;
    *out = c;
    return true;
}

void trace_hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char DIGITS[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = DIGITS[bytes[i] >> 4];
        out[2 * i + 1] = DIGITS[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

void trace_format_traceparent(const struct trace_context *c, char *buf)
{
    memcpy(buf, "00-", 3);
    trace_hex(c->trace_id, 16, buf + 3);
    buf[35] = '-';
    trace_hex(c->span_id, 8, buf + 36);
    buf[52] = '-';
    trace_hex(&c->flags, 1, buf + 53);
}

void trace_random_id(uint8_t *id, size_t n, uint64_t (*next)(void *), void *state)
{
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = next(state);
            size_t k = n - i < 8 ? n - i : 8;
            memcpy(id + i, &r, k);
        }
    } while (all_zero(id, n));
}

bool trace_sample(const uint8_t trace_id[16], double rate)
{
    if (rate >= 1.0)
        return true;
    if (rate <= 0.0)
        return false;
    uint64_t low = 0;
    for (int i = 8; i < 16; i++)
        low = low << 8 | trace_id[i];
    return (double)(low >> 1) < rate * 9223372036854775808.0;     /* 2^63 */
}

/* ------------------------------------------------------------------ spans -- */

void span_set(char *field, size_t size, const char *value)
{
    size_t n = value ? strnlen(value, size - 1) : 0;
    memcpy(field, value ? value : "", n);
    field[n] = '\0';
}

bool span_begin(struct span_ids *ids, const char *traceparent, const struct trace_context *inherited,
                double sample_rate, uint64_t (*next)(void *), void *state)
{
    struct trace_context parent;
    ids->has_parent = trace_parse_traceparent(traceparent, &parent);
    if (!ids->has_parent && inherited) {
        parent = *inherited;
        ids->has_parent = true;
    }
    if (ids->has_parent) {
        memcpy(ids->trace_id, parent.trace_id, 16);
        memcpy(ids->parent_id, parent.span_id, 8);
        ids->flags = parent.flags & TRACE_FLAG_SAMPLED;
    } else {
        trace_random_id(ids->trace_id, 16, next, state);
        memset(ids->parent_id, 0, 8);
        ids->flags = trace_sample(ids->trace_id, sample_rate) ? TRACE_FLAG_SAMPLED : 0;
    }
    trace_random_id(ids->span_id, 8, next, state);
    return ids->flags & TRACE_FLAG_SAMPLED;
}

void span_ids_hex(const struct span_ids *ids, char trace_id[33], char span_id[17])
{
    trace_hex(ids->trace_id, 16, trace_id);
    trace_hex(ids->span_id, 8, span_id);
}

void span_context(const struct span_ids *ids, struct trace_context *out)
{
    memcpy(out->trace_id, ids->trace_id, 16);
    memcpy(out->span_id, ids->span_id, 8);
    out->flags = ids->flags;
}

/* ------------------------------------------------------------------ OTLP -- */

int span_status_code(const struct span *s)
{
    if (s->status == 0 || s->status >= 500)
        return 2;
    if (s->kind == SPAN_CLIENT && s->status >= 400)
        return 2;
    return 0;
}

/* One attribute, after a comma unless it is the first (*first). Keys are
 * this file's own literals (nothing to escape); values are escaped. */
static void attr_key(struct textbuf *o, bool *first, const char *key)
{
    if (*first)
        TEXTBUF_LIT(o, "{\"key\":\"");
    else
        TEXTBUF_LIT(o, ",{\"key\":\"");
    textbuf_str(o, key);
    *first = false;
}

static void attr_string(struct textbuf *o, bool *first, const char *key, const char *value)
{
    attr_key(o, first, key);
    TEXTBUF_LIT(o, "\",\"value\":{\"stringValue\":");
    textbuf_json(o, value);
    TEXTBUF_LIT(o, "}}");
}

static void attr_int(struct textbuf *o, bool *first, const char *key, long long value)
{
    attr_key(o, first, key);
    TEXTBUF_LIT(o, "\",\"value\":{\"intValue\":\"");
    textbuf_i64(o, value);
    TEXTBUF_LIT(o, "\"}}");
}

/* n bytes of s as a C string in out (of size bytes), cut to fit. */
static void copy_cut(char *out, size_t size, const char *s, size_t n)
{
    if (n >= size)
        n = size - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* "10.0.0.5:8080" or "[::1]:8080": the address and the port apart. */
static void split_hostport(const char *s, char *host, size_t hlen, long *port)
{
    const char *colon = strrchr(s, ':');
    *port = colon ? strtol(colon + 1, NULL, 10) : 0;
    size_t n = colon ? (size_t)(colon - s) : strlen(s);
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']')
        s++, n -= 2;
    copy_cut(host, hlen, s, n);
}

/* The semantic conventions' names (HTTP spans, stable since 1.23). */
static void span_attributes(struct textbuf *o, const struct span *s)
{
    bool first = true;
    const char *q = strchr(s->path, '?');
    char path[256], host[SPAN_TEXT];
    copy_cut(path, sizeof(path), s->path, q ? (size_t)(q - s->path) : strlen(s->path));
    long port;
    attr_string(o, &first, "http.request.method", s->method);
    if (s->kind == SPAN_CLIENT) {
        char url[SPAN_TEXT + 300];
        size_t a = strlen(s->authority), p = strlen(s->path);
        memcpy(url, "http://", 7);
        memcpy(url + 7, s->authority, a);      /* both bounded by their fields */
        memcpy(url + 7 + a, s->path, p + 1);
        attr_string(o, &first, "url.full", url);
        split_hostport(s->authority, host, sizeof(host), &port);
        attr_string(o, &first, "server.address", host);
        attr_int(o, &first, "server.port", port ? port : s->port);
        if (*s->peer) {
            split_hostport(s->peer, host, sizeof(host), &port);
            attr_string(o, &first, "network.peer.address", host);
            attr_int(o, &first, "network.peer.port", port);
        }
        if (s->attempts > 1)
            attr_int(o, &first, "http.request.resend_count", s->attempts - 1);
        attr_int(o, &first, "meshim.attempts", s->attempts);
    } else {
        attr_string(o, &first, "url.scheme", "http");
        attr_string(o, &first, "url.path", path);
        if (q)
            attr_string(o, &first, "url.query", q + 1);
        split_hostport(s->authority, host, sizeof(host), &port);
        if (*host)
            attr_string(o, &first, "server.address", host);
        attr_int(o, &first, "server.port", s->port);
        if (*s->peer) {
            split_hostport(s->peer, host, sizeof(host), &port);
            attr_string(o, &first, "client.address", host);
            attr_int(o, &first, "client.port", port);
        }
    }
    if (s->status)
        attr_int(o, &first, "http.response.status_code", s->status);
    attr_string(o, &first, "meshim.service", s->service);
    if (*s->route)
        attr_string(o, &first, "meshim.route", s->route);
    if (*s->peer_identity)
        attr_string(o, &first, "meshim.peer_identity", s->peer_identity);
}

/* One span's JSON, piece by piece (no printf: see textbuf_mem). */
static void span_json(struct textbuf *o, const struct span *s)
{
    char tid[33], sid[17], pid[17];
    span_ids_hex(&s->ids, tid, sid);
    TEXTBUF_LIT(o, "{\"traceId\":\"");
    textbuf_mem(o, tid, 32);
    TEXTBUF_LIT(o, "\",\"spanId\":\"");
    textbuf_mem(o, sid, 16);
    TEXTBUF_LIT(o, "\"");
    if (s->ids.has_parent) {
        trace_hex(s->ids.parent_id, 8, pid);
        TEXTBUF_LIT(o, ",\"parentSpanId\":\"");
        textbuf_mem(o, pid, 16);
        TEXTBUF_LIT(o, "\"");
    }
    TEXTBUF_LIT(o, ",\"name\":");
    textbuf_json(o, s->method);
    TEXTBUF_LIT(o, ",\"kind\":");
    textbuf_i64(o, (int)s->kind);
    TEXTBUF_LIT(o, ",\"startTimeUnixNano\":\"");
    textbuf_u64(o, (unsigned long long)s->start_unix_ns);
    TEXTBUF_LIT(o, "\",\"endTimeUnixNano\":\"");
    textbuf_u64(o, (unsigned long long)s->end_unix_ns);
    TEXTBUF_LIT(o, "\",\"attributes\":[");
    span_attributes(o, s);
    int code = span_status_code(s);
    TEXTBUF_LIT(o, "],\"status\":{\"code\":");
    textbuf_i64(o, code);
    if (code == 2) {
        char msg[SPAN_TEXT + 32];
        if (*s->error)
            snprintf(msg, sizeof(msg), "%s", s->error);
        else if (s->status)
            snprintf(msg, sizeof(msg), "HTTP %d", s->status);
        else
            snprintf(msg, sizeof(msg), "no answer");
        TEXTBUF_LIT(o, ",\"message\":");
        textbuf_json(o, msg);
    }
    TEXTBUF_LIT(o, "}}");
}

size_t otlp_encode(const char *service_name, int pid, const struct span *spans, size_t n,
                   char *buf, size_t len)
{
    struct textbuf o = { buf, len, 0, len == 0 };
    TEXTBUF_LIT(&o, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    bool first = true;
    attr_string(&o, &first, "service.name", service_name);
    attr_int(&o, &first, "process.pid", pid);
    attr_string(&o, &first, "telemetry.sdk.name", "meshim");
    TEXTBUF_LIT(&o, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"meshim\"},\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            TEXTBUF_LIT(&o, ",");
        span_json(&o, &spans[i]);
    }
    TEXTBUF_LIT(&o, "]}]}]}");
    return o.full ? 0 : o.used;
}

/* -------------------------------------------------------------- collector -- */

const char *otlp_parse_url(const char *url, struct otlp_url *out)
{
    *out = (struct otlp_url){ .port = "4318", .path = "/v1/traces" };
    if (ascii_ncasecmp(url, "https://", 8) == 0)
        return "https is not spoken: give a local collector or agent's http:// URL";
    if (ascii_ncasecmp(url, "http://", 7) != 0)
        return "not an http:// URL";
    const char *p = url + 7, *end = p + strcspn(p, "/");
    const char *host = p, *host_end, *port = NULL;
    if (*p == '[') {
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (!host_end || (host_end[1] != ':' && host_end + 1 != end))
            return "a bad [IPv6] address";
        if (host_end[1] == ':')
            port = host_end + 2;
    } else {
        host_end = memchr(p, ':', (size_t)(end - p));
        if (host_end)
            port = host_end + 1;
        else
            host_end = end;
    }
    if (host_end == host || (size_t)(host_end - host) >= sizeof(out->host))
        return "no host";
    snprintf(out->host, sizeof(out->host), "%.*s", (int)(host_end - host), host);
    if (port) {
        size_t n = (size_t)(end - port);
        char *stop;
        long v = strtol(port, &stop, 10);
        if (n == 0 || n > 5 || stop != end || v < 1 || v > 65535 || !isdigit((unsigned char)*port))
            return "a bad port";
        snprintf(out->port, sizeof(out->port), "%ld", v);
    }
    if (*end) {
        if (strlen(end) >= sizeof(out->path) || strpbrk(end, " \t\r\n"))
            return "a bad path";
        snprintf(out->path, sizeof(out->path), "%s", end);
    }
    return NULL;
}
