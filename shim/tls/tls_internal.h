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
 * and the keylog callback on each new SSL_CTX. */
void tls_ktls_init(void);
void tls_ktls_setup(SSL_CTX *ctx);

#endif
