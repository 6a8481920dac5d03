/*
 * http1.c — HTTP/1.x message boundaries and heads over llhttp (see
 * http1.h for the events).
 *
 * llhttp is driven with pauses: the callbacks that end a head or a message
 * return HPE_PAUSED, llhttp_execute stops right there, and
 * llhttp_get_error_pos says where, which is the boundary the caller needs.
 * Two cases cannot pause at the head: an answer to HEAD (or a 2xx to
 * CONNECT) must return 1 (or 2) from on_headers_complete to tell llhttp
 * there is no body. There the head and the end are the same place; the
 * head is reported first and the end is owed to the next call.
 *
 * The head's strings are copied into the parser's arena as llhttp hands
 * them over (a name or value may arrive in pieces across reads) and
 * NUL-terminated when llhttp says it is complete. The arena is the
 * parser's own small buffer; a larger head moves to a heap block that
 * doubles as needed, and the head's pointers move with it. The block is
 * let go when the next message begins.
 */
#include "meshim/http1.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "meshim/util.h"

static struct h1_parser *of(llhttp_t *ll) { return ll->data; }

static int fail(struct h1_parser *p, const char *why)
{
    p->error = why;
    return HPE_USER;
}

/* A head beyond H1_HEAD_MAX or H1_HEADERS_MAX. Within the request line, a
 * method llhttp knows then 64 KiB of what llhttp takes for a target is
 * HTTP too (a URL too long, 431 as from Envoy), not another protocol. */
static int too_large(struct h1_parser *p, const char *why)
{
    p->too_large = true;
    if (p->kind == H1_REQUEST && p->head.method[0])
        p->spoke = true;
    return fail(p, why);
}

/* A pointer into the arena that moved from `from` (freed by now: only its
 * address is compared, as a number) to `to`. */
static void rebase(const char **q, const char *from, size_t len, char *to)
{
    size_t off = (uintptr_t)*q - (uintptr_t)from;
    if (off < len)
        *q = to + off;
}

/* Room for `need` bytes: the arena grows into the heap (the head's strings
 * are copied along and their pointers follow). False: over H1_HEAD_MAX, or
 * no memory. */
static bool reserve(struct h1_parser *p, size_t need)
{
    if (need <= p->cap)
        return true;
    if (need > H1_HEAD_MAX)
        return false;
    size_t cap = p->cap * 2;
    while (cap < need)
        cap *= 2;
    cap = cap < H1_HEAD_MAX ? cap : H1_HEAD_MAX;
    char *old = p->arena;
    char *to = old == p->small ? malloc(cap) : realloc(old, cap);
    if (!to)
        return false;
    if (old == p->small)
        memcpy(to, old, p->used);
    struct h1_head *h = &p->head;
    rebase(&h->method, old, p->used, to);
    rebase(&h->target, old, p->used, to);
    rebase(&h->authority, old, p->used, to);
    for (int i = 0; i < h->nheaders; i++) {
        rebase(&h->headers[i].name, old, p->used, to);
        rebase(&h->headers[i].value, old, p->used, to);
    }
    if (h->nheaders < H1_HEADERS_MAX)
        rebase(&h->headers[h->nheaders].name, old, p->used, to);    /* a value being read */
    p->arena = to;
    p->cap = cap;
    return true;
}

static void arena_reset(struct h1_parser *p)
{
    if (p->arena != p->small)
        free(p->arena);
    p->arena = p->small;
    p->cap = sizeof(p->small);
    p->used = p->mark = 0;
}

static int append(llhttp_t *ll, const char *at, size_t len)
{
    struct h1_parser *p = of(ll);
    if (!reserve(p, p->used + len + 1))
        return too_large(p, "head too large");
    memcpy(p->arena + p->used, at, len);
    p->used += len;
    return 0;
}

/* The string appended since the last one, NUL-terminated; NULL when the
 * terminator finds no room (an empty value right at the limit). */
static const char *take(struct h1_parser *p)
{
    if (!reserve(p, p->used + 1))
        return NULL;
    p->arena[p->used++] = '\0';
    const char *s = p->arena + p->mark;
    p->mark = p->used;
    return s;
}

static int on_message_begin(llhttp_t *ll)
{
    struct h1_parser *p = of(ll);
    memset(&p->head, 0, sizeof(p->head));
    p->head.method = p->head.target = p->head.authority = "";
    arena_reset(p);
    p->in_message = true;
    return 0;
}

/* *to = the string just read; a failure leaves *to as it was. */
static int complete(struct h1_parser *p, const char **to)
{
    const char *s = take(p);
    if (!s)
        return too_large(p, "head too large");
    *to = s;
    return 0;
}

static int on_method_complete(llhttp_t *ll)
{
    return complete(of(ll), &of(ll)->head.method);
}

static int on_url_complete(llhttp_t *ll)
{
    return complete(of(ll), &of(ll)->head.target);
}

static int on_version_complete(llhttp_t *ll)
{
    if (ll->http_major == 1)
        of(ll)->spoke = true;
    return 0;
}

static int on_field_complete(llhttp_t *ll)
{
    struct h1_parser *p = of(ll);
    if (p->head.nheaders == H1_HEADERS_MAX)
        return too_large(p, "too many header fields");
    return complete(p, &p->head.headers[p->head.nheaders].name);
}

static int on_value_complete(llhttp_t *ll)
{
    struct h1_parser *p = of(ll);
    int rc = complete(p, &p->head.headers[p->head.nheaders].value);
    if (rc == 0)
        p->head.nheaders++;
    return rc;
}

/* Whether bytes follow a response's head. */
static bool response_has_body(const struct h1_parser *p)
{
    int s = p->head.status;
    if (p->no_body_next || s / 100 == 1 || s == 204 || s == 304)
        return false;
    if (p->connect_next && s / 100 == 2)
        return false;
    if (p->ll.flags & F_CHUNKED)
        return true;
    if (p->ll.flags & F_CONTENT_LENGTH)
        return p->ll.content_length > 0;
    return true;   /* until the connection's end */
}

static int on_headers_complete(llhttp_t *ll)
{
    struct h1_parser *p = of(ll);
    struct h1_head *h = &p->head;
    h->major = ll->http_major;
    h->minor = ll->http_minor;
    h->keep_alive = llhttp_should_keep_alive(ll);
    const char *host = h1_header(h, "host");
    h->authority = host ? host : "";
    if (p->kind == H1_REQUEST) {
        const char *expect = h1_header(h, "expect");
        h->expect_continue = expect && ascii_casecmp(expect, "100-continue") == 0;
        h->has_body = (ll->flags & F_CHUNKED) || ((ll->flags & F_CONTENT_LENGTH) && ll->content_length > 0);
        h->upgrade = ll->upgrade || ll->method == HTTP_CONNECT;
        return HPE_PAUSED;
    }
    h->status = ll->status_code;
    h->has_body = response_has_body(p);
    h->until_eof = h->has_body && !(ll->flags & (F_CHUNKED | F_CONTENT_LENGTH));
    h->upgrade = h->status == 101 || (p->connect_next && h->status / 100 == 2);
    if (p->connect_next && h->status / 100 == 2) {
        p->owed = H1_UPGRADE;
        return 2;   /* no body, and raw bytes follow */
    }
    if (p->no_body_next) {
        p->owed = H1_END;
        return 1;   /* no body, whatever the head says */
    }
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *ll)
{
    struct h1_parser *p = of(ll);
    p->in_message = false;
    /* 100 Continue and friends are answers of their own: the request's
     * final answer follows, framed by the same request. */
    if (p->kind == H1_RESPONSE && !(p->head.status / 100 == 1 && p->head.status != 101))
        p->no_body_next = p->connect_next = false;
    if (p->finishing)
        return 0;
    if (p->owed == H1_END)
        return HPE_PAUSED;   /* the head is reported first, then this end */
    if (p->owed == H1_UPGRADE)
        return 0;            /* llhttp stops with HPE_PAUSED_UPGRADE by itself */
    if (ll->upgrade) {
        /* A request's upgrade waits for its answer; an answer's is final. */
        p->pending = p->kind == H1_REQUEST ? H1_END : H1_UPGRADE;
        return 0;
    }
    p->pending = H1_END;
    return HPE_PAUSED;
}

/* Every callback not named is NULL, as llhttp_settings_init would leave it. */
static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_method = append,
    .on_url = append,
    .on_header_field = append,
    .on_header_value = append,
    .on_method_complete = on_method_complete,
    .on_url_complete = on_url_complete,
    .on_version_complete = on_version_complete,
    .on_header_field_complete = on_field_complete,
    .on_header_value_complete = on_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

void h1_init(struct h1_parser *p, enum h1_kind kind)
{
    /* The small arena needs no zeroes: 8 KiB less to write per parser. */
    memset(p, 0, offsetof(struct h1_parser, small));
    arena_reset(p);
    p->kind = kind;
    p->head.method = p->head.target = p->head.authority = "";
    llhttp_init(&p->ll, kind == H1_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
    p->ll.data = p;
}

enum h1_event h1_feed(struct h1_parser *p, const char *buf, size_t len, size_t *used)
{
    *used = 0;
    if (p->error)
        return H1_ERROR;
    if (p->reported_head) {
        enum h1_event e = p->owed;
        p->owed = H1_MORE;
        p->reported_head = false;
        if (e == H1_UPGRADE)
            p->upgraded = true;
        return e;
    }
    if (p->upgraded)
        return H1_UPGRADE;   /* raw bytes, or a request waiting for its answer */
    if (len == 0 && !p->in_message)
        return H1_MORE;
    /* Even with no bytes: a message without a body ends where its head
     * ended, and llhttp gets there without reading. */
    if (!buf)
        buf = "";
    p->pending = H1_MORE;
    llhttp_errno_t err = llhttp_execute(&p->ll, buf, len);
    if (err == HPE_OK) {
        *used = len;
        return H1_MORE;
    }
    if (err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
        if (!p->error && err == HPE_PAUSED_H2_UPGRADE) {
            /* llhttp stops at HTTP/2's preface ("PRI * HTTP/2.0"). */
            p->error = "HTTP/2 without TLS, as gRPC speaks it";
        } else if (!p->error) {
            const char *reason = llhttp_get_error_reason(&p->ll);
            p->error = reason && *reason ? reason : llhttp_errno_name(err);
        }
        return H1_ERROR;
    }
    *used = (size_t)(llhttp_get_error_pos(&p->ll) - buf);
    if (err == HPE_PAUSED)
        llhttp_resume(&p->ll);
    if (p->owed != H1_MORE) {
        /* A head that could not pause: the head now, its end next call. */
        p->reported_head = true;
        return H1_HEAD;
    }
    if (err == HPE_PAUSED_UPGRADE)
        p->upgraded = true;
    if (p->pending == H1_MORE)
        p->pending = H1_HEAD;   /* paused in on_headers_complete */
    return p->pending;
}

enum h1_event h1_finish(struct h1_parser *p)
{
    if (p->error)
        return H1_ERROR;
    if (!p->in_message)
        return H1_MORE;
    p->finishing = true;
    llhttp_errno_t err = llhttp_finish(&p->ll);
    p->finishing = false;
    if (err == HPE_OK && !p->in_message)
        return H1_END;
    p->error = "the stream ended inside a message";
    return H1_ERROR;
}

void h1_response_to(struct h1_parser *p, const char *method)
{
    p->no_body_next = ascii_casecmp(method, "HEAD") == 0;
    p->connect_next = ascii_casecmp(method, "CONNECT") == 0;
}

void h1_upgrade_refused(struct h1_parser *p)
{
    if (p->kind == H1_REQUEST && p->upgraded) {
        p->upgraded = false;
        llhttp_resume_after_upgrade(&p->ll);
    }
}

void h1_free(struct h1_parser *p)
{
    arena_reset(p);         /* zeroed memory too: its NULL arena frees nothing */
}

const struct h1_head *h1_head(const struct h1_parser *p)
{
    return &p->head;
}

const char *h1_header(const struct h1_head *h, const char *name)
{
    for (int i = 0; i < h->nheaders; i++)
        if (ascii_casecmp(h->headers[i].name, name) == 0)
            return h->headers[i].value;
    return NULL;
}

const char *h1_error(const struct h1_parser *p)
{
    return p->error;
}

bool h1_spoke_http(const struct h1_parser *p)
{
    return p->spoke;
}

bool h1_too_large(const struct h1_parser *p)
{
    return p->too_large;
}

bool h1_bad_length(const struct h1_parser *p)
{
    llhttp_errno_t e = llhttp_get_errno(&p->ll);
    return e == HPE_UNEXPECTED_CONTENT_LENGTH || e == HPE_INVALID_CONTENT_LENGTH ||
           e == HPE_INVALID_TRANSFER_ENCODING;
}

bool h1_h2_server_preface(const char *p, size_t n)
{
    /* A frame's head: 24-bit length, type, flags, 31-bit stream id. */
    if (n < 9)
        return false;
    const unsigned char *u = (const unsigned char *)p;
    size_t length = (size_t)u[0] << 16 | (size_t)u[1] << 8 | u[2];
    return u[3] == 0x04 && (u[4] & ~0x01) == 0 && length % 6 == 0 &&
           (u[5] & 0x7f) == 0 && u[6] == 0 && u[7] == 0 && u[8] == 0;
}
