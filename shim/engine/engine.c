/*
 * engine.c — the background thread (see engine.h).
 *
 * One epoll set, an eventfd that other threads ring when they post a task,
 * and a timer list sorted by due time (it holds one entry per connect in
 * the background or health-checked endpoint: short, so a list is enough).
 * The thread is started with every signal blocked, so a program's signal
 * handlers never run on it, and marks itself internal, so the calls it
 * makes pass through the hooks.
 */
#include "engine/engine.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <utlist.h>

#include "engine/sendq.h"
#include "libc/ownfd.h"
#include "libc/real.h"
#include "meshim/util.h"
#include "observe/log.h"

static pthread_mutex_t engine_lock = PTHREAD_MUTEX_INITIALIZER;    /* start-up and the task queue */
/* Held by the engine thread whenever it is not waiting in epoll_wait, and
 * taken first by fork: a fork never lands in the middle of the thread's
 * work, so the child finds whole every object the thread touches — and the
 * allocator, which under ASan is not fork-safe by itself. */
static pthread_mutex_t work_lock = PTHREAD_MUTEX_INITIALIZER;
static sem_t started;                   /* the thread holds work_lock */
static bool running;
static int epfd = -1;
static int bell = -1;                   /* eventfd: tasks are queued */
static struct engine_task *queue_head, **queue_tail = &queue_head;
static struct engine_timer *timers;     /* engine thread only, sorted by due_ns */
static struct engine_slow *slow_head;   /* engine thread only, first in first out (utlist DL) */
/* A task the engine posts to itself (a dial handing its connection to a
 * relay) runs after the turn's events, without ringing the bell: that
 * would cost a write, a turn and a read. */
static __thread bool on_engine __attribute__((tls_model("initial-exec")));
static bool posted_here;                /* engine thread only */
static struct engine_task *signal_slot; /* atomic: engine_post_signal_safe's task */
static pid_t engine_pid;                /* the process whose thread it is (not a vfork child) */

/* ---------------------------------------------------------------- timers -- */

void engine_timer_cancel(struct engine_timer *t)
{
    if (!t->armed)
        return;
    for (struct engine_timer **p = &timers; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    t->armed = false;
}

void engine_timer_set(struct engine_timer *t, uint64_t due_ns)
{
    engine_timer_cancel(t);
    t->due_ns = due_ns;
    struct engine_timer **p = &timers;
    while (*p && (*p)->due_ns <= due_ns)
        p = &(*p)->next;
    t->next = *p;
    *p = t;
    t->armed = true;
}

/* Fires every due timer; returns the epoll timeout until the next one. */
static int run_timers(void)
{
    for (;;) {
        struct engine_timer *t = timers;
        if (!t)
            return -1;
        uint64_t now = now_ns();
        if (t->due_ns > now)
            return (int)((t->due_ns - now + 999999) / 1000000);
        timers = t->next;
        t->armed = false;
        t->fire(t);
    }
}

/* ------------------------------------------------------------------ I/O -- */

bool engine_watch(struct engine_io *io, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = io };
    io->watched = real_epoll_ctl(epfd, EPOLL_CTL_ADD, io->fd, &ev) == 0;
    io->events = events;
    return io->watched;
}

bool engine_interest(struct engine_io *io, uint32_t events)
{
    if (!events) {
        engine_unwatch(io);
        return true;
    }
    if (!io->watched)
        return engine_watch(io, events);
    if (io->events == events)
        return true;
    struct epoll_event ev = { .events = events, .data.ptr = io };
    io->events = events;
    return real_epoll_ctl(epfd, EPOLL_CTL_MOD, io->fd, &ev) == 0;
}

void engine_unwatch(struct engine_io *io)
{
    if (io->watched)
        real_epoll_ctl(epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->watched = false;
}

static void **retired;
static size_t n_retired, cap_retired;

void engine_retire(void *p)
{
    if (n_retired == cap_retired) {
        size_t cap = cap_retired ? cap_retired * 2 : 16;
        void **grown = realloc(retired, cap * sizeof(*grown));
        if (!grown) {
            free(p);    /* no room to wait: it is not in this batch (see engine_main) */
            return;
        }
        retired = grown;
        cap_retired = cap;
    }
    retired[n_retired++] = p;
}

static void free_retired(void)
{
    for (size_t i = 0; i < n_retired; i++)
        free(retired[i]);
    n_retired = 0;
}

/* ---------------------------------------------------------------- tasks -- */

static void run_queue(void)
{
    posted_here = false;
    pthread_mutex_lock(&engine_lock);
    struct engine_task *t = queue_head;
    queue_head = NULL;
    queue_tail = &queue_head;
    pthread_mutex_unlock(&engine_lock);
    while (t) {
        struct engine_task *next = t->next;
        t->run(t);
        t = next;
    }
}

static void run_tasks(void)
{
    uint64_t n;
    (void)!real_read(bell, &n, sizeof(n));
    struct engine_task *t = __atomic_exchange_n(&signal_slot, NULL, __ATOMIC_ACQ_REL);
    if (t)
        t->run(t);
    run_queue();
}

/* ----------------------------------------------------------------- slow -- */

/* Slow work a turn may run once its events are dispatched: 1 ms, and at
 * least one item (so it always advances). A handshake step costs ~0.3-2 ms
 * here: an open connection waits at most about this long behind a storm
 * of them, where it would wait for every handshake in a 64-event batch. */
#define SLOW_BUDGET_NS 1000000u

void engine_slow(struct engine_slow *s)
{
    if (s->queued)
        return;
    s->queued = true;
    DL_APPEND(slow_head, s);
}

void engine_slow_cancel(struct engine_slow *s)
{
    if (!s->queued)
        return;
    s->queued = false;
    DL_DELETE(slow_head, s);
}

/* Runs slow work for one budget. */
static void run_slow(void)
{
    uint64_t until = now_ns() + SLOW_BUDGET_NS;
    do {
        struct engine_slow *s = slow_head;
        if (!s)
            break;
        engine_slow_cancel(s);
        s->run(s);
    } while (now_ns() < until);
}

static struct engine_io bell_io;

/* One turn of the loop: the due timers, a wait for events (none when work
 * is pending), their callbacks, the tasks posted meanwhile, slow work, the
 * turn's queued sends (sendq.h), the frees. `held` (the engine thread's work_lock) is let go during the wait;
 * none when `done` says so after the timers (the keeper's last relay may
 * end in one). */
static void turn(pthread_mutex_t *held, bool (*done)(void))
{
    struct epoll_event evs[64];
    int timeout = run_timers();
    if (done && done())
        return;
    if (slow_head || posted_here || sendq_pending())
        timeout = 0;                /* look for events, then go on with it */
    if (held)
        pthread_mutex_unlock(held);
    int n = epoll_wait(epfd, evs, 64, timeout);
    if (held)
        pthread_mutex_lock(held);
    for (int i = 0; i < n; i++) {
        struct engine_io *io = evs[i].data.ptr;
        if (io == &bell_io)
            run_tasks();
        else if (io->watched)
            io->ready(io, evs[i].events);
    }
    if (posted_here)
        run_queue();
    run_slow();
    sendq_flush();
    free_retired();
}

static void *engine_main(void *arg)
{
    (void)arg;
    hooks_internal_thread("meshim-engine");
    on_engine = true;
    pthread_mutex_lock(&work_lock);
    sem_post(&started);
    for (;;)
        turn(&work_lock, NULL);
    return NULL;
}

/* The epoll set and the bell. Not through the hook: not an application
 * set. Both at high numbers, out of reach of a program that closes every
 * descriptor (ownfd.h). */
static void close_loop(void)
{
    if (epfd >= 0)
        own_close(epfd);
    if (bell >= 0)
        own_close(bell);
    epfd = bell = -1;
}

static bool open_loop(void)
{
    epfd = ownfd_move(real_epoll_create1(EPOLL_CLOEXEC));
    bell = ownfd_move(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    bell_io.fd = bell;
    if (epfd >= 0 && bell >= 0 && engine_watch(&bell_io, EPOLLIN))
        return true;
    close_loop();
    return false;
}

/* Called with engine_lock held. */
static bool start(void)
{
    if (!open_loop())
        goto fail;
    sem_init(&started, 0, 0);
    int rc = engine_spawn(engine_main, 256 * 1024);
    if (rc != 0) {
        close_loop();
        errno = rc;
        goto fail;
    }
    /* Its start-up (the runtime's allocations for a new thread) is over
     * before a fork can happen. */
    while (sem_wait(&started) < 0)
        ;
    engine_pid = getpid();
    __atomic_store_n(&running, true, __ATOMIC_RELEASE);
    return true;
fail:
    log_error("cannot start the background thread: %s", strerror(errno));
    return false;
}

void engine_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

struct timespec engine_timespec(uint64_t due_ns)
{
    return (struct timespec){ (time_t)(due_ns / 1000000000u), (long)(due_ns % 1000000000u) };
}

int engine_spawn(void *(*fn)(void *), size_t stack)
{
    /* The thread inherits this mask: no signal is ever delivered to it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (stack)
        pthread_attr_setstacksize(&attr, stack);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, fn, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

bool engine_post(struct engine_task *t)
{
    int saved = errno;
    pthread_mutex_lock(&engine_lock);
    bool ok = running || start();
    if (ok) {
        t->next = NULL;
        *queue_tail = t;
        queue_tail = &t->next;
    }
    pthread_mutex_unlock(&engine_lock);
    if (ok && on_engine) {
        posted_here = true;
    } else if (ok) {
        uint64_t one = 1;
        (void)!real_write(bell, &one, sizeof(one));
    }
    errno = saved;
    return ok;
}

bool engine_here(void)
{
    /* A vfork child shares the parent's memory, and so its engine's state,
     * but the engine is not its own. */
    return __atomic_load_n(&running, __ATOMIC_ACQUIRE) && getpid() == engine_pid;
}

bool engine_post_signal_safe(struct engine_task *t)
{
    if (!engine_here())
        return false;
    struct engine_task *none = NULL;
    if (!__atomic_compare_exchange_n(&signal_slot, &none, t, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return false;
    int saved = errno;
    uint64_t one = 1;
    (void)!real_write(bell, &one, sizeof(one));
    errno = saved;
    return true;
}

/* ----------------------------------------------------------------- fork -- */

/* A fork made by the engine thread itself (relay_keep's) happens between
 * two pieces of its work by construction: it holds work_lock already. */
void engine_atfork_pause(void)
{
    if (!on_engine)
        pthread_mutex_lock(&work_lock);
}

void engine_atfork_prepare(void)
{
    pthread_mutex_lock(&engine_lock);
}

void engine_atfork_parent(void)
{
    pthread_mutex_unlock(&engine_lock);
    if (!on_engine)
        pthread_mutex_unlock(&work_lock);
}

/* The engine thread does not exist in the child. Its queued tasks, timers
 * and watches belonged to the parent's connections: forgotten (their
 * memory is left, no lock is safe to take here; the queue is whole, the
 * parent's engine_lock was held for the fork). A queued task's forget
 * closes the child's copies of its descriptors. */
void engine_atfork_child(void)
{
    for (struct engine_task *t = queue_head; t; t = t->next)
        if (t->forget)
            t->forget(t);
    pthread_mutex_init(&engine_lock, NULL);
    pthread_mutex_init(&work_lock, NULL);
    if (running) {
        own_close(epfd);
        own_close(bell);
    }
    running = false;
    epfd = bell = -1;
    queue_head = NULL;
    queue_tail = &queue_head;
    signal_slot = NULL;
    timers = NULL;
    slow_head = NULL;
    sendq_atfork_child();
}

/* ---------------------------------------------------------------- keeper -- */

/* In the keeper, after engine_atfork_child: a loop of its own, run by the
 * calling thread (the keeper's only one). */
bool engine_keeper_begin(void)
{
    if (!open_loop())
        return false;
    on_engine = true;
    engine_pid = getpid();
    __atomic_store_n(&running, true, __ATOMIC_RELEASE);
    return true;
}

void engine_keeper_run(bool (*done)(void))
{
    while (!done())
        turn(NULL, done);
}
