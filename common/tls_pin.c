/*
 * tls_pin.c — see tls_pin.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include "common.h"
#include "tls_pin.h"

int qbc_tls_pin_from_cert(const char *cert_path, char pin[QBC_TLS_PIN_MAX], char *err, size_t errsz)
{
    FILE *f = fopen(cert_path, "r");
    if (f == NULL) {
        snprintf(err, errsz, "cannot read %s: %s", cert_path, strerror(errno));
        return QBC_EINVAL;
    }
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL) {
        ERR_clear_error();
        snprintf(err, errsz, "%s holds no PEM certificate", cert_path);
        return QBC_EINVAL;
    }
    unsigned char *der = NULL, digest[SHA256_DIGEST_LENGTH];
    int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    X509_free(x);
    if (len <= 0) {
        ERR_clear_error();
        snprintf(err, errsz, "the certificate in %s has no readable public key", cert_path);
        return QBC_EINVAL;
    }
    SHA256(der, (size_t)len, digest);
    OPENSSL_free(der);
    memcpy(pin, "sha256//", 8);
    EVP_EncodeBlock((unsigned char *)pin + 8, digest, sizeof(digest)); /* 44 characters and a NUL */
    return 0;
}
