/*
 * statsview.c — stats files read and rendered (see statsview.h).
 */
#include "statsview.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meshim/util.h"

/* ----------------------------------------------------------------- files -- */

static bool region_fits(uint64_t off, uint64_t n, size_t each, size_t size)
{
    return off <= size && n <= (size - off) / each;
}

static bool check(const struct stats_header *h, size_t size, char *why, size_t len)
{
    const char *bad = NULL;
    if (size < sizeof(*h) || memcmp(h->magic, STATS_MAGIC, sizeof(h->magic)) != 0)
        bad = "not a meshim stats file";
    else if (h->version != STATS_VERSION || h->header_size != sizeof(*h))
        bad = "written by another version of meshim";
    else if (h->file_size != size)
        bad = "truncated";
    else if (!region_fits(h->off_services, h->max_services, sizeof(struct stats_service), size) ||
             !region_fits(h->off_endpoints, h->max_endpoints, sizeof(struct stats_endpoint), size) ||
             !region_fits(h->off_inbound, h->max_inbound, sizeof(struct stats_inbound), size) ||
             h->off_services % 8 || h->off_endpoints % 8 || h->off_inbound % 8)
        bad = "corrupt layout";
    if (bad)
        snprintf(why, len, "%s", bad);
    return !bad;
}

/* A name from a slot: bounded, and only characters safe in a table and in
 * a Prometheus label (anything else becomes '?'). */
static void name_of(const char *field, size_t size, char *out, size_t len)
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

bool stats_view_open(const char *path, struct stats_view *v, char *why, size_t len)
{
    memset(v, 0, sizeof(*v));
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, len, "%s", fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return false;
    }
    size_t size = (size_t)st.st_size;
    void *m = size >= sizeof(struct stats_header) ? mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0)
                                                  : MAP_FAILED;
    close(fd);
    if (m == MAP_FAILED) {
        snprintf(why, len, "%s", size < sizeof(struct stats_header) ? "truncated" : strerror(errno));
        return false;
    }
    if (!check(m, size, why, len)) {
        munmap(m, size);
        return false;
    }
    v->h = m;
    v->size = size;
    v->pid = v->h->pid;
    name_of(v->h->process, sizeof(v->h->process), v->process, sizeof(v->process));
    return true;
}

void stats_view_close(struct stats_view *v)
{
    if (v->h)
        munmap((void *)v->h, v->size);
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

/* "1234.stats" (or ".1234.stats.tmp", a file being made): its pid, or 0. */
static int pid_of(const char *name, bool *tmp)
{
    *tmp = name[0] == '.';
    if (*tmp)
        name++;
    char *end;
    long pid = strtol(name, &end, 10);
    if (pid <= 0 || pid > 0x3fffffff || end == name)
        return 0;
    if (strcmp(end, *tmp ? ".stats.tmp" : ".stats") != 0)
        return 0;
    return (int)pid;
}

int stats_view_scan(const char *dir, int only, struct stats_view **out)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0, cap = 0;
    struct stats_view *views = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        bool tmp;
        int pid = pid_of(e->d_name, &tmp);
        if (!pid || (only && pid != only))
            continue;
        char path[4096], why[128];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (tmp) {
            if (!proc_start_ticks(pid))
                unlink(path);           /* left by a process that died making it */
            continue;
        }
        struct stats_view v;
        if (!stats_view_open(path, &v, why, sizeof(why)))
            continue;
        uint64_t started = proc_start_ticks(pid);
        if (v.pid != pid || !started || started != v.h->start_ticks) {
            /* Its process is gone (or the pid is another process's now). */
            stats_view_close(&v);
            unlink(path);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct stats_view *bigger = realloc(views, (size_t)cap * sizeof(*views));
            if (!bigger) {
                stats_view_close(&v);
                break;
            }
            views = bigger;
        }
        views[n++] = v;
    }
    closedir(d);
    if (n)
        qsort(views, (size_t)n, sizeof(*views), by_pid);
    *out = views;
    return n;
}

/* ----------------------------------------------------------------- slots -- */

unsigned stats_view_count(const struct stats_view *v, char which)
{
    const struct stats_header *h = v->h;
    uint32_t n, max;
    switch (which) {
    case 's': n = __atomic_load_n(&h->n_services, __ATOMIC_ACQUIRE); max = h->max_services; break;
    case 'e': n = __atomic_load_n(&h->n_endpoints, __ATOMIC_ACQUIRE); max = h->max_endpoints; break;
    default: n = __atomic_load_n(&h->n_inbound, __ATOMIC_ACQUIRE); max = h->max_inbound; break;
    }
    return n < max ? n : max;
}

const struct stats_service *stats_view_service(const struct stats_view *v, unsigned i)
{
    return (const struct stats_service *)((const char *)v->h + v->h->off_services) + i;
}

const struct stats_endpoint *stats_view_endpoint(const struct stats_view *v, unsigned i)
{
    return (const struct stats_endpoint *)((const char *)v->h + v->h->off_endpoints) + i;
}

const struct stats_inbound *stats_view_inbound(const struct stats_view *v, unsigned i)
{
    return (const struct stats_inbound *)((const char *)v->h + v->h->off_inbound) + i;
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

static void latency_cells(const struct stats_histogram *h, FILE *out)
{
    double p50 = stats_quantile_us(h, 0.5), p99 = stats_quantile_us(h, 0.99);
    if (p50 < 0)
        fprintf(out, " %8s %8s", "-", "-");
    else
        fprintf(out, " %8.2f %8.2f", p50 / 1000, p99 / 1000);
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
        uint64_t ejections = 0;
        for (unsigned r = 0; r < RESULT_COUNT; r++)
            by[r] = load(&svc->connections[r]);
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
        name_of(svc->name, sizeof(svc->name), name, sizeof(name));
        fprintf(out, "  %-28s %8llu %8llu %8llu %8llu %8llu %6llu %6lld %12llu %12llu", name,
                (unsigned long long)by[RESULT_OK], (unsigned long long)by[RESULT_REFUSED],
                (unsigned long long)by[RESULT_TIMEOUT], (unsigned long long)other,
                (unsigned long long)load(&svc->retries), (unsigned long long)ejections,
                (long long)(active > 0 ? active : 0), (unsigned long long)load(&svc->bytes_sent),
                (unsigned long long)load(&svc->bytes_received));
        latency_cells(&svc->connect, out);
        fprintf(out, "\n");
        for (unsigned e = 0; e < ne; e++) {
            const struct stats_endpoint *ep = stats_view_endpoint(v, e);
            if (ep->service != s)
                continue;
            char label[160];
            name_of(ep->label, sizeof(ep->label), name, sizeof(name));
            snprintf(label, sizeof(label), "%s%s", name,
                     __atomic_load_n(&ep->ejected, __ATOMIC_RELAXED) ? " (ejected)" : "");
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
                fprintf(out, "  tls handshakes %s %s: %llu\n", d ? "inbound" : "outbound",
                        stats_result_name(r), (unsigned long long)load(&v->h->tls_handshakes[d][r]));
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
    name_of(svc->name, sizeof(svc->name), name, sizeof(name));
    snprintf(out, len, ",service=\"%s\"", name);
}

static void endpoint_labels(const struct stats_view *v, const struct stats_endpoint *ep, char *out,
                            size_t len)
{
    char svc[160], label[96];
    service_label(v, ep->service, svc, sizeof(svc));
    name_of(ep->label, sizeof(ep->label), label, sizeof(label));
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

static void per_endpoint(const struct stats_view *views, int n, FILE *out, bool gauge)
{
    const char *metric = gauge ? "meshim_endpoint_ejected" : "meshim_ejections_total";
    family(out, metric, gauge ? "gauge" : "counter",
           gauge ? "1 while the endpoint is ejected (its circuit is open or half-open)."
                 : "Times the endpoint was ejected by its circuit breaker.");
    for (int p = 0; p < n; p++)
        for (unsigned e = 0; e < stats_view_count(&views[p], 'e'); e++) {
            const struct stats_endpoint *ep = stats_view_endpoint(&views[p], e);
            if (!endpoint_ok(&views[p], ep))
                continue;
            char labels[400];
            endpoint_labels(&views[p], ep, labels, sizeof(labels));
            sample(out, &views[p], metric, labels,
                   gauge ? __atomic_load_n(&ep->ejected, __ATOMIC_RELAXED) != 0 : load(&ep->ejections));
        }
}

static void histogram(const struct stats_view *views, int n, FILE *out)
{
    family(out, "meshim_connect_seconds", "histogram",
           "Time from connect() to an established connection, retries included.");
    for (int p = 0; p < n; p++) {
        const struct stats_view *v = &views[p];
        for (unsigned s = 0; s < stats_view_count(v, 's'); s++) {
            const struct stats_histogram *h = &stats_view_service(v, s)->connect;
            char svc[200], labels[300];
            service_label(v, s, svc, sizeof(svc));
            uint64_t cumulative = 0;
            for (unsigned b = 0; b < STATS_BUCKETS; b++) {
                cumulative += load(&h->buckets[b]);
                char le[32];
                if (b == STATS_BUCKETS - 1)
                    snprintf(le, sizeof(le), "+Inf");
                else
                    snprintf(le, sizeof(le), "%g", (double)stats_bucket_bound_us(b) / 1e6);
                snprintf(labels, sizeof(labels), "%s,le=\"%s\"", svc, le);
                sample(out, v, "meshim_connect_seconds_bucket", labels, cumulative);
            }
            fprintf(out, "meshim_connect_seconds_sum{process=\"%s\",pid=\"%d\"%s} %.6f\n", v->process,
                    v->pid, svc, (double)load(&h->sum_us) / 1e6);
            sample(out, v, "meshim_connect_seconds_count", svc, cumulative);
        }
    }
}

static void handshakes_and_inbound(const struct stats_view *views, int n, FILE *out)
{
    family(out, "meshim_tls_handshakes_total", "counter", "TLS handshakes by direction and outcome.");
    for (int p = 0; p < n; p++)
        for (unsigned d = 0; d < DIRECTION_COUNT; d++)
            for (unsigned r = 0; r < RESULT_COUNT; r++) {
                uint64_t value = load(&views[p].h->tls_handshakes[d][r]);
                char labels[96];
                snprintf(labels, sizeof(labels), ",direction=\"%s\",result=\"%s\"",
                         d ? "inbound" : "outbound", stats_result_name(r));
                if (value)
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

void stats_render_prometheus(const struct stats_view *views, int n, FILE *out)
{
    connections(views, n, out);
    per_service(views, n, out, "meshim_retries_total", "counter",
                "Attempts made after a failed one (connection-level retries).",
                offsetof(struct stats_service, retries));
    per_endpoint(views, n, out, false);
    per_endpoint(views, n, out, true);
    per_service(views, n, out, "meshim_active_connections", "gauge",
                "Connections established and not yet closed.",
                offsetof(struct stats_service, active));
    per_service(views, n, out, "meshim_bytes_sent_total", "counter",
                "Bytes the application sent on closed connections.",
                offsetof(struct stats_service, bytes_sent));
    per_service(views, n, out, "meshim_bytes_received_total", "counter",
                "Bytes received on closed connections.",
                offsetof(struct stats_service, bytes_received));
    histogram(views, n, out);
    handshakes_and_inbound(views, n, out);
}
