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
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include "ingress_internal.h"

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

/* the result of one code exchange, handed from its thread to the loop */
typedef struct st_exchange_t {
    h2o_multithread_message_t msg;
    ingress_job_t *job; /* carries the request guard, the realm and the hint */
    char *code;
    qbc_ingress_t *ing;
    int ok;
    char error[200];
} exchange_t;

/* frees expired states (all of them with now = INT64_MAX) */
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

static void url_encode(const char *s, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s && n + 4 < outsz; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
            c == '.' || c == '~') {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
}

int on_connect(h2o_handler_t *_self, h2o_req_t *req)
{
    qbc_ingress_t *ing = ((ingress_handler_t *)_self)->ing;
    struct st_connect_states_t *cs = ing->connect_states;
    unsigned char rnd[24];
    char hint[128] = "", enc_redirect[1024], enc_client[512], url[2048];

    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/connect"))) {
        respond_error(req, 404, "Not Found", "not_found", "no such endpoint");
        return 0;
    }
    if (ing->client_id == NULL || ing->redirect_uri == NULL || ing->authorize_url == NULL) {
        respond_error(req, 503, "Service Unavailable", "not_configured",
                      "set QBCDC_CLIENT_ID, QBCDC_CLIENT_SECRET and QBCDC_OAUTH_REDIRECT_URI to connect companies");
        return 0;
    }
    query_param(req, "state_hint", hint, sizeof(hint));
    prune(cs, qbc_now_ns());
    if (cs->n >= MAX_STATES) {
        respond_error(req, 503, "Service Unavailable", "too_many_connects", "too many connects in progress");
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

    url_encode(ing->redirect_uri, enc_redirect, sizeof(enc_redirect));
    url_encode(ing->client_id, enc_client, sizeof(enc_client));
    snprintf(url, sizeof(url), "%s%cclient_id=%s&response_type=code&scope=com.intuit.quickbooks.accounting"
             "&redirect_uri=%s&state=%s",
             ing->authorize_url, strchr(ing->authorize_url, '?') ? '&' : '?', enc_client, enc_redirect, st->state);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, h2o_strdup(&req->pool, url, SIZE_MAX).base,
                   strlen(url));
    respond_json(req, 302, "Found", "{\"status\":\"redirecting to Intuit\"}");
    return 0;
}

/* libcurl write callback: appends to a NUL-terminated malloc'd buffer (char **ud) */
static size_t collect(char *p, size_t sz, size_t n, void *ud)
{
    size_t len = sz * n;
    char **acc = ud;
    size_t old = *acc ? strlen(*acc) : 0;
    if (old + len > 1 << 20)
        return 0; /* a token answer is small; refuse a flood */
    *acc = qbc_realloc(*acc, old + len + 1);
    memcpy(*acc + old, p, len);
    (*acc)[old + len] = '\0';
    return len;
}

/* the exchange thread: one POST to the token endpoint */
static void *exchange_main(void *arg)
{
    exchange_t *x = arg;
    qbc_ingress_t *ing = x->ing;
    char *answer = NULL, *form = NULL, errbuf[CURL_ERROR_SIZE] = "";
    long status = 0;
    CURL *c = curl_easy_init();

    if (c != NULL) {
        char *ecode = curl_easy_escape(c, x->code, 0), *eredir = curl_easy_escape(c, ing->redirect_uri, 0);
        size_t flen = strlen(ecode) + strlen(eredir) + 80;
        form = qbc_alloc(flen);
        snprintf(form, flen, "grant_type=authorization_code&code=%s&redirect_uri=%s", ecode, eredir);
        curl_free(ecode);
        curl_free(eredir);
        struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
        h = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded");
        curl_easy_setopt(c, CURLOPT_URL, ing->token_url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, ing->client_id);
        curl_easy_setopt(c, CURLOPT_PASSWORD, ing->client_secret != NULL ? ing->client_secret : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        CURLcode rc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        if (rc != CURLE_OK)
            snprintf(x->error, sizeof(x->error), "token endpoint unreachable: %s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else {
        snprintf(x->error, sizeof(x->error), "cannot start an HTTP client");
    }

    json_t *o = answer != NULL ? json_loads(answer, 0, NULL) : NULL;
    const char *rt = o ? json_string_value(json_object_get(o, "refresh_token")) : NULL;
    const char *at = o ? json_string_value(json_object_get(o, "access_token")) : NULL;
    if (status == 200 && rt != NULL && strlen(rt) < QBC_TOKEN_MAX && (at == NULL || strlen(at) < QBC_TOKEN_MAX)) {
        qbc_tokens_t *t = x->job->tokens;
        snprintf(t->refresh_token, QBC_TOKEN_MAX, "%s", rt);
        if (at != NULL) {
            json_int_t ttl = json_integer_value(json_object_get(o, "expires_in"));
            snprintf(t->access_token, QBC_TOKEN_MAX, "%s", at);
            t->access_expires_ns = qbc_now_ns() + (int64_t)(ttl > 0 ? ttl : 3600) * 1000000000;
        }
        json_int_t rttl = json_integer_value(json_object_get(o, "x_refresh_token_expires_in"));
        if (rttl > 0)
            t->refresh_expires_ns = qbc_now_ns() + (int64_t)rttl * 1000000000;
        x->ok = 1;
    } else if (x->error[0] == '\0') {
        /* the OAuth error code is safe to repeat; the rest of the answer is not ours to echo */
        const char *err = o ? json_string_value(json_object_get(o, "error")) : NULL;
        snprintf(x->error, sizeof(x->error), "token endpoint answered HTTP %ld%s%s", status, err ? ": " : "",
                 err && strlen(err) < 64 ? err : "");
    }
    json_decref(o);
    if (answer != NULL) {
        OPENSSL_cleanse(answer, strlen(answer));
        free(answer);
    }
    if (form != NULL) {
        OPENSSL_cleanse(form, strlen(form));
        free(form);
    }
    h2o_multithread_send_message(&ing->exchanges, &x->msg);
    return NULL;
}

/* loop thread: an exchange finished */
static void on_exchanges(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        exchange_t *x = H2O_STRUCT_FROM_MEMBER(exchange_t, msg, msg);
        ingress_job_t *j = x->job;
        qbc_ingress_t *ing = x->ing;
        h2o_linklist_unlink(&msg->link);
        ing->metrics.inflight--;
        OPENSSL_cleanse(x->code, strlen(x->code));
        free(x->code);
        if (!x->ok) {
            qbc_log(QBC_LOG_WARN, "ingress", "connecting realm %s failed: %s", j->realm, x->error);
            if (j->guard != NULL)
                respond_error(j->guard->req, 502, "Bad Gateway", "token_exchange_failed", x->error);
            ingress_job_free(j);
        } else if (ingress_submit(ing, j) != 0) {
            if (j->guard != NULL)
                respond_error(j->guard->req, 503, "Service Unavailable", "shutting_down", "retry later");
            ingress_job_free(j);
        }
        free(x);
    }
}

int on_oauth_callback(h2o_handler_t *_self, h2o_req_t *req)
{
    qbc_ingress_t *ing = ((ingress_handler_t *)_self)->ing;
    char code[2048], realm[QBC_REALM_MAX], state[80], error[64];

    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/oauth/callback"))) {
        respond_error(req, 404, "Not Found", "not_found", "no such endpoint");
        return 0;
    }
    if (query_param(req, "state", state, sizeof(state)) != 0) {
        respond_error(req, 400, "Bad Request", "bad_state", "state is missing");
        return 0;
    }
    state_t *st = take_state(ing->connect_states, state);
    if (st == NULL) {
        respond_error(req, 400, "Bad Request", "bad_state", "unknown, used or expired state; connect again");
        return 0;
    }
    if (query_param(req, "error", error, sizeof(error)) == 0) {
        free(st);
        respond_error(req, 400, "Bad Request", "consent_refused", "the company was not connected (consent refused)");
        return 0;
    }
    if (query_param(req, "code", code, sizeof(code)) != 0 || code[0] == '\0' ||
        query_param(req, "realmId", realm, sizeof(realm)) != 0 || !valid_realm(realm, strlen(realm))) {
        free(st);
        respond_error(req, 400, "Bad Request", "bad_callback", "code and realmId are required");
        return 0;
    }
    if (ing->token_url == NULL || ing->client_id == NULL) {
        free(st);
        respond_error(req, 503, "Service Unavailable", "not_configured", "OAuth client is not configured");
        return 0;
    }

    ingress_job_t *j = ingress_job_new(ing, req, QBC_JOB_REALM);
    snprintf(j->realm, sizeof(j->realm), "%s", realm);
    snprintf(j->state_hint, sizeof(j->state_hint), "%s", st->hint);
    free(st);
    j->tokens = qbc_calloc(1, sizeof(*j->tokens));
    if (qbc_store_realm_get(ing->store, j->realm, &j->realm_state) != 0) {
        memset(&j->realm_state, 0, sizeof(j->realm_state));
        snprintf(j->realm_state.realm, sizeof(j->realm_state.realm), "%s", j->realm);
    }
    j->realm_state.status = QBC_REALM_ACTIVE;
    j->realm_state.last_error[0] = '\0';
    j->realm_state.connected_ns = qbc_now_ns();
    j->job.realm = j->realm;
    j->job.realm_state = &j->realm_state;
    j->job.tokens = j->tokens;

    exchange_t *x = qbc_calloc(1, sizeof(*x));
    x->job = j;
    x->ing = ing;
    x->code = qbc_strdup(code);
    OPENSSL_cleanse(code, sizeof(code));
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    ing->metrics.inflight++; /* shutdown waits for it like for any in-flight answer */
    if (pthread_create(&th, &attr, exchange_main, x) != 0) {
        ing->metrics.inflight--;
        free(x->code);
        free(x);
        ingress_job_free(j);
        respond_error(req, 503, "Service Unavailable", "no_thread", "retry later");
    }
    pthread_attr_destroy(&attr);
    return 0;
}

void connect_init(qbc_ingress_t *ing)
{
    ing->connect_states = qbc_calloc(1, sizeof(*ing->connect_states));
    h2o_multithread_register_receiver(ing->ctx.queue, &ing->exchanges, on_exchanges);
}

void connect_dispose(qbc_ingress_t *ing)
{
    prune(ing->connect_states, INT64_MAX);
    free(ing->connect_states);
    h2o_multithread_unregister_receiver(ing->ctx.queue, &ing->exchanges);
}
