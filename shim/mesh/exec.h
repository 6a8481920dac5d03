/*
 * exec.h — an exec that passes on a listening socket keeps the mesh.
 *
 * The descriptors an exec does not close go to the new image, listening
 * sockets included: nginx's binary upgrade (SIGUSR2) runs the new binary
 * with the old master's listeners, and inetd-style supervisors do the
 * same. The new image is the same server going on, and must load the
 * shim with the same config: without it, an [inbound:PORT] port is
 * served in the clear where the config says mTLS, and the service names
 * nginx.conf names do not resolve (the new master does not start).
 * Programs often exec with an environment of their own making (nginx
 * passes only what nginx.conf's `env` names), so the exec hooks run the
 * exec through exec_run: with a TCP listener inherited, the environment
 * given gets LD_PRELOAD (the one this process started with, or this
 * library appended to the one given) and the MESHIM_ variables this
 * process started with, where it lacks them (policy/execenv.c writes it).
 * Otherwise it goes as given.
 *
 * posix_spawn is the same exec, run by glibc in a child where no hook
 * sees it, so the rule runs in the parent, on the environment given: a
 * listener the child inherits is one without FD_CLOEXEC, or one the file
 * actions dup2 (noted as posix_spawn_file_actions_adddup2 adds it).
 *
 * Never in a set-uid or set-gid process: its environment is its
 * caller's. Safe in a vfork child, which shares its parent's memory:
 * nothing is allocated (the new environment is on the stack) and the
 * descriptors are read with raw getdents64.
 */
#ifndef MESHIM_EXEC_H
#define MESHIM_EXEC_H

#include <spawn.h>
#include <sys/types.h>

/* Which exec call it is; every exec function is one of these with an
 * environment (execv and execvp: the program's environ). */
enum exec_form {
    EXEC_PATH,      /* execve(path, argv, envp) */
    EXEC_SEARCH,    /* execvpe(path, argv, envp): path searched in PATH */
    EXEC_FD,        /* fexecve(fd, argv, envp) */
    EXEC_AT,        /* execveat(fd, path, argv, envp, flags) */
    EXEC_SPAWN,     /* posix_spawn(pid, path, actions, attr, argv, envp) */
    EXEC_SPAWNP,    /* posix_spawnp: path searched in PATH */
};

struct exec_call {
    enum exec_form form;
    const char *path;
    char *const *argv;
    int fd;
    int flags;
    pid_t *pid;                                 /* the spawns' */
    const posix_spawn_file_actions_t *actions;
    const posix_spawnattr_t *attr;
};

/* The library's own path and LD_PRELOAD as the process started, kept
 * for later execs (the constructor calls it once: a vfork child must not
 * call dladdr, and the program may have changed its environment since). */
void exec_init(void);

/* Runs the exec with envp, or with envp and the mesh put back (above).
 * An exec returns only when it fails: -1 and its errno; a spawn returns
 * 0 or an error number, as posix_spawn does. */
int exec_run(const struct exec_call *call, char *const envp[]);

/* posix_spawn_file_actions_adddup2(actions, fd, ...) was added: notes
 * whether it hands on a TCP listener. */
void exec_spawn_dup(const posix_spawn_file_actions_t *actions, int fd);
/* The file actions are made anew or destroyed: nothing noted stays. */
void exec_spawn_forget(const posix_spawn_file_actions_t *actions);

#endif
