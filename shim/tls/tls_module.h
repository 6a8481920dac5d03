/*
 * tls_module.h — the TLS module's one exported object.
 *
 * tls.c and a static OpenSSL form a shared object of their own, carried
 * inside libmeshim.so as bytes (tls_image.S) and loaded only when this
 * process first needs its TLS identity (tls_loader.c). A program that makes
 * no mTLS connection then never maps OpenSSL nor pays for relocating it
 * (≈ 1.5 ms at every start on these machines, against a 1 ms budget).
 *
 * The module exports nothing but `meshim_tls_module`: its OpenSSL binds to
 * itself, never to a program's own OpenSSL, and the other way round.
 */
#ifndef MESHIM_TLS_MODULE_H
#define MESHIM_TLS_MODULE_H

#include "observe/log.h"
#include "tls/tls.h"

/* Bumped when the table changes; the library and its module are built
 * together, so a mismatch means a broken build. */
#define TLS_MODULE_ABI 7

typedef void tls_log_fn(enum log_level level, const char *fmt, ...);

/* A server identity's session store memory (TLS_STORE_BYTES): the one
 * tls_store_reserve made, to the first identity that asks, else new;
 * NULL when it cannot be mapped. */
#define TLS_STORE_BYTES (1u << 20)
typedef void *tls_store_memory_fn(void);

/* Whether the process is out of descriptors right now (ownfd_shortage:
 * the module calls no hooked libc function itself). */
typedef bool tls_shortage_fn(void);

struct tls_module {
    unsigned abi;
    /* The library's logger, for the module's lines; the store's memory;
     * the descriptor probe. */
    void (*attach)(tls_log_fn *log, tls_store_memory_fn *store_memory, tls_shortage_fn *shortage);
#define TLS_CALL(type, name, params, args) type (*name) params;
#define TLS_VOID(name, params, args) void (*name) params;
#define TLS_LOADS TLS_CALL
#include "tls/tls.def"
#undef TLS_CALL
#undef TLS_VOID
#undef TLS_LOADS
};

#define TLS_MODULE_SYMBOL "meshim_tls_module"

#endif
