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
 * clicks "connect" again. The code exchange (and a disconnect's revoke) is made by the
 * reconciler's thread, Intuit's one OAuth client (qbc_reconciler_oauth); its answer comes
 * back to the loop through h2o's queue, so the loop never waits on Intuit. Calls still out
 * when the server stops are cancelled (qbc_api__connect_shutdown): no answer can arrive
 * after the server is gone.
 *
 *   DELETE /admin/realms/{realm}      (admin.c routes it here) revokes at Intuit the same
 *                                     way, then erases the tokens locally
 */
#include <jansson.h>
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

/* one OAuth call made for a request, from its start until the loop has its answer */
typedef struct st_oauth_call_t {
    h2o_multithread_message_t msg; /* the reconciler's thread -> loop: the answer */
    h2o_linklist_t link;           /* api->oauth_calls: out, for shutdown */
    qbc_api_t *api;
    realm_op_t *op; /* carries the request guard, the realm and what to store */
    uint64_t id;    /* the reconciler's call id */
    int answered;   /* the callback posted msg (set under the reconciler's lock: read after a cancel) */
    qbc_oauth_result_t res;
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
    if (qbc_api__param(req, "state_hint", hint, sizeof(hint)) < 0)
        return 0;
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

static void call_free(oauth_call_t *x)
{
    h2o_linklist_unlink(&x->link);
    x->api->inflight--;
    OPENSSL_cleanse(&x->res, sizeof(x->res));
    free(x);
}

/* the reconciler's thread: keep the answer and hand the call to the loop (must not block) */
static void on_oauth_answer(void *ctx, const qbc_oauth_result_t *res)
{
    oauth_call_t *x = ctx;
    x->res = *res;
    x->answered = 1;
    h2o_multithread_send_message(&x->api->exchanges, &x->msg);
}

/* loop thread: OAuth calls that finished */
static void on_exchanges(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    for (h2o_multithread_message_t *m; (m = qbc_api__take_message(messages)) != NULL;) {
        oauth_call_t *x = H2O_STRUCT_FROM_MEMBER(oauth_call_t, msg, m);
        x->done(x);
        call_free(x);
    }
}

/*
 * asks the reconciler for the call; done runs on the loop with its answer. If it cannot be
 * made, nothing is kept and the caller answers: QBC_EINVAL (no OAuth client, or no endpoint
 * for it) or QBC_ECLOSED (stopping).
 */
static int oauth_call_start(qbc_api_t *api, realm_op_t *op, const qbc_oauth_request_t *req,
                            void (*done)(oauth_call_t *))
{
    oauth_call_t *x = qbc_calloc(1, sizeof(*x));
    x->api = api;
    x->op = op;
    x->done = done;
    h2o_linklist_insert(&api->oauth_calls, &x->link);
    api->inflight++; /* shutdown waits for it like for any answer in flight */
    int rc =
        api->reconciler != NULL ? qbc_reconciler_oauth(api->reconciler, req, on_oauth_answer, x, &x->id) : QBC_EINVAL;
    if (rc != 0)
        call_free(x);
    return rc;
}

/* the code exchange answered: keep the tokens, or say why not */
static void exchange_done(oauth_call_t *x)
{
    realm_op_t *op = x->op;
    if (x->res.ok) {
        *op->tokens = x->res.tokens;
        qbc_api__realm_op_submit(x->api, op);
        return;
    }
    qbc_log(QBC_LOG_WARN, "api", "connecting realm %s failed: %s", op->rj.realm, x->res.error);
    if (op->aj.guard != NULL)
        qbc_api__respond_error(op->aj.guard->req, 502, "Bad Gateway", "token_exchange_failed", x->res.error);
    qbc_api__job_free(&op->aj);
}

/* the revoke answered (or not): erase the tokens locally either way */
static void revoke_done(oauth_call_t *x)
{
    realm_op_t *op = x->op;
    op->revoked = x->res.ok;
    if (!op->revoked) {
        snprintf(op->revoke_error, sizeof(op->revoke_error), "%s", x->res.error);
        qbc_log(QBC_LOG_WARN, "api", "revoking realm %s at Intuit failed (%s); erasing its tokens here anyway",
                op->rj.realm, x->res.error);
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
    qbc_oauth_request_t rq = {.op = QBC_OAUTH_REVOKE, .token = t->refresh_token};
    int call = rc == 0 ? oauth_call_start(api, op, &rq, revoke_done) : QBC_ENOTFOUND;
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
    if (call != 0) { /* nothing to revoke, or nowhere to: just erase */
        snprintf(op->revoke_error, sizeof(op->revoke_error), "%s",
                 call == QBC_ENOTFOUND ? "no tokens were held"
                 : call == QBC_ECLOSED ? "the service is stopping"
                                       : "no revoke endpoint or OAuth client configured");
        qbc_api__realm_op_submit(api, op);
    }
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
    if (api->reconciler == NULL || api->client_id == NULL || api->redirect_uri == NULL) {
        free(st);
        qbc_api__respond_error(req, 503, "Service Unavailable", "not_configured", "OAuth client is not configured");
        return 0;
    }

    realm_op_t *op = qbc_api__realm_op_new(api, req, realm);
    snprintf(op->state_hint, sizeof(op->state_hint), "%s", st->hint);
    free(st);
    op->tokens = qbc_calloc(1, sizeof(*op->tokens));
    qbc_api__realm_op_activate(api, op);

    qbc_oauth_request_t rq = {.op = QBC_OAUTH_EXCHANGE, .code = code, .redirect_uri = api->redirect_uri};
    int rc = oauth_call_start(api, op, &rq, exchange_done);
    OPENSSL_cleanse(code, sizeof(code));
    if (rc != 0) {
        qbc_api__job_free(&op->aj);
        qbc_api__respond_error(req, 503, "Service Unavailable", rc == QBC_ECLOSED ? "shutting_down" : "not_configured",
                               rc == QBC_ECLOSED ? "the service is stopping; retry later"
                                                 : "OAuth client is not configured");
    }
    return 0;
}

void qbc_api__connect_init(qbc_api_t *api)
{
    api->connect_states = qbc_calloc(1, sizeof(*api->connect_states));
    h2o_linklist_init_anchor(&api->oauth_calls);
    h2o_multithread_register_receiver(api->ctx.queue, &api->exchanges, on_exchanges);
}

void qbc_api__connect_shutdown(qbc_api_t *api)
{
    for (h2o_linklist_t *l = api->oauth_calls.next, *next; l != &api->oauth_calls; l = next) {
        next = l->next;
        oauth_call_t *x = H2O_STRUCT_FROM_MEMBER(oauth_call_t, link, l);
        qbc_reconciler_oauth_cancel(api->reconciler, x->id); /* its callback never runs after this */
        if (x->answered)
            continue; /* its answer is in the queue: on_exchanges finishes it */
        if (x->op->aj.guard != NULL)
            qbc_api__respond_error(x->op->aj.guard->req, 503, "Service Unavailable", "shutting_down",
                                   "the service is stopping; retry later");
        qbc_api__job_free(&x->op->aj);
        call_free(x);
    }
}

void qbc_api__connect_dispose(qbc_api_t *api)
{
    prune(api->connect_states, INT64_MAX);
    free(api->connect_states);
    h2o_multithread_unregister_receiver(api->ctx.queue, &api->exchanges);
}
