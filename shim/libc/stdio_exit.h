/*
 * stdio_exit.h — the program's stdio streams flushed before exit()'s own
 * flush, for the descriptors whose bytes a thread of the shim carries.
 *
 * glibc's exit() runs the atexit handlers and the destructors (the shim's
 * among them) and only then flushes what stdio still buffers (_IO_cleanup),
 * with no hook after it. A program that writes to a socket through
 * fdopen() and returns from main without fclose() leaves its last buffer
 * (4 KiB on a socket) to that flush. On a real socket the kernel still
 * sends it; on a descriptor the engine relays (an mTLS pair end, a
 * protocol = http one) the relay has ended at the shim's destructor, and
 * the buffer would go into a pair nobody reads. So the destructor flushes
 * those streams first (stdio_exit_flush), then ends the relays.
 */
#ifndef MESHIM_STDIO_EXIT_H
#define MESHIM_STDIO_EXIT_H

#include <stdbool.h>

/* Flushes every open stdio stream with buffered output whose descriptor
 * `carried` says yes to, as exit() would. A stream another thread holds
 * locked (blocked in fwrite, or in fgets on a read-write stream) is left
 * to exit()'s own flush: waiting for it could hang the exit. */
void stdio_exit_flush(bool (*carried)(int fd));

#endif
