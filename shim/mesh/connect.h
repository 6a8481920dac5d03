/*
 * connect.h — what connect() and accept() do for a meshed destination or an
 * [inbound:PORT] port (connect.c); called by the hook layer only.
 */
#ifndef MESHIM_CONNECT_H
#define MESHIM_CONNECT_H

#include <stdbool.h>
#include <sys/socket.h>

#include "meshim/registry.h"

int meshim_connect(struct registry *reg, int fd, const struct sockaddr *addr, socklen_t len);
int meshim_accept(struct registry *reg, int fd, struct sockaddr *addr, socklen_t *len, int flags,
                  bool use_accept4);

/* After a listen() that succeeded on fd: an [inbound:PORT] port with TLS
 * gets its identity now (mtls.h, inbound_listening). errno is kept. */
void meshim_listening(struct registry *reg, int fd);

/* sendto()/sendmsg() with MSG_FASTOPEN and an address: TCP Fast Open's
 * implicit connect. To a meshed destination it is meshim's connect, made
 * here first (else the data would go straight to the address: unbalanced,
 * and in the clear where the service wants mTLS). Returns 1: not meshed,
 * pass the call through as it is; 0: connected (or connected before), send
 * the data without MSG_FASTOPEN and without the address; -1 with errno:
 * the connect failed, or EINPROGRESS on a non-blocking socket, as Fast Open
 * answers when the data could not go in the SYN (the application sends it
 * once the socket is writable). */
int meshim_fastopen(struct registry *reg, int fd, const struct sockaddr *addr, socklen_t len);

/* Before a read or write on fd (msg_flags: the call's MSG_ flags): a
 * blocking call on a number whose connect is still in the engine waits for
 * it to settle, as the kernel's on a socket in SYN_SENT waits for the
 * handshake (a program may make its socket blocking right after a
 * non-blocking connect, or after a blocking one a signal interrupted, and
 * write at once); then the call goes to what the number holds. Returns 0,
 * or the errno to fail with: EAGAIN when the socket's SO_SNDTIMEO
 * (sending) or SO_RCVTIMEO ran out, EINTR when a signal cut the wait. */
int meshim_data_wait(int fd, int msg_flags, bool sending);

#endif
