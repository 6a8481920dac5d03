/*
 * engine.h — the shim's one background thread per process (DESIGN §3).
 *
 * Work that must not run in the application's threads — the attempts of a
 * non-blocking connect, their timeouts and backoff, active health checks —
 * runs here, as callbacks of one epoll loop with a timer list. The thread
 * starts lazily on the first engine_post(), blocks every signal, and passes
 * every hooked call straight through. After fork() the child has no engine;
 * it starts a new one on first use.
 *
 * Everything but engine_post() is for the engine thread only.
 */
#ifndef MESHIM_ENGINE_H
#define MESHIM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <time.h>

/* From an engine_io / engine_timer / engine_task to the struct holding it. */
#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

/* A descriptor the engine watches: ready(io, epoll events) runs on it. */
struct engine_io {
    void (*ready)(struct engine_io *io, uint32_t events);
    int fd;
    bool watched;       /* events for an unwatched io still in a batch are dropped */
    uint32_t events;    /* what it is watched for */
};

/* A callback at a time (now_ns() clock). */
struct engine_timer {
    void (*fire)(struct engine_timer *t);
    uint64_t due_ns;
    struct engine_timer *next;
    bool armed;
};

/* Work handed to the engine by another thread. `forget`, if set, runs in
 * a fork child for a task still queued: the task stays the parent's, and
 * forget lets go of the child's copies of what it holds (its descriptors;
 * no lock, no allocation). */
struct engine_task {
    void (*run)(struct engine_task *t);
    void (*forget)(struct engine_task *t);
    struct engine_task *next;
};

/* Costly work of the engine thread's own (a TLS handshake step: a
 * signature, a key exchange, a chain to verify), run after the events of
 * a turn of the loop and for at most a budget of time per turn, so that a
 * burst of it never holds back the bytes of connections already open. */
struct engine_slow {
    void (*run)(struct engine_slow *s);
    struct engine_slow *next, *prev;
    bool queued;
};

/* The shim's threads wait on now_ns()'s clock (CLOCK_MONOTONIC), never the
 * wall clock a date change moves: a condition variable timed on it, and
 * a due time on it as pthread_cond_timedwait and clock_nanosleep take it. */
void engine_cond_init(pthread_cond_t *c);
struct timespec engine_timespec(uint64_t due_ns);

/* Starts fn on a detached thread of the shim's own (stack bytes, 0: the
 * default) with every signal blocked: a program's signal handlers never
 * run on it. pthread_create's result. */
int engine_spawn(void *(*fn)(void *), size_t stack);

/* Any thread: runs t->run on the engine thread soon, starting the engine
 * if needed. False (nothing queued) when the engine cannot start. */
bool engine_post(struct engine_task *t);

/* As engine_post, but safe in a signal handler (_exit is called from
 * them): no lock, no allocation, and the engine is never started. One
 * task at a time: false when this process has no engine running (a vfork
 * child has its parent's) or an earlier such task has not run yet. */
bool engine_post_signal_safe(struct engine_task *t);
/* This process has an engine thread of its own running (not a vfork
 * child's parent's): signal-safe, as engine_post_signal_safe. */
bool engine_here(void);

/* Watches io->fd for events (level-triggered). */
bool engine_watch(struct engine_io *io, uint32_t events);
void engine_unwatch(struct engine_io *io);
/* Watches io->fd for exactly these events from now on; 0: not at all (a
 * descriptor whose peer hung up would otherwise report HUP forever). */
bool engine_interest(struct engine_io *io, uint32_t events);

/* Frees p once the current batch of events is dispatched (an event for it
 * may still be waiting in the batch). */
void engine_retire(void *p);

/* Queues s to run in its turn (nothing if it is queued already); cancel
 * takes it off the queue (nothing if it is not on it). */
void engine_slow(struct engine_slow *s);
void engine_slow_cancel(struct engine_slow *s);

void engine_timer_set(struct engine_timer *t, uint64_t due_ns);
void engine_timer_cancel(struct engine_timer *t);

/* fork(): the child forgets the parent's engine (its thread is gone).
 * pause waits until the thread is between two pieces of work (taken before
 * every other lock); prepare takes the task queue (taken last). */
void engine_atfork_pause(void);
void engine_atfork_prepare(void);
void engine_atfork_parent(void);
void engine_atfork_child(void);

/* The keeper (mesh/relay.c relay_keep): a process the engine thread forks
 * at the end of this one, that thread its only one. After
 * engine_atfork_child, engine_keeper_begin makes it a loop of its own (a
 * new epoll set, nothing of the parent's watches, timers or tasks);
 * engine_keeper_run turns it until done() says so. */
bool engine_keeper_begin(void);
void engine_keeper_run(bool (*done)(void));

#endif
