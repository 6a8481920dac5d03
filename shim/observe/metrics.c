/*
 * metrics.c — this process's stats file (see metrics.h and
 * include/meshim/stats.h).
 *
 * Attaching: the first count takes attach_lock, makes the file under a
 * random temporary name in a folder it has checked (observe/files.c; so a
 * reader never maps half a header, and no other user can have planted
 * it), renames it to <pid>.stats and publishes the map. Offsets and slot
 * counts are this process's own (private memory); the shared file is only
 * ever written. Later counts find the map with one
 * acquire load and add to it with relaxed atomics; a service, endpoint or
 * port counted for the first time takes a slot under attach_lock.
 */
#include "observe/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "libc/jumpguard.h"
#include "libc/ownfd.h"
#include "libc/real.h"
#include "meshim/mesh.h"
#include "meshim/util.h"
#include "observe/files.h"
#include "observe/log.h"

/* SHORT: the file could not be made for want of a descriptor (a program
 * at its limit): tried again, once a second at most, rather than given up
 * for the process's life as for any other reason. */
enum attach_state { UNTRIED, ATTACHED, OFF, SHORT };
#define SHORT_RETRY_NS (1000000000ull)

#define NO_SLOT UINT32_MAX          /* more than the file has room for: not counted */

static struct stats_header *map;            /* acquire/release: NULL until attached */
static int state = UNTRIED;
static uint64_t short_until_ns;             /* SHORT: no try before then */
static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned generation;

/* What this process knows of its own file, kept in private memory: the
 * file is readable by others and is never read back for a size, an offset
 * or a count (review finding 1). Slot counts change under attach_lock. */
static uint32_t n_services, n_endpoints, n_inbound, n_requests;
static char map_dir[512];                   /* the folder, and the file's name in it */
static char map_name[32];
static dev_t map_dir_dev, map_file_dev;
static ino_t map_dir_ino, map_file_ino;

static struct stats_service *service_slots(struct stats_header *h)
{
    return (struct stats_service *)((char *)h + STATS_OFF_SERVICES);
}

static struct stats_endpoint *endpoint_slots(struct stats_header *h)
{
    return (struct stats_endpoint *)((char *)h + STATS_OFF_ENDPOINTS);
}

static struct stats_inbound *inbound_slots(struct stats_header *h)
{
    return (struct stats_inbound *)((char *)h + STATS_OFF_INBOUND);
}

static struct stats_requests *request_slots(struct stats_header *h)
{
    return (struct stats_requests *)((char *)h + STATS_OFF_REQUESTS);
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
    h->off_services = STATS_OFF_SERVICES;
    h->off_endpoints = STATS_OFF_ENDPOINTS;
    h->off_inbound = STATS_OFF_INBOUND;
    h->off_requests = STATS_OFF_REQUESTS;
}

/* Sizes and maps a new private file; MAP_FAILED on failure (errno set).
 * The file is sparse, 1.2 MB of room of which a process writes a few
 * pages, and every range is allocated before it is first written
 * (files_allocate): the header here, each slot when it is taken (reserve). */
static void *map_new(int fd, size_t size)
{
    if (ftruncate(fd, (off_t)size) < 0 || !files_allocate(fd, 0, sizeof(struct stats_header), size))
        return MAP_FAILED;
    return mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
}

/* The files of processes that ended without their exit running (SIGKILL,
 * a crash, glibc's daemon() ending the parent with its own _exit) stay
 * until `meshim stats` or the exporter next reads the folder; on a host
 * where neither runs they pile up, about 12 KB each on disk (a test
 * machine's folder held 10,424). So each process that makes its file
 * removes a few: of the names of one directory read, up to PRUNE_MAX
 * whose pid no longer exists. The first connection of a process pays 0.2
 * ms at most, and as more processes start than die unseen, the folder
 * empties over time. A pid that another process has taken since is left
 * to the readers, which compare start times. */
#define PRUNE_MAX 16                /* unlinks (~10 us each on ext4): bounded */

struct prune { int self, pruned; };

static bool prune_one(int dfd, const char *name, void *arg)
{
    struct prune *p = arg;
    bool making;
    int pid = stats_file_pid(name, &making);
    if (pid && pid != p->self && kill(pid, 0) < 0 && errno == ESRCH && unlinkat(dfd, name, 0) == 0)
        p->pruned++;
    return p->pruned < PRUNE_MAX;
}

static void prune_dead(int dfd)
{
    struct prune p = { .self = getpid(), .pruned = 0 };
    files_each_name(dfd, 1, prune_one, &p);     /* one read: a few hundred names */
}

/* Makes, fills and publishes <dir>/<pid>.stats; NULL with the reason in
 * why. The folder must be trustworthy (files_open_dir) and the file is one
 * this process has just created under a random name (files_create_private)
 * before it is renamed into place, so a reader never maps half a header
 * and nobody else can have a descriptor on it. */
static struct stats_header *create(const char *dir, char *why, size_t len)
{
    struct stat dst, fst;
    int dfd = files_open_dir(dir, getauxval(AT_SECURE) != 0, &dst, why, len);
    if (dfd < 0)
        return NULL;
    char prefix[32], tmp[64], name[32];
    snprintf(name, sizeof(name), "%d.stats", (int)getpid());
    snprintf(prefix, sizeof(prefix), ".%d.stats", (int)getpid());
    int fd = files_create_private(dfd, prefix, 0644, tmp, sizeof(tmp), &fst);
    size_t size = stats_file_size();
    void *m = fd >= 0 ? map_new(fd, size) : MAP_FAILED;
    int err = errno;
    if (fd >= 0)
        real_close(fd);
    if (m != MAP_FAILED) {
        init_header(m);
        if (renameat(dfd, tmp, dfd, name) == 0) {
            snprintf(map_dir, sizeof(map_dir), "%s", dir);
            snprintf(map_name, sizeof(map_name), "%s", name);
            map_dir_dev = dst.st_dev, map_dir_ino = dst.st_ino;
            map_file_dev = fst.st_dev, map_file_ino = fst.st_ino;
            prune_dead(dfd);
            real_close(dfd);
            return m;
        }
        err = errno;
        munmap(m, size);
    }
    if (fd >= 0)
        unlinkat(dfd, tmp, 0);
    real_close(dfd);
    snprintf(why, len, "%s", strerror(err));
    return NULL;
}

/* The folder this process made its file in, opened, if it is still that
 * folder and still holds that file; -1 otherwise. */
static int own_folder(void)
{
    int dfd = open(map_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (dfd < 0)
        return -1;
    if (fstat(dfd, &st) == 0 && st.st_dev == map_dir_dev && st.st_ino == map_dir_ino &&
        fstatat(dfd, map_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == map_file_dev &&
        st.st_ino == map_file_ino)
        return dfd;
    real_close(dfd);
    return -1;
}

/* The file's regions, whose slots are taken in order from the first: how
 * far each is allocated is kept here (private memory; a fork child's new
 * file starts again). */
enum region { R_SERVICES, R_ENDPOINTS, R_INBOUND, R_REQUESTS, R_COUNT };
static const size_t REGION_START[R_COUNT] = { STATS_OFF_SERVICES, STATS_OFF_ENDPOINTS, STATS_OFF_INBOUND,
                                              STATS_OFF_REQUESTS };
static size_t allocated[R_COUNT];           /* bytes from the region's start */

/* Allocates the file's blocks under the slot at [at, at + len) of region r
 * before it is first written (see files_allocate): as much again as the
 * region has allocated so far, so that a config of a thousand services
 * costs a few calls, and a process of one service a page or two. The
 * descriptor was closed once the file was mapped (it would be one more of
 * the program's descriptors for the process's life), so the file is opened
 * again, if it is still ours. False: leave the slot unused. Under
 * attach_lock. */
static bool reserve(struct stats_header *h, enum region r, const void *at, size_t len)
{
    static bool warned;
    size_t start = REGION_START[r], end = (size_t)((const char *)at - (const char *)h) + len - start;
    size_t room = (r + 1 < R_COUNT ? REGION_START[r + 1] : stats_file_size()) - start;
    if (end <= allocated[r])
        return true;
    size_t want = end + allocated[r] < room ? end + allocated[r] : room;
    int dfd = own_folder();
    int fd = dfd >= 0 ? openat(dfd, map_name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK) : -1;
    struct stat st;
    bool ok = fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == map_file_dev && st.st_ino == map_file_ino &&
              files_allocate(fd, start + allocated[r], want - allocated[r], stats_file_size());
    int err = errno;
    if (fd >= 0)
        real_close(fd);
    if (dfd >= 0)
        real_close(dfd);
    if (ok)
        allocated[r] = want;
    else if (!warned) {
        warned = true;
        log_warn("stats: cannot grow %s/%s: %s; new series are not counted", map_dir, map_name,
                 fd >= 0 ? strerror(err) : "it is gone");
    }
    return ok;
}

static uint32_t new_service_slot(struct stats_header *h, const char *name);
static uint32_t new_endpoint_slot(struct stats_header *h, uint32_t service, const char *label);
static bool cached(const uint64_t *cache, uint32_t *slot);
static void cache(uint64_t *cache, uint32_t slot);
static bool endpoint_cached(const struct endpoint *ep, uint32_t *slot);
static void endpoint_cache(struct endpoint *ep, uint32_t slot);

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
            if (!endpoint_cached(set->ep[e], &slot))
                endpoint_cache(set->ep[e], new_endpoint_slot(h, s, set->ep[e]->label));
        }
        endpoint_set_unref(set);
    }
}

static struct stats_header *attach(void)
{
    struct signals_held held;       /* a file made and mapped under the lock */
    signals_hold(&held);
    pthread_mutex_lock(&attach_lock);
    struct registry *reg = mesh_registry();
    bool due = state == UNTRIED || (state == SHORT && now_ns() >= short_until_ns);
    if (due && reg) {
        struct stats_header *h = NULL;
        int saved = errno, next = OFF;
        char why[160], dir[512];
        config_stats_dir(reg->cfg, dir, sizeof(dir));
        if (strcmp(dir, "off") != 0) {
            h = create(dir, why, sizeof(why));
            if (h)
                list_services(h, reg);
            if (!h && ownfd_shortage()) {
                if (state == UNTRIED)
                    log_warn("stats: not writing %s/%d.stats yet: %s; tried again when a descriptor "
                             "is free", dir, (int)getpid(), why);
                next = SHORT;
                __atomic_store_n(&short_until_ns, now_ns() + SHORT_RETRY_NS, __ATOMIC_RELAXED);
            } else if (!h) {
                log_warn("stats: not writing %s/%d.stats: %s; this process keeps no stats "
                         "(stats_dir or MESHIM_STATS_DIR names another folder, off turns them off)",
                         dir, (int)getpid(), why);
            }
        }
        errno = saved;
        __atomic_store_n(&state, h ? ATTACHED : next, __ATOMIC_RELAXED);
        __atomic_store_n(&map, h, __ATOMIC_RELEASE);
    }
    struct stats_header *h = __atomic_load_n(&map, __ATOMIC_ACQUIRE);
    pthread_mutex_unlock(&attach_lock);
    signals_release(&held);
    return h;
}

static inline struct stats_header *stats(void)
{
    struct stats_header *h = __atomic_load_n(&map, __ATOMIC_ACQUIRE);
    if (__builtin_expect(h != NULL, 1))
        return h;
    int st = __atomic_load_n(&state, __ATOMIC_RELAXED);
    if (st == OFF || (st == SHORT && now_ns() < __atomic_load_n(&short_until_ns, __ATOMIC_RELAXED)))
        return NULL;
    return attach();
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

/* Endpoint slots are given back (reclaim_endpoints) when the file is full
 * and endpoints have left their services: a long-lived client of a
 * Kubernetes service sees every pod that ever backed it, and without that
 * the pods of today would not be counted once 2,048 had come and gone. An
 * endpoint's cached slot is also tagged with the number of reclaims so
 * far (`reclaims`, under attach_lock), so that after one each endpoint
 * looks its slot up again by name once: an endpoint that lost its slot,
 * and one that was refused one for want of room, then get a free one. */
#define EP_SLOT_BITS 16
#define EP_NO_SLOT ((1u << EP_SLOT_BITS) - 1)
_Static_assert(STATS_MAX_ENDPOINTS < EP_NO_SLOT, "endpoint slots need more bits");
static uint32_t reclaims;
static uint32_t free_endpoints[STATS_MAX_ENDPOINTS];    /* slots given back, not given again */
static uint32_t n_free_endpoints;

static bool endpoint_cached(const struct endpoint *ep, uint32_t *slot)
{
    uint32_t s;
    if (!cached(&ep->stats_slot, &s) ||
        s >> EP_SLOT_BITS != (__atomic_load_n(&reclaims, __ATOMIC_RELAXED) & 0xffffu))
        return false;
    s &= EP_NO_SLOT;
    *slot = s == EP_NO_SLOT ? NO_SLOT : s;
    return true;
}

static void endpoint_cache(struct endpoint *ep, uint32_t slot)
{
    uint32_t s = slot == NO_SLOT ? EP_NO_SLOT : slot;
    cache(&ep->stats_slot, (reclaims & 0xffffu) << EP_SLOT_BITS | s);
}

/* Names go in first; the count that makes them visible is stored last. */
static uint32_t new_service_slot(struct stats_header *h, const char *name)
{
    uint32_t n = n_services;
    for (uint32_t i = 0; i < n; i++)
        if (strncmp(service_slots(h)[i].name, name, sizeof(service_slots(h)[i].name) - 1) == 0)
            return i;
    if (n >= STATS_MAX_SERVICES || !reserve(h, R_SERVICES, &service_slots(h)[n], sizeof(service_slots(h)[n])))
        return NO_SLOT;
    copy_name(service_slots(h)[n].name, sizeof(service_slots(h)[n].name), name);
    n_services = n + 1;
    __atomic_store_n(&h->n_services, n + 1, __ATOMIC_RELEASE);
    return n;
}

static uint32_t endpoint_slot_named(struct stats_header *h, uint32_t service, const char *label)
{
    for (uint32_t i = 0; i < n_endpoints; i++)
        if (endpoint_slots(h)[i].service == service &&
            strncmp(endpoint_slots(h)[i].label, label, sizeof(endpoint_slots(h)[i].label) - 1) == 0)
            return i;
    return NO_SLOT;
}

static void reclaim_endpoints(struct stats_header *h);

/* A slot given back is taken first, else a new one. Its name goes in,
 * then its service, which makes readers see a slot given back again; a new
 * one, the count stored last. */
static uint32_t new_endpoint_slot(struct stats_header *h, uint32_t service, const char *label)
{
    uint32_t i = endpoint_slot_named(h, service, label);
    if (i != NO_SLOT)
        return i;
    if (!n_free_endpoints && n_endpoints >= STATS_MAX_ENDPOINTS)
        reclaim_endpoints(h);
    bool fresh = !n_free_endpoints;
    if (!fresh)
        i = free_endpoints[--n_free_endpoints];
    else if (n_endpoints < STATS_MAX_ENDPOINTS &&
             reserve(h, R_ENDPOINTS, &endpoint_slots(h)[n_endpoints], sizeof(endpoint_slots(h)[0])))
        i = n_endpoints;
    else
        return NO_SLOT;
    struct stats_endpoint *ep = &endpoint_slots(h)[i];
    copy_name(ep->label, sizeof(ep->label), label);
    __atomic_store_n(&ep->service, service, __ATOMIC_RELEASE);
    if (fresh) {
        n_endpoints = i + 1;
        __atomic_store_n(&h->n_endpoints, n_endpoints, __ATOMIC_RELEASE);
    }
    return i;
}

_Static_assert(offsetof(struct stats_endpoint, connections) % 8 == 0 && sizeof(struct stats_endpoint) % 8 == 0,
               "an endpoint slot's counters are 64-bit words to its end (retire_endpoint)");

/* The request series that name endpoint slot e end with it. */
static void free_series_of(struct stats_header *h, uint32_t e)
{
    struct stats_requests *v = request_slots(h);
    for (uint32_t i = 0; i < n_requests; i++)
        if (v[i].endpoint == e && v[i].service != STATS_SLOT_FREE)
            __atomic_store_n(&v[i].service, STATS_SLOT_FREE, __ATOMIC_RELEASE);
}

/* Gives endpoint slot e back: readers stop seeing it first, then what it
 * counted joins its service's retired totals and it is cleared. A thread
 * that looked its slot up just before may still add one count to it,
 * which the slot's next endpoint then starts with: a count, once, in a
 * slot nothing reads while it is free. */
static void retire_endpoint(struct stats_header *h, uint32_t e)
{
    struct stats_endpoint *ep = &endpoint_slots(h)[e];
    uint32_t s = ep->service;
    __atomic_store_n(&ep->service, STATS_SLOT_FREE, __ATOMIC_RELEASE);
    if (s < n_services) {
        struct stats_service *svc = &service_slots(h)[s];
        for (unsigned r = 0; r < RESULT_COUNT; r++)
            add(&svc->retired_connections[r], __atomic_load_n(&ep->connections[r], __ATOMIC_RELAXED));
        add(&svc->retired_ejections, __atomic_load_n(&ep->ejections, __ATOMIC_RELAXED));
    }
    /* Zeroed as they are added to: atomically (a late add, above). */
    __atomic_store_n(&ep->ejected, 0, __ATOMIC_RELAXED);
    for (uint64_t *c = ep->connections; c < (uint64_t *)(ep + 1); c++)
        __atomic_store_n(c, 0, __ATOMIC_RELAXED);
    memset(ep->label, 0, sizeof(ep->label));
    free_series_of(h, e);
    free_endpoints[n_free_endpoints++] = e;
}

/* Marks the slot endpoint ep of service slot s holds: the one its cache
 * names, whatever reclaim it was cached in, if the slot still bears its
 * name. */
static void mark_held(struct stats_header *h, uint32_t s, const struct endpoint *ep, bool *held)
{
    uint64_t v = __atomic_load_n(&ep->stats_slot, __ATOMIC_ACQUIRE);
    uint32_t e = (uint32_t)v & EP_NO_SLOT;
    if ((uint32_t)(v >> 32) != generation + 1 || e >= n_endpoints)
        return;
    const struct stats_endpoint *slot = &endpoint_slots(h)[e];
    if (slot->service == s && strncmp(slot->label, ep->label, sizeof(slot->label) - 1) == 0)
        held[e] = true;
}

/* The file is full: the slots of endpoints that no service of this
 * process lists any more are given back. A pass that frees none is not
 * tried again for a second (the process has that many endpoints: the
 * newest are not counted, as before); what they free goes to
 * free_endpoints. Under attach_lock (which comes before a service's lock: list_services). */
static void reclaim_endpoints(struct stats_header *h)
{
    static uint64_t fruitless_at;
    static bool told;
    uint64_t now = now_ns();
    if (fruitless_at && now - fruitless_at < 1000000000u)
        return;
    struct registry *reg = mesh_registry();
    bool held[STATS_MAX_ENDPOINTS] = { false };
    for (size_t i = 0; reg && i < reg->n_all; i++) {
        uint32_t s;
        if (!cached(&reg->all[i]->stats_slot, &s) || s == NO_SLOT)
            continue;
        struct endpoint_set *set = service_endpoints(reg->all[i]);
        for (size_t k = 0; k < set->n; k++)
            mark_held(h, s, set->ep[k], held);
        endpoint_set_unref(set);
    }
    uint32_t freed = 0;
    for (uint32_t e = 0; e < n_endpoints; e++)
        if (!held[e] && endpoint_slots(h)[e].service != STATS_SLOT_FREE) {
            retire_endpoint(h, e);
            freed++;
        }
    fruitless_at = freed ? 0 : now;
    if (freed)
        __atomic_store_n(&reclaims, reclaims + 1, __ATOMIC_RELAXED);
    if (freed && !told) {
        told = true;
        log_info("stats: %u endpoints no service lists any more gave their rows back (room for %u); "
                 "their counts stay in their services' totals", freed, STATS_MAX_ENDPOINTS);
    }
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
    if (!endpoint_cached(ep, &e)) {
        uint32_t s = service_slot(h, svc);
        pthread_mutex_lock(&attach_lock);
        if (!endpoint_cached(ep, &e)) {
            e = s == NO_SLOT ? NO_SLOT : new_endpoint_slot(h, s, ep->label);
            endpoint_cache(ep, e);
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

void metrics_shared_skip(struct service *svc, struct endpoint *ep)
{
    struct stats_header *h = stats();
    struct stats_endpoint *slot = h ? endpoint_stats(h, svc, ep) : NULL;
    if (slot)
        add(&slot->shared_skips, 1);
}

void metrics_retry(struct service *svc)
{
    struct stats_header *h = stats();
    struct stats_service *s = h ? service_stats(h, svc) : NULL;
    if (s)
        add(&s->retries, 1);
}

void metrics_panic(struct service *svc)
{
    struct stats_header *h = stats();
    struct stats_service *s = h ? service_stats(h, svc) : NULL;
    if (s)
        add(&s->panics, 1);
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
    uint32_t n = __atomic_load_n(&n_inbound, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++)
        if (inbound_slots(h)[i].port == port)
            return &inbound_slots(h)[i];
    struct stats_inbound *in = NULL;
    pthread_mutex_lock(&attach_lock);
    n = n_inbound;
    for (uint32_t i = 0; i < n && !in; i++)
        if (inbound_slots(h)[i].port == port)
            in = &inbound_slots(h)[i];
    if (!in && n < STATS_MAX_INBOUND &&
        reserve(h, R_INBOUND, &inbound_slots(h)[n], sizeof(inbound_slots(h)[n]))) {
        in = &inbound_slots(h)[n];
        in->port = port;
        __atomic_store_n(&n_inbound, n + 1, __ATOMIC_RELEASE);
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

/* The method label: the common ones by name, the rest "other" (a label's
 * values must stay few). */
static const char *method_label(const char *m)
{
    static const char *const KNOWN[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
                                         "OPTIONS", NULL };
    for (int i = 0; KNOWN[i]; i++)
        if (strcmp(m, KNOWN[i]) == 0)
            return KNOWN[i];
    return "other";
}

/* A request series' slot (scanned: series are few, and this runs on the
 * engine thread once per request; a hash would be the next step). */
static struct stats_requests *request_series(struct stats_header *h, uint32_t service,
                                             uint32_t endpoint, const char *method, uint16_t code)
{
    struct stats_requests *v = request_slots(h), *found = NULL;
    uint32_t free_at = NO_SLOT;
    pthread_mutex_lock(&attach_lock);
    /* Its endpoint's row was given back since it was looked up: a series
     * would name a free row (and its next endpoint). Not counted. */
    if (endpoint != STATS_NO_ENDPOINT && endpoint_slots(h)[endpoint].service == STATS_SLOT_FREE) {
        pthread_mutex_unlock(&attach_lock);
        return NULL;
    }
    for (uint32_t i = 0; i < n_requests && !found; i++)
        if (v[i].service == STATS_SLOT_FREE)
            free_at = free_at == NO_SLOT ? i : free_at;
        else if (v[i].service == service && v[i].endpoint == endpoint && v[i].code == code &&
                 strcmp(v[i].method, method) == 0)
            found = &v[i];
    /* Else a series given back (retire_endpoint), else a new one: filled
     * as a new endpoint slot is (new_endpoint_slot). */
    bool fresh = free_at == NO_SLOT;
    if (!found && (!fresh || (n_requests < STATS_MAX_REQUEST_SERIES &&
                              reserve(h, R_REQUESTS, &v[n_requests], sizeof(v[0]))))) {
        found = &v[fresh ? n_requests : free_at];
        __atomic_store_n(&found->count, 0, __ATOMIC_RELAXED);
        found->endpoint = endpoint;
        found->code = code;
        copy_name(found->method, sizeof(found->method), method);
        __atomic_store_n(&found->service, service, __ATOMIC_RELEASE);
        if (fresh) {
            n_requests++;
            __atomic_store_n(&h->n_requests, n_requests, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&attach_lock);
    return found;
}

/* A request's counts in service slot s (and endpoint slot e, or NULL). */
static void count_request(struct stats_header *h, struct stats_service *s, struct stats_endpoint *e,
                          const char *method, int status, uint64_t latency_ns,
                          uint64_t request_bytes, uint64_t response_bytes)
{
    unsigned cls = status >= 100 && status < 600 ? (unsigned)status / 100 : 0;
    add(&s->requests[cls], 1);
    observe(&s->request, latency_ns);
    add(&s->request_bytes, request_bytes);
    add(&s->response_bytes, response_bytes);
    if (e)
        observe(&e->request, latency_ns);
    uint32_t eslot = e ? (uint32_t)(e - endpoint_slots(h)) : STATS_NO_ENDPOINT;
    uint16_t code = cls == 5 ? (uint16_t)status : (uint16_t)cls;
    struct stats_requests *r = request_series(h, (uint32_t)(s - service_slots(h)), eslot,
                                              method_label(method), code);
    if (r)
        add(&r->count, 1);
}

void metrics_request(struct service *svc, struct endpoint *ep, const char *method, int status,
                     uint64_t latency_ns, uint64_t request_bytes, uint64_t response_bytes)
{
    struct stats_header *h = stats();
    struct stats_service *s = h ? service_stats(h, svc) : NULL;
    if (!s)
        return;
    struct stats_endpoint *e = ep ? endpoint_stats(h, svc, ep) : NULL;
    count_request(h, s, e, method, status, latency_ns, request_bytes, response_bytes);
}

/* An inbound http port's requests go to a service slot of their own, named
 * as its access-log lines say ("inbound:PORT"); the slot of each port is
 * kept here, tagged like an object's (cached()). */
static struct {
    uint16_t port;
    uint64_t slot;
} inbound_services[STATS_MAX_INBOUND];
static unsigned n_inbound_services;     /* grows under attach_lock; read with acquire */

static struct stats_service *inbound_service_stats(struct stats_header *h, uint16_t port)
{
    /* Each request of such a port comes here: the lock only the first time. */
    uint32_t s = NO_SLOT;
    unsigned n = __atomic_load_n(&n_inbound_services, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++)
        if (inbound_services[i].port == port && cached(&inbound_services[i].slot, &s))
            return s == NO_SLOT ? NULL : &service_slots(h)[s];
    pthread_mutex_lock(&attach_lock);
    unsigned i = 0;
    while (i < n_inbound_services && inbound_services[i].port != port)
        i++;
    if (i == n_inbound_services && i < STATS_MAX_INBOUND) {
        inbound_services[i].port = port;
        inbound_services[i].slot = 0;
        __atomic_store_n(&n_inbound_services, i + 1, __ATOMIC_RELEASE);
    }
    if (i < n_inbound_services && !cached(&inbound_services[i].slot, &s)) {
        char name[24];
        snprintf(name, sizeof(name), "inbound:%u", port);
        s = new_service_slot(h, name);
        cache(&inbound_services[i].slot, s);
    }
    pthread_mutex_unlock(&attach_lock);
    return s == NO_SLOT ? NULL : &service_slots(h)[s];
}

void metrics_inbound_request(uint16_t port, const char *method, int status, uint64_t latency_ns,
                             uint64_t request_bytes, uint64_t response_bytes)
{
    struct stats_header *h = stats();
    struct stats_service *s = h ? inbound_service_stats(h, port) : NULL;
    if (s)
        count_request(h, s, NULL, method, status, latency_ns, request_bytes, response_bytes);
}

void metrics_handshake(enum stats_direction d, enum stats_result r)
{
    struct stats_header *h = stats();
    if (h)
        add(&h->tls_handshakes[d][r], 1);
}

void metrics_tls_continued(enum stats_direction d, bool ktls)
{
    struct stats_header *h = stats();
    if (h)
        add(&h->tls_continued[d][ktls ? 1 : 0], 1);
}

void metrics_spans(enum stats_span what, uint64_t n)
{
    struct stats_header *h = stats();
    if (h && n)
        add(&h->trace_spans[what], n);
}

void metrics_exit(void)
{
    /* Readers skip the files of dead processes anyway: removing ours at
     * exit keeps a host that runs many short meshed programs from filling
     * the folder (a process that dies otherwise is cleaned up by them). */
    if (!__atomic_load_n(&map, __ATOMIC_ACQUIRE) || !map_name[0])
        return;
    /* Only the file this process made, in the folder it made it in. */
    int dfd = own_folder();
    if (dfd < 0)
        return;
    unlinkat(dfd, map_name, 0);
    real_close(dfd);
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
    map_name[0] = '\0';
    n_services = n_endpoints = n_inbound = n_requests = 0;
    n_free_endpoints = 0;
    memset(allocated, 0, sizeof(allocated));
    state = UNTRIED;
    short_until_ns = 0;
    pthread_mutex_init(&attach_lock, NULL);
}
