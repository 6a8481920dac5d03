/*
 * test_sigdefer.c — libc/sigdefer.c and the held sections of
 * libc/jumpguard.h: the program's handlers wait while the shim works in
 * the thread, and come as the section ends with the signal as it was sent;
 * what the program reads back is its own; signals without a handler of the
 * program's are not held.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libc/jumpguard.h"
#include "libc/real.h"
#include "libc/sigdefer.h"

static volatile sig_atomic_t runs;
static volatile int last_code, last_pid, last_value, depth_seen;

static void counting(int sig)
{
    (void)sig;
    runs++;
    depth_seen = (int)signals_depth;
}

static void with_info(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)context;
    runs++;
    last_code = info->si_code;
    last_pid = info->si_pid;
    last_value = info->si_value.sival_int;
}

static void set(int sig, void (*handler)(int), int flags)
{
    struct sigaction sa = { .sa_handler = handler, .sa_flags = flags };
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigdefer_sigaction(sig, &sa, NULL), 0);
}

static void set_info(int sig, int flags)
{
    struct sigaction sa = { .sa_sigaction = with_info, .sa_flags = SA_SIGINFO | flags };
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigdefer_sigaction(sig, &sa, NULL), 0);
}

static void restore(int sig)
{
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigemptyset(&dfl.sa_mask);
    assert_int_equal(sigdefer_sigaction(sig, &dfl, NULL), 0);
}

static bool blocked(int sig)
{
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    return sigismember(&now, sig);
}

/* The program reads back what it set; the kernel holds the trampoline. */
static void test_read_back(void **state)
{
    (void)state;
    struct sigaction sa = { .sa_handler = counting, .sa_flags = SA_RESTART }, old, kernel;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    assert_int_equal(sigdefer_sigaction(SIGUSR1, &sa, &old), 0);
    assert_ptr_equal(old.sa_handler, SIG_DFL);
    assert_int_equal(sigdefer_sigaction(SIGUSR1, NULL, &old), 0);
    assert_ptr_equal(old.sa_handler, counting);
    assert_true(old.sa_flags & SA_RESTART);
    assert_false(old.sa_flags & SA_SIGINFO);
    assert_true(sigismember(&old.sa_mask, SIGUSR2));
    assert_int_equal(real_sigaction(SIGUSR1, NULL, &kernel), 0);
    assert_ptr_not_equal(kernel.sa_handler, counting);
    assert_true(kernel.sa_flags & SA_SIGINFO);
    assert_true(kernel.sa_flags & SA_RESTART);
    /* act and old one struct; then signal() returns the last handler. */
    old = sa;
    old.sa_handler = SIG_IGN;
    assert_int_equal(sigdefer_sigaction(SIGUSR1, &old, &old), 0);
    assert_ptr_equal(old.sa_handler, counting);
    assert_ptr_equal(sigdefer_signal(sigdefer_sigaction, SIGUSR1, counting), SIG_IGN);
    assert_ptr_equal(sigdefer_signal(sigdefer_sigaction, SIGUSR1, SIG_DFL), counting);
    assert_ptr_equal(sigdefer_signal(sigdefer_sigaction, SIGKILL, counting), SIG_ERR);
    assert_ptr_equal(sigdefer_signal(sigdefer_sigaction, SIGUSR1, SIG_ERR), SIG_ERR);
    assert_int_equal(errno, EINVAL);
    /* sysv_signal and sigset go through the trampoline too. */
    assert_ptr_equal(sigdefer_sysv_signal(sigdefer_sigaction, SIGUSR1, counting), SIG_DFL);
    assert_int_equal(real_sigaction(SIGUSR1, NULL, &kernel), 0);
    assert_ptr_not_equal(kernel.sa_handler, counting);
    assert_true(kernel.sa_flags & SA_RESETHAND);
    assert_ptr_equal(sigdefer_sigset(sigdefer_sigaction, SIGUSR1, counting), counting);
    assert_int_equal(real_sigaction(SIGUSR1, NULL, &kernel), 0);
    assert_ptr_not_equal(kernel.sa_handler, counting);
    assert_ptr_equal(sigdefer_sigset(sigdefer_sigaction, SIGUSR1, SIG_DFL), counting);
}

/* Outside a section a handler runs at once; inside, as it ends, with the
 * siginfo the sender gave, the thread's mask as it was. */
static void test_deferred_to_section_end(void **state)
{
    (void)state;
    set_info(SIGUSR1, 0);
    runs = 0;
    kill(getpid(), SIGUSR1);
    assert_int_equal(runs, 1);

    runs = 0;
    struct signals_held h;
    signals_hold(&h);
    union sigval v = { .sival_int = 4242 };
    assert_int_equal(sigqueue(getpid(), SIGUSR1, v), 0);
    assert_int_equal(runs, 0);
    assert_true(signals_deferred);
    assert_true(blocked(SIGUSR1));
    assert_false(blocked(SIGUSR2));     /* only what was deferred */
    errno = EAGAIN;
    signals_release(&h);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(runs, 1);
    assert_int_equal(last_code, SI_QUEUE);
    assert_int_equal(last_pid, getpid());
    assert_int_equal(last_value, 4242);
    assert_false(blocked(SIGUSR1));
    assert_false(signals_deferred);
    restore(SIGUSR1);
}

/* Nested sections: the outermost end lets it in. */
static void test_nested(void **state)
{
    (void)state;
    set(SIGUSR1, counting, SA_RESTART);
    runs = 0;
    struct signals_held outer, inner;
    signals_hold(&outer);
    signals_hold(&inner);
    raise(SIGUSR1);
    signals_release(&inner);
    assert_int_equal(runs, 0);
    signals_release(&outer);
    assert_int_equal(runs, 1);
    assert_int_equal(depth_seen, 0);
    restore(SIGUSR1);
}

/* In one of the section's waits the handler runs there, and the wait is
 * cut short; a signal deferred before the wait comes in the wait. */
static void test_waits_let_in(void **state)
{
    (void)state;
    set(SIGUSR1, counting, SA_RESTART);
    set(SIGUSR2, counting, SA_RESTART);
    runs = 0;
    struct signals_held h;
    signals_hold(&h);
    raise(SIGUSR1);
    assert_int_equal(runs, 0);
    jump_park();
    int n = jump_poll(NULL, 0, 5000);
    int err = errno;
    jump_unpark();
    assert_int_equal(n, -1);
    assert_int_equal(err, EINTR);
    assert_int_equal(runs, 1);
    assert_int_equal(depth_seen, 1);
    /* Parked, a signal runs at once. */
    jump_park();
    raise(SIGUSR2);
    jump_unpark();
    assert_int_equal(runs, 2);
    signals_release(&h);
    assert_int_equal(runs, 2);
    assert_false(blocked(SIGUSR1));
    restore(SIGUSR1);
    restore(SIGUSR2);
}

/* Real-time signals queue: each one sent in a section comes, once. */
static void test_realtime_queued(void **state)
{
    (void)state;
    int sig = SIGRTMIN + 1;
    set_info(sig, 0);
    runs = 0;
    struct signals_held h;
    signals_hold(&h);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(sigqueue(getpid(), sig, (union sigval){ .sival_int = i }), 0);
    assert_int_equal(runs, 0);
    signals_release(&h);
    assert_int_equal(runs, 3);
    restore(sig);
}

/* SA_RESETHAND: the handler runs once, as the section ends, and SIG_DFL is
 * back after; SA_NODEFER does not make the trampoline take it again. */
static void test_oneshot_and_nodefer(void **state)
{
    (void)state;
    set(SIGUSR1, counting, SA_RESETHAND);
    set(SIGUSR2, counting, SA_NODEFER);
    runs = 0;
    struct signals_held h;
    signals_hold(&h);
    raise(SIGUSR1);
    raise(SIGUSR2);
    assert_int_equal(runs, 0);
    signals_release(&h);
    assert_int_equal(runs, 2);
    struct sigaction now;
    assert_int_equal(sigdefer_sigaction(SIGUSR1, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, SIG_DFL);
    restore(SIGUSR2);
}

/* A signal the program left at SIG_DFL is not held: SIGTERM ends the
 * process inside a section (a section that hangs is still ended by it). */
static void test_default_not_held(void **state)
{
    (void)state;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        set(SIGUSR1, counting, 0);
        struct signals_held h;
        signals_hold(&h);
        raise(SIGUSR1);             /* deferred: the thread has one blocked */
        raise(SIGTERM);
        _exit(3);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_back),
        cmocka_unit_test(test_deferred_to_section_end),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_waits_let_in),
        cmocka_unit_test(test_realtime_queued),
        cmocka_unit_test(test_oneshot_and_nodefer),
        cmocka_unit_test(test_default_not_held),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
