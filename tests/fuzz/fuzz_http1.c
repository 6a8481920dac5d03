/*
 * fuzz_http1.c — libFuzzer: HTTP/1.x framing (policy/http1.c) over bytes a
 * peer chooses, cut into reads where the input says. Beyond memory safety
 * it checks what a proxy forwarding by these offsets relies on: no event
 * claims bytes past the read, a message's head comes before its end, and
 * the boundaries do not depend on how the stream was cut (the same events
 * at the same stream offsets as when it is fed whole).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshim/http1.h"

#define MAX_EVENTS 256

struct trace {
    int n;
    enum h1_event ev[MAX_EVENTS];
    size_t at[MAX_EVENTS];
};

/* Feeds data in reads of the given sizes (cycled), recording each event
 * and the stream offset it ends at. */
static void run(enum h1_kind kind, const uint8_t *data, size_t size, const uint8_t *cuts, size_t ncuts,
                struct trace *t)
{
    static struct h1_parser p;
    h1_free(&p);            /* the last run's large head, if any */
    h1_init(&p, kind);
    if (kind == H1_RESPONSE)
        h1_response_to(&p, "GET");
    t->n = 0;
    size_t off = 0, c = 0;
    bool in_head = false;
    while (off < size && t->n < MAX_EVENTS) {
        size_t want = ncuts ? (size_t)cuts[c++ % ncuts] + 1 : size - off;
        size_t len = want < size - off ? want : size - off, done = 0;
        for (;;) {
            size_t used;
            enum h1_event e = h1_feed(&p, (const char *)data + off + done, len - done, &used);
            if (used > len - done)
                abort();    /* claimed bytes it was not given */
            done += used;
            if (e == H1_MORE && done == len)
                break;
            if (e == H1_HEAD) {
                if (in_head)
                    abort();    /* two heads without an end */
                in_head = true;
            } else if (e == H1_END) {
                if (!in_head)
                    abort();    /* an end without its head */
                in_head = false;
            }
            if (t->n < MAX_EVENTS) {
                t->ev[t->n] = e;
                t->at[t->n++] = off + done;
            }
            if (e == H1_ERROR || e == H1_UPGRADE)
                return;
        }
        off += len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    enum h1_kind kind = data[0] & 1 ? H1_RESPONSE : H1_REQUEST;
    size_t ncuts = data[1] % 8;
    if (size < 2 + ncuts)
        return 0;
    const uint8_t *cuts = data + 2, *body = data + 2 + ncuts;
    size_t n = size - 2 - ncuts;
    static struct trace whole, cut;
    run(kind, body, n, NULL, 0, &whole);
    run(kind, body, n, cuts, ncuts, &cut);
    /* An error may be found at another offset when the cut ends a read on
     * a byte that needed more; the events before it must agree. */
    int common = whole.n < cut.n ? whole.n : cut.n;
    for (int i = 0; i < common; i++) {
        if (whole.ev[i] == H1_ERROR || cut.ev[i] == H1_ERROR)
            break;
        if (whole.ev[i] != cut.ev[i] || whole.at[i] != cut.at[i])
            abort();    /* boundaries that depend on the reads */
    }
    return 0;
}
