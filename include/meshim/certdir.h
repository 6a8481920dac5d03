/*
 * certdir.h — the three files of the workload's identity (certificate
 * chain, private key, trust bundle), from [tls] cert/key/ca or from a
 * folder in a layout other tools write ([tls] dir):
 *
 *   Kubernetes TLS Secrets, cert-manager,      tls.crt  tls.key      ca.crt
 *   cert-manager's csi-driver(-spiffe)
 *   spiffe-helper                              svid.pem svid_key.pem svid_bundle.pem
 *
 * Secret and CSI volumes rotate by an atomic symlink swap: the files sit in
 * a timestamped folder (..2026_12_01_10_00_00.1234), `..data` points to it,
 * and the names users see point through `..data`. A new set is written into
 * a new folder and `..data` is renamed over in one step. So the folder is
 * resolved once, through `..data`, and all three files are read from that
 * one snapshot: a reader never mixes an old key with a new certificate.
 *
 * The folders must be owned by root or by this user and not writable by
 * others (the key is a secret, the bundle decides whom we trust).
 */
#ifndef MESHIM_CERTDIR_H
#define MESHIM_CERTDIR_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "meshim/config.h"

struct tls_files {
    char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
    const char *layout;             /* "files", "kubernetes" or "spiffe-helper" */
};

/* [tls] names an identity: a dir, or cert, key and ca. */
bool config_has_identity(const struct mesh_config *cfg);

/* The files the identity is read from now: [tls] dir resolved as above,
 * and any of cert/key/ca also given overriding the folder's file. False
 * and why (one line) when the folder cannot be used. */
bool tls_files_of(const struct mesh_config *cfg, struct tls_files *out, char *why, size_t len);

/* dir alone, resolved as above. */
bool certdir_resolve(const char *dir, struct tls_files *out, char *why, size_t len);

#endif
