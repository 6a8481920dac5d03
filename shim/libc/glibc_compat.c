/*
 * glibc_compat.c — one binary for every glibc from 2.17 on.
 *
 * Built on Debian 12 (glibc 2.36), the library, its TLS module and the
 * command would otherwise ask for the newest version of each libc symbol
 * they use: dlopen@GLIBC_2.34 (moved into libc from libdl), stat@2.33
 * (a real function since then, __xstat before), getrandom@2.25 and so on,
 * and an older glibc (Debian 11, Ubuntu 20.04, RHEL 8, Amazon Linux 2)
 * refuses to load them. So the linker is told to send every such reference
 * (ours and the static OpenSSL's alike) to a __wrap_ function here
 * (-Wl,--wrap, the list in the Makefile: GLIBC_WRAP), which calls the
 * oldest version of the same function, one glibc has kept ever since:
 *
 *   - functions that moved into libc in 2.34 (dl*, pthread_*, sem_*,
 *     res_*): their version of 2.2.5 (2.17 on aarch64), which glibc >= 2.34
 *     keeps in libc as a compatibility symbol and older glibc defines in
 *     libdl and libpthread (named in DT_NEEDED for that reason) and
 *     libresolv (opened when first needed: below);
 *   - stat and friends: the __xstat family they were built on;
 *   - functions newer than 2.17 (getrandom, getentropy, memfd_create): the
 *     system call itself, ENOSYS on a kernel without it, as the caller
 *     already expects from an old libc.
 *
 * tests/integration/t_glibc_floor.sh checks with objdump that no symbol
 * newer than GLIBC_2.17 is left. pthread_cond_clockwait (2.30) is not
 * wrapped: the code uses pthread_cond_timedwait on a CLOCK_MONOTONIC
 * condition instead (util.h: cond_init_monotonic).
 *
 * Built twice: into the libraries, and with GLIBC_COMPAT_START into the
 * command (its program entry). Not for other architectures: there the
 * wrappers are not built and the Makefile does not ask for them.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__aarch64__)

#if defined(__x86_64__)
#define OLD "GLIBC_2.2.5"
#define OLD_FXSTATAT "GLIBC_2.4"
#define OLD_SETCLOCK "GLIBC_2.3.3"
#define STAT_VER 1
#else
#define OLD "GLIBC_2.17"
#define OLD_FXSTATAT "GLIBC_2.17"
#define OLD_SETCLOCK "GLIBC_2.17"
#define STAT_VER 0
#endif

#define HIDDEN __attribute__((visibility("hidden")))

/* old_NAME is NAME at its oldest version. */
#define OLD_SYMBOL(name, version) __asm__(".symver old_" #name "," #name "@" version)

/* __wrap_NAME calls OLDNAME at version with the same arguments; SAME: a
 * function that kept its name. */
#define WRAP(version, ret, name, oldname, params, args) \
    OLD_SYMBOL(oldname, version);                      \
    ret old_##oldname params;                          \
    HIDDEN ret __wrap_##name params;                   \
    ret __wrap_##name params { return old_##oldname args; }
#define SAME(ret, name, params, args) WRAP(OLD, ret, name, name, params, args)

struct sockaddr;
struct __res_state;
typedef struct __res_state *res_state;

SAME(void *, dlopen, (const char *file, int mode), (file, mode))
SAME(void *, dlsym, (void *handle, const char *name), (handle, name))
SAME(char *, dlerror, (void), ())
SAME(int, dlclose, (void *handle), (handle))
SAME(int, dladdr, (const void *addr, void *info), (addr, info))
SAME(int, pthread_create, (pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg),
     (t, a, fn, arg))
SAME(int, pthread_once, (pthread_once_t *once, void (*fn)(void)), (once, fn))
SAME(int, pthread_sigmask, (int how, const void *set, void *old), (how, set, old))
SAME(int, pthread_attr_setstacksize, (pthread_attr_t *a, size_t size), (a, size))
SAME(int, pthread_key_create, (pthread_key_t *key, void (*fn)(void *)), (key, fn))
SAME(int, pthread_key_delete, (pthread_key_t key), (key))
SAME(void *, pthread_getspecific, (pthread_key_t key), (key))
SAME(int, pthread_setspecific, (pthread_key_t key, const void *v), (key, v))
SAME(int, pthread_rwlock_init, (pthread_rwlock_t *l, const pthread_rwlockattr_t *a), (l, a))
SAME(int, pthread_rwlock_destroy, (pthread_rwlock_t *l), (l))
SAME(int, pthread_rwlock_rdlock, (pthread_rwlock_t *l), (l))
SAME(int, pthread_rwlock_wrlock, (pthread_rwlock_t *l), (l))
SAME(int, pthread_rwlock_unlock, (pthread_rwlock_t *l), (l))
WRAP(OLD_SETCLOCK, int, pthread_condattr_setclock, pthread_condattr_setclock,
     (pthread_condattr_t *a, clockid_t clock), (a, clock))
SAME(void, pthread_testcancel, (void), ())
/* jumpguard.c's: in libpthread before 2.34, in libc since (with a new
 * default version, GLIBC_2.34, beside the old one). */
SAME(void, _pthread_cleanup_push, (void *buf, void (*fn)(void *), void *arg), (buf, fn, arg))
SAME(void, _pthread_cleanup_pop, (void *buf, int execute), (buf, execute))
SAME(int, sem_init, (sem_t *s, int shared, unsigned value), (s, shared, value))
SAME(int, sem_post, (sem_t *s), (s))
SAME(int, sem_wait, (sem_t *s), (s))

/* The resolver's public names were macros for __res_* before 2.34, and
 * these three lived in libresolv, not libc. The library does not name
 * libresolv in DT_NEEDED: loading it costs every meshed process's start
 * about 0.2 ms here, and only DNS discovery and DNS capture call them.
 * The old names are weak references: libc >= 2.34 defines them (its
 * compatibility symbols), and on an older glibc they are looked up in
 * libresolv, opened on the first call (DNS on, so at most once a process;
 * tests/deploy/t_bullseye.sh runs discovery under glibc 2.31). */
#define RTLD_NOW_LOCAL 2        /* RTLD_NOW, and not RTLD_GLOBAL */
OLD_SYMBOL(dlvsym, OLD);
void *old_dlvsym(void *handle, const char *name, const char *version);

/* NAME at OLD, from libresolv; NULL if it cannot be had. */
static void *resolver_symbol(const char *name)
{
    static void *lib;
    void *h = __atomic_load_n(&lib, __ATOMIC_ACQUIRE);
    if (!h) {
        h = old_dlopen("libresolv.so.2", RTLD_NOW_LOCAL);
        if (!h)
            return NULL;
        __atomic_store_n(&lib, h, __ATOMIC_RELEASE);    /* a second open of it is the same handle */
    }
    return old_dlvsym(h, name, OLD);
}

#define RESOLVER(ret, name, oldname, params, args)                                   \
    OLD_SYMBOL(oldname, OLD);                                                        \
    __attribute__((weak)) ret old_##oldname params;                                  \
    HIDDEN ret __wrap_##name params;                                                 \
    ret __wrap_##name params                                                         \
    {                                                                                \
        static ret(*fn) params;                                                      \
        ret(*f) params = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);                     \
        if (!f) {                                                                    \
            f = old_##oldname ? old_##oldname                                        \
                              : (ret(*) params)resolver_symbol(#oldname);            \
            if (!f) {                                                                \
                errno = ENOSYS;                                                      \
                return -1;                                                           \
            }                                                                        \
            __atomic_store_n(&fn, f, __ATOMIC_RELEASE);                              \
        }                                                                            \
        return f args;                                                               \
    }

RESOLVER(int, res_nquery, __res_nquery,
         (res_state st, const char *name, int class, int type, unsigned char *answer, int len),
         (st, name, class, type, answer, len))
RESOLVER(int, res_nmkquery, __res_nmkquery,
         (res_state st, int op, const char *name, int class, int type, const unsigned char *data,
          int datalen, const unsigned char *newrr, unsigned char *buf, int buflen),
         (st, op, name, class, type, data, datalen, newrr, buf, buflen))
RESOLVER(int, dn_expand, __dn_expand,
         (const unsigned char *msg, const unsigned char *eom, const unsigned char *src, char *dst,
          int dstsiz),
         (msg, eom, src, dst, dstsiz))

/* stat and friends became functions in 2.33; before, the header made them
 * calls of __xstat and friends with a structure version. */
OLD_SYMBOL(__xstat, OLD);
OLD_SYMBOL(__fxstat, OLD);
OLD_SYMBOL(__lxstat, OLD);
OLD_SYMBOL(__fxstatat, OLD_FXSTATAT);
int old___xstat(int ver, const char *path, struct stat *st);
int old___fxstat(int ver, int fd, struct stat *st);
int old___lxstat(int ver, const char *path, struct stat *st);
int old___fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags);

HIDDEN int __wrap_stat(const char *path, struct stat *st);
HIDDEN int __wrap_fstat(int fd, struct stat *st);
HIDDEN int __wrap_lstat(const char *path, struct stat *st);
HIDDEN int __wrap_fstatat(int dirfd, const char *path, struct stat *st, int flags);
int __wrap_stat(const char *path, struct stat *st) { return old___xstat(STAT_VER, path, st); }
int __wrap_fstat(int fd, struct stat *st) { return old___fxstat(STAT_VER, fd, st); }
int __wrap_lstat(const char *path, struct stat *st) { return old___lxstat(STAT_VER, path, st); }
int __wrap_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
    return old___fxstatat(STAT_VER, dirfd, path, st, flags);
}

/* Newer than 2.17: the system calls themselves, made here (libc's
 * syscall() is one of the shim's hooks, and the TLS module and the command
 * have no real_ trampolines). */
static long raw_syscall3(long n, long a, long b, long c)
{
    long r;
#if defined(__x86_64__)
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
#else
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    r = x0;
#endif
    if (r < 0 && r > -4096) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

HIDDEN ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags)
{
    return raw_syscall3(SYS_getrandom, (long)buf, (long)len, (long)flags);
}

HIDDEN int __wrap_getentropy(void *buf, size_t len);
int __wrap_getentropy(void *buf, size_t len)
{
    if (len > 256) {
        errno = EIO;
        return -1;
    }
    unsigned char *p = buf;
    while (len) {
        long n = raw_syscall3(SYS_getrandom, (long)p, (long)len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

HIDDEN int __wrap_memfd_create(const char *name, unsigned flags);
int __wrap_memfd_create(const char *name, unsigned flags)
{
    return (int)raw_syscall3(SYS_memfd_create, (long)name, (long)flags, 0);
}

#ifdef GLIBC_COMPAT_START
/* The command's start: crt1.o of glibc >= 2.34 calls __libc_start_main@2.34
 * with no init function, because that libc runs the program's constructors
 * itself; the old entry point runs only the init function it is given. So
 * it is given one that runs them (a libc >= 2.34 then calls it instead). */
OLD_SYMBOL(__libc_start_main, OLD);
typedef int (*main_fn)(int, char **, char **);
int old___libc_start_main(main_fn main, int argc, char **argv, void (*init)(int, char **, char **),
                          void (*fini)(void), void (*rtld_fini)(void), void *stack_end);
extern void (*__preinit_array_start[])(int, char **, char **) __attribute__((weak));
extern void (*__preinit_array_end[])(int, char **, char **) __attribute__((weak));
extern void (*__init_array_start[])(int, char **, char **) __attribute__((weak));
extern void (*__init_array_end[])(int, char **, char **) __attribute__((weak));

static void run_constructors(int argc, char **argv, char **envp)
{
    for (size_t i = 0; __preinit_array_start && &__preinit_array_start[i] < __preinit_array_end; i++)
        __preinit_array_start[i](argc, argv, envp);
    for (size_t i = 0; __init_array_start && &__init_array_start[i] < __init_array_end; i++)
        __init_array_start[i](argc, argv, envp);
}

HIDDEN int __wrap___libc_start_main(main_fn main, int argc, char **argv,
                                    void (*init)(int, char **, char **), void (*fini)(void),
                                    void (*rtld_fini)(void), void *stack_end);
int __wrap___libc_start_main(main_fn main, int argc, char **argv,
                             void (*init)(int, char **, char **), void (*fini)(void),
                             void (*rtld_fini)(void), void *stack_end)
{
    return old___libc_start_main(main, argc, argv, init ? init : run_constructors, fini, rtld_fini,
                                 stack_end);
}
#endif /* GLIBC_COMPAT_START */

#endif
