/*
 * epollrace NAME PORT ROUNDS SIZE TIMEOUT_MS — an event loop that registers
 * its connecting socket late, while the engine may be putting the real
 * socket back on the number (placeholder.h).
 *
 * Each round: a non-blocking connect to NAME:PORT (a service whose first
 * attempt often lands on a black hole and times out after TIMEOUT_MS in the
 * engine), then a wait until 0-12 ms after TIMEOUT_MS from the connect, then
 * epoll_ctl(ADD, EPOLLOUT) and epoll_wait up to 3 s. The socket is also
 * registered, one-shot, before connect() in a second set holding SIZE other
 * descriptors: the engine reads a one-shot registration's state from its
 * set's fdinfo, so the move takes a millisecond or more and the late ADD
 * often lands inside it.
 * A registration lost in the move never reports the finished connect: the
 * round fails. A connect whose every attempt timed out, reported as
 * EPOLLERR with SO_ERROR ETIMEDOUT, is a failed round, not a lost one.
 * Prints "rounds=N in_flight=M failed=K" (M: rounds whose connect was still
 * in flight when connect() returned; K: failed rounds).
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "epollrace: %s: %s\n", what, strerror(errno));
    exit(1);
}

static struct timespec after_us(struct timespec t, long us)
{
    t.tv_nsec += (us % 1000000) * 1000;
    t.tv_sec += us / 1000000 + t.tv_nsec / 1000000000;
    t.tv_nsec %= 1000000000;
    return t;
}

/* Is the connect still in flight (not writable yet)? On loopback only a
 * black-holed first attempt leaves it so. */
static int in_flight(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    return poll(&p, 1, 0) == 0;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: epollrace NAME PORT ROUNDS SIZE TIMEOUT_MS\n");
        return 2;
    }
    int rounds = atoi(argv[3]), size = atoi(argv[4]);
    long timeout_us = atol(argv[5]) * 1000;
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
    if (getaddrinfo(argv[1], argv[2], &hints, &ai) != 0)
        die("getaddrinfo");

    int ep = epoll_create1(EPOLL_CLOEXEC), big = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0 || big < 0)
        die("epoll_create1");
    for (int i = 0; i < size; i++) {
        int ev = eventfd(0, EFD_CLOEXEC);
        struct epoll_event e = { .events = EPOLLIN };
        if (ev < 0 || epoll_ctl(big, EPOLL_CTL_ADD, ev, &e) < 0)
            die("the big set");
    }
    int in_flight_rounds = 0, failed_rounds = 0;
    for (int r = 0; r < rounds; r++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            die("socket");
        /* Armed and never waited on: the move must read its state. */
        struct epoll_event once = { .events = EPOLLIN | EPOLLONESHOT };
        if (epoll_ctl(big, EPOLL_CTL_ADD, fd, &once) < 0)
            die("epoll_ctl ADD one-shot");
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
            die("connect");
        in_flight_rounds += in_flight(fd);
        /* Late: 0-12 ms after the first attempt's timeout, when the
         * engine's retry has connected and it moves the registrations
         * (connect() itself took a while: it moved them once too). */
        struct timespec at = after_us(t0, timeout_us + (r / 2 % 13) * 1000);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR)
            ;
        struct epoll_event e = { .events = EPOLLOUT, .data.u64 = (unsigned)r }, got;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0)
            die("epoll_ctl ADD");
        int n = epoll_wait(ep, &got, 1, 3000);
        if (n != 1) {
            fprintf(stderr, "epollrace: round %d: no event in 3 s (%d): the registration was lost\n",
                    r, n);
            return 1;
        }
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == ETIMEDOUT && (got.events & EPOLLERR)) {
            /* Every attempt timed out (a guest starved of CPU can miss the
             * live backend's answer too): reported as it should be. */
            failed_rounds++;
        } else if (err != 0 || !(got.events & EPOLLOUT)) {
            fprintf(stderr, "epollrace: round %d: events %#x, SO_ERROR %s\n", r, got.events,
                    strerror(err));
            return 1;
        }
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
    }
    printf("rounds=%d in_flight=%d failed=%d\n", rounds, in_flight_rounds, failed_rounds);
    return 0;
}
