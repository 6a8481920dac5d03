/*
 * test_engine.c — the engine's slow work: a burst of it never holds back
 * a descriptor's event by more than one budget, and a cancelled item never
 * runs. Runs the real engine thread (engine.o and what it links).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <semaphore.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine/engine.h"
#include "meshim/util.h"

#define ITEMS 40

static char order[ITEMS + 8];     /* 's' a slow item ran, 'e' the event came */
static int n_order;
static sem_t done;

static struct engine_slow items[ITEMS];
static struct engine_io bell_io;
static int bell_fd;
static int left;

static void slow_run(struct engine_slow *s)
{
    (void)s;
    uint64_t until = now_ns() + 2000000;    /* 2 ms: more than a turn's budget */
    while (now_ns() < until)
        ;
    order[n_order++] = 's';
    if (--left == 0)
        sem_post(&done);
}

static void bell_ready(struct engine_io *io, uint32_t events)
{
    (void)events;
    uint64_t v;
    (void)!read(io->fd, &v, sizeof(v));
    engine_unwatch(io);
    order[n_order++] = 'e';
}

/* On the engine thread: a burst of slow work, then an event. */
static void burst(struct engine_task *t)
{
    (void)t;
    for (int i = 0; i < ITEMS; i++) {
        items[i].run = slow_run;
        engine_slow(&items[i]);
        engine_slow(&items[i]);                 /* queued once only */
    }
    bell_io = (struct engine_io){ .ready = bell_ready, .fd = bell_fd };
    engine_watch(&bell_io, EPOLLIN);
    uint64_t one = 1;
    (void)!write(bell_fd, &one, sizeof(one));
}

static void test_event_not_held_back(void **state)
{
    (void)state;
    sem_init(&done, 0, 0);
    bell_fd = eventfd(0, EFD_NONBLOCK);
    left = ITEMS;
    static struct engine_task t = { .run = burst };
    assert_true(engine_post(&t));
    while (sem_wait(&done) < 0)
        ;
    order[n_order] = '\0';
    /* Every item ran once; the event came after at most the one slow item
     * its turn had begun (not after all forty). */
    assert_int_equal(n_order, ITEMS + 1);
    const char *e = strchr(order, 'e');
    assert_non_null(e);
    assert_true(e - order <= 1);
}

static int ran_b;
static struct engine_slow a, b, c;
static void a_run(struct engine_slow *s) { (void)s; engine_slow_cancel(&b); }
static void b_run(struct engine_slow *s) { (void)s; ran_b = 1; }
static void c_run(struct engine_slow *s) { (void)s; sem_post(&done); }

static void queue_abc(struct engine_task *t)
{
    (void)t;
    a.run = a_run;
    b.run = b_run;
    c.run = c_run;
    engine_slow(&a);
    engine_slow(&b);
    engine_slow(&c);
}

static void test_cancel(void **state)
{
    (void)state;
    static struct engine_task t = { .run = queue_abc };
    assert_true(engine_post(&t));
    while (sem_wait(&done) < 0)
        ;
    assert_int_equal(ran_b, 0);
    assert_false(b.queued);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_not_held_back),
        cmocka_unit_test(test_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
