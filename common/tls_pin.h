/*
 * tls_pin.h — the public-key pin of a certificate, as libcurl's CURLOPT_PINNEDPUBLICKEY
 * takes it ("sha256//" + base64 of the SHA-256 of the DER SubjectPublicKeyInfo).
 *
 * Our own clients of a qbcdc that serves HTTPS (the admin CLI, the bundled simulator's
 * webhooks) pin the key of the certificate the service was given (QBCDC_TLS_CERT)
 * instead of checking a name: they connect to a listen address such as 127.0.0.1
 * that the certificate need not name, and the pin is the stronger check.
 */
#ifndef QBC_TLS_PIN_H
#define QBC_TLS_PIN_H

#include <stddef.h>

/** the longest pin: "sha256//" + 44 base64 characters + NUL */
#define QBC_TLS_PIN_MAX 64

/**
 * reads the first certificate of the PEM file cert_path and writes its pin into pin.
 * @param[out] err a one-line reason on failure
 * @return 0, or QBC_EINVAL (unreadable file, no certificate in it)
 */
int qbc_tls_pin_from_cert(const char *cert_path, char pin[QBC_TLS_PIN_MAX], char *err, size_t errsz);

#endif
