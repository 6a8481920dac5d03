/*
 * test_ownfd.c — libc/ownfd.c: the shim's own descriptors survive a
 * program's close_range and closefrom, and are found by number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "libc/ownfd.h"

static bool open_fd(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void test_marks(void **state)
{
    (void)state;
    assert_int_equal(ownfd_next(0), -1);
    int a = open("/dev/null", O_RDONLY);
    int high = ownfd_high(a);
    assert_true(high > a);
    assert_true(ownfd_is(high));
    assert_false(ownfd_is(a));
    assert_int_equal(ownfd_next(0), high);
    assert_int_equal(ownfd_next((unsigned)high + 1), -1);
    assert_true(open_fd(a));            /* the original is the caller's to close */
    close(a);
    /* Marked twice (a number closed by one thread, reopened by another
     * before the first unmarked it): one close leaves it marked. */
    ownfd_mark(high);
    assert_int_equal(own_close(high), 0);
    assert_true(ownfd_is(high));
    int again = open("/dev/null", O_RDONLY);
    assert_int_equal(dup2(again, high), high);
    close(again);
    assert_int_equal(own_close(high), 0);
    assert_false(ownfd_is(high));
    assert_int_equal(ownfd_next(0), -1);
}

static void test_ranges_skip_ours(void **state)
{
    (void)state;
    int fds[6];
    for (int i = 0; i < 6; i++)
        fds[i] = open("/dev/null", O_RDONLY);
    int ours = ownfd_high(fds[0]);
    ownfd_mark(fds[2]);                 /* one in the middle of the program's */
    assert_int_equal(ownfd_close_range((unsigned)fds[0], (unsigned)ours, 0), 0);
    for (int i = 0; i < 6; i++)
        assert_true(i == 2 ? open_fd(fds[i]) : !open_fd(fds[i]));
    assert_true(open_fd(ours));

    int more[3];
    for (int i = 0; i < 3; i++)
        more[i] = open("/dev/null", O_RDONLY);
    int after = fcntl(more[0], F_DUPFD, ours + 5);  /* above ours: closefrom's tail */
    ownfd_closefrom(3);
    for (int i = 0; i < 3; i++)
        assert_false(open_fd(more[i]));
    assert_false(open_fd(after));
    assert_true(open_fd(ours));
    assert_true(open_fd(fds[2]));
    own_close(ours);
    own_close(fds[2]);
    assert_false(open_fd(ours));
    assert_int_equal(ownfd_next(0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_marks),
        cmocka_unit_test(test_ranges_skip_ours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
