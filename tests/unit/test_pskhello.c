/*
 * test_pskhello.c — when a server may let a resumption skip its key
 * exchange: what it reads of the ClientHello (pskhello.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "meshim/pskhello.h"

#define B(s) (const unsigned char *)(s), sizeof(s) - 1

/* A meshim client's extensions: one 32-byte identity (a stateful ticket),
 * both modes, X25519 and P-256. */
static const char PSK[] = "\x00\x26" "\x00\x20" "0123456789abcdef0123456789abcdef" "\x00\x00\x10\x00"
                          "\x00\x21\x20" "binder...";
static const char MODES_BOTH[] = "\x02\x01\x00";
static const char MODES_DHE[] = "\x01\x01";
static const char GROUPS[] = "\x00\x04\x00\x1d\x00\x17";
static const char GROUPS_DECOY[] = "\x00\x06\x00\x1d\x00\x17\x01\x04";

static struct psk_hello hello(const char *psk, size_t psk_len, const char *modes, size_t modes_len,
                              const char *groups, size_t groups_len)
{
    return (struct psk_hello){ (const unsigned char *)psk, psk_len, (const unsigned char *)modes, modes_len,
                               (const unsigned char *)groups, groups_len };
}
#define H(p, m, g) hello(p, sizeof(p) - 1, m, sizeof(m) - 1, g, sizeof(g) - 1)

static void test_meshim_client(void **state)
{
    (void)state;
    struct psk_hello h = H(PSK, MODES_BOTH, GROUPS);
    const unsigned char *id = NULL;
    size_t len = 0;
    assert_true(psk_hello_identity(&h, &id, &len));
    assert_int_equal(len, 32);
    assert_memory_equal(id, "0123456789abcdef0123456789abcdef", 32);
}

/* The key exchange stays: no psk_ke, the decoy listed (so it would be
 * negotiated), no PSK at all, no groups. */
static void test_key_exchange_stays(void **state)
{
    (void)state;
    const unsigned char *id;
    size_t len;
    struct psk_hello h = H(PSK, MODES_DHE, GROUPS);
    assert_false(psk_hello_identity(&h, &id, &len));
    h = H(PSK, MODES_BOTH, GROUPS_DECOY);
    assert_false(psk_hello_identity(&h, &id, &len));
    h = H(PSK, MODES_BOTH, GROUPS);
    h.psk = NULL;
    assert_false(psk_hello_identity(&h, &id, &len));
    h = H(PSK, MODES_BOTH, GROUPS);
    h.groups = NULL;
    assert_false(psk_hello_identity(&h, &id, &len));
}

/* A client's bytes that do not add up are not read past their end. */
static void test_malformed(void **state)
{
    (void)state;
    const unsigned char *id;
    size_t len;
    struct psk_hello h = H("\x00\x26\x00\x20" "0123", MODES_BOTH, GROUPS);     /* cut short */
    assert_false(psk_hello_identity(&h, &id, &len));
    h = H("\x00\x06\x00\x20" "0123456789abcdef0123456789abcdef\x00\x00\x10\x00", MODES_BOTH, GROUPS);
    assert_false(psk_hello_identity(&h, &id, &len));   /* identity longer than its list */
    h = H("\x00\x06\x00\x00\x00\x00\x00\x00", MODES_BOTH, GROUPS);             /* empty identity */
    assert_false(psk_hello_identity(&h, &id, &len));
    h = H(PSK, "\x05\x01\x00", GROUPS);                                      /* modes' length */
    assert_false(psk_hello_identity(&h, &id, &len));
    h = H(PSK, MODES_BOTH, "\x00\x08\x00\x1d\x00\x17");                      /* groups' length */
    assert_false(psk_hello_identity(&h, &id, &len));
    h = H(PSK, MODES_BOTH, "\x00\x03\x00\x1d\x00");                          /* odd */
    assert_false(psk_hello_identity(&h, &id, &len));
    h = H("\x00", MODES_BOTH, GROUPS);
    assert_false(psk_hello_identity(&h, &id, &len));
}

static void test_suite_picked(void **state)
{
    (void)state;
    assert_int_equal(psk_hello_suite(B("\x13\x01\x13\x02\x13\x03\xc0\x2f")), 0x1301);
    assert_int_equal(psk_hello_suite(B("\xc0\x2f\x13\x02\x13\x01")), 0x1302);   /* TLS 1.2 suites skipped */
    assert_int_equal(psk_hello_suite(B("\x13\x04\x13\x03")), 0x1303);           /* CCM: not run here */
    assert_int_equal(psk_hello_suite(B("\xc0\x2f\x00\xff")), 0);
    assert_int_equal(psk_hello_suite(B("\x13")), 0);                            /* half a suite */
    assert_int_equal(psk_hello_suite_hash(0x1301), 256);
    assert_int_equal(psk_hello_suite_hash(0x1303), 256);
    assert_int_equal(psk_hello_suite_hash(0x1302), 384);
    assert_int_equal(psk_hello_suite_hash(0x1304), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meshim_client),
        cmocka_unit_test(test_key_exchange_stays),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_suite_picked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
