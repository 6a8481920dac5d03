/*
 * dialstress NAME PORT — several threads making non-blocking connects to a
 * service at once, while the engine retries them: each thread waits with
 * poll and fetches /who, and every fourth connect is abandoned (closed
 * while the engine may still be dialing it). Exercises the engine, the
 * placeholders and the swap lock from many threads; the TSan build runs it.
 * Prints "ok=N abandoned=M"; exits 1 if a finished connect failed.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define THREADS 4
#define ROUNDS 25

static const char *name, *port;
static int ok, abandoned, failed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int fetch(int fd)
{
    const char req[] = "GET /who HTTP/1.0\r\n\r\n";
    if (write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1)
        return -1;
    char buf[1024];
    size_t got = 0;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 5000) != 1)
            return -1;
        ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (r < 0 && errno == EAGAIN)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    return strstr(buf, "backend-") ? 0 : -1;
}

static void *run(void *arg)
{
    long id = (long)arg;
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
    if (getaddrinfo(name, port, &hints, &ai) != 0)
        return NULL;
    for (int i = 0; i < ROUNDS; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        int outcome;                /* 0 ok, 1 abandoned, 2 failed */
        if ((i + id) % 4 == 0) {
            close(fd);
            outcome = 1;
        } else {
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            int err = -1;
            socklen_t len = sizeof(err);
            if ((rc == 0 || errno == EINPROGRESS) && poll(&p, 1, 5000) == 1 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0 && fetch(fd) == 0)
                outcome = 0;
            else
                outcome = 2;
            close(fd);
        }
        pthread_mutex_lock(&lock);
        ok += outcome == 0;
        abandoned += outcome == 1;
        failed += outcome == 2;
        pthread_mutex_unlock(&lock);
    }
    freeaddrinfo(ai);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    name = argv[1];
    port = argv[2];
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, run, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("ok=%d abandoned=%d failed=%d\n", ok, abandoned, failed);
    return failed ? 1 : 0;
}
