/*
 * relayname.h — a relayed connection's TCP addresses, carried by the
 * descriptor the application holds.
 *
 * A relayed (mTLS) connection reaches the application as one end of an
 * AF_UNIX socketpair; the real TCP socket stays with the relay. In the
 * process that made the relay, the descriptor table answers getpeername and
 * getsockname with the TCP socket's addresses. A process that inherits the
 * descriptor across execve (sshd's re-exec, inetd handlers, CGI children)
 * has no such table, so the addresses travel with the socketpair itself:
 * each end is bound to an abstract name that encodes one address,
 *
 *   the application's end   its local address  (getsockname of that end)
 *   the relay's end         the peer's address (getpeername of the
 *                                               application's end)
 *
 *   byte 0        0 (the abstract namespace)
 *   bytes 1..12   "meshim-addr1"
 *   bytes 13..20  a nonce: abstract names are unique per network
 *                 namespace, and two relays may carry the same address
 *   bytes 21..    the struct sockaddr_in or sockaddr_in6, as is
 *
 * These are plain functions over bytes; the binding and the trust check
 * (whose socket the name came from) are the caller's (mesh/sockname.c).
 */
#ifndef MESHIM_RELAYNAME_H
#define MESHIM_RELAYNAME_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Encodes an AF_INET or AF_INET6 address; returns the length to bind with,
 * 0 for any other address. */
socklen_t relayname_encode(const struct sockaddr *sa, socklen_t salen, uint64_t nonce,
                           struct sockaddr_un *out);
/* True when un (of length len, as getsockname returned it) is such a name;
 * the address it carries is copied to out and its length to *outlen. */
bool relayname_decode(const struct sockaddr_un *un, socklen_t len, struct sockaddr_storage *out,
                      socklen_t *outlen);

#endif
