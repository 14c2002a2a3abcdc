/* tests sim/oauth.c: grants, rotation with grace, invalid_grant, revocation (qbo-facts §7). */
#include "../../../sim/simutil.c"
#include "../../../sim/oauth.c"
#include "tap.h"

static const int64_t S = 1000000000LL;

static int grant(sim_oauth_t *o, const char *body, int64_t now, char *rt, char *at)
{
    json_t *j = NULL;
    int st = sim_oauth_token(o, body, strlen(body), now, &j);
    if (st == 200) {
        snprintf(rt, 100, "%s", json_string_value(json_object_get(j, "refresh_token")));
        snprintf(at, 100, "%s", json_string_value(json_object_get(j, "access_token")));
        ok(json_integer_value(json_object_get(j, "expires_in")) == 60, "expires_in = access ttl");
        is_str(json_string_value(json_object_get(j, "token_type")), "bearer", "token_type bearer");
        ok(json_is_integer(json_object_get(j, "x_refresh_token_expires_in")), "x_refresh_token_expires_in");
    } else {
        snprintf(rt, 100, "%s", json_string_value(json_object_get(j, "error")));
        at[0] = '\0';
    }
    json_decref(j);
    return st;
}

int main(void)
{
    sim_oauth_conf_t c = {"cid", "csecret", 60, 1000, 30};
    sim_oauth_t *o = sim_oauth_create(&c, 1);
    int64_t t = 1000 * S;
    char body[512], rt1[100], rt2[100], at1[100], at2[100], err[100], dummy[100];
    const char *detail;

    ok(sim_oauth_check_client(o, "Basic Y2lkOmNzZWNyZXQ=", 22) == 0, "Basic client auth accepted");
    ok(sim_oauth_check_client(o, "Basic Y2lkOndyb25n", 18) != 0, "wrong secret refused");

    const char *r0 = sim_oauth_connect(o, "123", t);
    char r0c[100];
    snprintf(r0c, sizeof(r0c), "%s", r0);
    snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=%s", r0c);
    is_int(grant(o, body, t, rt1, at1), 200, "refresh grant");
    ok(strcmp(rt1, r0c) != 0, "refresh token rotated");
    ok(sim_oauth_check_bearer(o, "Bearer x", 8, "123", t, &detail) != 0, "unknown bearer refused");
    snprintf(body, sizeof(body), "Bearer %s", at1);
    ok(sim_oauth_check_bearer(o, body, strlen(body), "123", t, &detail) == 0, "access token works");
    ok(sim_oauth_check_bearer(o, body, strlen(body), "456", t, &detail) != 0, "not for another realm");
    ok(sim_oauth_check_bearer(o, body, strlen(body), "123", t + 61 * S, &detail) != 0, "expires after ttl");

    /* the old refresh token keeps working within the grace, then not */
    snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=%s", r0c);
    is_int(grant(o, body, t + 10 * S, rt2, at2), 200, "old token within grace works");
    is_int(grant(o, body, t + 31 * S, err, dummy), 400, "old token after grace refused");
    is_str(err, "invalid_grant", "invalid_grant");
    snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=%s", rt2);
    is_int(grant(o, body, t + 32 * S, rt1, at1), 200, "newest token works");
    is_int(grant(o, "grant_type=refresh_token&refresh_token=nope", t, err, dummy), 400, "unknown refresh token");
    is_str(err, "invalid_grant", "invalid_grant for unknown");
    is_int(grant(o, "grant_type=password", t, err, dummy), 400, "unsupported grant");
    is_str(err, "unsupported_grant_type", "unsupported_grant_type");

    /* authorization code: one use, redirect must match */
    const char *code = sim_oauth_new_code(o, "777", "http://127.0.0.1/cb", t);
    char codec[100];
    snprintf(codec, sizeof(codec), "%s", code);
    snprintf(body, sizeof(body), "grant_type=authorization_code&code=%s&redirect_uri=http%%3A%%2F%%2F127.0.0.1%%2Fcb",
             codec);
    is_int(grant(o, body, t, rt1, at1), 200, "code exchange");
    is_int(grant(o, body, t, err, dummy), 400, "code is single-use");
    snprintf(body, sizeof(body), "Bearer %s", at1);
    ok(sim_oauth_check_bearer(o, body, strlen(body), "777", t, &detail) == 0, "code's token is for its realm");

    /* revocation kills the connection's tokens */
    ok(sim_oauth_revoke_token(o, rt1, t) == 0, "revoke refresh token");
    ok(sim_oauth_check_bearer(o, body, strlen(body), "777", t, &detail) != 0, "its access token is dead too");
    snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=%s", rt1);
    is_int(grant(o, body, t, err, dummy), 400, "revoked refresh token refused");

    /* expire all access tokens */
    snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=%s",
             sim_oauth_current_refresh(o, "123", t + 40 * S));
    is_int(grant(o, body, t + 40 * S, rt1, at1), 200, "fresh pair");
    sim_oauth_expire_access(o);
    snprintf(body, sizeof(body), "Bearer %s", at1);
    ok(sim_oauth_check_bearer(o, body, strlen(body), "123", t + 40 * S, &detail) != 0, "expire_access works");
    sim_oauth_revoke_realm(o, "123");
    snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=%s", rt1);
    is_int(grant(o, body, t + 40 * S, err, dummy), 400, "realm revoked");
    ok(strcmp(sim_oauth_current_refresh(o, "123", t + 41 * S), rt1) != 0, "current_refresh reconnects");
    sim_oauth_destroy(o);
    return done_testing();
}
