/*
 * test_fork.c — fork() while another thread holds the shim's locks.
 *
 * Links the shim's objects directly (the hooks become this program's own
 * connect, getaddrinfo, ...). A helper thread takes a service's balancer lock
 * and the descriptor table's lock and holds them for a while; meanwhile the
 * main thread forks, and the child must resolve and connect to the service.
 * Without the atfork handlers the child inherits a held lock and hangs (an
 * alarm turns that into a failure); with them, fork waits for the locks and
 * the child starts with clean ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mesh/fdtable.h"
#include "meshim/mesh.h"

static pthread_barrier_t held;

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void *hold_service_lock(void *arg)
{
    struct service *svc = arg;
    pthread_mutex_lock(&svc->lock);
    pthread_barrier_wait(&held);
    sleep_ms(200);
    pthread_mutex_unlock(&svc->lock);
    return NULL;
}

static void *hold_table_lock(void *arg)
{
    (void)arg;
    fdtable_atfork_prepare();       /* takes the table's lock */
    pthread_barrier_wait(&held);
    sleep_ms(200);
    fdtable_atfork_parent();        /* releases it */
    return NULL;
}

/* In the child: resolve "orders" and connect a socket to it (the endpoint
 * is a local listener, so the connect completes at once). */
static int child_dials(void)
{
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
    if (getaddrinfo("orders", "80", &hints, &ai) != 0)
        return 2;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    close(fd);
    freeaddrinfo(ai);
    return rc == 0 ? 0 : 3;
}

static void fork_while_held(void *(*holder)(void *), void *arg)
{
    pthread_t t;
    pthread_barrier_init(&held, NULL, 2);
    pthread_create(&t, NULL, holder, arg);
    pthread_barrier_wait(&held);            /* the lock is held now */
    pid_t pid = fork();
    if (pid == 0) {
        alarm(3);
        _exit(child_dials());
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&held);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child %s %d", WIFSIGNALED(status) ? "killed by signal" : "exited",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

static void test_fork_while_service_lock_held(void **state)
{
    (void)state;
    struct registry *reg = mesh_registry();
    assert_non_null(reg);
    fork_while_held(hold_service_lock, reg->services[0]);
}

static void test_fork_while_table_lock_held(void **state)
{
    (void)state;
    fork_while_held(hold_table_lock, NULL);
}

int main(int argc, char **argv)
{
    (void)argc;
    /* The shim reads its config in a constructor: re-exec with one service
     * whose endpoint is a listener of ours (inherited across exec). */
    if (!getenv("MESHIM_SERVICES")) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
        socklen_t len = sizeof(a);
        int l = socket(AF_INET, SOCK_STREAM, 0);
        if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 64) < 0 ||
            getsockname(l, (struct sockaddr *)&a, &len) < 0)
            return 1;
        char services[64];
        snprintf(services, sizeof(services), "orders=127.0.0.1:%u", ntohs(a.sin_port));
        setenv("MESHIM_SERVICES", services, 1);
        execv("/proc/self/exe", argv);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_while_service_lock_held),
        cmocka_unit_test(test_fork_while_table_lock_held),
    };
    return cmocka_run_group_tests_name("fork", tests, NULL, NULL);
}
