/*
 * callers.c — the application's call stack (see callers.h).
 *
 * The libunwind entry points are looked up by the names its header maps
 * them to (unw_step is _ULx86_64_step on x86-64), so the header's types and
 * the library's symbols always agree. Frames inside libmeshim.so itself are
 * skipped: the first frame kept is the code that called connect().
 */
#include "observe/callers.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "observe/accesslog.h"
#include "observe/log.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#define CALLERS_MAX_FRAMES 16
#define CALLERS_MAX_TEXT 2048

#define NAME_OF(sym) NAME_OF_(sym)
#define NAME_OF_(sym) #sym

static struct {
    int (*getcontext)(unw_context_t *);
    int (*init_local)(unw_cursor_t *, unw_context_t *);
    int (*step)(unw_cursor_t *);
    int (*get_reg)(unw_cursor_t *, unw_regnum_t, unw_word_t *);
    int (*get_proc_name)(unw_cursor_t *, char *, size_t, unw_word_t *);
    bool ready;
} unw;
static pthread_once_t unw_once = PTHREAD_ONCE_INIT;

static void unw_open(void)
{
#if defined(__x86_64__)
    void *lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        log_warn("access_log_callers: cannot load libunwind.so.8 (%s); install libunwind8 "
                 "for caller stacks", dlerror());
        return;
    }
    *(void **)&unw.getcontext = dlsym(lib, NAME_OF(unw_tdep_getcontext));
    *(void **)&unw.init_local = dlsym(lib, NAME_OF(unw_init_local));
    *(void **)&unw.step = dlsym(lib, NAME_OF(unw_step));
    *(void **)&unw.get_reg = dlsym(lib, NAME_OF(unw_get_reg));
    *(void **)&unw.get_proc_name = dlsym(lib, NAME_OF(unw_get_proc_name));
    unw.ready = unw.getcontext && unw.init_local && unw.step && unw.get_reg && unw.get_proc_name;
    if (!unw.ready)
        log_warn("access_log_callers: libunwind.so.8 lacks the functions needed; no caller stacks");
#else
    log_warn("access_log_callers: caller stacks are only built for x86-64");
#endif
}

/* Is this address inside libmeshim.so? */
static bool ours(const void *ip)
{
    static const char anchor;
    Dl_info self, at;
    return dladdr(&anchor, &self) && dladdr(ip, &at) && at.dli_fbase == self.dli_fbase;
}

/* Appends s to the array text as a JSON string; false when it would not
 * fit (with the closing bracket). */
static bool append(char *buf, size_t *used, const char *s)
{
    size_t n = *used;
    if (buf[n - 1] != '[')
        buf[n++] = ',';
    size_t k = json_string(buf + n, CALLERS_MAX_TEXT - 1 - n, s);
    if (!k)
        return false;
    *used = n + k;
    return true;
}

static void frame_text(unw_cursor_t *cur, unw_word_t ip, char *out, size_t len)
{
    char name[256];
    unw_word_t off = 0;
    Dl_info info;
    const char *module = "?";
    uintptr_t base = 0;
    if (dladdr((void *)ip, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        module = slash ? slash + 1 : info.dli_fname;
        if (!*module)
            module = program_invocation_short_name;
        base = (uintptr_t)info.dli_fbase;
    }
    if (unw.get_proc_name(cur, name, sizeof(name), &off) == 0)
        snprintf(out, len, "%s+0x%lx (%s)", name, (unsigned long)off, module);
    else
        snprintf(out, len, "?? (%s+0x%lx)", module, (unsigned long)(ip - base));
}

char *callers_capture(void)
{
    pthread_once(&unw_once, unw_open);
    if (!unw.ready)
        return NULL;
    unw_context_t ctx;
    unw_cursor_t cur;
    if (unw.getcontext(&ctx) != 0 || unw.init_local(&cur, &ctx) != 0)
        return NULL;
    char *buf = malloc(CALLERS_MAX_TEXT);
    if (!buf)
        return NULL;
    size_t used = 0;
    buf[used++] = '[';
    int frames = 0;
    while (frames < CALLERS_MAX_FRAMES && unw.step(&cur) > 0) {
        unw_word_t ip;
        if (unw.get_reg(&cur, UNW_REG_IP, &ip) != 0 || ip == 0)
            break;
        if (ours((void *)ip))
            continue;
        char text[320];
        frame_text(&cur, ip, text, sizeof(text));
        if (!append(buf, &used, text))
            break;
        frames++;
    }
    if (!frames) {
        free(buf);
        return NULL;
    }
    buf[used++] = ']';
    buf[used] = '\0';
    return buf;
}
