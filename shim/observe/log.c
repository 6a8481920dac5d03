/*
 * log.c — rate-limited log lines (see log.h).
 *
 * Written with raw syscalls: the log must not go through the shim's own
 * hooks. log_file is kept open as the access log is (observe/logfile.h:
 * one of the shim's own descriptors, which a daemonising program that
 * closes every descriptor cannot close or reuse), so that a root process
 * can open it before it drops its privileges (log_open_now). A path given
 * to log_write_line is opened for that line (files_open_log: no symlink,
 * nothing that can block).
 */
#include "libc/real.h"
#include "observe/files.h"
#include "observe/log.h"
#include "observe/logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_level = LOG_WARN;
static char log_path[512];                  /* empty: stderr */
static struct logfile log_kept = LOGFILE_INIT;  /* log_path, open */

#define RATE_SLOTS 64

struct rate_slot {
    uint64_t hash;
    int64_t second;
};
static struct rate_slot rate[RATE_SLOTS];

void log_configure(enum log_level level, const char *file)
{
    log_set_level(level);
    if (file && strcmp(file, "stderr") != 0)
        snprintf(log_path, sizeof(log_path), "%s", file);
    else
        log_path[0] = '\0';
    logfile_own(&log_kept);
}

bool log_to_file(void)
{
    return log_path[0] != '\0';
}

void log_open_now(void)
{
    if (log_path[0])
        logfile_open_now(&log_kept, log_path);
}

void log_atfork_child(void)
{
    logfile_atfork_child(&log_kept);
}

void log_set_level(enum log_level level)
{
    __atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

/* True when the same text was already written this second. Races between
 * threads can let a duplicate through; they never lose a distinct line. */
static bool repeated(const char *text)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    uint64_t h = hash_fnv1a(text);
    struct rate_slot *s = &rate[h % RATE_SLOTS];
    uint64_t old_hash = __atomic_load_n(&s->hash, __ATOMIC_RELAXED);
    int64_t old_second = __atomic_load_n(&s->second, __ATOMIC_RELAXED);
    if (old_hash == h && old_second == ts.tv_sec)
        return true;
    __atomic_store_n(&s->hash, h, __ATOMIC_RELAXED);
    __atomic_store_n(&s->second, (int64_t)ts.tv_sec, __ATOMIC_RELAXED);
    return false;
}

/* What stderr is: a server started by inetd, sshd or a CGI parent has the
 * client's socket on descriptors 0-2, and a line written to that stderr
 * would go to the client inside the protocol's stream: such lines are
 * dropped (log_file keeps them). A pipe (a log shipper's, `2>&1 | ...`)
 * may have lost its reader, and a plain write would raise SIGPIPE in the
 * program: files_write_line takes it back. */
enum stderr_kind { STDERR_OTHER, STDERR_SOCKET, STDERR_PIPE };

static enum stderr_kind stderr_kind(void)
{
    struct stat st;
    if (real_syscall4(SYS_fstat, 2, (long)&st, 0, 0) != 0)
        return STDERR_OTHER;
    return S_ISSOCK(st.st_mode) ? STDERR_SOCKET : S_ISFIFO(st.st_mode) ? STDERR_PIPE : STDERR_OTHER;
}

/* Whether a line written to fd now would not wait. A pipe or terminal that
 * nobody reads fills up, and a write would then stop the calling thread
 * (the engine's carries every connection of the process) until someone
 * reads: such a line is dropped instead. A line is shorter than PIPE_BUF,
 * so one free slot of a pipe takes it whole; a file is always ready, and a
 * closed descriptor never. */
static bool ready_for_line(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    struct timespec now = { 0, 0 };
    return real_syscall4(SYS_ppoll, (long)&p, 1, (long)&now, 0) == 1 && (p.revents & (POLLOUT | POLLERR));
}

bool log_write_line(const char *path, const char *line, size_t len)
{
    int fd = 2;
    bool opened = true;
    if (path && path[0] && strcmp(path, "stderr") != 0) {
        fd = files_open_log(path);
        if (fd < 0) {
            fd = 2;         /* a symlink, a FIFO nobody reads: the line goes to stderr */
            opened = false;
        }
    }
    /* One write with O_APPEND: lines from many processes do not interleave.
     * A log file's descriptor is non-blocking, and stderr is written only
     * when it is ready: a full pipe loses the line rather than stopping the
     * program. */
    enum stderr_kind kind = fd == 2 ? stderr_kind() : STDERR_PIPE;   /* a file may be a FIFO */
    if (kind != STDERR_SOCKET && (fd != 2 || ready_for_line(fd))) {
        if (kind == STDERR_PIPE)
            (void)files_write_line(fd, line, len);
        else
            (void)real_syscall4(SYS_write, fd, line, len, 0);
    }
    if (fd != 2)
        real_close(fd);
    return opened;
}

bool log_wants(enum log_level level)
{
    return level <= __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

void mlog(enum log_level level, const char *fmt, ...)
{
    static const char *const NAMES[] = { "error", "warn", "info", "debug" };
    if (level > __atomic_load_n(&log_level, __ATOMIC_RELAXED))
        return;
    char msg[1024], line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (repeated(msg))
        return;
    int n = snprintf(line, sizeof(line), "meshim[%d]: %s: %s\n", (int)getpid(), NAMES[level], msg);
    if (n > (int)sizeof(line) - 1)
        n = (int)sizeof(line) - 1, line[n - 1] = '\n';
    int saved = errno, write_error = 0;
    if (!log_path[0] || !logfile_write(&log_kept, log_path, line, (size_t)n, &write_error))
        log_write_line(NULL, line, (size_t)n);  /* cannot be opened: stderr */
    else if (write_error)
        log_write_line(NULL, line, (size_t)n);  /* cannot be written (a full disk): stderr too */
    errno = saved;
}
