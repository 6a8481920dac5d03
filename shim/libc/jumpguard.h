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
 * is not in malloc. A signal that came while the shim was working leaves
 * only what is the thread's own to put back (the depth, the cancellation
 * state, the signal mask); the rest (a connection record, a TLS object) is
 * lost, as it would be if the program's handler had freed nothing.
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
static inline void jump_park(void)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
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

/* A blocking connect holds the program's asynchronous signals from start
 * to end and lets them in only while it waits (jump_poll, jump_sleep), and
 * so does a service name's getaddrinfo answer (resolve.c): the mask they
 * wait with is here. Outside the waits the thread allocates,
 * takes the shim's locks and OpenSSL's, and a handler's jump from there
 * left one held (glibc's malloc arena, seen: the next connect hung for
 * good). NULL: the thread waits with its own mask. */
extern __thread const sigset_t *jump_wait_mask __attribute__((tls_model("initial-exec")));

/* poll, with the signals of jump_wait_mask let in for the wait only. */
int jump_poll(struct pollfd *p, nfds_t n, int timeout_ms);
/* nanosleep likewise; false with *rem left when a handler cut it short. */
bool jump_sleep(const struct timespec *ts, struct timespec *rem);

/* A section that holds a lock for long in a program's thread (a stats file
 * made and mapped, the identity read, the TLS module loaded): a handler
 * that jumps out of it would leave the lock held, and every later caller
 * waiting on it for good (seen: a connect hung in the stats file's attach
 * after wget-style jumps). Its asynchronous signals wait until the section
 * ends (the faults a thread raises itself do not). errno is kept. */
struct signals_held {
    sigset_t was;
};

/* Signals a thread raises on itself by faulting (or aborting), never from
 * outside: crash handlers (ASan's, python's faulthandler, a JVM's) are
 * installed for them, and held they would kill the process. */
static inline bool signal_is_synchronous(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP ||
           sig == SIGSYS || sig == SIGABRT;
}

/* Every signal but those. */
static inline sigset_t signals_asynchronous(void)
{
    sigset_t async;
    sigemptyset(&async);
    for (int sig = 1; sig < NSIG; sig++)
        if (!signal_is_synchronous(sig))
            sigaddset(&async, sig);
    return async;
}

static inline void signals_hold(struct signals_held *h)
{
    sigset_t async = signals_asynchronous();
    int saved = errno;
    pthread_sigmask(SIG_BLOCK, &async, &h->was);
    errno = saved;
}

static inline void signals_release(struct signals_held *h)
{
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &h->was, NULL);
    errno = saved;
}

#endif
