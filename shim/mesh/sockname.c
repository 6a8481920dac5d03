/*
 * sockname.c — a relayed connection's addresses, carried by its socketpair
 * (sockname.h; the name layout in include/meshim/relayname.h).
 *
 * Trust: a name is only a claim. A process of another user could bind such
 * a name to a socket of its own and pass it to a program, which would then
 * believe any client address. So a name is believed only when the socket's
 * other end was made by root or by this process's user (SO_PEERCRED of a
 * socketpair end names the process that made the pair): the relay's
 * process, or the server that accepted and then dropped privileges.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "libc/real.h"
#include "meshim/relayname.h"
#include "mesh/dial.h"
#include "mesh/sockname.h"

/* Abstract names are unique per network namespace: two relays carrying the
 * same address need different nonces, across processes too. */
static uint64_t next_nonce(void)
{
    static uint32_t counter;
    uint32_t n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    return (uint64_t)(uint32_t)getpid() << 32 | n;
}

static void carry(int fd, const struct sockaddr_storage *ss, socklen_t sl)
{
    struct sockaddr_un un;
    for (int tries = 0; tries < 3; tries++) {
        socklen_t n = relayname_encode((const struct sockaddr *)ss, sl, next_nonce(), &un);
        if (n == 0 || bind(fd, (struct sockaddr *)&un, n) == 0 || errno != EADDRINUSE)
            return;
    }
}

void sockname_carry(int app, int engine, int net)
{
    int saved = errno;
    struct sockaddr_storage local, peer;
    socklen_t llen = sizeof(local), plen = sizeof(peer);
    bool have_local = real_getsockname(net, (struct sockaddr *)&local, &llen) == 0;
    bool have_peer = real_getpeername(net, (struct sockaddr *)&peer, &plen) == 0;
    sockname_carry_addrs(app, engine, have_local ? (struct sockaddr *)&local : NULL, llen,
                         have_peer ? (struct sockaddr *)&peer : NULL, plen);
    errno = saved;
}

void sockname_carry_addrs(int app, int engine, const struct sockaddr *local, socklen_t llen,
                          const struct sockaddr *peer, socklen_t plen)
{
    int saved = errno;
    struct sockaddr_storage ss;
    if (local && llen <= sizeof(ss)) {
        memcpy(&ss, local, llen);
        carry(app, &ss, llen);
    }
    if (peer && plen <= sizeof(ss)) {
        memcpy(&ss, peer, plen);
        carry(engine, &ss, plen);
    }
    errno = saved;
}

void sockname_copy_timeouts(int from, int to)
{
    static const int NAMES[] = { SO_RCVTIMEO, SO_SNDTIMEO };
    for (size_t i = 0; i < 2; i++) {
        struct timeval tv;
        socklen_t len = sizeof(tv);
        if (real_getsockopt(from, SOL_SOCKET, NAMES[i], &tv, &len) == 0 && (tv.tv_sec || tv.tv_usec))
            real_setsockopt(to, SOL_SOCKET, NAMES[i], &tv, len);
    }
}

static bool made_by_us(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    return real_getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
           (cred.uid == 0 || cred.uid == geteuid());
}

/* The address a name of fd's (ss, sl: its own or its peer's) carries,
 * when it is such a name and believed. */
static bool believed(int fd, const struct sockaddr_storage *ss, socklen_t sl,
                     struct sockaddr_storage *out, socklen_t *outlen)
{
    return ss->ss_family == AF_UNIX &&
           relayname_decode((const struct sockaddr_un *)ss, sl, out, outlen) && made_by_us(fd);
}

/* The address fd's own name carries; false for any other descriptor. */
static bool carried(int fd, struct sockaddr_storage *out, socklen_t *outlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    return real_getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && believed(fd, &ss, sl, out, outlen);
}

int meshim_getname(int fd, struct sockaddr *addr, socklen_t *len, bool peer, bool in_table)
{
    struct sockaddr_storage ss, name;
    socklen_t sl = sizeof(ss), nl;
    if (!addr || !len)          /* the kernel's EFAULT */
        return peer ? real_getpeername(fd, addr, len) : real_getsockname(fd, addr, len);
    bool relayed_end = false;
    int rc = in_table ? dial_getname(fd, (struct sockaddr *)&ss, &sl, peer, &relayed_end)
           : peer ? real_getpeername(fd, (struct sockaddr *)&ss, &sl)
                  : real_getsockname(fd, (struct sockaddr *)&ss, &sl);
    if (rc < 0)
        return rc;
    if (believed(fd, &ss, sl, &name, &nl)) {
        ss = name;
        sl = nl;
    } else if (relayed_end && ss.ss_family == AF_UNIX) {
        errno = ENOTCONN;           /* a pair end whose name could not be bound */
        return -1;
    }
    /* As the kernel does: as much as fits, and the full length. */
    memcpy(addr, &ss, *len < sl ? *len : sl);
    *len = sl;
    return 0;
}

void sockname_fix_option(int fd, int level, int name, void *val, const socklen_t *len)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (level != SOL_SOCKET || (name != SO_DOMAIN && name != SO_PROTOCOL) || !val || !len ||
        *len < sizeof(int))
        return;
    int *v = val;
    if ((name == SO_DOMAIN ? *v != AF_UNIX : *v != 0) || !carried(fd, &ss, &sl))
        return;
    *v = name == SO_DOMAIN ? ss.ss_family : IPPROTO_TCP;
}

bool sockname_option_ignored(int fd, int level)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int saved = errno;
    bool ip = level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6;
    bool ignored = ip && (saved == EOPNOTSUPP || saved == ENOPROTOOPT) && carried(fd, &ss, &sl);
    errno = saved;
    return ignored;
}
