/*
 * sharedview.h — reading the host's endpoint table (include/meshim/shared.h)
 * for `meshim stats`: which endpoints every meshed process of this user
 * skips, who ejected them, who holds a half-open probe, who runs the
 * health checks.
 *
 * The table is copied out once with pread and checked (a regular file, not
 * a symlink, this build's size and header); names are bounded. A table
 * that is missing, or written by another version, is simply not shown.
 */
#ifndef MESHIM_SHAREDVIEW_H
#define MESHIM_SHAREDVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "meshim/shared.h"

struct shared_view {
    struct shared_entry *entries;       /* the slots in use, copied */
    unsigned n;
    char path[600];
};

/* Loads dir's table; false with the reason in why (errno ENOENT: none). */
bool shared_view_load(const char *dir, struct shared_view *v, char *why, size_t len);
void shared_view_free(struct shared_view *v);

/* One entry's state in words, as of now_ms (CLOCK_MONOTONIC). */
void shared_state_text(const struct shared_entry *e, uint64_t now_ms, char *buf, size_t len);

/* The table as `meshim stats` prints it, after the processes' tables:
 * the entries in use, or all of them. An idle entry (shared_idle) says
 * nothing a connect would meet: its circuit admits and no check runs, and
 * a long-lived table holds every endpoint its user's programs ever met. */
void shared_render_table(const struct shared_view *v, bool all, FILE *out);

#endif
