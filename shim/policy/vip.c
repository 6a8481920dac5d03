/*
 * vip.c — deterministic VIP assignment (see vip.h).
 */
#include "meshim/vip.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static uint32_t range_net(const struct cidr *r)
{
    return ntohl(r->base.ip.v4.s_addr);
}

bool vip_in_range(const struct cidr *r, uint32_t ip)
{
    uint32_t mask = ~0u << (32 - r->prefix);
    return (ip & mask) == range_net(r);
}

struct named { const char *name; size_t index; };

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct named *)a)->name, ((const struct named *)b)->name);
}

/* The offsets handed out so far: an open-addressing set (a scan of them
 * made 10,000 services cost 14 ms at every process start). Slots hold
 * offset + 1; 0 is empty. */
struct offset_set {
    uint32_t *slot;
    size_t mask;
};

static bool offset_set_init(struct offset_set *t, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    t->slot = calloc(cap, sizeof(*t->slot));
    t->mask = cap - 1;
    return t->slot != NULL;
}

static size_t offset_slot(const struct offset_set *t, uint32_t off)
{
    size_t i = (off * 2654435761u) & t->mask;
    while (t->slot[i] && t->slot[i] != off + 1)
        i = (i + 1) & t->mask;
    return i;
}

static bool taken(const struct offset_set *t, uint32_t off)
{
    return t->slot[offset_slot(t, off)] != 0;
}

static void take(struct offset_set *t, uint32_t off)
{
    t->slot[offset_slot(t, off)] = off + 1;
}

bool vip_assign(const struct cidr *r, const char *const *names, size_t n, const uint32_t *pinned,
                size_t n_pinned, uint32_t *out)
{
    uint32_t usable = (uint32_t)((1ull << (32 - r->prefix)) - 2);   /* skip .0 and broadcast */
    if (n + n_pinned > usable)
        return false;
    struct named *order = malloc((n ? n : 1) * sizeof(*order));
    struct offset_set used;
    if (!order || !offset_set_init(&used, n + n_pinned)) {
        free(order);
        return false;
    }
    for (size_t i = 0; i < n_pinned; i++)
        take(&used, pinned[i] - range_net(r) - 1);
    for (size_t i = 0; i < n; i++)
        order[i] = (struct named){ names[i], i };
    qsort(order, n, sizeof(*order), by_name);
    for (size_t i = 0; i < n; i++) {
        uint32_t off = (uint32_t)(hash_fnv1a(order[i].name) % usable);
        while (taken(&used, off))
            off = (off + 1) % usable;
        take(&used, off);
        out[order[i].index] = range_net(r) + 1 + off;
    }
    free(order);
    free(used.slot);
    return true;
}
