/*
 * callers.h — the application's call stack at connect() or accept(), for
 * the access log (access_log_callers = on).
 *
 * libunwind is opened with dlopen the first time it is needed, never
 * linked: a program that does not ask for stacks does not load it, and an
 * image without libunwind.so.8 still runs (one warning, no stacks).
 */
#ifndef MESHIM_CALLERS_H
#define MESHIM_CALLERS_H

/* The frames of the calling thread below the shim's own, innermost first,
 * as a JSON array of "function+0xoff (module)" strings (malloc'd), or NULL
 * when libunwind is missing or nothing could be read. */
char *callers_capture(void);

#endif
