/*
 * dial.h — the rest of a non-blocking connect, made by the engine.
 *
 * connect.c hands over a connect that did not settle at once, or a retry
 * that must wait for its backoff: the application's socket goes behind a
 * placeholder (placeholder.h) and connect() returns EINPROGRESS. The engine
 * then makes the attempts — each bounded by connect_timeout, retried on
 * other endpoints with backoff and the budget, every outcome fed to the
 * circuits — and either puts the connected socket back on the
 * application's number (it sees EPOLLOUT, and from then on nothing of the
 * shim is in its data path) or reports the failure through the placeholder
 * (IN|OUT|ERR|HUP, and SO_ERROR gives the errno).
 */
#ifndef MESHIM_DIAL_H
#define MESHIM_DIAL_H

#include <stdbool.h>
#include <stdint.h>

#include "mesh/attempt.h"
#include "mesh/conn.h"

/* Where the connect stands when it is handed over. */
struct dial_spec {
    bool connecting;            /* an attempt to c->endpoint is in flight since started_ns */
    bool tcp_up;                /* ... and its TCP connect is done (mTLS: the handshake is next) */
    uint64_t started_ns;
    uint64_t delay_ns;          /* else: the next attempt after this long */
    unsigned retry;             /* retries made so far */
    uint32_t timeout_ms;        /* per attempt */
    uint16_t app_port;
    int err;                    /* the last failure, and where */
    char last[LAST_MAX];
};

/* In connect(), for the socket at fd: hands the connect to the engine. c is
 * the connection at fd; the caller's reference to it, and the pick's to its
 * endpoint set, are taken over. Returns -1
 * with errno EINPROGRESS when the engine has it; otherwise (no engine, no
 * descriptors left) an attempt in flight simply goes on unobserved, and a
 * retry that could not be handed over fails with its error. */
int dial_start(int fd, struct conn *c, struct pick *p, const struct dial_spec *spec);
/* fork: the child's connects still under way in the parent's engine fail
 * (ECONNABORTED) and their descriptors say so once the parent's end. */
void dial_atfork_child(void);
/* Connects under way in the engine (handed over, not over yet). Any thread;
 * safe in a signal handler. One load: the data path's hooks look at it. */
extern unsigned dials_unsettled;
static inline unsigned dial_unsettled(void)
{
    return __atomic_load_n(&dials_unsettled, __ATOMIC_ACQUIRE);
}

/* The error of the non-blocking connect of sock that epoll reported on
 * (events), 0 when it is made: SO_ERROR, or a hang-up that left none. */
int dial_connect_error(int sock, uint32_t events);

/* connect() again on a FAILED connection: the real socket goes back on fd
 * (unconnected) and the connection is forgotten. */
void dial_revive(int fd, struct conn *c);

/* The hook layer: socket calls on a descriptor whose connect is in the engine */
int meshim_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
int meshim_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
/* Is fd's connect still in the engine (the placeholder on the number, or
 * the handshake under way)? *timeout_ms (if asked): the program's
 * SO_SNDTIMEO (sending) or SO_RCVTIMEO on the socket, -1 for none. */
bool dial_pending(int fd, bool sending, int *timeout_ms);
/* A read or write on fd: when its connect failed in the engine and the
 * application has not been told, the errno to fail it with (told now);
 * else 0. The placeholder would answer ECONNRESET, or EPIPE and SIGPIPE. */
int dial_take_failure(int fd);
/* getsockname/getpeername (peer) through the table: the real socket's, or
 * the pair end's once a relay is over (*relayed_end: its name must carry
 * the TCP address; sockname.c) */
int dial_getname(int fd, struct sockaddr *addr, socklen_t *len, bool peer, bool *relayed_end);

#endif
