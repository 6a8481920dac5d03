/*
 * identity.h — who a TLS peer is, and whether that is who we want.
 *
 * A workload's identity is in its certificate's subjectAltName: a SPIFFE ID
 * as a URI SAN (spiffe://trust-domain/path), or a DNS name. Patterns are
 * globs: `*` stands for any run of characters within one segment (a path
 * segment of a SPIFFE ID, a label of a DNS name: `spiffe://prod/ns/web-*`,
 * `*.orders.svc`), `**` for any run at all, separators included (a pattern
 * ending in `/ns/web/` and `**` takes everything under /ns/web/). A
 * pattern that starts with spiffe:// is matched against the URI SAN,
 * case-sensitively (SPIFFE paths are); any other pattern against the DNS
 * SANs, ignoring case (DNS does).
 *
 * A certificate with more than one URI SAN, or whose URI SAN is a spiffe://
 * name that is not a valid SPIFFE ID (empty, "." or ".." segments, other
 * characters), matches nothing: an X509-SVID has exactly one, and the
 * identity logged is always the one that was authorised.
 *
 * Plain C, no OpenSSL: the TLS layer extracts the names, this decides.
 */
#ifndef MESHIM_IDENTITY_H
#define MESHIM_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

/* The names a peer certificate carries. */
struct peer_names {
    const char *const *uris;
    size_t n_uris;
    const char *const *dns;
    size_t n_dns;
};

/* Longest SPIFFE ID accepted (the SPIFFE standard's limit). */
#define IDENTITY_MAX 2048

/* Does name match pattern? `dns`: `*` stops at '.' and case is ignored;
 * else `*` stops at '/'. `**` never stops. */
bool identity_glob(const char *pattern, const char *name, bool dns);

/* SPIFFE ID syntax: of a peer's ID, and of a configured pattern (where `*`
 * may stand in; a non-spiffe:// pattern is a DNS glob and always valid). */
bool identity_spiffe_valid(const char *id);
bool identity_pattern_valid(const char *pattern);

/* Why the peer's names cannot be matched at all (several URI SANs, an
 * invalid SPIFFE ID), or NULL. */
const char *identity_check(const struct peer_names *p);

/* Does one of the peer's names match pattern (see above for which)? */
bool identity_matches(const char *pattern, const struct peer_names *p);

/* The peer's name that one of the n patterns matches, or NULL. n == 0:
 * any peer is allowed (the trust bundle vouched for it) and its name is
 * identity_name's. */
const char *identity_allowed(const char *const *patterns, size_t n, const struct peer_names *p);

/* The name to show for the peer: its URI SAN, else its first DNS SAN,
 * else "". */
const char *identity_name(const struct peer_names *p);

/* Copies name into dst, ending in "..." when it does not fit: a long name
 * cut short never reads as another, shorter identity. */
void identity_copy(char *dst, size_t len, const char *name);

#endif
