/*
 * config_text.h — for unit tests that load a config from text: the text
 * goes into a temporary INI file that MESHIM_CONFIG names (the only variable
 * the loader is shown), is loaded, and the file removed. Include after
 * cmocka.h.
 */
#ifndef MESHIM_TEST_CONFIG_TEXT_H
#define MESHIM_TEST_CONFIG_TEXT_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meshim/config.h"

static char config_text_path[64];

static const char *config_text_getenv(const char *name)
{
    return strcmp(name, "MESHIM_CONFIG") == 0 ? config_text_path : NULL;
}

/* Loads text; NULL with *errors on failure. */
static struct mesh_config *load(const char *text, char **errors)
{
    strcpy(config_text_path, "/tmp/meshim-unit-XXXXXX");
    int fd = mkstemp(config_text_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct config_source src = { config_text_getenv, false, NULL };
    enum on_error on_error;
    struct mesh_config *cfg = config_load(&src, errors, &on_error);
    unlink(config_text_path);
    return cfg;
}

#endif
