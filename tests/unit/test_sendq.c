/*
 * test_sendq.c — the engine's short sends of a turn, made together
 * (engine/sendq.c): nothing goes before the flush, everything queued goes
 * in it and in order, each owner is told what went (a full socket's
 * EAGAIN and a closed peer's EPIPE too), a cancelled send never goes, a
 * done may queue the owner's next send, nothing is queued while the
 * config in force says off, and no ring is made where a seccomp filter is
 * on the process (in fork children: a fork starts the child without the
 * parent's ring).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/sendq.h"
#include "meshim/mesh.h"

static struct mesh_config cfg = { .io_uring = true };
static struct registry reg = { .cfg = &cfg };

struct owner {
    int calls;
    ssize_t n;
    int fd;                 /* chain: the next send's socket */
    int chain_left;
};

static void done(void *p, ssize_t n, size_t len)
{
    (void)len;
    struct owner *o = p;
    o->calls++;
    o->n = n;
}

static int pair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
}

static ssize_t drain(int fd, char *buf, size_t len)
{
    ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
    return n < 0 ? -errno : n;
}

static int setup(void **state)
{
    (void)state;
    mesh_publish(&reg);
    return 0;
}

/* Three sockets' sends wait for the flush, then all go in it. */
static void test_sends_go_at_the_flush(void **state)
{
    (void)state;
    int a[2], b[2], c[2];
    assert_int_equal(pair(a), 0);
    assert_int_equal(pair(b), 0);
    assert_int_equal(pair(c), 0);
    struct owner oa = { 0 }, ob = { 0 }, oc = { 0 };
    assert_true(sendq_add(a[0], "alpha", 5, done, &oa));
    assert_true(sendq_add(b[0], "bravo!", 6, done, &ob));
    assert_true(sendq_add(c[0], "charlie", 7, done, &oc));
    assert_true(sendq_ring_made());
    assert_true(sendq_pending());
    char buf[64];
    assert_int_equal(drain(a[1], buf, sizeof(buf)), -EAGAIN);     /* not yet */
    assert_int_equal(oa.calls, 0);
    sendq_flush();
    assert_false(sendq_pending());
    assert_int_equal(oa.calls, 1);
    assert_int_equal(oa.n, 5);
    assert_int_equal(ob.n, 6);
    assert_int_equal(oc.n, 7);
    assert_int_equal(drain(a[1], buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "alpha", 5);
    assert_int_equal(drain(b[1], buf, sizeof(buf)), 6);
    assert_memory_equal(buf, "bravo!", 6);
    assert_int_equal(drain(c[1], buf, sizeof(buf)), 7);
    assert_memory_equal(buf, "charlie", 7);
    for (int i = 0; i < 2; i++)
        close(a[i]), close(b[i]), close(c[i]);
}

/* The bytes are copied when queued: the caller's buffer may change. */
static void test_bytes_copied(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(pair(sv), 0);
    char data[] = "first";
    struct owner o = { 0 };
    assert_true(sendq_add(sv[0], data, 5, done, &o));
    memcpy(data, "XXXXX", 5);
    sendq_flush();
    char buf[16];
    assert_int_equal(drain(sv[1], buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "first", 5);
    close(sv[0]);
    close(sv[1]);
}

/* A full socket: EAGAIN, nothing of it sent; then room for part of one. */
static void test_full_socket(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(pair(sv), 0);
    int small = 1;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    static char chunk[SENDQ_MAX];
    memset(chunk, 'x', sizeof(chunk));
    size_t queued = 0;
    while (send(sv[0], chunk, sizeof(chunk), MSG_DONTWAIT) > 0)
        queued += sizeof(chunk);
    struct owner o = { 0 };
    assert_true(sendq_add(sv[0], "late", 4, done, &o));
    sendq_flush();
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.n, -EAGAIN);
    /* The peer reads everything: the next one goes whole. */
    static char sink[1 << 16];
    while (drain(sv[1], sink, sizeof(sink)) > 0)
        ;
    assert_true(sendq_add(sv[0], "late", 4, done, &o));
    sendq_flush();
    assert_int_equal(o.n, 4);
    char buf[8];
    assert_int_equal(drain(sv[1], buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "late", 4);
    close(sv[0]);
    close(sv[1]);
}

/* A peer gone: the owner is told EPIPE, and no SIGPIPE ends the test. */
static void test_peer_gone(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(pair(sv), 0);
    close(sv[1]);
    struct owner o = { 0 };
    assert_true(sendq_add(sv[0], "lost", 4, done, &o));
    sendq_flush();
    assert_int_equal(o.n, -EPIPE);
    close(sv[0]);
}

/* A cancelled send never goes and its owner is not told; the others go. */
static void test_cancelled(void **state)
{
    (void)state;
    int a[2], b[2];
    assert_int_equal(pair(a), 0);
    assert_int_equal(pair(b), 0);
    struct owner gone = { 0 }, kept = { 0 };
    assert_true(sendq_add(a[0], "never", 5, done, &gone));
    assert_true(sendq_add(b[0], "kept", 4, done, &kept));
    sendq_cancel(&gone);
    sendq_flush();
    assert_int_equal(gone.calls, 0);
    assert_int_equal(kept.n, 4);
    char buf[8];
    assert_int_equal(drain(a[1], buf, sizeof(buf)), -EAGAIN);
    assert_int_equal(drain(b[1], buf, sizeof(buf)), 4);
    for (int i = 0; i < 2; i++)
        close(a[i]), close(b[i]);
}

/* A done that cancels another owner told in the same flush: that owner's
 * done does not run (its owner has ended). */
static struct owner *victim;
static void done_cancels(void *p, ssize_t n, size_t len)
{
    done(p, n, len);
    sendq_cancel(victim);
}

static void test_cancel_while_told(void **state)
{
    (void)state;
    int a[2], b[2];
    assert_int_equal(pair(a), 0);
    assert_int_equal(pair(b), 0);
    struct owner first = { 0 }, second = { 0 };
    victim = &second;
    assert_true(sendq_add(a[0], "one", 3, done_cancels, &first));
    assert_true(sendq_add(b[0], "two", 3, done, &second));
    sendq_flush();
    assert_int_equal(first.calls, 1);
    assert_int_equal(second.calls, 0);
    for (int i = 0; i < 2; i++)
        close(a[i]), close(b[i]);
}

/* A done queues the owner's next send: it goes in the same flush. */
static void done_chain(void *p, ssize_t n, size_t len)
{
    struct owner *o = p;
    done(p, n, len);
    if (o->chain_left-- > 0)
        assert_true(sendq_add(o->fd, "+", 1, done_chain, o));
}

static void test_done_queues_again(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(pair(sv), 0);
    struct owner o = { .fd = sv[0], .chain_left = 2 };
    assert_true(sendq_add(sv[0], "go", 2, done_chain, &o));
    sendq_flush();
    assert_false(sendq_pending());
    assert_int_equal(o.calls, 3);
    char buf[8];
    assert_int_equal(drain(sv[1], buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "go++", 4);
    close(sv[0]);
    close(sv[1]);
}

/* Too long to share a call, or nothing at all: the caller sends it. */
static void test_long_not_queued(void **state)
{
    (void)state;
    static char big[SENDQ_MAX + 1];
    struct owner o = { 0 };
    assert_false(sendq_add(0, big, sizeof(big), done, &o));
    assert_false(sendq_add(0, big, 0, done, &o));
    assert_true(sendq_add(0, big, SENDQ_MAX, done, &o));
    sendq_cancel(&o);
    sendq_flush();
}

/* In a fork child (its copy of the ring dropped), after prepare(): does
 * sendq_add take sends? 1 yes (and two went in one flush, through a ring
 * of the child's own), 0 no, as the child's exit status. */
static int child_queues(void (*prepare)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        sendq_atfork_child();
        prepare();
        int a[2], b[2];
        struct owner oa = { 0 }, ob = { 0 };
        if (pair(a) != 0 || pair(b) != 0)
            _exit(2);
        if (!sendq_add(a[0], "x", 1, done, &oa))
            _exit(0);
        if (!sendq_add(b[0], "y", 1, done, &ob) || !sendq_ring_made())
            _exit(3);
        sendq_flush();
        char c, d;
        _exit(oa.n == 1 && ob.n == 1 && recv(a[1], &c, 1, MSG_DONTWAIT) == 1 &&
              recv(b[1], &d, 1, MSG_DONTWAIT) == 1 && c == 'x' && d == 'y' ? 1 : 3);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));     /* not killed: no io_uring call under the filter */
    return WEXITSTATUS(status);
}

static void nothing(void)
{
}

static void config_off(void)
{
    static struct mesh_config off = { .io_uring = false };
    static struct registry r = { .cfg = &off };
    mesh_publish(&r);
}

/* A filter that kills the process at any io_uring call. */
static void seccomp_kill_io_uring(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        _exit(4);
}

static void test_fork_child_rings_its_own(void **state)
{
    (void)state;
    assert_true(sendq_ring_made());     /* the parent's, from the tests above */
    assert_int_equal(child_queues(nothing), 1);
}

/* A reload that says off stops queueing at once; one that says auto again
 * takes sends again, through the same ring. */
static void test_reload(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(pair(sv), 0);
    struct owner o = { 0 };
    config_off();
    assert_false(sendq_add(sv[0], "x", 1, done, &o));
    mesh_publish(&reg);
    assert_true(sendq_add(sv[0], "x", 1, done, &o));
    sendq_flush();
    assert_int_equal(o.n, 1);
    close(sv[0]);
    close(sv[1]);
}

static void test_off_by_config(void **state)
{
    (void)state;
    assert_int_equal(child_queues(config_off), 0);
}

static void test_no_ring_under_seccomp(void **state)
{
    (void)state;
    assert_int_equal(child_queues(seccomp_kill_io_uring), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sends_go_at_the_flush),
        cmocka_unit_test(test_bytes_copied),
        cmocka_unit_test(test_full_socket),
        cmocka_unit_test(test_peer_gone),
        cmocka_unit_test(test_cancelled),
        cmocka_unit_test(test_cancel_while_told),
        cmocka_unit_test(test_done_queues_again),
        cmocka_unit_test(test_long_not_queued),
        cmocka_unit_test(test_fork_child_rings_its_own),
        cmocka_unit_test(test_off_by_config),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_no_ring_under_seccomp),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
