/*
 * otlp.h — the span exporter: a queue the proxies put finished spans in,
 * and a thread of its own that sends them in batches to [tracing]
 * otlp_endpoint over OTLP/HTTP with JSON (engine/otlp.c).
 *
 * Never the application's thread, never the engine's: otlp_span_end only
 * copies the span into a bounded queue (a full queue drops it, counted in
 * meshim_trace_spans_total{result="dropped"}); the exporter thread starts
 * on the first span and does every connect, send and wait.
 */
#ifndef MESHIM_OTLP_H
#define MESHIM_OTLP_H

#include "meshim/http1.h"
#include "meshim/trace.h"

/* A request's span begins when tracing is on in the registry in force:
 * its ids from the head's traceparent, read only then, else from
 * `inherited` (NULL: none; see span_begin). False: not traced (the head is
 * not looked at). */
bool otlp_span_begin(struct span_ids *ids, const struct h1_head *h, const struct trace_context *inherited);

/* The request is over: its span queued when sampled (copied; any thread,
 * never waiting on the network), else counted as not sampled. */
void otlp_span_end(const struct span *s);

/* At exit: waits at most ms for the queued spans to be sent (one try
 * each, no backing off), so that a short-lived program's requests are not
 * lost and a collector that is down delays its exit by little. */
#define OTLP_EXIT_MS 500
void otlp_exit(unsigned ms);

/* In a fork child: the parent's queue and connection are the parent's;
 * the child starts empty, without a thread until its first span. */
void otlp_atfork_child(void);

#endif
