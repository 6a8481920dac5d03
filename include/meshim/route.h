/*
 * route.h — which service a request of a protocol = http service goes to
 * ([route:NAME] sections, config.h's struct route_config).
 *
 * A route matches a request when every condition it sets holds: the path
 * (the target up to '?', origin or absolute form) equals `path` or starts
 * with `path_prefix`; the Host header equals `authority` (case-insensitive,
 * with or without the port); each of `headers` is present ("NAME") or has
 * exactly that value ("NAME: VALUE", surrounding spaces ignored). A route
 * that sets nothing matches every request. Routes are tried in the file's
 * order and the first match wins; no match keeps the request on the
 * service it was sent to. The application's Host header is never changed.
 */
#ifndef MESHIM_ROUTE_H
#define MESHIM_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "meshim/config.h"
#include "meshim/http1.h"
#include "meshim/registry.h"

bool route_matches(const struct route_config *r, const struct h1_head *h);

/* The service a request sent to svc goes to: the first matching route's
 * target (its name in *route), else svc (*route NULL). */
struct service *route_request(struct service *svc, const struct h1_head *h, const char **route);

/* The path of a request target: "/a/b" of "/a/b?q" or of
 * "http://host/a/b?q" ("/" for "http://host"); its length in *len. */
const char *route_path(const char *target, size_t *len);

#endif
