/*
 * test_breaker.c — the circuit state machine (closed / open / half-open),
 * growth and cap of the ejection time, max_eject_percent, health thresholds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "meshim/breaker.h"

#define S 1000000000ull

static const struct breaker_policy P = { .eject_after = 3, .eject_time_ns = 30 * S,
                                         .max_eject_percent = 50 };

static void fail_n(struct circuit *c, int n, uint64_t now)
{
    for (int i = 0; i < n; i++)
        circuit_failure(c, &P, now, true);
}

static void test_opens_after_consecutive_failures(void **state)
{
    (void)state;
    struct circuit c = { 0 };
    bool probe;
    assert_false(circuit_failure(&c, &P, 0, true));
    assert_false(circuit_failure(&c, &P, 0, true));
    circuit_success(&c, 0);                     /* not consecutive any more */
    assert_false(circuit_failure(&c, &P, 0, true));
    assert_false(circuit_failure(&c, &P, 0, true));
    assert_int_equal(c.state, CIRCUIT_CLOSED);
    assert_true(circuit_failure(&c, &P, 0, true));
    assert_int_equal(c.state, CIRCUIT_OPEN);
    assert_false(circuit_admit(&c, 29 * S, 0, &probe));
}

/* eject_after = off (0): failures never open the circuit. */
static void test_eject_after_off(void **state)
{
    (void)state;
    const struct breaker_policy off = { .eject_after = 0, .eject_time_ns = 30 * S,
                                        .max_eject_percent = 100 };
    struct circuit c = { 0 };
    bool probe;
    for (int i = 0; i < 1000; i++)
        assert_false(circuit_failure(&c, &off, (uint64_t)i * S, true));
    assert_int_equal(c.state, CIRCUIT_CLOSED);
    assert_true(circuit_admit(&c, 1000 * S, 0, &probe));
}

static void test_half_open_probe(void **state)
{
    (void)state;
    struct circuit c = { 0 };
    bool probe;
    fail_n(&c, 3, 0);
    /* After the ejection: exactly one probe is let through. */
    assert_true(circuit_admit(&c, 30 * S, 0, &probe));
    assert_true(probe);
    assert_int_equal(c.state, CIRCUIT_HALF_OPEN);
    assert_false(circuit_admit(&c, 30 * S, 0, &probe));
    /* The probe succeeds: closed, everyone admitted. */
    circuit_success(&c, 31 * S);
    assert_int_equal(c.state, CIRCUIT_CLOSED);
    assert_true(circuit_admit(&c, 31 * S, 0, &probe));
    assert_false(probe);
}

/* A probe whose outcome never comes (its process killed -9 while it held the
 * half-open state of the host's table) blocks others only for its lease. */
static void test_probe_lease_expires(void **state)
{
    (void)state;
    struct circuit c = { 0 };
    bool probe;
    fail_n(&c, 3, 0);
    assert_true(circuit_admit(&c, 30 * S, 2 * S, &probe) && probe);
    assert_true(circuit_blocked(&c, 31 * S));
    assert_false(circuit_admit(&c, 31 * S, 2 * S, &probe));
    assert_false(circuit_blocked(&c, 32 * S));
    assert_true(circuit_admit(&c, 32 * S, 2 * S, &probe) && probe);   /* taken over */
    assert_false(circuit_admit(&c, 33 * S, 2 * S, &probe));
    circuit_success(&c, 33 * S);
    assert_true(circuit_admit(&c, 33 * S, 2 * S, &probe) && !probe);
}

static void test_ejection_grows_and_caps(void **state)
{
    (void)state;
    struct circuit c = { 0 };
    bool probe;
    uint64_t now = 0;
    fail_n(&c, 3, now);
    assert_int_equal(c.open_until_ns, 30 * S);              /* 1 x 30 s */
    for (uint32_t n = 2; n <= 12; n++) {
        now = c.open_until_ns;
        assert_true(circuit_admit(&c, now, 0, &probe) && probe);
        assert_true(circuit_failure(&c, &P, now, true));    /* the probe fails */
        uint64_t want = n * 30 * S < 300 * S ? n * 30 * S : 300 * S;
        assert_int_equal(c.open_until_ns - now, want);      /* n x 30 s, at most 300 s */
    }
    assert_int_equal(breaker_eject_ns(&P, 1000000000u), BREAKER_MAX_EJECT_NS);
}

static void test_forgiven_after_staying_closed(void **state)
{
    (void)state;
    struct circuit c = { 0 };
    bool probe;
    fail_n(&c, 3, 0);
    assert_true(circuit_admit(&c, 30 * S, 0, &probe));
    circuit_success(&c, 30 * S);
    /* Fails again soon: second ejection, 60 s. */
    fail_n(&c, 3, 40 * S);
    assert_int_equal(c.open_until_ns, 100 * S);
    assert_true(circuit_admit(&c, 100 * S, 0, &probe));
    circuit_success(&c, 100 * S);
    /* Fails again after 300 s closed: back to the first ejection's 30 s. */
    fail_n(&c, 3, 400 * S);
    assert_int_equal(c.open_until_ns, 430 * S);
}

/* A burst whose connects partly time out (a healthy server's accept queue
 * overflowed) and partly succeed: each success of a connection admitted
 * before the ejection withdraws it, and the next ejection is no longer
 * (it was 30, 60, 90 s from one burst). A failed probe still lengthens it. */
static void test_withdrawn_ejection_does_not_grow(void **state)
{
    (void)state;
    struct circuit c = { 0 };
    bool probe;
    for (uint64_t t = 1; t <= 3; t++) {
        fail_n(&c, 3, t * S);
        assert_int_equal(c.state, CIRCUIT_OPEN);
        assert_int_equal(c.open_until_ns - t * S, 30 * S);  /* 30 s each time */
        circuit_success(&c, t * S);                         /* admitted before it opened */
        assert_int_equal(c.state, CIRCUIT_CLOSED);
        assert_true(circuit_admit(&c, t * S, 0, &probe) && !probe);
    }
    fail_n(&c, 3, 10 * S);
    assert_true(circuit_admit(&c, 40 * S, 0, &probe) && probe);
    assert_true(circuit_failure(&c, &P, 40 * S, true));    /* the probe fails */
    assert_int_equal(c.open_until_ns - 40 * S, 60 * S);
}

static void test_max_eject_percent(void **state)
{
    (void)state;
    assert_true(breaker_may_eject(0, 3, 50));      /* one always may be */
    assert_false(breaker_may_eject(1, 3, 50));     /* 2 of 3 > 50% */
    assert_true(breaker_may_eject(1, 4, 50));      /* 2 of 4 = 50% */
    assert_false(breaker_may_eject(2, 4, 50));
    assert_true(breaker_may_eject(0, 1, 0));       /* even at 0% */
    assert_false(breaker_may_eject(0, 0, 100));    /* nothing to eject */
    /* A failure that may not eject leaves the circuit closed. */
    struct circuit c = { 0 };
    for (int i = 0; i < 10; i++)
        assert_false(circuit_failure(&c, &P, 0, false));
    assert_int_equal(c.state, CIRCUIT_CLOSED);
}

static void test_panic_threshold(void **state)
{
    (void)state;
    assert_false(breaker_panic(0, 1, 0));          /* 0: never, even with none usable */
    assert_true(breaker_panic(0, 1, 50));          /* the only endpoint ejected */
    assert_false(breaker_panic(1, 2, 50));         /* half usable is not below half */
    assert_true(breaker_panic(1, 3, 50));          /* a third is */
    assert_true(breaker_panic(2, 3, 100));         /* 100: any endpoint out */
    assert_false(breaker_panic(3, 3, 100));
    assert_false(breaker_panic(0, 0, 100));        /* nothing to send to */
    /* What a panic connect's outcome does to an ejected endpoint: a failure
     * leaves the ejection as it was (no longer), a success closes it. */
    struct circuit c = { 0 };
    fail_n(&c, 3, 0);
    assert_int_equal(c.state, CIRCUIT_OPEN);
    struct circuit before = c;
    assert_false(circuit_failure(&c, &P, 5 * S, true));
    assert_memory_equal(&c, &before, sizeof(c));
    circuit_success(&c, 6 * S);
    assert_int_equal(c.state, CIRCUIT_CLOSED);
}

static void test_health_thresholds(void **state)
{
    (void)state;
    struct health h = { 0 };
    /* Unhealthy after 3 consecutive failures; a success in between resets. */
    assert_false(health_observe(&h, false, 2, 3));
    assert_false(health_observe(&h, false, 2, 3));
    assert_false(health_observe(&h, true, 2, 3));
    assert_false(health_observe(&h, false, 2, 3));
    assert_false(health_observe(&h, false, 2, 3));
    assert_true(health_observe(&h, false, 2, 3));
    assert_true(h.down);
    /* Healthy again after 2 consecutive successes. */
    assert_false(health_observe(&h, true, 2, 3));
    assert_false(health_observe(&h, false, 2, 3));
    assert_false(health_observe(&h, true, 2, 3));
    assert_true(health_observe(&h, true, 2, 3));
    assert_false(h.down);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_after_consecutive_failures),
        cmocka_unit_test(test_half_open_probe),
        cmocka_unit_test(test_probe_lease_expires),
        cmocka_unit_test(test_ejection_grows_and_caps),
        cmocka_unit_test(test_forgiven_after_staying_closed),
        cmocka_unit_test(test_withdrawn_ejection_does_not_grow),
        cmocka_unit_test(test_max_eject_percent),
        cmocka_unit_test(test_panic_threshold),
        cmocka_unit_test(test_eject_after_off),
        cmocka_unit_test(test_health_thresholds),
    };
    return cmocka_run_group_tests_name("breaker", tests, NULL, NULL);
}
