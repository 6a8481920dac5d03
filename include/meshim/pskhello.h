/*
 * pskhello.h — may a TLS 1.3 resumption go without a key exchange?
 *
 * `[tls] resumption = psk-only` (README "Mutual TLS"): between two meshim
 * ends a resumed handshake may skip its X25519 exchange (psk_ke, RFC 8446
 * §4.2.9), trading forward secrecy of resumed connections for their cost.
 * OpenSSL 3.0's client offers psk_ke beside psk_dhe_ke, and its server
 * takes the key exchange whenever it shares a group with the client. So the
 * server, having read the ClientHello, offers only a group the client does
 * not list (the decoy): with no group in common, a server that resumes goes
 * on without a key exchange; one that does not resume would fail the
 * handshake. The decoy is therefore set only when the resumption is sure:
 * the first identity offered names a session the server holds (tls.c asks
 * its session store), whose suite hashes as the suite the server will pick.
 *
 * This module reads the ClientHello's parts as OpenSSL hands them
 * (SSL_client_hello_get0_ext and _get0_ciphers: bodies without the
 * extension header); it holds no OpenSSL type and is unit-tested.
 */
#ifndef MESHIM_PSKHELLO_H
#define MESHIM_PSKHELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PSKHELLO_EXT_SUPPORTED_GROUPS 10
#define PSKHELLO_EXT_PRE_SHARED_KEY 41
#define PSKHELLO_EXT_PSK_MODES 45

/* The decoy: ffdhe8192, which a meshim client never lists (tls.c sets its
 * groups), is in OpenSSL 3.0 and is never negotiated between meshim ends. */
#define PSKHELLO_DECOY 0x0104
#define PSKHELLO_DECOY_NAME "ffdhe8192"

/* A ClientHello's extensions (NULL, 0: absent). */
struct psk_hello {
    const unsigned char *psk;       /* pre_shared_key */
    size_t psk_len;
    const unsigned char *modes;     /* psk_key_exchange_modes */
    size_t modes_len;
    const unsigned char *groups;    /* supported_groups */
    size_t groups_len;
};

/* True when the client offers a PSK, allows psk_ke and does not list the
 * decoy: *id and *len are its first identity (the one OpenSSL tries first). */
bool psk_hello_identity(const struct psk_hello *h, const unsigned char **id, size_t *len);

/* The TLS 1.3 suite a server running AES-128-GCM, AES-256-GCM and
 * ChaCha20-Poly1305 picks in the client's order: the first of those in the
 * client's cipher list (2 bytes each), 0 when none. */
uint16_t psk_hello_suite(const unsigned char *ciphers, size_t len);

/* The hash a TLS 1.3 suite's key schedule runs on (a session resumes only
 * under a suite of the same hash): 256 or 384, 0 for a suite not named
 * above. */
int psk_hello_suite_hash(uint16_t suite);

#endif
