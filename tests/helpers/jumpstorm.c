/*
 * jumpstorm — blocking connects, each cut short at a random moment by a
 * timer whose handler leaves it by siglongjmp (as wget -T leaves one with
 * alarm), then one connect that must be served.
 *
 *     jumpstorm NAME PORT N MAX_US
 *
 * NAME:PORT is looked up once; then N times: a timer due 1 to MAX_US
 * microseconds later, socket(), connect(), the timer stopped, the socket
 * closed (after a jump too, as wget does). A jump may come at any point
 * of the shim's socket() or connect(), not only while it waits. Then
 * a connect and an HTTP/1.0 GET under a 10 s alarm. Prints
 * "jumped=J done=D good=OK|FAILED|TIMEOUT": TIMEOUT when the last connect
 * hung, as it did when a jump had left a lock held in the shim, in OpenSSL
 * or in malloc.
 */
#include <netdb.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static sigjmp_buf env;
static struct addrinfo *target;

static void on_alarm(int sig)
{
    (void)sig;
    siglongjmp(env, 1);
}

static void timer_in(long us)
{
    struct itimerval t = { { 0, 0 }, { us / 1000000, us % 1000000 } };
    setitimer(ITIMER_REAL, &t, NULL);
}

/* A socket, connected: 0 or -1. *fd is set before the connect, so that a
 * jump out of it leaves the descriptor to close (as wget keeps it). */
static int dial(volatile int *fd)
{
    *fd = socket(target->ai_family, SOCK_STREAM, 0);
    return *fd >= 0 && connect(*fd, target->ai_addr, target->ai_addrlen) == 0 ? 0 : -1;
}

static const char *good(void)
{
    volatile int fd = -1;
    if (sigsetjmp(env, 1)) {
        if (fd >= 0)
            close(fd);
        return "TIMEOUT";
    }
    alarm(10);
    int rc = dial(&fd);
    const char *req = "GET / HTTP/1.0\r\n\r\n";
    char buf[512];
    bool ok = rc == 0 && write(fd, req, strlen(req)) > 0 && read(fd, buf, sizeof(buf)) > 0;
    alarm(0);
    if (fd >= 0)
        close(fd);
    return ok ? "OK" : "FAILED";
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: jumpstorm NAME PORT N MAX_US\n");
        return 2;
    }
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    if (getaddrinfo(argv[1], argv[2], &hints, &target) != 0) {
        fprintf(stderr, "jumpstorm: cannot resolve %s\n", argv[1]);
        return 2;
    }
    signal(SIGALRM, on_alarm);
    srand((unsigned)getpid());
    int n = atoi(argv[3]), max_us = atoi(argv[4]), jumped = 0, done = 0;
    for (int i = 0; i < n; i++) {
        volatile int fd = -1;
        if (sigsetjmp(env, 1) == 0) {
            timer_in(1 + rand() % max_us);
            int rc = dial(&fd);
            timer_in(0);
            done += rc == 0;
        } else {
            jumped++;
        }
        if (fd >= 0)
            close(fd);
    }
    printf("jumped=%d done=%d good=%s\n", jumped, done, good());
    return 0;
}
