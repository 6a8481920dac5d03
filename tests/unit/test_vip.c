/*
 * test_vip.c — VIPs are deterministic, inside the range, and collide safely.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>

#include "meshim/vip.h"

static struct cidr range(const char *base, unsigned prefix)
{
    struct cidr r;
    assert_true(netaddr_parse(base, false, &r.base));
    r.prefix = prefix;
    return r;
}

static void test_known_value(void **state)
{
    (void)state;
    /* Pinned: every process and every build must agree on this. */
    struct cidr r = range("127.77.0.0", 16);
    const char *names[] = { "orders" };
    uint32_t vip;
    assert_true(vip_assign(&r, names, 1, NULL, 0, &vip));
    struct in_addr a = { htonl(vip) };
    assert_string_equal(inet_ntoa(a), "127.77.163.165");
}

static void test_order_does_not_matter(void **state)
{
    (void)state;
    struct cidr r = range("127.77.0.0", 16);
    const char *a[] = { "orders", "users", "payments", "search" };
    const char *b[] = { "search", "payments", "orders", "users" };
    uint32_t va[4], vb[4];
    assert_true(vip_assign(&r, a, 4, NULL, 0, va));
    assert_true(vip_assign(&r, b, 4, NULL, 0, vb));
    assert_int_equal(va[0], vb[2]);
    assert_int_equal(va[1], vb[3]);
    assert_int_equal(va[2], vb[1]);
    assert_int_equal(va[3], vb[0]);
}

static void test_in_range_and_distinct(void **state)
{
    (void)state;
    struct cidr r = range("10.240.0.0", 24);
    enum { N = 200 };
    char names[N][16];
    const char *ptrs[N];
    uint32_t vips[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "svc-%d", i);
        ptrs[i] = names[i];
    }
    assert_true(vip_assign(&r, ptrs, N, NULL, 0, vips));
    uint32_t net = ntohl(r.base.ip.v4.s_addr);
    for (int i = 0; i < N; i++) {
        assert_true(vip_in_range(&r, vips[i]));
        assert_int_not_equal(vips[i], net);             /* network address */
        assert_int_not_equal(vips[i], net + 255);       /* broadcast */
        for (int j = 0; j < i; j++)
            assert_int_not_equal(vips[i], vips[j]);     /* collisions resolved */
    }
}

static void test_full_pool(void **state)
{
    (void)state;
    struct cidr r = range("127.77.0.0", 30);            /* 2 usable addresses */
    const char *names[] = { "a", "b", "c" };
    uint32_t vips[3];
    assert_true(vip_assign(&r, names, 2, NULL, 0, vips));
    assert_int_not_equal(vips[0], vips[1]);
    assert_false(vip_assign(&r, names, 3, NULL, 0, vips));
}

/* A reload adds names around the VIPs given out already: a name whose
 * hash lands on a pinned VIP moves on, the others get their usual one. */
static void test_pinned(void **state)
{
    (void)state;
    struct cidr r = range("127.77.0.0", 16);
    const char *first[] = { "orders", "users" };
    uint32_t vf[2];
    assert_true(vip_assign(&r, first, 2, NULL, 0, vf));
    /* "billing" alone, pinned around orders and users. */
    const char *more[] = { "billing", "orders" };
    uint32_t alone[2], with[2];
    assert_true(vip_assign(&r, more, 1, NULL, 0, alone));
    assert_true(vip_assign(&r, more, 1, vf, 2, with));
    assert_int_equal(with[0], alone[0]);
    /* "orders" again as a new name, with its own VIP pinned: it must move. */
    assert_true(vip_assign(&r, more + 1, 1, vf, 1, with));
    assert_int_equal(with[0], vf[0] + 1);
    /* The pool counts pinned VIPs. */
    struct cidr tiny = range("127.77.0.0", 30);
    uint32_t t[2];
    assert_true(vip_assign(&tiny, first, 1, NULL, 0, t));
    assert_false(vip_assign(&tiny, more, 2, t, 1, t + 1));
}

static void test_in_range(void **state)
{
    (void)state;
    struct cidr r = range("127.77.0.0", 16);
    assert_true(vip_in_range(&r, ntohl(inet_addr("127.77.1.2"))));
    assert_false(vip_in_range(&r, ntohl(inet_addr("127.78.1.2"))));
    assert_false(vip_in_range(&r, ntohl(inet_addr("127.0.0.1"))));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_value),
        cmocka_unit_test(test_order_does_not_matter),
        cmocka_unit_test(test_in_range_and_distinct),
        cmocka_unit_test(test_full_pool),
        cmocka_unit_test(test_pinned),
        cmocka_unit_test(test_in_range),
    };
    return cmocka_run_group_tests_name("vip", tests, NULL, NULL);
}
