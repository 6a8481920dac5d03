/*
 * balancer.h — picks an endpoint for each new connection (SPEC §3.3).
 *
 * Four policies over weighted targets: smooth weighted round robin, weighted
 * random, least connections (active / weight) and p2c — the power of two
 * choices on peak-EWMA connect latency x (active + 1), as Finagle and
 * Linkerd do. Every balancer starts at a random position, so a hundred
 * short-lived processes spread like one long-lived one.
 *
 * Pure policy: the caller owns the targets (an array of pointers, so that
 * the same endpoint keeps its counts when its service's set is rebuilt), passes the random state, holds
 * whatever lock serialises picks, and says which targets are usable now.
 */
#ifndef MESHIM_BALANCER_H
#define MESHIM_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "meshim/config.h"

struct lb_target {
    uint32_t weight;
    uint32_t priority;      /* SRV priority: lower first; equal for all otherwise */
    uint32_t active;        /* connections open now; updated atomically */
    double ewma_ns;         /* peak-EWMA of connect latency; 0 = no sample */
    uint64_t ewma_at_ns;    /* when it was last updated */
};

struct balancer {
    enum lb_policy policy;
    struct lb_target *const *targets;
    size_t n;
    bool tiered;            /* the targets have more than one priority */
    int64_t *current;       /* round robin: smooth WRR current weights */
};

typedef bool (*lb_usable_fn)(size_t index, void *ctx);

/* Peak-EWMA decay time: how fast an old latency sample is forgotten. */
#define LB_EWMA_DECAY_NS 10000000000.0

bool balancer_init(struct balancer *b, enum lb_policy policy, struct lb_target *const *targets,
                   size_t n, uint64_t *rng);
void balancer_free(struct balancer *b);

/* The index of the target for the next connection, or -1 when none is
 * usable (usable == NULL: all are). Only targets of the lowest priority
 * that has a usable one are considered (SRV). */
ssize_t balancer_pick(struct balancer *b, lb_usable_fn usable, void *ctx, uint64_t *rng,
                      uint64_t now_ns);

/* Feeds a connect latency into a target's peak-EWMA. */
void balancer_observe(struct lb_target *t, uint64_t latency_ns, uint64_t now_ns);

/* e^-x for x >= 0 (no libm). */
double balancer_decay(double x);

/* The p2c cost of a target now (exposed for tests). */
double balancer_cost(const struct lb_target *t, uint64_t now_ns);

#endif
