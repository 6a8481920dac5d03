/*
 * process.h — what the hooks ask of the process's entry points (process.c).
 */
#ifndef MESHIM_PROCESS_H
#define MESHIM_PROCESS_H

/* Before a call that may take away the process's access to the identity's
 * files (its user, groups or root folder): a root process under mTLS reads
 * its identity now, once. Keeps errno; async-signal-unsafe, as the calls
 * it comes before are not async-signal-safe either (setuid's broadcast). */
void process_before_privileges(void);

#endif
