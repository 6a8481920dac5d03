/*
 * sniff.h — permissive inbound: does a client speak TLS or plaintext?
 *
 * Decided from the bytes already waiting on the socket (the caller peeks
 * them, up to SNIFF_BYTES), never by waiting for more: a plaintext client
 * that sends one byte and waits for an answer must not be held. A TLS client
 * opens with a record header and a ClientHello, which arrive together:
 *
 *   byte 0     content type     0x16 (handshake)
 *   byte 1..2  record version   0x03 0x00..0x04
 *   byte 3..4  record length    1..16384 + 256 (a ClientHello is one record)
 *   byte 5     handshake type   0x01 (client_hello)
 *
 * Every byte present must fit; a byte not yet arrived is not held against
 * the client (a first segment of one byte 0x16 is still TLS). So plaintext
 * that happens to start with 0x16 (rare: no text protocol does) is taken for
 * TLS only if the bytes after it fit a ClientHello too.
 */
#ifndef MESHIM_SNIFF_H
#define MESHIM_SNIFF_H

#include <stddef.h>

#define SNIFF_BYTES 6

enum sniff_verdict { SNIFF_PLAINTEXT, SNIFF_TLS };

/* n == 0 (the client left before its first byte) is plaintext: the
 * application sees an empty connection. */
enum sniff_verdict sniff_first_bytes(const unsigned char *buf, size_t n);

#endif
