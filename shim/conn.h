/*
 * conn.h — one meshed connection, shared by every descriptor that refers to
 * it (dup, dup2, fcntl(F_DUPFD), fork). It holds the service and endpoint
 * the connection went to, so that closing the last descriptor gives the
 * endpoint's active-connection count back to the balancer.
 */
#ifndef MESHIM_CONN_H
#define MESHIM_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "meshim/registry.h"

struct conn {
    int refs;                   /* atomic: descriptors and callers holding it */
    struct service *svc;
    size_t endpoint;            /* index into svc->endpoints */
    uint64_t started_ns;
};

/* A new connection to one endpoint, counted active, with one reference. */
struct conn *conn_new(struct service *svc, size_t endpoint);
void conn_ref(struct conn *c);
/* Drops one reference; the last one ends the connection (NULL is fine). */
void conn_unref(struct conn *c);

#endif
