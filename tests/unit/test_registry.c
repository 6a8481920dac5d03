/*
 * test_registry.c — which names and destinations belong to which service.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meshim/registry.h"

static char path[64];
static struct mesh_config *cfg;
static struct registry *reg;

static const char *config_env(const char *name)
{
    return strcmp(name, "MESHIM_CONFIG") == 0 ? path : NULL;
}

static int setup(void **state)
{
    (void)state;
    static const char TEXT[] =
        "[service:orders]\n"
        "hosts = orders, orders.prod.svc.cluster.local, *.orders.svc\n"
        "endpoints = 127.0.0.2:8080, 127.0.0.3:8080\n"
        "[service:canary]\n"
        "hosts = *.canary.orders.svc\n"
        "endpoints = 127.0.0.4:8080\n"
        "[service:db]\n"
        "addresses = 10.96.0.10, 10.96.0.11:5432\n"
        "ports = 5432, 6000-6010\n"
        "endpoints = 127.0.0.5\n"
        "[service:web]\n"
        "split = web-v1 90, web-v2 10\n"
        "[service:web-v1]\n"
        "endpoints = 127.0.0.6:80\n"
        "[service:web-v2]\n"
        "split = web-v2a 1, web-v2b 1\n"
        "[service:web-v2a]\n"
        "endpoints = 127.0.0.7:80\n"
        "[service:web-v2b]\n"
        "endpoints = 127.0.0.8:80\n"
        "[inbound:8443]\n";
    strcpy(path, "/tmp/meshim-reg-XXXXXX");
    int fd = mkstemp(path);
    assert_int_equal(write(fd, TEXT, sizeof(TEXT) - 1), (ssize_t)sizeof(TEXT) - 1);
    close(fd);
    char *errors = NULL;
    struct config_source src = { config_env, false, NULL };
    enum on_error on_error;
    cfg = config_load(&src, &errors, &on_error);
    if (!cfg)
        fail_msg("%s", errors);
    uint64_t rng = 7;
    reg = registry_build(cfg, &rng);
    assert_non_null(reg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    registry_free(reg);
    config_free(cfg);
    unlink(path);
    return 0;
}

static const char *name_of(const char *host)
{
    struct service *s = registry_by_name(reg, host);
    return s ? s->name : "(none)";
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(name_of("orders"), "orders");
    assert_string_equal(name_of("ORDERS"), "orders");
    assert_string_equal(name_of("orders."), "orders");
    assert_string_equal(name_of("orders.prod.svc.cluster.local"), "orders");
    assert_string_equal(name_of("eu.orders.svc"), "orders");
    assert_string_equal(name_of("a.canary.orders.svc"), "canary");  /* longest suffix */
    assert_string_equal(name_of("orders.svc"), "(none)");            /* suffix alone */
    assert_string_equal(name_of("xorders"), "(none)");
    assert_string_equal(name_of("localhost"), "(none)");
    assert_string_equal(name_of(""), "(none)");
}

static struct netaddr dst(const char *text)
{
    struct netaddr a;
    assert_true(netaddr_parse(text, true, &a));
    return a;
}

static void test_destinations(void **state)
{
    (void)state;
    struct service *orders = registry_by_name(reg, "orders");
    char vip[64];
    snprintf(vip, sizeof(vip), "%s:80", orders->vip_text);
    struct netaddr d = dst(vip);
    assert_ptr_equal(registry_match(reg, &d), orders);
    snprintf(vip, sizeof(vip), "[::ffff:%s]:80", orders->vip_text);  /* mapped */
    d = dst(vip);
    assert_ptr_equal(registry_match(reg, &d), orders);

    d = dst("10.96.0.10:5432");
    assert_string_equal(registry_match(reg, &d)->name, "db");
    d = dst("10.96.0.10:6005");
    assert_string_equal(registry_match(reg, &d)->name, "db");
    d = dst("10.96.0.10:80");                          /* port not meshed */
    assert_null(registry_match(reg, &d));
    d = dst("10.96.0.11:5432");
    assert_string_equal(registry_match(reg, &d)->name, "db");
    d = dst("10.96.0.12:5432");
    assert_null(registry_match(reg, &d));
    d = dst("127.0.0.1:80");
    assert_null(registry_match(reg, &d));
    d = dst("127.77.0.1:80");                          /* in the pool, no service */
    assert_null(registry_match(reg, &d));
}

static void test_vips_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < reg->n_services; i++) {
        assert_ptr_equal(registry_by_vip(reg, reg->services[i].vip), &reg->services[i]);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(reg->services[i].vip.s_addr, reg->services[j].vip.s_addr);
    }
}

static void test_inbound(void **state)
{
    (void)state;
    assert_non_null(registry_inbound(reg, 8443));
    assert_int_equal(registry_inbound(reg, 8443)->tls, INBOUND_STRICT);
    assert_null(registry_inbound(reg, 8080));
}

/* split: each draw goes to a target by weight, through a target that
 * splits again; a service without a split is its own target. */
static void test_split(void **state)
{
    (void)state;
    struct service *web = registry_by_name(reg, "web");
    struct service *v1 = registry_by_name(reg, "web-v1"), *v2 = registry_by_name(reg, "web-v2");
    struct service *v2a = registry_by_name(reg, "web-v2a"), *v2b = registry_by_name(reg, "web-v2b");
    assert_non_null(web);
    uint64_t rng = 12345;
    int n1 = 0, n2a = 0, n2b = 0;
    for (int i = 0; i < 100000; i++) {
        struct service *to = registry_split(web, &rng);
        n1 += to == v1;
        n2a += to == v2a;
        n2b += to == v2b;
        assert_true(to == v1 || to == v2a || to == v2b);     /* never web or web-v2 itself */
    }
    assert_true(n1 > 89000 && n1 < 91000);
    assert_true(n2a > 4500 && n2a < 5500 && n2b > 4500 && n2b < 5500);
    assert_ptr_equal(registry_split(v1, &rng), v1);
    assert_true(registry_routes_to(web, v2b) && registry_routes_to(web, v1) &&
                registry_routes_to(v1, v1));
    assert_false(registry_routes_to(v1, web) || registry_routes_to(v2, v1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_destinations),
        cmocka_unit_test(test_vips_distinct),
        cmocka_unit_test(test_inbound),
        cmocka_unit_test(test_split),
    };
    return cmocka_run_group_tests_name("registry", tests, setup, teardown);
}
