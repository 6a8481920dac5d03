/*
 * jumpconnect SLOW N GOOD [plain] — a program that bounds name lookups and
 * blocking connects with alarm() and leaves them by siglongjmp from its
 * SIGALRM handler (installed with signal(), so SA_RESTART), as GNU wget's
 * --timeout and sendmail's connect timeout do.
 *
 * N times, in the main thread: alarm(1), getaddrinfo(SLOW) (AF_UNSPEC) and
 * a blocking connect to it on port 80; the alarm cuts one of them short,
 * and the socket is closed. Then, in the same thread, what the program
 * left as it was must be so still: cancellation enabled, SIGPIPE not
 * blocked; and GOOD (port 80) is resolved, connected and asked GET / with
 * a 10 s alarm. "plain": the jumps' sigsetjmp saves no signal mask (as
 * setjmp's on BSD-minded code), so the mask after a jump is the handler's.
 * "write": each connect is non-blocking, the socket is made blocking at
 * once and written to, so the alarm cuts the write's wait for the connect.
 *
 * Prints "jumped=K leaked=D cancel=enabled|disabled sigpipe=unblocked|blocked
 * good=OK|RESOLVE|ERRNO-NAME|TIMEOUT" on one line; D: TCP sockets still
 * open after the rounds (the program closed its own).
 *
 * jumpconnect --storm MAX_US NAME N — the storm: NAME (port 80) is
 * resolved once, then N blocking connects to it are each cut by a timer
 * due 1 to MAX_US microseconds in, wherever the thread is then (the shim's
 * socket() or connect(), working or waiting), and closed; then NAME as
 * GOOD above. Prints "jumped=K done=C good=...": TIMEOUT when a jump had
 * left a lock held (the shim's, OpenSSL's, malloc's) and the last connect
 * hung.
 *
 * jumpconnect --nb-storm MAX_US NAME N — the same with non-blocking
 * sockets (a connect in progress counts as done), as an event loop's
 * connects are; then NAME as GOOD above, blocking.
 *
 * jumpconnect --close-storm MAX_US NAME N — the same, each connect then
 * closed under the same timer: the cut lands in the connect or in the
 * close of a meshed connection; then NAME as GOOD above.
 *
 * jumpconnect --dup-storm MAX_US NAME N — the same, each connection then
 * closed by a dup2 of /dev/null onto its number.
 *
 * jumpconnect --closefrom-storm MAX_US NAME N — the same, each connection
 * closed by closefrom() of its number (which takes the shim's own
 * descriptors above it never).
 *
 * jumpconnect --reuse-storm MAX_US NAME N — the same, each connection
 * closed by a raw close system call that no hook sees (as a program's own
 * system call instruction would), and a socket() that gets its number back
 * under the same timer: that socket() lets go of the connection the shim
 * still had at the number (its record, counters and access-log line).
 *
 * jumpconnect --udp-storm MAX_US NAME PORT N — the same for datagrams: a
 * UDP socket sends "echo" to NAME:PORT (a service's VIP) and reads the
 * answer, all under one timer; then one more with a 10 s alarm. Prints
 * "jumped=K done=C good=OK|TIMEOUT".
 *
 * jumpconnect --lookup-storm MAX_US NAME N — the same for name lookups:
 * N getaddrinfo(NAME) each cut by a timer 1 to MAX_US microseconds in (as
 * wget -T bounds its lookups), then NAME as GOOD above. Prints "jumped=K
 * done=C good=...".
 *
 * jumpconnect --accept-storm MAX_US PORT N — the same for a blocking
 * accept() on 127.0.0.1:PORT (an [inbound] port of the mesh's, its
 * connections handed to a relay): a child connects N + 1 times and closes
 * each, then N accepts are each cut by a timer 1 to MAX_US microseconds in
 * (the connections wait in the backlog: each accept's time is the shim's
 * hand-off), then one more accept with a 10 s alarm. Prints "jumped=K
 * done=C good=OK|TIMEOUT". A descriptor a jump took from the program is
 * lost to it, as after a jump right past the kernel's accept.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

static sigjmp_buf env;
static int plain;

static void on_alarm(int sig)
{
    (void)sig;
    siglongjmp(env, 1);
}

static struct addrinfo *resolved;   /* the storm's, looked up once */
static bool nonblocking;            /* dial()'s sockets (--nb-storm) */

/* Resolves name (unless the storm did) and connects a blocking socket to
 * it (port 80): 0, or -2 when it cannot be resolved, or -1 with errno. *fd
 * is the socket. */
static int dial(const char *name, volatile int *fd)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = resolved;
    if (!ai && getaddrinfo(name, "80", &hints, &ai) != 0)
        return -2;
    *fd = socket(ai->ai_family, SOCK_STREAM | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    int rc = *fd < 0 ? -1 : connect(*fd, ai->ai_addr, ai->ai_addrlen);
    int err = errno;
    if (rc < 0 && nonblocking && err == EINPROGRESS)
        rc = 0;
    if (ai != resolved)
        freeaddrinfo(ai);
    errno = err;
    return rc;
}

static void timer_in(long us)
{
    struct itimerval t = { { 0, 0 }, { us / 1000000, us % 1000000 } };
    setitimer(ITIMER_REAL, &t, NULL);
}

/* TCP sockets open in this process, the shim's own among them (its
 * descriptors are moved high, past the program's). */
static int tcp_open(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int fd = atoi(e->d_name), type = 0, domain = 0;
        socklen_t tl = sizeof(type), dl = sizeof(domain);
        if (fd != dirfd(d) && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM &&
            getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) == 0 && domain != AF_UNIX)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static const char *good(const char *name)
{
    static char what[64];
    volatile int fd = -1;
    if (sigsetjmp(env, 1)) {
        if (fd >= 0)
            close(fd);
        return "TIMEOUT";
    }
    alarm(10);
    int rc = dial(name, &fd);
    const char *req = "GET / HTTP/1.0\r\n\r\n";
    char buf[512];
    if (rc == 0 && (write(fd, req, strlen(req)) < 0 || read(fd, buf, sizeof(buf)) <= 0))
        rc = -1;
    int err = errno;
    alarm(0);
    if (fd >= 0)
        close(fd);
    if (rc == 0)
        return "OK";
    if (rc == -2)
        return "RESOLVE";
    snprintf(what, sizeof(what), "%s", strerrorname_np(err) ? strerrorname_np(err) : "?");
    return what;
}

/* The storms' loop: n times, call(arg, &fd) cut by a timer due 1 to
 * max_us microseconds in. A call sets fd to a descriptor it made and
 * returns whether it succeeded; after it, with the timer off, done(arg)
 * (if any) frees what it returned and fd is closed: never inside the cut,
 * where a jump out of the program's own free() would damage its heap. */
static void cut_storm(int max_us, int n, bool (*call)(void *arg, volatile int *fd), void (*done)(void *arg),
                      void *arg, int *jumped_out, int *done_out)
{
    signal(SIGALRM, on_alarm);
    srand((unsigned)getpid());
    volatile int jumped = 0, finished = 0;
    for (volatile int i = 0; i < n; i++) {
        volatile int fd = -1;
        if (sigsetjmp(env, 1) == 0) {
            timer_in(1 + rand() % max_us);
            bool ok = call(arg, &fd);
            timer_in(0);
            finished += ok;
            if (done)
                done(arg);
        } else {
            jumped++;   /* what the call made and did not return is lost, as it would be without the shim */
        }
        if (fd >= 0)
            close(fd);
    }
    *jumped_out = jumped;
    *done_out = finished;
}

static bool storm_connect(void *name, volatile int *fd)
{
    return dial(name, fd) == 0;
}

/* A connect, and its close, under one timer. */
static bool storm_connect_close(void *name, volatile int *fd)
{
    if (dial(name, fd) != 0)
        return false;
    close(*fd);
    *fd = -1;
    return true;
}

/* A connect, and a dup2 onto its number that closes it, under one timer. */
static bool storm_connect_dup(void *name, volatile int *fd)
{
    static int null_fd = -1;
    if (null_fd < 0)
        null_fd = open("/dev/null", O_RDONLY);
    if (dial(name, fd) != 0)
        return false;
    dup2(null_fd, *fd);             /* *fd is /dev/null now: closed after, as any */
    return true;
}

/* A connect, and a closefrom() of its number, under one timer. */
static bool storm_connect_closefrom(void *name, volatile int *fd)
{
    if (dial(name, fd) != 0)
        return false;
    closefrom(*fd);
    *fd = -1;
    return true;
}

/* close(2) by the system call instruction itself: glibc's close() and
 * syscall() are both the shim's hooks. */
static void raw_close(int fd)
{
#if defined(__x86_64__)
    long rc;
    __asm__ volatile("syscall" : "=a"(rc) : "0"(3L /* SYS_close */), "D"((long)fd) : "rcx", "r11", "memory");
    (void)rc;
#else
#error "raw_close: x86_64 only"
#endif
}

/* A connect, its socket closed unseen, and a socket() on its number. */
static bool storm_connect_reuse(void *name, volatile int *fd)
{
    if (dial(name, fd) != 0)
        return false;
    int was = *fd;
    raw_close(was);
    *fd = -1;
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    return *fd == was;
}

static int storm(int max_us, const char *name, int n, bool nb, bool (*call)(void *, volatile int *))
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    if (getaddrinfo(name, "80", &hints, &resolved) != 0) {
        fprintf(stderr, "jumpconnect: cannot resolve %s\n", name);
        return 2;
    }
    int jumped, done;
    nonblocking = nb;
    cut_storm(max_us, n, call, NULL, (void *)name, &jumped, &done);
    nonblocking = false;
    printf("jumped=%d done=%d good=%s\n", jumped, done, good(name));
    return 0;
}

static bool storm_datagram(void *ai_arg, volatile int *fd)
{
    struct addrinfo *ai = ai_arg;
    char buf[64];
    *fd = socket(ai->ai_family, SOCK_DGRAM, 0);
    return *fd >= 0 && sendto(*fd, "echo storm", 10, 0, ai->ai_addr, ai->ai_addrlen) == 10 &&
           recvfrom(*fd, buf, sizeof(buf), 0, NULL, NULL) > 0;
}

static int udp_storm(int max_us, const char *name, const char *port, int n)
{
    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *ai;
    if (getaddrinfo(name, port, &hints, &ai) != 0) {
        fprintf(stderr, "jumpconnect: cannot resolve %s\n", name);
        return 2;
    }
    int jumped, done;
    cut_storm(max_us, n, storm_datagram, NULL, ai, &jumped, &done);
    volatile int fd = -1;
    volatile bool answered = false;
    if (sigsetjmp(env, 1) == 0) {
        alarm(10);
        answered = storm_datagram(ai, &fd);
        alarm(0);
    }
    if (fd >= 0)
        close(fd);
    printf("jumped=%d done=%d good=%s\n", jumped, done, answered ? "OK" : "TIMEOUT");
    return 0;
}

struct lookup {
    const char *name;
    struct addrinfo *volatile ai;
};

static bool storm_lookup(void *arg, volatile int *fd)
{
    (void)fd;
    struct lookup *l = arg;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
    l->ai = NULL;
    bool ok = getaddrinfo(l->name, "80", &hints, &ai) == 0;
    l->ai = ai;
    return ok;
}

static void lookup_free(void *arg)
{
    struct lookup *l = arg;
    if (l->ai)
        freeaddrinfo(l->ai);
    l->ai = NULL;
}

static int lookup_storm(int max_us, const char *name, int n)
{
    struct lookup l = { .name = name };
    int jumped, done;
    cut_storm(max_us, n, storm_lookup, lookup_free, &l, &jumped, &done);
    printf("jumped=%d done=%d good=%s\n", jumped, done, good(name));
    return 0;
}

static bool storm_accept(void *lfd, volatile int *fd)
{
    *fd = accept(*(int *)lfd, NULL, NULL);
    return *fd >= 0;
}

static int accept_storm(int max_us, int port, int n)
{
    /* Each jump loses a descriptor: room for them. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, n + 16) < 0) {
        perror("jumpconnect: listen");
        return 2;
    }
    pid_t child = fork();
    if (child == 0) {
        for (int i = 0; i <= n; i++) {
            int c = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
                _exit(1);
            close(c);
        }
        _exit(0);
    }
    int status = 1;
    if (child < 0 || waitpid(child, &status, 0) < 0 || status != 0) {
        fprintf(stderr, "jumpconnect: the connecting child failed\n");
        return 2;
    }
    int jumped, done;
    cut_storm(max_us, n, storm_accept, NULL, &lfd, &jumped, &done);
    volatile int last = -1;
    if (sigsetjmp(env, 1) == 0) {
        alarm(10);
        last = accept(lfd, NULL, NULL);
        alarm(0);
    }
    printf("jumped=%d done=%d good=%s\n", jumped, done, last >= 0 ? "OK" : "TIMEOUT");
    return 0;
}

/* The storms of connects: MODE MAX_US NAME N. */
static const struct {
    const char *mode;
    bool nb;
    bool (*call)(void *, volatile int *);
} connect_storms[] = {
    { "--storm", false, storm_connect },
    { "--nb-storm", true, storm_connect },
    { "--close-storm", false, storm_connect_close },
    { "--dup-storm", false, storm_connect_dup },
    { "--closefrom-storm", false, storm_connect_closefrom },
    { "--reuse-storm", false, storm_connect_reuse },
};

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--accept-storm") == 0)
        return accept_storm(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    for (size_t i = 0; argc == 5 && i < sizeof(connect_storms) / sizeof(connect_storms[0]); i++)
        if (strcmp(argv[1], connect_storms[i].mode) == 0)
            return storm(atoi(argv[2]), argv[3], atoi(argv[4]), connect_storms[i].nb, connect_storms[i].call);
    if (argc == 6 && strcmp(argv[1], "--udp-storm") == 0)
        return udp_storm(atoi(argv[2]), argv[3], argv[4], atoi(argv[5]));
    if (argc == 5 && strcmp(argv[1], "--lookup-storm") == 0)
        return lookup_storm(atoi(argv[2]), argv[3], atoi(argv[4]));
    if (argc < 4) {
        fprintf(stderr, "usage: jumpconnect SLOW N GOOD [plain|write] | --storm MAX_US NAME N | --nb-storm MAX_US NAME N | --close-storm MAX_US NAME N | --dup-storm MAX_US NAME N | --closefrom-storm MAX_US NAME N | --reuse-storm MAX_US NAME N | --udp-storm MAX_US NAME PORT N | --lookup-storm MAX_US NAME N | --accept-storm MAX_US PORT N\n");
        return 2;
    }
    plain = argc > 4 && strcmp(argv[4], "plain") == 0;
    bool late_write = argc > 4 && strcmp(argv[4], "write") == 0;
    signal(SIGALRM, on_alarm);
    int jumped = 0, n = atoi(argv[2]);
    for (int i = 0; i < n; i++) {
        volatile int fd = -1;
        if (sigsetjmp(env, !plain) == 0) {
            alarm(1);
            nonblocking = late_write;
            if (dial(argv[1], &fd) == 0 && late_write) {
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
                write(fd, "x", 1);
            }
            alarm(0);
        } else {
            jumped++;
            if (plain) {        /* the mask is the handler's: SIGALRM blocked */
                sigset_t alrm;
                sigemptyset(&alrm);
                sigaddset(&alrm, SIGALRM);
                sigprocmask(SIG_UNBLOCK, &alrm, NULL);
            }
        }
        nonblocking = false;    /* a jump skipped nothing after the call but this */
        if (fd >= 0)
            close(fd);
    }
    int leaked = tcp_open();
    int was;
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &was);
    sigset_t mask;
    sigprocmask(SIG_SETMASK, NULL, &mask);
    printf("jumped=%d leaked=%d cancel=%s sigpipe=%s good=%s\n", jumped, leaked,
           was == PTHREAD_CANCEL_ENABLE ? "enabled" : "disabled",
           sigismember(&mask, SIGPIPE) ? "blocked" : "unblocked", good(argv[3]));
    return 0;
}
