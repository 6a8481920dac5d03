/*
 * registry.c — services, VIPs and the lookup tables (see registry.h).
 */
#include "meshim/registry.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "meshim/vip.h"

#define MAX_NAME 256

struct host_entry {
    char name[MAX_NAME];          /* lower case, no trailing dot */
    struct service *svc;
    UT_hash_handle hh;
};

struct suffix_entry {
    const char *suffix;           /* ".orders.svc" (from "*.orders.svc") */
    struct service *svc;
};

struct vip_entry {
    uint32_t ip;                  /* network byte order */
    struct service *svc;
    UT_hash_handle hh;
};

struct addr_key {
    uint8_t family;
    uint8_t ip[16];
    uint16_t port;                /* 0: every port */
};

struct addr_entry {
    struct addr_key key;
    struct service *svc;
    UT_hash_handle hh;
};

/* Lower-cases and drops one trailing dot; false if it does not fit. */
static bool normalise(const char *name, char out[MAX_NAME])
{
    size_t n = strlen(name);
    if (n > 1 && name[n - 1] == '.')
        n--;
    if (n == 0 || n >= MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)name[i]);
    out[n] = '\0';
    return true;
}

static void addr_key_of(const struct netaddr *a, uint16_t port, struct addr_key *k)
{
    memset(k, 0, sizeof(*k));
    k->family = (uint8_t)a->family;
    if (a->family == AF_INET)
        memcpy(k->ip, &a->ip.v4, 4);
    else
        memcpy(k->ip, &a->ip.v6, 16);
    k->port = port;
}

static int longest_first(const void *a, const void *b)
{
    size_t la = strlen(((const struct suffix_entry *)a)->suffix);
    size_t lb = strlen(((const struct suffix_entry *)b)->suffix);
    return (la < lb) - (la > lb);
}

static bool build_service(struct service *s, const struct service_config *c, uint32_t vip,
                          uint64_t *rng)
{
    s->cfg = c;
    s->name = c->name;
    s->vip.s_addr = htonl(vip);
    inet_ntop(AF_INET, &s->vip, s->vip_text, sizeof(s->vip_text));
    s->n_endpoints = c->endpoints.n;
    s->endpoints = calloc(c->endpoints.n + 1, sizeof(*s->endpoints));
    s->targets = calloc(c->endpoints.n + 1, sizeof(*s->targets));
    s->circuits = calloc(c->endpoints.n + 1, sizeof(*s->circuits));
    s->health = calloc(c->endpoints.n + 1, sizeof(*s->health));
    if (!s->endpoints || !s->targets || !s->circuits || !s->health)
        return false;
    s->breaker = (struct breaker_policy){ c->eject_after, (uint64_t)c->eject_time_ms * 1000000u,
                                          c->max_eject_percent };
    budget_init(&s->budget, c->retry_budget);
    for (size_t i = 0; i < c->endpoints.n; i++) {
        s->endpoints[i].addr = c->endpoints.v[i].addr;
        netaddr_format(&s->endpoints[i].addr, s->endpoints[i].label, sizeof(s->endpoints[i].label));
        s->targets[i].weight = c->endpoints.v[i].weight;
    }
    pthread_mutex_init(&s->lock, NULL);
    return balancer_init(&s->balancer, c->lb, s->targets, s->n_endpoints, rng);
}

static bool index_service(struct registry *reg, struct service *s, size_t *suffix_count)
{
    const struct service_config *c = s->cfg;
    for (size_t h = 0; h < c->hosts.n; h++) {
        const char *host = c->hosts.v[h];
        if (host[0] == '*') {
            reg->suffixes[(*suffix_count)++] = (struct suffix_entry){ host + 1, s };
            continue;
        }
        struct host_entry *e = calloc(1, sizeof(*e));
        if (!e || !normalise(host, e->name)) {
            free(e);
            return false;
        }
        e->svc = s;
        HASH_ADD_STR(reg->by_host, name, e);
    }
    struct vip_entry *v = calloc(1, sizeof(*v));
    if (!v)
        return false;
    v->ip = s->vip.s_addr;
    v->svc = s;
    HASH_ADD(hh, reg->by_vip, ip, sizeof(v->ip), v);
    for (size_t a = 0; a < c->addresses.n; a++) {
        struct addr_entry *e = calloc(1, sizeof(*e));
        if (!e)
            return false;
        addr_key_of(&c->addresses.v[a], c->addresses.v[a].port, &e->key);
        e->svc = s;
        HASH_ADD(hh, reg->by_addr, key, sizeof(e->key), e);
    }
    return true;
}

/* Split targets by pointer (names were checked by the config). */
static bool link_split(struct registry *reg, struct service *s)
{
    const struct split_list *l = &s->cfg->split;
    if (!l->n)
        return true;
    s->split_to = calloc(l->n, sizeof(*s->split_to));
    s->split_weight = calloc(l->n, sizeof(*s->split_weight));
    if (!s->split_to || !s->split_weight)
        return false;
    for (size_t i = 0; i < l->n; i++) {
        for (size_t j = 0; j < reg->n_services; j++)
            if (strcmp(reg->services[j].name, l->v[i].service) == 0)
                s->split_to[s->n_split] = &reg->services[j];
        if (!s->split_to[s->n_split])
            return false;
        s->split_weight[s->n_split++] = l->v[i].weight;
        s->split_total += l->v[i].weight;
    }
    return true;
}

struct service *registry_split(struct service *svc, uint64_t *rng)
{
    /* The config refuses cycles; the bound is a second guard. */
    for (int depth = 0; depth < 8 && svc->n_split && svc->split_total; depth++) {
        uint64_t draw = rng_below(rng, svc->split_total);
        size_t i = 0;
        while (i + 1 < svc->n_split && draw >= svc->split_weight[i])
            draw -= svc->split_weight[i++];
        svc = svc->split_to[i];
    }
    return svc;
}

static bool routes_to(const struct service *from, const struct service *to, int depth)
{
    if (from == to)
        return true;
    for (size_t i = 0; depth < 8 && i < from->n_split; i++)
        if (routes_to(from->split_to[i], to, depth + 1))
            return true;
    return false;
}

bool registry_routes_to(const struct service *from, const struct service *to)
{
    return routes_to(from, to, 0);
}

struct registry *registry_build(const struct mesh_config *cfg, uint64_t *rng)
{
    struct registry *reg = calloc(1, sizeof(*reg));
    if (!reg)
        return NULL;
    reg->cfg = cfg;
    size_t n = cfg->n_services, n_suffix = 0;
    reg->services = calloc(n + 1, sizeof(*reg->services));
    const char **names = calloc(n + 1, sizeof(*names));
    uint32_t *vips = calloc(n + 1, sizeof(*vips));
    for (size_t i = 0; i < n; i++) {
        names[i] = cfg->services[i].name;
        n_suffix += cfg->services[i].hosts.n;
    }
    reg->suffixes = calloc(n_suffix + 1, sizeof(*reg->suffixes));
    bool ok = reg->services && names && vips && reg->suffixes &&
              vip_assign(&cfg->vip_range, names, n, vips);
    for (size_t i = 0; ok && i < n; i++) {
        ok = build_service(&reg->services[i], &cfg->services[i], vips[i], rng);
        reg->n_services = i + 1;
        ok = ok && index_service(reg, &reg->services[i], &reg->n_suffixes);
    }
    for (size_t i = 0; ok && i < n; i++)
        ok = link_split(reg, &reg->services[i]);
    free(names);
    free(vips);
    if (!ok) {
        registry_free(reg);
        return NULL;
    }
    qsort(reg->suffixes, reg->n_suffixes, sizeof(*reg->suffixes), longest_first);
    return reg;
}

void registry_free(struct registry *reg)
{
    if (!reg)
        return;
    struct host_entry *h, *htmp;
    HASH_ITER(hh, reg->by_host, h, htmp) {
        HASH_DEL(reg->by_host, h);
        free(h);
    }
    struct vip_entry *v, *vtmp;
    HASH_ITER(hh, reg->by_vip, v, vtmp) {
        HASH_DEL(reg->by_vip, v);
        free(v);
    }
    struct addr_entry *a, *atmp;
    HASH_ITER(hh, reg->by_addr, a, atmp) {
        HASH_DEL(reg->by_addr, a);
        free(a);
    }
    for (size_t i = 0; i < reg->n_services; i++) {
        balancer_free(&reg->services[i].balancer);
        free(reg->services[i].endpoints);
        free(reg->services[i].targets);
        free(reg->services[i].circuits);
        free(reg->services[i].health);
        free(reg->services[i].split_to);
        free(reg->services[i].split_weight);
        pthread_mutex_destroy(&reg->services[i].lock);
    }
    free(reg->services);
    free(reg->suffixes);
    free(reg);
}

struct service *registry_by_name(const struct registry *reg, const char *name)
{
    char key[MAX_NAME];
    struct host_entry *e;
    if (!normalise(name, key))
        return NULL;
    HASH_FIND_STR(reg->by_host, key, e);
    if (e)
        return e->svc;
    for (size_t i = 0; i < reg->n_suffixes; i++)
        if (dns_name_has_suffix(key, reg->suffixes[i].suffix))
            return reg->suffixes[i].svc;
    return NULL;
}

struct service *registry_by_vip(const struct registry *reg, struct in_addr ip)
{
    struct vip_entry *e;
    if (!vip_in_range(&reg->cfg->vip_range, ntohl(ip.s_addr)))
        return NULL;
    HASH_FIND(hh, reg->by_vip, &ip.s_addr, sizeof(ip.s_addr), e);
    return e ? e->svc : NULL;
}

static bool port_meshed(const struct service *s, uint16_t port)
{
    const struct port_list *p = &s->cfg->ports;
    if (p->n == 0)
        return true;
    for (size_t i = 0; i < p->n; i++)
        if (port >= p->v[i].lo && port <= p->v[i].hi)
            return true;
    return false;
}

struct service *registry_match(const struct registry *reg, const struct netaddr *dst)
{
    struct service *s = NULL;
    if (dst->family == AF_INET)
        s = registry_by_vip(reg, dst->ip.v4);
    if (!s && reg->by_addr) {
        struct addr_key k;
        struct addr_entry *e;
        addr_key_of(dst, dst->port, &k);
        HASH_FIND(hh, reg->by_addr, &k, sizeof(k), e);
        if (!e) {
            k.port = 0;
            HASH_FIND(hh, reg->by_addr, &k, sizeof(k), e);
        }
        s = e ? e->svc : NULL;
    }
    return s && port_meshed(s, dst->port) ? s : NULL;
}

const struct inbound_config *registry_inbound(const struct registry *reg, uint16_t port)
{
    for (size_t i = 0; i < reg->cfg->n_inbound; i++)
        if (reg->cfg->inbound[i].port == port)
            return &reg->cfg->inbound[i];
    return NULL;
}

void registry_lock_all(struct registry *reg)
{
    for (size_t i = 0; i < reg->n_services; i++)
        pthread_mutex_lock(&reg->services[i].lock);
}

void registry_unlock_all(struct registry *reg)
{
    for (size_t i = reg->n_services; i-- > 0;)
        pthread_mutex_unlock(&reg->services[i].lock);
}

void registry_reinit_locks(struct registry *reg)
{
    for (size_t i = 0; i < reg->n_services; i++) {
        pthread_mutex_init(&reg->services[i].lock, NULL);
        /* The checks ran on the parent's engine: the child starts its own. */
        reg->services[i].health_started = 0;
    }
}
