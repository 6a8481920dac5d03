/*
 * passthrough.c — every interposed symbol, used the way a program uses it on
 * things the mesh does not own, must behave exactly as libc's own.
 *
 * Run under LD_PRELOAD=libmeshim.so (tests/run-passthrough runs it with a
 * live config, with none, and with MESHIM_DISABLE=1). The test list is
 * generated from shim/libc/hooks.def: a symbol added there without a pt_NAME case
 * here does not compile. Resolver cases compare the shim's answer with the
 * answer of libc's own definition, found with dlsym on libc.so.6.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <unistd.h>

static void *libc_sym(const char *name)
{
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(libc);
    void *p = dlsym(libc, name);
    assert_non_null(p);
    return p;
}

/* A TCP listener on 127.0.0.1, ephemeral port. */
static int listener(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
    socklen_t len = sizeof(*addr);
    assert_int_equal(getsockname(fd, (struct sockaddr *)addr, &len), 0);
    assert_int_equal(listen(fd, 8), 0);
    return fd;
}

static bool is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* ------------------------------------------------------------- sockets -- */

static void pt_socket(void **state)
{
    (void)state;
    static const int KINDS[][2] = { { AF_INET, SOCK_STREAM }, { AF_INET, SOCK_DGRAM },
                                    { AF_INET6, SOCK_STREAM }, { AF_UNIX, SOCK_STREAM } };
    for (size_t i = 0; i < 4; i++) {
        int fd = socket(KINDS[i][0], KINDS[i][1] | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        int type;
        socklen_t len = sizeof(type);
        assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len), 0);
        assert_int_equal(type, KINDS[i][1]);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);
    }
    errno = 0;
    assert_int_equal(socket(12345, SOCK_STREAM, 0), -1);
    assert_int_equal(errno, EAFNOSUPPORT);
}

static void pt_socketpair(void **state)
{
    (void)state;
    int sv[2];
    char buf[8];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[0], "ping", 4), 4);
    assert_int_equal(read(sv[1], buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "ping", 4);
    close(sv[0]);
    close(sv[1]);
}

static void pt_connect(void **state)
{
    (void)state;
    struct sockaddr_in addr, peer;
    int lfd = listener(&addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    socklen_t len = sizeof(peer);
    assert_int_equal(getpeername(fd, (struct sockaddr *)&peer, &len), 0);
    assert_memory_equal(&peer.sin_addr, &addr.sin_addr, 4);
    assert_int_equal(peer.sin_port, addr.sin_port);
    close(fd);

    /* UDP to a service VIP is not meshed: the peer stays the VIP. */
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_DGRAM }, *res;
    if (getaddrinfo("orders", "53", &hints, &res) == 0) {
        int ufd = socket(AF_INET, SOCK_DGRAM, 0);
        assert_int_equal(connect(ufd, res->ai_addr, res->ai_addrlen), 0);
        len = sizeof(peer);
        assert_int_equal(getpeername(ufd, (struct sockaddr *)&peer, &len), 0);
        assert_memory_equal(&peer.sin_addr, &((struct sockaddr_in *)res->ai_addr)->sin_addr, 4);
        close(ufd);
        freeaddrinfo(res);
    }

    /* Unix sockets pass through. */
    struct sockaddr_un un = { .sun_family = AF_UNIX, .sun_path = "\0meshim-pt" };
    int ufd = socket(AF_UNIX, SOCK_STREAM, 0), cfd = socket(AF_UNIX, SOCK_STREAM, 0);
    socklen_t ulen = offsetof(struct sockaddr_un, sun_path) + 10;
    assert_int_equal(bind(ufd, (struct sockaddr *)&un, ulen), 0);
    assert_int_equal(listen(ufd, 1), 0);
    assert_int_equal(connect(cfd, (struct sockaddr *)&un, ulen), 0);
    close(cfd);
    close(ufd);

    /* Failures keep their errno. */
    errno = 0;
    assert_int_equal(connect(-1, (struct sockaddr *)&addr, sizeof(addr)), -1);
    assert_int_equal(errno, EBADF);
    close(lfd);
}

static void accept_case(bool four)
{
    struct sockaddr_in addr, peer, local;
    int lfd = listener(&addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    socklen_t len = sizeof(peer);
    int afd = four ? accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC | SOCK_NONBLOCK)
                   : accept(lfd, (struct sockaddr *)&peer, &len);
    assert_true(afd >= 0);
    socklen_t llen = sizeof(local);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&local, &llen), 0);
    assert_int_equal(peer.sin_port, local.sin_port);
    if (four) {
        assert_true(fcntl(afd, F_GETFD) & FD_CLOEXEC);
        assert_true(fcntl(afd, F_GETFL) & O_NONBLOCK);
    }
    assert_int_equal(write(fd, "x", 1), 1);
    char c;
    assert_int_equal(read(afd, &c, 1), 1);
    close(afd);
    close(fd);
    close(lfd);
}

static void pt_accept(void **state)
{
    (void)state;
    accept_case(false);
}

static void pt_accept4(void **state)
{
    (void)state;
    accept_case(true);
}

static void pt_listen(void **state)
{
    (void)state;
    struct sockaddr_in addr;
    int lfd = listener(&addr);      /* listen(fd, 8) */
    int v = 0;
    socklen_t len = sizeof(v);
    assert_int_equal(getsockopt(lfd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len), 0);
    assert_int_equal(v, 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(fd);
    close(lfd);

    /* Failures keep their errno. */
    errno = 0;
    assert_int_equal(listen(-1, 8), -1);
    assert_int_equal(errno, EBADF);
    int ufd = socket(AF_INET, SOCK_DGRAM, 0);
    errno = 0;
    assert_int_equal(listen(ufd, 8), -1);
    assert_int_equal(errno, EOPNOTSUPP);
    close(ufd);
}

/* --------------------------------------------------- descriptor lifetime -- */

/* ------------------------------------------------- socket options, names -- */

static void pt_getsockopt(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int v = -1;
    socklen_t len = sizeof(v);
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len), 0);
    assert_int_equal(v, SOCK_STREAM);
    len = sizeof(v);
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &len), 0);
    assert_int_equal(v, 0);
    errno = 0;
    assert_int_equal(getsockopt(-1, SOL_SOCKET, SO_TYPE, &v, &len), -1);
    assert_int_equal(errno, EBADF);
    close(fd);
}

static void pt_setsockopt(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1, v = 0;
    socklen_t len = sizeof(v);
    assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    assert_int_equal(v, 1);
    errno = 0;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, 0x7fff, &one, sizeof(one)), -1);
    assert_int_equal(errno, ENOPROTOOPT);
    close(fd);
}

static void pt_getsockname(void **state)
{
    (void)state;
    struct sockaddr_in addr, got;
    int lfd = listener(&addr);
    socklen_t len = sizeof(got);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&got, &len), 0);
    assert_int_equal(got.sin_port, addr.sin_port);
    errno = 0;
    assert_int_equal(getsockname(-1, (struct sockaddr *)&got, &len), -1);
    assert_int_equal(errno, EBADF);
    close(lfd);
}

static void pt_getpeername(void **state)
{
    (void)state;
    struct sockaddr_in addr, got;
    int lfd = listener(&addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof(got);
    errno = 0;
    assert_int_equal(getpeername(fd, (struct sockaddr *)&got, &len), -1);
    assert_int_equal(errno, ENOTCONN);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    len = sizeof(got);
    assert_int_equal(getpeername(fd, (struct sockaddr *)&got, &len), 0);
    assert_int_equal(got.sin_port, addr.sin_port);
    close(fd);
    close(lfd);
}

static void pt_epoll_create(void **state)
{
    (void)state;
    int ep = epoll_create(1);
    assert_true(ep >= 0);
    assert_false(fcntl(ep, F_GETFD) & FD_CLOEXEC);
    close(ep);
    errno = 0;
    assert_int_equal(epoll_create(0), -1);
    assert_int_equal(errno, EINVAL);
}

static void pt_epoll_create1(void **state)
{
    (void)state;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_true(ep >= 0);
    assert_true(fcntl(ep, F_GETFD) & FD_CLOEXEC);
    close(ep);
    errno = 0;
    assert_int_equal(epoll_create1(-1), -1);
    assert_int_equal(errno, EINVAL);
}

static void pt_epoll_ctl(void **state)
{
    (void)state;
    int ep = epoll_create1(0), sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = 42 }, got;
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev), 0);
    assert_int_equal(epoll_wait(ep, &got, 1, 0), 1);
    assert_true(got.data.u64 == 42 && (got.events & EPOLLOUT));
    errno = 0;
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_DEL, sv[0], NULL), 0);
    errno = 0;
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_MOD, sv[0], &ev), -1);
    assert_int_equal(errno, ENOENT);
    close(sv[0]);
    close(sv[1]);
    close(ep);
}

static void pt_close(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(close(fd), 0);
    assert_false(is_open(fd));
    errno = 0;
    assert_int_equal(close(fd), -1);
    assert_int_equal(errno, EBADF);
}

static void pt_close_range(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(dup2(fd, 700), 700);
    assert_int_equal(dup2(fd, 701), 701);
    assert_int_equal(close_range(700, 701, CLOSE_RANGE_CLOEXEC), 0);
    assert_true(fcntl(700, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(close_range(700, 701, 0), 0);
    assert_false(is_open(700));
    assert_false(is_open(701));
    assert_true(is_open(fd));
    close(fd);
}

static void pt_closefrom(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(dup2(fd, 900), 900);
    assert_int_equal(dup2(fd, 950), 950);
    closefrom(900);
    assert_false(is_open(900));
    assert_false(is_open(950));
    assert_true(is_open(fd));
    close(fd);
}

static void pt_dup(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int d = dup(fd);
    assert_true(d >= 0 && d != fd);
    assert_false(fcntl(d, F_GETFD) & FD_CLOEXEC);
    close(fd);
    close(d);
    errno = 0;
    assert_int_equal(dup(-1), -1);
    assert_int_equal(errno, EBADF);
}

static void pt_dup2(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(dup2(fd, 600), 600);
    assert_false(fcntl(600, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(dup2(fd, fd), fd);
    close(600);
    close(fd);
}

static void pt_dup3(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(dup3(fd, 601, O_CLOEXEC), 601);
    assert_true(fcntl(601, F_GETFD) & FD_CLOEXEC);
    errno = 0;
    assert_int_equal(dup3(fd, fd, 0), -1);
    assert_int_equal(errno, EINVAL);
    close(601);
    close(fd);
}

int fcntl64(int fd, int cmd, ...);

static void fcntl_case(int (*f)(int, int, ...))
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int flags = f(fd, F_GETFL);
    assert_int_equal(f(fd, F_SETFL, flags | O_NONBLOCK), 0);
    assert_true(f(fd, F_GETFL) & O_NONBLOCK);
    int d = f(fd, F_DUPFD_CLOEXEC, 500);
    assert_true(d >= 500);
    assert_true(f(d, F_GETFD) & FD_CLOEXEC);
    int d2 = f(fd, F_DUPFD, 510);
    assert_true(d2 >= 510);
    struct flock lk = { .l_type = F_WRLCK };
    char tmpl[] = "/tmp/meshim-pt-XXXXXX";
    int file = mkstemp(tmpl);
    assert_int_equal(f(file, F_SETLK, &lk), 0);     /* pointer arguments pass through */
    unlink(tmpl);
    close(file);
    close(d2);
    close(d);
    close(fd);
}

static void pt_fcntl(void **state)
{
    (void)state;
    fcntl_case(fcntl);
}

static void pt_fcntl64(void **state)
{
    (void)state;
    fcntl_case(fcntl64);
}

/* ioctl(): FIONREAD counts a pipe's bytes and a socket's (neither is
 * kernel TLS); FIONBIO sets what fcntl sees. */
static void pt_ioctl(void **state)
{
    (void)state;
    int p[2], n = -1, on = 1;
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "abc", 3), 3);
    assert_int_equal(ioctl(p[0], FIONREAD, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ioctl(p[0], FIONBIO, &on), 0);
    assert_true(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    close(p[0]);
    close(p[1]);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[1], "hello", 5), 5);
    assert_int_equal(ioctl(sv[0], FIONREAD, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(ioctl(-1, FIONREAD, &n), -1);
    assert_int_equal(errno, EBADF);
    close(sv[0]);
    close(sv[1]);
}

/* ----------------------------------------------------------- data path -- */

/* The checked reads of _FORTIFY_SOURCE, called as a fortified program
 * calls them. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *addr,
                       socklen_t *len);

/* A connected pair, non-blocking on the reading end [0]. */
static void pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
}

static void unpair(int sv[2])
{
    close(sv[0]);
    close(sv[1]);
}

/* Reads: the bytes, then EAGAIN on the drained end, EBADF on no descriptor. */
#define READ_CASE(name, call_ok, call_on)                                   \
    static void pt_##name(void **state)                                     \
    {                                                                       \
        (void)state;                                                        \
        int sv[2], fd;                                                      \
        char buf[16];                                                       \
        pair(sv);                                                           \
        assert_int_equal(send(sv[1], "abcdef", 6, 0), 6);                   \
        fd = sv[0];                                                         \
        assert_int_equal(call_ok, 6);                                       \
        assert_memory_equal(buf, "abcdef", 6);                              \
        errno = 0;                                                          \
        assert_int_equal(call_ok, -1);                                      \
        assert_int_equal(errno, EAGAIN);                                    \
        fd = -1;                                                            \
        assert_int_equal(call_on, -1);                                      \
        assert_int_equal(errno, EBADF);                                     \
        unpair(sv);                                                         \
    }

READ_CASE(read, read(fd, buf, sizeof(buf)), read(fd, buf, sizeof(buf)))
READ_CASE(recv, recv(fd, buf, sizeof(buf), 0), recv(fd, buf, sizeof(buf), 0))
READ_CASE(recvfrom, recvfrom(fd, buf, sizeof(buf), 0, NULL, NULL), recvfrom(fd, buf, sizeof(buf), 0, NULL, NULL))
READ_CASE(__read_chk, __read_chk(fd, buf, sizeof(buf), sizeof(buf)), __read_chk(fd, buf, 4, sizeof(buf)))
READ_CASE(__recv_chk, __recv_chk(fd, buf, sizeof(buf), sizeof(buf), 0), __recv_chk(fd, buf, 4, sizeof(buf), 0))
READ_CASE(__recvfrom_chk, __recvfrom_chk(fd, buf, sizeof(buf), sizeof(buf), 0, NULL, NULL),
          __recvfrom_chk(fd, buf, 4, sizeof(buf), 0, NULL, NULL))

static void pt_readv(void **state)
{
    (void)state;
    int sv[2];
    char a[2], b[8];
    struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
    pair(sv);
    assert_int_equal(send(sv[1], "abcdef", 6, 0), 6);
    assert_int_equal(readv(sv[0], iov, 2), 6);
    assert_memory_equal(a, "ab", 2);
    assert_memory_equal(b, "cdef", 4);
    errno = 0;
    assert_int_equal(readv(sv[0], iov, 2), -1);
    assert_int_equal(errno, EAGAIN);
    unpair(sv);
}

static void pt_recvmsg(void **state)
{
    (void)state;
    int sv[2];
    char buf[8];
    struct iovec iov = { buf, sizeof(buf) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    pair(sv);
    assert_int_equal(send(sv[1], "abc", 3, 0), 3);
    assert_int_equal(recvmsg(sv[0], &msg, MSG_PEEK), 3);     /* peeked: still there */
    assert_int_equal(recvmsg(sv[0], &msg, 0), 3);
    assert_memory_equal(buf, "abc", 3);
    errno = 0;
    assert_int_equal(recvmsg(sv[0], &msg, 0), -1);
    assert_int_equal(errno, EAGAIN);
    unpair(sv);
}

/* Writes: the bytes arrive; EPIPE (MSG_NOSIGNAL) once the peer is gone;
 * EBADF on no descriptor. */
static void pt_write(void **state)
{
    (void)state;
    int sv[2];
    char buf[8];
    pair(sv);
    assert_int_equal(write(sv[1], "abc", 3), 3);
    assert_int_equal(read(sv[0], buf, sizeof(buf)), 3);
    errno = 0;
    assert_int_equal(write(-1, "abc", 3), -1);
    assert_int_equal(errno, EBADF);
    unpair(sv);
}

static void pt_writev(void **state)
{
    (void)state;
    int sv[2];
    char buf[8];
    struct iovec iov[2] = { { "ab", 2 }, { "cd", 2 } };
    pair(sv);
    assert_int_equal(writev(sv[1], iov, 2), 4);
    assert_int_equal(read(sv[0], buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "abcd", 4);
    unpair(sv);
}

static void pt_send(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    assert_int_equal(send(sv[1], "abc", 3, 0), 3);
    close(sv[0]);
    errno = 0;
    assert_int_equal(send(sv[1], "abc", 3, MSG_NOSIGNAL), -1);
    assert_int_equal(errno, EPIPE);
    close(sv[1]);
}

static void pt_sendto(void **state)
{
    (void)state;
    int sv[2];
    char buf[8];
    pair(sv);
    assert_int_equal(sendto(sv[1], "abc", 3, 0, NULL, 0), 3);
    assert_int_equal(recv(sv[0], buf, sizeof(buf), 0), 3);
    unpair(sv);
}

static void pt_sendmsg(void **state)
{
    (void)state;
    int sv[2];
    char buf[8];
    struct iovec iov[2] = { { "ab", 2 }, { "c", 1 } };
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
    pair(sv);
    assert_int_equal(sendmsg(sv[1], &msg, 0), 3);
    assert_int_equal(recv(sv[0], buf, sizeof(buf), 0), 3);
    assert_memory_equal(buf, "abc", 3);
    errno = 0;
    assert_int_equal(sendmsg(-1, &msg, 0), -1);
    assert_int_equal(errno, EBADF);
    unpair(sv);
}

/* Datagrams by the batch on loopback (no VIP): sent to the address given,
 * received with the sender's own address; EBADF on no descriptor. */
static int udp_bound(struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    socklen_t len = sizeof(*sa);
    *sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &len), 0);
    return fd;
}

static void pt_sendmmsg(void **state)
{
    (void)state;
    struct sockaddr_in to, from;
    int rx = udp_bound(&to), tx = udp_bound(&from);
    struct iovec iov[2] = { { "one", 3 }, { "two", 3 } };
    struct mmsghdr vec[2] = {
        { .msg_hdr = { .msg_name = &to, .msg_namelen = sizeof(to), .msg_iov = &iov[0], .msg_iovlen = 1 } },
        { .msg_hdr = { .msg_name = &to, .msg_namelen = sizeof(to), .msg_iov = &iov[1], .msg_iovlen = 1 } },
    };
    assert_int_equal(sendmmsg(tx, vec, 2, 0), 2);
    assert_int_equal(vec[1].msg_len, 3);
    assert_ptr_equal(vec[0].msg_hdr.msg_name, &to);    /* the caller's headers as they were */
    char buf[8];
    assert_int_equal(recv(rx, buf, sizeof(buf), 0), 3);
    assert_memory_equal(buf, "one", 3);
    errno = 0;
    assert_int_equal(sendmmsg(-1, vec, 2, 0), -1);
    assert_int_equal(errno, EBADF);
    close(rx);
    close(tx);
}

static void pt_recvmmsg(void **state)
{
    (void)state;
    struct sockaddr_in to, from, src[2];
    int rx = udp_bound(&to), tx = udp_bound(&from);
    assert_int_equal(sendto(tx, "one", 3, 0, (struct sockaddr *)&to, sizeof(to)), 3);
    assert_int_equal(sendto(tx, "two", 3, 0, (struct sockaddr *)&to, sizeof(to)), 3);
    char buf[2][8];
    struct iovec iov[2] = { { buf[0], 8 }, { buf[1], 8 } };
    struct mmsghdr vec[2] = {
        { .msg_hdr = { .msg_name = &src[0], .msg_namelen = sizeof(src[0]), .msg_iov = &iov[0], .msg_iovlen = 1 } },
        { .msg_hdr = { .msg_name = &src[1], .msg_namelen = sizeof(src[1]), .msg_iov = &iov[1], .msg_iovlen = 1 } },
    };
    struct timespec ten = { 10, 0 };
    assert_int_equal(recvmmsg(rx, vec, 2, MSG_WAITFORONE, &ten), 2);
    assert_memory_equal(buf[1], "two", 3);
    assert_int_equal(vec[1].msg_hdr.msg_namelen, sizeof(from));
    assert_int_equal(src[1].sin_port, from.sin_port);
    errno = 0;
    assert_int_equal(recvmmsg(rx, vec, 2, 0, NULL), -1);
    assert_int_equal(errno, EAGAIN);
    close(rx);
    close(tx);
}

/* syscall(): any number, its arguments passed on; SYS_close closes. */
/* ---------------------------------------------------------- process end -- */

/* A child that ends with END(status): its status reaches the parent, and
 * exit()'s handlers do not run (what stdio holds is never written). */
#define EXIT_CASE(name)                                                     \
    static void pt_##name(void **state)                                     \
    {                                                                       \
        (void)state;                                                        \
        int sv[2];                                                          \
        assert_int_equal(pipe(sv), 0);                                      \
        pid_t pid = fork();                                                 \
        assert_true(pid >= 0);                                              \
        if (pid == 0) {                                                     \
            close(sv[0]);                                                   \
            dup2(sv[1], 1);                                                 \
            printf("buffered, never flushed");                              \
            name(7);                                                        \
        }                                                                   \
        close(sv[1]);                                                       \
        int status;                                                         \
        assert_int_equal(waitpid(pid, &status, 0), pid);                    \
        assert_true(WIFEXITED(status));                                     \
        assert_int_equal(WEXITSTATUS(status), 7);                           \
        char buf[64];                                                       \
        assert_int_equal(read(sv[0], buf, sizeof(buf)), 0);                 \
        close(sv[0]);                                                       \
    }
EXIT_CASE(_exit)
EXIT_CASE(_Exit)

/* daemon(0, 0): the caller's parent sees it exit 0 at once; the daemon is
 * a session leader in / with 0, 1 and 2 on /dev/null, and keeps the rest. */
static void pt_daemon(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(pipe(sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        if (daemon(0, 0) != 0)
            _exit(3);
        struct stat null, in;
        char cwd[8] = "";
        bool ok = getsid(0) == getpid() && getcwd(cwd, sizeof(cwd)) && strcmp(cwd, "/") == 0 &&
                  stat("/dev/null", &null) == 0 && fstat(0, &in) == 0 && in.st_rdev == null.st_rdev &&
                  fcntl(1, F_GETFD) >= 0 && fcntl(2, F_GETFD) >= 0;
        (void)!write(sv[1], ok ? "y" : "n", 1);
        _exit(0);
    }
    close(sv[1]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char c = 0;
    assert_int_equal(read(sv[0], &c, 1), 1);    /* the daemon's answer (it outlives its parent) */
    assert_int_equal(c, 'y');
    close(sv[0]);
}

/* ---------------------------------------------------------- privileges -- */

/* Each call, in a fork child (the test's own user stays), does what libc's
 * does: as root it takes the child to nobody (65534) and no further back;
 * as anyone else it fails with EPERM. */
static void in_child(void (*body)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        body();
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the child failed (status %d)", status);
}

/* In a child: a failed check exits 1 (cmocka's asserts belong to the parent). */
#define CHILD_CHECK(cond) \
    do { if (!(cond)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond); _exit(1); } } while (0)

static bool as_root(void) { return geteuid() == 0; }

static void uid_calls(void)
{
    uid_t r, e, s;
    if (!as_root()) {
        CHILD_CHECK(setuid(0) == -1 && errno == EPERM);
        return;
    }
    CHILD_CHECK(setresuid(0, 65534, 0) == 0 && getresuid(&r, &e, &s) == 0 && r == 0 && e == 65534 && s == 0);
    CHILD_CHECK(seteuid(0) == 0 && geteuid() == 0);
    CHILD_CHECK(setreuid(65534, 65534) == 0 && getuid() == 65534 && geteuid() == 65534);
    CHILD_CHECK(setuid(0) == -1 && errno == EPERM);
    CHILD_CHECK(seteuid(0) == -1 && errno == EPERM);
    CHILD_CHECK(setreuid(0, 0) == -1 && errno == EPERM);
    CHILD_CHECK(setresuid(0, 0, 0) == -1 && errno == EPERM);
}

static void gid_calls(void)
{
    gid_t r, e, s, list[4];
    if (!as_root()) {
        CHILD_CHECK(setgid(0) == -1 && errno == EPERM);
        CHILD_CHECK(setgroups(0, NULL) == -1 && errno == EPERM);
        return;
    }
    CHILD_CHECK(setgroups(1, (gid_t[]){ 65534 }) == 0 && getgroups(4, list) == 1 && list[0] == 65534);
    CHILD_CHECK(initgroups("root", 0) == 0 && getgroups(4, list) >= 1);
    CHILD_CHECK(setresgid(0, 65534, 0) == 0 && getresgid(&r, &e, &s) == 0 && e == 65534);
    CHILD_CHECK(setegid(0) == 0 && getegid() == 0);
    CHILD_CHECK(setregid(65534, 65534) == 0 && getgid() == 65534 && getegid() == 65534);
    CHILD_CHECK(setgid(65534) == 0 && getgid() == 65534);
    CHILD_CHECK(setuid(65534) == 0);
    CHILD_CHECK(setgid(0) == -1 && errno == EPERM);
    CHILD_CHECK(setgroups(0, NULL) == -1 && errno == EPERM);
}

static void chroot_calls(void)
{
    CHILD_CHECK(chroot("/nonexistent-folder") == -1 && errno == (as_root() ? ENOENT : EPERM));
    if (as_root()) {
        CHILD_CHECK(chroot("/proc") == 0 && chdir("/") == 0 && access("/self", F_OK) == 0);
        CHILD_CHECK(access("/etc", F_OK) == -1);
    }
}

static void pt_setuid(void **state) { (void)state; in_child(uid_calls); }
static void pt_seteuid(void **state) { (void)state; in_child(uid_calls); }
static void pt_setreuid(void **state) { (void)state; in_child(uid_calls); }
static void pt_setresuid(void **state) { (void)state; in_child(uid_calls); }
static void pt_setgid(void **state) { (void)state; in_child(gid_calls); }
static void pt_setegid(void **state) { (void)state; in_child(gid_calls); }
static void pt_setregid(void **state) { (void)state; in_child(gid_calls); }
static void pt_setresgid(void **state) { (void)state; in_child(gid_calls); }
static void pt_setgroups(void **state) { (void)state; in_child(gid_calls); }
static void pt_initgroups(void **state) { (void)state; in_child(gid_calls); }
static void pt_chroot(void **state) { (void)state; in_child(chroot_calls); }

/* ---------------------------------------------------------------- exec -- */

/* Each exec form, in a fork child, runs sh with an argument and a variable
 * (the environment forms pass theirs; the others the child's own) and must
 * exit 7; each fails, in this process, as libc's does. */
static char *exec_argv[] = { "sh", "-c", "[ \"$1\" = two ] && [ \"$X\" = y ] && exit 7; exit 1", "sh", "two", NULL };
static char *exec_envp[] = { "X=y", NULL };

static void exec_exits_7(int (*run)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("X", "y", 1);
        run();
        _exit(99);                  /* the exec failed */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 7);
}

static void exec_fails(int ret, int err)
{
    int saved = errno;
    assert_int_equal(ret, -1);
    assert_int_equal(saved, err);
}

static int run_execve(void) { return execve("/bin/sh", exec_argv, exec_envp); }
static int run_execv(void) { return execv("/bin/sh", exec_argv); }
static int run_execvp(void) { return execvp("sh", exec_argv); }
static int run_execvpe(void) { return execvpe("sh", exec_argv, exec_envp); }
static int run_execveat(void) { return execveat(AT_FDCWD, "/bin/sh", exec_argv, exec_envp, 0); }
static int run_execl(void) { return execl("/bin/sh", "sh", "-c", exec_argv[2], "sh", "two", (char *)NULL); }
static int run_execlp(void) { return execlp("sh", "sh", "-c", exec_argv[2], "sh", "two", (char *)NULL); }
static int run_execle(void)
{
    return execle("/bin/sh", "sh", "-c", exec_argv[2], "sh", "two", (char *)NULL, exec_envp);
}
static int run_fexecve(void)
{
    int fd = open("/bin/sh", O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -1 : fexecve(fd, exec_argv, exec_envp);
}

static void pt_execve(void **state)
{
    (void)state;
    exec_exits_7(run_execve);
    exec_fails(execve("/nonexistent/sh", exec_argv, exec_envp), ENOENT);
    exec_fails(execve("/dev/null", exec_argv, exec_envp), EACCES);
}

static void pt_execv(void **state)
{
    (void)state;
    exec_exits_7(run_execv);
    exec_fails(execv("/nonexistent/sh", exec_argv), ENOENT);
}

static void pt_execvp(void **state)
{
    (void)state;
    exec_exits_7(run_execvp);
    exec_fails(execvp("no-such-program-anywhere", exec_argv), ENOENT);
}

static void pt_execvpe(void **state)
{
    (void)state;
    exec_exits_7(run_execvpe);
    exec_fails(execvpe("no-such-program-anywhere", exec_argv, exec_envp), ENOENT);
}

static void pt_fexecve(void **state)
{
    (void)state;
    exec_exits_7(run_fexecve);
    exec_fails(fexecve(-1, exec_argv, exec_envp), EINVAL);
}

static void pt_execveat(void **state)
{
    (void)state;
    exec_exits_7(run_execveat);
    exec_fails(execveat(AT_FDCWD, "/nonexistent/sh", exec_argv, exec_envp, 0), ENOENT);
}

/* posix_spawn: the child runs sh as the exec forms do (exit 7); a
 * program that is not there is an error number, as libc's. */
static void spawn_exits_7(int ret, pid_t pid)
{
    assert_int_equal(ret, 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 7);
}

static void pt_posix_spawn(void **state)
{
    (void)state;
    pid_t pid = 0;
    int r = posix_spawn(&pid, "/bin/sh", NULL, NULL, exec_argv, exec_envp);
    spawn_exits_7(r, pid);
    assert_int_equal(posix_spawn(&pid, "/nonexistent/sh", NULL, NULL, exec_argv, exec_envp), ENOENT);
}

static void pt_posix_spawnp(void **state)
{
    (void)state;
    pid_t pid = 0;
    int r = posix_spawnp(&pid, "sh", NULL, NULL, exec_argv, exec_envp);
    spawn_exits_7(r, pid);
    assert_int_equal(posix_spawnp(&pid, "no-such-program-anywhere", NULL, NULL, exec_argv, exec_envp),
                     ENOENT);
}

/* File actions: made, a dup2 of a pipe onto the child's stdout (what the
 * child writes arrives), destroyed; a dup2 of no descriptor is EBADF. */
static void pt_posix_spawn_file_actions_adddup2(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, p[1], 1), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, -1, 1), EBADF);
    char *argv[] = { "sh", "-c", "echo spawned", NULL };
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, exec_envp), 0);
    close(p[1]);
    char buf[32] = "";
    assert_int_equal(read(p[0], buf, sizeof(buf) - 1), 8);
    assert_string_equal(buf, "spawned\n");
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(posix_spawn_file_actions_destroy(&fa), 0);
}

static void pt_posix_spawn_file_actions_init(void **state)
{
    (void)state;
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_addclose(&fa, 5), 0);
    assert_int_equal(posix_spawn_file_actions_destroy(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_destroy(&fa), 0);
}

static void pt_posix_spawn_file_actions_destroy(void **state)
{
    pt_posix_spawn_file_actions_init(state);
}

static void pt_execl(void **state)
{
    (void)state;
    exec_exits_7(run_execl);
    exec_fails(execl("/nonexistent/sh", "sh", (char *)NULL), ENOENT);
}

static void pt_execlp(void **state)
{
    (void)state;
    exec_exits_7(run_execlp);
    exec_fails(execlp("no-such-program-anywhere", "x", (char *)NULL), ENOENT);
}

static void pt_execle(void **state)
{
    (void)state;
    exec_exits_7(run_execle);
    exec_fails(execle("/nonexistent/sh", "sh", (char *)NULL, exec_envp), ENOENT);
}

/* ------------------------------------------------------------- signals -- */

static volatile sig_atomic_t caught;

static void catch(int sig)
{
    caught = sig;
}

/* sigaction and signal on SIGTERM (one the shim may take over once a relay
 * starts: none does here) and SIGWINCH (never its): set, read back, raise,
 * and the old values returned, as libc's own. */
static void pt_sigaction(void **state)
{
    (void)state;
    int sigs[] = { SIGTERM, SIGWINCH };
    for (size_t i = 0; i < 2; i++) {
        struct sigaction sa = { .sa_handler = catch, .sa_flags = SA_RESTART }, old, now;
        sigemptyset(&sa.sa_mask);
        assert_int_equal(sigaction(sigs[i], &sa, &old), 0);
        assert_ptr_equal(old.sa_handler, SIG_DFL);
        assert_int_equal(sigaction(sigs[i], NULL, &now), 0);
        assert_ptr_equal(now.sa_handler, catch);
        assert_true(now.sa_flags & SA_RESTART);
        caught = 0;
        raise(sigs[i]);
        assert_int_equal(caught, sigs[i]);
        assert_int_equal(sigaction(sigs[i], &old, NULL), 0);
    }
    errno = 0;
    assert_int_equal(sigaction(SIGKILL, &(struct sigaction){ .sa_handler = SIG_IGN }, NULL), -1);
    assert_int_equal(errno, EINVAL);
}

static void pt_signal(void **state)
{
    (void)state;
    int sigs[] = { SIGTERM, SIGWINCH };
    for (size_t i = 0; i < 2; i++) {
        assert_ptr_equal(signal(sigs[i], catch), SIG_DFL);
        caught = 0;
        raise(sigs[i]);
        assert_int_equal(caught, sigs[i]);
        assert_ptr_equal(signal(sigs[i], SIG_IGN), catch);
        raise(sigs[i]);             /* ignored */
        assert_ptr_equal(signal(sigs[i], SIG_DFL), SIG_IGN);
    }
    errno = 0;
    assert_ptr_equal(signal(SIGTERM, SIG_ERR), SIG_ERR);
    assert_int_equal(errno, EINVAL);
}

/* Not declared by glibc's headers for _GNU_SOURCE; exported by it. */
sighandler_t bsd_signal(int sig, sighandler_t handler);

/* bsd_signal and ssignal as signal (BSD semantics: SA_RESTART, the old
 * handler returned); sysv_signal and __sysv_signal one-shot (SIG_DFL back
 * once it has run), without SA_RESTART; sigset with SIG_HOLD blocks and
 * says so, and a disposition unblocks. */
static void bsd_case(sighandler_t (*set)(int, sighandler_t))
{
    assert_ptr_equal(set(SIGWINCH, catch), SIG_DFL);
    struct sigaction now;
    assert_int_equal(sigaction(SIGWINCH, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, catch);
    assert_true(now.sa_flags & SA_RESTART);
    caught = 0;
    raise(SIGWINCH);
    assert_int_equal(caught, SIGWINCH);
    assert_ptr_equal(set(SIGWINCH, SIG_DFL), catch);
}

static void pt_bsd_signal(void **state)
{
    (void)state;
    bsd_case(bsd_signal);
}

/* ssignal(): glibc's signal() under its SVID name (the same address). */
static void pt_ssignal(void **state)
{
    (void)state;
    bsd_case(ssignal);
}

static void sysv_case(sighandler_t (*set)(int, sighandler_t))
{
    assert_ptr_equal(set(SIGWINCH, catch), SIG_DFL);
    struct sigaction now;
    assert_int_equal(sigaction(SIGWINCH, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, catch);
    assert_false(now.sa_flags & SA_RESTART);
    caught = 0;
    raise(SIGWINCH);
    assert_int_equal(caught, SIGWINCH);
    assert_int_equal(sigaction(SIGWINCH, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, SIG_DFL);
}

static void pt_sysv_signal(void **state)
{
    (void)state;
    sysv_case(sysv_signal);
}

static void pt___sysv_signal(void **state)
{
    (void)state;
    sysv_case(__sysv_signal);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"   /* sigset: old, still called */
static void pt_sigset(void **state)
{
    (void)state;
    sigset_t mask;
    assert_ptr_equal(sigset(SIGWINCH, catch), SIG_DFL);
    assert_ptr_equal(sigset(SIGWINCH, SIG_HOLD), catch);
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    assert_true(sigismember(&mask, SIGWINCH));
    caught = 0;
    raise(SIGWINCH);                /* held */
    assert_int_equal(caught, 0);
    assert_ptr_equal(sigset(SIGWINCH, catch), SIG_HOLD);
    assert_int_equal(caught, SIGWINCH);
    assert_ptr_equal(sigset(SIGWINCH, SIG_DFL), catch);
    errno = 0;
    assert_ptr_equal(sigset(0, catch), SIG_ERR);
    assert_int_equal(errno, EINVAL);
}

/* siginterrupt(sig, 1) before signal(): glibc's signal() then sets no
 * SA_RESTART, and a read the signal comes in fails with EINTR (an old
 * program's alarm() timeout; with SA_RESTART it would wait for ever). */
static void pt_siginterrupt(void **state)
{
    (void)state;
    int p[2];
    char c;
    struct sigaction now;
    assert_int_equal(pipe(p), 0);
    assert_int_equal(siginterrupt(SIGALRM, 1), 0);
    signal(SIGALRM, catch);
    assert_int_equal(sigaction(SIGALRM, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, catch);
    assert_false(now.sa_flags & SA_RESTART);
    caught = 0;
    struct itimerval t = { { 0, 0 }, { 0, 50000 } };
    setitimer(ITIMER_REAL, &t, NULL);
    errno = 0;
    assert_int_equal(read(p[0], &c, 1), -1);
    assert_int_equal(errno, EINTR);
    assert_int_equal(caught, SIGALRM);
    assert_int_equal(siginterrupt(SIGALRM, 0), 0);
    assert_int_equal(sigaction(SIGALRM, NULL, &now), 0);
    assert_true(now.sa_flags & SA_RESTART);
    signal(SIGALRM, catch);
    assert_int_equal(sigaction(SIGALRM, NULL, &now), 0);
    assert_true(now.sa_flags & SA_RESTART);
    signal(SIGALRM, SIG_DFL);
    errno = 0;
    assert_int_equal(siginterrupt(0, 1), -1);
    assert_int_equal(errno, EINVAL);
    close(p[0]);
    close(p[1]);
}
#pragma GCC diagnostic pop

/* raise of a caught, an ignored and a blocked signal; the blocked one is
 * pending afterwards, as libc's own leaves it. */
static void pt_raise(void **state)
{
    (void)state;
    int sigs[] = { SIGTERM, SIGWINCH };
    for (size_t i = 0; i < 2; i++) {
        signal(sigs[i], catch);
        caught = 0;
        assert_int_equal(raise(sigs[i]), 0);
        assert_int_equal(caught, sigs[i]);
        signal(sigs[i], SIG_IGN);
        assert_int_equal(raise(sigs[i]), 0);
        signal(sigs[i], SIG_DFL);
        sigset_t block, pending, old;
        sigemptyset(&block);
        sigaddset(&block, sigs[i]);
        assert_int_equal(sigprocmask(SIG_BLOCK, &block, &old), 0);
        assert_int_equal(raise(sigs[i]), 0);
        assert_int_equal(sigpending(&pending), 0);
        assert_true(sigismember(&pending, sigs[i]));
        signal(sigs[i], SIG_IGN);       /* drops the pending one */
        assert_int_equal(sigprocmask(SIG_SETMASK, &old, NULL), 0);
        signal(sigs[i], SIG_DFL);
    }
    errno = 0;
    assert_int_equal(raise(NSIG + 10), -1);
    assert_int_equal(errno, EINVAL);
}

static void pt_syscall(void **state)
{
    (void)state;
    assert_int_equal(syscall(SYS_getpid), getpid());
    int p[2];
    assert_int_equal(syscall(SYS_pipe2, p, O_CLOEXEC), 0);         /* a pointer and a flag */
    assert_int_equal(syscall(SYS_write, p[1], "ab", 2), 2);
    char buf[2];
    assert_int_equal(syscall(SYS_read, p[0], buf, 2), 2);
    assert_memory_equal(buf, "ab", 2);
    assert_int_equal(syscall(SYS_close, p[0]), 0);
    assert_int_equal(syscall(SYS_close, p[0]), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(syscall(SYS_close, p[1]), 0);
}

/* ----------------------------------------------------------- resolution -- */

static void assert_same_addrinfo(const struct addrinfo *a, const struct addrinfo *b)
{
    for (; a && b; a = a->ai_next, b = b->ai_next) {
        assert_int_equal(a->ai_family, b->ai_family);
        assert_int_equal(a->ai_socktype, b->ai_socktype);
        assert_int_equal(a->ai_addrlen, b->ai_addrlen);
        assert_memory_equal(a->ai_addr, b->ai_addr, a->ai_addrlen);
    }
    assert_null(a);
    assert_null(b);
}

static void pt_getaddrinfo(void **state)
{
    (void)state;
    int (*libc)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
        libc_sym("getaddrinfo");
    static const struct { const char *node, *service; int family, flags; } CASES[] = {
        { "localhost", "80", AF_UNSPEC, 0 },
        { "localhost", "http", AF_INET, AI_CANONNAME },
        { "127.0.0.1", "8080", AF_UNSPEC, AI_NUMERICHOST },
        { "::1", NULL, AF_INET6, 0 },
        { NULL, "8080", AF_UNSPEC, AI_PASSIVE },
    };
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        struct addrinfo hints = { .ai_family = CASES[i].family, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = CASES[i].flags };
        struct addrinfo *mine = NULL, *theirs = NULL;
        assert_int_equal(getaddrinfo(CASES[i].node, CASES[i].service, &hints, &mine),
                         libc(CASES[i].node, CASES[i].service, &hints, &theirs));
        assert_same_addrinfo(mine, theirs);
        freeaddrinfo(mine);
        freeaddrinfo(theirs);
    }
    struct addrinfo *res = NULL;
    int rc = getaddrinfo("no-such-host.invalid", "80", NULL, &res);
    assert_true(rc == EAI_NONAME || rc == EAI_AGAIN);
}

/* getaddrinfo_a of names the mesh does not own: glibc's own answers, in
 * both modes, and a list of none notifies at once as glibc's does. */
static void pt_getaddrinfo_a(void **state)
{
    (void)state;
    int (*libc)(int, struct gaicb *[], int, struct sigevent *) = libc_sym("getaddrinfo_a");
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct gaicb a = { .ar_name = "localhost", .ar_service = "80", .ar_request = &hints };
    struct gaicb b = a, *mine[] = { &a, NULL }, *theirs[] = { &b, NULL };
    assert_int_equal(getaddrinfo_a(GAI_WAIT, mine, 2, NULL), libc(GAI_WAIT, theirs, 2, NULL));
    assert_int_equal(gai_error(&a), gai_error(&b));
    assert_same_addrinfo(a.ar_result, b.ar_result);
    freeaddrinfo(a.ar_result);
    freeaddrinfo(b.ar_result);

    struct gaicb c = { .ar_name = "127.0.0.1", .ar_service = "8080", .ar_request = &hints };
    struct gaicb *list[] = { &c };
    struct sigevent none = { .sigev_notify = SIGEV_NONE };
    assert_int_equal(getaddrinfo_a(GAI_NOWAIT, list, 1, &none), 0);
    const struct gaicb *wait[] = { &c };
    while (gai_error(&c) == EAI_INPROGRESS)
        gai_suspend(wait, 1, NULL);
    assert_int_equal(gai_error(&c), 0);
    assert_int_equal(c.ar_result->ai_family, AF_INET);
    freeaddrinfo(c.ar_result);
    assert_int_equal(getaddrinfo_a(GAI_WAIT, NULL, 0, NULL), libc(GAI_WAIT, NULL, 0, NULL));
    struct gaicb d = { .ar_name = "localhost" }, *bad[] = { &d };
    assert_int_equal(getaddrinfo_a(42, bad, 1, NULL), libc(42, bad, 1, NULL));
}

static void assert_same_hostent(const struct hostent *a, const struct hostent *b)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a->h_name, b->h_name);
    assert_int_equal(a->h_addrtype, b->h_addrtype);
    assert_int_equal(a->h_length, b->h_length);
    assert_memory_equal(a->h_addr_list[0], b->h_addr_list[0], (size_t)a->h_length);
}

/* Copies what a non-reentrant call returned before the next call reuses it. */
struct host_copy { char name[256]; int type, length; unsigned char addr[16]; struct hostent h; char *list[2]; };

static struct hostent *copy_host(const struct hostent *h, struct host_copy *c)
{
    assert_non_null(h);
    snprintf(c->name, sizeof(c->name), "%s", h->h_name);
    memcpy(c->addr, h->h_addr_list[0], (size_t)h->h_length);
    c->list[0] = (char *)c->addr;
    c->list[1] = NULL;
    c->h = (struct hostent){ c->name, NULL, h->h_addrtype, h->h_length, c->list };
    return &c->h;
}

static void pt_gethostbyname(void **state)
{
    (void)state;
    struct hostent *(*libc)(const char *) = libc_sym("gethostbyname");
    struct host_copy c;
    struct hostent *mine = copy_host(gethostbyname("localhost"), &c);
    assert_same_hostent(mine, libc("localhost"));
}

static void pt_gethostbyname2(void **state)
{
    (void)state;
    struct hostent *(*libc)(const char *, int) = libc_sym("gethostbyname2");
    struct host_copy c;
    struct hostent *mine = copy_host(gethostbyname2("localhost", AF_INET), &c);
    assert_same_hostent(mine, libc("localhost", AF_INET));
}

static void pt_gethostbyname_r(void **state)
{
    (void)state;
    int (*libc)(const char *, struct hostent *, char *, size_t, struct hostent **, int *) =
        libc_sym("gethostbyname_r");
    struct hostent h1, h2, *r1, *r2;
    char b1[1024], b2[1024];
    int e1, e2;
    assert_int_equal(gethostbyname_r("localhost", &h1, b1, sizeof(b1), &r1, &e1),
                     libc("localhost", &h2, b2, sizeof(b2), &r2, &e2));
    assert_same_hostent(r1, r2);
}

static void pt_gethostbyname2_r(void **state)
{
    (void)state;
    int (*libc)(const char *, int, struct hostent *, char *, size_t, struct hostent **, int *) =
        libc_sym("gethostbyname2_r");
    struct hostent h1, h2, *r1, *r2;
    char b1[1024], b2[1024];
    int e1, e2;
    assert_int_equal(gethostbyname2_r("localhost", AF_INET, &h1, b1, sizeof(b1), &r1, &e1),
                     libc("localhost", AF_INET, &h2, b2, sizeof(b2), &r2, &e2));
    assert_same_hostent(r1, r2);
}

static const struct in_addr LOOPBACK = { 0x0100007f };   /* 127.0.0.1, network order */

static void pt_gethostbyaddr(void **state)
{
    (void)state;
    struct hostent *(*libc)(const void *, socklen_t, int) = libc_sym("gethostbyaddr");
    struct host_copy c;
    struct hostent *mine = copy_host(gethostbyaddr(&LOOPBACK, 4, AF_INET), &c);
    assert_same_hostent(mine, libc(&LOOPBACK, 4, AF_INET));
}

static void pt_gethostbyaddr_r(void **state)
{
    (void)state;
    int (*libc)(const void *, socklen_t, int, struct hostent *, char *, size_t, struct hostent **,
                int *) = libc_sym("gethostbyaddr_r");
    struct hostent h1, h2, *r1, *r2;
    char b1[1024], b2[1024];
    int e1, e2;
    assert_int_equal(gethostbyaddr_r(&LOOPBACK, 4, AF_INET, &h1, b1, sizeof(b1), &r1, &e1),
                     libc(&LOOPBACK, 4, AF_INET, &h2, b2, sizeof(b2), &r2, &e2));
    assert_same_hostent(r1, r2);
}

static void pt_getnameinfo(void **state)
{
    (void)state;
    int (*libc)(const struct sockaddr *, socklen_t, char *, socklen_t, char *, socklen_t, int) =
        libc_sym("getnameinfo");
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(80), .sin_addr = LOOPBACK };
    static const int FLAGS[] = { 0, NI_NUMERICHOST | NI_NUMERICSERV, NI_NAMEREQD };
    for (size_t i = 0; i < 3; i++) {
        char h1[256], s1[32], h2[256], s2[32];
        assert_int_equal(getnameinfo((struct sockaddr *)&sa, sizeof(sa), h1, sizeof(h1), s1,
                                     sizeof(s1), FLAGS[i]),
                         libc((struct sockaddr *)&sa, sizeof(sa), h2, sizeof(h2), s2, sizeof(s2),
                              FLAGS[i]));
        assert_string_equal(h1, h2);
        assert_string_equal(s1, s2);
    }
}

/* ------------------------------------------------------------- the table -- */

static const char *const HOOKED[] = {
#define HOOK(ret, name, params, args, fail) #name,
#define HOOK_VOID(name, params, args) #name,
#define HOOK_VARARG(ret, name, vparams, params, args, fail) #name,
#define HOOK_LIST(name) #name,
#include "libc/hooks.def"
#undef HOOK
#undef HOOK_VOID
#undef HOOK_VARARG
#undef HOOK_LIST
};

static int find_meshim(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    if (strstr(info->dlpi_name, "libmeshim")) {
        *(const char **)data = info->dlpi_name;
        return 1;
    }
    return 0;
}

/* Every symbol of the table is defined by libmeshim.so, and a program's call
 * reaches it: it resolves to libmeshim.so itself, or to a sanitizer runtime
 * preloaded before it, which forwards to the next definition (ours). */
static void test_every_symbol_interposed(void **state)
{
    (void)state;
    const char *path = NULL;
    dl_iterate_phdr(find_meshim, &path);
    assert_non_null(path);
    void *meshim = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(meshim);
    for (size_t i = 0; i < sizeof(HOOKED) / sizeof(HOOKED[0]); i++) {
        Dl_info info;
        assert_true(dladdr(dlsym(meshim, HOOKED[i]), &info));
        if (!strstr(info.dli_fname, "libmeshim"))
            fail_msg("libmeshim.so does not define %s", HOOKED[i]);
        assert_true(dladdr(dlsym(RTLD_DEFAULT, HOOKED[i]), &info));
        if (!strstr(info.dli_fname, "libmeshim") && !strstr(info.dli_fname, "libasan"))
            fail_msg("%s resolves to %s, not libmeshim.so", HOOKED[i], info.dli_fname);
    }
    dlclose(meshim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define HOOK(ret, name, params, args, fail) cmocka_unit_test(pt_##name),
#define HOOK_VOID(name, params, args) cmocka_unit_test(pt_##name),
#define HOOK_VARARG(ret, name, vparams, params, args, fail) cmocka_unit_test(pt_##name),
#define HOOK_LIST(name) cmocka_unit_test(pt_##name),
#include "libc/hooks.def"
#undef HOOK
#undef HOOK_VOID
#undef HOOK_VARARG
#undef HOOK_LIST
        cmocka_unit_test(test_every_symbol_interposed),
    };
    return cmocka_run_group_tests_name("passthrough", tests, NULL, NULL);
}
