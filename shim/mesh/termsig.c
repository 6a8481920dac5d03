/*
 * termsig.c — the signals that end a process by default (without a core
 * dump) let the relays flush before it ends (termsig.h says why).
 *
 * Per covered signal the shim keeps, while its handler is the one in the
 * kernel (the kernel's disposition says so), the SIG_DFL disposition the
 * program set or found (`program`: flags and mask, as sigaction() reads
 * them back). The
 * program's calls and the arming are ordered by one mutex. It is taken with
 * every signal blocked in the thread: a handler of the program that calls
 * sigaction() on a thread holding it could otherwise wait for it forever.
 *
 * The handler runs on a thread of the program (the shim's threads block
 * every signal). It takes no lock: mesh_exit_flush only posts to the engine
 * through its signal-safe slot and sleeps, at most EXIT_FLUSH_NS and then
 * EXIT_END_NS. It does not skip the flush when the thread was inside a
 * hook: a server waits in accept() inside one, and the kernel gives a
 * process's signal to its main thread first. Should that thread hold a lock
 * the engine needs, the wait ends at its bound and the process ends as it
 * would have.
 */
#include "mesh/termsig.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include "libc/real.h"
#include "libc/sigdefer.h"
#include "mesh/relay.h"

/* The ones a process is ended by: SIGTERM (Kubernetes, systemd, docker
 * stop, kill), SIGINT (Ctrl-C), SIGHUP (its terminal gone), SIGPIPE (a
 * write to a closed pipe, `prog | head`), SIGALRM (alarm() as a deadline),
 * SIGUSR1/2 unhandled. Not those that dump core: the core shows the
 * program as it was. */
static const int covered[] = { SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2 };
#define N_COVERED (sizeof(covered) / sizeof(covered[0]))

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool armed;                              /* atomic */
/* Under lock, while the shim's handler is in: what the program reads back. */
static struct sigaction program[N_COVERED];
/* atomic: the program's handler there was set with SA_RESETHAND (one-shot),
 * as last seen; once it has run, the kernel holds SIG_DFL again. */
static bool oneshot[N_COVERED];

static int slot(int sig)
{
    for (size_t i = 0; i < N_COVERED; i++)
        if (covered[i] == sig)
            return (int)i;
    return -1;
}

bool termsig_covers(int sig)
{
    return slot(sig) >= 0;
}

bool termsig_armed(void)
{
    return __atomic_load_n(&armed, __ATOMIC_ACQUIRE);
}

/* sa_handler and sa_sigaction share their storage: SIG_DFL is a null
 * pointer in either, whatever SA_SIGINFO says. */
static bool is_default(const struct sigaction *sa)
{
    return sa->sa_handler == SIG_DFL;
}

static bool is_oneshot(const struct sigaction *sa)
{
    return sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN && (sa->sa_flags & SA_RESETHAND);
}

/* A second signal, on another thread, while the first flushes: it waits
 * for the first to end the process (bounded: mesh_exit_flush's own bounds are
 * well inside it), rather than end it half-way through the flush. */
#define SECOND_WAIT_MS 3000
static int ending;                              /* atomic */

/* The process is about to end by a signal: the relays flush, once. */
static void flush_before_end(void)
{
    if (!__atomic_exchange_n(&ending, 1, __ATOMIC_ACQ_REL)) {
        mesh_exit_flush();
    } else {
        struct timespec ms = { 0, 1000000 };
        for (int i = 0; i < SECOND_WAIT_MS; i++)
            nanosleep(&ms, NULL);
    }
}

static void on_signal(int sig)
{
    int saved = errno;
    flush_before_end();
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigemptyset(&dfl.sa_mask);
    real_sigaction(sig, &dfl, NULL);
    /* Blocked while this handler runs (sa_mask is full): it is delivered,
     * and ends the process by its default action, when the handler returns.
     * So the exit status says the signal, as it would have. */
    real_raise(sig);
    errno = saved;
}

/* Under lock: the shim's handler in place of SIG_DFL, which the program
 * reads back as `as_program`. False, with errno, when the kernel said no. */
static bool install(size_t i, const struct sigaction *as_program)
{
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
    sigfillset(&sa.sa_mask);
    if (real_sigaction(covered[i], &sa, NULL) < 0)
        return false;
    program[i] = *as_program;
    __atomic_store_n(&oneshot[i], false, __ATOMIC_RELEASE);
    return true;
}

void termsig_arm(void)
{
    if (termsig_armed())
        return;
    int saved_errno = errno;
    sigset_t saved;
    lock_signals_blocked(&lock, &saved);
    if (!armed) {
        for (size_t i = 0; i < N_COVERED; i++) {
            struct sigaction cur;
            if (real_sigaction(covered[i], NULL, &cur) < 0)
                continue;
            if (is_default(&cur))
                install(i, &cur);
            else
                __atomic_store_n(&oneshot[i], is_oneshot(&cur), __ATOMIC_RELEASE);
        }
        __atomic_store_n(&armed, true, __ATOMIC_RELEASE);
    }
    unlock_signals_blocked(&lock, &saved);
    errno = saved_errno;
}

int termsig_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    int i = slot(sig);
    if (i < 0)
        return sigdefer_sigaction(sig, act, old);
    sigset_t saved;
    lock_signals_blocked(&lock, &saved);
    /* The kernel's disposition says whether the shim's handler is in: a
     * program may have replaced it with a call the shim does not see
     * (sigset(), a raw system call). */
    struct sigaction before;
    int rc = sigdefer_sigaction(sig, NULL, &before);
    bool mine = rc == 0 && before.sa_handler == on_signal;
    if (mine)
        before = program[i];
    if (rc == 0 && act) {
        if (!is_default(act)) {
            rc = sigdefer_sigaction(sig, act, NULL);     /* the program's handler, or SIG_IGN */
            if (rc == 0)
                __atomic_store_n(&oneshot[i], is_oneshot(act), __ATOMIC_RELEASE);
        } else if (mine) {
            program[i] = *act;
        } else if (!install((size_t)i, act)) {
            rc = real_sigaction(sig, act, NULL);
        }
    }
    int err = errno;
    unlock_signals_blocked(&lock, &saved);
    if (rc == 0 && old)
        *old = before;          /* after act was read: the two may be one struct */
    errno = err;
    return rc;
}

/* raise() of a covered signal that the kernel holds at SIG_DFL ends the
 * process: the relays flush first. The usual way there is a handler of the
 * program's set with SA_RESETHAND (node's for SIGTERM and SIGINT): the
 * kernel put SIG_DFL back when it ran, without a call the shim sees, and
 * the handler raises the signal again to end the process by it. There the
 * signal is blocked until the handler returns, so the raise only leaves it
 * pending; it is still the end. Otherwise a raise of a blocked signal only
 * waits (for sigwait(), say), and the relays are left alone. */
void termsig_before_raise(int sig)
{
    int i = slot(sig);
    struct sigaction cur;
    sigset_t mask;
    int saved = errno;
    if (i >= 0 && real_sigaction(sig, NULL, &cur) == 0 && is_default(&cur) &&
        (__atomic_load_n(&oneshot[i], __ATOMIC_ACQUIRE) ||
         (pthread_sigmask(SIG_BLOCK, NULL, &mask) == 0 && !sigismember(&mask, sig))))
        flush_before_end();
    errno = saved;
}

/* A fork during a flush: the child's own signals flush its own relays. */
void termsig_atfork_child(void)
{
    pthread_mutex_init(&lock, NULL);
    ending = 0;
}
