/*
 * nbconnect NAME PORT MODE [EXPECT [COUNT]] — a non-blocking client as event loops
 * write them: the socket is registered (epoll ET, epoll one-shot, or poll)
 * BEFORE connect(), as nginx does (or, MODE et-after, right after it), then
 * waits for writability, checks SO_ERROR and repeated connect() answers (0
 * once it completed, then EISCONN, as Linux gives them), and fetches /who. Prints "peer=IP:PORT events=N body=…".
 * MODE: et | oneshot | et-after | poll.
 * EXPECT: ok (default), or the errno every attempt failing must give
 * (ECONNREFUSED, ETIMEDOUT): then the wait must report an error (EPOLLERR /
 * POLLERR), SO_ERROR must say that errno, and "failed=ERRNO" is printed.
 * COUNT (default 1): that many connections one after the other, each with
 * its own socket and epoll set, a line for each (a process start costs more
 * than the connect in user-mode Linux, where make test-rtt runs this).
 */
#include <errno.h>
#include <stdbool.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

static int die(const char *what)
{
    fprintf(stderr, "nbconnect: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Every attempt fails: the wait reports an error, SO_ERROR gives it. */
static int expect_failure(int fd, int ep, const char *mode, int want)
{
    unsigned got;
    if (strcmp(mode, "poll") == 0) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        if (poll(&p, 1, 10000) != 1)
            die("poll for the failure");
        got = (unsigned)p.revents;
        if (!(got & POLLERR)) {
            fprintf(stderr, "nbconnect: no POLLERR: revents %#x\n", got);
            return 1;
        }
    } else {
        struct epoll_event out[4];
        if (epoll_wait(ep, out, 4, 10000) != 1 || out[0].data.u64 != 0xfeedULL)
            die("epoll_wait for the failure");
        got = out[0].events;
        if (!(got & EPOLLERR)) {
            fprintf(stderr, "nbconnect: no EPOLLERR: events %#x\n", got);
            return 1;
        }
    }
    int err = -1;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        die("SO_ERROR");
    if (err != want) {
        fprintf(stderr, "nbconnect: SO_ERROR %s, want %s\n", strerror(err), strerror(want));
        return 1;
    }
    /* SO_ERROR is reported once, as the kernel does. */
    len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
        die("second SO_ERROR should be 0");
    printf("failed=%s\n", want == ECONNREFUSED ? "ECONNREFUSED" : "ETIMEDOUT");
    return 0;
}

/* One connection: registered, connected, checked, /who fetched. */
static int one_connection(const struct addrinfo *ai, const char *mode, int want_err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u64 = 0xfeedULL };
    if (strcmp(mode, "et") == 0)
        ev.events |= EPOLLET;
    else if (strcmp(mode, "oneshot") == 0)
        ev.events |= EPOLLONESHOT;
    else if (strcmp(mode, "et-after") == 0)
        ev.events |= EPOLLET;
    bool before = strcmp(mode, "poll") != 0 && strcmp(mode, "et-after") != 0;
    if (before && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl before connect");

    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc < 0 && errno != EINPROGRESS)
        die("connect");
    if (strcmp(mode, "et-after") == 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl after connect");
    /* Linux answers the first connect() after a non-blocking one completed
     * with 0, and EISCONN after that; one still in progress, EALREADY. */
    bool zero_given = rc == 0;
    if (rc < 0) {
        /* A second connect while in progress: EALREADY, or 0 when it has
         * completed. Never a new connection somewhere else. */
        int again = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (again < 0 && errno != EALREADY)
            die("second connect");
        zero_given = again == 0;
    }

    if (want_err) {
        int failed = expect_failure(fd, ep, mode, want_err);
        close(fd);
        close(ep);
        return failed;
    }

    int events = 0;
    if (strcmp(mode, "poll") == 0) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        if (poll(&p, 1, 5000) != 1 || !(p.revents & POLLOUT) || (p.revents & (POLLERR | POLLHUP)))
            die("poll for POLLOUT");
        events = 1;
    } else {
        struct epoll_event out[4];
        int n = epoll_wait(ep, out, 4, 5000);
        if (n != 1 || out[0].data.u64 != 0xfeedULL || !(out[0].events & EPOLLOUT) ||
            (out[0].events & (EPOLLERR | EPOLLHUP)))
            die("epoll_wait for EPOLLOUT");
        events = n;
        /* Edge-triggered and one-shot: no second event for the same edge. */
        if (epoll_wait(ep, out, 4, 100) != 0) {
            fprintf(stderr, "nbconnect: a second event for one edge\n");
            return 1;
        }
    }
    int err = -1;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
        die("SO_ERROR after connect");
    /* A loop that polls with connect() until it returns 0 stops here. */
    if (!zero_given && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        die("the first connect after it completed should return 0");
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno != EISCONN)
        die("connect after connected should be EISCONN");

    struct sockaddr_in peer;
    len = sizeof(peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
        die("getpeername");
    const char req[] = "GET /who HTTP/1.0\r\n\r\n";
    if (write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1)
        die("write");
    char buf[4096];
    size_t got = 0;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 5000) != 1)
            die("poll for the response");
        ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (r < 0 && errno == EAGAIN)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    if (!body)
        die("no HTTP response");
    body[strcspn(body + 4, "\r\n") + 4] = '\0';
    printf("peer=%s:%u events=%d body=%s\n", inet_ntoa(peer.sin_addr), ntohs(peer.sin_port), events, body + 4);
    close(fd);
    close(ep);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 6)
        return 2;
    const char *mode = argv[3];
    const char *expect = argc >= 5 ? argv[4] : "ok";
    int count = argc == 6 ? atoi(argv[5]) : 1;
    int want_err = strcmp(expect, "ECONNREFUSED") == 0 ? ECONNREFUSED
                   : strcmp(expect, "ETIMEDOUT") == 0  ? ETIMEDOUT
                                                       : 0;
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
    if (getaddrinfo(argv[1], argv[2], &hints, &ai) != 0)
        die("getaddrinfo");
    for (int i = 0; i < count; i++) {
        if (one_connection(ai, mode, want_err) != 0)
            return 1;
        fflush(stdout);
    }
    freeaddrinfo(ai);
    return 0;
}
