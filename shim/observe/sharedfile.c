/*
 * sharedfile.c — mapping the host's endpoint table (see sharedfile.h).
 *
 * Opening: in the checked folder (files_open_dir), the table is opened
 * without following a symlink and used only when it is a regular file of
 * this user with one link, mode 0600 and this build's size and header. A
 * missing table is made under a random name (files_create_private), sized,
 * given its header and renamed into place with RENAME_NOREPLACE, so that
 * two processes starting together end up on the same file and nobody maps
 * half a header. The map lives as long as the process (fork children share
 * it: that is the point).
 */
#include "observe/sharedfile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "libc/jumpguard.h"
#include "libc/real.h"
#include "meshim/mesh.h"
#include "observe/files.h"
#include "observe/log.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#endif

enum attach_state { UNTRIED, ATTACHED, OFF };

static struct shared_header *table;         /* acquire/release: NULL until attached */
static int state = UNTRIED;
static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
static int32_t my_pid;
static int full_warned;

int32_t shared_pid(void)
{
    int32_t pid = __atomic_load_n(&my_pid, __ATOMIC_RELAXED);
    if (!pid) {
        pid = (int32_t)getpid();
        __atomic_store_n(&my_pid, pid, __ATOMIC_RELAXED);
    }
    return pid;
}

/* The existing table, checked; NULL with the reason in why. */
static struct shared_header *open_existing(int dfd, char *why, size_t len)
{
    int fd = openat(dfd, SHARED_FILE, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        snprintf(why, len, "%s", errno == ELOOP ? "a symlink" : strerror(errno));
        return NULL;
    }
    struct stat st;
    void *m = MAP_FAILED;
    if (fstat(fd, &st) < 0)
        snprintf(why, len, "%s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(why, len, "not a regular file");
    else if (st.st_uid != geteuid())
        snprintf(why, len, "owned by uid %u, not this user (%u)", (unsigned)st.st_uid,
                 (unsigned)geteuid());
    else if (st.st_mode & 077)
        snprintf(why, len, "mode %03o: other users may read or write it", st.st_mode & 0777);
    else if (st.st_nlink != 1)
        snprintf(why, len, "it has %u links", (unsigned)st.st_nlink);
    else if ((size_t)st.st_size != shared_file_size())
        snprintf(why, len, "%lld bytes, not %zu: another version of meshim?",
                 (long long)st.st_size, shared_file_size());
    /* Made whole by create (below); one an older build made is sparse, and
     * allocated here. Not asked again of a whole one: on ext4, 90 us of each
     * process's first connect. */
    else if ((uint64_t)st.st_blocks * 512 < shared_file_size() &&
             !files_allocate(fd, 0, shared_file_size(), shared_file_size()))
        snprintf(why, len, "%s", strerror(errno));
    else if ((m = mmap(NULL, shared_file_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
             MAP_FAILED)
        snprintf(why, len, "%s", strerror(errno));
    else if (!shared_header_ok(m)) {
        snprintf(why, len, "its header is not this version's");
        munmap(m, shared_file_size());
        m = MAP_FAILED;
    }
    real_close(fd);
    return m == MAP_FAILED ? NULL : m;
}

/* A new table put in place; NULL and errno EEXIST when another process
 * was first (then open_existing). */
static struct shared_header *create(int dfd, char *why, size_t len)
{
    char tmp[64];
    struct stat st;
    int fd = files_create_private(dfd, ".shared", 0600, tmp, sizeof(tmp), &st);
    void *m = MAP_FAILED;
    /* Allocated whole (files_allocate; 736 KiB once per user): its entries
     * are written wherever their keys hash. */
    size_t size = shared_file_size();
    if (fd >= 0 && ftruncate(fd, (off_t)size) == 0 && files_allocate(fd, 0, size, size))
        m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = errno;
    if (fd >= 0)
        real_close(fd);
    if (m != MAP_FAILED) {
        shared_init(m, wall_ns() / 1000000u);
        /* renameat2 by number: glibc has its wrapper only since 2.28. */
        if (real_syscall((long)SYS_renameat2, (long)dfd, (long)tmp, (long)dfd, (long)SHARED_FILE,
                         (long)RENAME_NOREPLACE, 0L) == 0)
            return m;
        err = errno;
        munmap(m, shared_file_size());
    }
    if (fd >= 0)
        unlinkat(dfd, tmp, 0);
    snprintf(why, len, "%s", strerror(err));
    errno = err;
    return NULL;
}

static struct shared_header *attach_in(const char *dir, char *why, size_t len)
{
    struct stat dst;
    int dfd = files_open_dir(dir, getauxval(AT_SECURE) != 0, &dst, why, len);
    if (dfd < 0)
        return NULL;
    struct shared_header *h = open_existing(dfd, why, len);
    if (!h && errno == ENOENT) {
        h = create(dfd, why, len);
        if (!h && errno == EEXIST)
            h = open_existing(dfd, why, len);
    }
    real_close(dfd);
    return h;
}

static struct shared_header *attach(const struct mesh_config *cfg)
{
    struct signals_held held;       /* a file made and mapped under the lock */
    signals_hold(&held);
    pthread_mutex_lock(&attach_lock);
    if (state == UNTRIED) {
        int saved = errno;
        char dir[512], why[200];
        config_shared_dir(cfg, dir, sizeof(dir));   /* stats off: the table still */
        struct shared_header *h = attach_in(dir, why, sizeof(why));
        if (!h)
            log_warn("shared state: not using %s/%s: %s; this process keeps its endpoint "
                     "state to itself (stats_dir names another folder, shared_state = off "
                     "turns this off)", dir, SHARED_FILE, why);
        errno = saved;
        __atomic_store_n(&state, h ? ATTACHED : OFF, __ATOMIC_RELAXED);
        __atomic_store_n(&table, h, __ATOMIC_RELEASE);
    }
    struct shared_header *h = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
    pthread_mutex_unlock(&attach_lock);
    signals_release(&held);
    return h;
}

static struct shared_header *shared_table(void)
{
    struct registry *reg = mesh_registry();
    if (!reg || !reg->cfg->shared_state)
        return NULL;
    struct shared_header *h = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
    if (__builtin_expect(h != NULL, 1))
        return h;
    return __atomic_load_n(&state, __ATOMIC_RELAXED) == OFF ? NULL : attach(reg->cfg);
}

struct shared_entry *shared_entry_of(const struct service *svc, struct endpoint *ep, uint64_t now)
{
    struct shared_header *h = shared_table();
    if (!h)
        return NULL;
    uint64_t key = __atomic_load_n(&ep->shared_key, __ATOMIC_RELAXED);
    if (!key) {
        key = shared_key(svc->name, &ep->addr);
        __atomic_store_n(&ep->shared_key, key, __ATOMIC_RELAXED);
    }
    struct shared_entry *e = __atomic_load_n(&ep->shared, __ATOMIC_ACQUIRE);
    if (e && __atomic_load_n(&e->key, __ATOMIC_ACQUIRE) == key) {
        shared_touch(e, now / 1000000u);
        return e;
    }
    e = shared_find(h, key, svc->name, ep->label, now / 1000000u);
    if (!e) {
        if (!__atomic_exchange_n(&full_warned, 1, __ATOMIC_RELAXED))
            log_warn("shared state: the table has no room for %s %s (%u entries in use near "
                     "it); such endpoints keep their state in the process",
                     svc->name, ep->label, SHARED_PROBE);
        return NULL;
    }
    __atomic_store_n(&ep->shared, e, __ATOMIC_RELEASE);
    return e;
}

void shared_atfork_child(void)
{
    my_pid = 0;
    pthread_mutex_init(&attach_lock, NULL);
}
