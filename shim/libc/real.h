/*
 * hooks.h — the bottom layer of every hook: real_NAME() calls the next
 * definition of NAME (libc's), bound lazily with dlsym(RTLD_NEXT) the first
 * time any hook runs. Never bound in a constructor: another library's
 * constructor may call a hook before ours has run, and it must still work.
 *
 * Also the re-entrancy guard: code the shim calls (libc's resolver loading
 * NSS modules, later OpenSSL) may call hooked symbols; while a thread is
 * inside the shim, or is one of the shim's own threads, hooks pass through.
 */
#ifndef MESHIM_HOOKS_H
#define MESHIM_HOOKS_H

#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "libc/jumpguard.h"

extern bool hooks_bound;
void hooks_bind(void);

#define HOOK(ret, name, params, args, fail) extern ret (*meshim_real_##name) params;
#define HOOK_VOID(name, params, args) extern void (*meshim_real_##name) params;
#define HOOK_VARARG(ret, name, vparams, params, args, fail) extern ret (*meshim_real_##name) vparams;
#define HOOK_LIST(name)
#include "libc/hooks.def"
#undef HOOK
#undef HOOK_VOID
#undef HOOK_VARARG
#undef HOOK_LIST

/* real_NAME(...): binds on first use; a symbol this libc lacks fails with
 * ENOSYS instead of crashing. */
#define HOOK(ret, name, params, args, fail)                               \
    static inline ret real_##name params                                  \
    {                                                                     \
        if (__builtin_expect(!__atomic_load_n(&hooks_bound, __ATOMIC_ACQUIRE), 0)) \
            hooks_bind();                                                 \
        if (!meshim_real_##name) {                                        \
            errno = ENOSYS;                                               \
            return fail;                                                  \
        }                                                                 \
        return meshim_real_##name args;                                   \
    }
#define HOOK_VOID(name, params, args)                                     \
    static inline void real_##name params                                 \
    {                                                                     \
        if (__builtin_expect(!__atomic_load_n(&hooks_bound, __ATOMIC_ACQUIRE), 0)) \
            hooks_bind();                                                 \
        if (meshim_real_##name)                                           \
            meshim_real_##name args;                                      \
    }
#define HOOK_VARARG(ret, name, vparams, params, args, fail) HOOK(ret, name, params, args, fail)
#define HOOK_LIST(name)
#include "libc/hooks.def"
#undef HOOK
#undef HOOK_VOID
#undef HOOK_VARARG
#undef HOOK_LIST

/* The shim's own raw system calls: libc's syscall() with four arguments
 * (the exported syscall() is a hook: it watches SYS_close). */
#define real_syscall4(n, a1, a2, a3, a4) \
    real_syscall((long)(n), (long)(a1), (long)(a2), (long)(a3), (long)(a4), 0L, 0L)

/* Re-entrancy: hooks_busy() is true inside the shim and on its threads. */
extern __thread int hooks_depth __attribute__((tls_model("initial-exec")));

static inline bool hooks_busy(void)
{
    return hooks_depth > 0;
}

static inline void hooks_enter(void)
{
    hooks_depth++;
}

static inline void hooks_leave(void)
{
    hooks_depth--;
}

/* A hook's stay in the shim, for the hooks that may wait there (a connect
 * or accept, a resolver asked): a guard (jumpguard.h) puts the depth back
 * if a signal handler's longjmp leaves the hook from inside, where
 * hooks_leave_frame would never run and every later call of the thread
 * would pass through unmeshed. */
struct hook_frame {
    struct jump_guard guard;
    int depth;                  /* before the hook */
    unsigned signals_depth;     /* the held sections' count before it */
};

void hooks_frame_left(void *frame);

static inline void hooks_enter_frame(struct hook_frame *f)
{
    f->depth = hooks_depth;
    f->signals_depth = signals_depth;
    jump_guard_push(&f->guard, hooks_frame_left, f);
    hooks_depth++;
}

static inline void hooks_leave_frame(struct hook_frame *f)
{
    hooks_depth--;
    jump_guard_pop(&f->guard);
}

/* For the shim's own threads: every hook passes straight through. Named
 * (at most 15 characters) for top -H, perf and bench/run -f's CPU
 * accounting. */
static inline void hooks_internal_thread(const char *name)
{
    hooks_depth = 1;
    prctl(PR_SET_NAME, name, 0, 0, 0);
}

/* An int socket option through the real getsockopt; -1 when it cannot be
 * read (errno set). */
static inline int real_getsockopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);
    return real_getsockopt(fd, level, name, &v, &len) < 0 ? -1 : v;
}

#endif
