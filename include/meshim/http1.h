/*
 * http1.h — where HTTP/1.x messages begin and end in a byte stream, and what
 * their heads say: the framing an HTTP-aware service (protocol = http) needs
 * to forward requests one by one, parsed by llhttp (Node.js's parser).
 *
 * The caller owns the bytes and forwards them unchanged; a parser only
 * tells where the boundaries are:
 *
 *   h1_feed(p, buf, len, &used)
 *     H1_MORE     all of buf belongs to the current message, no boundary
 *     H1_HEAD     a head ends at buf + used: h1_head(p) describes it
 *     H1_END      the message, body and trailers included, ends at buf + used
 *     H1_UPGRADE  the message ends at buf + used and the bytes after it are
 *                 no longer HTTP (CONNECT, a 101 answer): raw from here on
 *     H1_ERROR    not HTTP/1.x (h2c's preface, a binary protocol, a broken
 *                 head): h1_error(p) says why, h1_spoke_http(p) whether
 *                 the stream had begun as HTTP/1.x; the parser stays failed
 *
 * Every message yields H1_HEAD then H1_END (both at the same place for a
 * message without a body); the caller feeds the rest of buf again after
 * each event. A response's framing depends on its request: say which with
 * h1_response_to() before its head (HEAD's and 204/304 answers have no
 * body; a 2xx to CONNECT switches to raw). 1xx answers (100 Continue) are
 * messages of their own, followed by the final one. A request with an
 * Upgrade header ends with H1_END, and the caller decides from the answer:
 * h1_upgrade_refused() when it was not 101 (HTTP goes on).
 *
 * Heads are copied into the parser: into its own H1_HEAD_SMALL bytes, and
 * a larger one into the heap, up to H1_HEAD_MAX (else H1_ERROR "head too
 * large"; Envoy's default limit is 60 KiB, and 8 KiB was too small for the
 * cookies and tokens real requests and answers carry). Pointers from
 * h1_head() stay valid until the next message's first byte is fed.
 * h1_free() releases that block: before the parser is dropped, or
 * initialised again.
 */
#ifndef MESHIM_HTTP1_H
#define MESHIM_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#define H1_HEAD_SMALL 8192
#define H1_HEAD_MAX (64 * 1024)
#define H1_HEADERS_MAX 100        /* Envoy's default max_headers_count */

enum h1_kind { H1_REQUEST, H1_RESPONSE };

enum h1_event { H1_MORE, H1_HEAD, H1_END, H1_UPGRADE, H1_ERROR };

struct h1_header {
    const char *name, *value;
};

struct h1_head {
    const char *method;       /* requests: "GET", ... */
    const char *target;       /* requests: "/path?q" as sent */
    const char *authority;    /* requests: Host, or "" */
    int status;               /* responses */
    uint8_t major, minor;
    bool keep_alive;          /* another message may follow on the connection */
    bool has_body;            /* bytes follow the head (Content-Length > 0, chunked, until EOF) */
    bool until_eof;           /* responses: the body ends only with the connection */
    bool upgrade;             /* Upgrade or CONNECT asked (requests), 101 (responses) */
    bool expect_continue;     /* requests: Expect: 100-continue */
    int nheaders;
    struct h1_header headers[H1_HEADERS_MAX];
};

struct h1_parser {
    llhttp_t ll;
    enum h1_kind kind;
    enum h1_event pending;    /* what the callback that paused found */
    enum h1_event owed;       /* an end to report after its head (no pause there) */
    bool reported_head;       /* ... whose head was just reported */
    bool upgraded;            /* raw bytes follow (or a request awaits its answer) */
    bool finishing;           /* inside h1_finish */
    bool in_message;
    bool no_body_next;        /* responses: the request was HEAD */
    bool connect_next;        /* responses: the request was CONNECT */
    bool spoke;               /* an HTTP/1.x request or status line was read whole */
    bool too_large;           /* the error: a head beyond H1_HEAD_MAX or H1_HEADERS_MAX */
    const char *error;
    struct h1_head head;
    size_t used, mark;        /* arena bytes used; start of the string being read */
    size_t cap;               /* of the arena */
    char *arena;              /* small, or a heap block for a larger head */
    char small[H1_HEAD_SMALL];
};

void h1_init(struct h1_parser *p, enum h1_kind kind);
/* The heap block of a large head, if one is held (an initialised parser,
 * or zeroed memory; it may be initialised again after). */
void h1_free(struct h1_parser *p);

enum h1_event h1_feed(struct h1_parser *p, const char *buf, size_t len, size_t *used);

/* The stream's end: H1_END when the message in progress ends with it (a
 * response read until EOF), H1_MORE when no message was in progress,
 * H1_ERROR when one was cut short. */
enum h1_event h1_finish(struct h1_parser *p);

/* Responses: the request this answer belongs to (its method's name). */
void h1_response_to(struct h1_parser *p, const char *method);

/* Requests: an Upgrade request was answered without 101; parse on. */
void h1_upgrade_refused(struct h1_parser *p);

const struct h1_head *h1_head(const struct h1_parser *p);

/* A header's value by name (case-insensitive), NULL when absent. */
const char *h1_header(const struct h1_head *h, const char *name);

const char *h1_error(const struct h1_parser *p);

/* The stream began as HTTP/1.x: a request line (or status line) with
 * version 1.x was read whole, so an H1_ERROR after it is a broken message,
 * not another protocol. */
bool h1_spoke_http(const struct h1_parser *p);
/* The error was a head beyond the limits (HTTP's 431, not 400). */
bool h1_too_large(const struct h1_parser *p);
/* The error was the body's length: Content-Length with Transfer-Encoding,
 * two lengths, a length that is not a number, a Transfer-Encoding that
 * does not end in chunked (a request's length left unknown). */
bool h1_bad_length(const struct h1_parser *p);

/* The bytes a server wrote before any request begin as an HTTP/2
 * server's do: a SETTINGS frame on stream 0 (RFC 9113 §3.4). gRPC servers
 * send theirs as soon as they accept. */
bool h1_h2_server_preface(const char *p, size_t n);

#endif
