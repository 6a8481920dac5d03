/*
 * tls_ktls.c — the OpenSSL side of handing a connection to kernel TLS
 * (see tls.h, "kernel TLS"): agreeing on it with the peer, following the
 * records of the handshake, and giving the traffic keys away.
 *
 * Agreement. A client that may hand off sends an extension of our own in
 * its ClientHello (type MESHIM_EXT, private-use range); a server that may
 * too answers it in EncryptedExtensions (TLS 1.3 only). A peer that is not
 * meshim ignores an extension it does not know (RFC 8446 §4.2), so nothing
 * changes for it. An ALPN value would have done the same job but nginx
 * 1.21.4 and later refuse a ClientHello whose ALPN list has nothing they
 * know, and HTTP clients offer their own ALPN that the application chose.
 * The server's answer carries the number of session tickets it sends: the
 * client reads exactly those before it hands off, so no post-handshake
 * message ever reaches the kernel's receive side (which cannot take one).
 *
 * Keys. OpenSSL 3.0 puts only the sending direction of TLS 1.3 into the
 * kernel, so both directions are installed by the shim from the traffic
 * secrets (the keylog callback gives them) with HKDF-Expand-Label (RFC 8446
 * §7.3). A record's sequence number starts at 0 under each traffic secret;
 * the message callback counts the records sent and read after each side's
 * Finished (the tickets, or bytes relayed before the hand-off).
 */
#include "tls/tls.h"
#include "tls/tls_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>

#include <linux/tls.h>

#define MESHIM_EXT 0xFF6D          /* "m", in TLS's private-use range */
#define EXT_VERSION 1
#define SECRET_MAX 48               /* SHA-384 */

struct ktls_state {
    bool wanted;                    /* this side offers (client) or accepts (server) */
    bool offered;                   /* server: the client offered */
    bool agreed;
    bool tx_app, rx_app;            /* the application traffic secret is in force */
    bool unusable;                  /* a KeyUpdate or another surprise: relay */
    bool relayed;                   /* this end relays (tls_ktls_forget) */
    unsigned tickets_expected, tickets_read;
    uint64_t tx_records, rx_records;    /* sent / read under the application secret */
    size_t secret_len;
    unsigned char tx_secret[SECRET_MAX], rx_secret[SECRET_MAX];
    bool have_tx, have_rx;
    unsigned char answer[2];        /* server: its extension's payload */
};

static int ex_ktls = -1;            /* SSL ex_data: struct ktls_state */

static void state_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    if (ptr)
        OPENSSL_clear_free(ptr, sizeof(struct ktls_state));
}

static struct ktls_state *state_of(const SSL *ssl)
{
    return ex_ktls < 0 ? NULL : SSL_get_ex_data(ssl, ex_ktls);
}

/* ------------------------------------------------------------ extension -- */

static int ext_add(SSL *ssl, unsigned type, unsigned context, const unsigned char **out, size_t *outlen,
                   X509 *x, size_t chainidx, int *al, void *arg)
{
    (void)type; (void)x; (void)chainidx; (void)al; (void)arg;
    static const unsigned char payload[1] = { EXT_VERSION };
    struct ktls_state *k = state_of(ssl);
    if (!k || !k->wanted)
        return 0;
    if (context & SSL_EXT_CLIENT_HELLO) {
        *out = payload;
        *outlen = 1;
        return 1;
    }
    if (!k->offered)
        return 0;
    /* Server: the tickets it sends after the handshake, then nothing. */
    size_t tickets = SSL_get_num_tickets(ssl);
    if (tickets > 8)
        SSL_set_num_tickets(ssl, tickets = 8);
    k->answer[0] = EXT_VERSION;
    k->answer[1] = (unsigned char)tickets;
    k->agreed = true;
    *out = k->answer;
    *outlen = 2;
    return 1;
}

static int ext_parse(SSL *ssl, unsigned type, unsigned context, const unsigned char *in, size_t inlen,
                     X509 *x, size_t chainidx, int *al, void *arg)
{
    (void)type; (void)x; (void)chainidx; (void)al; (void)arg;
    struct ktls_state *k = state_of(ssl);
    if (!k || !k->wanted)
        return 1;                   /* not ours to use: ignored */
    if (context & SSL_EXT_CLIENT_HELLO) {
        k->offered = inlen >= 1 && in[0] == EXT_VERSION;
        return 1;
    }
    /* Client: the server's answer. */
    if (inlen == 2 && in[0] == EXT_VERSION) {
        k->agreed = true;
        k->tickets_expected = in[1];
    }
    return 1;
}

/* ---------------------------------------------------- secrets, records -- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* "LABEL <client random> <secret>", from OpenSSL's keylog callback. */
static void keylog(const SSL *ssl, const char *line)
{
    struct ktls_state *k = state_of(ssl);
    if (!k || !k->wanted)
        return;
    bool client_secret = strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0;
    bool server_secret = strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0;
    if (!client_secret && !server_secret)
        return;
    const char *hex = strchr(line + 24, ' ');
    if (!hex)
        return;
    hex++;
    size_t n = strlen(hex) / 2;
    if (n != 32 && n != 48)
        return;
    bool tx = client_secret == !SSL_is_server((SSL *)ssl);
    unsigned char *out = tx ? k->tx_secret : k->rx_secret;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    k->secret_len = n;
    if (tx)
        k->have_tx = true;
    else
        k->have_rx = true;
}

/* Every record and handshake message, as OpenSSL sends or reads it. A
 * message's callback comes after its record's header's, both ways, so the
 * Finished record itself is never counted. */
static void on_message(int write_p, int version, int type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    (void)version; (void)arg;
    struct ktls_state *k = state_of(ssl);
    if (!k)
        return;
    const unsigned char *b = buf;
    if (type == SSL3_RT_HEADER) {
        if (write_p && k->tx_app)
            k->tx_records++;
        else if (!write_p && k->rx_app)
            k->rx_records++;
    } else if (type == SSL3_RT_HANDSHAKE && len > 0) {
        if (b[0] == SSL3_MT_FINISHED) {
            if (write_p)
                k->tx_app = true;
            else
                k->rx_app = true;
        } else if (b[0] == SSL3_MT_NEWSESSION_TICKET && !write_p) {
            k->tickets_read++;
        } else if (b[0] == SSL3_MT_KEY_UPDATE) {
            k->unusable = true;
        }
    }
}

/* ----------------------------------------------------------------- api -- */

void tls_ktls_init(void)
{
    ex_ktls = SSL_get_ex_new_index(0, NULL, NULL, NULL, state_free);
}

void tls_ktls_setup(SSL_CTX *ctx, bool kernel_tls)
{
    unsigned context = SSL_EXT_TLS_ONLY | SSL_EXT_TLS1_3_ONLY | SSL_EXT_CLIENT_HELLO |
                       SSL_EXT_TLS1_3_ENCRYPTED_EXTENSIONS;
    SSL_CTX_add_custom_ext(ctx, MESHIM_EXT, context, ext_add, NULL, NULL, ext_parse, NULL);
    /* With a keylog callback OpenSSL formats every secret of every
     * handshake as hex (6 % of a server's CPU under new connections); a
     * kernel that cannot take the keys needs none of them. */
    if (kernel_tls)
        SSL_CTX_set_keylog_callback(ctx, keylog);
    ERR_clear_error();
}

bool tls_ktls_want(SSL *ssl)
{
    struct ktls_state *k = OPENSSL_zalloc(sizeof(*k));
    if (!k || !SSL_set_ex_data(ssl, ex_ktls, k)) {
        OPENSSL_free(k);
        ERR_clear_error();
        return false;
    }
    k->wanted = true;
    SSL_set_msg_callback(ssl, on_message);
    /* Never read past the record asked for: bytes the peer sends after its
     * last handshake record belong to the kernel once it has the keys. */
    SSL_set_read_ahead(ssl, 0);
    /* A ticket read is returned as "want read", not followed by a read of
     * whatever comes next (see tls_ktls_settle). */
    SSL_clear_mode(ssl, SSL_MODE_AUTO_RETRY);
    return true;
}

bool tls_ktls_agreed(SSL *ssl)
{
    struct ktls_state *k = state_of(ssl);
    return k && k->agreed && !k->unusable && !k->relayed && SSL_version(ssl) == TLS1_3_VERSION;
}

bool tls_ktls_quiet(SSL *ssl)
{
    struct ktls_state *k = state_of(ssl);
    return k && k->agreed;
}

void tls_ktls_forget(SSL *ssl)
{
    struct ktls_state *k = state_of(ssl);
    if (!k)
        return;
    SSL_set_msg_callback(ssl, NULL);
    SSL_set_read_ahead(ssl, 1);
    SSL_set_mode(ssl, SSL_MODE_AUTO_RETRY);
    OPENSSL_cleanse(k->tx_secret, sizeof(k->tx_secret));
    OPENSSL_cleanse(k->rx_secret, sizeof(k->rx_secret));
    k->have_tx = k->have_rx = false;
    k->relayed = true;
    /* The peer may have handed off: its stream ends with a bare FIN. */
    if (k->agreed)
        SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
}

int tls_ktls_settle(SSL *ssl, bool *want_write, char *why, size_t len)
{
    struct ktls_state *k = state_of(ssl);
    if (!k || !k->agreed)
        return 1;                   /* no hand-off: nothing to wait for */
    while (k->tickets_read < k->tickets_expected && !k->unusable) {
        unsigned char byte;
        size_t n = 0;
        ERR_clear_error();
        int r = SSL_peek_ex(ssl, &byte, 1, &n);
        if (r == 1) {
            snprintf(why, len, "the peer sent data before its session tickets");
            return -1;              /* the relay reads it */
        }
        int e = SSL_get_error(ssl, r);
        ERR_clear_error();
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            snprintf(why, len, "the connection failed before the session tickets came");
            return -2;
        }
        if (k->tickets_read >= k->tickets_expected)
            break;
        *want_write = e == SSL_ERROR_WANT_WRITE;
        return 0;
    }
    if (k->unusable) {
        snprintf(why, len, "a post-handshake message other than a ticket");
        return -1;
    }
    return 1;
}

/* HKDF-Expand-Label(secret, label, "", out_len) (RFC 8446 §7.1). */
static bool expand_label(OSSL_LIB_CTX *libctx, const char *digest, const unsigned char *secret,
                         size_t secret_len, const char *label, unsigned char *out, size_t out_len)
{
    unsigned char info[2 + 1 + 6 + 16 + 1];
    size_t label_len = strlen(label);
    info[0] = (unsigned char)(out_len >> 8);
    info[1] = (unsigned char)out_len;
    info[2] = (unsigned char)(6 + label_len);
    memcpy(info + 3, "tls13 ", 6);
    memcpy(info + 9, label, label_len);
    info[9 + label_len] = 0;
    EVP_KDF *kdf = EVP_KDF_fetch(libctx, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)digest, 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_INFO, info, 10 + label_len),
        OSSL_PARAM_END,
    };
    bool ok = ctx && EVP_KDF_derive(ctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    ERR_clear_error();
    return ok;
}

/* The TLS 1.3 suites the kernel is given: OpenSSL's id, the kernel's
 * cipher, the key's length, the key schedule's hash. */
static const struct kernel_suite {
    uint32_t id;
    int cipher;
    unsigned key_len;
    const char *digest;
} suites[] = {
    { TLS1_3_CK_AES_128_GCM_SHA256, TLS_CIPHER_AES_GCM_128, 16, "SHA256" },
    { TLS1_3_CK_AES_256_GCM_SHA384, TLS_CIPHER_AES_GCM_256, 32, "SHA384" },
    { TLS1_3_CK_CHACHA20_POLY1305_SHA256, TLS_CIPHER_CHACHA20_POLY1305, 32, "SHA256" },
};

bool tls_ktls_keys(SSL *ssl, struct tls_ktls_keys *keys, char *why, size_t len)
{
    struct ktls_state *k = state_of(ssl);
    memset(keys, 0, sizeof(*keys));
    if (!tls_ktls_agreed(ssl) || !k->have_tx || !k->have_rx) {
        snprintf(why, len, "no TLS 1.3 traffic secrets");
        return false;
    }
    if (SSL_has_pending(ssl)) {
        snprintf(why, len, "bytes read but not yet delivered");
        return false;
    }
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    uint32_t id = cipher ? SSL_CIPHER_get_id(cipher) : 0;
    const struct kernel_suite *s = suites, *end = suites + sizeof(suites) / sizeof(suites[0]);
    while (s < end && s->id != id)
        s++;
    if (s == end) {
        snprintf(why, len, "cipher %s is not one the kernel is given", cipher ? SSL_CIPHER_get_name(cipher) : "?");
        return false;
    }
    keys->cipher = s->cipher;
    keys->key_len = s->key_len;
    const char *digest = s->digest;
    OSSL_LIB_CTX *libctx = tls_libctx();
    if (!expand_label(libctx, digest, k->tx_secret, k->secret_len, "key", keys->tx.key, keys->key_len) ||
        !expand_label(libctx, digest, k->tx_secret, k->secret_len, "iv", keys->tx.iv, 12) ||
        !expand_label(libctx, digest, k->rx_secret, k->secret_len, "key", keys->rx.key, keys->key_len) ||
        !expand_label(libctx, digest, k->rx_secret, k->secret_len, "iv", keys->rx.iv, 12)) {
        OPENSSL_cleanse(keys, sizeof(*keys));
        snprintf(why, len, "cannot derive the traffic keys");
        return false;
    }
    keys->tx.seq = k->tx_records;
    keys->rx.seq = k->rx_records;
    return true;
}
