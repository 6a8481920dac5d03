/*
 * forkstress NAME PORT — fork() while other threads are inside the shim
 * (resolving and connecting to a service, which takes the balancer's and the
 * descriptor table's locks). Every child must resolve, connect and exit; a
 * child that inherited a held lock would hang, and the alarm turns that into
 * a failure. Prints "children=N ok".
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILDREN 200

static const char *name, *port;
static atomic_int stop;

static int dial(void)
{
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
    if (getaddrinfo(name, port, &hints, &ai) != 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    int d = dup(fd);            /* descriptor table traffic too */
    close(d);
    close(fd);
    freeaddrinfo(ai);
    return rc;
}

static void *hammer(void *arg)
{
    (void)arg;
    while (!stop)
        dial();
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    name = argv[1];
    port = argv[2];
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, hammer, NULL);
    int ok = 0;
    for (int i = 0; i < CHILDREN; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(5);           /* a deadlocked child dies by SIGALRM */
            _exit(dial() == 0 ? 0 : 3);
        }
        int status;
        if (waitpid(pid, &status, 0) < 0) {
            perror("waitpid");
            return 1;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ok++;
        else
            fprintf(stderr, "child %d: %s %d\n", i, WIFSIGNALED(status) ? "signal" : "exit",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    stop = 1;
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    printf("children=%d ok=%d\n", CHILDREN, ok);
    return ok == CHILDREN ? 0 : 1;
}
