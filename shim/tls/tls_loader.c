/*
 * tls_loader.c — the library's side of the TLS module (see tls_module.h):
 * loads the module the first time the identity is asked for, then forwards
 * every tls_* call of tls.h to it.
 *
 * The module's bytes are in this library (tls_image.S). They are copied to
 * an anonymous memory file and opened with dlopen through /proc/self/fd;
 * where that cannot work (no /proc, memfd_create refused by a seccomp
 * filter) a private file in $TMPDIR or /tmp is used and unlinked at once.
 * RTLD_LOCAL keeps the module's one symbol out of the program's scope; the
 * module's OpenSSL is bound inside it at link time.
 *
 * If the module cannot be loaded, tls_identity_get fails with the reason,
 * and so does every connection that needs mTLS: fail closed, never plain.
 */
#include "tls/tls_module.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "libc/real.h"

/* tls_image.S */
extern const char meshim_tls_image[], meshim_tls_image_end[];

static const struct tls_module *module;     /* set once, then never changes */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[2 * TLS_WHY_MAX + 64];

/* Writes the image to fd; false with errno on a failure. */
static bool write_image(int fd)
{
    const char *p = meshim_tls_image;
    while (p < meshim_tls_image_end) {
        ssize_t n = write(fd, p, (size_t)(meshim_tls_image_end - p));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
    }
    return true;
}

/* dlopen of the image through an anonymous memory file. */
static void *open_from_memfd(char *why, size_t len)
{
    int fd = memfd_create("meshim-tls", MFD_CLOEXEC);
    if (fd < 0) {
        snprintf(why, len, "memfd_create: %s", strerror(errno));
        return NULL;
    }
    void *h = NULL;
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (!write_image(fd))
        snprintf(why, len, "memfd write: %s", strerror(errno));
    else if (!(h = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
        snprintf(why, len, "%s", dlerror());
    real_close(fd);
    return h;
}

/* dlopen of the image through a private temporary file, unlinked at once. */
static void *open_from_tmpfile(char *why, size_t len)
{
    const char *dir = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/meshim-tls-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, len, "%.120s: %.60s", path, strerror(errno));
        return NULL;
    }
    void *h = NULL;
    if (!write_image(fd))
        snprintf(why, len, "%.120s: %.60s", path, strerror(errno));
    else if (!(h = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
        snprintf(why, len, "%s", dlerror());
    unlink(path);
    real_close(fd);
    return h;
}

/* The image was read once, to be copied: its pages (5 MB, file-backed and
 * never written) are given back, or they would stay in the program's
 * resident memory beside the module's own for the life of the process.
 * Whole pages inside the image only; touched again, they come back from
 * the library's file. */
static void release_image(void)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t from = ((uintptr_t)meshim_tls_image + page - 1) & ~(page - 1);
    uintptr_t to = (uintptr_t)meshim_tls_image_end & ~(page - 1);
    if (to > from)
        madvise((void *)from, to - from, MADV_DONTNEED);
}

static void load(void)
{
    char why_memfd[TLS_WHY_MAX] = "", why_tmp[TLS_WHY_MAX] = "";
    void *h = open_from_memfd(why_memfd, sizeof(why_memfd));
    if (!h)
        h = open_from_tmpfile(why_tmp, sizeof(why_tmp));
    release_image();
    if (!h) {
        snprintf(load_error, sizeof(load_error), "cannot load the TLS module: %s; %s", why_memfd, why_tmp);
        return;
    }
    const struct tls_module *m = dlsym(h, TLS_MODULE_SYMBOL);
    if (!m || m->abi != TLS_MODULE_ABI) {
        snprintf(load_error, sizeof(load_error), "the TLS module does not match this library");
        return;
    }
    m->attach(mlog);
    __atomic_store_n(&module, m, __ATOMIC_RELEASE);
}

static const struct tls_module *loaded(void)
{
    return __atomic_load_n(&module, __ATOMIC_ACQUIRE);
}

struct tls_identity *tls_identity_get(const struct mesh_config *cfg, char *why, size_t len)
{
    pthread_once(&load_once, load);
    const struct tls_module *m = loaded();
    if (!m) {
        snprintf(why, len, "%.*s", (int)(len ? len - 1 : 0), load_error);
        return NULL;
    }
    return m->tls_identity_get(cfg, why, len);
}

/* The others: see tls.def for which may run before the module is loaded. */
#define TLS_CALL(type, name, params, args)                                 \
    type name params                                                       \
    {                                                                      \
        return loaded()->name args;                                        \
    }
#define TLS_VOID(name, params, args)                                       \
    void name params                                                       \
    {                                                                      \
        const struct tls_module *m = loaded();                             \
        if (m)                                                             \
            m->name args;                                                  \
    }
#define TLS_LOADS(type, name, params, args)
#include "tls/tls.def"
