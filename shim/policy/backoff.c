/*
 * backoff.c — retry backoff and budget (see backoff.h).
 */
#include "meshim/backoff.h"

#include <string.h>

uint64_t backoff_delay_ns(uint64_t base_ns, uint64_t max_ns, unsigned retry, uint64_t *rng)
{
    uint64_t ceiling = base_ns;
    for (unsigned i = 0; i < retry && ceiling < max_ns; i++)
        ceiling *= 2;
    if (ceiling > max_ns)
        ceiling = max_ns;
    return ceiling ? rng_below(rng, ceiling) : 0;
}

void budget_init(struct retry_budget *b, double share)
{
    memset(b, 0, sizeof(*b));
    b->share = share;
    for (int i = 0; i < BUDGET_WINDOW_S; i++)
        b->second[i] = -1;
}

/* The bucket for this second, emptied if it still held an older second. */
static int bucket(struct retry_budget *b, uint64_t now_ns)
{
    int64_t sec = (int64_t)(now_ns / 1000000000ull);
    int i = (int)(sec % BUDGET_WINDOW_S);
    if (b->second[i] != sec) {
        b->second[i] = sec;
        b->attempts[i] = 0;
        b->retries[i] = 0;
    }
    return i;
}

void budget_attempt(struct retry_budget *b, uint64_t now_ns)
{
    b->attempts[bucket(b, now_ns)]++;
}

bool budget_try_retry(struct retry_budget *b, uint64_t now_ns)
{
    int now = bucket(b, now_ns);
    int64_t sec = b->second[now];
    uint64_t attempts = 0, retries = 0;
    for (int i = 0; i < BUDGET_WINDOW_S; i++) {
        if (b->second[i] > sec - BUDGET_WINDOW_S) {
            attempts += b->attempts[i];
            retries += b->retries[i];
        }
    }
    double allowed = b->share * (double)attempts + BUDGET_MIN_PER_S * BUDGET_WINDOW_S;
    if ((double)retries + 1 > allowed)
        return false;
    b->retries[now]++;
    return true;
}
