/*
 * route.c — does a request head match a [route:NAME] section (route.h).
 * Pure functions over the parsed head: no allocation, no state.
 */
#include "meshim/route.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>
#include "meshim/util.h"

const char *route_path(const char *target, size_t *len)
{
    const char *p = target;
    /* Absolute form (a request to a proxy): skip "scheme://authority". */
    const char *scheme = strstr(p, "://");
    if (*p != '/' && scheme) {
        p = scheme + 3;
        p += strcspn(p, "/?");
        if (*p != '/') {
            *len = 1;
            return "/";
        }
    }
    *len = strcspn(p, "?#");
    return p;
}

/* Host against the route's authority: equal, or equal but for ":port". */
static bool authority_matches(const char *want, const char *host)
{
    if (ascii_casecmp(want, host) == 0)
        return true;
    size_t n = strlen(want);
    return strchr(want, ':') == NULL && ascii_ncasecmp(want, host, n) == 0 && host[n] == ':';
}

static bool trimmed_equal(const char *a, size_t alen, const char *b)
{
    while (alen && isspace((unsigned char)*a))
        a++, alen--;
    while (alen && isspace((unsigned char)a[alen - 1]))
        alen--;
    while (isspace((unsigned char)*b))
        b++;
    size_t blen = strlen(b);
    while (blen && isspace((unsigned char)b[blen - 1]))
        blen--;
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* "NAME" or "NAME: VALUE" against the head. */
static bool header_matches(const char *match, const struct h1_head *h)
{
    const char *colon = strchr(match, ':');
    size_t name_len = colon ? (size_t)(colon - match) : strlen(match);
    while (name_len && isspace((unsigned char)match[name_len - 1]))
        name_len--;
    char name[128];
    if (name_len >= sizeof(name))
        return false;
    memcpy(name, match, name_len);
    name[name_len] = '\0';
    const char *have = h1_header(h, name);
    return have && (!colon || trimmed_equal(have, strlen(have), colon + 1));
}

bool route_matches(const struct route_config *r, const struct h1_head *h)
{
    size_t plen;
    const char *path = route_path(h->target, &plen);
    if (r->path && (strlen(r->path) != plen || memcmp(r->path, path, plen) != 0))
        return false;
    if (r->path_prefix) {
        size_t n = strlen(r->path_prefix);
        if (n > plen || memcmp(r->path_prefix, path, n) != 0)
            return false;
    }
    if (r->authority && !authority_matches(r->authority, h->authority))
        return false;
    for (size_t i = 0; i < r->headers.n; i++)
        if (!header_matches(r->headers.v[i], h))
            return false;
    return true;
}

struct service *route_request(struct service *svc, const struct h1_head *h, const char **route)
{
    const struct route_table *t = service_routes(svc);
    *route = NULL;
    for (size_t i = 0; t && i < t->n; i++) {
        if (route_matches(t->route[i], h)) {
            *route = t->route[i]->name;
            return t->to[i];
        }
    }
    return svc;
}
