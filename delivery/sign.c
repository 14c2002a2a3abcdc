/*
 * sign.c — Standard Webhooks secrets and signatures.
 *
 * A secret is "whsec_" + base64 of its key; a signature is "v1," + base64 of
 * HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>").
 */
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "delivery.h"

int qbc_delivery_secret_new(char *out)
{
    unsigned char key[32];
    if (RAND_bytes(key, sizeof(key)) != 1)
        return QBC_ECRYPTO;
    memcpy(out, QBC_WHSEC_PREFIX, sizeof(QBC_WHSEC_PREFIX) - 1);
    qbc_base64_encode(key, sizeof(key), out + sizeof(QBC_WHSEC_PREFIX) - 1);
    OPENSSL_cleanse(key, sizeof(key));
    return 0;
}

int qbc_delivery_secret_key(const char *secret, unsigned char *key, size_t *key_len)
{
    unsigned char buf[QBC_BASE64_ENCODED_SIZE(QBC_WHSEC_KEY_MAX)];
    if (strncmp(secret, QBC_WHSEC_PREFIX, sizeof(QBC_WHSEC_PREFIX) - 1) == 0)
        secret += sizeof(QBC_WHSEC_PREFIX) - 1;
    size_t len = strlen(secret), n = 0;
    /* the decoded bytes are at most 3/4 of the text: too long a text cannot fit the key */
    if (len == 0 || len > sizeof(buf) - 1 || qbc_base64_decode(secret, len, buf, &n) != 0 || n < QBC_WHSEC_KEY_MIN ||
        n > QBC_WHSEC_KEY_MAX) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return QBC_EMALFORMED;
    }
    memcpy(key, buf, n);
    *key_len = n;
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

void qbc_delivery_sign(const unsigned char *key, size_t key_len, const char *msg_id, int64_t timestamp,
                       const void *body, size_t body_len, char *out)
{
    char ts[32];
    unsigned char mac[32];
    unsigned int mac_len = sizeof(mac);
    int n = snprintf(ts, sizeof(ts), ".%lld.", (long long)timestamp);
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0), OSSL_PARAM_construct_end()};
    size_t outl = 0;
    int ok = c != NULL && EVP_MAC_init(c, key, key_len, params) == 1 &&
             EVP_MAC_update(c, (const unsigned char *)msg_id, strlen(msg_id)) == 1 &&
             EVP_MAC_update(c, (const unsigned char *)ts, (size_t)n) == 1 && EVP_MAC_update(c, body, body_len) == 1 &&
             EVP_MAC_final(c, mac, &outl, sizeof(mac)) == 1;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    if (!ok) /* only without memory or a broken OpenSSL: fail loudly rather than send a wrong signature */
        qbc_fatal("HMAC-SHA256 failed");
    mac_len = (unsigned)outl;
    memcpy(out, "v1,", 3);
    qbc_base64_encode(mac, mac_len, out + 3);
}
