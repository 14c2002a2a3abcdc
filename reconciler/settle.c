/*
 * settle.c — the reconciler's store jobs: versions offered with the notices they answer,
 * dead letters, realm state and tokens, CDC and backfill commits. Jobs come back on the
 * store's writer thread (on_job_commit), are queued for the loop, and settle there
 * (qbc_rec__jobs_done): notices are retired or retried, statistics counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "rec_internal.h"

enum { J_RECONCILE = 1, J_DEAD = 2, J_TOKENS = 3, J_STATE = 4, J_GENERIC = 5 };

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

void qbc_rec__dead_letter(qbc_reconciler_t *r, rec_notice_t *n, const char *error)
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

int qbc_rec__submit_realm(qbc_reconciler_t *r, rec_realm_t *realm, const qbc_realm_t *state, const qbc_tokens_t *tokens,
                          int64_t if_connected_ns)
{
    rec_job_t *j = job_new(r, tokens ? J_TOKENS : J_STATE, realm, submit_realm);
    snprintf(j->sj.realm.realm, sizeof(j->sj.realm.realm), "%s", realm->name);
    j->sj.realm.if_current = if_connected_ns != 0;
    j->sj.realm.if_connected_ns = if_connected_ns;
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

int qbc_rec__submit_versions(qbc_reconciler_t *r, rec_realm_t *realm, const qbc_reconcile_job_t *tmpl,
                             qbc_version_t *versions, size_t nv, char **owned, size_t n_owned, rec_commit_cb done,
                             void *ctx)
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

static void on_error_noted(qbc_reconciler_t *r, const qbc_store_job_t *job, void *ctx)
{
    rec_realm_t *realm = ctx;
    (void)r;
    if (job->result != 0)
        qbc_log(QBC_LOG_ERROR, REC_MOD, "realm %s: could not record its last error: %s", realm->name,
                qbc_strerror(job->result));
}

void qbc_rec__note_realm_error(qbc_reconciler_t *r, rec_realm_t *realm, const char *text)
{
    int64_t now = qbc_mono_ns();
    if (strcmp(realm->noted_error, text) == 0 && (text[0] == '\0' || now - realm->noted_ns < 60 * 1000000000LL))
        return;
    qbc_reconcile_job_t tmpl;
    memset(&tmpl, 0, sizeof(tmpl));
    tmpl.realm_error = text;
    if (qbc_rec__submit_versions(r, realm, &tmpl, NULL, 0, NULL, 0, on_error_noted, realm) != 0)
        return; /* the store is closing: the log has it */
    snprintf(realm->noted_error, sizeof(realm->noted_error), "%s", text);
    realm->noted_ns = now;
}

void qbc_rec__clear_realm_error(qbc_reconciler_t *r, rec_realm_t *realm, const char *prefix)
{
    if (realm->noted_error[0] != '\0' && strncmp(realm->noted_error, prefix, strlen(prefix)) == 0)
        qbc_rec__note_realm_error(r, realm, "");
}

int qbc_rec__submit_backfill(qbc_reconciler_t *r, rec_realm_t *realm, const qbc_backfill_t *create,
                             int64_t cdc_watermark_ns, rec_commit_cb done, void *ctx)
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
    /* no notice asked for it: a live CDC call's answer also carries changes no webhook reported */
    v->source = n != NULL ? QBC_SOURCE_WEBHOOK : QBC_SOURCE_CDC;
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

/* ---------------------------------------------------------------- answers */

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const qbc_rec_item_t *)a)->id, ((const qbc_rec_item_t *)b)->id);
}

/* versions (and deletes) for notices ns[0..n) of one query answer; the missing go back for single reads */
void qbc_rec__offer(qbc_reconciler_t *r, rec_realm_t *realm, const char *entity, rec_notice_t **ns, size_t n,
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
            qbc_rec__notice_release(t);
            continue;
        }
        if (it != NULL && !it->deleted && t->fetch_op == QBC_OP_DELETE && it->updated_ns < t->fetch_updated_ns &&
            !from_read) {
            t->need_read = 1; /* a query still shows what was deleted later: ask the entity itself */
            qbc_rec__notice_release(t);
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
        qbc_rec__notice_remove(r, n);
    }
}

void qbc_rec__jobs_done(qbc_reconciler_t *r)
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
            qbc_rec__auth_committed(r, j->realm, res, j->sj.realm.stale, j->tokens);
            break;
        case J_GENERIC:
            j->done(r, &j->sj.job, j->done_ctx);
            break;
        case J_STATE:
            if (res == 0 && j->sj.realm.stale)
                qbc_log(QBC_LOG_INFO, REC_MOD, "realm %s: reconnected or disconnected meanwhile; state not written",
                        j->realm->name);
            if (res != 0)
                qbc_log(QBC_LOG_ERROR, REC_MOD, "realm %s: storing its state failed: %s", j->realm->name,
                        qbc_strerror(res));
            break;
        }
        job_free(j);
    }
}
