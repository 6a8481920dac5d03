/*
 * log.h — the shim's own log lines: "meshim[PID]: warn: message".
 *
 * A message is written at most once a second (the same text again within the
 * second is dropped), so a failing endpoint under load cannot flood a
 * program's stderr.
 */
#ifndef MESHIM_LOG_H
#define MESHIM_LOG_H

#include "meshim/config.h"

void log_configure(enum log_level level, const char *file);
/* True when log_file names a file (not stderr). */
bool log_to_file(void);
/* Opens log_file now: before a root process drops its privileges. */
void log_open_now(void);
/* fork: the child's copy of the open log_file (observe/logfile.h). */
void log_atfork_child(void);
/* A reloaded config's log_level (the rest of log_configure needs a restart). */
void log_set_level(enum log_level level);
/* Writes one whole line to path ("stderr", empty or NULL: stderr) with one
 * O_APPEND write, so lines from many processes never interleave; the file
 * is opened for this line (see log.c). Also the access log's writer to
 * stderr.
 * False when path could not be opened: the line went to stderr instead. */
bool log_write_line(const char *path, const char *line, size_t len);
void mlog(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Would a line of this level be written? For a line whose arguments cost
 * work of their own (OpenSSL calls on every handshake). */
bool log_wants(enum log_level level);

#define log_error(...) mlog(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) mlog(LOG_WARN, __VA_ARGS__)
#define log_info(...) mlog(LOG_INFO, __VA_ARGS__)
#define log_debug(...) mlog(LOG_DEBUG, __VA_ARGS__)

#endif
