/*
 * health.h — active TCP health checks (health_check = tcp), run by the
 * engine. Every health_interval each endpoint of a checked service gets a
 * TCP connect bounded by health_timeout; healthy_threshold and
 * unhealthy_threshold consecutive results mark it up or down (breaker.h's
 * health_observe), and the balancer skips a down endpoint as it skips an
 * ejected one.
 */
#ifndef MESHIM_HEALTH_H
#define MESHIM_HEALTH_H

#include "meshim/registry.h"

/* Starts the service's checks if it has them and they are not running yet
 * (the first time a program resolves or connects to it); the first round
 * goes out at once. Cheap when they run already. */
void health_start(struct service *svc);

#endif
