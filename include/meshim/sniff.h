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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNIFF_BYTES 6

/* How long a client may say nothing before a strict port refuses it; on a
 * permissive port, before it is plaintext while the application waits too
 * (sniff_silent_for). */
#define SNIFF_FIRST_BYTE_MS 3000u

enum sniff_verdict { SNIFF_PLAINTEXT, SNIFF_TLS };

/* n == 0 (the client left before its first byte) is plaintext: the
 * application sees an empty connection. */
enum sniff_verdict sniff_first_bytes(const unsigned char *buf, size_t n);

/*
 * A permissive port's client that has sent nothing: after how many ms of
 * silence (from its accept) is it plaintext? A TLS client speaks first, at
 * once. A server-first protocol's client (MySQL, SMTP, FTP's control and
 * data connections) waits for the application's greeting: once the
 * application has spoken (`spoke`), detect_ms of silence is enough. While
 * the application waits too, nothing is gained by hurrying, and a late TLS
 * client still gets TLS: SNIFF_FIRST_BYTE_MS, or detect_ms if longer.
 * detect_ms == 0 (`detect_timeout = 0`): never; the client is refused at
 * SNIFF_FIRST_BYTE_MS, as on a strict port (returns UINT64_MAX).
 */
uint64_t sniff_silent_for(uint32_t detect_ms, bool spoke);

#endif
