/*
 * udp.h — datagram sockets that send to, or connect to, a service VIP.
 *
 * SPEC §3.1 meshes TCP only, and UDP passes through. A VIP, though, has no
 * host behind it: it is the shim's own answer for a service name, so a
 * datagram sent to it as it is goes nowhere, without an error (a program
 * that logs to `syslog:514` or counts to `statsd:8125` by a service's name
 * would lose every datagram). Such a socket is given one of the service's
 * endpoints, the usable ones first and each socket starting at the next
 * one, and keeps it: a conversation (a query and its answer, a QUIC
 * connection) stays with one endpoint. What comes back from that endpoint
 * reads as from the VIP, so a client that checks where its answer came
 * from (DNS resolvers do) takes it. Nothing else of the mesh applies to
 * UDP: no retries, circuits, TLS or counters. A `tls = mtls` service
 * refuses datagrams (EPERM, one warning): it is never sent plaintext.
 */
#ifndef MESHIM_UDP_H
#define MESHIM_UDP_H

#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>

#include "meshim/registry.h"

/* connect() of a socket that is not TCP to a meshed destination: a
 * datagram socket to a VIP connects to its endpoint; anything else goes
 * through untouched. Returns connect's result, errno set on failure. */
int udp_connect(const struct registry *reg, int fd, const struct sockaddr *addr, socklen_t len);

/* sendto()/sendmsg() to addr: the destination to use instead, in *out,
 * and its length; 0 when addr is not a VIP or fd not a datagram socket
 * (send to addr as it is); -1 with errno when the datagram must not go. */
socklen_t udp_destination(const struct registry *reg, int fd, const struct sockaddr *addr,
                          socklen_t len, struct sockaddr_storage *out);

/* After a receive or getpeername on fd (its kind is FD_UDP_VIP) that
 * filled addr and len: an endpoint this socket was given reads as its VIP.
 * room: the caller's room at addr, as it said before the call; as the
 * kernel does, no more than that is written, and *len is the full length. */
void udp_source(int fd, struct sockaddr *addr, socklen_t *len, socklen_t room);

/* sendmmsg(): each datagram to a VIP goes to the socket's endpoint (their
 * addresses are lent to the caller's headers for the call: a copy of the
 * batch would have to hand back each msg_len; the caller's own are put
 * back after it). A datagram refused stops the batch before it, as the
 * kernel stops at a failing one; refused first: -1 and errno. */
int udp_sendmmsg(const struct registry *reg, int fd, struct mmsghdr *vec, unsigned int n, int flags);
/* recvmmsg() on a FD_UDP_VIP socket: each datagram's source as udp_source
 * gives it (each header's room kept before the call). */
int udp_recvmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags, struct timespec *timeout);

/* dup() and the like: `to` keeps `from`'s endpoints. */
void udp_share(int from, int to);

void udp_atfork_child(void);

#endif
