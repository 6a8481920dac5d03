/*
 * test_backoff.c — backoff bounds and jitter, and the retry budget.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "meshim/backoff.h"

#define MS 1000000ull
#define S 1000000000ull

static void test_backoff_bounds(void **state)
{
    (void)state;
    uint64_t rng = 42;
    /* base 25 ms, max 250 ms: ceilings 25, 50, 100, 200, 250, 250 ... */
    static const uint64_t CEIL[] = { 25, 50, 100, 200, 250, 250, 250 };
    for (unsigned n = 0; n < 7; n++) {
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < 20000; i++) {
            uint64_t d = backoff_delay_ns(25 * MS, 250 * MS, n, &rng);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        assert_true(hi < CEIL[n] * MS);                 /* never above the ceiling */
        assert_true(hi > CEIL[n] * MS * 95 / 100);      /* full jitter reaches it */
        assert_true(lo < CEIL[n] * MS * 5 / 100);       /* ... and reaches 0 */
    }
    assert_int_equal(backoff_delay_ns(0, 250 * MS, 3, &rng), 0);
    assert_true(backoff_delay_ns(25 * MS, 250 * MS, 1000, &rng) < 250 * MS); /* no overflow */
}

static void test_budget_minimum(void **state)
{
    (void)state;
    struct retry_budget b;
    budget_init(&b, 0.20);
    /* No traffic: the floor of 10 per second over the 10 s window. */
    int allowed = 0;
    for (int i = 0; i < 500; i++)
        allowed += budget_try_retry(&b, 5 * S);
    assert_int_equal(allowed, 100);
}

static void test_budget_share(void **state)
{
    (void)state;
    struct retry_budget b;
    budget_init(&b, 0.20);
    for (int i = 0; i < 5000; i++)
        budget_attempt(&b, 100 * S);
    int allowed = 0;
    for (int i = 0; i < 5000; i++)
        allowed += budget_try_retry(&b, 100 * S);
    assert_int_equal(allowed, 1000 + 100);              /* 20% of 5000, plus the floor */
}

static void test_budget_window_slides(void **state)
{
    (void)state;
    struct retry_budget b;
    budget_init(&b, 0.0);
    for (int i = 0; i < 100; i++)
        assert_true(budget_try_retry(&b, 0));
    assert_false(budget_try_retry(&b, 0));
    assert_false(budget_try_retry(&b, 9 * S));          /* still inside the window */
    assert_true(budget_try_retry(&b, 10 * S));          /* the first second left it */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_budget_minimum),
        cmocka_unit_test(test_budget_share),
        cmocka_unit_test(test_budget_window_slides),
    };
    return cmocka_run_group_tests_name("backoff", tests, NULL, NULL);
}
