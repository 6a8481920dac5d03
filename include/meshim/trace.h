/*
 * trace.h — distributed tracing's decisions and encodings, as plain
 * functions (policy layer: no threads, no sockets):
 *
 *   - W3C Trace Context: the traceparent header read and written
 *     (https://www.w3.org/TR/trace-context/);
 *   - what a span of the mesh says (struct span) and its OTLP/JSON encoding,
 *     with OpenTelemetry's HTTP semantic-convention attribute names;
 *   - head sampling by trace id, so every process of a trace that starts
 *     one decides the same way for the same id;
 *   - the collector's URL (otlp_endpoint) taken apart.
 *
 * The exporter thread (engine/otlp.c) owns the queue and the wire; the
 * proxies (mesh/http.c outbound, mesh/httptap.c inbound) make the spans.
 */
#ifndef MESHIM_TRACE_H
#define MESHIM_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_FLAG_SAMPLED 0x01
/* "00-" 32 "-" 16 "-" 2 */
#define TRACEPARENT_LEN 55

struct trace_context {
    uint8_t trace_id[16];
    uint8_t span_id[8];         /* the caller's span: the parent of the next one */
    uint8_t flags;              /* TRACE_FLAG_SAMPLED */
};

/* A traceparent header's value, as the W3C recommendation reads it:
 * version 00 exactly 55 characters; a later version at least that long
 * with a '-' after the flags if longer; never version ff; lowercase hex;
 * neither id all zeros. Surrounding blanks allowed. False: ignore it (a
 * new trace starts), as the recommendation says. */
bool trace_parse_traceparent(const char *value, struct trace_context *out);

/* "00-TRACE-SPAN-FLAGS" in buf (at least TRACEPARENT_LEN + 1 bytes). */
void trace_format_traceparent(const struct trace_context *c, char *buf);

/* n bytes as 2n lowercase hex digits and a terminator. */
void trace_hex(const uint8_t *bytes, size_t n, char *out);

/* Fills an id from a random 64-bit source, never all zeros. */
void trace_random_id(uint8_t *id, size_t n, uint64_t (*next)(void *), void *state);

/* Head sampling of a new trace, as OpenTelemetry's TraceIdRatioBased: the
 * id's last 8 bytes, less their lowest bit, below rate × 2^63. The same id
 * gets the same answer in every process. rate in [0, 1]. */
bool trace_sample(const uint8_t trace_id[16], double rate);

/* ------------------------------------------------------------------ spans -- */

enum span_kind { SPAN_SERVER = 2, SPAN_CLIENT = 3 };

#define SPAN_TEXT 128

/* Who a span is in its trace: kept by a proxy while the request goes on. */
struct span_ids {
    uint8_t trace_id[16], span_id[8], parent_id[8];
    bool has_parent;
    uint8_t flags;              /* TRACE_FLAG_SAMPLED: exported, and said so downstream */
};

/* One HTTP request as the mesh saw it (fixed size: queued by value). */
struct span {
    struct span_ids ids;
    enum span_kind kind;
    uint64_t start_unix_ns, end_unix_ns;
    int status;                 /* HTTP status; 0: no answer */
    uint16_t port;              /* client: the server's port; server: the inbound port */
    unsigned attempts;          /* client: attempts made (meshim.attempts) */
    char method[16];
    char path[256];             /* the request target as sent ("/a?b") */
    char authority[SPAN_TEXT];  /* Host */
    char peer[64];              /* client: the endpoint "10.0.0.5:8080"; server: the client's */
    char peer_identity[SPAN_TEXT]; /* mTLS: the other end's SPIFFE ID */
    char service[SPAN_TEXT];    /* the mesh service (client) or "inbound:PORT" (server) */
    char route[64];             /* the [route:NAME] that sent it, or "" */
    char error[SPAN_TEXT];      /* why the mesh answered itself ("" when it did not) */
};

/* value into one of a span's text fields of size bytes, cut to fit. */
void span_set(char *field, size_t size, const char *value);
#define SPAN_SET(field, value) span_set((field), sizeof(field), (value))

/* A request's span begins, a new span id under the first parent there is:
 * its traceparent header; else `inherited` (trace_propagation = thread:
 * the request the calling thread serves; may be NULL); else none, a new
 * trace sampled at sample_rate by its id. A parent's sampled flag is
 * followed. True when the span is sampled. */
bool span_begin(struct span_ids *ids, const char *traceparent, const struct trace_context *inherited,
                double sample_rate, uint64_t (*next)(void *), void *state);

/* The span's trace and span ids in hex, as the access log shows them. */
void span_ids_hex(const struct span_ids *ids, char trace_id[33], char span_id[17]);

/* The context a span hands on: its trace, itself as the parent, its flags. */
void span_context(const struct span_ids *ids, struct trace_context *out);

/* The span's OpenTelemetry status: 2 (error) for a 5xx or no answer, and,
 * on the client side, a 4xx too (the semantic conventions' rule); else 0
 * (unset). */
int span_status_code(const struct span *s);

/* An ExportTraceServiceRequest in OTLP/JSON (ids in hex, 64-bit integers
 * as strings, enums as numbers) holding n spans of one resource named
 * service_name (and process.pid). Returns its length, or 0 when it does not
 * fit in len. */
size_t otlp_encode(const char *service_name, int pid, const struct span *spans, size_t n,
                   char *buf, size_t len);

/* -------------------------------------------------------------- collector -- */

struct otlp_url {
    char host[256];             /* a name or an address, without IPv6's brackets */
    char port[8];
    char path[256];             /* "/v1/traces" when the URL has none */
};

/* "http://HOST[:PORT][/PATH]" (port 4318 by default, path /v1/traces by
 * default). NULL, or what is wrong: https (not spoken: a local agent or
 * collector terminates TLS), another scheme, no host, a bad port. */
const char *otlp_parse_url(const char *url, struct otlp_url *out);

#endif
