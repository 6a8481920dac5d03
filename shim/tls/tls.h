/*
 * tls.h — this workload's TLS identity and the OpenSSL side of a handshake.
 *
 * OpenSSL is linked into the library with hidden symbols and runs in a
 * library context of its own (OSSL_LIB_CTX), initialised on first use
 * without the atexit handler and without reading openssl.cnf: the
 * program's own OpenSSL, if it has one, and its configuration are never
 * touched.
 *
 * The identity ([tls] cert, key, ca, min_version) is built into two SSL_CTX
 * (client and server) once, published by pointer and replaced when one of
 * its files changes (the watcher calls tls_check_files every
 * reload_interval): new handshakes take the new one, connections already
 * open keep the one they started with (each holds a reference).
 *
 * Client sessions are kept per destination (address, port, SNI) so that the
 * next connection there resumes.
 */
#ifndef MESHIM_TLS_H
#define MESHIM_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "meshim/config.h"

typedef struct ssl_st SSL;
struct tls_identity;

/* The TLS module's file beside the library, which the library opens first
 * (tls_loader.c; make, make install, the .deb, the image and `meshim
 * install` put it there). TLS_MODULE_ID is the build's tls_module_id.h. */
#define TLS_MODULE_BESIDE "libmeshim-tls-" TLS_MODULE_ID ".so"

/* Why a handshake or a check failed, for the warning line. */
#define TLS_WHY_MAX 512

/* What the kernel offers kernel TLS (mesh/ktls.h: ktls_kernel_flags). */
#define TLS_KERNEL_KEYS 1u          /* it takes TLS keys: handshakes keep their traffic secrets */
#define TLS_KERNEL_CHACHA_FIRST 2u  /* its AES is not accelerated and it takes ChaCha20-Poly1305
                                       (meshim/kcipher.h): the client offers that suite first */

/* The current identity with a reference, loading it on first use; NULL
 * (and why) when it cannot be loaded. kernel: TLS_KERNEL_ flags; only the
 * first call's count (they are the kernel's, the same for the whole
 * process). */
struct tls_identity *tls_identity_get(const struct mesh_config *cfg, unsigned kernel, char *why, size_t len);
void tls_identity_put(struct tls_identity *id);

/* Is the identity's certificate still valid (not expired)? false with
 * why; peers refuse an expired one. */
bool tls_identity_current(const struct tls_identity *id, char *why, size_t len);

/* Watcher thread: reloads the identity when one of its files changed. */
void tls_check_files(const struct mesh_config *cfg);

/* What `meshim check` says of the identity in files f: loaded as the shim
 * loads it (false, and the same message in why, when it cannot be), then
 * what peers will see of it. The command links the module's objects; the
 * library never calls it (it is not in tls.def). */
struct tls_identity_facts {
    char name[256];             /* first URI SAN, else DNS SAN; "" when none */
    char serial[64];
    long long not_before, not_after;    /* Unix seconds */
    char untrusted[160];        /* "": the trust bundle verifies the cert; else why not */
};
struct tls_files;
bool tls_identity_facts(const struct mesh_config *cfg, const struct tls_files *f,
                        struct tls_identity_facts *out, char *why, size_t len);

/* A new client SSL on socket fd to dest ("address:port", the session
 * cache's key), sending sni (NULL or "": none). NULL on failure. */
SSL *tls_client_new(struct tls_identity *id, int fd, const char *dest, const char *sni);
/* A new server SSL on socket fd. */
SSL *tls_server_new(struct tls_identity *id, int fd);

/* One handshake step. Returns 1 done, 0 wants more (*want_write: for
 * POLLOUT, else POLLIN), -1 failed (why set). */
int tls_handshake(SSL *ssl, bool *want_write, char *why, size_t len);

/* After a handshake: does the peer's certificate name match? Outbound:
 * `identity` (NULL or "": any). Inbound: one of the `allow` globs (none:
 * any). The peer's name (first URI SAN, else DNS SAN) goes to name. */
bool tls_peer_check(SSL *ssl, const char *const *patterns, size_t n, char *name, size_t name_len,
                    char *why, size_t len);

/* `[tls] resumption = psk-only`: this connection may resume a session
 * without a key exchange, when the other end allows it too. Called before
 * the handshake. */
void tls_allow_psk_only(SSL *ssl);

/* Did this handshake resume a session, and with a key exchange? */
enum tls_resumption { TLS_NEW_SESSION, TLS_RESUMED, TLS_RESUMED_PSK_ONLY };
enum tls_resumption tls_resumed(SSL *ssl);
/* The protocol in use ("TLSv1.3"). */
const char *tls_version(SSL *ssl);

/* What an I/O step on an open connection came to. */
enum tls_io {
    TLS_IO_DONE,        /* bytes moved (*n of them), or close_notify sent */
    TLS_IO_WANT_READ,   /* try again when the socket is readable */
    TLS_IO_WANT_WRITE,  /* try again when the socket is writable */
    TLS_IO_CLOSED,      /* read: the peer's close_notify */
    TLS_IO_FAILED,      /* the peer's FIN without close_notify: the end of a peer
                           that crashed, as TCP shows it, or a truncation */
    TLS_IO_RESET,       /* the connection was reset (or timed out), or a record or
                           alert broke it: the application should see an error */
};
enum tls_io tls_read(SSL *ssl, void *data, size_t len, size_t *n);
enum tls_io tls_write(SSL *ssl, const void *data, size_t len, size_t *n);
/* True when OpenSSL holds bytes it read from the socket but has not yet
 * returned (read-ahead is on): read again before waiting for the socket. */
bool tls_pending(SSL *ssl);
/* Sends close_notify (the write side's end; reading goes on). */
enum tls_io tls_close_notify(SSL *ssl);

/* Ends a connection's TLS: close_notify when possible (so the session
 * stays resumable), then frees. */
void tls_free(SSL *ssl, bool send_close_notify);

/* ---------------------------------------------------------- kernel TLS --
 *
 * After a TLS 1.3 handshake between two meshim ends, the connection can go
 * on in the kernel (mesh/ktls.h installs the keys). tls_ktls_want, before
 * the handshake, says this end would (the client offers, the server
 * accepts); it also makes OpenSSL read no byte past the handshake's. */
bool tls_ktls_want(SSL *ssl);
/* After the handshake: both ends agreed, TLS 1.3, nothing in the way. */
bool tls_ktls_agreed(SSL *ssl);
/* Client, after the handshake: reads the session tickets the server said
 * it sends. 1: all read and nothing else buffered, or no hand-off was
 * agreed (nothing to wait for); 0: wait (*want_write: POLLOUT, else
 * POLLIN); -1: no hand-off, relay it (why); -2: the connection failed. */
int tls_ktls_settle(SSL *ssl, bool *want_write, char *why, size_t len);
/* Both ends agreed (whether or not either handed off): the stream ends with
 * FIN alone, never close_notify, which a kernel-TLS peer could not read. */
bool tls_ktls_quiet(SSL *ssl);
/* The connection stays with OpenSSL (relayed): back to read-ahead, and the
 * secrets kept for the hand-off are wiped. */
void tls_ktls_forget(SSL *ssl);

/* One direction's key, its 12-byte IV (for AES-GCM the salt, then the
 * explicit part) and the sequence number of the next record. */
struct tls_ktls_dir {
    unsigned char key[32], iv[12];
    unsigned long long seq;
};
struct tls_ktls_keys {
    int cipher;                 /* TLS_CIPHER_AES_GCM_128, _256 or _CHACHA20_POLY1305 (linux/tls.h) */
    unsigned key_len;           /* 16 or 32 */
    struct tls_ktls_dir tx, rx;
};
/* The traffic keys as they stand now; false (why) when they cannot be
 * given (no agreement, a cipher the kernel is not given, bytes pending).
 * The caller wipes them. */
bool tls_ktls_keys(SSL *ssl, struct tls_ktls_keys *keys, char *why, size_t len);

/* For the bench and the tests: handshakes and how many were resumed. */
void tls_counts(unsigned long *handshakes, unsigned long *resumed);

/* A server's TLS sessions are shared by the processes forked from the one
 * that made their store (tls_store.c). A process that serves mTLS makes
 * that store's memory at start, before it forks (nginx's master, which no
 * longer loads the identity itself: hook/process.c), and the first identity
 * loaded in it or in any process it forks takes it. Shared anonymous
 * memory, reserved and not touched: no resident cost until sessions come.
 * In the library, not the module: the reservation needs no OpenSSL. */
void tls_store_reserve(void);

/* fork(): the loader's lock (the library's, taken once the engine is
 * paused: it may be the thread that loads) ... */
void tls_loader_atfork_prepare(void);
void tls_loader_atfork_parent(void);
void tls_loader_atfork_child(void);
/* ... and the session cache's (the module's). */
void tls_atfork_prepare(void);
void tls_atfork_parent(void);
void tls_atfork_child(void);

#endif
