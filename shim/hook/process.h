/*
 * process.h — what the hooks ask of the process's entry points (process.c).
 */
#ifndef MESHIM_PROCESS_H
#define MESHIM_PROCESS_H

#include <stdbool.h>

/* Before a call that may take away the process's access to the identity's
 * files (its user, groups or root folder): a root process under mTLS reads
 * its identity now, once. Keeps errno. Not async-signal-safe, where
 * setuid is: a root program whose first drop were made in a signal
 * handler (none is known) would load OpenSSL there. */
void process_before_privileges(void);
/* The same, before a call that sets the real, effective and saved user
 * (group: group) ids to these ((unsigned)-1: unchanged): nothing when
 * they are the ids the process has. */
void process_before_ids(bool group, unsigned real, unsigned effective, unsigned saved);

#endif
