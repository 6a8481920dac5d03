/*
 * process.c — the shim's entry points other than the hooks: the constructor
 * (start-up in each process), the fork handlers and the destructor.
 *
 * The constructor reads the config (SPEC §2.1). An invalid config stops the
 * program at start with status 78, or with on_error = passthrough leaves the
 * shim inert; both after printing every problem. Symbols are not bound here
 * (libc/real.c binds lazily), so nothing in this file depends on load order.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/health.h"
#include "engine/otlp.h"
#include "engine/placeholder.h"
#include "engine/watch.h"
#include "hook/process.h"
#include "libc/ownfd.h"
#include "libc/real.h"
#include "libc/sigdefer.h"
#include "libc/stdio_exit.h"
#include "mesh/conn.h"
#include "mesh/dial.h"
#include "mesh/exec.h"
#include "mesh/fdtable.h"
#include "mesh/http.h"
#include "mesh/ktls.h"
#include "mesh/mtls.h"
#include "mesh/relay.h"
#include "mesh/termsig.h"
#include "mesh/threadtrace.h"
#include "mesh/udp.h"
#include "meshim/mesh.h"
#include "observe/accesslog.h"
#include "observe/log.h"
#include "observe/metrics.h"
#include "observe/sharedfile.h"
#include "tls/tls.h"

/* A line of print_errors: to MESHIM_LOG_FILE when it names a file (the
 * config's log_file is not known: the config is what failed), and to
 * stderr as well when the program is about to exit, so that its user sees
 * why; otherwise stderr. */
static void error_line(const char *line, size_t len, bool exiting)
{
    const char *file = mesh_env("MESHIM_LOG_FILE");
    bool to_file = file && file[0] == '/';
    bool in_file = to_file && log_write_line(file, line, len);  /* else it went to stderr */
    if (!to_file || (exiting && in_file))
        log_write_line(NULL, line, len);
}

/* Before the log is configured: one line each. */
static void print_errors(const char *errors, const char *outcome, bool exiting)
{
    char line[1200];
    for (const char *p = errors; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        int n = snprintf(line, sizeof(line), "meshim[%d]: error: %.*s\n", (int)getpid(), (int)len, p);
        error_line(line, (size_t)(n < (int)sizeof(line) ? n : (int)sizeof(line) - 1), exiting);
        p += len + (nl ? 1 : 0);
    }
    int n = snprintf(line, sizeof(line), "meshim[%d]: error: invalid config: %s\n", (int)getpid(), outcome);
    error_line(line, (size_t)n, exiting);
}

static bool serves_tls(const struct mesh_config *cfg)
{
    for (size_t i = 0; i < cfg->n_inbound; i++)
        if (cfg->inbound[i].tls != INBOUND_OFF)
            return true;
    return false;
}

static bool uses_tls(const struct mesh_config *cfg)
{
    for (size_t i = 0; i < cfg->n_services; i++)
        if (cfg->services[i].tls == TLS_MTLS)
            return true;
    return serves_tls(cfg);
}

/* ---------------------------------------------------------- privileges -- */

/* A root process may drop its privileges and then make or take
 * connections (nginx's workers and Apache's children set their user to
 * nobody or www-data): a root-only key is then out of their reach, and so
 * is a log in a folder only root may write to. Such a process reads its
 * identity (under mTLS) and opens its access log and log_file (when they
 * are files) just before its first call that may lose the files (setuid
 * and the others, setgroups, chroot: hooks.def), and keeps them. Not at
 * start: every root process of a container, a shell and each command it
 * runs, paid 10 ms and 5 MB for OpenSSL and the key, most for nothing. Any
 * process that drops nothing reads the identity when a connection first
 * needs it, and opens a log at its first line.
 *
 * privileges_owed_by is the pid that owes this (0: none): a fork child
 * takes the debt over (atfork_child); a vfork child, whose memory is its
 * parent's and which is about to exec, is another pid and does nothing. */
static pid_t privileges_owed_by;
static pthread_mutex_t privileges_lock = PTHREAD_MUTEX_INITIALIZER;

void process_before_privileges(void)
{
    if (!__atomic_load_n(&privileges_owed_by, __ATOMIC_ACQUIRE))
        return;
    int saved = errno;
    /* Under the lock: another thread's setuid would change this one's
     * user too (glibc applies it to every thread) while it reads. */
    pthread_mutex_lock(&privileges_lock);
    if (__atomic_load_n(&privileges_owed_by, __ATOMIC_ACQUIRE) == getpid()) {
        struct registry *reg = mesh_registry();
        char why[TLS_WHY_MAX];
        if (reg && geteuid() == 0) {
            if (uses_tls(reg->cfg))
                tls_identity_put(tls_identity_get(reg->cfg, ktls_kernel_flags(), why, sizeof(why)));
            access_open_now();
            log_open_now();
        }
        __atomic_store_n(&privileges_owed_by, 0, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&privileges_lock);
    errno = saved;
}

/* A set*id call that changes nothing (setgid(getgid()), setuid(getuid())
 * as root: programs that were given set-uid bits drop them so at start)
 * takes nothing away: it pays nothing. -1 leaves an id as it is. */
void process_before_ids(bool group, unsigned real, unsigned effective, unsigned saved)
{
    if (!__atomic_load_n(&privileges_owed_by, __ATOMIC_ACQUIRE))
        return;                     /* nothing owed: not even the ids are asked */
    unsigned now[3];
    int rc = group ? getresgid(&now[0], &now[1], &now[2]) : getresuid(&now[0], &now[1], &now[2]);
    unsigned want[3] = { real, effective, saved };
    for (int i = 0; rc == 0 && i < 3; i++)
        if (want[i] != (unsigned)-1 && want[i] != now[i])
            rc = -1;
    if (rc != 0)
        process_before_privileges();
}

static void atfork_prepare(void)
{
    struct registry *reg = mesh_registry();
    hooks_bind();           /* the child must not dlsym half-way through */
    /* First the background threads, until each is between two pieces of
     * work (they take the locks below while they work); then the order
     * locks nest in at run time: swap, epoll sets, the watcher, services,
     * descriptor table, engine queue, thread-traced connections, the
     * descriptor limit. */
    engine_atfork_pause();
    watch_atfork_pause();
    tls_loader_atfork_prepare();    /* a load under way ends first (it takes none below) */
    placeholder_atfork_prepare();
    watch_atfork_prepare();
    if (reg)
        registry_lock_all(reg);
    fdtable_atfork_prepare();
    tls_atfork_prepare();
    engine_atfork_prepare();
    threadtrace_atfork_prepare();
    conn_atfork_prepare();      /* leaves: taken while the others are held */
    ownfd_atfork_prepare();
}

static void atfork_parent(void)
{
    struct registry *reg = mesh_registry();
    ownfd_atfork_parent();
    conn_atfork_parent();
    relay_atfork_parent();
    threadtrace_atfork_parent();
    engine_atfork_parent();
    tls_atfork_parent();
    fdtable_atfork_parent();
    if (reg)
        registry_unlock_all(reg);
    watch_atfork_parent();
    placeholder_atfork_parent();
    tls_loader_atfork_parent();
}

static void atfork_child(void)
{
    struct registry *reg = mesh_registry();
    pthread_mutex_init(&privileges_lock, NULL);
    if (privileges_owed_by)
        privileges_owed_by = getpid();  /* nginx's worker, before its setuid */
    threadtrace_atfork_child();
    engine_atfork_child();
    dial_atfork_child();
    relay_atfork_child();
    udp_atfork_child();
    termsig_atfork_child();
    sigdefer_atfork_child();
    http_atfork_child();
    otlp_atfork_child();
    tls_loader_atfork_child();
    tls_atfork_child();
    fdtable_atfork_child();
    conn_atfork_child();    /* its inherited connections are the parent's to log */
    access_atfork_child();
    log_atfork_child();
    if (reg)
        registry_reinit_locks(reg);
    watch_atfork_child();
    placeholder_atfork_child();
    ownfd_atfork_child();
    rng_fork_child();       /* the child draws its own endpoints */
    metrics_atfork_child(); /* and counts into a stats file of its own */
    shared_atfork_child();  /* the host's table stays mapped: it is the child's too */
}

/* A relative MESHIM_CONFIG means the directory the program started in: its
 * children get the path made absolute, as `meshim run -c` gives it, so that
 * one started elsewhere (a script's cd, a daemon's chdir("/") before an
 * exec) reads the same file rather than failing to start. */
static void config_path_for_children(void)
{
    const char *given = getenv("MESHIM_CONFIG");
    const char *kept = mesh_env("MESHIM_CONFIG");
    if (given && *given && *given != '/' && kept && *kept == '/')
        setenv("MESHIM_CONFIG", kept, 1);
}

/* gRPC's C core (gRPC for Python, Ruby, PHP and C++) resolves names with
 * a DNS client of its own (c-ares) unless told otherwise: it asks the name
 * server directly, which does not know the mesh's names ("DNS resolution
 * failed for orders:50051"). Its "native" resolver asks the C library,
 * which the shim answers. What that one does not do, SRV and TXT lookups
 * (grpclb, a service config in DNS), a mesh name has no records for
 * anyway; a user who needs them for other names sets the variable to
 * "ares", and a choice the user made is kept. gRPC
 * reads the variable when it starts, so this process and its children get
 * it; Go reads its environment before any of this runs (meshim PROGRAM
 * sets GODEBUG for it instead). */
static void grpc_resolver_native(void)
{
    if (!getenv("GRPC_DNS_RESOLVER"))
        setenv("GRPC_DNS_RESOLVER", "native", 0);
}

__attribute__((constructor(101))) static void mesh_init(void)
{
    mesh_env_snapshot();
    config_path_for_children();
    char *errors = NULL;
    enum on_error on_error;
    struct mesh_config *cfg = mesh_load_config(&errors, &on_error);
    if (!cfg) {
        if (on_error == ON_ERROR_PASSTHROUGH) {
            print_errors(errors, "mesh features are off, everything passes through", false);
            free(errors);
            return;
        }
        print_errors(errors, "exiting with status 78 (set on_error = passthrough to run unmeshed)", true);
        free(errors);
        _exit(MESHIM_EXIT_CONFIG);
    }
    if (!cfg->active) {
        config_free(cfg);
        return;     /* nothing configured: inert */
    }
    log_configure(cfg->log_level, cfg->log_file);
    access_configure(cfg->access_log);

    struct registry *reg = registry_build(cfg, NULL, rng_thread());
    if (!reg) {
        log_error("out of memory building the service registry; mesh features are off");
        config_free(cfg);
        return;
    }
    watch_init(reg);        /* endpoints files are read now, DNS when first used */
    health_use_tls(mtls_client, mtls_identity_ready);   /* http checks of tls = mtls services */
    grpc_resolver_native();
    if ((uses_tls(cfg) || access_to_file() || log_to_file()) && geteuid() == 0)
        privileges_owed_by = getpid();  /* see process_before_privileges */
    if (serves_tls(cfg))
        tls_store_reserve();            /* the sessions its forks will share */
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    exec_init();            /* the library's path, for an exec that passes on a listener */
    mesh_publish(reg);
    log_debug("%zu services from %s", reg->n_services, cfg->file ? cfg->file : "the environment");
}

/* At exit the relays send what the application wrote (bounded), the
 * connections still open end: their access-log lines are written now (the
 * kernel closes their descriptors without a hook); then the stats file
 * goes. */
__attribute__((destructor)) static void mesh_exit(void)
{
    if (mesh_registry()) {
        stdio_exit_flush(relay_carries);    /* what exit() would flush after this, into ended relays */
        relay_keep();       /* relays a fork child may still use go on in a keeper process */
        mesh_exit_flush();  /* what the application wrote on relayed and http connections goes out */
        otlp_exit(OTLP_EXIT_MS);
        conn_exit();
        metrics_exit();
    }
}
