/* test_oauth.c — token request building and answers (qbo-facts §7 samples). */
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "rec_internal.h"

static void test_requests(void)
{
    char *h = qbc_oauth_basic_header("id", "secret");
    is_str(h, "Authorization: Basic aWQ6c2VjcmV0", "basic header");
    free(h);
    char *b = qbc_oauth_refresh_body("AB12+/=x~-._");
    is_str(b, "grant_type=refresh_token&refresh_token=AB12%2B%2F%3Dx~-._", "form body is url-encoded");
    free(b);
    b = qbc_oauth_refresh_body("+/=");
    is_str(b, "grant_type=refresh_token&refresh_token=%2B%2F%3D", "every byte escaped: none cut off");
    free(b);
}

static void test_answers(void)
{
    qbc_tokens_t t;
    char err[200];
    const char *okbody = "{\"token_type\":\"bearer\",\"expires_in\":3600,\"refresh_token\":\"R2\","
                         "\"x_refresh_token_expires_in\":8726400,\"access_token\":\"A2\"}";
    int64_t now = 1000000000000000000LL;
    is_int(qbc_oauth_parse(1, 200, okbody, strlen(okbody), now, &t, err, sizeof(err)), REC_OAUTH_OK, "200 ok");
    is_str(t.access_token, "A2", "access token");
    is_str(t.refresh_token, "R2", "rotated refresh token");
    is_int(t.access_expires_ns, now + 3600LL * 1000000000LL, "access expiry");
    is_int(t.refresh_expires_ns, now + 8726400LL * 1000000000LL, "refresh expiry");

    const char *ig = "{\"error\":\"invalid_grant\",\"error_description\":\"Token invalid\",\"intuit_tid\":\"1-2\"}";
    is_int(qbc_oauth_parse(1, 400, ig, strlen(ig), now, &t, err, sizeof(err)), REC_OAUTH_INVALID_GRANT,
           "invalid_grant");
    is_str(err, "token endpoint: HTTP 400 invalid_grant", "error names the code only");
    const char *ic = "{\"error\":\"invalid_client\"}";
    is_int(qbc_oauth_parse(1, 401, ic, strlen(ic), now, &t, err, sizeof(err)), REC_OAUTH_REFUSED, "invalid_client");
    is_int(qbc_oauth_parse(1, 503, "oops", 4, now, &t, err, sizeof(err)), REC_OAUTH_RETRY, "503 retried");
    is_int(qbc_oauth_parse(0, 0, NULL, 0, now, &t, err, sizeof(err)), REC_OAUTH_RETRY, "transport retried");
    const char *half = "{\"access_token\":\"A3\"}";
    is_int(qbc_oauth_parse(1, 200, half, strlen(half), now, &t, err, sizeof(err)), REC_OAUTH_RETRY,
           "200 without a refresh token is not accepted");
    ok(t.access_token[0] == '\0', "and leaves no token behind");
    ok(strstr(err, "A3") == NULL, "no token in the error");

    /* found by fuzz/fuzz_oauth.c: seconds * 10^9 overflowed int64_t (undefined; in practice an
     * expiry in the past, so every use would refresh again) */
    const char *huge = "{\"refresh_token\":\"R4\",\"access_token\":\"A4\",\"expires_in\":9223372036854775807,"
                       "\"x_refresh_token_expires_in\":9223372036}";
    is_int(qbc_oauth_parse(1, 200, huge, strlen(huge), now, &t, err, sizeof(err)), REC_OAUTH_OK, "huge lifetimes");
    ok(t.access_expires_ns > now && t.access_expires_ns <= now + 10LL * 366 * 86400 * 1000000000LL,
       "an absurd expires_in is capped at ten years, not wrapped");
    ok(t.refresh_expires_ns > now && t.refresh_expires_ns <= now + 10LL * 366 * 86400 * 1000000000LL,
       "so is x_refresh_token_expires_in");
}

int main(void)
{
    subtest("requests", test_requests);
    subtest("answers", test_answers);
    return done_testing();
}
