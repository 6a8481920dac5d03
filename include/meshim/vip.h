/*
 * vip.h — the pool of virtual IPs that service names resolve to (SPEC §3.2).
 *
 * A VIP is derived from the service name alone (FNV-1a into the pool), so
 * every process that has the same services — a parent, its children, the
 * programs it execs — agrees on it without talking to anyone. Collisions are
 * settled by linear probing in name order, which is the same everywhere too.
 */
#ifndef MESHIM_VIP_H
#define MESHIM_VIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshim/config.h"

/* Fills out[i] (IPv4, host byte order) for names[i], around the n_pinned
 * VIPs already given out (a reload adds services to running ones). Returns
 * false when the pool is too small. The network and broadcast addresses of
 * the range are never handed out. */
bool vip_assign(const struct cidr *range, const char *const *names, size_t n, const uint32_t *pinned,
                size_t n_pinned, uint32_t *out);

/* Is ip (host byte order) inside the range? */
bool vip_in_range(const struct cidr *range, uint32_t ip);

#endif
