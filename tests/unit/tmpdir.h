/*
 * tmpdir.h — for cmocka tests that work in files: a fresh folder `base`
 * per test (tmpdir_setup) and the folder gone after it (tmpdir_teardown),
 * whatever the test left in it. Included by one test file each.
 */
#ifndef MESHIM_TEST_TMPDIR_H
#define MESHIM_TEST_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

static char base[64];

static int tmpdir_setup(void **state)
{
    (void)state;
    snprintf(base, sizeof(base), "/tmp/meshim-unit.XXXXXX");
    return mkdtemp(base) ? 0 : -1;
}

static int tmpdir_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    return system(cmd);
}

#endif
