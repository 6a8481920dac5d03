/*
 * util.c — addresses, time, randomness and name comparison (see util.h).
 */
#include "meshim/util.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static bool parse_port(const char *s, uint16_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || v == 0 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

bool netaddr_parse(const char *text, bool allow_port, struct netaddr *out)
{
    char buf[INET6_ADDRSTRLEN + 16];
    const char *host = text, *port = NULL;

    memset(out, 0, sizeof(*out));
    if (strlen(text) >= sizeof(buf))
        return false;
    strcpy(buf, text);
    if (buf[0] == '[') {                        /* [v6]:port or [v6] */
        char *close = strchr(buf, ']');
        if (!close)
            return false;
        *close = '\0';
        host = buf + 1;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return false;
    } else {
        char *colon = strchr(buf, ':');
        host = buf;
        if (colon && !strchr(colon + 1, ':')) { /* exactly one colon: v4:port */
            *colon = '\0';
            port = colon + 1;
        }
    }
    if (port) {
        if (!allow_port || !parse_port(port, &out->port))
            return false;
    }
    if (inet_pton(AF_INET, host, &out->ip.v4) == 1) {
        out->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, host, &out->ip.v6) == 1) {
        out->family = AF_INET6;
        if (IN6_IS_ADDR_V4MAPPED(&out->ip.v6)) {
            struct in_addr v4;
            memcpy(&v4, &out->ip.v6.s6_addr[12], 4);
            out->family = AF_INET;
            out->ip.v4 = v4;
        }
        return true;
    }
    return false;
}

void netaddr_format(const struct netaddr *a, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    inet_ntop(a->family, &a->ip, ip, sizeof(ip));
    if (a->port == 0)
        snprintf(buf, len, "%s", ip);
    else if (a->family == AF_INET6)
        snprintf(buf, len, "[%s]:%u", ip, a->port);
    else
        snprintf(buf, len, "%s:%u", ip, a->port);
}

bool netaddr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct netaddr *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out->family = AF_INET;
        out->port = ntohs(in->sin_port);
        out->ip.v4 = in->sin_addr;
        return true;
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        out->port = ntohs(in6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            out->family = AF_INET;
            memcpy(&out->ip.v4, &in6->sin6_addr.s6_addr[12], 4);
        } else {
            out->family = AF_INET6;
            out->ip.v6 = in6->sin6_addr;
        }
        return true;
    }
    return false;
}

socklen_t netaddr_to_sockaddr(const struct netaddr *a, uint16_t port, int family,
                              struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        if (a->family != AF_INET)
            return 0;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        in->sin_addr = a->ip.v4;
        return sizeof(*in);
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        if (a->family == AF_INET6) {
            in6->sin6_addr = a->ip.v6;
        } else {
            in6->sin6_addr.s6_addr[10] = 0xff;
            in6->sin6_addr.s6_addr[11] = 0xff;
            memcpy(&in6->sin6_addr.s6_addr[12], &a->ip.v4, 4);
        }
        return sizeof(*in6);
    }
    return 0;
}

bool netaddr_same_ip(const struct netaddr *a, const struct netaddr *b)
{
    if (a->family != b->family)
        return false;
    if (a->family == AF_INET)
        return a->ip.v4.s_addr == b->ip.v4.s_addr;
    return memcmp(&a->ip.v6, &b->ip.v6, sizeof(a->ip.v6)) == 0;
}

void text_copy(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void rng_seed(uint64_t *s)
{
    uint64_t v = 0;
    /* GRND_NONBLOCK: never stall a program started early in boot. */
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
        v = now_ns() ^ ((uint64_t)getpid() << 32);
    *s = v ? v : 0x9E3779B97F4A7C15ULL;
}

uint64_t rng_below(uint64_t *s, uint64_t bound)
{
    return rng_next(s) % bound;   /* bias is < bound / 2^64: negligible here */
}

/* Generation bumped in the fork child, so that parent and child do not draw
 * the same "random" endpoints. */
static unsigned rng_generation = 1;
static __thread uint64_t rng_state __attribute__((tls_model("initial-exec")));
static __thread unsigned rng_state_gen __attribute__((tls_model("initial-exec")));

uint64_t *rng_thread(void)
{
    unsigned gen = __atomic_load_n(&rng_generation, __ATOMIC_RELAXED);
    if (rng_state_gen != gen) {
        rng_seed(&rng_state);
        rng_state_gen = gen;
    }
    return &rng_state;
}

void rng_fork_child(void)
{
    __atomic_add_fetch(&rng_generation, 1, __ATOMIC_RELAXED);
}

uint64_t proc_start_ticks(int pid)
{
    char path[64], buf[1024];
    if (pid)
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    else
        snprintf(path, sizeof(path), "/proc/self/stat");
    /* Raw system calls: the library calls this, and the close hook must not
     * see its descriptor. */
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = syscall(SYS_read, fd, buf, sizeof(buf) - 1);
    syscall(SYS_close, fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: fields
     * are counted from the last ')', which a space and field 3 follow. */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p++;
    for (int field = 3; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

uint64_t hash_fnv1a_bytes(uint64_t h, const void *p, size_t n)
{
    for (const unsigned char *b = p; n--; b++)
        h = (h ^ *b) * 0x100000001b3ULL;
    return h;
}

uint64_t hash_fnv1a(const char *s)
{
    return hash_fnv1a_bytes(HASH_FNV1A_INIT, s, strlen(s));
}

struct file_id file_id_of(const char *path)
{
    struct stat st;
    if (!path || stat(path, &st) < 0)
        return (struct file_id){ .exists = false };
    return (struct file_id){ true, st.st_dev, st.st_ino, st.st_size, st.st_mtim };
}

enum dir_trust dir_trust_of(const struct stat *st)
{
    if (st->st_uid != 0 && st->st_uid != geteuid())
        return DIR_NOT_OURS;
    if (!(st->st_mode & S_IWOTH))
        return DIR_TRUSTED;
    return st->st_mode & S_ISVTX ? DIR_TRUSTED_STICKY : DIR_OPEN;
}

const char *file_untrusted(const struct stat *st, char *buf, size_t len)
{
    if (st->st_uid != 0 && st->st_uid != geteuid())
        snprintf(buf, len, "owned by uid %u, neither this user (%u) nor root", (unsigned)st->st_uid,
                 (unsigned)geteuid());
    else if (st->st_mode & S_IWOTH)
        snprintf(buf, len, "anyone may write to it (chmod o-w)");
    else
        return NULL;
    return buf;
}

bool file_id_same(const struct file_id *a, const struct file_id *b)
{
    if (a->exists != b->exists)
        return false;
    return !a->exists || (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
                          a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec);
}

static size_t name_len(const char *s)
{
    size_t n = strlen(s);
    return (n > 1 && s[n - 1] == '.') ? n - 1 : n;
}

int ascii_ncasecmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)ascii_lower(a[i]), y = (unsigned char)ascii_lower(b[i]);
        if (x != y || !x)
            return x - y;
    }
    return 0;
}

int ascii_casecmp(const char *a, const char *b)
{
    return ascii_ncasecmp(a, b, SIZE_MAX);
}

bool dns_name_equal(const char *a, const char *b)
{
    size_t la = name_len(a), lb = name_len(b);
    return la == lb && ascii_ncasecmp(a, b, la) == 0;
}

bool dns_name_has_suffix(const char *name, const char *suffix)
{
    size_t ln = name_len(name), ls = name_len(suffix);
    return ln > ls && ascii_ncasecmp(name + ln - ls, suffix, ls) == 0;
}

size_t json_string(char *buf, size_t len, const char *s)
{
    /* Byte by byte, never through printf: the access log and every span
     * exported pass each of their strings through here. */
    static const char HEX[] = "0123456789abcdef";
    size_t n = 0;
    if (len < 3)
        return 0;
    buf[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        size_t k = *p == '"' || *p == '\\' ? 2 : *p < 0x20 ? 6 : 1;
        if (n + k + 2 > len)
            return 0;
        if (k == 1) {
            buf[n++] = (char)*p;
        } else if (k == 2) {
            buf[n++] = '\\';
            buf[n++] = (char)*p;
        } else {
            memcpy(buf + n, "\\u00", 4);
            buf[n + 4] = HEX[*p >> 4];
            buf[n + 5] = HEX[*p & 15];
            n += 6;
        }
    }
    buf[n++] = '"';
    buf[n] = '\0';
    return n;
}

void textbuf_put(struct textbuf *t, const char *fmt, ...)
{
    if (t->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->used, t->len - t->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= t->len - t->used)
        t->full = true;
    else
        t->used += (size_t)n;
}

void textbuf_json(struct textbuf *t, const char *s)
{
    size_t n = t->full ? 0 : json_string(t->buf + t->used, t->len - t->used, s);
    if (n)
        t->used += n;
    else
        t->full = true;
}

void textbuf_mem(struct textbuf *t, const char *s, size_t n)
{
    if (t->full)
        return;
    if (n >= t->len - t->used) {
        t->full = true;
        return;
    }
    memcpy(t->buf + t->used, s, n);
    t->used += n;
    t->buf[t->used] = '\0';
}

void textbuf_str(struct textbuf *t, const char *s)
{
    textbuf_mem(t, s, strlen(s));
}

void textbuf_u64(struct textbuf *t, unsigned long long v)
{
    /* Two digits a division: a span's two times are 19 digits each. */
    static const char PAIRS[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";
    char digits[20];
    size_t i = sizeof(digits);
    while (v >= 100) {
        unsigned k = (unsigned)(v % 100) * 2;
        v /= 100;
        digits[--i] = PAIRS[k + 1];
        digits[--i] = PAIRS[k];
    }
    if (v >= 10) {
        digits[--i] = PAIRS[v * 2 + 1];
        digits[--i] = PAIRS[v * 2];
    } else {
        digits[--i] = (char)('0' + v);
    }
    textbuf_mem(t, digits + i, sizeof(digits) - i);
}

void textbuf_i64(struct textbuf *t, long long v)
{
    if (v < 0) {
        textbuf_mem(t, "-", 1);
        textbuf_u64(t, 0ull - (unsigned long long)v);
    } else {
        textbuf_u64(t, (unsigned long long)v);
    }
}
