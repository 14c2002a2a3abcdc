/*
 * connect.c — the OAuth 2.0 authorization-code flow that connects a company.
 *
 *   GET /connect?state_hint=H         302 to Intuit's consent screen with a fresh state
 *   GET /oauth/callback?code=&realmId=&state=
 *                                     checks the state (one use, 10 minutes), exchanges
 *                                     the code at the token endpoint, stores the tokens
 *                                     (encrypted) and answers once they are committed
 *
 * States live in memory: a restart in the middle of a consent only means the user
 * clicks "connect" again. The code exchange is one blocking HTTPS call; it runs on a
 * short-lived thread of its own and reports back to the loop through h2o's queue, so
 * the loop never waits on Intuit. Connects are rare, so a thread each is cheap enough.
 *
 *   DELETE /admin/realms/{realm}      (admin.c routes it here) revokes at Intuit the same
 *                                     way, then erases the tokens locally
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include "api_internal.h"

#define STATE_TTL_NS (600 * (int64_t)1000000000)
#define MAX_STATES 4096

typedef struct st_state_t {
    char state[65];
    char hint[128];
    int64_t expires_ns;
    struct st_state_t *next;
} state_t;

struct st_connect_states_t {
    state_t *head;
    size_t n;
};

/*
 * one call to an OAuth endpoint (token exchange, revoke), made on a thread of its own
 * and handed back to the loop, where done() runs
 */
typedef struct st_oauth_call_t {
    h2o_multithread_message_t msg;
    qbc_api_t *api;
    realm_op_t *op; /* carries the request guard, the realm and what to store */
    const char *url;
    const char *content_type;
    char *body;       /* wiped and freed after the call */
    long status;      /* HTTP status, 0 if none */
    qbc_buf_t answer; /* the response body (an OAuth answer is small: capped), wiped and freed after done() */
    char error[200];
    void (*done)(struct st_oauth_call_t *call);
} oauth_call_t;

static void prune(struct st_connect_states_t *cs, int64_t now)
{
    state_t **pp = &cs->head;
    while (*pp != NULL) {
        if ((*pp)->expires_ns < now) {
            state_t *dead = *pp;
            *pp = dead->next;
            free(dead);
            cs->n--;
        } else {
            pp = &(*pp)->next;
        }
    }
}

/* removes and returns a state if it exists and has not expired (one use) */
static state_t *take_state(struct st_connect_states_t *cs, const char *state)
{
    prune(cs, qbc_now_ns());
    for (state_t **pp = &cs->head; *pp != NULL; pp = &(*pp)->next) {
        if (strlen((*pp)->state) == strlen(state) && CRYPTO_memcmp((*pp)->state, state, strlen(state)) == 0) {
            state_t *s = *pp;
            *pp = s->next;
            cs->n--;
            return s;
        }
    }
    return NULL;
}

int qbc_api__on_connect(h2o_handler_t *_self, h2o_req_t *req)
{
    qbc_api_t *api = ((api_handler_t *)_self)->api;
    struct st_connect_states_t *cs = api->connect_states;
    unsigned char rnd[24];
    char hint[128] = "", enc_redirect[1024], enc_client[512], url[2048];

    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/connect"))) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such endpoint");
        return 0;
    }
    if (api->client_id == NULL || api->redirect_uri == NULL || api->authorize_url == NULL) {
        qbc_api__respond_error(
            req, 503, "Service Unavailable", "not_configured",
            "set QBCDC_CLIENT_ID, QBCDC_CLIENT_SECRET and QBCDC_OAUTH_REDIRECT_URI to connect companies");
        return 0;
    }
    qbc_api__query_param(req, "state_hint", hint, sizeof(hint));
    prune(cs, qbc_now_ns());
    if (cs->n >= MAX_STATES) {
        qbc_api__respond_error(req, 503, "Service Unavailable", "too_many_connects", "too many connects in progress");
        return 0;
    }
    state_t *st = qbc_calloc(1, sizeof(*st));
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        qbc_fatal("RAND_bytes failed");
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(st->state + 2 * i, 3, "%02x", rnd[i]);
    snprintf(st->hint, sizeof(st->hint), "%s", hint);
    st->expires_ns = qbc_now_ns() + STATE_TTL_NS;
    st->next = cs->head;
    cs->head = st;
    cs->n++;

    qbc_url_encode(api->redirect_uri, enc_redirect, sizeof(enc_redirect));
    qbc_url_encode(api->client_id, enc_client, sizeof(enc_client));
    snprintf(url, sizeof(url),
             "%s%cclient_id=%s&response_type=code&scope=com.intuit.quickbooks.accounting"
             "&redirect_uri=%s&state=%s",
             api->authorize_url, strchr(api->authorize_url, '?') ? '&' : '?', enc_client, enc_redirect, st->state);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, h2o_strdup(&req->pool, url, SIZE_MAX).base,
                   strlen(url));
    qbc_api__respond_json(req, 302, "Found", "{\"status\":\"redirecting to Intuit\"}");
    return 0;
}

static void *oauth_call_main(void *arg)
{
    oauth_call_t *x = arg;
    qbc_api_t *api = x->api;
    char errbuf[CURL_ERROR_SIZE] = "", ctype[96];
    CURL *c = curl_easy_init();

    if (c != NULL) {
        snprintf(ctype, sizeof(ctype), "Content-Type: %s", x->content_type);
        struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
        h = curl_slist_append(h, ctype);
        curl_easy_setopt(c, CURLOPT_URL, x->url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, api->client_id);
        curl_easy_setopt(c, CURLOPT_PASSWORD, api->client_secret != NULL ? api->client_secret : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->body);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, qbc_buf_write_cb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &x->answer);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        CURLcode rc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        if (rc != CURLE_OK)
            snprintf(x->error, sizeof(x->error), "OAuth endpoint unreachable: %s",
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else {
        snprintf(x->error, sizeof(x->error), "cannot start an HTTP client");
    }
    OPENSSL_cleanse(x->body, strlen(x->body));
    h2o_multithread_send_message(&api->exchanges, &x->msg);
    return NULL;
}

/* loop thread: OAuth calls that finished */
static void on_exchanges(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        oauth_call_t *x = H2O_STRUCT_FROM_MEMBER(oauth_call_t, msg, msg);
        h2o_linklist_unlink(&msg->link);
        x->api->inflight--;
        x->done(x);
        qbc_buf_free(&x->answer, 1);
        free(x->body);
        free(x);
    }
}

/* starts a call; on failure to start, answers 503 and frees everything (done is not called) */
static void oauth_call_start(qbc_api_t *api, realm_op_t *op, const char *url, const char *content_type, char *body,
                             void (*done)(oauth_call_t *))
{
    oauth_call_t *x = qbc_calloc(1, sizeof(*x));
    pthread_t th;
    pthread_attr_t attr;

    x->api = api;
    x->op = op;
    x->url = url;
    x->content_type = content_type;
    x->body = body;
    x->answer.max = 1 << 20; /* an OAuth answer is small; refuse a flood */
    x->done = done;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    api->inflight++; /* shutdown waits for it like for any in-flight answer */
    if (pthread_create(&th, &attr, oauth_call_main, x) != 0) {
        api->inflight--;
        if (op->aj.guard != NULL)
            qbc_api__respond_error(op->aj.guard->req, 503, "Service Unavailable", "no_thread", "retry later");
        OPENSSL_cleanse(body, strlen(body));
        free(body);
        free(x);
        qbc_api__job_free(&op->aj);
    }
    pthread_attr_destroy(&attr);
}

/* the code exchange answered: keep the tokens, or say why not */
static void exchange_done(oauth_call_t *x)
{
    realm_op_t *op = x->op;
    json_t *o = x->answer.data != NULL ? json_loads(x->answer.data, 0, NULL) : NULL;
    const char *rt = o ? json_string_value(json_object_get(o, "refresh_token")) : NULL;
    const char *at = o ? json_string_value(json_object_get(o, "access_token")) : NULL;

    if (x->status == 200 && rt != NULL && strlen(rt) < QBC_TOKEN_MAX && (at == NULL || strlen(at) < QBC_TOKEN_MAX)) {
        qbc_tokens_t *t = op->tokens;
        snprintf(t->refresh_token, QBC_TOKEN_MAX, "%s", rt);
        if (at != NULL) {
            json_int_t ttl = json_integer_value(json_object_get(o, "expires_in"));
            snprintf(t->access_token, QBC_TOKEN_MAX, "%s", at);
            t->access_expires_ns = qbc_now_ns() + (int64_t)(ttl > 0 ? ttl : 3600) * 1000000000;
        }
        json_int_t rttl = json_integer_value(json_object_get(o, "x_refresh_token_expires_in"));
        if (rttl > 0)
            t->refresh_expires_ns = qbc_now_ns() + (int64_t)rttl * 1000000000;
        json_decref(o);
        qbc_api__realm_op_submit(x->api, op);
        return;
    }
    if (x->error[0] == '\0') {
        /* the OAuth error code is safe to repeat; the rest of the answer is not ours to echo */
        const char *err = o ? json_string_value(json_object_get(o, "error")) : NULL;
        snprintf(x->error, sizeof(x->error), "token endpoint answered HTTP %ld%s%s", x->status, err ? ": " : "",
                 err && strlen(err) < 64 ? err : "");
    }
    json_decref(o);
    qbc_log(QBC_LOG_WARN, "api", "connecting realm %s failed: %s", op->rj.realm, x->error);
    if (op->aj.guard != NULL)
        qbc_api__respond_error(op->aj.guard->req, 502, "Bad Gateway", "token_exchange_failed", x->error);
    qbc_api__job_free(&op->aj);
}

/* the revoke answered (or not): erase the tokens locally either way */
static void revoke_done(oauth_call_t *x)
{
    realm_op_t *op = x->op;
    op->revoked = x->status == 200;
    if (!op->revoked) {
        if (x->error[0] == '\0')
            snprintf(x->error, sizeof(x->error), "revoke endpoint answered HTTP %ld", x->status);
        snprintf(op->revoke_error, sizeof(op->revoke_error), "%s", x->error);
        qbc_log(QBC_LOG_WARN, "api", "revoking realm %s at Intuit failed (%s); erasing its tokens here anyway",
                op->rj.realm, x->error);
    }
    qbc_api__realm_op_submit(x->api, op);
}

/*
 * DELETE /admin/realms/{realm}: revoke the refresh token at Intuit (which ends the
 * whole connection), then erase the tokens here and mark the realm disconnected. Its
 * pending work and feed history stay: reconnecting resumes where it stopped.
 */
int qbc_api__disconnect_realm(qbc_api_t *api, h2o_req_t *req, const char *realm)
{
    qbc_tokens_t *t = qbc_calloc(1, sizeof(*t));
    int rc = qbc_store_tokens_get(api->store, realm, t);
    qbc_realm_t rs;

    if (qbc_store_realm_get(api->store, realm, &rs) != 0) {
        OPENSSL_cleanse(t, sizeof(*t));
        free(t);
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such realm");
        return 0;
    }
    realm_op_t *op = qbc_api__realm_op_new(api, req, realm);
    op->state = rs;
    op->state.status = QBC_REALM_DISCONNECTED;
    snprintf(op->state.last_error, sizeof(op->state.last_error), "disconnected by an operator");
    op->disconnect = 1;
    op->rj.state = &op->state;
    op->rj.erase_tokens = 1;
    if (rc != 0 || api->revoke_url == NULL || api->client_id == NULL) {
        /* nothing to revoke (or nowhere to): just erase */
        snprintf(op->revoke_error, sizeof(op->revoke_error), "%s",
                 rc != 0 ? "no tokens were held" : "no revoke endpoint or client configured");
        OPENSSL_cleanse(t, sizeof(*t));
        free(t);
        qbc_api__realm_op_submit(api, op);
        return 0;
    }
    json_t *o = json_pack("{s:s}", "token", t->refresh_token);
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
    oauth_call_start(api, op, api->revoke_url, "application/json", body, revoke_done);
    return 0;
}

int qbc_api__on_oauth_callback(h2o_handler_t *_self, h2o_req_t *req)
{
    qbc_api_t *api = ((api_handler_t *)_self)->api;
    char code[2048], realm[QBC_REALM_MAX], state[80], error[64];

    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/oauth/callback"))) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such endpoint");
        return 0;
    }
    if (qbc_api__query_param(req, "state", state, sizeof(state)) != 0) {
        qbc_api__respond_error(req, 400, "Bad Request", "bad_state", "state is missing");
        return 0;
    }
    state_t *st = take_state(api->connect_states, state);
    if (st == NULL) {
        qbc_api__respond_error(req, 400, "Bad Request", "bad_state", "unknown, used or expired state; connect again");
        return 0;
    }
    if (qbc_api__query_param(req, "error", error, sizeof(error)) == 0) {
        free(st);
        qbc_api__respond_error(req, 400, "Bad Request", "consent_refused",
                               "the company was not connected (consent refused)");
        return 0;
    }
    if (qbc_api__query_param(req, "code", code, sizeof(code)) != 0 || code[0] == '\0' ||
        qbc_api__query_param(req, "realmId", realm, sizeof(realm)) != 0 ||
        !qbc_api__valid_realm(realm, strlen(realm))) {
        free(st);
        qbc_api__respond_error(req, 400, "Bad Request", "bad_callback", "code and realmId are required");
        return 0;
    }
    if (api->token_url == NULL || api->client_id == NULL || api->redirect_uri == NULL) {
        free(st);
        qbc_api__respond_error(req, 503, "Service Unavailable", "not_configured", "OAuth client is not configured");
        return 0;
    }

    realm_op_t *op = qbc_api__realm_op_new(api, req, realm);
    snprintf(op->state_hint, sizeof(op->state_hint), "%s", st->hint);
    free(st);
    op->tokens = qbc_calloc(1, sizeof(*op->tokens));
    qbc_api__realm_op_activate(api, op);

    char *ecode = curl_easy_escape(NULL, code, 0), *eredir = curl_easy_escape(NULL, api->redirect_uri, 0);
    if (ecode == NULL || eredir == NULL)
        qbc_fatal("out of memory escaping the OAuth callback");
    size_t flen = strlen(ecode) + strlen(eredir) + 80;
    char *form = qbc_alloc(flen);
    snprintf(form, flen, "grant_type=authorization_code&code=%s&redirect_uri=%s", ecode, eredir);
    OPENSSL_cleanse(ecode, strlen(ecode));
    OPENSSL_cleanse(code, sizeof(code));
    curl_free(ecode);
    curl_free(eredir);
    oauth_call_start(api, op, api->token_url, "application/x-www-form-urlencoded", form, exchange_done);
    return 0;
}

void qbc_api__connect_init(qbc_api_t *api)
{
    api->connect_states = qbc_calloc(1, sizeof(*api->connect_states));
    h2o_multithread_register_receiver(api->ctx.queue, &api->exchanges, on_exchanges);
}

void qbc_api__connect_dispose(qbc_api_t *api)
{
    prune(api->connect_states, INT64_MAX);
    free(api->connect_states);
    h2o_multithread_unregister_receiver(api->ctx.queue, &api->exchanges);
}
