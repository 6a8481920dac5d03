/*
 * httptap.c — the requests and answers of an inbound http port, read as
 * they pass (httptap.h).
 *
 * Byte counts: what the request parser consumed between two requests'
 * heads belongs to the request whose head came first (its head and body);
 * what the answer parser consumed, to the answer in progress. A request is
 * timed from when its head was read from the client to when the last byte
 * of its answer was written by the application.
 */
#include "mesh/httptap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/otlp.h"
#include "mesh/threadtrace.h"
#include "meshim/http1.h"
#include "meshim/util.h"
#include "observe/accesslog.h"
#include "observe/log.h"
#include "observe/metrics.h"

struct tap_request {
    char method[16], authority[256], path[512];
    uint64_t start_ns, start_unix_ns;
    uint64_t bytes;                 /* of the request, head included */
    bool upgrade;                   /* it asked for Upgrade or CONNECT */
    bool traced;                    /* [tracing] on: it has a server span */
    struct span_ids span;
};

struct http_tap {
    struct conn *conn;
    uint16_t port;
    bool off;                       /* stopped: the bytes go on uncounted */
    bool upgrading;                 /* an Upgrade or CONNECT awaits its answer: the
                                     * client's bytes are not parsed meanwhile */
    bool seen;                      /* a request was read */
    struct h1_parser req, resp;
    uint64_t req_bytes;             /* consumed, not yet given to a request */
    uint64_t fed;                   /* the client's bytes parsed: a head ends at fed */
    struct tap_request q[HTTPTAP_PIPELINE];
    unsigned first, n;              /* q[first] is the one being answered */
    bool answering;                 /* the answer parser was told q[first]'s method */
    int status;                     /* of the answer in progress (final) */
    uint64_t resp_bytes;
};

struct http_tap *httptap_new(struct conn *c, uint16_t port)
{
    struct http_tap *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    conn_ref(c);
    t->conn = c;
    t->port = port;
    h1_init(&t->req, H1_REQUEST);
    h1_init(&t->resp, H1_RESPONSE);
    return t;
}

/* The tap stops; why (a format, NULL: nothing to warn about) is warned. */
static void tap_off(struct http_tap *t, const char *why, ...) __attribute__((format(printf, 2, 3)));
static void tap_off(struct http_tap *t, const char *why, ...)
{
    if (why) {
        char text[192];
        va_list ap;
        va_start(ap, why);
        vsnprintf(text, sizeof(text), why, ap);
        va_end(ap);
        log_warn("inbound:%u: %s: this connection's requests are not counted", t->port, text);
    }
    t->off = true;
}

/* The request read last (t->n > 0). */
static struct tap_request *last_request(struct http_tap *t)
{
    return &t->q[(t->first + t->n - 1) % HTTPTAP_PIPELINE];
}

/* The request's server span. */
static void server_span_end(const struct http_tap *t, const struct tap_request *r, int status,
                            const char *service)
{
    struct span s = { .ids = r->span, .kind = SPAN_SERVER, .start_unix_ns = r->start_unix_ns,
                      .end_unix_ns = wall_ns(), .status = status, .port = t->port };
    SPAN_SET(s.method, r->method);
    SPAN_SET(s.path, r->path);
    SPAN_SET(s.authority, r->authority);
    SPAN_SET(s.peer, t->conn->peer);
    SPAN_SET(s.peer_identity, t->conn->peer_identity);
    SPAN_SET(s.service, service);
    otlp_span_end(&s);
}

/* The request q[first] is over: answered with status (0: none). */
static void request_over(struct http_tap *t, int status)
{
    struct tap_request *r = &t->q[t->first];
    uint64_t took = now_ns() - r->start_ns;
    char service[24];
    snprintf(service, sizeof(service), "inbound:%u", t->port);
    metrics_inbound_request(t->port, r->method, status, took, r->bytes, t->resp_bytes);
    if (r->traced)
        server_span_end(t, r, status, service);
    if (access_enabled()) {
        struct access_request a = {
            .start_unix_ns = r->start_unix_ns, .pid = getpid(), .direction = DIRECTION_INBOUND,
            .service = service, .method = r->method, .authority = r->authority, .path = r->path,
            .status = status, .endpoint = t->conn->peer, .peer_identity = t->conn->peer_identity,
            .flags = status ? 0 : FLAG_DC, .duration_ms = (double)took / 1e6,
            .bytes_sent = t->resp_bytes, .bytes_received = r->bytes,
            .span = r->traced ? &r->span : NULL,
        };
        access_write_request(&a);
    }
    t->first = (t->first + 1) % HTTPTAP_PIPELINE;
    t->n--;
    t->answering = false;
    t->status = 0;
    t->resp_bytes = 0;
}

static void request_head(struct http_tap *t, uint64_t bytes)
{
    if (t->n == HTTPTAP_PIPELINE) {
        tap_off(t, "more than %d requests wait for their answers", HTTPTAP_PIPELINE);
        return;
    }
    const struct h1_head *h = h1_head(&t->req);
    struct tap_request *r = &t->q[(t->first + t->n) % HTTPTAP_PIPELINE];
    text_copy(r->method, sizeof(r->method), h->method ? h->method : "");
    text_copy(r->authority, sizeof(r->authority), h->authority ? h->authority : "");
    text_copy(r->path, sizeof(r->path), h->target ? h->target : "");
    r->start_ns = now_ns();
    r->start_unix_ns = wall_ns();
    r->bytes = bytes;
    r->upgrade = h->upgrade;
    r->traced = otlp_span_begin(&r->span, h, NULL);
    if (r->traced && t->conn->tt) {
        /* The thread that reads up to here serves this request. */
        struct trace_context ctx;
        span_context(&r->span, &ctx);
        threadtrace_head(t->conn->tt, t->fed, &ctx);
    }
    t->n++;
    t->seen = true;
}

void httptap_requests(struct http_tap *t, const char *p, size_t n)
{
    while (t && !t->off && !t->upgrading && n) {
        size_t used = 0;
        enum h1_event e = h1_feed(&t->req, p, n, &used);
        p += used;
        n -= used;
        t->req_bytes += used;
        t->fed += used;
        switch (e) {
        case H1_MORE:
            return;
        case H1_HEAD:
            request_head(t, t->req_bytes);
            t->req_bytes = 0;
            break;
        case H1_END:
        case H1_UPGRADE:
            if (t->n)
                last_request(t)->bytes += t->req_bytes;
            t->req_bytes = 0;
            /* After an Upgrade or CONNECT the answer decides whether HTTP
             * goes on; the bytes that follow are not parsed meanwhile, so
             * the tap ends with that answer. */
            if (t->n && last_request(t)->upgrade) {
                t->upgrading = true;
                return;
            }
            break;
        case H1_ERROR:
            tap_off(t, "%s (%s)", t->seen ? "a broken request" : "not HTTP/1.x", h1_error(&t->req));
            return;
        }
    }
}

void httptap_answers(struct http_tap *t, const char *p, size_t n)
{
    while (t && !t->off && n) {
        if (!t->n) {
            tap_off(t, h1_h2_server_preface(p, n) ? "not HTTP/1.x (HTTP/2 without TLS, as gRPC speaks it)"
                                                   : "the application wrote before it was asked");
            return;
        }
        struct tap_request *r = &t->q[t->first];
        if (!t->answering) {
            h1_response_to(&t->resp, r->method);
            t->answering = true;
        }
        size_t used = 0;
        enum h1_event e = h1_feed(&t->resp, p, n, &used);
        p += used;
        n -= used;
        t->resp_bytes += used;
        switch (e) {
        case H1_MORE:
            return;
        case H1_HEAD: {
            int status = h1_head(&t->resp)->status;
            if (status >= 200 || status == 101)
                t->status = status;
            break;
        }
        case H1_END:
            if (!t->status) {
                /* 100 Continue and the like: the final answer follows. */
                h1_response_to(&t->resp, r->method);
                break;
            }
            request_over(t, t->status);
            if (r->upgrade) {
                tap_off(t, NULL);       /* refused Upgrade: unparsed bytes may follow */
                return;
            }
            break;
        case H1_UPGRADE:
            request_over(t, t->status);
            tap_off(t, NULL);           /* raw bytes from here on */
            return;
        case H1_ERROR:
            tap_off(t, "the application's answer is not HTTP/1.x (%s)", h1_error(&t->resp));
            return;
        }
    }
}

void httptap_free(struct http_tap *t)
{
    if (!t)
        return;
    if (!t->off && t->n && t->answering && h1_finish(&t->resp) == H1_END && t->status)
        request_over(t, t->status);
    /* Requests left without a (whole) answer: the client or the application
     * went away first. */
    while (!t->off && t->n)
        request_over(t, 0);
    h1_free(&t->req);
    h1_free(&t->resp);
    conn_unref(t->conn);
    free(t);
}
