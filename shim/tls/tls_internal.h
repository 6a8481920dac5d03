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
/* tls_module.c: the library's reserved store memory (TLS_STORE_BYTES), or
 * NULL when there is none or it is taken. */
void *tls_reserved_store(void);
struct tls_store *tls_store_attach(SSL_CTX *server);
void tls_store_free(struct tls_store *st);

#endif
