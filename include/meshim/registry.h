/*
 * registry.h — the services of the running config, ready for the hot path.
 *
 * Built from a mesh_config: each service gets its VIP, its endpoint set
 * (with balancer state) and a lock; hash tables answer "which service is
 * this name / this destination address?" without allocating. The index is
 * immutable; what changes while the program runs — a reload, discovered
 * endpoints — is published by pointer into long-lived service objects
 * (struct service), so a connection never holds anything that is freed
 * under it.
 */
#ifndef MESHIM_REGISTRY_H
#define MESHIM_REGISTRY_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshim/backoff.h"
#include "meshim/balancer.h"
#include "meshim/breaker.h"
#include "meshim/config.h"

struct shared_entry;

struct host_entry;
struct suffix_entry;
struct vip_entry;
struct addr_entry;

/* One address of a service. Shared by every endpoint set that lists it
 * and by the connections made to it, so its circuit, latency and
 * connection count survive a new set (a DNS refresh, a reload). */
struct endpoint {
    int refs;                     /* atomic: sets and connections holding it */
    struct netaddr addr;          /* port 0: the port the application asked for */
    char label[64];               /* "10.0.0.5:8080", for logs and stats */
    struct lb_target target;      /* weight and priority; `active` is atomic */
    struct circuit circuit;       /* under the service's lock */
    struct health health;         /* under the service's lock: active checks' up/down */
    uint64_t answered_ns;         /* atomic: when an attempt on it last completed (its TCP
                                     connect, and the handshake under mTLS), 0: never */
    uint64_t stats_slot;          /* metrics.c: its slot in the stats file; 0: none yet */
    struct shared_entry *shared;  /* atomic: its entry in the host's table (sharedfile.c) */
    uint64_t shared_key;          /* atomic: that entry's key; 0: not computed yet */
    /* A port-less endpoint keeps a circuit per destination port (a refused
     * port must not eject the address for the application's other ports):
     * each port's is an endpoint of its own, with the port in its address
     * and label, only its circuit and host-table entry used; made on first
     * need (endpoint_at_port), freed with this one. */
    struct endpoint *ports;       /* atomic: the list's head */
    struct endpoint *next_port;   /* the next in its parent's list */
};

/* Port-specific circuits a port-less endpoint makes at most; later ports
 * share the endpoint's own circuit. */
#define ENDPOINT_PORTS_MAX 16

/* The endpoints of a service at one moment. Immutable once published but
 * for the balancer (under the service's lock); a connect holds a reference
 * to the set it picks from, so a set replaced meanwhile stays valid. */
struct endpoint_set {
    int refs;                     /* atomic */
    size_t n;
    struct endpoint **ep;
    struct lb_target **targets;   /* &ep[i]->target, for the balancer */
    struct balancer balancer;
};

/* Where a service's endpoints come from, besides its `endpoints` key. */
enum endpoint_source { SOURCE_FILE, SOURCE_DNS, SOURCE_SRV, N_SOURCES };

/* Weighted routing of a service's new connections to others (split). */
struct split_table {
    size_t n;
    uint64_t total;               /* sum of the weights (> 0 when n) */
    struct service **to;
    uint32_t *weight;
};

/* The [route:NAME] sections whose `from` is a service, in the file's
 * order, each with its `to` (route.h). */
struct route_table {
    size_t n;
    const struct route_config **route;
    struct service **to;
};

/*
 * A service lives as long as the process: a reload that drops it leaves it
 * `removed` (connections still open to it end normally, a later reload may
 * bring it back with the same VIP). What a reload changes is published by
 * pointer: its config (service_cfg) and split table by atomic stores, its
 * endpoint set under its lock.
 */
struct service {
    const char *name;
    struct in_addr vip;
    char vip_text[INET_ADDRSTRLEN];
    const struct service_config *cfg;     /* atomic: read with service_cfg() */
    const struct split_table *split;      /* atomic: read with service_split() */
    const struct route_table *routes;     /* atomic: read with service_routes(); NULL: none */
    struct endpoint_set *eps;             /* under lock: read with service_endpoints() */
    struct endpoint_list found[N_SOURCES]; /* under lock: each source's last good list (heap) */
    bool has_found[N_SOURCES];            /* under lock: the source has answered once */
    uint64_t first_wait_ns;               /* atomic: until when anything waits for the
                                           * first DNS/SRV answer (0: no one has yet) */
    int removed;                          /* atomic: not in the running config */
    int health_started;                   /* atomic: the checks run (health.c) */
    uint64_t stats_slot;                  /* metrics.c: its slot in the stats file; 0: none yet */
    struct breaker_policy breaker;        /* under lock */
    bool panic;                           /* under lock: in panic at the last pick (panic_threshold) */
    struct retry_budget budget;           /* under lock */
    uint32_t active;                      /* atomic: open connections (max_connections) */
    uint32_t requests;                    /* atomic: protocol = http: requests in flight to it
                                           * (max_requests) */
    struct netaddr affine;                /* under lock: affinity = process: this process's
                                           * endpoint (family 0: none chosen yet) */
    pthread_mutex_t lock;                 /* serialises picks, circuits, the budget and sets */
};

static inline const struct service_config *service_cfg(const struct service *svc)
{
    return __atomic_load_n(&svc->cfg, __ATOMIC_ACQUIRE);
}

static inline const struct split_table *service_split(const struct service *svc)
{
    return __atomic_load_n(&svc->split, __ATOMIC_ACQUIRE);
}

static inline const struct route_table *service_routes(const struct service *svc)
{
    return __atomic_load_n(&svc->routes, __ATOMIC_ACQUIRE);
}

/* The index of one config: which service a name or an address belongs to.
 * A reload builds a new one from the previous (registry_build) and
 * publishes it by pointer; the previous one is never freed, as a thread
 * may still be looking something up in it (see mesh.c). */
struct registry {
    const struct mesh_config *cfg;
    struct cidr vip_range;              /* the first config's: a VIP never moves */
    struct service **services;          /* the services of this config */
    size_t n_services;
    struct service **all;               /* every service this process has had */
    size_t n_all;
    struct host_entry *by_host;         /* uthash, exact names */
    struct suffix_entry *suffixes;      /* "*.suffix" hosts, longest first */
    size_t n_suffixes;
    struct vip_entry *by_vip;           /* uthash */
    struct addr_entry *by_addr;         /* uthash, service `addresses`; NULL: none */
};

/* The registry of cfg. With prev (a reload), services of the same name are
 * the same objects, updated to cfg, keeping their VIP, endpoints' state and
 * discovered endpoints; services cfg no longer has are marked removed. NULL
 * when out of memory or when the VIP pool is too small (prev untouched). */
struct registry *registry_build(const struct mesh_config *cfg, struct registry *prev, uint64_t *rng);
/* Frees the index, not the services (they may be in use; tests and a
 * failed start free everything with registry_destroy). */
void registry_free(struct registry *reg);
void registry_destroy(struct registry *reg);

/* The service's current endpoint set, with a reference for the caller. */
struct endpoint_set *service_endpoints(struct service *svc);
void endpoint_set_unref(struct endpoint_set *set);
/* The index of the endpoint with address a (and port) in set; -1: none. */
ssize_t endpoint_set_index(const struct endpoint_set *set, const struct netaddr *a);
/* The endpoint whose circuit a connect to ep on port uses: ep when it has
 * a port of its own (or port is 0, or memory or room ran out), else ep's
 * endpoint for that port, made on first need. Lock-free; never NULL. */
struct endpoint *endpoint_at_port(struct endpoint *ep, uint16_t port);
void endpoint_ref(struct endpoint *ep);
void endpoint_unref(struct endpoint *ep);
/* A source's new list (it answered): the set becomes the union of the
 * `endpoints` key and every source's last good list. Endpoints already
 * known keep their state. False when out of memory (the set stays). */
bool service_set_found(struct service *svc, enum endpoint_source src,
                       const struct endpoint_spec *v, size_t n, uint64_t *rng);
/* Does the service wait for a DNS or SRV answer that has never come? */
bool service_waiting(struct service *svc);
/* How long a caller that would wait until deadline_ns for that answer does:
 * the first caller's deadline bounds every later one's (a resolver call
 * then the connect after it wait one connect_timeout in all, not two; once
 * it has passed, connects fail at once until the answer comes). */
uint64_t service_wait_deadline(struct service *svc, uint64_t deadline_ns);

/* The service a host name belongs to (exact host or *.suffix), or NULL. */
struct service *registry_by_name(const struct registry *reg, const char *name);
/* The service whose VIP this is, or NULL. */
struct service *registry_by_vip(const struct registry *reg, struct in_addr ip);
/* Does the service mesh this destination port (`ports`, empty: all)? */
bool service_meshes_port(const struct service *s, uint16_t port);
/* Is this destination meshed? A VIP or a service address, on a port the
 * service meshes. */
struct service *registry_match(const struct registry *reg, const struct netaddr *dst);
/* A VIP on a port its service does not mesh: that service, else NULL.
 * Nothing is behind a VIP, and as a loopback address it would reach any
 * local server listening on that port on every address: such a connect or
 * datagram is refused, never passed through. */
struct service *registry_vip_closed(const struct registry *reg, const struct netaddr *dst);
/* The service a new connection to svc goes to: svc itself, or, when it
 * has a split, one of its targets drawn by weight (followed through
 * targets that split again). */
struct service *registry_split(struct service *svc, uint64_t *rng);

/* May a connection to `from` be one to `to` (the same, or a split target)? */
bool registry_routes_to(const struct service *from, const struct service *to);

/* The [inbound:PORT] section of a local port, or NULL. */
const struct inbound_config *registry_inbound(const struct registry *reg, uint16_t port);

/* Locks of every service, in a fixed order, for fork(). The child's
 * services forget that their health checks were running. */
void registry_lock_all(struct registry *reg);
void registry_unlock_all(struct registry *reg);
void registry_reinit_locks(struct registry *reg);

#endif
