/*
 * logfile.h — a file that lines are appended to, kept open.
 *
 * The access log gets a line per connection, and with protocol = http a
 * line per request. Opened for each line, it cost an open, a close and a
 * path lookup each time: with protocol = http about 3 us of the engine's
 * 22 us per request here. So the descriptor stays open (log_file's too,
 * so that a root process can open both before it drops its privileges,
 * logfile_open_now), as one of the
 * shim's own (libc/ownfd.h: out of the program's way, and a daemon that
 * closes every descriptor cannot close it), and is opened again when the
 * path names another file, as after logrotate's rename and create: looked
 * at once a second at most, with one stat. copytruncate needs nothing:
 * every write is one O_APPEND write, so lines of many processes never
 * interleave. Only a regular file is kept: a FIFO or a device is opened
 * for each line, as before (logfile.c says why).
 *
 * Writers take no lock: a line is written from the engine thread, from
 * any application thread, and at exit from a signal handler's _exit. The
 * descriptor in use is one of two slots, by the parity of a generation;
 * each slot counts the lines being written through it. A reopen (one
 * thread at a time; a thread that finds one under way goes on) fills the
 * other slot only when no line is being written through it, then moves the
 * generation on. So a descriptor is closed only when no writer can still
 * hold it, at the second reopen after the one that replaced it.
 */
#ifndef MESHIM_LOGFILE_H
#define MESHIM_LOGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct logfile {
    int fd[2];                  /* by generation parity; -1: none */
    unsigned writers[2];        /* lines being written through fd[i] */
    unsigned gen;               /* fd[gen & 1] is the one in use */
    int busy;                   /* a reopen is under way */
    int64_t looked_s;           /* when the path was last looked at (now_ns() seconds) */
    dev_t dev;                  /* the file fd[gen & 1] is (the reopener's) */
    ino_t ino;
    pid_t owner;                /* whose descriptors fd[] are; 0: any process's */
};

#define LOGFILE_INIT { .fd = { -1, -1 } }

/* Appends line, one O_APPEND write, to the file at path (not "stderr").
 * False, nothing written and errno the open's, when the file cannot be
 * opened (a symlink, a folder, a FIFO nobody reads, no permission). While
 * no descriptor is kept (the first line, meanwhile written by another
 * thread; no room for one of the shim's own) the line opens the file for
 * itself. *write_error (when not NULL): 0 when the line went in whole,
 * else why not (a full disk: ENOSPC, also for a write cut short). */
bool logfile_write(struct logfile *f, const char *path, const char *line, size_t len, int *write_error);

/* Opens the file at path now, if it is not the one open already: a root
 * process about to drop its privileges keeps a descriptor its new user
 * could not get (hook/process.c). */
void logfile_open_now(struct logfile *f, const char *path);

/* Makes the calling process the owner of f's descriptors (at start, and a
 * fork child at its fork). Another pid writing through f is a vfork child:
 * it shares this memory but not the descriptor table, so it never keeps a
 * descriptor in f (one it opened would be a number of another file, or
 * none, in the owner); its lines go through the owner's (the same files
 * under the same numbers until its exec) or open the file for themselves. */
void logfile_own(struct logfile *f);

/* fork: the child has one thread; no reopen or write of another thread
 * is under way in it. */
void logfile_atfork_child(struct logfile *f);

#endif
