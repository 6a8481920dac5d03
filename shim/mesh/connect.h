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

#endif
