/*
 * beside.h — may the TLS module file beside the library be opened as it
 * is, unread?
 *
 * The library carries its TLS module (OpenSSL) and installs put a copy of
 * it beside the library (libmeshim-tls-ID.so). A process opens that copy
 * without comparing it with its own (5 MB, the largest cost of its first
 * mTLS connection) only when whoever could change it could as well change
 * the library next to it, and it is whole. The library's loader
 * (tls/tls_loader.c) and `meshim doctor` ask this; it is unit-tested.
 */
#ifndef MESHIM_BESIDE_H
#define MESHIM_BESIDE_H

#include <stddef.h>
#include <sys/stat.h>

/* NULL when the module file (module) may be opened unread beside the
 * library file (library): a regular file, of the library's owner, not
 * writable by its group or others, of the module's size (size). Otherwise
 * why not, for a log line. */
const char *beside_refused(const struct stat *module, const struct stat *library, size_t size);

#endif
