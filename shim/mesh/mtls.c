/*
 * mtls.c — outbound and inbound mTLS set-up (see mtls.h).
 */
#include "mesh/mtls.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>


#include "engine/placeholder.h"
#include "engine/watch.h"
#include "libc/jumpguard.h"
#include "libc/ownfd.h"
#include "libc/real.h"
#include "libc/sigpipe.h"
#include "mesh/attempt.h"
#include "mesh/fdtable.h"
#include "mesh/ktls.h"
#include "mesh/relay.h"
#include "mesh/threadtrace.h"
#include "mesh/sockname.h"
#include "meshim/mesh.h"
#include "observe/log.h"
#include "observe/metrics.h"

bool mtls_wanted(const struct conn *c)
{
    return c->svc && service_cfg(c->svc)->tls == TLS_MTLS;
}

/* The server name sent: `sni`, else the service's first host name. */
static const char *server_name(const struct service *svc)
{
    const struct service_config *cfg = service_cfg(svc);
    if (cfg->sni && *cfg->sni)
        return cfg->sni;
    for (size_t i = 0; i < cfg->hosts.n; i++)
        if (cfg->hosts.v[i][0] != '*')
            return cfg->hosts.v[i];
    return svc->name;
}

/* The identity (read, and the TLS module loaded, on first need). */
static struct tls_identity *identity_get(char *why, size_t len)
{
    return tls_identity_get(mesh_registry()->cfg, ktls_kernel_flags(), why, len);
}

bool mtls_identity_ready(char *why, size_t len)
{
    struct tls_identity *id = identity_get(why, len);
    bool ready = id && tls_identity_current(id, why, len);
    tls_identity_put(id);
    return ready;
}

SSL *mtls_client(const struct service *svc, const struct endpoint *ep, uint16_t port, int sock,
                 bool offer_ktls, struct tls_identity **id, char *why, size_t len)
{
    *id = identity_get(why, len);
    if (!*id)
        return NULL;
    char dest[64];
    endpoint_text(ep, port, dest, sizeof(dest));
    SSL *ssl = tls_client_new(*id, sock, dest, server_name(svc));
    if (ssl && offer_ktls && !tls_ktls_want(ssl)) {
        tls_free(ssl, false);
        ssl = NULL;
    }
    if (ssl && mesh_registry()->cfg->tls_psk_only)
        tls_allow_psk_only(ssl);
    if (!ssl) {
        snprintf(why, len, "cannot start a TLS session (out of memory)");
        tls_identity_put(*id);
        *id = NULL;
    }
    return ssl;
}

bool mtls_unaccepted_waits_at(const struct service *svc, const struct endpoint *ep, uint16_t port,
                              const struct pick *p, unsigned retry, const char *then)
{
    if (p && pick_another(p, retry))
        return false;
    char dest[64];
    endpoint_text(ep, port, dest, sizeof(dest));
    log_info("%s: %s has not accepted the connection after connect_timeout and no other endpoint is "
             "left: %s", svc->name, dest, then);
    return true;
}

bool mtls_unaccepted_waits(const struct conn *c, const struct pick *p, unsigned retry)
{
    return mtls_unaccepted_waits_at(c->svc, c->ep, c->port, p, retry,
                                    "the connect is reported, the handshake finishes when it accepts");
}

SSL *mtls_server(struct tls_identity *id, int sock, bool accept_ktls)
{
    SSL *ssl = tls_server_new(id, sock);
    if (ssl && accept_ktls && !tls_ktls_want(ssl)) {
        tls_free(ssl, false);
        return NULL;
    }
    if (ssl && mesh_registry()->cfg->tls_psk_only)
        tls_allow_psk_only(ssl);
    return ssl;
}

SSL *mtls_begin(struct conn *c, int sock, struct tls_identity **id, char *why, size_t len)
{
    return mtls_client(c->svc, c->ep, c->port, sock, ktls_offered(), id, why, len);
}

int mtls_server_check(const struct service *svc, SSL *ssl, int h, char *name, size_t name_len,
                      char *why, size_t len)
{
    if (h < 0) {
        metrics_handshake(DIRECTION_OUTBOUND, RESULT_TLS_ERROR);
        return ECONNRESET;
    }
    metrics_handshake(DIRECTION_OUTBOUND, RESULT_OK);
    const char *identity = service_cfg(svc)->identity;
    const char *patterns[1] = { identity };
    size_t n = identity && *identity ? 1 : 0;
    if (!tls_peer_check(ssl, patterns, n, name, name_len, why, len))
        return ECONNRESET;
    if (!log_wants(LOG_DEBUG))
        return 0;
    unsigned long handshakes, resumed;
    tls_counts(&handshakes, &resumed);
    static const char *const how[] = {
        [TLS_NEW_SESSION] = "",
        [TLS_RESUMED] = ", session resumed",
        [TLS_RESUMED_PSK_ONLY] = ", session resumed without a key exchange",
    };
    log_debug("%s: mTLS with %s (%s)%s; %lu handshakes, %lu resumed", svc->name, name, tls_version(ssl),
              how[tls_resumed(ssl)], handshakes, resumed);
    return 0;
}

int mtls_finish(struct conn *c, SSL *ssl, int h, char *why, size_t len)
{
    return mtls_server_check(c->svc, ssl, h, c->peer_identity, sizeof(c->peer_identity), why, len);
}

int mtls_ktls(struct conn *c, SSL *ssl, int sock, enum stats_direction d, const char *relay_why)
{
    char why[TLS_WHY_MAX] = "";
    int rc = 0;
    if (relay_why) {
        snprintf(why, sizeof(why), "%s", relay_why);
        tls_ktls_forget(ssl);
    } else {
        rc = ktls_take(c, ssl, sock, why, sizeof(why));
    }
    if (rc >= 0)
        ktls_record(c, d, rc == 1, why);
    return rc;
}

/* Waits up to the deadline for the socket; false when it has passed.
 * *heard (if given) becomes true when the socket has something to read. */
static bool wait_socket(int sock, bool want_write, uint64_t deadline, bool *heard)
{
    uint64_t now = now_ns();
    if (now >= deadline)
        return false;
    struct pollfd p = { .fd = sock, .events = want_write ? POLLOUT : POLLIN };
    jump_park();
    jump_poll(&p, 1, (int)((deadline - now + 999999) / 1000000));
    jump_unpark();
    if (heard && (p.revents & (POLLIN | POLLHUP | POLLERR)))
        *heard = true;
    return true;
}

/* Blocking connect, handshake done: the server's tickets are read (kernel
 * TLS takes no post-handshake message), then the keys go to the kernel.
 * 1 handed off, 0 relay, or -1 with the errno in *err. */
static int ktls_blocking(struct conn *c, SSL *ssl, int sock, uint64_t deadline, int *err, char *why,
                         size_t len)
{
    bool want_write = false;
    int s;
    while ((s = tls_ktls_settle(ssl, &want_write, why, len)) == 0) {
        if (!wait_socket(sock, want_write, deadline, NULL)) {
            snprintf(why, len, "timed out waiting for the session tickets");
            *err = ETIMEDOUT;
            return -1;
        }
    }
    if (s == -2) {
        *err = ECONNRESET;
        return -1;
    }
    int rc = mtls_ktls(c, ssl, sock, DIRECTION_OUTBOUND, s == -1 ? why : NULL);
    if (rc < 0) {
        snprintf(why, len, "kernel TLS could not be set up");
        *err = ECONNRESET;
    }
    return rc;
}

/* Blocking connect: the handshake in the caller's thread. 0, or the errno
 * of the failure with why; *late: the server has said nothing by late_at
 * (late_accept), or by the deadline with no other endpoint for a retry
 * (mtls_unaccepted_waits), and the relay finishes it. */
static int handshake_blocking(struct conn *c, SSL *ssl, int net, uint64_t late_at, uint64_t deadline,
                              struct pick *p, unsigned retry, bool *late, char *why, size_t len)
{
    bool want_write = false, heard = false;
    int h;
    /* OpenSSL writes the handshake with write(): SIGPIPE is held around
     * it (mtls_handshake_blocking), and one it raised is taken back. */
    while ((h = tls_handshake(ssl, &want_write, why, len)) == 0) {
        uint64_t until = heard || late_at >= deadline ? deadline : late_at;
        if (wait_socket(net, want_write, until, &heard))
            continue;
        if (until == late_at || (!heard && mtls_unaccepted_waits(c, p, retry))) {
            *late = true;
            break;
        }
        snprintf(why, len, "TLS handshake: timed out");
        h = -1;
        break;
    }
    return *late ? 0 : mtls_finish(c, ssl, h, why, len);
}

static void drop_tls(struct tls_identity **id, SSL **ssl, int *net)
{
    tls_free(*ssl, false);
    tls_identity_put(*id);
    own_close(*net);
    *ssl = NULL;
    *id = NULL;
    *net = -1;
}

/* A longjmp left the handshake while it waited (jumpguard.h): its TLS
 * object, identity and descriptor go, the socket gets its flags back. */
struct left_handshake {
    struct jump_guard guard;
    int fd, flags;
    struct tls_identity **id;
    SSL **ssl;
    int *net;
    struct sigpipe_hold sigpipe;
};

static void handshake_left(void *arg)
{
    struct left_handshake *l = arg;
    sigpipe_left(&l->sigpipe);  /* the thread's own: wherever the jump came from */
    if (!jump_parked())
        return;
    int saved = errno;
    real_fcntl(l->fd, F_SETFL, (void *)(long)l->flags);
    drop_tls(l->id, l->ssl, l->net);
    errno = saved;
}

int mtls_handshake_blocking(int fd, struct conn *c, struct pick *p, unsigned retry, uint64_t started_ns,
                            uint32_t timeout_ms, struct tls_identity **id, SSL **ssl, int *net, bool *late,
                            char *why, size_t len)
{
    *late = false;
    *net = ownfd_high(fd);
    if (*net < 0) {
        snprintf(why, len, "no descriptor left: %s", strerror(errno));
        return ECONNRESET;
    }
    *ssl = mtls_begin(c, *net, id, why, len);
    if (!*ssl) {
        own_close(*net);
        *net = -1;
        return ECONNRESET;
    }
    int flags = real_fcntl(fd, F_GETFL, NULL);
    real_fcntl(fd, F_SETFL, (void *)(long)(flags | O_NONBLOCK));
    struct left_handshake left = { .fd = fd, .flags = flags, .id = id, .ssl = ssl, .net = net };
    sigpipe_hold(&left.sigpipe);
    jump_guard_push(&left.guard, handshake_left, &left);
    uint64_t now = now_ns();
    uint64_t deadline = now + (uint64_t)timeout_ms * 1000000u;
    uint64_t late_at = relay_late_at(c->svc, started_ns, now);
    int err = handshake_blocking(c, *ssl, *net, late_at, deadline, p, retry, late, why, len);
    int k = err || *late ? 0 : ktls_blocking(c, *ssl, *net, deadline, &err, why, len);
    jump_guard_pop(&left.guard);
    sigpipe_release(&left.sigpipe);     /* errno is kept */
    real_fcntl(fd, F_SETFL, (void *)(long)flags);
    if (k == 1)
        ktls_mark(fd);
    if (err || k == 1)
        drop_tls(id, ssl, net);     /* k == 1: fd is kernel TLS now, nothing to relay */
    return err;
}

int mtls_relay_blocking(int fd, struct conn *c, struct tls_identity *id, SSL *ssl, int net, bool late)
{
    int flags = real_fcntl(fd, F_GETFL, NULL);
    int app, engine;
    if (!relay_pair(flags & O_NONBLOCK ? SOCK_NONBLOCK : 0, net, &app, &engine)) {
        int err = errno;
        log_warn("%s: cannot relay the TLS connection: %s", c->svc->name, strerror(err));
        tls_free(ssl, false);
        tls_identity_put(id);
        own_close(net);
        errno = err;
        return -1;
    }
    sockname_copy_timeouts(fd, app);
    c->pair_ino = conn_ino(app);
    placeholder_hold();
    swap_lock();
    placeholder_put_back(fd, app);
    c->sock = net;
    __atomic_store_n(&c->state, CONN_RELAYED, __ATOMIC_RELEASE);
    swap_unlock();
    real_close(app);            /* the application's number holds it now */
    /* The socket's file is the relay's alone now: non-blocking. */
    real_fcntl(net, F_SETFL, (void *)(long)O_NONBLOCK);
    conn_ref(c);
    return relay_outbound(c, id, ssl, net, engine, late) ? 0 : (errno = ECONNRESET, -1);
}

/* ---------------------------------------------------------------- inbound -- */

/* The client's address as accept() gave it: a client that reset while it
 * waited in the backlog has none left for getpeername (ENOTCONN), and its
 * refusal and record still name it. */
static void peer_text(const struct sockaddr *sa, socklen_t sl, char *buf, size_t len)
{
    struct netaddr a;
    if (netaddr_from_sockaddr(sa, sl, &a))
        netaddr_format(&a, buf, len);
    else
        snprintf(buf, len, "(unknown address)");
}

/* A client refused before its relay exists: the application never sees it. */
static int refuse(int cfd, const struct inbound_config *in, const char *peer, enum stats_result r,
                  const char *why)
{
    log_warn("inbound:%u: client %s refused: %s", in->port, peer, why);
    metrics_inbound(in->port, r);
    real_close(cfd);
    return -1;
}

/* An event-loop server (accepting on a non-blocking socket, where kernel
 * TLS is offered) may have its connection handed to kernel TLS: its end of
 * the pair starts full (see relay.h). False when that cannot be set up;
 * h->filler stays 0 when it is not wanted. */
static bool prepare_handoff(int app, int engine, bool event_loop, struct relay_handoff *h)
{
    memset(h, 0, sizeof(*h));
    if (!event_loop)
        return true;
    socklen_t len = sizeof(h->sndbuf);
    if (real_getsockopt(app, SOL_SOCKET, SO_SNDBUF, &h->sndbuf, &len) < 0)
        return false;
    h->sndbuf /= 2;                 /* the kernel doubles what it is given */
    h->ph.peer = engine;
    h->filler = placeholder_fill(app, &h->ph);
    return h->filler > 0;
}

void inbound_listening(const struct inbound_config *in)
{
    if (in->tls == INBOUND_OFF)
        return;
    watch_start();
    char why[TLS_WHY_MAX];
    tls_identity_put(identity_get(why, sizeof(why)));   /* a failure is logged where it is read */
}

int inbound_accept(int cfd, const struct inbound_config *in, int flags, bool event_loop,
                   const struct sockaddr *client, socklen_t client_len)
{
    char why[TLS_WHY_MAX] = "", peer[64];
    bool tls = in->tls != INBOUND_OFF;     /* else protocol = http in the clear */
    if (tls)
        watch_start();              /* certificate rotation is followed */
    peer_text(client, client_len, peer, sizeof(peer));
    if (tls && !relay_pending_take(in->port))
        return refuse(cfd, in, peer, RESULT_OVERFLOW, "too many TLS handshakes under way on this port");
    struct tls_identity *id = tls ? identity_get(why, sizeof(why)) : NULL;
    /* Without an identity a permissive port still serves its plaintext
     * clients, which need none; a TLS client is refused when its first
     * bytes say it is one (relay.c, sniff_step). A strict port has none
     * to serve. */
    bool plain_only = tls && !id && in->tls == INBOUND_PERMISSIVE;
    int app = -1, engine = -1, net = -1;
    struct conn *c = NULL;
    struct relay_handoff h;
    if ((tls && !id && !plain_only) || !relay_pair(flags & SOCK_NONBLOCK ? SOCK_NONBLOCK : 0, cfd, &app, &engine) ||
        !prepare_handoff(app, engine, tls && id && event_loop, &h) ||
        (net = ownfd_high(cfd)) < 0 || !(c = conn_new_inbound(in->port, peer))) {
        bool no_identity = tls && !id && !plain_only;
        const char *reason = no_identity ? why : strerror(errno ? errno : ENOMEM);
        if (tls)
            relay_pending_give(in->port);
        tls_identity_put(id);
        if (app >= 0) {
            real_close(app);
            own_close(engine);
        }
        if (net >= 0)
            own_close(net);
        return refuse(cfd, in, peer, tls ? RESULT_TLS_ERROR : RESULT_OVERFLOW, reason);
    }
    sockname_copy_timeouts(cfd, app);   /* an accepted socket has its listener's */
    int fdflags = real_fcntl(cfd, F_GETFD, NULL);
    real_dup3(app, cfd, fdflags > 0 && (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0);
    real_close(app);
    real_fcntl(net, F_SETFL, (void *)(long)O_NONBLOCK);
    c->sock = net;
    c->pair_ino = conn_ino(cfd);    /* the pair end, on the application's number */
    c->state = CONN_RELAYED;
    placeholder_hold();
    conn_ref(c);
    if (threadtrace_inbound(mesh_registry()->cfg, in))
        c->tt = threadtrace_new(-1);
    fdtable_set(cfd, c);            /* getpeername & co. reach the TCP socket */
    if (c->tt)
        fdtable_set_kind(cfd, FD_TRACE_IN);
    h.fd = cfd;
    if (tls)
        relay_inbound(c, in, id, net, engine, &h);
    else
        relay_inbound_plain(c, in, net, engine);
    return cfd;
}
