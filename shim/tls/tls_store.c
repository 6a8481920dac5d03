/*
 * tls_store.c — a server identity's TLS sessions, shared by the processes
 * forked from the one that made the store's memory: the library reserves
 * it at start in a process that serves mTLS (tls_store_reserve), so that
 * nginx's workers, which each load the identity as they drop root
 * (hook/process.c), take their master's; else the identity makes it.
 *
 * Why. A server keeps its sessions in OpenSSL's cache (stateful tickets, see
 * identity_load in tls.c), which is per process. A client's connections
 * reach any worker, and a worker that never saw the client's session would
 * make a full handshake and a new ticket, which the next worker does not
 * know either: with two workers half the connections resumed. So each new
 * session is also written here, and a worker whose own cache misses reads
 * it from here once (OpenSSL then keeps it in that worker's cache).
 *
 * What. MAP_SHARED | MAP_ANONYMOUS memory: only fork children share it,
 * nothing is on disk, another user cannot reach it. The reserved memory
 * goes to a process's first identity only; one loaded after a rotation
 * makes its own. STORE_SLOTS slots of one session each (its id, its DER,
 * the identity it was made under: identity_tag), chosen by the id's first
 * bytes (random); a new session overwrites the slot's last. A slot is a
 * seqlock: the writer makes the sequence odd by compare-and-swap
 * (a writer that loses, or finds it odd, skips: this is a cache), writes,
 * and makes it even; a reader copies the slot and uses it only when the
 * sequence was even and unchanged around the copy. A process killed while
 * writing leaves its slot odd, and so unused: one slot lost, nothing wrong.
 */
#include "tls/tls_internal.h"
#include "tls/tls_module.h"
#include "meshim/pskhello.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#define STORE_SLOTS 512
#define STORE_DER_MAX 1992          /* a session with a P-256 or RSA-2048 client certificate */
#define STORE_TAG 8

struct store_slot {
    uint32_t seq;                   /* atomic: even = stable, odd = being written */
    uint16_t id_len, der_len;
    uint16_t hash;                  /* its suite's: 256, 384 (tls_store_resumes) */
    unsigned char tag[STORE_TAG];   /* the identity it was made under */
    unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
    unsigned char der[STORE_DER_MAX];
};

/* The shared memory: 512 slots of 2 KiB. */
struct store_mem {
    struct store_slot slots[STORE_SLOTS];
};
_Static_assert(sizeof(struct store_mem) <= TLS_STORE_BYTES, "TLS_STORE_BYTES is too small");

/* One server identity's view of it (SSL_CTX ex_data). */
struct tls_store {
    struct store_mem *mem;
    unsigned char tag[STORE_TAG];
};

static int ex_store = -1;           /* SSL_CTX ex_data: its struct tls_store */

static struct store_slot *slot_of(struct tls_store *st, const unsigned char *id, size_t id_len)
{
    uint32_t h = 0;
    memcpy(&h, id, id_len < sizeof(h) ? id_len : sizeof(h));
    return &st->mem->slots[h % STORE_SLOTS];
}

/* OpenSSL made a session (a full handshake's, for its ticket). Returns 0:
 * no reference kept. */
static int store_new(SSL *ssl, SSL_SESSION *session)
{
    struct tls_store *st = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_store);
    unsigned id_len = 0;
    const unsigned char *id = SSL_SESSION_get_id(session, &id_len);
    int n = i2d_SSL_SESSION(session, NULL);
    if (!st || id_len == 0 || id_len > SSL_MAX_SSL_SESSION_ID_LENGTH || n <= 0 || n > STORE_DER_MAX)
        return 0;
    struct store_slot *s = slot_of(st, id, id_len);
    uint32_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
    if ((seq & 1) ||
        !__atomic_compare_exchange_n(&s->seq, &seq, seq + 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return 0;
    unsigned char *p = s->der;
    s->der_len = (uint16_t)i2d_SSL_SESSION(session, &p);
    s->id_len = (uint16_t)id_len;
    s->hash = (uint16_t)psk_hello_suite_hash(SSL_CIPHER_get_protocol_id(SSL_SESSION_get0_cipher(session)));
    memcpy(s->id, id, id_len);
    memcpy(s->tag, st->tag, STORE_TAG);
    __atomic_store_n(&s->seq, seq + 2, __ATOMIC_RELEASE);
    return 0;
}

/* A stable copy of the slot holding session id under this identity; false
 * when there is none (or it is being written). */
static bool slot_read(struct tls_store *st, const unsigned char *id, size_t id_len, struct store_slot *mine)
{
    if (!st || id_len == 0 || id_len > SSL_MAX_SSL_SESSION_ID_LENGTH)
        return false;
    struct store_slot *s = slot_of(st, id, id_len);
    uint32_t before = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
    if (before & 1)
        return false;
    memcpy(mine, s, sizeof(*mine));
    /* A read-modify-write that changes nothing: its release half keeps the
     * copy's loads before it (a fence would do, but TSan builds refuse
     * fences). */
    return __atomic_fetch_add(&s->seq, 0, __ATOMIC_ACQ_REL) == before && mine->id_len == (uint16_t)id_len &&
           memcmp(mine->id, id, id_len) == 0 && mine->der_len <= STORE_DER_MAX &&
           memcmp(mine->tag, st->tag, STORE_TAG) == 0;
}

/* This process's cache has no session by that id: another process's, if
 * the store has it whole. OpenSSL takes the reference (*copy = 0) and puts
 * the session in this process's cache. */
static SSL_SESSION *store_get(SSL *ssl, const unsigned char *id, int id_len, int *copy)
{
    struct tls_store *st = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_store);
    struct store_slot mine;
    *copy = 0;
    if (id_len <= 0 || !slot_read(st, id, (size_t)id_len, &mine))
        return NULL;
    const unsigned char *p = mine.der;
    SSL_SESSION *session = d2i_SSL_SESSION(NULL, &p, mine.der_len);
    ERR_clear_error();
    return session;
}

/* Will a ClientHello offering session id resume it? Every session this
 * identity makes is written here, and OpenSSL finds it here when its own
 * cache does not have it; a session whose slot was taken since, or that
 * was too big for one, is not known here: then the answer is no, and the
 * handshake keeps its key exchange. hash: that of the suite the server
 * picks (a session resumes only under a suite of its own hash). */
bool tls_store_resumes(SSL *ssl, const unsigned char *id, size_t id_len, int hash)
{
    struct tls_store *st = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_store);
    struct store_slot mine;
    return slot_read(st, id, id_len, &mine) && mine.hash == hash;
}

void tls_store_init(void)
{
    ex_store = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* Which identity a session was made under: a digest of the server's
 * certificate and of every CA it trusts. The reserved memory outlives an
 * identity: a worker forked after a rotation takes the memory its elder
 * siblings filled, and their sessions, checked against a trust that may be
 * gone, must not resume under the new identity. */
static bool identity_tag(SSL_CTX *server, unsigned char tag[STORE_TAG])
{
    EVP_MD *sha = EVP_MD_fetch(tls_libctx(), "SHA2-256", NULL);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    X509 *leaf = SSL_CTX_get0_certificate(server);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    bool ok = sha && md && leaf && EVP_DigestInit_ex(md, sha, NULL) && X509_digest(leaf, sha, d, &n) &&
              EVP_DigestUpdate(md, d, n);
    STACK_OF(X509_OBJECT) *objs = ok ? X509_STORE_get0_objects(SSL_CTX_get_cert_store(server)) : NULL;
    for (int i = 0; ok && objs && i < sk_X509_OBJECT_num(objs); i++) {
        X509 *ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        ok = !ca || (X509_digest(ca, sha, d, &n) && EVP_DigestUpdate(md, d, n));
    }
    ok = ok && EVP_DigestFinal_ex(md, d, &n) && n >= STORE_TAG;
    if (ok)
        memcpy(tag, d, STORE_TAG);
    EVP_MD_CTX_free(md);
    EVP_MD_free(sha);
    ERR_clear_error();
    return ok;
}

/* The memory reserved at start when there is one (nginx's workers each
 * take their master's), else this identity's own. NULL: this identity
 * keeps its sessions in its own process only. */
struct tls_store *tls_store_attach(SSL_CTX *server)
{
    struct tls_store *st = calloc(1, sizeof(*st));
    if (!st || !identity_tag(server, st->tag)) {
        free(st);
        return NULL;
    }
    st->mem = tls_store_memory();
    if (!st->mem) {
        free(st);
        return NULL;
    }
    if (!SSL_CTX_set_ex_data(server, ex_store, st)) {
        tls_store_free(st);
        ERR_clear_error();
        return NULL;
    }
    SSL_CTX_sess_set_new_cb(server, store_new);
    SSL_CTX_sess_set_get_cb(server, store_get);
    return st;
}

void tls_store_free(struct tls_store *st)
{
    if (!st)
        return;
    munmap(st->mem, TLS_STORE_BYTES);   /* as made, reserved or not */
    free(st);
}
