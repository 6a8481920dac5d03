/*
 * exporter.h — `meshim exporter --listen ADDR`: Prometheus text at /metrics.
 */
#ifndef MESHIM_EXPORTER_H
#define MESHIM_EXPORTER_H

#include <stdbool.h>

/* Serves the stats in dir (NULL: every user's default folder,
 * stats_view_scan_users) until SIGINT or SIGTERM; returns the exit status. */
int exporter_run(const char *listen_addr, const char *dir);

/* What a request head (NUL-terminated, as read) asks for: its request
 * line decides; HEAD sets *head_only. */
enum exporter_route { ROUTE_BAD, ROUTE_METHOD, ROUTE_METRICS, ROUTE_ROOT, ROUTE_NOT_FOUND };
enum exporter_route exporter_route(const char *head, bool *head_only);

#endif
