/*
 * connect.c — the OAuth 2.0 authorization-code flow that connects a company.
 *
 *   GET /connect?state_hint=H         302 to Intuit's consent screen with a fresh state
 *   GET /oauth/callback?code=&realmId=&state=
 *                                     checks the state (one use, 10 minutes), exchanges
 *                                     the code at the token endpoint, stores the tokens
 *                                     (encrypted) and answers once they are committed
 *
 * States are signed, not stored: the state is hex(expiry | nonce | state_hint | HMAC), the
 * HMAC keyed with a random key of this process, so starting a connect costs no memory and
 * unauthenticated traffic cannot fill a table that legitimate connects need. One use is
 * kept by remembering the MACs of states already taken (until they expire). A restart in
 * the middle of a consent only means the user clicks "connect" again. The code exchange (and a disconnect's revoke) is
 * made by the reconciler's thread, Intuit's one OAuth client (qbc_reconciler_oauth); its answer comes back to the loop
 * through h2o's queue, so the loop never waits on Intuit. Calls still out when the server stops are cancelled
 * (qbc_api__connect_shutdown): no answer can arrive after the server is gone.
 *
 *   DELETE /admin/realms/{realm}      (admin.c routes it here) revokes at Intuit the same
 *                                     way, then erases the tokens locally
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "api_internal.h"

#define STATE_TTL_NS (600 * (int64_t)1000000000)
#define MAX_STATES 4096

#define NONCE_LEN 12
#define MAC_LEN 16
#define HINT_MAX 127
#define STATE_BYTES_MAX (8 + NONCE_LEN + HINT_MAX + MAC_LEN)
#define STATE_HEX_MAX (2 * STATE_BYTES_MAX + 1)

/* the states already taken, until they expire (one use) */
typedef struct st_used_state_t {
    unsigned char mac[MAC_LEN];
    int64_t expires_ns;
} used_state_t;

struct st_connect_states_t {
    unsigned char key[32];
    used_state_t used[MAX_STATES];
    size_t n_used;
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

static void state_mac(const struct st_connect_states_t *cs, const unsigned char *msg, size_t len,
                      unsigned char out[MAC_LEN])
{
    unsigned char full[EVP_MAX_MD_SIZE];
    unsigned int fl = 0;
    if (HMAC(EVP_sha256(), cs->key, sizeof(cs->key), msg, len, full, &fl) == NULL || fl < MAC_LEN)
        qbc_fatal("HMAC-SHA256 failed");
    memcpy(out, full, MAC_LEN);
}

/* a fresh state carrying hint, as hex into out (STATE_HEX_MAX bytes) */
static void make_state(const struct st_connect_states_t *cs, const char *hint, char *out)
{
    unsigned char b[STATE_BYTES_MAX];
    size_t hl = strlen(hint) < HINT_MAX ? strlen(hint) : HINT_MAX, n = 8 + NONCE_LEN + hl;
    uint64_t exp = (uint64_t)(qbc_now_ns() + STATE_TTL_NS);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(exp >> (56 - 8 * i));
    if (RAND_bytes(b + 8, NONCE_LEN) != 1)
        qbc_fatal("RAND_bytes failed");
    memcpy(b + 8 + NONCE_LEN, hint, hl);
    state_mac(cs, b, n, b + n);
    for (size_t i = 0; i < n + MAC_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* checks a state (signed by us, not expired, not used) and takes it; its hint into hint (HINT_MAX + 1) */
static int take_state(struct st_connect_states_t *cs, const char *state, char *hint)
{
    unsigned char b[STATE_BYTES_MAX], mac[MAC_LEN];
    size_t hl = strlen(state), n = hl / 2;
    int64_t now = qbc_now_ns();
    if (hl % 2 != 0 || n < 8 + NONCE_LEN + MAC_LEN || n > STATE_BYTES_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int h = hexval(state[2 * i]), l = hexval(state[2 * i + 1]);
        if (h < 0 || l < 0)
            return -1;
        b[i] = (unsigned char)(h << 4 | l);
    }
    state_mac(cs, b, n - MAC_LEN, mac);
    if (CRYPTO_memcmp(mac, b + n - MAC_LEN, MAC_LEN) != 0)
        return -1;
    int64_t exp = 0;
    for (int i = 0; i < 8; i++)
        exp = (int64_t)((uint64_t)exp << 8 | b[i]);
    if (exp < now)
        return -1;
    size_t keep = 0, oldest = 0; /* forget what expired; the one taken is remembered until it does */
    for (size_t i = 0; i < cs->n_used; i++) {
        if (CRYPTO_memcmp(cs->used[i].mac, mac, MAC_LEN) == 0)
            return -1;
        if (cs->used[i].expires_ns >= now)
            cs->used[keep++] = cs->used[i];
    }
    cs->n_used = keep;
    if (cs->n_used == MAX_STATES) { /* full of live ones: the oldest goes (its code is one-use at Intuit anyway) */
        for (size_t i = 1; i < cs->n_used; i++)
            if (cs->used[i].expires_ns < cs->used[oldest].expires_ns)
                oldest = i;
        cs->used[oldest] = cs->used[--cs->n_used];
    }
    memcpy(cs->used[cs->n_used].mac, mac, MAC_LEN);
    cs->used[cs->n_used++].expires_ns = exp;
    memcpy(hint, b + 8 + NONCE_LEN, n - MAC_LEN - 8 - NONCE_LEN);
    hint[n - MAC_LEN - 8 - NONCE_LEN] = '\0';
    return 0;
}

int qbc_api__on_connect(h2o_handler_t *_self, h2o_req_t *req)
{
    qbc_api_t *api = ((api_handler_t *)_self)->api;
    char hint[HINT_MAX + 1] = "", enc_redirect[1024], enc_client[512], url[4096], state[STATE_HEX_MAX];

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
    make_state(api->connect_states, hint, state);

    qbc_url_encode(api->redirect_uri, enc_redirect, sizeof(enc_redirect));
    qbc_url_encode(api->client_id, enc_client, sizeof(enc_client));
    snprintf(url, sizeof(url),
             "%s%cclient_id=%s&response_type=code&scope=com.intuit.quickbooks.accounting"
             "&redirect_uri=%s&state=%s",
             api->authorize_url, strchr(api->authorize_url, '?') ? '&' : '?', enc_client, enc_redirect, state);
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
    op->state.last_error_ns = qbc_now_ns();
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
    char code[2048], realm[QBC_REALM_MAX], state[STATE_HEX_MAX], error[64], hint[HINT_MAX + 1];

    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/oauth/callback"))) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such endpoint");
        return 0;
    }
    if (qbc_api__query_param(req, "state", state, sizeof(state)) != 0) {
        qbc_api__respond_error(req, 400, "Bad Request", "bad_state", "state is missing");
        return 0;
    }
    if (take_state(api->connect_states, state, hint) != 0) {
        qbc_api__respond_error(req, 400, "Bad Request", "bad_state", "unknown, used or expired state; connect again");
        return 0;
    }
    if (qbc_api__query_param(req, "error", error, sizeof(error)) == 0) {
        qbc_api__respond_error(req, 400, "Bad Request", "consent_refused",
                               "the company was not connected (consent refused)");
        return 0;
    }
    if (qbc_api__query_param(req, "code", code, sizeof(code)) != 0 || code[0] == '\0' ||
        qbc_api__query_param(req, "realmId", realm, sizeof(realm)) != 0 ||
        !qbc_api__valid_realm(realm, strlen(realm))) {
        qbc_api__respond_error(req, 400, "Bad Request", "bad_callback", "code and realmId are required");
        return 0;
    }
    if (api->reconciler == NULL || api->client_id == NULL || api->redirect_uri == NULL) {
        qbc_api__respond_error(req, 503, "Service Unavailable", "not_configured", "OAuth client is not configured");
        return 0;
    }

    realm_op_t *op = qbc_api__realm_op_new(api, req, realm);
    snprintf(op->state_hint, sizeof(op->state_hint), "%s", hint);
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
    if (RAND_bytes(api->connect_states->key, sizeof(api->connect_states->key)) != 1)
        qbc_fatal("RAND_bytes failed");
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
    OPENSSL_cleanse(api->connect_states->key, sizeof(api->connect_states->key));
    free(api->connect_states);
    h2o_multithread_unregister_receiver(api->ctx.queue, &api->exchanges);
}
