/*
 * mtls.h — the steps that turn a meshed TCP connection into an mTLS one,
 * shared by blocking connects (connect.c, in the caller's thread), non-
 * blocking ones (dial.c, in the engine) and accept().
 *
 * Outbound: once TCP is connected, the handshake (a failure is a failed
 * attempt, with errno ECONNRESET, retried like a refused connect), the
 * server's identity checked against the service's `identity`, then the
 * application's descriptor number gets a socketpair end (its epoll
 * registrations follow it) and a relay takes the TLS side (relay.h).
 * Inbound: the accepted number gets a socketpair end at once; the engine
 * makes the handshake.
 */
#ifndef MESHIM_MTLS_H
#define MESHIM_MTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mesh/conn.h"
#include "meshim/stats.h"
#include "tls/tls.h"

struct pick;

/* Does this connection's service want mTLS? */
bool mtls_wanted(const struct conn *c);

/* Can this process take part in mTLS: is its own identity loaded (it is
 * loaded here on first need) and its certificate not expired? Once loaded,
 * it stays (a rotation that does not load keeps it). false with why. */
bool mtls_identity_ready(char *why, size_t len);

/* A client SSL on socket sock to ep at port, for svc (its sni), offering
 * kernel TLS when offer_ktls; the identity's reference in *id. NULL with
 * why. */
SSL *mtls_client(const struct service *svc, const struct endpoint *ep, uint16_t port, int sock,
                 bool offer_ktls, struct tls_identity **id, char *why, size_t len);

/* A connect's handshake that the server has not begun when its time is up
 * (its program has not accepted: busy, paused) and that no retry could take
 * to another endpoint is not failed: as a plain TCP connect waits in the
 * server's backlog, the connect is reported and the relay finishes the
 * handshake when the program accepts (late_accept's path, within its 10 s).
 * Failing it made a server's pause of a few seconds (a slow command, a
 * garbage collection) an ejection, and every client of the host then
 * refused for eject_time. Asked when the server has been silent until the
 * deadline of the attempt p picked (after `retry` retries): true, with an
 * info line, when the connect is to be reported. */
bool mtls_unaccepted_waits(const struct conn *c, const struct pick *p, unsigned retry);
/* The same question for any attempt (http.c's upstream connections): the
 * endpoint ep of svc on port; p NULL when no retry may follow at all; the
 * info line ends with `then`, what happens instead. */
bool mtls_unaccepted_waits_at(const struct service *svc, const struct endpoint *ep, uint16_t port,
                              const struct pick *p, unsigned retry, const char *then);

/* A server SSL on an accepted socket, agreeing to kernel TLS when
 * accept_ktls. NULL: out of memory. */
SSL *mtls_server(struct tls_identity *id, int sock, bool accept_ktls);

/* After a client handshake step that ended (h: 1 done, -1 failed): counts
 * it and, when done, checks the server's identity against svc's
 * `identity`; the server's name goes to name. 0, or ECONNRESET with why. */
int mtls_server_check(const struct service *svc, SSL *ssl, int h, char *name, size_t name_len,
                      char *why, size_t len);

/* A client SSL for the attempt c is making on socket sock (to c->ep); the
 * identity's reference in *id. NULL with why. */
SSL *mtls_begin(struct conn *c, int sock, struct tls_identity **id, char *why, size_t len);

/* After a handshake step that ended (h: 1 done, -1 failed): counts it and,
 * when done, checks the server's identity. 0, or ECONNRESET with why. */
int mtls_finish(struct conn *c, SSL *ssl, int h, char *why, size_t len);

/* The peer is authenticated (client: and tls_ktls_settle is done): kernel
 * TLS when both ends agreed and the kernel takes the keys, unless relay_why
 * already says why not. Sets c->tls (and why not, c->tls_why) and counts
 * it. 1: handed off, the SSL must not touch sock again; 0: relay it; -1:
 * the socket is unusable. */
int mtls_ktls(struct conn *c, SSL *ssl, int sock, enum stats_direction d, const char *relay_why);

/* Blocking connect, TCP connected on fd (flags: the application's) by the
 * attempt that started at started_ns: the handshake in the caller's
 * thread, bounded by timeout_ms. 0 with *ssl, *id and *net (a second
 * descriptor of the socket, which the SSL uses), or the errno of the
 * failure with why. *late: the server said nothing in time, and the
 * service has late_accept, or the time is up and no retry could go to
 * another endpoint (mtls_unaccepted_waits); the handshake is not over
 * (relay.h). */
int mtls_handshake_blocking(int fd, struct conn *c, struct pick *p, unsigned retry, uint64_t started_ns,
                            uint32_t timeout_ms, struct tls_identity **id, SSL **ssl, int *net, bool *late,
                            char *why, size_t len);

/* Blocking connect, after mtls_handshake_blocking: the relay takes over
 * (late: and finishes the handshake). 0, or -1 with errno (everything
 * closed). */
int mtls_relay_blocking(int fd, struct conn *c, struct tls_identity *id, SSL *ssl, int net, bool late);

/* accept() on an [inbound:PORT] port that takes a relay (tls = strict or
 * permissive, or protocol = http in the clear: relay.h, httptap.h)
 * returned cfd (flags: accept4's; event_loop: the listening socket is
 * non-blocking, so an mTLS connection may be handed to kernel TLS;
 * client: the address accept() gave, which getpeername may no longer).
 * Returns cfd, now the application's end of a relay; or -1 when the
 * client was refused (closed). */
int inbound_accept(int cfd, const struct inbound_config *in, int flags, bool event_loop,
                   const struct sockaddr *client, socklen_t client_len);

/* listen() on an [inbound:PORT] port with TLS: the identity is read (and
 * the TLS module loaded) now, in the caller's thread, and the watcher
 * follows its files, as a sidecar loads its certificates when it starts:
 * the first client's handshake does not wait for them, and the workers a
 * server forks after it listens start with them loaded. A failure is
 * logged now and again at each accept (inbound_accept). */
void inbound_listening(const struct inbound_config *in);

#endif
