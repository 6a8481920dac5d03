/*
 * test_shared.c — the host's endpoint table (policy/shared.c): the packed
 * words keep what the circuit, health and lease mean; slots are found,
 * claimed, bounded and taken over only when idle; and the lock-free
 * operations hold under threads racing on one entry (exactly one probe
 * per half-open period, no lost failure). make test-tsan runs it too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "meshim/shared.h"

#define S 1000000000ull
#define MS 1000000ull

static struct shared_header *new_table(void)
{
    struct shared_header *h = calloc(1, shared_file_size());
    assert_non_null(h);
    shared_init(h, 1);
    return h;
}

static struct netaddr addr(const char *text)
{
    struct netaddr a;
    assert_true(netaddr_parse(text, true, &a));
    return a;
}

static void test_circuit_word_round_trip(void **state)
{
    (void)state;
    struct circuit c = { .state = CIRCUIT_OPEN, .ejections = 3, .open_until_ns = 90 * S + 1 };
    struct circuit back;
    shared_circuit_unpack(shared_circuit_pack(&c), &back);
    assert_int_equal(back.state, CIRCUIT_OPEN);
    assert_int_equal(back.ejections, 3);
    assert_true(back.open_until_ns >= c.open_until_ns);         /* rounded up, never early */
    assert_true(back.open_until_ns - c.open_until_ns < MS);

    c = (struct circuit){ .state = CIRCUIT_CLOSED, .failures = 4, .ejections = 1,
                          .closed_since_ns = 7 * S };
    shared_circuit_unpack(shared_circuit_pack(&c), &back);
    assert_int_equal(back.state, CIRCUIT_CLOSED);
    assert_int_equal(back.failures, 4);
    assert_int_equal(back.closed_since_ns, 7 * S);

    c = (struct circuit){ .state = CIRCUIT_HALF_OPEN, .probing = true, .ejections = 2,
                          .probe_until_ns = 40 * S };
    shared_circuit_unpack(shared_circuit_pack(&c), &back);
    assert_true(back.probing);
    assert_int_equal(back.probe_until_ns, 40 * S);
    c.probe_until_ns = 0;                       /* a probe with no end stays without one */
    shared_circuit_unpack(shared_circuit_pack(&c), &back);
    assert_true(back.probing);
    assert_int_equal(back.probe_until_ns, 0);

    c = (struct circuit){ .failures = 100000, .ejections = 1000 };   /* saturate, not wrap */
    shared_circuit_unpack(shared_circuit_pack(&c), &back);
    assert_int_equal(back.failures, 4095);
    assert_int_equal(back.ejections, 255);
}

static void test_find_claims_and_finds(void **state)
{
    (void)state;
    struct shared_header *h = new_table();
    struct netaddr a = addr("10.0.0.5:8080"), b = addr("10.0.0.6:8080");
    uint64_t ka = shared_key("orders", &a), kb = shared_key("orders", &b);
    assert_int_not_equal(ka, kb);
    assert_int_not_equal(ka, shared_key("users", &a));          /* per service name */
    struct netaddr a2 = addr("10.0.0.5:8081");
    assert_int_not_equal(ka, shared_key("orders", &a2));        /* and per port */
    struct shared_entry *ea = shared_find(h, ka, "orders", "10.0.0.5:8080", 1000);
    assert_non_null(ea);
    assert_string_equal(ea->service, "orders");
    assert_ptr_equal(shared_find(h, ka, "orders", "10.0.0.5:8080", 2000), ea);
    struct shared_entry *eb = shared_find(h, kb, "orders", "10.0.0.6:8080", 1000);
    assert_non_null(eb);
    assert_ptr_not_equal(ea, eb);
    free(h);
}

/* Keys that land on one slot fill SHARED_PROBE slots; the next one gets
 * none while they are in use, and the least recently used one once it has
 * been idle long enough with a closed circuit. */
static void test_bounded_and_ages_out(void **state)
{
    (void)state;
    struct shared_header *h = new_table();
    struct shared_entry *first = NULL;
    for (uint64_t i = 0; i < SHARED_PROBE; i++) {
        struct shared_entry *e = shared_find(h, 5 + i * SHARED_SLOTS, "s", "e", 1000 + i * 1000);
        assert_non_null(e);
        if (!first)
            first = e;
    }
    uint64_t late = 5 + SHARED_PROBE * SHARED_SLOTS;
    assert_null(shared_find(h, late, "s", "e", 2000 + SHARED_PROBE * 1000));
    /* Idle, but ejected until later, or probing: kept however old. */
    uint64_t much_later = SHARED_IDLE_MS + 1000000;
    struct circuit open = { .state = CIRCUIT_OPEN, .open_until_ns = (much_later + 1000) * MS };
    struct circuit probing = { .state = CIRCUIT_HALF_OPEN, .probing = true };
    for (uint32_t i = 0; i < SHARED_PROBE; i++)
        shared_slots(h)[(5 + i) & (SHARED_SLOTS - 1)].circuit =
            shared_circuit_pack(i % 2 ? &open : &probing);
    assert_null(shared_find(h, late, "s", "e", much_later));
    /* Ejections over (an endpoint ejected, then gone from discovery): the
     * least recently used is taken over, reset. */
    open.open_until_ns = 1 * S;
    for (uint32_t i = 0; i < SHARED_PROBE; i++)
        shared_slots(h)[(5 + i) & (SHARED_SLOTS - 1)].circuit = shared_circuit_pack(&open);
    first->health = 1;
    struct shared_entry *e = shared_find(h, late, "s2", "e2", much_later);
    assert_ptr_equal(e, first);
    assert_int_equal(e->key, late);
    assert_int_equal(e->health, 0);
    assert_string_equal(e->service, "s2");
    free(h);
}

/* A table written by processes under another CLOCK_MONOTONIC (a user-mode
 * Linux guest sharing the folder with its host, a time namespace): their
 * stamps lie hours ahead of this clock. Such entries are taken over when
 * room is needed, and one found by its key is reset, not kept ejected for
 * the hours its stamp says. */
static void test_foreign_clock(void **state)
{
    (void)state;
    struct shared_header *h = new_table();
    uint64_t host_ms = 5ull * 3600 * 1000, guest_ms = 50 * 1000;
    struct circuit open = { .state = CIRCUIT_OPEN, .open_until_ns = (host_ms + 30000) * MS };
    for (uint64_t i = 0; i < SHARED_PROBE; i++) {
        struct shared_entry *e = shared_find(h, 7 + i * SHARED_SLOTS, "s", "e", host_ms);
        assert_non_null(e);
        e->circuit = shared_circuit_pack(&open);
    }
    /* Within one clock, a moment ahead is a race, not another clock. */
    assert_null(shared_find(h, 7 + SHARED_PROBE * SHARED_SLOTS, "s", "e", host_ms - 1000));

    struct shared_entry *e = shared_find(h, 7, "s", "e", guest_ms);
    assert_non_null(e);
    struct circuit c;
    shared_circuit_load(e, &c);
    assert_int_equal(c.state, CIRCUIT_CLOSED);
    assert_int_equal(e->used_ms, guest_ms);

    e = shared_find(h, 7 + SHARED_PROBE * SHARED_SLOTS, "s2", "e2", guest_ms);
    assert_non_null(e);
    assert_string_equal(e->service, "s2");
    free(h);
}

/* What shared_find may take over is what `meshim stats` hides: unused
 * for SHARED_IDLE_MS, and neither a verdict in force nor a live checker. */
static void test_idle(void **state)
{
    (void)state;
    struct shared_header *h = new_table();
    uint64_t t0 = 3600 * 1000, later = t0 + SHARED_IDLE_MS;
    struct shared_entry *e = shared_find(h, 9, "orders", "10.0.0.5:8080", t0);
    assert_non_null(e);
    assert_false(shared_idle(e, t0));
    assert_false(shared_idle(e, later - 1));
    assert_true(shared_idle(e, later));
    shared_touch(e, later);
    assert_false(shared_idle(e, later));
    /* Ejected past the idle period: kept and shown. */
    struct circuit open = { .state = CIRCUIT_OPEN, .open_until_ns = (later + SHARED_IDLE_MS + 1) * MS };
    e->circuit = shared_circuit_pack(&open);
    assert_false(shared_idle(e, later + SHARED_IDLE_MS));
    e->circuit = 0;
    assert_true(shared_idle(e, later + SHARED_IDLE_MS));
    /* Someone runs its health checks. */
    assert_true(shared_lease_take(&e->checker, 42, later + SHARED_IDLE_MS, 5000));
    assert_false(shared_idle(e, later + SHARED_IDLE_MS));
    free(h);
}

static void test_lease(void **state)
{
    (void)state;
    uint64_t lease = 0;
    assert_int_equal(shared_lease_holder(lease, 1000), 0);
    assert_true(shared_lease_take(&lease, 100, 1000, 500));
    assert_int_equal(shared_lease_holder(lease, 1200), 100);
    assert_false(shared_lease_take(&lease, 200, 1200, 500));    /* held by 100 */
    assert_true(shared_lease_take(&lease, 100, 1400, 500));     /* renewed by its holder */
    assert_false(shared_lease_take(&lease, 200, 1800, 500));
    assert_int_equal(shared_lease_holder(lease, 1900), 0);      /* 100 stopped renewing */
    assert_true(shared_lease_take(&lease, 200, 1900, 500));     /* taken over */
    assert_int_equal(shared_lease_holder(lease, 2000), 200);
}

static void test_health(void **state)
{
    (void)state;
    struct shared_entry e = { 0 };
    bool down;
    assert_false(shared_health_observe(&e, false, 2, 2, 1000, &down));
    assert_true(shared_health_observe(&e, false, 2, 2, 2000, &down));
    assert_true(down);
    struct health h;
    uint64_t checked;
    shared_health_unpack(e.health, &h, &checked);
    assert_true(h.down);
    assert_int_equal(checked, 2000);
}

static void test_ewma(void **state)
{
    (void)state;
    struct shared_entry e = { 0 };
    shared_ewma_observe(&e, 2000000, 10 * S);           /* 2 ms */
    struct lb_target t = { 0 };
    shared_ewma_load(&e, &t);
    assert_true(t.ewma_ns > 1999000 && t.ewma_ns < 2001000);
    assert_int_equal(t.ewma_at_ns, 10 * S);
    shared_ewma_observe(&e, 1000000, 10 * S + LB_EWMA_DECAY_NS * 10);  /* long after: mostly the new */
    shared_ewma_load(&e, &t);
    assert_true(t.ewma_ns < 1100000);
}

/* ------------------------------------------------------------- threads -- */

#define THREADS 4

static struct shared_entry race;
static const struct breaker_policy POLICY = { .eject_after = 1000000, .eject_time_ns = S,
                                              .max_eject_percent = 100 };
static uint64_t hits;           /* racing calls whose change answered true, all threads */

struct racer {
    shared_circuit_fn fn;
    int rounds;
};

/* One thread (a process, in the table): rounds changes of the raced entry. */
static void *racing(void *arg)
{
    const struct racer *r = arg;
    struct circuit after;
    for (int i = 0; i < r->rounds; i++)
        if (shared_circuit_apply(&race, r->fn, NULL, &after))
            __atomic_add_fetch(&hits, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void run_threads(shared_circuit_fn fn, int rounds)
{
    struct racer r = { fn, rounds };
    pthread_t t[THREADS];
    hits = 0;
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, racing, &r), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
}

static bool fail_fn(struct circuit *c, void *arg)
{
    (void)arg;
    return circuit_failure(c, &POLICY, 1 * S, true);
}

static bool count_fn(struct circuit *c, void *arg)
{
    (void)arg;
    c->failures++;
    return true;
}

/* True when this call took the half-open probe. */
static bool probe_fn(struct circuit *c, void *arg)
{
    (void)arg;
    bool probe;
    return circuit_admit(c, 100 * S, 0, &probe) && probe;
}

/* Failures from many threads (processes, in the table) at once saturate
 * the count instead of wrapping it round to a closed-looking zero. */
static void test_racing_failures_saturate(void **state)
{
    (void)state;
    memset(&race, 0, sizeof(race));
    run_threads(fail_fn, 20000);
    struct circuit c;
    shared_circuit_load(&race, &c);
    assert_int_equal(c.state, CIRCUIT_CLOSED);
    assert_int_equal(c.failures, 4095);
}

/* No update is lost when threads race on one word. */
static void test_racing_updates_exact(void **state)
{
    (void)state;
    memset(&race, 0, sizeof(race));
    run_threads(count_fn, 1000);
    struct circuit c;
    shared_circuit_load(&race, &c);
    assert_int_equal(c.failures, THREADS * 1000);
}

/* An ended ejection lets exactly one of many racing callers probe. */
static void test_one_probe_among_racers(void **state)
{
    (void)state;
    memset(&race, 0, sizeof(race));
    struct circuit open = { .state = CIRCUIT_OPEN, .ejections = 1, .open_until_ns = 50 * S };
    race.circuit = shared_circuit_pack(&open);
    run_threads(probe_fn, 20000);
    assert_int_equal(hits, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_circuit_word_round_trip),
        cmocka_unit_test(test_find_claims_and_finds),
        cmocka_unit_test(test_bounded_and_ages_out),
        cmocka_unit_test(test_foreign_clock),
        cmocka_unit_test(test_idle),
        cmocka_unit_test(test_lease),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_ewma),
        cmocka_unit_test(test_racing_failures_saturate),
        cmocka_unit_test(test_racing_updates_exact),
        cmocka_unit_test(test_one_probe_among_racers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
