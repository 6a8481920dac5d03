/*
 * config.c — reads the INI file and the environment into a mesh_config.
 *
 * One table per section kind lists every key with its parser and the field it
 * fills. The same table drives parsing, the [defaults] inheritance (a key a
 * service does not set is copied from [defaults]), duplicate detection and
 * the "parsed but not built yet" notices. Every message names the file, the
 * line and the key: `FILE:LINE: KEY: problem: "value"`.
 *
 * inih (Debian's build) does not pass line numbers to the handler, so the
 * reader we give ini_parse_stream() counts lines itself; it also sees section
 * headers first, so an empty [inbound:PORT] section still exists.
 */
#include "meshim/certdir.h"
#include "meshim/config.h"
#include "meshim/identity.h"
#include "meshim/trace.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uthash.h>

/* ---------------------------------------------------------------- arena -- */

struct arena {
    struct arena *next;
    size_t used, size;
    char data[];
};

static void *arena_alloc(struct arena **a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!*a || (*a)->used + n > (*a)->size) {
        size_t size = n > 16384 ? n : 16384;
        struct arena *c = calloc(1, sizeof(*c) + size);
        if (!c)
            abort();    /* config time only: never on a connection path */
        c->size = size;
        c->next = *a;
        *a = c;
    }
    void *p = (*a)->data + (*a)->used;
    (*a)->used += n;
    memset(p, 0, n);
    return p;
}

static char *arena_strdup(struct arena **a, const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(arena_alloc(a, n), s, n);
}

/* Room for one more element in an arena array of *n elements and *cap
 * capacity (doubling; the old copy stays in the arena until it is freed). */
static void *arena_grow(struct arena **a, void *v, size_t n, size_t *cap, size_t size, size_t first)
{
    if (n < *cap)
        return v;
    *cap = *cap ? *cap * 2 : first;
    void *grown = arena_alloc(a, *cap * size);
    if (n)
        memcpy(grown, v, n * size);
    return grown;
}

static void arena_free(struct arena *a)
{
    while (a) {
        struct arena *next = a->next;
        free(a);
        a = next;
    }
}

/* --------------------------------------------------------------- loader -- */

enum section_kind { SEC_NONE, SEC_MESHIM, SEC_TLS, SEC_TRACING, SEC_DEFAULTS, SEC_SERVICE,
                    SEC_INBOUND, SEC_ROUTE, SEC_UNKNOWN };

struct loader {
    struct mesh_config *cfg;
    struct arena **arena;
    const char *file;
    int line;
    FILE *fp;

    enum section_kind kind;             /* the section being read */
    void *section;                      /* its struct */
    bool continuation;                  /* this line continues the last key */
    /* The key being read: its value grows with each continuation line and
     * is parsed once, when the next key, a section or the end comes, so a
     * list wrapped over n lines costs O(n), not O(n^2) (review finding 5). */
    struct pending {
        bool active;
        char name[64];
        char *value;                    /* malloc'd */
        size_t len, cap;
        struct origin at;
    } pending;

    struct service_config defaults;
    uint64_t meshim_set, tls_set, tracing_set;  /* keys set in [meshim], [tls], [tracing] */
    int meshim_line[16], tls_line[16], tracing_line[16];  /* where each key of theirs was set */
    size_t cap_services, cap_inbound, cap_routes;
    bool seen_meshim, seen_tls, seen_tracing, seen_defaults;
    int line_meshim, line_tls, line_tracing, line_defaults;

    char *errors;                       /* malloc'd, one message a line */
    size_t errors_len;

    struct name_entry *by_name;         /* the services by name (find_service) */
};

static void add_error(struct loader *L, struct origin at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_error(struct loader *L, struct origin at, const char *fmt, ...)
{
    char msg[768];
    int n;
    if (at.line > 0)
        n = snprintf(msg, sizeof(msg), "%s:%d: ", at.file, at.line);
    else
        n = snprintf(msg, sizeof(msg), "%s: ", at.file);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(msg);
    char *grown = realloc(L->errors, L->errors_len + len + 2);
    if (!grown)
        return;
    L->errors = grown;
    memcpy(L->errors + L->errors_len, msg, len);
    L->errors_len += len;
    L->errors[L->errors_len++] = '\n';
    L->errors[L->errors_len] = '\0';
}

static struct origin here(const struct loader *L)
{
    return (struct origin){ L->file, L->line };
}

/* ---------------------------------------------------------- value parsers -- */

/* A parser fills *field from value, or returns the reason it cannot
 * ("not a number"); the caller adds file, line, key and value. */
typedef const char *(*parse_fn)(struct loader *L, const char *value, void *field);

static const char *p_uint(struct loader *L, const char *v, void *f)
{
    (void)L;
    char *end;
    if (!isdigit((unsigned char)*v))
        return "not a number";
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (*end || errno || n > UINT32_MAX)
        return "not a number";
    *(uint32_t *)f = (uint32_t)n;
    return NULL;
}

static const char *p_positive(struct loader *L, const char *v, void *f)
{
    const char *why = p_uint(L, v, f);
    if (!why && *(uint32_t *)f == 0)
        return "must be at least 1";
    return why;
}

/* eject_after: a count, or off (0: the breaker never ejects). */
static const char *p_eject_after(struct loader *L, const char *v, void *f)
{
    if (strcmp(v, "off") == 0) {
        *(uint32_t *)f = 0;
        return NULL;
    }
    const char *why = p_positive(L, v, f);
    return why && strcmp(why, "not a number") == 0 ? "not a number or off" : why;
}

static const char *p_percent(struct loader *L, const char *v, void *f)
{
    char buf[32];
    size_t n = strlen(v);
    if (n == 0 || n >= sizeof(buf))
        return "not a percentage";
    memcpy(buf, v, n + 1);
    if (buf[n - 1] == '%')
        buf[n - 1] = '\0';
    if (p_uint(L, buf, f) || *(uint32_t *)f > 100)
        return "not a percentage from 0 to 100";
    return NULL;
}

bool config_parse_duration(const char *s, uint32_t *ms)
{
    char *end;
    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    unsigned long long scale;
    if (errno)
        return false;
    if (strcmp(end, "ms") == 0)
        scale = 1;
    else if (strcmp(end, "s") == 0)
        scale = 1000;
    else if (strcmp(end, "m") == 0)
        scale = 60000;
    else if (*end == '\0' && n == 0)
        scale = 1;
    else
        return false;
    if (n > UINT32_MAX / scale)
        return false;
    *ms = (uint32_t)(n * scale);
    return true;
}

static const char *p_duration(struct loader *L, const char *v, void *f)
{
    (void)L;
    return config_parse_duration(v, f) ? NULL : "not a duration (use ms, s or m: \"250ms\")";
}

/* "20%", "12.5%", "12.5": read by hand, not strtod, which takes the
 * program's LC_NUMERIC: a reload in a program that set a locale with a
 * decimal comma refused "12.5%". */
bool config_parse_share(const char *s, double *share)
{
    if (!isdigit((unsigned char)*s))
        return false;
    double d = 0;
    for (; isdigit((unsigned char)*s) && d <= 100; s++)
        d = d * 10 + (*s - '0');
    if (*s == '.') {
        if (!isdigit((unsigned char)*++s))
            return false;
        for (double scale = 0.1; isdigit((unsigned char)*s); s++, scale /= 10)
            d += (*s - '0') * scale;
    }
    if (*s == '%')
        s++;
    if (*s || d > 100)
        return false;
    *share = d / 100.0;
    return true;
}

static const char *p_share(struct loader *L, const char *v, void *f)
{
    (void)L;
    return config_parse_share(v, f) ? NULL : "not a share from 0% to 100%";
}

static const char *p_string(struct loader *L, const char *v, void *f)
{
    *(char **)f = *v ? arena_strdup(L->arena, v) : NULL;
    return NULL;
}

/* Paths must be absolute: a config never means "relative to wherever the
 * program happens to run" (a working-directory lookup was a torsocks CVE). */
static const char *p_path(struct loader *L, const char *v, void *f)
{
    if (*v && *v != '/')
        return "not an absolute path";
    return p_string(L, v, f);
}

static const char *p_output(struct loader *L, const char *v, void *f)
{
    if (strcmp(v, "stderr") != 0 && strcmp(v, "off") != 0 && *v != '/')
        return "not stderr, off or an absolute path";
    return p_string(L, v, f);
}

static const char *p_log_output(struct loader *L, const char *v, void *f)
{
    if (strcmp(v, "stderr") != 0 && *v != '/')
        return "not stderr or an absolute path";
    return p_string(L, v, f);
}

static const char *p_dir_or_off(struct loader *L, const char *v, void *f)
{
    if (strcmp(v, "off") != 0 && *v != '/')
        return "not off or an absolute path";
    return p_string(L, v, f);
}

/* Enumerations: "a|b|c" lists the words, their index is the value. */
static const char *p_enum(const char *v, void *f, const char *const *words, const char *why)
{
    for (int i = 0; words[i]; i++) {
        if (strcmp(v, words[i]) == 0) {
            *(int *)f = i;
            return NULL;
        }
    }
    return why;
}

static const char *const LOG_LEVELS[] = { "error", "warn", "info", "debug", NULL };
static const char *const ON_ERRORS[] = { "exit", "passthrough", NULL };
static const char *const LBS[] = { "p2c", "round_robin", "least_conn", "random", NULL };
static const char *const TLS_MODES[] = { "off", "mtls", NULL };
static const char *const INBOUND_TLS[] = { "strict", "permissive", "off", NULL };
static const char *const HEALTH[] = { "off", "tcp", "http", NULL };
static const char *const ONOFF[] = { "off", "on", NULL };
static const char *const AUTO_OFF[] = { "off", "auto", NULL };
static const char *const RESUMPTIONS[] = { "ecdhe", "psk-only", NULL };
static const char *const AFFINITIES[] = { "none", "process", NULL };

static const char *p_log_level(struct loader *L, const char *v, void *f)
{ (void)L; return p_enum(v, f, LOG_LEVELS, "not one of error, warn, info, debug"); }
static const char *p_on_error(struct loader *L, const char *v, void *f)
{ (void)L; return p_enum(v, f, ON_ERRORS, "not one of exit, passthrough"); }
static const char *p_lb(struct loader *L, const char *v, void *f)
{ (void)L; return p_enum(v, f, LBS, "not one of p2c, round_robin, least_conn, random"); }
static const char *p_tls_mode(struct loader *L, const char *v, void *f)
{ (void)L; return p_enum(v, f, TLS_MODES, "not one of off, mtls"); }
static const char *p_inbound_tls(struct loader *L, const char *v, void *f)
{ (void)L; return p_enum(v, f, INBOUND_TLS, "not one of strict, permissive, off"); }
static const char *p_health(struct loader *L, const char *v, void *f)
{ (void)L; return p_enum(v, f, HEALTH, "not one of off, tcp, http"); }
static const char *p_affinity(struct loader *L, const char *v, void *f)
{ (void)L; return p_enum(v, f, AFFINITIES, "not one of none, process"); }

/* A two-word key into a bool: the second word is true. */
static const char *p_flag(const char *v, void *f, const char *const *words, const char *why_not)
{
    int i;
    const char *why = p_enum(v, &i, words, why_not);
    if (!why)
        *(bool *)f = i == 1;
    return why;
}

static const char *p_onoff(struct loader *L, const char *v, void *f)
{ (void)L; return p_flag(v, f, ONOFF, "not on or off"); }
static const char *p_auto_off(struct loader *L, const char *v, void *f)
{ (void)L; return p_flag(v, f, AUTO_OFF, "not auto or off"); }
static const char *p_resumption(struct loader *L, const char *v, void *f)
{ (void)L; return p_flag(v, f, RESUMPTIONS, "not ecdhe or psk-only"); }

static const char *p_min_version(struct loader *L, const char *v, void *f)
{
    (void)L;
    if (strcmp(v, "1.2") == 0)
        *(unsigned *)f = 12;
    else if (strcmp(v, "1.3") == 0)
        *(unsigned *)f = 13;
    else
        return "not 1.2 or 1.3";
    return NULL;
}

static const char *p_cidr(struct loader *L, const char *v, void *f)
{
    (void)L;
    struct cidr *c = f;
    char buf[64];
    const char *slash = strchr(v, '/');
    if (!slash || (size_t)(slash - v) >= sizeof(buf))
        return "not an IPv4 network such as 127.77.0.0/16";
    memcpy(buf, v, (size_t)(slash - v));
    buf[slash - v] = '\0';
    char *end;
    unsigned long prefix = strtoul(slash + 1, &end, 10);
    if (!netaddr_parse(buf, false, &c->base) || c->base.family != AF_INET ||
        *end || slash[1] == '\0' || prefix < 8 || prefix > 30)
        return "not an IPv4 network from /8 to /30 such as 127.77.0.0/16";
    c->prefix = (unsigned)prefix;
    uint32_t mask = ~0u << (32 - prefix);
    if (ntohl(c->base.ip.v4.s_addr) & ~mask)
        return "has host bits set";
    return NULL;
}

static bool valid_dns_name(const char *s);

static const char *p_hostport(struct loader *L, const char *v, void *f)
{
    struct netaddr a;
    if (*v && (!netaddr_parse(v, true, &a) || a.port == 0))
        return "not an IP:port such as 127.0.0.1:8600";
    /* The C library's resolver takes IPv4 servers only from a program. */
    if (*v && a.family != AF_INET)
        return "an IPv4 address is needed (the resolver takes IPv6 servers only from "
               "/etc/resolv.conf)";
    return p_string(L, v, f);
}

static const char *p_dns_name(struct loader *L, const char *v, void *f)
{
    if (*v && !valid_dns_name(v))
        return "not a DNS name";
    return p_string(L, v, f);
}

/* Watched files are checked this often: not so often that it costs. */
static const char *p_reload_interval(struct loader *L, const char *v, void *f)
{
    uint32_t *ms = f;
    const char *why = p_duration(L, v, f);
    if (!why && *ms < 100)
        return "shorter than 100ms";
    return why;
}

/* Splits a comma-separated list into trimmed, non-empty items. */
static size_t split_items(struct loader *L, const char *v, char ***out)
{
    size_t n = 1;
    for (const char *p = v; *p; p++)
        n += *p == ',';
    char **items = arena_alloc(L->arena, n * sizeof(*items));
    char *copy = arena_strdup(L->arena, v);
    size_t count = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*tok)
            items[count++] = tok;
    }
    *out = items;
    return count;
}

static bool valid_dns_name(const char *s)
{
    if (!*s || strlen(s) > 253)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_')
            return false;
    return true;
}

static const char *p_hosts(struct loader *L, const char *v, void *f)
{
    struct str_list *l = f;
    l->n = split_items(L, v, &l->v);
    for (size_t i = 0; i < l->n; i++) {
        const char *h = l->v[i];
        if (h[0] == '*' && h[1] == '.' && valid_dns_name(h + 1))
            continue;
        if (!valid_dns_name(h))
            return "not a host name or *.suffix";
    }
    return NULL;
}

static const char *p_globs(struct loader *L, const char *v, void *f)
{
    struct str_list *l = f;
    l->n = split_items(L, v, &l->v);
    for (size_t i = 0; i < l->n; i++)
        if (!identity_pattern_valid(l->v[i]))
            return "not a SPIFFE ID pattern (spiffe://trust.domain/segment/..., `*` within a "
                   "segment, `**` across)";
    return NULL;
}

static const char *p_addresses(struct loader *L, const char *v, void *f)
{
    struct addr_list *l = f;
    char **items;
    l->n = split_items(L, v, &items);
    l->v = arena_alloc(L->arena, (l->n + 1) * sizeof(*l->v));
    for (size_t i = 0; i < l->n; i++)
        if (!netaddr_parse(items[i], true, &l->v[i]))
            return "not a list of IP or IP:port";
    return NULL;
}

static const char *p_ports(struct loader *L, const char *v, void *f)
{
    struct port_list *l = f;
    char **items;
    l->n = split_items(L, v, &items);
    l->v = arena_alloc(L->arena, (l->n + 1) * sizeof(*l->v));
    for (size_t i = 0; i < l->n; i++) {
        char *end;
        unsigned long lo = strtoul(items[i], &end, 10), hi = lo;
        if (*end == '-')
            hi = strtoul(end + 1, &end, 10);
        if (!isdigit((unsigned char)items[i][0]) || *end || lo == 0 || hi > 65535 || lo > hi)
            return "not a list of ports or port ranges (80, 8000-8100)";
        l->v[i] = (struct port_range){ (uint16_t)lo, (uint16_t)hi };
    }
    return NULL;
}

#define MAX_WEIGHT 1000

static const char ENDPOINT_SYNTAX[] = "not IP[:PORT] [weight=1..1000]";
static const char ENDPOINT_LINK_LOCAL[] =
    "a link-local address (fe80::/10) cannot be an endpoint: it needs an interface, which meshim does not take";

/* "10.0.0.6:8080 weight=3" (the item is cut up). NULL, or what is wrong. */
static const char *parse_endpoint(char *addr, struct endpoint_spec *out)
{
    char *rest = addr + strcspn(addr, " \t");
    *out = (struct endpoint_spec){ .weight = 1 };
    if (*rest) {
        *rest++ = '\0';
        rest += strspn(rest, " \t");
        char *end;
        unsigned long w;
        if (strncmp(rest, "weight=", 7) != 0 || !isdigit((unsigned char)rest[7]) ||
            (w = strtoul(rest + 7, &end, 10)) == 0 || w > MAX_WEIGHT ||
            end[strspn(end, " \t")])
            return ENDPOINT_SYNTAX;
        out->weight = (uint32_t)w;
    }
    if (!netaddr_parse(addr, true, &out->addr))
        return ENDPOINT_SYNTAX;
    /* Without its interface, a connect to one fails with EINVAL. */
    if (out->addr.family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(&out->addr.ip.v6))
        return ENDPOINT_LINK_LOCAL;
    return NULL;
}

/* "orders.prod.svc:8080", "db": what a user who meant DNS discovery writes
 * in endpoints. A letter, and nothing but a host name's characters before
 * an optional :PORT. */
static bool looks_like_host_name(const char *item)
{
    size_t n = strspn(item, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");
    if (n == 0 || (item[n] && (item[n] != ':' || strspn(item + n + 1, "0123456789") != strlen(item + n + 1))))
        return false;
    for (size_t i = 0; i < n; i++)
        if (isalpha((unsigned char)item[i]))
            return true;
    return false;
}

/* "10.0.0.5:8080, 10.0.0.6:8080 weight=3, 10.0.0.7" */
/* Endpoints a list (in the INI, an endpoints_file) may hold. */
#define ENDPOINTS_MAX 4096

static const char *p_endpoints(struct loader *L, const char *v, void *f)
{
    struct endpoint_list *l = f;
    char **items;
    l->n = split_items(L, v, &items);
    if (l->n > ENDPOINTS_MAX)
        return "more than 4096 endpoints";
    l->v = arena_alloc(L->arena, (l->n + 1) * sizeof(*l->v));
    for (size_t i = 0; i < l->n; i++) {
        const char *why = parse_endpoint(items[i], &l->v[i]);
        if (why && why != ENDPOINT_SYNTAX)
            return why;                 /* a reason of its own: as it is */
        if (why)
            return looks_like_host_name(items[i])
                       ? "not a list of IP[:PORT] [weight=1..1000] (a host name goes in dns = NAME)"
                   : strchr(items[i], '%')
                       ? "not a list of IP[:PORT] [weight=1..1000] (an IPv6 zone such as %eth0 is not "
                         "taken: a link-local address cannot be an endpoint)"
                       : "not a list of IP[:PORT] [weight=1..1000]";
    }
    return NULL;
}

/* Bounds on an endpoints file, which an agent writes. */
#define ENDPOINTS_FILE_MAX (16 << 20)    /* 16 MiB: some 500,000 endpoints */

static bool file_error(char *err, size_t len, const char *path, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static bool file_error(char *err, size_t len, const char *path, int line, const char *fmt, ...)
{
    int n = line > 0 ? snprintf(err, len, "%s:%d: endpoints_file: ", path, line)
                     : snprintf(err, len, "%s: endpoints_file: ", path);
    if (n > 0 && (size_t)n < len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, len - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return false;
}

bool config_parse_endpoints(const char *path, const char *text, struct endpoint_list *out,
                            char *err, size_t errlen)
{
    size_t cap = 16, n = 0;
    struct endpoint_spec *v = malloc(cap * sizeof(*v));
    if (!v)
        return file_error(err, errlen, path, 0, "out of memory");
    int line = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        line++;
        char item[256];
        /* Comments and blank lines; the rest is one endpoint a line. */
        const char *hash = memchr(p, '#', len);
        size_t keep = hash ? (size_t)(hash - p) : len;
        while (keep && isspace((unsigned char)p[keep - 1]))
            keep--;
        size_t lead = 0;
        while (lead < keep && isspace((unsigned char)p[lead]))
            lead++;
        p += len + (nl ? 1 : 0);
        if (lead == keep)
            continue;
        if (keep - lead >= sizeof(item)) {
            free(v);
            return file_error(err, errlen, path, line, "line too long");
        }
        memcpy(item, p - len - (nl ? 1 : 0) + lead, keep - lead);
        item[keep - lead] = '\0';
        char shown[sizeof(item)];
        memcpy(shown, item, sizeof(shown));
        if (n == ENDPOINTS_MAX) {
            free(v);
            return file_error(err, errlen, path, line, "more than %d endpoints", ENDPOINTS_MAX);
        }
        if (n == cap) {
            struct endpoint_spec *grown = realloc(v, (cap *= 2) * sizeof(*v));
            if (!grown) {
                free(v);
                return file_error(err, errlen, path, line, "out of memory");
            }
            v = grown;
        }
        const char *why = parse_endpoint(item, &v[n]);
        if (why) {
            free(v);
            return file_error(err, errlen, path, line, "%s: \"%s\"", why, shown);
        }
        n++;
    }
    out->v = v;
    out->n = n;
    return true;
}

/* A file's whole text, NUL-terminated, in a mapping of its own sized to
 * the file (*map_len to unmap), of at most max bytes; NULL with errno
 * (EFBIG: larger). Not malloc: glibc raises the whole process's mmap and
 * trim thresholds to the size of a large block when it is freed, so one
 * read of an endpoints file (a 16 MiB buffer, as this was) moved every
 * later allocation of the program's from 128 KiB to 16 MiB onto the heap,
 * and the heap kept 32 MiB it no longer used. A file that grows while it
 * is read is read again, up to three times. */
static char *read_whole(FILE *f, size_t max, size_t *len, size_t *map_len)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        struct stat st;
        if (fstat(fileno(f), &st) < 0)
            return NULL;
        if ((uint64_t)st.st_size > max) {
            errno = EFBIG;
            return NULL;
        }
        size_t want = (size_t)st.st_size + 1;   /* one more byte: it grew */
        *map_len = want + 1;
        char *text = mmap(NULL, *map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (text == MAP_FAILED)
            return NULL;
        rewind(f);
        *len = fread(text, 1, want, f);
        if (ferror(f)) {
            munmap(text, *map_len);
            errno = EIO;
            return NULL;
        }
        if (*len < want) {
            text[*len] = '\0';
            return text;
        }
        munmap(text, *map_len);
    }
    errno = EAGAIN;
    return NULL;
}

bool config_read_endpoints(const char *path, struct endpoint_list *out, char *err, size_t errlen)
{
    char why[128];
    FILE *f = config_open_file(path, ENDPOINTS_FILE_MAX, why, sizeof(why));
    if (!f)
        return file_error(err, errlen, path, 0, "%s: %s", errno == EPERM ? "not trusted" : "cannot read", why);
    size_t len, map_len;
    char *text = read_whole(f, ENDPOINTS_FILE_MAX, &len, &map_len);
    int read_errno = errno;
    fclose(f);
    if (!text)
        return file_error(err, errlen, path, 0, "%s", read_errno == EFBIG ? "larger than 16 MiB"
                          : read_errno == EAGAIN ? "it kept changing while it was read"
                          : read_errno == ENOMEM ? "out of memory" : "cannot read");
    bool ok = strlen(text) == len;
    if (ok)
        ok = config_parse_endpoints(path, text, out, err, errlen);
    else
        file_error(err, errlen, path, 0, "not a text file");
    munmap(text, map_len);
    return ok;
}

/* "orders-v1 90, orders-v2 10" */
static const char *p_split(struct loader *L, const char *v, void *f)
{
    struct split_list *l = f;
    char **items;
    l->n = split_items(L, v, &items);
    l->v = arena_alloc(L->arena, (l->n + 1) * sizeof(*l->v));
    for (size_t i = 0; i < l->n; i++) {
        char name[128];
        unsigned w;
        char extra;
        if (sscanf(items[i], "%127s %u %c", name, &w, &extra) != 2 || w > 100000)
            return "not a list of \"SERVICE WEIGHT\"";
        l->v[i].service = arena_strdup(L->arena, name);
        l->v[i].weight = w;
    }
    return NULL;
}

/* protocol = http ----------------------------------------------------- */

static const char *const PROTOCOLS[] = { "tcp", "http", NULL };
static const char *p_protocol(struct loader *L, const char *v, void *f)
{ (void)L; return p_enum(v, f, PROTOCOLS, "not tcp or http"); }

/* [tracing] ----------------------------------------------------------- */

static const char *p_otlp_endpoint(struct loader *L, const char *v, void *f)
{
    struct otlp_url url;
    const char *why = otlp_parse_url(v, &url);
    return why ? why : p_string(L, v, f);
}

static const char *const PROPAGATIONS[] = { "headers", "thread", NULL };
static const char *p_propagation(struct loader *L, const char *v, void *f)
{
    (void)L;
    return p_enum(v, f, PROPAGATIONS, "not headers or thread");
}

/* Envoy's names, in the order of enum retry_on's bits. */
static const char *const RETRY_ON[] = { "connect-failure", "reset", "5xx", "gateway-error",
                                        "retriable-status-codes", NULL };

void config_retry_on_text(unsigned retry_on, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; RETRY_ON[i] && n < len; i++)
        if (retry_on >> i & 1)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "," : "", RETRY_ON[i]);
}

/* "connect-failure, 5xx"; "" or "off": nothing is retried. */
static const char *p_retry_on(struct loader *L, const char *v, void *f)
{
    char **items;
    size_t n = split_items(L, v, &items);
    unsigned bits = 0;
    if (n == 1 && strcmp(items[0], "off") == 0)
        n = 0;
    for (size_t i = 0; i < n; i++) {
        int k;
        if (p_enum(items[i], &k, RETRY_ON, "unknown"))
            return "not a list of connect-failure, reset, 5xx, gateway-error, "
                   "retriable-status-codes (or off)";
        bits |= 1u << k;
    }
    *(unsigned *)f = bits;
    return NULL;
}

/* "502, 503" */
static const char *p_status_codes(struct loader *L, const char *v, void *f)
{
    struct status_list *l = f;
    char **items;
    l->n = split_items(L, v, &items);
    l->v = arena_alloc(L->arena, (l->n + 1) * sizeof(*l->v));
    for (size_t i = 0; i < l->n; i++) {
        char *end;
        unsigned long code = strtoul(items[i], &end, 10);
        if (!isdigit((unsigned char)items[i][0]) || *end || code < 100 || code > 599)
            return "not a list of HTTP status codes (100 to 599)";
        l->v[i] = (uint16_t)code;
    }
    return NULL;
}

/* Bytes: "65536", "64KiB", "1MiB" (KB and MB are taken as KiB and MiB). */
static const char *p_size(struct loader *L, const char *v, void *f)
{
    (void)L;
    char *end;
    if (!isdigit((unsigned char)*v))
        return "not a size (\"64KiB\", \"1MiB\", bytes)";
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    unsigned long long scale = 1;
    if (ascii_casecmp(end, "KiB") == 0 || ascii_casecmp(end, "KB") == 0 || ascii_casecmp(end, "K") == 0)
        scale = 1024;
    else if (ascii_casecmp(end, "MiB") == 0 || ascii_casecmp(end, "MB") == 0 || ascii_casecmp(end, "M") == 0)
        scale = 1024 * 1024;
    else if (*end && strcmp(end, "B") != 0)
        return "not a size (\"64KiB\", \"1MiB\", bytes)";
    if (errno || n > (64ull << 20) / scale)
        return "larger than 64MiB";
    *(uint32_t *)f = (uint32_t)(n * scale);
    return NULL;
}

/* A route's path: an origin-form path. */
static const char *p_url_path(struct loader *L, const char *v, void *f)
{
    if (*v != '/' || strpbrk(v, " \t?#"))
        return "not a path (starts with '/', no query)";
    return p_string(L, v, f);
}

/* health_path: a request's target as it goes on the wire (a query too). */
static const char *p_request_target(struct loader *L, const char *v, void *f)
{
    if (*v && *v != '/')
        return "not a path (starts with '/')";
    for (const char *c = v; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return "not a path (a space or a control character in it)";
    if (strlen(v) > 1024)
        return "longer than 1024 characters";
    return p_string(L, v, f);
}

/* "x-canary, x-version: 2": a header name alone (present) or with its value (exact). */
static const char *p_header_matches(struct loader *L, const char *v, void *f)
{
    struct str_list *l = f;
    l->n = split_items(L, v, &l->v);
    for (size_t i = 0; i < l->n; i++) {
        const char *h = l->v[i];
        size_t name = strcspn(h, ":");
        if (name == 0)
            return "not a list of \"NAME\" or \"NAME: VALUE\"";
        for (size_t k = 0; k < name; k++)
            if (!isalnum((unsigned char)h[k]) && !strchr("!#$%&'*+-.^_`|~", h[k]))
                return "not a list of \"NAME\" or \"NAME: VALUE\" (a header name is a token)";
    }
    return NULL;
}

static const char *p_service_name(struct loader *L, const char *v, void *f)
{
    if (!*v || strlen(v) >= 128 || !valid_dns_name(v))
        return "not a service name";
    return p_string(L, v, f);
}

/* ------------------------------------------------------------ key tables -- */

/* built == NULL: the behaviour is there. Otherwise the key is parsed and
 * validated, and setting it logs this notice once. */

struct key_def {
    const char *name;               /* every field fits in 64 bytes: see set_key */
    parse_fn parse;
    size_t offset, size;
};

#define G(key, fn, field) { key, fn, offsetof(struct mesh_config, field), \
                                sizeof(((struct mesh_config *)0)->field) }
#define S(key, fn, field) { key, fn, offsetof(struct service_config, field), \
                                sizeof(((struct service_config *)0)->field) }
#define I(key, fn, field) { key, fn, offsetof(struct inbound_config, field), \
                                sizeof(((struct inbound_config *)0)->field) }

static const struct key_def MESHIM_KEYS[] = {
    G("log_level", p_log_level, log_level),
    G("log_file", p_log_output, log_file),
    G("access_log", p_output, access_log),
    G("access_log_callers", p_onoff, access_log_callers),
    G("stats_dir", p_dir_or_off, stats_dir),
    G("shared_state", p_onoff, shared_state),
    G("vip_range", p_cidr, vip_range),
    G("dns_server", p_hostport, dns_server),
    G("dns_capture", p_onoff, dns_capture),
    G("on_error", p_on_error, on_error),
    G("io_uring", p_auto_off, io_uring),
    { 0 }
};

static const struct key_def TLS_KEYS[] = {
    G("cert", p_path, tls_cert),
    G("key", p_path, tls_key),
    G("ca", p_path, tls_ca),
    G("dir", p_path, tls_dir),
    G("min_version", p_min_version, tls_min_version),
    G("reload_interval", p_reload_interval, tls_reload_interval_ms),
    G("ktls", p_auto_off, tls_ktls),
    G("resumption", p_resumption, tls_psk_only),
    { 0 }
};

static const struct key_def TRACING_KEYS[] = {
    G("otlp_endpoint", p_otlp_endpoint, otlp_endpoint),
    G("service_name", p_string, trace_service_name),
    G("sample_rate", p_share, trace_sample_rate),
    G("trace_propagation", p_propagation, trace_propagation),
    { 0 }
};

static const struct key_def SERVICE_KEYS[] = {
    S("hosts", p_hosts, hosts),
    S("addresses", p_addresses, addresses),
    S("ports", p_ports, ports),
    S("endpoints", p_endpoints, endpoints),
    S("dns", p_dns_name, dns),
    S("srv", p_dns_name, srv),
    S("endpoints_file", p_path, endpoints_file),
    S("lb", p_lb, lb),
    S("affinity", p_affinity, affinity),
    S("late_accept", p_onoff, late_accept),
    S("connect_timeout", p_duration, connect_timeout_ms),
    S("retries", p_uint, retries),
    S("retry_backoff", p_duration, retry_backoff_ms),
    S("retry_backoff_max", p_duration, retry_backoff_max_ms),
    S("retry_budget", p_share, retry_budget),
    S("eject_after", p_eject_after, eject_after),
    S("eject_time", p_duration, eject_time_ms),
    S("max_eject_percent", p_percent, max_eject_percent),
    S("panic_threshold", p_percent, panic_threshold),
    S("max_connections", p_positive, max_connections),
    S("max_requests", p_positive, max_requests),
    S("health_check", p_health, health_check),
    S("health_path", p_request_target, health_path),
    S("health_interval", p_duration, health_interval_ms),
    S("health_timeout", p_duration, health_timeout_ms),
    S("healthy_threshold", p_positive, healthy_threshold),
    S("unhealthy_threshold", p_positive, unhealthy_threshold),
    S("tls", p_tls_mode, tls),
    S("identity", p_string, identity),
    S("sni", p_string, sni),
    S("fault_abort", p_share, fault_abort),
    S("fault_delay", p_duration, fault_delay_ms),
    S("fault_delay_percent", p_share, fault_delay_percent),
    S("split", p_split, split),
    S("protocol", p_protocol, protocol),
    S("retry_on", p_retry_on, retry_on),
    S("retriable_status_codes", p_status_codes, retriable_status_codes),
    S("retry_non_idempotent", p_onoff, retry_non_idempotent),
    S("retry_buffer", p_size, retry_buffer),
    S("per_try_timeout", p_duration, per_try_timeout_ms),
    S("request_timeout", p_duration, request_timeout_ms),
    { 0 }
};

#define R(key, fn, field) { key, fn, offsetof(struct route_config, field), \
                                sizeof(((struct route_config *)0)->field) }

static const struct key_def ROUTE_KEYS[] = {
    R("from", p_service_name, from),
    R("to", p_service_name, to),
    R("path", p_url_path, path),
    R("path_prefix", p_url_path, path_prefix),
    R("authority", p_string, authority),
    R("headers", p_header_matches, headers),
    { 0 }
};

static const struct key_def INBOUND_KEYS[] = {
    I("tls", p_inbound_tls, tls),
    I("allow", p_globs, allow),
    I("detect_timeout", p_duration, detect_timeout_ms),
    I("protocol", p_protocol, protocol),
    I("trace_propagation", p_propagation, trace_propagation),
    { 0 }
};

static const struct key_def *find_key(const struct key_def *table, const char *name, int *index)
{
    for (int i = 0; table[i].name; i++) {
        if (strcmp(table[i].name, name) == 0) {
            *index = i;
            return &table[i];
        }
    }
    return NULL;
}

/* Optimal string alignment distance (Levenshtein with adjacent swaps), for
 * names of at most 31 characters; 99 beyond. */
static int edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 31 || m > 31)
        return 99;
    int d[32][32];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

/* The table's key that is name in the plural, or in the singular (retry
 * for retries: three edits, too many for a typo, but what people write,
 * coming from Envoy's retry_policy or HAProxy's retries). NULL: none. */
static const char *plural_of_key(const struct key_def *table, const char *name)
{
    size_t n = strlen(name);
    if (n < 3 || n > 60)
        return NULL;
    char forms[4][64];
    snprintf(forms[0], sizeof(forms[0]), "%ss", name);                     /* endpoint: endpoints */
    snprintf(forms[1], sizeof(forms[1]), "%.*sies", (int)n - 1, name);     /* retry: retries */
    snprintf(forms[2], sizeof(forms[2]), "%.*s", (int)n - 1, name);        /* allows: allow */
    snprintf(forms[3], sizeof(forms[3]), "%.*sy", (int)n - 3, name);       /* retries: retry */
    int index;
    for (int f = 0; f < 4; f++) {
        bool fits = f == 0 || (f == 1 && name[n - 1] == 'y') || (f == 2 && name[n - 1] == 's') ||
                    (f == 3 && strcmp(name + n - 3, "ies") == 0);
        if (fits && find_key(table, forms[f], &index))
            return table[index].name;
    }
    return NULL;
}

/* What an unknown key's line adds: the section's key it is a typo of (at
 * most two edits, and fewer than half its length) or the plural or singular
 * of, else the section it belongs in; "" when none. */
static void unknown_key_hint(const struct key_def *table, const char *name, char *hint, size_t len)
{
    static const struct { const struct key_def *table; const char *section; } SECTIONS[] = {
        { MESHIM_KEYS, "[meshim]" }, { TLS_KEYS, "[tls]" }, { TRACING_KEYS, "[tracing]" },
        { SERVICE_KEYS, "[service:NAME] or [defaults]" }, { ROUTE_KEYS, "[route:NAME]" },
        { INBOUND_KEYS, "[inbound:PORT]" },
    };
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; table[i].name; i++) {
        int d = edit_distance(name, table[i].name);
        if (d < best_d && 2 * d < (int)strlen(name)) {
            best = table[i].name;
            best_d = d;
        }
    }
    int index;
    if (!best)
        best = plural_of_key(table, name);
    *hint = '\0';
    if (best) {
        snprintf(hint, len, " (did you mean %s?)", best);
        return;
    }
    for (size_t s = 0; s < sizeof(SECTIONS) / sizeof(SECTIONS[0]); s++)
        if (SECTIONS[s].table != table && find_key(SECTIONS[s].table, name, &index)) {
            snprintf(hint, len, " (a key of %s)", SECTIONS[s].section);
            return;
        }
}

static void service_defaults(struct service_config *s)
{
    s->lb = LB_P2C;
    s->connect_timeout_ms = 1000;
    s->retries = 2;
    s->retry_backoff_ms = 25;
    s->retry_backoff_max_ms = 250;
    s->retry_budget = 0.20;
    s->eject_after = 5;
    s->eject_time_ms = 30000;
    s->max_eject_percent = 50;
    s->max_connections = 1024;
    s->max_requests = 1024;
    s->health_check = HEALTH_OFF;
    s->health_interval_ms = 5000;
    s->health_timeout_ms = 1000;
    s->healthy_threshold = 2;
    s->unhealthy_threshold = 3;
    s->tls = TLS_OFF;
    s->protocol = PROTO_TCP;
    s->retry_on = RETRY_CONNECT_FAILURE;
    s->retry_buffer = 64 * 1024;
}

void config_default_stats_dir(char *buf, size_t len)
{
    /* Per user: every user, root and container users included, has one
     * (XDG_RUNTIME_DIR is per login session: daemons and containers have
     * none, and set-uid programs ignore the environment), and no other user
     * can write to it (the shim makes it 0700 and refuses it when someone
     * else owns it). */
    snprintf(buf, len, "/tmp/meshim-%u", (unsigned)geteuid());
}

void config_stats_dir(const struct mesh_config *cfg, char *buf, size_t len)
{
    if (cfg->stats_dir)
        snprintf(buf, len, "%s", cfg->stats_dir);
    else
        config_default_stats_dir(buf, len);
}

void config_shared_dir(const struct mesh_config *cfg, char *buf, size_t len)
{
    config_stats_dir(cfg, buf, len);
    if (strcmp(buf, "off") == 0)
        config_default_stats_dir(buf, len);
}

static void global_defaults(struct loader *L, struct mesh_config *c)
{
    c->log_level = LOG_WARN;
    c->log_file = arena_strdup(L->arena, "stderr");
    c->access_log = arena_strdup(L->arena, "off");
    c->stats_dir = NULL;    /* per user, decided where it is used: config_default_stats_dir */
    netaddr_parse("127.77.0.0", false, &c->vip_range.base);
    c->vip_range.prefix = 16;
    c->on_error = ON_ERROR_EXIT;
    c->tls_min_version = 12;
    c->tls_ktls = true;
    c->io_uring = true;
    c->shared_state = true;
    c->dns_capture = true;
    c->tls_reload_interval_ms = 10000;
    c->trace_sample_rate = 1.0;
    c->trace_propagation = PROPAGATE_HEADERS;
}

/* ------------------------------------------------------------- sections -- */

/* Services by name while loading, so that 10,000 of them load in linear
 * time (a scan per section was quadratic: 1 s for 10,000). The entries
 * hold an index: the array moves as it grows. */
struct name_entry {
    UT_hash_handle hh;
    size_t service;
    char key[];
};

static struct name_entry *name_entry_new(const char *key, size_t len, size_t service)
{
    struct name_entry *e = malloc(sizeof(*e) + len + 1);
    if (e) {
        memcpy(e->key, key, len);
        e->key[len] = '\0';
        e->service = service;
    }
    return e;
}

static void name_index_free(struct name_entry **index)
{
    struct name_entry *e, *tmp;
    HASH_ITER(hh, *index, e, tmp) {
        HASH_DEL(*index, e);
        free(e);
    }
}

static struct service_config *find_service(struct loader *L, const char *name)
{
    struct name_entry *e;
    HASH_FIND_STR(L->by_name, name, e);
    return e ? &L->cfg->services[e->service] : NULL;
}

/* While loading, the services array lives on the heap and grows in place
 * (in the arena each doubling would leave the old copy behind: 2x the
 * memory of 10,000 services); settle_services moves it into the arena. */
static struct service_config *add_service(struct loader *L, const char *name, struct origin at)
{
    struct mesh_config *c = L->cfg;
    if (c->n_services == L->cap_services) {
        size_t cap = L->cap_services ? 2 * L->cap_services : 8;
        struct service_config *v = realloc(c->services, cap * sizeof(*v));
        if (!v)
            abort();    /* as arena_alloc: config time only */
        c->services = v;
        L->cap_services = cap;
    }
    struct service_config *s = &c->services[c->n_services++];
    memset(s, 0, sizeof(*s));
    service_defaults(s);
    s->name = arena_strdup(L->arena, name);
    s->origin = at;
    struct name_entry *e = name_entry_new(name, strlen(name), c->n_services - 1);
    if (e)
        HASH_ADD_STR(L->by_name, key, e);
    return s;
}

static bool valid_service_name(const char *s)
{
    return *s && strlen(s) < 128 && valid_dns_name(s);
}

/* [meshim], [tls], [tracing], [defaults]: each at most once. False when
 * name is none of them. */
static bool open_single_section(struct loader *L, const char *name, struct origin at)
{
    bool *seen;
    int *first;
    if (strcmp(name, "meshim") == 0) {
        L->kind = SEC_MESHIM, L->section = L->cfg, seen = &L->seen_meshim, first = &L->line_meshim;
    } else if (strcmp(name, "tls") == 0) {
        L->kind = SEC_TLS, L->section = L->cfg, seen = &L->seen_tls, first = &L->line_tls;
    } else if (strcmp(name, "tracing") == 0) {
        L->kind = SEC_TRACING, L->section = L->cfg, seen = &L->seen_tracing,
        first = &L->line_tracing;
    } else if (strcmp(name, "defaults") == 0) {
        L->kind = SEC_DEFAULTS, L->section = &L->defaults, seen = &L->seen_defaults,
        first = &L->line_defaults;
    } else {
        return false;
    }
    if (*seen) {
        add_error(L, at, "[%s]: section appears twice (first at line %d)", name, *first);
        L->kind = SEC_UNKNOWN;
    }
    *seen = true;
    *first = at.line;
    return true;
}

static void open_service(struct loader *L, const char *name, struct origin at)
{
    const char *svc = name + 8;
    struct service_config *prev;
    if (!valid_service_name(svc)) {
        add_error(L, at, "[%s]: not a valid service name (letters, digits, '-', '_', '.')", name);
    } else if ((prev = find_service(L, svc)) != NULL) {
        add_error(L, at, "[%s]: section appears twice (first at line %d)", name, prev->origin.line);
    } else {
        L->kind = SEC_SERVICE;
        L->section = add_service(L, svc, at);
    }
}

static void open_inbound(struct loader *L, const char *name, struct origin at)
{
    char *end;
    unsigned long port = strtoul(name + 8, &end, 10);
    if (!isdigit((unsigned char)name[8]) || *end || port == 0 || port > 65535) {
        add_error(L, at, "[%s]: not a port number from 1 to 65535", name);
        return;
    }
    struct mesh_config *c = L->cfg;
    for (size_t i = 0; i < c->n_inbound; i++) {
        if (c->inbound[i].port == port) {
            add_error(L, at, "[%s]: section appears twice (first at line %d)", name,
                      c->inbound[i].origin.line);
            return;
        }
    }
    c->inbound = arena_grow(L->arena, c->inbound, c->n_inbound, &L->cap_inbound,
                            sizeof(*c->inbound), 4);
    struct inbound_config *in = &c->inbound[c->n_inbound++];
    memset(in, 0, sizeof(*in));
    in->port = (uint16_t)port;
    in->origin = at;
    in->tls = INBOUND_STRICT;
    in->detect_timeout_ms = 1000;
    L->kind = SEC_INBOUND;
    L->section = in;
}

static void open_route(struct loader *L, const char *name, struct origin at)
{
    const char *rname = name + 6;
    struct mesh_config *c = L->cfg;
    if (!valid_service_name(rname)) {
        add_error(L, at, "[%s]: not a valid route name (letters, digits, '-', '_', '.')", name);
        return;
    }
    for (size_t i = 0; i < c->n_routes; i++) {
        if (strcmp(c->routes[i].name, rname) == 0) {
            add_error(L, at, "[%s]: section appears twice (first at line %d)", name,
                      c->routes[i].origin.line);
            return;
        }
    }
    c->routes = arena_grow(L->arena, c->routes, c->n_routes, &L->cap_routes,
                           sizeof(*c->routes), 4);
    struct route_config *r = &c->routes[c->n_routes++];
    memset(r, 0, sizeof(*r));
    r->name = arena_strdup(L->arena, rname);
    r->origin = at;
    L->kind = SEC_ROUTE;
    L->section = r;
}

/* Called by the reader for every "[...]" line, before inih sees it. */
static void open_section(struct loader *L, const char *name)
{
    struct origin at = here(L);
    L->continuation = false;
    L->pending.name[0] = '\0';     /* no key to continue in the new section */
    L->section = NULL;
    L->kind = SEC_UNKNOWN;

    if (open_single_section(L, name, at))
        return;
    if (strncmp(name, "service:", 8) == 0)
        open_service(L, name, at);
    else if (strncmp(name, "inbound:", 8) == 0)
        open_inbound(L, name, at);
    else if (strncmp(name, "route:", 6) == 0)
        open_route(L, name, at);
    else
        add_error(L, at, "[%s]: unknown section (meshim, tls, tracing, defaults, service:NAME, "
                  "inbound:PORT, route:NAME)", name);
}

/* Sets one key of one section: the table says how. */
static bool set_key(struct loader *L, const struct key_def *table, void *base, uint64_t *set,
                    int *key_line, const char *section, const char *name,
                    const char *value, struct origin at)
{
    int index = 0;
    const struct key_def *k = find_key(table, name, &index);
    if (!k) {
        char hint[96];
        unknown_key_hint(table, name, hint, sizeof(hint));
        add_error(L, at, "%s: unknown key in [%s]%s", name, section, hint);
        return false;
    }
    if (*set >> index & 1) {
        add_error(L, at, "%s: set twice in [%s] (first at line %d)", name, section,
                  key_line[index]);
        return false;
    }
    /* Parse into scratch space: a value that fails half-way through a list
     * must not leave a half-filled field for validation to trip over. */
    _Alignas(max_align_t) char scratch[64];
    memcpy(scratch, (char *)base + k->offset, k->size);
    const char *why = k->parse(L, value, scratch);
    if (why) {
        /* A wrapped list can be long: show its start. */
        add_error(L, at, "%s: %s: \"%.200s%s\"", name, why, value, strlen(value) > 200 ? "..." : "");
        return false;
    }
    memcpy((char *)base + k->offset, scratch, k->size);
    *set |= (uint64_t)1 << index;
    key_line[index] = at.line;
    return true;
}

/* Applies one whole key (its continuation lines joined) to the section. */
static void apply_key(struct loader *L, const char *name, const char *value, struct origin at)
{
    switch (L->kind) {
    case SEC_NONE:
        add_error(L, at, "%s: key outside of any section", name);
        break;
    case SEC_UNKNOWN:
        break;      /* the section header already got its message */
    case SEC_MESHIM:
        set_key(L, MESHIM_KEYS, L->cfg, &L->meshim_set, L->meshim_line, "meshim", name, value, at);
        break;
    case SEC_TLS:
        set_key(L, TLS_KEYS, L->cfg, &L->tls_set, L->tls_line, "tls", name, value, at);
        break;
    case SEC_TRACING:
        set_key(L, TRACING_KEYS, L->cfg, &L->tracing_set, L->tracing_line, "tracing", name, value,
                at);
        break;
    case SEC_DEFAULTS:
        set_key(L, SERVICE_KEYS, &L->defaults, &L->defaults.set, L->defaults.key_line,
                "defaults", name, value, at);
        break;
    case SEC_SERVICE: {
        struct service_config *s = L->section;
        char label[160];
        snprintf(label, sizeof(label), "service:%s", s->name);
        set_key(L, SERVICE_KEYS, s, &s->set, s->key_line, label, name, value, at);
        break;
    }
    case SEC_ROUTE: {
        struct route_config *r = L->section;
        char label[160];
        snprintf(label, sizeof(label), "route:%s", r->name);
        set_key(L, ROUTE_KEYS, r, &r->set, r->key_line, label, name, value, at);
        break;
    }
    case SEC_INBOUND: {
        struct inbound_config *in = L->section;
        char label[32];
        snprintf(label, sizeof(label), "inbound:%u", in->port);
        set_key(L, INBOUND_KEYS, in, &in->set, in->key_line, label, name, value, at);
        break;
    }
    }
}

static void flush_key(struct loader *L)
{
    struct pending *k = &L->pending;
    if (!k->active)
        return;
    k->active = false;
    apply_key(L, k->name, k->value ? k->value : "", k->at);
}

static bool pending_append(struct pending *k, const char *sep, const char *value)
{
    size_t add = strlen(sep) + strlen(value);
    if (k->len + add + 1 > k->cap) {
        size_t cap = k->cap ? k->cap : 256;
        while (cap < k->len + add + 1)
            cap *= 2;
        char *grown = realloc(k->value, cap);
        if (!grown)
            return false;
        k->value = grown;
        k->cap = cap;
    }
    k->len += (size_t)sprintf(k->value + k->len, "%s%s", sep, value);
    return true;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct loader *L = user;
    struct pending *k = &L->pending;
    (void)section;
    /* A continuation line (inih's multi-line values) extends the last
     * key's value, so long endpoint lists can wrap. */
    if (L->continuation && k->active && strcmp(name, k->name) == 0) {
        if (!pending_append(k, ", ", value))
            add_error(L, here(L), "%s: out of memory", name);
        return 1;
    }
    L->continuation = false;
    flush_key(L);
    snprintf(k->name, sizeof(k->name), "%s", name);
    k->len = 0;
    k->at = here(L);
    k->active = pending_append(k, "", value);
    if (!k->active)
        add_error(L, k->at, "%s: out of memory", name);
    return 1;   /* our own errors are collected; keep inih going */
}

/* ini_reader: counts lines, opens sections, flags continuation lines and
 * lines longer than inih's buffer (which it would otherwise split). */
static char *read_line(char *str, int num, void *stream)
{
    struct loader *L = stream;
    if (!fgets(str, num, L->fp))
        return NULL;
    L->line++;
    size_t len = strlen(str);
    if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(L->fp)) {
        int ch;
        while ((ch = fgetc(L->fp)) != EOF && ch != '\n')
            ;
        add_error(L, here(L), "line longer than %d characters (wrap long lists onto "
                  "indented continuation lines)", num - 2);
        strcpy(str, ";\n");
        return str;
    }
    /* A UTF-8 byte order mark, as Windows editors save one: gone from the
     * first line before inih (which would take it for part of a name) or
     * the section test below see it. */
    if (L->line == 1 && memcmp(str, "\xEF\xBB\xBF", 3) == 0)
        memmove(str, str + 3, len - 2);
    const char *p = str;
    bool indented = *p == ' ' || *p == '\t';
    p += strspn(p, " \t\r");
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close) {
            char name[256];
            size_t n = (size_t)(close - p - 1);
            if (n >= sizeof(name))
                n = sizeof(name) - 1;
            memcpy(name, p + 1, n);
            name[n] = '\0';
            flush_key(L);       /* the last key of the section before */
            open_section(L, name);
        }
    } else if (*p && *p != '\n' && *p != ';' && *p != '#') {
        L->continuation = indented && L->pending.name[0];
    }
    return str;
}

/* Opens a config file to read: a regular file of at most CONFIG_FILE_MAX
 * bytes, opened without blocking (a FIFO in its place would stop the
 * program's start, or the watcher, until someone wrote to it), that no
 * other user may write (file_untrusted). */
FILE *config_open_file(const char *path, size_t max, char *why, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int err = errno;
        snprintf(why, len, "%s", strerror(err));
        if (fd >= 0)
            close(fd);
        errno = err;        /* EACCES: load_file says whose permission */
        return NULL;
    }
    FILE *f = NULL;
    int err = 0;
    if (!S_ISREG(st.st_mode))
        snprintf(why, len, "not a regular file");
    else if (file_untrusted(&st, why, len))
        err = EPERM;
    else if ((uint64_t)st.st_size > max)
        snprintf(why, len, "larger than %zu KiB", max >> 10);
    else if (!(f = fdopen(fd, "r")))
        snprintf(why, len, "%s", strerror(err = errno));
    if (!f) {
        close(fd);
        errno = err;
    }
    return f;
}

/* Why a config file this process may not read is a permission problem,
 * said so that the user can act: the common case is a process that switched
 * user (a server dropping root, a test suite starting a child as nobody)
 * and inherited MESHIM_CONFIG naming a file only root reads. */
static void permission_error(struct loader *L, const char *path)
{
    struct stat st;
    char file[64] = "";
    if (stat(path, &st) == 0)
        snprintf(file, sizeof(file), " and the file is mode %04o, owner uid %u",
                 (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
    add_error(L, (struct origin){ path, 0 },
              "cannot read: permission denied: this process runs as uid %u%s (a process that "
              "switched user keeps MESHIM_CONFIG): make the file and its folders readable by "
              "that user (the config holds no secrets), or start it with MESHIM_DISABLE=1",
              (unsigned)geteuid(), file);
}

static void load_file(struct loader *L, const char *path)
{
    L->file = path;
    L->line = 0;
    char why[128];
    L->fp = config_open_file(path, CONFIG_FILE_MAX, why, sizeof(why));
    if (!L->fp && errno == EACCES) {
        permission_error(L, path);
        return;
    }
    if (!L->fp) {
        add_error(L, (struct origin){ path, 0 }, "%s: %s", errno == EPERM ? "not trusted" : "cannot read", why);
        return;
    }
    size_t before = L->errors_len;
    int rc = ini_parse_stream(read_line, L, on_key, L);
    L->continuation = false;
    flush_key(L);
    free(L->pending.value);
    L->pending = (struct pending){ 0 };
    fclose(L->fp);
    L->fp = NULL;
    /* rc > 0 is the first line inih itself could not parse (no '=', no ']');
     * report it unless one of our messages already covers that line. */
    if (rc > 0) {
        char prefix[64];
        snprintf(prefix, sizeof(prefix), ":%d: ", rc);
        if (!L->errors || !strstr(L->errors + before, prefix))
            add_error(L, (struct origin){ path, rc }, "syntax error (expected [section] or key = value)");
    }
}

/* ------------------------------------------------------------ environment -- */

/* MESHIM_SERVICES: "orders=10.0.0.5:8080,10.0.0.6:8080;users=127.0.0.9". A
 * service the file already has gets these endpoints (the environment wins). */
static void load_services_env(struct loader *L, const char *value)
{
    struct origin at = { "MESHIM_SERVICES", 0 };
    char *copy = arena_strdup(L->arena, value);
    for (char *save = NULL, *item = strtok_r(copy, ";", &save); item;
         item = strtok_r(NULL, ";", &save)) {
        item += strspn(item, " \t");
        if (!*item)
            continue;
        char *eq = strchr(item, '=');
        if (!eq) {
            add_error(L, at, "\"%s\": expected NAME=ENDPOINT,ENDPOINT", item);
            continue;
        }
        *eq = '\0';
        if (!valid_service_name(item)) {
            add_error(L, at, "\"%s\": not a valid service name", item);
            continue;
        }
        struct service_config *s = find_service(L, item);
        if (!s)
            s = add_service(L, item, at);
        L->continuation = false;
        int index = 0;
        find_key(SERVICE_KEYS, "endpoints", &index);
        struct endpoint_list parsed;
        const char *why = p_endpoints(L, eq + 1, &parsed);
        if (why)
            add_error(L, at, "%s: endpoints: %s: \"%s\"", item, why, eq + 1);
        else
            s->endpoints = parsed;
        s->set |= (uint64_t)1 << index;
        s->key_line[index] = at.line;
    }
}

static void load_env_overrides(struct loader *L, const struct config_source *src)
{
    static const struct { const char *var; const struct key_def *table; const char *key; } MAP[] = {
        { "MESHIM_LOG_LEVEL", MESHIM_KEYS, "log_level" },
        { "MESHIM_LOG_FILE", MESHIM_KEYS, "log_file" },
        { "MESHIM_ACCESS_LOG", MESHIM_KEYS, "access_log" },
        { "MESHIM_STATS_DIR", MESHIM_KEYS, "stats_dir" },
        { "MESHIM_SHARED_STATE", MESHIM_KEYS, "shared_state" },
        { "MESHIM_TLS_CERT", TLS_KEYS, "cert" },
        { "MESHIM_TLS_KEY", TLS_KEYS, "key" },
        { "MESHIM_TLS_CA", TLS_KEYS, "ca" },
        { "MESHIM_TLS_DIR", TLS_KEYS, "dir" },
    };
    for (size_t i = 0; i < MESHIM_ARRAY_LEN(MAP); i++) {
        const char *v = src->getenv(MAP[i].var);
        int index = 0;
        if (!v || !*v)
            continue;
        const struct key_def *k = find_key(MAP[i].table, MAP[i].key, &index);
        const char *why = k->parse(L, v, (char *)L->cfg + k->offset);   /* scalars only */
        struct origin at = { MAP[i].var, 0 };
        if (why)
            add_error(L, at, "%s: \"%s\"", why, v);
    }
}

/* ------------------------------------------------------------- validation -- */

static void inherit_defaults(struct loader *L, struct service_config *s)
{
    for (int i = 0; SERVICE_KEYS[i].name; i++) {
        uint64_t bit = (uint64_t)1 << i;
        if ((L->defaults.set & bit) && !(s->set & bit)) {
            const struct key_def *k = &SERVICE_KEYS[i];
            memcpy((char *)s + k->offset, (char *)&L->defaults + k->offset, k->size);
            s->key_line[i] = L->defaults.key_line[i];
        }
    }
    if (s->hosts.n == 0) {
        s->hosts.v = arena_alloc(L->arena, sizeof(char *));
        s->hosts.v[0] = s->name;
        s->hosts.n = 1;
    }
}

/* Does following splits from `from` lead back to `to`? */
static bool split_reaches(struct loader *L, const struct service_config *from,
                          const struct service_config *to, int depth)
{
    if (depth > 64)
        return true;
    for (size_t i = 0; i < from->split.n; i++) {
        const struct service_config *next = find_service(L, from->split.v[i].service);
        if (next == to || (next && split_reaches(L, next, to, depth + 1)))
            return true;
    }
    return false;
}

static bool split_loops(struct loader *L, const struct service_config *s, int depth)
{
    return split_reaches(L, s, s, depth);
}

static void validate_service(struct loader *L, struct service_config *s)
{
    struct origin at = s->origin;
    char where[160];
    if (at.line > 0)
        snprintf(where, sizeof(where), "[service:%s]", s->name);
    else
        snprintf(where, sizeof(where), "%s", s->name);
    if (!s->endpoints.n && !s->dns && !s->srv && !s->endpoints_file && !s->split.n)
        add_error(L, at, "%s: no endpoints (set endpoints, dns, srv, endpoints_file or split)", where);
    if (s->retry_backoff_ms > s->retry_backoff_max_ms)
        add_error(L, at, "%s: retry_backoff (%ums) is longer than retry_backoff_max (%ums)", where,
                  s->retry_backoff_ms, s->retry_backoff_max_ms);
    const char *check = s->health_check == HEALTH_HTTP ? "http" : "tcp";
    if (s->health_check != HEALTH_OFF && s->ports.n == 0 && (s->dns || s->endpoints_file))
        add_error(L, at, "%s: health_check = %s needs a port to check: set ports (endpoints "
                  "from dns or endpoints_file may have none)", where, check);
    else if (s->health_check != HEALTH_OFF && s->ports.n == 0) {
        for (size_t i = 0; i < s->endpoints.n; i++) {
            if (!s->endpoints.v[i].addr.port) {
                add_error(L, at, "%s: health_check = %s needs a port to check: give every "
                          "endpoint one, or set ports", where, check);
                break;
            }
        }
    }
    int path_key = 0, identity_key = 0, sni_key = 0;
    find_key(SERVICE_KEYS, "health_path", &path_key);
    find_key(SERVICE_KEYS, "identity", &identity_key);
    find_key(SERVICE_KEYS, "sni", &sni_key);
    if ((s->set >> path_key & 1) && s->health_path && s->health_check != HEALTH_HTTP)  /* [defaults] may */
        add_error(L, at, "%s: health_path is for health_check = http", where);
    /* Set in the service's own section and never used: the user believes
     * the endpoints must prove who they are, and the connections go out in
     * the clear to whoever answers. */
    if ((s->set >> identity_key & 1) && s->identity && *s->identity && s->tls != TLS_MTLS)
        add_error(L, at, "%s: identity is checked only over mTLS: set tls = mtls", where);
    if ((s->set >> sni_key & 1) && s->sni && *s->sni && s->tls != TLS_MTLS)
        add_error(L, at, "%s: sni is sent only over mTLS: set tls = mtls", where);
    uint64_t split_total = 0;
    for (size_t i = 0; i < s->split.n; i++) {
        const char *target = s->split.v[i].service;
        if (strcmp(target, s->name) == 0 || !find_service(L, target))
            add_error(L, at, "%s: split: \"%s\" is not another service of this config", where, target);
        split_total += s->split.v[i].weight;
    }
    if (s->split.n && !split_total)
        add_error(L, at, "%s: split: the weights add up to 0", where);
    else if (s->split.n && split_loops(L, s, 0))
        add_error(L, at, "%s: split: the services split back into %s", where, s->name);
    if (s->protocol == PROTO_HTTP && (s->retry_on & RETRY_STATUS_CODES) &&
        !s->retriable_status_codes.n)
        add_error(L, at, "%s: retry_on = retriable-status-codes needs retriable_status_codes",
                  where);
    if (s->tls == TLS_MTLS && !config_has_identity(L->cfg))
        add_error(L, at, "%s: tls = mtls needs [tls] dir, or cert, key and ca (or MESHIM_TLS_DIR, "
                  "or MESHIM_TLS_CERT, MESHIM_TLS_KEY, MESHIM_TLS_CA)", where);
}

static bool address_overlap(const struct netaddr *x, const struct netaddr *y)
{
    return netaddr_same_ip(x, y) && (x->port == 0 || y->port == 0 || x->port == y->port);
}

/* A host as DNS compares it: lower case, without the root's dot. */
static size_t host_key(const char *host, char *out, size_t len)
{
    size_t n = strlen(host);
    if (n > 1 && host[n - 1] == '.')
        n--;
    if (n >= len)
        n = len - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = ascii_lower(host[i]);
    out[n] = '\0';
    return n;
}

/* Each host belongs to one service: a hash of the hosts seen so far. */
static void check_hosts(struct loader *L)
{
    struct mesh_config *c = L->cfg;
    struct name_entry *seen = NULL;
    for (size_t i = 0; i < c->n_services; i++) {
        struct service_config *s = &c->services[i];
        for (size_t h = 0; h < s->hosts.n; h++) {
            char key[256];
            size_t n = host_key(s->hosts.v[h], key, sizeof(key));
            struct name_entry *e;
            HASH_FIND(hh, seen, key, n, e);
            if (e && e->service != i)
                add_error(L, s->origin, "[service:%s]: hosts: \"%s\" is already a host of "
                          "[service:%s]", s->name, s->hosts.v[h], c->services[e->service].name);
            else if (!e && (e = name_entry_new(key, n, i)))
                HASH_ADD_KEYPTR(hh, seen, e->key, n, e);
        }
    }
    name_index_free(&seen);
}

/* Each address (IP, or IP and port) belongs to one service: addresses by
 * IP, each IP's few ports compared. */
struct ip_entry {
    UT_hash_handle hh;
    struct { sa_family_t family; uint8_t ip[16]; } key;
    size_t n, cap;
    struct { size_t service; struct netaddr addr; } *v;
};

static void check_addresses(struct loader *L)
{
    struct mesh_config *c = L->cfg;
    struct ip_entry *by_ip = NULL, *e, *tmp;
    for (size_t i = 0; i < c->n_services; i++) {
        struct service_config *s = &c->services[i];
        for (size_t a = 0; a < s->addresses.n; a++) {
            const struct netaddr *x = &s->addresses.v[a];
            struct ip_entry k;
            memset(&k.key, 0, sizeof(k.key));
            k.key.family = x->family;
            memcpy(k.key.ip, &x->ip, x->family == AF_INET ? 4 : 16);
            HASH_FIND(hh, by_ip, &k.key, sizeof(k.key), e);
            if (!e) {
                if (!(e = calloc(1, sizeof(*e))))
                    continue;
                e->key = k.key;
                HASH_ADD(hh, by_ip, key, sizeof(e->key), e);
            }
            for (size_t j = 0; j < e->n; j++)
                if (e->v[j].service != i && address_overlap(x, &e->v[j].addr)) {
                    char text[64];
                    netaddr_format(x, text, sizeof(text));
                    add_error(L, s->origin, "[service:%s]: addresses: %s is already an "
                              "address of [service:%s]", s->name, text,
                              c->services[e->v[j].service].name);
                    break;
                }
            if (e->n == e->cap) {
                size_t cap = e->cap ? 2 * e->cap : 2;
                void *v = realloc(e->v, cap * sizeof(*e->v));
                if (!v)
                    continue;
                e->v = v, e->cap = cap;
            }
            e->v[e->n].service = i;
            e->v[e->n++].addr = *x;
        }
    }
    HASH_ITER(hh, by_ip, e, tmp) {
        HASH_DEL(by_ip, e);
        free(e->v);
        free(e);
    }
}

static void validate_route(struct loader *L, const struct route_config *r)
{
    const struct service_config *from = r->from ? find_service(L, r->from) : NULL;
    if (!r->from || !r->to)
        add_error(L, r->origin, "[route:%s]: needs from (the service whose requests it routes) "
                  "and to (where they go)", r->name);
    else if (!from)
        add_error(L, r->origin, "[route:%s]: from: \"%s\" is not a service of this config",
                  r->name, r->from);
    else if (from->protocol != PROTO_HTTP)
        add_error(L, r->origin, "[route:%s]: from: service %s is not protocol = http (routes "
                  "read requests)", r->name, r->from);
    if (r->to && !find_service(L, r->to))
        add_error(L, r->origin, "[route:%s]: to: \"%s\" is not a service of this config",
                  r->name, r->to);
    if (r->path && r->path_prefix)
        add_error(L, r->origin, "[route:%s]: set path or path_prefix, not both", r->name);
}

static void validate_across(struct loader *L)
{
    struct mesh_config *c = L->cfg;
    /* Parsed once here (p_hostport took it): the DNS watcher and the DNS
     * capture, which looks at every datagram a program sends, use this. */
    if (c->dns_server && !netaddr_parse(c->dns_server, true, &c->dns_server_addr))
        c->dns_server_addr = (struct netaddr){ 0 };
    for (size_t i = 0; i < c->n_routes; i++)
        validate_route(L, &c->routes[i]);
    check_hosts(L);
    check_addresses(L);
    int propagation = 0;
    find_key(INBOUND_KEYS, "trace_propagation", &propagation);
    for (size_t i = 0; i < c->n_inbound; i++)
        if (!(c->inbound[i].set & (1ull << propagation)))
            c->inbound[i].trace_propagation = c->trace_propagation;
    for (size_t i = 0; i < c->n_inbound; i++)
        if (c->inbound[i].tls == INBOUND_OFF && c->inbound[i].allow.n)     /* as identity above */
            add_error(L, c->inbound[i].origin, "[inbound:%u]: allow is checked only over mTLS, and tls = off "
                      "lets every client in: set tls = strict", c->inbound[i].port);
    int detect = 0;
    find_key(INBOUND_KEYS, "detect_timeout", &detect);
    for (size_t i = 0; i < c->n_inbound; i++)
        if (c->inbound[i].tls != INBOUND_PERMISSIVE && (c->inbound[i].set & (1ull << detect)))
            add_error(L, (struct origin){ c->inbound[i].origin.file, c->inbound[i].key_line[detect] },
                      "[inbound:%u]: detect_timeout is for tls = permissive (how long a "
                      "client may stay silent after the server spoke before it is served as plaintext)", c->inbound[i].port);
    for (size_t i = 0; i < c->n_inbound; i++)
        if (c->inbound[i].tls != INBOUND_OFF && !config_has_identity(c))
            add_error(L, c->inbound[i].origin, "[inbound:%u]: tls = %s needs [tls] dir, or cert, key and "
                      "ca (or MESHIM_TLS_DIR, or MESHIM_TLS_CERT, MESHIM_TLS_KEY, MESHIM_TLS_CA)",
                      c->inbound[i].port,
                      c->inbound[i].tls == INBOUND_STRICT ? "strict" : "permissive");
    uint64_t pool = ((uint64_t)1 << (32 - c->vip_range.prefix)) - 2;
    if (c->n_services > pool)
        add_error(L, (struct origin){ L->file ? L->file : "MESHIM_SERVICES", 0 },
                  "vip_range: %zu services do not fit in a /%u", c->n_services, c->vip_range.prefix);
}

static void settle_services(struct loader *L)
{
    struct mesh_config *c = L->cfg;
    struct service_config *heap = c->services;
    if (!heap)
        return;
    c->services = arena_alloc(L->arena, c->n_services * sizeof(*heap));
    memcpy(c->services, heap, c->n_services * sizeof(*heap));
    free(heap);
}

/* ------------------------------------------------------------------ entry -- */

struct mesh_config *config_load(const struct config_source *src, char **errors,
                                enum on_error *on_error)
{
    struct arena *arena = NULL;
    struct mesh_config *cfg = arena_alloc(&arena, sizeof(*cfg));
    struct loader L = { .cfg = cfg, .arena = &arena };
    *errors = NULL;

    global_defaults(&L, cfg);
    service_defaults(&L.defaults);

    const char *(*env)(const char *) = src->getenv;
    const char *disable = src->secure ? NULL : env("MESHIM_DISABLE");
    if (disable && strcmp(disable, "1") == 0) {
        *on_error = ON_ERROR_PASSTHROUGH;
        cfg->disabled = true;
        cfg->arena = arena;
        return cfg;     /* inert whatever the config says */
    }
    const char *file = src->secure ? NULL : env("MESHIM_CONFIG");
    if (file && *file) {
        load_file(&L, file);
    } else if (src->default_file && access(src->default_file, F_OK) == 0) {
        file = src->default_file;
        load_file(&L, file);
    } else {
        file = NULL;
    }
    cfg->file = file ? arena_strdup(&arena, file) : NULL;
    L.file = cfg->file;

    const char *services = src->secure ? NULL : env("MESHIM_SERVICES");
    if (services && *services)
        load_services_env(&L, services);
    if (!src->secure)
        load_env_overrides(&L, src);

    for (size_t i = 0; i < cfg->n_services; i++) {
        inherit_defaults(&L, &cfg->services[i]);
        validate_service(&L, &cfg->services[i]);
    }
    validate_across(&L);
    name_index_free(&L.by_name);
    settle_services(&L);

    cfg->active = cfg->file != NULL || cfg->n_services > 0;
    cfg->arena = arena;
    *on_error = cfg->on_error;
    if (L.errors) {
        *errors = L.errors;
        arena_free(arena);
        return NULL;
    }
    return cfg;
}

void config_free(struct mesh_config *cfg)
{
    if (cfg)
        arena_free(cfg->arena);
}

const char *lb_policy_name(enum lb_policy lb)
{
    return LBS[lb];
}
