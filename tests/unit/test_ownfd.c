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
#include <pthread.h>
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

/* The soft limit in force; the test is skipped where the hard limit leaves
 * no room to move the shim's descriptors above a low soft one. */
static rlim_t soft_limit_with_room(void)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 1200)
        skip();
    return rl.rlim_cur;
}

/* The shim's own descriptors go above the program's soft limit, in the
 * room up to the hard one, and the limit in force stays the program's: the
 * shim raises it only for the moment of its move. A limit the program sets
 * itself is followed; with no room (soft = hard) they go to half of it,
 * and no higher than 1024. */
static void test_program_limit(void **state)
{
    (void)state;
    rlim_t before = soft_limit_with_room();
    set_soft_limit(200);                /* the program's own */
    int a = open("/dev/null", O_RDONLY);
    int high = ownfd_high(a);
    int second = ownfd_high(a);
    assert_true(high >= 200);           /* in the room, above the program's numbers */
    assert_true(second >= 200 && second != high);
    assert_int_equal(soft_limit(), 200);/* what the program reads, and its children inherit */
    assert_false(ownfd_limit_raised());
    /* A number the program is given at or past its limit is reported (the
     * hooks refuse it: only a move's moment could have let it through). */
    assert_int_equal(ownfd_program_limit(199), 0);
    assert_int_equal(ownfd_program_limit(200), 200);
    assert_int_equal(ownfd_program_limit(high), 200);
    /* The program's own numbers stop at its limit, as without the shim. */
    int many[200], n = 0;
    while (n < 200 && (many[n] = dup(a)) >= 0)
        n++;
    assert_true(n < 200);
    assert_int_equal(errno, EMFILE);
    for (int i = 0; i < n; i++)
        assert_true(many[i] < 200);
    for (int i = 0; i < n; i++)
        close(many[i]);
    own_close(second);

    set_soft_limit(1000);               /* the program sets a limit of its own */
    assert_int_equal(ownfd_program_limit(high), 0);
    int later = ownfd_high(a);
    assert_true(later >= 1000);
    assert_int_equal(soft_limit(), 1000);
    own_close(later);

    struct rlimit none = { 200, 200 };  /* no room: half the limit */
    pid_t pid = fork();
    if (pid == 0) {
        int ok = setrlimit(RLIMIT_NOFILE, &none) == 0;
        int mid = ownfd_high(a);
        _exit(ok && mid >= 100 && mid < 200 && soft_limit() == 200 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* No room under a large limit: just past FD_SETSIZE, not at half of
     * it (the kernel's table of the process would grow to that number). */
    struct rlimit hard;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &hard), 0);
    if (hard.rlim_max != RLIM_INFINITY && hard.rlim_max >= 4096) {
        pid = fork();
        if (pid == 0) {
            struct rlimit large = { hard.rlim_max, hard.rlim_max };
            int ok = setrlimit(RLIMIT_NOFILE, &large) == 0;
            int mid = ownfd_high(a);
            _exit(ok && mid >= 1024 && mid < 1100 ? 0 : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    close(a);
    own_close(high);
    set_soft_limit(before);
}

static int moving_stop;              /* atomic */

static void *mover(void *arg)
{
    int a = *(int *)arg;
    while (!__atomic_load_n(&moving_stop, __ATOMIC_RELAXED)) {
        int high = ownfd_high(a);
        if (high >= 0)
            own_close(high);
    }
    return NULL;
}

/* A thread of the program that takes descriptors at its limit while the
 * shim moves its own: a number it gets in a move's moment (at or past its
 * limit) is always reported, even once that moment is over, so the hooks
 * refuse it. Bounded: 20,000 tries. Then forks in the same race. */
static void test_limit_during_moves(void **state)
{
    (void)state;
    rlim_t before = soft_limit_with_room();
    int a = open("/dev/null", O_RDONLY);
    set_soft_limit(100);
    int fill[100], n = 0;
    while (n < 100 && (fill[n] = dup(a)) >= 0)
        n++;
    pthread_t t;
    __atomic_store_n(&moving_stop, 0, __ATOMIC_RELAXED);
    assert_int_equal(pthread_create(&t, NULL, mover, &a), 0);
    int past = 0;
    for (int i = 0; i < 20000; i++) {
        int fd = fcntl(a, F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (fd >= 100) {
            past++;
            assert_int_equal(ownfd_program_limit(fd), 100);
        }
        close(fd);
    }
    /* A fork while another thread moves: the child starts with the
     * program's limit (process.c's handlers run these around every fork).
     * Bounded: 200 forks. */
    for (int i = 0; i < 200; i++) {
        ownfd_atfork_prepare();
        pid_t pid = fork();
        if (pid == 0) {
            bool program_s = soft_limit() == 100;
            ownfd_atfork_child();
            _exit(program_s ? 0 : 1);
        }
        ownfd_atfork_parent();
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    __atomic_store_n(&moving_stop, 1, __ATOMIC_RELAXED);
    pthread_join(t, NULL);
    print_message("%d numbers past the limit taken during moves, each reported; "
                  "200 children forked meanwhile, each with the program's limit\n", past);
    for (int i = 0; i < n; i++)
        close(fill[i]);
    close(a);
    set_soft_limit(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_marks),
        cmocka_unit_test(test_ranges_skip_ours),
        cmocka_unit_test(test_program_limit),
        cmocka_unit_test(test_limit_during_moves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
