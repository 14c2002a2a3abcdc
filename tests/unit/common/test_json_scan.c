/*
 * test_json_scan.c — common/json_scan.c's additions for QBO's answers: where each value
 * ends, RFC 8259 numbers of any magnitude, the readers, and the compact copy that keeps
 * every token's bytes. (The jansson-compatible rules are tested against jansson itself
 * in tests/unit/ingress/test_payload_diff.c.)
 */
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "json_scan.h"

static int scan(qbc_json_doc_t *doc, const char *text, int flags)
{
    qbc_json_error_t err;
    qbc_json_init(doc, NULL, 0);
    return qbc_json_scan(doc, text, strlen(text), flags, &err);
}

/* whether RFC 8259's rules refuse text (the tape is disposed either way) */
static int rejects(const char *text)
{
    qbc_json_doc_t doc;
    int rc = scan(&doc, text, QBC_JSON_RFC8259);
    qbc_json_dispose(&doc);
    return rc != 0;
}

static void test_numbers(void)
{
    qbc_json_doc_t doc;
    const char *big = "[12345678901234567890, -98765432109876543210, 1e400, -1E-400]";

    ok(scan(&doc, big, 0) != 0, "jansson's rules refuse an integer past int64");
    qbc_json_dispose(&doc);
    is_int(scan(&doc, big, QBC_JSON_RFC8259), 0, "RFC 8259 takes numbers of any magnitude");
    is_int(doc.tok[1].type, QBC_JSON_INTEGER, "a big integer is an integer");
    is_int(doc.tok[3].type, QBC_JSON_REAL, "1e400 is a real");
    qbc_json_dispose(&doc);

    const char *nul = "[1\0]";
    qbc_json_error_t err;
    qbc_json_init(&doc, NULL, 0);
    is_int(qbc_json_scan(&doc, nul, 4, 0, &err), 0, "jansson's NUL quirk under its rules");
    is_int(qbc_json_scan(&doc, nul, 4, QBC_JSON_RFC8259, &err), QBC_EMALFORMED, "not under RFC 8259");
    qbc_json_dispose(&doc);
    ok(rejects("[01]") && rejects("[1.]") && rejects("[+1]") && rejects("[.5]"),
       "RFC 8259 still refuses what is no number");
}

static void test_ends(void)
{
    qbc_json_doc_t doc;
    const char *t = " { \"a\" : [ 1 , \"x\\\"y\" , { } , [ ] , true ] , \"b\" : { \"c\" : null } } ";

    is_int(scan(&doc, t, QBC_JSON_RFC8259), 0, "scans");
    is_int(doc.tok[0].end, strlen(t) - 1, "the root ends after its closing brace");
    size_t a = qbc_json_get(&doc, t, 0, "a", 1);
    ok(a != QBC_JSON_NONE && t[doc.tok[a].end - 1] == ']', "an array ends after its bracket");
    is_int(doc.tok[a + 1].end - doc.tok[a + 1].start, 1, "a number's end");
    is_int(doc.tok[a + 2].end - doc.tok[a + 2].start, 5, "a string ends past its closing quote");
    ok(t[doc.tok[a + 3].end - 1] == '}' && t[doc.tok[a + 4].end - 1] == ']', "empty containers end at their close");
    is_int(doc.tok[a + 5].end - doc.tok[a + 5].start, 4, "a literal's end");
    size_t b = qbc_json_get(&doc, t, 0, "b", 1);
    ok(b != QBC_JSON_NONE && t[doc.tok[b].end - 1] == '}' && doc.tok[b].end < doc.tok[0].end, "a nested object");
    qbc_json_dispose(&doc);
}

static void test_readers(void)
{
    qbc_json_doc_t doc;
    const char *t = "{\"Id\":\"1\",\"\\u0049d\":\"2\",\"n\":42,\"s\":\"caf\\u00e9\",\"o\":{}}";
    char buf[16];

    is_int(scan(&doc, t, QBC_JSON_RFC8259), 0, "scans");
    size_t id = qbc_json_get(&doc, t, 0, "Id", 2);
    ok(id != QBC_JSON_NONE && qbc_json_str_eq(&doc, t, id, "2", 1),
       "a repeated key (one escaped) gives its last value");
    is_int(qbc_json_str_copy(&doc, t, qbc_json_get(&doc, t, 0, "n", 1), buf, sizeof(buf)), 0, "an integer copies");
    is_str(buf, "42", "as its digits");
    qbc_json_str_copy(&doc, t, qbc_json_get(&doc, t, 0, "s", 1), buf, sizeof(buf));
    is_str(buf, "caf\xc3\xa9", "a string copies unescaped");
    qbc_json_str_copy(&doc, t, qbc_json_get(&doc, t, 0, "s", 1), buf, 4);
    is_str(buf, "caf", "truncated to the buffer");
    is_int(qbc_json_str_copy(&doc, t, qbc_json_get(&doc, t, 0, "o", 1), buf, sizeof(buf)), QBC_EINVAL,
           "an object is no string");
    is_int(qbc_json_get(&doc, t, 0, "x", 1), QBC_JSON_NONE, "a missing key");
    is_int(qbc_json_get(&doc, t, qbc_json_get(&doc, t, 0, "n", 1), "x", 1), QBC_JSON_NONE, "get on a non-object");
    qbc_json_dispose(&doc);
}

static void test_copy_compact(void)
{
    qbc_json_doc_t doc;
    /* QBO's amounts and escapes as a pretty-printer might send them */
    const char *t =
        "{\"QueryResponse\": {\n  \"Invoice\": [\n    {\n      \"TotalAmt\" : 2932.92,\n"
        "      \"Line\": [ { \"Amount\": 73.69 }, {\"Amount\":0.1}, {\"Amount\":1e-7},"
        " {\"Amount\": 12345678901234567890}, {\"Amount\": -0.0}, {\"Amount\": 1E+2} ],\n"
        "      \"Memo\": \"caf\\u00e9 \\/ caf\xc3\xa9 \xf0\x9f\x98\x80 \\ud83d\\ude00 \\\" \\\\ \\n a  b\",\n"
        "      \"Unknown\" : { \"Nested\" : [ true , false , null , { } , [ ] ] },\n"
        "      \"Id\": \"130\", \"Id\": \"130\"\n    }\n  ]\n}}";
    const char *want = "{\"TotalAmt\":2932.92,\"Line\":[{\"Amount\":73.69},{\"Amount\":0.1},{\"Amount\":1e-7},"
                       "{\"Amount\":12345678901234567890},{\"Amount\":-0.0},{\"Amount\":1E+2}],"
                       "\"Memo\":\"caf\\u00e9 \\/ caf\xc3\xa9 \xf0\x9f\x98\x80 \\ud83d\\ude00 \\\" \\\\ \\n a  b\","
                       "\"Unknown\":{\"Nested\":[true,false,null,{},[]]},\"Id\":\"130\",\"Id\":\"130\"}";
    size_t n;

    is_int(scan(&doc, t, QBC_JSON_RFC8259), 0, "a pretty-printed answer scans");
    size_t inv = qbc_json_get(&doc, t, qbc_json_get(&doc, t, 0, "QueryResponse", 13), "Invoice", 7);
    char *c = qbc_json_copy_compact(&doc, t, inv + 1, &n);
    ok(n == strlen(want) && memcmp(c, want, n) == 0, "the entity's bytes, less whitespace between tokens");
    if (n != strlen(want) || memcmp(c, want, n) != 0)
        diag(strndup(c, n));
    free(c);
    c = qbc_json_copy_compact(&doc, t, inv + 1 + 2, &n); /* TotalAmt's value */
    ok(n == 7 && memcmp(c, "2932.92", 7) == 0, "a number alone");
    free(c);
    size_t memo = qbc_json_get(&doc, t, inv + 1, "Memo", 4);
    c = qbc_json_copy_compact(&doc, t, memo, &n);
    ok(n == doc.tok[memo].end - doc.tok[memo].start + 1 && c[0] == '"' && c[n - 1] == '"',
       "a string alone, with its quotes");
    free(c);
    qbc_json_dispose(&doc);
}

int main(void)
{
    subtest("numbers", test_numbers);
    subtest("value ends", test_ends);
    subtest("readers", test_readers);
    subtest("compact copy", test_copy_compact);
    return done_testing();
}
