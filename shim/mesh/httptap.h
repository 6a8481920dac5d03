/*
 * httptap.h — protocol = http on an [inbound:PORT] port: the requests the
 * application is sent and the answers it writes, read as they pass through
 * the port's relay (relay.c), never changed, and counted and logged one by
 * one (SPEC §5.1: "inbound http ports count what the application
 * answered").
 *
 * The relay shows the tap each chunk it moves: httptap_requests() what it
 * read from the client (on its way to the application), httptap_answers()
 * what the application wrote (on its way to the client). Two parsers
 * (policy/http1.c) find the messages; requests wait in a FIFO for their
 * answers (pipelining), each answer parsed as its request says (HEAD,
 * CONNECT). An answer's end makes the request's access-log line and
 * counts: method, path, authority, status, time from the request's head
 * to the answer's end, bytes both ways.
 *
 * The tap stops, and the bytes go on as before, when the stream is not
 * HTTP/1.x (one warning), after a 101 or a CONNECT's 2xx (raw bytes
 * follow), or when more than HTTPTAP_PIPELINE requests wait unanswered.
 * Engine thread only.
 */
#ifndef MESHIM_HTTPTAP_H
#define MESHIM_HTTPTAP_H

#include <stddef.h>
#include <stdint.h>

#include "mesh/conn.h"

#define HTTPTAP_PIPELINE 32

struct http_tap;

/* A tap for the connection c, accepted on port; NULL when out of memory
 * (the connection goes on, uncounted). Holds a reference to c. */
struct http_tap *httptap_new(struct conn *c, uint16_t port);

/* Bytes the client sent, on their way to the application. */
void httptap_requests(struct http_tap *t, const char *p, size_t n);

/* Bytes the application wrote, on their way to the client. */
void httptap_answers(struct http_tap *t, const char *p, size_t n);

/* The connection is over: an answer that ends with it (read until EOF) is
 * done; requests still waiting are logged with status 0 (no answer). */
void httptap_free(struct http_tap *t);

#endif
