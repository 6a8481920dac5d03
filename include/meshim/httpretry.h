/*
 * httpretry.h — whether a failed HTTP request may be sent again, and which
 * answers count against their endpoint (protocol = http; README "HTTP
 * services"). Plain functions over what the proxy (mesh/http.c) knows of
 * the attempt; the retry budget, which counts as it answers, stays there.
 *
 * retry_on has Envoy's meanings (its router's RetryStateImpl): a request
 * that got no answer at all, whether the connection could not be made,
 * ended before an answer's head or passed per_try_timeout, is one a proxy
 * would answer 503 or 504 itself, so `5xx` and `gateway-error` take all
 * three, and `reset` ("the server did not respond at all") takes all
 * three too; `connect-failure` takes only the first. An answer is retried
 * by `5xx` (500 to 599), `gateway-error` (502, 503, 504) and
 * `retriable-status-codes` (the service's list).
 */
#ifndef MESHIM_HTTPRETRY_H
#define MESHIM_HTTPRETRY_H

#include <stdbool.h>

#include "meshim/config.h"

/* How an attempt failed. */
enum http_failure {
    HTTP_FAIL_CONNECT,      /* no connection to the endpoint: nothing was sent */
    HTTP_FAIL_RESET,        /* the connection ended before an answer's head */
    HTTP_FAIL_TIMEOUT,      /* per_try_timeout passed before an answer's head */
    HTTP_FAIL_STATUS,       /* an answer, whose status is to be judged */
};

/* An attempt's failure, and what the proxy knows of its request. */
struct http_attempt {
    enum http_failure failure;
    int status;             /* HTTP_FAIL_STATUS: the answer's */
    bool committed;         /* some of the answer has reached the application */
    bool held_whole;        /* the request is still held whole (within retry_buffer) */
    bool idempotent;        /* its method (http_method_idempotent) */
    unsigned retries;       /* retries made for it so far */
};

/* Does retry_on (a set of enum retry_on) name this failure? codes:
 * retriable_status_codes. */
bool http_retry_on_names(unsigned retry_on, const struct status_list *codes, enum http_failure failure,
                         int status);

/* May the request be sent again, by the service's retry_on, retries and
 * retry_non_idempotent? A request that failed to connect was never sent,
 * so any method may; after that only idempotent ones, unless
 * retry_non_idempotent. The retry budget is the caller's to ask last. */
bool http_retry_allowed(const struct service_config *cfg, const struct http_attempt *a);

/* GET, HEAD, OPTIONS, TRACE, PUT and DELETE (RFC 9110 §9.2.2). */
bool http_method_idempotent(const char *method);

/* 1xx but 101: forwarded, and the final answer follows. */
bool http_status_interim(int status);

/* An answer that counts against its endpoint (Envoy's consecutive_5xx). */
bool http_status_fails_endpoint(int status);

#endif
