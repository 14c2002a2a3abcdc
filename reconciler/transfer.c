/*
 * transfer.c — the reconciler's HTTP transfers: one curl easy handle each, added to the
 * loop's multi handle (connections stay in its cache, so keep-alive holds); starting a
 * query, batch, single read, token refresh or generic API call; collecting finished
 * transfers (qbc_rec__drain_curl) and aborting them at shutdown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "rec_internal.h"

/* ---------------------------------------------------------------- transfers */

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    rec_xfer_t *x = ud;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0)
        x->retry_after_ms = qbc_parse_retry_after(p + sizeof(name) - 1, n - (sizeof(name) - 1));
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) { /* a new response (after 100 Continue): reset */
        x->retry_after_ms = 0;
    }
    return n;
}

static rec_xfer_t *xfer_new(qbc_reconciler_t *r, rec_realm_t *realm, int kind, const char *url)
{
    rec_xfer_t *x = qbc_calloc(1, sizeof(*x));
    x->r = r;
    x->realm = realm;
    x->kind = kind;
    x->body.max = REC_MAX_BODY;
    if ((x->easy = curl_easy_init()) == NULL)
        qbc_fatal("curl_easy_init failed");
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, qbc_buf_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &x->body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->cfg.request_timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(r->cfg.request_timeout_ms < 10000 ? r->cfg.request_timeout_ms : 10000));
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    return x;
}

static void add_bearer(rec_xfer_t *x)
{
    rec_realm_t *realm = x->realm;
    size_t n = strlen(realm->access_token) + 32;
    char *h = qbc_alloc(n);
    snprintf(h, n, "Authorization: Bearer %s", realm->access_token);
    x->hdrs = curl_slist_append(x->hdrs, h);
    OPENSSL_cleanse(h, n);
    free(h);
    x->token_gen = realm->token_gen;
}

/* the OAuth client's credentials (the token and revoke endpoints) */
static void add_basic(qbc_reconciler_t *r, rec_xfer_t *x)
{
    char *basic = qbc_oauth_basic_header(r->client_id, r->client_secret);
    x->hdrs = curl_slist_append(x->hdrs, basic);
    OPENSSL_cleanse(basic, strlen(basic));
    free(basic);
}

/* asks for JSON back; with a body (copied), POSTs it as content_type (else GET) */
static void set_request(rec_xfer_t *x, const char *content_type, const char *body)
{
    x->hdrs = curl_slist_append(x->hdrs, "Accept: application/json");
    if (body == NULL)
        return;
    char ct[80];
    snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
    x->hdrs = curl_slist_append(x->hdrs, ct);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(x->easy, CURLOPT_COPYPOSTFIELDS, body);
}

static int xfer_go(qbc_reconciler_t *r, rec_xfer_t *x, unsigned units)
{
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
    CURLMcode mc = curl_multi_add_handle(r->multi, x->easy);
    if (mc != CURLM_OK) {
        qbc_log(QBC_LOG_ERROR, REC_MOD, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        return -1;
    }
    x->next = r->xfers;
    if (r->xfers)
        r->xfers->prev = x;
    r->xfers = x;
    r->n_xfers++;
    if (x->realm != NULL) /* X_OAUTH calls have none: not the API's budget */
        qbc_budget_take_n(&x->realm->budget, qbc_mono_ns(), units);
    /* Intuit meters reads of the accounting API (a batch: each item); tokens are not metered */
    if (x->kind == X_QUERY || x->kind == X_READ || x->kind == X_BATCH || x->kind == X_API || x->kind == X_CDC) {
        x->units = units;
        if (x->kind != X_API)
            x->usage_purpose = QBC_USAGE_LIVE;
        qbc_rec__allowance_started(r, units);
    }
    REC_STAT(r, requests, 1);
    return 0;
}

static void xfer_free(qbc_reconciler_t *r, rec_xfer_t *x)
{
    curl_multi_remove_handle(r->multi, x->easy);
    curl_easy_cleanup(x->easy);
    for (struct curl_slist *h = x->hdrs; h; h = h->next) /* the Authorization line holds a token */
        OPENSSL_cleanse(h->data, strlen(h->data));
    curl_slist_free_all(x->hdrs);
    qbc_buf_free(&x->body, 1); /* token answers */
    free(x->ns);
    free(x->parts);
    free(x);
}

static void xfer_unlink(qbc_reconciler_t *r, rec_xfer_t *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        r->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    r->n_xfers--;
}

static void take_one(rec_notice_t *t)
{
    t->inflight = 1;
    t->fetch_seq = t->last_seq;
    t->fetch_op = t->last_op;
    t->fetch_updated_ns = t->updated_ns;
    t->bump_seen_ns = 0;
}

static void take_notices(rec_xfer_t *x, rec_notice_t **ns, size_t n)
{
    x->ns = qbc_alloc(n * sizeof(*x->ns));
    x->n = n;
    x->parts = qbc_calloc(1, sizeof(*x->parts));
    x->n_parts = 1;
    snprintf(x->parts[0].entity, sizeof(x->parts[0].entity), "%s", x->entity);
    x->parts[0].n = n;
    for (size_t i = 0; i < n; i++) {
        rec_notice_t *t = ns[i];
        x->ns[i] = t;
        t->inflight = 1;
        t->fetch_seq = t->last_seq;
        t->fetch_op = t->last_op;
        t->fetch_updated_ns = t->updated_ns;
        t->bump_seen_ns = 0;
    }
}

int qbc_rec__start_query(qbc_reconciler_t *r, rec_realm_t *realm, const char *entity, rec_notice_t **ns, size_t n)
{
    const char **ids = qbc_alloc(n * sizeof(*ids));
    for (size_t i = 0; i < n; i++)
        ids[i] = ns[i]->id;
    char *q = qbc_rec_build_query(entity, ids, n);
    free(ids);
    char *url = qbc_rec_query_url(r->api_base, realm->name, r->cfg.minorversion);
    rec_xfer_t *x = xfer_new(r, realm, X_QUERY, url);
    free(url);
    snprintf(x->entity, sizeof(x->entity), "%s", entity);
    add_bearer(x);
    set_request(x, "application/text", q);
    free(q);
    if (xfer_go(r, x, 1) != 0) {
        xfer_free(r, x);
        return -1;
    }
    take_notices(x, ns, n);
    rec_group_t *g = qbc_rec__group_get(realm, entity);
    g->inflight++;
    g->last_query_ns = realm->last_fetch_ns = qbc_mono_ns();
    REC_STAT(r, queries, 1);
    return 0;
}

int qbc_rec__start_batch(qbc_reconciler_t *r, rec_realm_t *realm, const rec_chunk_t *chunks, size_t n)
{
    const char **queries = qbc_alloc(n * sizeof(*queries));
    size_t total = 0;
    for (size_t c = 0; c < n; c++) {
        const char **ids = qbc_alloc(chunks[c].n * sizeof(*ids));
        for (size_t i = 0; i < chunks[c].n; i++)
            ids[i] = chunks[c].ns[i]->id;
        queries[c] = qbc_rec_build_query(chunks[c].entity, ids, chunks[c].n);
        free(ids);
        total += chunks[c].n;
    }
    char *body = qbc_rec_build_batch(queries, n);
    for (size_t c = 0; c < n; c++)
        free((char *)queries[c]);
    free(queries);
    char *url = qbc_rec_batch_url(r->api_base, realm->name, r->cfg.minorversion);
    rec_xfer_t *x = xfer_new(r, realm, X_BATCH, url);
    free(url);
    snprintf(x->entity, sizeof(x->entity), "batch");
    add_bearer(x);
    set_request(x, "application/json", body);
    free(body);
    if (xfer_go(r, x, (unsigned)n) != 0) { /* each item is metered like a call (qbo-facts §4) */
        xfer_free(r, x);
        return -1;
    }
    int64_t now = qbc_mono_ns();
    qbc_budget_take(&realm->batch_budget, now);
    qbc_budget_done(&realm->batch_budget);
    x->ns = qbc_alloc(total * sizeof(*x->ns));
    x->parts = qbc_calloc(n, sizeof(*x->parts));
    x->n_parts = n;
    for (size_t c = 0; c < n; c++) {
        rec_part_t *p = &x->parts[c];
        snprintf(p->entity, sizeof(p->entity), "%s", chunks[c].entity);
        p->off = x->n;
        p->n = chunks[c].n;
        for (size_t i = 0; i < chunks[c].n; i++) {
            take_one(chunks[c].ns[i]);
            x->ns[x->n++] = chunks[c].ns[i];
        }
        rec_group_t *g = qbc_rec__group_get(realm, chunks[c].entity);
        g->inflight++;
        g->last_query_ns = now;
    }
    realm->last_fetch_ns = now;
    REC_STAT(r, queries, n);
    REC_STAT(r, batches, 1);
    return 0;
}

int qbc_rec__start_read(qbc_reconciler_t *r, rec_realm_t *realm, rec_notice_t *n)
{
    char *url = qbc_rec_read_url(r->api_base, realm->name, n->entity, n->id, r->cfg.minorversion);
    rec_xfer_t *x = xfer_new(r, realm, X_READ, url);
    free(url);
    snprintf(x->entity, sizeof(x->entity), "%s", n->entity);
    add_bearer(x);
    set_request(x, NULL, NULL);
    if (xfer_go(r, x, 1) != 0) {
        xfer_free(r, x);
        return -1;
    }
    take_notices(x, &n, 1);
    REC_STAT(r, reads, 1);
    return 0;
}

int qbc_rec__start_live_cdc(qbc_reconciler_t *r, rec_realm_t *realm, rec_notice_t **ns, size_t n, const char *entities,
                            int64_t since_ns)
{
    char *url = qbc_rec_cdc_url(r->api_base, realm->name, entities, since_ns, r->cfg.minorversion);
    rec_xfer_t *x = xfer_new(r, realm, X_CDC, url);
    free(url);
    snprintf(x->entity, sizeof(x->entity), "cdc");
    add_bearer(x);
    set_request(x, NULL, NULL);
    if (xfer_go(r, x, 1) != 0) {
        xfer_free(r, x);
        return -1;
    }
    /* one part per entity, over the notices in entity order */
    x->ns = qbc_alloc(n * sizeof(*x->ns));
    x->parts = qbc_calloc(n, sizeof(*x->parts));
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(ns[i]->entity, ns[i - 1]->entity) != 0) {
            rec_part_t *p = &x->parts[x->n_parts++];
            snprintf(p->entity, sizeof(p->entity), "%s", ns[i]->entity);
            p->off = i;
        }
        x->parts[x->n_parts - 1].n++;
        take_one(ns[i]);
        ns[i]->cdc_tried = 1;
        x->ns[x->n++] = ns[i];
    }
    realm->last_fetch_ns = qbc_mono_ns();
    pthread_mutex_lock(&r->stats_mu);
    r->stats.live_cdc_calls++;
    r->stats.live_cdc_notices += n;
    pthread_mutex_unlock(&r->stats_mu);
    return 0;
}

int qbc_rec__start_token(qbc_reconciler_t *r, rec_realm_t *realm, const char *refresh_token)
{
    rec_xfer_t *x = xfer_new(r, realm, X_TOKEN, r->token_url);
    add_basic(r, x);
    char *body = qbc_oauth_refresh_body(refresh_token);
    set_request(x, "application/x-www-form-urlencoded", body);
    OPENSSL_cleanse(body, strlen(body));
    free(body);
    if (xfer_go(r, x, 1) != 0) {
        xfer_free(r, x);
        return -1;
    }
    return 0;
}

int qbc_rec__start_oauth(qbc_reconciler_t *r, const char *url, const char *content_type, const char *body,
                         uint64_t call_id)
{
    rec_xfer_t *x = xfer_new(r, NULL, X_OAUTH, url);
    snprintf(x->entity, sizeof(x->entity), "oauth");
    x->oauth_id = call_id;
    add_basic(r, x);
    set_request(x, content_type, body);
    if (xfer_go(r, x, 0) != 0) {
        xfer_free(r, x);
        return -1;
    }
    return 0;
}

qbc_rec_class_t qbc_rec__answer_class(const rec_api_answer_t *a, qbc_fault_t *fault)
{
    if (a->curl_ok)
        qbc_rec_parse_fault(a->body, a->len, fault);
    else
        memset(fault, 0, sizeof(*fault));
    return qbc_rec_classify(a->curl_ok, a->status, fault);
}

int qbc_rec__start_api(qbc_reconciler_t *r, rec_realm_t *realm, const char *url, const char *post_body,
                       int usage_purpose, rec_api_cb cb, void *ctx)
{
    rec_xfer_t *x = xfer_new(r, realm, X_API, url);
    snprintf(x->entity, sizeof(x->entity), "api");
    x->usage_purpose = usage_purpose;
    add_bearer(x);
    set_request(x, "application/text", post_body);
    x->api_cb = cb;
    x->api_ctx = ctx;
    if (xfer_go(r, x, 1) != 0) {
        xfer_free(r, x);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- calls by endpoint and status */

const char *const qbc_reconciler_call_endpoints[QBC_REC_CALL_ENDPOINTS] = {"query", "read",  "batch",
                                                                           "cdc",   "token", "revoke"};
const char *const qbc_reconciler_call_statuses[QBC_REC_CALL_STATUSES] = {"error", "200", "400", "401", "403", "404",
                                                                         "429",   "500", "502", "503", "504", "other"};

/* index into qbc_reconciler_call_endpoints: by kind, and for X_API and X_OAUTH by the URL's path */
static int call_endpoint(const rec_xfer_t *x)
{
    const char *url = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
    switch (x->kind) {
    case X_QUERY:
        return 0;
    case X_READ:
        return 1;
    case X_BATCH:
        return 2;
    case X_CDC:
        return 3;
    case X_TOKEN:
        return 4;
    case X_OAUTH:
        return url != NULL && strstr(url, "revoke") != NULL ? 5 : 4;
    default: /* X_API: CDC sweeps, backfill pages, ... /v3/company/{realm}/<what>?... */
        if (url != NULL && strstr(url, "/cdc?") != NULL)
            return 3;
        if (url != NULL && strstr(url, "/query?") != NULL)
            return 0;
        if (url != NULL && strstr(url, "/batch") != NULL)
            return 2;
        return 1;
    }
}

static void count_call(qbc_reconciler_t *r, const rec_xfer_t *x, CURLcode res)
{
    static const long codes[] = {200, 400, 401, 403, 404, 429, 500, 502, 503, 504};
    long status = 0;
    int s = QBC_REC_CALL_STATUSES - 1;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (res != CURLE_OK || status == 0) {
        s = 0;
    } else {
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
            if (codes[i] == status)
                s = (int)i + 1;
    }
    REC_STAT(r, calls[call_endpoint(x)][s], 1);
}

/*
 * whether Intuit may have metered x (qbo-facts 5.1: a 2xx answer is). A 2xx status counts even
 * if the body then failed; a call sent but never answered (a timeout, a reset, our own abort)
 * may have been served and metered all the same, and the allowance must not be overspent on
 * a guess, so it counts too. Only a call that never left (no connection, nothing sent) or
 * that Intuit answered otherwise is free.
 */
static int maybe_metered(const rec_xfer_t *x, CURLcode res)
{
    long status = 0, sent = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300)
        return 1;
    if (status != 0 || res == CURLE_OK)
        return 0;
    curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &sent);
    return sent > 0;
}

/* ---------------------------------------------------------------- the thread */

int qbc_rec__drain_curl(qbc_reconciler_t *r)
{
    int running = 0, done = 0;
    curl_multi_perform(r->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(r->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        rec_xfer_t *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode res = m->data.result;
        xfer_unlink(r, x);
        count_call(r, x, res);
        if (x->units > 0)
            qbc_rec__allowance_ended(r, x->realm, x->usage_purpose, x->units, maybe_metered(x, res));
        qbc_rec__xfer_done(r, x, res);
        xfer_free(r, x);
        done++;
    }
    return done;
}

/* ends x without an answer: its notices stay pending, its caller hears why */
static void abort_one(qbc_reconciler_t *r, rec_xfer_t *x, const char *why)
{
    xfer_unlink(r, x);
    if (x->units > 0)
        qbc_rec__allowance_ended(r, x->realm, x->usage_purpose, x->units, maybe_metered(x, CURLE_ABORTED_BY_CALLBACK));
    if (x->realm != NULL)
        qbc_budget_done(&x->realm->budget);
    for (size_t i = 0; i < x->n; i++)
        x->ns[i]->inflight = 0; /* still pending in the store: nothing lost */
    if (x->kind == X_TOKEN && x->realm->auth == REC_AUTH_REFRESHING)
        x->realm->auth = REC_AUTH_NONE;
    if (x->kind == X_API) {
        rec_api_answer_t a = {0, 0, NULL, 0, 0, why, x->token_gen};
        x->api_cb(r, x->realm, x->api_ctx, &a);
    }
    if (x->kind == X_OAUTH)
        qbc_rec__oauth_call_done(r, x->oauth_id, 0, 0, NULL, 0, why);
    xfer_free(r, x);
}

void qbc_rec__abort_all(qbc_reconciler_t *r)
{
    while (r->xfers)
        abort_one(r, r->xfers, "aborted: the reconciler is stopping");
}

unsigned qbc_rec__abort_realm(qbc_reconciler_t *r, rec_realm_t *realm, const char *why)
{
    unsigned n = 0;
    for (rec_xfer_t *x = r->xfers, *next; x != NULL; x = next) {
        next = x->next;
        if (x->realm != realm || x->kind == X_TOKEN || x->kind == X_OAUTH)
            continue;
        abort_one(r, x, why);
        n++;
    }
    return n;
}
