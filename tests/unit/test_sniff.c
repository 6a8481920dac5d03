/*
 * test_sniff.c — permissive inbound's TLS-or-plaintext decision from a
 * client's first bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "meshim/sniff.h"

#define V(s) sniff_first_bytes((const unsigned char *)(s), sizeof(s) - 1)

/* The first six bytes of ClientHellos real clients send: OpenSSL 3 and
 * curl (record version 3.1), an old client (3.0), TLS 1.3 middlebox mode. */
static void test_client_hellos(void **state)
{
    (void)state;
    assert_int_equal(V("\x16\x03\x01\x02\x00\x01"), SNIFF_TLS);
    assert_int_equal(V("\x16\x03\x00\x00\x2f\x01"), SNIFF_TLS);
    assert_int_equal(V("\x16\x03\x03\x40\x00\x01"), SNIFF_TLS);
}

/* A ClientHello cut short by segmentation is still TLS: a byte not yet
 * arrived is not held against it. */
static void test_short_prefixes(void **state)
{
    (void)state;
    static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 };
    for (size_t n = 1; n <= sizeof(hello); n++)
        assert_int_equal(sniff_first_bytes(hello, n), SNIFF_TLS);
}

static void test_plaintext(void **state)
{
    (void)state;
    assert_int_equal(sniff_first_bytes(NULL, 0), SNIFF_PLAINTEXT);  /* gone at once */
    assert_int_equal(V("GET / HTTP/1.1\r\n"), SNIFF_PLAINTEXT);
    assert_int_equal(V("*1\r\n$4\r\nPING\r\n"), SNIFF_PLAINTEXT);    /* redis */
    assert_int_equal(V("\x80\x2e\x01\x03\x01"), SNIFF_PLAINTEXT);  /* SSLv2 hello: refused era */
    assert_int_equal(V("PRI * HTTP/2.0"), SNIFF_PLAINTEXT);
}

/* 0x16 followed by what no ClientHello has: plaintext. */
static void test_almost_tls(void **state)
{
    (void)state;
    assert_int_equal(V("\x16G"), SNIFF_PLAINTEXT);                  /* not version 3 */
    assert_int_equal(V("\x16\x03\x05"), SNIFF_PLAINTEXT);          /* no TLS 1.4 */
    assert_int_equal(V("\x16\x03\x01\x00\x00"), SNIFF_PLAINTEXT);  /* empty record */
    assert_int_equal(V("\x16\x03\x01\x41\x01"), SNIFF_PLAINTEXT);  /* longer than a record */
    assert_int_equal(V("\x16\x03\x01\x42"), SNIFF_PLAINTEXT);      /* ... seen from its high byte */
    assert_int_equal(V("\x16\x03\x01\x02\x00\x02"), SNIFF_PLAINTEXT); /* a ServerHello */
    assert_int_equal(V("\x17\x03\x03\x00\x10\x01"), SNIFF_PLAINTEXT); /* application data */
}

/* A permissive port's silent client: plaintext detect_timeout after its
 * accept once the application has spoken (a server-first protocol), else
 * not before the first-byte deadline (a late TLS client keeps its TLS). */
static void test_silent_for(void **state)
{
    (void)state;
    assert_int_equal(sniff_silent_for(1000, true), 1000);
    assert_int_equal(sniff_silent_for(200, true), 200);
    assert_int_equal(sniff_silent_for(200, false), SNIFF_FIRST_BYTE_MS);
    assert_int_equal(sniff_silent_for(1000, false), SNIFF_FIRST_BYTE_MS);
    assert_int_equal(sniff_silent_for(5000, false), 5000);     /* longer than the deadline: as set */
    assert_int_equal(sniff_silent_for(5000, true), 5000);
    assert_true(sniff_silent_for(0, true) == UINT64_MAX);      /* detect_timeout = 0: never */
    assert_true(sniff_silent_for(0, false) == UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_hellos),
        cmocka_unit_test(test_short_prefixes),
        cmocka_unit_test(test_plaintext),
        cmocka_unit_test(test_almost_tls),
        cmocka_unit_test(test_silent_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
