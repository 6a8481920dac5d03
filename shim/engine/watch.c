/*
 * watch.c — the watcher thread: DNS and SRV names, endpoints files and the
 * INI file (see watch.h).
 *
 * Two threads, over tables of what to watch (made from the running
 * registry by plan(), again after each reload):
 *
 *   the file watcher, every reload_interval: the INI file changed → reload;
 *       each endpoints_file changed → read; the TLS files changed → rotate
 *   the resolver: each name whose TTL ran out → ask; new endpoints or keep
 *       the old; sleep until the next name is due (or a reload adds one)
 *
 * They are two so that a slow or hostile DNS server never holds up a
 * certificate rotation or a reload (review finding 8); and the addresses
 * of SRV targets are asked for all at once, at most TARGETS_MAX of them,
 * within one deadline.
 *
 * `lock` guards the tables (plan() swaps them on the file watcher; the
 * resolver copies a due name out, asks without the lock, and puts its new
 * state back if the table is still the same one) and the condition
 * variables. Each thread holds its own `busy` mutex except while it sleeps
 * or waits for a DNS server, and fork takes both first: a fork never lands
 * in the middle of a reload or a file read, so the child finds the tables,
 * the registry and the allocator (ASan's is not fork-safe by itself)
 * whole.
 */
#include "engine/watch.h"

#include <arpa/nameser.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <resolv.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "engine/engine.h"
#include "libc/real.h"
#include "meshim/certdir.h"
#include "meshim/discovery.h"
#include "meshim/mesh.h"
#include "observe/log.h"
#include "tls/tls.h"

#define RETRY_MIN_S 1               /* a failed answer is asked again after 1 s, 2 s, … */
#define RETRY_MAX_S 30
#define MAX_RECORDS 512
#define MAX_ENDPOINTS 512
#define ANSWER_MAX 65536
#define TARGETS_MAX 16              /* SRV targets asked for addresses per refresh */
#define TARGETS_DEADLINE_MS 2000    /* for all of them together */

struct name_watch {
    struct service *svc;
    enum endpoint_source src;       /* SOURCE_DNS or SOURCE_SRV */
    char name[DNS_NAME_MAX];
    uint64_t due_ns;
    unsigned failures;              /* in a row */
    bool answered;                  /* once at least */
};

struct file_watch {
    struct service *svc;
    char *path;
    struct file_id id;
};

static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;       /* the file watcher's */
static pthread_mutex_t dns_busy = PTHREAD_MUTEX_INITIALIZER;   /* the resolver's */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Waits on a CLOCK_MONOTONIC deadline (pthread_cond_clockwait is newer
 * than the glibc 2.17 the library runs on): made by watch_init, before any
 * thread can use it, and again in a forked child. */
static pthread_cond_t names_changed;

static void conds_make(void)
{
    engine_cond_init(&names_changed);
}

/* A program's thread waiting for a service's first DNS answer (watch_wait)
 * sleeps on this count, which goes up after every refresh: a futex, not a
 * condition variable under `lock`, so that a signal handler that leaves the
 * wait by longjmp (libc/jumpguard.h) leaves no lock held and no waiter
 * behind in glibc's condition for the next signal to be lost to; and no
 * cancellation point. */
static uint32_t answers;

static void answers_told(void)
{
    __atomic_add_fetch(&answers, 1, __ATOMIC_RELEASE);
    real_syscall4(SYS_futex, &answers, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

static sem_t started;               /* a thread holds its busy mutex */
static unsigned names_generation;   /* under lock: plan() made a new table */
static int running;                 /* atomic */
static int needed;                  /* atomic: there is something to watch */
static struct name_watch *names;
static size_t n_names;
static struct file_watch *files;
static size_t n_files;
static struct file_id config_id;
static uint64_t config_hash;        /* of the text loaded */
static uint64_t files_due_ns;

/* ---------------------------------------------------------------- files -- */

static void read_endpoints_file(struct file_watch *f)
{
    struct endpoint_list l;
    char err[512];
    if (!config_read_endpoints(f->path, &l, err, sizeof(err))) {
        log_error("%s; %s keeps its last good endpoints", err, f->svc->name);
        return;
    }
    if (service_set_found(f->svc, SOURCE_FILE, l.v, l.n, rng_thread()))
        log_info("%s: %zu endpoints from %s", f->svc->name, l.n, f->path);
    else
        log_error("%s: out of memory reading %s; the last good endpoints stay", f->svc->name, f->path);
    free(l.v);
}

static void check_files(void)
{
    for (size_t i = 0; i < n_files; i++) {
        struct file_id id = file_id_of(files[i].path);
        if (file_id_same(&id, &files[i].id))
            continue;
        files[i].id = id;
        read_endpoints_file(&files[i]);
    }
}

/* ---------------------------------------------------------------- plans -- */

static struct name_watch *old_name(struct service *svc, enum endpoint_source src, const char *name)
{
    for (size_t i = 0; i < n_names; i++)
        if (names[i].svc == svc && names[i].src == src && strcmp(names[i].name, name) == 0)
            return &names[i];
    return NULL;
}

static struct file_watch *old_file(struct service *svc, const char *path)
{
    for (size_t i = 0; i < n_files; i++)
        if (files[i].svc == svc && strcmp(files[i].path, path) == 0)
            return &files[i];
    return NULL;
}

/* The tables for reg's services: what was watched already keeps its state
 * (due time, file identity); a new name is due at once, a new file is read
 * at the next check. */
static void plan(struct registry *reg)
{
    size_t n = reg->n_services, nn = 0, nf = 0;
    struct name_watch *nv = calloc(2 * n + 1, sizeof(*nv));
    struct file_watch *fv = calloc(n + 1, sizeof(*fv));
    if (!nv || !fv) {
        free(nv);
        free(fv);
        log_error("out of memory: DNS and endpoints files are not watched");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct service *svc = reg->services[i];
        const struct service_config *c = service_cfg(svc);
        const char *asked[2] = { c->dns, c->srv };
        for (int k = 0; k < 2; k++) {
            if (!asked[k])
                continue;
            enum endpoint_source src = k ? SOURCE_SRV : SOURCE_DNS;
            struct name_watch *old = old_name(svc, src, asked[k]);
            if (old) {
                nv[nn++] = *old;
                continue;
            }
            nv[nn] = (struct name_watch){ .svc = svc, .src = src };
            snprintf(nv[nn++].name, sizeof(nv[0].name), "%s", asked[k]);
        }
        if (c->endpoints_file) {
            struct file_watch *old = old_file(svc, c->endpoints_file);
            fv[nf] = (struct file_watch){ .svc = svc, .path = strdup(c->endpoints_file) };
            if (old)
                fv[nf].id = old->id;
            if (fv[nf].path)
                nf++;
        }
    }
    pthread_mutex_lock(&lock);
    __atomic_store_n(&needed, reg->cfg->file || config_has_identity(reg->cfg) || nn || nf, __ATOMIC_RELEASE);
    for (size_t i = 0; i < n_files; i++)
        free(files[i].path);
    free(files);
    free(names);
    names = nv;
    n_names = nn;
    names_generation++;
    files = fv;
    n_files = nf;
    pthread_cond_signal(&names_changed);
    pthread_mutex_unlock(&lock);
}

/* ------------------------------------------------------------ the config -- */

static uint64_t text_hash(const char *path)
{
    char why[64];
    FILE *f = config_open_file(path, CONFIG_FILE_MAX, why, sizeof(why));
    if (!f)
        return 0;       /* the reload says why */
    uint64_t h = HASH_FNV1A_INIT;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof(buf), f)) > 0;)
        h = hash_fnv1a_bytes(h, buf, n);
    fclose(f);
    return h;
}

/* Keys read once at start: a change says so rather than passing unseen. */
static void restart_only(const struct mesh_config *was, const struct mesh_config *now)
{
    static const char *const KEYS[] = { "log_file", "access_log", "stats_dir" };
    const char *a[] = { was->log_file, was->access_log, was->stats_dir };
    const char *b[] = { now->log_file, now->access_log, now->stats_dir };
    for (size_t i = 0; i < sizeof(KEYS) / sizeof(KEYS[0]); i++)
        if (strcmp(a[i] ? a[i] : "", b[i] ? b[i] : "") != 0)
            log_warn("%s: %s changed; the new value applies when the program restarts", now->file,
                     KEYS[i]);
    if (was->vip_range.prefix != now->vip_range.prefix ||
        memcmp(&was->vip_range.base, &now->vip_range.base, sizeof(was->vip_range.base)) != 0)
        log_warn("%s: vip_range changed; running programs keep their VIPs until they restart",
                 now->file);
}

/* Every problem of an invalid file, one line each, saying it was not used. */
static void report_invalid(const char *errors)
{
    for (const char *p = errors; *p;) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        log_error("%.*s (config not reloaded: the running one stays)", len, p);
        p += len + (nl ? 1 : 0);
    }
}

static void check_config(void)
{
    struct registry *reg = mesh_registry();
    const char *file = reg->cfg->file;
    if (!file)
        return;
    struct file_id id = file_id_of(file);
    if (file_id_same(&id, &config_id))
        return;
    config_id = id;
    if (!id.exists) {
        log_warn("%s: gone; the running config stays", file);
        return;
    }
    uint64_t hash = text_hash(file);
    if (hash == config_hash)
        return;                     /* touched, not changed */
    config_hash = hash;
    char *errors = NULL;
    enum on_error on_error;
    struct mesh_config *cfg = mesh_load_config(&errors, &on_error);
    if (!cfg) {
        report_invalid(errors ? errors : "invalid");
        free(errors);
        return;
    }
    struct registry *next = cfg->file ? registry_build(cfg, reg, rng_thread()) : NULL;
    if (!next) {
        log_error("%s: %s; the running config stays", file,
                  cfg->file ? "out of memory, or the VIP pool is full" : "no longer found");
        config_free(cfg);
        return;
    }
    restart_only(reg->cfg, cfg);
    log_set_level(cfg->log_level);
    mesh_publish(next);             /* the old config and registry stay: see mesh_publish */
    plan(next);
    log_info("%s: reloaded, %zu services", file, next->n_services);
}

/* ------------------------------------------------------------------ DNS -- */

/* A resolver state for one refresh: the system's servers, or dns_server. */
static bool resolver_open(struct __res_state *st, const struct netaddr *server, char *why, size_t len)
{
    memset(st, 0, sizeof(*st));
    if (res_ninit(st) < 0) {
        snprintf(why, len, "the resolver cannot start (/etc/resolv.conf)");
        return false;
    }
    /* The names are absolute: no search domains. A server that does not
     * answer costs 1 s a try, twice. */
    st->options &= ~(unsigned long)(RES_DNSRCH | RES_DEFNAMES);
    st->retrans = 1;
    st->retry = 2;
    if (server->port && server->family == AF_INET) {
        st->nscount = 1;
        st->nsaddr_list[0] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(server->port),
                                                   .sin_addr = server->ip.v4 };
    }
    return true;
}

static const char *dns_error(int h_err)
{
    switch (h_err) {
    case HOST_NOT_FOUND:
        return "no such name (NXDOMAIN)";
    case NO_DATA:
        return "no records of that type";
    case TRY_AGAIN:
        return "no answer from the DNS server (timed out, or SERVFAIL)";
    default:
        return "the DNS server refused the query";
    }
}

struct answer {
    struct dns_record *recs;
    int n;
    unsigned char *buf;
};

/* Asks name/type and adds the records to a; false with why. */
static bool ask(struct __res_state *st, const char *name, int type, struct answer *a, char *why,
                size_t len)
{
    pthread_mutex_unlock(&dns_busy);   /* waiting for a server: a fork may go ahead */
    int got = res_nquery(st, name, ns_c_in, type, a->buf, ANSWER_MAX);
    pthread_mutex_lock(&dns_busy);
    if (got < 0) {
        snprintf(why, len, "%s", dns_error(st->res_h_errno));
        return false;
    }
    int n = dns_parse(a->buf, got < ANSWER_MAX ? got : ANSWER_MAX, a->recs + a->n, MAX_RECORDS - a->n);
    if (n < 0) {
        snprintf(why, len, "a malformed answer");
        return false;
    }
    a->n += n;
    return true;
}

static bool has_address(const struct answer *a, const char *owner)
{
    for (int i = 0; i < a->n; i++)
        if ((a->recs[i].type == ns_t_a || a->recs[i].type == ns_t_aaaa) &&
            strcmp(a->recs[i].owner, owner) == 0)
            return true;
    return false;
}

/* Asks for the A and AAAA records of n names at once: every query is sent
 * on one UDP socket to the first server, answers are taken as they come
 * (matched by id), the unanswered are sent again once half-way, and the
 * whole is over within TARGETS_DEADLINE_MS, however many there are and
 * whatever the server does. Answers go into a (names that get none simply
 * have no address). */
static void ask_targets(struct __res_state *st, const char *const *targets, size_t n,
                        struct answer *a)
{
    enum { MAXQ = 2 * TARGETS_MAX };
    unsigned char query[MAXQ][NS_PACKETSZ];
    int qlen[MAXQ];
    bool done[MAXQ] = { false };
    size_t nq = 0;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            int len = res_nmkquery(st, ns_o_query, targets[i], ns_c_in, k ? ns_t_aaaa : ns_t_a, NULL,
                                   0, NULL, query[nq], sizeof(query[nq]));
            if (len > 0)
                qlen[nq++] = len;
        }
    if (nq == 0 || st->nscount < 1)
        return;
    const struct sockaddr_in *server = &st->nsaddr_list[0];
    int fd = real_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return;
    if (real_connect(fd, (const struct sockaddr *)server, sizeof(*server)) < 0) {
        real_close(fd);
        return;
    }
    /* Waiting for a server: a fork may go ahead (what follows touches only
     * this thread's buffers). */
    pthread_mutex_unlock(&dns_busy);
    uint64_t start = now_ns(), halfway = start + TARGETS_DEADLINE_MS * 500000ull,
             deadline = start + TARGETS_DEADLINE_MS * 1000000ull;
    size_t left = nq;
    for (int round = 0; round < 2 && left; round++) {
        /* Every query not answered yet goes out: all at first, again half-way. */
        for (size_t i = 0; i < nq; i++)
            if (!done[i])
                (void)real_send(fd, query[i], (size_t)qlen[i], MSG_NOSIGNAL);
        uint64_t until = round ? deadline : halfway;
        for (uint64_t now; left && (now = now_ns()) < until;) {
            struct pollfd p = { .fd = fd, .events = POLLIN };
            if (poll(&p, 1, (int)((until - now) / 1000000u) + 1) <= 0)
                continue;
            ssize_t got;
            while (left && (got = real_recv(fd, a->buf, ANSWER_MAX, 0)) >= (ssize_t)NS_HFIXEDSZ)
                for (size_t i = 0; i < nq; i++) {
                    if (done[i] || memcmp(a->buf, query[i], 2) != 0)
                        continue;   /* not an answer to a query still open (id) */
                    done[i] = true;
                    left--;
                    int m = dns_parse(a->buf, (int)got, a->recs + a->n, MAX_RECORDS - a->n);
                    a->n += m > 0 ? m : 0;
                    break;
                }
        }
    }
    pthread_mutex_lock(&dns_busy);
    real_close(fd);
}

/* The endpoints of a `dns` name: its A and AAAA records (the port is the
 * application's), or of an `srv` name. *ttl is the shortest record TTL. */
static size_t lookup(struct __res_state *st, const struct name_watch *w, struct answer *a,
                     struct endpoint_spec *out, uint32_t *ttl, char *why, size_t len)
{
    size_t n = 0;
    char why6[96];
    if (w->src == SOURCE_DNS) {
        bool v4 = ask(st, w->name, ns_t_a, a, why, len);
        bool v6 = ask(st, w->name, ns_t_aaaa, a, why6, sizeof(why6));
        if (!v4 && v6)
            why[0] = '\0';
        for (int i = 0; i < a->n && n < MAX_ENDPOINTS; i++)
            if (a->recs[i].section == DNS_ANSWER)
                out[n++] = (struct endpoint_spec){ .addr = a->recs[i].addr, .weight = 1 };
    } else {
        if (!ask(st, w->name, ns_t_srv, a, why, len))
            return 0;
        /* Targets the server sent no address for are asked for them:
         * the first TARGETS_MAX, all at once. */
        const char *targets[TARGETS_MAX];
        size_t n_targets = 0;
        for (int i = 0; i < a->n; i++) {
            if (a->recs[i].type != ns_t_srv || has_address(a, a->recs[i].target))
                continue;
            bool seen = false;
            for (size_t k = 0; k < n_targets && !seen; k++)
                seen = strcmp(targets[k], a->recs[i].target) == 0;
            if (seen)
                continue;
            if (n_targets == TARGETS_MAX) {
                log_info("%s: srv %s: more than %d targets without an address; the others are "
                         "not asked for", w->svc->name, w->name, TARGETS_MAX);
                break;
            }
            targets[n_targets++] = a->recs[i].target;
        }
        if (n_targets)
            ask_targets(st, targets, n_targets, a);
        n = discovery_srv_endpoints(a->recs, (size_t)a->n, out, MAX_ENDPOINTS);
    }
    *ttl = DISCOVERY_TTL_MAX_S;
    for (int i = 0; i < a->n; i++)
        if (a->recs[i].ttl < *ttl)
            *ttl = a->recs[i].ttl;
    if (n == 0 && !why[0])
        snprintf(why, len, w->src == SOURCE_DNS ? "no A or AAAA records"
                                                : "no SRV record with a target that has an address");
    return n;
}

static void refresh(struct name_watch *w, const struct netaddr *server, struct answer *a,
                    struct endpoint_spec *out)
{
    struct __res_state st;
    char why[160] = "";
    uint32_t ttl = 0;
    size_t n = 0;
    a->n = 0;
    if (resolver_open(&st, server, why, sizeof(why))) {
        n = lookup(&st, w, a, out, &ttl, why, sizeof(why));
        res_nclose(&st);
    }
    const char *kind = w->src == SOURCE_DNS ? "dns" : "srv";
    uint64_t now = now_ns();
    if (n > 0 && service_set_found(w->svc, w->src, out, n, rng_thread())) {
        if (w->failures)
            log_warn("%s: %s %s answers again: %zu endpoints", w->svc->name, kind, w->name, n);
        else
            log_debug("%s: %s %s: %zu endpoints, ttl %us", w->svc->name, kind, w->name, n, ttl);
        w->failures = 0;
        w->answered = true;
        w->due_ns = now + (uint64_t)discovery_ttl_s(ttl) * 1000000000u;
        return;
    }
    unsigned wait_s = RETRY_MIN_S << (w->failures < 5 ? w->failures : 5);
    wait_s = wait_s < RETRY_MAX_S ? wait_s : RETRY_MAX_S;
    w->failures++;
    w->due_ns = now + (uint64_t)wait_s * 1000000000u;
    if (!w->answered) {
        /* Connects waiting for a first answer stop waiting: there is none. */
        service_set_found(w->svc, w->src, NULL, 0, rng_thread());
        w->answered = true;
        log_warn("%s: %s %s: %s; no endpoints yet, asking again in %us", w->svc->name, kind,
                 w->name, why[0] ? why : "out of memory", wait_s);
    } else {
        log_warn("%s: %s %s: %s; keeping the last good endpoints, asking again in %us",
                 w->svc->name, kind, w->name, why[0] ? why : "out of memory", wait_s);
    }
}

/* ----------------------------------------------------------- the thread -- */

static void sleep_until(pthread_mutex_t *own, uint64_t due_ns)
{
    struct timespec ts = engine_timespec(due_ns);
    pthread_mutex_unlock(own);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
    pthread_mutex_lock(own);
}

/* The file watcher: the INI file, endpoints files, the TLS files. */
static void *watch_main(void *arg)
{
    (void)arg;
    hooks_internal_thread("meshim-watch");
    pthread_mutex_lock(&busy);
    sem_post(&started);
    for (;;) {
        if (now_ns() >= files_due_ns) {
            check_config();
            check_files();
            tls_check_files(mesh_registry()->cfg);
            files_due_ns = now_ns() + (uint64_t)mesh_registry()->cfg->tls_reload_interval_ms * 1000000u;
        }
        sleep_until(&busy, files_due_ns);
    }
    return NULL;
}

/* Under lock: the index of the name due first, or -1; its due time in *due. */
static ssize_t next_name(uint64_t *due)
{
    ssize_t first = -1;
    for (size_t i = 0; i < n_names; i++)
        if (first < 0 || names[i].due_ns < names[first].due_ns)
            first = (ssize_t)i;
    *due = first >= 0 ? names[first].due_ns : UINT64_MAX;
    return first;
}

/* The resolver: each DNS and SRV name when its TTL runs out. */
static void *resolve_main(void *arg)
{
    (void)arg;
    hooks_internal_thread("meshim-dns");
    pthread_mutex_lock(&dns_busy);
    sem_post(&started);
    struct answer a = { calloc(MAX_RECORDS, sizeof(struct dns_record)), 0, malloc(ANSWER_MAX) };
    struct endpoint_spec *out = calloc(MAX_ENDPOINTS, sizeof(*out));
    if (!a.recs || !a.buf || !out) {
        log_error("out of memory: DNS names are not refreshed");
        pthread_mutex_unlock(&dns_busy);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&lock);
        uint64_t due;
        ssize_t i = next_name(&due);
        if (i < 0 || due > now_ns()) {
            /* Nothing due: sleep until something is, or a reload (plan)
             * changes the table; with no name to follow, until a reload.
             * The condition's clock is CLOCK_MONOTONIC, as now_ns() is, so
             * a wall-clock jump moves neither. An idle process's thread
             * does not wake: it woke every second, in every meshed
             * process of a host, for nothing. */
            pthread_mutex_unlock(&dns_busy);
            if (i < 0) {
                pthread_cond_wait(&names_changed, &lock);
            } else {
                struct timespec ts = engine_timespec(due);
                pthread_cond_timedwait(&names_changed, &lock, &ts);
            }
            pthread_mutex_unlock(&lock);
            pthread_mutex_lock(&dns_busy);
            continue;
        }
        struct name_watch w = names[i];
        unsigned generation = names_generation;
        pthread_mutex_unlock(&lock);
        refresh(&w, &mesh_registry()->cfg->dns_server_addr, &a, out);
        pthread_mutex_lock(&lock);
        if (generation == names_generation)
            names[i] = w;
        pthread_mutex_unlock(&lock);
        answers_told();
    }
    return NULL;
}

void watch_init(struct registry *reg)
{
    conds_make();
    hooks_enter();          /* our own file reads are not the program's */
    plan(reg);
    check_files();
    if (reg->cfg->file) {
        config_id = file_id_of(reg->cfg->file);
        config_hash = text_hash(reg->cfg->file);
    }
    files_due_ns = now_ns() + (uint64_t)reg->cfg->tls_reload_interval_ms * 1000000u;
    hooks_leave();
}

void watch_start(void)
{
    /* A config from the environment alone, without DNS: nothing to watch. */
    if (!__atomic_load_n(&needed, __ATOMIC_ACQUIRE) || __atomic_load_n(&running, __ATOMIC_ACQUIRE) ||
        __atomic_exchange_n(&running, 1, __ATOMIC_ACQ_REL))
        return;
    int saved = errno;
    sem_init(&started, 0, 0);
    int rc = engine_spawn(watch_main, 0);
    int rc_dns = engine_spawn(resolve_main, 0);
    /* Their start-up (the runtime's allocations for a new thread) is over
     * before a fork can happen. */
    for (int k = (rc == 0) + (rc_dns == 0); k > 0; k--)
        while (sem_wait(&started) < 0)
            ;
    if (rc != 0)
        log_error("cannot start the watcher thread: %s; config changes and files are not "
                  "followed", strerror(rc));
    if (rc_dns != 0)
        log_error("cannot start the resolver thread: %s; DNS endpoints are not followed",
                  strerror(rc_dns));
    errno = saved;
}

void watch_wait(struct service *svc, uint32_t timeout_ms)
{
    if (!service_waiting(svc))
        return;
    int saved = errno;
    uint64_t deadline_ns = service_wait_deadline(svc, now_ns() + (uint64_t)timeout_ms * 1000000u);
    /* A connect and a service name's lookup hold the program's signals
     * but in their waits (jumpguard.h); a futex takes no mask, so when one
     * was deferred this wait lets them in by hand, and takes them back
     * after. */
    sigset_t buf, held;
    const sigset_t *mask = jump_wait_mask(&buf);
    if (mask)
        pthread_sigmask(SIG_SETMASK, mask, &held);
    jump_park();
    for (;;) {
        /* The count first: an answer told after the look below wakes the
         * wait at once (the count is no longer `seen`). */
        uint32_t seen = __atomic_load_n(&answers, __ATOMIC_ACQUIRE);
        uint64_t now = now_ns();
        if (!service_waiting(svc) || now >= deadline_ns)
            break;
        uint64_t left = deadline_ns - now;
        struct timespec rel = { (time_t)(left / 1000000000u), (long)(left % 1000000000u) };
        real_syscall4(SYS_futex, &answers, FUTEX_WAIT_PRIVATE, seen, &rel);
    }
    jump_unpark();
    if (mask)
        pthread_sigmask(SIG_SETMASK, &held, NULL);
    errno = saved;
}

void watch_atfork_pause(void)
{
    pthread_mutex_lock(&busy);
    pthread_mutex_lock(&dns_busy);
}

void watch_atfork_prepare(void)
{
    pthread_mutex_lock(&lock);
}

void watch_atfork_parent(void)
{
    pthread_mutex_unlock(&lock);
    pthread_mutex_unlock(&dns_busy);
    pthread_mutex_unlock(&busy);
}

void watch_atfork_child(void)
{
    /* The thread is the parent's: the child starts its own when it needs
     * one. The tables were whole (the lock was held). */
    pthread_mutex_init(&busy, NULL);
    pthread_mutex_init(&dns_busy, NULL);
    pthread_mutex_init(&lock, NULL);
    conds_make();
    running = 0;
}
