/*
 * test_threadtrace.c — trace_propagation = thread lends a request's context
 * only when it is certainly the one the thread serves.
 *
 * Links the shim's objects (as test_fork does): read() and write() here are
 * the shim's hooks, which call threadtrace_read and threadtrace_write on
 * the descriptors marked FD_TRACE_IN and FD_TRACE_OUT. The test plays the
 * engine itself: it marks a head, moves the bytes into an inbound pair
 * inside threadtrace_move_begin/end, and asks the outbound connection's
 * threadtrace which context stamped what the application wrote.
 *
 * Each case runs in a thread of its own: what a thread serves is
 * thread-local, and "never again" must not leak from one case to the next.
 * cmocka's assertions belong to the main thread, so a case CHECKs, and a
 * failed CHECK ends its thread (longjmp within it); main asserts then.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libc/real.h"
#include "mesh/conn.h"
#include "mesh/fdtable.h"
#include "mesh/threadtrace.h"

static __thread jmp_buf *case_end;
static const char *case_failed;     /* the failed CHECK's text; NULL: none */
static int case_line;

#define CHECK(x)                                                          \
    do {                                                                  \
        if (!(x)) {                                                       \
            case_failed = #x;                                             \
            case_line = __LINE__;                                         \
            longjmp(*case_end, 1);                                        \
        }                                                                 \
    } while (0)

#define HEAD "GET /call HTTP/1.1\r\nhost: front\r\n\r\n"
#define CALL "GET /up HTTP/1.1\r\nhost: up\r\n\r\n"

/* One side of a connection: the application's end (in the table, marked)
 * and the engine's end. */
struct side {
    int app, engine;
    struct threadtrace *tt;
    uint64_t given;                 /* inbound: bytes given to the application */
    uint64_t taken;                 /* outbound: bytes the engine took from it */
};

static void side_open(struct side *s, bool inbound)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    s->app = sv[0];
    s->engine = sv[1];
    s->given = s->taken = 0;
    struct conn *c = conn_new_inbound(1, "127.0.0.1:1");
    CHECK(c);
    s->tt = c->tt = threadtrace_new(inbound ? -1 : s->engine);
    CHECK(c->tt);
    fdtable_set(s->app, c);
    fdtable_set_kind(s->app, inbound ? FD_TRACE_IN : FD_TRACE_OUT);
}

static void side_close(struct side *s)
{
    close(s->app);                  /* the hook drops the table's slot */
    close(s->engine);
}

static struct trace_context context(uint8_t n)
{
    struct trace_context ctx = { .flags = TRACE_FLAG_SAMPLED };
    memset(ctx.trace_id, n, sizeof(ctx.trace_id));
    memset(ctx.span_id, n, sizeof(ctx.span_id));
    return ctx;
}

/* The engine gives the application a request head whose server span is
 * ctx. `finish` false: the move is left open (the engine still inside its
 * send) until move_finish. */
static void give_head(struct side *s, const struct trace_context *ctx, bool finish)
{
    size_t n = strlen(HEAD);
    threadtrace_head(s->tt, s->given + n, ctx);
    threadtrace_move_begin(s->tt);
    CHECK(real_send(s->engine, HEAD, n, 0) == (ssize_t)n);
    s->given += n;
    if (finish)
        threadtrace_move_end(s->tt, n);
}

static void move_finish(struct side *s)
{
    threadtrace_move_end(s->tt, strlen(HEAD));
}

/* The application reads what waits (through the read hook). */
static void app_reads(struct side *s)
{
    char buf[4096];
    CHECK(read(s->app, buf, sizeof(buf)) > 0);
}

/* The application writes a request on the outbound side (through the
 * write hook); the engine takes it. Returns whether it carried a context,
 * and which. */
static bool app_calls(struct side *out, struct trace_context *got)
{
    char buf[4096];
    size_t n = strlen(CALL);
    CHECK(write(out->app, CALL, n) == (ssize_t)n);
    threadtrace_move_begin(out->tt);
    CHECK(real_recv(out->engine, buf, sizeof(buf), 0) == (ssize_t)n);
    threadtrace_move_end(out->tt, n);
    bool has = threadtrace_request(out->tt, out->taken, got);
    out->taken += n;
    return has;
}

struct case_run {
    void *(*fn)(void *);
};

static void *case_thread(void *arg)
{
    jmp_buf end;
    case_end = &end;
    if (!setjmp(end))
        ((struct case_run *)arg)->fn(NULL);
    return NULL;
}

/* Runs a case in a new thread; fails the test with its failed CHECK. */
static void run_in_thread(void *(*fn)(void *))
{
    struct case_run run = { fn };
    pthread_t t;
    case_failed = NULL;
    assert_int_equal(pthread_create(&t, NULL, case_thread, &run), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    if (case_failed)
        fail_msg("line %d: CHECK(%s) failed", case_line, case_failed);
}

/* The plain case: a head read, a call made, the call in its trace; the
 * answer begun, the next call in none. */
static void *serves_one(void *arg)
{
    (void)arg;
    struct side in, out;
    side_open(&in, true);
    side_open(&out, false);
    struct trace_context a = context(0xa1), got;
    give_head(&in, &a, true);
    app_reads(&in);
    CHECK(app_calls(&out, &got));
    CHECK(!memcmp(got.trace_id, a.trace_id, sizeof(a.trace_id)));
    CHECK(write(in.app, "HTTP/1.1 200 OK\r\n", 17) == 17);     /* the answer begins */
    CHECK(!app_calls(&out, &got));
    side_close(&in);
    side_close(&out);
    return NULL;
}

static void test_serves_one(void **state)
{
    (void)state;
    run_in_thread(serves_one);
}

/* The engine is still inside the send that woke the read, for longer than
 * the hook waits: the hook cannot tell which bytes were read, so whether the
 * next request's head passed. The thread served request 1 of this
 * connection; it must not lend request 1's context to what it does next. */
static void *position_unknown(void *arg)
{
    (void)arg;
    struct side in, out;
    side_open(&in, true);
    side_open(&out, false);
    struct trace_context first = context(0xb1), second = context(0xb2), got;
    give_head(&in, &first, true);
    app_reads(&in);
    CHECK(app_calls(&out, &got));             /* serving request 1 */
    give_head(&in, &second, false);                 /* request 2, the move still open */
    app_reads(&in);
    move_finish(&in);
    CHECK(!app_calls(&out, &got));
    side_close(&in);
    side_close(&out);
    return NULL;
}

static void test_position_unknown_lends_nothing(void **state)
{
    (void)state;
    run_in_thread(position_unknown);
}

/* The same while it serves another connection: an event loop, never again. */
static void *position_unknown_elsewhere(void *arg)
{
    (void)arg;
    struct side a, b, out;
    side_open(&a, true);
    side_open(&b, true);
    side_open(&out, false);
    struct trace_context ca = context(0xc1), cb = context(0xc2), cc = context(0xc3), got;
    give_head(&a, &ca, true);
    app_reads(&a);
    give_head(&b, &cb, false);
    app_reads(&b);
    move_finish(&b);
    CHECK(!app_calls(&out, &got));
    /* A later head read alone, exactly: still nothing (never again). */
    give_head(&a, &cc, true);
    app_reads(&a);
    CHECK(!app_calls(&out, &got));
    side_close(&a);
    side_close(&b);
    side_close(&out);
    return NULL;
}

static void test_position_unknown_elsewhere_is_an_event_loop(void **state)
{
    (void)state;
    run_in_thread(position_unknown_elsewhere);
}

/* Two connections' heads read by turns (positions known): nothing, ever. */
static void *event_loop(void *arg)
{
    (void)arg;
    struct side a, b, out;
    side_open(&a, true);
    side_open(&b, true);
    side_open(&out, false);
    struct trace_context ca = context(0xd1), cb = context(0xd2), got;
    give_head(&a, &ca, true);
    app_reads(&a);
    give_head(&b, &cb, true);
    app_reads(&b);
    CHECK(!app_calls(&out, &got));
    side_close(&a);
    side_close(&b);
    side_close(&out);
    return NULL;
}

static void test_event_loop_lends_nothing(void **state)
{
    (void)state;
    run_in_thread(event_loop);
}

/* Two heads in one read (pipelined): which one is served is not known. */
static void *pipelined(void *arg)
{
    (void)arg;
    struct side in, out;
    side_open(&in, true);
    side_open(&out, false);
    struct trace_context c1 = context(0xe1), c2 = context(0xe2), got;
    give_head(&in, &c1, true);
    give_head(&in, &c2, true);
    app_reads(&in);
    CHECK(!app_calls(&out, &got));
    side_close(&in);
    side_close(&out);
    return NULL;
}

static void test_pipelined_lends_nothing(void **state)
{
    (void)state;
    run_in_thread(pipelined);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serves_one),
        cmocka_unit_test(test_position_unknown_lends_nothing),
        cmocka_unit_test(test_position_unknown_elsewhere_is_an_event_loop),
        cmocka_unit_test(test_event_loop_lends_nothing),
        cmocka_unit_test(test_pipelined_lends_nothing),
    };
    return cmocka_run_group_tests_name("threadtrace", tests, NULL, NULL);
}
