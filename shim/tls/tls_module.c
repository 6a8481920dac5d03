/*
 * tls_module.c — the TLS module's side of tls_module.h: the table of its
 * functions, and the log lines of tls.c handed to the library's logger (one
 * log: same file, same rate limit, same format as every other line).
 */
#include "tls/tls_module.h"

#include <stdarg.h>
#include <stdio.h>

static tls_log_fn *host_log;
static tls_take_store_fn *host_take_store;

static void attach(tls_log_fn *log, tls_take_store_fn *take_store)
{
    host_log = log;
    host_take_store = take_store;
}

/* tls_store.c: the memory reserved at start, once. */
void *tls_reserved_store(void)
{
    return host_take_store ? host_take_store() : NULL;
}

/* tls.c's log_info()/log_error() land here. */
void mlog(enum log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (host_log)
        host_log(level, "%s", msg);
}

__attribute__((visibility("default"))) const struct tls_module meshim_tls_module = {
    .abi = TLS_MODULE_ABI,
    .attach = attach,
#define TLS_CALL(type, name, params, args) .name = name,
#define TLS_VOID(name, params, args) .name = name,
#define TLS_LOADS TLS_CALL
#include "tls/tls.def"
};
