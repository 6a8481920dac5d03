/*
 * tls_module.c — the TLS module's side of tls_module.h: the table of its
 * functions, and the log lines of tls.c handed to the library's logger (one
 * log: same file, same rate limit, same format as every other line).
 */
#include "tls/tls_module.h"

#include <stdarg.h>
#include <stdio.h>

static tls_log_fn *host_log;
static tls_store_memory_fn *host_store_memory;
static tls_shortage_fn *host_shortage;

static void attach(tls_log_fn *log, tls_store_memory_fn *store_memory, tls_shortage_fn *shortage)
{
    host_log = log;
    host_store_memory = store_memory;
    host_shortage = shortage;
}

/* tls.c: a failed identity load of a process out of descriptors. */
bool tls_fd_shortage(void)
{
    return host_shortage && host_shortage();
}

/* tls_store.c: the library maps it (tls_loader.c). */
void *tls_store_memory(void)
{
    return host_store_memory ? host_store_memory() : NULL;
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
