/*
 * httpretry.c — which failed HTTP requests are sent again (see
 * httpretry.h for retry_on's meanings, which are Envoy's).
 */
#include "meshim/httpretry.h"

#include <string.h>

/* The conditions that take a request that got no answer at all. */
#define RETRY_NO_ANSWER (RETRY_RESET | RETRY_5XX | RETRY_GATEWAY_ERROR)

/* llhttp takes any three digits; a class is its first (RFC 9110 §15). */
static bool is_5xx(int status)
{
    return status >= 500 && status <= 599;
}

bool http_retry_on_names(unsigned retry_on, const struct status_list *codes, enum http_failure failure,
                         int status)
{
    switch (failure) {
    case HTTP_FAIL_CONNECT:
        return retry_on & (RETRY_CONNECT_FAILURE | RETRY_NO_ANSWER);
    case HTTP_FAIL_RESET:
    case HTTP_FAIL_TIMEOUT:
        return retry_on & RETRY_NO_ANSWER;
    case HTTP_FAIL_STATUS:
        if ((retry_on & RETRY_5XX) && is_5xx(status))
            return true;
        if ((retry_on & RETRY_GATEWAY_ERROR) && status >= 502 && status <= 504)
            return true;
        if ((retry_on & RETRY_STATUS_CODES) && codes)
            for (size_t i = 0; i < codes->n; i++)
                if (codes->v[i] == status)
                    return true;
        return false;
    }
    return false;
}

bool http_retry_allowed(const struct service_config *cfg, const struct http_attempt *a)
{
    if (a->committed || !a->held_whole || !http_retry_on_names(cfg->retry_on, &cfg->retriable_status_codes,
                                                              a->failure, a->status))
        return false;
    if (a->failure != HTTP_FAIL_CONNECT && !a->idempotent && !cfg->retry_non_idempotent)
        return false;
    return a->retries < cfg->retries;
}

bool http_method_idempotent(const char *method)
{
    static const char *const IDEMPOTENT[] = { "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", NULL };
    for (int i = 0; IDEMPOTENT[i]; i++)
        if (strcmp(method, IDEMPOTENT[i]) == 0)
            return true;
    return false;
}

bool http_status_interim(int status)
{
    return status >= 100 && status < 200 && status != 101;
}

bool http_status_fails_endpoint(int status)
{
    return is_5xx(status);
}
