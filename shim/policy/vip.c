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

static bool taken(const uint32_t *offsets, size_t n, uint32_t off)
{
    for (size_t i = 0; i < n; i++)
        if (offsets[i] == off)
            return true;
    return false;
}

bool vip_assign(const struct cidr *r, const char *const *names, size_t n, const uint32_t *pinned,
                size_t n_pinned, uint32_t *out)
{
    uint32_t usable = (uint32_t)((1ull << (32 - r->prefix)) - 2);   /* skip .0 and broadcast */
    if (n + n_pinned > usable)
        return false;
    struct named *order = malloc((n ? n : 1) * sizeof(*order));
    uint32_t *offsets = malloc((n + n_pinned + 1) * sizeof(*offsets));
    if (!order || !offsets) {
        free(order);
        free(offsets);
        return false;
    }
    for (size_t i = 0; i < n_pinned; i++)
        offsets[i] = pinned[i] - range_net(r) - 1;
    for (size_t i = 0; i < n; i++)
        order[i] = (struct named){ names[i], i };
    qsort(order, n, sizeof(*order), by_name);
    for (size_t i = 0; i < n; i++) {
        uint32_t off = (uint32_t)(hash_fnv1a(order[i].name) % usable);
        while (taken(offsets, n_pinned + i, off))
            off = (off + 1) % usable;
        offsets[n_pinned + i] = off;
        out[order[i].index] = range_net(r) + 1 + off;
    }
    free(order);
    free(offsets);
    return true;
}
