/*
 * util.h — small helpers shared by the library, the command and the tests:
 * monotonic time, a per-thread random generator, and the address type that
 * the config, the registry and the hooks all speak (struct netaddr).
 *
 * Nothing here calls an interposed symbol, so every module may use it.
 */
#ifndef MESHIM_UTIL_H
#define MESHIM_UTIL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#define MESHIM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* An IPv4 or IPv6 address with an optional port (0: "the port the app asked
 * for" for endpoints, "any port" for addresses). */
struct netaddr {
    sa_family_t family;           /* AF_INET or AF_INET6 */
    uint16_t port;                /* host byte order; 0 = unset */
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } ip;
};

/* "10.0.0.5", "10.0.0.5:8080", "::1", "[::1]:8080". Returns false on
 * anything else. allow_port=false rejects a port. */
bool netaddr_parse(const char *text, bool allow_port, struct netaddr *out);
/* "10.0.0.5:8080" / "[::1]:8080" (no port part when port is 0). */
void netaddr_format(const struct netaddr *a, char *buf, size_t len);
/* From a sockaddr; an IPv4-mapped IPv6 address becomes plain IPv4 so that
 * AF_INET6 sockets and AF_INET sockets look up the same tables. */
bool netaddr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct netaddr *out);
/* To a sockaddr of the given socket family (AF_INET6 sockets reach IPv4
 * endpoints through mapped addresses). Returns the length, 0 if impossible. */
socklen_t netaddr_to_sockaddr(const struct netaddr *a, uint16_t port, int family,
                              struct sockaddr_storage *out);
bool netaddr_same_ip(const struct netaddr *a, const struct netaddr *b);

/* src into dst of size bytes (> 0), cut short if need be, always ended
 * with a NUL: snprintf(dst, size, "%s", src) without the format's cost. */
void text_copy(char *dst, size_t size, const char *src);

/* Monotonic nanoseconds. */
uint64_t now_ns(void);
/* Wall-clock nanoseconds since the epoch (for timestamps people read). */
uint64_t wall_ns(void);

/* xorshift64* state. rng_seed() draws from getrandom(); tests seed by hand. */
uint64_t rng_next(uint64_t *state);
void rng_seed(uint64_t *state);
/* Uniform in [0, bound) (bound > 0). */
uint64_t rng_below(uint64_t *state, uint64_t bound);
/* The calling thread's generator, reseeded after fork (see rng_fork_child). */
uint64_t *rng_thread(void);
void rng_fork_child(void);

/* When process pid started (field 22 of /proc/PID/stat, clock ticks since
 * boot), or 0 when there is no such process. A pid with another start time
 * is another process (pids are reused). pid 0: this process. */
uint64_t proc_start_ticks(int pid);

/* FNV-1a, 64 bit: the VIP hash must be the same in every process and build.
 * _bytes continues hash h (start with HASH_FNV1A_INIT) over n bytes. */
#define HASH_FNV1A_INIT 0xcbf29ce484222325ULL
uint64_t hash_fnv1a(const char *s);
uint64_t hash_fnv1a_bytes(uint64_t h, const void *p, size_t n);

/* What a watched file is (device, inode, size, mtime): a change of any part
 * means "read it again". Survives ConfigMap-style symlink swaps. */
struct file_id {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};
struct file_id file_id_of(const char *path);
bool file_id_same(const struct file_id *a, const struct file_id *b);

/* The one rule for a folder the shim reads secrets from or writes into
 * (the identity's, the stats folder, log folders): owned by root or by
 * this user, and nobody else may write to it, except in a sticky folder
 * (/tmp, Kubernetes' volume roots), where others may add names but not
 * replace ours. Each caller says what a sticky one may be used for. */
enum dir_trust {
    DIR_TRUSTED,                  /* ours or root's, closed to others */
    DIR_TRUSTED_STICKY,           /* ours or root's, open to others but sticky */
    DIR_NOT_OURS,                 /* another user's */
    DIR_OPEN,                     /* anyone may write to it, not sticky */
};
struct stat;
enum dir_trust dir_trust_of(const struct stat *st);

/* The rule for a file the shim takes its orders or its identity from (the
 * INI, an endpoints file, the TLS cert, key and bundle): owned by root or by
 * this user, and not writable by everyone. Whoever else could write it
 * would steer this process's connections, turn its mTLS off, or point a
 * root process's access_log at any file. NULL when trusted; else why not,
 * in buf. (Group write is the owner's choice, as for the folders.) */
const char *file_untrusted(const struct stat *st, char *buf, size_t len);

/* ASCII case-insensitive compare of a DNS name, ignoring one trailing dot on
 * either side. */
/* Case in ASCII only, whatever the program's locale: names, header names,
 * methods and units are ASCII, and the C library's tolower and strcasecmp
 * follow LC_CTYPE, which a program may take from the environment (python3
 * does at start). Under tr_TR.UTF-8 tolower('I') is 'I' (its lower case,
 * dotless i, is not one byte), so "INVENTORY" was not the service
 * "inventory" and "CONNECTION" not the header "connection". */
static inline char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}
int ascii_casecmp(const char *a, const char *b);
int ascii_ncasecmp(const char *a, const char *b, size_t n);

bool dns_name_equal(const char *a, const char *b);
/* Does name end with suffix (".orders.svc"), with something before it? */
bool dns_name_has_suffix(const char *name, const char *suffix);

/* s (NULL: "") as a JSON string, quotes included, at buf; its length, or 0
 * when it does not fit in len with the terminator. */
size_t json_string(char *buf, size_t len, const char *s);

/* Text written into a buffer of len bytes, never past it: once something
 * does not fit, `full` is set and nothing more is written (the caller
 * drops or shortens what it made, never sends half of it). */
struct textbuf {
    char *buf;
    size_t len, used;
    bool full;
};
void textbuf_put(struct textbuf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string (json_string). */
void textbuf_json(struct textbuf *t, const char *s);
/* Appenders that need no format string (printf's machinery costs more
 * than the bytes: an exported span is some forty pieces): n bytes of s,
 * the string s as it is, a number in decimal. */
void textbuf_mem(struct textbuf *t, const char *s, size_t n);
void textbuf_str(struct textbuf *t, const char *s);
/* A string literal, its length known when compiled. */
#define TEXTBUF_LIT(t, lit) textbuf_mem((t), "" lit, sizeof(lit) - 1)
void textbuf_u64(struct textbuf *t, unsigned long long v);
void textbuf_i64(struct textbuf *t, long long v);

#endif
