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
        out[i] = ascii_lower(name[i]);
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

/* ---------------------------------------------------------- endpoints -- */

void endpoint_ref(struct endpoint *ep)
{
    __atomic_add_fetch(&ep->refs, 1, __ATOMIC_RELAXED);
}

void endpoint_unref(struct endpoint *ep)
{
    if (!ep || __atomic_sub_fetch(&ep->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (struct endpoint *p = ep->ports, *next; p; p = next) {
        next = p->next_port;
        free(p);
    }
    free(ep);
}

static struct endpoint *endpoint_new(const struct endpoint_spec *spec)
{
    struct endpoint *ep = calloc(1, sizeof(*ep));
    if (!ep)
        return NULL;
    ep->refs = 1;
    ep->addr = spec->addr;
    netaddr_format(&ep->addr, ep->label, sizeof(ep->label));
    return ep;
}

struct endpoint *endpoint_at_port(struct endpoint *ep, uint16_t port)
{
    if (ep->addr.port || !port)
        return ep;
    struct endpoint *head = __atomic_load_n(&ep->ports, __ATOMIC_ACQUIRE), *made = NULL;
    for (;;) {
        size_t n = 0;
        for (struct endpoint *p = head; p; p = p->next_port, n++)
            if (p->addr.port == port) {
                free(made);     /* another thread made it first */
                return p;
            }
        if (n >= ENDPOINT_PORTS_MAX)
            break;
        if (!made) {
            struct endpoint_spec spec = { .addr = ep->addr };
            spec.addr.port = port;
            if (!(made = endpoint_new(&spec)))
                return ep;
        }
        made->next_port = head;
        /* On failure head is the list as it is now: look through it again. */
        if (__atomic_compare_exchange_n(&ep->ports, &head, made, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return made;
    }
    free(made);
    return ep;
}

static bool same_addr(const struct netaddr *a, const struct netaddr *b)
{
    if (a->family != b->family || a->port != b->port)
        return false;
    return a->family == AF_INET ? a->ip.v4.s_addr == b->ip.v4.s_addr
                                : memcmp(&a->ip.v6, &b->ip.v6, sizeof(a->ip.v6)) == 0;
}

ssize_t endpoint_set_index(const struct endpoint_set *set, const struct netaddr *a)
{
    for (size_t i = 0; set && i < set->n; i++)
        if (same_addr(&set->ep[i]->addr, a))
            return (ssize_t)i;
    return -1;
}

static struct endpoint *find_endpoint(const struct endpoint_set *set, const struct netaddr *a)
{
    ssize_t i = endpoint_set_index(set, a);
    return i < 0 ? NULL : set->ep[i];
}

void endpoint_set_unref(struct endpoint_set *set)
{
    if (!set || __atomic_sub_fetch(&set->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < set->n; i++)
        endpoint_unref(set->ep[i]);
    balancer_free(&set->balancer);
    free(set->ep);
    free(set->targets);
    free(set);
}

struct endpoint_set *service_endpoints(struct service *svc)
{
    pthread_mutex_lock(&svc->lock);
    struct endpoint_set *set = svc->eps;
    __atomic_add_fetch(&set->refs, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&svc->lock);
    return set;
}

/* The specs of every source the config has, the `endpoints` key first,
 * each address once (the first one's weight wins). */
static size_t collect(const struct service *svc, const struct service_config *c,
                      const struct endpoint_spec **out, size_t cap)
{
    const struct endpoint_list *lists[1 + N_SOURCES] = { &c->endpoints };
    const bool has[N_SOURCES] = { c->endpoints_file != NULL, c->dns != NULL, c->srv != NULL };
    for (int s = 0; s < N_SOURCES; s++)
        lists[1 + s] = has[s] ? &svc->found[s] : NULL;
    size_t n = 0;
    for (int l = 0; l < 1 + N_SOURCES; l++) {
        for (size_t i = 0; lists[l] && i < lists[l]->n && n < cap; i++) {
            bool dup = false;
            for (size_t j = 0; j < n && !dup; j++)
                dup = same_addr(&out[j]->addr, &lists[l]->v[i].addr);
            if (!dup)
                out[n++] = &lists[l]->v[i];
        }
    }
    return n;
}

static size_t count_specs(const struct service *svc, const struct service_config *c)
{
    size_t n = c->endpoints.n;
    for (int s = 0; s < N_SOURCES; s++)
        n += svc->found[s].n;
    return n;
}

/* A new set for svc under config c, reusing the endpoints the current set
 * has. Call under svc->lock (or before svc is published). */
static struct endpoint_set *make_set(struct service *svc, const struct service_config *c,
                                     uint64_t *rng)
{
    size_t cap = count_specs(svc, c);
    const struct endpoint_spec **specs = calloc(cap + 1, sizeof(*specs));
    struct endpoint_set *set = calloc(1, sizeof(*set));
    if (!specs || !set)
        goto fail;
    set->refs = 1;
    size_t n = collect(svc, c, specs, cap);
    set->ep = calloc(n + 1, sizeof(*set->ep));
    set->targets = calloc(n + 1, sizeof(*set->targets));
    if (!set->ep || !set->targets)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        struct endpoint *ep = find_endpoint(svc->eps, &specs[i]->addr);
        if (ep)
            endpoint_ref(ep);
        else if (!(ep = endpoint_new(specs[i])))
            goto fail;
        set->ep[set->n++] = ep;
        set->targets[i] = &ep->target;
    }
    /* Weights and priorities are the new ones (shared endpoints are read
     * by the old set's balancer under the same lock). */
    for (size_t i = 0; i < n; i++) {
        set->ep[i]->target.weight = specs[i]->weight ? specs[i]->weight : 1;
        set->ep[i]->target.priority = specs[i]->priority;
    }
    if (!balancer_init(&set->balancer, c->lb, set->targets, set->n, rng))
        goto fail;
    free(specs);
    return set;
fail:
    free(specs);
    if (set) {
        for (size_t i = 0; i < set->n; i++)
            endpoint_unref(set->ep[i]);
        free(set->ep);
        free(set->targets);
        free(set);
    }
    return NULL;
}

/* Publishes a new set made under c; call under svc->lock. The old set goes
 * when its last connect lets go of it. */
static bool renew_set(struct service *svc, const struct service_config *c, uint64_t *rng)
{
    struct endpoint_set *set = make_set(svc, c, rng);
    if (!set)
        return false;
    struct endpoint_set *old = svc->eps;
    svc->eps = set;
    endpoint_set_unref(old);
    return true;
}

static void free_list(struct endpoint_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

bool service_set_found(struct service *svc, enum endpoint_source src,
                       const struct endpoint_spec *v, size_t n, uint64_t *rng)
{
    struct endpoint_spec *copy = malloc((n + 1) * sizeof(*copy));
    if (!copy)
        return false;
    if (n)
        memcpy(copy, v, n * sizeof(*copy));
    pthread_mutex_lock(&svc->lock);
    struct endpoint_list old = svc->found[src];
    bool had = svc->has_found[src];
    svc->found[src] = (struct endpoint_list){ copy, n };
    svc->has_found[src] = true;
    bool ok = renew_set(svc, service_cfg(svc), rng);
    if (!ok) {
        svc->found[src] = old;
        svc->has_found[src] = had;
        old.v = copy;
    }
    pthread_mutex_unlock(&svc->lock);
    free(old.v);
    return ok;
}

bool service_waiting(struct service *svc)
{
    const struct service_config *c = service_cfg(svc);
    if (!c->dns && !c->srv)
        return false;
    pthread_mutex_lock(&svc->lock);
    bool waiting = (c->dns && !svc->has_found[SOURCE_DNS]) || (c->srv && !svc->has_found[SOURCE_SRV]);
    pthread_mutex_unlock(&svc->lock);
    return waiting;
}

uint64_t service_wait_deadline(struct service *svc, uint64_t deadline_ns)
{
    uint64_t first = 0;
    if (__atomic_compare_exchange_n(&svc->first_wait_ns, &first, deadline_ns, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return deadline_ns;
    return first < deadline_ns ? first : deadline_ns;
}

/* ----------------------------------------------------------- services -- */

static struct breaker_policy breaker_of(const struct service_config *c)
{
    return (struct breaker_policy){ c->eject_after, (uint64_t)c->eject_time_ms * 1000000u,
                                    c->max_eject_percent };
}

static struct service *service_new(const struct service_config *c, uint32_t vip, uint64_t *rng)
{
    struct service *s = calloc(1, sizeof(*s));
    char *name = strdup(c->name);
    if (!s || !name)
        goto fail;
    s->name = name;
    s->vip.s_addr = htonl(vip);
    inet_ntop(AF_INET, &s->vip, s->vip_text, sizeof(s->vip_text));
    s->cfg = c;
    s->breaker = breaker_of(c);
    budget_init(&s->budget, c->retry_budget);
    pthread_mutex_init(&s->lock, NULL);
    if (!(s->eps = make_set(s, c, rng)))
        goto fail;
    return s;
fail:
    free(name);
    free(s);
    return NULL;
}

static void service_free(struct service *s)
{
    endpoint_set_unref(s->eps);
    for (int i = 0; i < N_SOURCES; i++)
        free_list(&s->found[i]);
    pthread_mutex_destroy(&s->lock);
    free((char *)s->name);
    free(s);
}

/* A reload: the service takes config c. Sources c no longer has forget
 * what they found; the endpoints are rebuilt under the new policy. */
static bool service_update(struct service *s, const struct service_config *c, uint64_t *rng)
{
    pthread_mutex_lock(&s->lock);
    const bool has[N_SOURCES] = { c->endpoints_file != NULL, c->dns != NULL, c->srv != NULL };
    const struct service_config *old = s->cfg;
    const char *was[N_SOURCES] = { old->endpoints_file, old->dns, old->srv };
    const char *now[N_SOURCES] = { c->endpoints_file, c->dns, c->srv };
    for (int i = 0; i < N_SOURCES; i++) {
        if (!has[i] || !was[i] || strcmp(was[i], now[i]) != 0) {
            free_list(&s->found[i]);
            s->has_found[i] = false;
        }
    }
    bool ok = renew_set(s, c, rng);
    if (ok) {
        s->breaker = breaker_of(c);
        s->budget.share = c->retry_budget;
        __atomic_store_n(&s->cfg, c, __ATOMIC_RELEASE);
        __atomic_store_n(&s->removed, 0, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static bool index_service(struct registry *reg, struct service *s, const struct service_config *c)
{
    for (size_t h = 0; h < c->hosts.n; h++) {
        const char *host = c->hosts.v[h];
        if (host[0] == '*') {
            reg->suffixes[reg->n_suffixes++] = (struct suffix_entry){ host + 1, s };
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

static struct service *find_named(struct service *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i]->name, name) == 0)
            return v[i];
    return NULL;
}

/* The split table of config c, by pointer (names were checked by the
 * config). A config without split gets NULL. */
static struct split_table *make_split(const struct registry *reg, const struct service_config *c)
{
    const struct split_list *l = &c->split;
    if (!l->n)
        return NULL;
    struct split_table *t = calloc(1, sizeof(*t) + l->n * (sizeof(*t->to) + sizeof(*t->weight)));
    if (!t)
        return NULL;
    t->to = (struct service **)(t + 1);
    t->weight = (uint32_t *)(t->to + l->n);
    for (size_t i = 0; i < l->n; i++) {
        t->to[i] = find_named(reg->services, reg->n_services, l->v[i].service);
        t->weight[i] = l->v[i].weight;
        t->total += l->v[i].weight;
        if (!t->to[i]) {
            free(t);
            return NULL;
        }
    }
    t->n = l->n;
    return t;
}

/* The routes of cfg whose `from` is service c, by pointer (names were
 * checked by the config). NULL: none, or out of memory (*failed). */
static struct route_table *make_routes(const struct registry *reg, const struct service_config *c,
                                       bool *failed)
{
    const struct mesh_config *cfg = reg->cfg;
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_routes; i++)
        n += strcmp(cfg->routes[i].from, c->name) == 0;
    if (!n)
        return NULL;
    struct route_table *t = calloc(1, sizeof(*t) + n * (sizeof(*t->route) + sizeof(*t->to)));
    if (!t) {
        *failed = true;
        return NULL;
    }
    t->route = (const struct route_config **)(t + 1);
    t->to = (struct service **)(t->route + n);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct route_config *r = &cfg->routes[i];
        if (strcmp(r->from, c->name) != 0)
            continue;
        t->route[t->n] = r;
        t->to[t->n] = find_named(reg->services, reg->n_services, r->to);
        if (!t->to[t->n]) {
            free(t);
            *failed = true;
            return NULL;
        }
        t->n++;
    }
    return t;
}

struct service *registry_split(struct service *svc, uint64_t *rng)
{
    /* The config refuses cycles; the bound is a second guard. */
    const struct split_table *t;
    for (int depth = 0; depth < 8 && (t = service_split(svc)) && t->total; depth++) {
        uint64_t draw = rng_below(rng, t->total);
        size_t i = 0;
        while (i + 1 < t->n && draw >= t->weight[i])
            draw -= t->weight[i++];
        svc = t->to[i];
    }
    return svc;
}

static bool routes_to(const struct service *from, const struct service *to, int depth)
{
    if (from == to)
        return true;
    const struct split_table *t = service_split(from);
    for (size_t i = 0; t && depth < 8 && i < t->n; i++)
        if (routes_to(t->to[i], to, depth + 1))
            return true;
    return false;
}

bool registry_routes_to(const struct service *from, const struct service *to)
{
    return routes_to(from, to, 0);
}

/* VIPs for the services of cfg: a service prev knows keeps its own; new
 * names are placed around the VIPs already given out. */
static bool plan_vips(const struct mesh_config *cfg, const struct registry *prev,
                      const struct cidr *range, uint32_t *vips)
{
    size_t n = cfg->n_services, n_new = 0, n_pinned = prev ? prev->n_all : 0;
    const char **names = calloc(n + 1, sizeof(*names));
    uint32_t *pinned = calloc(n_pinned + 1, sizeof(*pinned));
    uint32_t *fresh = calloc(n + 1, sizeof(*fresh));
    bool ok = names && pinned && fresh;
    for (size_t i = 0; ok && i < n_pinned; i++)
        pinned[i] = ntohl(prev->all[i]->vip.s_addr);
    for (size_t i = 0; ok && i < n; i++)
        if (!prev || !find_named(prev->all, prev->n_all, cfg->services[i].name))
            names[n_new++] = cfg->services[i].name;
    ok = ok && vip_assign(range, names, n_new, pinned, n_pinned, fresh);
    for (size_t i = 0, j = 0; ok && i < n; i++) {
        struct service *known = prev ? find_named(prev->all, prev->n_all, cfg->services[i].name) : NULL;
        vips[i] = known ? ntohl(known->vip.s_addr) : fresh[j++];
    }
    free(names);
    free(pinned);
    free(fresh);
    return ok;
}

struct registry *registry_build(const struct mesh_config *cfg, struct registry *prev, uint64_t *rng)
{
    size_t n = cfg->n_services, n_prev = prev ? prev->n_all : 0, n_suffix = 0;
    struct registry *reg = calloc(1, sizeof(*reg));
    uint32_t *vips = calloc(n + 1, sizeof(*vips));
    bool *made = calloc(n + 1, sizeof(*made));
    if (!reg || !vips || !made)
        goto fail;
    reg->cfg = cfg;
    reg->vip_range = prev ? prev->vip_range : cfg->vip_range;
    for (size_t i = 0; i < n; i++)
        n_suffix += cfg->services[i].hosts.n;
    reg->services = calloc(n + 1, sizeof(*reg->services));
    reg->all = calloc(n_prev + n + 1, sizeof(*reg->all));
    reg->suffixes = calloc(n_suffix + 1, sizeof(*reg->suffixes));
    if (!reg->services || !reg->all || !reg->suffixes || !plan_vips(cfg, prev, &reg->vip_range, vips))
        goto fail;
    /* New services first: nothing running changes until all of them exist. */
    if (prev)
        memcpy(reg->all, prev->all, n_prev * sizeof(*reg->all));
    reg->n_all = n_prev;
    for (size_t i = 0; i < n; i++) {
        const struct service_config *c = &cfg->services[i];
        struct service *s = prev ? find_named(prev->all, n_prev, c->name) : NULL;
        if (!s) {
            if (!(s = service_new(c, vips[i], rng)))
                goto fail;
            made[i] = true;
            reg->all[reg->n_all++] = s;
        }
        reg->services[reg->n_services++] = s;
        if (!index_service(reg, s, c))
            goto fail;
    }
    struct split_table **splits = calloc(n + 1, sizeof(*splits));
    struct route_table **routes = calloc(n + 1, sizeof(*routes));
    bool failed = !splits || !routes;
    for (size_t i = 0; !failed && i < n; i++) {
        if (cfg->services[i].split.n && !(splits[i] = make_split(reg, &cfg->services[i])))
            failed = true;
        routes[i] = failed ? NULL : make_routes(reg, &cfg->services[i], &failed);
    }
    if (failed) {
        for (size_t j = 0; j < n && splits && routes; j++) {
            free(splits[j]);
            free(routes[j]);
        }
        free(splits);
        free(routes);
        goto fail;
    }
    /* Then the running services take the new config. A split table
     * replaced here is not freed: a connect may be reading it. */
    for (size_t i = 0; i < n; i++) {
        struct service *s = reg->services[i];
        if (!made[i])
            (void)service_update(s, &cfg->services[i], rng);   /* out of memory: keeps the old */
        __atomic_store_n(&s->split, splits[i], __ATOMIC_RELEASE);
        __atomic_store_n(&s->routes, routes[i], __ATOMIC_RELEASE);
    }
    free(splits);
    free(routes);
    for (size_t i = 0; i < n_prev; i++)
        if (!find_named(reg->services, reg->n_services, reg->all[i]->name))
            __atomic_store_n(&reg->all[i]->removed, 1, __ATOMIC_RELEASE);
    qsort(reg->suffixes, reg->n_suffixes, sizeof(*reg->suffixes), longest_first);
    free(vips);
    free(made);
    return reg;
fail:
    for (size_t i = 0; reg && reg->services && i < reg->n_services; i++)
        if (made[i])
            service_free(reg->services[i]);
    free(vips);
    free(made);
    registry_free(reg);
    return NULL;
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
    free(reg->services);
    free(reg->all);
    free(reg->suffixes);
    free(reg);
}

void registry_destroy(struct registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n_all; i++) {
        free((void *)reg->all[i]->split);
        free((void *)reg->all[i]->routes);
        service_free(reg->all[i]);
    }
    registry_free(reg);
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
    if (!vip_in_range(&reg->vip_range, ntohl(ip.s_addr)))
        return NULL;
    HASH_FIND(hh, reg->by_vip, &ip.s_addr, sizeof(ip.s_addr), e);
    return e ? e->svc : NULL;
}

bool service_meshes_port(const struct service *s, uint16_t port)
{
    const struct port_list *p = &service_cfg(s)->ports;
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
    return s && service_meshes_port(s, dst->port) ? s : NULL;
}

struct service *registry_vip_closed(const struct registry *reg, const struct netaddr *dst)
{
    struct service *s = dst->family == AF_INET ? registry_by_vip(reg, dst->ip.v4) : NULL;
    return s && !service_meshes_port(s, dst->port) ? s : NULL;
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
    for (size_t i = 0; i < reg->n_all; i++)
        pthread_mutex_lock(&reg->all[i]->lock);
}

void registry_unlock_all(struct registry *reg)
{
    for (size_t i = reg->n_all; i-- > 0;)
        pthread_mutex_unlock(&reg->all[i]->lock);
}

void registry_reinit_locks(struct registry *reg)
{
    for (size_t i = 0; i < reg->n_all; i++) {
        pthread_mutex_init(&reg->all[i]->lock, NULL);
        /* The checks ran on the parent's engine: the child starts its own. */
        reg->all[i]->health_started = 0;
    }
}
