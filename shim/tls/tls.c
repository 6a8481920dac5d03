/*
 * tls.c — the workload's identity in OpenSSL, handshake steps, peer checks
 * and the client session cache (see tls.h).
 */
#include "tls/tls.h"
#include "tls/tls_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "meshim/certdir.h"
#include "meshim/identity.h"
#include "meshim/pskhello.h"
#include "meshim/util.h"
#include "observe/log.h"

#define SESSION_SLOTS 256
#define MAX_SANS 16

struct tls_identity {
    int refs;                       /* atomic */
    unsigned generation;            /* which load this is (the session cache's tag) */
    SSL_CTX *client, *server;
    struct tls_store *store;        /* the server's sessions, shared with fork children */
    long long not_after;            /* the certificate's, Unix seconds */
    char cert[PATH_MAX];            /* where it was read from, for messages */
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static OSSL_LIB_CTX *libctx;
static int ex_dest = -1;            /* SSL ex_data: the session cache key */
static int ex_generation = -1;      /* SSL_CTX ex_data: its identity's generation */
static unsigned generations;        /* atomic: identities made so far */
static unsigned current_generation; /* atomic: the identity in force */

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_identity *current;
static struct file_id stamps[3];    /* cert, key, ca, when last loaded */
static char *stamp_paths[3];        /* a reload may name other files */
static bool loaded_once;            /* stamps are those of the last load, good or bad */
static bool failed_short;           /* the first load failed for want of a descriptor: tried again */
static bool recheck;                /* atomic: a fork child, whose files may have changed since */
static unsigned kernel_flags;       /* the first tls_identity_get's: TLS_KERNEL_ (tls.h) */
static char load_error[TLS_WHY_MAX];

static pthread_mutex_t session_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session_slot {
    char key[128];
    unsigned generation;            /* of the identity (CA, certificate) it was made under */
    SSL_SESSION *session;
} sessions[SESSION_SLOTS];

static unsigned long n_handshakes, n_resumed;   /* atomic */

/* ------------------------------------------------------------- sessions -- */

static struct session_slot *slot_of(const char *key)
{
    return &sessions[hash_fnv1a(key) % SESSION_SLOTS];
}

static unsigned generation_of(SSL *ssl)
{
    return (unsigned)(uintptr_t)SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_generation);
}

/* OpenSSL hands over a session the server gave us (for TLS 1.3, after the
 * handshake): it replaces the destination's last one. Returns 1: kept. */
static int session_new(SSL *ssl, SSL_SESSION *session)
{
    const char *key = SSL_get_ex_data(ssl, ex_dest);
    unsigned generation = generation_of(ssl);
    /* A connection made before a rotation, under the old trust, may get
     * its ticket after it (TLS 1.3 sends them after the handshake): not
     * kept, or new connections would resume what the new CA never saw
     * (review finding 12). */
    if (!key || !SSL_SESSION_is_resumable(session) ||
        generation != __atomic_load_n(&current_generation, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&session_lock);
    struct session_slot *s = slot_of(key);
    SSL_SESSION *old = s->session;
    snprintf(s->key, sizeof(s->key), "%s", key);
    s->generation = generation;
    s->session = session;
    pthread_mutex_unlock(&session_lock);
    if (old)
        SSL_SESSION_free(old);
    return 1;
}

/* The connection offers a copy of the destination's session, never the
 * kept one itself: OpenSSL marks the session of a connection that ends
 * without close_notify, or with a fatal alert, "not resumable", and the
 * server sends no new ticket after a resumption (server_state below), so a
 * spoiled kept session would cost every later connection a full handshake. */
static void session_resume(SSL *ssl, const char *key)
{
    pthread_mutex_lock(&session_lock);
    struct session_slot *s = slot_of(key);
    SSL_SESSION *copy = NULL;
    if (s->session && strcmp(s->key, key) == 0 && s->generation == generation_of(ssl))
        copy = SSL_SESSION_dup(s->session);
    pthread_mutex_unlock(&session_lock);
    if (copy) {
        SSL_set_session(ssl, copy);
        SSL_SESSION_free(copy);
    }
}

/* Server: a resumed client keeps the session it offered, which stays in
 * this identity's cache, so no new ticket is made for it (a ticket costs
 * the server a session copy and the client a new session to keep). Decided
 * once the ClientHello is read, before the tickets' count is announced to a
 * kernel TLS peer (tls_ktls.c) or the tickets are written. */
static void server_state(const SSL *ssl, int where, int ret)
{
    (void)ret;
    if ((where & SSL_CB_ACCEPT_LOOP) && SSL_get_state(ssl) == TLS_ST_SW_SRVR_HELLO &&
        SSL_session_reused((SSL *)ssl))
        SSL_set_num_tickets((SSL *)ssl, 0);
}

/* Server, `resumption = psk-only` (meshim/pskhello.h): once the ClientHello
 * is read, a client that allows psk_ke and offers a session this server
 * will resume is offered only the decoy group, so the resumption goes
 * without a key exchange. Anything less than sure keeps the key exchange:
 * with the decoy and no resumption the handshake would fail. */
static int hello_read(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    (void)arg;
    if (!(SSL_get_options(ssl) & SSL_OP_ALLOW_NO_DHE_KEX))
        return SSL_CLIENT_HELLO_SUCCESS;
    struct psk_hello h = { 0 };
    if (SSL_client_hello_get0_ext(ssl, PSKHELLO_EXT_PRE_SHARED_KEY, &h.psk, &h.psk_len) != 1 ||
        SSL_client_hello_get0_ext(ssl, PSKHELLO_EXT_PSK_MODES, &h.modes, &h.modes_len) != 1 ||
        SSL_client_hello_get0_ext(ssl, PSKHELLO_EXT_SUPPORTED_GROUPS, &h.groups, &h.groups_len) != 1)
        return SSL_CLIENT_HELLO_SUCCESS;
    const unsigned char *id, *ciphers;
    size_t id_len;
    size_t n = SSL_client_hello_get0_ciphers(ssl, &ciphers);
    int hash = psk_hello_suite_hash(psk_hello_suite(ciphers, n));
    if (hash && psk_hello_identity(&h, &id, &id_len) && tls_store_resumes(ssl, id, id_len, hash))
        SSL_set1_groups_list(ssl, PSKHELLO_DECOY_NAME);
    ERR_clear_error();
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* After a rotation sessions made with the old trust are not resumed. */
static void sessions_flush(void)
{
    pthread_mutex_lock(&session_lock);
    for (size_t i = 0; i < SESSION_SLOTS; i++) {
        if (sessions[i].session)
            SSL_SESSION_free(sessions[i].session);
        sessions[i].session = NULL;
    }
    pthread_mutex_unlock(&session_lock);
}

/* ------------------------------------------------------------- identity -- */

static void init(void)
{
    OPENSSL_init_ssl(OPENSSL_INIT_NO_ATEXIT | OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    libctx = OSSL_LIB_CTX_new();
    ex_dest = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ex_generation = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    tls_ktls_init();
    tls_store_init();
}

OSSL_LIB_CTX *tls_libctx(void)
{
    return libctx;
}

/* The reason of the last OpenSSL error, and the queue emptied. */
static const char *openssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown error";
}

/* why = the message (a path may be cut short, the line stays one); false. */
__attribute__((format(printf, 3, 4)))
static bool failed(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return false;
}

/* Looked at before OpenSSL opens it, without opening it: only a regular
 * file is taken, since opening a FIFO that no one writes to would hold the
 * connect for ever; and not one another user may write (file_untrusted): a
 * bundle anyone can add a CA to lets anyone pass as any peer. */
static bool readable(const char *what, const char *path, char *why, size_t len)
{
    struct stat st;
    if (stat(path, &st) < 0 || (S_ISREG(st.st_mode) && faccessat(AT_FDCWD, path, R_OK, AT_EACCESS) < 0)) {
        snprintf(why, len, "[tls] %s %s: %s", what, path, strerror(errno));
        return false;
    }
    char untrusted[96];
    if (S_ISDIR(st.st_mode))
        snprintf(why, len, "[tls] %s %s: a folder, not a file ([tls] dir = takes a folder)", what, path);
    else if (!S_ISREG(st.st_mode))
        snprintf(why, len, "[tls] %s %s: not a regular file", what, path);
    else if (file_untrusted(&st, untrusted, sizeof(untrusted)))
        snprintf(why, len, "[tls] %s %s: %s", what, path, untrusted);
    else
        return true;
    return false;
}

static bool all_readable(const struct tls_files *f, char *why, size_t len)
{
    return readable("cert", f->cert, why, len) && readable("key", f->key, why, len) &&
           readable("ca", f->ca, why, len);
}

/* OpenSSL asks for an encrypted key's pass phrase on the process's
 * terminal by default: inside a program that has one, the connect would
 * wait there for ever. There is none to give: the key fails to load. */
static int no_pass_phrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return -1;
}

/* Why a PEM file of kind ("certificate", "private key") did not load, in a
 * user's words when the PEM layer says (OpenSSL's last error is SSL's own
 * "PEM lib" for all of them); the queue emptied. */
static const char *pem_reason(const char *kind, char *buf, size_t len)
{
    unsigned long e, pem = 0, last = 0;
    bool undecoded = false;     /* OpenSSL 3's key decoders found nothing they read */
    while ((e = ERR_get_error())) {
        if (!pem && ERR_GET_LIB(e) == ERR_LIB_PEM)
            pem = e;
        undecoded |= ERR_GET_LIB(e) == ERR_LIB_OSSL_DECODER && ERR_GET_REASON(e) == ERR_R_UNSUPPORTED;
        last = e;
    }
    int r = pem ? ERR_GET_REASON(pem) : 0;
    const char *text = ERR_reason_error_string(pem ? pem : last);
    if (r == PEM_R_NO_START_LINE || (!pem && undecoded))
        snprintf(buf, len, "no PEM %s in it", kind);
    else if (r == PEM_R_BAD_PASSWORD_READ || r == PEM_R_PROBLEMS_GETTING_PASSWORD || r == PEM_R_BAD_DECRYPT)
        snprintf(buf, len, "an encrypted %s: meshim reads it unencrypted (openssl pkey -in FILE -out NEW)",
                 kind);
    else if (pem)
        snprintf(buf, len, "a damaged PEM %s (%s)", kind, text ? text : "unknown error");
    else
        snprintf(buf, len, "%s", text ? text : "unknown error");
    return buf;
}

/* What both of an identity's contexts set alike. */
static void setup_options(SSL_CTX *ctx, const struct mesh_config *cfg, bool chacha_first)
{
    SSL_CTX_set_default_passwd_cb(ctx, no_pass_phrase);
    SSL_CTX_set_min_proto_version(ctx, cfg->tls_min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    /* AES-128-GCM first, as BoringSSL (Envoy) and Go order them: its key
     * schedule is HKDF over SHA-256, cheaper per handshake than SHA-384
     * (OpenSSL's default puts AES-256-GCM-SHA384 first). ChaCha20-Poly1305
     * first, also over SHA-256, where kernel TLS would run a C AES
     * (meshim/kcipher.h). All three go to kernel TLS. The server follows
     * the client's order. */
    SSL_CTX_set_ciphersuites(ctx, chacha_first ? "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"
                                               : "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* One recv per batch of records instead of two per record (header,
     * then body); the relay asks tls_pending before it waits. */
    SSL_CTX_set_read_ahead(ctx, 1);
}

/* The certificate chain, key and trust bundle read from files f into ctx
 * (the client's context: the server's takes them from it, share_files). */
static bool setup_files(SSL_CTX *ctx, const struct tls_files *f, char *why, size_t len)
{
    char reason[192];
    if (SSL_CTX_use_certificate_chain_file(ctx, f->cert) != 1)
        return failed(why, len, "[tls] cert %s: %s", f->cert,
                      pem_reason("certificate", reason, sizeof(reason)));
    if (SSL_CTX_use_PrivateKey_file(ctx, f->key, SSL_FILETYPE_PEM) != 1)
        return failed(why, len, "[tls] key %s: %s", f->key,
                      pem_reason("private key", reason, sizeof(reason)));
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        return failed(why, len, "[tls] key %s does not belong to cert %s", f->key, f->cert);
    }
    if (SSL_CTX_load_verify_locations(ctx, f->ca, NULL) != 1)
        return failed(why, len, "[tls] ca %s: %s", f->ca, openssl_reason());
    /* Every certificate of the bundle is a trust anchor, an intermediate
     * CA too, as for Go (SPIRE, go-spiffe), rustls (Linkerd), Java and
     * curl: a peer's chain ends at the first certificate the bundle holds.
     * OpenSSL's default wants a self-signed root: a bundle that holds the
     * issuing intermediate alone (cert-manager's ca.crt from a CA issuer
     * whose certificate is one, a Vault intermediate) refused every peer
     * with "unable to get issuer certificate". */
    X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx), X509_V_FLAG_PARTIAL_CHAIN);
    return true;
}

/* The server's context gets the client's certificate, chain, key and trust
 * store, parsed once: reading and decoding the three files a second time
 * was about 1.2 ms of a process's first mTLS connect (a bundle of many CAs,
 * more), and both contexts now hold the same objects even if a file is
 * replaced between two reads. The store is shared, not copied (OpenSSL
 * locks it for its lookups), and so are the certificate and key. */
static bool share_files(SSL_CTX *server, SSL_CTX *client, char *why, size_t len)
{
    STACK_OF(X509) *chain = NULL;
    X509_STORE *store = SSL_CTX_get_cert_store(client);
    if (SSL_CTX_get0_chain_certs(client, &chain) != 1 ||
        SSL_CTX_use_certificate(server, SSL_CTX_get0_certificate(client)) != 1 ||
        SSL_CTX_use_PrivateKey(server, SSL_CTX_get0_privatekey(client)) != 1 ||
        (chain && SSL_CTX_set1_chain(server, chain) != 1) || !X509_STORE_up_ref(store)) {
        snprintf(why, len, "OpenSSL: %s", openssl_reason());
        return false;
    }
    SSL_CTX_set_cert_store(server, store);
    return true;
}

static int name_order(const X509_NAME *const *a, const X509_NAME *const *b)
{
    return X509_NAME_cmp(*a, *b);
}

/* The names of the trust store's certificates: the CAs a server names when
 * it asks for the client's certificate (as SSL_load_client_CA_file would
 * read them from the bundle again), each once. NULL when there are none. */
static STACK_OF(X509_NAME) *store_names(X509_STORE *store)
{
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new(name_order);
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
    for (int i = 0; names && i < sk_X509_OBJECT_num(objs); i++) {
        X509 *ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        X509_NAME *name = ca ? X509_NAME_dup(X509_get_subject_name(ca)) : NULL;
        if (!name)
            continue;
        if (sk_X509_NAME_find(names, name) >= 0 || !sk_X509_NAME_push(names, name))
            X509_NAME_free(name);
    }
    if (names && sk_X509_NAME_num(names) == 0) {
        sk_X509_NAME_free(names);
        names = NULL;
    }
    if (names)
        sk_X509_NAME_set_cmp_func(names, NULL);
    return names;
}

static long long unix_time(const ASN1_TIME *t);

static void identity_free(struct tls_identity *id)
{
    SSL_CTX_free(id->client);
    SSL_CTX_free(id->server);
    tls_store_free(id->store);
    free(id);
}

/* The identity from files f (resolved by tls_files_of beforehand, so that
 * the stamps and the load see the same snapshot of a [tls] dir). */
static struct tls_identity *identity_load(const struct mesh_config *cfg, const struct tls_files *f,
                                          char *why, size_t len)
{
    if (!all_readable(f, why, len))
        return NULL;
    struct tls_identity *id = calloc(1, sizeof(*id));
    if (!id) {
        snprintf(why, len, "out of memory");
        return NULL;
    }
    id->refs = 1;
    id->client = SSL_CTX_new_ex(libctx, NULL, TLS_client_method());
    id->server = SSL_CTX_new_ex(libctx, NULL, TLS_server_method());
    id->generation = __atomic_add_fetch(&generations, 1, __ATOMIC_RELAXED);
    if (!id->client || !id->server ||
        !SSL_CTX_set_ex_data(id->client, ex_generation, (void *)(uintptr_t)id->generation)) {
        snprintf(why, len, "OpenSSL: %s", openssl_reason());
        identity_free(id);
        return NULL;
    }
    bool chacha_first = kernel_flags & TLS_KERNEL_CHACHA_FIRST;
    setup_options(id->client, cfg, chacha_first);
    setup_options(id->server, cfg, chacha_first);
    if (!setup_files(id->client, f, why, len) || !share_files(id->server, id->client, why, len)) {
        identity_free(id);
        return NULL;
    }
    tls_ktls_setup(id->client, kernel_flags & TLS_KERNEL_KEYS);
    tls_ktls_setup(id->server, kernel_flags & TLS_KERNEL_KEYS);
    SSL_CTX_set_verify(id->client, SSL_VERIFY_PEER, NULL);
    /* OpenSSL 3.0's own list, without the decoy (meshim/pskhello.h). */
    SSL_CTX_set1_groups_list(id->client, "X25519:P-256:X448:P-521:P-384:ffdhe2048:ffdhe3072:ffdhe4096:ffdhe6144");
    SSL_CTX_set_session_cache_mode(id->client, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(id->client, session_new);

    SSL_CTX_set_verify(id->server, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    /* Without a session id context a client offering a session fails. */
    SSL_CTX_set_session_id_context(id->server, (const unsigned char *)"meshim", 6);
    /* Sessions stay in the server's cache and a ticket only names one
     * (SSL_OP_NO_TICKET: TLS 1.3 "stateful" tickets). A self-contained
     * ticket made OpenSSL 3.0 decode the whole session, the client's
     * certificate with it, on every resumption: 40 % of an inbound mTLS
     * server's CPU under new connections. The price: a ticket resumes only
     * in the process that made it and those it forks after (tls_store.c:
     * nginx's workers); elsewhere the handshake is full. 1024 sessions
     * bound the memory of each process's cache. */
    SSL_CTX_set_options(id->server, SSL_OP_NO_TICKET);
    SSL_CTX_sess_set_cache_size(id->server, 1024);
    SSL_CTX_set_num_tickets(id->server, 1);
    SSL_CTX_set_info_callback(id->server, server_state);
    SSL_CTX_set_client_hello_cb(id->server, hello_read, NULL);
    id->store = tls_store_attach(id->server);
    STACK_OF(X509_NAME) *names = store_names(SSL_CTX_get_cert_store(id->client));
    if (names)
        SSL_CTX_set_client_CA_list(id->server, names);
    id->not_after = unix_time(X509_get0_notAfter(SSL_CTX_get0_certificate(id->client)));
    snprintf(id->cert, sizeof(id->cert), "%s", f->cert);
    ERR_clear_error();
    return id;
}

bool tls_identity_current(const struct tls_identity *id, char *why, size_t len)
{
    time_t now = time(NULL);
    if (!id->not_after || now < (time_t)id->not_after)
        return true;
    /* Only the end is checked: a certificate just issued by a CA whose
     * clock is a little ahead of ours is not refused for its start. */
    time_t at = (time_t)id->not_after;
    struct tm tm;
    char when[32] = "?";
    if (gmtime_r(&at, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
    snprintf(why, len, "[tls] cert %s expired on %s: peers refuse it", id->cert, when);
    return false;
}

/* Under id_lock: the files as they are now; true when one changed (a
 * [tls] dir's swap changes their paths). f NULL: they cannot be named. */
static bool restamp(const struct tls_files *f)
{
    const char *paths[3] = { f ? f->cert : NULL, f ? f->key : NULL, f ? f->ca : NULL };
    bool changed = !loaded_once;
    for (int i = 0; i < 3; i++) {
        struct file_id now = file_id_of(paths[i]);
        bool same_path = stamp_paths[i] && paths[i] ? strcmp(stamp_paths[i], paths[i]) == 0
                                                    : stamp_paths[i] == paths[i];
        if (same_path && file_id_same(&now, &stamps[i]))
            continue;
        changed = true;
        stamps[i] = now;
        if (!same_path) {
            free(stamp_paths[i]);
            stamp_paths[i] = paths[i] ? strdup(paths[i]) : NULL;
        }
    }
    loaded_once = true;
    return changed;
}

/* A certificate's serial number in hex ("?" when it has none to give). */
static void serial_text(X509 *cert, char *buf, size_t len)
{
    ASN1_INTEGER *serial = cert ? X509_get_serialNumber(cert) : NULL;
    BIGNUM *bn = serial ? ASN1_INTEGER_to_BN(serial, NULL) : NULL;
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    snprintf(buf, len, "%s", hex ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
}

static void trust_check(SSL_CTX *ctx, X509 *cert, char *why, size_t len);

/* An identity its own bundle does not verify (a tls.crt without the
 * intermediate that issued it; a bundle of another CA) loads, and every
 * peer that trusts the same bundle refuses it: the peer's line says
 * "unable to get local issuer certificate", this process's only "unknown
 * ca". One warning at each load says which files, as `meshim check` does. */
static void warn_unverified(const struct tls_identity *id, const struct tls_files *f)
{
    char why[160];
    trust_check(id->client, SSL_CTX_get0_certificate(id->client), why, sizeof(why));
    if (why[0])
        log_warn("[tls] ca %s does not verify cert %s (%s): peers that trust the same bundle refuse it",
                 f->ca, f->cert, why);
}

/* A short description of the certificate loaded, for the log. */
static void describe(const struct tls_identity *id, const struct tls_files *f, char *buf, size_t len)
{
    char serial[64];
    serial_text(SSL_CTX_get0_certificate(id->client), serial, sizeof(serial));
    snprintf(buf, len, "%s (%s, serial %s)", f->cert, f->layout, serial);
}

struct tls_identity *tls_identity_get(const struct mesh_config *cfg, unsigned kernel, char *why, size_t len)
{
    pthread_once(&once, init);
    /* A process forked after its parent read the identity (a server that
     * listened, then forked its workers: mtls.h, inbound_listening) looks
     * at the files before it first uses what it inherited, so that a
     * worker forked after a renewal starts with the new certificate,
     * not the watcher's interval later. */
    if (__atomic_exchange_n(&recheck, false, __ATOMIC_ACQ_REL))
        tls_check_files(cfg);
    pthread_mutex_lock(&id_lock);
    if (!current && (!loaded_once || (failed_short && !tls_fd_shortage()))) {
        kernel_flags = kernel;
        struct tls_files f;
        bool named = tls_files_of(cfg, &f, load_error, sizeof(load_error));
        restamp(named ? &f : NULL);
        current = named ? identity_load(cfg, &f, load_error, sizeof(load_error)) : NULL;
        if (current) {
            __atomic_store_n(&current_generation, current->generation, __ATOMIC_RELEASE);
            char d[PATH_MAX + 96];
            describe(current, &f, d, sizeof(d));
            log_info("[tls] identity loaded from %s", d);
            warn_unverified(current, &f);
            failed_short = false;
        } else if ((failed_short = tls_fd_shortage())) {
            /* Nothing is wrong with the files: the process had no number
             * free to read them with (a program at its limit). The files
             * will not change to say so: the next need with a descriptor
             * free tries again. */
            log_error("%s; connections that need mTLS fail until a descriptor is free", load_error);
        } else {
            log_error("%s; connections that need mTLS fail", load_error);
        }
    }
    struct tls_identity *id = current;
    if (id)
        __atomic_add_fetch(&id->refs, 1, __ATOMIC_RELAXED);
    else
        snprintf(why, len, "%s", load_error);
    pthread_mutex_unlock(&id_lock);
    return id;
}

void tls_identity_put(struct tls_identity *id)
{
    if (id && __atomic_sub_fetch(&id->refs, 1, __ATOMIC_ACQ_REL) == 0)
        identity_free(id);
}

void tls_check_files(const struct mesh_config *cfg)
{
    if (!config_has_identity(cfg))
        return;
    /* Resolved once: a [tls] dir's ..data may be swapped while we read. */
    char why[TLS_WHY_MAX];
    struct tls_files f;
    bool named = tls_files_of(cfg, &f, why, sizeof(why));
    pthread_mutex_lock(&id_lock);
    bool was_loaded = loaded_once;
    if (!was_loaded || !restamp(named ? &f : NULL)) {
        /* Never used yet (it is loaded when first needed), or unchanged. */
        pthread_mutex_unlock(&id_lock);
        return;
    }
    pthread_mutex_unlock(&id_lock);
    pthread_once(&once, init);
    struct tls_identity *next = named ? identity_load(cfg, &f, why, sizeof(why)) : NULL;
    if (!next) {
        log_error("%s; %s", why, current ? "the identity loaded before stays" : "mTLS connections fail");
        pthread_mutex_lock(&id_lock);
        snprintf(load_error, sizeof(load_error), "%s", why);
        pthread_mutex_unlock(&id_lock);
        return;
    }
    char d[PATH_MAX + 96];
    describe(next, &f, d, sizeof(d));
    pthread_mutex_lock(&id_lock);
    struct tls_identity *old = current;
    current = next;
    __atomic_store_n(&current_generation, next->generation, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&id_lock);
    tls_identity_put(old);
    sessions_flush();
    log_info("[tls] identity reloaded from %s; new connections use it", d);
    warn_unverified(next, &f);
}

/* ----------------------------------------------------------- handshakes -- */

SSL *tls_client_new(struct tls_identity *id, int fd, const char *dest, const char *sni)
{
    SSL *ssl = SSL_new(id->client);
    char *key = NULL;
    if (!ssl || SSL_set_fd(ssl, fd) != 1 ||
        asprintf(&key, "%s|%s", dest, sni ? sni : "") < 0 || !SSL_set_ex_data(ssl, ex_dest, key)) {
        free(key);
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    /* SNI is a host name, never an address (RFC 6066). */
    struct netaddr a;
    if (sni && *sni && !netaddr_parse(sni, false, &a))
        SSL_set_tlsext_host_name(ssl, sni);
    SSL_set_connect_state(ssl);
    session_resume(ssl, key);
    return ssl;
}

SSL *tls_server_new(struct tls_identity *id, int fd)
{
    SSL *ssl = SSL_new(id->server);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

/* OpenSSL's words for a peer whose first bytes were not a TLS record
 * ("wrong version number": an SSH banner, an HTTP answer), and what they
 * mean for a mesh: the other end is a plaintext port. */
static const char *not_tls(const SSL *ssl, unsigned long e)
{
    int r = ERR_GET_REASON(e);
    if (ERR_GET_LIB(e) != ERR_LIB_SSL || (r != SSL_R_WRONG_VERSION_NUMBER && r != SSL_R_PACKET_LENGTH_TOO_LONG))
        return "";
    return SSL_is_server(ssl) ? " (the client does not speak TLS)"
                              : " (the server does not speak TLS: a plaintext port?)";
}

static void handshake_failure(SSL *ssl, int err, int sys_errno, char *why, size_t len)
{
    long verify = SSL_get_verify_result(ssl);
    unsigned long e = ERR_peek_last_error();
    if (verify != X509_V_OK) {
        snprintf(why, len, "TLS handshake: peer certificate not accepted: %s",
                 X509_verify_cert_error_string(verify));
    } else if (e) {
        snprintf(why, len, "TLS handshake: %s%s", ERR_reason_error_string(e), not_tls(ssl, e));
    } else if (err == SSL_ERROR_SYSCALL && sys_errno) {
        snprintf(why, len, "TLS handshake: %s", strerror(sys_errno));
    } else {
        snprintf(why, len, "TLS handshake: the peer closed the connection");
    }
    ERR_clear_error();
}

int tls_handshake(SSL *ssl, bool *want_write, char *why, size_t len)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
        __atomic_add_fetch(&n_handshakes, 1, __ATOMIC_RELAXED);
        if (SSL_session_reused(ssl))
            __atomic_add_fetch(&n_resumed, 1, __ATOMIC_RELAXED);
        return 1;
    }
    int sys_errno = errno;
    int err = SSL_get_error(ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        *want_write = err == SSL_ERROR_WANT_WRITE;
        return 0;
    }
    handshake_failure(ssl, err, sys_errno, why, len);
    return -1;
}

/* The URI and DNS names of a certificate's subjectAltName; their strings
 * live as long as gens. Names with an embedded NUL are left out. */
static void san_names(GENERAL_NAMES *gens, const char **uris, size_t *n_uris, const char **dns,
                      size_t *n_dns)
{
    *n_uris = *n_dns = 0;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_URI && g->type != GEN_DNS)
            continue;
        const ASN1_IA5STRING *s = g->type == GEN_URI ? g->d.uniformResourceIdentifier : g->d.dNSName;
        const char *text = (const char *)ASN1_STRING_get0_data(s);
        if (!text || strlen(text) != (size_t)ASN1_STRING_length(s))
            continue;
        if (g->type == GEN_URI && *n_uris < MAX_SANS)
            uris[(*n_uris)++] = text;
        else if (g->type == GEN_DNS && *n_dns < MAX_SANS)
            dns[(*n_dns)++] = text;
    }
}

bool tls_peer_check(SSL *ssl, const char *const *patterns, size_t n, char *name, size_t name_len,
                    char *why, size_t len)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    name[0] = '\0';
    if (!cert) {
        snprintf(why, len, "the peer sent no certificate");
        return false;
    }
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    const char *uris[MAX_SANS], *dns[MAX_SANS];
    struct peer_names p = { uris, 0, dns, 0 };
    san_names(gens, uris, &p.n_uris, dns, &p.n_dns);
    const char *matched = identity_allowed(patterns, n, &p);
    identity_copy(name, name_len, matched ? matched : identity_name(&p));
    bool ok = matched != NULL;
    const char *bad = identity_check(&p);
    if (bad)
        snprintf(why, len, "%s", bad);
    else if (!ok)
        snprintf(why, len, "peer identity %s is not %s%s", name[0] ? name : "(none in the certificate)",
                 n == 1 ? "" : "one of ", patterns[0]);
    GENERAL_NAMES_free(gens);
    ERR_clear_error();
    return ok;
}

/* -------------------------------------------------------- meshim check -- */

static long long unix_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (long long)timegm(&tm);
}

/* The cert's chain checked against the trust bundle, as a peer with the
 * same bundle checks it (times aside: the caller reports those). */
static void trust_check(SSL_CTX *ctx, X509 *cert, char *why, size_t len)
{
    X509_STORE_CTX *v = X509_STORE_CTX_new_ex(libctx, NULL);
    STACK_OF(X509) *chain = NULL;
    why[0] = '\0';
    if (!v || !SSL_CTX_get0_chain_certs(ctx, &chain) ||
        X509_STORE_CTX_init(v, SSL_CTX_get_cert_store(ctx), cert, chain) != 1) {
        snprintf(why, len, "cannot be checked: %s", openssl_reason());
    } else {
        X509_STORE_CTX_set_flags(v, X509_V_FLAG_NO_CHECK_TIME);
        if (X509_verify_cert(v) != 1)
            snprintf(why, len, "%s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(v)));
    }
    X509_STORE_CTX_free(v);
    ERR_clear_error();
}

bool tls_identity_facts(const struct mesh_config *cfg, const struct tls_files *f,
                        struct tls_identity_facts *out, char *why, size_t len)
{
    pthread_once(&once, init);
    memset(out, 0, sizeof(*out));
    if (!all_readable(f, why, len))
        return false;
    SSL_CTX *ctx = SSL_CTX_new_ex(libctx, NULL, TLS_server_method());
    if (!ctx)
        return failed(why, len, "OpenSSL: %s", openssl_reason());
    setup_options(ctx, cfg, false);
    if (!setup_files(ctx, f, why, len)) {
        SSL_CTX_free(ctx);
        return false;
    }
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    const char *uris[MAX_SANS], *dns[MAX_SANS];
    struct peer_names p = { uris, 0, dns, 0 };
    san_names(gens, uris, &p.n_uris, dns, &p.n_dns);
    identity_copy(out->name, sizeof(out->name), identity_name(&p));
    GENERAL_NAMES_free(gens);
    serial_text(cert, out->serial, sizeof(out->serial));
    out->not_before = unix_time(X509_get0_notBefore(cert));
    out->not_after = unix_time(X509_get0_notAfter(cert));
    trust_check(ctx, cert, out->untrusted, sizeof(out->untrusted));
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return true;
}

void tls_allow_psk_only(SSL *ssl)
{
    SSL_set_options(ssl, SSL_OP_ALLOW_NO_DHE_KEX);
}

enum tls_resumption tls_resumed(SSL *ssl)
{
    if (!SSL_session_reused(ssl))
        return TLS_NEW_SESSION;
    /* The peer's key share, when there was a key exchange. */
    EVP_PKEY *share = NULL;
    if (SSL_get_peer_tmp_key(ssl, &share) == 1) {
        EVP_PKEY_free(share);
        return TLS_RESUMED;
    }
    ERR_clear_error();
    return TLS_RESUMED_PSK_ONLY;
}

const char *tls_version(SSL *ssl)
{
    return SSL_get_version(ssl);
}

/* What SSL_get_error says after a call that did not succeed (errno as the
 * call left it); the error queue is left empty for the next call on any
 * connection of the thread. */
static enum tls_io io_result(SSL *ssl, int ret, int err)
{
    int e = SSL_get_error(ssl, ret);
    unsigned long first = e == SSL_ERROR_SSL ? ERR_peek_error() : 0;   /* why, when broken */
    ERR_clear_error();
    switch (e) {
    case SSL_ERROR_WANT_READ: return TLS_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return TLS_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return TLS_IO_CLOSED;
    case SSL_ERROR_SYSCALL:
        /* The socket failed (ECONNRESET, EPIPE, ETIMEDOUT); errno 0 is an
         * end of file that OpenSSL did not call unexpected. */
        return err ? TLS_IO_RESET : TLS_IO_FAILED;
    case SSL_ERROR_SSL:
        if (ERR_GET_LIB(first) == ERR_LIB_SSL &&
            ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            return TLS_IO_FAILED;
        return TLS_IO_RESET;
    default: return TLS_IO_FAILED;
    }
}

enum tls_io tls_read(SSL *ssl, void *data, size_t len, size_t *n)
{
    ERR_clear_error();
    errno = 0;
    int ret = SSL_read_ex(ssl, data, len, n);
    return ret ? TLS_IO_DONE : io_result(ssl, ret, errno);
}

enum tls_io tls_write(SSL *ssl, const void *data, size_t len, size_t *n)
{
    ERR_clear_error();
    errno = 0;
    int ret = SSL_write_ex(ssl, data, len, n);
    return ret ? TLS_IO_DONE : io_result(ssl, ret, errno);
}

bool tls_pending(SSL *ssl)
{
    return SSL_has_pending(ssl) == 1;
}

enum tls_io tls_close_notify(SSL *ssl)
{
    ERR_clear_error();
    int ret = SSL_shutdown(ssl);
    if (ret >= 0) {
        ERR_clear_error();
        return TLS_IO_DONE;     /* 0: sent, the peer's may come later */
    }
    enum tls_io io = io_result(ssl, ret, errno);
    return io == TLS_IO_WANT_WRITE ? io : TLS_IO_DONE;
}

void tls_free(SSL *ssl, bool send_close_notify)
{
    if (!ssl)
        return;
    ERR_clear_error();
    if (send_close_notify)
        SSL_shutdown(ssl);
    else
        SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    free(SSL_get_ex_data(ssl, ex_dest));
    SSL_free(ssl);
    ERR_clear_error();
}

void tls_counts(unsigned long *handshakes, unsigned long *resumed)
{
    *handshakes = __atomic_load_n(&n_handshakes, __ATOMIC_RELAXED);
    *resumed = __atomic_load_n(&n_resumed, __ATOMIC_RELAXED);
}

/* ----------------------------------------------------------------- fork -- */

void tls_atfork_prepare(void)
{
    pthread_mutex_lock(&id_lock);
    pthread_mutex_lock(&session_lock);
}

void tls_atfork_parent(void)
{
    pthread_mutex_unlock(&session_lock);
    pthread_mutex_unlock(&id_lock);
}

void tls_atfork_child(void)
{
    pthread_mutex_init(&session_lock, NULL);
    pthread_mutex_init(&id_lock, NULL);
    __atomic_store_n(&recheck, loaded_once, __ATOMIC_RELEASE);
}
