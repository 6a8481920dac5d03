/*
 * accesslog.h — one JSON line per meshed connection when it ends
 * (SPEC §3.7), written to stderr or a file with one O_APPEND write.
 *
 * access_format() is pure (tested by cmocka); access_write() formats and
 * writes to where the config says.
 */
#ifndef MESHIM_ACCESSLOG_H
#define MESHIM_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshim/stats.h"
#include "meshim/trace.h"

/* Envoy-style response flags. */
enum access_flag {
    FLAG_UF = 1 << 0,       /* upstream connection failure */
    FLAG_URX = 1 << 1,      /* every attempt failed (retries exhausted) */
    FLAG_UO = 1 << 2,       /* overflow: max_connections, max_requests */
    FLAG_UH = 1 << 3,       /* no healthy endpoint */
    FLAG_FI = 1 << 4,       /* fault injected: fault_abort */
    FLAG_DI = 1 << 5,       /* delay injected: fault_delay */
    FLAG_DENY = 1 << 6,     /* identity or policy refused */
    FLAG_DC = 1 << 7,       /* the application closed before the connect ended */
    FLAG_SE = 1 << 8,       /* an endpoint was passed over on the host table's word:
                               another process ejected it or its checker found it down */
};

/* Longest line written; longer caller stacks are cut to fit. */
#define ACCESS_LINE_MAX 4000

/* A failed attempt of a connection that was retried: where it went, why. */
struct access_failure {
    char endpoint[48];          /* "10.0.0.5:8080" */
    char why[80];               /* "Connection refused", "TLS handshake: ..." */
};
/* The failures a line names; attempts beyond them are only counted. */
#define ACCESS_FAILURES_MAX 8

struct access_record {
    uint64_t start_unix_ns;     /* when connect() (or accept()) was called */
    int pid;
    enum stats_direction direction;
    const char *service;
    const char *endpoint;       /* "" when none was reached */
    unsigned attempts;
    const char *result;         /* stats_result_name(), or "abandoned" */
    unsigned flags;             /* enum access_flag */
    const char *tls;            /* "none", "ktls" (kernel TLS) or "relay" (mTLS through the engine) */
    const char *tls_relay_why;  /* relay: why not kernel TLS ("" when it was never offered) */
    const char *peer_identity;  /* "" when none */
    double connect_ms;          /* < 0: never connected (null) */
    double duration_ms;
    uint64_t bytes_sent, bytes_received;
    const char *callers;        /* a JSON array, or NULL */
    const struct access_failure *failures;  /* the failed attempts, in order */
    unsigned n_failures;
};

/* One request of a protocol = http service or port (mesh/http.h): a line
 * of its own, "kind":"request" (a connection's line has no kind). */
struct access_request {
    uint64_t start_unix_ns;     /* the request's head was read */
    int pid;
    enum stats_direction direction;
    const char *service;        /* where it went (after routing) */
    const char *route;          /* the [route:NAME] that sent it there, or NULL */
    const char *method, *authority, *path;
    int status;                 /* what the application got; 0: no answer (it closed first) */
    const char *endpoint;       /* the last attempt's, "" when none; inbound: the client */
    const char *peer_identity;  /* mTLS: the peer's identity (NULL or "": none) */
    unsigned attempts;
    unsigned flags;             /* enum access_flag and the request flags below */
    double duration_ms;         /* head read to the answer's end */
    uint64_t bytes_sent, bytes_received;    /* request and answer, heads included */
    const struct span_ids *span;            /* [tracing]: the request's span (written in hex); or NULL */
};

/* Request flags, after the connection ones (Envoy's names). */
enum access_request_flag {
    FLAG_UT = 1 << 9,           /* upstream request timeout: request_timeout (504) */
    FLAG_UC = 1 << 10,          /* upstream connection ended before the answer's end */
    FLAG_LR = 1 << 11,          /* the answer was made here (503, 504), not by an endpoint */
    FLAG_RETRY = 1 << 12,       /* retried (on the status, a reset, or a connect failure) */
};

size_t access_format_request(const struct access_request *r, char *buf, size_t len);
void access_write_request(const struct access_request *r);

/* The line, '\n' included, in buf; returns its length (< len). */
size_t access_format(const struct access_record *r, char *buf, size_t len);
/* "UF,URX", or "-" for none. */
void access_flags_text(unsigned flags, char *buf, size_t len);


/* Where lines go: "off", "stderr" or a path. */
void access_configure(const char *where);
bool access_enabled(void);
/* True when lines go to a file (not stderr, not off). */
bool access_to_file(void);
/* Opens that file now: before a root process drops its privileges. */
void access_open_now(void);
/* fork: the child's copy of the open access log (observe/logfile.h). */
void access_atfork_child(void);
void access_write(const struct access_record *r);

#endif
