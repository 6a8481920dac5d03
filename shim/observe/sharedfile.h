/*
 * sharedfile.h — this process's view of the host's endpoint table
 * (include/meshim/shared.h): the file, mapped on first need, and each
 * endpoint's entry in it.
 *
 * The table is <stats_dir>/shared-endpoints.v1 (the per-user default
 * folder when stats_dir = off), under the stats files' trust rules: a
 * folder only this user (or root) controls, and a file this user owns,
 * readable and writable by nobody else; anything else is refused with one
 * warning and the process keeps its endpoint state to itself, as with
 * shared_state = off.
 */
#ifndef MESHIM_SHAREDFILE_H
#define MESHIM_SHAREDFILE_H

#include "meshim/registry.h"
#include "meshim/shared.h"

/* The endpoint's entry in the host's table, or NULL: shared_state = off,
 * no table, or no room in it (then the endpoint's state stays in the
 * process). A few loads once the entry is known; now: now_ns(). */
struct shared_entry *shared_entry_of(const struct service *svc, struct endpoint *ep, uint64_t now);

/* This process's pid as the table records it (the fork child's own). */
int32_t shared_pid(void);

void shared_atfork_child(void);

#endif
