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
#include <time.h>
#include <unistd.h>

static void terminate(struct shared_entry *e)
{
    e->service[sizeof(e->service) - 1] = '\0';
    e->endpoint[sizeof(e->endpoint) - 1] = '\0';
    for (char *p = e->service; *p; p++)
        *p = *p >= 0x20 && *p < 0x7f ? *p : '?';
    for (char *p = e->endpoint; *p; p++)
        *p = *p >= 0x20 && *p < 0x7f ? *p : '?';
}

static int by_name(const void *a, const void *b)
{
    const struct shared_entry *x = a, *y = b;
    int c = strcmp(x->service, y->service);
    return c ? c : strcmp(x->endpoint, y->endpoint);
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
        if (all[i].key) {
            terminate(&all[i]);
            memmove(&all[n++], &all[i], sizeof(all[i]));
        }
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

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
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

void shared_render_table(const struct shared_view *v, FILE *out)
{
    uint64_t now = mono_ms();
    fprintf(out, "host endpoint table %s (shared by this user's processes)\n", v->path);
    fprintf(out, "  %-40s %-38s %9s  %s\n", "SERVICE / ENDPOINT", "CIRCUIT", "EJECTIONS",
            "HEALTH CHECK");
    for (unsigned i = 0; i < v->n; i++) {
        const struct shared_entry *e = &v->entries[i];
        char name[160], state[96], health[80];
        snprintf(name, sizeof(name), "%s %s", e->service, e->endpoint);
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
                     checker ? checker : (int32_t)(e->checker >> 40));
        fprintf(out, "  %-40s %-38s %9u  %s\n", name, state, c.ejections, health);
    }
    if (!v->n)
        fprintf(out, "  (empty)\n");
}
