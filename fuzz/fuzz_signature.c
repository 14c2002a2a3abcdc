/*
 * fuzz_signature.c — libFuzzer target for ingress/signature.c: the intuit-signature header
 * decoder and both HMAC checks (one-shot qbc_signature_verify, prepared qbc_verifier_check).
 *
 * Input layout: byte 0 is a length L (0..255); the next min(L, rest) bytes are the header
 * value, the remaining bytes are the body. The key is fixed, so the header is almost
 * never a valid signature of the body; hence, for every input, also:
 *   - both checks agree on the fuzzed header (they promise "exactly the same rules");
 *   - the signature computed over the body with the fuzz key verifies, through both,
 *     also surrounded by spaces and tabs, and also when the key is one of several;
 *   - that signature with one byte changed (a fuzz-chosen position and value) does not;
 *   - a body with one byte changed does not verify under the original signature.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "ingress.h"

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            qbc_fatal("fuzz_signature: invariant broken: %s", #cond);                                                  \
    } while (0)

static const char *const tokens[] = {"fuzz-verifier-token-0123456789abcdef"};
static const char *const rotated[] = {"an-older-token", "", "fuzz-verifier-token-0123456789abcdef"};
static qbc_verifier_t *verifier, *verifier_rotated;

/* both checks, which must agree. @return 0 or QBC_EAUTH */
static int verify(const char *header, size_t header_len, const void *body, size_t body_len)
{
    int a = qbc_signature_verify(header, header_len, body, body_len, tokens, 1);
    int b = qbc_verifier_check(verifier, header, header_len, body, body_len);
    int c = qbc_verifier_check(verifier_rotated, header, header_len, body, body_len);
    CHECK(a == 0 || a == QBC_EAUTH);
    CHECK(a == b && b == c);
    return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char sig[QBC_SIGNATURE_B64_SIZE], padded[QBC_SIGNATURE_B64_SIZE + 4];
    size_t hlen, blen, sig_len;
    char *header, *body;

    if (verifier == NULL) {
        verifier = qbc_verifier_new(tokens, 1);
        verifier_rotated = qbc_verifier_new(rotated, 3);
        CHECK(verifier != NULL && verifier_rotated != NULL);
    }
    if (size == 0)
        return 0;
    hlen = data[0] < size - 1 ? data[0] : size - 1;
    blen = size - 1 - hlen;
    /* exact-size copies: ASan sees any read past either */
    header = malloc(hlen ? hlen : 1);
    body = malloc(blen ? blen : 1);
    memcpy(header, data + 1, hlen);
    memcpy(body, data + 1 + hlen, blen);

    verify(header, hlen, body, blen);
    CHECK(verify(NULL, 0, body, blen) == QBC_EAUTH);

    qbc_signature_compute(tokens[0], strlen(tokens[0]), body, blen, sig);
    sig_len = strlen(sig);
    CHECK(sig_len == QBC_SIGNATURE_B64_SIZE - 1);
    CHECK(verify(sig, sig_len, body, blen) == 0);
    padded[0] = ' ';
    padded[1] = '\t';
    memcpy(padded + 2, sig, sig_len);
    padded[sig_len + 2] = '\t';
    padded[sig_len + 3] = ' ';
    CHECK(verify(padded, sig_len + 4, body, blen) == 0);
    CHECK(qbc_signature_verify(sig, sig_len, body, blen, rotated, 3) == 0);

    /* one byte of the signature changed: never valid (a changed padding '=' is not base64) */
    if (hlen > 0) {
        size_t at = (unsigned char)header[0] % sig_len;
        char was = sig[at];
        sig[at] = hlen > 1 && header[1] != was ? header[1] : (char)(was ^ 0x01);
        CHECK(verify(sig, sig_len, body, blen) == QBC_EAUTH);
        sig[at] = was;
    }
    /* one byte of the body changed: the old signature no longer fits */
    if (blen > 0) {
        size_t at = hlen > 0 ? (unsigned char)header[hlen - 1] % blen : 0;
        body[at] ^= 0x20;
        CHECK(verify(sig, sig_len, body, blen) == QBC_EAUTH);
    }
    free(header);
    free(body);
    return 0;
}
