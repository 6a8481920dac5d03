/*
 * tls_loader.c — the library's side of the TLS module (see tls_module.h):
 * loads the module the first time the identity is asked for, then forwards
 * every tls_* call of tls.h to it.
 *
 * The module's bytes are in this library (tls_image.S). Where the module
 * was installed beside the library (libmeshim-tls-ID.so: make, make
 * install, the .deb and the image put it there), that file is opened as it
 * is, unread: it is the library's owner's and nobody else can write it, so
 * whoever could change it could change the library itself (open_beside).
 * Otherwise the first process
 * of a user to need them writes them to a file in that user's stats folder
 * (tls-module-ID.so, ID from the module's SHA-256, so versions do not
 * meet), and every process of the user opens that file: the page cache
 * holds OpenSSL's code once for all of them, where a copy per process would
 * cost each 5 MB. The file is used only when it is this user's, read-only,
 * with one link and byte for byte the image (one with a second link is
 * replaced: open_from_cache). Where that cannot work (no
 * folder, a set-uid program, /tmp mounted noexec) the bytes are copied to
 * an anonymous memory file and opened with dlopen through /proc/self/fd;
 * where that cannot work either (no /proc, memfd_create refused by a
 * seccomp filter) a private file in $TMPDIR or /tmp is used and unlinked at
 * once.
 * RTLD_LOCAL keeps the module's one symbol out of the program's scope; the
 * module's OpenSSL is bound inside it at link time.
 *
 * If the module cannot be loaded, tls_identity_get fails with the reason,
 * and so does every connection that needs mTLS: fail closed, never plain.
 * A later need tries again (load_when_due): as soon as a descriptor is
 * free when the process had none, which is a moment's state (a program at
 * its limit), not a fault of the files.
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
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#endif

#include "libc/jumpguard.h"
#include "libc/ownfd.h"
#include "libc/real.h"
#include "meshim/beside.h"
#include "meshim/config.h"
#include "meshim/util.h"
#include "observe/files.h"
#include "observe/log.h"

/* tls_image.S */
extern const char meshim_tls_image[], meshim_tls_image_end[];

static const struct tls_module *module;     /* set once, then never changes */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;   /* load(), and the two below */
static uint64_t retry_at_ns;                /* after a failed load: when the next may be made */
static bool failed_short;                   /* ... which was for want of a descriptor */
static char load_error[2 * TLS_WHY_MAX + 64];
static char cache_dir[512];                 /* config_shared_dir, set before load() */

#define CACHE_NAME "tls-module-" TLS_MODULE_ID ".so"

static size_t image_size(void) { return (size_t)(meshim_tls_image_end - meshim_tls_image); }

static void *open_module(const char *path)
{
    return dlopen(path, RTLD_NOW | RTLD_LOCAL);
}

/* Writes the image to fd; false with errno on a failure. */
static bool write_image(int fd)
{
    const char *p = meshim_tls_image;
    while (p < meshim_tls_image_end) {
        ssize_t n = real_write(fd, p, (size_t)(meshim_tls_image_end - p));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
    }
    return true;
}

/* Whether fd holds the image, byte for byte. The buffer is the heap's, not
 * the stack's: this runs in whichever thread of the program connects first
 * over mTLS, and 64 KiB on its stack overflowed a thread given a small one
 * (perl under `ulimit -s 64` died of SIGSEGV at its first mTLS connect). */
#define COMPARE_CHUNK 65536

static bool same_through(int fd, char *buf)
{
    size_t off = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, COMPARE_CHUNK, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || off + (size_t)n > image_size())
            return false;
        if (n == 0)
            return off == image_size();
        if (memcmp(buf, meshim_tls_image + off, (size_t)n) != 0)
            return false;
        off += (size_t)n;
    }
}

static bool same_as_image(int fd)
{
    char *buf = malloc(COMPARE_CHUNK);
    bool same = buf && same_through(fd, buf);
    free(buf);
    return same;
}

/* The module file in the folder, checked; -1 with errno (ENOENT: none yet;
 * EMLINK: the image, this user's, but with another link). */
static int open_cached(int dfd)
{
    int fd = openat(dfd, CACHE_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() && !(st.st_mode & 0222) &&
        (size_t)st.st_size == image_size() && same_as_image(fd)) {
        if (st.st_nlink == 1)
            return fd;
        real_close(fd);
        errno = EMLINK;
        return -1;
    }
    real_close(fd);
    errno = EINVAL;
    return -1;
}

/* Is `name` a module file of another build, or a temporary one that a
 * process left (it ended between files_create_private and the rename)? */
static bool other_module(const char *name)
{
    size_t n = strlen(name);
    if (strncmp(name, ".tls-module", 11) == 0)
        return true;
    return strncmp(name, "tls-module-", 11) == 0 && n > 14 && strcmp(name + n - 3, ".so") == 0 &&
           strcmp(name, CACHE_NAME) != 0;
}

/* This build's file was just made: the files of the builds before it (an
 * upgrade leaves one per version, 6 MB each) are removed, when they are
 * this user's and a day old. A build still in use elsewhere makes its file
 * again at its next process (dlopen maps by inode: a process that has the
 * file mapped keeps it). Once per build and user: only the process that
 * made the new file looks. */
#define PRUNE_AGE_S (24 * 3600)

static bool prune_if_old(int dfd, const char *name, void *arg)
{
    const time_t *before = arg;
    struct stat st;
    if (other_module(name) && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode) && st.st_uid == geteuid() && st.st_mtime < *before)
        unlinkat(dfd, name, 0);
    return true;
}

static void prune_other_modules(int dfd)
{
    time_t before = time(NULL) - PRUNE_AGE_S;
    files_each_name(dfd, 64, prune_if_old, &before);
}

/* A new module file put in place (RENAME_NOREPLACE: when another process
 * was first, its file is opened instead). */
static int create_cached(int dfd)
{
    char tmp[64];
    struct stat st;
    int fd = files_create_private(dfd, ".tls-module", 0600, tmp, sizeof(tmp), &st);
    if (fd < 0)
        return -1;
    bool ok = write_image(fd) && fchmod(fd, 0400) == 0;
    real_close(fd);
    if (ok && real_syscall((long)SYS_renameat2, (long)dfd, (long)tmp, (long)dfd, (long)CACHE_NAME,
                           (long)RENAME_NOREPLACE, 0L) == 0) {
        prune_other_modules(dfd);
        return open_cached(dfd);
    }
    int err = errno;
    unlinkat(dfd, tmp, 0);
    if (err == EEXIST)
        return open_cached(dfd);
    errno = err;
    return -1;
}

/* dlopen of the module file shared by this user's processes; NULL (and
 * the caller copies the image instead) when it cannot be used. */
static void *open_from_cache(char *why, size_t len)
{
    if (!cache_dir[0] || getauxval(AT_SECURE)) {
        snprintf(why, len, "no folder for it");
        return NULL;
    }
    struct stat dst;
    int dfd = files_open_dir(cache_dir, false, &dst, why, len);
    if (dfd < 0)
        return NULL;
    /* Code cannot be mapped from a noexec mount (/tmp often is): neither
     * write the file there nor leave dlopen a half-mapped failure. */
    struct statvfs vfs;
    if (fstatvfs(dfd, &vfs) == 0 && (vfs.f_flag & ST_NOEXEC)) {
        snprintf(why, len, "%.200s is on a noexec mount", cache_dir);
        real_close(dfd);
        return NULL;
    }
    int fd = open_cached(dfd);
    /* A second link to the right file is not one of ours: perf's build-id
     * cache links every file a profiled process maps into ~/.debug. The
     * name is ours, in our folder: a new file takes it (the linked one
     * lives on for whoever linked it); before, every later process of the
     * user made a private copy, 5 MB each, until the file was removed. */
    if (fd < 0 && errno == EMLINK && unlinkat(dfd, CACHE_NAME, 0) == 0)
        errno = ENOENT;
    if (fd < 0 && errno == ENOENT)
        fd = create_cached(dfd);
    int err = errno;
    real_close(dfd);
    if (fd < 0) {
        snprintf(why, len, "%.200s/%s: %.60s", cache_dir, CACHE_NAME, strerror(err));
        return NULL;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    void *h = open_module(path);
    if (!h)
        snprintf(why, len, "%s", dlerror());   /* a noexec folder, say */
    real_close(fd);
    return h;
}

/* dlopen of TLS_MODULE_BESIDE in the library's folder, unread, when
 * meshim/beside.h allows it (only whoever can change the library can
 * change it, and it is whole: then the 5 MB comparison of open_cached, the
 * largest cost of a process's first mTLS connection, is not needed); NULL
 * with the reason otherwise. The library is found by the
 * name the loader gave it, when that is a full path: a relative one would
 * be read against the program's folder of now, not of when it started. */
static void *open_beside(char *why, size_t len)
{
    Dl_info info;
    const char *slash;
    if (!dladdr((void *)open_beside, &info) || !info.dli_fname || info.dli_fname[0] != '/' ||
        !(slash = strrchr(info.dli_fname, '/'))) {
        snprintf(why, len, "the library was not named by a full path");
        return NULL;
    }
    /* The heap's, not the stack's: see same_as_image. */
    char *dir = strndup(info.dli_fname, slash == info.dli_fname ? 1 : (size_t)(slash - info.dli_fname));
    int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    struct stat library_st, module_st;
    if (dfd < 0 || fstatat(dfd, slash + 1, &library_st, 0) < 0) {
        snprintf(why, len, "%.200s: %.60s", info.dli_fname, strerror(errno));
        if (dfd >= 0)
            real_close(dfd);
        free(dir);
        return NULL;
    }
    int fd = openat(dfd, TLS_MODULE_BESIDE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    int err = errno;
    real_close(dfd);
    const char *refused = fd < 0                          ? strerror(err)
                          : fstat(fd, &module_st) < 0     ? strerror(errno)
                                                          : beside_refused(&module_st, &library_st, image_size());
    void *h = NULL;
    if (refused) {
        snprintf(why, len, "%.200s/%s: %s", dir, TLS_MODULE_BESIDE, refused);
    } else {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        if (!(h = open_module(path)))
            snprintf(why, len, "%s", dlerror());   /* a noexec mount, no /proc */
    }
    if (fd >= 0)
        real_close(fd);
    free(dir);
    return h;
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
    else if (!(h = open_module(path)))
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
    else if (!(h = open_module(path)))
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

static void *reserved_store;        /* atomic: tls_store_reserve's, until taken */

/* A store's memory: shared with fork children only, reserved, not touched. */
static void *map_store(void)
{
    void *p = mmap(NULL, TLS_STORE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void tls_store_reserve(void)
{
    __atomic_store_n(&reserved_store, map_store(), __ATOMIC_RELEASE);
}

/* The module's tls_store_memory: the reserved memory once, then new. */
static void *store_memory(void)
{
    void *p = __atomic_exchange_n(&reserved_store, NULL, __ATOMIC_ACQ_REL);
    return p ? p : map_store();
}

static void load(void)
{
    char why_beside[TLS_WHY_MAX] = "", why_cache[TLS_WHY_MAX] = "", why_memfd[TLS_WHY_MAX] = "",
         why_tmp[TLS_WHY_MAX] = "";
    void *h = open_beside(why_beside, sizeof(why_beside));
    if (!h) {
        log_debug("TLS module: not beside the library (%s)", why_beside);
        h = open_from_cache(why_cache, sizeof(why_cache));
    }
    if (!h) {
        log_debug("TLS module: not shared through the stats folder (%s); a private copy", why_cache);
        h = open_from_memfd(why_memfd, sizeof(why_memfd));
    }
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
    m->attach(mlog, store_memory, ownfd_shortage);
    __atomic_store_n(&module, m, __ATOMIC_RELEASE);
}

static const struct tls_module *loaded(void)
{
    return __atomic_load_n(&module, __ATOMIC_ACQUIRE);
}

static void remember_folder(const struct mesh_config *cfg)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&lock);
    if (!cache_dir[0])
        config_shared_dir(cfg, cache_dir, sizeof(cache_dir));
    pthread_mutex_unlock(&lock);
}

/* The module loaded, if it is not yet and a load is due: the first need
 * loads it. After a failure for want of a descriptor (a program at its
 * limit: every way of loading needs one), the next need once one is free
 * tries again; after any other, the first need RETRY_NS later (a folder
 * made executable, /proc mounted). Until then a need fails at once with
 * the reason the last load gave. */
#define RETRY_NS (30 * 1000000000ull)
static const struct tls_module *load_when_due(char *why, size_t len)
{
    pthread_mutex_lock(&load_lock);
    if (!loaded() && (now_ns() >= retry_at_ns || (failed_short && !ownfd_shortage()))) {
        load();
        if (!loaded()) {
            failed_short = ownfd_shortage();
            retry_at_ns = now_ns() + RETRY_NS;
        }
    }
    const struct tls_module *m = loaded();
    if (!m)
        snprintf(why, len, "%.*s", (int)(len ? len - 1 : 0), load_error);
    pthread_mutex_unlock(&load_lock);
    return m;
}

static struct tls_identity *identity_get(const struct mesh_config *cfg, unsigned kernel, char *why,
                                         size_t len)
{
    const struct tls_module *m = loaded();
    if (!m) {
        remember_folder(cfg);
        if (!(m = load_when_due(why, len)))
            return NULL;
    }
    return m->tls_identity_get(cfg, kernel, why, len);
}

/* fork: no load under way while the process is copied (a child would find
 * the lock held for good); the child's lock made anew. Taken before the
 * module's own (tls_atfork_prepare). */
void tls_loader_atfork_prepare(void)
{
    pthread_mutex_lock(&load_lock);
}

void tls_loader_atfork_parent(void)
{
    pthread_mutex_unlock(&load_lock);
}

void tls_loader_atfork_child(void)
{
    pthread_mutex_init(&load_lock, NULL);
}

/* The first ask loads the module and reads the identity under their locks
 * (load_lock, the module's id_lock), and later ones take id_lock for a
 * reference: a handler that jumped out of one would leave them held and
 * every later connect waiting for good, so the program's signals wait
 * until it ends (libc/jumpguard.h; a count in the thread). */
struct tls_identity *tls_identity_get(const struct mesh_config *cfg, unsigned kernel, char *why, size_t len)
{
    struct signals_held held;
    signals_hold(&held);
    struct tls_identity *id = identity_get(cfg, kernel, why, len);
    signals_release(&held);
    return id;
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
