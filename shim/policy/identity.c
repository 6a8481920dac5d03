/*
 * identity.c — matching peer identities against configured globs (see
 * meshim/identity.h).
 */
#include "meshim/identity.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "meshim/util.h"

static bool same_char(char a, char b, bool ignore_case)
{
    return ignore_case ? ascii_lower(a) == ascii_lower(b) : a == b;
}

/* The character that ends a segment: `/` in a SPIFFE ID, `.` in a DNS name. */
static char separator(bool dns)
{
    return dns ? '.' : '/';
}

/* `*` matches a run of characters within one segment, `**` any run.
 * Iterative, with two back-track points: the last `*` and the last `**`.
 * A `*` that cannot grow (the next character ends its segment) hands over
 * to the `**` before it, which grows by one and matches the rest again; an
 * earlier `*` could not do better (it cannot cross the separator that
 * follows it). Linear in practice, never recursive, whatever a peer's name
 * looks like. */
bool identity_glob(const char *pattern, const char *name, bool dns)
{
    const char sep = separator(dns);
    const char *one_pat = NULL, *one_name = NULL, *any_pat = NULL, *any_name = NULL;
    while (*name) {
        if (*pattern == '*') {
            bool any = pattern[1] == '*';
            while (*pattern == '*')
                pattern++;
            if (any) {
                any_pat = pattern, any_name = name;
                one_pat = NULL;
            } else {
                one_pat = pattern, one_name = name;
            }
        } else if (*pattern && same_char(*pattern, *name, dns)) {
            pattern++;
            name++;
        } else if (one_pat && *one_name != sep) {
            pattern = one_pat;
            name = ++one_name;
        } else if (any_pat) {
            one_pat = NULL;
            pattern = any_pat;
            name = ++any_name;
        } else {
            return false;
        }
    }
    while (*pattern == '*')
        pattern++;
    return *pattern == '\0';
}

static bool is_spiffe(const char *pattern)
{
    return strncmp(pattern, "spiffe://", 9) == 0;
}

/* SPIFFE ID syntax (the SPIFFE standard): spiffe://, a trust domain of
 * lower-case letters, digits, '.', '-', '_'; then segments of letters,
 * digits, '.', '-', '_', none empty, "." or "..". No percent-encoding,
 * port, user info, query or fragment. `glob` also lets `*` in. */
static bool spiffe_syntax(const char *id, bool glob)
{
    if (!is_spiffe(id) || strlen(id) > IDENTITY_MAX)
        return false;
    const char *p = id + 9;
    size_t td = 0;
    for (; *p && *p != '/'; p++, td++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || strchr(".-_", *p) ||
              (glob && *p == '*')))
            return false;
    if (td == 0)
        return false;
    while (*p == '/') {
        const char *seg = ++p;
        for (; *p && *p != '/'; p++)
            if (!(isalnum((unsigned char)*p) || strchr(".-_", *p) || (glob && *p == '*')))
                return false;
        size_t n = (size_t)(p - seg);
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
    }
    return *p == '\0';
}

bool identity_spiffe_valid(const char *id)
{
    return spiffe_syntax(id, false);
}

bool identity_pattern_valid(const char *pattern)
{
    return !is_spiffe(pattern) || spiffe_syntax(pattern, true);
}

const char *identity_check(const struct peer_names *p)
{
    if (p->n_uris > 1)
        return "the certificate has several URI SANs (an X509-SVID has one)";
    if (p->n_uris == 1 && is_spiffe(p->uris[0]) && !identity_spiffe_valid(p->uris[0]))
        return "the certificate's URI SAN is not a valid SPIFFE ID";
    return NULL;
}

/* The peer's name that matches pattern, its names already checked. */
static const char *match_checked(const char *pattern, const struct peer_names *p)
{
    bool uri = is_spiffe(pattern);
    const char *const *names = uri ? p->uris : p->dns;
    size_t n = uri ? p->n_uris : p->n_dns;
    for (size_t i = 0; i < n; i++)
        if (names[i] && identity_glob(pattern, names[i], !uri))
            return names[i];
    return NULL;
}

bool identity_matches(const char *pattern, const struct peer_names *p)
{
    return !identity_check(p) && match_checked(pattern, p);
}

const char *identity_allowed(const char *const *patterns, size_t n, const struct peer_names *p)
{
    if (identity_check(p))
        return NULL;
    if (n == 0)
        return identity_name(p);
    for (size_t i = 0; i < n; i++) {
        const char *name = match_checked(patterns[i], p);
        if (name)
            return name;
    }
    return NULL;
}

const char *identity_name(const struct peer_names *p)
{
    if (p->n_uris && p->uris[0])
        return p->uris[0];
    if (p->n_dns && p->dns[0])
        return p->dns[0];
    return "";
}

void identity_copy(char *dst, size_t len, const char *name)
{
    size_t n = strlen(name);
    if (n < len || len < 4)
        snprintf(dst, len, "%s", name);
    else
        snprintf(dst, len, "%.*s...", (int)(len - 4), name);
}
