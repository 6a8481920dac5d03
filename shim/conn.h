/*
 * conn.h — one meshed connection, shared by every descriptor that refers to
 * it (dup, dup2, fcntl(F_DUPFD), fork). It holds the service and endpoint
 * the connection went to, so that closing the last descriptor gives the
 * endpoint's active-connection count back to the balancer.
 *
 * Its state, as the hooks see it:
 *
 *   OPEN    connected (or a blocking connect in progress): the descriptor
 *           is the real socket and nothing is in its way;
 *   DIALING a non-blocking connect goes on in the engine: the descriptor
 *           holds a placeholder, the real socket is `sock`;
 *   FAILED  every attempt failed: the placeholder reads as a refused
 *           connection, `error` is what SO_ERROR reports, `sock` is the
 *           real socket (put back if connect() is called again).
 *
 * DIALING --(connected)--> OPEN;  DIALING --(all attempts failed)--> FAILED.
 * State and sock change only under swap_lock (placeholder.h).
 */
#ifndef MESHIM_CONN_H
#define MESHIM_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "meshim/registry.h"

#define CONN_NO_ENDPOINT ((size_t)-1)

enum conn_state { CONN_OPEN, CONN_DIALING, CONN_FAILED };

struct conn {
    int refs;                   /* atomic: descriptors and callers holding it */
    struct service *svc;
    size_t endpoint;            /* index into svc->endpoints, or CONN_NO_ENDPOINT */
    uint64_t started_ns;
    int state;                  /* enum conn_state */
    int error;                  /* FAILED: the errno SO_ERROR reports (once) */
    int sock;                   /* DIALING, FAILED: the real socket; else -1 */
};

/* A new connection to one endpoint (or none yet), counted active, with one
 * reference. */
struct conn *conn_new(struct service *svc, size_t endpoint);
/* The connection now goes to another endpoint (the next attempt). */
void conn_retarget(struct conn *c, size_t endpoint);
void conn_ref(struct conn *c);
/* Drops one reference; the last one ends the connection (NULL is fine). */
void conn_unref(struct conn *c);

#endif
