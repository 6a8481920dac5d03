/*
 * ownfd.h — the shim's own descriptors, kept out of the application's way.
 *
 * The shim holds descriptors of its own in the application's table: the
 * engine's epoll set and wake-up eventfd, the real sockets of relayed and
 * connecting connections, the engine's ends of socketpairs, health probes.
 * Programs close descriptors they never opened: daemons close everything
 * after fork (closefrom, close_range, a loop of close), shells redirect onto
 * fixed numbers. Had such a close reached one of ours, the number would be
 * handed to the application's next open() while the shim still used it:
 * the engine would wait on, or write its wake-up into, the application's
 * file.
 *
 * The shim's descriptors do not come out of the program's descriptor
 * limit: ownfd_high puts them at or above the program's soft RLIMIT_NOFILE,
 * in the room up to the hard limit, raising the soft limit only for the
 * moment of the move (ownfd.c says why), so the limit the program reads
 * and its children inherit stays its own.
 *
 * So every long-lived descriptor of the shim is moved to a high number
 * (ownfd_high: above the program's limit, else half the limit, and at
 * most 1024, when the hard limit leaves no room; out of the way of select()
 * and of programs that count their descriptors) and marked here; the hooks refuse
 * to close a marked one (close: EBADF, as for a number the program never
 * opened; close_range and closefrom: the ranges around it) or to dup2 onto
 * it (EBUSY). The shim closes its own with own_close, which unmarks.
 *
 * A count per number for the first OWNFD_MAX numbers, in .bss (untouched
 * pages cost nothing); a fork child inherits it with the descriptors it
 * describes, and exec starts afresh as the close-on-exec ones go.
 */
#ifndef MESHIM_OWNFD_H
#define MESHIM_OWNFD_H

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define OWNFD_MAX (1 << 20)

/* fd is the shim's from now on (ignored beyond OWNFD_MAX or < 0). */
void ownfd_mark(int fd);
bool ownfd_is(int fd);
/* The lowest of the shim's descriptors >= from, or -1. */
int ownfd_next(unsigned from);
/* A duplicate of fd at a high number, close-on-exec, marked as the shim's
 * (-1 and errno on failure). fd itself stays open: the caller closes it. */
int ownfd_high(int fd);
/* The same, and fd closed: the descriptor moves (-1 and errno, fd closed,
 * on failure). fd < 0 gives -1. */
int ownfd_move(int fd);
/* The program's own soft limit when fd, a descriptor just given to the
 * program, is at or past it (only the shim's raise, in force that moment
 * for another thread's move, let the kernel give that number: the caller
 * closes it and fails with EMFILE); else 0. One load when no raise is. */
rlim_t ownfd_program_limit(int fd);
/* A raise for a move is in force right now: one load. */
bool ownfd_limit_raised(void);
/* fork: no move under way while the process is copied (see ownfd.c); the
 * child's lock made anew. */
void ownfd_atfork_prepare(void);
void ownfd_atfork_parent(void);
void ownfd_atfork_child(void);
/* Closes one of the shim's descriptors and unmarks it. */
int own_close(int fd);
/* Whether the process is out of descriptors (or the system, or the kernel
 * of memory) right now: what tells a failure of the moment (EMFILE at the
 * program's limit, tried again later) from one of files or permissions
 * (said, and kept). errno is kept. */
bool ownfd_shortage(void);

/* A close that waits: a socket with SO_LINGER and a time, unsent bytes
 * queued, waits in its last close() until they go or the time is up (Java's
 * setSoLinger, Tomcat's connectionLinger). The close hook holds the swap
 * lock across the program's close (placeholder.h), and a wait there held
 * every other thread's close and the engine's swaps with it (a dup2 or
 * dup3 onto such a socket's number is its close too). The setsockopt
 * hook tells ownfd_saw_setsockopt what the program set; ownfd_lingering(fd)
 * is then, for such a socket, a duplicate of it (the shim's, high), so that
 * closing fd under the lock only lets go of the number and the caller's
 * own_close of the duplicate, after the lock, is the close that waits; -1
 * for any other descriptor (a load of a flag until the program sets
 * SO_LINGER with a time). errno is kept. */
void ownfd_saw_setsockopt(int level, int name, const void *val, socklen_t len);
int ownfd_lingering(int fd);
/* own_close for a socket of the shim's that the program's SO_LINGER may
 * have reached (a relayed connection's real socket takes the program's
 * socket options): its linger time is dropped first, so the close never
 * waits in the engine's thread, where it held every relay of the process
 * (SO_LINGER 0, an abort, stays). */
int own_close_nowait(int fd);

/* The program's close_range and closefrom: the same, around the shim's
 * descriptors. */
int ownfd_close_range(unsigned first, unsigned last, int flags);
void ownfd_closefrom(int low);

#endif
