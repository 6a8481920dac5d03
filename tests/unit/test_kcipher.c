/*
 * test_kcipher.c — reading /proc/crypto for an accelerated AES
 * (kcipher.h): the listings of the kernels meshim meets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "meshim/kcipher.h"

/* x86-64 with aesni_intel loaded (abridged: three of its blocks). */
static const char X86_AESNI[] =
    "name         : sha256\n"
    "driver       : sha256-avx2\n"
    "module       : sha256_ssse3\n"
    "priority     : 170\n"
    "type         : shash\n"
    "\n"
    "name         : gcm(aes)\n"
    "driver       : generic-gcm-aesni\n"
    "module       : aesni_intel\n"
    "priority     : 400\n"
    "type         : aead\n"
    "\n"
    "name         : aes\n"
    "driver       : aes-aesni\n"
    "module       : aesni_intel\n"
    "priority     : 300\n"
    "type         : cipher\n"
    "\n";

/* User-mode Linux after a kernel TLS socket was made: the C AES, and the
 * GCM template over it. */
static const char UML[] =
    "name         : gcm(aes)\n"
    "driver       : gcm_base(ctr(aes-generic),ghash-generic)\n"
    "module       : gcm\n"
    "priority     : 100\n"
    "type         : aead\n"
    "\n"
    "name         : aes\n"
    "driver       : aes-generic\n"
    "module       : kernel\n"
    "priority     : 100\n"
    "type         : cipher\n"
    "\n"
    "name         : rfc7539(chacha20,poly1305)\n"
    "driver       : rfc7539(chacha20-generic,poly1305-generic)\n"
    "module       : chacha20poly1305\n"
    "\n";

/* arm64 with the crypto extensions. */
static const char ARM64_CE[] =
    "name         : aes\n"
    "driver       : aes-fixed-time\n"
    "module       : kernel\n"
    "\n"
    "name         : aes\n"
    "driver       : aes-ce\n"
    "module       : aes_ce_cipher\n"
    "\n";

static void test_listings(void **state)
{
    (void)state;
    assert_true(kcipher_aes_accelerated(X86_AESNI));
    assert_false(kcipher_aes_accelerated(UML));
    assert_true(kcipher_aes_accelerated(ARM64_CE));
    /* The GCM template over accelerated parts is accelerated. */
    assert_true(kcipher_aes_accelerated("name : gcm(aes)\ndriver : gcm_base(ctr(aes-aesni),ghash-clmulni)\n\n"));
    /* Only the fixed-time C AES (a kernel built without the table one). */
    assert_false(kcipher_aes_accelerated("name         : aes\ndriver       : aes-fixed-time\n\n"));
}

/* No AES listed at all (nothing loaded yet), nothing, or lines that are
 * not "key : value": no accelerated AES. The last block needs no empty
 * line after it. */
static void test_edges(void **state)
{
    (void)state;
    assert_false(kcipher_aes_accelerated(""));
    assert_false(kcipher_aes_accelerated("name : sha256\ndriver : sha256-avx2\n\n"));
    assert_false(kcipher_aes_accelerated("garbage\n\n\nname\ndriver\n"));
    assert_false(kcipher_aes_accelerated("name : aes\n\ndriver : aes-aesni\n"));   /* two blocks */
    assert_false(kcipher_aes_accelerated("names : aes\ndriver : aes-aesni\n"));    /* not the key */
    assert_true(kcipher_aes_accelerated("name : aes\ndriver : aes-aesni"));
    assert_false(kcipher_aes_accelerated("name : aesx\ndriver : aes-aesni\n"));
}

/* /proc/sys/net/ipv4/tcp_available_ulp as kernels write it. */
static void test_ulp_listed(void **state)
{
    (void)state;
    assert_true(kcipher_ulp_listed("mptcp tls\n", "tls"));
    assert_true(kcipher_ulp_listed("tls\n", "tls"));
    assert_true(kcipher_ulp_listed("espintcp tls mptcp", "tls"));
    assert_false(kcipher_ulp_listed("mptcp\n", "tls"));        /* this host: tls.ko not loaded */
    assert_false(kcipher_ulp_listed("\n", "tls"));
    assert_false(kcipher_ulp_listed("", "tls"));
    assert_false(kcipher_ulp_listed("tlsx mytls tl", "tls")); /* whole names only */
    assert_false(kcipher_ulp_listed("tls", ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listings),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_ulp_listed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
