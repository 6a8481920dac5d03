/*
 * shared.h — the host's endpoint table: what every meshed process of one
 * user knows about each (service, endpoint address), in one memory-mapped
 * file beside the stats files (<stats_dir>/shared-endpoints.v1). The
 * library writes and reads it; `meshim stats` reads it. This header is the
 * layout both agree on, and the lock-free operations on it.
 *
 * Why: a sidecar is one long-lived process that learns once; meshim lives
 * in each process, so without this table every new curl, every nginx
 * worker, pays an outage's timeout again and every worker runs its own
 * health checks.
 *
 * Rules the table keeps:
 * - Lock-free. Every piece of state that must change as one is packed in
 *   one 64-bit word and changed by compare-and-swap, so a process killed
 *   at any instruction leaves nothing locked and nothing half-written that
 *   matters (a display name may be half-written: it is only printed).
 * - Nothing read from the file is trusted for an address or a size: slot
 *   indexes are masked with this build's constants, names are bounded.
 * - The circuit's state machine is breaker.c's, unchanged: a process loads
 *   the word, unpacks a struct circuit, applies its own service's policy
 *   (eject_after, eject_time: processes may differ) and swaps the packed
 *   result in. Times are CLOCK_MONOTONIC milliseconds, the same in every
 *   process of the host.
 * - One entry per (service name, endpoint address and port): processes
 *   with different configs for one service name share only the endpoints
 *   whose address is the same.
 * - Bounded: SHARED_SLOTS entries, open addressing over SHARED_PROBE
 *   slots. When those are taken, the least recently used entry idle for
 *   SHARED_IDLE_MS with no verdict in force (a closed circuit or an
 *   ejection whose time is over) and no live lease is taken over; failing
 *   that, the endpoint keeps its state in the process (the caller warns
 *   once). Entries of endpoints no longer configured so age out, ejected
 *   or not. An entry stamped under another CLOCK_MONOTONIC (a time
 *   namespace, a user-mode Linux guest sharing the folder) is reset when
 *   found and may be taken over: its times mean nothing here.
 */
#ifndef MESHIM_SHARED_H
#define MESHIM_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshim/balancer.h"
#include "meshim/breaker.h"
#include "meshim/util.h"

#define SHARED_FILE "shared-endpoints.v1"
#define SHARED_MAGIC "MESHIMSH"
#define SHARED_VERSION 1u
#define SHARED_SLOTS 4096u              /* a power of two */
#define SHARED_PROBE 64u                /* slots looked at for one key */
#define SHARED_IDLE_MS (10u * 60u * 1000u)

struct shared_entry {
    uint64_t key;           /* shared_key(); 0: free. Claimed by CAS */
    uint64_t circuit;       /* shared_circuit_pack() */
    uint64_t health;        /* shared_health_pack(): the checker's verdict */
    uint64_t checker;       /* lease: who runs the health checks (shared_lease_*) */
    uint64_t ewma;          /* connect latency EWMA: us (24 bits) | at ms (40 bits) */
    uint64_t used_ms;       /* last touched (relaxed, coarse): for ageing out */
    int32_t ejector;        /* pid that last opened the circuit (display only) */
    int32_t prober;         /* pid that took the last half-open probe (display only) */
    char service[64];       /* display only */
    char endpoint[64];      /* the endpoint's label, as in the stats files */
};

struct shared_header {
    char magic[8];          /* SHARED_MAGIC, no terminator */
    uint32_t version;       /* SHARED_VERSION */
    uint32_t header_size;   /* sizeof(struct shared_header) */
    uint32_t entry_size;    /* sizeof(struct shared_entry) */
    uint32_t slots;         /* SHARED_SLOTS */
    uint64_t created_unix_ms;
    uint64_t pad[4];
};

static inline size_t shared_file_size(void)
{
    return sizeof(struct shared_header) + SHARED_SLOTS * sizeof(struct shared_entry);
}

static inline struct shared_entry *shared_slots(struct shared_header *h)
{
    return (struct shared_entry *)(h + 1);
}

/* Fills a new file's header. */
void shared_init(struct shared_header *h, uint64_t created_unix_ms);
/* Is this a header this build wrote (version, sizes)? */
bool shared_header_ok(const struct shared_header *h);

/* The key of (service, endpoint address): never 0, the same in every
 * process and build. */
uint64_t shared_key(const char *service, const struct netaddr *addr);

/* The entry of key: found, claimed from a free slot, or taken over from an
 * idle one (see the top). NULL when the table has no room for it. */
struct shared_entry *shared_find(struct shared_header *h, uint64_t key, const char *service,
                                 const char *endpoint, uint64_t now_ms);
/* Marks the entry used now (a store at most once a second). */
void shared_touch(struct shared_entry *e, uint64_t now_ms);
/* Unused for SHARED_IDLE_MS with no verdict in force and no live checker
 * (or stamped under another clock): what shared_find may take over, and
 * what `meshim stats` leaves out unless asked for --all. */
bool shared_idle(const struct shared_entry *e, uint64_t now_ms);

/* --- the circuit word: state 2 | probing 1 | ejections 8 | failures 12 | until ms 40.
 * `until` is the state's one time: closed since, open until, or (half-open,
 * probing) the probe's lease. Counts saturate. */
uint64_t shared_circuit_pack(const struct circuit *c);
void shared_circuit_unpack(uint64_t w, struct circuit *c);

/* Loads the entry's circuit into *c. */
void shared_circuit_load(const struct shared_entry *e, struct circuit *c);

/* What a change of the circuit does: called with the circuit as it is,
 * returns the caller's answer; shared_circuit_apply retries it on a fresh
 * copy until its result is swapped in (or it changed nothing). */
typedef bool (*shared_circuit_fn)(struct circuit *c, void *arg);
bool shared_circuit_apply(struct shared_entry *e, shared_circuit_fn fn, void *arg,
                          struct circuit *after);

/* Puts the circuit back from `now_is` to `was`, only if nobody changed it
 * since (one compare-and-swap); true when it did. */
bool shared_circuit_restore(struct shared_entry *e, const struct circuit *now_is,
                            const struct circuit *was);

/* --- the health word: down 1 | streak 15 | checked ms 40. */
uint64_t shared_health_pack(const struct health *h, uint64_t checked_ms);
void shared_health_unpack(uint64_t w, struct health *h, uint64_t *checked_ms);
/* Feeds one check result (health_observe) into the entry; true when the
 * verdict flipped. */
bool shared_health_observe(struct shared_entry *e, bool ok, uint32_t healthy_threshold,
                           uint32_t unhealthy_threshold, uint64_t now_ms, bool *down);

/* --- the checker's lease: pid 24 | until ms 40. Taken when free, expired
 * or already ours, and renewed by taking it again; a holder killed -9
 * loses it when it expires. True: pid holds it until now_ms + for_ms. */
bool shared_lease_take(uint64_t *lease, int32_t pid, uint64_t now_ms, uint64_t for_ms);
/* The holder of a live lease, or 0. */
int32_t shared_lease_holder(uint64_t lease, uint64_t now_ms);
/* The last holder, live or not (for display). */
int32_t shared_lease_pid(uint64_t lease);

/* --- the latency EWMA: into and out of a balancer target. */
void shared_ewma_load(const struct shared_entry *e, struct lb_target *t);
void shared_ewma_observe(struct shared_entry *e, uint64_t latency_ns, uint64_t now_ns);

#endif
