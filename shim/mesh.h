/*
 * mesh.h — the process-wide state of the shim and the logic layer that the
 * exported hooks call (the middle of hook → logic → real_).
 *
 * mesh_registry() is NULL while the shim is inert: before our constructor
 * ran, with no config, with MESHIM_DISABLE=1, or after an invalid config
 * with on_error = passthrough. Hooks then pass straight through.
 */
#ifndef MESHIM_MESH_H
#define MESHIM_MESH_H

#include <netdb.h>
#include <sys/socket.h>

#include "meshim/registry.h"

extern struct registry *mesh_registry_ptr;

static inline struct registry *mesh_registry(void)
{
    return __atomic_load_n(&mesh_registry_ptr, __ATOMIC_ACQUIRE);
}

/* mesh.c: the config as at start (the environment as it was then), for a
 * reload; and a reload's registry, published for every thread. */
struct mesh_config *mesh_load_config(char **errors, enum on_error *on_error);
void mesh_publish(struct registry *reg);

/* connect.c */
int meshim_connect(struct registry *reg, int fd, const struct sockaddr *addr, socklen_t len);
int meshim_accept(struct registry *reg, int fd, struct sockaddr *addr, socklen_t *len, int flags,
                  bool use_accept4);

/* dial.c: socket calls on a descriptor whose connect is in the engine */
int meshim_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
int meshim_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
int meshim_getname(int fd, struct sockaddr *addr, socklen_t *len, bool peer);

/* resolve.c */
int meshim_getaddrinfo(struct registry *reg, const char *node, const char *service,
                       const struct addrinfo *hints, struct addrinfo **res);
int meshim_gethostbyname_r(struct registry *reg, const char *name, int af, struct hostent *ret,
                           char *buf, size_t buflen, struct hostent **result, int *h_errnop,
                           bool *handled);
int meshim_gethostbyaddr_r(struct registry *reg, const void *addr, socklen_t len, int type,
                           struct hostent *ret, char *buf, size_t buflen, struct hostent **result,
                           int *h_errnop, bool *handled);
int meshim_getnameinfo(struct registry *reg, const struct sockaddr *sa, socklen_t salen, char *host,
                       socklen_t hostlen, char *serv, socklen_t servlen, int flags, bool *handled);

#endif
