/*
 * oauth.c — Intuit's OAuth 2.0 token service, as qbo-facts §7 describes it.
 *
 * A "connection" is one authorisation of the app for one realm. It owns refresh
 * tokens and access tokens; revoking any of its tokens revokes the connection.
 * Every refresh_token grant rotates: it answers a new refresh token and a new
 * access token, and the refresh token that was used keeps working for
 * refresh_grace_s more seconds (Intuit: "Your previous refresh tokens expire 24
 * hours after you receive a new one"). Unknown, expired, superseded-past-grace or
 * revoked tokens get 400 invalid_grant. Client authentication is HTTP Basic with
 * the configured client id and secret; anything else gets 401 invalid_client.
 *
 * Tokens are opaque random strings (qbosim does not mint JWTs). Lookups are linear:
 * the table stays small because dead tokens are pruned whenever one is issued.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <openssl/crypto.h>
#include "common.h"
#include "sim.h"

enum { K_ACCESS, K_REFRESH, K_CODE };

typedef struct {
    char tok[72];
    int kind;
    char realm[24];
    uint64_t conn;
    int64_t expires_ns;
    int64_t superseded_ns; /* refresh: when a newer one was issued (0 = never) */
    int used;              /* code: already exchanged */
    char *redirect_uri;    /* code only */
} token_t;

struct st_sim_oauth_t {
    sim_oauth_conf_t conf;
    char *expected_basic; /* "Basic base64(id:secret)" */
    token_t *t;
    size_t n, cap;
    uint64_t next_conn;
    uint64_t *revoked_conns;
    size_t nrevoked;
};

static void random_token(const char *prefix, char *out, size_t hexbytes)
{
    unsigned char raw[32];
    static const char hex[] = "0123456789abcdef";
    if (hexbytes > sizeof(raw))
        hexbytes = sizeof(raw);
    if (getrandom(raw, hexbytes, 0) != (ssize_t)hexbytes)
        qbc_fatal("getrandom failed");
    size_t pl = strlen(prefix);
    memcpy(out, prefix, pl);
    for (size_t i = 0; i < hexbytes; i++) {
        out[pl + 2 * i] = hex[raw[i] >> 4];
        out[pl + 2 * i + 1] = hex[raw[i] & 15];
    }
    out[pl + 2 * hexbytes] = '\0';
}

sim_oauth_t *sim_oauth_create(const sim_oauth_conf_t *conf, uint64_t seed)
{
    (void)seed;
    sim_oauth_t *o = qbc_calloc(1, sizeof(*o));
    o->conf = *conf;
    size_t rawlen = strlen(conf->client_id) + 1 + strlen(conf->client_secret);
    char *raw = qbc_alloc(rawlen + 1);
    snprintf(raw, rawlen + 1, "%s:%s", conf->client_id, conf->client_secret);
    o->expected_basic = qbc_alloc(6 + QBC_BASE64_ENCODED_SIZE(rawlen));
    memcpy(o->expected_basic, "Basic ", 6);
    qbc_base64_encode(raw, rawlen, o->expected_basic + 6);
    free(raw);
    o->next_conn = 1;
    return o;
}

void sim_oauth_destroy(sim_oauth_t *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++)
        free(o->t[i].redirect_uri);
    free(o->t);
    free(o->revoked_conns);
    free(o->expected_basic);
    free(o);
}

int sim_oauth_check_client(sim_oauth_t *o, const char *hdr, size_t len)
{
    size_t el = strlen(o->expected_basic);
    if (!hdr || len != el)
        return QBC_EAUTH;
    /* the scheme name is case-insensitive; the credentials are not */
    if (strncasecmp(hdr, "Basic ", 6) != 0 || CRYPTO_memcmp(hdr + 6, o->expected_basic + 6, el - 6) != 0)
        return QBC_EAUTH;
    return 0;
}

static int conn_revoked(const sim_oauth_t *o, uint64_t conn)
{
    for (size_t i = 0; i < o->nrevoked; i++)
        if (o->revoked_conns[i] == conn)
            return 1;
    return 0;
}

static int token_alive(const sim_oauth_t *o, const token_t *t, int64_t now)
{
    if (conn_revoked(o, t->conn) || now >= t->expires_ns)
        return 0;
    if (t->kind == K_REFRESH && t->superseded_ns && now >= t->superseded_ns + o->conf.refresh_grace_s * 1000000000LL)
        return 0;
    if (t->kind == K_CODE && t->used)
        return 0;
    return 1;
}

/* drops tokens that can never be valid again, keeping the table small. */
static void prune(sim_oauth_t *o, int64_t now)
{
    size_t w = 0;
    for (size_t i = 0; i < o->n; i++) {
        if (token_alive(o, &o->t[i], now)) {
            o->t[w++] = o->t[i];
        } else {
            free(o->t[i].redirect_uri);
        }
    }
    o->n = w;
}

static token_t *add_token(sim_oauth_t *o, int kind, const char *realm, uint64_t conn, int64_t expires_ns)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 32;
        o->t = qbc_realloc(o->t, o->cap * sizeof(*o->t));
    }
    token_t *t = &o->t[o->n++];
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    snprintf(t->realm, sizeof(t->realm), "%s", realm);
    t->conn = conn;
    t->expires_ns = expires_ns;
    random_token(kind == K_ACCESS ? "AT" : kind == K_REFRESH ? "RT" : "AC", t->tok, kind == K_CODE ? 16 : 32);
    return t;
}

static token_t *find_token(sim_oauth_t *o, const char *tok, size_t len)
{
    for (size_t i = 0; i < o->n; i++)
        if (strlen(o->t[i].tok) == len && memcmp(o->t[i].tok, tok, len) == 0)
            return &o->t[i];
    return NULL;
}

const char *sim_oauth_connect(sim_oauth_t *o, const char *realm, int64_t now_ns)
{
    prune(o, now_ns);
    token_t *t = add_token(o, K_REFRESH, realm, o->next_conn++, now_ns + o->conf.refresh_ttl_s * 1000000000LL);
    return t->tok;
}

const char *sim_oauth_current_refresh(sim_oauth_t *o, const char *realm, int64_t now_ns)
{
    const token_t *best = NULL;
    for (size_t i = 0; i < o->n; i++) {
        const token_t *t = &o->t[i];
        if (t->kind == K_REFRESH && strcmp(t->realm, realm) == 0 && !t->superseded_ns && token_alive(o, t, now_ns))
            best = t; /* later entries are newer */
    }
    return best ? best->tok : sim_oauth_connect(o, realm, now_ns);
}

const char *sim_oauth_new_code(sim_oauth_t *o, const char *realm, const char *redirect_uri, int64_t now_ns)
{
    prune(o, now_ns);
    token_t *t = add_token(o, K_CODE, realm, o->next_conn++, now_ns + 600 * 1000000000LL);
    t->redirect_uri = qbc_strdup(redirect_uri ? redirect_uri : "");
    return t->tok;
}

static json_t *oauth_error(const char *code, const char *desc)
{
    json_t *j = json_object();
    json_object_set_new(j, "error", json_string(code));
    if (desc)
        json_object_set_new(j, "error_description", json_string(desc));
    return j;
}

/* issues an access + refresh pair on conn and renders the token response (§7). */
static json_t *issue_pair(sim_oauth_t *o, const char *realm, uint64_t conn, int64_t now)
{
    char realm_copy[24];
    snprintf(realm_copy, sizeof(realm_copy), "%s", realm); /* realm may point into the table */
    prune(o, now);
    token_t *rt = add_token(o, K_REFRESH, realm_copy, conn, now + o->conf.refresh_ttl_s * 1000000000LL);
    json_t *j = json_object();
    json_object_set_new(j, "token_type", json_string("bearer"));
    json_object_set_new(j, "expires_in", json_integer(o->conf.access_ttl_s));
    json_object_set_new(j, "refresh_token", json_string(rt->tok));
    json_object_set_new(j, "x_refresh_token_expires_in", json_integer(o->conf.refresh_ttl_s));
    token_t *at = add_token(o, K_ACCESS, realm_copy, conn, now + o->conf.access_ttl_s * 1000000000LL);
    json_object_set_new(j, "access_token", json_string(at->tok));
    return j;
}

int sim_oauth_token(sim_oauth_t *o, const char *body, size_t len, int64_t now_ns, json_t **out)
{
    char grant[64], val[256], redirect[1024];
    if (sim_form_get(body, len, "grant_type", grant, sizeof(grant)) < 0) {
        *out = oauth_error("invalid_request", "grant_type missing");
        return 400;
    }
    if (strcmp(grant, "authorization_code") == 0) {
        if (sim_form_get(body, len, "code", val, sizeof(val)) < 0) {
            *out = oauth_error("invalid_request", "code missing");
            return 400;
        }
        if (sim_form_get(body, len, "redirect_uri", redirect, sizeof(redirect)) < 0)
            redirect[0] = '\0';
        token_t *t = find_token(o, val, strlen(val));
        if (!t || t->kind != K_CODE || !token_alive(o, t, now_ns) || strcmp(t->redirect_uri, redirect) != 0) {
            *out = oauth_error("invalid_grant", "Token invalid");
            return 400;
        }
        t->used = 1;
        *out = issue_pair(o, t->realm, t->conn, now_ns);
        return 200;
    }
    if (strcmp(grant, "refresh_token") == 0) {
        if (sim_form_get(body, len, "refresh_token", val, sizeof(val)) < 0) {
            *out = oauth_error("invalid_request", "refresh_token missing");
            return 400;
        }
        token_t *t = find_token(o, val, strlen(val));
        if (!t || t->kind != K_REFRESH || !token_alive(o, t, now_ns)) {
            *out = oauth_error("invalid_grant", "Token invalid");
            return 400;
        }
        if (!t->superseded_ns)
            t->superseded_ns = now_ns;
        *out = issue_pair(o, t->realm, t->conn, now_ns);
        return 200;
    }
    *out = oauth_error("unsupported_grant_type", NULL);
    return 400;
}

static void revoke_conn(sim_oauth_t *o, uint64_t conn)
{
    if (conn_revoked(o, conn))
        return;
    o->revoked_conns = qbc_realloc(o->revoked_conns, (o->nrevoked + 1) * sizeof(*o->revoked_conns));
    o->revoked_conns[o->nrevoked++] = conn;
}

int sim_oauth_revoke_token(sim_oauth_t *o, const char *token, int64_t now_ns)
{
    (void)now_ns;
    token_t *t = find_token(o, token, strlen(token));
    if (!t)
        return QBC_ENOTFOUND;
    revoke_conn(o, t->conn);
    return 0;
}

void sim_oauth_revoke_realm(sim_oauth_t *o, const char *realm)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->t[i].realm, realm) == 0)
            revoke_conn(o, o->t[i].conn);
}

void sim_oauth_expire_access(sim_oauth_t *o)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->t[i].kind == K_ACCESS)
            o->t[i].expires_ns = 0;
}

int sim_oauth_check_bearer(sim_oauth_t *o, const char *hdr, size_t len, const char *realm, int64_t now_ns,
                           const char **detail)
{
    if (!hdr || len < 8 || strncasecmp(hdr, "Bearer ", 7) != 0) {
        *detail = "Authorization header missing or not a bearer token";
        return QBC_EAUTH;
    }
    token_t *t = find_token(o, hdr + 7, len - 7);
    if (!t || t->kind != K_ACCESS) {
        *detail = "Token invalid";
        return QBC_EAUTH;
    }
    if (conn_revoked(o, t->conn)) {
        *detail = "Token revoked";
        return QBC_EAUTH;
    }
    if (now_ns >= t->expires_ns) {
        *detail = "Token expired";
        return QBC_EAUTH;
    }
    if (strcmp(t->realm, realm) != 0) {
        *detail = "Token not valid for this realm";
        return QBC_EAUTH;
    }
    return 0;
}
