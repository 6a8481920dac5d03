/*
 * cancelconnect NAME N — threads cancelled in a blocking connect(), as a
 * C program's watchdog cancels a worker stuck on a slow server: N times, a
 * thread resolves NAME, connects to it (port 80), and is cancelled
 * (pthread_cancel) 300 ms in; its cleanup handler closes the socket, as a
 * careful program's does. Then, in the main thread, one more connect to
 * NAME. Prints "cancelled=K" (threads that ended by cancellation) and
 * "last=OK" or "last=ERRNO-NAME"; exits 1 when a join does not return
 * within 20 s (a thread that cannot be cancelled, or a hang).
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *name;

static int dial_socket(struct addrinfo **ai)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    if (getaddrinfo(name, "80", &hints, ai) != 0) {
        fprintf(stderr, "cancelconnect: cannot resolve %s\n", name);
        exit(1);
    }
    return socket((*ai)->ai_family, SOCK_STREAM, 0);
}

static void close_socket(void *arg)
{
    int *fd = arg;
    if (*fd >= 0)
        close(*fd);
}

static void *worker(void *arg)
{
    int *fd = arg;
    struct addrinfo *ai;
    *fd = dial_socket(&ai);
    pthread_cleanup_push(close_socket, fd);
    connect(*fd, ai->ai_addr, ai->ai_addrlen);
    pthread_cleanup_pop(1);
    freeaddrinfo(ai);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: cancelconnect NAME N\n");
        return 2;
    }
    name = argv[1];
    int n = atoi(argv[2]), cancelled = 0;
    for (int i = 0; i < n; i++) {
        int fd = -1;
        pthread_t t;
        pthread_create(&t, NULL, worker, &fd);
        nanosleep(&(struct timespec){ 0, 300 * 1000000 }, NULL);
        pthread_cancel(t);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 20;
        void *res;
        if (pthread_timedjoin_np(t, &res, &until) != 0) {
            printf("cancelled=%d join=timeout\n", cancelled);
            return 1;
        }
        cancelled += res == PTHREAD_CANCELED;
    }
    struct addrinfo *ai;
    int fd = dial_socket(&ai);
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    printf("cancelled=%d last=%s\n", cancelled, rc == 0 ? "OK" : strerrorname_np(errno));
    return 0;
}
