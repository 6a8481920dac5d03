/*
 * attempt.h — the steps of a meshed connect that the caller's thread
 * (connect.c) and the engine (dial.c) share: which endpoint next, what an
 * attempt's outcome does to the endpoint's circuit and latency, whether and
 * when to retry.
 */
#ifndef MESHIM_ATTEMPT_H
#define MESHIM_ATTEMPT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "meshim/registry.h"

struct conn;

/* What one connect() may use: endpoints this socket's family can reach,
 * whose circuit admits a connection, not already tried by this connect. */
struct pick {
    struct service *svc;
    struct endpoint_set *eps;   /* the set picked from, with a reference (NULL before the first) */
    size_t last;                /* index in eps of the last pick */
    int family;
    uint16_t port;              /* the port the application asked for (the circuit's, for a
                                   port-less endpoint) */
    bool v6only;
    bool skip_tried;
    bool panic;                 /* the last pick found the service in panic (panic_threshold):
                                   circuits and health checks are not asked */
    uint64_t tried;             /* bit i: endpoint i failed already (first 64) */
    uint64_t shared_skips;      /* bit i: the last pick passed endpoint i over because of
                                   another process's verdict in the host's table */
    bool probe_out;             /* the last pick found nothing, and passed over an endpoint
                                   only because its half-open probe is out */
    unsigned flags;             /* access-log flags the picks earned (FLAG_SE) */
    uint64_t now;
};

/* A connect to svc from a socket of this family starts; pick_target takes
 * the service's current endpoint set, held until pick_done. */
void pick_init(struct pick *p, struct service *svc, int family);
void pick_done(struct pick *p);
/* The next endpoint: another one where one is left, else any usable one,
 * admitted through its circuit; its address for this socket in *ss. Moves
 * to the service's newest set first. NULL when none can be used. */
struct endpoint *pick_target(struct pick *p, uint16_t app_port, struct sockaddr_storage *ss,
                             socklen_t *len);
/* For a program that dials by itself (program_is_go): up to max of svc's
 * endpoint addresses (port 0: any), the usable ones first, each call
 * starting at the next one, then those ejected or failing health checks
 * (the program has no other way to reach them once the rest fail). */
size_t pick_addresses(struct service *svc, struct netaddr *out, size_t max);
/* Does svc have an IPv6 endpoint now? Only an AF_INET6 socket reaches one. */
bool pick_has_ipv6(struct service *svc);
/* Marks the last endpoint picked as tried by this connect. */
void pick_tried(struct pick *p);
/* Would a failure of the attempt under way (retry: retries made so far) be
 * retried on another endpoint? No when the retries are spent, or no
 * endpoint this connect has not tried is usable now. */
bool pick_another(const struct pick *p, unsigned retry);
/* Nothing could be picked, but a half-open probe is out on an endpoint the
 * connect may use: should it look again in PICK_WAIT_STEP_NS rather than
 * fail, with deadline_ns (its connect's bound) still ahead? The probe's
 * outcome decides for everyone: success closes the circuit, failure opens
 * it again. Refusing instead failed whole bursts on a lone endpoint (a
 * JVM's 64 threads: 76 connects refused while one probe's handshake ran). */
#define PICK_WAIT_STEP_NS 5000000u     /* also how often a wait for DNS looks (dial.c) */
bool pick_may_wait(const struct pick *p, uint64_t deadline_ns);
/* Nothing could be picked: logs why, returns ECONNREFUSED. */
int no_endpoint(const struct pick *p);

/* Feeds an attempt's outcome (0 or errno) to the endpoint's circuit for
 * app_port and, when started != 0, its connect latency to the balancer. */
void attempt_record(struct service *svc, struct endpoint *ep, uint16_t app_port, int err,
                    uint64_t started);

/* protocol = http (http.c): a connect to ep, outcome err. A failure feeds
 * the circuit as attempt_record does; a success is only counted, as the
 * request on it decides what the endpoint earned. */
void request_connect_record(struct service *svc, struct endpoint *ep, uint16_t app_port, int err,
                            uint64_t started);
/* A request's outcome on ep: failed (a 5xx, a reset, a timeout) counts
 * towards eject_after like a failed connect; else a success, and its
 * latency since `started` goes to the balancer. */
void request_record(struct service *svc, struct endpoint *ep, uint16_t app_port, bool failed,
                    uint64_t started);

socklen_t endpoint_addr(const struct endpoint *ep, int family, uint16_t app_port,
                        struct sockaddr_storage *ss);
void endpoint_text(const struct endpoint *ep, uint16_t app_port, char *buf, size_t len);

/* A failure before any byte was sent that another endpoint may not have. */
bool retryable(int err);
/* The retry budget: counts a first attempt / may this retry go ahead? */
void budget_first(struct service *svc);
bool budget_retry(struct service *svc);
/* May another attempt follow this failed one (retryable, retries and
 * budget left)? Marks the endpoint as tried. */
bool retry_next(struct pick *p, int err, unsigned retry);
/* Room for "address:port: why" of the last failure. */
#define LAST_MAX 256

/* Logs a failed attempt of c (info), keeps it for c's access-log line and
 * leaves "address:port: why" in last; why NULL: strerror(err). */
void attempt_failed_log(struct conn *c, const struct endpoint *ep, uint16_t app_port, int err,
                        const char *why, char *last, size_t len);
/* Backoff before retry number `retry` (1 = the first retry). */
uint64_t retry_delay_ns(const struct service *svc, unsigned retry);

/* True with probability `share` (0 to 1): fault_abort and
 * fault_delay_percent, drawn per connect (connect.c) or per request
 * (http.c). */
bool fault_drawn(double share);

/* Linux lets a TCP socket connect again after a failed attempt once it is
 * disconnected with AF_UNSPEC (which also aborts a SYN still in flight). */
void reset_socket(int fd);

/* The last attempt failed too: the one warning line for the application. */
void attempts_failed(const struct service *svc, unsigned attempts, const char *last, int err);

#endif
