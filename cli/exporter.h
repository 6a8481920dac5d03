/*
 * exporter.h — `meshim exporter --listen ADDR`: Prometheus text at /metrics.
 */
#ifndef MESHIM_EXPORTER_H
#define MESHIM_EXPORTER_H

/* Serves until SIGINT or SIGTERM; returns the exit status. */
int exporter_run(const char *listen_addr, const char *dir);

#endif
