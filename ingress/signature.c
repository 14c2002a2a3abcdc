/*
 * signature.c — the intuit-signature check (qbo-facts §1.3).
 *
 * Intuit signs every webhook POST with base64(HMAC-SHA256(key = verifier token bytes,
 * message = raw body bytes)). The token is used as-is (it is not base64-decoded), and
 * the MAC covers the exact bytes on the wire: re-serialised JSON would not match.
 *
 * We compare MACs, not base64 text: the header is decoded strictly and the 32 raw
 * bytes are compared with CRYPTO_memcmp, once per configured token so that a token
 * rotation (old and new both configured) never drops a webhook.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "ingress.h"

#define MAC_LEN 32 /* SHA-256 */

/* HMAC-SHA256 of body under token into mac. Returns 0, or -1 if OpenSSL failed. */
static int hmac_sha256(const char *token, size_t token_len, const void *body, size_t body_len,
                       unsigned char mac[MAC_LEN])
{
    static const unsigned char empty[1];
    unsigned int mac_len = 0;

    if (token_len > INT_MAX)
        return -1;
    /* OpenSSL wants real pointers even for empty inputs. */
    if (token == NULL)
        token = (const char *)empty;
    if (body == NULL)
        body = empty;
    if (HMAC(EVP_sha256(), token, (int)token_len, body, body_len, mac, &mac_len) == NULL || mac_len != MAC_LEN)
        return -1;
    return 0;
}

void qbc_signature_compute(const char *token, size_t token_len, const void *body, size_t body_len,
                           char out[QBC_SIGNATURE_B64_SIZE])
{
    unsigned char mac[MAC_LEN];

    if (hmac_sha256(token, token_len, body, body_len, mac) != 0) {
        /* an empty string never verifies, so a failure here cannot be mistaken for a signature */
        out[0] = '\0';
        return;
    }
    qbc_base64_encode(mac, sizeof(mac), out);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* the 32 MAC bytes a header claims, or -1 if it is not exactly one padded encoding of 32 bytes */
static int decode_header(const char *header, size_t header_len, unsigned char want[33])
{
    size_t want_len = 0;

    if (header == NULL)
        return -1;
    /* only spaces and tabs are trimmed: HTTP's optional whitespace around a field value */
    while (header_len > 0 && is_blank(header[0])) {
        header++;
        header_len--;
    }
    while (header_len > 0 && is_blank(header[header_len - 1]))
        header_len--;

    /* exactly one padded encoding of 32 bytes is 44 characters, nothing else decodes to a MAC */
    if (header_len != QBC_SIGNATURE_B64_SIZE - 1)
        return -1;
    if (qbc_base64_decode(header, header_len, want, &want_len) != 0 || want_len != MAC_LEN)
        return -1;
    return 0;
}

int qbc_signature_verify(const char *header, size_t header_len, const void *body, size_t body_len,
                         const char *const *tokens, size_t n_tokens)
{
    unsigned char want[(QBC_SIGNATURE_B64_SIZE - 1) / 4 * 3]; /* 33: what a 44-char decode may write */
    unsigned char got[MAC_LEN];
    size_t i;
    int matched = 0;

    if (header == NULL || tokens == NULL || n_tokens == 0)
        return QBC_EAUTH;
    if (body == NULL && body_len != 0)
        return QBC_EAUTH;
    if (decode_header(header, header_len, want) != 0)
        return QBC_EAUTH;

    /* every token is tried, even after a match, so the time taken does not say which one matched */
    for (i = 0; i < n_tokens; i++) {
        const char *t = tokens[i];
        /* an empty token would be a key anyone can sign with: a configuration slip, never a match */
        if (t == NULL || t[0] == '\0')
            continue;
        if (hmac_sha256(t, strlen(t), body, body_len, got) != 0)
            continue;
        matched |= CRYPTO_memcmp(got, want, MAC_LEN) == 0;
    }
    OPENSSL_cleanse(got, sizeof(got));
    return matched ? 0 : QBC_EAUTH;
}

/* ============================== prepared verifier ============================== */

/*
 * HMAC as RFC 2104 defines it, H((K ^ opad) || H((K ^ ipad) || m)), with the two
 * keyed SHA-256 states computed once per token. A check copies them and hashes only
 * the body: no algorithm lookups, no key schedule, no allocation.
 */
#define SHA256_BLOCK 64

typedef struct {
    EVP_MD_CTX *inner, *outer; /* after absorbing K ^ ipad, K ^ opad */
} keyed_t;

struct st_qbc_verifier_t {
    EVP_MD *md;
    EVP_MD_CTX *scratch; /* reused per check: one thread at a time */
    size_t n;
    keyed_t key[];
};

static int keyed_init(EVP_MD *md, const char *token, keyed_t *k)
{
    unsigned char block[SHA256_BLOCK], pad[SHA256_BLOCK];
    size_t len = strlen(token);
    unsigned int dlen = 0;
    int ok = 1;

    memset(block, 0, sizeof(block));
    if (len > SHA256_BLOCK)
        ok = EVP_Digest(token, len, block, &dlen, md, NULL) == 1; /* long keys are hashed first */
    else
        memcpy(block, token, len);
    k->inner = EVP_MD_CTX_new();
    k->outer = EVP_MD_CTX_new();
    ok = ok && k->inner != NULL && k->outer != NULL;
    for (int i = 0; i < SHA256_BLOCK; i++)
        pad[i] = block[i] ^ 0x36;
    ok = ok && EVP_DigestInit_ex(k->inner, md, NULL) == 1 && EVP_DigestUpdate(k->inner, pad, sizeof(pad)) == 1;
    for (int i = 0; i < SHA256_BLOCK; i++)
        pad[i] = block[i] ^ 0x5c;
    ok = ok && EVP_DigestInit_ex(k->outer, md, NULL) == 1 && EVP_DigestUpdate(k->outer, pad, sizeof(pad)) == 1;
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
    return ok ? 0 : -1;
}

qbc_verifier_t *qbc_verifier_new(const char *const *tokens, size_t n_tokens)
{
    qbc_verifier_t *v = qbc_calloc(1, sizeof(*v) + n_tokens * sizeof(keyed_t));

    if ((v->md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL || (v->scratch = EVP_MD_CTX_new()) == NULL)
        goto Error;
    for (size_t i = 0; i < n_tokens; i++) {
        const char *t = tokens[i];
        if (t == NULL || t[0] == '\0')
            continue; /* as in qbc_signature_verify: an empty key is a slip, never a match */
        if (keyed_init(v->md, t, &v->key[v->n++]) != 0)
            goto Error;
    }
    return v;

Error:
    qbc_verifier_free(v);
    return NULL;
}

static int keyed_mac(qbc_verifier_t *v, const keyed_t *k, const void *body, size_t len, unsigned char out[MAC_LEN])
{
    unsigned char ih[MAC_LEN];
    unsigned int n = 0;
    int ok = EVP_MD_CTX_copy_ex(v->scratch, k->inner) == 1 && EVP_DigestUpdate(v->scratch, body, len) == 1 &&
             EVP_DigestFinal_ex(v->scratch, ih, &n) == 1 && n == MAC_LEN &&
             EVP_MD_CTX_copy_ex(v->scratch, k->outer) == 1 && EVP_DigestUpdate(v->scratch, ih, MAC_LEN) == 1 &&
             EVP_DigestFinal_ex(v->scratch, out, &n) == 1 && n == MAC_LEN;
    return ok ? 0 : -1;
}

int qbc_verifier_check(const qbc_verifier_t *cv, const char *header, size_t header_len, const void *body,
                       size_t body_len)
{
    static const unsigned char empty[1];
    qbc_verifier_t *v = (qbc_verifier_t *)cv; /* only the scratch context changes */
    unsigned char want[(QBC_SIGNATURE_B64_SIZE - 1) / 4 * 3], got[MAC_LEN];
    int matched = 0;

    if (v == NULL || v->n == 0 || (body == NULL && body_len != 0) || decode_header(header, header_len, want) != 0)
        return QBC_EAUTH;
    if (body == NULL)
        body = empty;
    /* every token is tried, even after a match, so the time taken does not say which one matched */
    for (size_t i = 0; i < v->n; i++)
        if (keyed_mac(v, &v->key[i], body, body_len, got) == 0)
            matched |= CRYPTO_memcmp(got, want, MAC_LEN) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return matched ? 0 : QBC_EAUTH;
}

void qbc_verifier_free(qbc_verifier_t *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->n; i++) {
        EVP_MD_CTX_free(v->key[i].inner);
        EVP_MD_CTX_free(v->key[i].outer);
    }
    EVP_MD_CTX_free(v->scratch);
    EVP_MD_free(v->md);
    free(v);
}
