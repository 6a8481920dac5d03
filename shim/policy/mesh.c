/*
 * mesh.c — the mesh in force in this process (include/meshim/mesh.h): the
 * published registry and the config loader that start-up and reloads share.
 */
#include "meshim/mesh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

/* The registry, and through reg->cfg the config it points into: both live
 * as long as the process (a reload publishes new ones, see mesh_publish). */
struct registry *mesh_registry_ptr;

#define MAX_ENV 32
static char *env_saved[MAX_ENV];
static size_t n_env;

#define CONFIG_VAR "MESHIM_CONFIG="

/* "MESHIM_CONFIG=<cwd>/<relative>", or a plain copy of e. */
static char *saved_copy(const char *e)
{
    size_t n = sizeof CONFIG_VAR - 1;
    char cwd[4096];
    if (strncmp(e, CONFIG_VAR, n) != 0 || !e[n] || e[n] == '/' || !getcwd(cwd, sizeof cwd))
        return strdup(e);
    size_t len = n + strlen(cwd) + 1 + strlen(e + n) + 1;
    char *abs = malloc(len);
    if (abs)
        snprintf(abs, len, "%s%s/%s", CONFIG_VAR, cwd, e + n);
    return abs;
}

void mesh_env_snapshot(void)
{
    for (char **e = environ; *e && n_env < MAX_ENV; e++)
        if (strncmp(*e, "MESHIM_", 7) == 0 && (env_saved[n_env] = saved_copy(*e)))
            n_env++;
}

static const char *env_lookup(const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(env_saved[i], name, len) == 0 && env_saved[i][len] == '=')
            return env_saved[i] + len + 1;
    return NULL;
}

const char *mesh_env(const char *name)
{
    return getauxval(AT_SECURE) ? NULL : env_lookup(name);
}

size_t mesh_env_all(char *const **vars)
{
    *vars = env_saved;
    return getauxval(AT_SECURE) ? 0 : n_env;
}

struct mesh_config *mesh_load_config(char **errors, enum on_error *on_error)
{
    struct config_source src = {
        .getenv = env_lookup,
        .secure = getauxval(AT_SECURE) != 0,
        .default_file = MESHIM_DEFAULT_CONFIG,
    };
    return config_load(&src, errors, on_error);
}

void mesh_publish(struct registry *reg)
{
    /* The registry replaced is left as it is: another thread may be in
     * the middle of a look-up in it. It is small (the index of one config)
     * and only a changed config file makes one. */
    __atomic_store_n(&mesh_registry_ptr, reg, __ATOMIC_RELEASE);
}
