/*
 * test_relayname.c — the abstract names that carry a relayed connection's
 * addresses across exec: what is encoded comes back, and nothing else is
 * taken for such a name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "meshim/relayname.h"

static void round_trip(const struct sockaddr *sa, socklen_t salen)
{
    struct sockaddr_un un;
    struct sockaddr_storage back;
    socklen_t backlen = 0;
    socklen_t n = relayname_encode(sa, salen, 0x0123456789abcdefULL, &un);
    assert_true(n > offsetof(struct sockaddr_un, sun_path));
    assert_int_equal(un.sun_path[0], 0);            /* abstract: no file is made */
    assert_true(relayname_decode(&un, n, &back, &backlen));
    assert_int_equal(backlen, salen);
    assert_memory_equal(&back, sa, salen);
    /* The same address under another nonce is another name. */
    struct sockaddr_un other;
    assert_int_equal(relayname_encode(sa, salen, 42, &other), n);
    assert_memory_not_equal(&other, &un, n);
}

static void test_ipv4(void **state)
{
    (void)state;
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(22) };
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    round_trip((struct sockaddr *)&in, sizeof(in));
}

static void test_ipv6(void **state)
{
    (void)state;
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(65535),
                                .sin6_scope_id = 3 };
    inet_pton(AF_INET6, "fe80::1", &in6.sin6_addr);
    round_trip((struct sockaddr *)&in6, sizeof(in6));
}

static void test_not_an_address(void **state)
{
    (void)state;
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    struct sockaddr_storage back;
    socklen_t backlen;
    assert_int_equal(relayname_encode((struct sockaddr *)&un, sizeof(un), 1, &un), 0);
    struct sockaddr_in in = { .sin_family = AF_INET };
    assert_int_equal(relayname_encode((struct sockaddr *)&in, sizeof(in) - 1, 1, &un), 0);

    /* An unnamed socketpair end, a path, another abstract name. */
    un.sun_family = AF_UNIX;
    assert_false(relayname_decode(&un, offsetof(struct sockaddr_un, sun_path), &back, &backlen));
    strcpy(un.sun_path, "/run/meshim-addr1");
    assert_false(relayname_decode(&un, sizeof(un), &back, &backlen));
    memcpy(un.sun_path, "\0meshim-addr0", 13);
    assert_false(relayname_decode(&un, sizeof(un), &back, &backlen));

    /* A well-tagged name whose length does not fit its family. */
    socklen_t n = relayname_encode((struct sockaddr *)&in, sizeof(in), 1, &un);
    assert_false(relayname_decode(&un, n - 1, &back, &backlen));
    assert_false(relayname_decode(&un, n + 1, &back, &backlen));
    sa_family_t bogus = AF_UNIX;
    memcpy(un.sun_path + 21, &bogus, sizeof(bogus));
    assert_false(relayname_decode(&un, n, &back, &backlen));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_not_an_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
