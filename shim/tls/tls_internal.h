/*
 * tls_internal.h — what the TLS module's files share and the library
 * never sees (it has no OpenSSL types).
 */
#ifndef MESHIM_TLS_INTERNAL_H
#define MESHIM_TLS_INTERNAL_H

#include <stdbool.h>

#include <openssl/ssl.h>

/* The module's OpenSSL library context (tls.c). */
OSSL_LIB_CTX *tls_libctx(void);

/* tls_ktls.c: once, from the module's initialisation; then the extension
 * on each new SSL_CTX, and with kernel_tls the keylog callback. */
void tls_ktls_init(void);
void tls_ktls_setup(SSL_CTX *ctx, bool kernel_tls);

/* tls_store.c: a server identity's sessions shared with the processes it
 * forks; once, then on each new server SSL_CTX (NULL: not shared). */
struct tls_store;
void tls_store_init(void);
/* tls_module.c: a store's memory (TLS_STORE_BYTES) from the library: the
 * one reserved at start, once, else new; NULL when it cannot be mapped. */
void *tls_store_memory(void);
/* Whether the process is out of descriptors right now (tls_module.c:
 * the library's ownfd_shortage). */
bool tls_fd_shortage(void);
struct tls_store *tls_store_attach(SSL_CTX *server);
/* Server, reading a ClientHello: is session id known, made under a suite
 * of that hash, so that OpenSSL will resume it? (tls_store.c) */
bool tls_store_resumes(SSL *ssl, const unsigned char *id, size_t id_len, int hash);
void tls_store_free(struct tls_store *st);

#endif
