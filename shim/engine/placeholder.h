/*
 * placeholder.h — standing in for a socket while the engine connects it.
 *
 * A non-blocking connect that cannot finish at once moves the application's
 * TCP socket to a high descriptor and puts one end of an AF_UNIX socketpair
 * on the application's number instead, with its send buffer filled: it
 * polls like a socket in SYN_SENT (not writable, nothing to read) and
 * write() gives EAGAIN. When the engine has connected the real socket it is
 * put back on the number; when every attempt failed the engine closes its
 * end and the application sees IN|OUT|ERR|HUP, as for a refused connect.
 *
 * Epoll registrations belong to the open file, not to the number, so every
 * swap moves them: the number's registrations, as the application made them
 * through the interposed epoll_ctl (kept in a table by descriptor), are
 * deleted from their sets, the number is replaced with dup3, and they are
 * added again with the same events and data — nginx registers its socket
 * before it calls connect(). The cost is that of the number's own
 * registrations, never of the sets' size. Registrations made where the
 * shim cannot see them (io_uring's EPOLL_CTL op) are not moved.
 *
 * The engine replaces a number only under swap_lock, after checking that it
 * still holds the placeholder; every hook that closes or replaces numbers
 * takes the lock while any swap is possible (placeholders_live > 0), so the
 * engine never puts a socket on a number the application has reused.
 */
#ifndef MESHIM_PLACEHOLDER_H
#define MESHIM_PLACEHOLDER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct epoll_event;

/* Descriptors of a placeholder pair; ino/dev identify the app's end. */
struct placeholder {
    int peer;               /* the engine's end (at a high number) */
    ino_t ino;
    dev_t dev;
    size_t filler;          /* bytes placeholder_fill wrote into it */
};

/* Placeholders and relayed descriptors (relay.h) in use (atomic): while it
 * is 0, hooks skip all of this, and socket options and addresses go
 * straight to the descriptor. */
extern int placeholders_live;

void swap_lock(void);
void swap_unlock(void);

/* The application's epoll_ctl (when meshing): recorded in the table, and
 * never between a swap's taking of the registrations and its dup3. */
int placeholder_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);

/* In the application's thread, inside connect(): moves the socket at fd to
 * a high number (returned, or -1 with errno) and puts a new placeholder on
 * fd, with the socket's epoll registrations. */
int placeholder_install(int fd, struct placeholder *ph);

/* Fills the send buffer of a socketpair end so that it is not writable
 * (AF_UNIX: writable while a quarter of the buffer is free) and write()
 * gives EAGAIN, as on a socket not yet connected, and notes its identity
 * in ph (whose peer the caller sets). Returns the bytes written (the other
 * end reads them out to make it writable again), 0 on a failure.
 * SO_SNDBUF is left at its minimum. */
size_t placeholder_fill(int fd, struct placeholder *ph);

/* Does fd still hold this placeholder? (Call under swap_lock.) */
bool placeholder_at(int fd, const struct placeholder *ph);

/* Under swap_lock: puts the socket at `sock` back on fd, with the
 * placeholder's registrations and file flags, if fd still holds the
 * placeholder. False when the application has closed or replaced fd. */
bool placeholder_restore(int fd, const struct placeholder *ph, int sock);

/* Under swap_lock: puts sock back on fd, whatever fd holds (connect()
 * called again on a failed connection: fd is the application's own). */
int placeholder_put_back(int fd, int sock);

/* Under swap_lock, fd still holding the placeholder: the pair becomes a
 * relay's (mTLS), as it is. The application's end keeps its number, file
 * flags, socket options and epoll registrations, and gets back the send
 * buffer of a new end; the engine's end (returned; ph->peer is -1 after)
 * reads the filler out, which makes the application's end writable, as a
 * socket whose connect has completed. The caller gives the ends their
 * addresses (sockname_carry) before. -1 if the filler cannot be read out
 * (it always can: it was all written before). fd -1: the application's end
 * is only in another process now (it was passed on): its send buffer
 * stays as it is. */
int placeholder_open(int fd, struct placeholder *ph);

/* Closes the engine's end: a placeholder still at the application's number
 * now reads as a failed connection, and a poll() asleep on it wakes up. */
void placeholder_release(struct placeholder *ph);

/* A placeholder's connection is settled (connected, or failed and closed):
 * one fewer for placeholders_live. */
void placeholder_done(void);
/* A relayed descriptor appears (its connection's last reference gives it
 * back with placeholder_done). */
void placeholder_hold(void);

void placeholder_atfork_prepare(void);
void placeholder_atfork_parent(void);
void placeholder_atfork_child(void);

#endif
