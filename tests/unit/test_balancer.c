/*
 * test_balancer.c — each policy's distribution, weights, random start,
 * usability filter and p2c's use of latency and load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "meshim/balancer.h"

#define N 3

static struct lb_target targets[N];
static struct lb_target *const ptrs[N] = { &targets[0], &targets[1], &targets[2] };
static uint64_t rng = 12345;

static void reset(uint32_t w0, uint32_t w1, uint32_t w2)
{
    memset(targets, 0, sizeof(targets));
    targets[0].weight = w0;
    targets[1].weight = w1;
    targets[2].weight = w2;
}

static void count_picks(enum lb_policy policy, int picks, int counts[N])
{
    struct balancer b;
    assert_true(balancer_init(&b, policy, ptrs, N, &rng));
    memset(counts, 0, N * sizeof(int));
    for (int i = 0; i < picks; i++) {
        ssize_t p = balancer_pick(&b, NULL, NULL, &rng, 0);
        assert_true(p >= 0 && p < N);
        counts[p]++;
    }
    balancer_free(&b);
}

/* Within tol of the expected share of picks. */
static void assert_share(int count, int picks, double share, double tol)
{
    double got = (double)count / picks;
    if (got < share - tol || got > share + tol)
        fail_msg("share %.3f, expected %.3f +- %.3f", got, share, tol);
}

static void test_round_robin_exact(void **state)
{
    (void)state;
    int c[N];
    reset(1, 1, 1);
    count_picks(LB_ROUND_ROBIN, 300, c);
    assert_int_equal(c[0], 100);
    assert_int_equal(c[1], 100);
    assert_int_equal(c[2], 100);
    reset(3, 1, 1);                         /* weights: exactly 3:1:1 per cycle */
    count_picks(LB_ROUND_ROBIN, 500, c);
    assert_int_equal(c[0], 300);
    assert_int_equal(c[1], 100);
    assert_int_equal(c[2], 100);
}

static void test_round_robin_interleaves(void **state)
{
    (void)state;
    /* Smooth WRR: weight 3 of 5 never gets more than two picks in a row. */
    struct balancer b;
    reset(3, 1, 1);
    assert_true(balancer_init(&b, LB_ROUND_ROBIN, ptrs, N, &rng));
    int run = 0;
    ssize_t last = -1;
    for (int i = 0; i < 100; i++) {
        ssize_t p = balancer_pick(&b, NULL, NULL, &rng, 0);
        run = p == last ? run + 1 : 1;
        last = p;
        assert_true(run <= 2);
    }
    balancer_free(&b);
}

static void test_random_start(void **state)
{
    (void)state;
    /* A new balancer per "process": the first pick must spread too. */
    int first[N] = { 0 };
    reset(1, 1, 1);
    for (int i = 0; i < 3000; i++) {
        struct balancer b;
        uint64_t seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
        assert_true(balancer_init(&b, LB_ROUND_ROBIN, ptrs, N, &seed));
        first[balancer_pick(&b, NULL, NULL, &seed, 0)]++;
        balancer_free(&b);
    }
    for (int i = 0; i < N; i++)
        assert_share(first[i], 3000, 1.0 / 3, 0.04);
}

static void test_random_weighted(void **state)
{
    (void)state;
    int c[N];
    reset(1, 1, 1);
    count_picks(LB_RANDOM, 30000, c);
    for (int i = 0; i < N; i++)
        assert_share(c[i], 30000, 1.0 / 3, 0.02);
    reset(6, 3, 1);
    count_picks(LB_RANDOM, 30000, c);
    assert_share(c[0], 30000, 0.6, 0.02);
    assert_share(c[1], 30000, 0.3, 0.02);
    assert_share(c[2], 30000, 0.1, 0.02);
}

static void test_least_conn(void **state)
{
    (void)state;
    struct balancer b;
    reset(1, 1, 1);
    assert_true(balancer_init(&b, LB_LEAST_CONN, ptrs, N, &rng));
    targets[0].active = 5;
    targets[1].active = 2;
    targets[2].active = 7;
    assert_int_equal(balancer_pick(&b, NULL, NULL, &rng, 0), 1);
    /* Weighted: 4 connections on weight 4 beat 2 on weight 1. */
    targets[0].weight = 4;
    targets[0].active = 4;
    assert_int_equal(balancer_pick(&b, NULL, NULL, &rng, 0), 0);
    balancer_free(&b);
    /* Ties are broken at random. */
    int c[N];
    reset(1, 1, 1);
    count_picks(LB_LEAST_CONN, 3000, c);
    for (int i = 0; i < N; i++)
        assert_share(c[i], 3000, 1.0 / 3, 0.05);
}

static void test_p2c_prefers_fast_and_idle(void **state)
{
    (void)state;
    int c[N];
    reset(1, 1, 1);
    uint64_t now = 1000000000ULL;
    balancer_observe(&targets[0], 200000, now);     /* 200 us */
    balancer_observe(&targets[1], 200000, now);
    balancer_observe(&targets[2], 20000000, now);   /* 20 ms: slow */
    struct balancer b;
    assert_true(balancer_init(&b, LB_P2C, ptrs, N, &rng));
    memset(c, 0, sizeof(c));
    for (int i = 0; i < 3000; i++)
        c[balancer_pick(&b, NULL, NULL, &rng, now)]++;
    /* The slow one wins only when paired with itself, which p2c never does. */
    assert_int_equal(c[2], 0);
    assert_share(c[0], 3000, 0.5, 0.05);
    /* Load counts: the fast endpoint with 50 open connections loses. */
    targets[0].active = 50;
    memset(c, 0, sizeof(c));
    for (int i = 0; i < 3000; i++)
        c[balancer_pick(&b, NULL, NULL, &rng, now)]++;
    assert_true(c[1] > c[0]);
    balancer_free(&b);
}

static void test_peak_ewma(void **state)
{
    (void)state;
    struct lb_target t = { .weight = 1 };
    uint64_t now = 1000000000ULL;
    balancer_observe(&t, 1000000, now);
    assert_true(t.ewma_ns == 1000000);
    balancer_observe(&t, 5000000, now + 1);          /* a peak is taken at once */
    assert_true(t.ewma_ns == 5000000);
    balancer_observe(&t, 1000000, now + 10000000000ULL); /* one decay time later */
    assert_true(t.ewma_ns > 1000000 && t.ewma_ns < 5000000);
    /* An old sample decays toward zero in the cost. */
    double fresh = balancer_cost(&t, now + 10000000000ULL);
    double later = balancer_cost(&t, now + 100000000000ULL);
    assert_true(later < fresh);
}

static void test_decay(void **state)
{
    (void)state;
    static const double X[] = { 0, 1e-9, 0.1, 0.5, 1, 2.5, 7.25, 33.3, 100 };
    static const double EXPECTED[] = { 1, 0.999999999, 0.9048374180359595, 0.6065306597126334,
                                       0.36787944117144233, 0.0820849986238988,
                                       7.10174388842549e-04, 3.4513877443742162e-15,
                                       3.720075976020836e-44 };
    for (size_t i = 0; i < sizeof(X) / sizeof(X[0]); i++) {
        double got = balancer_decay(X[i]), want = EXPECTED[i];
        if (got < want * (1 - 1e-9) || got > want * (1 + 1e-9))
            fail_msg("decay(%g) = %.17g, want %.17g", X[i], got, want);
    }
    assert_true(balancer_decay(1000) == 0);
    assert_true(balancer_decay(-1) == 1);
}

static bool only_two(size_t i, void *ctx)
{
    (void)ctx;
    return i == 2;
}

static bool none(size_t i, void *ctx)
{
    (void)i;
    (void)ctx;
    return false;
}

static void test_usable_filter(void **state)
{
    (void)state;
    static const enum lb_policy ALL[] = { LB_ROUND_ROBIN, LB_RANDOM, LB_LEAST_CONN, LB_P2C };
    reset(1, 5, 1);
    for (size_t p = 0; p < 4; p++) {
        struct balancer b;
        assert_true(balancer_init(&b, ALL[p], ptrs, N, &rng));
        for (int i = 0; i < 50; i++)
            assert_int_equal(balancer_pick(&b, only_two, NULL, &rng, 0), 2);
        assert_int_equal(balancer_pick(&b, none, NULL, &rng, 0), -1);
        balancer_free(&b);
    }
}

static void test_empty(void **state)
{
    (void)state;
    struct balancer b;
    assert_true(balancer_init(&b, LB_ROUND_ROBIN, ptrs, 0, &rng));
    assert_int_equal(balancer_pick(&b, NULL, NULL, &rng, 0), -1);
    balancer_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_robin_exact),
        cmocka_unit_test(test_round_robin_interleaves),
        cmocka_unit_test(test_random_start),
        cmocka_unit_test(test_random_weighted),
        cmocka_unit_test(test_least_conn),
        cmocka_unit_test(test_p2c_prefers_fast_and_idle),
        cmocka_unit_test(test_peak_ewma),
        cmocka_unit_test(test_decay),
        cmocka_unit_test(test_usable_filter),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests_name("balancer", tests, NULL, NULL);
}
