/*
 * conn.h — one meshed connection, from connect() to its last close, shared
 * by every descriptor that refers to it (dup, dup2, fcntl(F_DUPFD), fork).
 *
 * It holds the service and the endpoint the connection went to (so that
 * closing the last descriptor gives the endpoint's active count back to the
 * balancer), and what the stats and the access log say about it when it
 * ends: attempts, outcome, flags, times, bytes, the caller's stack.
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
 *   RELAYED mTLS: the descriptor is one end of a socketpair whose other end
 *           the engine relays to TLS on the real socket `sock` (relay.h);
 *           -1 once the relay has closed it.
 *
 * DIALING --(connected)--> OPEN;  DIALING --(all attempts failed)--> FAILED;
 * DIALING or a blocking connect --(mTLS handshake done)--> RELAYED;
 * an accepted connection on an mTLS port is RELAYED from the start.
 * State and sock change only under swap_lock (placeholder.h).
 *
 * Its record ends once: when every attempt failed (conn_failed), or when
 * the last reference goes (conn_unref). That writes the access-log line
 * and, for a connection that was established, its bytes to the stats.
 */
#ifndef MESHIM_CONN_H
#define MESHIM_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshim/registry.h"
#include "observe/accesslog.h"

enum conn_state { CONN_OPEN, CONN_DIALING, CONN_FAILED, CONN_RELAYED };

/* How an mTLS connection carries its bytes once the peer is authenticated. */
enum conn_tls { CONN_TLS_NONE, CONN_TLS_RELAY, CONN_TLS_KTLS };

struct conn {
    int refs;                   /* atomic: descriptors and callers holding it */
    struct service *svc;        /* NULL: accepted on an [inbound:PORT] port */
    struct endpoint *ep;        /* the last attempt's, with a reference; NULL: none yet */
    int state;                  /* enum conn_state */
    int error;                  /* FAILED: the errno SO_ERROR reports (once); atomic, set and
                                   taken only by conn_set_error and conn_take_error */
    int sock;                   /* DIALING, FAILED: the real socket; else -1 */

    /* The record. Written by whichever thread makes the attempts (one at
     * a time), read when it ends. */
    uint64_t started_ns;        /* connect() was called (monotonic) */
    uint64_t started_unix_ns;   /* the same, wall clock */
    uint64_t connected_ns;      /* 0: not connected */
    uint64_t bytes_sent, bytes_received;    /* the kernel's counts at the last close */
    unsigned attempts;
    unsigned flags;             /* enum access_flag; atomic (conn_flag, conn_flags): the
                                   engine may still add one while the exit writes the line */
    unsigned generation;        /* metrics generation it was connected in */
    int result;                 /* enum stats_result of the last outcome */
    uint16_t port;              /* the port the application asked for, or the inbound port */
    bool ended;                 /* the record was written (or, in a fork child, is the
                                   parent's to write) */
    uint8_t tls;                /* enum conn_tls */
    bool http;                  /* protocol = http: the descriptor is a pair end the engine's
                                   HTTP proxy serves (mesh/http.h); state stays OPEN */
    bool connect_owed;          /* atomic: the engine completed a non-blocking connect, and
                                   its own connect() took the 0 the kernel gives once when
                                   one completes: the application's next connect() gets it */
    bool passed;                /* DIALING: its descriptor went to another process
                                   (SCM_RIGHTS): the connect ends in a relay, never on the
                                   number, which the other holds no copy of (swap lock) */
    unsigned long pair_ino;     /* RELAYED: the inode of the application's end of the
                                   socketpair (relay.c finds that end by it) */
    int fd_hint;                /* atomic: the descriptor last put in the table for it
                                   (fdtable_find looks there first) */
    char tls_why[96];           /* CONN_TLS_RELAY: why not kernel TLS ("": not offered) */
    char peer[64];              /* inbound: the client's address */
    char peer_identity[128];    /* mTLS: the peer's SPIFFE ID or DNS name */
    char *callers;              /* JSON array, or NULL */
    struct access_failure *failures;    /* the failed attempts (heap, made at the first) */
    unsigned n_failures;
    struct threadtrace *tt;     /* trace_propagation = thread (threadtrace.h); set before the
                                   descriptor is in the table, freed with the connection */
    struct conn *live_prev, *live_next;     /* every connection not freed (live_lock; utlist's DL) */
};

/* A new connection to svc (no endpoint yet), counted active, with one
 * reference; with access_log_callers on, it holds the caller's stack. */
struct conn *conn_new(struct service *svc, uint16_t app_port);
/* A connection accepted on an [inbound:PORT] port, with one reference. */
struct conn *conn_new_inbound(uint16_t port, const char *peer);
/* The last attempt, to endpoint (text), failed: why. Kept for the access
 * log's failed_attempts (the first ACCESS_FAILURES_MAX). */
void conn_attempt_failed(struct conn *c, const char *endpoint, const char *why);
/* The next attempt goes to ep; returns its start time. */
uint64_t conn_attempt(struct conn *c, struct endpoint *ep);
/* The connection is established. */
void conn_connected(struct conn *c);
/* Every attempt failed with err (0 with none made: no endpoint): the
 * record ends now, with these flags added. */
void conn_failed(struct conn *c, int err, unsigned flags);
/* The application closes descriptor fd of c: the kernel's byte counts are
 * read while the socket still exists. */
void conn_closing(struct conn *c, int fd);
void conn_ref(struct conn *c);
/* The inode of the socket at fd (0: none), for pair_ino. */
unsigned long conn_ino(int fd);
/* c's descriptor is a socketpair end (pair_ino) whose other end the engine
 * is about to close: the application then reads ECONNRESET after what is
 * queued, not an end of file, as from a TCP socket the peer reset. */
void conn_pair_reset(struct conn *c);
/* Drops one reference; the last one ends the connection (NULL is fine). */
void conn_unref(struct conn *c);

/* A connect() refused before any attempt (overflow, fault injected): its
 * stats and its access-log line. */
void conn_refused(struct service *svc, uint16_t app_port, int result, unsigned flags);

/* At exit: every connection still open ends (its access-log line), and
 * so does every one whose last reference a thread of the shim still held
 * (a dial that had put the connection on the descriptor, the program
 * quicker than the engine to close it and exit). */
void conn_exit(void);
/* fork(): the list of live connections is whole in the child, which
 * leaves every one of them to the parent's record (no line from it). */
void conn_atfork_prepare(void);
void conn_atfork_parent(void);
void conn_atfork_child(void);

/* Failed connects whose errno the application has not been told yet
 * (SO_ERROR, connect() again, or the first read or write: the kernel tells
 * it there too). While any is, the data-path hooks ask about the
 * descriptor they are given (dial_take_failure); otherwise one load. */
extern int conn_errors_pending;
/* c's errno for SO_ERROR becomes err (0: none); keeps the count above. */
void conn_set_error(struct conn *c, int err);
/* c's errno, once (0 after that, or when there is none). */
int conn_take_error(struct conn *c);

/* Adds access-log flags to c's record, from any thread. */
static inline void conn_flag(struct conn *c, unsigned flags)
{
    __atomic_or_fetch(&c->flags, flags, __ATOMIC_RELAXED);
}

static inline unsigned conn_flags(const struct conn *c)
{
    return __atomic_load_n(&c->flags, __ATOMIC_RELAXED);
}

/* When a wait of c's connect (for a service's first DNS answer, for a
 * half-open probe's outcome) gives up: timeout_ms after connect(). */
static inline uint64_t conn_deadline_ns(const struct conn *c, uint32_t timeout_ms)
{
    return c->started_ns + (uint64_t)timeout_ms * 1000000u;
}

#endif
