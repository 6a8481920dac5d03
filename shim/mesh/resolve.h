/*
 * resolve.h — name and address look-ups that answer for services (resolve.c);
 * called by the hook layer (and dnscapture.c, for the name a VIP answers
 * to). `handled` says whether the shim answered (false: the caller asks the
 * real resolver).
 */
#ifndef MESHIM_RESOLVE_H
#define MESHIM_RESOLVE_H

#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "meshim/registry.h"

int meshim_getaddrinfo(struct registry *reg, const char *node, const char *service,
                       const struct addrinfo *hints, struct addrinfo **res);
/* getaddrinfo_a: the requests for service names answered at once, the
 * others passed to glibc's (resolve.c says why). */
int meshim_getaddrinfo_a(struct registry *reg, int mode, struct gaicb *list[], int n,
                         struct sigevent *sev);
int meshim_gethostbyname_r(struct registry *reg, const char *name, int af, struct hostent *ret,
                           char *buf, size_t buflen, struct hostent **result, int *h_errnop,
                           bool *handled);
int meshim_gethostbyaddr_r(struct registry *reg, const void *addr, socklen_t len, int type,
                           struct hostent *ret, char *buf, size_t buflen, struct hostent **result,
                           int *h_errnop, bool *handled);
/* The name a VIP answers to: the service's first plain host. */
const char *resolve_vip_name(const struct service *svc);

int meshim_getnameinfo(struct registry *reg, const struct sockaddr *sa, socklen_t salen, char *host,
                       socklen_t hostlen, char *serv, socklen_t servlen, int flags, bool *handled);

#endif
