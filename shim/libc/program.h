/*
 * program.h — what kind of program the shim was loaded into, as far as it
 * changes which calls reach libc at all.
 *
 * A Go program makes its socket system calls itself (its runtime's
 * syscall package), even when it is dynamically linked and resolves names
 * through glibc with the cgo resolver. Its connect() never reaches the
 * hook, so a VIP handed to it leads nowhere (resolve.c answers such a
 * program with the endpoints' own addresses instead).
 */
#ifndef MESHIM_PROGRAM_H
#define MESHIM_PROGRAM_H

#include <stdbool.h>

/* Is the main executable a Go program (its runtime's symbols)? Decided once. */
bool program_is_go(void);

#endif
