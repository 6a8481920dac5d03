/*
 * balancer.c — endpoint selection policies (see balancer.h).
 */
#include "meshim/balancer.h"

#include <stdlib.h>
#include <string.h>

/* Cap on the work spent finding a random start for round robin. */
#define RR_START_MAX_STEPS 100000

/* e^-x for x >= 0, to about 1e-12. Written out so that the library does not
 * need libm: loading it costs every process ~0.3 ms at start-up. */
double balancer_decay(double x)
{
    if (!(x > 0))
        return 1.0;
    if (x > 700)
        return 0.0;
    unsigned whole = (unsigned)x;
    double frac = x - whole, term = 1.0, sum = 1.0;
    for (int n = 1; n < 18; n++) {         /* Taylor series of e^-frac, frac < 1 */
        term *= -frac / n;
        sum += term;
    }
    double scale = 0.36787944117144233;    /* e^-1 */
    for (; whole; whole >>= 1, scale *= scale)
        if (whole & 1)
            sum *= scale;
    return sum;
}

static bool is_usable(lb_usable_fn usable, void *ctx, size_t i)
{
    return usable == NULL || usable(i, ctx);
}

static uint32_t active_of(const struct lb_target *t)
{
    return __atomic_load_n(&t->active, __ATOMIC_RELAXED);
}

/* Smooth weighted round robin (nginx): every usable target gains its weight,
 * the largest wins and pays back the total. Over sum(weights) picks each
 * target wins exactly its weight, interleaved rather than in bursts. */
static ssize_t pick_round_robin(struct balancer *b, lb_usable_fn usable, void *ctx)
{
    int64_t total = 0;
    ssize_t best = -1;
    for (size_t i = 0; i < b->n; i++) {
        if (!is_usable(usable, ctx, i))
            continue;
        b->current[i] += b->targets[i]->weight;
        total += b->targets[i]->weight;
        if (best < 0 || b->current[i] > b->current[best])
            best = (ssize_t)i;
    }
    if (best >= 0)
        b->current[best] -= total;
    return best;
}

/* Weighted random among usable targets; skip (when >= 0) is left out. */
static ssize_t pick_random(struct balancer *b, lb_usable_fn usable, void *ctx, uint64_t *rng,
                           ssize_t skip)
{
    uint64_t total = 0;
    for (size_t i = 0; i < b->n; i++)
        if ((ssize_t)i != skip && is_usable(usable, ctx, i))
            total += b->targets[i]->weight;
    if (total == 0)
        return -1;
    uint64_t r = rng_below(rng, total);
    for (size_t i = 0; i < b->n; i++) {
        if ((ssize_t)i == skip || !is_usable(usable, ctx, i))
            continue;
        if (r < b->targets[i]->weight)
            return (ssize_t)i;
        r -= b->targets[i]->weight;
    }
    return -1;
}

/* Fewest active connections per unit of weight; ties broken at random
 * (reservoir sampling) so equal endpoints share the load. */
static ssize_t pick_least_conn(struct balancer *b, lb_usable_fn usable, void *ctx, uint64_t *rng)
{
    ssize_t best = -1;
    unsigned ties = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!is_usable(usable, ctx, i))
            continue;
        if (best < 0) {
            best = (ssize_t)i;
            ties = 1;
            continue;
        }
        /* active_i / w_i  vs  active_best / w_best, without division */
        uint64_t lhs = (uint64_t)active_of(b->targets[i]) * b->targets[best]->weight;
        uint64_t rhs = (uint64_t)active_of(b->targets[best]) * b->targets[i]->weight;
        if (lhs < rhs) {
            best = (ssize_t)i;
            ties = 1;
        } else if (lhs == rhs && rng_below(rng, ++ties) == 0) {
            best = (ssize_t)i;
        }
    }
    return best;
}

double balancer_cost(const struct lb_target *t, uint64_t now_ns)
{
    /* An old sample decays toward zero, so an endpoint that was slow once is
     * tried again later. The floor (1 us) keeps the load term meaningful for
     * endpoints with no sample yet. */
    double ewma = t->ewma_ns;
    if (ewma > 0 && now_ns > t->ewma_at_ns)
        ewma *= balancer_decay((double)(now_ns - t->ewma_at_ns) / LB_EWMA_DECAY_NS);
    return (ewma + 1000.0) * (active_of(t) + 1) / t->weight;
}

static ssize_t pick_p2c(struct balancer *b, lb_usable_fn usable, void *ctx, uint64_t *rng,
                        uint64_t now_ns)
{
    ssize_t first = pick_random(b, usable, ctx, rng, -1);
    if (first < 0)
        return -1;
    ssize_t second = pick_random(b, usable, ctx, rng, first);
    if (second < 0)
        return first;
    double c1 = balancer_cost(b->targets[first], now_ns);
    double c2 = balancer_cost(b->targets[second], now_ns);
    if (c1 == c2)
        return rng_below(rng, 2) ? first : second;
    return c1 < c2 ? first : second;
}

bool balancer_init(struct balancer *b, enum lb_policy policy, struct lb_target *const *targets,
                   size_t n, uint64_t *rng)
{
    memset(b, 0, sizeof(*b));
    b->policy = policy;
    b->targets = targets;
    b->n = n;
    for (size_t i = 1; i < n; i++)
        b->tiered |= targets[i]->priority != targets[0]->priority;
    b->current = calloc(n ? n : 1, sizeof(*b->current));
    if (!b->current)
        return false;
    if (policy == LB_ROUND_ROBIN && n > 0) {
        /* Random start: advance a random number of steps into the cycle. */
        uint64_t cycle = 0;
        for (size_t i = 0; i < n; i++)
            cycle += targets[i]->weight;
        if (cycle * n > RR_START_MAX_STEPS)
            cycle = RR_START_MAX_STEPS / n + 1;
        for (uint64_t steps = rng_below(rng, cycle); steps > 0; steps--)
            pick_round_robin(b, NULL, NULL);
    }
    return true;
}

void balancer_free(struct balancer *b)
{
    free(b->current);
    b->current = NULL;
}

/* SRV priorities: only the lowest priority that has a usable target takes
 * connections; the next one serves when all of those are out (RFC 2782). */
struct tier {
    struct balancer *b;
    lb_usable_fn usable;
    void *ctx;
    uint32_t priority;
};

static bool in_tier(size_t i, void *ctx)
{
    const struct tier *t = ctx;
    return t->b->targets[i]->priority == t->priority && is_usable(t->usable, t->ctx, i);
}

static ssize_t pick_policy(struct balancer *b, lb_usable_fn usable, void *ctx, uint64_t *rng,
                           uint64_t now_ns)
{
    switch (b->policy) {
    case LB_ROUND_ROBIN:
        return pick_round_robin(b, usable, ctx);
    case LB_RANDOM:
        return pick_random(b, usable, ctx, rng, -1);
    case LB_LEAST_CONN:
        return pick_least_conn(b, usable, ctx, rng);
    case LB_P2C:
        return pick_p2c(b, usable, ctx, rng, now_ns);
    }
    return -1;
}

ssize_t balancer_pick(struct balancer *b, lb_usable_fn usable, void *ctx, uint64_t *rng,
                      uint64_t now_ns)
{
    if (!b->tiered)
        return pick_policy(b, usable, ctx, rng, now_ns);
    struct tier t = { b, usable, ctx, UINT32_MAX };
    for (size_t i = 0; i < b->n; i++)
        if (b->targets[i]->priority < t.priority && is_usable(usable, ctx, i))
            t.priority = b->targets[i]->priority;
    if (t.priority == UINT32_MAX)
        return -1;
    return pick_policy(b, in_tier, &t, rng, now_ns);
}

void balancer_observe(struct lb_target *t, uint64_t latency_ns, uint64_t now_ns)
{
    double rtt = (double)latency_ns;
    if (t->ewma_ns == 0 || rtt > t->ewma_ns) {
        t->ewma_ns = rtt;               /* peak: jump up at once */
    } else {
        double elapsed = now_ns > t->ewma_at_ns ? (double)(now_ns - t->ewma_at_ns) : 0;
        double w = balancer_decay(elapsed / LB_EWMA_DECAY_NS);
        t->ewma_ns = t->ewma_ns * w + rtt * (1 - w);
    }
    t->ewma_at_ns = now_ns;
}
