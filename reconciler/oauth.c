/*
 * oauth.c — access tokens for each realm (qbo-facts §7).
 *
 * A realm's auth state:
 *   NONE --(work, budget)--> REFRESHING --(200)--> COMMITTING --(on_commit ok)--> OK
 *   OK --(within 60 s of expiry, or an API 401)--> NONE
 *   REFRESHING --(invalid_grant)--> DISCONNECTED (realm state written; pending kept)
 *   DISCONNECTED --(new tokens registered: connected_ns changes)--> NONE
 * The rotated refresh token is committed (a realm job) before the new access token is
 * used; the refresh token sent is always the one read back from the store. One refresh
 * per realm at a time. No token is ever logged or put into an error string.
 *
 * The same thread makes the OAuth calls others ask for (qbc_reconciler_oauth: the connect
 * flow's code exchange, a disconnect's revoke), parsed by the same qbc_oauth_parse. A call
 * is queued under oauth_mu, started by the loop, and its callback runs under oauth_mu, so
 * a cancel (which takes it) returns only when the callback is not running and never will.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "rec_internal.h"

char *qbc_oauth_basic_header(const char *client_id, const char *client_secret)
{
    size_t il = strlen(client_id), sl = strlen(client_secret);
    char *raw = qbc_alloc(il + sl + 2);
    memcpy(raw, client_id, il);
    raw[il] = ':';
    memcpy(raw + il + 1, client_secret, sl + 1);
    static const char prefix[] = "Authorization: Basic ";
    char *h = qbc_alloc(sizeof(prefix) + QBC_BASE64_ENCODED_SIZE(il + sl + 1));
    memcpy(h, prefix, sizeof(prefix) - 1);
    qbc_base64_encode(raw, il + sl + 1, h + sizeof(prefix) - 1);
    OPENSSL_cleanse(raw, il + sl + 1);
    free(raw);
    return h;
}

char *qbc_oauth_refresh_body(const char *refresh_token)
{
    static const char prefix[] = "grant_type=refresh_token&refresh_token=";
    size_t n = sizeof(prefix) - 1, room = strlen(refresh_token) * 3 + 2; /* qbc_url_encode's worst case */
    char *b = qbc_alloc(n + room);
    memcpy(b, prefix, n);
    qbc_url_encode(refresh_token, b + n, room);
    return b;
}

/*
 * the longest token lifetime believed, in seconds: ten years, twice Intuit's hard maximum
 * for refresh tokens (qbo-facts §7). A larger value is capped, because seconds * 10^9
 * past int64_t would wrap into an expiry in the past.
 */
#define MAX_LIFETIME_S (10LL * 366 * 86400)

/* a positive integer lifetime in seconds, capped; 0 when v is none */
static int64_t lifetime_s(json_t *v)
{
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return 0;
    return json_integer_value(v) < MAX_LIFETIME_S ? json_integer_value(v) : MAX_LIFETIME_S;
}

static int copy_token(char *dst, json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= QBC_TOKEN_MAX)
        return -1;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

qbc_oauth_class_t qbc_oauth_parse(int curl_ok, long status, const char *body, size_t len, int64_t now_wall,
                                  qbc_tokens_t *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof(*out));
    err[0] = '\0';
    if (!curl_ok || status == 0) {
        snprintf(err, errsize, "token endpoint: transport error");
        return REC_OAUTH_RETRY;
    }
    json_t *root = body != NULL && len > 0 ? json_loadb(body, len, 0, NULL) : NULL;
    qbc_oauth_class_t cls;
    if (status == 200) {
        json_t *ei = json_object_get(root, "expires_in"), *ri = json_object_get(root, "x_refresh_token_expires_in");
        if (!json_is_object(root) || copy_token(out->access_token, json_object_get(root, "access_token")) != 0 ||
            copy_token(out->refresh_token, json_object_get(root, "refresh_token")) != 0) {
            OPENSSL_cleanse(out, sizeof(*out));
            snprintf(err, errsize, "token endpoint: HTTP 200 without access_token/refresh_token");
            cls = REC_OAUTH_RETRY;
        } else {
            int64_t exp = lifetime_s(ei) > 0 ? lifetime_s(ei) : 3600, rexp = lifetime_s(ri);
            out->access_expires_ns = now_wall + exp * 1000000000LL;
            if (rexp > 0)
                out->refresh_expires_ns = now_wall + rexp * 1000000000LL;
            cls = REC_OAUTH_OK;
        }
    } else {
        json_t *e = json_object_get(root, "error");
        char code[48] = "";
        if (json_is_string(e)) {
            /* only the error code: error_description is not ours to vouch for */
            size_t n = json_string_length(e) < sizeof(code) - 1 ? json_string_length(e) : sizeof(code) - 1;
            memcpy(code, json_string_value(e), n);
            code[n] = '\0';
            for (size_t i = 0; i < n; i++)
                if (!((code[i] >= 'a' && code[i] <= 'z') || code[i] == '_'))
                    code[i] = '?';
        }
        snprintf(err, errsize, "token endpoint: HTTP %ld%s%s", status, code[0] ? " " : "", code);
        if (strcmp(code, "invalid_grant") == 0)
            cls = REC_OAUTH_INVALID_GRANT;
        else if (status == 429 || status >= 500)
            cls = REC_OAUTH_RETRY;
        else
            cls = REC_OAUTH_REFUSED;
    }
    json_decref(root);
    return cls;
}

/* ---------------------------------------------------------------- state machine */

static void auth_clear(rec_realm_t *realm)
{
    OPENSSL_cleanse(realm->access_token, sizeof(realm->access_token));
    realm->access_token[0] = '\0';
    realm->access_expires_ns = 0;
}

static void auth_retry_later(qbc_reconciler_t *r, rec_realm_t *realm, uint64_t min_ms)
{
    realm->auth = REC_AUTH_NONE;
    realm->auth_failures++;
    uint64_t ms = qbc_backoff_ms(realm->auth_failures, r->cfg.backoff_base_ms, r->cfg.backoff_max_ms, &r->rng);
    if (ms < min_ms)
        ms = min_ms;
    realm->auth_retry_ns = qbc_mono_ns() + (int64_t)ms * 1000000;
}

int qbc_rec__auth_ready(qbc_reconciler_t *r, rec_realm_t *realm, int64_t now, int64_t *next_ns)
{
    int64_t wall = qbc_now_ns();
    if (realm->auth == REC_AUTH_OK) {
        if (realm->access_expires_ns - realm->access_margin_ns > wall)
            return 1;
        auth_clear(realm); /* refresh ahead of expiry */
        realm->auth = REC_AUTH_NONE;
    }
    if (realm->auth != REC_AUTH_NONE || atomic_load(&r->stopping))
        return 0;
    if (realm->auth_retry_ns > now) {
        if (realm->auth_retry_ns < *next_ns)
            *next_ns = realm->auth_retry_ns;
        return 0;
    }
    qbc_tokens_t *t = qbc_alloc(sizeof(*t));
    int rc = qbc_store_tokens_get(r->store, realm->name, t);
    int ready = 0;
    if (rc == QBC_ENOTFOUND) {
        realm->has_tokens = 0;
    } else if (rc != 0) {
        qbc_log(QBC_LOG_ERROR, REC_MOD, "realm %s: cannot read its tokens: %s", realm->name, qbc_strerror(rc));
        auth_retry_later(r, realm, 30000);
    } else if (!realm->force_refresh && t->access_token[0] != '\0' &&
               t->access_expires_ns - REC_EXPIRY_MARGIN_NS > wall) {
        memcpy(realm->access_token, t->access_token, sizeof(realm->access_token));
        realm->access_expires_ns = t->access_expires_ns;
        realm->access_margin_ns = REC_EXPIRY_MARGIN_NS;
        realm->token_gen++;
        realm->auth = REC_AUTH_OK;
        ready = 1;
    } else if (t->refresh_token[0] == '\0') {
        realm->has_tokens = 0;
    } else if (qbc_budget_available(&realm->budget, now, REC_PRIO_LIVE) == 0) {
        int64_t nx = qbc_budget_next(&realm->budget, now, REC_PRIO_LIVE);
        if (nx > now && nx < *next_ns)
            *next_ns = nx;
    } else if (qbc_log(QBC_LOG_DEBUG, REC_MOD, "realm %s: refreshing its access token", realm->name),
               qbc_rec__start_token(r, realm, t->refresh_token) == 0) {
        realm->auth = REC_AUTH_REFRESHING;
        realm->refresh_connected_ns = realm->connected_ns;
    } else {
        auth_retry_later(r, realm, 1000);
    }
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
    return ready;
}

void qbc_rec__auth_token_done(qbc_reconciler_t *r, rec_realm_t *realm, int curl_ok, long status, const char *body,
                              size_t len, const char *curl_err)
{
    char err[200];
    qbc_tokens_t *t = qbc_alloc(sizeof(*t));
    qbc_oauth_class_t cls = qbc_oauth_parse(curl_ok, status, body, len, qbc_now_ns(), t, err, sizeof(err));
    int replaced = realm->connected_ns != realm->refresh_connected_ns; /* new tokens registered meanwhile */
    switch (cls) {
    case REC_OAUTH_OK:
        REC_STAT(r, token_refreshes, 1);
        if (replaced) {
            realm->auth = REC_AUTH_NONE; /* use the newly registered tokens instead */
        } else if (qbc_rec__submit_realm(r, realm, NULL, t, realm->refresh_connected_ns) == 0) {
            realm->auth = REC_AUTH_COMMITTING;
        } else {
            auth_retry_later(r, realm, 1000);
        }
        break;
    case REC_OAUTH_INVALID_GRANT:
        if (replaced) {
            realm->auth = REC_AUTH_NONE;
            break;
        }
        {
            qbc_realm_t st;
            if (qbc_store_realm_get(r->store, realm->name, &st) != 0) {
                memset(&st, 0, sizeof(st));
                snprintf(st.realm, sizeof(st.realm), "%s", realm->name);
                st.connected_ns = realm->connected_ns;
            }
            st.status = QBC_REALM_DISCONNECTED;
            snprintf(st.last_error, sizeof(st.last_error),
                     "refresh token refused (invalid_grant): reconnect the company; pending changes are kept");
            st.last_error_ns = qbc_now_ns();
            realm->auth = REC_AUTH_DISCONNECTED;
            realm->status = QBC_REALM_DISCONNECTED;
            realm->disc_connected_ns = st.connected_ns;
            auth_clear(realm);
            qbc_log(QBC_LOG_WARN, REC_MOD, "realm %s: %s", realm->name, st.last_error);
            if (qbc_rec__submit_realm(r, realm, &st, NULL, realm->refresh_connected_ns) != 0)
                qbc_log(QBC_LOG_ERROR, REC_MOD, "realm %s: could not record the disconnection", realm->name);
        }
        break;
    case REC_OAUTH_REFUSED: {
        char text[256];
        qbc_log(QBC_LOG_ERROR, REC_MOD, "realm %s: %s (check the client id and secret)", realm->name, err);
        snprintf(text, sizeof(text), "token refresh refused: %.150s (check QBCDC_CLIENT_ID and QBCDC_CLIENT_SECRET)",
                 err);
        qbc_rec__note_realm_error(r, realm, text);
        REC_STAT(r, token_refresh_failures, 1);
        auth_retry_later(r, realm, 30000);
        break;
    }
    case REC_OAUTH_RETRY:
        qbc_log(QBC_LOG_WARN, REC_MOD, "realm %s: %s%s%s; will retry", realm->name, err, curl_err ? ": " : "",
                curl_err ? curl_err : "");
        REC_STAT(r, token_refresh_failures, 1);
        auth_retry_later(r, realm, 0);
        if (realm->auth_failures >= 3) {
            char text[256];
            snprintf(text, sizeof(text), "token refresh keeps failing (%u tries): %.180s", realm->auth_failures, err);
            qbc_rec__note_realm_error(r, realm, text);
        }
        break;
    }
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
}

void qbc_rec__auth_committed(qbc_reconciler_t *r, rec_realm_t *realm, int result, int stale, const qbc_tokens_t *tokens)
{
    if (realm->auth != REC_AUTH_COMMITTING)
        return;
    if (result == 0 && stale) {
        /* disconnected (its tokens erased) or reconnected while we refreshed: that stands */
        qbc_log(QBC_LOG_INFO, REC_MOD,
                "realm %s: disconnected or reconnected during a refresh; its rotated tokens are "
                "dropped",
                realm->name);
        realm->auth = REC_AUTH_NONE;
        atomic_store(&r->dirty_realms, 1);
        return;
    }
    if (result != 0) {
        /* the previous refresh token stays valid for a grace period (qbo-facts §7): refresh again later */
        qbc_log(QBC_LOG_ERROR, REC_MOD, "realm %s: could not store rotated tokens: %s", realm->name,
                qbc_strerror(result));
        auth_retry_later(r, realm, 1000);
        return;
    }
    memcpy(realm->access_token, tokens->access_token, sizeof(realm->access_token));
    realm->access_expires_ns = tokens->access_expires_ns;
    /* 60 s early (qbo-facts §7), but never more than a quarter of a short lifetime */
    int64_t life = tokens->access_expires_ns - qbc_now_ns();
    realm->access_margin_ns = life / 4 < REC_EXPIRY_MARGIN_NS ? (life > 0 ? life / 4 : 0) : REC_EXPIRY_MARGIN_NS;
    realm->token_gen++;
    realm->auth = REC_AUTH_OK;
    realm->auth_failures = 0;
    realm->force_refresh = 0;
    qbc_rec__clear_realm_error(r, realm, "token refresh"); /* a failure it reported is over */
}

void qbc_rec__auth_rejected(qbc_reconciler_t *r, rec_realm_t *realm, uint32_t gen)
{
    (void)r;
    if (realm->auth == REC_AUTH_OK && gen == realm->token_gen) {
        auth_clear(realm);
        realm->auth = REC_AUTH_NONE;
        realm->force_refresh = 1;
    }
}

void qbc_rec__auth_realm_seen(qbc_reconciler_t *r, rec_realm_t *realm, const qbc_realm_t *st, int has_tokens)
{
    (void)r;
    int64_t prev_connected = realm->connected_ns;
    qbc_log(QBC_LOG_DEBUG, REC_MOD, "realm %s: %s, %s tokens, auth state %d", realm->name,
            qbc_realm_status_name(st->status), has_tokens ? "has" : "no", realm->auth);
    realm->status = st->status;
    realm->has_tokens = has_tokens;
    realm->connected_ns = st->connected_ns;
    if (st->status == QBC_REALM_DISCONNECTED && realm->auth != REC_AUTH_DISCONNECTED &&
        realm->auth != REC_AUTH_REFRESHING && realm->auth != REC_AUTH_COMMITTING) {
        auth_clear(realm);
        realm->auth = REC_AUTH_DISCONNECTED;
        realm->disc_connected_ns = st->connected_ns;
    } else if (realm->auth == REC_AUTH_DISCONNECTED) {
        if (st->status == QBC_REALM_ACTIVE && has_tokens && st->connected_ns != realm->disc_connected_ns) {
            realm->auth = REC_AUTH_NONE;
            realm->auth_failures = 0;
            realm->auth_retry_ns = 0;
            realm->force_refresh = 0;
        }
    } else if (realm->auth == REC_AUTH_OK && st->connected_ns != prev_connected && prev_connected != 0) {
        auth_clear(realm); /* tokens replaced by an operator: pick up the new ones */
        realm->auth = REC_AUTH_NONE;
        realm->force_refresh = 0;
    } else if (realm->auth == REC_AUTH_NONE && st->connected_ns != prev_connected) {
        realm->auth_failures = 0;
        realm->auth_retry_ns = 0;
        realm->force_refresh = 0;
    }
}

/* ---------------------------------------------------------------- calls for others */

typedef struct st_rec_oauth_call_t {
    struct st_rec_oauth_call_t *next;
    uint64_t id;
    qbc_oauth_op_t op;
    char *body; /* wiped and freed with the call */
    int started;
    qbc_oauth_cb cb;
    void *ctx;
} rec_oauth_call_t;

static void call_free(rec_oauth_call_t *c)
{
    OPENSSL_cleanse(c->body, strlen(c->body));
    free(c->body);
    free(c);
}

/* the call with this id, unlinked from the list (NULL: none); oauth_mu held */
static rec_oauth_call_t *call_take(qbc_reconciler_t *r, uint64_t id)
{
    for (rec_oauth_call_t **pp = &r->oauth_calls; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            rec_oauth_call_t *c = *pp;
            *pp = c->next;
            return c;
        }
    }
    return NULL;
}

/* "grant_type=authorization_code&code=...&redirect_uri=..." or {"token":"..."} (malloc'd) */
static char *call_body(const qbc_oauth_request_t *req)
{
    if (req->op == QBC_OAUTH_REVOKE) {
        json_t *o = json_pack("{s:s}", "token", req->token);
        char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        return s;
    }
    static const char head[] = "grant_type=authorization_code&code=", mid[] = "&redirect_uri=";
    size_t cl = strlen(req->code) * 3 + 1, rl = strlen(req->redirect_uri) * 3 + 1; /* qbc_url_encode's worst */
    char *b = qbc_alloc(sizeof(head) + cl + sizeof(mid) + rl), *p = b;
    memcpy(p, head, sizeof(head) - 1);
    p += sizeof(head) - 1;
    qbc_url_encode(req->code, p, cl);
    p += strlen(p);
    memcpy(p, mid, sizeof(mid) - 1);
    p += sizeof(mid) - 1;
    qbc_url_encode(req->redirect_uri, p, rl);
    return b;
}

int qbc_reconciler_oauth(qbc_reconciler_t *r, const qbc_oauth_request_t *req, qbc_oauth_cb cb, void *ctx,
                         uint64_t *out_id)
{
    int exchange = req->op == QBC_OAUTH_EXCHANGE;
    if (cb == NULL || (req->op != QBC_OAUTH_EXCHANGE && req->op != QBC_OAUTH_REVOKE) ||
        (exchange && (req->code == NULL || req->redirect_uri == NULL || r->token_url == NULL)) ||
        (!exchange && (req->token == NULL || r->revoke_url == NULL)))
        return QBC_EINVAL;
    char *body = call_body(req);
    if (body == NULL)
        return QBC_EINVAL; /* a token that is not UTF-8 */
    rec_oauth_call_t *c = qbc_calloc(1, sizeof(*c));
    c->op = req->op;
    c->body = body;
    c->cb = cb;
    c->ctx = ctx;
    pthread_mutex_lock(&r->oauth_mu);
    if (atomic_load(&r->stopping)) {
        pthread_mutex_unlock(&r->oauth_mu);
        call_free(c);
        return QBC_ECLOSED;
    }
    c->id = ++r->oauth_next_id;
    rec_oauth_call_t **pp = &r->oauth_calls;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = c;
    *out_id = c->id;
    pthread_mutex_unlock(&r->oauth_mu);
    atomic_store(&r->dirty_oauth, 1);
    curl_multi_wakeup(r->multi);
    return 0;
}

void qbc_reconciler_oauth_cancel(qbc_reconciler_t *r, uint64_t id)
{
    pthread_mutex_lock(&r->oauth_mu);
    rec_oauth_call_t *c = call_take(r, id); /* a transfer under way finds it gone and drops the answer */
    pthread_mutex_unlock(&r->oauth_mu);
    if (c != NULL)
        call_free(c);
}

/* runs a call's callback (oauth_mu held, the call unlinked) and frees it */
static void call_finish(rec_oauth_call_t *c, qbc_oauth_result_t *res)
{
    c->cb(c->ctx, res);
    OPENSSL_cleanse(res, sizeof(*res));
    call_free(c);
}

void qbc_rec__oauth_calls_start(qbc_reconciler_t *r)
{
    if (!atomic_exchange(&r->dirty_oauth, 0))
        return;
    pthread_mutex_lock(&r->oauth_mu);
    for (rec_oauth_call_t **pp = &r->oauth_calls; *pp != NULL;) {
        rec_oauth_call_t *c = *pp;
        if (c->started) {
            pp = &c->next;
            continue;
        }
        int exchange = c->op == QBC_OAUTH_EXCHANGE;
        if (qbc_rec__start_oauth(r, exchange ? r->token_url : r->revoke_url,
                                 exchange ? "application/x-www-form-urlencoded" : "application/json", c->body,
                                 c->id) == 0) {
            c->started = 1;
            REC_STAT(r, token_calls, 1);
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        qbc_oauth_result_t *res = qbc_calloc(1, sizeof(*res));
        snprintf(res->error, sizeof(res->error), "cannot start a request to the OAuth endpoint");
        call_finish(c, res);
        free(res);
    }
    pthread_mutex_unlock(&r->oauth_mu);
}

void qbc_rec__oauth_call_done(qbc_reconciler_t *r, uint64_t id, int curl_ok, long status, const char *body, size_t len,
                              const char *err)
{
    qbc_oauth_result_t *res = qbc_calloc(1, sizeof(*res));
    pthread_mutex_lock(&r->oauth_mu);
    rec_oauth_call_t *c = call_take(r, id);
    if (c == NULL) { /* cancelled meanwhile: nobody wants the answer */
        pthread_mutex_unlock(&r->oauth_mu);
        free(res);
        return;
    }
    res->status = curl_ok ? status : 0;
    if (c->op == QBC_OAUTH_EXCHANGE) {
        res->ok = qbc_oauth_parse(curl_ok, status, body, len, qbc_now_ns(), &res->tokens, res->error,
                                  sizeof(res->error)) == REC_OAUTH_OK;
    } else if (!(res->ok = curl_ok && status == 200)) {
        snprintf(res->error, sizeof(res->error), "revoke endpoint: HTTP %ld", status);
    }
    if (!curl_ok) { /* the transport's own words go to the log, not to whoever is answered */
        qbc_log(QBC_LOG_WARN, REC_MOD, "OAuth call %llu: %s", (unsigned long long)id, err != NULL ? err : "no answer");
        snprintf(res->error, sizeof(res->error), "the OAuth endpoint could not be reached");
    }
    call_finish(c, res);
    pthread_mutex_unlock(&r->oauth_mu);
    free(res);
}

void qbc_rec__oauth_calls_end(qbc_reconciler_t *r)
{
    pthread_mutex_lock(&r->oauth_mu);
    while (r->oauth_calls != NULL) {
        rec_oauth_call_t *c = r->oauth_calls;
        r->oauth_calls = c->next;
        qbc_oauth_result_t *res = qbc_calloc(1, sizeof(*res));
        snprintf(res->error, sizeof(res->error), "aborted: the reconciler is stopping");
        call_finish(c, res);
        free(res);
    }
    pthread_mutex_unlock(&r->oauth_mu);
}
