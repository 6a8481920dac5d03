/*
 * exporter.c — `meshim exporter`: every live process's stats as Prometheus
 * text at /metrics (SPEC §3.7).
 *
 * One thread, one poll loop, non-blocking sockets. Each client is a small
 * state machine:
 *
 *   READING  --(a whole request head)-------> WRITING (the response)
 *            --(head over 8 KiB)-----------> WRITING (431)
 *            --(2 s without a whole head)--> closed
 *            --(all 64 slots taken and it is the oldest READING)--> closed
 *   WRITING  --(all sent)------------------> DRAINING (our side shut down)
 *            --(30 s, peer not reading)----> closed
 *   DRAINING --(peer's EOF, or 1 s)--------> closed
 *
 * so that a slow or silent client (slowloris) holds one of 64 slots for a
 * bounded time and never blocks the others: when every slot is taken, a
 * newcomer takes the slot of the client that has been sending its head the
 * longest (a scraper sends its request at once; one that holds idle
 * connections open cannot keep it out: review finding 10). A malformed
 * request gets a 400 rather than a hang. Each scrape reads the stats files
 * afresh.
 */
#include "exporter.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "meshim/util.h"
#include "statsview.h"

#define MAX_CLIENTS 64
#define HEAD_MAX 8192
#define READ_LIMIT_MS 2000
#define WRITE_LIMIT_MS 30000
#define DRAIN_LIMIT_MS 1000

enum client_state { FREE, READING, WRITING, DRAINING };

struct client {
    enum client_state state;
    int fd;
    uint64_t accepted_ns;
    uint64_t deadline_ns;
    char head[HEAD_MAX];
    size_t used;
    char *out;                  /* the response */
    size_t out_len, out_off;
};

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

static uint64_t after_ms(unsigned ms)
{
    return now_ns() + (uint64_t)ms * 1000000u;
}

static void client_close(struct client *c)
{
    close(c->fd);
    free(c->out);
    c->out = NULL;
    c->state = FREE;
}

static void respond(struct client *c, const char *status, const char *type, const char *body,
                    size_t len, bool head_only)
{
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    if (f) {
        fprintf(f, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                status, type, len);
        if (!head_only)
            fwrite(body, 1, len, f);
        fclose(f);
    }
    if (!out) {
        client_close(c);
        return;
    }
    c->out = out;
    c->out_len = out_len;
    c->out_off = 0;
    c->state = WRITING;
    c->deadline_ns = after_ms(WRITE_LIMIT_MS);
}

static void respond_text(struct client *c, const char *status, const char *text)
{
    respond(c, status, "text/plain; charset=utf-8", text, strlen(text), false);
}

/* The metrics of every live process, rendered now. */
static void respond_metrics(struct client *c, const char *dir, bool head_only)
{
    struct stats_view *views = NULL;
    int n = dir ? stats_view_scan(dir, 0, &views) : stats_view_scan_users(0, &views);
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    if (!f) {
        stats_view_free(views, n > 0 ? n : 0);
        respond_text(c, "500 Internal Server Error", "out of memory\n");
        return;
    }
    if (n > 0)
        stats_render_prometheus(views, n, f);
    else
        stats_render_prometheus(NULL, 0, f);    /* the families, no samples */
    fclose(f);
    stats_view_free(views, n > 0 ? n : 0);
    respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body, len, head_only);
    free(body);
}

/* A whole request head is in c->head: answer it. */
enum exporter_route exporter_route(const char *head, bool *head_only)
{
    char method[16], target[256], version[16];
    *head_only = false;
    if (sscanf(head, "%15s %255s %15s", method, target, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0)
        return ROUTE_BAD;
    *head_only = strcmp(method, "HEAD") == 0;
    if (!*head_only && strcmp(method, "GET") != 0)
        return ROUTE_METHOD;
    char *query = strchr(target, '?');
    if (query)
        *query = '\0';
    return strcmp(target, "/metrics") == 0 ? ROUTE_METRICS
           : strcmp(target, "/") == 0      ? ROUTE_ROOT
                                           : ROUTE_NOT_FOUND;
}

static void handle(struct client *c, const char *dir)
{
    bool head_only;
    switch (exporter_route(c->head, &head_only)) {
    case ROUTE_BAD:
        respond_text(c, "400 Bad Request", "bad request\n");
        break;
    case ROUTE_METHOD:
        respond_text(c, "405 Method Not Allowed", "only GET and HEAD\n");
        break;
    case ROUTE_METRICS:
        respond_metrics(c, dir, head_only);
        break;
    case ROUTE_ROOT:
        respond_text(c, "200 OK", "meshim exporter: the metrics are at /metrics\n");
        break;
    default:
        respond_text(c, "404 Not Found", "not found: the metrics are at /metrics\n");
    }
}

static void on_readable(struct client *c, const char *dir)
{
    if (c->state == DRAINING) {
        char sink[1024];
        ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            client_close(c);
        return;
    }
    ssize_t n = recv(c->fd, c->head + c->used, sizeof(c->head) - 1 - c->used, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        client_close(c);
        return;
    }
    if (n < 0)
        return;
    c->used += (size_t)n;
    c->head[c->used] = '\0';
    if (strstr(c->head, "\r\n\r\n") || strstr(c->head, "\n\n"))
        handle(c, dir);
    else if (c->used == sizeof(c->head) - 1)
        respond_text(c, "431 Request Header Fields Too Large", "request head too large\n");
}

static void on_writable(struct client *c)
{
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            client_close(c);
        return;
    }
    c->out_off += (size_t)n;
    if (c->out_off == c->out_len) {
        /* Shut our side and wait for the peer's EOF: closing with its
         * bytes unread would reset the connection and could cut the
         * response short on its side. */
        shutdown(c->fd, SHUT_WR);
        c->state = DRAINING;
        c->deadline_ns = after_ms(DRAIN_LIMIT_MS);
    }
}

static int listen_on(const char *text)
{
    struct netaddr a;
    struct sockaddr_storage ss;
    if (!netaddr_parse(text, true, &a) || !a.port) {
        fprintf(stderr, "meshim: exporter: --listen %s: not an ADDRESS:PORT (e.g. 127.0.0.1:9901)\n",
                text);
        return -1;
    }
    socklen_t len = netaddr_to_sockaddr(&a, a.port, a.family, &ss);
    int fd = socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0) {
        fprintf(stderr, "meshim: exporter: cannot listen on %s: %s\n", text, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void accept_clients(int lfd, struct client *clients)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct client *c = NULL, *oldest = NULL;
        for (int i = 0; i < MAX_CLIENTS && !c; i++) {
            if (clients[i].state == FREE)
                c = &clients[i];
            else if (clients[i].state == READING &&
                     (!oldest || clients[i].accepted_ns < oldest->accepted_ns))
                oldest = &clients[i];
        }
        if (!c && oldest) {
            client_close(oldest);   /* still no whole request: the newcomer goes first */
            c = oldest;
        }
        if (!c) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\n\r\n";
            send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        c->state = READING;
        c->fd = fd;
        c->used = 0;
        c->accepted_ns = now_ns();
        c->deadline_ns = after_ms(READ_LIMIT_MS);
    }
}

int exporter_run(const char *listen_addr, const char *dir)
{
    int lfd = listen_on(listen_addr);
    if (lfd < 0)
        return 1;
    struct sigaction sa = { .sa_handler = on_stop };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    static struct client clients[MAX_CLIENTS];
    fprintf(stderr, "meshim: exporter: serving the stats of %s at http://%s/metrics\n",
            dir ? dir : "/tmp/meshim-UID (every user's folder)", listen_addr);

    while (!stopping) {
        struct pollfd pfd[MAX_CLIENTS + 1];
        int idx[MAX_CLIENTS + 1], n = 0;
        pfd[n] = (struct pollfd){ .fd = lfd, .events = POLLIN };
        idx[n++] = -1;
        uint64_t now = now_ns();
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &clients[i];
            if (c->state == FREE)
                continue;
            if (now >= c->deadline_ns) {
                client_close(c);
                continue;
            }
            pfd[n] = (struct pollfd){ .fd = c->fd, .events = c->state == WRITING ? POLLOUT : POLLIN };
            idx[n++] = i;
        }
        if (poll(pfd, (nfds_t)n, 200) <= 0)
            continue;
        for (int k = 0; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            if (idx[k] < 0) {
                accept_clients(lfd, clients);
                continue;
            }
            struct client *c = &clients[idx[k]];
            if (c->state == WRITING)
                on_writable(c);
            else
                on_readable(c, dir);
        }
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i].state != FREE)
            client_close(&clients[i]);
    close(lfd);
    return 0;
}
