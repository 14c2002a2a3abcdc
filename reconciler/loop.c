/*
 * loop.c — the reconciler thread (STYLE.md 3.2, option A): one curl multi handle driven by
 * curl_multi_perform + curl_multi_poll; other threads (the store's writer via its
 * listener and job callbacks, qbc_reconciler_wake) interrupt the poll with
 * curl_multi_wakeup. Also: transfers (one easy handle each; connections stay in the
 * multi handle's cache, so keep-alive holds), what their answers become (store jobs),
 * start/stop and the statistics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "rec_internal.h"

const unsigned qbc_reconciler_latency_bounds_ms[11] = {10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000};

enum { X_QUERY = 1, X_READ = 2, X_TOKEN = 3, X_BATCH = 4, X_API = 5 };

typedef struct st_rec_part_t {
    char entity[QBC_ENTITY_MAX];
    size_t off, n; /* its notices: x->ns[off .. off + n) */
} rec_part_t;
enum { J_RECONCILE = 1, J_DEAD = 2, J_TOKENS = 3, J_STATE = 4, J_GENERIC = 5 };

struct st_rec_xfer_t {
    rec_xfer_t *next, *prev;
    int kind;
    qbc_reconciler_t *r;
    rec_realm_t *realm;
    char entity[QBC_ENTITY_MAX];
    rec_notice_t **ns;
    size_t n;
    rec_part_t *parts; /* one per query (X_QUERY, X_READ: one) */
    size_t n_parts;
    uint32_t token_gen;
    CURL *easy;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    qbc_buf_t body; /* the answer, up to REC_MAX_BODY */
    uint64_t retry_after_ms;
    rec_api_cb api_cb; /* X_API: who gets the answer */
    void *api_ctx;
};

struct st_rec_job_t {
    union { /* first: the store hands back &sj.job */
        qbc_store_job_t job;
        qbc_reconcile_job_t reconcile; /* J_RECONCILE, J_GENERIC with versions */
        qbc_dead_letter_job_t dead;    /* J_DEAD */
        qbc_realm_job_t realm;         /* J_TOKENS, J_STATE */
        qbc_backfill_job_t backfill;   /* J_GENERIC creating a backfill job */
    } sj;
    rec_job_t *next;
    qbc_reconciler_t *r;
    int kind;
    rec_realm_t *realm;
    qbc_version_t *versions;
    size_t nv;
    qbc_rec_item_t *items; /* own the versions' data */
    size_t n_items;
    qbc_notice_ref_t *refs;
    rec_notice_t **ns;
    size_t nr;
    qbc_tokens_t *tokens;
    qbc_realm_t state;
    char error[256];
    /* J_GENERIC (CDC, backfill) */
    char **owned; /* entity JSON texts the versions point into */
    size_t n_owned;
    char *audit;                               /* the job's audit_entities (owned) */
    char *realm_error;                         /* the job's realm_error (owned) */
    qbc_backfill_t checkpoint;                 /* or the backfill job to create */
    int (*submit)(qbc_store_t *, rec_job_t *); /* the store's call for this job's kind */
    rec_commit_cb done;
    void *done_ctx;
};

void rec_stat_add(qbc_reconciler_t *r, size_t offset, uint64_t v)
{
    pthread_mutex_lock(&r->stats_mu);
    *(uint64_t *)((char *)&r->stats + offset) += v;
    pthread_mutex_unlock(&r->stats_mu);
}

/* ---------------------------------------------------------------- the store listener */

/* the store's writer thread, after a commit: mark what changed and wake the loop */
static void on_store_commit(void *ctx, const qbc_commit_note_t *note)
{
    qbc_reconciler_t *r = ctx;
    if (note->new_pending == 0 && note->realms_changed == 0 && note->jobs_changed == 0)
        return;
    if (note->new_pending)
        atomic_store(&r->dirty_pending, 1);
    if (note->realms_changed)
        atomic_store(&r->dirty_realms, 1);
    if (note->jobs_changed)
        atomic_store(&r->dirty_jobs, 1);
    curl_multi_wakeup(r->multi);
}

/* ---------------------------------------------------------------- store jobs */

static void on_job_commit(qbc_store_job_t *job)
{
    rec_job_t *j = (rec_job_t *)job;
    qbc_reconciler_t *r = j->r;
    /* wake inside the lock: once the thread has taken the job, we no longer touch r */
    pthread_mutex_lock(&r->mu);
    j->next = r->done_jobs;
    r->done_jobs = j;
    curl_multi_wakeup(r->multi);
    pthread_mutex_unlock(&r->mu);
}

static int submit_reconcile(qbc_store_t *s, rec_job_t *j)
{
    return qbc_store_reconcile(s, &j->sj.reconcile);
}

static int submit_dead_letter(qbc_store_t *s, rec_job_t *j)
{
    return qbc_store_dead_letter(s, &j->sj.dead);
}

static int submit_realm(qbc_store_t *s, rec_job_t *j)
{
    return qbc_store_put_realm(s, &j->sj.realm);
}

static int submit_backfill(qbc_store_t *s, rec_job_t *j)
{
    return qbc_store_backfill(s, &j->sj.backfill);
}

static rec_job_t *job_new(qbc_reconciler_t *r, int kind, rec_realm_t *realm, int (*submit)(qbc_store_t *, rec_job_t *))
{
    rec_job_t *j = qbc_calloc(1, sizeof(*j));
    j->r = r;
    j->kind = kind;
    j->realm = realm;
    j->submit = submit;
    j->sj.job.on_commit = on_job_commit;
    j->sj.job.data = j;
    return j;
}

static void job_free(rec_job_t *j)
{
    qbc_rec_items_free(j->items, j->n_items);
    free(j->versions);
    free(j->refs);
    free(j->ns);
    for (size_t i = 0; i < j->n_owned; i++)
        free(j->owned[i]);
    free(j->owned);
    free(j->audit);
    free(j->realm_error);
    if (j->tokens != NULL) {
        OPENSSL_cleanse(j->tokens, sizeof(*j->tokens));
        free(j->tokens);
    }
    free(j);
}

static int job_submit(qbc_reconciler_t *r, rec_job_t *j)
{
    int rc = j->submit(r->store, j);
    if (rc == 0)
        r->outstanding_jobs++;
    return rc;
}

static void ref_of(const rec_notice_t *n, qbc_notice_ref_t *ref)
{
    snprintf(ref->realm, sizeof(ref->realm), "%s", n->realm->name);
    snprintf(ref->entity, sizeof(ref->entity), "%s", n->entity);
    snprintf(ref->id, sizeof(ref->id), "%s", n->id);
    ref->last_seq = n->fetch_seq;
}

void rec_dead_letter(qbc_reconciler_t *r, rec_notice_t *n, const char *error)
{
    if (!n->inflight) { /* reached from planning: the notice was not fetched */
        n->fetch_seq = n->last_seq;
        n->fetch_op = n->last_op;
        n->fetch_updated_ns = n->updated_ns;
    }
    rec_job_t *j = job_new(r, J_DEAD, n->realm, submit_dead_letter);
    j->ns = qbc_calloc(1, sizeof(*j->ns));
    ref_of(n, &j->sj.dead.notice);
    j->ns[0] = n;
    j->nr = 1;
    snprintf(j->error, sizeof(j->error), "%s", error);
    j->sj.dead.error = j->error;
    j->sj.dead.attempts = n->attempts;
    n->inflight = 1;
    qbc_log(QBC_LOG_WARN, REC_MOD, "realm %s %s %s: giving up after %u attempts: %s", n->realm->name, n->entity, n->id,
            n->attempts, j->error);
    if (job_submit(r, j) != 0) {
        n->inflight = 0;
        n->next_try_ns = qbc_mono_ns() + 1000000000LL;
        job_free(j);
    }
}

int rec_submit_realm(qbc_reconciler_t *r, rec_realm_t *realm, const qbc_realm_t *state, const qbc_tokens_t *tokens)
{
    rec_job_t *j = job_new(r, tokens ? J_TOKENS : J_STATE, realm, submit_realm);
    snprintf(j->sj.realm.realm, sizeof(j->sj.realm.realm), "%s", realm->name);
    if (state != NULL) {
        j->state = *state;
        j->sj.realm.state = &j->state;
    }
    if (tokens != NULL) {
        j->tokens = qbc_alloc(sizeof(*j->tokens));
        memcpy(j->tokens, tokens, sizeof(*tokens));
        j->sj.realm.tokens = j->tokens;
    }
    int rc = job_submit(r, j);
    if (rc != 0)
        job_free(j);
    return rc;
}

void rec_realm_throttled(qbc_reconciler_t *r, rec_realm_t *realm, int64_t now, uint64_t retry_after_ms, const char *why)
{
    uint64_t ms = retry_after_ms ? retry_after_ms : r->cfg.throttle_pause_ms;
    if (realm->budget.paused_until_ns <= now)
        qbc_log(QBC_LOG_WARN, REC_MOD, "realm %s throttled (%s); pausing it for %llu ms", realm->name, why,
                (unsigned long long)ms);
    qbc_budget_throttle(&realm->budget, now, (int64_t)ms * 1000000);
}

int rec_submit_versions(qbc_reconciler_t *r, rec_realm_t *realm, const qbc_reconcile_job_t *tmpl,
                        qbc_version_t *versions, size_t nv, char **owned, size_t n_owned, rec_commit_cb done, void *ctx)
{
    rec_job_t *j = job_new(r, J_GENERIC, realm, submit_reconcile);
    qbc_reconcile_job_t *rj = &j->sj.reconcile;
    j->versions = versions;
    j->nv = nv;
    j->owned = owned;
    j->n_owned = n_owned;
    j->done = done;
    j->done_ctx = ctx;
    rj->versions = versions;
    rj->n_versions = nv;
    rj->realm = realm->name;
    rj->set_cdc = tmpl->set_cdc;
    rj->cdc_watermark_ns = tmpl->cdc_watermark_ns;
    rj->last_cdc_ns = tmpl->last_cdc_ns;
    if (tmpl->audit_entities != NULL)
        rj->audit_entities = j->audit = qbc_strdup(tmpl->audit_entities);
    if (tmpl->realm_error != NULL)
        rj->realm_error = j->realm_error = qbc_strdup(tmpl->realm_error);
    if (tmpl->checkpoint != NULL) {
        j->checkpoint = *tmpl->checkpoint;
        rj->checkpoint = &j->checkpoint;
    }
    int rc = job_submit(r, j);
    if (rc != 0) {
        j->versions = NULL; /* the caller keeps what it passed */
        j->owned = NULL;
        j->n_owned = 0;
        job_free(j);
    }
    return rc;
}

int rec_submit_backfill(qbc_reconciler_t *r, rec_realm_t *realm, const qbc_backfill_t *create, int64_t cdc_watermark_ns,
                        rec_commit_cb done, void *ctx)
{
    rec_job_t *j = job_new(r, J_GENERIC, realm, submit_backfill);
    j->done = done;
    j->done_ctx = ctx;
    j->checkpoint = *create;
    j->sj.backfill.create = &j->checkpoint;
    if (cdc_watermark_ns > 0) {
        j->sj.backfill.set_cdc = 1;
        j->sj.backfill.cdc_watermark_ns = cdc_watermark_ns;
    }
    int rc = job_submit(r, j);
    if (rc != 0)
        job_free(j);
    return rc;
}

/* a version from a fetched item (or a delete when item is NULL) for notice n */
static void version_of(const rec_notice_t *n, const rec_realm_t *realm, const char *entity, qbc_rec_item_t *item,
                       qbc_version_t *v)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->realm, sizeof(v->realm), "%s", realm->name);
    snprintf(v->entity, sizeof(v->entity), "%s", entity);
    v->source = QBC_SOURCE_WEBHOOK;
    if (n != NULL) { /* a merge's two sides, as the webhook reported them */
        snprintf(v->merged_from, sizeof(v->merged_from), "%s", n->merged_from);
        snprintf(v->merged_into, sizeof(v->merged_into), "%s", n->merged_into);
    }
    if (item == NULL || item->deleted) {
        snprintf(v->id, sizeof(v->id), "%s", item ? item->id : n->id);
        v->op = QBC_OP_DELETE;
        v->updated_ns = item && item->updated_ns ? item->updated_ns : n ? n->fetch_updated_ns : 0;
        return;
    }
    snprintf(v->id, sizeof(v->id), "%s", item->id);
    snprintf(v->sync_token, sizeof(v->sync_token), "%s", item->sync_token);
    v->updated_ns = item->updated_ns;
    v->data = item->data;
    v->data_len = item->data_len;
    qbc_op_t op = n ? n->fetch_op : QBC_OP_UNKNOWN;
    if (op == QBC_OP_VOID)
        v->op = QBC_OP_VOID;
    else if (op == QBC_OP_MERGE)
        v->op = QBC_OP_MERGE;
    else if (strcmp(item->sync_token, "0") == 0)
        v->op = QBC_OP_CREATE;
    else
        v->op = QBC_OP_UPDATE;
}

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
    qbc_budget_take_n(&x->realm->budget, qbc_mono_ns(), units);
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

int rec_start_query(qbc_reconciler_t *r, rec_realm_t *realm, const char *entity, rec_notice_t **ns, size_t n)
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
    x->hdrs = curl_slist_append(x->hdrs, "Accept: application/json");
    x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/text");
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(q));
    curl_easy_setopt(x->easy, CURLOPT_COPYPOSTFIELDS, q);
    free(q);
    if (xfer_go(r, x, 1) != 0) {
        xfer_free(r, x);
        return -1;
    }
    take_notices(x, ns, n);
    rec_group_t *g = rec_group_get(realm, entity);
    g->inflight++;
    g->last_query_ns = realm->last_fetch_ns = qbc_mono_ns();
    REC_STAT(r, queries, 1);
    return 0;
}

int rec_start_batch(qbc_reconciler_t *r, rec_realm_t *realm, const rec_chunk_t *chunks, size_t n)
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
    x->hdrs = curl_slist_append(x->hdrs, "Accept: application/json");
    x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(x->easy, CURLOPT_COPYPOSTFIELDS, body);
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
        rec_group_t *g = rec_group_get(realm, chunks[c].entity);
        g->inflight++;
        g->last_query_ns = now;
    }
    realm->last_fetch_ns = now;
    REC_STAT(r, queries, n);
    REC_STAT(r, batches, 1);
    return 0;
}

int rec_start_read(qbc_reconciler_t *r, rec_realm_t *realm, rec_notice_t *n)
{
    char *url = qbc_rec_read_url(r->api_base, realm->name, n->entity, n->id, r->cfg.minorversion);
    rec_xfer_t *x = xfer_new(r, realm, X_READ, url);
    free(url);
    snprintf(x->entity, sizeof(x->entity), "%s", n->entity);
    add_bearer(x);
    x->hdrs = curl_slist_append(x->hdrs, "Accept: application/json");
    if (xfer_go(r, x, 1) != 0) {
        xfer_free(r, x);
        return -1;
    }
    take_notices(x, &n, 1);
    REC_STAT(r, reads, 1);
    return 0;
}

int rec_start_token(qbc_reconciler_t *r, rec_realm_t *realm, const char *refresh_token)
{
    rec_xfer_t *x = xfer_new(r, realm, X_TOKEN, r->token_url);
    char *basic = qbc_oauth_basic_header(r->client_id, r->client_secret);
    x->hdrs = curl_slist_append(x->hdrs, basic);
    OPENSSL_cleanse(basic, strlen(basic));
    free(basic);
    x->hdrs = curl_slist_append(x->hdrs, "Accept: application/json");
    x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/x-www-form-urlencoded");
    char *body = qbc_oauth_refresh_body(refresh_token);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(x->easy, CURLOPT_COPYPOSTFIELDS, body);
    OPENSSL_cleanse(body, strlen(body));
    free(body);
    if (xfer_go(r, x, 1) != 0) {
        xfer_free(r, x);
        return -1;
    }
    return 0;
}

qbc_rec_class_t rec_answer_class(const rec_api_answer_t *a, qbc_fault_t *fault)
{
    if (a->curl_ok)
        qbc_rec_parse_fault(a->body, a->len, fault);
    else
        memset(fault, 0, sizeof(*fault));
    return qbc_rec_classify(a->curl_ok, a->status, fault);
}

int rec_start_api(qbc_reconciler_t *r, rec_realm_t *realm, const char *url, const char *post_body, rec_api_cb cb,
                  void *ctx)
{
    rec_xfer_t *x = xfer_new(r, realm, X_API, url);
    snprintf(x->entity, sizeof(x->entity), "api");
    add_bearer(x);
    x->hdrs = curl_slist_append(x->hdrs, "Accept: application/json");
    if (post_body != NULL) {
        x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/text");
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(post_body));
        curl_easy_setopt(x->easy, CURLOPT_COPYPOSTFIELDS, post_body);
    }
    x->api_cb = cb;
    x->api_ctx = ctx;
    if (xfer_go(r, x, 1) != 0) {
        xfer_free(r, x);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- answers */

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const qbc_rec_item_t *)a)->id, ((const qbc_rec_item_t *)b)->id);
}

/* versions (and deletes) for notices ns[0..n) of one query answer; the missing go back for single reads */
static void offer(qbc_reconciler_t *r, rec_realm_t *realm, const char *entity, rec_notice_t **ns, size_t n,
                  qbc_rec_item_t *items, size_t n_items, int from_read)
{
    if (n_items > 1)
        qsort(items, n_items, sizeof(*items), cmp_item);
    rec_job_t *j = job_new(r, J_RECONCILE, realm, submit_reconcile);
    j->versions = qbc_calloc(n_items + n + 1, sizeof(*j->versions));
    j->refs = qbc_calloc(n + 1, sizeof(*j->refs));
    j->ns = qbc_calloc(n + 1, sizeof(*j->ns));
    char *matched = qbc_calloc(n_items + 1, 1);
    for (size_t i = 0; i < n; i++) {
        rec_notice_t *t = ns[i];
        qbc_rec_item_t key;
        snprintf(key.id, sizeof(key.id), "%s", t->id);
        qbc_rec_item_t *it = n_items ? bsearch(&key, items, n_items, sizeof(*items), cmp_item) : NULL;
        if (it == NULL && t->fetch_op != QBC_OP_DELETE) {
            t->need_read = 1; /* deleted meanwhile, or hidden from queries: read it alone */
            rec_notice_release(t);
            continue;
        }
        if (it != NULL && !it->deleted && t->fetch_op == QBC_OP_DELETE && it->updated_ns < t->fetch_updated_ns &&
            !from_read) {
            t->need_read = 1; /* a query still shows what was deleted later: ask the entity itself */
            rec_notice_release(t);
            continue;
        }
        if (it != NULL) {
            if (matched[it - items]) { /* the same id twice: offer it once, retire both */
                t->fetched_ns = it->deleted ? INT64_MAX : it->updated_ns;
                ref_of(t, &j->refs[j->nr]);
                j->ns[j->nr++] = t;
                continue;
            }
            matched[it - items] = 1;
        }
        version_of(t, realm, entity, it, &j->versions[j->nv++]);
        t->fetched_ns = it == NULL || it->deleted ? INT64_MAX : it->updated_ns;
        ref_of(t, &j->refs[j->nr]);
        j->ns[j->nr++] = t;
    }
    for (size_t k = 0; k < n_items; k++) /* answers nobody asked for: still versions */
        if (!matched[k] && qbc_rec_id_ok(items[k].id))
            version_of(NULL, realm, entity, &items[k], &j->versions[j->nv++]);
    free(matched);
    j->items = items;
    j->n_items = n_items;
    if (j->nv == 0 && j->nr == 0) {
        job_free(j);
        return;
    }
    j->sj.reconcile.versions = j->versions;
    j->sj.reconcile.n_versions = j->nv;
    j->sj.reconcile.retire = j->refs;
    j->sj.reconcile.n_retire = j->nr;
    if (job_submit(r, j) != 0) {
        for (size_t i = 0; i < j->nr; i++) {
            j->ns[i]->inflight = 0;
            j->ns[i]->next_try_ns = qbc_mono_ns() + 1000000000LL;
        }
        job_free(j);
    }
}

/* what one query (or read) of x became; items are taken over */
static void part_done(qbc_reconciler_t *r, rec_xfer_t *x, const rec_part_t *p, qbc_rec_class_t cls, const char *err,
                      qbc_rec_item_t *items, size_t n_items, int64_t now)
{
    rec_notice_t **ns = x->ns + p->off;
    size_t n = p->n;
    int read = x->kind == X_READ;
    switch (cls) {
    case REC_RES_OK:
        offer(r, x->realm, p->entity, ns, n, items, n_items, read);
        return;
    case REC_RES_GONE:
        if (read) {
            for (size_t i = 0; i < n; i++)
                ns[i]->fetch_op = QBC_OP_DELETE;
            offer(r, x->realm, p->entity, ns, n, NULL, 0, read);
        } else {
            for (size_t i = 0; i < n; i++) {
                ns[i]->need_read = 1;
                rec_notice_release(ns[i]);
            }
        }
        break;
    case REC_RES_THROTTLED: {
        rec_realm_throttled(r, x->realm, now, x->retry_after_ms, err);
        for (size_t i = 0; i < n; i++)
            rec_notice_release(ns[i]);
        break;
    }
    case REC_RES_AUTH:
        rec_auth_rejected(r, x->realm, x->token_gen);
        for (size_t i = 0; i < n; i++) {
            if (!ns[i]->auth_retried) {
                ns[i]->auth_retried = 1;
                rec_notice_release(ns[i]);
            } else {
                rec_notice_failed(r, ns[i], now, err);
            }
        }
        break;
    case REC_RES_RETRY:
        qbc_log(QBC_LOG_DEBUG, REC_MOD, "realm %s %s: %s; will retry", x->realm->name, p->entity, err);
        for (size_t i = 0; i < n; i++)
            rec_notice_failed(r, ns[i], now, err);
        break;
    case REC_RES_CLIENT:
        if (!read) {
            qbc_log(QBC_LOG_WARN, REC_MOD, "realm %s: query of %zu %s refused (%s); reading them one by one",
                    x->realm->name, n, p->entity, err);
            for (size_t i = 0; i < n; i++) {
                ns[i]->need_read = 1;
                snprintf(ns[i]->last_error, sizeof(ns[i]->last_error), "%s", err);
                rec_notice_release(ns[i]);
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                ns[i]->attempts++;
                rec_dead_letter(r, ns[i], err);
            }
        }
        break;
    }
    qbc_rec_items_free(items, n_items);
}

static void api_done(qbc_reconciler_t *r, rec_xfer_t *x, int curl_ok, long status)
{
    int64_t now = qbc_mono_ns();
    qbc_fault_t fault;
    qbc_rec_item_t *items = NULL, one;
    size_t n_items = 0;
    int prc = 0;
    qbc_rec_part_t *parts = NULL;
    if (curl_ok)
        qbc_rec_parse_fault(x->body.data, x->body.len, &fault);
    else
        memset(&fault, 0, sizeof(fault));
    qbc_rec_class_t cls = qbc_rec_classify(curl_ok, status, &fault);
    if (cls == REC_RES_OK) {
        if (x->kind == X_BATCH) {
            const char **ents = qbc_alloc(x->n_parts * sizeof(*ents));
            for (size_t i = 0; i < x->n_parts; i++)
                ents[i] = x->parts[i].entity;
            parts = qbc_calloc(x->n_parts, sizeof(*parts));
            prc = qbc_rec_parse_batch(x->body.data, x->body.len, ents, x->n_parts, parts, &fault);
            free(ents);
        } else if (x->kind == X_QUERY) {
            prc = qbc_rec_parse_query(x->body.data, x->body.len, x->parts[0].entity, &items, &n_items, &fault);
        } else if ((prc = qbc_rec_parse_read(x->body.data, x->body.len, x->parts[0].entity, &one, &fault)) == 0) {
            items = qbc_alloc(sizeof(*items));
            items[0] = one;
            n_items = 1;
        }
        if (prc != 0)
            cls = REC_RES_RETRY;
    }
    char err[256] = "";
    if (cls != REC_RES_OK && cls != REC_RES_GONE) {
        qbc_rec_describe(status, &fault, curl_ok ? NULL : x->errbuf[0] ? x->errbuf : "failed", err, sizeof(err));
        if (prc != 0)
            snprintf(err, sizeof(err), "HTTP %ld: answer did not parse", status);
    }
    int throttled = cls == REC_RES_THROTTLED, retried = cls == REC_RES_RETRY;
    if (parts != NULL && cls == REC_RES_OK) {
        for (size_t i = 0; i < x->n_parts; i++) {
            qbc_rec_part_t *p = &parts[i];
            qbc_rec_class_t pc = REC_RES_OK;
            char perr[256] = "";
            if (p->state == 1) {
                pc = qbc_rec_classify(1, 200, &p->fault);
                if (pc == REC_RES_OK)
                    pc = REC_RES_CLIENT;
                qbc_rec_describe(200, &p->fault, NULL, perr, sizeof(perr));
            } else if (p->state != 0) {
                pc = REC_RES_RETRY;
                snprintf(perr, sizeof(perr), "batch item %zu missing from the answer", i);
            }
            throttled |= pc == REC_RES_THROTTLED;
            retried |= pc == REC_RES_RETRY;
            part_done(r, x, &x->parts[i], pc, perr, p->items, p->n, now);
        }
    } else {
        if (parts != NULL)
            for (size_t i = 0; i < x->n_parts; i++)
                qbc_rec_items_free(parts[i].items, parts[i].n);
        for (size_t i = 0; i < x->n_parts; i++) /* a query or read has one part and gets the items */
            part_done(r, x, &x->parts[i], cls, err, i == 0 ? items : NULL, i == 0 ? n_items : 0, now);
    }
    free(parts);
    if (x->kind == X_BATCH) {
        /* each item is metered: a throttled batch was too big for what the realm has left */
        if (throttled)
            x->realm->batch_cap = x->n_parts / 2 > 1 ? (unsigned)(x->n_parts / 2) : 1;
        else if (cls == REC_RES_OK && x->realm->batch_cap < REC_BATCH_MAX_ITEMS)
            x->realm->batch_cap++;
    }
    if (throttled)
        REC_STAT(r, throttled, 1);
    if (retried)
        REC_STAT(r, server_errors, 1);
}

static void xfer_done(qbc_reconciler_t *r, rec_xfer_t *x, CURLcode res)
{
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    int curl_ok = res == CURLE_OK;
    if (!curl_ok && x->errbuf[0] == '\0')
        snprintf(x->errbuf, sizeof(x->errbuf), "%s", curl_easy_strerror(res));
    qbc_budget_done(&x->realm->budget);
    if (x->kind == X_QUERY || x->kind == X_BATCH)
        for (size_t i = 0; i < x->n_parts; i++) {
            rec_group_t *g = rec_group_get(x->realm, x->parts[i].entity);
            if (g->inflight > 0)
                g->inflight--;
        }
    if (x->kind == X_TOKEN) {
        rec_auth_token_done(r, x->realm, curl_ok, status, x->body.data, x->body.len, curl_ok ? NULL : x->errbuf);
    } else if (x->kind == X_API) {
        rec_api_answer_t a = {
            curl_ok, status, x->body.data, x->body.len, x->retry_after_ms, curl_ok ? NULL : x->errbuf, x->token_gen};
        x->api_cb(r, x->realm, x->api_ctx, &a);
    } else {
        api_done(r, x, curl_ok, status);
    }
}

/* ---------------------------------------------------------------- commits */

static void latency_add(qbc_reconciler_stats_t *s, int64_t ns)
{
    uint64_t ms = ns > 0 ? (uint64_t)ns / 1000000 : 0;
    size_t b = 0;
    while (b < 11 && ms > qbc_reconciler_latency_bounds_ms[b])
        b++;
    s->fetch_latency_hist[b]++;
}

/*
 * a notice folded in while we fetched (typically a duplicate webhook) that the version we
 * just stored already covers: retire it without fetching again
 */
static int retire_covered(qbc_reconciler_t *r, rec_notice_t *n)
{
    /*
     * Covered when the change it reports is not newer than the version stored. A time in
     * whole seconds may be truncated (classic webhooks: "14:42:19-0700"): the change may lie
     * anywhere in that second, and two changes in one second look alike, so it counts as
     * the end of that second. LastUpdatedTime may be truncated too, which only errs on the
     * side of fetching again.
     */
    int64_t t = n->updated_ns;
    if (t > 0 && t % 1000000000LL == 0)
        t += 1000000000LL;
    if (t <= 0 || n->fetched_ns == 0 || t > n->fetched_ns ||
        (n->last_op == QBC_OP_DELETE && n->fetched_ns != INT64_MAX))
        return 0;
    rec_job_t *j = job_new(r, J_RECONCILE, n->realm, submit_reconcile);
    j->refs = qbc_calloc(1, sizeof(*j->refs));
    j->ns = qbc_calloc(1, sizeof(*j->ns));
    n->fetch_seq = n->last_seq;
    n->fetch_op = n->last_op;
    n->fetch_updated_ns = n->updated_ns;
    n->bump_seen_ns = 0;
    ref_of(n, &j->refs[0]);
    j->ns[0] = n;
    j->nr = 1;
    j->sj.reconcile.retire = j->refs;
    j->sj.reconcile.n_retire = 1;
    n->inflight = 1;
    if (job_submit(r, j) != 0) {
        n->inflight = 0;
        job_free(j);
        return 0;
    }
    return 1;
}

static void notice_settled(qbc_reconciler_t *r, rec_notice_t *n, int64_t now)
{
    n->inflight = 0;
    if (n->last_seq != n->fetch_seq && retire_covered(r, n))
        return;
    n->fetched_ns = 0;
    if (n->last_seq != n->fetch_seq) { /* a newer change arrived meanwhile: the store kept it */
        n->attempts = 0;
        n->need_read = 0;
        n->auth_retried = 0;
        n->next_try_ns = 0;
        n->first_seen_ns = n->bump_seen_ns ? n->bump_seen_ns : now;
        n->bump_seen_ns = 0;
    } else {
        rec_notice_remove(r, n);
    }
}

static void jobs_done(qbc_reconciler_t *r)
{
    pthread_mutex_lock(&r->mu);
    rec_job_t *list = r->done_jobs, *rev = NULL;
    r->done_jobs = NULL;
    pthread_mutex_unlock(&r->mu);
    while (list) { /* back to submission order */
        rec_job_t *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    int64_t now = qbc_mono_ns();
    for (rec_job_t *j = rev, *next; j; j = next) {
        next = j->next;
        r->outstanding_jobs--;
        int res = j->sj.job.result;
        switch (j->kind) {
        case J_RECONCILE:
        case J_DEAD:
            if (res == 0) {
                pthread_mutex_lock(&r->stats_mu);
                if (j->kind == J_RECONCILE) {
                    r->stats.versions_offered += j->nv;
                    r->stats.feed_appended += j->sj.reconcile.n_feed;
                    for (size_t i = 0; i < j->nr; i++)
                        latency_add(&r->stats, now - j->ns[i]->first_seen_ns);
                } else {
                    r->stats.dead_letters++;
                }
                pthread_mutex_unlock(&r->stats_mu);
                for (size_t i = 0; i < j->nr; i++)
                    notice_settled(r, j->ns[i], now);
            } else {
                qbc_log(QBC_LOG_ERROR, REC_MOD, "store refused %s of %zu notices: %s",
                        j->kind == J_DEAD ? "a dead letter" : "the versions", j->nr, qbc_strerror(res));
                for (size_t i = 0; i < j->nr; i++) {
                    j->ns[i]->inflight = 0;
                    j->ns[i]->next_try_ns = now + 1000000000LL;
                }
            }
            atomic_store(&r->dirty_pending, 1);
            break;
        case J_TOKENS:
            rec_auth_committed(r, j->realm, res, j->tokens);
            break;
        case J_GENERIC:
            j->done(r, &j->sj.job, j->done_ctx);
            break;
        case J_STATE:
            if (res != 0)
                qbc_log(QBC_LOG_ERROR, REC_MOD, "realm %s: storing its state failed: %s", j->realm->name,
                        qbc_strerror(res));
            break;
        }
        job_free(j);
    }
}

/* ---------------------------------------------------------------- realms */

static int on_realm(const qbc_realm_t *st, int has_tokens, void *ctx)
{
    qbc_reconciler_t *r = ctx;
    rec_realm_t *realm = rec_realm_get(r, st->realm, 1);
    if (realm != NULL) {
        realm->in_store = 1;
        rec_auth_realm_seen(r, realm, st, has_tokens);
        rec_cdc_realm_seen(r, realm, st, qbc_mono_ns());
    }
    return 0;
}

static void scan_realms(qbc_reconciler_t *r)
{
    for (size_t i = 0; i < r->n_realms; i++)
        r->realms[i]->in_store = 0;
    int rc = qbc_store_realm_scan(r->store, on_realm, r);
    if (rc != 0) {
        qbc_log(QBC_LOG_ERROR, REC_MOD, "reading realms: %s", qbc_strerror(rc));
        return;
    }
    for (size_t i = 0; i < r->n_realms; i++)
        if (!r->realms[i]->in_store) /* no record (or removed): no tokens to use */
            r->realms[i]->has_tokens = 0;
}

static void publish_realm_stats(qbc_reconciler_t *r, int64_t now)
{
    int64_t wall = qbc_now_ns();
    pthread_mutex_lock(&r->stats_mu);
    size_t n = r->n_realms < 64 ? r->n_realms : 64;
    r->stats.n_realms = n;
    for (size_t i = 0; i < n; i++) {
        rec_realm_t *realm = r->realms[i];
        qbc_realm_stats_t *s = &r->stats.realms[i];
        snprintf(s->realm, sizeof(s->realm), "%s", realm->name);
        s->calls_last_minute = qbc_budget_used(&realm->budget, now);
        s->inflight = realm->budget.inflight;
        s->paused_until_ns = realm->budget.paused_until_ns > now ? wall + (realm->budget.paused_until_ns - now) : 0;
        s->pending = realm->pending;
    }
    pthread_mutex_unlock(&r->stats_mu);
}

/* ---------------------------------------------------------------- the thread */

static int drain_curl(qbc_reconciler_t *r)
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
        xfer_done(r, x, res);
        xfer_free(r, x);
        done++;
    }
    return done;
}

static void abort_all(qbc_reconciler_t *r)
{
    while (r->xfers) {
        rec_xfer_t *x = r->xfers;
        xfer_unlink(r, x);
        qbc_budget_done(&x->realm->budget);
        for (size_t i = 0; i < x->n; i++)
            x->ns[i]->inflight = 0; /* still pending in the store: nothing lost */
        if (x->kind == X_TOKEN && x->realm->auth == REC_AUTH_REFRESHING)
            x->realm->auth = REC_AUTH_NONE;
        if (x->kind == X_API) {
            rec_api_answer_t a = {0, 0, NULL, 0, 0, "aborted: the reconciler is stopping", x->token_gen};
            x->api_cb(r, x->realm, x->api_ctx, &a);
        }
        xfer_free(r, x);
    }
}

static void *thread_main(void *arg)
{
    qbc_reconciler_t *r = arg;
    int64_t drain_deadline = 0, last_scan = INT64_MIN / 2, last_stats = 0;
    for (;;) {
        int64_t now = qbc_mono_ns(), next = now + 1000000000LL;
        jobs_done(r);
        if (!atomic_load(&r->stopping)) {
            if (atomic_exchange(&r->dirty_realms, 0))
                scan_realms(r);
            if (now - last_scan >= 2000000 && (atomic_exchange(&r->dirty_pending, 0) || now >= r->next_scan_ns)) {
                rec_scan_pending(r, now);
                last_scan = now;
                r->next_scan_ns = now + 5000000000LL; /* a safety net; wake-ups do the real work */
            } else if (atomic_load(&r->dirty_pending)) {
                next = last_scan + 2000000;
            }
            if (atomic_exchange(&r->dirty_jobs, 0))
                rec_backfill_scan(r);
            int64_t t = rec_plan(r, now);
            if (t < next)
                next = t;
            /* lower priorities plan after the live path, from what its budget left */
            if ((t = rec_cdc_plan(r, now)) < next)
                next = t;
            if ((t = rec_backfill_plan(r, now)) < next)
                next = t;
        } else {
            if (drain_deadline == 0)
                drain_deadline = now + (int64_t)r->drain_ms * 1000000;
            if (r->n_xfers > 0 && now >= drain_deadline) {
                qbc_log(QBC_LOG_INFO, REC_MOD, "stop: aborting %zu requests; their notices stay pending", r->n_xfers);
                abort_all(r);
            }
            if (r->n_xfers == 0 && r->outstanding_jobs == 0)
                break;
            next = now + 20000000;
        }
        int done = drain_curl(r);
        if (now - last_stats >= 100000000) {
            publish_realm_stats(r, now);
            last_stats = now;
        }
        if (done > 0)
            continue; /* their answers may have made new work (single reads, commits) */
        now = qbc_mono_ns();
        int timeout = next <= now ? 0 : (next - now) / 1000000 > 1000 ? 1000 : (int)((next - now) / 1000000) + 1;
        if (next <= now)
            timeout = 0;
        curl_multi_poll(r->multi, NULL, 0, timeout, NULL);
    }
    publish_realm_stats(r, qbc_mono_ns());
    return NULL;
}

/* ---------------------------------------------------------------- public API */

/* frees what qbc_reconciler_start allocated and the realms found since; the thread is gone */
static void reconciler_free(qbc_reconciler_t *r)
{
    for (size_t i = 0; i < r->n_cdc_entities; i++)
        free(r->cdc_entities[i]);
    free(r->cdc_entities);
    for (size_t i = 0; i < r->n_realms; i++) {
        rec_realm_t *realm = r->realms[i];
        rec_cdc_free(&realm->cdc);
        OPENSSL_cleanse(realm->access_token, sizeof(realm->access_token));
        qbc_budget_dispose(&realm->budget);
        qbc_budget_dispose(&realm->batch_budget);
        free(realm->groups);
        free(realm);
    }
    free(r->realms);
    curl_multi_cleanup(r->multi);
    curl_global_cleanup();
    free(r->api_base);
    free(r->token_url);
    free(r->client_id);
    OPENSSL_cleanse(r->client_secret, strlen(r->client_secret));
    free(r->client_secret);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->stats_mu);
    free(r);
}

int qbc_reconciler_start(const qbc_reconciler_config_t *cfg, qbc_store_t *store, qbc_reconciler_t **out)
{
    *out = NULL;
    if (cfg == NULL || store == NULL || cfg->api_base == NULL || cfg->api_base[0] == '\0' || cfg->token_url == NULL ||
        cfg->token_url[0] == '\0' || cfg->client_id == NULL || cfg->client_secret == NULL)
        return QBC_EINVAL;
    qbc_reconciler_t *r = qbc_calloc(1, sizeof(*r));
    r->cfg = *cfg;
    qbc_reconciler_config_t *c = &r->cfg;
    if (c->minorversion <= 0)
        c->minorversion = 75;
    if (c->rate_per_min == 0)
        c->rate_per_min = 500;
    if (c->max_inflight == 0)
        c->max_inflight = 10;
    if (c->ids_per_query == 0)
        c->ids_per_query = 200;
    if (c->ids_per_query > 1000) /* MAXRESULTS 1000: one page always holds the answer */
        c->ids_per_query = 1000;
    if (c->max_attempts == 0)
        c->max_attempts = 8;
    if (c->request_timeout_ms == 0)
        c->request_timeout_ms = 30000;
    if (c->backoff_base_ms == 0)
        c->backoff_base_ms = 1000;
    if (c->backoff_max_ms == 0)
        c->backoff_max_ms = 60000;
    if (c->backoff_max_ms < c->backoff_base_ms)
        c->backoff_max_ms = c->backoff_base_ms;
    if (c->throttle_pause_ms == 0)
        c->throttle_pause_ms = 60000;
    if (c->coalesce_ms == 0)
        c->coalesce_ms = 500;
    if (c->cdc_interval_s == 0)
        c->cdc_interval_s = 300;
    if (c->cdc_lookback_s == 0)
        c->cdc_lookback_s = 30 * 86400;
    if (c->cdc_audit_gap_s < 0)
        c->cdc_audit_gap_s = 600;
    {
        const char *list = c->cdc_entities != NULL && c->cdc_entities[0] != '\0'
                               ? c->cdc_entities
                               : "Account,Bill,Customer,Invoice,Item,JournalEntry,Payment,Vendor";
        char *copy = qbc_strdup(list), *save = NULL;
        for (char *tok = strtok_r(copy, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
            if (!qbc_rec_entity_ok(tok)) {
                qbc_log(QBC_LOG_WARN, REC_MOD, "CDC entity '%.60s' is not a QBO entity name; skipped", tok);
                continue;
            }
            r->cdc_entities = qbc_realloc(r->cdc_entities, (r->n_cdc_entities + 1) * sizeof(char *));
            r->cdc_entities[r->n_cdc_entities++] = qbc_strdup(tok);
        }
        free(copy);
        c->cdc_entities = NULL; /* the split list is what counts */
    }
    r->coalesce_ns = (int64_t)c->coalesce_ms * 1000000;
    size_t bl = strlen(cfg->api_base);
    while (bl > 0 && cfg->api_base[bl - 1] == '/')
        bl--;
    r->api_base = qbc_strndup(cfg->api_base, bl);
    r->token_url = qbc_strdup(cfg->token_url);
    r->client_id = qbc_strdup(cfg->client_id);
    r->client_secret = qbc_strdup(cfg->client_secret);
    c->api_base = r->api_base;
    c->token_url = r->token_url;
    c->client_id = r->client_id;
    c->client_secret = r->client_secret;
    c->revoke_url = NULL; /* not used here (yet): DELETE /admin/realms revokes */
    r->store = store;
    r->rng = (uint64_t)qbc_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)r;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->stats_mu, NULL);
    atomic_init(&r->dirty_pending, 1);
    atomic_init(&r->dirty_realms, 1);
    atomic_init(&r->stopping, 0);
    atomic_init(&r->dirty_jobs, 1);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if ((r->multi = curl_multi_init()) == NULL)
        qbc_fatal("curl_multi_init failed");
    curl_multi_setopt(r->multi, CURLMOPT_MAXCONNECTS, 256L);

    int rc = 0;
    if ((r->listener = qbc_store_add_listener(store, on_store_commit, r)) < 0) {
        qbc_log(QBC_LOG_ERROR, REC_MOD, "the store has no room for another listener");
        rc = r->listener;
    } else if ((rc = pthread_create(&r->thread, NULL, thread_main, r)) != 0) {
        rc = -rc;
        qbc_store_remove_listener(store, r->listener);
    }
    if (rc != 0) {
        reconciler_free(r);
        return rc;
    }
    r->thread_started = 1;
    *out = r;
    return 0;
}

void qbc_reconciler_wake(qbc_reconciler_t *r)
{
    if (r == NULL)
        return;
    atomic_store(&r->dirty_pending, 1);
    atomic_store(&r->dirty_realms, 1);
    curl_multi_wakeup(r->multi);
}

void qbc_reconciler_stop(qbc_reconciler_t *r, int drain_ms)
{
    if (r == NULL)
        return;
    r->drain_ms = drain_ms < 0 ? 0 : drain_ms;
    atomic_store(&r->stopping, 1);
    curl_multi_wakeup(r->multi);
    if (r->thread_started)
        pthread_join(r->thread, NULL);                /* it waited for every store job it submitted */
    qbc_store_remove_listener(r->store, r->listener); /* the writer never wakes r again */
    abort_all(r);
    rec_notices_free(r);
    rec_backfill_free_all(r);
    reconciler_free(r);
}

void qbc_reconciler_snapshot(qbc_reconciler_t *r, qbc_reconciler_stats_t *out)
{
    pthread_mutex_lock(&r->stats_mu);
    *out = r->stats;
    pthread_mutex_unlock(&r->stats_mu);
}
