/*
 * sharedview.c — the host's endpoint table for `meshim stats` (see
 * sharedview.h).
 */
#include "sharedview.h"
#include "statsview.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int by_name(const void *a, const void *b)
{
    const struct shared_entry *x = a, *y = b;
    int c = strncmp(x->service, y->service, sizeof(x->service));
    return c ? c : strncmp(x->endpoint, y->endpoint, sizeof(x->endpoint));
}

bool shared_view_load(const char *dir, struct shared_view *v, char *why, size_t len)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->path, sizeof(v->path), "%s/%s", dir, SHARED_FILE);
    int fd = open(v->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int err = errno;
        snprintf(why, len, "%s", strerror(err));
        if (fd >= 0)
            close(fd);
        errno = err;
        return false;
    }
    char *buf = NULL;
    const char *bad = NULL;
    if (!S_ISREG(st.st_mode))
        bad = "not a regular file";
    else if ((size_t)st.st_size != shared_file_size())
        bad = "not this version's size";
    else if (!(buf = malloc(shared_file_size())))
        bad = "out of memory";
    else if (!stats_read_at(fd, buf, shared_file_size(), 0))
        bad = "truncated";
    else if (!shared_header_ok((const struct shared_header *)buf))
        bad = "written by another version of meshim";
    close(fd);
    if (bad) {
        free(buf);
        snprintf(why, len, "%s", bad);
        errno = EINVAL;
        return false;
    }
    struct shared_entry *all = shared_slots((struct shared_header *)buf);
    unsigned n = 0;
    for (unsigned i = 0; i < SHARED_SLOTS; i++)
        if (all[i].key)
            memmove(&all[n++], &all[i], sizeof(all[i]));
    qsort(all, n, sizeof(all[0]), by_name);
    v->entries = memmove(buf, all, n * sizeof(all[0]));     /* buf: what free() takes */
    v->n = n;
    return true;
}

void shared_view_free(struct shared_view *v)
{
    free(v->entries);
    v->entries = NULL;
    v->n = 0;
}

void shared_state_text(const struct shared_entry *e, uint64_t now_ms, char *buf, size_t len)
{
    struct circuit c;
    shared_circuit_unpack(e->circuit, &c);
    uint64_t until_ms = c.state == CIRCUIT_OPEN ? c.open_until_ns / 1000000u
                                                : c.probe_until_ns / 1000000u;
    if (c.state == CIRCUIT_OPEN && until_ms > now_ms)
        snprintf(buf, len, "ejected %llus more, by pid %d",
                 (unsigned long long)((until_ms - now_ms + 999) / 1000), e->ejector);
    else if (c.state == CIRCUIT_OPEN)
        snprintf(buf, len, "ejection over, next pick probes");
    else if (c.state == CIRCUIT_HALF_OPEN && c.probing &&
             (c.probe_until_ns == 0 || until_ms > now_ms))
        snprintf(buf, len, "half-open, probe by pid %d", e->prober);
    else if (c.state == CIRCUIT_HALF_OPEN)
        snprintf(buf, len, "half-open, probe lease of pid %d expired", e->prober);
    else if (c.failures)
        snprintf(buf, len, "closed, %u failure%s in a row", c.failures, c.failures == 1 ? "" : "s");
    else
        snprintf(buf, len, "closed");
}

void shared_render_table(const struct shared_view *v, bool all, FILE *out)
{
    uint64_t now = now_ns() / 1000000u;     /* CLOCK_MONOTONIC, as the table's times */
    fprintf(out, "host endpoint table %s (shared by this user's processes)\n", v->path);
    fprintf(out, "  %-40s %-38s %9s %9s  %s\n", "SERVICE / ENDPOINT", "CIRCUIT", "EJECTIONS",
            "EWMA ms",
            "HEALTH CHECK");
    unsigned shown = 0;
    for (unsigned i = 0; i < v->n; i++) {
        const struct shared_entry *e = &v->entries[i];
        if (!all && shared_idle(e, now))
            continue;
        shown++;
        char service[sizeof(e->service)], endpoint[sizeof(e->endpoint)];
        char name[160], state[96], health[80];
        stats_name_of(e->service, sizeof(e->service), service, sizeof(service));
        stats_name_of(e->endpoint, sizeof(e->endpoint), endpoint, sizeof(endpoint));
        snprintf(name, sizeof(name), "%s %s", service, endpoint);
        shared_state_text(e, now, state, sizeof(state));
        struct circuit c;
        shared_circuit_unpack(e->circuit, &c);
        struct health h;
        uint64_t checked;
        shared_health_unpack(e->health, &h, &checked);
        int32_t checker = shared_lease_holder(e->checker, now);
        if (!checked)
            snprintf(health, sizeof(health), "-");
        else
            snprintf(health, sizeof(health), "%s %llus ago, checker %s%d", h.down ? "down" : "up",
                     (unsigned long long)(now > checked ? (now - checked) / 1000 : 0),
                     checker ? "pid " : "lease expired, was pid ",
                     shared_lease_pid(e->checker));
        struct lb_target t = { 0 };
        shared_ewma_load(e, &t);
        char ewma[16] = "-";
        if (t.ewma_ns > 0)
            snprintf(ewma, sizeof(ewma), "%.3f", t.ewma_ns / 1e6);
        fprintf(out, "  %-40s %-38s %9u %9s  %s\n", name, state, c.ejections, ewma, health);
    }
    if (!v->n)
        fprintf(out, "  (empty)\n");
    else if (shown < v->n)
        fprintf(out, "  (%u more unused for %u minutes, with no verdict in force: --all lists them)\n",
                v->n - shown, SHARED_IDLE_MS / 60000u);
}
