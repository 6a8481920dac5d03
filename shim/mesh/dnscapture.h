/*
 * dnscapture.h — service names in a program's own DNS queries.
 *
 * getaddrinfo and the gethostby* calls answer service names (resolve.h),
 * but some programs ask the name server themselves, over UDP: nginx's
 * `resolver` (a proxy_pass with variables), HAProxy's `resolvers`, c-ares
 * (Node's dns.resolve4, gRPC's ares resolver, pgbouncer). The name server
 * knows nothing of the mesh's names and says NXDOMAIN. Their queries go
 * out as they are, so that the server's response makes the socket
 * readable when it would have (no datagram is forged or redirected); a
 * response to a query for a service name (A, AAAA or any other type) is
 * read as the shim's own answer (meshim/dnsreply.h): the service's VIP,
 * as getaddrinfo gives it, for `DNS_REPLY_TTL_S` seconds; so is one to a
 * reverse query for a VIP: the service's name, as getnameinfo gives it.
 * Every other response is read as the server sent it.
 *
 * A datagram socket is watched from its connect() or sendto() to port 53,
 * or to `[meshim] dns_server`, on (FD_DNS); every other descriptor's
 * receive costs one load of a flag until the process first talks to a name
 * server, then one more of its kind. `[meshim] dns_capture = off` leaves
 * every response as it is.
 */
#ifndef MESHIM_DNSCAPTURE_H
#define MESHIM_DNSCAPTURE_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "meshim/registry.h"

/* True once any socket of this process was seen talking to a name server. */
extern bool dnscapture_live;

/* connect(), sendto() or sendmsg() of the datagram socket fd to addr (not
 * a VIP): to a name server, and fd's responses are looked at. */
void dnscapture_note(const struct registry *reg, int fd, const struct sockaddr *addr, socklen_t len);

/* After a receive of n bytes into buf (cap bytes of room) on a FD_DNS
 * socket: the response, or the shim's answer in its place. Returns the
 * length the program is given. */
ssize_t dnscapture_received(int fd, void *buf, ssize_t n, size_t cap);

/* The same for a scattered receive (readv, recvmsg, recvmmsg). */
ssize_t dnscapture_receivedv(int fd, const struct iovec *iov, size_t iovcnt, ssize_t n);

#endif
