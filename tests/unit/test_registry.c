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
        "[inbound:8443]\n"
        "tls = off\n";
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
    reg = registry_build(cfg, NULL, &rng);
    assert_non_null(reg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    registry_destroy(reg);
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
    assert_null(registry_vip_closed(reg, &d));

    /* A VIP on a port its service does not mesh is closed; a meshed port,
     * and a service address on another port, are not. */
    struct service *db = registry_by_name(reg, "db");
    snprintf(vip, sizeof(vip), "%s:80", db->vip_text);
    d = dst(vip);
    assert_null(registry_match(reg, &d));
    assert_ptr_equal(registry_vip_closed(reg, &d), db);
    snprintf(vip, sizeof(vip), "[::ffff:%s]:6011", db->vip_text);
    d = dst(vip);
    assert_ptr_equal(registry_vip_closed(reg, &d), db);
    snprintf(vip, sizeof(vip), "%s:5432", db->vip_text);
    d = dst(vip);
    assert_null(registry_vip_closed(reg, &d));
    d = dst("10.96.0.10:80");
    assert_null(registry_vip_closed(reg, &d));
    snprintf(vip, sizeof(vip), "%s:81", orders->vip_text);     /* every port */
    d = dst(vip);
    assert_null(registry_vip_closed(reg, &d));
}

static void test_vips_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < reg->n_services; i++) {
        assert_ptr_equal(registry_by_vip(reg, reg->services[i]->vip), reg->services[i]);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(reg->services[i]->vip.s_addr, reg->services[j]->vip.s_addr);
    }
}

static void test_inbound(void **state)
{
    (void)state;
    assert_non_null(registry_inbound(reg, 8443));
    assert_int_equal(registry_inbound(reg, 8443)->tls, INBOUND_OFF);
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

/* A config of its own from text (not the group's). */
static struct mesh_config *load_text(const char *text, char *file)
{
    strcpy(file, "/tmp/meshim-reg2-XXXXXX");
    int fd = mkstemp(file);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char saved[64];
    strcpy(saved, path);
    strcpy(path, file);
    char *errors = NULL;
    struct config_source src = { config_env, false, NULL };
    enum on_error on_error;
    struct mesh_config *c = config_load(&src, &errors, &on_error);
    strcpy(path, saved);
    if (!c)
        fail_msg("%s", errors);
    unlink(file);
    return c;
}

static struct endpoint *endpoint_of(struct service *s, const char *label)
{
    for (size_t i = 0; i < s->eps->n; i++)
        if (strcmp(s->eps->ep[i]->label, label) == 0)
            return s->eps->ep[i];
    return NULL;
}

/* A reload: the same services are the same objects with the same VIPs;
 * an endpoint kept keeps its state; a dropped service is marked removed
 * and keeps its VIP for when it comes back; a set held by a connect stays
 * valid after it is replaced. */
static void test_reload(void **state)
{
    (void)state;
    char f1[64], f2[64], f3[64];
    uint64_t rng = 3;
    struct mesh_config *c1 = load_text("[service:orders]\nendpoints = 127.0.0.2:80, 127.0.0.3:80\n"
                                       "[service:users]\nendpoints = 127.0.0.9:80\n", f1);
    struct registry *r1 = registry_build(c1, NULL, &rng);
    assert_non_null(r1);
    struct service *orders = registry_by_name(r1, "orders"), *users = registry_by_name(r1, "users");
    struct in_addr orders_vip = orders->vip, users_vip = users->vip;
    struct endpoint *kept = endpoint_of(orders, "127.0.0.2:80");
    kept->circuit.failures = 2;                 /* state that must survive */
    struct endpoint_set *held = service_endpoints(orders);

    struct mesh_config *c2 = load_text("[service:orders]\nendpoints = 127.0.0.2:80 weight=5, "
                                       "127.0.0.4:80\nlb = round_robin\nretries = 7\n"
                                       "[service:billing]\nendpoints = 127.0.0.5:80\n", f2);
    struct registry *r2 = registry_build(c2, r1, &rng);
    assert_non_null(r2);
    assert_ptr_equal(registry_by_name(r2, "orders"), orders);
    assert_int_equal(orders->vip.s_addr, orders_vip.s_addr);
    assert_int_equal(service_cfg(orders)->retries, 7);
    assert_int_equal(orders->eps->balancer.policy, LB_ROUND_ROBIN);
    assert_int_equal(orders->eps->n, 2);
    assert_ptr_equal(endpoint_of(orders, "127.0.0.2:80"), kept);
    assert_int_equal(kept->circuit.failures, 2);
    assert_int_equal(kept->target.weight, 5);
    assert_null(endpoint_of(orders, "127.0.0.3:80"));
    /* The old set still lists what it listed. */
    assert_int_equal(held->n, 2);
    assert_string_equal(held->ep[1]->label, "127.0.0.3:80");
    endpoint_set_unref(held);
    /* users is gone from the index, not from memory. */
    assert_null(registry_by_name(r2, "users"));
    assert_null(registry_by_vip(r2, users_vip));
    assert_int_equal(users->removed, 1);
    struct service *billing = registry_by_name(r2, "billing");
    assert_non_null(billing);
    assert_int_not_equal(billing->vip.s_addr, orders_vip.s_addr);
    assert_int_not_equal(billing->vip.s_addr, users_vip.s_addr);
    assert_int_equal(r2->n_all, 3);

    /* users comes back: the same object, the same VIP. */
    struct mesh_config *c3 = load_text("[service:users]\nendpoints = 127.0.0.9:80\n", f3);
    struct registry *r3 = registry_build(c3, r2, &rng);
    assert_ptr_equal(registry_by_name(r3, "users"), users);
    assert_int_equal(users->vip.s_addr, users_vip.s_addr);
    assert_int_equal(users->removed, 0);
    assert_int_equal(orders->removed, 1);
    assert_int_equal(r3->n_all, 3);

    registry_free(r1);
    registry_free(r2);
    registry_destroy(r3);
    config_free(c1);
    config_free(c2);
    config_free(c3);
}

/* Discovered endpoints join the static ones, each address once; a new
 * answer replaces the source's list, and endpoints it still lists keep
 * their state. */
/* The first wait for a DNS answer bounds the later ones: a resolver call
 * and the connect after it wait one deadline in all, not one each. */
static void test_wait_deadline(void **state)
{
    (void)state;
    char f[64];
    uint64_t rng = 5;
    struct mesh_config *c = load_text("[service:orders]\ndns = orders.consul\n", f);
    struct registry *r = registry_build(c, NULL, &rng);
    struct service *s = registry_by_name(r, "orders");
    assert_int_equal(service_wait_deadline(s, 1000), 1000);     /* the first: its own */
    assert_int_equal(service_wait_deadline(s, 2000), 1000);     /* later: no further */
    assert_int_equal(service_wait_deadline(s, 500), 500);       /* nor longer than its own */
    registry_destroy(r);
    config_free(c);
}

static void test_found(void **state)
{
    (void)state;
    char f[64];
    uint64_t rng = 5;
    struct mesh_config *c = load_text("[service:orders]\nendpoints = 127.0.0.2:80\n"
                                      "dns = orders.consul\n", f);
    struct registry *r = registry_build(c, NULL, &rng);
    struct service *s = registry_by_name(r, "orders");
    assert_true(service_waiting(s));
    assert_int_equal(s->eps->n, 1);
    struct endpoint_spec found[3] = { { .weight = 1 }, { .weight = 1 }, { .weight = 1 } };
    netaddr_parse("127.0.0.2:80", true, &found[0].addr);    /* already static */
    netaddr_parse("127.0.0.3", true, &found[1].addr);
    netaddr_parse("127.0.0.4", true, &found[2].addr);
    assert_true(service_set_found(s, SOURCE_DNS, found, 3, &rng));
    assert_false(service_waiting(s));
    assert_int_equal(s->eps->n, 3);
    struct endpoint *three = endpoint_of(s, "127.0.0.3");
    three->circuit.ejections = 4;
    assert_true(service_set_found(s, SOURCE_DNS, found + 1, 1, &rng));
    assert_int_equal(s->eps->n, 2);
    assert_ptr_equal(endpoint_of(s, "127.0.0.3"), three);
    assert_int_equal(three->circuit.ejections, 4);
    assert_null(endpoint_of(s, "127.0.0.4"));
    /* An empty answer leaves the static endpoints. */
    assert_true(service_set_found(s, SOURCE_DNS, NULL, 0, &rng));
    assert_int_equal(s->eps->n, 1);
    registry_destroy(r);
    config_free(c);
}

/* A port-less endpoint keeps a circuit per destination port: one object
 * per port, the same each time, its port in its address and label; an
 * endpoint with a port of its own, or port 0, is its own; past the cap,
 * later ports share the endpoint's. Freed with the endpoint (ASan). */
static void test_ports(void **state)
{
    (void)state;
    char f[64];
    uint64_t rng = 5;
    struct mesh_config *c = load_text("[service:orders]\nendpoints = 127.0.0.2, 127.0.0.3:80\n", f);
    struct registry *r = registry_build(c, NULL, &rng);
    struct service *s = registry_by_name(r, "orders");
    struct endpoint *bare = endpoint_of(s, "127.0.0.2"), *fixed = endpoint_of(s, "127.0.0.3:80");
    assert_non_null(bare);
    assert_non_null(fixed);
    struct endpoint *p80 = endpoint_at_port(bare, 80), *p443 = endpoint_at_port(bare, 443);
    assert_ptr_not_equal(p80, bare);
    assert_ptr_not_equal(p80, p443);
    assert_ptr_equal(endpoint_at_port(bare, 80), p80);
    assert_int_equal(p443->addr.port, 443);
    assert_string_equal(p443->label, "127.0.0.2:443");
    p443->circuit.state = CIRCUIT_OPEN;
    assert_int_equal(p80->circuit.state, CIRCUIT_CLOSED);
    assert_int_equal(bare->circuit.state, CIRCUIT_CLOSED);
    assert_ptr_equal(endpoint_at_port(fixed, 443), fixed);
    assert_ptr_equal(endpoint_at_port(bare, 0), bare);
    for (uint16_t port = 1000; port < 1000 + ENDPOINT_PORTS_MAX - 2; port++)
        assert_ptr_not_equal(endpoint_at_port(bare, port), bare);
    assert_ptr_equal(endpoint_at_port(bare, 2000), bare);      /* the cap */
    assert_ptr_equal(endpoint_at_port(bare, 443), p443);
    registry_destroy(r);
    config_free(c);
}

/* Case is folded in ASCII alone, never by the locale (util.h): bytes past
 * ASCII are compared as they are. */
static void test_ascii_case(void **state)
{
    (void)state;
    assert_int_equal(ascii_casecmp("INVENTORY", "inventory"), 0);
    assert_int_equal(ascii_casecmp("Connection", "CONNECTION"), 0);
    assert_true(ascii_casecmp("a", "B") < 0 && ascii_casecmp("b", "A") > 0);
    assert_true(ascii_casecmp("orders", "orders-v2") < 0);
    assert_int_equal(ascii_ncasecmp("ORDERS.prod", "orders.PROD.svc", 11), 0);
    assert_int_not_equal(ascii_casecmp("\xc4", "\xe4"), 0);      /* Latin-1 A and a umlaut: not ASCII */
    assert_int_equal(ascii_lower('I'), 'i');
    assert_int_equal(ascii_lower('@'), '@');
    assert_int_equal(ascii_lower('['), '[');
    assert_true(dns_name_equal("INVENTORY.", "inventory"));
    assert_true(dns_name_has_suffix("API.SHOP.svc", ".shop.SVC"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii_case),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_destinations),
        cmocka_unit_test(test_vips_distinct),
        cmocka_unit_test(test_inbound),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_found),
        cmocka_unit_test(test_wait_deadline),
        cmocka_unit_test(test_ports),
    };
    return cmocka_run_group_tests_name("registry", tests, setup, teardown);
}
