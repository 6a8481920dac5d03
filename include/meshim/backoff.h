/*
 * backoff.h — how long to wait before a retry, and whether a retry may be
 * made at all (SPEC §2.3 retry_backoff, retry_backoff_max, retry_budget).
 *
 * Backoff is exponential with full jitter: the n-th retry (n = 0 for the
 * first) waits U[0, min(max, base x 2^n)).
 *
 * The budget keeps retries from multiplying load when a whole service is
 * down (as Finagle and Linkerd do): over a sliding 10 s window, retries may
 * add at most `share` of the first attempts, plus 10 per second of window
 * (so a quiet client can still retry). Ten one-second buckets, no clock of
 * its own: the caller passes the time and serialises.
 */
#ifndef MESHIM_BACKOFF_H
#define MESHIM_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#include "meshim/util.h"

uint64_t backoff_delay_ns(uint64_t base_ns, uint64_t max_ns, unsigned retry, uint64_t *rng);

#define BUDGET_WINDOW_S 10
#define BUDGET_MIN_PER_S 10

struct retry_budget {
    double share;                           /* 0.20 for "20%" */
    int64_t second[BUDGET_WINDOW_S];        /* which second each bucket holds */
    uint32_t attempts[BUDGET_WINDOW_S];     /* first attempts in that second */
    uint32_t retries[BUDGET_WINDOW_S];
};

void budget_init(struct retry_budget *b, double share);
/* A connection's first attempt. */
void budget_attempt(struct retry_budget *b, uint64_t now_ns);
/* May a retry be made now? Counts it when it may. */
bool budget_try_retry(struct retry_budget *b, uint64_t now_ns);

#endif
