/*
 * relayname.c — the abstract socket names that carry a relayed
 * connection's addresses (layout in include/meshim/relayname.h).
 */
#include "meshim/relayname.h"

#include <netinet/in.h>
#include <stddef.h>
#include <string.h>

#define TAG "meshim-addr1"
#define TAG_LEN (sizeof(TAG) - 1)
#define HEAD (1 + TAG_LEN + sizeof(uint64_t)) /* bytes of sun_path before the address */

static socklen_t address_len(sa_family_t family)
{
    return family == AF_INET ? sizeof(struct sockaddr_in)
         : family == AF_INET6 ? sizeof(struct sockaddr_in6) : 0;
}

socklen_t relayname_encode(const struct sockaddr *sa, socklen_t salen, uint64_t nonce,
                           struct sockaddr_un *out)
{
    socklen_t alen = sa && salen >= sizeof(sa_family_t) ? address_len(sa->sa_family) : 0;
    if (alen == 0 || salen < alen)
        return 0;
    memset(out, 0, sizeof(*out));
    out->sun_family = AF_UNIX;
    memcpy(out->sun_path + 1, TAG, TAG_LEN);
    memcpy(out->sun_path + 1 + TAG_LEN, &nonce, sizeof(nonce));
    memcpy(out->sun_path + HEAD, sa, alen);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + HEAD + alen);
}

bool relayname_decode(const struct sockaddr_un *un, socklen_t len, struct sockaddr_storage *out,
                      socklen_t *outlen)
{
    const socklen_t head = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + HEAD);
    if (len <= head || len > sizeof(*un) || un->sun_family != AF_UNIX || un->sun_path[0] != '\0' ||
        memcmp(un->sun_path + 1, TAG, TAG_LEN) != 0)
        return false;
    sa_family_t family;
    memcpy(&family, un->sun_path + HEAD, sizeof(family));
    socklen_t alen = address_len(family);
    if (alen == 0 || len != head + alen)
        return false;
    memset(out, 0, sizeof(*out));
    memcpy(out, un->sun_path + HEAD, alen);
    *outlen = alen;
    return true;
}
