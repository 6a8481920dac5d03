/*
 * stats.h — the layout of a process's stats file, <stats_dir>/<pid>.stats
 * (SPEC §3.7). The library writes it, the command reads it: this header is
 * the contract between the two, versioned by STATS_VERSION.
 *
 * The file is a fixed-size memory map: a header, then arrays of service,
 * endpoint and inbound-port slots. The library fills a slot's names, then
 * publishes it by raising the header's count (release); counters are then
 * only ever added to with relaxed atomics — no locks and no system calls on
 * the data path. A reader maps the file read-only and reads the first
 * n_* slots of each array; 64-bit aligned loads are never torn on the
 * architectures glibc supports, so a reader sees each counter whole (but a
 * set of counters not as one snapshot, as with any Prometheus exporter).
 *
 * A reader tells a live process from a dead one (whose pid may have been
 * reused) by start_ticks: field 22 of /proc/PID/stat when the file was made.
 *
 * Endpoint slots are taken back from endpoints that left their service
 * (pods replaced) when the file has no room for a new one: such a slot, and
 * every request series that names it, says `service` STATS_SLOT_FREE until
 * it is given again, and readers skip it. What the endpoint had counted
 * stays in its service's `retired_*` fields, so a service's totals never
 * go down; its own series end, as a removed host's do in Envoy.
 */
#ifndef MESHIM_STATS_H
#define MESHIM_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STATS_MAGIC "MESHIMST"
#define STATS_VERSION 7u

#define STATS_MAX_SERVICES 256u
#define STATS_MAX_ENDPOINTS 2048u
#define STATS_MAX_INBOUND 64u
#define STATS_MAX_REQUEST_SERIES 4096u
#define STATS_SLOT_FREE UINT32_MAX      /* an endpoint slot or request series given back */

/* The `result` label of SPEC §3.7, in this order. */
enum stats_result {
    RESULT_OK,
    RESULT_REFUSED,
    RESULT_TIMEOUT,
    RESULT_TLS_ERROR,
    RESULT_DENIED,
    RESULT_OVERFLOW,
    RESULT_NO_ENDPOINT,
    RESULT_FAULT,
    RESULT_COUNT
};

static inline const char *stats_result_name(unsigned r)
{
    static const char *const NAMES[RESULT_COUNT] = {
        "ok", "refused", "timeout", "tls_error", "denied", "overflow", "no_endpoint", "fault",
    };
    return r < RESULT_COUNT ? NAMES[r] : "?";
}

enum stats_direction { DIRECTION_OUTBOUND, DIRECTION_INBOUND, DIRECTION_COUNT };

/* Connect latency. Buckets hold what fell in (upper bound of the previous
 * bucket, own upper bound]; the last one is +Inf. Bounds in microseconds. */
#define STATS_BUCKETS 16u
static inline uint64_t stats_bucket_bound_us(unsigned i)
{
    static const uint64_t BOUNDS[STATS_BUCKETS - 1] = {
        100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
        100000, 250000, 500000, 1000000, 2500000, 5000000,
    };
    return i < STATS_BUCKETS - 1 ? BOUNDS[i] : UINT64_MAX;
}

static inline unsigned stats_bucket_of(uint64_t us)
{
    unsigned i = 0;
    while (i < STATS_BUCKETS - 1 && us > stats_bucket_bound_us(i))
        i++;
    return i;
}

struct stats_histogram {
    uint64_t buckets[STATS_BUCKETS];
    uint64_t count;
    uint64_t sum_us;
};

struct stats_service {
    char name[96];
    /* Outcomes that never reached an endpoint (overflow, no_endpoint,
     * fault): the series with endpoint="". */
    uint64_t connections[RESULT_COUNT];
    uint64_t retries;
    int64_t active;                     /* gauge: connected, not yet closed */
    uint64_t bytes_sent;
    uint64_t bytes_received;
    struct stats_histogram connect;     /* connect() to connected, retries included */
    /* protocol = http: requests by the class of their answer ([0]: none,
     * the application left first; [1]..[5]: 1xx..5xx), their time from
     * head read to answer's end, and their bytes (heads included). */
    uint64_t requests[6];
    struct stats_histogram request;
    uint64_t request_bytes, response_bytes;
    uint64_t panics;                    /* picks made in panic (panic_threshold) */
    /* What endpoints whose slots were given back had counted (their
     * attempts by outcome, their ejections): part of the service's totals. */
    uint64_t retired_connections[RESULT_COUNT];
    uint64_t retired_ejections;
};

struct stats_endpoint {
    char label[64];                     /* "10.0.0.5:8080" ("10.0.0.5" when the app's port) */
    uint32_t service;                   /* slot of its service; STATS_SLOT_FREE: none */
    uint32_t ejected;                   /* gauge: 1 while its circuit is not closed */
    uint64_t connections[RESULT_COUNT]; /* attempts by outcome */
    uint64_t ejections;
    /* Picks that passed it over because of another process's verdict in
     * the host's endpoint table (include/meshim/shared.h). */
    uint64_t shared_skips;
    struct stats_histogram connect;     /* one attempt's connect latency */
    struct stats_histogram request;     /* protocol = http: requests it answered */
};

/* One series of meshim_requests_total{service,endpoint,method,code}. */
#define STATS_NO_ENDPOINT UINT32_MAX    /* answered by the mesh itself (503, 504) */
struct stats_requests {
    uint32_t service;                   /* slot of the service; STATS_SLOT_FREE: none */
    uint32_t endpoint;                  /* slot of the endpoint, or STATS_NO_ENDPOINT */
    char method[8];                     /* "GET" ... "OPTIONS", or "other" */
    uint16_t code;                      /* 500..599 exact; 1..4: 1xx..4xx; 0: no answer */
    uint16_t pad[3];
    uint64_t count;
};

struct stats_inbound {
    uint32_t port;
    uint32_t pad;
    uint64_t connections[RESULT_COUNT];
};

/* A span's fate: sent to the collector (it said 2xx), dropped (the queue
 * was full, or the collector failed or refused it), not sampled. */
enum stats_span { SPANS_EXPORTED, SPANS_DROPPED, SPANS_NOT_SAMPLED };

struct stats_header {
    char magic[8];                      /* STATS_MAGIC, no terminator */
    uint32_t version;                   /* STATS_VERSION */
    uint32_t header_size;               /* sizeof(struct stats_header) */
    uint64_t file_size;
    int32_t pid;
    uint32_t max_services, max_endpoints, max_inbound;
    uint64_t start_ticks;               /* /proc/PID/stat field 22 */
    uint64_t created_unix_ms;
    char process[64];                   /* the program's short name */
    uint64_t off_services, off_endpoints, off_inbound, off_requests;
    uint32_t n_services, n_endpoints, n_inbound;    /* published slots (acquire) */
    uint32_t n_requests;                            /* ... of request series */
    uint64_t tls_handshakes[DIRECTION_COUNT][RESULT_COUNT];
    /* Of the ok handshakes, how the connection went on: [0] relayed by the
     * engine, [1] handed to kernel TLS; the rest were refused or ended first. */
    uint64_t tls_continued[DIRECTION_COUNT][2];
    /* [tracing]: spans by what became of them (enum stats_span). */
    uint64_t trace_spans[3];
};

/* The one layout of this version: where each array starts. */
#define STATS_OFF_SERVICES ((uint64_t)sizeof(struct stats_header))
#define STATS_OFF_ENDPOINTS (STATS_OFF_SERVICES + STATS_MAX_SERVICES * sizeof(struct stats_service))
#define STATS_OFF_INBOUND (STATS_OFF_ENDPOINTS + STATS_MAX_ENDPOINTS * sizeof(struct stats_endpoint))
#define STATS_OFF_REQUESTS (STATS_OFF_INBOUND + STATS_MAX_INBOUND * sizeof(struct stats_inbound))

static inline size_t stats_file_size(void)
{
    return sizeof(struct stats_header) + STATS_MAX_SERVICES * sizeof(struct stats_service) +
           STATS_MAX_ENDPOINTS * sizeof(struct stats_endpoint) +
           STATS_MAX_INBOUND * sizeof(struct stats_inbound) +
           STATS_MAX_REQUEST_SERIES * sizeof(struct stats_requests);
}

/* A name in the stats folder: "1234.stats", or ".1234.stats.RANDOM" (a
 * file being made, *making set). Its pid; 0 for any other name. */
static inline int stats_file_pid(const char *name, bool *making)
{
    *making = name[0] == '.';
    if (*making)
        name++;
    char *end;
    long pid = strtol(name, &end, 10);
    if (pid <= 0 || pid > 0x3fffffff || end == name || name[0] < '0' || name[0] > '9')
        return 0;
    if (*making ? strncmp(end, ".stats.", 7) != 0 : strcmp(end, ".stats") != 0)
        return 0;
    return (int)pid;
}

#endif
