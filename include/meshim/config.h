/*
 * config.h — the parsed, validated configuration (SPEC §2).
 *
 * config_load() reads the INI file and the environment, in the precedence of
 * SPEC §2.1, into one immutable struct mesh_config that owns all of its
 * memory. It holds no hooks and does no networking, so the library, the
 * `meshim` command and the unit tests all use it as it is.
 */
#ifndef MESHIM_CONFIG_H
#define MESHIM_CONFIG_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include "meshim/util.h"

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum on_error { ON_ERROR_EXIT, ON_ERROR_PASSTHROUGH };
enum lb_policy { LB_P2C, LB_ROUND_ROBIN, LB_LEAST_CONN, LB_RANDOM };
enum tls_mode { TLS_OFF, TLS_MTLS };
enum inbound_tls { INBOUND_STRICT, INBOUND_PERMISSIVE, INBOUND_OFF };
enum health_check { HEALTH_OFF, HEALTH_TCP, HEALTH_HTTP };
enum affinity { AFFINITY_NONE, AFFINITY_PROCESS };
enum protocol { PROTO_TCP, PROTO_HTTP };
/* How an outbound request finds the trace it belongs to (trace_propagation). */
enum trace_propagation { PROPAGATE_HEADERS, PROPAGATE_THREAD };

/* retry_on: Envoy's conditions for retrying an HTTP request (what each
 * takes: meshim/httpretry.h). "No answer": no connection, the connection
 * ended before an answer's head, or per_try_timeout passed. */
enum retry_on {
    RETRY_CONNECT_FAILURE = 1 << 0,     /* no connection to the endpoint */
    RETRY_RESET = 1 << 1,               /* no answer */
    RETRY_5XX = 1 << 2,                 /* any 5xx, or no answer */
    RETRY_GATEWAY_ERROR = 1 << 3,       /* 502, 503, 504, or no answer */
    RETRY_STATUS_CODES = 1 << 4,        /* a code of retriable_status_codes */
};

/* The config file when MESHIM_CONFIG is unset. */
#define MESHIM_DEFAULT_CONFIG "/etc/meshim/meshim.ini"

/* Exit status of a process whose config is invalid (EX_CONFIG). */
#define MESHIM_EXIT_CONFIG 78

struct str_list { char **v; size_t n; };
struct addr_list { struct netaddr *v; size_t n; };
struct port_range { uint16_t lo, hi; };
struct port_list { struct port_range *v; size_t n; };
struct endpoint_spec { struct netaddr addr; uint32_t weight; uint32_t priority; };
struct endpoint_list { struct endpoint_spec *v; size_t n; };
struct split_target { char *service; uint32_t weight; };
struct split_list { struct split_target *v; size_t n; };
struct cidr { struct netaddr base; unsigned prefix; };
struct status_list { uint16_t *v; size_t n; };

/* Where a key was set, for messages: "FILE:LINE" or "MESHIM_SERVICES". */
struct origin { const char *file; int line; };

struct service_config {
    char *name;
    struct origin origin;               /* the [service:NAME] line */
    uint64_t set;                       /* bit i: service key i set here */
    int key_line[64];                   /* the line each set key came from (its
                                         * file is the section's): 256 bytes, not
                                         * 1 KB, times 10,000 services */

    struct str_list hosts;
    struct addr_list addresses;
    struct port_list ports;
    struct endpoint_list endpoints;
    char *dns, *srv, *endpoints_file;
    enum lb_policy lb;
    enum affinity affinity;             /* process: one endpoint per process until it fails */
    bool late_accept;                   /* mTLS: a silent server accepts late (relay.h) */
    uint32_t connect_timeout_ms;
    uint32_t retries;
    uint32_t retry_backoff_ms, retry_backoff_max_ms;
    double retry_budget;                /* shares are fractions: 20% = 0.20 */
    uint32_t eject_after;               /* 0: off, the breaker never ejects */
    uint32_t eject_time_ms;
    uint32_t max_eject_percent;
    uint32_t panic_threshold;           /* percent; 0: never (breaker_panic) */
    uint32_t max_connections;
    enum health_check health_check;
    char *health_path;                  /* health_check = http: the request's target (NULL: "/") */
    uint32_t health_interval_ms, health_timeout_ms;
    uint32_t healthy_threshold, unhealthy_threshold;
    enum tls_mode tls;
    char *identity, *sni;
    double fault_abort;
    uint32_t fault_delay_ms;
    double fault_delay_percent;
    struct split_list split;
    /* protocol = http (mesh/http.h) */
    enum protocol protocol;
    unsigned retry_on;                  /* enum retry_on bits */
    struct status_list retriable_status_codes;
    bool retry_non_idempotent;
    uint32_t retry_buffer;              /* bytes of a request kept to send again */
    uint32_t per_try_timeout_ms, request_timeout_ms;    /* 0: none */
    uint32_t max_requests;              /* requests in flight to the service, per process */
};

/* [route:NAME]: requests sent to service `from` (protocol = http) that
 * match every condition set go to service `to` instead; the first match
 * in the file's order wins (policy/route.c). */
struct route_config {
    char *name;
    struct origin origin;
    uint64_t set;
    int key_line[64];
    char *from, *to;
    char *path, *path_prefix;           /* exact path / prefix, without the query */
    char *authority;                    /* Host, case-insensitive */
    struct str_list headers;            /* "name" (present) or "name: value" (exact) */
};

struct inbound_config {
    uint16_t port;
    struct origin origin;
    uint64_t set;
    int key_line[64];
    enum inbound_tls tls;
    struct str_list allow;
    uint32_t detect_timeout_ms; /* permissive: a client silent this long after the
                                 * application spoke is plaintext (a server-first
                                 * protocol's; sniff_silent_for in sniff.h); 0: a silent
                                 * client is refused at 3 s */
    enum protocol protocol;     /* http: its requests counted and logged (mesh/httptap.h) */
    enum trace_propagation trace_propagation;   /* [tracing]'s unless set here */
};

struct mesh_config {
    /* [meshim] */
    enum log_level log_level;
    char *log_file;                     /* "stderr" or a path */
    char *access_log;                   /* "off", "stderr" or a path */
    bool access_log_callers;
    char *stats_dir;                    /* a path or "off" */
    bool shared_state;                  /* endpoint state shared by the user's processes (shared.h) */
    struct cidr vip_range;              /* IPv4 network of the VIP pool */
    char *dns_server;
    struct netaddr dns_server_addr;     /* dns_server parsed once (port 0: none) */
    bool dns_capture;                   /* a program's own DNS queries for service names answered (dnsreply.h) */
    enum on_error on_error;
    bool io_uring;                      /* auto: the engine's short sends of a turn in one call (sendq.h) */
    /* [tls] */
    char *tls_cert, *tls_key, *tls_ca;
    char *tls_dir;                      /* a folder of them (meshim/certdir.h); cert/key/ca override */
    unsigned tls_min_version;           /* 12 or 13 */
    uint32_t tls_reload_interval_ms;
    bool tls_ktls;                      /* auto: hand connections to kernel TLS when both ends can */
    bool tls_psk_only;                  /* resumption = psk-only: resumed handshakes may skip (EC)DHE */
    /* [tracing] (meshim/trace.h): spans of protocol = http requests */
    char *otlp_endpoint;                /* the collector's http:// URL; NULL: tracing off */
    char *trace_service_name;           /* service.name; NULL: the program's name */
    double trace_sample_rate;           /* of new traces; continued ones follow their parent */
    enum trace_propagation trace_propagation;

    struct service_config *services;
    size_t n_services;
    struct inbound_config *inbound;
    size_t n_inbound;
    struct route_config *routes;        /* in the file's order */
    size_t n_routes;

    const char *file;                   /* the INI file read, or NULL */
    bool active;                        /* false: nothing configured, inert */
    bool disabled;                      /* MESHIM_DISABLE=1: inert, as asked */

    struct arena *arena;                /* owns everything above */
};

/* Where config_load looks: normally the process environment; tests pass
 * their own. secure=true ignores the environment (set-uid processes). */
struct config_source {
    const char *(*getenv)(const char *name);
    bool secure;
    const char *default_file;           /* MESHIM_DEFAULT_CONFIG */
};

/* Loads and validates. On failure returns NULL and fills *errors with one
 * message a line, each "FILE:LINE: KEY: problem" (caller frees), and
 * *on_error with what the file asked for in that case (exit if it could not
 * say). A config that names nothing is returned with active=false. */
struct mesh_config *config_load(const struct config_source *src, char **errors,
                                enum on_error *on_error);
void config_free(struct mesh_config *cfg);

/* The INI file's size limit, and how config files are opened: a regular
 * file of at most max bytes, never blocking (NULL with the reason in why). */
/* 64 MiB: 10,000 services with 100,000 endpoints take 2 MB. */
#define CONFIG_FILE_MAX (64u << 20)
FILE *config_open_file(const char *path, size_t max, char *why, size_t len);

/* stats_dir's default (stats_dir NULL): /tmp/meshim-EUID (why: config.c),
 * for the user a process runs as when it writes (an nginx worker is not
 * the root that read the config). */
void config_default_stats_dir(char *buf, size_t len);
/* cfg's stats folder: stats_dir as set ("off" included), else the default. */
void config_stats_dir(const struct mesh_config *cfg, char *buf, size_t len);
/* Where files a user's processes share live (the host's endpoint table, the
 * TLS module): the stats folder, or the default one when stats are off. */
void config_shared_dir(const struct mesh_config *cfg, char *buf, size_t len);

/* An endpoints_file's text: one endpoint a line in the syntax of
 * `endpoints` ("10.0.0.6:8080 weight=3"), # comments and blank lines
 * allowed. On success *out is a heap array (free out->v). Otherwise err
 * says "FILE:LINE: endpoints_file: problem: \"line\"". */
bool config_parse_endpoints(const char *path, const char *text, struct endpoint_list *out,
                            char *err, size_t errlen);
/* The same, reading the file (at most 1 MiB). */
bool config_read_endpoints(const char *path, struct endpoint_list *out, char *err, size_t errlen);

/* Parsers shared with the command line and tests. */
bool config_parse_duration(const char *s, uint32_t *ms);
bool config_parse_share(const char *s, double *share);

const char *lb_policy_name(enum lb_policy lb);
/* "connect-failure,5xx" for retry_on bits. */
void config_retry_on_text(unsigned retry_on, char *buf, size_t len);

#endif
