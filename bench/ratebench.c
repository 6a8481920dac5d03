/*
 * ratebench — an open-loop HTTP/1.1 load generator at a fixed request rate:
 * the fixed-rate table's client (bench/run -f, issue 23).
 *
 *   ratebench HOST PORT PATH RATE CONNECTIONS SECONDS WARMUP
 *
 * CONNECTIONS keep-alive connections, one request in flight on each, on one
 * epoll set in one thread. Request j of connection k is due at
 *
 *     start + (k + j * CONNECTIONS) / RATE
 *
 * so the connections take turns and together make RATE requests a second.
 * A request is sent when it is due, or as soon as its connection's previous
 * answer is in if that came later, and its latency is measured from when it
 * was due, not from when it was sent. That is wrk2's correction for
 * coordinated omission: a stall of the server (or of a mesh) delays every
 * request that should have gone out during it, and all of them count, as
 * they would for a client that does not wait for the server to be ready.
 * Answers are framed by the shim's own HTTP/1.x codec (policy/http1.c, over
 * llhttp). HOST is resolved once
 * with getaddrinfo: under the shim a service name gives its VIP.
 *
 * Requests due in the first WARMUP seconds are sent but not counted; then
 * SECONDS are measured. It prints one line:
 *
 *   RESULT due=N requests=N rate=R p50=MS p90=MS p99=MS p999=MS max=MS
 *          errors=N window=S cpu_main=S cpu_other=S rss_kb=N
 *
 * requests: answers with status 200 among the N requests due in the
 * measured window (rate: those per second); errors: the others (refused,
 * reset, other status, or no answer 5 s after the window). cpu_main is this
 * thread's CPU time over the window, cpu_other every other thread's (under
 * the shim: its engine); rss_kb is VmRSS at the end.
 *
 * Why our own: wrk2 is not packaged by Debian; hey's -q and h2load's --rate
 * pace requests but time each one from when it was sent (and h2load's rate
 * is of new connections), so a stall hides its own cost. This is the
 * smallest client that keeps the rate open-loop and measures from the
 * schedule.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "meshim/http1.h"

#define MAX_CONNS 1024
#define DRAIN_NS (5 * 1000000000ull)   /* how long the window's last answers may take */

struct conn {
    int fd;
    uint64_t index;          /* j: how many requests this connection was due so far */
    uint64_t due_ns;         /* when its current (or next) request is due */
    bool busy;               /* a request is in flight */
    size_t sent;             /* bytes of the request written so far */
    struct h1_parser answer;
};

static struct conn conns[MAX_CONNS];
static int nconns;
static double rate;
static uint64_t start_ns, measure_ns, end_ns;
static const char *host, *port;
static char request[512];
static size_t request_len;

static uint64_t *samples;
static size_t nsamples, cap_samples;
static uint64_t due_in_window, errors;

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

static uint64_t due_at(int k, uint64_t j)
{
    return start_ns + (uint64_t)((double)(k + j * (uint64_t)nconns) * 1e9 / rate);
}

static bool in_window(uint64_t due) { return due >= measure_ns && due < end_ns; }

static struct addrinfo *target;

static int dial(void)
{
    int fd = socket(target->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, target->ai_addr, target->ai_addrlen) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int epfd;

static void watch(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void open_conn(struct conn *c)
{
    c->fd = dial();
    if (c->fd < 0) {
        fprintf(stderr, "ratebench: cannot connect to %s:%s: %s\n", host, port, strerror(errno));
        exit(1);
    }
    h1_init(&c->answer, H1_RESPONSE);
    watch(c, EPOLLIN);
}

/* The current request is over (answered or failed): count it, schedule the
 * connection's next one. */
static void finish(struct conn *c, bool ok)
{
    uint64_t t = now_ns();
    if (in_window(c->due_ns)) {
        if (ok) {
            if (nsamples == cap_samples) {
                cap_samples = cap_samples ? cap_samples * 2 : 65536;
                samples = realloc(samples, cap_samples * sizeof(*samples));
                if (!samples)
                    abort();
            }
            samples[nsamples++] = t - c->due_ns;
        } else {
            errors++;
        }
    }
    c->busy = false;
    c->due_ns = due_at((int)(c - conns), ++c->index);
}

/* A connection that failed is replaced, and its request in flight (if
 * any: a server may close an idle one) counted as failed. */
static void fail(struct conn *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->busy)
        finish(c, false);
    open_conn(c);
}

static void send_more(struct conn *c)
{
    while (c->sent < request_len) {
        ssize_t n = send(c->fd, request + c->sent, request_len - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EAGAIN) {
            watch(c, EPOLLIN | EPOLLOUT);
            return;
        }
        if (n <= 0) {
            fail(c);
            return;
        }
        c->sent += (size_t)n;
    }
    watch(c, EPOLLIN);
}

static void send_due(uint64_t t)
{
    for (int k = 0; k < nconns; k++) {
        struct conn *c = &conns[k];
        if (c->busy || c->due_ns > t || c->due_ns >= end_ns)
            continue;
        if (in_window(c->due_ns))
            due_in_window++;
        c->busy = true;
        c->sent = 0;
        send_more(c);
    }
}

static void receive(struct conn *c)
{
    char buf[16384];
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0 || !c->busy) {   /* closed, reset, or bytes nobody asked for */
        fail(c);
        return;
    }
    /* One request in flight: the answer's end is the read's end. */
    for (size_t off = 0, used;; off += used) {
        enum h1_event e = h1_feed(&c->answer, buf + off, (size_t)n - off, &used);
        if (e == H1_END) {
            finish(c, h1_head(&c->answer)->status == 200);
            return;
        }
        if (e == H1_MORE)
            return;
        if (e != H1_HEAD) {
            fail(c);
            return;
        }
    }
}

/* When the next idle connection's request is due (or the window ends). */
static uint64_t next_due(void)
{
    uint64_t next = UINT64_MAX;
    for (int k = 0; k < nconns; k++)
        if (!conns[k].busy && conns[k].due_ns < end_ns && conns[k].due_ns < next)
            next = conns[k].due_ns;
    return next;
}

static bool anything_busy(void)
{
    for (int k = 0; k < nconns; k++)
        if (conns[k].busy)
            return true;
    return false;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double percentile_ms(double p)
{
    if (!nsamples)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)nsamples);
    if (i >= nsamples)
        i = nsamples - 1;
    return (double)samples[i] / 1e6;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: ratebench HOST PORT PATH RATE CONNECTIONS SECONDS WARMUP\n");
        return 2;
    }
    host = argv[1];
    port = argv[2];
    rate = atof(argv[4]);
    nconns = atoi(argv[5]);
    double secs = atof(argv[6]), warmup = atof(argv[7]);
    if (rate <= 0 || nconns < 1 || nconns > MAX_CONNS || secs <= 0 || warmup < 0) {
        fprintf(stderr, "ratebench: RATE > 0, 1 <= CONNECTIONS <= %d, SECONDS > 0, WARMUP >= 0\n", MAX_CONNS);
        return 2;
    }
    request_len = (size_t)snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", argv[3], host);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = getaddrinfo(host, port, &hints, &target);
    if (rc != 0) {
        fprintf(stderr, "ratebench: %s: %s\n", host, gai_strerror(rc));
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    for (int k = 0; k < nconns; k++)
        open_conn(&conns[k]);

    start_ns = now_ns();
    measure_ns = start_ns + (uint64_t)(warmup * 1e9);
    end_ns = measure_ns + (uint64_t)(secs * 1e9);
    for (int k = 0; k < nconns; k++)
        conns[k].due_ns = due_at(k, 0);

    uint64_t cpu_main0 = 0, cpu_all0 = 0;
    bool measuring = false;
    for (;;) {
        uint64_t t = now_ns();
        if (!measuring && t >= measure_ns) {
            cpu_main0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            cpu_all0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
            measuring = true;
        }
        send_due(t);
        bool busy = anything_busy();
        if (t >= end_ns && !busy)
            break;
        if (t >= end_ns + DRAIN_NS) {
            for (int k = 0; k < nconns; k++)
                if (conns[k].busy && in_window(conns[k].due_ns))
                    errors++;
            break;
        }
        uint64_t wake = next_due();
        if (!measuring && measure_ns < wake)
            wake = measure_ns;
        if (wake == UINT64_MAX)
            wake = t >= end_ns ? end_ns + DRAIN_NS : end_ns;
        uint64_t wait = wake > t ? wake - t : 0;
        struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000ull), .tv_nsec = (long)(wait % 1000000000ull)};
        struct epoll_event ev[64];
        int n = epoll_pwait2(epfd, ev, 64, &ts, NULL);
        for (int i = 0; i < n; i++) {
            struct conn *c = ev[i].data.ptr;
            if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                receive(c);
            else if ((ev[i].events & EPOLLOUT) && c->busy)
                send_more(c);
        }
    }
    uint64_t stop = now_ns();
    uint64_t cpu_main = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_main0;
    uint64_t cpu_all = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu_all0;
    if (cpu_all < cpu_main)   /* the two clocks are read apart: alone, this thread is all */
        cpu_all = cpu_main;
    double window = (double)(stop - measure_ns) / 1e9;
    qsort(samples, nsamples, sizeof(*samples), cmp_u64);
    printf("RESULT due=%llu requests=%zu rate=%.1f p50=%.4f p90=%.4f p99=%.4f p999=%.4f max=%.4f errors=%llu "
           "window=%.3f cpu_main=%.4f cpu_other=%.4f rss_kb=%ld\n",
           (unsigned long long)due_in_window, nsamples, (double)nsamples / secs, percentile_ms(50),
           percentile_ms(90), percentile_ms(99), percentile_ms(99.9),
           nsamples ? (double)samples[nsamples - 1] / 1e6 : 0.0, (unsigned long long)errors, window,
           (double)cpu_main / 1e9, (double)(cpu_all - cpu_main) / 1e9, rss_kb());
    return errors ? 1 : 0;
}
