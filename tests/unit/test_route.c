/*
 * test_route.c — [route:NAME] sections and the protocol = http keys: what
 * the config accepts and refuses, and which service a request head goes to
 * (policy/route.c through the registry, as the engine's proxy asks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "meshim/config.h"
#include "meshim/http1.h"
#include "meshim/registry.h"
#include "meshim/route.h"
#include "config_text.h"

static const char ROUTES[] =
    "[service:web]\nprotocol = http\nendpoints = 10.0.0.1:80\n"
    "retry_on = 5xx, retriable-status-codes\nretriable_status_codes = 409, 429\n"
    "retry_buffer = 1MiB\nper_try_timeout = 250ms\nrequest_timeout = 2s\n"
    "[service:v2]\nendpoints = 10.0.0.2:80\n"
    "[service:canary]\nendpoints = 10.0.0.3:80\n"
    "[service:admin]\nendpoints = 10.0.0.4:80\n"
    "[service:exact]\nendpoints = 10.0.0.5:80\n"
    "[route:exact]\nfrom = web\npath = /v2/status\nto = exact\n"
    "[route:v2]\nfrom = web\npath_prefix = /v2/\nto = v2\n"
    "[route:canary]\nfrom = web\nheaders = x-canary, x-version: 2\nto = canary\n"
    "[route:admin]\nfrom = web\nauthority = admin.example\nto = admin\n";

/* A request head as the proxy has it. */
static struct h1_parser parser;
static const struct h1_head *head(const char *text)
{
    h1_init(&parser, H1_REQUEST);
    size_t used;
    assert_int_equal(h1_feed(&parser, text, strlen(text), &used), H1_HEAD);
    return h1_head(&parser);
}

static const char *routed(struct registry *reg, const char *text, const char **route)
{
    struct service *web = registry_by_name(reg, "web");
    return route_request(web, head(text), route)->name;
}

static void test_keys_parsed(void **state)
{
    (void)state;
    char *errors = NULL;
    struct mesh_config *cfg = load(ROUTES, &errors);
    assert_non_null(cfg);
    const struct service_config *web = &cfg->services[0];
    assert_int_equal(web->protocol, PROTO_HTTP);
    assert_int_equal(web->retry_on, RETRY_5XX | RETRY_STATUS_CODES);
    assert_int_equal(web->retriable_status_codes.n, 2);
    assert_int_equal(web->retriable_status_codes.v[1], 429);
    assert_int_equal(web->retry_buffer, 1 << 20);
    assert_int_equal(web->per_try_timeout_ms, 250);
    assert_int_equal(web->request_timeout_ms, 2000);
    assert_int_equal(cfg->services[1].protocol, PROTO_TCP);
    assert_int_equal(cfg->services[1].retry_on, RETRY_CONNECT_FAILURE);
    assert_int_equal(cfg->services[1].retry_buffer, 64 * 1024);
    assert_int_equal(cfg->n_routes, 4);
    config_free(cfg);

    /* An [inbound:PORT] port's protocol; http over mTLS on both sides. */
    errors = NULL;
    cfg = load("[tls]\ncert = /c.pem\nkey = /k.pem\nca = /ca.pem\n"
               "[service:web]\nprotocol = http\ntls = mtls\nendpoints = 10.0.0.1:80\n"
               "[inbound:8080]\ntls = off\nprotocol = http\n[inbound:8443]\nprotocol = http\n"
               "[inbound:9000]\ntls = off\n", &errors);
    assert_non_null(cfg);
    assert_int_equal(cfg->services[0].protocol, PROTO_HTTP);
    assert_int_equal(cfg->services[0].tls, TLS_MTLS);
    assert_int_equal(cfg->inbound[0].protocol, PROTO_HTTP);
    assert_int_equal(cfg->inbound[0].tls, INBOUND_OFF);
    assert_int_equal(cfg->inbound[1].protocol, PROTO_HTTP);
    assert_int_equal(cfg->inbound[1].tls, INBOUND_STRICT);
    assert_int_equal(cfg->inbound[2].protocol, PROTO_TCP);
    config_free(cfg);
}

static void test_first_match_wins(void **state)
{
    (void)state;
    char *errors = NULL;
    struct mesh_config *cfg = load(ROUTES, &errors);
    assert_non_null(cfg);
    uint64_t rng = 1;
    struct registry *reg = registry_build(cfg, NULL, &rng);
    assert_non_null(reg);
    const char *route;
    assert_string_equal(routed(reg, "GET /v2/status HTTP/1.1\r\nHost: web\r\n\r\n", &route), "exact");
    assert_string_equal(route, "exact");
    assert_string_equal(routed(reg, "GET /v2/status/x HTTP/1.1\r\nHost: web\r\n\r\n", &route), "v2");
    assert_string_equal(routed(reg, "GET /v2/?q=1 HTTP/1.1\r\nHost: web\r\n\r\n", &route), "v2");
    /* The prefix is of the path, not of the query, and not a looser match. */
    assert_string_equal(routed(reg, "GET /v2 HTTP/1.1\r\nHost: web\r\n\r\n", &route), "web");
    assert_null(route);
    assert_string_equal(routed(reg, "GET /x?/v2/ HTTP/1.1\r\nHost: web\r\n\r\n", &route), "web");
    /* Absolute form, as sent to a proxy. */
    assert_string_equal(routed(reg, "GET http://web/v2/a HTTP/1.1\r\nHost: web\r\n\r\n", &route), "v2");
    /* Headers: every one must match; a name alone is "present". */
    assert_string_equal(routed(reg, "GET / HTTP/1.1\r\nHost: web\r\nX-Canary: no\r\nx-version:  2 \r\n\r\n",
                               &route), "canary");
    assert_string_equal(routed(reg, "GET / HTTP/1.1\r\nHost: web\r\nx-canary: 1\r\nx-version: 3\r\n\r\n",
                               &route), "web");
    assert_string_equal(routed(reg, "GET / HTTP/1.1\r\nHost: web\r\nx-version: 2\r\n\r\n", &route), "web");
    /* Authority: case-insensitive, with or without the port. */
    assert_string_equal(routed(reg, "GET / HTTP/1.1\r\nHost: ADMIN.example:8080\r\n\r\n", &route), "admin");
    assert_string_equal(routed(reg, "GET / HTTP/1.1\r\nHost: admin.example.evil\r\n\r\n", &route), "web");
    registry_destroy(reg);
    config_free(cfg);
}

static void expect_error(const char *text, const char *fragment)
{
    char *errors = NULL;
    struct mesh_config *cfg = load(text, &errors);
    assert_null(cfg);
    assert_non_null(errors);
    if (!strstr(errors, fragment))
        fail_msg("expected \"%s\" in: %s", fragment, errors);
    free(errors);
}

static void test_refused(void **state)
{
    (void)state;
    expect_error("[service:a]\nendpoints = 10.0.0.1\nprotocol = h2\n", "protocol: not tcp or http");
    expect_error("[inbound:80]\ntls = off\nprotocol = grpc\n", "protocol: not tcp or http");
    expect_error("[service:a]\nendpoints = 10.0.0.1\nretry_on = 5xx, maybe\n", "retry_on: not a list");
    expect_error("[service:a]\nendpoints = 10.0.0.1\nprotocol = http\nretry_on = retriable-status-codes\n",
                 "needs retriable_status_codes");
    expect_error("[service:a]\nendpoints = 10.0.0.1\nretriable_status_codes = 200, 700\n",
                 "not a list of HTTP status codes");
    expect_error("[service:a]\nendpoints = 10.0.0.1\nretry_buffer = 100GiB\n", "retry_buffer: not a size");
    expect_error("[service:a]\nendpoints = 10.0.0.1\n[route:r]\nfrom = a\nto = a\n",
                 "service a is not protocol = http");
    expect_error("[service:a]\nendpoints = 10.0.0.1\nprotocol = http\n[route:r]\nfrom = a\nto = b\n",
                 "to: \"b\" is not a service");
    expect_error("[service:a]\nendpoints = 10.0.0.1\nprotocol = http\n[route:r]\nfrom = a\nto = a\n"
                 "path = /x\npath_prefix = /y\n", "set path or path_prefix, not both");
    expect_error("[service:a]\nendpoints = 10.0.0.1\nprotocol = http\n[route:r]\nfrom = a\nto = a\n"
                 "path = x\n", "path: not a path");
    expect_error("[service:a]\nendpoints = 10.0.0.1\nprotocol = http\n[route:r]\nfrom = a\n",
                 "needs from");
    expect_error("[service:a]\nendpoints = 10.0.0.1\nprotocol = http\n[route:r]\nfrom = a\nto = a\n"
                 "[route:r]\n", "section appears twice");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_parsed),
        cmocka_unit_test(test_first_match_wins),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
