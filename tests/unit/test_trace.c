/*
 * test_trace.c — policy/trace.c: traceparent read and written as the W3C
 * recommendation says, sampling by trace id, spans in OTLP/JSON (parsed
 * back by a small JSON walk: field names and types), the collector's URL,
 * and the [tracing] keys of the config.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "meshim/config.h"
#include "meshim/trace.h"
#include "meshim/util.h"
#include "config_text.h"

static const char GOOD[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

static void traceparent_read(void **state)
{
    (void)state;
    struct trace_context c;
    assert_true(trace_parse_traceparent(GOOD, &c));
    assert_int_equal(c.trace_id[0], 0x4b);
    assert_int_equal(c.trace_id[15], 0x36);
    assert_int_equal(c.span_id[0], 0x00);
    assert_int_equal(c.span_id[7], 0xb7);
    assert_int_equal(c.flags, TRACE_FLAG_SAMPLED);
    assert_true(trace_parse_traceparent("  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ", &c));
    assert_int_equal(c.flags, 0);
    /* A later version: longer is fine when a '-' follows the flags. */
    assert_true(trace_parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what", &c));
    assert_false(trace_parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01what", &c));
    const char *bad[] = {
        "", "00", "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",          /* 00 is exact */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",           /* ff: invalid */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",           /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",           /* zero parent */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",           /* uppercase */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
    };
    c.flags = 0x5a;
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        assert_false(trace_parse_traceparent(bad[i], &c));
        assert_int_equal(c.flags, 0x5a);    /* untouched */
    }
    assert_false(trace_parse_traceparent(NULL, &c));
}

static void traceparent_written(void **state)
{
    (void)state;
    struct trace_context c;
    assert_true(trace_parse_traceparent(GOOD, &c));
    char buf[TRACEPARENT_LEN + 1];
    trace_format_traceparent(&c, buf);
    buf[TRACEPARENT_LEN] = '\0';
    assert_string_equal(buf, GOOD);
}

static uint64_t zeros_then_counter(void *state)
{
    uint64_t *n = state;
    return (*n)++ < 2 ? 0 : *n;     /* two all-zero draws first */
}

static void random_ids_never_zero(void **state)
{
    (void)state;
    uint64_t n = 0;
    uint8_t id[16];
    trace_random_id(id, sizeof(id), zeros_then_counter, &n);
    int nonzero = 0;
    for (int i = 0; i < 16; i++)
        nonzero |= id[i];
    assert_true(nonzero);
    uint8_t span[8];
    trace_random_id(span, sizeof(span), zeros_then_counter, &n);
    assert_true(span[0] || span[1] || span[2] || span[3] || span[4] || span[5] || span[6] || span[7]);
}

static void sampling_by_trace_id(void **state)
{
    (void)state;
    uint8_t id[16] = { 0 };
    assert_true(trace_sample(id, 1.0));
    assert_false(trace_sample(id, 0.0));
    /* Low half of the id 0 → sampled at any rate above 0. */
    assert_true(trace_sample(id, 0.01));
    memset(id + 8, 0xff, 8);
    assert_false(trace_sample(id, 0.99));
    /* Over many ids a rate keeps about its share, and an id's answer is
     * the same every time. */
    uint64_t x = 88172645463325252ull;
    int kept = 0;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(id + 8, &x, 8);
        bool s = trace_sample(id, 0.25);
        assert_int_equal(s, trace_sample(id, 0.25));
        kept += s;
    }
    assert_in_range(kept, 2200, 2800);
}

static uint64_t xorshift(void *state)
{
    uint64_t *x = state;
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

static void span_begins(void **state)
{
    (void)state;
    uint64_t x = 12345;
    struct span_ids s = { 0 };
    /* Continued: the parent's trace, its span as parent, its flag. */
    assert_true(span_begin(&s, GOOD, NULL, 0.0, xorshift, &x));
    struct trace_context good, mine;
    trace_parse_traceparent(GOOD, &good);
    assert_true(s.has_parent);
    assert_memory_equal(s.trace_id, good.trace_id, 16);
    assert_memory_equal(s.parent_id, good.span_id, 8);
    assert_memory_not_equal(s.span_id, good.span_id, 8);
    span_context(&s, &mine);
    assert_memory_equal(mine.trace_id, good.trace_id, 16);
    assert_memory_equal(mine.span_id, s.span_id, 8);
    assert_int_equal(mine.flags, TRACE_FLAG_SAMPLED);
    /* A parent that did not sample: neither do we, whatever the rate. */
    assert_false(span_begin(&s, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", NULL, 1.0,
                            xorshift, &x));
    assert_int_equal(s.flags, 0);
    /* None (or a broken one): a new trace, sampled by the rate. */
    assert_true(span_begin(&s, NULL, NULL, 1.0, xorshift, &x));
    assert_false(s.has_parent);
    assert_memory_not_equal(s.trace_id, good.trace_id, 16);
    assert_false(span_begin(&s, "00-garbage", NULL, 0.0, xorshift, &x));
    assert_false(s.has_parent);
    /* No header, a context inherited (trace_propagation = thread): its
     * child; a header wins over it. */
    assert_true(span_begin(&s, NULL, &good, 0.0, xorshift, &x));
    assert_true(s.has_parent);
    assert_memory_equal(s.trace_id, good.trace_id, 16);
    assert_memory_equal(s.parent_id, good.span_id, 8);
    struct trace_context unsampled = good;
    unsampled.flags = 0;
    assert_false(span_begin(&s, NULL, &unsampled, 1.0, xorshift, &x));
    assert_true(span_begin(&s, GOOD, &unsampled, 0.0, xorshift, &x));
    assert_memory_equal(s.parent_id, good.span_id, 8);
    assert_false(span_begin(&s, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &good, 1.0,
                            xorshift, &x));
    int kept = 0;
    for (int i = 0; i < 4000; i++)
        kept += span_begin(&s, NULL, NULL, 0.5, xorshift, &x);
    assert_in_range(kept, 1800, 2200);
}

/* ------------------------------------------------- a small JSON checker -- */

/* Finds "key": in json after from and returns where its value starts. */
static const char *value_of(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? p + strlen(pat) : NULL;
}

/* The attribute's value object text, e.g. {"intValue":"200"}. */
static bool has_attr(const char *json, const char *key, const char *value_json)
{
    char pat[256];
    snprintf(pat, sizeof(pat), "{\"key\":\"%s\",\"value\":%s}", key, value_json);
    return strstr(json, pat) != NULL;
}

/* Balanced braces and brackets outside strings, strings closed. */
static bool balanced(const char *s)
{
    int depth = 0;
    bool str = false;
    for (; *s; s++) {
        if (str) {
            if (*s == '\\')
                s++;
            else if (*s == '"')
                str = false;
        } else if (*s == '"') {
            str = true;
        } else if (*s == '{' || *s == '[') {
            depth++;
        } else if (*s == '}' || *s == ']') {
            if (--depth < 0)
                return false;
        } else if ((unsigned char)*s < 0x20) {
            return false;
        }
    }
    return depth == 0 && !str;
}

static struct span client_span(void)
{
    struct span s = { .kind = SPAN_CLIENT, .start_unix_ns = 1700000000000000000ull,
                      .end_unix_ns = 1700000000002000000ull, .status = 200, .port = 8080,
                      .attempts = 2, .ids.has_parent = true };
    struct trace_context c;
    trace_parse_traceparent(GOOD, &c);
    memcpy(s.ids.trace_id, c.trace_id, 16);
    memcpy(s.ids.parent_id, c.span_id, 8);
    memset(s.ids.span_id, 0x11, 8);
    strcpy(s.method, "GET");
    strcpy(s.path, "/who?x=\"1\"");
    strcpy(s.authority, "orders:8080");
    strcpy(s.peer, "127.0.0.3:8080");
    strcpy(s.peer_identity, "spiffe://test.mesh/ns/prod/sa/orders");
    strcpy(s.service, "orders");
    return s;
}

static void otlp_json(void **state)
{
    (void)state;
    struct span spans[2] = { client_span(), client_span() };
    spans[1].kind = SPAN_SERVER;
    spans[1].ids.has_parent = false;
    spans[1].status = 503;
    strcpy(spans[1].peer, "[::1]:40000");
    char buf[8192];
    size_t n = otlp_encode("web \"front\"", 42, spans, 2, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(n, strlen(buf));
    assert_true(balanced(buf));
    assert_non_null(value_of(buf, "resourceSpans"));
    assert_non_null(value_of(buf, "scopeSpans"));
    assert_true(has_attr(buf, "service.name", "{\"stringValue\":\"web \\\"front\\\"\"}"));
    assert_true(has_attr(buf, "process.pid", "{\"intValue\":\"42\"}"));
    assert_non_null(strstr(buf, "\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":\"1111111111111111\","
                                "\"parentSpanId\":\"00f067aa0ba902b7\",\"name\":\"GET\",\"kind\":3,"
                                "\"startTimeUnixNano\":\"1700000000000000000\","
                                "\"endTimeUnixNano\":\"1700000000002000000\""));
    assert_true(has_attr(buf, "http.request.method", "{\"stringValue\":\"GET\"}"));
    assert_true(has_attr(buf, "url.full", "{\"stringValue\":\"http://orders:8080/who?x=\\\"1\\\"\"}"));
    assert_true(has_attr(buf, "server.address", "{\"stringValue\":\"orders\"}"));
    assert_true(has_attr(buf, "server.port", "{\"intValue\":\"8080\"}"));
    assert_true(has_attr(buf, "network.peer.address", "{\"stringValue\":\"127.0.0.3\"}"));
    assert_true(has_attr(buf, "http.response.status_code", "{\"intValue\":\"200\"}"));
    assert_true(has_attr(buf, "http.request.resend_count", "{\"intValue\":\"1\"}"));
    assert_true(has_attr(buf, "meshim.attempts", "{\"intValue\":\"2\"}"));
    assert_true(has_attr(buf, "meshim.peer_identity",
                         "{\"stringValue\":\"spiffe://test.mesh/ns/prod/sa/orders\"}"));
    /* The server span: no parent, kind 2, path and query apart, client
     * address without brackets, error status for a 503. */
    const char *server = strstr(buf, "\"kind\":2");
    assert_non_null(server);
    assert_true(has_attr(server, "url.path", "{\"stringValue\":\"/who\"}"));
    assert_true(has_attr(server, "url.query", "{\"stringValue\":\"x=\\\"1\\\"\"}"));
    assert_true(has_attr(server, "client.address", "{\"stringValue\":\"::1\"}"));
    assert_non_null(strstr(server, "\"status\":{\"code\":2,\"message\":\"HTTP 503\"}"));
    assert_non_null(strstr(buf, "\"status\":{\"code\":0}"));
    /* Too small a buffer: 0, never half a document. */
    assert_int_equal(otlp_encode("web", 42, spans, 2, buf, 100), 0);
}

/* The appenders the encoder is made of: numbers at their limits, escapes
 * printf used to make, and a full buffer that stays full (never half a
 * piece written). */
static void textbuf_pieces(void **state)
{
    (void)state;
    char buf[192];
    struct textbuf o = { buf, sizeof(buf), 0, false };
    textbuf_u64(&o, 0);
    textbuf_str(&o, " ");
    textbuf_u64(&o, ULLONG_MAX);
    textbuf_str(&o, " ");
    textbuf_i64(&o, LLONG_MIN);
    textbuf_str(&o, " ");
    textbuf_i64(&o, -7);
    textbuf_str(&o, " ");
    for (unsigned long long v = 8; v <= 11; v++, TEXTBUF_LIT(&o, ","))
        textbuf_u64(&o, v);
    for (unsigned long long v = 98; v <= 101; v++, TEXTBUF_LIT(&o, ","))
        textbuf_u64(&o, v);
    textbuf_u64(&o, 1700000000002000000ull);
    textbuf_str(&o, " ");
    textbuf_json(&o, "a\"b\\c\n\x01\x1f\xc3\xa9");
    assert_false(o.full);
    assert_string_equal(buf, "0 18446744073709551615 -9223372036854775808 -7 "
                             "8,9,10,11,98,99,100,101,1700000000002000000 "
                             "\"a\\\"b\\\\c\\u000a\\u0001\\u001f\xc3\xa9\"");
    assert_int_equal(o.used, strlen(buf));

    char small[8];
    struct textbuf t = { small, sizeof(small), 0, false };
    textbuf_str(&t, "1234567");       /* 7 bytes and the terminator: fits */
    assert_false(t.full);
    assert_string_equal(small, "1234567");
    struct textbuf u = { small, sizeof(small), 0, false };
    textbuf_str(&u, "123");
    textbuf_u64(&u, 12345);           /* would need 9 bytes */
    assert_true(u.full);
    assert_int_equal(u.used, 3);
    textbuf_str(&u, "x");             /* full stays full */
    assert_int_equal(u.used, 3);
    assert_string_equal(small, "123");

    char esc[8];                      /* "\u0001" needs 8 bytes and the terminator */
    assert_int_equal(json_string(esc, sizeof(esc), "\x01"), 0);
    assert_int_equal(json_string(esc, sizeof(esc), "ab"), 4);
    assert_string_equal(esc, "\"ab\"");
}

static void status_codes(void **state)
{
    (void)state;
    struct span s = client_span();
    int want[][3] = { { 200, 0, 0 }, { 404, 2, 0 }, { 500, 2, 2 }, { 0, 2, 2 }, { 302, 0, 0 } };
    for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
        s.status = want[i][0];
        s.kind = SPAN_CLIENT;
        assert_int_equal(span_status_code(&s), want[i][1]);
        s.kind = SPAN_SERVER;
        assert_int_equal(span_status_code(&s), want[i][2]);
    }
}

static void collector_url(void **state)
{
    (void)state;
    struct otlp_url u;
    assert_null(otlp_parse_url("http://127.0.0.1:4318/v1/traces", &u));
    assert_string_equal(u.host, "127.0.0.1");
    assert_string_equal(u.port, "4318");
    assert_string_equal(u.path, "/v1/traces");
    assert_null(otlp_parse_url("http://collector", &u));
    assert_string_equal(u.host, "collector");
    assert_string_equal(u.port, "4318");
    assert_string_equal(u.path, "/v1/traces");
    assert_null(otlp_parse_url("http://[::1]:9999/otlp/v1/traces", &u));
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.port, "9999");
    assert_string_equal(u.path, "/otlp/v1/traces");
    const char *why = otlp_parse_url("https://collector:4318", &u);
    assert_non_null(why);
    assert_non_null(strstr(why, "https"));
    const char *bad[] = { "collector:4318", "http://", "http://:4318", "http://h:0", "http://h:65536",
                          "http://h:12x", "http://[::1/x", "http://h/a b" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_non_null(otlp_parse_url(bad[i], &u));
}

/* ---------------------------------------------------------------- config -- */

static void tracing_keys(void **state)
{
    (void)state;
    char *errors = NULL;
    struct mesh_config *cfg = load("[service:web]\nendpoints = 10.0.0.1:80\n", &errors);
    assert_non_null(cfg);
    assert_null(cfg->otlp_endpoint);            /* off by default */
    assert_true(cfg->trace_sample_rate == 1.0);
    assert_int_equal(cfg->trace_propagation, PROPAGATE_HEADERS);
    config_free(cfg);

    cfg = load("[inbound:8080]\ntls = off\nprotocol = http\n"
               "[tracing]\notlp_endpoint = http://127.0.0.1:4318/v1/traces\n"
               "service_name = checkout\nsample_rate = 25%\n", &errors);
    assert_non_null(cfg);
    assert_string_equal(cfg->otlp_endpoint, "http://127.0.0.1:4318/v1/traces");
    assert_string_equal(cfg->trace_service_name, "checkout");
    assert_true(cfg->trace_sample_rate == 0.25);
    assert_int_equal(cfg->inbound[0].trace_propagation, PROPAGATE_HEADERS);
    config_free(cfg);

    /* thread: [tracing]'s, inherited by the ports that do not say. */
    cfg = load("[inbound:8080]\ntls = off\nprotocol = http\n"
               "[inbound:8081]\ntls = off\nprotocol = http\ntrace_propagation = headers\n"
               "[tracing]\notlp_endpoint = http://127.0.0.1:4318/v1/traces\ntrace_propagation = thread\n",
               &errors);
    assert_non_null(cfg);
    assert_int_equal(cfg->trace_propagation, PROPAGATE_THREAD);
    assert_int_equal(cfg->inbound[0].trace_propagation, PROPAGATE_THREAD);
    assert_int_equal(cfg->inbound[1].trace_propagation, PROPAGATE_HEADERS);
    config_free(cfg);

    struct { const char *text, *error; } bad[] = {
        { "[tracing]\notlp_endpoint = https://c:4318\n", "https is not spoken" },
        { "[tracing]\notlp_endpoint = c:4318\n", "not an http:// URL" },
        { "[tracing]\nsample_rate = 120%\n", "not a share" },
        { "[tracing]\ntrace_propagation = magic\n", "not headers or thread" },
        { "[tracing]\ncolour = blue\n", "colour: unknown key in [tracing]" },
        { "[tracing]\n[tracing]\n", "[tracing]: section appears twice" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        errors = NULL;
        cfg = load(bad[i].text, &errors);
        assert_null(cfg);
        assert_non_null(errors);
        if (!strstr(errors, bad[i].error))
            fail_msg("%s: got %s", bad[i].text, errors);
        free(errors);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(traceparent_read),
        cmocka_unit_test(traceparent_written),
        cmocka_unit_test(random_ids_never_zero),
        cmocka_unit_test(sampling_by_trace_id),
        cmocka_unit_test(span_begins),
        cmocka_unit_test(otlp_json),
        cmocka_unit_test(textbuf_pieces),
        cmocka_unit_test(status_codes),
        cmocka_unit_test(collector_url),
        cmocka_unit_test(tracing_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
