/*
 * test_signature.c — ingress/signature.c against Intuit's own intuit-signature test
 * vectors (qbo-facts §1.3, §1.4) and our own, all re-checked with
 *   printf '%s' BODY | openssl dgst -sha256 -hmac TOKEN -binary | base64
 */
#include <stdlib.h>
#include <string.h>
#include "ingress.h"
#include "tap.h"

/* IntuitDeveloper/SampleApp-Webhooks-Java, SecurityServiceTest.java */
#define SAMPLEAPP_TOKEN "12345"
#define SAMPLEAPP_BODY "abcd"
#define SAMPLEAPP_SIG "gfTuE5fLxnstOq8ln4LNWZfn24cg8FVB6PBv455lfzg="

/* intuit/QuickBooks-V3-Java-SDK, WebhooksServiceTest.java */
#define JAVA_TOKEN "b5771f19b12ddb4bcdb9f08bdc50bc63878a"
#define JAVA_BODY                                                                                                      \
    "{\"eventNotifications\":[{\"realmId\":\"1185883450\",\"dataChangeEvent\":{\"entities\":[{\"name\":\"Customer\","  \
    "\"id\":\"1\",\"operation\":\"Create\",\"lastUpdated\":\"2015-10-05T14:42:19-0700\"}]}}]}"
#define JAVA_SIG "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q="

/* intuit/QuickBooks-V3-DotNET-SDK, WebhooksServiceTest.cs (body, signature) + AppSettings.json (token) */
#define DOTNET_TOKEN "00faeec4-08d0-4996-bb37-698ae19f0149"
#define DOTNET_BODY                                                                                                    \
    "{\"eventNotifications\":[{\"realmId\":\"1269959970\",\"dataChangeEvent\":{\"entities\":[{\"name\":\"Vendor\","    \
    "\"id\":\"40\",\"operation\":\"Update\",\"lastUpdated\":\"2016-10-05T03:09:04.000Z\"},{\"name\":\"Customer\","     \
    "\"id\":\"43\",\"operation\":\"Create\",\"lastUpdated\":\"2016-10-05T03:07:04.000Z\"}]}}]}"
#define DOTNET_SIG "6q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTxLWM="
/* the same body with one "\n" appended (qbo-facts §1.3, computed) */
#define DOTNET_NL_SIG "Kfhy+5oWnJq4EaXl9Lf3bXd0i9XLG2t9Rekc6J0Vqto="

/* ours: the CloudEvents blog sample (qbo-facts §1.2 [S5]) under two tokens, as during a rotation */
#define TOKEN_A "qbcdc-token-A"
#define TOKEN_B "qbcdc-token-B"
#define CE_BODY                                                                                                        \
    "[{\"specversion\":\"1.0\",\"id\":\"88cd52aa-33b6-4351-9aa4-47572edbd068\",\"source\":\"intuit."                   \
    "dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=\",\"type\":\"qbo.account.created.v1\",\"datacontenttype\":"          \
    "\"application/json\",\"time\":\"2025-09-10T21:31:25.179851517Z\",\"intuitentityid\":\"1234\","                    \
    "\"intuitaccountid\":\"310687\",\"data\":{}}]"
#define CE_SIG_A "cjuRDLHjsjw7MZX/RYPipuqdIU40TSey+DJ2dZ0p+tk="
#define CE_SIG_B "+sYmqT6ZkN8wK2wZGfT1zg2QDxLmaWL1msYpnTn5sAM="
#define CE_NL_SIG_A "Bh/38dPdDdfOK7CtKm/KoFn7jbs7KDtON7AbOjPxtnU="

/* ours: edge bodies and keys */
#define EMPTY_SIG_12345 "1w2IzZrfn5KEcsyV9YsUFamF3wP04jhBME6h0dsFQz4="
#define NUL_BODY_SIG_12345 "UpmR72IB7gbMiMfzB05kyTisI+w0wx3RdJCsJQtSKXw=" /* body "a\0b" */
#define MIB_SIG_A "j/YA9iYA+piu2AijunohkiSZSaGdzdOQ8kmXJDpdNaI="          /* 1 MiB of a..z repeating */
#define UTF8_TOKEN "t\xc3\xb6k\xc3\xa9n"                                  /* "tökén" as UTF-8 bytes */
#define UTF8_SIG "Zg5SYRkYsDg87nJwLRIGdoR1cwq5u/fhFBdZ9QOjtls="           /* body "abcd" */
#define EMPTY_KEY_SIG "Un/0wowioJD+OZCBOTY+gbj7ENBpWhNVGABqv6Ic9aI="      /* body "abcd", key "" */

static int verify1(const char *header, const char *body, size_t body_len, const char *token)
{
    const char *tokens[] = {token};
    return qbc_signature_verify(header, header ? strlen(header) : 0, body, body_len, tokens, 1);
}

#define VERIFY1(h, b, t) verify1((h), (b), sizeof(b) - 1, (t))

static void test_compute(void)
{
    char out[QBC_SIGNATURE_B64_SIZE];

    qbc_signature_compute(SAMPLEAPP_TOKEN, strlen(SAMPLEAPP_TOKEN), SAMPLEAPP_BODY, 4, out);
    is_str(out, SAMPLEAPP_SIG, "SampleApp-Webhooks-Java vector");
    qbc_signature_compute(JAVA_TOKEN, strlen(JAVA_TOKEN), JAVA_BODY, sizeof(JAVA_BODY) - 1, out);
    is_str(out, JAVA_SIG, "QuickBooks-V3-Java-SDK vector");
    qbc_signature_compute(DOTNET_TOKEN, strlen(DOTNET_TOKEN), DOTNET_BODY, sizeof(DOTNET_BODY) - 1, out);
    is_str(out, DOTNET_SIG, "QuickBooks-V3-DotNET-SDK vector");
    qbc_signature_compute(DOTNET_TOKEN, strlen(DOTNET_TOKEN), DOTNET_BODY "\n", sizeof(DOTNET_BODY), out);
    is_str(out, DOTNET_NL_SIG, ".NET vector body plus a trailing newline");
    qbc_signature_compute(TOKEN_A, strlen(TOKEN_A), CE_BODY, sizeof(CE_BODY) - 1, out);
    is_str(out, CE_SIG_A, "CloudEvents body, token A");
    qbc_signature_compute(TOKEN_B, strlen(TOKEN_B), CE_BODY, sizeof(CE_BODY) - 1, out);
    is_str(out, CE_SIG_B, "CloudEvents body, token B");
    is_int(strlen(out), 44, "signature text is 44 characters");

    qbc_signature_compute("12345", 5, "", 0, out);
    is_str(out, EMPTY_SIG_12345, "empty body");
    qbc_signature_compute("12345", 5, NULL, 0, out);
    is_str(out, EMPTY_SIG_12345, "NULL body of length 0 is the empty body");
    qbc_signature_compute("12345", 5, "a\0b", 3, out);
    is_str(out, NUL_BODY_SIG_12345, "body with a NUL byte is hashed whole");
    qbc_signature_compute("12345XYZ", 5, "abcd", 4, out);
    is_str(out, SAMPLEAPP_SIG, "token is token_len bytes, not up to a NUL");
    qbc_signature_compute(UTF8_TOKEN, strlen(UTF8_TOKEN), "abcd", 4, out);
    is_str(out, UTF8_SIG, "non-ASCII token used as raw UTF-8 bytes");
    qbc_signature_compute("", 0, "abcd", 4, out);
    is_str(out, EMPTY_KEY_SIG, "empty key computes (HMAC allows it)");
}

static void test_official_vectors(void)
{
    is_int(VERIFY1(SAMPLEAPP_SIG, SAMPLEAPP_BODY, SAMPLEAPP_TOKEN), 0, "SampleApp-Webhooks-Java: valid");
    is_int(VERIFY1("12345", SAMPLEAPP_BODY, SAMPLEAPP_TOKEN), QBC_EAUTH, "SampleApp-Webhooks-Java: \"12345\" refused");
    is_int(VERIFY1(JAVA_SIG, JAVA_BODY, JAVA_TOKEN), 0, "Java SDK: valid");
    is_int(VERIFY1("1234", JAVA_BODY, JAVA_TOKEN), QBC_EAUTH, "Java SDK: \"1234\" refused");
    is_int(VERIFY1(DOTNET_SIG, DOTNET_BODY, DOTNET_TOKEN), 0, ".NET SDK: valid");
    is_int(VERIFY1("", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH, ".NET SDK: empty header refused");
    /* the three vectors do not cross */
    is_int(VERIFY1(JAVA_SIG, JAVA_BODY, DOTNET_TOKEN), QBC_EAUTH, "Java signature under the .NET token");
    is_int(VERIFY1(DOTNET_SIG, DOTNET_BODY, JAVA_TOKEN), QBC_EAUTH, ".NET signature under the Java token");
    is_int(VERIFY1(SAMPLEAPP_SIG, JAVA_BODY, JAVA_TOKEN), QBC_EAUTH, "SampleApp signature on the Java body");
}

static void test_body_bytes(void)
{
    /* the exact bytes: one more newline, one changed byte, or a re-serialisation all fail */
    is_int(VERIFY1(DOTNET_SIG, DOTNET_BODY "\n", DOTNET_TOKEN), QBC_EAUTH, "trailing newline changes the MAC");
    is_int(VERIFY1(DOTNET_NL_SIG, DOTNET_BODY "\n", DOTNET_TOKEN), 0, "body with trailing newline, its own MAC");
    is_int(VERIFY1(DOTNET_NL_SIG, DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH, "newline MAC on the body without it");
    char *body = strdup(JAVA_BODY);
    body[10] ^= 0x20; /* flips the case of one letter of "eventNotifications" */
    is_int(verify1(JAVA_SIG, body, strlen(body), JAVA_TOKEN), QBC_EAUTH, "one byte changed");
    free(body);
    is_int(VERIFY1(JAVA_SIG, "{ \"eventNotifications\" : [ ] }", JAVA_TOKEN), QBC_EAUTH, "different body");
    is_int(verify1(JAVA_SIG, JAVA_BODY, sizeof(JAVA_BODY) - 2, JAVA_TOKEN), QBC_EAUTH, "body one byte short");
    is_int(VERIFY1(CE_SIG_A, CE_BODY, TOKEN_A), 0, "CloudEvents body verifies (scheme unchanged)");
    is_int(VERIFY1(CE_NL_SIG_A, CE_BODY "\n", TOKEN_A), 0, "CloudEvents body with trailing newline");
    is_int(VERIFY1(CE_SIG_A, CE_BODY "\n", TOKEN_A), QBC_EAUTH, "CloudEvents MAC does not cover an added newline");
    is_int(verify1(EMPTY_SIG_12345, "", 0, "12345"), 0, "empty body");
    is_int(verify1(EMPTY_SIG_12345, NULL, 0, "12345"), 0, "NULL body of length 0");
    is_int(verify1(EMPTY_SIG_12345, NULL, 5, "12345"), QBC_EAUTH, "NULL body with a length is refused");
    is_int(verify1(NUL_BODY_SIG_12345, "a\0b", 3, "12345"), 0, "body with a NUL byte");
    is_int(verify1(NUL_BODY_SIG_12345, "a\0c", 3, "12345"), QBC_EAUTH, "byte after the NUL counts");
    is_int(verify1(UTF8_SIG, "abcd", 4, UTF8_TOKEN), 0, "UTF-8 token");

    /* a body the size of the ingress limit, via an exactly-sized heap buffer */
    size_t n = 1 << 20;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    is_int(verify1(MIB_SIG_A, big, n, TOKEN_A), 0, "1 MiB body");
    big[n / 2] ^= 1;
    is_int(verify1(MIB_SIG_A, big, n, TOKEN_A), QBC_EAUTH, "1 MiB body, one bit flipped in the middle");
    free(big);
}

static void test_rotation(void)
{
    const char *old_new[] = {TOKEN_A, TOKEN_B};
    const char *new_old[] = {TOKEN_B, TOKEN_A};
    const char *wrong[] = {"qbcdc-token-C", "qbcdc-token-a", "qbcdc-token-A ", "qbcdc-token-"};
    const char *holes[] = {NULL, "", TOKEN_B};
    const char *many[] = {"t1", "t2", "t3", "t4", "t5", "t6", "t7", DOTNET_TOKEN};
    size_t sl = strlen(CE_SIG_A), bl = sizeof(CE_BODY) - 1;

    is_int(qbc_signature_verify(CE_SIG_A, sl, CE_BODY, bl, old_new, 2), 0, "first of two tokens matches");
    is_int(qbc_signature_verify(CE_SIG_B, sl, CE_BODY, bl, old_new, 2), 0, "second of two tokens matches");
    is_int(qbc_signature_verify(CE_SIG_A, sl, CE_BODY, bl, new_old, 2), 0, "order of tokens does not matter");
    is_int(qbc_signature_verify(CE_SIG_A, sl, CE_BODY, bl, old_new, 1), 0, "n_tokens bounds the list (A only)");
    is_int(qbc_signature_verify(CE_SIG_B, sl, CE_BODY, bl, old_new, 1), QBC_EAUTH, "token past n_tokens is not used");
    is_int(qbc_signature_verify(CE_SIG_A, sl, CE_BODY, bl, wrong, 4), QBC_EAUTH, "near-miss tokens refused");
    is_int(qbc_signature_verify(CE_SIG_B, sl, CE_BODY, bl, holes, 3), 0, "NULL and empty entries are skipped");
    is_int(qbc_signature_verify(CE_SIG_A, sl, CE_BODY, bl, holes, 3), QBC_EAUTH, "...and match nothing");
    is_int(qbc_signature_verify(DOTNET_SIG, strlen(DOTNET_SIG), DOTNET_BODY, sizeof(DOTNET_BODY) - 1, many, 8), 0,
           "match in the last of eight tokens");
    is_int(qbc_signature_verify(CE_SIG_A, sl, CE_BODY, bl, old_new, 0), QBC_EAUTH, "no tokens: refused");
    is_int(qbc_signature_verify(CE_SIG_A, sl, CE_BODY, bl, NULL, 2), QBC_EAUTH, "NULL token list: refused");

    /* an empty verifier token is a configuration slip; a signature made with it must not pass */
    const char *empty[] = {""};
    is_int(qbc_signature_verify(EMPTY_KEY_SIG, strlen(EMPTY_KEY_SIG), "abcd", 4, empty, 1), QBC_EAUTH,
           "signature under an empty token is refused");
}

static void test_header_forms(void)
{
    char buf[128];

    is_int(verify1(NULL, DOTNET_BODY, sizeof(DOTNET_BODY) - 1, DOTNET_TOKEN), QBC_EAUTH, "missing header (NULL)");
    is_int(VERIFY1("", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH, "empty header");
    is_int(VERIFY1("   \t ", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH, "blank header");
    is_int(VERIFY1("  " DOTNET_SIG, DOTNET_BODY, DOTNET_TOKEN), 0, "leading spaces trimmed");
    is_int(VERIFY1(DOTNET_SIG " \t", DOTNET_BODY, DOTNET_TOKEN), 0, "trailing space and tab trimmed");
    is_int(VERIFY1("\t" DOTNET_SIG "\t", DOTNET_BODY, DOTNET_TOKEN), 0, "tabs trimmed on both sides");
    is_int(VERIFY1(DOTNET_SIG "\r\n", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH, "CR LF is not trimmed");
    is_int(VERIFY1(DOTNET_SIG "\n", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH, "LF is not trimmed");
    is_int(VERIFY1("6q+xGyMirJupwKTh2/WBl2Ncdxzx qdIbk3sneKTxLWM=", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH,
           "space inside");
    is_int(VERIFY1("6q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTxLWM", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH,
           "padding stripped (43 chars)");
    is_int(VERIFY1(DOTNET_SIG "=", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH, "extra padding");
    is_int(VERIFY1(DOTNET_SIG DOTNET_SIG, DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH, "signature twice");
    is_int(VERIFY1("6q-xGyMirJupwKTh2_WBl2NcdxzxqdIbk3sneKTxLWM=", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH,
           "URL-safe alphabet");
    is_int(VERIFY1("6Q+XgYmIRjUPWktH2/wbL2nCDXZXQDiBK3SNEktXlwm=", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH,
           "case flipped");
    is_int(VERIFY1("6q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTxLWN=", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH,
           "non-canonical last character (same 32 bytes)");
    is_int(VERIFY1("6q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTxLWQ=", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH,
           "last byte different");
    is_int(VERIFY1("7q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTxLWM=", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH,
           "first byte different");
    is_int(VERIFY1("eaafb11b2322ac9ba9c0a4e1dbf58197635c771cf1a9d21b937b2778a4f12d63", DOTNET_BODY, DOTNET_TOKEN),
           QBC_EAUTH, "hex instead of base64");
    is_int(VERIFY1("sha256=" DOTNET_SIG, DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH, "algorithm prefix");
    is_int(VERIFY1("6q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTxLWMA", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH,
           "33 bytes of base64 (44 chars, no padding)");
    is_int(VERIFY1("6q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTx", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH,
           "30 bytes (40 chars)");
    is_int(VERIFY1("6q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTxLW==", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH,
           "31 bytes padded to 44 chars");
    is_int(VERIFY1("!q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTxLWM=", DOTNET_BODY, DOTNET_TOKEN), QBC_EAUTH,
           "character outside the alphabet");

    /* header_len is honoured: the value need not be NUL-terminated */
    const char *tokens[] = {DOTNET_TOKEN};
    snprintf(buf, sizeof(buf), "%sGARBAGE", DOTNET_SIG);
    is_int(qbc_signature_verify(buf, 44, DOTNET_BODY, sizeof(DOTNET_BODY) - 1, tokens, 1), 0,
           "reads exactly header_len bytes");
    is_int(qbc_signature_verify(buf, 45, DOTNET_BODY, sizeof(DOTNET_BODY) - 1, tokens, 1), QBC_EAUTH,
           "one byte more is part of the value");
    is_int(qbc_signature_verify(buf, 43, DOTNET_BODY, sizeof(DOTNET_BODY) - 1, tokens, 1), QBC_EAUTH,
           "one byte less is a truncated value");
    is_int(qbc_signature_verify(buf, 0, DOTNET_BODY, sizeof(DOTNET_BODY) - 1, tokens, 1), QBC_EAUTH, "header_len 0");
    memcpy(buf, DOTNET_SIG, 45);
    buf[20] = '\0';
    is_int(qbc_signature_verify(buf, 44, DOTNET_BODY, sizeof(DOTNET_BODY) - 1, tokens, 1), QBC_EAUTH, "embedded NUL");

    /* every single-character change of a valid header is refused */
    int accepted = 0;
    for (size_t i = 0; i < 44; i++) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
        for (size_t j = 0; j < sizeof(alphabet) - 1; j++) {
            memcpy(buf, DOTNET_SIG, 45);
            if (buf[i] == alphabet[j])
                continue;
            buf[i] = alphabet[j];
            if (qbc_signature_verify(buf, 44, DOTNET_BODY, sizeof(DOTNET_BODY) - 1, tokens, 1) == 0)
                accepted++;
        }
    }
    is_int(accepted, 0, "no single-character variant of a valid header verifies");

    /* exactly sized heap copy: a 44-byte value with no terminator (ASan checks the reads) */
    char *exact = malloc(44);
    memcpy(exact, DOTNET_SIG, 44);
    is_int(qbc_signature_verify(exact, 44, DOTNET_BODY, sizeof(DOTNET_BODY) - 1, tokens, 1), 0,
           "unterminated 44-byte header");
    free(exact);
    char *blank = malloc(1);
    blank[0] = ' ';
    is_int(qbc_signature_verify(blank, 1, DOTNET_BODY, sizeof(DOTNET_BODY) - 1, tokens, 1), QBC_EAUTH,
           "unterminated one-space header");
    free(blank);
}

static void test_roundtrip(void)
{
    /* what compute writes, verify accepts, for many lengths and tokens */
    char body[300], sig[QBC_SIGNATURE_B64_SIZE], tok[32];
    int fails = 0;
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof(body); len += 13) {
        snprintf(tok, sizeof(tok), "token-%zu", len);
        const char *tokens[] = {"other", tok};
        qbc_signature_compute(tok, strlen(tok), body, len, sig);
        if (strlen(sig) != 44 || qbc_signature_verify(sig, 44, body, len, tokens, 2) != 0)
            fails++;
        if (qbc_signature_verify(sig, 44, body, len, tokens, 1) != QBC_EAUTH)
            fails++;
    }
    is_int(fails, 0, "compute/verify agree over lengths 0..299");
}

/* the prepared verifier must say exactly what qbc_signature_verify says */
static void test_prepared_verifier(void)
{
    const char *tokens[] = {"12345", "", "b5771f19b12ddb4bcdb9f08bdc50bc63878a",
                            "00faeec4-08d0-4996-bb37-698ae19f0149"};
    const char *bodies[] = {"abcd", "", "{\"eventNotifications\":[]}", "abcd\n", "x"};
    char sig[QBC_SIGNATURE_B64_SIZE], bad[QBC_SIGNATURE_B64_SIZE + 4];
    int agree = 0, cases = 0, accepted = 0;

    qbc_verifier_t *v = qbc_verifier_new(tokens, 4);
    ok(v != NULL, "a verifier for four tokens (one empty)");
    for (size_t t = 0; t < 4; t++) {
        for (size_t b = 0; b < 5; b++) {
            qbc_signature_compute(tokens[t], strlen(tokens[t]), bodies[b], strlen(bodies[b]), sig);
            const char *headers[4] = {sig, bad, "", "  "};
            snprintf(bad, sizeof(bad), "%s", sig);
            bad[3] = bad[3] == 'A' ? 'B' : 'A';
            for (size_t h = 0; h < 4; h++) {
                for (size_t b2 = 0; b2 < 5; b2++) {
                    int want =
                        qbc_signature_verify(headers[h], strlen(headers[h]), bodies[b2], strlen(bodies[b2]), tokens, 4);
                    int got = qbc_verifier_check(v, headers[h], strlen(headers[h]), bodies[b2], strlen(bodies[b2]));
                    agree += want == got;
                    accepted += got == 0;
                    cases++;
                }
            }
        }
    }
    is_int(agree, cases, "prepared and one-shot verification agree on every case");
    is_int(accepted, 15, "exactly the 15 right (token, body) signatures are accepted; the empty token never is");
    is_int(qbc_verifier_check(v, NULL, 0, "abcd", 4), QBC_EAUTH, "a missing header is refused");
    qbc_verifier_free(v);

    qbc_verifier_t *none = qbc_verifier_new(tokens + 1, 1);
    qbc_signature_compute("", 0, "abcd", 4, sig);
    is_int(qbc_verifier_check(none, sig, strlen(sig), "abcd", 4), QBC_EAUTH,
           "a verifier of only empty tokens accepts nothing");
    qbc_verifier_free(none);
}

int main(void)
{
    subtest("prepared verifier", test_prepared_verifier);
    subtest("compute", test_compute);
    subtest("official Intuit vectors", test_official_vectors);
    subtest("the MAC covers the exact body bytes", test_body_bytes);
    subtest("token rotation", test_rotation);
    subtest("header forms", test_header_forms);
    subtest("round trip", test_roundtrip);
    return done_testing();
}
