/*
 * registry.h — the services of a loaded config, ready for the hot path.
 *
 * Built once from a mesh_config: each service gets its VIP, its endpoints
 * (with balancer state) and a lock; hash tables answer "which service is this
 * name / this destination address?" without allocating. Immutable after
 * registry_build() except for the balancer state under each service's lock
 * and the atomic per-endpoint counters.
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

struct endpoint {
    struct netaddr addr;          /* port 0: the port the application asked for */
    char label[64];               /* "10.0.0.5:8080", for logs */
};

struct service {
    const struct service_config *cfg;
    const char *name;
    struct in_addr vip;
    char vip_text[INET_ADDRSTRLEN];
    struct endpoint *endpoints;
    struct lb_target *targets;    /* parallel to endpoints */
    size_t n_endpoints;
    struct balancer balancer;
    struct circuit *circuits;     /* parallel to endpoints */
    struct health *health;        /* parallel to endpoints: active checks' up/down */
    int health_started;           /* atomic: the checks run (health.c) */
    size_t n_ejected;             /* circuits not closed */
    struct breaker_policy breaker;
    struct retry_budget budget;
    uint32_t active;              /* atomic: open connections (max_connections) */
    struct service **split_to;    /* split: the services new connections go to */
    uint32_t *split_weight;       /* parallel to split_to */
    size_t n_split;
    uint64_t split_total;         /* sum of the weights (> 0 when n_split) */
    pthread_mutex_t lock;         /* serialises picks, circuits and the budget */
};

struct registry {
    const struct mesh_config *cfg;
    struct service *services;
    size_t n_services;
    struct host_entry *by_host;         /* uthash, exact names */
    struct suffix_entry *suffixes;      /* "*.suffix" hosts, longest first */
    size_t n_suffixes;
    struct vip_entry *by_vip;           /* uthash */
    struct addr_entry *by_addr;         /* uthash, service `addresses`; NULL: none */
};

struct registry *registry_build(const struct mesh_config *cfg, uint64_t *rng);
void registry_free(struct registry *reg);

/* The service a host name belongs to (exact host or *.suffix), or NULL. */
struct service *registry_by_name(const struct registry *reg, const char *name);
/* The service whose VIP this is, or NULL. */
struct service *registry_by_vip(const struct registry *reg, struct in_addr ip);
/* Is this destination meshed? A VIP or a service address, on a port the
 * service meshes. */
struct service *registry_match(const struct registry *reg, const struct netaddr *dst);
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
