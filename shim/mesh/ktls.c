/*
 * ktls.c — the kernel's side of a kernel-TLS hand-off (see ktls.h).
 */
#include "mesh/ktls.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/tls.h>

#include "engine/engine.h"
#include "libc/real.h"
#include "meshim/kcipher.h"
#include "meshim/util.h"
#include "mesh/fdtable.h"
#include "meshim/mesh.h"
#include "observe/log.h"
#include "observe/metrics.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif

/* One direction's keys in the kernel's layout. For AES-GCM the 12-byte IV
 * is split as the kernel wants it: 4 bytes of salt, then 8; ChaCha20-
 * Poly1305 takes it whole. The union is the largest of the structures; the
 * kernel is told which one it is, and answers only a buffer of that one's
 * size (cipher_size). */
union crypto_info {
    struct tls_crypto_info info;
    struct tls12_crypto_info_aes_gcm_128 gcm128;
    struct tls12_crypto_info_aes_gcm_256 gcm256;
    struct tls12_crypto_info_chacha20_poly1305 chacha;
};

static socklen_t cipher_size(int cipher)
{
    switch (cipher) {
    case TLS_CIPHER_AES_GCM_128:
        return sizeof(struct tls12_crypto_info_aes_gcm_128);
    case TLS_CIPHER_AES_GCM_256:
        return sizeof(struct tls12_crypto_info_aes_gcm_256);
    case TLS_CIPHER_CHACHA20_POLY1305:
        return sizeof(struct tls12_crypto_info_chacha20_poly1305);
    default:
        return 0;
    }
}

/* Where a direction's record sequence number sits in ci (of ci's cipher). */
static unsigned char *rec_seq_of(union crypto_info *ci)
{
    switch (ci->info.cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
        return ci->gcm128.rec_seq;
    case TLS_CIPHER_AES_GCM_256:
        return ci->gcm256.rec_seq;
    default:
        return ci->chacha.rec_seq;
    }
}

static socklen_t crypto_info(union crypto_info *ci, const struct tls_ktls_keys *k,
                             const struct tls_ktls_dir *d)
{
    unsigned char seq[8];
    for (int i = 0; i < 8; i++)
        seq[i] = (unsigned char)(d->seq >> (56 - 8 * i));
    memset(ci, 0, sizeof(*ci));
    ci->info.version = TLS_1_3_VERSION;
    ci->info.cipher_type = (uint16_t)k->cipher;
    switch (k->cipher) {
    case TLS_CIPHER_AES_GCM_128:
        memcpy(ci->gcm128.salt, d->iv, 4);
        memcpy(ci->gcm128.iv, d->iv + 4, 8);
        memcpy(ci->gcm128.key, d->key, 16);
        break;
    case TLS_CIPHER_AES_GCM_256:
        memcpy(ci->gcm256.salt, d->iv, 4);
        memcpy(ci->gcm256.iv, d->iv + 4, 8);
        memcpy(ci->gcm256.key, d->key, 32);
        break;
    case TLS_CIPHER_CHACHA20_POLY1305:
        memcpy(ci->chacha.iv, d->iv, 12);
        memcpy(ci->chacha.key, d->key, 32);
        break;
    default:
        return 0;
    }
    memcpy(rec_seq_of(ci), seq, 8);
    return cipher_size(k->cipher);
}

static void wipe(void *p, size_t len)
{
    volatile unsigned char *v = p;
    while (len--)
        *v++ = 0;
}

/* ---------------------------------------------------------------- probe -- */

/* Does socket fd, established, take TLS 1.3 keys of this cipher in both
 * directions? (Zero keys: the socket is thrown away.) */
static bool takes_keys(int fd, int cipher)
{
    if (real_setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) < 0)
        return false;
    struct tls_ktls_keys k = { .cipher = cipher };
    union crypto_info ci;
    socklen_t n = crypto_info(&ci, &k, &k.tx);
    return real_setsockopt(fd, SOL_TLS, TLS_TX, &ci, n) == 0 && real_setsockopt(fd, SOL_TLS, TLS_RX, &ci, n) == 0;
}

/* Can the tls upper layer be had at all? Yes when the kernel lists it as
 * registered; when it does not, setsockopt(TCP_ULP) loads its module only
 * for a process with CAP_NET_ADMIN. Otherwise the probe's answer is known
 * without its loopback connection (a dozen system calls, and a socket in
 * TIME_WAIT for a minute, at the first connection of every mTLS process on
 * most hosts). What cannot be read says maybe. */
static bool tls_ulp_possible(void)
{
    char text[256];
    int fd = open("/proc/sys/net/ipv4/tcp_available_ulp", O_RDONLY | O_CLOEXEC | O_NOCTTY);
    ssize_t n = fd >= 0 ? real_read(fd, text, sizeof(text) - 1) : -1;
    if (fd >= 0)
        real_close(fd);
    if (n < 0)
        return true;
    text[n] = '\0';
    if (kcipher_ulp_listed(text, "tls"))
        return true;
    struct __user_cap_header_struct head = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3];
    if (real_syscall4(SYS_capget, &head, caps, 0, 0) < 0 || (caps[0].effective & (1u << CAP_NET_ADMIN)))
        return true;
    log_debug("kernel TLS: not offered, the kernel has no tls ULP (tcp_available_ulp: %.*s) and this "
              "process cannot have its module loaded", (int)strcspn(text, "\n"), text);
    return false;
}

/* The probe's loopback pair, closed without TIME_WAIT: nothing was sent. */
static void close_probe_socket(int fd)
{
    struct linger reset = { .l_onoff = 1, .l_linger = 0 };
    real_setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    real_close(fd);
}

/* Does the kernel take TLS 1.3 AES-GCM keys? And ChaCha20-Poly1305 keys
 * (*chacha)? Asked of the two ends of a connected loopback pair (the ULP
 * needs an established socket), one cipher each; loading the tls module
 * and the ciphers', where the kernel autoloads, happens here too. */
static bool kernel_takes_keys(bool *chacha)
{
    *chacha = false;
    if (!tls_ulp_possible())
        return false;
    int lfd = real_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int c = -1, s = -1;
    bool ok = false;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || real_listen(lfd, 1) < 0 ||
        real_getsockname(lfd, (struct sockaddr *)&a, &alen) < 0)
        goto out;
    c = real_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0 || real_connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
        goto out;
    s = real_accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ok = s >= 0 && takes_keys(c, TLS_CIPHER_AES_GCM_128);
    if (ok)
        *chacha = takes_keys(s, TLS_CIPHER_CHACHA20_POLY1305);
out:
    if (!ok)
        log_debug("kernel TLS: not offered, the kernel does not take the keys (%s)", strerror(errno));
    if (s >= 0)
        close_probe_socket(s);
    if (c >= 0)
        close_probe_socket(c);
    if (lfd >= 0)
        real_close(lfd);
    return ok;
}

/* /proc/crypto's text (MESHIM_KTLS_PROC_CRYPTO names another file, for the
 * tests): does it list an accelerated AES (meshim/kcipher.h)? A file that
 * cannot be read says yes: AES-GCM stays first, as where nothing is known. */
static bool kernel_aes_accelerated(void)
{
    const char *path = secure_getenv("MESHIM_KTLS_PROC_CRYPTO");
    enum { CAP = 256 * 1024 };          /* a big x86 machine lists about 60 KiB */
    FILE *f = fopen(path && *path ? path : "/proc/crypto", "re");
    char *text = f ? malloc(CAP) : NULL;
    size_t len = text ? fread(text, 1, CAP - 1, f) : 0;
    bool fast = !text || ferror(f);
    if (!fast) {
        text[len] = '\0';
        fast = kcipher_aes_accelerated(text);
    }
    free(text);
    if (f)
        fclose(f);
    return fast;
}

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static bool kernel_ok, chacha_first;

static void probe(void)
{
    int saved = errno;
    bool chacha;
    kernel_ok = kernel_takes_keys(&chacha);
    chacha_first = kernel_ok && chacha && !kernel_aes_accelerated();
    if (kernel_ok)
        log_debug("kernel TLS: the kernel takes the keys; %s first",
                  chacha_first ? "ChaCha20-Poly1305 (its AES is not accelerated)" : "AES-GCM");
    errno = saved;
}

bool ktls_kernel(void)
{
    pthread_once(&probe_once, probe);
    return kernel_ok;
}

unsigned ktls_kernel_flags(void)
{
    if (!ktls_kernel())
        return 0;
    return TLS_KERNEL_KEYS | (chacha_first && mesh_registry()->cfg->tls_ktls ? TLS_KERNEL_CHACHA_FIRST : 0);
}

const char *ktls_unavailable(void)
{
    if (!mesh_registry()->cfg->tls_ktls)
        return "[tls] ktls = off";
    return ktls_kernel() ? NULL : "this kernel does not take TLS keys (no tls ULP or no AES-GCM)";
}

bool ktls_offered(void)
{
    return ktls_unavailable() == NULL;
}

/* -------------------------------------------------------------- install -- */

int ktls_take(struct conn *c, SSL *ssl, int sock, char *why, size_t len)
{
    const char *off = ktls_unavailable();
    int rc = 0;
    if (off)
        snprintf(why, len, "%s", off);
    else if (!tls_ktls_agreed(ssl))
        snprintf(why, len, "the peer did not agree (not meshim, or its ktls = off)");
    else
        rc = ktls_install(sock, ssl, why, len);
    if (rc == 0)
        tls_ktls_forget(ssl);
    else if (rc < 0)
        log_warn("%s: kernel TLS: %s; the connection is closed", c->svc ? c->svc->name : "inbound", why);
    return rc;
}

void ktls_record(struct conn *c, enum stats_direction d, bool ktls, const char *why)
{
    c->tls = ktls ? CONN_TLS_KTLS : CONN_TLS_RELAY;
    snprintf(c->tls_why, sizeof(c->tls_why), "%s", ktls || !why ? "" : why);
    metrics_tls_continued(d, ktls);
}

/* ---------------------------------------------------------- record limit -- */

/* The records one key may protect here: 2^24 for AES-GCM, below its
 * 2^24.5 (RFC 8446 §5.5); no limit for ChaCha20-Poly1305, whose record
 * number would wrap first (ibid.). MESHIM_KTLS_RECORD_LIMIT sets fewer,
 * for any cipher (the tests). */
static uint64_t record_limit(int cipher)
{
    static uint64_t set;        /* MESHIM_KTLS_RECORD_LIMIT's; UINT64_MAX: none */
    if (!set) {
        const char *v = secure_getenv("MESHIM_KTLS_RECORD_LIMIT");
        char *end;
        unsigned long long n = v ? strtoull(v, &end, 10) : 0;
        set = n > 0 && n < (1ull << 24) && *end == '\0' ? n : UINT64_MAX;
    }
    if (set != UINT64_MAX)
        return set;
    return cipher == TLS_CIPHER_CHACHA20_POLY1305 ? UINT64_MAX : 1ull << 24;
}

/* The next record number of one direction of a kernel TLS socket, and its
 * cipher; false when fd is not one (closed, reused). The kernel hands back
 * the keys too: they are wiped at once. */
static bool record_seq(int fd, int dir, uint64_t *seq, int *cipher)
{
    union crypto_info ci;
    /* The kernel answers only a buffer of its cipher's exact size (else
     * EINVAL): the cipher first, from the bare header. */
    socklen_t n = sizeof(ci.info);
    if (real_getsockopt(fd, SOL_TLS, dir, &ci, &n) < 0)
        return false;
    n = cipher_size(ci.info.cipher_type);
    if (!n || real_getsockopt(fd, SOL_TLS, dir, &ci, &n) < 0)
        return false;
    *cipher = ci.info.cipher_type;
    const unsigned char *s = rec_seq_of(&ci);
    *seq = 0;
    for (int i = 0; i < 8; i++)
        *seq = *seq << 8 | s[i];
    wipe(&ci, sizeof(ci));
    return true;
}

static bool past_limit(int fd, uint64_t *records)
{
    uint64_t tx = 0, rx = 0;
    int cipher;
    /* A suite without a limit (ChaCha20-Poly1305) needs no second read. */
    if (!record_seq(fd, TLS_TX, &tx, &cipher) || record_limit(cipher) == UINT64_MAX ||
        !record_seq(fd, TLS_RX, &rx, &cipher))
        return false;
    *records = tx > rx ? tx : rx;
    return *records >= record_limit(cipher);
}

static void check_socket(int fd)
{
    uint64_t records;
    int saved = errno;
    if (!past_limit(fd, &records)) {
        errno = saved;
        return;
    }
    /* The number may be closed and reused between two calls: a copy holds
     * the socket that is looked at again and shut down. */
    int own = real_fcntl(fd, F_DUPFD_CLOEXEC, (void *)0L);
    if (own >= 0 && past_limit(own, &records)) {
        shutdown(own, SHUT_RDWR);
        log_warn("kernel TLS: descriptor %d ended after %llu records under one key (AES-GCM's limit "
                 "is 2^24.5 and this kernel cannot change keys); a new connection has new keys",
                 fd, (unsigned long long)records);
    }
    if (own >= 0)
        real_close(own);
    errno = saved;
}

static struct engine_timer limit_timer;
static struct engine_task limit_start;
static pid_t limit_pid;         /* the process whose engine has the timer */

static void limit_check(struct engine_timer *t)
{
    fdtable_each_kind(FD_KTLS, check_socket);
    engine_timer_set(t, now_ns() + KTLS_CHECK_SECONDS * 1000000000ull);
}

static void limit_arm(struct engine_task *t)
{
    (void)t;
    limit_timer.fire = limit_check;
    engine_timer_set(&limit_timer, now_ns() + KTLS_CHECK_SECONDS * 1000000000ull);
}

void ktls_mark(int fd)
{
    fdtable_set_kind(fd, FD_KTLS);
    /* The first kernel TLS socket of a process (a child after fork: its
     * engine is new) starts the check. */
    pid_t me = getpid(), was = __atomic_load_n(&limit_pid, __ATOMIC_ACQUIRE);
    if (was != me && __atomic_compare_exchange_n(&limit_pid, &was, me, false, __ATOMIC_ACQ_REL,
                                                 __ATOMIC_ACQUIRE)) {
        limit_start.run = limit_arm;
        engine_post(&limit_start);
    }
}

int ktls_inq(int fd, int *avail)
{
    /* Peeking makes the kernel decrypt the next record (kept for the
     * read); a record is at most 16 KiB of plaintext. The descriptor may
     * have been replaced behind the table's back (dup2 by the raw system
     * call): only a socket whose ULP is tls is answered this way. */
    char ulp[8] = "";
    socklen_t n = sizeof(ulp);
    int saved = errno;
    if (real_getsockopt(fd, IPPROTO_TCP, TCP_ULP, ulp, &n) < 0 || strcmp(ulp, "tls") != 0) {
        errno = saved;
        return real_ioctl(fd, FIONREAD, avail);
    }
    char buf[16384];
    ssize_t got = real_recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return real_ioctl(fd, FIONREAD, avail);     /* the read will say what is wrong */
    *avail = got < 0 ? 0 : (int)got;
    errno = saved;
    return 0;
}

int ktls_install(int fd, SSL *ssl, char *why, size_t len)
{
    struct tls_ktls_keys k;
    if (!tls_ktls_keys(ssl, &k, why, len))
        return 0;
    int rc = 0;
    union crypto_info ci;
    if (real_setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) < 0) {
        /* The ULP needs an established socket: a peer that closed right
         * after its handshake (a probe connection) leaves CLOSE_WAIT. */
        if (errno == ENOTCONN)
            snprintf(why, len, "the peer closed before the hand-off");
        else
            snprintf(why, len, "the kernel has no tls ULP (%s)", strerror(errno));
        goto out;
    }
    /* With the ULP on and no key in place the socket still carries
     * OpenSSL's records untouched: a refused TX key leaves a relay possible. */
    socklen_t n = crypto_info(&ci, &k, &k.tx);
    if (real_setsockopt(fd, SOL_TLS, TLS_TX, &ci, n) < 0) {
        snprintf(why, len, "the kernel refused the sending key (%s)", strerror(errno));
        goto out;
    }
    rc = -1;
    n = crypto_info(&ci, &k, &k.rx);
    if (real_setsockopt(fd, SOL_TLS, TLS_RX, &ci, n) < 0) {
        snprintf(why, len, "the kernel refused the receiving key (%s)", strerror(errno));
        goto out;
    }
#ifdef TLS_RX_EXPECT_NO_PAD
    /* OpenSSL never pads records: the kernel may decrypt in place. */
    int one = 1;
    real_setsockopt(fd, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one, sizeof(one));
#endif
    rc = 1;
out:
    wipe(&ci, sizeof(ci));
    wipe(&k, sizeof(k));
    return rc;
}
