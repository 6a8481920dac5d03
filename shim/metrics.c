/*
 * metrics.c — this process's stats file (see metrics.h and
 * include/meshim/stats.h).
 *
 * Attaching: the first count takes attach_lock, makes the file under a
 * temporary name (so a reader never maps half a header), fills the names of
 * every service, endpoint and inbound port of the registry, renames it to
 * <pid>.stats and publishes the map. Later counts find the map with one
 * acquire load and add to it with relaxed atomics.
 */
#include "metrics.h"

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

#include "log.h"
#include "mesh.h"

enum attach_state { UNTRIED, ATTACHED, OFF };

static struct stats_header *map;            /* acquire/release: NULL until attached */
static int state = UNTRIED;
static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
/* Slot of the first endpoint of each service (the registry's order); made
 * once in the first process and kept across fork. */
static uint32_t *first_endpoint;
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

/* The names of every slot, then the counts that publish them. */
static void fill(struct stats_header *h, const struct registry *reg)
{
    size_t nsvc = reg->n_services < STATS_MAX_SERVICES ? reg->n_services : STATS_MAX_SERVICES;
    uint32_t nep = 0;
    for (size_t s = 0; s < nsvc; s++) {
        const struct service *svc = &reg->services[s];
        copy_name(service_slots(h)[s].name, sizeof(service_slots(h)[s].name), svc->name);
        for (size_t e = 0; e < svc->n_endpoints && first_endpoint[s] + e < STATS_MAX_ENDPOINTS; e++) {
            struct stats_endpoint *ep = &endpoint_slots(h)[first_endpoint[s] + e];
            copy_name(ep->label, sizeof(ep->label), svc->endpoints[e].label);
            ep->service = (uint32_t)s;
            nep = first_endpoint[s] + (uint32_t)e + 1;
        }
    }
    size_t nin = reg->cfg->n_inbound < STATS_MAX_INBOUND ? reg->cfg->n_inbound : STATS_MAX_INBOUND;
    for (size_t i = 0; i < nin; i++)
        inbound_slots(h)[i].port = reg->cfg->inbound[i].port;
    __atomic_store_n(&h->n_services, (uint32_t)nsvc, __ATOMIC_RELEASE);
    __atomic_store_n(&h->n_endpoints, nep, __ATOMIC_RELEASE);
    __atomic_store_n(&h->n_inbound, (uint32_t)nin, __ATOMIC_RELEASE);
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
static struct stats_header *create(const char *dir, const struct registry *reg)
{
    char path[512], tmp[512];
    int pid = (int)getpid();
    snprintf(path, sizeof(path), "%s/%d.stats", dir, pid);
    snprintf(tmp, sizeof(tmp), "%s/.%d.stats.tmp", dir, pid);
    if (!make_dir(dir))
        return NULL;
    /* Raw system calls: the close hook must not see the shim's own
     * descriptor. */
    int fd = (int)syscall(SYS_openat, AT_FDCWD, tmp,
                          O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return NULL;
    size_t size = stats_file_size();
    void *m = MAP_FAILED;
    if (ftruncate(fd, (off_t)size) == 0)
        m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = errno;
    syscall(SYS_close, fd);
    if (m == MAP_FAILED) {
        unlink(tmp);
        errno = err;
        return NULL;
    }
    init_header(m);
    fill(m, reg);
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

static bool plan_slots(const struct registry *reg)
{
    if (first_endpoint)
        return true;
    first_endpoint = calloc(reg->n_services + 1, sizeof(*first_endpoint));
    if (!first_endpoint)
        return false;
    uint32_t next = 0;
    for (size_t s = 0; s < reg->n_services; s++) {
        first_endpoint[s] = next;
        next += (uint32_t)reg->services[s].n_endpoints;
    }
    return true;
}

static struct stats_header *attach(void)
{
    pthread_mutex_lock(&attach_lock);
    struct registry *reg = mesh_registry();
    if (state == UNTRIED && reg) {
        const char *dir = reg->cfg->stats_dir;
        struct stats_header *h = NULL;
        int saved = errno;
        if (dir && strcmp(dir, "off") != 0 && plan_slots(reg)) {
            h = create(dir, reg);
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

/* The slot of a service, or NULL (not counted: more services than slots). */
static struct stats_service *service_stats(struct stats_header *h, const struct service *svc)
{
    struct registry *reg = mesh_registry();
    size_t s = (size_t)(svc - reg->services);
    return s < h->n_services ? &service_slots(h)[s] : NULL;
}

static struct stats_endpoint *endpoint_stats(struct stats_header *h, const struct service *svc,
                                             size_t i)
{
    struct registry *reg = mesh_registry();
    size_t s = (size_t)(svc - reg->services);
    if (s >= h->n_services)
        return NULL;
    size_t slot = first_endpoint[s] + i;
    return slot < h->n_endpoints ? &endpoint_slots(h)[slot] : NULL;
}

bool metrics_on(void)
{
    return stats() != NULL;
}

enum stats_result metrics_result_of(int err)
{
    if (!err)
        return RESULT_OK;
    return err == ETIMEDOUT ? RESULT_TIMEOUT : RESULT_REFUSED;
}

void metrics_attempt(const struct service *svc, size_t i, enum stats_result r, uint64_t latency_ns)
{
    struct stats_header *h = stats();
    struct stats_endpoint *ep = h ? endpoint_stats(h, svc, i) : NULL;
    if (!ep)
        return;
    add(&ep->connections[r], 1);
    if (latency_ns)
        observe(&ep->connect, latency_ns);
}

void metrics_ejected(const struct service *svc, size_t i, bool ejected)
{
    struct stats_header *h = stats();
    struct stats_endpoint *ep = h ? endpoint_stats(h, svc, i) : NULL;
    if (!ep)
        return;
    if (ejected)
        add(&ep->ejections, 1);
    __atomic_store_n(&ep->ejected, ejected ? 1u : 0u, __ATOMIC_RELAXED);
}

void metrics_retry(const struct service *svc)
{
    struct stats_header *h = stats();
    struct stats_service *s = h ? service_stats(h, svc) : NULL;
    if (s)
        add(&s->retries, 1);
}

void metrics_unrouted(const struct service *svc, enum stats_result r)
{
    struct stats_header *h = stats();
    struct stats_service *s = h ? service_stats(h, svc) : NULL;
    if (s)
        add(&s->connections[r], 1);
}

void metrics_connected(const struct service *svc, uint64_t latency_ns)
{
    struct stats_header *h = stats();
    struct stats_service *s = h ? service_stats(h, svc) : NULL;
    if (!s)
        return;
    __atomic_add_fetch(&s->active, 1, __ATOMIC_RELAXED);
    observe(&s->connect, latency_ns);
}

void metrics_closed(const struct service *svc, uint64_t sent, uint64_t received)
{
    struct stats_header *h = stats();
    struct stats_service *s = h ? service_stats(h, svc) : NULL;
    if (!s)
        return;
    __atomic_sub_fetch(&s->active, 1, __ATOMIC_RELAXED);
    add(&s->bytes_sent, sent);
    add(&s->bytes_received, received);
}

void metrics_inbound(uint16_t port, enum stats_result r)
{
    struct stats_header *h = stats();
    if (!h)
        return;
    for (uint32_t i = 0; i < h->n_inbound; i++)
        if (inbound_slots(h)[i].port == port) {
            add(&inbound_slots(h)[i].connections[r], 1);
            return;
        }
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
