/*
 * files.h — opening the files the shim writes (the stats folder and file,
 * the log and the access log) without trusting what another local user may
 * have put in their place.
 *
 * The shim often runs as root inside someone else's program, and writes
 * into folders such as /tmp. So: it never follows a symlink at the last
 * component; it never opens anything that can block (a FIFO without a
 * reader); it maps only a file it has just created itself; and it uses a
 * folder only when that folder is owned by root or by this user, and is
 * sticky if anyone may write to it.
 */
#ifndef MESHIM_FILES_H
#define MESHIM_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Opens folder `dir` (O_DIRECTORY|O_NOFOLLOW), making it with mode 0700
 * when it is missing, and checks that it can be trusted: owned by root or
 * by this user, sticky if world-writable, and for a set-uid/set-gid process
 * (`secure`) not world-writable at all. The descriptor (its fstat in st),
 * or -1 with the reason in why. */
int files_open_dir(const char *dir, bool secure, struct stat *st, char *why, size_t len);

/* Creates a new file in dirfd that nobody else can have prepared: a random
 * name starting with `prefix` (O_CREAT|O_EXCL|O_NOFOLLOW), then checked to
 * be a regular file of this user with one link. Its name goes to name. The
 * descriptor (its fstat in st), or -1 with errno set. */
int files_create_private(int dirfd, const char *prefix, mode_t mode, char *name, size_t len,
                         struct stat *st);

/* Opens a log file for one append (one open per line: no fstat, the flags
 * are the whole check). Never follows a symlink at the last component and
 * never blocks: a FIFO without a reader is refused (-1, errno set), and
 * writes to the descriptor do not block either (O_NONBLOCK). */
int files_open_log(const char *path);

/* One write of a log line to fd, which may be a pipe or FIFO: the bytes
 * written, or -1 with errno (EPIPE: its reader has gone), never a SIGPIPE
 * in the program's thread (libc/sigpipe.h). */
long files_write_line(int fd, const char *line, size_t len);

/* Allocates the blocks of [off, off + len), widened to whole pages within
 * the file's size, of a file the shim maps, before the map writes there: a
 * page of a sparse file first written through a map on a full file system
 * (a small /tmp, a full disk) raises SIGBUS in the program, where fallocate
 * says ENOSPC. True too where the file system has no fallocate (it
 * allocates on write). */
bool files_allocate(int fd, size_t off, size_t len, size_t file_size);

/* Calls fn with each name in folder dirfd (from where its offset is),
 * reading at most `reads` batches of names (about 200 each) with raw
 * getdents64: no second descriptor, nothing allocated. fn returns false
 * to stop. */
void files_each_name(int dirfd, unsigned reads, bool (*fn)(int dirfd, const char *name, void *arg),
                     void *arg);

#endif
