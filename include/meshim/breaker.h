/*
 * breaker.h — per-endpoint circuit breaking and health state (SPEC §3.5).
 *
 * The circuit of one endpoint, written out as a state machine:
 *
 *   CLOSED --(eject_after consecutive failures, if max_eject_percent allows)--> OPEN
 *   OPEN   --(n-th ejection: n x eject_time passed, at most 300 s)-----------> HALF_OPEN
 *   OPEN   --(a connection admitted before it opened succeeds)---------------> CLOSED,
 *              the ejection withdrawn: it does not make the next one longer
 *   HALF_OPEN: one connection is let through as a probe;
 *              success --> CLOSED;  failure --> OPEN again, for (n+1) x eject_time
 *              the probe's outcome never comes (its process was killed, the
 *              connect abandoned) --> after its lease the next caller probes
 *
 * n (the ejection count) is forgotten once the endpoint has stayed closed for
 * the longest ejection (300 s), so an endpoint that failed once long ago is
 * not punished for it. Active health checks keep a separate up/down state
 * with their own thresholds.
 *
 * Pure policy: no clock, no locks; the caller passes the time and serialises.
 */
#ifndef MESHIM_BREAKER_H
#define MESHIM_BREAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BREAKER_MAX_EJECT_NS (300ull * 1000000000ull)

enum circuit_state { CIRCUIT_CLOSED, CIRCUIT_OPEN, CIRCUIT_HALF_OPEN };

struct breaker_policy {
    uint32_t eject_after;           /* consecutive failures that open the circuit; 0: never */
    uint64_t eject_time_ns;         /* the first ejection's length */
    uint32_t max_eject_percent;     /* of the service's endpoints, ejected at once */
};

struct circuit {
    enum circuit_state state;
    uint32_t failures;              /* consecutive, while closed */
    uint32_t ejections;             /* n: ejections since the circuit last stayed closed */
    uint64_t open_until_ns;
    uint64_t closed_since_ns;
    bool probing;                   /* half-open: the probe is out */
    uint64_t probe_until_ns;        /* ... until then (its lease); 0: no end */
};

/* May a new connection go to this endpoint now? Moves OPEN to HALF_OPEN when
 * the ejection is over; in HALF_OPEN only the first caller is admitted, and
 * *probe says that it is the probe. The probe holds the half-open state for
 * lease_ns (0: until its outcome); after that the next caller probes. */
bool circuit_admit(struct circuit *c, uint64_t now_ns, uint64_t lease_ns, bool *probe);

/* Would circuit_admit refuse now? (A look without the state change.) */
bool circuit_blocked(const struct circuit *c, uint64_t now_ns);

/* A connection to the endpoint succeeded. */
void circuit_success(struct circuit *c, uint64_t now_ns);

/* A connection failed. may_eject: the service's max_eject_percent leaves
 * room for one more ejection (breaker_may_eject). Returns true when this
 * failure opened the circuit (an ejection to count). */
bool circuit_failure(struct circuit *c, const struct breaker_policy *p, uint64_t now_ns,
                     bool may_eject);

/* max_eject_percent: another ejection keeps at most that share of the
 * endpoints ejected — but one endpoint always may be. */
bool breaker_may_eject(size_t ejected, size_t total, uint32_t max_percent);

/* panic_threshold (Envoy's panic mode): with fewer than that share of the
 * service's endpoints usable (not ejected, not failing health checks), its
 * connects go to all of them, ejected or not. 0: never. An ejected endpoint
 * that answers then closes its circuit at once (circuit_success); a failure
 * while its ejection runs changes nothing, one after it is the failed probe
 * (circuit_failure). */
bool breaker_panic(size_t usable, size_t total, uint32_t threshold_percent);

/* How long the n-th ejection lasts. */
uint64_t breaker_eject_ns(const struct breaker_policy *p, uint32_t n);

/* Active health checks: up/down by consecutive results. */
struct health {
    bool down;
    uint32_t streak;                /* consecutive results against the current state */
};

/* Feeds one check result; returns true when the state flipped. */
bool health_observe(struct health *h, bool ok, uint32_t healthy_threshold,
                    uint32_t unhealthy_threshold);

#endif
