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

void _pthread_cleanup_push(struct _pthread_cleanup_buffer *buf, void (*routine)(void *), void *arg);
void _pthread_cleanup_pop(struct _pthread_cleanup_buffer *buf, int execute);

__thread bool jump_parked_now __attribute__((tls_model("initial-exec")));

void jump_guard_push(struct jump_guard *g, void (*repair)(void *), void *arg)
{
    _pthread_cleanup_push(&g->buf, repair, arg);
}

void jump_guard_pop(struct jump_guard *g)
{
    _pthread_cleanup_pop(&g->buf, 0);
}
