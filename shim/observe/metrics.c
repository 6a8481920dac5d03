/*
 * metrics.c — this process's stats file (see metrics.h and
 * include/meshim/stats.h).
 *
 * Attaching: the first count takes attach_lock, makes the file under a
 * temporary name (so a reader never maps half a header), renames it to
 * <pid>.stats and publishes the map. Later counts find the map with one
 * acquire load and add to it with relaxed atomics; a service, endpoint or
 * port counted for the first time takes a slot under attach_lock.
 */
#include "observe/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "libc/real.h"
#include "meshim/mesh.h"
#include "observe/log.h"

enum attach_state { UNTRIED, ATTACHED, OFF };

#define NO_SLOT UINT32_MAX          /* more than the file has room for: not counted */

static struct stats_header *map;            /* acquire/release: NULL until attached */
static int state = UNTRIED;
static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned generation;
static char map_path[512];                  /* the file this process made */

static struct stats_service *service_slots(struct stats_header *h)
{
    return (struct stats_service *)((char *)h + h->off_services);
}

static struct stats_endpoint *endpoint_slots(struct stats_header *h)
{
    return (struct stats_endpoint *)((char *)h + h->off_endpoints);
}

static struct stats_inbound *inbound_slots(struct stats_header *h)
{
    return (struct stats_inbound *)((char *)h + h->off_inbound);
}

static void copy_name(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

static void init_header(struct stats_header *h)
{
    memcpy(h->magic, STATS_MAGIC, sizeof(h->magic));
    h->version = STATS_VERSION;
    h->header_size = sizeof(*h);
    h->file_size = stats_file_size();
    h->pid = (int32_t)getpid();
    h->max_services = STATS_MAX_SERVICES;
    h->max_endpoints = STATS_MAX_ENDPOINTS;
    h->max_inbound = STATS_MAX_INBOUND;
    h->start_ticks = proc_start_ticks(0);
    h->created_unix_ms = wall_ns() / 1000000u;
    copy_name(h->process, sizeof(h->process), program_invocation_short_name);
    h->off_services = sizeof(*h);
    h->off_endpoints = h->off_services + STATS_MAX_SERVICES * sizeof(struct stats_service);
    h->off_inbound = h->off_endpoints + STATS_MAX_ENDPOINTS * sizeof(struct stats_endpoint);
}

/* The stats folder, made if missing. Like /tmp it is shared by the
 * processes of every user: world-writable and sticky. */
static bool make_dir(const char *dir)
{
    if (mkdir(dir, 0777) == 0)
        chmod(dir, 01777);
    else if (errno != EEXIST)
        return false;       /* with mkdir's errno: the reason to report */
    struct stat st;
    if (stat(dir, &st) < 0)
        return false;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return false;
    }
    return true;
}

/* Makes, fills and publishes the file; NULL on failure (errno set). */
static struct stats_header *create(const char *dir)
{
    char path[512], tmp[512];
    int pid = (int)getpid();
    snprintf(path, sizeof(path), "%s/%d.stats", dir, pid);
    snprintf(tmp, sizeof(tmp), "%s/.%d.stats.tmp", dir, pid);
    if (!make_dir(dir))
        return NULL;
    /* Raw system calls: the close hook must not see the shim's own
     * descriptor. */
    int fd = (int)real_syscall4(SYS_openat, AT_FDCWD, tmp,
                          O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return NULL;
    size_t size = stats_file_size();
    void *m = MAP_FAILED;
    if (ftruncate(fd, (off_t)size) == 0)
        m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = errno;
    real_syscall4(SYS_close, fd, 0, 0, 0);
    if (m == MAP_FAILED) {
        unlink(tmp);
        errno = err;
        return NULL;
    }
    init_header(m);
    if (rename(tmp, path) < 0) {
        err = errno;
        munmap(m, size);
        unlink(tmp);
        errno = err;
        return NULL;
    }
    snprintf(map_path, sizeof(map_path), "%s", path);
    return m;
}

static uint32_t new_service_slot(struct stats_header *h, const char *name);
static uint32_t new_endpoint_slot(struct stats_header *h, uint32_t service, const char *label);
static bool cached(const uint64_t *cache, uint32_t *slot);
static void cache(uint64_t *cache, uint32_t slot);

/* A new file lists the services of the running config and their endpoints
 * at once (zero series rather than none); later ones get their slots when
 * first counted. Under attach_lock. */
static void list_services(struct stats_header *h, struct registry *reg)
{
    for (size_t i = 0; i < reg->n_services; i++) {
        struct service *svc = reg->services[i];
        uint32_t s;
        if (!cached(&svc->stats_slot, &s))
            cache(&svc->stats_slot, s = new_service_slot(h, svc->name));
        if (s == NO_SLOT)
            continue;
        struct endpoint_set *set = service_endpoints(svc);
        for (size_t e = 0; e < set->n; e++) {
            uint32_t slot;
            if (!cached(&set->ep[e]->stats_slot, &slot))
                cache(&set->ep[e]->stats_slot, new_endpoint_slot(h, s, set->ep[e]->label));
        }
        endpoint_set_unref(set);
    }
}

static struct stats_header *attach(void)
{
    pthread_mutex_lock(&attach_lock);
    struct registry *reg = mesh_registry();
    if (state == UNTRIED && reg) {
        const char *dir = reg->cfg->stats_dir;
        struct stats_header *h = NULL;
        int saved = errno;
        if (dir && strcmp(dir, "off") != 0) {
            h = create(dir);
            if (h)
                list_services(h, reg);
            if (!h)
                log_warn("stats: cannot make %s/%d.stats: %s; this process keeps no stats", dir,
                         (int)getpid(), strerror(errno));
        }
        errno = saved;
        __atomic_store_n(&state, h ? ATTACHED : OFF, __ATOMIC_RELAXED);
        __atomic_store_n(&map, h, __ATOMIC_RELEASE);
    }
    struct stats_header *h = __atomic_load_n(&map, __ATOMIC_ACQUIRE);
    pthread_mutex_unlock(&attach_lock);
    return h;
}

static inline struct stats_header *stats(void)
{
    struct stats_header *h = __atomic_load_n(&map, __ATOMIC_ACQUIRE);
    if (__builtin_expect(h != NULL, 1))
        return h;
    return __atomic_load_n(&state, __ATOMIC_RELAXED) == OFF ? NULL : attach();
}

static inline void add(uint64_t *counter, uint64_t n)
{
    __atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

static void observe(struct stats_histogram *hist, uint64_t ns)
{
    uint64_t us = ns / 1000u;
    add(&hist->buckets[stats_bucket_of(us)], 1);
    add(&hist->sum_us, us);
    add(&hist->count, 1);
}

/* ---------------------------------------------------------------- slots -- */

/* Services, endpoints and inbound ports get their slot the first time they
 * are counted (a reload or DNS brings new ones at any time); the slot is
 * cached in the object, tagged with the file's generation (a fork child's
 * file numbers its slots anew). An endpoint that comes back after it was
 * dropped finds its old slot by name. */
static bool cached(const uint64_t *cache, uint32_t *slot)
{
    uint64_t v = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if ((uint32_t)(v >> 32) != generation + 1)
        return false;
    *slot = (uint32_t)v;
    return true;
}

static void cache(uint64_t *cache, uint32_t slot)
{
    __atomic_store_n(cache, (uint64_t)(generation + 1) << 32 | slot, __ATOMIC_RELEASE);
}

/* Names go in first; the count that makes them visible is stored last. */
static uint32_t new_service_slot(struct stats_header *h, const char *name)
{
    uint32_t n = h->n_services;
    for (uint32_t i = 0; i < n; i++)
        if (strncmp(service_slots(h)[i].name, name, sizeof(service_slots(h)[i].name) - 1) == 0)
            return i;
    if (n >= h->max_services)
        return NO_SLOT;
    copy_name(service_slots(h)[n].name, sizeof(service_slots(h)[n].name), name);
    __atomic_store_n(&h->n_services, n + 1, __ATOMIC_RELEASE);
    return n;
}

static uint32_t new_endpoint_slot(struct stats_header *h, uint32_t service, const char *label)
{
    uint32_t n = h->n_endpoints;
    for (uint32_t i = 0; i < n; i++)
        if (endpoint_slots(h)[i].service == service && strcmp(endpoint_slots(h)[i].label, label) == 0)
            return i;
    if (n >= h->max_endpoints)
        return NO_SLOT;
    struct stats_endpoint *ep = &endpoint_slots(h)[n];
    copy_name(ep->label, sizeof(ep->label), label);
    ep->service = service;
    __atomic_store_n(&h->n_endpoints, n + 1, __ATOMIC_RELEASE);
    return n;
}

static uint32_t service_slot(struct stats_header *h, struct service *svc)
{
    uint32_t s;
    if (cached(&svc->stats_slot, &s))
        return s;
    pthread_mutex_lock(&attach_lock);
    if (!cached(&svc->stats_slot, &s)) {
        s = new_service_slot(h, svc->name);
        cache(&svc->stats_slot, s);
    }
    pthread_mutex_unlock(&attach_lock);
    return s;
}

/* The slot of a service, or NULL (not counted: more services than slots). */
static struct stats_service *service_stats(struct stats_header *h, struct service *svc)
{
    uint32_t s = service_slot(h, svc);
    return s == NO_SLOT ? NULL : &service_slots(h)[s];
}

static struct stats_endpoint *endpoint_stats(struct stats_header *h, struct service *svc,
                                             struct endpoint *ep)
{
    uint32_t e;
    if (!cached(&ep->stats_slot, &e)) {
        uint32_t s = service_slot(h, svc);
        pthread_mutex_lock(&attach_lock);
        if (!cached(&ep->stats_slot, &e)) {
            e = s == NO_SLOT ? NO_SLOT : new_endpoint_slot(h, s, ep->label);
            cache(&ep->stats_slot, e);
        }
        pthread_mutex_unlock(&attach_lock);
    }
    return e == NO_SLOT ? NULL : &endpoint_slots(h)[e];
}

bool metrics_on(void)
{
    return stats() != NULL;
}

enum stats_result metrics_result_of(int err)
{
    if (!err)
        return RESULT_OK;
    /* ECONNRESET before any byte: only a TLS handshake or identity failure. */
    return err == ETIMEDOUT ? RESULT_TIMEOUT : err == ECONNRESET ? RESULT_TLS_ERROR : RESULT_REFUSED;
}

void metrics_attempt(struct service *svc, struct endpoint *ep, enum stats_result r,
                     uint64_t latency_ns)
{
    struct stats_header *h = stats();
    struct stats_endpoint *slot = h ? endpoint_stats(h, svc, ep) : NULL;
    if (!slot)
        return;
    add(&slot->connections[r], 1);
    if (latency_ns)
        observe(&slot->connect, latency_ns);
}

void metrics_ejected(struct service *svc, struct endpoint *ep, bool ejected)
{
    struct stats_header *h = stats();
    struct stats_endpoint *slot = h ? endpoint_stats(h, svc, ep) : NULL;
    if (!slot)
        return;
    if (ejected)
        add(&slot->ejections, 1);
    __atomic_store_n(&slot->ejected, ejected ? 1u : 0u, __ATOMIC_RELAXED);
}

void metrics_retry(struct service *svc)
{
    struct stats_header *h = stats();
    struct stats_service *s = h ? service_stats(h, svc) : NULL;
    if (s)
        add(&s->retries, 1);
}

void metrics_unrouted(struct service *svc, enum stats_result r)
{
    struct stats_header *h = stats();
    struct stats_service *s = h ? service_stats(h, svc) : NULL;
    if (s)
        add(&s->connections[r], 1);
}

void metrics_connected(struct service *svc, uint64_t latency_ns)
{
    struct stats_header *h = stats();
    struct stats_service *s = h ? service_stats(h, svc) : NULL;
    if (!s)
        return;
    __atomic_add_fetch(&s->active, 1, __ATOMIC_RELAXED);
    observe(&s->connect, latency_ns);
}

void metrics_closed(struct service *svc, uint64_t sent, uint64_t received)
{
    struct stats_header *h = stats();
    struct stats_service *s = h ? service_stats(h, svc) : NULL;
    if (!s)
        return;
    __atomic_sub_fetch(&s->active, 1, __ATOMIC_RELAXED);
    add(&s->bytes_sent, sent);
    add(&s->bytes_received, received);
}

static struct stats_inbound *inbound_stats(struct stats_header *h, uint16_t port)
{
    uint32_t n = __atomic_load_n(&h->n_inbound, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++)
        if (inbound_slots(h)[i].port == port)
            return &inbound_slots(h)[i];
    struct stats_inbound *in = NULL;
    pthread_mutex_lock(&attach_lock);
    n = h->n_inbound;
    for (uint32_t i = 0; i < n && !in; i++)
        if (inbound_slots(h)[i].port == port)
            in = &inbound_slots(h)[i];
    if (!in && n < h->max_inbound) {
        in = &inbound_slots(h)[n];
        in->port = port;
        __atomic_store_n(&h->n_inbound, n + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&attach_lock);
    return in;
}

void metrics_inbound(uint16_t port, enum stats_result r)
{
    struct stats_header *h = stats();
    struct stats_inbound *in = h ? inbound_stats(h, port) : NULL;
    if (in)
        add(&in->connections[r], 1);
}

void metrics_handshake(enum stats_direction d, enum stats_result r)
{
    struct stats_header *h = stats();
    if (h)
        add(&h->tls_handshakes[d][r], 1);
}

void metrics_exit(void)
{
    /* Readers skip the files of dead processes anyway: removing ours at
     * exit keeps a host that runs many short meshed programs from filling
     * the folder (a process that dies otherwise is cleaned up by them). */
    if (__atomic_load_n(&map, __ATOMIC_ACQUIRE) && map_path[0])
        unlink(map_path);
}

unsigned metrics_generation(void)
{
    return generation;
}

void metrics_atfork_child(void)
{
    generation++;
    struct stats_header *h = __atomic_load_n(&map, __ATOMIC_RELAXED);
    if (h)
        munmap(h, stats_file_size());
    map = NULL;
    map_path[0] = '\0';
    state = UNTRIED;
    pthread_mutex_init(&attach_lock, NULL);
}
