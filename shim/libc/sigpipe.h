/*
 * sigpipe.h — the shim's own writes in a program's thread never raise
 * SIGPIPE there.
 *
 * A write to a pipe or socket whose other end has gone raises SIGPIPE in
 * the writing thread, and a program that leaves it at its default dies of
 * it. The program's own writes are its business; the shim's are not: a
 * log line to a stderr pipe whose reader has gone, the TLS handshake of a
 * blocking connect (OpenSSL's socket BIO writes with write(), not
 * send(MSG_NOSIGNAL)). Around such writes the signal is held (blocked) and,
 * when the write raised it, taken back before it is let go. A SIGPIPE the
 * thread already had pending before is left for the program. The shim's
 * own threads block every signal and need none of this.
 */
#ifndef MESHIM_LIBC_SIGPIPE_H
#define MESHIM_LIBC_SIGPIPE_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>

#include "libc/jumpguard.h"

struct sigpipe_hold {
    sigset_t was;                       /* the thread's mask before */
    bool had;                           /* a SIGPIPE was pending already */
};

static inline sigset_t sigpipe_only(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    return set;
}

static inline void sigpipe_hold(struct sigpipe_hold *h)
{
    sigset_t pipe_only = sigpipe_only(), pending;
    pthread_sigmask(SIG_BLOCK, &pipe_only, &h->was);
    h->had = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    sigpipe_holds++;            /* a wait inside keeps it blocked (jump_wait_mask) */
}

/* Takes back a SIGPIPE raised since sigpipe_hold, then restores the mask.
 * errno is kept. */
static inline void sigpipe_release(struct sigpipe_hold *h)
{
    int saved = errno;
    sigset_t pipe_only = sigpipe_only(), pending;
    if (!h->had && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        static const struct timespec now = { 0, 0 };
        while (sigtimedwait(&pipe_only, NULL, &now) < 0 && errno == EINTR)
            ;
    }
    sigpipe_holds--;
    pthread_sigmask(SIG_SETMASK, &h->was, NULL);
    errno = saved;
}

/* A handler's longjmp left a hold's frame (a guard's repair): the mask is
 * the handler's now, which siglongjmp may replace with its own. A SIGPIPE
 * the shim raised is taken back, and SIGPIPE is blocked or not as the
 * program had it; the rest of the mask stays the handler's. */
static inline void sigpipe_left(struct sigpipe_hold *h)
{
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    if (!sigismember(&h->was, SIGPIPE))
        sigdelset(&now, SIGPIPE);
    h->was = now;
    sigpipe_release(h);
}

#endif
