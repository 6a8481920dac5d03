/*
 * jumpguard.c — guards for the frames a signal handler's longjmp leaves
 * (see jumpguard.h), on glibc's _pthread_cleanup_push list.
 *
 * Those two functions are glibc's, exported since 2.2.5 (from libpthread
 * before 2.34, libc since); pthread.h declares them only for its own
 * macros, so here they are declared again. glibc_compat.c sends them to
 * their oldest version.
 */
#include "libc/jumpguard.h"

#include <stdint.h>

#include "meshim/util.h"

void _pthread_cleanup_push(struct _pthread_cleanup_buffer *buf, void (*routine)(void *), void *arg);
void _pthread_cleanup_pop(struct _pthread_cleanup_buffer *buf, int execute);

__thread bool jump_parked_now __attribute__((tls_model("initial-exec")));
__thread enum waited_signals jump_wait_signals __attribute__((tls_model("initial-exec")));
__thread unsigned signals_depth __attribute__((tls_model("initial-exec")));
__thread bool signals_deferred __attribute__((tls_model("initial-exec")));
__thread sigset_t signals_deferred_set __attribute__((tls_model("initial-exec")));
__thread unsigned sigpipe_holds __attribute__((tls_model("initial-exec")));

void jump_guard_push(struct jump_guard *g, void (*repair)(void *), void *arg)
{
    _pthread_cleanup_push(&g->buf, repair, arg);
}

void jump_guard_pop(struct jump_guard *g)
{
    _pthread_cleanup_pop(&g->buf, 0);
}

void signals_let_in(void)
{
    int saved = errno;
    /* The deferred signals are blocked until the call below: none comes
     * between the two, and those it lets in go to the program's handlers. */
    sigset_t set = signals_deferred_set;
    sigemptyset(&signals_deferred_set);
    signals_deferred = false;
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    errno = saved;
}

const sigset_t *jump_wait_mask(sigset_t *buf)
{
    if (!signals_deferred)
        return NULL;
    int saved = errno;
    pthread_sigmask(SIG_BLOCK, NULL, buf);
    errno = saved;
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&signals_deferred_set, sig) && !(sig == SIGPIPE && sigpipe_holds))
            sigdelset(buf, sig);
    return buf;
}

int jump_poll(struct pollfd *p, nfds_t n, int timeout_ms)
{
    sigset_t buf;
    const sigset_t *mask = jump_wait_mask(&buf);
    if (!mask)
        return poll(p, n, timeout_ms);
    struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000 };
    return ppoll(p, n, timeout_ms < 0 ? NULL : &ts, mask);
}

bool jump_sleep(const struct timespec *ts, struct timespec *rem)
{
    sigset_t buf;
    const sigset_t *mask = jump_wait_mask(&buf);
    if (!mask)
        return nanosleep(ts, rem) == 0;
    uint64_t deadline = now_ns() + (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
    if (ppoll(NULL, 0, ts, mask) == 0)
        return true;
    /* Cut short: what is left of ts. */
    uint64_t now = now_ns(), left = now < deadline ? deadline - now : 0;
    rem->tv_sec = (time_t)(left / 1000000000u);
    rem->tv_nsec = (long)(left % 1000000000u);
    return false;
}
