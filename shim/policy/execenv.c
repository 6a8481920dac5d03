/*
 * execenv.c — the environment an exec passes on, with the mesh put back
 * into it (see execenv.h; mesh/exec.c says when).
 */
#include "meshim/execenv.h"

#include <stdio.h>
#include <string.h>

#define PRELOAD "LD_PRELOAD="
#define PRELOAD_LEN (sizeof(PRELOAD) - 1)

static const char *last_component(const char *path, size_t len, size_t *out_len)
{
    size_t start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    *out_len = len - start;
    return path + start;
}

bool execenv_preloads(const char *value, const char *lib)
{
    size_t want_len;
    const char *want = last_component(lib, strlen(lib), &want_len);
    if (want_len == 0)
        return false;
    for (const char *p = value; *p;) {
        size_t n = strcspn(p, ": ");
        size_t name_len;
        const char *name = last_component(p, n, &name_len);
        if (name_len == want_len && memcmp(name, want, want_len) == 0)
            return true;
        p += n;
        if (*p)
            p++;
    }
    return false;
}

static size_t env_count(char *const envp[])
{
    size_t n = 0;
    while (envp && envp[n])
        n++;
    return n;
}

/* envp's "NAME=" entry for the NAME that `var` ("NAME=value") starts with. */
static const char *env_find(char *const envp[], const char *var)
{
    const char *eq = strchr(var, '=');
    size_t n = eq ? (size_t)(eq - var) + 1 : strlen(var);
    for (size_t i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], var, n) == 0)
            return envp[i];
    return NULL;
}

size_t execenv_slots(char *const envp[], size_t n_saved)
{
    return env_count(envp) + 1 + n_saved + 1;
}

size_t execenv_bytes(char *const envp[], const char *lib, const char *own)
{
    const char *old = env_find(envp, PRELOAD);
    size_t added = own && strlen(own) > strlen(lib) ? strlen(own) : strlen(lib);
    return PRELOAD_LEN + (old ? strlen(old + PRELOAD_LEN) + 1 : 0) + added + 1;
}

size_t execenv_build(char *const envp[], const char *lib, const char *own, char *const saved[],
                     size_t n_saved, char **out, char *buf, size_t buf_len)
{
    size_t n = 0, changed = 0;
    bool preload_seen = false;
    for (size_t i = 0; envp && envp[i]; i++) {
        const char *e = envp[i];
        /* The dynamic loader reads the first LD_PRELOAD; later ones stay. */
        if (!preload_seen && strncmp(e, PRELOAD, PRELOAD_LEN) == 0) {
            preload_seen = true;
            const char *value = e + PRELOAD_LEN;
            if (!execenv_preloads(value, lib) &&
                (size_t)snprintf(buf, buf_len, "%s%s%s%s", PRELOAD, value, *value ? ":" : "", lib) < buf_len) {
                e = buf;
                changed++;
            }
        }
        out[n++] = (char *)e;
    }
    const char *value = own && execenv_preloads(own, lib) ? own : lib;
    if (!preload_seen && (size_t)snprintf(buf, buf_len, "%s%s", PRELOAD, value) < buf_len) {
        out[n++] = buf;
        changed++;
    }
    for (size_t i = 0; i < n_saved; i++)
        if (strchr(saved[i], '=') && !env_find(envp, saved[i])) {
            out[n++] = saved[i];
            changed++;
        }
    out[n] = NULL;
    return changed;
}
