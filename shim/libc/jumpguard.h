/*
 * jumpguard.h — the shim's frames that a signal handler's longjmp leaves.
 *
 * A program may leave a blocking call by siglongjmp from a signal handler:
 * GNU wget's --timeout (alarm() around connect, then siglongjmp), sendmail's
 * connect timeout, programs that bound gethostbyname or accept with
 * alarm(). POSIX allows it for connect() and accept(), which are
 * async-signal-safe. When the call is the shim's (a connect to a service
 * waits in poll for its attempt, in nanosleep for its backoff, for its
 * handshake), the jump leaves the shim's frames half way: unrepaired, the
 * thread stays "inside the shim" for good (hooks_depth: its later calls
 * all pass through, unmeshed), with cancellation held off, and its
 * connection counted open.
 *
 * glibc runs, while longjmp leaves frames and before it jumps, the cleanup
 * routines those frames registered with _pthread_cleanup_push (the old
 * form of pthread_cleanup_push, still the list longjmp walks), innermost
 * first. A guard is one such routine, pushed by a frame and popped
 * (without running) as it returns.
 *
 * A repair runs inside the signal handler. It may free, close or take a
 * lock only when the thread was parked in one of the shim's waits
 * (jump_parked(): jump_park/jump_unpark around each poll, nanosleep and
 * futex wait where a caller's thread waits): there it holds no lock and
 * is not in malloc. Elsewhere in a held section (below) the program's
 * handlers wait for the section's end. A handler that runs outside one,
 * or one the shim cannot hold (set by a raw system call), leaves only what
 * is the thread's own to put back (the depth, the cancellation state, the
 * signal mask); the rest (a connection record, a TLS object) is lost, as
 * it would be if the program's handler had freed nothing.
 */
#ifndef MESHIM_JUMPGUARD_H
#define MESHIM_JUMPGUARD_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>

struct jump_guard {
    struct _pthread_cleanup_buffer buf;     /* glibc's; its list of them */
};

/* repair(arg) runs if a longjmp leaves the frame before jump_guard_pop. */
void jump_guard_push(struct jump_guard *g, void (*repair)(void *), void *arg);
void jump_guard_pop(struct jump_guard *g);

extern __thread bool jump_parked_now __attribute__((tls_model("initial-exec")));

/* Around a wait of the shim's in the caller's thread: a handler that jumps
 * from there finds the shim's state whole. */
/* What the trampoline (sigdefer.c) ran in the thread's last wait: the
 * program's handlers, and whether one of them had no SA_RESTART (so the
 * call the wait is part of returns EINTR, as the kernel's would). */
enum waited_signals { WAIT_NO_HANDLER, WAIT_RESTARTING, WAIT_INTERRUPTING };
extern __thread enum waited_signals jump_wait_signals __attribute__((tls_model("initial-exec")));

static inline void jump_park(void)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    jump_wait_signals = WAIT_NO_HANDLER;
    jump_parked_now = true;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static inline void jump_unpark(void)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    jump_parked_now = false;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* In a repair: was the thread in one of those waits? The outermost frame's
 * repair (the hook's, real.h) clears it. */
static inline bool jump_parked(void)
{
    return jump_parked_now;
}

/* The sections where the shim works in a program's thread hold the
 * program's asynchronous signals: a connect and a service name's
 * getaddrinfo answer from start to end, an inbound accept's hand-off, a
 * close or dup that lets go of a connection, a socket(), accept() or
 * socketpair() whose new number lets go of one (a close no hook saw left
 * it there), a datagram routed to a VIP,
 * a traced read's look at its request, a stats file or an identity read
 * under its lock. There the thread
 * allocates, takes the shim's locks and OpenSSL's, and a handler's jump
 * from there left one held (glibc's malloc arena, seen: the next connect
 * hung for good; t_jump's storms).
 *
 * Holding costs no system call: a section is a count in the thread, and
 * the program's handlers, entered in the kernel through the shim's
 * trampoline (sigdefer.c), look at it. A signal of theirs that comes
 * inside is queued again to the thread and stays blocked there
 * (signals_deferred_set); the outermost section's end unblocks it (one
 * system call, only then), and the kernel delivers it to the program's
 * handler. Signals without a handler of the program's are not held: one
 * that ends the process still ends it. The section's waits (jump_park:
 * jump_poll, jump_sleep, watch_wait) let handlers run, the deferred ones
 * unblocked for the wait. */
extern __thread unsigned signals_depth __attribute__((tls_model("initial-exec")));
extern __thread bool signals_deferred __attribute__((tls_model("initial-exec")));
extern __thread sigset_t signals_deferred_set __attribute__((tls_model("initial-exec")));
/* sigpipe.h's holds in force: a wait keeps SIGPIPE blocked under them. */
extern __thread unsigned sigpipe_holds __attribute__((tls_model("initial-exec")));

struct signals_held {
    bool parked;                /* the thread was in a wait as the section began */
    unsigned depth;             /* before it */
};

/* Signals a thread raises on itself by faulting (or aborting), never from
 * outside: crash handlers (ASan's, python's faulthandler, a JVM's) are
 * installed for them, and need the context of the fault; they are never
 * held. */
static inline bool signal_is_synchronous(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP ||
           sig == SIGSYS || sig == SIGABRT;
}

/* The deferred signals in: unblocked. errno is kept. */
void signals_let_in(void);

static inline void signals_hold(struct signals_held *h)
{
    h->parked = jump_parked_now;
    h->depth = signals_depth;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    signals_depth = h->depth + 1;
    jump_parked_now = false;            /* a wait outside is not this section's */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* The section's end; a deferred signal is delivered here when it is the
 * outermost, and its handler may jump from here. errno is kept. */
static inline void signals_release(struct signals_held *h)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    jump_parked_now = h->parked;
    signals_depth = h->depth;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (h->depth == 0 && signals_deferred)
        signals_let_in();
}

/* A guard's repair, as a handler's jump leaves the section from one of its
 * waits: the count goes back. A signal deferred before was unblocked for
 * the wait, and the jump's mask is the handler's or siglongjmp's: nothing
 * of the shim's is left blocked. */
static inline void signals_left_to(unsigned depth)
{
    signals_depth = depth;
    if (depth == 0) {
        signals_deferred = false;
        sigemptyset(&signals_deferred_set);
    }
}

static inline void signals_left(struct signals_held *h)
{
    signals_left_to(h->depth);
}

/* For a wait inside a section: NULL when no signal was deferred (the
 * thread's mask is the program's), else in *buf the thread's mask with
 * the deferred signals unblocked (SIGPIPE not, under sigpipe.h's hold). */
const sigset_t *jump_wait_mask(sigset_t *buf);

/* poll, with the program's signals let in for the wait. */
int jump_poll(struct pollfd *p, nfds_t n, int timeout_ms);
/* nanosleep likewise; false with *rem left when a handler cut it short. */
bool jump_sleep(const struct timespec *ts, struct timespec *rem);

#endif
