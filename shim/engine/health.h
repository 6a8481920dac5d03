/*
 * health.h — active health checks (health_check = tcp | http), run by the
 * engine. Every health_interval each endpoint of a checked service gets a
 * TCP connect (http: then a GET of health_path, over mTLS for a tls = mtls
 * service) bounded by health_timeout; healthy_threshold and
 * unhealthy_threshold consecutive results mark it up or down (breaker.h's
 * health_observe), and the balancer skips a down endpoint as it skips an
 * ejected one.
 */
#ifndef MESHIM_HEALTH_H
#define MESHIM_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshim/registry.h"
#include "tls/tls.h"

/* Starts the service's checks if it has them and they are not running yet
 * (the first time a program resolves or connects to it); the first round
 * goes out at once. Cheap when they run already. */
void health_start(struct service *svc);

/* How an http check of a tls = mtls service starts its TLS session: the
 * mesh's own client (mtls.c's mtls_client), and whether this process has
 * an identity to check with at all (mtls_identity_ready), given once at
 * start, because the engine may not call up into the mesh. Without them
 * such checks fail. */
typedef SSL *health_tls_client_fn(const struct service *svc, const struct endpoint *ep, uint16_t port,
                                  int sock, bool offer_ktls, struct tls_identity **id, char *why,
                                  size_t len);
typedef bool health_tls_ready_fn(char *why, size_t len);
void health_use_tls(health_tls_client_fn *client, health_tls_ready_fn *ready);

#endif
