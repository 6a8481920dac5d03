/*
 * test_httpretry.c — which failed HTTP requests are sent again
 * (httpretry.h): retry_on as Envoy's router reads it, the methods, the
 * limits, and which answers count against an endpoint.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "meshim/httpretry.h"

#define NAMES(on, f, status) http_retry_on_names(on, NULL, f, status)

/* A request that got no answer at all: connect-failure takes only a
 * failed connect; reset, 5xx and gateway-error take all three kinds (a
 * proxy answers each 503 or 504 itself). */
static void test_no_answer(void **state)
{
    (void)state;
    assert_true(NAMES(RETRY_CONNECT_FAILURE, HTTP_FAIL_CONNECT, 0));
    assert_false(NAMES(RETRY_CONNECT_FAILURE, HTTP_FAIL_RESET, 0));
    assert_false(NAMES(RETRY_CONNECT_FAILURE, HTTP_FAIL_TIMEOUT, 0));
    for (unsigned on = RETRY_RESET; on <= RETRY_GATEWAY_ERROR; on <<= 1) {
        assert_true(NAMES(on, HTTP_FAIL_CONNECT, 0));
        assert_true(NAMES(on, HTTP_FAIL_RESET, 0));
        assert_true(NAMES(on, HTTP_FAIL_TIMEOUT, 0));
    }
    assert_false(NAMES(RETRY_STATUS_CODES, HTTP_FAIL_CONNECT, 0));
    assert_false(NAMES(RETRY_STATUS_CODES, HTTP_FAIL_RESET, 0));
    assert_false(NAMES(0, HTTP_FAIL_CONNECT, 0));
}

/* An answer: 5xx takes 500 and up, gateway-error 502 to 504, reset and
 * connect-failure none, retriable-status-codes those listed. */
static void test_answers(void **state)
{
    (void)state;
    assert_true(NAMES(RETRY_5XX, HTTP_FAIL_STATUS, 500));
    assert_true(NAMES(RETRY_5XX, HTTP_FAIL_STATUS, 503));
    assert_true(NAMES(RETRY_5XX, HTTP_FAIL_STATUS, 599));
    assert_false(NAMES(RETRY_5XX, HTTP_FAIL_STATUS, 499));
    assert_false(NAMES(RETRY_5XX, HTTP_FAIL_STATUS, 600));                  /* llhttp reads any 3 digits */
    assert_false(NAMES(RETRY_GATEWAY_ERROR, HTTP_FAIL_STATUS, 500));
    assert_false(NAMES(RETRY_GATEWAY_ERROR, HTTP_FAIL_STATUS, 501));
    for (int s = 502; s <= 504; s++)
        assert_true(NAMES(RETRY_GATEWAY_ERROR, HTTP_FAIL_STATUS, s));
    assert_false(NAMES(RETRY_GATEWAY_ERROR, HTTP_FAIL_STATUS, 505));
    assert_false(NAMES(RETRY_RESET | RETRY_CONNECT_FAILURE, HTTP_FAIL_STATUS, 503));

    uint16_t list[] = { 409, 429 };
    struct status_list codes = { list, 2 };
    assert_true(http_retry_on_names(RETRY_STATUS_CODES, &codes, HTTP_FAIL_STATUS, 429));
    assert_true(http_retry_on_names(RETRY_STATUS_CODES, &codes, HTTP_FAIL_STATUS, 409));
    assert_false(http_retry_on_names(RETRY_STATUS_CODES, &codes, HTTP_FAIL_STATUS, 503));
    assert_false(http_retry_on_names(RETRY_5XX, &codes, HTTP_FAIL_STATUS, 429));    /* not asked for */
}

/* After a failed connect any method is sent again (nothing was sent);
 * after that only idempotent ones, unless retry_non_idempotent; never
 * once the application has some of the answer, nor a request no longer
 * held whole, nor beyond retries. */
static void test_allowed(void **state)
{
    (void)state;
    struct service_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.retry_on = RETRY_5XX;
    cfg.retries = 2;
    struct http_attempt post = { .failure = HTTP_FAIL_RESET, .held_whole = true, .idempotent = false };
    struct http_attempt get = { .failure = HTTP_FAIL_STATUS, .status = 503, .held_whole = true, .idempotent = true };
    assert_false(http_retry_allowed(&cfg, &post));
    post.failure = HTTP_FAIL_CONNECT;
    assert_true(http_retry_allowed(&cfg, &post));
    post.failure = HTTP_FAIL_STATUS;
    post.status = 503;
    assert_false(http_retry_allowed(&cfg, &post));
    cfg.retry_non_idempotent = true;
    assert_true(http_retry_allowed(&cfg, &post));

    assert_true(http_retry_allowed(&cfg, &get));
    get.retries = 2;
    assert_false(http_retry_allowed(&cfg, &get));       /* retries = 2 made */
    get.retries = 1;
    get.committed = true;
    assert_false(http_retry_allowed(&cfg, &get));
    get.committed = false;
    get.held_whole = false;
    assert_false(http_retry_allowed(&cfg, &get));
    get.held_whole = true;
    get.status = 404;
    assert_false(http_retry_allowed(&cfg, &get));
    cfg.retries = 0;
    get.status = 503;
    get.retries = 0;
    assert_false(http_retry_allowed(&cfg, &get));
}

static void test_methods_and_statuses(void **state)
{
    (void)state;
    const char *idempotent[] = { "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE" };
    for (size_t i = 0; i < sizeof(idempotent) / sizeof(*idempotent); i++)
        assert_true(http_method_idempotent(idempotent[i]));
    assert_false(http_method_idempotent("POST"));
    assert_false(http_method_idempotent("PATCH"));
    assert_false(http_method_idempotent("CONNECT"));
    assert_false(http_method_idempotent("get"));        /* methods are case-sensitive (RFC 9110 §9.1) */

    assert_true(http_status_interim(100));
    assert_true(http_status_interim(103));
    assert_false(http_status_interim(101));             /* the switch: what follows is not HTTP */
    assert_false(http_status_interim(200));
    assert_true(http_status_fails_endpoint(500));
    assert_true(http_status_fails_endpoint(503));
    assert_false(http_status_fails_endpoint(499));
    assert_false(http_status_fails_endpoint(429));
    assert_false(http_status_fails_endpoint(999));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_answer),
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_allowed),
        cmocka_unit_test(test_methods_and_statuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
