/*
 * identity.h — who a TLS peer is, and whether that is who we want.
 *
 * A workload's identity is in its certificate's subjectAltName: a SPIFFE ID
 * as a URI SAN (spiffe://trust-domain/path), or a DNS name. Patterns are
 * globs where `*` stands for any run of characters (`spiffe://prod/ns/web-*`,
 * `*.orders.svc`). A pattern that starts with spiffe:// is matched against
 * the URI SANs, case-sensitively (SPIFFE paths are); any other pattern
 * against the DNS SANs, ignoring case (DNS does).
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

/* Does name match pattern (`*`: any run of characters, empty included)? */
bool identity_glob(const char *pattern, const char *name, bool ignore_case);

/* Does one of the peer's names match pattern (see above for which)? */
bool identity_matches(const char *pattern, const struct peer_names *p);

/* Does one of the peer's names match one of the n patterns? n == 0: any
 * peer is allowed (the trust bundle vouched for it). */
bool identity_allowed(const char *const *patterns, size_t n, const struct peer_names *p);

/* The name to show for the peer: its first URI SAN, else its first DNS
 * SAN, else "". */
const char *identity_name(const struct peer_names *p);

#endif
