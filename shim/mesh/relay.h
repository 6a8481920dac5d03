/*
 * relay.h — the mTLS data path (DESIGN §4).
 *
 * The application's descriptor is one end of an AF_UNIX stream socketpair;
 * the engine holds the other end and the real TCP socket, and moves bytes
 * between them through OpenSSL. The kernel thus gives the application the
 * readiness, buffering and semantics of a stream socket for every call it
 * may use (read/recv/readv/recvmsg, write/send/writev/sendmsg, sendfile,
 * splice, poll/select/epoll in any mode, FIONREAD, MSG_PEEK, shutdown,
 * close, dup, fork), and nothing it writes can leave unencrypted.
 *
 * One relay, on the engine thread:
 *
 *   SNIFF      (inbound, permissive) first byte 0x16: HANDSHAKE, else PLAIN
 *   HANDSHAKE  (inbound) --done, client allowed--> OPEN, or handed off
 *                          to kernel TLS (below)
 *                        --failed, refused, timed out--> closed: the
 *                          application reads EOF and never a client byte
 *   OPEN       app → SSL_write → TCP and TCP → SSL_read → app, each side
 *              read only while the other has room (backpressure);
 *              app EOF → close_notify + shutdown(SHUT_WR) on TCP;
 *              close_notify or FIN from the peer → shutdown(SHUT_WR) of
 *              the application's end; both done (or either side gone) → end
 *   PLAIN      the same without TLS (permissive ports, http ports with
 *              tls = off, and kernel TLS that could not be handed to the
 *              application's descriptor)
 *
 * On an [inbound:PORT] port with protocol = http, OPEN and PLAIN show what
 * they move to the port's tap (httptap.h), which reads the requests and
 * answers as they pass; the bytes are the same either way.
 *
 * Kernel TLS, inbound (mesh/ktls.h). The application may write on its
 * descriptor as soon as accept() returns, and a byte written to the pair
 * before the hand-off could not be kept in order with one written to the
 * TCP socket after it. So where the hand-off is possible the application's
 * end starts full (placeholder_fill): not writable, write() says EAGAIN,
 * nothing to read, as a socket not yet connected. After the handshake the
 * TCP socket, keys installed, replaces the pair on the application's
 * number (with its epoll registrations), or the filler is read out and
 * the relay goes on as OPEN. Only for servers that accept on a
 * non-blocking socket (event loops): a thread blocked in read() on the
 * pair could never be moved to the socket, so a blocking accepted
 * descriptor, even one made non-blocking in time, is never handed off
 * (its bytes go through a PLAIN relay over the kernel's TLS instead).
 */
#ifndef MESHIM_RELAY_H
#define MESHIM_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/placeholder.h"
#include "mesh/conn.h"
#include "meshim/config.h"
#include "tls/tls.h"

/* Outbound, after the handshake: relays the socketpair end `app` and TLS
 * on `net`. Takes over ssl, the identity reference, both descriptors and
 * one reference to c (whose `sock` is net). False (all of it closed) when
 * the engine cannot take it.
 *
 * late: the handshake is not over. The server accepted the TCP connection
 * but has not answered the ClientHello: a server that accepts only when
 * the client asks on another connection (FTP's data connections, accepted
 * after RETR on the control connection) would wait for a connect() that
 * waits for it. The connect was reported done; the relay finishes the
 * handshake when the server accepts (within 10 s), checks the identity,
 * and only then moves the bytes the application wrote meanwhile. A failure
 * ends the connection: the application reads EOF, a warning says why. */
bool relay_outbound(struct conn *c, struct tls_identity *id, SSL *ssl, int net, int app, bool late);

/* When a server of svc that has sent nothing since the ClientHello (sent
 * now, by the attempt that started at started_ns) is taken for one that
 * accepts late (relay_outbound): 200 ms, plus twice the TCP connect's own
 * time (a round trip or more); UINT64_MAX: never (late_accept is off). */
uint64_t relay_late_at(const struct service *svc, uint64_t started_ns, uint64_t now);

/* Inbound: a client accepted on an mTLS port; `app` is the engine's end
 * of the pair whose other end the application got. Takes over everything
 * as above; the handshake and the authorisation happen in the engine. */
struct relay_handoff {
    int fd;                 /* the application's number */
    struct placeholder ph;  /* its end of the pair (peer: the engine's end) */
    size_t filler;          /* bytes placeholder_fill wrote: 0, no hand-off */
    int sndbuf;             /* its SO_SNDBUF before the fill */
};
bool relay_inbound(struct conn *c, const struct inbound_config *in, struct tls_identity *id, int net,
                   int app, const struct relay_handoff *h);

/* Inbound, a port without TLS whose protocol is http: a PLAIN relay from
 * the start, so that the requests and answers are seen (httptap.h). Takes
 * over everything as relay_inbound. */
bool relay_inbound_plain(struct conn *c, const struct inbound_config *in, int net, int app);

/* A socketpair for a relay of the TCP socket net: *app for the
 * application's number (flags as asked: SOCK_NONBLOCK, SOCK_CLOEXEC),
 * *engine at a high number; the ends carry net's addresses (sockname.h). */
bool relay_pair(int flags, int net, int *app, int *engine);

/* Inbound handshakes under way on a port: take one before a client's
 * descriptors are made (false: the port's hard cap are under way, refuse
 * it; beyond its soft cap the engine evicts the oldest silent one; relay.c
 * says how the caps follow the descriptor limit); the
 * relay gives it back when its handshake ends, relay_inbound when it
 * fails; give it back yourself if you never call relay_inbound. */
bool relay_pending_take(uint16_t port);
void relay_pending_give(uint16_t port);

/* At exit() and _exit(): what the application wrote is sent, within a
 * bounded time, and each TLS connection is closed with close_notify. Safe
 * in a signal handler (no lock, no allocation). */
void relay_exit(void);

/* The process ends (exit(), _exit(), a signal at its default action): the
 * relays flush (relay_exit), then the HTTP proxies send upstream what
 * their applications wrote (http_exit). The one call the hook layer and
 * the signal handler make; safe in a signal handler. */
void mesh_exit_flush(void);
/* Are fd's bytes carried by the engine: an mTLS or inbound relay's pair
 * end, or a protocol = http one? (stdio_exit.h: what exit() would flush
 * after the relays end is flushed before.) */
bool relay_carries(int fd);
/* fork: the child forgets the parent's relays; the parent notes that a
 * child may now hold their application ends. */
void relay_atfork_child(void);
void relay_atfork_parent(void);
/* sendmsg/sendmmsg with SCM_RIGHTS: when it passes a meshed descriptor
 * (relayed, or its connect under way in the engine), another process may
 * now hold that application end, as a fork child would. */
void relay_note_passed(const struct msghdr *msg);

/* The process ends by exit() or _exit() (not from a signal handler of the
 * shim's): when it forked, or passed a relayed descriptor, while it had
 * relays, they are handed to a keeper
 * process that carries them on for as long as a child uses them. True:
 * done (relay_exit then leaves them be). */
bool relay_keep(void);
/* The process is about to exec: the relays are handed to a keeper, which
 * carries them on for the new image (or for this one, if the exec fails);
 * this process's engine lets go of them. True: handed. */
bool relay_keep_before_exec(void);

#endif
