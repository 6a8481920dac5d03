/*
 * stdio_exit.c — flushing the program's stdio streams on carried
 * descriptors before exit()'s own flush (stdio_exit.h says why).
 *
 * glibc keeps every open stream on one list, _IO_list_all, linked through
 * FILE's public _chain field; the list and its lock (_IO_list_lock and
 * _IO_list_unlock) are exported since GLIBC_2.2.5, for this kind of walk,
 * and are what fflush(NULL) and exit()'s flush use. The walk holds the list
 * lock as they do, so no stream is opened or closed meanwhile; a stream is
 * flushed only when its own lock is free at once (ftrylockfile), since
 * fflush(NULL)'s blocking wait would hang an exit whose other thread sits
 * in fgets on a socket. The flush's write() goes through the write hook as
 * the program's own would.
 */
#include <stdio.h>
#include <stdio_ext.h>

#include "libc/stdio_exit.h"

/* glibc's, unprototyped in its headers since 2.28 (libio.h went). The list
 * head's real type is struct _IO_FILE_plus *, whose first member is the
 * FILE. */
extern FILE *_IO_list_all;
void _IO_list_lock(void);
void _IO_list_unlock(void);

void stdio_exit_flush(bool (*carried)(int fd))
{
    _IO_list_lock();
    for (FILE *fp = _IO_list_all; fp; fp = fp->_chain) {
        if (fp->_fileno < 0 || __fpending(fp) == 0 || !carried(fp->_fileno))
            continue;
        if (ftrylockfile(fp) != 0)
            continue;
        fflush_unlocked(fp);
        funlockfile(fp);
    }
    _IO_list_unlock();
}
