/*
 * test_ownfd.c — libc/ownfd.c: the shim's own descriptors survive a
 * program's close_range and closefrom, and are found by number; the room
 * they take in the descriptor limit stays theirs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
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

static rlim_t soft_limit(void)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    return rl.rlim_cur;
}

static void set_soft_limit(rlim_t soft)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = soft;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* The shim raises the program's soft limit for its own descriptors and
 * keeps them in that room; a number at or past the program's own limit is
 * reported (the hooks refuse it to the program); a fork child gets the
 * program's limit back; a limit the program sets itself is followed. */
static void test_program_limit(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 400)
        skip();
    set_soft_limit(200);                /* the program's own */
    int a = open("/dev/null", O_RDONLY);
    int high = ownfd_high(a);
    close(a);
    assert_true(soft_limit() > 200);
    assert_true(high >= 200);           /* in the room, above the program's numbers */
    assert_true(ownfd_limit_raised());
    assert_int_equal(ownfd_program_limit(199), 0);
    assert_int_equal(ownfd_program_limit(200), 200);
    assert_int_equal(ownfd_program_limit(high), 200);

    pid_t pid = fork();
    if (pid == 0) {
        ownfd_atfork_child();
        _exit(soft_limit() == 200 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(soft_limit() > 200);    /* the parent keeps the raise */

    set_soft_limit(1000);               /* the program sets a limit of its own */
    assert_int_equal(ownfd_program_limit(high), 0);
    assert_false(ownfd_limit_raised());
    own_close(high);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_marks),
        cmocka_unit_test(test_ranges_skip_ours),
        cmocka_unit_test(test_program_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
