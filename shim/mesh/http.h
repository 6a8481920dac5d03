/*
 * http.h — protocol = http: a service's connections carried request by
 * request (SPEC §5.1, config/meshim.ini "HTTP-aware services").
 *
 * connect() to such a service gives the application one end of an
 * AF_UNIX socketpair, connected at once; the engine holds the other end and
 * reads HTTP/1.x requests from it (policy/http1.c, llhttp). Each request
 * goes where its route says (policy/route.c), to an endpoint the balancer
 * picks for that request, over a pooled upstream connection. The answer
 * comes back on the pair. So the requests of one keep-alive connection
 * spread over the endpoints, a failed request can be sent again elsewhere,
 * and each request is counted, timed and logged.
 *
 * One proxied connection, on the engine thread:
 *
 *   IDLE      waiting for a request head (H1_HEAD)
 *             --head--> ATTEMPT;  --app EOF--> closed
 *             --not HTTP/1.x on the first request--> a TCP tunnel (RAW),
 *               one warning
 *   ATTEMPT   an endpoint picked, an idle pooled connection taken or a new
 *             one connecting --connected--> EXCHANGE
 *             --connect failed--> retry (BACKOFF) or 503 here
 *   EXCHANGE  the request goes up (its body as it comes), the answer is
 *             read; a head that retry_on names, before anything reached
 *             the application, --> BACKOFF (another endpoint), else it is
 *             forwarded; --answer's end--> IDLE (the upstream connection
 *             back to its pool when both sides keep it alive)
 *             --101 / 2xx to CONNECT--> RAW
 *   BACKOFF   waiting retry_backoff --> ATTEMPT
 *   RAW       bytes both ways unchanged until both sides finished
 *   CLOSING   what is left for the application is written, then closed
 *
 * Requests of one connection are answered in order, one at a time
 * (pipelined requests wait, read ahead into a bounded buffer). A request is retried only
 * while nothing of its answer was forwarded, all of it is still held
 * (retry_buffer) and its method is idempotent (or retry_non_idempotent);
 * a connect failure is retried for any method (nothing was sent).
 */
#ifndef MESHIM_HTTP_H
#define MESHIM_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mesh/conn.h"
#include "meshim/registry.h"

/* Does a connect to svc go through the HTTP proxy? */
bool http_wanted(const struct service *svc);
/* Are proxies of this process's live (handed to the engine, not ended)? */
bool http_live(void);

/* In connect(), on fd (the application's TCP socket, not connected), to
 * svc at dst: fd becomes a socketpair end the engine serves. Takes over
 * the caller's reference to c. 0 (connected), or -1 with errno. The
 * service's fault_abort and fault_delay apply to each request, not to the
 * connect. */
int http_connect(int fd, struct conn *c, struct service *svc, const struct sockaddr *dst,
                 socklen_t dstlen);

/* fork: the child forgets the parent's proxies and pools. */
void http_atfork_child(void);
/* The process ends (exit, _exit, a signal): each proxy sends upstream what
 * its application wrote, bounded (http.c). Signal-safe. */
void http_exit(void);

#endif
