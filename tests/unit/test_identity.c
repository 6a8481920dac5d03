/* Unit tests of identity.c: globs, which SANs a pattern looks at, allow
 * lists, the name shown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "meshim/identity.h"

static void test_glob(void **state)
{
    (void)state;
    assert_true(identity_glob("spiffe://prod/ns/web/sa/api", "spiffe://prod/ns/web/sa/api", false));
    assert_true(identity_glob("spiffe://prod/ns/*/sa/api", "spiffe://prod/ns/web/sa/api", false));
    assert_true(identity_glob("spiffe://prod/**", "spiffe://prod/ns/web/sa/api", false));
    assert_true(identity_glob("*", "", false));
    assert_true(identity_glob("a*b*c", "aXXbYYbc", false));
    assert_true(identity_glob("*.orders.svc", "v1.orders.svc", true));
    assert_true(identity_glob("*.ORDERS.svc", "v1.orders.SVC", true));
    assert_false(identity_glob("*.ORDERS.svc", "v1.orders.svc", false));
    assert_false(identity_glob("spiffe://prod/*", "spiffe://staging/ns/web", false));
    assert_false(identity_glob("spiffe://prod/ns/web", "spiffe://prod/ns/web/sa/api", false));
    assert_false(identity_glob("spiffe://prod/ns/web/sa/api", "spiffe://prod/ns/web", false));
    assert_false(identity_glob("a*b", "aXXbYY", false));
    assert_false(identity_glob("", "x", false));
    /* A hostile name costs time linear in practice, not exponential. */
    char name[4096];
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_false(identity_glob("*a*a*a*a*a*a*a*b", name, false));
}

static const char *URIS[] = { "spiffe://prod/ns/web/sa/api" };
static const char *DNS[] = { "api.web.svc", "api" };

static void test_matches_right_kind(void **state)
{
    (void)state;
    struct peer_names p = { URIS, 1, DNS, 2 };
    assert_true(identity_matches("spiffe://prod/ns/web/**", &p));
    assert_true(identity_matches("spiffe://prod/ns/*/sa/api", &p));
    assert_false(identity_matches("spiffe://prod/ns/web/*", &p));   /* one segment only */
    assert_true(identity_matches("*.web.svc", &p));
    assert_true(identity_matches("API", &p));
    /* A DNS pattern never matches a URI SAN, and the reverse. */
    assert_false(identity_matches("spiffe://api.web.svc", &p));
    assert_false(identity_matches("*prod/ns/web*", &p));
    struct peer_names none = { NULL, 0, NULL, 0 };
    assert_false(identity_matches("*", &none));
    assert_string_equal(identity_name(&p), URIS[0]);
    struct peer_names dns_only = { NULL, 0, DNS, 2 };
    assert_string_equal(identity_name(&dns_only), "api.web.svc");
    assert_string_equal(identity_name(&none), "");
}

static void test_allowed(void **state)
{
    (void)state;
    struct peer_names p = { URIS, 1, DNS, 2 };
    const char *allow[] = { "spiffe://prod/ns/billing/*", "spiffe://prod/ns/web/sa/api" };
    const char *deny[] = { "spiffe://prod/ns/billing/*", "spiffe://other/*" };
    assert_string_equal(identity_allowed(allow, 2, &p), URIS[0]);
    assert_null(identity_allowed(deny, 2, &p));
    assert_string_equal(identity_allowed(NULL, 0, &p), URIS[0]);  /* empty: the CA decides */
    /* The name returned is the one that matched: it is what gets logged. */
    const char *dns_allow[] = { "*.web.svc" };
    assert_string_equal(identity_allowed(dns_allow, 1, &p), "api.web.svc");
}

/* The security review's finding 6: what an allow-list must not let in. */
static void test_review_cases(void **state)
{
    (void)state;
    const char *prod[] = { "spiffe://test.mesh/ns/prod/**" };
    /* Two URI SANs, one allowed: refused (it used to be let in and
     * logged as the first, refused one). */
    const char *two[] = { "spiffe://test.mesh/ns/dev/sa/bad", "spiffe://test.mesh/ns/prod/sa/web" };
    struct peer_names p2 = { two, 2, NULL, 0 };
    assert_null(identity_allowed(prod, 1, &p2));
    assert_null(identity_allowed(NULL, 0, &p2));
    assert_non_null(identity_check(&p2));
    /* Dot segments, empty segments, upper-case trust domains, encodings. */
    const char *bad_ids[] = {
        "spiffe://test.mesh/ns/prod/../dev/sa/bad", "spiffe://test.mesh/ns/prod/./sa/web",
        "spiffe://test.mesh/ns/prod//sa/web", "spiffe://test.mesh/ns/prod/sa/web/",
        "spiffe://Test.Mesh/ns/prod/sa/web", "spiffe://test.mesh/ns/prod/sa/w%65b",
        "spiffe://test.mesh/ns/prod/sa/web?x=1", "spiffe://test.mesh:443/ns/prod/sa/web",
        "spiffe:///ns/prod/sa/web",
    };
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        struct peer_names p = { &bad_ids[i], 1, NULL, 0 };
        if (identity_allowed(prod, 1, &p))
            fail_msg("%s was allowed", bad_ids[i]);
        assert_false(identity_spiffe_valid(bad_ids[i]));
    }
    assert_true(identity_spiffe_valid("spiffe://test.mesh/ns/prod/sa/web"));
    assert_true(identity_spiffe_valid("spiffe://test.mesh"));
    /* `*` stays in its segment, the trust domain included. */
    assert_false(identity_glob("spiffe://test.mesh/ns/*/sa/web", "spiffe://test.mesh/ns/dev/sa/bad/x/sa/web", false));
    assert_false(identity_glob("spiffe://test.mesh*", "spiffe://test.mesh.evil.com/ns/prod", false));
    assert_true(identity_glob("spiffe://test.mesh/**/sa/web", "spiffe://test.mesh/ns/a/b/sa/web", false));
    /* A `*` that cannot grow hands over to the `**` before it. */
    assert_true(identity_glob("**/x*", "a/xb/xc", false));
    assert_false(identity_glob("*.svc", "a.b.svc", true));
    assert_true(identity_glob("**.svc", "a.b.svc", true));
    /* Patterns: checked when the config is read. */
    assert_true(identity_pattern_valid("spiffe://test.mesh/ns/*/sa/**"));
    assert_true(identity_pattern_valid("*.orders.svc"));
    assert_false(identity_pattern_valid("spiffe://test.mesh/ns/../sa/web"));
    assert_false(identity_pattern_valid("spiffe://test.mesh/ns//web"));
    /* A long name is cut visibly. */
    char shown[16];
    identity_copy(shown, sizeof(shown), "spiffe://test.mesh/ns/prod");
    assert_string_equal(shown, "spiffe://tes...");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_matches_right_kind),
        cmocka_unit_test(test_allowed),
        cmocka_unit_test(test_review_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
