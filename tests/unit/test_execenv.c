/*
 * test_execenv.c — the environment an exec passes on when the new image
 * inherits a meshed listener: LD_PRELOAD made to name the library, the
 * MESHIM_ variables put back where missing, and nothing the caller set
 * replaced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "meshim/execenv.h"

#define LIB "/usr/lib/meshim/libmeshim.so"

static char *saved[] = { "MESHIM_CONFIG=/etc/meshim/web.ini", "MESHIM_STATS_DIR=/run/meshim" };

/* Builds for envp and returns how many were changed; out is filled. */
static size_t build(char *const envp[], char **out, size_t slots, char *buf, size_t bytes)
{
    assert_true(execenv_slots(envp, 2) <= slots);
    assert_true(execenv_bytes(envp, LIB, NULL) <= bytes);
    return execenv_build(envp, LIB, NULL, saved, 2, out, buf, execenv_bytes(envp, LIB, NULL));
}

static size_t count(char **v)
{
    size_t n = 0;
    while (v[n])
        n++;
    return n;
}

/* nginx's new master: only TZ and NGINX survive nginx's own environment. */
static void test_scrubbed(void **state)
{
    (void)state;
    char *envp[] = { "TZ=UTC", "NGINX=6;7;", NULL };
    char *out[16], buf[256];
    assert_int_equal(build(envp, out, 16, buf, sizeof(buf)), 3);
    assert_int_equal(count(out), 5);
    assert_string_equal(out[0], "TZ=UTC");
    assert_string_equal(out[1], "NGINX=6;7;");
    assert_string_equal(out[2], "LD_PRELOAD=" LIB);
    assert_string_equal(out[3], saved[0]);
    assert_string_equal(out[4], saved[1]);
}

static void test_empty_and_null(void **state)
{
    (void)state;
    char *empty[] = { NULL };
    char *out[8], buf[256];
    assert_int_equal(build(empty, out, 8, buf, sizeof(buf)), 3);
    assert_string_equal(out[0], "LD_PRELOAD=" LIB);
    assert_int_equal(count(out), 3);
    /* execve with a NULL environment: Linux takes it as an empty one. */
    assert_int_equal(build(NULL, out, 8, buf, sizeof(buf)), 3);
    assert_int_equal(count(out), 3);
}

/* Already meshed as the caller wants: nothing changes. */
static void test_complete(void **state)
{
    (void)state;
    char *envp[] = { "LD_PRELOAD=libmeshim.so", "MESHIM_CONFIG=/other.ini", "MESHIM_STATS_DIR=/x", NULL };
    char *out[8], buf[256];
    assert_int_equal(build(envp, out, 8, buf, sizeof(buf)), 0);
    assert_int_equal(count(out), 3);
    for (size_t i = 0; i < 3; i++)
        assert_ptr_equal(out[i], envp[i]);      /* the caller's MESHIM_CONFIG is kept */
}

/* Another preload stays, and stays first; ours is appended. */
static void test_other_preload(void **state)
{
    (void)state;
    char *envp[] = { "LD_PRELOAD=/usr/lib/libjemalloc.so.2", "MESHIM_CONFIG=/a.ini", NULL };
    char *out[8], buf[256];
    assert_int_equal(build(envp, out, 8, buf, sizeof(buf)), 2);
    assert_string_equal(out[0], "LD_PRELOAD=/usr/lib/libjemalloc.so.2:" LIB);
    assert_string_equal(out[1], "MESHIM_CONFIG=/a.ini");
    assert_string_equal(out[2], saved[1]);
    assert_null(out[3]);
    /* An empty LD_PRELOAD gets no leading separator. */
    char *blank[] = { "LD_PRELOAD=", NULL };
    build(blank, out, 8, buf, sizeof(buf));
    assert_string_equal(out[0], "LD_PRELOAD=" LIB);
}

static void test_preloads(void **state)
{
    (void)state;
    assert_true(execenv_preloads(LIB, LIB));
    assert_true(execenv_preloads("libmeshim.so", LIB));
    assert_true(execenv_preloads("/a/libc_hook.so /build/libmeshim.so", LIB));
    assert_true(execenv_preloads("/a/x.so:libmeshim.so", LIB));
    assert_false(execenv_preloads("", LIB));
    assert_false(execenv_preloads("/a/libmeshim.so.old", LIB));
    assert_false(execenv_preloads("/a/notlibmeshim.so", LIB));
    assert_false(execenv_preloads("/libmeshim.so/x.so", LIB));
    assert_false(execenv_preloads("libmeshim.so", "/usr/lib/"));
}

/* No LD_PRELOAD given: the one this process started with comes back
 * whole when it names the library (a sanitizer's runtime first), else the
 * library alone. */
static void test_own_preload(void **state)
{
    (void)state;
    char *envp[] = { "TZ=UTC", NULL };
    char *out[8], buf[256];
    const char *own = "/usr/lib/libasan.so.8 /build-asan/libmeshim.so";
    assert_true(execenv_bytes(envp, LIB, own) <= sizeof(buf));
    assert_int_equal(execenv_build(envp, LIB, own, saved, 0, out, buf, execenv_bytes(envp, LIB, own)), 1);
    assert_string_equal(out[1], "LD_PRELOAD=/usr/lib/libasan.so.8 /build-asan/libmeshim.so");
    const char *other = "/usr/lib/libjemalloc.so.2";
    assert_int_equal(execenv_build(envp, LIB, other, saved, 0, out, buf, execenv_bytes(envp, LIB, other)), 1);
    assert_string_equal(out[1], "LD_PRELOAD=" LIB);
    /* Given one, it is appended to, whatever this process started with. */
    char *given[] = { "LD_PRELOAD=/x.so", NULL };
    assert_int_equal(execenv_build(given, LIB, own, saved, 0, out, buf, execenv_bytes(given, LIB, own)), 1);
    assert_string_equal(out[0], "LD_PRELOAD=/x.so:" LIB);
}

/* A variable whose name is like a saved one's but longer is another variable. */
static void test_names_exact(void **state)
{
    (void)state;
    char *envp[] = { "LD_PRELOAD=" LIB, "MESHIM_CONFIGX=1", "MESHIM_STATS_DIR_OLD=2", NULL };
    char *out[8], buf[256];
    assert_int_equal(build(envp, out, 8, buf, sizeof(buf)), 2);
    assert_int_equal(count(out), 5);
    assert_string_equal(out[3], saved[0]);
    assert_string_equal(out[4], saved[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrubbed),
        cmocka_unit_test(test_empty_and_null),
        cmocka_unit_test(test_complete),
        cmocka_unit_test(test_other_preload),
        cmocka_unit_test(test_preloads),
        cmocka_unit_test(test_own_preload),
        cmocka_unit_test(test_names_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
