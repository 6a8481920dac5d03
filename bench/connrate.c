/*
 * connrate — new connections per second, as an event-loop client makes
 * them: bench/rtt's measuring client (issue 18).
 *
 *   connrate HOST PORT SECONDS CONCURRENCY
 *
 * CONCURRENCY slots run at once on one epoll set. Each slot, over and over:
 * a non-blocking socket, connect(), wait until writable, SO_ERROR, one
 * "GET / HTTP/1.1" with "Connection: close", read the answer to its end,
 * close. HOST is resolved once with getaddrinfo (under the shim a service
 * name gives its VIP). After SECONDS it prints one line:
 *
 *   RESULT conns=N rate=R connect_p50=U connect_p99=U call_p50=U call_p99=U errors=E
 *
 * rate is completed connections (answer read, status 200) per second;
 * connect_* is the time from connect() to writable (what a round trip
 * costs the program, µs); call_* is the time spent inside the connect()
 * call itself (what blocks the program's event loop, µs). A slot whose
 * connect or answer fails counts an error and starts again.
 *
 * Why C and not wrk: wrk neither reports connect times nor the time a
 * call blocks, and Python's own cost would hide the shim's.
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SLOTS 1024
#define MAX_SAMPLES (1u << 21)

enum slot_state { CONNECTING, READING };

struct slot {
    int fd;
    enum slot_state state;
    uint64_t started_ns;          /* just before connect() */
    char head[16];                /* the answer's first bytes */
    size_t got;
};

struct samples {
    uint32_t *us;
    size_t n;
};

static struct sockaddr_storage target;
static socklen_t target_len;
static int ep;
static struct samples connect_times, call_times;
static unsigned long conns, errors;

static const char request[] = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "connrate: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void sample(struct samples *s, uint64_t ns)
{
    if (s->n < MAX_SAMPLES)
        s->us[s->n++] = (uint32_t)(ns / 1000u);
}

static int by_value(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static unsigned percentile(struct samples *s, double p)
{
    if (s->n == 0)
        return 0;
    qsort(s->us, s->n, sizeof *s->us, by_value);
    size_t i = (size_t)(p * (double)(s->n - 1) + 0.5);
    return s->us[i];
}

/* The first few failures are told on stderr: a bench with errors is
 * not a result. */
static void slot_fail(struct slot *s, const char *what, int err)
{
    if (++errors <= 5)
        fprintf(stderr, "connrate: %s: %s\n", what, err ? strerror(err) : "unexpected answer");
    close(s->fd);
    s->fd = -1;
}

/* A new connection on the slot: the call timed, then wait for writable. */
static void slot_open(struct slot *s)
{
    s->fd = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s->fd < 0)
        die("socket");
    s->state = CONNECTING;
    s->got = 0;
    s->started_ns = now_ns();
    int rc = connect(s->fd, (struct sockaddr *)&target, target_len);
    sample(&call_times, now_ns() - s->started_ns);
    if (rc < 0 && errno != EINPROGRESS) {
        slot_fail(s, "connect", errno);
        return;
    }
    struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = s };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0)
        die("epoll_ctl add");
}

static void slot_connected(struct slot *s)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        slot_fail(s, "connect (SO_ERROR)", err ? err : errno);
        return;
    }
    sample(&connect_times, now_ns() - s->started_ns);
    /* The request is far smaller than any socket buffer: one write. */
    if (write(s->fd, request, sizeof request - 1) != (ssize_t)(sizeof request - 1)) {
        slot_fail(s, "write", errno);
        return;
    }
    s->state = READING;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev) < 0)
        die("epoll_ctl mod");
}

/* Read what is there; at the end of the answer the slot is done. */
static void slot_read(struct slot *s)
{
    char buf[4096];
    for (;;) {
        ssize_t n = read(s->fd, buf, sizeof buf);
        if (n > 0) {
            size_t keep = sizeof s->head - s->got;
            if (keep > (size_t)n)
                keep = (size_t)n;
            memcpy(s->head + s->got, buf, keep);
            s->got += keep;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n < 0) {
            slot_fail(s, "read", errno);
            return;
        }
        break;
    }
    bool ok = s->got >= 12 && memcmp(s->head + 9, "200", 3) == 0;
    if (!ok) {
        slot_fail(s, "answer", 0);
        return;
    }
    conns++;
    close(s->fd);
    s->fd = -1;
}

static void resolve(const char *host, const char *port)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "connrate: %s: %s\n", host, gai_strerror(rc));
        exit(1);
    }
    memcpy(&target, ai->ai_addr, ai->ai_addrlen);
    target_len = ai->ai_addrlen;
    freeaddrinfo(ai);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: connrate HOST PORT SECONDS CONCURRENCY\n");
        return 2;
    }
    double secs = atof(argv[3]);
    int n = atoi(argv[4]);
    if (secs <= 0 || n < 1 || n > MAX_SLOTS) {
        fprintf(stderr, "connrate: SECONDS > 0 and 1 <= CONCURRENCY <= %d\n", MAX_SLOTS);
        return 2;
    }
    resolve(argv[1], argv[2]);
    connect_times.us = malloc(MAX_SAMPLES * sizeof(uint32_t));
    call_times.us = malloc(MAX_SAMPLES * sizeof(uint32_t));
    struct slot *slots = calloc((size_t)n, sizeof *slots);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!connect_times.us || !call_times.us || !slots || ep < 0)
        die("setup");

    uint64_t start = now_ns(), end = start + (uint64_t)(secs * 1e9);
    for (int i = 0; i < n; i++)
        slot_open(&slots[i]);
    struct epoll_event evs[MAX_SLOTS];
    while (now_ns() < end) {
        int k = epoll_wait(ep, evs, n, 100);
        if (k < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < k; i++) {
            struct slot *s = evs[i].data.ptr;
            if (s->state == CONNECTING)
                slot_connected(s);
            else
                slot_read(s);
        }
        for (int i = 0; i < n; i++)
            if (slots[i].fd < 0)
                slot_open(&slots[i]);
    }
    double took = (double)(now_ns() - start) / 1e9;
    printf("RESULT conns=%lu rate=%.0f connect_p50=%u connect_p99=%u call_p50=%u call_p99=%u errors=%lu\n",
           conns, (double)conns / took, percentile(&connect_times, 0.50),
           percentile(&connect_times, 0.99), percentile(&call_times, 0.50),
           percentile(&call_times, 0.99), errors);
    return 0;
}
