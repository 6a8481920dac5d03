/*
 * exec.c — an exec that passes on a listening socket keeps the mesh
 * (see exec.h).
 */
#include "mesh/exec.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libc/real.h"
#include "meshim/execenv.h"
#include "meshim/mesh.h"
#include "observe/files.h"
#include "observe/log.h"

/* Beyond these the environment goes as given (and a warning says so): the
 * new one is built on the caller's stack, which may be a thread's. */
#define SLOTS_MAX 8192
#define BYTES_MAX (64u * 1024)
/* getdents64 batches of /proc/self/fd: about 200 descriptors each. */
#define FD_READS (1u << 16)

static char lib_path[PATH_MAX];
static char own_preload[4096];      /* LD_PRELOAD as this process started; "": unset or too long */

/* No system call when LD_PRELOAD named the library by its full path (the
 * usual case): dladdr reads the loader's list of objects. */
void exec_init(void)
{
    /* A set-uid or set-gid process's environment is its caller's: never
     * put its LD_PRELOAD into an exec that may run with the privileges. */
    if (getauxval(AT_SECURE))
        return;
    const char *own = getenv("LD_PRELOAD");
    if (own && strlen(own) < sizeof(own_preload))
        memcpy(own_preload, own, strlen(own) + 1);
    Dl_info info;
    if (!dladdr((void *)exec_init, &info) || !info.dli_fname)
        return;
    if (info.dli_fname[0] == '/' && strlen(info.dli_fname) < sizeof(lib_path))
        memcpy(lib_path, info.dli_fname, strlen(info.dli_fname) + 1);
    else if (!realpath(info.dli_fname, lib_path))
        lib_path[0] = '\0';
}

/* The listener a new image gets: the first one with an [inbound:PORT]
 * section, else the first one. */
struct listener {
    uint16_t port;          /* a TCP listener's port; 0: none found */
    bool inbound;           /* port has an [inbound:PORT] section */
};

struct scan {
    const struct registry *reg;
    int dirfd;
    struct listener found;
};

static uint16_t local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (real_getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* One system call for most descriptors: not a socket, or not listening. */
static bool listening(int fd)
{
    int on = 0;
    socklen_t len = sizeof(on);
    return real_getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/* Notes a listener the new image gets (its port, and whether that has an
 * [inbound:PORT] section, which wins): false once that is found. */
static bool note_listener(struct listener *l, uint16_t port, bool inbound)
{
    if (port && !l->inbound && (inbound || !l->port)) {
        l->port = port;
        l->inbound = inbound;
    }
    return !l->inbound;
}

/* files_each_name's step: a TCP listening socket the exec passes on (no
 * FD_CLOEXEC); stops at one whose port has an [inbound:PORT] section. */
static bool find_listener(int dirfd, const char *name, void *arg)
{
    struct scan *s = arg;
    char *end;
    long fd = strtol(name, &end, 10);
    if (*name < '0' || *name > '9' || *end || fd == dirfd || fd > INT_MAX)
        return true;
    if (!listening((int)fd))
        return true;
    int flags = real_fcntl((int)fd, F_GETFD, NULL);
    if (flags < 0 || (flags & FD_CLOEXEC))
        return true;
    uint16_t port = local_port((int)fd);
    return note_listener(&s->found, port, port && registry_inbound(s->reg, port));
}

/* The TCP listeners the exec passes on: s->found.port 0 when none. */
static void passed_listener(struct scan *s)
{
    s->reg = mesh_registry();
    if (!s->reg)
        return;
    s->dirfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0)
        return;
    files_each_name(s->dirfd, FD_READS, find_listener, s);
    real_close(s->dirfd);
}

/* ------------------------------------------------------ posix_spawn -- */

/* File actions whose dup2 hands on a TCP listener, as adddup2 added it.
 * Slots are claimed and freed by compare-and-swap: spawns may run in
 * several threads at once, and a fork child must find no lock held. A
 * program keeps a few file actions at a time (made, filled, spawned,
 * destroyed); beyond SPAWN_DUPS at once a new note is not kept, and a
 * warning says so. */
#define SPAWN_DUPS 16

static struct spawn_dup {
    const posix_spawn_file_actions_t *actions;  /* atomic; NULL: a free slot */
    struct listener found;
} spawn_dups[SPAWN_DUPS];

static struct spawn_dup *spawn_dup_of(const posix_spawn_file_actions_t *actions)
{
    for (size_t i = 0; i < SPAWN_DUPS; i++)
        if (__atomic_load_n(&spawn_dups[i].actions, __ATOMIC_ACQUIRE) == actions)
            return &spawn_dups[i];
    return NULL;
}

void exec_spawn_dup(const posix_spawn_file_actions_t *actions, int fd)
{
    struct registry *reg = mesh_registry();
    if (!reg || !lib_path[0] || !listening(fd))
        return;
    uint16_t port = local_port(fd);
    bool inbound = port && registry_inbound(reg, port);
    struct spawn_dup *d = spawn_dup_of(actions);
    for (size_t i = 0; !d && i < SPAWN_DUPS; i++) {
        const posix_spawn_file_actions_t *none = NULL;
        if (__atomic_compare_exchange_n(&spawn_dups[i].actions, &none, actions, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            d = &spawn_dups[i];
            d->found = (struct listener){ 0 };
        }
    }
    if (!d) {
        log_warn("posix_spawn: more than %d file actions hand on a listener: the mesh may not "
                 "follow port %u into the program spawned with them", SPAWN_DUPS, (unsigned)port);
        return;
    }
    note_listener(&d->found, port, inbound);
}

void exec_spawn_forget(const posix_spawn_file_actions_t *actions)
{
    struct spawn_dup *d;
    while ((d = spawn_dup_of(actions))) {
        const posix_spawn_file_actions_t *expected = actions;   /* a failed exchange writes it */
        __atomic_compare_exchange_n(&d->actions, &expected, NULL, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED);
    }
}

/* The listener the spawn's file actions hand on, if any. */
static void dup_listener(struct scan *s, const struct exec_call *call)
{
    if (!call->actions)             /* only a spawn has file actions */
        return;
    struct spawn_dup *d = spawn_dup_of(call->actions);
    if (d)
        note_listener(&s->found, d->found.port, d->found.inbound);
}

/* ------------------------------------------------------------- the run -- */

static int exec_with(const struct exec_call *call, char *const envp[])
{
    switch (call->form) {
    case EXEC_SPAWN:
        return real_posix_spawn(call->pid, call->path, call->actions, call->attr, call->argv, envp);
    case EXEC_SPAWNP:
        return real_posix_spawnp(call->pid, call->path, call->actions, call->attr, call->argv, envp);
    case EXEC_SEARCH:
        return real_execvpe(call->path, call->argv, envp);
    case EXEC_FD:
        return real_fexecve(call->fd, call->argv, envp);
    case EXEC_AT:
        return real_execveat(call->fd, call->path, call->argv, envp, call->flags);
    case EXEC_PATH:
    default:
        return real_execve(call->path, call->argv, envp);
    }
}

static const char *call_name(const struct exec_call *call)
{
    return call->path && *call->path ? call->path : "the program";
}

static const char *call_verb(const struct exec_call *call)
{
    return call->form == EXEC_SPAWN || call->form == EXEC_SPAWNP ? "posix_spawn" : "exec";
}

int exec_run(const struct exec_call *call, char *const envp[])
{
    int saved_errno = errno;
    struct scan s = { 0 };
    if (lib_path[0]) {
        passed_listener(&s);
        if (!s.found.inbound)
            dup_listener(&s, call);
    }
    errno = saved_errno;
    if (!s.found.port)
        return exec_with(call, envp);
    char what[64];
    snprintf(what, sizeof(what),
             s.found.inbound ? "the listener of [inbound:%u]" : "a listening socket (port %u)",
             (unsigned)s.found.port);
    char *const *vars;
    size_t n_vars = mesh_env_all(&vars);
    size_t slots = execenv_slots(envp, n_vars), bytes = execenv_bytes(envp, lib_path, own_preload);
    if (slots > SLOTS_MAX || bytes > BYTES_MAX) {
        log_warn("%s of %s: it inherits %s, but its environment is too large to add LD_PRELOAD to: "
                 "it may serve the port without the mesh", call_verb(call), call_name(call), what);
        return exec_with(call, envp);
    }
    char *env[slots];
    char buf[bytes];
    if (execenv_build(envp, lib_path, own_preload, vars, n_vars, env, buf, bytes) == 0)
        return exec_with(call, envp);
    log_info("%s of %s: it inherits %s, so it gets the mesh: LD_PRELOAD and the MESHIM_ variables "
             "its environment lacked are added", call_verb(call), call_name(call), what);
    errno = saved_errno;
    return exec_with(call, env);
}
