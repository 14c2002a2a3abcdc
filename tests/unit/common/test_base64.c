/*
 * test_base64.c — common/base64.c: RFC 4648 test vectors, the strictness the signature
 * check relies on (padding required, no whitespace, one text per byte string), and
 * that decoding never writes past (len / 4) * 3 bytes.
 */
#include <stdlib.h>
#include <string.h>
#include "common.h"
#include "tap.h"

/* RFC 4648 §10 */
static const struct {
    const char *plain, *b64;
} rfc[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void test_rfc_vectors(void)
{
    char enc[64], name[96];
    unsigned char dec[64];
    size_t n;

    for (size_t i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++) {
        size_t len = strlen(rfc[i].plain);
        snprintf(name, sizeof(name), "encode \"%s\"", rfc[i].plain);
        size_t elen = qbc_base64_encode(rfc[i].plain, len, enc);
        is_str(enc, rfc[i].b64, name);
        snprintf(name, sizeof(name), "encode \"%s\" returns its length", rfc[i].plain);
        is_int(elen, strlen(rfc[i].b64), name);
        snprintf(name, sizeof(name), "decode \"%s\"", rfc[i].b64);
        n = 999;
        is_int(qbc_base64_decode(rfc[i].b64, strlen(rfc[i].b64), dec, &n), 0, name);
        snprintf(name, sizeof(name), "decode \"%s\" gives %zu bytes, exact", rfc[i].b64, len);
        ok(n == len && memcmp(dec, rfc[i].plain, len) == 0, name);
    }
}

static void test_binary(void)
{
    unsigned char all[256], dec[256];
    char enc[QBC_BASE64_ENCODED_SIZE(256)];
    size_t n = 0;

    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    is_int(QBC_BASE64_ENCODED_SIZE(256), 345, "encoded size of 256 bytes, with NUL");
    is_int(QBC_BASE64_ENCODED_SIZE(32), 45, "encoded size of a SHA-256 MAC, with NUL");
    is_int(QBC_BASE64_ENCODED_SIZE(0), 1, "encoded size of nothing is the NUL");
    size_t elen = qbc_base64_encode(all, 256, enc);
    is_int(elen, 344, "all byte values encode to 344 chars");
    is_int(enc[344], '\0', "encode terminates");
    is_str(enc + 336, "/P3+/w==", "high bytes use + and / (standard alphabet, not URL-safe)");
    is_int(qbc_base64_decode(enc, elen, dec, &n), 0, "all byte values decode");
    ok(n == 256 && memcmp(dec, all, 256) == 0, "all byte values round-trip");

    /* every length 0..40 round-trips, via exactly-sized heap buffers (ASan checks the bounds) */
    int fails = 0;
    for (size_t len = 0; len <= 40; len++) {
        char *e = qbc_alloc(QBC_BASE64_ENCODED_SIZE(len));
        size_t el = qbc_base64_encode(all + 100, len, e);
        size_t cap = el / 4 * 3;
        unsigned char *d = qbc_alloc(cap ? cap : 1);
        size_t dl = 0;
        if (el + 1 != QBC_BASE64_ENCODED_SIZE(len) || qbc_base64_decode(e, el, d, &dl) != 0 || dl != len ||
            memcmp(d, all + 100, len) != 0)
            fails++;
        free(e);
        free(d);
    }
    is_int(fails, 0, "lengths 0..40 round-trip within the documented buffer sizes");
}

static void rejects(const char *s, const char *why)
{
    unsigned char dec[64];
    size_t n = 7;
    is_int(qbc_base64_decode(s, strlen(s), dec, &n), QBC_EMALFORMED, why);
}

static void test_strict(void)
{
    rejects("Zg", "missing padding");
    rejects("Zg=", "short padding");
    rejects("Zm9", "length not a multiple of 4");
    rejects("Zg===", "extra padding");
    rejects("Z===", "three pad characters");
    rejects("====", "only padding");
    rejects("Zg==Zg==", "padding in the middle");
    rejects("Zm=v", "pad followed by data");
    rejects("Z=9v", "pad in second position");
    rejects("Zm9v Yg==", "embedded space");
    rejects(" Zm9vYg=", "leading space");
    rejects("Zm9v\nYg=", "embedded newline");
    rejects("Zm9vYg==\n", "trailing newline");
    rejects("Zm9-Yg==", "URL-safe alphabet '-'");
    rejects("Zm9_Yg==", "URL-safe alphabet '_'");
    rejects("Zm9v\xc3\xa9g=", "non-ASCII bytes");
    /* canonical only: the unused bits of the last character must be zero */
    rejects("Zh==", "non-zero bits after one byte (Zh== vs Zg==)");
    rejects("Zm9=", "non-zero bits after two bytes (Zm9= vs Zm8=)");
    rejects("gfTuE5fLxnstOq8ln4LNWZfn24cg8FVB6PBv455lfzh=", "non-canonical variant of a real signature");

    char nul[] = "Zm9\0";
    unsigned char dec[8];
    size_t n;
    is_int(qbc_base64_decode(nul, 4, dec, &n), QBC_EMALFORMED, "embedded NUL");
    n = 5;
    is_int(qbc_base64_decode("", 0, dec, &n), 0, "empty input decodes");
    is_int(n, 0, "to zero bytes");
    is_int(qbc_base64_decode("Zm9vYmFyXXXX", 8, dec, &n), 0, "reads only len bytes");
    ok(n == 6 && memcmp(dec, "foobar", 6) == 0, "decoded the prefix");
}

int main(void)
{
    subtest("RFC 4648 vectors", test_rfc_vectors);
    subtest("binary data", test_binary);
    subtest("strict decoding", test_strict);
    return done_testing();
}
