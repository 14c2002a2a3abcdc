/*
 * backfill.c — backfill jobs (POST /admin/realms/{realm}/backfill, or CDC's lookback
 * running out): a resumable pull of whole entity tables through the query API
 * (qbo-facts §3):
 *
 *   SELECT * FROM <Entity> [WHERE MetaData.LastUpdatedTime >= '<since>'] [Active IN (true,false)]
 *   ORDERBY Id STARTPOSITION n MAXRESULTS 1000
 *
 * one entity after another, one page at a time, at REC_PRIO_BACKFILL (the lowest share
 * of the realm's budget). Every page's versions (source "backfill", the same dedupe as
 * webhooks) and the job's checkpoint — entity, next STARTPOSITION, counters — commit
 * in one transaction, so after a restart (or kill -9) the job goes on from the page
 * after the last one committed; a page read twice adds nothing to the feed. One job
 * per realm runs at a time, in id order. A job cancelled in the store stops at once:
 * its checkpoints are refused from then on.
 *
 * STARTPOSITION paging over a table that changes meanwhile shifts rows: a row deleted
 * before the position moves every later row one place back, and a plain next page
 * would skip a row that never changed (so no webhook or CDC would ever report it).
 * So the checkpoint keeps the last QBC_BACKFILL_ANCHORS ids of the page; the next page
 * starts that many rows early and goes on after the latest anchor it holds (repeats
 * are deduped). A page holding none of them means more rows went than it kept: the
 * entity is read again from the start (at most BF_MAX_REREADS times a job, then with
 * a warning, accepting the risk).
 *
 * An entity QBO refuses for the realm (a 4xx / ValidationFault to its query: a feature
 * the company's plan lacks, or one qbosim does not simulate) is skipped: recorded in the
 * job ("skipped") and in the realm's last_error, and the job goes on with the next one.
 *
 * A realm's first registration creates a snapshot: a job like any other with reason
 * "snapshot", whose versions carry source "snapshot"; the store makes those of objects
 * it never held op "snapshot" (store.h QBC_OP_SNAPSHOT).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "rec_internal.h"

#define NS 1000000000LL
#define BF_MAX_FAILURES 10
#define BF_MAX_REREADS 10

typedef struct st_rec_backfill_t {
    struct st_rec_backfill_t *next;
    qbc_backfill_t st; /* as last committed */
    qbc_backfill_t cp; /* the checkpoint in flight */
    rec_realm_t *realm;
    char **ents;
    size_t n_ents;
    int inflight; /* a page request or its commit */
    int stop;     /* cancelled, finished or gone: dropped once idle */
    unsigned failures;
    int64_t retry_ns;
    uint64_t page_pos;     /* the STARTPOSITION of the page in flight */
    char realm_error[256]; /* the realm's last_error the checkpoint in flight sets ("" : none) */
} rec_backfill_t;

static void bf_free(rec_backfill_t *b)
{
    for (size_t i = 0; i < b->n_ents; i++)
        free(b->ents[i]);
    free(b->ents);
    free(b);
}

void qbc_rec__backfill_free_all(qbc_reconciler_t *r)
{
    while (r->backfills != NULL) {
        rec_backfill_t *b = r->backfills;
        r->backfills = b->next;
        bf_free(b);
    }
}

static rec_backfill_t *bf_find(qbc_reconciler_t *r, uint64_t id)
{
    for (rec_backfill_t *b = r->backfills; b != NULL; b = b->next)
        if (b->st.id == id)
            return b;
    return NULL;
}

/* the entity list: the job's own, or the configured CDC list (then written into the job) */
static void bf_entities(qbc_reconciler_t *r, rec_backfill_t *b)
{
    if (b->st.entities[0] == '\0')
        qbc_rec__cdc_entity_list(r, b->st.entities, sizeof(b->st.entities));
    char *copy = qbc_strdup(b->st.entities), *save = NULL;
    for (char *tok = strtok_r(copy, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        if (!qbc_rec_entity_ok(tok))
            continue;
        b->ents = qbc_realloc(b->ents, (b->n_ents + 1) * sizeof(*b->ents));
        b->ents[b->n_ents++] = qbc_strdup(tok);
    }
    free(copy);
}

static int on_job(const qbc_backfill_t *job, void *ctx)
{
    qbc_reconciler_t *r = ctx;
    rec_backfill_t *b = bf_find(r, job->id);
    int live = job->status == QBC_BACKFILL_QUEUED || job->status == QBC_BACKFILL_RUNNING;
    if (b != NULL) {
        if (!live && !b->stop) {
            b->stop = 1;
            qbc_log(QBC_LOG_INFO, REC_MOD, "backfill job %llu: %s", (unsigned long long)job->id,
                    qbc_backfill_status_name(job->status));
        } else if (live && !b->inflight && qbc_backfill_cmp(job, &b->st) > 0) {
            /* cluster mode: the node that ran it got further (imported from qbcdc_jobs): go on from there */
            int64_t retry = b->retry_ns;
            int same_list = strcmp(job->entities, b->st.entities) == 0;
            b->st = *job;
            if (!same_list) {
                for (size_t i = 0; i < b->n_ents; i++)
                    free(b->ents[i]);
                b->n_ents = 0;
                bf_entities(r, b);
            }
            b->retry_ns = retry;
            qbc_log(QBC_LOG_DEBUG, REC_MOD, "backfill job %llu: checkpoint from another node, entity %u position %llu",
                    (unsigned long long)job->id, job->entity_index, (unsigned long long)job->start_position);
        }
        return 0;
    }
    if (!live || !qbc_rec_id_ok(job->realm))
        return 0;
    rec_realm_t *realm = qbc_rec__realm_get(r, job->realm, 1);
    if (realm == NULL)
        return 0;
    b = qbc_calloc(1, sizeof(*b));
    b->st = *job;
    b->realm = realm;
    bf_entities(r, b);
    rec_backfill_t **tail = &r->backfills; /* the scan goes in id order: append */
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = b;
    qbc_log(QBC_LOG_INFO, REC_MOD, "backfill job %llu for realm %s: %s at %s entity %u, position %llu",
            (unsigned long long)job->id, job->realm, job->status == QBC_BACKFILL_RUNNING ? "resuming" : "queued",
            b->st.entity_index < b->n_ents ? b->ents[b->st.entity_index] : "-", b->st.entity_index,
            (unsigned long long)b->st.start_position);
    return 0;
}

void qbc_rec__backfill_scan(qbc_reconciler_t *r)
{
    int rc = qbc_store_backfill_scan(r->store, on_job, r);
    if (rc != 0)
        qbc_log(QBC_LOG_ERROR, REC_MOD, "reading backfill jobs: %s", qbc_strerror(rc));
}

/* ---------------------------------------------------------------- pages */

static void on_page_committed(qbc_reconciler_t *r, const qbc_store_job_t *sj, void *ctx)
{
    const qbc_reconcile_job_t *job = (const qbc_reconcile_job_t *)sj;
    rec_backfill_t *b = ctx;
    int64_t now = qbc_mono_ns();
    b->inflight = 0;
    b->realm_error[0] = '\0';
    if (job->job.result != 0) {
        qbc_log(QBC_LOG_ERROR, REC_MOD, "backfill job %llu: storing a page failed: %s", (unsigned long long)b->st.id,
                qbc_strerror(job->job.result));
        b->retry_ns = now + 5 * NS;
        return;
    }
    if (job->checkpoint_refused) {
        /* cancelled meanwhile: this page's versions are stored, the job stops; or (cluster mode)
           the store holds it further on, from the node that ran it before: go on from there */
        qbc_backfill_t *cur = qbc_alloc(sizeof(*cur));
        if (qbc_store_backfill_get(r->store, b->st.id, cur) == 0 &&
            (cur->status == QBC_BACKFILL_QUEUED || cur->status == QBC_BACKFILL_RUNNING))
            b->st = *cur;
        else
            b->stop = 1;
        free(cur);
        return;
    }
    b->st = job->checkpoint_out;
    pthread_mutex_lock(&r->stats_mu);
    r->stats.backfill_versions_new += job->n_feed;
    r->stats.versions_offered += job->n_versions;
    r->stats.feed_appended += job->n_feed;
    pthread_mutex_unlock(&r->stats_mu);
    if (b->st.status != QBC_BACKFILL_RUNNING && b->st.status != QBC_BACKFILL_QUEUED) {
        qbc_log(QBC_LOG_INFO, REC_MOD, "backfill job %llu for realm %s %s: %llu records, %llu new versions%s%s",
                (unsigned long long)b->st.id, b->realm->name, qbc_backfill_status_name(b->st.status),
                (unsigned long long)b->st.records_seen, (unsigned long long)b->st.versions_new,
                b->st.error[0] ? ": " : "", b->st.error);
        b->stop = 1;
    }
}

/* commits cp (with versions, maybe none); on failure to submit, tries again later */
static void submit_checkpoint(qbc_reconciler_t *r, rec_backfill_t *b, qbc_version_t *versions, size_t nv, char **owned,
                              size_t n_owned)
{
    qbc_reconcile_job_t tmpl;
    memset(&tmpl, 0, sizeof(tmpl));
    tmpl.checkpoint = &b->cp;
    tmpl.realm_error = b->realm_error[0] ? b->realm_error : NULL;
    b->inflight = 1;
    if (qbc_rec__submit_versions(r, b->realm, &tmpl, versions, nv, owned, n_owned, on_page_committed, b) != 0) {
        b->inflight = 0;
        b->retry_ns = qbc_mono_ns() + NS;
        free(versions);
        for (size_t i = 0; i < n_owned; i++)
            free(owned[i]);
        free(owned);
    }
}

static void bf_fail(qbc_reconciler_t *r, rec_backfill_t *b, const char *err)
{
    b->cp = b->st;
    b->cp.status = QBC_BACKFILL_FAILED;
    b->cp.finished_ns = qbc_now_ns();
    snprintf(b->cp.error, sizeof(b->cp.error), "%s", err);
    qbc_log(QBC_LOG_WARN, REC_MOD, "backfill job %llu failed: %s", (unsigned long long)b->st.id, err);
    snprintf(b->realm_error, sizeof(b->realm_error), "%s job %llu failed: %.180s",
             strcmp(b->st.reason, QBC_BACKFILL_REASON_SNAPSHOT) == 0 ? "snapshot" : "backfill",
             (unsigned long long)b->st.id, err); /* the realm shows it too */
    submit_checkpoint(r, b, NULL, 0, NULL, 0);
}

/*
 * QBO refused to query this entity for the realm (qbc_rec__entity_refused): the job records it
 * and goes on with the next entity, rather than failing as a whole for a feature the
 * company does not have. A job that every entity was refused fails: then the fault is
 * not about one entity.
 */
static void bf_skip(qbc_reconciler_t *r, rec_backfill_t *b, const char *entity, const char *err)
{
    b->failures = 0;
    b->cp = b->st;
    b->cp.status = QBC_BACKFILL_RUNNING;
    if (b->cp.started_ns == 0)
        b->cp.started_ns = qbc_now_ns();
    if (b->cp.n_skipped < QBC_BACKFILL_SKIPPED_MAX) {
        qbc_backfill_skip_t *k = &b->cp.skipped[b->cp.n_skipped++];
        snprintf(k->entity, sizeof(k->entity), "%s", entity);
        snprintf(k->error, sizeof(k->error), "%s", err);
    }
    b->cp.entity_index++;
    b->cp.entities_done++; /* done with it: entities_done reaches entities_total, skipped ones included */
    b->cp.start_position = 1;
    b->cp.anchors[0] = '\0';
    qbc_log(QBC_LOG_WARN, REC_MOD, "backfill job %llu for realm %s: QBO refused %s, skipping it: %s",
            (unsigned long long)b->st.id, b->realm->name, entity, err);
    char names[QBC_BACKFILL_ENTITIES_MAX] = "";
    for (uint32_t i = 0; i < b->cp.n_skipped; i++)
        qbc_list_add(names, sizeof(names), b->cp.skipped[i].entity);
    snprintf(b->realm_error, sizeof(b->realm_error), "%s job %llu skipped %u entit%s QBO refused: %s",
             b->st.reason[0] ? b->st.reason : "backfill", (unsigned long long)b->st.id, b->cp.n_skipped,
             b->cp.n_skipped == 1 ? "y" : "ies", names);
    if (b->cp.entity_index >= b->n_ents) {
        b->cp.finished_ns = qbc_now_ns();
        b->cp.status = QBC_BACKFILL_DONE;
        if (b->cp.n_skipped >= b->n_ents) {
            b->cp.status = QBC_BACKFILL_FAILED;
            snprintf(b->cp.error, sizeof(b->cp.error), "QBO refused every entity; the last: %s", err);
        }
    }
    submit_checkpoint(r, b, NULL, 0, NULL, 0);
}

size_t qbc_rec__backfill_n_anchors(const char *anchors)
{
    size_t n = anchors[0] != '\0';
    for (const char *p = anchors; *p; p++)
        n += *p == ',';
    return n;
}

long qbc_rec__backfill_first_new(const char *anchors, const qbc_rec_item_t *items, size_t n)
{
    if (anchors[0] == '\0')
        return 0;
    for (size_t i = n; i-- > 0;)
        if (qbc_list_has(anchors, items[i].id))
            return (long)(i + 1);
    return -1;
}

void qbc_rec__backfill_anchors(const qbc_rec_item_t *items, size_t n, char *out, size_t outsz)
{
    size_t k = 0, i = n;
    while (i > 0 && k < QBC_BACKFILL_ANCHORS) /* back to the first of the last valid ids */
        k += qbc_rec_id_ok(items[--i].id);
    out[0] = '\0';
    for (; i < n; i++)
        if (qbc_rec_id_ok(items[i].id) && qbc_list_add(out, outsz, items[i].id) != 0)
            return;
}

static void on_page(qbc_reconciler_t *r, rec_realm_t *realm, void *ctx, const rec_api_answer_t *a)
{
    rec_backfill_t *b = ctx;
    int64_t now = qbc_mono_ns();
    qbc_fault_t fault;
    qbc_rec_item_t *items = NULL;
    size_t n = 0;
    int prc = 0;
    const char *entity = b->ents[b->st.entity_index];

    b->inflight = 0;
    qbc_rec_class_t cls = qbc_rec__answer_class(a, &fault);
    if (cls == REC_RES_OK && (prc = qbc_rec_parse_query(a->body, a->len, entity, &items, &n, &fault)) != 0)
        cls = prc == QBC_ENOTFOUND ? qbc_rec_classify(1, a->status, &fault) : REC_RES_RETRY;
    char err[256] = "";
    if (cls != REC_RES_OK)
        qbc_rec_describe(a->status, &fault, a->curl_ok ? NULL : a->curl_err, err, sizeof(err));
    if (b->stop && cls == REC_RES_OK) {
        qbc_rec_items_free(items, n);
        return;
    }
    switch (qbc_rec__action_for(cls, REC_FOR_BACKFILL, a->status, &fault)) {
    case REC_ACT_USE:
        break;
    case REC_ACT_PAUSE:
        qbc_rec__realm_throttled(r, realm, now, a->retry_after_ms, "backfill query");
        REC_STAT(r, throttled, 1);
        return;
    case REC_ACT_REAUTH:
        qbc_rec__auth_rejected(r, realm, a->token_gen);
        if (++b->failures > BF_MAX_FAILURES)
            bf_fail(r, b, err);
        return;
    case REC_ACT_RETRY:
        REC_STAT(r, server_errors, 1);
        if (++b->failures > BF_MAX_FAILURES) {
            bf_fail(r, b, prc != 0 ? "the query answer did not parse" : err);
            return;
        }
        b->retry_ns =
            now +
            (int64_t)qbc_backoff_ms(b->failures, r->cfg.backoff_base_ms, r->cfg.backoff_max_ms, &r->rng) * 1000000;
        return;
    case REC_ACT_SKIP_ENTITY:
        bf_skip(r, b, entity, err);
        return;
    case REC_ACT_READ_ALONE: /* not given to backfills */
    case REC_ACT_DELETED:
    case REC_ACT_CATCH_UP:
    case REC_ACT_GIVE_UP:
        bf_fail(r, b, err);
        return;
    }

    b->failures = 0;
    b->cp = b->st;
    b->cp.status = QBC_BACKFILL_RUNNING;
    if (b->cp.started_ns == 0)
        b->cp.started_ns = qbc_now_ns();
    long first = qbc_rec__backfill_first_new(b->st.anchors, items, n);
    if (first < 0 && b->st.rereads < BF_MAX_REREADS) {
        qbc_log(QBC_LOG_INFO, REC_MOD,
                "backfill job %llu: %s rows moved under the pages (deleted before position %llu); reading it again "
                "from the start",
                (unsigned long long)b->st.id, entity, (unsigned long long)b->page_pos);
        b->cp.rereads++;
        b->cp.start_position = 1;
        b->cp.anchors[0] = '\0';
        qbc_rec_items_free(items, n);
        submit_checkpoint(r, b, NULL, 0, NULL, 0);
        return;
    }
    if (first < 0) {
        qbc_log(QBC_LOG_WARN, REC_MOD,
                "backfill job %llu: %s rows moved under the pages again (%u rereads): going on; rows deleted "
                "meanwhile may have made it skip some",
                (unsigned long long)b->st.id, entity, b->st.rereads);
        first = 0;
    }
    /* a snapshot's versions say so; the store makes those it never held op "snapshot" */
    uint8_t source =
        strcmp(b->st.reason, QBC_BACKFILL_REASON_SNAPSHOT) == 0 ? QBC_SOURCE_SNAPSHOT : QBC_SOURCE_BACKFILL;
    qbc_version_t *versions = qbc_calloc(n ? n : 1, sizeof(*versions));
    char **owned = qbc_calloc(n ? n : 1, sizeof(*owned));
    size_t nv = 0, no = 0;
    for (size_t i = (size_t)first; i < n; i++) {
        if (!qbc_rec_id_ok(items[i].id))
            continue;
        qbc_rec__version_of_item(realm->name, entity, &items[i], source, &versions[nv++]);
        if (items[i].data != NULL) {
            owned[no++] = items[i].data;
            items[i].data = NULL;
        }
    }
    b->cp.records_seen += n - (size_t)first;
    if (n < REC_QUERY_PAGE) { /* the last page of this entity */
        b->cp.entity_index++;
        b->cp.entities_done++;
        b->cp.start_position = 1;
        b->cp.anchors[0] = '\0';
    } else {
        b->cp.start_position = b->page_pos + n;
        qbc_rec__backfill_anchors(items, n, b->cp.anchors, sizeof(b->cp.anchors));
    }
    qbc_rec_items_free(items, n);
    if (b->cp.entity_index >= b->n_ents) {
        b->cp.status = QBC_BACKFILL_DONE;
        b->cp.finished_ns = qbc_now_ns();
    }
    submit_checkpoint(r, b, versions, nv, owned, no);
}

static int realm_busy(qbc_reconciler_t *r, rec_backfill_t *upto, rec_realm_t *realm)
{
    for (rec_backfill_t *b = r->backfills; b != NULL && b != upto; b = b->next)
        if (b->realm == realm && !b->stop)
            return 1;
    return 0;
}

int64_t qbc_rec__backfill_plan(qbc_reconciler_t *r, int64_t now)
{
    int64_t next = now + NS;
    if (atomic_load(&r->stopping))
        return next;
    for (rec_backfill_t **pp = &r->backfills, *b; (b = *pp) != NULL;) {
        if (b->stop && !b->inflight) {
            *pp = b->next;
            bf_free(b);
            continue;
        }
        pp = &b->next;
        rec_realm_t *realm = b->realm;
        if (b->stop || b->inflight || realm_busy(r, b, realm) || !qbc_rec__realm_usable(realm) ||
            realm->budget.fenced) /* cluster mode: another node's realm runs its jobs */
            continue;
        if (b->retry_ns > now) {
            if (b->retry_ns < next)
                next = b->retry_ns;
            continue;
        }
        if (b->st.entity_index >= b->n_ents) { /* nothing (left) to read */
            b->cp = b->st;
            b->cp.status = QBC_BACKFILL_DONE;
            if (b->cp.started_ns == 0)
                b->cp.started_ns = qbc_now_ns();
            b->cp.finished_ns = qbc_now_ns();
            submit_checkpoint(r, b, NULL, 0, NULL, 0);
            continue;
        }
        if (!qbc_rec__auth_ready(r, realm, now, &next))
            continue;
        if (qbc_budget_available(&realm->budget, now, REC_PRIO_BACKFILL) == 0) {
            int64_t t = qbc_budget_next(&realm->budget, now, REC_PRIO_BACKFILL);
            if (t > now && t < next)
                next = t;
            continue;
        }
        /* backfills and snapshots spend only what the month's plan leaves (allowance.c) */
        if (!qbc_rec__allowance_permits(r, QBC_USAGE_BACKFILL, 1)) {
            if (now + NS < next)
                next = now + NS;
            continue;
        }
        /* a page after the first starts early enough to hold the last one's anchors */
        size_t na = qbc_rec__backfill_n_anchors(b->st.anchors);
        b->page_pos = b->st.start_position > na ? b->st.start_position - na : 1;
        char *q = qbc_rec_backfill_query(b->ents[b->st.entity_index], b->st.since_ns, b->page_pos);
        char *url = qbc_rec_query_url(r->api_base, realm->name, r->cfg.minorversion);
        int rc = qbc_rec__start_api(r, realm, url, q, QBC_USAGE_BACKFILL, on_page, b);
        free(url);
        free(q);
        if (rc != 0) {
            b->retry_ns = now + NS;
            continue;
        }
        b->inflight = 1;
        REC_STAT(r, backfill_requests, 1);
    }
    return next;
}
