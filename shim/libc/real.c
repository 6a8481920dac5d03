/*
 * real.c — binds the real_* trampolines of real.h: one dlsym(RTLD_NEXT) per
 * symbol of hooks.def, the first time any of them is needed (never in a
 * constructor: another library's constructor may call a hook before ours
 * has run). Also the per-thread re-entrancy depth.
 */
#include <dlfcn.h>
#include <pthread.h>

#include "libc/real.h"

bool hooks_bound;
__thread int hooks_depth __attribute__((tls_model("initial-exec")));

/* A signal handler's longjmp left a hook (real.h): the thread is out of the
 * shim again, as far out as before the hook, and parked nowhere. */
void hooks_frame_left(void *frame)
{
    struct hook_frame *f = frame;
    hooks_depth = f->depth;
    signals_left_to(f->signals_depth);  /* should a section inside have no guard of its own */
    jump_unpark();
}

#define HOOK(ret, name, params, args, fail) ret (*meshim_real_##name) params;
#define HOOK_VOID(name, params, args) void (*meshim_real_##name) params;
#define HOOK_VARARG(ret, name, vparams, params, args, fail) ret (*meshim_real_##name) vparams;
#define HOOK_LIST(name)
#include "libc/hooks.def"
#undef HOOK
#undef HOOK_VOID
#undef HOOK_VARARG
#undef HOOK_LIST

static void bind_all(void)
{
#define HOOK(ret, name, params, args, fail) \
    meshim_real_##name = (ret (*) params)dlsym(RTLD_NEXT, #name);
#define HOOK_VOID(name, params, args) meshim_real_##name = (void (*) params)dlsym(RTLD_NEXT, #name);
#define HOOK_VARARG(ret, name, vparams, params, args, fail) \
    meshim_real_##name = (ret (*) vparams)dlsym(RTLD_NEXT, #name);
#define HOOK_LIST(name)
#include "libc/hooks.def"
#undef HOOK
#undef HOOK_VOID
#undef HOOK_VARARG
#undef HOOK_LIST
    __atomic_store_n(&hooks_bound, true, __ATOMIC_RELEASE);
}

void hooks_bind(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, bind_all);
}

