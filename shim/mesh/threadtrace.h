/*
 * threadtrace.h — trace_propagation = thread: the outbound requests a
 * thread makes while it serves an inbound request join that request's
 * trace, though the application forwards no header.
 *
 * Three parts meet here:
 *   - the inbound relay marks where each request head ends in the bytes it
 *     gives the application, with the context of the request's server
 *     span (threadtrace_head);
 *   - the read hooks: the thread whose read takes the application past
 *     exactly one such mark serves that request from then on; its first
 *     write on that descriptor (the answer begins), the descriptor's close,
 *     or its read of another head end that;
 *   - the write hooks on an outbound protocol = http connection stamp the
 *     bytes written with the writer's context; the HTTP proxy takes the
 *     stamp holding a request head's first byte (threadtrace_request).
 *
 * Positions are exact, never guessed: what the application has read is
 * what the engine gave it less what still waits in its socket (FIONREAD);
 * what it has written is what the engine read plus what waits in the
 * engine's socket. The engine moves and counts inside a sequence count, so
 * a hook never reads a count between a move and its addition.
 *
 * Never a context that is not certainly the one served: a read passing two
 * heads at once (pipelined requests) gives none; a thread that reads a head
 * on one connection while it still serves a request of another (an event
 * loop serves many connections by turns) gives none, ever again; a read
 * whose position the hook cannot learn (the engine kept moving on that
 * connection while the hook waited) ends what the thread served, and counts
 * as another connection's head when it was another connection.
 */
#ifndef MESHIM_THREADTRACE_H
#define MESHIM_THREADTRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "meshim/trace.h"

struct conn;
struct threadtrace;
struct inbound_config;
struct mesh_config;

/* Some connection was traced by thread: the data hooks look (one load;
 * false in every process that never configured it). */
extern bool threadtrace_live;

/* Whether an inbound port propagates by thread (protocol = http, tracing
 * on, trace_propagation = thread), and whether outbound protocol = http
 * connections take contexts (some port does). */
bool threadtrace_inbound(const struct mesh_config *cfg, const struct inbound_config *in);
bool threadtrace_outbound(const struct mesh_config *cfg);

/* A connection's positions and marks: made for an inbound http port that
 * propagates by thread, or an outbound protocol = http connection while
 * some port does (engine_end: the engine's end of the pair, -1 inbound).
 * NULL: out of memory (the connection is then not traced by thread). */
struct threadtrace *threadtrace_new(int engine_end);
void threadtrace_free(struct threadtrace *t);

/* Engine: n bytes moved across the pair (inbound: given to the
 * application; outbound: read from it) between begin and end. */
void threadtrace_move_begin(struct threadtrace *t);
void threadtrace_move_end(struct threadtrace *t, size_t n);

/* Engine, inbound: a request head ends at byte `at` of what goes to the
 * application; ctx: its server span's context. */
void threadtrace_head(struct threadtrace *t, uint64_t at, const struct trace_context *ctx);

/* Engine: the bytes moved so far (its own count). */
uint64_t threadtrace_moved(const struct threadtrace *t);

/* Engine, outbound: the context of the thread that wrote the request whose
 * head starts at byte `at` of what the application wrote. False: none. */
bool threadtrace_request(struct threadtrace *t, uint64_t at, struct trace_context *out);

/* Hooks (the application's threads). read: n > 0 bytes were read from fd,
 * an inbound descriptor. write: fd (outbound, or inbound) is about to be
 * written len bytes. closing: fd is being closed. */
void threadtrace_read(int fd);
void threadtrace_write(int fd, bool outbound, size_t len);
void threadtrace_closing(int fd);

void threadtrace_atfork_prepare(void);
void threadtrace_atfork_parent(void);
void threadtrace_atfork_child(void);

#endif
