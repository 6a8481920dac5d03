/*
 * test_http1.c — HTTP/1.x message boundaries over llhttp: every framing an
 * HTTP-aware service must forward intact (issue 20, part 6).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "meshim/http1.h"
#include "meshim/util.h"

static struct h1_parser P;

/* The events of feeding s (all of it, as one read), as a string such as
 * "H@38 E@38 H@76 E@76": each event and the offset it ends at. */
static const char *events(struct h1_parser *p, const char *s, size_t len)
{
    static char out[512];
    size_t off = 0, o = 0;
    out[0] = '\0';
    for (int guard = 0; guard < 64; guard++) {
        size_t used;
        enum h1_event e = h1_feed(p, s + off, len - off, &used);
        off += used;
        if (e == H1_MORE && off == len)
            break;
        const char *name = e == H1_HEAD ? "H" : e == H1_END ? "E" : e == H1_UPGRADE ? "U" : e == H1_ERROR ? "X" : "M";
        o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s@%zu", o ? " " : "", name, off);
        if (e == H1_UPGRADE || e == H1_ERROR)
            break;
    }
    return out;
}
#define EVENTS(p, lit) events(p, lit, sizeof(lit) - 1)

static void test_get_without_body(void **state)
{
    (void)state;
    h1_init(&P, H1_REQUEST);
    const char req[] = "GET /a/b?c=1 HTTP/1.1\r\nHost: api.local:8080\r\nX-Env: canary\r\n\r\n";
    assert_string_equal(EVENTS(&P, req), "H@62 E@62");
    const struct h1_head *h = h1_head(&P);
    assert_string_equal(h->method, "GET");
    assert_string_equal(h->target, "/a/b?c=1");
    assert_string_equal(h->authority, "api.local:8080");
    assert_string_equal(h1_header(h, "x-env"), "canary");
    assert_null(h1_header(h, "x-other"));
    assert_true(h->keep_alive);
    assert_false(h->has_body);
    assert_int_equal(h->minor, 1);
}

static void test_body_in_pieces(void **state)
{
    (void)state;
    h1_init(&P, H1_REQUEST);
    const char head[] = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n";
    assert_string_equal(EVENTS(&P, head), "H@49");
    assert_true(h1_head(&P)->has_body);
    size_t used;
    assert_int_equal(h1_feed(&P, "01234", 5, &used), H1_MORE);
    assert_int_equal(used, 5);
    /* The body's end is found inside the read; the next request follows. */
    assert_int_equal(h1_feed(&P, "56789GET / HTTP/1.1\r\n\r\n", 24, &used), H1_END);
    assert_int_equal(used, 5);
    assert_string_equal(events(&P, "GET / HTTP/1.1\r\n\r\n", 18), "H@18 E@18");
    assert_string_equal(h1_head(&P)->method, "GET");
}

/* A chunked body ends after its last chunk and the trailers. */
static void test_chunked_with_trailers(void **state)
{
    (void)state;
    h1_init(&P, H1_REQUEST);
    const char req[] = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n0\r\nX-Checksum: 42\r\n\r\n";
    assert_string_equal(EVENTS(&P, req), "H@57 E@88");
    assert_true(h1_head(&P)->has_body);
}

static void test_pipelined(void **state)
{
    (void)state;
    h1_init(&P, H1_REQUEST);
    const char reqs[] = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
                        "GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    assert_string_equal(EVENTS(&P, reqs), "H@28 E@28 H@56 E@56 H@103 E@103");
    assert_string_equal(h1_head(&P)->target, "/3");
    assert_false(h1_head(&P)->keep_alive);
}

/* The answer to HEAD has no body whatever its Content-Length says; 204 and
 * 304 have none either; the next answer follows at once. */
static void test_answers_without_body(void **state)
{
    (void)state;
    h1_init(&P, H1_RESPONSE);
    h1_response_to(&P, "HEAD");
    const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    assert_string_equal(EVENTS(&P, head), "H@40 E@40");
    assert_false(h1_head(&P)->has_body);
    h1_response_to(&P, "GET");
    const char r204[] = "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n"
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    assert_string_equal(EVENTS(&P, r204), "H@27 E@27 H@65 E@65 H@103 E@105");
    assert_int_equal(h1_head(&P)->status, 200);
}

/* 100 Continue is an answer of its own; the final one follows. */
static void test_continue(void **state)
{
    (void)state;
    h1_init(&P, H1_REQUEST);
    const char req[] = "PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    assert_string_equal(EVENTS(&P, req), "H@69");
    assert_true(h1_head(&P)->expect_continue);
    h1_init(&P, H1_RESPONSE);
    h1_response_to(&P, "PUT");
    const char resp[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    assert_string_equal(EVENTS(&P, resp), "H@25 E@25 H@68 E@68");
    assert_int_equal(h1_head(&P)->status, 201);
}

/* WebSocket: the request ends, waits for its answer; 101 switches to raw
 * bytes, anything else lets HTTP go on. */
static void test_upgrade(void **state)
{
    (void)state;
    const char req[] = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    h1_init(&P, H1_REQUEST);
    assert_string_equal(EVENTS(&P, req), "H@70 E@70 U@70");
    assert_true(h1_head(&P)->upgrade);
    size_t used;
    assert_int_equal(h1_feed(&P, "\x81\x05hello", 7, &used), H1_UPGRADE);
    assert_int_equal(used, 0);

    struct h1_parser r;
    h1_init(&r, H1_RESPONSE);
    h1_response_to(&r, "GET");
    const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi";
    assert_string_equal(events(&r, sw, sizeof(sw) - 1), "H@77 U@77");
    assert_true(h1_head(&r)->upgrade);

    /* Refused: the next request parses. */
    h1_init(&P, H1_REQUEST);
    assert_string_equal(EVENTS(&P, req), "H@70 E@70 U@70");
    h1_upgrade_refused(&P);
    assert_string_equal(EVENTS(&P, "GET /next HTTP/1.1\r\n\r\n"), "H@22 E@22");
    assert_string_equal(h1_head(&P)->target, "/next");
}

static void test_connect(void **state)
{
    (void)state;
    h1_init(&P, H1_REQUEST);
    const char req[] = "CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n";
    assert_string_equal(EVENTS(&P, req), "H@43 E@43 U@43");
    assert_true(h1_head(&P)->upgrade);
    h1_init(&P, H1_RESPONSE);
    h1_response_to(&P, "CONNECT");
    const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n\x00\x01raw";
    assert_string_equal(events(&P, ok, sizeof(ok) - 1), "H@39 U@39");
}

/* Not HTTP/1.x: h2c's preface, a binary protocol. */
static void test_not_http(void **state)
{
    (void)state;
    h1_init(&P, H1_REQUEST);
    assert_string_equal(EVENTS(&P, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "X@0");
    assert_string_equal(h1_error(&P), "HTTP/2 without TLS, as gRPC speaks it");
    assert_false(h1_spoke_http(&P));
    h1_init(&P, H1_REQUEST);
    assert_string_equal(EVENTS(&P, "\x16\x03\x01\x02\x00\x01\x00"), "X@0");
    assert_false(h1_spoke_http(&P));
    h1_init(&P, H1_RESPONSE);
    assert_string_equal(EVENTS(&P, "+PONG\r\n"), "X@0");
    assert_false(h1_spoke_http(&P));
}

/* What an HTTP/2 server writes first, its SETTINGS frame (empty, or with
 * settings, or the ACK), against an HTTP/1.x answer and other frames. */
static void test_h2_server_preface(void **state)
{
    (void)state;
    assert_true(h1_h2_server_preface("\0\0\0\x04\0\0\0\0\0", 9));
    assert_true(h1_h2_server_preface("\0\0\x0c\x04\0\0\0\0\0\0\x03\0\0\0\x64\0\x04\0\x01\0\0", 21));
    assert_true(h1_h2_server_preface("\0\0\0\x04\x01\0\0\0\0", 9));
    assert_false(h1_h2_server_preface("\0\0\0\x04\0\0\0\0", 8));           /* cut short */
    assert_false(h1_h2_server_preface("\0\0\x05\x04\0\0\0\0\0xxxxx", 14));  /* not 6 per setting */
    assert_false(h1_h2_server_preface("\0\0\0\x04\0\0\0\0\x01", 9));       /* a stream's */
    assert_false(h1_h2_server_preface("\0\0\x08\x06\0\0\0\0\0", 9));       /* PING */
    assert_false(h1_h2_server_preface("HTTP/1.1 200 OK\r\n", 17));
    assert_false(h1_h2_server_preface("+PONG\r\n", 7));
}

/* HTTP/1.1 whose body is framed two ways (how requests are smuggled past a
 * proxy), or whose length is not a number: broken HTTP, not another
 * protocol (the proxy answers 400 rather than carry it as TCP). */
static void test_broken_framing(void **state)
{
    (void)state;
    static const char *const heads[] = {
        "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        h1_init(&P, H1_REQUEST);
        const char *ev = events(&P, heads[i], strlen(heads[i]));
        assert_non_null(strstr(ev, "X@"));
        assert_null(strstr(ev, "H@"));
        assert_true(h1_spoke_http(&P));
        assert_true(h1_bad_length(&P));
        assert_false(h1_too_large(&P));
    }
    /* Bare LF line ends: HTTP/1.x, refused by llhttp, but not a length
     * (the proxy carries such a stream as TCP, as before: netcat scripts
     * send it, and nginx takes it). */
    h1_init(&P, H1_REQUEST);
    assert_string_equal(EVENTS(&P, "GET / HTTP/1.1\nHost: h\n\n"), "X@0");
    assert_true(h1_spoke_http(&P));
    assert_false(h1_bad_length(&P));
    h1_init(&P, H1_REQUEST);
    assert_string_equal(EVENTS(&P, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"), "H@27 E@27");
    assert_true(h1_spoke_http(&P));
    assert_false(h1_too_large(&P));
    /* A target past the head's limit: too large, and HTTP. */
    size_t n = H1_HEAD_MAX + 100;
    char *req = malloc(n + 64);
    assert_non_null(req);
    memcpy(req, "GET /", 5);
    memset(req + 5, 'a', n);
    strcpy(req + 5 + n, " HTTP/1.1\r\nHost: h\r\n\r\n");
    h1_init(&P, H1_REQUEST);
    assert_non_null(strstr(events(&P, req, strlen(req)), "X@"));
    assert_true(h1_too_large(&P));
    assert_true(h1_spoke_http(&P));
    assert_false(h1_bad_length(&P));
    h1_free(&P);
    free(req);
}

/* An answer without length ends with the connection. */
static void test_until_eof(void **state)
{
    (void)state;
    h1_init(&P, H1_RESPONSE);
    h1_response_to(&P, "GET");
    assert_string_equal(EVENTS(&P, "HTTP/1.0 200 OK\r\n\r\nsome"), "H@19");
    assert_true(h1_head(&P)->has_body);
    assert_true(h1_head(&P)->until_eof);
    assert_false(h1_head(&P)->keep_alive);
    size_t used;
    assert_int_equal(h1_feed(&P, " more", 5, &used), H1_MORE);
    assert_int_equal(h1_finish(&P), H1_END);
    /* Cut short: a Content-Length not reached. */
    h1_init(&P, H1_RESPONSE);
    h1_response_to(&P, "GET");
    assert_string_equal(EVENTS(&P, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"), "H@38");
    assert_int_equal(h1_finish(&P), H1_ERROR);
    /* Between messages: a clean end. */
    h1_init(&P, H1_REQUEST);
    assert_int_equal(h1_finish(&P), H1_MORE);
}

/* Connection: close on an answer framed by its length or by chunks: the
 * connection ends after it (keep_alive false), but the answer's end is not
 * the connection's (until_eof false), so a proxy can keep its client's. */
static void test_close_framed(void **state)
{
    (void)state;
    static const struct {
        const char *method, *answer;
        bool has_body, until_eof;
    } cases[] = {
        {"GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", true, false},
        {"GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                "2\r\nok\r\n0\r\n\r\n", true, false},
        {"GET", "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", false, false},
        {"HEAD", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 9\r\n\r\n", false, false},
        {"GET", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", true, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        h1_init(&P, H1_RESPONSE);
        h1_response_to(&P, cases[i].method);
        size_t used;
        assert_int_equal(h1_feed(&P, cases[i].answer, strlen(cases[i].answer), &used), H1_HEAD);
        const struct h1_head *h = h1_head(&P);
        assert_false(h->keep_alive);
        assert_int_equal(h->has_body, cases[i].has_body);
        assert_int_equal(h->until_eof, cases[i].until_eof);
    }
}

static void test_head_too_large(void **state)
{
    (void)state;
    h1_init(&P, H1_REQUEST);
    size_t n = H1_HEAD_MAX + 100;
    char *req = malloc(n + 64);
    int o = snprintf(req, 64, "GET / HTTP/1.1\r\nX-Big: ");
    memset(req + o, 'a', n);
    memcpy(req + o + n, "\r\n\r\n", 4);
    size_t used;
    assert_int_equal(h1_feed(&P, req, (size_t)o + n + 4, &used), H1_ERROR);
    assert_string_equal(h1_error(&P), "head too large");
    free(req);
}

/* A byte at a time: the head's end is found on its last byte, and names
 * and values split across reads come out whole. */
static void test_byte_by_byte(void **state)
{
    (void)state;
    h1_init(&P, H1_REQUEST);
    const char req[] = "GET /slow HTTP/1.1\r\nHost: example\r\nUser-Agent: curl/7.88\r\n\r\n";
    size_t len = sizeof(req) - 1, used;
    for (size_t i = 0; i + 1 < len; i++) {
        assert_int_equal(h1_feed(&P, req + i, 1, &used), H1_MORE);
        assert_int_equal(used, 1);
    }
    assert_int_equal(h1_feed(&P, req + len - 1, 1, &used), H1_HEAD);
    assert_int_equal(used, 1);
    assert_string_equal(h1_header(h1_head(&P), "user-agent"), "curl/7.88");
    assert_string_equal(h1_head(&P)->authority, "example");
    assert_int_equal(h1_feed(&P, "", 0, &used), H1_END);
}

static void test_http10_keep_alive(void **state)
{
    (void)state;
    h1_init(&P, H1_REQUEST);
    assert_string_equal(EVENTS(&P, "GET / HTTP/1.0\r\n\r\n"), "H@18 E@18");
    assert_false(h1_head(&P)->keep_alive);
    h1_init(&P, H1_REQUEST);
    assert_string_equal(EVENTS(&P, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), "H@42 E@42");
    assert_true(h1_head(&P)->keep_alive);
}

/* Heads beyond the parser's own 8 KiB (cookies, tokens, CSP): a request
 * whose head grows into the heap while its strings are read in pieces of
 * 7 bytes, strings read before the move still right after it; 100 header
 * fields; an answer with a 40 KiB header; and the limit: 64 KiB of head
 * parse, one byte more is "head too large". */
static void test_large_heads(void **state)
{
    (void)state;
    enum { BIG = 30000 };
    char *req = malloc(BIG + 4096), *at = req;
    at += sprintf(at, "GET /big HTTP/1.1\r\nHost: api\r\nX-First: one\r\nCookie: ");
    memset(at, 'c', BIG);
    at += BIG;
    at += sprintf(at, "\r\n");
    for (int i = 0; i < 96; i++)
        at += sprintf(at, "X-H%d: v%d\r\n", i, i);
    at += sprintf(at, "X-Empty:\r\n\r\n");
    size_t len = (size_t)(at - req);
    h1_init(&P, H1_REQUEST);
    size_t off = 0, used;
    enum h1_event e = H1_MORE;
    while (off < len && e == H1_MORE) {
        size_t piece = len - off < 7 ? len - off : 7;
        e = h1_feed(&P, req + off, piece, &used);
        off += used;
    }
    assert_int_equal(e, H1_HEAD);
    assert_int_equal(off, len);
    const struct h1_head *h = h1_head(&P);
    assert_string_equal(h->method, "GET");
    assert_string_equal(h->target, "/big");
    assert_string_equal(h->authority, "api");
    assert_string_equal(h1_header(h, "x-first"), "one");
    assert_int_equal(strlen(h1_header(h, "cookie")), BIG);
    assert_string_equal(h1_header(h, "x-h95"), "v95");
    assert_string_equal(h1_header(h, "x-empty"), "");
    assert_int_equal(h->nheaders, 100);
    h1_free(&P);

    /* An answer with a 40 KiB header, then a small one on the same parser. */
    char *resp = malloc(48 * 1024);
    at = resp + sprintf(resp, "HTTP/1.1 200 OK\r\nContent-Security-Policy: ");
    memset(at, 'p', 40 * 1024);
    at += 40 * 1024;
    at += sprintf(at, "\r\nContent-Length: 2\r\n\r\nok");
    h1_init(&P, H1_RESPONSE);
    h1_response_to(&P, "GET");
    char ev[64];
    snprintf(ev, sizeof(ev), "H@%zu E@%zu", (size_t)(at - resp) - 2, (size_t)(at - resp));
    assert_string_equal(events(&P, resp, (size_t)(at - resp)), ev);
    h1_response_to(&P, "GET");
    assert_string_equal(EVENTS(&P, "HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n"), "H@35 E@35");
    assert_string_equal(h1_header(h1_head(&P), "x-a"), "b");
    h1_free(&P);

    /* The limit, counted as the arena holds it: each string and its NUL. */
    for (int extra = 0; extra <= 1; extra++) {
        /* method 4 + target 2 + "X" 2 + value n+1 = H1_HEAD_MAX */
        size_t n = H1_HEAD_MAX - 8 - 1 + (size_t)extra;
        char *r = malloc(n + 64);
        at = r + sprintf(r, "GET / HTTP/1.1\r\nX: ");
        memset(at, 'v', n);
        at += n;
        at += sprintf(at, "\r\n\r\n");
        h1_init(&P, H1_REQUEST);
        e = h1_feed(&P, r, (size_t)(at - r), &used);
        if (!extra) {
            assert_int_equal(e, H1_HEAD);
            assert_int_equal(strlen(h1_header(h1_head(&P), "x")), n);
        } else {
            assert_int_equal(e, H1_ERROR);
            assert_string_equal(h1_error(&P), "head too large");
        }
        h1_free(&P);
        free(r);
    }
    free(resp);
    free(req);
}

/* How the proxy keeps a head's method, authority and path (util.c): cut to
 * the field's size, always ended. */
static void test_text_copy(void **state)
{
    (void)state;
    char m[8];
    memset(m, 'x', sizeof(m));
    text_copy(m, sizeof(m), "GET");
    assert_string_equal(m, "GET");
    text_copy(m, sizeof(m), "PROPPATCH");
    assert_string_equal(m, "PROPPAT");
    text_copy(m, sizeof(m), "");
    assert_string_equal(m, "");
    text_copy(m, 1, "GET");
    assert_string_equal(m, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_without_body),
        cmocka_unit_test(test_large_heads), cmocka_unit_test(test_body_in_pieces),
        cmocka_unit_test(test_chunked_with_trailers), cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_answers_without_body), cmocka_unit_test(test_continue),
        cmocka_unit_test(test_upgrade), cmocka_unit_test(test_connect),
        cmocka_unit_test(test_not_http), cmocka_unit_test(test_h2_server_preface),
        cmocka_unit_test(test_broken_framing),
        cmocka_unit_test(test_until_eof), cmocka_unit_test(test_close_framed),
        cmocka_unit_test(test_head_too_large), cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_http10_keep_alive), cmocka_unit_test(test_text_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
