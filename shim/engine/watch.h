/*
 * watch.h — keeps the running config and the discovered endpoints fresh
 * (SPEC §3.4), from a background thread of its own.
 *
 * What it watches:
 *   - `dns` / `srv` names: asked with the C library's resolver (the system's
 *     servers, or [meshim] dns_server), again when the answer's TTL runs
 *     out (clamped to 1 s – 300 s); a failed answer keeps the last good
 *     endpoints and is asked again after 1 s, 2 s, 4 s … 30 s;
 *   - `endpoints_file`s and the INI file: checked every reload_interval
 *     ([tls] reload_interval, default 10 s) by identity, size and mtime; a
 *     changed file is read again. A bad endpoints file or an invalid INI
 *     file is reported (file, line, key) and the running state stays.
 *
 * It is a thread of its own rather than part of the engine because the
 * resolver blocks (up to a few seconds for a server that does not answer),
 * and connects in the engine must not wait behind it. Like the engine it
 * starts on first use, blocks every signal, passes every hooked call
 * through, and a fork child starts its own when it needs one.
 */
#ifndef MESHIM_WATCH_H
#define MESHIM_WATCH_H

#include <stdint.h>

#include "meshim/registry.h"

/* At start, in the constructor: reads every endpoints_file (a local file,
 * so connects have those endpoints from the first one) and notes the INI
 * file's identity. */
void watch_init(struct registry *reg);

/* Starts the watcher if it is not running and there is something to
 * watch (a config file, a dns/srv name or an endpoints file): the first
 * resolve or connect to a service. An atomic load or two when it is. */
void watch_start(void);

/* A blocking connect (or a resolver call) to a service whose DNS has not
 * answered yet waits for the first answer, up to timeout_ms, and no longer
 * than the first such wait (service_wait_deadline); at once if it has. */
void watch_wait(struct service *svc, uint32_t timeout_ms);

void watch_atfork_pause(void);    /* until the thread is between two pieces of work */
void watch_atfork_prepare(void);
void watch_atfork_parent(void);
void watch_atfork_child(void);

#endif
