/*
 * shared.c — the host's endpoint table: layout, keys, slots and the
 * lock-free words (see shared.h). Plain memory and atomics: the mapping of
 * the file is observe/sharedfile.c's.
 */
#include "meshim/shared.h"

#include <stdio.h>
#include <string.h>

#define MS 1000000ull
#define BITS(n) ((1ull << (n)) - 1)
#define TIME_BITS 40

void shared_init(struct shared_header *h, uint64_t created_unix_ms)
{
    memcpy(h->magic, SHARED_MAGIC, sizeof(h->magic));
    h->version = SHARED_VERSION;
    h->header_size = sizeof(*h);
    h->entry_size = sizeof(struct shared_entry);
    h->slots = SHARED_SLOTS;
    h->created_unix_ms = created_unix_ms;
}

bool shared_header_ok(const struct shared_header *h)
{
    return memcmp(h->magic, SHARED_MAGIC, sizeof(h->magic)) == 0 &&
           h->version == SHARED_VERSION && h->header_size == sizeof(*h) &&
           h->entry_size == sizeof(struct shared_entry) && h->slots == SHARED_SLOTS;
}

uint64_t shared_key(const char *service, const struct netaddr *addr)
{
    uint64_t h = hash_fnv1a_bytes(HASH_FNV1A_INIT, service, strlen(service) + 1);
    uint8_t fam = addr->family == AF_INET6 ? 6 : 4;
    h = hash_fnv1a_bytes(h, &fam, 1);
    if (addr->family == AF_INET6)
        h = hash_fnv1a_bytes(h, &addr->ip.v6, sizeof(addr->ip.v6));
    else
        h = hash_fnv1a_bytes(h, &addr->ip.v4, sizeof(addr->ip.v4));
    h = hash_fnv1a_bytes(h, &addr->port, sizeof(addr->port));
    return h ? h : 1;
}

static uint64_t load(const uint64_t *w)
{
    return __atomic_load_n(w, __ATOMIC_ACQUIRE);
}

static bool swap(uint64_t *w, uint64_t *expected, uint64_t desired)
{
    return __atomic_compare_exchange_n(w, expected, desired, false, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE);
}

static uint64_t ms_of(uint64_t ns, bool round_up)
{
    uint64_t ms = ns / MS + (round_up && ns % MS);
    return ms > BITS(TIME_BITS) ? BITS(TIME_BITS) : ms;
}

static void set_name(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src);
}

void shared_touch(struct shared_entry *e, uint64_t now_ms)
{
    uint64_t used = __atomic_load_n(&e->used_ms, __ATOMIC_RELAXED);
    if (now_ms > used && now_ms - used >= 1000)
        __atomic_store_n(&e->used_ms, now_ms, __ATOMIC_RELAXED);
}

/* Was this entry stamped under another CLOCK_MONOTONIC? One host's
 * processes share one clock, and a touch is at most a moment ahead of a
 * reader's clock; a stamp further ahead than an idle period comes from a
 * process in a time namespace, or in a user-mode Linux guest that shares
 * the folder. None of such an entry's times mean anything here. */
static bool foreign_clock(const struct shared_entry *e, uint64_t now_ms)
{
    return __atomic_load_n(&e->used_ms, __ATOMIC_RELAXED) > now_ms + SHARED_IDLE_MS;
}

/* May this entry go to another key? Idle long enough, no verdict in force
 * (its circuit would admit a connection: closed, an ejection over, no probe
 * out; an endpoint ejected and then dropped by discovery would otherwise
 * hold its slot for ever: pods come and go), no one checking it; or
 * stamped under another clock. */
bool shared_idle(const struct shared_entry *e, uint64_t now_ms)
{
    if (foreign_clock(e, now_ms))
        return true;
    struct circuit c;
    shared_circuit_load(e, &c);
    uint64_t used = __atomic_load_n(&e->used_ms, __ATOMIC_RELAXED);
    /* used may be a moment ahead of now_ms: another process touched it
     * since this one read the clock. */
    return now_ms > used && now_ms - used >= SHARED_IDLE_MS && !circuit_blocked(&c, now_ms * MS) &&
           shared_lease_holder(load(&e->checker), now_ms) == 0;
}

static void reset(struct shared_entry *e, uint64_t now_ms)
{
    __atomic_store_n(&e->circuit, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&e->health, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&e->checker, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&e->ewma, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&e->used_ms, now_ms, __ATOMIC_RELAXED);
    __atomic_store_n(&e->ejector, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&e->prober, 0, __ATOMIC_RELAXED);
}

static struct shared_entry *claimed(struct shared_entry *e, const char *service,
                                    const char *endpoint, uint64_t now_ms)
{
    set_name(e->service, sizeof(e->service), service);
    set_name(e->endpoint, sizeof(e->endpoint), endpoint);
    shared_touch(e, now_ms);
    return e;
}

struct shared_entry *shared_find(struct shared_header *h, uint64_t key, const char *service,
                                 const char *endpoint, uint64_t now_ms)
{
    struct shared_entry *slots = shared_slots(h);
    struct shared_entry *oldest = NULL;
    uint64_t oldest_used = UINT64_MAX;
    for (uint32_t i = 0; i < SHARED_PROBE; i++) {
        struct shared_entry *e = &slots[(key + i) & (SHARED_SLOTS - 1)];
        uint64_t k = load(&e->key);
        if (k == 0 && swap(&e->key, &k, key))
            return claimed(e, service, endpoint, now_ms);
        if (k == key) {
            if (foreign_clock(e, now_ms))
                reset(e, now_ms);       /* its ejection or lease would last for hours here */
            shared_touch(e, now_ms);
            return e;
        }
        uint64_t used = __atomic_load_n(&e->used_ms, __ATOMIC_RELAXED);
        if (used < oldest_used && shared_idle(e, now_ms)) {
            oldest = e;
            oldest_used = used;
        }
    }
    if (!oldest)
        return NULL;
    /* Take over the least recently used idle entry. Its words are reset
     * first: a process still holding it (idle SHARED_IDLE_MS) checks the
     * key on every use and finds it gone. */
    uint64_t k = load(&oldest->key);
    reset(oldest, now_ms);
    if (!swap(&oldest->key, &k, key))
        return k == key ? oldest : NULL;
    return claimed(oldest, service, endpoint, now_ms);
}

/* ------------------------------------------------------------- circuit -- */

uint64_t shared_circuit_pack(const struct circuit *c)
{
    uint64_t until = 0;
    if (c->state == CIRCUIT_CLOSED)
        until = ms_of(c->closed_since_ns, false);
    else if (c->state == CIRCUIT_OPEN)
        until = ms_of(c->open_until_ns, true);
    else if (c->probing)
        until = c->probe_until_ns ? ms_of(c->probe_until_ns, true) : BITS(TIME_BITS);
    uint64_t failures = c->failures > BITS(12) ? BITS(12) : c->failures;
    uint64_t ejections = c->ejections > BITS(8) ? BITS(8) : c->ejections;
    return (uint64_t)c->state << 62 | (uint64_t)c->probing << 61 | ejections << 52 |
           failures << 40 | until;
}

void shared_circuit_unpack(uint64_t w, struct circuit *c)
{
    uint64_t until_ns = (w & BITS(TIME_BITS)) * MS;
    *c = (struct circuit){
        .state = (enum circuit_state)(w >> 62),
        .probing = (w >> 61) & 1,
        .ejections = (uint32_t)((w >> 52) & BITS(8)),
        .failures = (uint32_t)((w >> 40) & BITS(12)),
    };
    if (c->state > CIRCUIT_HALF_OPEN)
        c->state = CIRCUIT_OPEN;                /* not a state this build writes */
    if (c->state == CIRCUIT_CLOSED)
        c->closed_since_ns = until_ns;
    else if (c->state == CIRCUIT_OPEN)
        c->open_until_ns = until_ns;
    else if (c->probing && (w & BITS(TIME_BITS)) != BITS(TIME_BITS))
        c->probe_until_ns = until_ns;
}

void shared_circuit_load(const struct shared_entry *e, struct circuit *c)
{
    shared_circuit_unpack(load(&e->circuit), c);
}

bool shared_circuit_apply(struct shared_entry *e, shared_circuit_fn fn, void *arg,
                          struct circuit *after)
{
    uint64_t old = load(&e->circuit);
    for (;;) {
        shared_circuit_unpack(old, after);
        bool r = fn(after, arg);
        uint64_t w = shared_circuit_pack(after);
        if (w == old || swap(&e->circuit, &old, w))
            return r;
    }
}

bool shared_circuit_restore(struct shared_entry *e, const struct circuit *now_is,
                            const struct circuit *was)
{
    uint64_t expected = shared_circuit_pack(now_is);
    return swap(&e->circuit, &expected, shared_circuit_pack(was));
}

/* -------------------------------------------------------------- health -- */

uint64_t shared_health_pack(const struct health *h, uint64_t checked_ms)
{
    uint64_t streak = h->streak > BITS(15) ? BITS(15) : h->streak;
    return (uint64_t)h->down << 63 | streak << 48 | (checked_ms & BITS(TIME_BITS));
}

void shared_health_unpack(uint64_t w, struct health *h, uint64_t *checked_ms)
{
    h->down = w >> 63;
    h->streak = (uint32_t)((w >> 48) & BITS(15));
    *checked_ms = w & BITS(TIME_BITS);
}

bool shared_health_observe(struct shared_entry *e, bool ok, uint32_t healthy_threshold,
                           uint32_t unhealthy_threshold, uint64_t now_ms, bool *down)
{
    uint64_t old = load(&e->health), checked;
    for (;;) {
        struct health h;
        shared_health_unpack(old, &h, &checked);
        bool flipped = health_observe(&h, ok, healthy_threshold, unhealthy_threshold);
        *down = h.down;
        if (swap(&e->health, &old, shared_health_pack(&h, now_ms)))
            return flipped;
    }
}

/* --------------------------------------------------------------- lease -- */

int32_t shared_lease_pid(uint64_t lease)
{
    return (int32_t)(lease >> TIME_BITS);
}

int32_t shared_lease_holder(uint64_t lease, uint64_t now_ms)
{
    return (lease & BITS(TIME_BITS)) > now_ms ? shared_lease_pid(lease) : 0;
}

bool shared_lease_take(uint64_t *lease, int32_t pid, uint64_t now_ms, uint64_t for_ms)
{
    uint64_t old = load(lease);
    uint64_t w = (uint64_t)(pid & BITS(24)) << TIME_BITS | ((now_ms + for_ms) & BITS(TIME_BITS));
    for (;;) {
        int32_t holder = shared_lease_holder(old, now_ms);
        if (holder && holder != (pid & (int32_t)BITS(24)))
            return false;
        if (swap(lease, &old, w))
            return true;
    }
}

/* ---------------------------------------------------------------- ewma -- */

void shared_ewma_load(const struct shared_entry *e, struct lb_target *t)
{
    uint64_t w = load(&e->ewma);
    t->ewma_ns = (double)(w >> TIME_BITS) * 1000.0;
    t->ewma_at_ns = (w & BITS(TIME_BITS)) * MS;
}

void shared_ewma_observe(struct shared_entry *e, uint64_t latency_ns, uint64_t now_ns)
{
    uint64_t old = load(&e->ewma);
    for (;;) {
        struct lb_target t = { 0 };
        t.ewma_ns = (double)(old >> TIME_BITS) * 1000.0;
        t.ewma_at_ns = (old & BITS(TIME_BITS)) * MS;
        balancer_observe(&t, latency_ns, now_ns);
        uint64_t us = (uint64_t)(t.ewma_ns / 1000.0 + 0.5);
        us = us > BITS(24) ? BITS(24) : us;
        uint64_t w = us << TIME_BITS | ms_of(now_ns, false);
        if (swap(&e->ewma, &old, w))
            return;
    }
}
