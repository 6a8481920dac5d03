/*
 * test_beside.c — when the TLS module beside the library is opened unread
 * (beside.h): only a whole regular file that no one but the library's
 * owner can write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "meshim/beside.h"

#define SIZE 5291384

static struct stat file(uid_t uid, mode_t mode, off_t size)
{
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_uid = uid;
    st.st_mode = mode;
    st.st_size = size;
    return st;
}

static void test_opened(void **state)
{
    (void)state;
    struct stat lib = file(0, S_IFREG | 0755, 7419088);
    struct stat mod = file(0, S_IFREG | 0644, SIZE);
    assert_null(beside_refused(&mod, &lib, SIZE));
    mod.st_mode = S_IFREG | 0444;                       /* read-only for all */
    assert_null(beside_refused(&mod, &lib, SIZE));
    lib = file(1000, S_IFREG | 0775, 7419088);          /* a user's build tree */
    mod = file(1000, S_IFREG | 0600, SIZE);
    assert_null(beside_refused(&mod, &lib, SIZE));
}

static void test_refused(void **state)
{
    (void)state;
    struct stat lib = file(0, S_IFREG | 0755, 7419088);
    struct stat mod = file(0, S_IFREG | 0664, SIZE);
    assert_string_equal(beside_refused(&mod, &lib, SIZE), "writable by its group or others");
    mod.st_mode = S_IFREG | 0646;
    assert_string_equal(beside_refused(&mod, &lib, SIZE), "writable by its group or others");
    mod = file(65534, S_IFREG | 0644, SIZE);            /* someone else's file, where root's library is */
    assert_string_equal(beside_refused(&mod, &lib, SIZE), "not owned by the library's owner");
    lib.st_uid = 65534;                                 /* and the other way round */
    mod.st_uid = 0;
    assert_string_equal(beside_refused(&mod, &lib, SIZE), "not owned by the library's owner");
    lib.st_uid = 0;
    mod = file(0, S_IFREG | 0644, 4096);
    assert_non_null(strstr(beside_refused(&mod, &lib, SIZE), "size"));
    mod.st_size = SIZE + 1;
    assert_non_null(strstr(beside_refused(&mod, &lib, SIZE), "size"));
    mod = file(0, S_IFDIR | 0755, SIZE);
    assert_string_equal(beside_refused(&mod, &lib, SIZE), "not a file");
    mod = file(0, S_IFIFO | 0644, SIZE);
    assert_string_equal(beside_refused(&mod, &lib, SIZE), "not a file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opened),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
