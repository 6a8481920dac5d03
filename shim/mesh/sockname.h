/*
 * sockname.h — the addresses a relayed descriptor answers with, in the
 * process that made the relay and in any process that inherits it.
 *
 * A relayed connection's descriptor is one end of a socketpair. Where the
 * relay was made, the descriptor table sends getpeername and friends to the
 * real TCP socket (dial.c). Across execve that table is gone, so each end
 * of the pair is bound to an abstract name that carries one address
 * (include/meshim/relayname.h), and these calls decode it: sshd's re-exec,
 * inetd handlers and CGI children see the client's address, not AF_UNIX.
 */
#ifndef MESHIM_SOCKNAME_H
#define MESHIM_SOCKNAME_H

#include <stdbool.h>
#include <sys/socket.h>

/* Binds the application's end to net's local address and the relay's end
 * to net's peer address. Best effort: a relay works without the names. */
void sockname_carry(int app, int engine, int net);

/* The same with the addresses given (an HTTP proxy's pair has no one TCP
 * socket behind it): local for the application's end (NULL: none), peer
 * for the other. */
void sockname_carry_addrs(int app, int engine, const struct sockaddr *local, socklen_t llen,
                          const struct sockaddr *peer, socklen_t plen);

/* SO_RCVTIMEO and SO_SNDTIMEO of the application's socket `from` onto the
 * pair end `to` that takes its number: a read or write that timed out
 * before still does. */
void sockname_copy_timeouts(int from, int to);

/* getsockname (peer false) and getpeername for the hook layer; in_table:
 * the descriptor may be a connection the table knows (a connect behind a
 * placeholder or relayed in this process). */
int meshim_getname(int fd, struct sockaddr *addr, socklen_t *len, bool peer, bool in_table);

/* After getsockopt succeeded: SO_DOMAIN and SO_PROTOCOL of a descriptor
 * carrying addresses answer for the TCP socket (AF_INET/AF_INET6, TCP), as
 * they do in the relay's process. */
void sockname_fix_option(int fd, int level, int name, void *val, const socklen_t *len);

/* After setsockopt failed: true (take it as done) for a TCP or IP level
 * option on a descriptor carrying addresses. The TCP socket is the relay's,
 * in another process; a server that sets TCP_NODELAY or IP_TOS on what it
 * takes for its client's socket must not fail for it. */
bool sockname_option_ignored(int fd, int level);

#endif
