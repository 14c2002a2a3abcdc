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

int qbc_signature_verify(const char *header, size_t header_len, const void *body, size_t body_len,
                         const char *const *tokens, size_t n_tokens)
{
    unsigned char want[(QBC_SIGNATURE_B64_SIZE - 1) / 4 * 3]; /* 33: what a 44-char decode may write */
    unsigned char got[MAC_LEN];
    size_t want_len = 0, i;
    int matched = 0;

    if (header == NULL || tokens == NULL || n_tokens == 0)
        return QBC_EAUTH;
    if (body == NULL && body_len != 0)
        return QBC_EAUTH;

    /* only spaces and tabs are trimmed: HTTP's optional whitespace around a field value */
    while (header_len > 0 && is_blank(header[0])) {
        header++;
        header_len--;
    }
    while (header_len > 0 && is_blank(header[header_len - 1]))
        header_len--;

    /* exactly one padded encoding of 32 bytes is 44 characters, nothing else decodes to a MAC */
    if (header_len != QBC_SIGNATURE_B64_SIZE - 1)
        return QBC_EAUTH;
    if (qbc_base64_decode(header, header_len, want, &want_len) != 0 || want_len != MAC_LEN)
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
