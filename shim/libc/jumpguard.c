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
__thread const sigset_t *jump_wait_mask __attribute__((tls_model("initial-exec")));

void jump_guard_push(struct jump_guard *g, void (*repair)(void *), void *arg)
{
    _pthread_cleanup_push(&g->buf, repair, arg);
}

void jump_guard_pop(struct jump_guard *g)
{
    _pthread_cleanup_pop(&g->buf, 0);
}

int jump_poll(struct pollfd *p, nfds_t n, int timeout_ms)
{
    if (!jump_wait_mask)
        return poll(p, n, timeout_ms);
    struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000 };
    return ppoll(p, n, timeout_ms < 0 ? NULL : &ts, jump_wait_mask);
}

bool jump_sleep(const struct timespec *ts, struct timespec *rem)
{
    if (!jump_wait_mask)
        return nanosleep(ts, rem) == 0;
    uint64_t deadline = now_ns() + (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
    if (ppoll(NULL, 0, ts, jump_wait_mask) == 0)
        return true;
    /* Cut short: what is left of ts. */
    uint64_t now = now_ns(), left = now < deadline ? deadline - now : 0;
    rem->tv_sec = (time_t)(left / 1000000000u);
    rem->tv_nsec = (long)(left % 1000000000u);
    return false;
}
