/*
 * tls.c — HTTPS: the server's TLS context, from QBCDC_TLS_CERT and QBCDC_TLS_KEY.
 *
 * h2o does the handshake on the loop thread when its accept context holds an SSL_CTX
 * (h2o_accept -> h2o_socket_ssl_handshake); everything above it is unchanged. TLS 1.2
 * and 1.3 only, OpenSSL's default ciphers for them, no compression, no renegotiation.
 * HTTP/1.1 only, as in plain mode (no ALPN for h2).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "api_internal.h"

/* "what: OpenSSL's reason" into err, and OpenSSL's error queue emptied */
static int fail(char *err, size_t errsz, const char *what, const char *path)
{
    char reason[256];
    unsigned long e = ERR_peek_last_error();
    ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    snprintf(err, errsz, "%s %s: %s", what, path, e != 0 ? reason : "unknown error");
    return QBC_EINVAL;
}

int qbc_api__tls_create(const char *cert, const char *key, SSL_CTX **out, char *err, size_t errsz)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return fail(err, errsz, "cannot make a TLS context for", cert);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    int rc = 0;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        rc = fail(err, errsz, "QBCDC_TLS_CERT: cannot load the certificate chain", cert);
    else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        rc = fail(err, errsz, "QBCDC_TLS_KEY: cannot load the private key", key);
    else if (SSL_CTX_check_private_key(ctx) != 1)
        rc = fail(err, errsz, "QBCDC_TLS_KEY: the key does not match the certificate in", cert);
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

int qbc_api_tls_check(const char *cert, const char *key, char *err, size_t errsz)
{
    SSL_CTX *ctx;
    int rc = qbc_api__tls_create(cert, key, &ctx, err, errsz);
    if (rc != 0)
        return rc;
    SSL_CTX_free(ctx);
    struct stat st;
    if (stat(key, &st) == 0 && (st.st_mode & 0077) != 0)
        qbc_log(QBC_LOG_WARN, "api", "QBCDC_TLS_KEY %s is readable by other users (mode %03o): chmod 600 it", key,
                (unsigned)(st.st_mode & 0777));
    return 0;
}
