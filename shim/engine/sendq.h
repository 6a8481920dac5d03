/*
 * sendq.h — the engine's short sends of one turn, made in one system call.
 *
 * A system call costs about 1 µs on the machines this project is measured
 * on (a VM's: several times common hardware), and the HTTP proxy makes two
 * sends per request, one each way, beside its two reads. So a short send
 * the engine makes in a turn of its loop may be queued instead (its bytes
 * copied) and made at the end of the turn together with the turn's other
 * queued sends, by io_uring: one io_uring_enter for all of them (one alone
 * in its turn goes by send()).
 *
 * Each goes with MSG_DONTWAIT | MSG_NOSIGNAL, so the kernel makes it at
 * once, as send() would, and its completion is there when the call returns:
 * no send is left in the kernel's hands between turns. The owner keeps its
 * bytes until done(owner, n, len) says how many of the len queued went: n
 * as send() would return it, or -errno (a short count or -EAGAIN: the rest
 * waits for EPOLLOUT, as after a send()). It queues one send per socket at a time, so bytes keep
 * their order. done may queue again (it runs inside sendq_flush).
 *
 * sendq_add says no, and the caller sends at once as before, where io_uring
 * is not to be had: `[meshim] io_uring = off`, a kernel before 6.0 (older
 * ones may park a MSG_DONTWAIT send until the socket has room), a seccomp
 * filter on the process (systemd's SystemCallFilter= and others kill a
 * process for a call they do not list: never tried), io_uring_disabled,
 * a ring that cannot be made; and for a send longer than SENDQ_MAX, or
 * when the turn's queue is full.
 *
 * Engine thread only (and the keeper's, its only thread).
 */
#ifndef MESHIM_SENDQ_H
#define MESHIM_SENDQ_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SENDQ_MAX 8192          /* longer sends gain little from sharing a call */

typedef void sendq_done_fn(void *owner, ssize_t n, size_t len);

/* Queues a send of len bytes (copied) on fd; false: send them yourself. */
bool sendq_add(int fd, const void *data, size_t len, sendq_done_fn *done, void *owner);
/* The owner's queued sends are forgotten (not made, done not called): call
 * it before the owner is freed or closes the socket. */
void sendq_cancel(void *owner);
/* Sends are queued. */
bool sendq_pending(void);
/* Makes the queued sends and calls their owners' done. */
void sendq_flush(void);
/* A process's first flush with a ring made one (the test's question). */
bool sendq_ring_made(void);
/* fork: the child drops its copy of the parent's ring (never submits to
 * it) and makes its own when it needs one. */
void sendq_atfork_child(void);

#endif
