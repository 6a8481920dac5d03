/*
 * ktls.h — handing an mTLS connection to kernel TLS.
 *
 * After the TLS 1.3 handshake between two meshim ends (they agree on it in
 * the handshake: tls/tls_ktls.c), the traffic keys go into the real TCP
 * socket (TCP_ULP "tls", SOL_TLS TLS_TX and TLS_RX) and that socket is put
 * on the application's descriptor: from then on the kernel encrypts the
 * application's own write() and decrypts its own read(), and the shim is
 * out of the data path. The rules both ends keep after the hand-off,
 * because the kernel's receive side (Linux 6.1) takes nothing but data
 * records when the application reads without asking for control messages:
 *
 *   - no post-handshake message: the server's session tickets are sent
 *     before its hand-off, and the client reads all of them before its
 *     own; neither end sends KeyUpdate;
 *   - no close_notify: the stream ends with TCP's FIN (a relayed end whose
 *     peer agreed ends the same way, and takes FIN as the end);
 *   - AES-GCM (128 or 256) or ChaCha20-Poly1305, the ciphers the kernel
 *     is given; ChaCha20-Poly1305 is offered first where the kernel's AES
 *     is not accelerated (meshim/kcipher.h).
 *
 * A connection that cannot be handed off is relayed as before, with the
 * reason in its access-log line.
 */
#ifndef MESHIM_KTLS_H
#define MESHIM_KTLS_H

#include <stdbool.h>
#include <stddef.h>

#include "mesh/conn.h"
#include "meshim/stats.h"
#include "tls/tls.h"

/* Does this process offer kernel TLS? [tls] ktls = auto, and the kernel
 * takes AES-GCM keys on a TCP socket (tried once, on a loopback pair). */
bool ktls_offered(void);
/* Why not: NULL when it is offered. */
const char *ktls_unavailable(void);
/* Does the kernel take the keys, whatever [tls] ktls says (tried once). */
bool ktls_kernel(void);
/* For tls_identity_get: TLS_KERNEL_KEYS when the kernel takes the keys,
 * and TLS_KERNEL_CHACHA_FIRST when kernel TLS is offered and the kernel
 * runs ChaCha20-Poly1305 faster than its AES (tried once). */
unsigned ktls_kernel_flags(void);

/* Installs the connection's current traffic keys on socket fd.
 *  1  the kernel has them: OpenSSL must never touch fd again;
 *  0  nothing changed (why): relay with OpenSSL;
 * -1  the socket is half set up and unusable (why): close it. */
int ktls_install(int fd, SSL *ssl, char *why, size_t len);

/* After an authenticated handshake (client: after tls_ktls_settle): the
 * keys to the kernel when both ends agreed and it takes them. 1: done, the
 * SSL must never touch sock again; 0: relay it (why; the SSL is set back
 * for the relay); -1: the socket is unusable (logged). */
int ktls_take(struct conn *c, SSL *ssl, int sock, char *why, size_t len);

/* The application's descriptor fd now holds a kernel TLS socket: FIONREAD
 * is answered by ktls_inq for it, and its records are counted.
 *
 * AES-GCM takes about 2^24.5 full records under one key (RFC 8446 §5.5),
 * and Linux 6.1 cannot change the keys of a kernel TLS socket (KeyUpdate
 * is a post-handshake message). So every KTLS_CHECK_SECONDS the engine
 * reads each socket's record numbers (SOL_TLS TLS_TX/TLS_RX, rec_seq);
 * one at or past the limit, 2^24 for AES-GCM unless
 * MESHIM_KTLS_RECORD_LIMIT says fewer, is shut down both ways with a
 * warning: the application sees the connection end, as when a peer closes,
 * and a new one has new keys. The margin (2^24.5 - 2^24, 7 million
 * records) outlasts the check period at any rate a software kernel TLS
 * reaches (over 20 GB/s). ChaCha20-Poly1305 has no such limit (its record
 * number would wrap first): its sockets are only looked at. */
#define KTLS_CHECK_SECONDS 5
void ktls_mark(int fd);

/* FIONREAD for a socket ktls_mark'ed: the plaintext a read() returns now
 * without blocking (at most one record's worth; 0 while a record is still
 * arriving), where the kernel would count the ciphertext in the TCP queue,
 * a partial record included, and a program that trusts "more than 0" (wrk)
 * would read EAGAIN and take it for an error. The ioctl's own value when
 * fd is no longer kernel TLS. */
int ktls_inq(int fd, int *avail);

/* How the connection goes on, for its access-log line and the counters. */
void ktls_record(struct conn *c, enum stats_direction d, bool ktls, const char *why);

#endif
