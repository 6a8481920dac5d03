/*
 * sigdefer.c — the trampoline in front of the program's signal handlers,
 * and the sigaction(), signal() and kin that put it there (sigdefer.h says
 * what it does, jumpguard.h why).
 *
 * Per signal the program's handler and flags are read by the trampoline
 * without a lock (each a word, atomically); the whole sigaction the program
 * gave, which it reads back, is kept under `lock`, which the program's
 * calls take with every signal blocked (lock_signals_blocked).
 * A handler is entered here before the kernel is told; SIG_DFL and SIG_IGN
 * go to the kernel only, so a signal in flight as they are set runs the
 * handler the program had set before.
 */
#include "libc/sigdefer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "libc/jumpguard.h"
#include "libc/real.h"

struct program_handler {
    void *handler;              /* atomic: sa_handler or sa_sigaction */
    int flags;                  /* atomic: the program's sa_flags */
};

static struct program_handler handlers[NSIG];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction program[NSIG];         /* under lock */
/* The signals siginterrupt() made interrupting: a signal() of one sets no
 * SA_RESTART (glibc's _sigintr, which its siginterrupt keeps: the hook's
 * sets this one). Atomic: a bit per signal. */
static unsigned long interrupting[(NSIG + 63) / 64];

static unsigned long interrupting_bit(int sig)
{
    return 1UL << ((unsigned)sig % 64);
}

static void trampoline(int sig, siginfo_t *info, void *context);

static bool has_handler(const struct sigaction *sa)
{
    return sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN;
}

/* What the kernel holds for the program's handler sa. */
static struct sigaction in_kernel(const struct sigaction *sa)
{
    struct sigaction k = *sa;
    k.sa_sigaction = trampoline;
    k.sa_flags |= SA_SIGINFO;
    return k;
}

/* The signal came inside a section of the shim's: queued again to this
 * thread, and blocked there from the trampoline's return (the mask in its
 * context, which sigreturn puts in force) until the section ends. False
 * (nothing done) when the kernel would not queue it (RLIMIT_SIGPENDING):
 * then it runs now rather than never. */
static bool put_back(int sig, siginfo_t *info, ucontext_t *uc, int flags)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    if (flags & SA_NODEFER)     /* else the signal queued below came in at once */
        pthread_sigmask(SIG_BLOCK, &one, NULL);
    if (flags & SA_RESETHAND) {
        /* The kernel put SIG_DFL back as it delivered this one: the
         * program's handler is still to run, once, when it comes again.
         * (Read without the lock: a sigaction of the program's on this
         * signal at this moment would race with the kernel's too.) */
        struct sigaction k = in_kernel(&program[sig]);
        real_sigaction(sig, &k, NULL);
    }
    long tid = real_syscall4(SYS_gettid, 0, 0, 0, 0);
    if (real_syscall4(SYS_rt_tgsigqueueinfo, getpid(), tid, sig, info) != 0) {
        if (flags & SA_RESETHAND) {
            struct sigaction dfl = { .sa_handler = SIG_DFL };
            real_sigaction(sig, &dfl, NULL);
        }
        if (flags & SA_NODEFER)
            pthread_sigmask(SIG_UNBLOCK, &one, NULL);
        return false;
    }
    sigaddset(&signals_deferred_set, sig);
    signals_deferred = true;
    sigaddset(&uc->uc_sigmask, sig);
    return true;
}

static void trampoline(int sig, siginfo_t *info, void *context)
{
    void *handler = __atomic_load_n(&handlers[sig].handler, __ATOMIC_ACQUIRE);
    int flags = __atomic_load_n(&handlers[sig].flags, __ATOMIC_ACQUIRE);
    if (signals_depth > 0 && !jump_parked_now && !signal_is_synchronous(sig)) {
        int saved = errno;
        bool deferred = put_back(sig, info, context, flags);
        errno = saved;
        if (deferred)
            return;
    }
    if (signals_depth > 0 && jump_parked_now && jump_wait_signals != WAIT_INTERRUPTING)
        jump_wait_signals = flags & SA_RESTART ? WAIT_RESTARTING : WAIT_INTERRUPTING;
    /* Only a handler is entered here: none yet would be a kernel holding
     * the trampoline for a sigaction that failed. */
    if (handler == (void *)SIG_DFL || handler == (void *)SIG_IGN)
        return;
    if (flags & SA_SIGINFO)
        ((void (*)(int, siginfo_t *, void *))handler)(sig, info, context);
    else
        ((void (*)(int))handler)(sig);
}

void lock_signals_blocked(pthread_mutex_t *mutex, sigset_t *saved)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, saved);
    pthread_mutex_lock(mutex);
}

void unlock_signals_blocked(pthread_mutex_t *mutex, const sigset_t *saved)
{
    pthread_mutex_unlock(mutex);
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}

static void enter(int sig, const struct sigaction *sa)
{
    program[sig] = *sa;
    __atomic_store_n(&handlers[sig].flags, sa->sa_flags, __ATOMIC_RELEASE);
    __atomic_store_n(&handlers[sig].handler, (void *)sa->sa_handler, __ATOMIC_RELEASE);
}

int sigdefer_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP ||
        (act && act->sa_sigaction == trampoline))
        return real_sigaction(sig, act, old);
    struct sigaction want, kernel_old, before;
    if (act)
        want = *act;            /* act and old may be one struct */
    sigset_t saved;
    lock_signals_blocked(&lock, &saved);
    before = program[sig];
    int rc;
    if (act && has_handler(&want)) {
        struct sigaction k = in_kernel(&want);
        enter(sig, &want);
        rc = real_sigaction(sig, &k, &kernel_old);
        if (rc < 0)
            enter(sig, &before);
    } else {
        rc = real_sigaction(sig, act ? &want : NULL, &kernel_old);
    }
    int err = errno;
    unlock_signals_blocked(&lock, &saved);
    if (rc == 0 && old) {
        if (kernel_old.sa_sigaction == trampoline) {
            /* As the kernel would have said of the program's handler:
             * its flags (SA_RESTORER, say) but SA_SIGINFO as it was set. */
            int flags = kernel_old.sa_flags;
            if (!(before.sa_flags & SA_SIGINFO))
                flags &= ~SA_SIGINFO;
            kernel_old.sa_sigaction = before.sa_sigaction;
            kernel_old.sa_flags = flags;
        }
        *old = kernel_old;
    }
    errno = err;
    return rc;
}

/* signal() and its kin, as glibc's: set through `set` (the program's
 * sigaction, termsig's or the one above), the old handler returned. */
static sighandler_t set_handler(sigaction_fn set, int sig, sighandler_t handler, int flags, bool block_self)
{
    if (handler == SIG_ERR) {
        errno = EINVAL;
        return SIG_ERR;
    }
    struct sigaction sa = { .sa_handler = handler, .sa_flags = flags }, old;
    sigemptyset(&sa.sa_mask);
    if (block_self && sig > 0 && sig < NSIG)
        sigaddset(&sa.sa_mask, sig);
    if (set(sig, &sa, &old) < 0)
        return SIG_ERR;
    return old.sa_handler;
}

/* signal() and bsd_signal(): BSD semantics (SA_RESTART, the signal
 * blocked in its handler). */
sighandler_t sigdefer_signal(sigaction_fn set, int sig, sighandler_t handler)
{
    bool interrupts = sig > 0 && sig < NSIG &&
                      (__atomic_load_n(&interrupting[sig / 64], __ATOMIC_ACQUIRE) & interrupting_bit(sig));
    return set_handler(set, sig, handler, interrupts ? 0 : SA_RESTART, true);
}

/* sysv_signal(): one-shot, not blocked in its handler, no restart. */
sighandler_t sigdefer_sysv_signal(sigaction_fn set, int sig, sighandler_t handler)
{
    return set_handler(set, sig, handler, SA_RESETHAND | SA_NODEFER, false);
}

/* sigset() (System V): SIG_HOLD blocks the signal; a disposition unblocks
 * it. SIG_HOLD is returned when it was blocked. */
sighandler_t sigdefer_sigset(sigaction_fn set, int sig, sighandler_t disp)
{
    sigset_t one, was;
    sigemptyset(&one);
    if (sig <= 0 || sig >= NSIG || sigaddset(&one, sig) < 0) {
        errno = EINVAL;
        return SIG_ERR;
    }
    struct sigaction old;
    if (disp == SIG_HOLD) {
        if (pthread_sigmask(SIG_BLOCK, &one, &was) != 0 || set(sig, NULL, &old) < 0)
            return SIG_ERR;
        return sigismember(&was, sig) ? SIG_HOLD : old.sa_handler;
    }
    sighandler_t before = set_handler(set, sig, disp, 0, false);
    if (before == SIG_ERR || pthread_sigmask(SIG_UNBLOCK, &one, &was) != 0)
        return SIG_ERR;
    return sigismember(&was, sig) ? SIG_HOLD : before;
}

int sigdefer_siginterrupt(sigaction_fn set, int sig, int interrupt)
{
    struct sigaction sa;
    if (sig <= 0 || sig >= NSIG) {
        errno = EINVAL;
        return -1;
    }
    if (set(sig, NULL, &sa) < 0)
        return -1;
    if (interrupt) {
        __atomic_or_fetch(&interrupting[sig / 64], interrupting_bit(sig), __ATOMIC_RELEASE);
        sa.sa_flags &= ~SA_RESTART;
    } else {
        __atomic_and_fetch(&interrupting[sig / 64], ~interrupting_bit(sig), __ATOMIC_RELEASE);
        sa.sa_flags |= SA_RESTART;
    }
    return set(sig, &sa, NULL);
}

void sigdefer_atfork_child(void)
{
    pthread_mutex_init(&lock, NULL);
}
