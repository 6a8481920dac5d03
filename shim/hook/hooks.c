/*
 * hooks.c — the exported names: the top of hook → logic → real_ (the
 * real_* trampolines are libc/real.h's, generated from the same table,
 * libc/hooks.def).
 *
 * Each exported function decides only whether to pass through: the shim is
 * inert (no registry), or this thread is already inside the shim. The logic
 * lives in connect.c and resolve.c. Descriptor bookkeeping (close, dup, new
 * descriptors clearing stale slots) runs whenever the shim is active, even
 * re-entrantly, so the table never points at a number that was reused.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/placeholder.h"
#include "hook/process.h"
#include "libc/jumpguard.h"
#include "libc/ownfd.h"
#include "libc/real.h"
#include "libc/sigdefer.h"
#include "mesh/connect.h"
#include "mesh/dial.h"
#include "mesh/dnscapture.h"
#include "mesh/exec.h"
#include "mesh/fdtable.h"
#include "mesh/relay.h"
#include "mesh/ktls.h"
#include "mesh/resolve.h"
#include "mesh/sockname.h"
#include "mesh/termsig.h"
#include "mesh/threadtrace.h"
#include "mesh/udp.h"
#include "meshim/mesh.h"
#include "observe/log.h"

#define EXPORT __attribute__((visibility("default")))

/* The registry when this call should be meshed, NULL to pass through. */
static inline struct registry *meshing(void)
{
    struct registry *reg = mesh_registry();
    return reg && !hooks_busy() ? reg : NULL;
}

/* A cancellation point of the program's call (pthread_cancel): where a
 * request the shim held off while it worked (connect_held in connect.c)
 * acts, outside the shim, so the program's cleanup handlers run with its
 * hooks live. errno is kept for the call's answer. */
static inline void cancellation_point(void)
{
    int saved = errno;
    pthread_testcancel();
    errno = saved;
}

/* A call that returned a new descriptor: forget whatever a close we never
 * saw left at that number (fdtable_fresh); kind, unless FD_UNKNOWN, is
 * what the number is now (socket()). */
static inline int fresh_fd_kind(int fd, enum fd_kind kind)
{
    if (fd >= 0 && mesh_registry())
        fdtable_fresh(fd, kind);
    return fd;
}

static inline int fresh_fd(int fd)
{
    return fresh_fd_kind(fd, FD_UNKNOWN);
}

/* A descriptor the program got at or past its own limit: only the raise
 * of the moment the shim moved one of its own descriptors let the kernel
 * give that number (ownfd.h). It goes (through close(), which also ends a
 * connection the logic put there) and the call fails as it would have:
 * EMFILE, or EINVAL for an F_DUPFD asked at or past the limit. */
static int within_limit(int fd, long dupfd_from)
{
    rlim_t limit = fd >= 0 && !hooks_busy() ? ownfd_program_limit(fd) : 0;
    if (!limit)
        return fd;
    close(fd);
    errno = dupfd_from >= 0 && (rlim_t)dupfd_from >= limit ? EINVAL : EMFILE;
    return -1;
}

/* accept: while a raise for a move is in force, a connection is taken
 * only when the program has a number under its limit left (the lowest
 * free one, probed with a dup of the listener); else EMFILE and the
 * connection waits in the backlog, as without the shim. within_limit would
 * have to drop it. (A move that begins after the probe can still let one
 * through to within_limit: its moment is a few system calls long.) */
static int accept_room(int fd)
{
    if (hooks_busy() || !ownfd_limit_raised())
        return 0;
    int probe = real_fcntl(fd, F_DUPFD_CLOEXEC, (void *)0L);
    if (probe < 0)
        return 0;                       /* accept reports its own error */
    bool past = ownfd_program_limit(probe) != 0;
    real_close(probe);
    if (!past)
        return 0;
    errno = EMFILE;
    return -1;
}

/* ------------------------------------------------------------- sockets -- */

EXPORT int socket(int domain, int type, int protocol)
{
    bool tcp = (domain == AF_INET || domain == AF_INET6) &&
               (type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) == SOCK_STREAM &&
               (protocol == 0 || protocol == IPPROTO_TCP);
    int fd = fresh_fd_kind(real_socket(domain, type, protocol), tcp ? FD_TCP : FD_NOT_TCP);
    return within_limit(fd, -1);
}

EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
    int rc = real_socketpair(domain, type, protocol, sv);
    if (rc == 0) {
        fresh_fd(sv[0]);
        fresh_fd(sv[1]);
        /* One end refused: the other goes with it, as one call. */
        int refused = within_limit(sv[0], -1) < 0 ? 0 : within_limit(sv[1], -1) < 0 ? 1 : -1;
        if (refused >= 0) {
            int err = errno;
            close(sv[1 - refused]);
            errno = err;
            return -1;
        }
    }
    return rc;
}

/* The mesh's part of a connect, in a frame of its own: the cancellation
 * point after it unwinds (pthread_cancel) through no frame that holds a
 * guard (under ASan, a frame left that way stays poisoned). */
static __attribute__((noinline)) int connect_meshed(struct registry *reg, int fd,
                                                    const struct sockaddr *addr, socklen_t len)
{
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    int rc = meshim_connect(reg, fd, addr, len);
    hooks_leave_frame(&frame);
    return rc;
}

EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct registry *reg = meshing();
    if (!reg)
        return real_connect(fd, addr, len);
    int rc = connect_meshed(reg, fd, addr, len);
    cancellation_point();           /* a pthread_cancel held off in the shim acts now */
    return rc;
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    if (accept_room(fd) < 0)
        return -1;
    struct registry *reg = meshing();
    if (!reg)
        return within_limit(fresh_fd(real_accept(fd, addr, len)), -1);
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    int rc = meshim_accept(reg, fd, addr, len, 0, false);
    hooks_leave_frame(&frame);
    return within_limit(rc, -1);
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    if (accept_room(fd) < 0)
        return -1;
    struct registry *reg = meshing();
    if (!reg)
        return within_limit(fresh_fd(real_accept4(fd, addr, len, flags)), -1);
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    int rc = meshim_accept(reg, fd, addr, len, flags, true);
    hooks_leave_frame(&frame);
    return within_limit(rc, -1);
}

EXPORT int listen(int fd, int backlog)
{
    int rc = real_listen(fd, backlog);
    struct registry *reg = rc == 0 ? meshing() : NULL;
    if (reg) {
        struct hook_frame frame;
        hooks_enter_frame(&frame);
        meshim_listening(reg, fd);
        hooks_leave_frame(&frame);
    }
    return rc;
}

/* ------------------------------------------- calls on a connecting socket -- */

/* Is a connect going on behind a placeholder anywhere in the process? */
static inline bool swaps_possible(void)
{
    return __atomic_load_n(&placeholders_live, __ATOMIC_ACQUIRE) > 0;
}

/* The socket options go to the real socket while a connect is behind a
 * placeholder or relayed here; a relayed descriptor inherited across exec
 * answers SO_DOMAIN as TCP, and takes TCP and IP options (sockname.h). */
EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    if (hooks_busy())
        return real_getsockopt(fd, level, name, val, len);
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    int rc = swaps_possible() ? meshim_getsockopt(fd, level, name, val, len)
                              : real_getsockopt(fd, level, name, val, len);
    if (rc == 0 && level == SOL_SOCKET)
        sockname_fix_option(fd, level, name, val, len);
    hooks_leave_frame(&frame);
    return rc;
}

EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    if (hooks_busy())
        return real_setsockopt(fd, level, name, val, len);
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    int rc = swaps_possible() ? meshim_setsockopt(fd, level, name, val, len)
                              : real_setsockopt(fd, level, name, val, len);
    if (rc < 0 && sockname_option_ignored(fd, level))
        rc = 0;
    if (rc == 0)
        ownfd_saw_setsockopt(level, name, val, len);
    hooks_leave_frame(&frame);
    return rc;
}

/* A relayed descriptor answers with the TCP socket's addresses, here and
 * in a process that inherited it across exec (sockname.h). */
EXPORT int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    if (hooks_busy())
        return real_getsockname(fd, addr, len);
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    int rc = meshim_getname(fd, addr, len, false, swaps_possible());
    hooks_leave_frame(&frame);
    return rc;
}

EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    if (hooks_busy())
        return real_getpeername(fd, addr, len);
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    socklen_t room = len ? *len : 0;
    int rc = meshim_getname(fd, addr, len, true, swaps_possible());
    if (rc == 0 && addr && fdtable_kind(fd) == FD_UDP_VIP)
        udp_source(fd, addr, len, room);
    hooks_leave_frame(&frame);
    return rc;
}

/* ----------------------------------------------------------- data path -- */

/* Before a read or write on fd (msg_flags: the call's MSG_ flags). While
 * a non-blocking connect is in the engine its number holds a placeholder
 * (dial.h): a blocking call there first waits for the connect to settle,
 * as the kernel's waits on a socket in SYN_SENT, and then goes to what the
 * number holds (meshim_data_wait; before, a write got the placeholder's
 * ECONNRESET, a read its end of file). A failed connect's placeholder
 * stays on the number until the program closes it: the kernel tells a
 * failed connect's errno to the first read or write that comes before
 * SO_ERROR or connect() asks, and raises no SIGPIPE for it; the
 * placeholder would answer ECONNRESET, or EPIPE and SIGPIPE, which kills
 * a program that leaves SIGPIPE at its default and writes its request as
 * soon as poll() says the socket is writable. True: the call fails, errno
 * set. One load each of two counts that are 0 unless a connect is in the
 * engine or such an errno is still untold; while connects are in the
 * engine, the number's mark in the fd table (a byte, no lock). */
static inline bool data_refused(int fd, int msg_flags, bool sending)
{
    bool dialing = __builtin_expect(dial_unsettled() != 0, 0) && fdtable_dialing(fd);
    if (__builtin_expect(!dialing && !__atomic_load_n(&conn_errors_pending, __ATOMIC_RELAXED), 1) ||
        hooks_busy())
        return false;
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    int err = dialing ? meshim_data_wait(fd, msg_flags, sending) : 0;
    if (!err)
        err = dial_take_failure(fd);
    hooks_leave_frame(&frame);
    if (!err)
        return false;
    errno = err;
    return true;
}

/* Only trace_propagation = thread looks at reads and writes, and only on
 * the descriptors it marked: everywhere else one load of a flag that is
 * false. The shim's own threads (hooks_busy) are never looked at. */
static inline enum fd_kind traced_kind(int fd)
{
    if (__builtin_expect(!__atomic_load_n(&threadtrace_live, __ATOMIC_RELAXED), 1) || hooks_busy())
        return FD_UNKNOWN;
    return fdtable_kind(fd);
}

/* After a read that returned n. The look takes threadtrace's lock: the
 * program's signals are held meanwhile (a read bounded by alarm() and
 * left by siglongjmp is old practice; jumpguard.h). */
static inline ssize_t data_read(int fd, ssize_t n)
{
    if (n > 0 && traced_kind(fd) == FD_TRACE_IN) {
        struct signals_held held;
        signals_hold(&held);
        threadtrace_read(fd);
        signals_release(&held);
    }
    return n;
}

/* Before a write of len bytes. */
static inline void data_write(int fd, size_t len)
{
    enum fd_kind kind = traced_kind(fd);
    if (kind == FD_TRACE_IN || kind == FD_TRACE_OUT) {
        struct signals_held held;
        signals_hold(&held);
        threadtrace_write(fd, kind == FD_TRACE_OUT, len);
        signals_release(&held);
    }
}

/* Before a vector write: the length is summed only when tracing is on, not
 * in every process's every writev/sendmsg. */
static inline void data_writev(int fd, const struct iovec *iov, size_t n)
{
    if (__builtin_expect(!__atomic_load_n(&threadtrace_live, __ATOMIC_RELAXED), 1))
        return;
    size_t len = 0;
    for (size_t i = 0; iov && i < n; i++)
        len += iov[i].iov_len;
    data_write(fd, len);
}

/* A receive of n bytes on fd that may be a name server's response (a
 * datagram socket dnscapture.h marked). One load of a flag until the
 * process first talks to a name server. */
static inline bool dns_watched(int fd, ssize_t n)
{
    return __builtin_expect(__atomic_load_n(&dnscapture_live, __ATOMIC_RELAXED), 0) && n > 0 &&
           fdtable_kind(fd) == FD_DNS && !hooks_busy();
}

/* After a receive of n bytes into room for cap: a name server's response
 * to the program's own query for a service name reads as the shim's
 * answer. dns_inv: the same for a receive into iovcnt buffers. */
static inline ssize_t dns_in(int fd, void *buf, ssize_t n, size_t cap)
{
    if (!dns_watched(fd, n))
        return n;
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    n = dnscapture_received(fd, buf, n, cap);
    hooks_leave_frame(&frame);
    return n;
}

static inline ssize_t dns_inv(int fd, const struct iovec *iov, size_t iovcnt, ssize_t n)
{
    if (!dns_watched(fd, n))
        return n;
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    n = dnscapture_receivedv(fd, iov, iovcnt, n);
    hooks_leave_frame(&frame);
    return n;
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    if (data_refused(fd, 0, false))
        return -1;
    return dns_in(fd, buf, data_read(fd, real_read(fd, buf, n)), n);
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
    if (data_refused(fd, 0, false))
        return -1;
    return dns_inv(fd, iov, n > 0 ? (size_t)n : 0, data_read(fd, real_readv(fd, iov, n)));
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    if (data_refused(fd, flags, false))
        return -1;
    return dns_in(fd, buf, data_read(fd, real_recv(fd, buf, n, flags)), n);
}

/* After a receive that filled a source address: a datagram socket's
 * endpoint reads as the VIP it sent to (udp.h). `room` is the caller's
 * room for it as it was before the call: the kernel leaves the full
 * length in *len. One load for every other socket. */
static inline ssize_t from_vip(int fd, ssize_t n, struct sockaddr *addr, socklen_t *len, socklen_t room)
{
    if (n >= 0 && addr && len && fdtable_kind(fd) == FD_UDP_VIP)
        udp_source(fd, addr, len, room);
    return n;
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *len)
{
    if (data_refused(fd, flags, false))
        return -1;
    socklen_t room = addr && len ? *len : 0;
    ssize_t got = data_read(fd, real_recvfrom(fd, buf, n, flags, addr, len));
    return dns_in(fd, buf, from_vip(fd, got, addr, len, room), n);
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (data_refused(fd, flags, false))
        return -1;
    socklen_t room = msg ? msg->msg_namelen : 0;
    ssize_t rc = data_read(fd, real_recvmsg(fd, msg, flags));
    return msg ? dns_inv(fd, msg->msg_iov, msg->msg_iovlen,
                         from_vip(fd, rc, msg->msg_name, &msg->msg_namelen, room))
               : rc;
}

/* _FORTIFY_SOURCE's checked reads: glibc's own call its read inside, where
 * no hook sees it. */
EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (data_refused(fd, 0, false))
        return -1;
    return dns_in(fd, buf, data_read(fd, real___read_chk(fd, buf, n, buflen)), n);
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    if (data_refused(fd, flags, false))
        return -1;
    return dns_in(fd, buf, data_read(fd, real___recv_chk(fd, buf, n, buflen, flags)), n);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *addr,
                              socklen_t *len)
{
    if (data_refused(fd, flags, false))
        return -1;
    socklen_t room = addr && len ? *len : 0;
    ssize_t got = data_read(fd, real___recvfrom_chk(fd, buf, n, buflen, flags, addr, len));
    return dns_in(fd, buf, from_vip(fd, got, addr, len, room), n);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    if (data_refused(fd, 0, true))
        return -1;
    data_write(fd, n);
    return real_write(fd, buf, n);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
    if (data_refused(fd, 0, true))
        return -1;
    data_writev(fd, iov, n > 0 ? (size_t)n : 0);
    return real_writev(fd, iov, n);
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    if (data_refused(fd, flags, true))
        return -1;
    data_write(fd, n);
    return real_send(fd, buf, n, flags);
}

/* MSG_FASTOPEN with an address connects (TCP Fast Open): to a meshed
 * destination that connect is meshim's (connect.h), then the data follows
 * as a plain send. 1: not meshed, the call goes through untouched. */
static int fastopen(int fd, int flags, const struct sockaddr *addr, socklen_t len)
{
    struct registry *reg;
    if (__builtin_expect(!(flags & MSG_FASTOPEN) || !addr, 1) || !(reg = meshing()))
        return 1;
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    int rc = meshim_fastopen(reg, fd, addr, len);
    hooks_leave_frame(&frame);
    return rc;
}

/* A datagram to a service VIP goes to the endpoint its socket was given
 * (udp.h): the address to use in *ss and its length; 0: addr as it is;
 * -1: refused, errno set. Not for TCP sockets, whose address the kernel
 * ignores once connected (Fast Open is fastopen's). */
static socklen_t to_endpoint(int fd, const struct sockaddr *addr, socklen_t len,
                             struct sockaddr_storage *ss)
{
    struct registry *reg;
    if (__builtin_expect(!addr, 1) || !(reg = meshing()) || fdtable_kind(fd) == FD_TCP)
        return 0;
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    socklen_t sl = udp_destination(reg, fd, addr, len, ss);
    if (sl == 0)
        dnscapture_note(reg, fd, addr, len);
    hooks_leave_frame(&frame);
    return sl;
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t len)
{
    if (data_refused(fd, flags, true))
        return -1;
    int fo = fastopen(fd, flags, addr, len);
    if (fo < 0)
        return -1;
    data_write(fd, n);
    if (fo == 0)
        return real_send(fd, buf, n, flags & ~MSG_FASTOPEN);
    struct sockaddr_storage ss;
    socklen_t sl = to_endpoint(fd, addr, len, &ss);
    if (sl == (socklen_t)-1)
        return -1;
    return sl ? real_sendto(fd, buf, n, flags, (struct sockaddr *)&ss, sl) : real_sendto(fd, buf, n, flags, addr, len);
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (data_refused(fd, flags, true))
        return -1;
    int fo = msg ? fastopen(fd, flags, msg->msg_name, msg->msg_namelen) : 1;
    if (fo < 0)
        return -1;
    if (msg)
        data_writev(fd, msg->msg_iov, msg->msg_iovlen);
    if (msg && msg->msg_controllen && mesh_registry())
        relay_note_passed(msg);     /* a relayed descriptor passed on: a keeper at the exit */
    if (fo == 0) {
        struct msghdr m = *msg;
        m.msg_name = NULL;
        m.msg_namelen = 0;
        return real_sendmsg(fd, &m, flags & ~MSG_FASTOPEN);
    }
    struct sockaddr_storage ss;
    socklen_t sl = msg ? to_endpoint(fd, msg->msg_name, msg->msg_namelen, &ss) : 0;
    if (sl == (socklen_t)-1)
        return -1;
    if (sl) {
        struct msghdr m = *msg;
        m.msg_name = &ss;
        m.msg_namelen = sl;
        return real_sendmsg(fd, &m, flags);
    }
    return real_sendmsg(fd, msg, flags);
}

/* Datagrams by the batch: those to a VIP go to the socket's endpoint, and
 * the sources of those that come back read as the VIP (udp.h). */
EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags)
{
    if (data_refused(fd, flags, true))
        return -1;
    struct registry *reg = meshing();
    if (vec && mesh_registry())
        for (unsigned int i = 0; i < n; i++)
            if (vec[i].msg_hdr.msg_controllen)
                relay_note_passed(&vec[i].msg_hdr);     /* as sendmsg */
    if (!reg || !vec || fdtable_kind(fd) == FD_TCP)
        return real_sendmmsg(fd, vec, n, flags);
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    if (n > 0 && vec[0].msg_hdr.msg_name)
        dnscapture_note(reg, fd, vec[0].msg_hdr.msg_name, vec[0].msg_hdr.msg_namelen);
    int rc = udp_sendmmsg(reg, fd, vec, n, flags);
    hooks_leave_frame(&frame);
    return rc;
}

EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags, struct timespec *timeout)
{
    if (data_refused(fd, flags, false))
        return -1;
    enum fd_kind kind = vec ? fdtable_kind(fd) : FD_UNKNOWN;
    if (kind == FD_UDP_VIP)
        return udp_recvmmsg(fd, vec, n, flags, timeout);
    int rc = real_recvmmsg(fd, vec, n, flags, timeout);
    for (int i = 0; kind == FD_DNS && i < rc; i++)     /* each datagram as recvmsg's */
        vec[i].msg_len = (unsigned)dns_inv(fd, vec[i].msg_hdr.msg_iov, vec[i].msg_hdr.msg_iovlen,
                                           vec[i].msg_len);
    return rc;
}

EXPORT int epoll_create(int size)
{
    return within_limit(fresh_fd(real_epoll_create(size)), -1);
}

EXPORT int epoll_create1(int flags)
{
    return within_limit(fresh_fd(real_epoll_create1(flags)), -1);
}

/* Recorded while meshing, so that a swap knows a socket's registrations
 * without reading the program's epoll sets (placeholder.h). */
EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (!mesh_registry() || hooks_busy())
        return real_epoll_ctl(epfd, op, fd, ev);
    return placeholder_epoll_ctl(epfd, op, fd, ev);
}

/* --------------------------------------------------- descriptor lifetime -- */

/* A close of, or a dup2 onto, one of the shim's own descriptors (ownfd.h):
 * refused, or the number would be the program's while the shim still used
 * it. A program that closes every number it did not open gets EBADF, as
 * for a closed one; a dup2 onto a number the shim holds (at half the
 * descriptor limit: rare) fails with EBUSY and says so. */
static int refuse_own(int fd, int err)
{
    if (err == EBUSY)
        log_warn("dup2 onto descriptor %d refused (EBUSY): the mesh holds that number", fd);
    errno = err;
    return -1;
}

/* dup2/dup3 onto newfd: not onto one of the mesh's (EBUSY), nor past the
 * program's limit (EBADF, as without the shim). True, errno set: refused. */
static bool dup_target_refused(int newfd)
{
    if (ownfd_is(newfd))
        return refuse_own(newfd, EBUSY) < 0;
    if (!hooks_busy() && ownfd_program_limit(newfd))
        return refuse_own(newfd, EBADF) < 0;
    return false;
}

/* Calls that close or replace descriptor numbers run under swap_lock while
 * the engine may put a socket back on a number (placeholder.h), so it never
 * puts one on a number the application has just closed and reused. */
static inline bool swap_guard(void)
{
    if (!swaps_possible() || hooks_busy())
        return false;
    swap_lock();
    return true;
}

static inline void swap_unguard(bool guarded)
{
    if (guarded)
        swap_unlock();
}

EXPORT int close(int fd)
{
    if (ownfd_is(fd))
        return refuse_own(fd, EBADF);   /* never the program's: as if not open */
    if (!mesh_registry())
        return real_close(fd);
    /* The program's signals wait while the shim works here (the swaps'
     * lock, the table, the connection's record: jumpguard.h); a lingering
     * close's wait is the program's own, and lets them in. */
    struct signals_held held;
    signals_hold(&held);
    /* Take the slot first: once the number is closed another thread may get
     * it from socket() and must not find our connection there. */
    bool guarded = swap_guard();
    threadtrace_closing(fd);
    fdtable_set_kind(fd, FD_UNKNOWN);
    struct conn *c = fdtable_take(fd);
    if (c)
        conn_closing(c, fd);
    int lingering = guarded ? ownfd_lingering(fd) : -1;    /* its wait comes after the lock */
    int rc = real_close(fd);
    int err = errno;
    swap_unguard(guarded);
    if (lingering >= 0) {
        signals_release(&held);
        int last = own_close(lingering);
        if (rc == 0 && last < 0) {
            rc = last;
            err = errno;
        }
        signals_hold(&held);
    }
    conn_unref(c);
    signals_release(&held);
    errno = err;
    return rc;
}

EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
    if (!mesh_registry())
        return ownfd_close_range(first, last, flags);
    struct signals_held held;       /* as close's */
    signals_hold(&held);
    bool guarded = swap_guard();
    if (!(flags & CLOSE_RANGE_CLOEXEC))
        fdtable_drop_range(first, last);
    int rc = ownfd_close_range(first, last, flags);
    int err = errno;
    swap_unguard(guarded);
    signals_release(&held);
    errno = err;
    return rc;
}

EXPORT void closefrom(int lowfd)
{
    if (!mesh_registry()) {
        ownfd_closefrom(lowfd);
        return;
    }
    struct signals_held held;       /* as close's */
    signals_hold(&held);
    bool guarded = swap_guard();
    if (lowfd >= 0)
        fdtable_drop_range((unsigned)lowfd, ~0u);
    ownfd_closefrom(lowfd);
    swap_unguard(guarded);
    signals_release(&held);
}

/* After a dup: the copy is what the original is, its datagram routes too. */
static void share_fd(int from, int to)
{
    fdtable_share(from, to);
    if (fdtable_kind(to) == FD_UDP_VIP)
        udp_share(from, to);
}

EXPORT int dup(int fd)
{
    int rc = real_dup(fd);
    if (rc >= 0 && mesh_registry())
        share_fd(fd, rc);
    return within_limit(rc, -1);
}

/* dup2 and dup3: newfd's descriptor is closed by them, under the swaps'
 * guard and with the program's signals held, as close's. */
static int dup_onto(int oldfd, int newfd, int flags, bool as_dup3)
{
    if (dup_target_refused(newfd))
        return -1;
    struct signals_held held;
    signals_hold(&held);
    bool guarded = swap_guard();
    int lingering = guarded && oldfd != newfd ? ownfd_lingering(newfd) : -1;    /* as close's */
    int rc = as_dup3 ? real_dup3(oldfd, newfd, flags) : real_dup2(oldfd, newfd);
    int err = errno;
    swap_unguard(guarded);
    if (lingering >= 0) {
        signals_release(&held);
        own_close(lingering);
        signals_hold(&held);
    }
    if (rc >= 0 && oldfd != newfd && mesh_registry())
        share_fd(oldfd, newfd);
    signals_release(&held);
    errno = err;
    return rc;
}

EXPORT int dup2(int oldfd, int newfd)
{
    return dup_onto(oldfd, newfd, 0, false);
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
    return dup_onto(oldfd, newfd, flags, true);
}

/* fcntl is variadic; every command's argument fits in a pointer-sized slot,
 * which is how it is passed on in the registers of the ABIs glibc supports. */
static int fcntl_common(int rc, int fd, int cmd, void *arg)
{
    if (rc < 0 || (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC))
        return rc;
    if (mesh_registry())
        share_fd(fd, rc);
    return within_limit(rc, (long)arg);
}

EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(real_fcntl(fd, cmd, arg), fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(real_fcntl64(fd, cmd, arg), fd, cmd, arg);
}

/* ioctl is variadic like fcntl. Only FIONREAD on a descriptor the mesh
 * handed to kernel TLS is answered here (one byte load for any other). */
EXPORT int ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (request == FIONREAD && arg && fdtable_kind(fd) == FD_KTLS)
        return ktls_inq(fd, arg);
    return real_ioctl(fd, request, arg);
}

/* The process ends without exit(): _exit, _Exit, syscall(SYS_exit_group). */
static void process_ending(void)
{
    if (mesh_registry() && !hooks_busy()) {
        relay_keep();       /* relays a child still holds go on in a keeper */
        mesh_exit_flush();
    }
}

/* glibc's syscall() reads six argument slots whatever the number; so does
 * this, and passes them on. SYS_close, SYS_epoll_ctl and SYS_exit_group are
 * looked at: a descriptor that libuv closes this way must end its connection as
 * close() would, a registration made this way must be recorded, and an
 * exit_group ends the relays as _exit does. */
EXPORT long syscall(long number, ...)
{
    va_list ap;
    va_start(ap, number);
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
    long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
    va_end(ap);
    if (number == SYS_close && mesh_registry() && !hooks_busy())
        return close((int)a1);
    if (number == SYS_epoll_ctl)
        return epoll_ctl((int)a1, (int)a2, (int)a3, (struct epoll_event *)a4);
    if (number == SYS_exit_group)
        process_ending();
    return real_syscall(number, a1, a2, a3, a4, a5, a6);
}

/* ---------------------------------------------------------- process end -- */

/* _exit and _Exit end the process without exit()'s handlers and our
 * destructor, but the kernel still sends what sits in a socket's buffer:
 * what the application wrote on a relayed connection goes out too, and
 * the relays end (async-signal-safe: _exit is called from handlers). */
EXPORT void _exit(int status)
{
    process_ending();
    real__exit(status);
    for (;;)
        pause();            /* not reached: libc's _exit does not return */
}

/* glibc's daemon() ends the parent with its own _exit, inside libc, where
 * no hook sees it: the relays would end with it, and with them the
 * connections the daemon goes on with (ssh -f). So the steps are taken
 * here, libc's: a fork, the parent's _exit(0) (now through the keeper,
 * relay_keep), then in the child setsid, chdir("/") and 0, 1, 2 on
 * /dev/null unless the caller says not to. */
EXPORT int daemon(int nochdir, int noclose)
{
    if (!mesh_registry() || hooks_busy())
        return real_daemon(nochdir, noclose);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        process_ending();
        real__exit(0);
    }
    if (setsid() < 0)
        return -1;
    if (!nochdir)
        (void)!chdir("/");          /* as libc: a failure here is not daemon's */
    if (!noclose) {
        struct stat st;
        int fd = open("/dev/null", O_RDWR);
        if (fd < 0)
            return -1;
        if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode)) {
            close(fd);
            errno = ENODEV;
            return -1;
        }
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    return 0;
}

EXPORT void _Exit(int status)
{
    process_ending();
    real__Exit(status);
    for (;;)
        pause();
}

/* ---------------------------------------------------------- privileges -- */

/* A root process under mTLS reads its identity before it may lose the
 * files (hook/process.c). One load of a pid otherwise. */
static inline void before_privileges(void)
{
    if (!hooks_busy())
        process_before_privileges();
}

/* ... before its user or group ids change (-1: left as it is). */
static inline void before_ids(bool group, unsigned real, unsigned effective, unsigned saved)
{
    if (!hooks_busy())
        process_before_ids(group, real, effective, saved);
}

#define KEEP ((unsigned)-1)

/* setuid and setgid as root set all three ids; otherwise the effective
 * one, or the call fails (EPERM) and takes nothing away either. */
EXPORT int setuid(uid_t uid)
{
    before_ids(false, uid, uid, uid);
    return real_setuid(uid);
}

EXPORT int seteuid(uid_t euid)
{
    before_ids(false, KEEP, euid, KEEP);
    return real_seteuid(euid);
}

/* setreuid may set the saved id too: a change of the real or effective
 * one is what counts. */
EXPORT int setreuid(uid_t ruid, uid_t euid)
{
    before_ids(false, ruid, euid, KEEP);
    return real_setreuid(ruid, euid);
}

EXPORT int setresuid(uid_t ruid, uid_t euid, uid_t suid)
{
    before_ids(false, ruid, euid, suid);
    return real_setresuid(ruid, euid, suid);
}

EXPORT int setgid(gid_t gid)
{
    before_ids(true, gid, gid, gid);
    return real_setgid(gid);
}

EXPORT int setegid(gid_t egid)
{
    before_ids(true, KEEP, egid, KEEP);
    return real_setegid(egid);
}

EXPORT int setregid(gid_t rgid, gid_t egid)
{
    before_ids(true, rgid, egid, KEEP);
    return real_setregid(rgid, egid);
}

EXPORT int setresgid(gid_t rgid, gid_t egid, gid_t sgid)
{
    before_ids(true, rgid, egid, sgid);
    return real_setresgid(rgid, egid, sgid);
}

EXPORT int setgroups(size_t n, const gid_t *groups)
{
    before_privileges();
    return real_setgroups(n, groups);
}

EXPORT int initgroups(const char *user, gid_t group)
{
    before_privileges();
    return real_initgroups(user, group);
}

EXPORT int chroot(const char *path)
{
    before_privileges();
    return real_chroot(path);
}

/* ---------------------------------------------------------------- exec -- */

/* An exec replaces the image and the engine with it, while the descriptors
 * not marked close-on-exec stay: the relays go on in a keeper first
 * (relay_keep_before_exec), so the new image's reads and writes on them,
 * and what this one wrote last, still reach the peer. In a vfork child,
 * which shares its parent's memory and engine, engine_here() says no and
 * the exec goes on alone. If the exec fails, the program goes on with its
 * connections in the keeper. exec_run then passes the mesh on to a new
 * image that inherits an [inbound:PORT] listener (mesh/exec.h). */
static void before_exec(void)
{
    int saved = errno;
    if (mesh_registry() && !hooks_busy())
        relay_keep_before_exec();
    errno = saved;
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    before_exec();
    return exec_run(&(struct exec_call){ .form = EXEC_PATH, .path = path, .argv = argv }, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
    before_exec();
    return exec_run(&(struct exec_call){ .form = EXEC_PATH, .path = path, .argv = argv }, environ);
}

EXPORT int execvp(const char *file, char *const argv[])
{
    before_exec();
    return exec_run(&(struct exec_call){ .form = EXEC_SEARCH, .path = file, .argv = argv }, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    before_exec();
    return exec_run(&(struct exec_call){ .form = EXEC_SEARCH, .path = file, .argv = argv }, envp);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    before_exec();
    return exec_run(&(struct exec_call){ .form = EXEC_FD, .argv = argv, .fd = fd }, envp);
}

EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
    before_exec();
    return exec_run(&(struct exec_call){ .form = EXEC_AT, .path = path, .argv = argv, .fd = dirfd,
                                         .flags = flags }, envp);
}

/* posix_spawn: the child is glibc's, made without fork(), and runs its
 * exec where no hook sees it; this process and its relays go on, so
 * there is nothing to keep. Only the exec rule, on the environment given. */
EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    return exec_run(&(struct exec_call){ .form = EXEC_SPAWN, .path = path, .argv = argv, .pid = pid,
                                         .actions = actions, .attr = attr }, envp);
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    return exec_run(&(struct exec_call){ .form = EXEC_SPAWNP, .path = file, .argv = argv, .pid = pid,
                                         .actions = actions, .attr = attr }, envp);
}

EXPORT int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *actions, int fd, int newfd)
{
    int r = real_posix_spawn_file_actions_adddup2(actions, fd, newfd);
    if (r == 0 && !hooks_busy()) {
        int saved = errno;
        exec_spawn_dup(actions, fd);
        errno = saved;
    }
    return r;
}

EXPORT int posix_spawn_file_actions_init(posix_spawn_file_actions_t *actions)
{
    exec_spawn_forget(actions);     /* an address used before */
    return real_posix_spawn_file_actions_init(actions);
}

EXPORT int posix_spawn_file_actions_destroy(posix_spawn_file_actions_t *actions)
{
    exec_spawn_forget(actions);
    return real_posix_spawn_file_actions_destroy(actions);
}

/* The list forms: the arguments up to the NULL, counted on a copy of the
 * list, then gathered into an argv on the stack, as glibc's own do. The
 * list goes by address: execle reads its envp after the gathering, and a
 * va_list a callee read from is undefined in the caller (a struct passed
 * by value on some ABIs). */
static size_t list_count(const char *arg, va_list *ap)
{
    va_list count;
    va_copy(count, *ap);
    size_t n = 0;
    for (const char *a = arg; a && n < INT_MAX; a = va_arg(count, const char *))
        n++;
    va_end(count);
    return n;
}

static void list_gather(char **argv, size_t n, const char *arg, va_list *ap)
{
    argv[0] = (char *)arg;
    for (size_t i = 1; i < n; i++)
        argv[i] = va_arg(*ap, char *);
    if (n)
        (void)va_arg(*ap, char *);  /* the NULL: execle's envp comes after it */
    argv[n] = NULL;
}

/* The three list forms, by what they do once the list is an argv. */
enum exec_list_form { LIST_PATH, LIST_SEARCH, LIST_ENV };

static int exec_list(enum exec_list_form form, const char *file, const char *arg, va_list *ap)
{
    size_t n = list_count(arg, ap);
    if (n >= INT_MAX) {
        errno = E2BIG;
        return -1;
    }
    char *argv[n + 1];
    list_gather(argv, n, arg, ap);
    switch (form) {
    case LIST_SEARCH:
        return execvp(file, argv);
    case LIST_ENV:
        return execve(file, argv, va_arg(*ap, char *const *));
    default:
        return execv(file, argv);
    }
}

EXPORT int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    int rc = exec_list(LIST_PATH, path, arg, &ap);
    va_end(ap);
    return rc;
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    int rc = exec_list(LIST_SEARCH, file, arg, &ap);
    va_end(ap);
    return rc;
}

EXPORT int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    int rc = exec_list(LIST_ENV, path, arg, &ap);
    va_end(ap);
    return rc;
}

/* Every handler the program sets is entered in the kernel through the
 * shim's trampoline, which holds it while the shim works in the thread
 * (libc/sigdefer.h); the program reads back its own. Once a relay has
 * started, SIGTERM, SIGINT, SIGHUP and the other signals that end a
 * process without a core dump, left at SIG_DFL, have the shim's handler,
 * which flushes the relays and then ends the process by the signal: those
 * go through mesh/termsig.c. */
static int program_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (termsig_armed() && termsig_covers(sig))
        return termsig_sigaction(sig, act, old);
    return sigdefer_sigaction(sig, act, old);
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    return program_sigaction(sig, act, old);
}

/* The others set through it: inside the C library they would call its own
 * sigaction, which no hook sees. */
EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
    return sigdefer_signal(program_sigaction, sig, handler);
}

EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler)
{
    return sigdefer_signal(program_sigaction, sig, handler);
}

/* ssignal() (SVID) is glibc's signal() under another name. */
EXPORT sighandler_t ssignal(int sig, sighandler_t handler)
{
    return sigdefer_signal(program_sigaction, sig, handler);
}

EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler)
{
    return sigdefer_sysv_signal(program_sigaction, sig, handler);
}

EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler)
{
    return sigdefer_sysv_signal(program_sigaction, sig, handler);
}

EXPORT sighandler_t sigset(int sig, sighandler_t disp)
{
    return sigdefer_sigset(program_sigaction, sig, disp);
}

EXPORT int siginterrupt(int sig, int interrupt)
{
    return sigdefer_siginterrupt(program_sigaction, sig, interrupt);
}

EXPORT int raise(int sig)
{
    if (termsig_armed() && termsig_covers(sig))
        termsig_before_raise(sig);
    return real_raise(sig);
}

/* ----------------------------------------------------------- resolution -- */

EXPORT int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    struct registry *reg = meshing();
    if (!reg)
        return real_getaddrinfo(node, service, hints, res);
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    int rc = meshim_getaddrinfo(reg, node, service, hints, res);
    hooks_leave_frame(&frame);
    return rc;
}

EXPORT int getaddrinfo_a(int mode, struct gaicb *list[], int n, struct sigevent *sev)
{
    struct registry *reg = meshing();
    if (!reg)
        return real_getaddrinfo_a(mode, list, n, sev);
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    int rc = meshim_getaddrinfo_a(reg, mode, list, n, sev);
    hooks_leave_frame(&frame);
    return rc;
}

/* The gethostby* family: the mesh answers (handled = true) or the call goes
 * to libc. The _r forms fill the caller's buffer; the others a per-thread
 * one (glibc uses one static buffer for the whole process). */
static int host_by_name(const char *name, int af, struct hostent *ret, char *buf, size_t buflen,
                        struct hostent **result, int *h_errnop, bool *handled)
{
    struct registry *reg = meshing();
    *handled = false;
    if (!reg)
        return 0;
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    int rc = meshim_gethostbyname_r(reg, name, af, ret, buf, buflen, result, h_errnop, handled);
    hooks_leave_frame(&frame);
    return rc;
}

static int host_by_addr(const void *addr, socklen_t len, int type, struct hostent *ret, char *buf,
                        size_t buflen, struct hostent **result, int *h_errnop, bool *handled)
{
    struct registry *reg = meshing();
    *handled = false;
    if (!reg)
        return 0;
    struct hook_frame frame;
    hooks_enter_frame(&frame);
    int rc = meshim_gethostbyaddr_r(reg, addr, len, type, ret, buf, buflen, result, h_errnop, handled);
    hooks_leave_frame(&frame);
    return rc;
}

static __thread struct hostent host_static __attribute__((tls_model("initial-exec")));
static __thread char host_buf[512] __attribute__((tls_model("initial-exec")));

static struct hostent *static_result(int rc, struct hostent *result, int herr)
{
    if (rc || !result) {
        h_errno = herr ? herr : NO_RECOVERY;
        return NULL;
    }
    return result;
}

EXPORT int gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf, size_t buflen,
                            struct hostent **result, int *h_errnop)
{
    bool handled;
    int rc = host_by_name(name, af, ret, buf, buflen, result, h_errnop, &handled);
    return handled ? rc : real_gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop);
}

EXPORT int gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen,
                           struct hostent **result, int *h_errnop)
{
    bool handled;
    int rc = host_by_name(name, AF_INET, ret, buf, buflen, result, h_errnop, &handled);
    return handled ? rc : real_gethostbyname_r(name, ret, buf, buflen, result, h_errnop);
}

EXPORT struct hostent *gethostbyname2(const char *name, int af)
{
    bool handled;
    struct hostent *result = NULL;
    int herr = 0;
    int rc = host_by_name(name, af, &host_static, host_buf, sizeof(host_buf), &result, &herr, &handled);
    return handled ? static_result(rc, result, herr) : real_gethostbyname2(name, af);
}

EXPORT struct hostent *gethostbyname(const char *name)
{
    bool handled;
    struct hostent *result = NULL;
    int herr = 0;
    int rc = host_by_name(name, AF_INET, &host_static, host_buf, sizeof(host_buf), &result, &herr,
                          &handled);
    return handled ? static_result(rc, result, herr) : real_gethostbyname(name);
}

EXPORT int gethostbyaddr_r(const void *addr, socklen_t len, int type, struct hostent *ret, char *buf,
                           size_t buflen, struct hostent **result, int *h_errnop)
{
    bool handled;
    int rc = host_by_addr(addr, len, type, ret, buf, buflen, result, h_errnop, &handled);
    return handled ? rc : real_gethostbyaddr_r(addr, len, type, ret, buf, buflen, result, h_errnop);
}

EXPORT struct hostent *gethostbyaddr(const void *addr, socklen_t len, int type)
{
    bool handled;
    struct hostent *result = NULL;
    int herr = 0;
    int rc = host_by_addr(addr, len, type, &host_static, host_buf, sizeof(host_buf), &result, &herr,
                          &handled);
    return handled ? static_result(rc, result, herr) : real_gethostbyaddr(addr, len, type);
}

EXPORT int getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host, socklen_t hostlen,
                       char *serv, socklen_t servlen, int flags)
{
    struct registry *reg = meshing();
    bool handled = false;
    int rc = 0;
    if (reg) {
        struct hook_frame frame;
        hooks_enter_frame(&frame);
        rc = meshim_getnameinfo(reg, sa, salen, host, hostlen, serv, servlen, flags, &handled);
        hooks_leave_frame(&frame);
    }
    return handled ? rc : real_getnameinfo(sa, salen, host, hostlen, serv, servlen, flags);
}
