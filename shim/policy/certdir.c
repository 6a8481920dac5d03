/*
 * certdir.c — where the identity's files are (see certdir.h).
 */
#include "meshim/certdir.h"
#include "meshim/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct layout {
    const char *name, *cert, *key, *ca;
} LAYOUTS[] = {
    { "kubernetes", "tls.crt", "tls.key", "ca.crt" },
    { "spiffe-helper", "svid.pem", "svid_key.pem", "svid_bundle.pem" },
};

/* A folder the identity is read from (dir_trust_of). A sticky one is
 * what Kubernetes mounts Secret, ConfigMap and projected volumes as (a
 * root tmpfs of mode 1777): anyone may add a name there, so it is trusted
 * only through a `..data` this user or root owns (snapshot_of), never for
 * files named directly in it; *sticky says so. */
static bool folder_trusted(const char *dir, bool *sticky, char *why, size_t len)
{
    struct stat st;
    *sticky = false;
    if (stat(dir, &st) < 0) {
        snprintf(why, len, "[tls] dir %s: %s", dir, strerror(errno));
        return false;
    }
    enum dir_trust trust = dir_trust_of(&st);
    if (!S_ISDIR(st.st_mode))
        snprintf(why, len, "[tls] dir %s: not a folder", dir);
    else if (trust == DIR_NOT_OURS)
        snprintf(why, len, "[tls] dir %s: owned by uid %u, neither this user (%u) nor root", dir,
                 (unsigned)st.st_uid, (unsigned)geteuid());
    else if (trust == DIR_OPEN)
        snprintf(why, len, "[tls] dir %s: anyone may write to it", dir);
    else
        return *sticky = trust == DIR_TRUSTED_STICKY, true;
    return false;
}

static bool join(char *out, size_t len, const char *dir, const char *name)
{
    return (size_t)snprintf(out, len, "%s/%s", dir, name) < len;
}

/* The snapshot folder `..data` points to, or dir itself when there is no
 * `..data` (a folder whose files are replaced one by one) and dir is not
 * a sticky, world-writable one. */
static bool snapshot_of(const char *dir, bool sticky, char *base, size_t len, char *why, size_t wlen)
{
    char link[PATH_MAX], target[PATH_MAX];
    if (!join(link, sizeof(link), dir, "..data")) {
        snprintf(why, wlen, "[tls] dir %s: path too long", dir);
        return false;
    }
    struct stat st;
    if (sticky && (lstat(link, &st) < 0 || (st.st_uid != 0 && st.st_uid != geteuid()))) {
        snprintf(why, wlen, "[tls] dir %s: anyone may add files to it, and it has no ..data of "
                 "this user or root (the Kubernetes volume layout)", dir);
        return false;
    }
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n < 0 && (errno == ENOENT || errno == EINVAL)) {
        snprintf(base, len, "%s", dir);
        return strlen(dir) < len;
    }
    if (n < 0) {
        snprintf(why, wlen, "[tls] dir %s: ..data: %s", dir, strerror(errno));
        return false;
    }
    target[n] = '\0';
    bool fits = target[0] == '/' ? (size_t)snprintf(base, len, "%s", target) < len
                                 : join(base, len, dir, target);
    if (!fits)
        snprintf(why, wlen, "[tls] dir %s: path too long", dir);
    bool snapshot_sticky;
    if (!fits || !folder_trusted(base, &snapshot_sticky, why, wlen))
        return false;
    if (snapshot_sticky)
        snprintf(why, wlen, "[tls] dir %s: anyone may write to it", base);
    return !snapshot_sticky;
}

static bool exists(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    return join(path, sizeof(path), dir, name) && stat(path, &st) == 0;
}

bool certdir_resolve(const char *dir, struct tls_files *out, char *why, size_t len)
{
    char base[PATH_MAX];
    bool sticky;
    if (!folder_trusted(dir, &sticky, why, len) || !snapshot_of(dir, sticky, base, sizeof(base), why, len))
        return false;
    for (size_t i = 0; i < sizeof(LAYOUTS) / sizeof(LAYOUTS[0]); i++) {
        const struct layout *l = &LAYOUTS[i];
        if (!exists(base, l->cert))
            continue;
        if (!join(out->cert, sizeof(out->cert), base, l->cert) ||
            !join(out->key, sizeof(out->key), base, l->key) || !join(out->ca, sizeof(out->ca), base, l->ca)) {
            snprintf(why, len, "[tls] dir %s: path too long", dir);
            return false;
        }
        out->layout = l->name;
        return true;
    }
    snprintf(why, len, "[tls] dir %s: neither tls.crt (Kubernetes, cert-manager) nor svid.pem "
             "(spiffe-helper) in it", dir);
    return false;
}

bool config_has_identity(const struct mesh_config *cfg)
{
    return cfg->tls_dir || (cfg->tls_cert && cfg->tls_key && cfg->tls_ca);
}

bool tls_files_of(const struct mesh_config *cfg, struct tls_files *out, char *why, size_t len)
{
    memset(out, 0, sizeof(*out));
    out->layout = "files";
    if (cfg->tls_dir && !certdir_resolve(cfg->tls_dir, out, why, len))
        return false;
    const char *given[3] = { cfg->tls_cert, cfg->tls_key, cfg->tls_ca };
    char *slot[3] = { out->cert, out->key, out->ca };
    for (int i = 0; i < 3; i++)
        if (given[i])
            snprintf(slot[i], PATH_MAX, "%s", given[i]);
    if (!out->cert[0] || !out->key[0] || !out->ca[0]) {
        snprintf(why, len, "[tls] needs dir, or cert, key and ca");
        return false;
    }
    return true;
}
