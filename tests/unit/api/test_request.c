/*
 * test_request.c — api/request.c's query string and Last-Event-ID parsing, over plain
 * bytes and through the h2o wrappers (a request with only its path set).
 */
#include <string.h>
#include "api_internal.h"
#include "../../tap.h"

#define Q(s) (s), strlen(s)

static void test_query_param(void)
{
    char out[16];

    is_int(qbc_api__query_param_str(Q("after=12&limit=100&wait=30"), "limit", out, sizeof(out)), 0, "a parameter");
    is_str(out, "100", "its value");
    is_int(qbc_api__query_param_str(Q("after=1&after=2"), "after", out, sizeof(out)), 0, "given twice");
    is_str(out, "1", "the first one wins");
    is_int(qbc_api__query_param_str(Q("realm=93%34+1%zz"), "realm", out, sizeof(out)), 0, "percent-encoded");
    is_str(out, "934 1%zz", "%XX a byte, '+' a space, a bad escape stays");
    is_int(qbc_api__query_param_str(Q("wait&after="), "wait", out, sizeof(out)), 0, "a name alone");
    is_str(out, "", "has an empty value");
    is_int(qbc_api__query_param_str(Q("after%3D=1"), "after=", out, sizeof(out)), QBC_ENOTFOUND,
           "names are matched raw, not decoded");
    is_int(qbc_api__query_param_str(NULL, 0, "after", out, sizeof(out)), QBC_ENOTFOUND, "no query");
    is_int(qbc_api__query_param_str(Q("realm=12345678901234567890"), "realm", out, sizeof(out)), QBC_ETOOBIG,
           "too long");
    is_int((int)strlen(out), 15, "out holds the prefix that fits, terminated");

    /* found by fuzz_http_query: the C string ended at the %00 and the rest was ignored */
    is_int(qbc_api__query_param_str(Q("after=5%00junk"), "after", out, sizeof(out)), QBC_EMALFORMED,
           "a value with a NUL byte (%00) is refused, not read as after=5");
    is_int(qbc_api__query_param_str(Q("realm=123%00"), "realm", out, sizeof(out)), QBC_EMALFORMED, "also at its end");
    is_int(qbc_api__query_param_str(Q("after=5%00&limit=3"), "limit", out, sizeof(out)), 0,
           "other parameters are unaffected");
}

static void test_query_check(void)
{
    static const char *const known[] = {"after", "limit", NULL};
    char bad[8];
    unsigned seen;
    int repeated;

    is_int(qbc_api__query_check_str(Q("limit=1&after=2"), known, &seen, bad, sizeof(bad), &repeated), 0, "known names");
    is_int(seen, 3, "both seen");
    is_int(qbc_api__query_check_str(Q("&&limit=1&"), known, &seen, bad, sizeof(bad), &repeated), 0,
           "empty segments name nothing");
    is_int(seen, 2, "limit seen");
    is_int(qbc_api__query_check_str(Q("after=1&after=2"), known, &seen, bad, sizeof(bad), &repeated), -1,
           "a repeated name");
    ok(repeated && strcmp(bad, "after") == 0, "is reported as repeated");
    is_int(qbc_api__query_check_str(Q("limit=1&sin%63e=2"), known, &seen, bad, sizeof(bad), &repeated), -1,
           "an unknown name");
    ok(!repeated && strcmp(bad, "since") == 0 && seen == 2, "reported decoded, what came before seen");
    is_int(qbc_api__query_check_str(Q("a_very_long_name=1"), known, &seen, bad, sizeof(bad), &repeated), -1,
           "a long unknown name");
    is_str(bad, "a_very_", "is truncated to bad's size");
}

static void test_u64(void)
{
    uint64_t v = 0;

    ok(qbc_api__parse_u64("18446744073709551615", &v) == 0 && v == UINT64_MAX, "UINT64_MAX");
    ok(qbc_api__parse_u64("18446744073709551616", &v) != 0, "one more does not fit");
    ok(qbc_api__parse_u64("", &v) != 0 && qbc_api__parse_u64("-1", &v) != 0 && qbc_api__parse_u64(" 1", &v) != 0,
       "empty, signs and spaces are refused");
    ok(qbc_api__parse_last_event_id(Q("4711"), &v) == 0 && v == 4711, "a Last-Event-ID");
    ok(qbc_api__parse_last_event_id(Q("0000000000018446744073709551615"), &v) == 0 && v == UINT64_MAX, "31 bytes");
    ok(qbc_api__parse_last_event_id(Q("00000000000018446744073709551615"), &v) != 0, "32 are too many");
    /* found by fuzz_http_query: the copy ended at the NUL, so "1\0" was read as 1 */
    ok(qbc_api__parse_last_event_id("1\0", 2, &v) != 0, "a NUL byte is not a digit");
    ok(qbc_api__parse_last_event_id("", 0, &v) != 0, "an empty value");
}

static void test_wrappers(void)
{
    static const char *const known[] = {"after", NULL};
    static const char path[] = "/v1/changes?after=7%00&after=8";
    h2o_req_t req;
    char out[16], bad[16];
    unsigned seen;
    int repeated;

    memset(&req, 0, sizeof(req));
    req.path = h2o_iovec_init(H2O_STRLIT(path));
    req.query_at = 11;
    is_int(qbc_api__query_param(&req, "after", out, sizeof(out)), QBC_EMALFORMED, "the wrapper reads the query");
    is_int(qbc_api__query_check(&req, known, &seen, bad, sizeof(bad), &repeated), -1, "and checks it");
    ok(repeated && seen == 1, "after given twice");
    req.path = h2o_iovec_init(H2O_STRLIT("/v1/changes"));
    req.query_at = SIZE_MAX;
    is_int(qbc_api__query_param(&req, "after", out, sizeof(out)), QBC_ENOTFOUND, "no '?': no parameters");
    is_int(qbc_api__query_check(&req, known, &seen, bad, sizeof(bad), &repeated), 0, "and nothing to refuse");
}

int main(void)
{
    subtest("query parameters", test_query_param);
    subtest("query check", test_query_check);
    subtest("numbers and Last-Event-ID", test_u64);
    subtest("h2o wrappers", test_wrappers);
    return done_testing();
}
