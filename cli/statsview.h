/*
 * statsview.h — reading the stats files of live processes
 * (include/meshim/stats.h) and rendering them: the table of `meshim stats`
 * and the Prometheus text of `meshim stats --prometheus` and the exporter.
 *
 * No hooks here; a file is never trusted: every offset, count and string of
 * it is checked before use, so a corrupt or hostile file in a shared folder
 * is skipped, not followed.
 */
#ifndef MESHIM_STATSVIEW_H
#define MESHIM_STATSVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "meshim/stats.h"

/* One process's stats, copied out of its file once (never a live map):
 * the header and the slots in use, checked against this version's layout. */
struct stats_view {
    const struct stats_header *h;      /* the copy (owns the slots below) */
    struct stats_service *services;
    struct stats_endpoint *endpoints;
    struct stats_inbound *inbound;
    struct stats_requests *requests;
    unsigned n_services, n_endpoints, n_inbound, n_requests;
    int pid;
    char process[64];
};

/* Maps one file and checks its layout; false with the reason in why. */
bool stats_view_open(const char *path, struct stats_view *v, char *why, size_t len);
void stats_view_close(struct stats_view *v);

/* The files of live processes in dir, sorted by pid (only `pid` when it is
 * not 0); files of dead processes are removed. Returns how many (the array
 * is malloc'd), or -1 when dir cannot be read (errno). */
int stats_view_scan(const char *dir, int pid, struct stats_view **out);
/* Root's view of the host: the same, over every user's default folder,
 * /tmp/meshim-UID (config_default_stats_dir), that UID owns and no other
 * user may write to. A server started as root runs its workers as another
 * user (nginx's nobody, Apache's www-data), whose counters are in that
 * user's folder. Returns how many. */
int stats_view_scan_users(int pid, struct stats_view **out);
void stats_view_free(struct stats_view *v, int n);

/* Slots, bounded by the checked counts. */
const struct stats_service *stats_view_service(const struct stats_view *v, unsigned i);
const struct stats_endpoint *stats_view_endpoint(const struct stats_view *v, unsigned i);
const struct stats_inbound *stats_view_inbound(const struct stats_view *v, unsigned i);
const struct stats_requests *stats_view_requests(const struct stats_view *v, unsigned i);
unsigned stats_view_count(const struct stats_view *v, char which);   /* 's', 'e', 'i', 'r' */

/* The value below which a share q (0..1) of the observations fell,
 * interpolated inside its bucket as Prometheus's histogram_quantile does,
 * in microseconds. -1 with no observations; a quantile in the +Inf bucket
 * answers the highest finite bound. */
double stats_quantile_us(const struct stats_histogram *h, double q);

void stats_render_table(const struct stats_view *v, FILE *out);

/* A name from a file's field of `size` bytes: bounded, and only
 * characters safe in a table and in a Prometheus label (others become '?'). */
void stats_name_of(const char *field, size_t size, char *out, size_t len);

/* n bytes at off, whole (pread, EINTR retried); false on a short file. */
bool stats_read_at(int fd, void *buf, size_t n, uint64_t off);
void stats_render_prometheus(const struct stats_view *v, int n, FILE *out);

#endif
