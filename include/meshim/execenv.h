/*
 * execenv.h — the environment an exec passes on, with the mesh put back
 * into it.
 *
 * A program that execs while it holds a listening socket (nginx's binary
 * upgrade: the new master inherits the listeners) often hands the new
 * image an environment of its own making: nginx passes only what
 * nginx.conf's `env` directives name. The new image would then serve an
 * [inbound:PORT] port without the shim, in the clear where the config
 * says mTLS. mesh/exec.c decides when that is the case;
 * this module only writes the environment: LD_PRELOAD made to name the
 * library, and each MESHIM_ variable the process started with put back
 * where the given environment lacks it. A variable the caller set is
 * never replaced (LD_PRELOAD is appended to, not replaced).
 *
 * Plain functions over strings. No allocation: the caller gives the room
 * (mesh/exec.c gives it on the stack, as an exec in a vfork child must).
 */
#ifndef MESHIM_EXECENV_H
#define MESHIM_EXECENV_H

#include <stdbool.h>
#include <stddef.h>

/* Whether an LD_PRELOAD value (entries split by ':' or ' ', as the
 * dynamic loader reads them) names a file called as `lib`'s last path
 * component (so "libmeshim.so" and "/usr/lib/meshim/libmeshim.so" are the
 * same library to it). */
bool execenv_preloads(const char *value, const char *lib);

/* The pointers (the closing NULL included) and the bytes execenv_build
 * needs at most for envp (NULL: an empty environment), `lib`, `own` and
 * n_saved saved variables. */
size_t execenv_slots(char *const envp[], size_t n_saved);
size_t execenv_bytes(char *const envp[], const char *lib, const char *own);

/* Writes into out (execenv_slots pointers) envp's strings with LD_PRELOAD
 * made to name `lib`, then each of saved[] ("NAME=value") whose NAME envp
 * does not set. Where envp has no LD_PRELOAD, the one added holds `own`
 * (the value this process started with, so that a preload it needs
 * first, such as a sanitizer's runtime, comes along) when `own` names
 * `lib`, else `lib` alone; where envp's LD_PRELOAD does not name `lib`,
 * ":lib" is appended to it. A string it makes goes into buf
 * (execenv_bytes long). Returns how many variables it added or changed
 * (0: out holds envp as it was). */
size_t execenv_build(char *const envp[], const char *lib, const char *own, char *const saved[],
                     size_t n_saved, char **out, char *buf, size_t buf_len);

#endif
