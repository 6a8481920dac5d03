/*
 * mesh.h — the mesh in force in this process: the registry every thread
 * reads, and how a config is loaded (with the environment as it was at
 * start).
 *
 * mesh_registry() is NULL while the shim is inert: before the constructor
 * ran, with no config, with MESHIM_DISABLE=1, or after an invalid config
 * with on_error = passthrough. Hooks then pass straight through.
 *
 * The one piece of mutable process state in the policy layer: a pointer
 * published with release and read with acquire. A published registry is
 * never freed (a thread may still be reading it; see mesh_publish).
 */
#ifndef MESHIM_MESH_H
#define MESHIM_MESH_H

#include "meshim/config.h"
#include "meshim/registry.h"

extern struct registry *mesh_registry_ptr;

static inline struct registry *mesh_registry(void)
{
    return __atomic_load_n(&mesh_registry_ptr, __ATOMIC_ACQUIRE);
}

/* Every thread sees reg from now on (start-up, then each reload). */
void mesh_publish(struct registry *reg);

/* Keeps the MESHIM_* variables as they are now (the constructor calls it
 * once): a reload reads the file again, but not an environment the program
 * may have changed since, nor one another thread is changing. A relative
 * MESHIM_CONFIG is kept made absolute against the working directory of
 * now: a program that changes directory still reloads the same file. */
void mesh_env_snapshot(void);

/* A MESHIM_* variable as it was at start; NULL when unset, and always in a
 * set-uid or set-gid process (whose environment is not believed). */
const char *mesh_env(const char *name);

/* All the MESHIM_* variables kept at start, as "NAME=value" (*vars);
 * none in a set-uid or set-gid process. Returns how many. */
size_t mesh_env_all(char *const **vars);

/* The config from the file and the environment kept at start (SPEC §2.1);
 * NULL with *errors set when it is invalid. */
struct mesh_config *mesh_load_config(char **errors, enum on_error *on_error);

#endif
