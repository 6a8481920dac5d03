/*
 * statsview.c — stats files read and rendered (see statsview.h).
 */
#include "statsview.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meshim/util.h"

/* ----------------------------------------------------------------- files -- */

/* What one scan copies at most: enough for a thousand ordinary processes,
 * while a file's owner cannot make a scrape allocate or print much (a full
 * file is ~700 KB of slots; review finding 4). */
#define SCAN_BUDGET (8u << 20)

/* The header as this version writes it, and nothing else: offsets, sizes
 * and limits are this version's constants, so a file cannot declare more
 * slots or another layout than the command allocates for. */
static bool check(const struct stats_header *h, size_t size, char *why, size_t len)
{
    const char *bad = NULL;
    if (memcmp(h->magic, STATS_MAGIC, sizeof(h->magic)) != 0)
        bad = "not a meshim stats file";
    else if (h->version != STATS_VERSION || h->header_size != sizeof(*h))
        bad = "written by another version of meshim";
    else if (h->file_size != size || size != stats_file_size())
        bad = "not the size of a stats file";
    else if (h->max_services != STATS_MAX_SERVICES || h->max_endpoints != STATS_MAX_ENDPOINTS ||
             h->max_inbound != STATS_MAX_INBOUND || h->off_services != STATS_OFF_SERVICES ||
             h->off_endpoints != STATS_OFF_ENDPOINTS || h->off_inbound != STATS_OFF_INBOUND ||
             h->off_requests != STATS_OFF_REQUESTS ||
             h->n_services > STATS_MAX_SERVICES || h->n_endpoints > STATS_MAX_ENDPOINTS ||
             h->n_inbound > STATS_MAX_INBOUND || h->n_requests > STATS_MAX_REQUEST_SERIES)
        bad = "corrupt layout";
    if (bad)
        snprintf(why, len, "%s", bad);
    return !bad;
}

/* A name from a slot: bounded, and only characters safe in a table and in
 * a Prometheus label (anything else becomes '?'). */
void stats_name_of(const char *field, size_t size, char *out, size_t len)
{
    size_t n = strnlen(field, size);
    if (n >= len)
        n = len - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)field[i];
        out[i] = ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? (char)ch : '?';
    }
    out[n] = '\0';
}

bool stats_read_at(int fd, void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t got = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return false;
        done += (size_t)got;
    }
    return true;
}

/* Copies the header and the slots in use out of an open file, once: the
 * rest of the command reads only the copy. pread, not mmap, so a file that
 * shrinks or changes under us gives a short read or odd counts, never a
 * SIGBUS or a read out of bounds (review finding 3). *budget, when given,
 * is what the scan may still copy. */
static bool copy_file(int fd, size_t size, struct stats_view *v, size_t *budget, char *why,
                      size_t len)
{
    struct stats_header hdr;
    if (size < sizeof(hdr) || !stats_read_at(fd, &hdr, sizeof(hdr), 0)) {
        snprintf(why, len, "truncated");
        return false;
    }
    if (!check(&hdr, size, why, len))
        return false;
    size_t ns = hdr.n_services, ne = hdr.n_endpoints, ni = hdr.n_inbound, nr = hdr.n_requests;
    size_t bytes = sizeof(hdr) + ns * sizeof(struct stats_service) +
                   ne * sizeof(struct stats_endpoint) + ni * sizeof(struct stats_inbound) +
                   nr * sizeof(struct stats_requests);
    if (budget && bytes > *budget) {
        snprintf(why, len, "over what one scan may read (%u KiB)", SCAN_BUDGET >> 10);
        return false;
    }
    char *buf = malloc(bytes);
    if (!buf) {
        snprintf(why, len, "out of memory");
        return false;
    }
    memcpy(buf, &hdr, sizeof(hdr));
    v->services = (struct stats_service *)(buf + sizeof(hdr));
    v->endpoints = (struct stats_endpoint *)(v->services + ns);
    v->inbound = (struct stats_inbound *)(v->endpoints + ne);
    v->requests = (struct stats_requests *)(v->inbound + ni);
    if (!stats_read_at(fd, v->services, ns * sizeof(*v->services), STATS_OFF_SERVICES) ||
        !stats_read_at(fd, v->endpoints, ne * sizeof(*v->endpoints), STATS_OFF_ENDPOINTS) ||
        !stats_read_at(fd, v->inbound, ni * sizeof(*v->inbound), STATS_OFF_INBOUND) ||
        !stats_read_at(fd, v->requests, nr * sizeof(*v->requests), STATS_OFF_REQUESTS)) {
        free(buf);
        snprintf(why, len, "truncated");
        return false;
    }
    if (budget)
        *budget -= bytes;
    v->h = (const struct stats_header *)buf;
    v->n_services = (unsigned)ns, v->n_endpoints = (unsigned)ne, v->n_inbound = (unsigned)ni;
    v->n_requests = (unsigned)nr;
    v->pid = hdr.pid;
    stats_name_of(hdr.process, sizeof(hdr.process), v->process, sizeof(v->process));
    return true;
}

/* Opens name in dirfd only if it is a regular file (never a FIFO, which
 * would block the open, nor a symlink: review finding 2); fills st. */
static int open_regular(int dirfd, const char *name, struct stat *st, char *why, size_t len)
{
    struct stat before;
    if (fstatat(dirfd, name, &before, AT_SYMLINK_NOFOLLOW) < 0) {
        snprintf(why, len, "%s", strerror(errno));
        return -1;
    }
    if (!S_ISREG(before.st_mode)) {
        snprintf(why, len, "not a regular file");
        return -1;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 || fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || st->st_ino != before.st_ino ||
        st->st_dev != before.st_dev) {
        snprintf(why, len, "%s", fd < 0 ? strerror(errno) : "changed while opened");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

bool stats_view_open(const char *path, struct stats_view *v, char *why, size_t len)
{
    memset(v, 0, sizeof(*v));
    struct stat st;
    int fd = open_regular(AT_FDCWD, path, &st, why, len);
    if (fd < 0)
        return false;
    bool ok = copy_file(fd, (size_t)st.st_size, v, NULL, why, len);
    close(fd);
    return ok;
}

void stats_view_close(struct stats_view *v)
{
    free((void *)v->h);
    v->h = NULL;
}

void stats_view_free(struct stats_view *v, int n)
{
    for (int i = 0; i < n; i++)
        stats_view_close(&v[i]);
    free(v);
}

static int by_pid(const void *a, const void *b)
{
    return ((const struct stats_view *)a)->pid - ((const struct stats_view *)b)->pid;
}

/* May uid have written pid's file? One of the process's user ids (real,
 * effective, saved, filesystem) must be uid: nobody can pass counters off
 * as another user's process (review finding 3). */
static bool owned_by_process(int pid, uid_t uid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = false;
    while (fgets(line, sizeof(line), f)) {
        unsigned long ids[4];
        if (sscanf(line, "Uid: %lu %lu %lu %lu", &ids[0], &ids[1], &ids[2], &ids[3]) == 4) {
            for (int i = 0; i < 4; i++)
                ok |= ids[i] == (unsigned long)uid;
            break;
        }
    }
    fclose(f);
    return ok;
}

/* The views a scan gathers, over one folder or many. */
struct gathered {
    struct stats_view *v;
    int n, cap;
};

/* Adds the live processes' files of one open folder (closed here) to g. */
static void scan_dir(DIR *d, int only, struct gathered *g)
{
    int dfd = dirfd(d);
    size_t budget = SCAN_BUDGET;
    struct dirent *e;
    while ((e = readdir(d))) {
        bool tmp;
        int pid = stats_file_pid(e->d_name, &tmp);
        if (!pid || (only && pid != only))
            continue;
        char why[128];
        if (tmp) {
            if (!proc_start_ticks(pid))
                unlinkat(dfd, e->d_name, 0);    /* left by a process that died making it */
            continue;
        }
        uint64_t started = proc_start_ticks(pid);
        if (!started) {
            unlinkat(dfd, e->d_name, 0);        /* its process is gone */
            continue;
        }
        struct stat st;
        int fd = open_regular(dfd, e->d_name, &st, why, sizeof(why));
        if (fd < 0)
            continue;
        struct stats_view v = { 0 };
        bool ok = owned_by_process(pid, st.st_uid) &&
                  copy_file(fd, (size_t)st.st_size, &v, &budget, why, sizeof(why));
        close(fd);
        if (!ok)
            continue;
        if (v.pid != pid || started != v.h->start_ticks) {
            /* The pid is another process's now: the file's was gone. */
            stats_view_close(&v);
            unlinkat(dfd, e->d_name, 0);
            continue;
        }
        if (g->n == g->cap) {
            int cap = g->cap ? g->cap * 2 : 16;
            struct stats_view *bigger = realloc(g->v, (size_t)cap * sizeof(*bigger));
            if (!bigger) {
                stats_view_close(&v);
                break;
            }
            g->v = bigger, g->cap = cap;
        }
        g->v[g->n++] = v;
    }
    closedir(d);
}

/* Sorted by pid, handed over. */
static int gathered_out(struct gathered *g, struct stats_view **out)
{
    if (g->n)
        qsort(g->v, (size_t)g->n, sizeof(*g->v), by_pid);
    *out = g->v;
    return g->n;
}

int stats_view_scan(const char *dir, int only, struct stats_view **out)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct gathered g = { 0 };
    scan_dir(d, only, &g);
    return gathered_out(&g, out);
}

int stats_view_scan_users(int only, struct stats_view **out)
{
    struct gathered g = { 0 };
    DIR *t = opendir("/tmp");
    struct dirent *e;
    while (t && (e = readdir(t))) {
        unsigned uid;
        int end = 0;
        if (sscanf(e->d_name, "meshim-%u%n", &uid, &end) != 1 || e->d_name[end] != '\0')
            continue;
        /* The folder itself, never a link: its owner could swap the name
         * for one, and the scan removes files of processes that are gone. */
        int fd = openat(dirfd(t), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat st;
        DIR *d = NULL;
        if (fstat(fd, &st) == 0 && st.st_uid == uid && !(st.st_mode & 022) && (d = fdopendir(fd)))
            scan_dir(d, only, &g);
        else
            close(fd);
    }
    if (t)
        closedir(t);
    return gathered_out(&g, out);
}

/* ----------------------------------------------------------------- slots -- */

unsigned stats_view_count(const struct stats_view *v, char which)
{
    return which == 's' ? v->n_services : which == 'e' ? v->n_endpoints
         : which == 'r' ? v->n_requests : v->n_inbound;
}

const struct stats_requests *stats_view_requests(const struct stats_view *v, unsigned i)
{
    return &v->requests[i];
}

const struct stats_service *stats_view_service(const struct stats_view *v, unsigned i)
{
    return &v->services[i];
}

const struct stats_endpoint *stats_view_endpoint(const struct stats_view *v, unsigned i)
{
    return &v->endpoints[i];
}

const struct stats_inbound *stats_view_inbound(const struct stats_view *v, unsigned i)
{
    return &v->inbound[i];
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* --------------------------------------------------------------- numbers -- */

double stats_quantile_us(const struct stats_histogram *h, double q)
{
    uint64_t counts[STATS_BUCKETS], total = 0;
    for (unsigned i = 0; i < STATS_BUCKETS; i++)
        total += counts[i] = load(&h->buckets[i]);
    if (!total)
        return -1;
    double rank = q * (double)total;
    uint64_t below = 0;
    for (unsigned i = 0; i < STATS_BUCKETS; i++) {
        if ((double)(below + counts[i]) >= rank && counts[i]) {
            if (i == STATS_BUCKETS - 1)
                return (double)stats_bucket_bound_us(STATS_BUCKETS - 2);
            double lo = i ? (double)stats_bucket_bound_us(i - 1) : 0;
            double hi = (double)stats_bucket_bound_us(i);
            return lo + (hi - lo) * (rank - (double)below) / (double)counts[i];
        }
        below += counts[i];
    }
    return (double)stats_bucket_bound_us(STATS_BUCKETS - 2);
}

static uint64_t endpoint_total(const struct stats_endpoint *e, unsigned from, unsigned to)
{
    uint64_t n = 0;
    for (unsigned r = from; r <= to; r++)
        n += load(&e->connections[r]);
    return n;
}

/* ----------------------------------------------------------------- table -- */

/* " (kernel TLS 3, relayed 1)" for ok handshakes. */
static const char *continued_text(const uint64_t continued[2])
{
    static char buf[80];
    snprintf(buf, sizeof(buf), " (kernel TLS %llu, relayed %llu)", (unsigned long long)load(&continued[1]),
             (unsigned long long)load(&continued[0]));
    return buf;
}

static void latency_cells(const struct stats_histogram *h, FILE *out)
{
    double p50 = stats_quantile_us(h, 0.5), p99 = stats_quantile_us(h, 0.99);
    if (p50 < 0)
        fprintf(out, " %8s %8s", "-", "-");
    else
        fprintf(out, " %8.2f %8.2f", p50 / 1000, p99 / 1000);
}

/* protocol = http: "requests 300 (1.8/s), 5xx 2 (0.7%), p50 0.41 ms, p99 2.10 ms".
 * The rate is over the process's life (the file's creation to now). */
static void request_line(const struct stats_view *v, const struct stats_service *svc, FILE *out)
{
    uint64_t total = 0;
    for (unsigned c = 0; c < 6; c++)
        total += load(&svc->requests[c]);
    if (!total)
        return;
    uint64_t errors = load(&svc->requests[5]);
    double secs = (double)(wall_ns() / 1000000u - v->h->created_unix_ms) / 1000.0;
    double p50 = stats_quantile_us(&svc->request, 0.5), p99 = stats_quantile_us(&svc->request, 0.99);
    fprintf(out, "    requests %llu (%.1f/s), 5xx %llu (%.1f%%), 4xx %llu, p50 %.2f ms, p99 %.2f ms\n",
            (unsigned long long)total, secs > 0 ? (double)total / secs : 0.0,
            (unsigned long long)errors, 100.0 * (double)errors / (double)total,
            (unsigned long long)load(&svc->requests[4]), p50 / 1000, p99 / 1000);
}

void stats_render_table(const struct stats_view *v, FILE *out)
{
    char name[128];
    unsigned ns = stats_view_count(v, 's'), ne = stats_view_count(v, 'e');
    fprintf(out, "%s (pid %d)\n", v->process, v->pid);
    fprintf(out, "  %-28s %8s %8s %8s %8s %8s %6s %6s %12s %12s %8s %8s\n", "SERVICE / ENDPOINT", "OK",
            "REFUSED", "TIMEOUT", "OTHER", "RETRIES", "EJECT", "ACTIVE", "SENT", "RECEIVED",
            "P50 ms", "P99 ms");
    for (unsigned s = 0; s < ns; s++) {
        const struct stats_service *svc = stats_view_service(v, s);
        uint64_t by[RESULT_COUNT] = { 0 };
        /* Endpoints whose rows were given back (stats.h) count here too. */
        uint64_t ejections = load(&svc->retired_ejections);
        for (unsigned r = 0; r < RESULT_COUNT; r++)
            by[r] = load(&svc->connections[r]) + load(&svc->retired_connections[r]);
        for (unsigned e = 0; e < ne; e++) {
            const struct stats_endpoint *ep = stats_view_endpoint(v, e);
            if (ep->service != s)
                continue;
            for (unsigned r = 0; r < RESULT_COUNT; r++)
                by[r] += load(&ep->connections[r]);
            ejections += load(&ep->ejections);
        }
        uint64_t other = 0;
        for (unsigned r = RESULT_TLS_ERROR; r < RESULT_COUNT; r++)
            other += by[r];
        int64_t active = __atomic_load_n(&svc->active, __ATOMIC_RELAXED);
        stats_name_of(svc->name, sizeof(svc->name), name, sizeof(name));
        fprintf(out, "  %-28s %8llu %8llu %8llu %8llu %8llu %6llu %6lld %12llu %12llu", name,
                (unsigned long long)by[RESULT_OK], (unsigned long long)by[RESULT_REFUSED],
                (unsigned long long)by[RESULT_TIMEOUT], (unsigned long long)other,
                (unsigned long long)load(&svc->retries), (unsigned long long)ejections,
                (long long)(active > 0 ? active : 0), (unsigned long long)load(&svc->bytes_sent),
                (unsigned long long)load(&svc->bytes_received));
        latency_cells(&svc->connect, out);
        fprintf(out, "\n");
        request_line(v, svc, out);
        for (unsigned e = 0; e < ne; e++) {
            const struct stats_endpoint *ep = stats_view_endpoint(v, e);
            if (ep->service != s)
                continue;
            char label[256];
            stats_name_of(ep->label, sizeof(ep->label), name, sizeof(name));
            uint64_t skips = load(&ep->shared_skips);
            char shared[48] = "";
            if (skips)
                snprintf(shared, sizeof(shared), " (%llu skipped: host table)",
                         (unsigned long long)skips);
            snprintf(label, sizeof(label), "%s%s%s", name,
                     __atomic_load_n(&ep->ejected, __ATOMIC_RELAXED) ? " (ejected)" : "", shared);
            fprintf(out, "    %-26s %8llu %8llu %8llu %8llu %8s %6llu %6s %12s %12s", label,
                    (unsigned long long)load(&ep->connections[RESULT_OK]),
                    (unsigned long long)load(&ep->connections[RESULT_REFUSED]),
                    (unsigned long long)load(&ep->connections[RESULT_TIMEOUT]),
                    (unsigned long long)endpoint_total(ep, RESULT_TLS_ERROR, RESULT_COUNT - 1), "",
                    (unsigned long long)load(&ep->ejections), "", "", "");
            latency_cells(&ep->connect, out);
            fprintf(out, "\n");
        }
        for (unsigned r = RESULT_TLS_ERROR; r < RESULT_COUNT; r++)
            if (load(&svc->connections[r]))
                fprintf(out, "    %-26s %s: %llu\n", "(no endpoint reached)", stats_result_name(r),
                        (unsigned long long)load(&svc->connections[r]));
    }
    for (unsigned i = 0; i < stats_view_count(v, 'i'); i++) {
        const struct stats_inbound *in = stats_view_inbound(v, i);
        fprintf(out, "  inbound :%u", in->port);
        for (unsigned r = 0; r < RESULT_COUNT; r++)
            if (load(&in->connections[r]) || r == RESULT_OK)
                fprintf(out, "  %s %llu", stats_result_name(r),
                        (unsigned long long)load(&in->connections[r]));
        fprintf(out, "\n");
    }
    for (unsigned d = 0; d < DIRECTION_COUNT; d++)
        for (unsigned r = 0; r < RESULT_COUNT; r++)
            if (load(&v->h->tls_handshakes[d][r]))
                fprintf(out, "  tls handshakes %s %s: %llu%s\n", d ? "inbound" : "outbound",
                        stats_result_name(r), (unsigned long long)load(&v->h->tls_handshakes[d][r]),
                        r == RESULT_OK ? continued_text(v->h->tls_continued[d]) : "");
}

/* ------------------------------------------------------------ prometheus -- */

static void family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(FILE *out, const struct stats_view *v, const char *metric, const char *labels,
                   uint64_t value)
{
    fprintf(out, "%s{process=\"%s\",pid=\"%d\"%s} %llu\n", metric, v->process, v->pid, labels,
            (unsigned long long)value);
}

static void service_label(const struct stats_view *v, unsigned s, char *out, size_t len)
{
    const struct stats_service *svc = stats_view_service(v, s);
    char name[128];
    stats_name_of(svc->name, sizeof(svc->name), name, sizeof(name));
    snprintf(out, len, ",service=\"%s\"", name);
}

static void endpoint_labels(const struct stats_view *v, const struct stats_endpoint *ep, char *out,
                            size_t len)
{
    char svc[160], label[96];
    service_label(v, ep->service, svc, sizeof(svc));
    stats_name_of(ep->label, sizeof(ep->label), label, sizeof(label));
    snprintf(out, len, "%s,endpoint=\"%s\"", svc, label);
}

static bool endpoint_ok(const struct stats_view *v, const struct stats_endpoint *ep)
{
    return ep->service < stats_view_count(v, 's');
}

static void connections(const struct stats_view *views, int n, FILE *out)
{
    family(out, "meshim_connections_total", "counter",
           "Connection attempts by endpoint and outcome (endpoint=\"\": none was reached).");
    for (int p = 0; p < n; p++) {
        const struct stats_view *v = &views[p];
        char labels[512], base[400];
        for (unsigned e = 0; e < stats_view_count(v, 'e'); e++) {
            const struct stats_endpoint *ep = stats_view_endpoint(v, e);
            if (!endpoint_ok(v, ep))
                continue;
            endpoint_labels(v, ep, base, sizeof(base));
            for (unsigned r = 0; r < RESULT_COUNT; r++) {
                uint64_t value = load(&ep->connections[r]);
                if (value || r == RESULT_OK) {
                    snprintf(labels, sizeof(labels), "%s,result=\"%s\"", base, stats_result_name(r));
                    sample(out, v, "meshim_connections_total", labels, value);
                }
            }
        }
        for (unsigned s = 0; s < stats_view_count(v, 's'); s++) {
            const struct stats_service *svc = stats_view_service(v, s);
            service_label(v, s, base, sizeof(base));
            for (unsigned r = 0; r < RESULT_COUNT; r++) {
                uint64_t value = load(&svc->connections[r]);
                if (value) {
                    snprintf(labels, sizeof(labels), "%s,endpoint=\"\",result=\"%s\"", base,
                             stats_result_name(r));
                    sample(out, v, "meshim_connections_total", labels, value);
                }
            }
        }
    }
}

/* A per-service value: one sample for each service of each process. */
static void per_service(const struct stats_view *views, int n, FILE *out, const char *metric,
                        const char *type, const char *help, size_t field)
{
    family(out, metric, type, help);
    for (int p = 0; p < n; p++)
        for (unsigned s = 0; s < stats_view_count(&views[p], 's'); s++) {
            const char *slot = (const char *)stats_view_service(&views[p], s);
            char labels[200];
            service_label(&views[p], s, labels, sizeof(labels));
            int64_t value = (int64_t)load((const uint64_t *)(slot + field));
            sample(out, &views[p], metric, labels, value > 0 ? (uint64_t)value : 0);
        }
}

/* The per-endpoint families besides connections and latency. */
enum endpoint_metric { EP_EJECTIONS, EP_EJECTED, EP_SHARED_SKIPS };

static uint64_t endpoint_value(const struct stats_endpoint *ep, enum endpoint_metric m)
{
    switch (m) {
    case EP_EJECTIONS:
        return load(&ep->ejections);
    case EP_EJECTED:
        return __atomic_load_n(&ep->ejected, __ATOMIC_RELAXED) != 0;
    case EP_SHARED_SKIPS:
        return load(&ep->shared_skips);
    }
    return 0;
}

static void per_endpoint(const struct stats_view *views, int n, FILE *out, enum endpoint_metric m)
{
    static const char *const NAME[] = { "meshim_ejections_total", "meshim_endpoint_ejected",
                                        "meshim_endpoint_shared_skips_total" };
    static const char *const HELP[] = {
        "Times the endpoint was ejected by its circuit breaker.",
        "1 while the endpoint is ejected (its circuit is open or half-open).",
        ("Picks that passed the endpoint over because another process of the host ejected it "
         "or its health checker found it down (the host's endpoint table)."),
    };
    family(out, NAME[m], m == EP_EJECTED ? "gauge" : "counter", HELP[m]);
    for (int p = 0; p < n; p++)
        for (unsigned e = 0; e < stats_view_count(&views[p], 'e'); e++) {
            const struct stats_endpoint *ep = stats_view_endpoint(&views[p], e);
            if (!endpoint_ok(&views[p], ep))
                continue;
            char labels[400];
            endpoint_labels(&views[p], ep, labels, sizeof(labels));
            sample(out, &views[p], NAME[m], labels, endpoint_value(ep, m));
        }
}

/* A per-service histogram family; services that observed nothing are left
 * out when skip_empty. */
static void histogram_family(const struct stats_view *views, int n, FILE *out, const char *name,
                             const char *help, size_t field, bool skip_empty)
{
    char metric[96];
    family(out, name, "histogram", help);
    for (int p = 0; p < n; p++) {
        const struct stats_view *v = &views[p];
        for (unsigned s = 0; s < stats_view_count(v, 's'); s++) {
            const struct stats_histogram *h =
                (const void *)((const char *)stats_view_service(v, s) + field);
            if (skip_empty && !load(&h->count))
                continue;
            char svc[200], labels[300];
            service_label(v, s, svc, sizeof(svc));
            uint64_t cumulative = 0;
            snprintf(metric, sizeof(metric), "%s_bucket", name);
            for (unsigned b = 0; b < STATS_BUCKETS; b++) {
                cumulative += load(&h->buckets[b]);
                char le[32];
                if (b == STATS_BUCKETS - 1)
                    snprintf(le, sizeof(le), "+Inf");
                else
                    snprintf(le, sizeof(le), "%g", (double)stats_bucket_bound_us(b) / 1e6);
                snprintf(labels, sizeof(labels), "%s,le=\"%s\"", svc, le);
                sample(out, v, metric, labels, cumulative);
            }
            fprintf(out, "%s_sum{process=\"%s\",pid=\"%d\"%s} %.6f\n", name, v->process, v->pid, svc,
                    (double)load(&h->sum_us) / 1e6);
            snprintf(metric, sizeof(metric), "%s_count", name);
            sample(out, v, metric, svc, cumulative);
        }
    }
}

/* Ok handshakes by how the connection went on: kernel TLS, the engine's
 * relay, or neither (refused by identity, or ended before). */
static void handshakes_ok(FILE *out, const struct stats_view *v, const char *labels, uint64_t ok,
                          const uint64_t continued[2])
{
    uint64_t relay = load(&continued[0]), ktls = load(&continued[1]);
    uint64_t none = ok > relay + ktls ? ok - relay - ktls : 0;
    const char *names[3] = { "ktls", "relay", "none" };
    uint64_t values[3] = { ktls, relay, none };
    for (int i = 0; i < 3; i++) {
        char l[192];
        snprintf(l, sizeof(l), "%s,continued=\"%s\"", labels, names[i]);
        if (values[i] || i == 1)
            sample(out, v, "meshim_tls_handshakes_total", l, values[i]);
    }
}

static void handshakes_and_inbound(const struct stats_view *views, int n, FILE *out)
{
    family(out, "meshim_tls_handshakes_total", "counter", "TLS handshakes by direction and outcome.");
    for (int p = 0; p < n; p++)
        for (unsigned d = 0; d < DIRECTION_COUNT; d++)
            for (unsigned r = 0; r < RESULT_COUNT; r++) {
                uint64_t value = load(&views[p].h->tls_handshakes[d][r]);
                char labels[128];
                snprintf(labels, sizeof(labels), ",direction=\"%s\",result=\"%s\"",
                         d ? "inbound" : "outbound", stats_result_name(r));
                if (value && r == RESULT_OK)
                    handshakes_ok(out, &views[p], labels, value, views[p].h->tls_continued[d]);
                else if (value)
                    sample(out, &views[p], "meshim_tls_handshakes_total", labels, value);
            }
    family(out, "meshim_inbound_connections_total", "counter",
           "Connections accepted on [inbound:PORT] ports, by outcome.");
    for (int p = 0; p < n; p++)
        for (unsigned i = 0; i < stats_view_count(&views[p], 'i'); i++) {
            const struct stats_inbound *in = stats_view_inbound(&views[p], i);
            for (unsigned r = 0; r < RESULT_COUNT; r++) {
                uint64_t value = load(&in->connections[r]);
                char labels[96];
                snprintf(labels, sizeof(labels), ",port=\"%u\",result=\"%s\"", in->port,
                         stats_result_name(r));
                if (value || r == RESULT_OK)
                    sample(out, &views[p], "meshim_inbound_connections_total", labels, value);
            }
        }
}

/* meshim_trace_spans_total{result}: only processes that made a span. */
static void spans(const struct stats_view *views, int n, FILE *out)
{
    static const char *const NAMES[3] = { "exported", "dropped", "not_sampled" };
    family(out, "meshim_trace_spans_total", "counter",
           "[tracing]: spans sent to the collector, dropped (queue full, collector down or "
           "refusing), or not sampled.");
    for (int p = 0; p < n; p++) {
        uint64_t any = 0;
        for (int i = 0; i < 3; i++)
            any |= load(&views[p].h->trace_spans[i]);
        for (int i = 0; any && i < 3; i++) {
            char labels[64];
            snprintf(labels, sizeof(labels), ",result=\"%s\"", NAMES[i]);
            sample(out, &views[p], "meshim_trace_spans_total", labels, load(&views[p].h->trace_spans[i]));
        }
    }
}

/* meshim_requests_total{service,endpoint,method,code}. */
static void requests(const struct stats_view *views, int n, FILE *out)
{
    family(out, "meshim_requests_total", "counter",
           "Requests of protocol = http services by endpoint, method and answer (code: 2xx, 4xx... "
           "and exact for 5xx; endpoint=\"\": answered by the mesh; code=\"none\": the "
           "application left first); service=\"inbound:PORT\": what the application answered "
           "on an http port.");
    for (int p = 0; p < n; p++) {
        const struct stats_view *v = &views[p];
        for (unsigned i = 0; i < stats_view_count(v, 'r'); i++) {
            const struct stats_requests *r = stats_view_requests(v, i);
            if (r->service >= stats_view_count(v, 's') ||
                (r->endpoint != STATS_NO_ENDPOINT && (r->endpoint >= stats_view_count(v, 'e') ||
                 !endpoint_ok(v, stats_view_endpoint(v, r->endpoint)))))
                continue;
            char svc[200], ep[96] = "", method[16], code[8], labels[400];
            service_label(v, r->service, svc, sizeof(svc));
            if (r->endpoint != STATS_NO_ENDPOINT) {
                const struct stats_endpoint *e = stats_view_endpoint(v, r->endpoint);
                stats_name_of(e->label, sizeof(e->label), ep, sizeof(ep));
            }
            stats_name_of(r->method, sizeof(r->method), method, sizeof(method));
            if (r->code >= 100)
                snprintf(code, sizeof(code), "%u", (unsigned)r->code % 1000);
            else if (r->code)
                snprintf(code, sizeof(code), "%uxx", (unsigned)r->code % 10);
            else
                snprintf(code, sizeof(code), "none");
            snprintf(labels, sizeof(labels), "%s,endpoint=\"%s\",method=\"%s\",code=\"%s\"", svc, ep,
                     method, code);
            sample(out, v, "meshim_requests_total", labels, load(&r->count));
        }
    }
}

void stats_render_prometheus(const struct stats_view *views, int n, FILE *out)
{
    connections(views, n, out);
    per_service(views, n, out, "meshim_retries_total", "counter",
                "Attempts made after a failed one (connection-level retries).",
                offsetof(struct stats_service, retries));
    per_service(views, n, out, "meshim_lb_panic_total", "counter",
                "Endpoints picked while the service was in panic (panic_threshold): ejected ones included.",
                offsetof(struct stats_service, panics));
    per_endpoint(views, n, out, EP_EJECTIONS);
    per_endpoint(views, n, out, EP_EJECTED);
    per_endpoint(views, n, out, EP_SHARED_SKIPS);
    per_service(views, n, out, "meshim_active_connections", "gauge",
                "Connections established and not yet closed.",
                offsetof(struct stats_service, active));
    per_service(views, n, out, "meshim_bytes_sent_total", "counter",
                "Bytes the application sent on closed connections.",
                offsetof(struct stats_service, bytes_sent));
    per_service(views, n, out, "meshim_bytes_received_total", "counter",
                "Bytes received on closed connections.",
                offsetof(struct stats_service, bytes_received));
    histogram_family(views, n, out, "meshim_connect_seconds",
                     "Time from connect() to an established connection, retries included.",
                     offsetof(struct stats_service, connect), false);
    handshakes_and_inbound(views, n, out);
    requests(views, n, out);
    spans(views, n, out);
    histogram_family(views, n, out, "meshim_request_duration_seconds",
                     "protocol = http: time from a request's head read to its answer's end, retries "
                     "included.", offsetof(struct stats_service, request), true);
    per_service(views, n, out, "meshim_request_bytes_total", "counter",
                "protocol = http: bytes of requests sent upstream, heads included.",
                offsetof(struct stats_service, request_bytes));
    per_service(views, n, out, "meshim_response_bytes_total", "counter",
                "protocol = http: bytes of answers given to the application, heads included.",
                offsetof(struct stats_service, response_bytes));
}
