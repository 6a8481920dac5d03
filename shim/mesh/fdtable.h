/*
 * fdtable.h — which descriptors are meshed, and as which connection.
 *
 * A two-level table indexed by descriptor number: chunks of slots allocated
 * the first time a descriptor in their range is meshed. The hot path for a
 * descriptor the mesh does not own is one or two atomic loads that find
 * nothing; only meshed descriptors take the table's lock.
 */
#ifndef MESHIM_FDTABLE_H
#define MESHIM_FDTABLE_H

#include "mesh/conn.h"

/* Puts c at fd, taking over the caller's reference; whatever was there
 * before (a stale slot) is released. */
void fdtable_set(int fd, struct conn *c);
/* Removes and returns what is at fd (the caller now owns that reference). */
struct conn *fdtable_take(int fd);
/* A new reference to what is at fd, or NULL. */
struct conn *fdtable_get(int fd);
/* After dup(from) gave `to`: `to` refers to the same connection. */
void fdtable_share(int from, int to);
/* Releases what is at fd (close, or a new descriptor reusing the number). */
void fdtable_drop(int fd);
/* Releases every slot from first to last inclusive (close_range). */
void fdtable_drop_range(unsigned first, unsigned last);

/* Calls fn for every meshed descriptor, holding a reference to its
 * connection meanwhile (not the table's lock). */
void fdtable_each(void (*fn)(int fd, struct conn *c));
/* The lowest descriptor that refers to c, or -1 (a snapshot: the
 * application may close or reuse it meanwhile). */
int fdtable_find(const struct conn *c);
/* Releases every slot that refers to c: its connection is another
 * process's now (relay.c, the keeper). */
void fdtable_forget(struct conn *c);

/* What socket() said a descriptor is, so that connect() need not ask the
 * kernel (SO_PROTOCOL costs a system call on every meshed connect).
 * Unknown for descriptors made any other way; the hooks that make, copy
 * and close descriptors keep it current. Stored in a byte per descriptor,
 * in chunks made by socket() only. */
enum fd_kind {
    FD_UNKNOWN, FD_TCP, FD_NOT_TCP,
    FD_KTLS,                    /* TCP, handed to kernel TLS */
    FD_TRACE_IN,                /* an inbound http pair end traced by thread (threadtrace.h) */
    FD_TRACE_OUT,               /* an outbound protocol = http pair end, the same */
    FD_UDP_VIP,                 /* a datagram socket given endpoints for VIPs (udp.h) */
    FD_DNS,                     /* a datagram socket that talks to a name server (dnscapture.h) */
};
void fdtable_set_kind(int fd, enum fd_kind kind);
enum fd_kind fdtable_kind(int fd);

/* A descriptor a call has just returned (socket, accept, socketpair, ...):
 * what a close no hook saw (glibc's own, a raw system call) left at the
 * number goes, and the number is kind (FD_UNKNOWN: not known). With the
 * program's signals held: letting go of a connection takes the
 * connections' list lock, frees and writes its access-log line, and a new
 * chunk of kinds is an allocation; a handler that jumps out of the call
 * must not leave them half done (libc/jumpguard.h). */
void fdtable_fresh(int fd, enum fd_kind kind);

/* A mark beside the kind: the number holds a placeholder while its connect
 * is in the engine (dial.c sets it as it hands the connect over, and takes
 * it off where the number stops holding the placeholder; a kind set or a
 * close takes it off too). Read without a lock by the data path's hooks,
 * which then look closer (dial_pending); a mark left on only costs that. */
void fdtable_set_dialing(int fd, bool on);
bool fdtable_dialing(int fd);

/* Calls fn for every descriptor whose kind is kind (a snapshot: the
 * application may close or reuse any of them meanwhile). */
void fdtable_each_kind(enum fd_kind kind, void (*fn)(int fd));

void fdtable_atfork_prepare(void);
void fdtable_atfork_parent(void);
void fdtable_atfork_child(void);

#endif
