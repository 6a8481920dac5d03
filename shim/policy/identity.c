/*
 * identity.c — matching peer identities against configured globs (see
 * meshim/identity.h).
 */
#include "meshim/identity.h"

#include <ctype.h>
#include <string.h>

static bool same_char(char a, char b, bool ignore_case)
{
    return ignore_case ? tolower((unsigned char)a) == tolower((unsigned char)b) : a == b;
}

/* Iterative, with one back-track point: the last `*` seen. Linear in
 * practice and never recursive, whatever a peer's name looks like. */
bool identity_glob(const char *pattern, const char *name, bool ignore_case)
{
    const char *star = NULL, *resume = NULL;
    while (*name) {
        if (*pattern == '*') {
            star = pattern++;
            resume = name;
        } else if (*pattern && same_char(*pattern, *name, ignore_case)) {
            pattern++;
            name++;
        } else if (star) {
            pattern = star + 1;
            name = ++resume;
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

bool identity_matches(const char *pattern, const struct peer_names *p)
{
    bool uri = is_spiffe(pattern);
    const char *const *names = uri ? p->uris : p->dns;
    size_t n = uri ? p->n_uris : p->n_dns;
    for (size_t i = 0; i < n; i++)
        if (names[i] && identity_glob(pattern, names[i], !uri))
            return true;
    return false;
}

bool identity_allowed(const char *const *patterns, size_t n, const struct peer_names *p)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (identity_matches(patterns[i], p))
            return true;
    return false;
}

const char *identity_name(const struct peer_names *p)
{
    if (p->n_uris && p->uris[0])
        return p->uris[0];
    if (p->n_dns && p->dns[0])
        return p->dns[0];
    return "";
}
