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
    assert_true(identity_glob("spiffe://prod/*", "spiffe://prod/ns/web/sa/api", false));
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
    assert_true(identity_matches("spiffe://prod/ns/web/*", &p));
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
    assert_true(identity_allowed(allow, 2, &p));
    assert_false(identity_allowed(deny, 2, &p));
    assert_true(identity_allowed(NULL, 0, &p));   /* empty: the CA decides */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_matches_right_kind),
        cmocka_unit_test(test_allowed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
