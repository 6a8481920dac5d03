/*
 * accesslog.c — the access log's JSON lines (see accesslog.h).
 *
 * Fixed field order, so that lines diff and grep well; strings escaped per
 * RFC 8259; a line never exceeds ACCESS_LINE_MAX, so that it stays one
 * atomic write even to a pipe.
 */
#include "observe/accesslog.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "observe/log.h"
#include "observe/logfile.h"

static char where[512];             /* empty: off */
/* The file stays open between lines (observe/logfile.h). */
static struct logfile file = LOGFILE_INIT;
static bool to_stderr;              /* where is "stderr" */
static int failing;                 /* why the last line did not go in (a full disk), 0: it did */

void access_configure(const char *to)
{
    if (!to || strcmp(to, "off") == 0)
        where[0] = '\0';
    else
        snprintf(where, sizeof(where), "%s", to);
    to_stderr = strcmp(where, "stderr") == 0;
    logfile_own(&file);
}

bool access_enabled(void)
{
    return where[0] != '\0';
}

static void write_line(const char *line, size_t n)
{
    if (!n)
        return;
    int saved = errno, write_error = 0;
    if (to_stderr) {
        log_write_line(NULL, line, n);
    } else if (logfile_write(&file, where, line, n, &write_error)) {
        /* Lines lost to a full disk are said once, and so is the end of it. */
        if (write_error && !__atomic_exchange_n(&failing, write_error, __ATOMIC_RELAXED))
            log_warn("access_log: writing %s failed (%s): lines are lost until it can be written", where,
                     strerror(write_error));
        else if (!write_error && __atomic_load_n(&failing, __ATOMIC_RELAXED) &&
                 __atomic_exchange_n(&failing, 0, __ATOMIC_RELAXED))
            log_warn("access_log: writing %s again", where);
    } else {
        int err = errno;
        log_write_line(NULL, line, n);
        /* /dev/stdout is the usual one: a link to the program's descriptor. */
        log_warn("access_log: cannot open %s (%s); its lines go to stderr", where,
                 err == ELOOP ? "a symbolic link, never followed: name the file itself, or stderr"
                              : strerror(err));
    }
    errno = saved;
}

bool access_to_file(void)
{
    return access_enabled() && !to_stderr;
}

void access_open_now(void)
{
    if (access_to_file())
        logfile_open_now(&file, where);
}

void access_atfork_child(void)
{
    logfile_atfork_child(&file);
}

void access_write(const struct access_record *r)
{
    if (!access_enabled())
        return;
    char line[ACCESS_LINE_MAX + 1];
    write_line(line, access_format(r, line, sizeof(line)));
}

void access_write_request(const struct access_request *r)
{
    if (!access_enabled())
        return;
    char line[ACCESS_LINE_MAX + 1];
    write_line(line, access_format_request(r, line, sizeof(line)));
}

/* ------------------------------------------------------------ formatting -- */

static void put_string(struct textbuf *o, const char *key, const char *s)
{
    textbuf_put(o, ",\"%s\":", key);
    textbuf_json(o, s);
}

void access_flags_text(unsigned flags, char *buf, size_t len)
{
    static const char *const NAMES[] = { "UF", "URX", "UO", "UH", "FI", "DI", "DENY", "DC", "SE",
                                         "UT", "UC", "LR", "RTY" };
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < sizeof(NAMES) / sizeof(NAMES[0]); i++)
        if (flags & (1u << i)) {
            int n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", NAMES[i]);
            if (n < 0 || (size_t)n >= len - used)
                break;
            used += (size_t)n;
        }
    if (!used)
        snprintf(buf, len, "-");
}

static void put_time(struct textbuf *o, uint64_t unix_ns)
{
    time_t sec = (time_t)(unix_ns / 1000000000u);
    struct tm tm;
    gmtime_r(&sec, &tm);
    textbuf_put(o, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03uZ\"", tm.tm_year + 1900, tm.tm_mon + 1,
        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(unix_ns / 1000000u % 1000u));
}

/* ,"key":MS with three decimals, whatever the program's LC_NUMERIC: %f
 * writes the locale's decimal point, and wget (which takes its locale from
 * the environment) under de_DE.UTF-8 logged "connect_ms":165,750, and the
 * line was no longer JSON. */
static void put_ms(struct textbuf *o, const char *key, double ms)
{
    unsigned long long us = ms > 0 ? (unsigned long long)(ms * 1000.0 + 0.5) : 0;
    textbuf_put(o, ",\"%s\":%llu.%03llu", key, us / 1000, us % 1000);
}

size_t access_format(const struct access_record *r, char *buf, size_t len)
{
    /* Room for the closing "}\n" is kept back while fields are added. */
    struct textbuf o = { buf, len > 3 ? len - 2 : 0, 0, len <= 3 };
    char flags[64];
    access_flags_text(r->flags, flags, sizeof(flags));
    put_time(&o, r->start_unix_ns);
    textbuf_put(&o, ",\"pid\":%d", r->pid);
    put_string(&o, "direction", r->direction == DIRECTION_INBOUND ? "inbound" : "outbound");
    put_string(&o, "service", r->service);
    put_string(&o, "endpoint", r->endpoint);
    textbuf_put(&o, ",\"attempts\":%u", r->attempts);
    put_string(&o, "result", r->result);
    put_string(&o, "flags", flags);
    put_string(&o, "tls", r->tls ? r->tls : "none");
    if (r->tls_relay_why && *r->tls_relay_why)
        put_string(&o, "tls_relay_why", r->tls_relay_why);
    put_string(&o, "peer_identity", r->peer_identity);
    if (r->connect_ms >= 0)
        put_ms(&o, "connect_ms", r->connect_ms);
    else
        textbuf_put(&o, ",\"connect_ms\":null");
    put_ms(&o, "duration_ms", r->duration_ms);
    textbuf_put(&o, ",\"bytes_sent\":%llu,\"bytes_received\":%llu", (unsigned long long)r->bytes_sent,
        (unsigned long long)r->bytes_received);
    if (r->n_failures) {
        textbuf_put(&o, ",\"failed_attempts\":[");
        for (unsigned i = 0; i < r->n_failures; i++) {
            textbuf_put(&o, "%s{\"endpoint\":", i ? "," : "");
            textbuf_json(&o, r->failures[i].endpoint);
            textbuf_put(&o, ",\"error\":");
            textbuf_json(&o, r->failures[i].why);
            textbuf_put(&o, "}");
        }
        textbuf_put(&o, "]");
    }
    if (o.full)
        return 0;               /* cannot happen with ACCESS_LINE_MAX: fixed fields are short */
    if (r->callers) {
        size_t before = o.used;
        textbuf_put(&o, ",\"callers\":%s", r->callers);
        if (o.full) {           /* too long: say so rather than cut JSON in half */
            o.used = before;
            o.full = false;
            textbuf_put(&o, ",\"callers\":[\"(too long)\"]");
        }
    }
    o.len += 2;
    textbuf_put(&o, "}\n");
    return o.used;
}

size_t access_format_request(const struct access_request *r, char *buf, size_t len)
{
    struct textbuf o = { buf, len > 3 ? len - 2 : 0, 0, len <= 3 };
    char flags[64];
    access_flags_text(r->flags, flags, sizeof(flags));
    put_time(&o, r->start_unix_ns);
    textbuf_put(&o, ",\"pid\":%d", r->pid);
    put_string(&o, "kind", "request");
    put_string(&o, "direction", r->direction == DIRECTION_INBOUND ? "inbound" : "outbound");
    put_string(&o, "service", r->service);
    if (r->route)
        put_string(&o, "route", r->route);
    put_string(&o, "method", r->method);
    put_string(&o, "authority", r->authority);
    /* A path can be long: cut it rather than lose the line. */
    char path[1024];
    snprintf(path, sizeof(path), "%s", r->path);
    put_string(&o, "path", path);
    textbuf_put(&o, ",\"status\":%d", r->status);
    put_string(&o, "endpoint", r->endpoint);
    if (r->peer_identity && *r->peer_identity)
        put_string(&o, "peer_identity", r->peer_identity);
    textbuf_put(&o, ",\"attempts\":%u", r->attempts);
    put_string(&o, "flags", flags);
    put_ms(&o, "duration_ms", r->duration_ms);
    textbuf_put(&o, ",\"bytes_sent\":%llu,\"bytes_received\":%llu", (unsigned long long)r->bytes_sent,
        (unsigned long long)r->bytes_received);
    if (r->span) {
        char trace_id[33], span_id[17];
        span_ids_hex(r->span, trace_id, span_id);
        put_string(&o, "trace_id", trace_id);
        put_string(&o, "span_id", span_id);
    }
    if (o.full)
        return 0;
    o.len += 2;
    textbuf_put(&o, "}\n");
    return o.used;
}
