/*
 * fuzz_config.c — libFuzzer: the INI file and the environment (config_load).
 * The first byte picks what the rest is: an INI file (even), or the value of
 * MESHIM_SERVICES with a small valid file (odd).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meshim/config.h"

static char path[64];
static char *services;

static const char *fake_getenv(const char *name)
{
    if (strcmp(name, "MESHIM_CONFIG") == 0)
        return path;
    if (strcmp(name, "MESHIM_SERVICES") == 0)
        return services;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    snprintf(path, sizeof(path), "/tmp/meshim-fuzz-%d.ini", (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f)
        return 0;
    bool env = data[0] & 1;
    if (env) {
        fputs("[service:seed]\nendpoints = 127.0.0.1:1\n", f);
        services = strndup((const char *)data + 1, size - 1);
    } else {
        fwrite(data + 1, 1, size - 1, f);
        services = NULL;
    }
    fclose(f);
    struct config_source src = { fake_getenv, false, "/nonexistent/meshim.ini" };
    char *errors = NULL;
    enum on_error on_error;
    struct mesh_config *cfg = config_load(&src, &errors, &on_error);
    config_free(cfg);
    free(errors);
    free(services);
    unlink(path);
    return 0;
}
