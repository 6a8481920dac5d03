/*
 * breaker.c — the circuit state machine and health thresholds (see breaker.h).
 */
#include "meshim/breaker.h"

uint64_t breaker_eject_ns(const struct breaker_policy *p, uint32_t n)
{
    uint64_t t = p->eject_time_ns * (n ? n : 1);
    if (p->eject_time_ns && t / p->eject_time_ns != (n ? n : 1))
        return BREAKER_MAX_EJECT_NS;        /* overflow */
    return t < BREAKER_MAX_EJECT_NS ? t : BREAKER_MAX_EJECT_NS;
}

bool breaker_may_eject(size_t ejected, size_t total, uint32_t max_percent)
{
    if (ejected == 0)
        return total > 0;
    return (ejected + 1) * 100 <= (size_t)max_percent * total;
}

bool breaker_panic(size_t usable, size_t total, uint32_t threshold_percent)
{
    return total > 0 && usable * 100 < (size_t)threshold_percent * total;
}

static bool probe_out(const struct circuit *c, uint64_t now_ns)
{
    return c->probing && (c->probe_until_ns == 0 || now_ns < c->probe_until_ns);
}

bool circuit_admit(struct circuit *c, uint64_t now_ns, uint64_t lease_ns, bool *probe)
{
    *probe = false;
    switch (c->state) {
    case CIRCUIT_CLOSED:
        return true;
    case CIRCUIT_OPEN:
        if (now_ns < c->open_until_ns)
            return false;
        c->state = CIRCUIT_HALF_OPEN;
        c->probing = false;
        /* fall through */
    case CIRCUIT_HALF_OPEN:
        if (probe_out(c, now_ns))
            return false;
        c->probing = true;
        c->probe_until_ns = lease_ns ? now_ns + lease_ns : 0;
        *probe = true;
        return true;
    }
    return false;
}

bool circuit_blocked(const struct circuit *c, uint64_t now_ns)
{
    if (c->state == CIRCUIT_OPEN)
        return now_ns < c->open_until_ns;
    return c->state == CIRCUIT_HALF_OPEN && probe_out(c, now_ns);
}

void circuit_success(struct circuit *c, uint64_t now_ns)
{
    /* A connection admitted before the ejection answered: the ejection is
     * withdrawn, and does not count towards the next one's length. A burst
     * that overflows a healthy server's accept queue times out some of its
     * connects (their SYNs dropped) while others get through: with each
     * withdrawn ejection counted, the one burst ejected the endpoint for
     * 30, 60 and 90 s in turn, from every process of the host. Only a
     * probe that fails makes the next ejection longer. */
    if (c->state == CIRCUIT_OPEN && c->ejections)
        c->ejections--;
    if (c->state != CIRCUIT_CLOSED) {
        c->state = CIRCUIT_CLOSED;
        c->closed_since_ns = now_ns;
        c->probing = false;
    }
    c->failures = 0;
}

static void open_circuit(struct circuit *c, const struct breaker_policy *p, uint64_t now_ns)
{
    c->ejections++;
    c->state = CIRCUIT_OPEN;
    c->open_until_ns = now_ns + breaker_eject_ns(p, c->ejections);
    c->probing = false;
    c->failures = 0;
}

bool circuit_failure(struct circuit *c, const struct breaker_policy *p, uint64_t now_ns,
                     bool may_eject)
{
    switch (c->state) {
    case CIRCUIT_HALF_OPEN:
        /* The probe failed: open again, for longer. The percentage cap does
         * not apply — the endpoint is already counted as ejected. */
        open_circuit(c, p, now_ns);
        return true;
    case CIRCUIT_OPEN:
        return false;           /* a connection admitted before it opened */
    case CIRCUIT_CLOSED:
        break;
    }
    if (c->ejections && now_ns - c->closed_since_ns >= BREAKER_MAX_EJECT_NS)
        c->ejections = 0;       /* stayed closed long enough: forgiven */
    if (p->eject_after == 0)
        return false;           /* eject_after = off */
    if (++c->failures < p->eject_after || !may_eject)
        return false;
    open_circuit(c, p, now_ns);
    return true;
}

bool health_observe(struct health *h, bool ok, uint32_t healthy_threshold,
                    uint32_t unhealthy_threshold)
{
    if (ok != h->down) {        /* agrees with the current state */
        h->streak = 0;
        return false;
    }
    if (++h->streak < (h->down ? healthy_threshold : unhealthy_threshold))
        return false;
    h->down = !h->down;
    h->streak = 0;
    return true;
}
