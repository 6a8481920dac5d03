/*
 * metrics.h — what this process counts, into its stats file
 * (include/meshim/stats.h holds the layout; the command reads it).
 *
 * The file is made the first time something is counted (a program that
 * never makes a meshed connection leaves no file), and again in a fork
 * child, which counts into a file of its own. Every function here is a few
 * relaxed atomic adds once the file exists: no lock, no system call. With
 * stats_dir = off, or when the file cannot be made (one warning), they do
 * nothing.
 */
#ifndef MESHIM_METRICS_H
#define MESHIM_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "meshim/registry.h"
#include "meshim/stats.h"

/* Is this process counting (its file exists)? */
bool metrics_on(void);

/* The result label of an attempt that failed with errno err (0: ok). */
enum stats_result metrics_result_of(int err);

/* One attempt on endpoint ep of svc; latency_ns of a successful one (0:
 * not measured). */
void metrics_attempt(struct service *svc, struct endpoint *ep, enum stats_result r,
                     uint64_t latency_ns);
/* The endpoint was ejected (true) or its circuit closed again (false). */
void metrics_ejected(struct service *svc, struct endpoint *ep, bool ejected);
/* A pick passed the endpoint over on another process's verdict in the
 * host's table (shared.h). */
void metrics_shared_skip(struct service *svc, struct endpoint *ep);
void metrics_retry(struct service *svc);
/* An endpoint picked while the service is in panic (panic_threshold). */
void metrics_panic(struct service *svc);
/* A connect that never reached an endpoint: overflow, no_endpoint, fault. */
void metrics_unrouted(struct service *svc, enum stats_result r);
/* A connection is established, latency_ns after connect() was called. */
void metrics_connected(struct service *svc, uint64_t latency_ns);
/* An established connection is closed, having moved these many bytes. */
void metrics_closed(struct service *svc, uint64_t sent, uint64_t received);
void metrics_inbound(uint16_t port, enum stats_result r);
/* protocol = http: a request to svc is over, answered with status (0:
 * none) by ep (NULL: by the mesh), latency_ns after its head was read. */
void metrics_request(struct service *svc, struct endpoint *ep, const char *method, int status,
                     uint64_t latency_ns, uint64_t request_bytes, uint64_t response_bytes);
/* protocol = http on an [inbound:PORT] port: a request the application
 * answered (status; 0: none), counted under the service "inbound:PORT". */
void metrics_inbound_request(uint16_t port, const char *method, int status, uint64_t latency_ns,
                             uint64_t request_bytes, uint64_t response_bytes);
void metrics_handshake(enum stats_direction d, enum stats_result r);
/* An ok handshake's connection went on in kernel TLS, or through the relay. */
void metrics_tls_continued(enum stats_direction d, bool ktls);

/* [tracing]: n spans exported, dropped or not sampled. */
void metrics_spans(enum stats_span what, uint64_t n);

/* At exit: this process's file goes (see metrics.c). */
void metrics_exit(void);

/* Changes in each fork child: a connection established in another
 * generation is not this process's to count when it closes. */
unsigned metrics_generation(void);

/* fork: the child forgets its parent's file (no allocation, no lock). */
void metrics_atfork_child(void);

#endif
