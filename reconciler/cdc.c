/*
 * cdc.c — the CDC fallback (qbo-facts §2): webhooks get lost, so every cdc_interval_s
 * (and when an operator asks) each usable realm is swept with
 * GET /cdc?entities=...&changedSince=<watermark>.
 *
 * A sweep is a list of parts, one request each, asked one after another at
 * REC_PRIO_CDC. It starts as one part for every entity since the watermark. An answer
 * under the 1,000-object cap is complete for its part. An answer at the cap is not:
 * a part of several entities splits into one part per entity; a part of one entity
 * keeps what came (its oldest changes) and asks again from the last object's time.
 * If that time is no later than where the part began (LastUpdatedTime has whole
 * seconds: more than 1,000 changes of the entity in one second), that second is read
 * through the query API instead, and CDC goes on after it. A capped answer ending with
 * a live object may have cut deletes off (they come after live objects): the entity is
 * audited with the commit (store.h audit_entities).
 *
 * When no part is left, every version gathered is offered (source "cdc", the same
 * dedupe as webhooks) in ONE store job that also moves the realm's watermark to the
 * earliest "time" of the completing answers — so the watermark never passes what was
 * read, and a crash before that commit only repeats the sweep.
 *
 * An entity QBO refuses for the realm (a 4xx / ValidationFault: "Invalid entity") does not
 * end the sweep: a refused part of several entities is asked again per entity, a refused
 * entity is dropped, and the rest commit with the watermark. The realm's later sweeps
 * leave it out (remembered in memory; a restart tries again), and its last_error says so.
 *
 * A watermark older than the lookback (30 days) cannot be answered by CDC: the realm
 * gets a backfill job instead (reason "cdc_too_old"), created in one transaction with
 * a fresh watermark, and CDC carries on from there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rec_internal.h"

#define NS 1000000000LL
#define CDC_MAX_FAILURES 5

static void min_into(int64_t *next, int64_t t)
{
    if (t < *next)
        *next = t;
}

void qbc_rec__version_of_item(const char *realm, const char *entity, const qbc_rec_item_t *it, uint8_t source,
                              qbc_version_t *v)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->realm, sizeof(v->realm), "%s", realm);
    snprintf(v->entity, sizeof(v->entity), "%s", entity);
    snprintf(v->id, sizeof(v->id), "%s", it->id);
    v->source = source;
    v->updated_ns = it->updated_ns;
    if (it->deleted) {
        v->op = QBC_OP_DELETE;
        return;
    }
    snprintf(v->sync_token, sizeof(v->sync_token), "%s", it->sync_token);
    v->op = strcmp(it->sync_token, "0") == 0 ? QBC_OP_CREATE : QBC_OP_UPDATE;
    v->data = it->data;
    v->data_len = it->data_len;
}

static void sweep_clear(rec_cdc_t *c)
{
    for (size_t i = 0; i < c->n_owned; i++)
        free(c->owned[i]);
    free(c->owned);
    free(c->versions);
    free(c->parts);
    c->owned = NULL;
    c->versions = NULL;
    c->parts = NULL;
    c->n_owned = c->cap_owned = c->nv = c->cap_v = c->n_parts = c->cap_parts = 0;
    c->chunk_failed = c->commit_waiting = 0;
    c->chunk_versions = c->chunk_new = 0;
    c->active = 0;
    c->failures = 0;
    c->requests = 0;
    c->audit[0] = '\0';
    c->sweep_refused[0] = '\0';
    c->sweep_refused_why[0] = '\0';
}

void qbc_rec__cdc_free(rec_cdc_t *c)
{
    sweep_clear(c);
    free(c->audited);
    c->audited = NULL;
    c->n_audited = 0;
}

/*
 * A capped answer of one entity can cut deleted objects off (they come after live
 * ones), and no later answer brings back those before its start. If it ended with a
 * live object, or the part is stuck in one second, the entity owes an audit.
 */
static void audit_note(rec_realm_t *realm, const char *entity, const qbc_rec_cdc_group_t *groups, size_t n_groups,
                       int stuck)
{
    rec_cdc_t *c = &realm->cdc;
    const qbc_rec_item_t *last = NULL;
    for (size_t g = n_groups; g > 0 && last == NULL; g--)
        if (groups[g - 1].n > 0)
            last = &groups[g - 1].items[groups[g - 1].n - 1];
    if (!stuck && (last == NULL || last->deleted))
        return; /* the deletes came, in time order, and the next part starts at the last one's time */
    size_t i = 0;
    while (i < c->n_audited && strcmp(c->audited[i].entity, entity) != 0)
        i++;
    if (i == c->n_audited) {
        c->audited = qbc_realloc(c->audited, (c->n_audited + 1) * sizeof(*c->audited));
        memset(&c->audited[i], 0, sizeof(c->audited[i]));
        snprintf(c->audited[i].entity, sizeof(c->audited[i].entity), "%s", entity);
        c->n_audited++;
    }
    c->audited[i].owed = 1;
}

/* the audits a commit now carries: every owed one whose gap has passed */
static void audit_list(qbc_reconciler_t *r, rec_cdc_t *c)
{
    int64_t now = qbc_now_ns(), gap = (int64_t)r->cfg.cdc_audit_gap_s * NS;
    c->audit[0] = '\0';
    for (size_t i = 0; i < c->n_audited; i++) {
        if (!c->audited[i].owed || (c->audited[i].at_ns != 0 && now - c->audited[i].at_ns < gap))
            continue;
        if (qbc_list_add(c->audit, sizeof(c->audit), c->audited[i].entity) != 0)
            break;
    }
}

void qbc_rec__cdc_entity_list(const qbc_reconciler_t *r, char *out, size_t outsz)
{
    out[0] = '\0';
    for (size_t i = 0; i < r->n_cdc_entities; i++)
        if (qbc_list_add(out, outsz, r->cdc_entities[i]) != 0)
            break;
}

/* the sweep committed with its audits: they are no longer owed */
static void audit_done(rec_realm_t *realm, uint32_t n_notices)
{
    rec_cdc_t *c = &realm->cdc;
    if (c->audit[0] == '\0')
        return;
    int64_t now = qbc_now_ns();
    for (size_t i = 0; i < c->n_audited; i++) {
        if (qbc_list_has(c->audit, c->audited[i].entity)) {
            c->audited[i].owed = 0;
            c->audited[i].at_ns = now;
        }
    }
    qbc_log(QBC_LOG_INFO, REC_MOD,
            "realm %s: CDC answers at the cap may have cut deleted %s objects off: %u live versions are read again",
            realm->name, c->audit, n_notices);
}

static void part_push(rec_cdc_t *c, const char *entities, size_t n_entities, int64_t since_ns)
{
    if (c->n_parts == c->cap_parts) {
        c->cap_parts = c->cap_parts ? c->cap_parts * 2 : 4;
        c->parts = qbc_realloc(c->parts, c->cap_parts * sizeof(*c->parts));
    }
    rec_cdc_part_t *p = &c->parts[c->n_parts++];
    memset(p, 0, sizeof(*p));
    snprintf(p->entities, sizeof(p->entities), "%s", entities);
    p->n_entities = n_entities;
    p->since_ns = since_ns;
}

static void part_pop(rec_cdc_t *c)
{
    memmove(c->parts, c->parts + 1, (c->n_parts - 1) * sizeof(*c->parts));
    c->n_parts--;
}

static void on_chunk_committed(qbc_reconciler_t *r, const qbc_store_job_t *sj, void *ctx);

/*
 * hands versions[0..n) (and the texts they point into) to the store as a commit of their
 * own, without the watermark. @return 0, or -1 (the store is closing: they stay here)
 */
static int submit_chunk(qbc_reconciler_t *r, rec_realm_t *realm, size_t n)
{
    rec_cdc_t *c = &realm->cdc;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += c->versions[i].data != NULL; /* gather keeps owned[] in step with them */
    qbc_version_t *v = qbc_alloc(n * sizeof(*v));
    char **o = qbc_alloc((k > 0 ? k : 1) * sizeof(*o));
    memcpy(v, c->versions, n * sizeof(*v));
    memcpy(o, c->owned, k * sizeof(*o));
    qbc_reconcile_job_t tmpl;
    memset(&tmpl, 0, sizeof(tmpl));
    if (qbc_rec__submit_versions(r, realm, &tmpl, v, n, o, k, on_chunk_committed, realm) != 0) {
        free(v);
        free(o);
        return -1;
    }
    memmove(c->versions, c->versions + n, (c->nv - n) * sizeof(*c->versions));
    c->nv -= n;
    memmove(c->owned, c->owned + k, (c->n_owned - k) * sizeof(*c->owned));
    c->n_owned -= k;
    c->chunks_inflight++;
    return 0;
}

/*
 * keeps every object of the answer as a version (the texts versions point into are taken
 * over), and commits full chunks of cdc_commit_max ahead of the sweep's end
 */
static void gather(qbc_reconciler_t *r, rec_realm_t *realm, qbc_rec_cdc_group_t *groups, size_t n_groups)
{
    rec_cdc_t *c = &realm->cdc;
    for (size_t g = 0; g < n_groups; g++) {
        for (size_t i = 0; i < groups[g].n; i++) {
            qbc_rec_item_t *it = &groups[g].items[i];
            if (!qbc_rec_id_ok(it->id))
                continue;
            if (c->nv == c->cap_v) {
                c->cap_v = c->cap_v ? c->cap_v * 2 : 256;
                c->versions = qbc_realloc(c->versions, c->cap_v * sizeof(*c->versions));
            }
            qbc_version_t *v = &c->versions[c->nv++];
            qbc_rec__version_of_item(realm->name, groups[g].entity, it, QBC_SOURCE_CDC, v);
            if (it->data != NULL && v->data == it->data) { /* a delete points at none: the group frees it */
                if (c->n_owned == c->cap_owned) {
                    c->cap_owned = c->cap_owned ? c->cap_owned * 2 : 256;
                    c->owned = qbc_realloc(c->owned, c->cap_owned * sizeof(*c->owned));
                }
                c->owned[c->n_owned++] = it->data;
                it->data = NULL; /* the version points at it; the sweep owns it now */
            }
        }
    }
    while (c->nv >= r->cfg.cdc_commit_max && submit_chunk(r, realm, r->cfg.cdc_commit_max) == 0)
        ;
}

/* ---------------------------------------------------------------- automatic backfill */

typedef struct {
    rec_realm_t *realm;
    int64_t new_watermark_ns;
} auto_bf_t;

static void on_backfill_created(qbc_reconciler_t *r, const qbc_store_job_t *sj, void *ctx)
{
    const qbc_backfill_job_t *job = (const qbc_backfill_job_t *)sj;
    auto_bf_t *a = ctx;
    rec_realm_t *realm = a->realm;
    (void)r;
    realm->cdc.backfill_pending = 0;
    if (job->job.result == 0) {
        qbc_log(QBC_LOG_INFO, REC_MOD, "realm %s: CDC cannot reach back that far; backfill job %llu started",
                realm->name, (unsigned long long)job->id);
        if (a->new_watermark_ns > realm->cdc.watermark_ns)
            realm->cdc.watermark_ns = a->new_watermark_ns;
    } else {
        qbc_log(QBC_LOG_ERROR, REC_MOD, "realm %s: could not create a backfill job: %s", realm->name,
                qbc_strerror(job->job.result));
    }
    free(a);
}

int qbc_rec__backfill_create(qbc_reconciler_t *r, rec_realm_t *realm, int64_t since_ns, const char *reason,
                             int64_t new_watermark_ns, rec_commit_cb done, void *ctx)
{
    qbc_backfill_t b;
    memset(&b, 0, sizeof(b));
    snprintf(b.realm, sizeof(b.realm), "%s", realm->name);
    b.since_ns = since_ns;
    b.start_position = 1;
    snprintf(b.reason, sizeof(b.reason), "%s", reason);
    return qbc_rec__submit_backfill(r, realm, &b, new_watermark_ns, done, ctx);
}

/* CDC cannot serve `since`: a backfill from there, and CDC from (about) now */
static void start_auto_backfill(qbc_reconciler_t *r, rec_realm_t *realm, int64_t since_ns, int64_t now)
{
    rec_cdc_t *c = &realm->cdc;
    if (c->backfill_pending)
        return;
    auto_bf_t *a = qbc_calloc(1, sizeof(*a));
    a->realm = realm;
    /* a second back: changes committed at Intuit just before are still asked of CDC, deduped */
    a->new_watermark_ns = qbc_now_ns() - NS;
    if (qbc_rec__backfill_create(r, realm, since_ns, "cdc_too_old", a->new_watermark_ns, on_backfill_created, a) != 0) {
        free(a);
        c->retry_ns = now + 5 * NS;
        return;
    }
    c->backfill_pending = 1;
}

/* ---------------------------------------------------------------- the sweep */

static void sweep_end(qbc_reconciler_t *r, rec_realm_t *realm, int64_t now, const char *error)
{
    rec_cdc_t *c = &realm->cdc;
    if (error != NULL) {
        char text[256];
        qbc_log(QBC_LOG_WARN, REC_MOD, "realm %s: CDC sweep abandoned after %llu requests: %s", realm->name,
                (unsigned long long)c->requests, error);
        snprintf(text, sizeof(text), "CDC sweep failed: %.200s", error);
        qbc_rec__note_realm_error(r, realm, text);
        REC_STAT(r, cdc_sweeps_failed, 1);
    }
    sweep_clear(c);
    c->inflight = 0;
    c->due_ns = now + qbc_rec__cdc_interval_ns(r, realm);
}

static void on_sweep_committed(qbc_reconciler_t *r, const qbc_store_job_t *sj, void *ctx)
{
    const qbc_reconcile_job_t *job = (const qbc_reconcile_job_t *)sj;
    rec_realm_t *realm = ctx;
    rec_cdc_t *c = &realm->cdc;
    int64_t now = qbc_mono_ns();
    if (job->job.result != 0) {
        qbc_log(QBC_LOG_ERROR, REC_MOD, "realm %s: storing the CDC sweep failed: %s", realm->name,
                qbc_strerror(job->job.result));
        sweep_clear(c);
        c->inflight = 0;
        c->due_ns = now + 5 * NS;
        return;
    }
    if (job->cdc_watermark_ns > c->watermark_ns)
        c->watermark_ns = job->cdc_watermark_ns;
    audit_done(realm, job->n_audited);
    const char *e;
    size_t len;
    char ent[QBC_ENTITY_MAX];
    for (const char *p = c->sweep_refused; (p = qbc_list_next(p, &e, &len)) != NULL;) {
        if (len == 0 || len >= sizeof(ent))
            continue;
        memcpy(ent, e, len);
        ent[len] = '\0';
        if (!qbc_list_has(c->refused, ent))
            qbc_list_add(c->refused, sizeof(c->refused), ent);
    }
    qbc_rec__allowance_sweep_done(r, realm, job->n_feed + c->chunk_new);
    pthread_mutex_lock(&r->stats_mu);
    r->stats.cdc_audit_notices += job->n_audited;
    r->stats.cdc_sweeps++;
    r->stats.cdc_commits++;
    r->stats.cdc_versions_new += job->n_feed;
    r->stats.versions_offered += job->n_versions;
    r->stats.feed_appended += job->n_feed;
    pthread_mutex_unlock(&r->stats_mu);
    char ts[QBC_TIME_BUFSZ];
    qbc_log(job->n_feed + c->chunk_new ? QBC_LOG_INFO : QBC_LOG_DEBUG, REC_MOD,
            "realm %s: CDC sweep done (%llu requests, %llu objects, %llu new); complete until %s", realm->name,
            (unsigned long long)c->requests, (unsigned long long)(job->n_versions + c->chunk_versions),
            (unsigned long long)(job->n_feed + c->chunk_new), qbc_time_format(c->watermark_ns, ts));
    sweep_end(r, realm, now, NULL);
}

static void sweep_commit(qbc_reconciler_t *r, rec_realm_t *realm);

/* a chunk of a sweep's versions is stored (or failed): the sweep's final commit may follow */
static void on_chunk_committed(qbc_reconciler_t *r, const qbc_store_job_t *sj, void *ctx)
{
    const qbc_reconcile_job_t *job = (const qbc_reconcile_job_t *)sj;
    rec_realm_t *realm = ctx;
    rec_cdc_t *c = &realm->cdc;
    c->chunks_inflight--;
    if (job->job.result != 0) {
        qbc_log(QBC_LOG_ERROR, REC_MOD, "realm %s: storing a chunk of a CDC sweep failed: %s", realm->name,
                qbc_strerror(job->job.result));
        c->chunk_failed = 1;
    } else {
        c->chunk_versions += job->n_versions;
        c->chunk_new += job->n_feed;
        pthread_mutex_lock(&r->stats_mu);
        r->stats.cdc_commits++;
        r->stats.cdc_versions_new += job->n_feed;
        r->stats.versions_offered += job->n_versions;
        r->stats.feed_appended += job->n_feed;
        pthread_mutex_unlock(&r->stats_mu);
    }
    if (c->chunks_inflight == 0 && c->commit_waiting) {
        c->commit_waiting = 0;
        c->inflight = 0;
        sweep_commit(r, realm);
    }
}

static void sweep_commit(qbc_reconciler_t *r, rec_realm_t *realm)
{
    rec_cdc_t *c = &realm->cdc;
    qbc_reconcile_job_t tmpl;
    if (c->complete_ns == INT64_MAX) {
        /* no part answered: every entity was refused, so the fault is not about entities */
        char why[300];
        snprintf(why, sizeof(why), "QBO refused every entity; the first: %s", c->sweep_refused_why);
        sweep_end(r, realm, qbc_mono_ns(), why);
        return;
    }
    /* all but the last chunk go ahead; the last carries the watermark once they are stored */
    while (c->nv > r->cfg.cdc_commit_max) {
        if (submit_chunk(r, realm, r->cfg.cdc_commit_max) != 0) {
            sweep_end(r, realm, qbc_mono_ns(), "the store is closing");
            return;
        }
    }
    if (c->chunks_inflight > 0) {
        c->commit_waiting = 1; /* on_chunk_committed comes back here */
        c->inflight = 1;
        return;
    }
    if (c->chunk_failed) { /* the watermark must not pass what was not stored */
        sweep_end(r, realm, qbc_mono_ns(), "a chunk of its versions could not be stored; the window is swept again");
        return;
    }
    memset(&tmpl, 0, sizeof(tmpl));
    if (c->sweep_refused[0] != '\0') {
        snprintf(c->refused_error, sizeof(c->refused_error),
                 "CDC skips entities QBO refused for this realm: %.150s (%.90s)", c->sweep_refused,
                 c->sweep_refused_why);
        tmpl.realm_error = c->refused_error;
    }
    if (tmpl.realm_error != NULL) { /* what the commit writes is what the realm shows */
        snprintf(realm->noted_error, sizeof(realm->noted_error), "%.255s", tmpl.realm_error);
        realm->noted_ns = qbc_mono_ns();
    } else if (strncmp(realm->noted_error, "CDC sweep failed", 16) == 0) {
        tmpl.realm_error = ""; /* this sweep succeeded: the failure it reported is over */
        realm->noted_error[0] = '\0';
    }
    tmpl.set_cdc = 1;
    tmpl.cdc_watermark_ns = c->complete_ns;
    tmpl.last_cdc_ns = qbc_now_ns();
    audit_list(r, c);
    tmpl.audit_entities = c->audit[0] ? c->audit : NULL;
    c->inflight = 1;
    if (qbc_rec__submit_versions(r, realm, &tmpl, c->versions, c->nv, c->owned, c->n_owned, on_sweep_committed,
                                 realm) != 0) {
        c->inflight = 0;
        sweep_end(r, realm, qbc_mono_ns(), "the store is closing");
        return;
    }
    c->versions = NULL; /* the job owns them now */
    c->owned = NULL;
    c->nv = c->cap_v = c->n_owned = c->cap_owned = 0;
}

/*
 * QBO refused a CDC request (qbc_rec__entity_refused). A part of several entities asks again
 * one entity at a time, to find which; a part of one entity is dropped from this sweep
 * and, once the sweep commits what the others read, from the realm's later sweeps.
 */
static void part_refused(qbc_reconciler_t *r, rec_realm_t *realm, const char *err)
{
    rec_cdc_t *c = &realm->cdc;
    rec_cdc_part_t whole = c->parts[0];
    part_pop(c);
    if (whole.n_entities > 1) {
        qbc_log(QBC_LOG_INFO, REC_MOD, "realm %s: QBO refused CDC of %zu entities (%s); asking per entity", realm->name,
                whole.n_entities, err);
        char *save = NULL;
        for (char *tok = strtok_r(whole.entities, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
            part_push(c, tok, 1, whole.since_ns);
        return;
    }
    qbc_log(QBC_LOG_WARN, REC_MOD, "realm %s: QBO refused CDC of %s; leaving it out of this realm's sweeps: %s",
            realm->name, whole.entities, err);
    qbc_list_add(c->sweep_refused, sizeof(c->sweep_refused), whole.entities);
    if (c->sweep_refused_why[0] == '\0')
        snprintf(c->sweep_refused_why, sizeof(c->sweep_refused_why), "%s", err);
    if (c->n_parts == 0)
        sweep_commit(r, realm);
}

/*
 * what a failed answer (cls not OK) means for the sweep: a pause, a retry, or its end.
 * prc: the parse result (non-zero: the answer did not parse).
 */
static void answer_failed(qbc_reconciler_t *r, rec_realm_t *realm, const rec_api_answer_t *a, qbc_rec_class_t cls,
                          const qbc_fault_t *fault, int prc, int64_t now)
{
    rec_cdc_t *c = &realm->cdc;
    char err[256] = "";
    qbc_rec_describe(a->status, fault, a->curl_ok ? NULL : a->curl_err, err, sizeof(err));
    switch (qbc_rec__action_for(cls, REC_FOR_CDC, a->status, fault)) {
    case REC_ACT_USE:
        return;
    case REC_ACT_PAUSE:
        qbc_rec__realm_throttled(r, realm, now, a->retry_after_ms, err);
        REC_STAT(r, throttled, 1);
        return; /* the part is asked again when the pause is over */
    case REC_ACT_REAUTH:
        qbc_rec__auth_rejected(r, realm, a->token_gen);
        if (++c->failures > CDC_MAX_FAILURES)
            sweep_end(r, realm, now, err);
        return;
    case REC_ACT_CATCH_UP: {
        int64_t since = c->parts[0].since_ns;
        sweep_end(r, realm, now, NULL);
        start_auto_backfill(r, realm, since, now);
        return;
    }
    case REC_ACT_SKIP_ENTITY:
        if (c->parts[0].until_ns == 0) { /* a window split in time is refused as a whole: it ends the sweep */
            part_refused(r, realm, err);
            return;
        }
        sweep_end(r, realm, now, err);
        return;
    case REC_ACT_RETRY:
        REC_STAT(r, server_errors, 1);
        if (++c->failures > CDC_MAX_FAILURES) {
            sweep_end(r, realm, now, prc != 0 ? "the answer did not parse" : err);
            return;
        }
        c->retry_ns =
            now +
            (int64_t)qbc_backoff_ms(c->failures, r->cfg.backoff_base_ms, r->cfg.backoff_max_ms, &r->rng) * 1000000;
        return;
    case REC_ACT_READ_ALONE: /* not given to CDC */
    case REC_ACT_DELETED:
    case REC_ACT_GIVE_UP:
        sweep_end(r, realm, now, err);
        return;
    }
}

/*
 * A second holding more than a page of one entity's changes: its objects are read
 * through the query API, in pages (with the backfill's anchors, so rows leaving the
 * second meanwhile cannot make a page skip any); then CDC goes on after the second.
 * Deleted objects are not in query answers: any in that second that CDC cut off
 * are reported by their webhooks only (logged).
 */
static void on_window_answer(qbc_reconciler_t *r, rec_realm_t *realm, void *ctx, const rec_api_answer_t *a)
{
    rec_cdc_t *c = &realm->cdc;
    int64_t now = qbc_mono_ns();
    qbc_fault_t fault;
    qbc_rec_item_t *items = NULL;
    size_t n = 0;
    int prc = 0;
    (void)ctx;

    c->inflight = 0;
    if (!c->active || c->n_parts == 0)
        return;
    rec_cdc_part_t *p = &c->parts[0];
    qbc_rec_class_t cls = qbc_rec__answer_class(a, &fault);
    if (cls == REC_RES_OK && (prc = qbc_rec_parse_query(a->body, a->len, p->entities, &items, &n, &fault)) != 0)
        cls = prc == QBC_ENOTFOUND ? qbc_rec_classify(1, a->status, &fault) : REC_RES_RETRY;
    if (cls != REC_RES_OK) {
        answer_failed(r, realm, a, cls, &fault, prc, now);
        return;
    }
    c->failures = 0;
    long first = qbc_rec__backfill_first_new(p->anchors, items, n);
    if (first < 0 && p->rereads < 3) { /* rows left the second under the pages: read it again */
        p->rereads++;
        p->position = 1;
        p->anchors[0] = '\0';
        qbc_rec_items_free(items, n);
        return;
    }
    qbc_rec_cdc_group_t g;
    memset(&g, 0, sizeof(g));
    size_t el = strnlen(p->entities, sizeof(g.entity) - 1); /* one entity: names are short */
    memcpy(g.entity, p->entities, el);
    g.entity[el] = '\0';
    g.items = items + (first > 0 ? first : 0);
    g.n = n - (size_t)(first > 0 ? first : 0);
    gather(r, realm, &g, 1);
    if (n < REC_QUERY_PAGE) { /* the second is read: CDC goes on after it */
        p->since_ns = p->until_ns;
        p->until_ns = 0;
        p->anchors[0] = '\0';
    } else {
        p->position = p->page_pos + n;
        qbc_rec__backfill_anchors(items, n, p->anchors, sizeof(p->anchors));
    }
    qbc_rec_items_free(items, n);
}

static void on_cdc_answer(qbc_reconciler_t *r, rec_realm_t *realm, void *ctx, const rec_api_answer_t *a)
{
    rec_cdc_t *c = &realm->cdc;
    int64_t now = qbc_mono_ns();
    qbc_fault_t fault;
    qbc_rec_cdc_group_t *groups = NULL;
    size_t n_groups = 0, total = 0;
    int64_t time_ns = 0;
    int prc = 0;
    (void)ctx;

    c->inflight = 0;
    if (!c->active || c->n_parts == 0)
        return;
    qbc_rec_class_t cls = qbc_rec__answer_class(a, &fault);
    if (cls == REC_RES_OK &&
        (prc = qbc_rec_parse_cdc(a->body, a->len, &groups, &n_groups, &time_ns, &total, &fault)) != 0)
        cls = prc == QBC_ENOTFOUND ? qbc_rec_classify(1, a->status, &fault) : REC_RES_RETRY;
    if (cls == REC_RES_OK && time_ns == 0)
        time_ns = qbc_now_ns() - 60 * NS; /* no "time": claim no more than a minute ago (clock skew) */

    if (cls != REC_RES_OK) {
        qbc_rec_cdc_groups_free(groups, n_groups);
        answer_failed(r, realm, a, cls, &fault, prc, now);
        return;
    }
    c->failures = 0;
    rec_cdc_part_t *p = &c->parts[0];
    int64_t next_since;
    switch (qbc_rec_cdc_decide(p->n_entities, total, groups, n_groups, p->since_ns, &next_since)) {
    case REC_CDC_COMPLETE:
        gather(r, realm, groups, n_groups);
        if (time_ns < c->complete_ns)
            c->complete_ns = time_ns;
        part_pop(c);
        break;
    case REC_CDC_SPLIT: {
        /* the answer is cut: ask per entity (its objects come again then) */
        rec_cdc_part_t whole = *p;
        part_pop(c);
        char *save = NULL;
        for (char *tok = strtok_r(whole.entities, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
            part_push(c, tok, 1, whole.since_ns);
        qbc_log(QBC_LOG_INFO, REC_MOD, "realm %s: CDC answer at the %d-object cap; asking per entity", realm->name,
                REC_CDC_CAP);
        break;
    }
    case REC_CDC_STUCK: {
        audit_note(realm, p->entities, groups, n_groups, 1);
        gather(r, realm, groups, n_groups);
        char ts[QBC_TIME_BUFSZ];
        qbc_log(QBC_LOG_INFO, REC_MOD,
                "realm %s: more than %d %s changes in the second from %s: reading it through the query API (deleted "
                "objects cut off there are known from webhooks only)",
                realm->name, REC_CDC_CAP, p->entities, qbc_time_format(next_since, ts));
        REC_STAT(r, cdc_stuck_seconds, 1);
        p->since_ns = next_since;
        p->until_ns = next_since + NS;
        p->position = 1;
        p->rereads = 0;
        p->anchors[0] = '\0';
        break;
    }
    case REC_CDC_ADVANCE:
        audit_note(realm, p->entities, groups, n_groups, 0);
        gather(r, realm, groups, n_groups);
        qbc_log(QBC_LOG_DEBUG, REC_MOD, "realm %s: CDC of %s at the cap; next page from %lld", realm->name, p->entities,
                (long long)next_since);
        p->since_ns = next_since;
        break;
    }
    qbc_rec_cdc_groups_free(groups, n_groups);
    if (c->n_parts == 0)
        sweep_commit(r, realm);
}

static void sweep_start(qbc_reconciler_t *r, rec_realm_t *realm, int64_t now)
{
    rec_cdc_t *c = &realm->cdc;
    int too_old = 0;
    int64_t wall = qbc_now_ns();
    int64_t since =
        qbc_rec_cdc_since(c->watermark_ns, realm->connected_ns, wall, (int64_t)r->cfg.cdc_lookback_s * NS, &too_old);
    c->requested_done = c->requested_ns;
    realm->last_sweep_ns = now;
    if (too_old) {
        int64_t from = c->watermark_ns > 0 ? c->watermark_ns : realm->connected_ns;
        c->due_ns = now + qbc_rec__cdc_interval_ns(r, realm);
        start_auto_backfill(r, realm, from, now);
        return;
    }
    sweep_clear(c);
    char list[QBC_BACKFILL_ENTITIES_MAX] = "";
    size_t n = 0;
    for (size_t i = 0; i < r->n_cdc_entities; i++) /* less those QBO refused for this realm */
        if (!qbc_list_has(c->refused, r->cdc_entities[i]) && qbc_list_add(list, sizeof(list), r->cdc_entities[i]) == 0)
            n++;
    if (list[0] == '\0') {
        c->due_ns = now + qbc_rec__cdc_interval_ns(r, realm);
        return;
    }
    c->active = 1;
    c->sweep_wall_ns = wall;
    c->complete_ns = INT64_MAX;
    part_push(c, list, n, since);
}

void qbc_rec__cdc_realm_seen(qbc_reconciler_t *r, rec_realm_t *realm, const qbc_realm_t *st, int64_t now)
{
    rec_cdc_t *c = &realm->cdc;
    if (st->cdc_watermark_ns > c->watermark_ns)
        c->watermark_ns = st->cdc_watermark_ns;
    if (c->due_ns == 0) { /* first sight: a request not yet served (made while we were down) still counts */
        c->due_ns = now + qbc_rec__cdc_interval_ns(r, realm);
        c->requested_done = st->cdc_requested_ns > st->last_cdc_ns ? 0 : st->cdc_requested_ns;
    }
    c->requested_ns = st->cdc_requested_ns;
}

int64_t qbc_rec__cdc_plan(qbc_reconciler_t *r, int64_t now)
{
    int64_t next = now + NS;
    if (atomic_load(&r->stopping))
        return next;
    for (size_t i = 0; i < r->n_realms; i++) {
        rec_realm_t *realm = r->realms[i];
        rec_cdc_t *c = &realm->cdc;
        if (c->inflight || c->backfill_pending || c->due_ns == 0 || !qbc_rec__realm_usable(realm) ||
            !qbc_rec_id_ok(realm->name))
            continue;
        if (!c->active) {
            int asked = c->requested_ns > c->requested_done;
            if (!asked && now < c->due_ns) {
                min_into(&next, c->due_ns);
                continue;
            }
            if (c->retry_ns > now) {
                min_into(&next, c->retry_ns);
                continue;
            }
            sweep_start(r, realm, now);
            if (!c->active)
                continue;
        }
        if (c->n_parts == 0 || c->retry_ns > now) {
            if (c->retry_ns > now)
                min_into(&next, c->retry_ns);
            continue;
        }
        if (!qbc_rec__auth_ready(r, realm, now, &next))
            continue;
        /* the month's allowance: past CDC's line, the sweep waits (the watermark stays where it is) */
        if (!qbc_rec__allowance_permits(r, QBC_USAGE_CDC, 1)) {
            realm->waiting = 1;
            min_into(&next, now + NS);
            continue;
        }
        if (qbc_budget_available(&realm->budget, now, REC_PRIO_CDC) == 0) {
            int64_t t = qbc_budget_next(&realm->budget, now, REC_PRIO_CDC);
            if (t > now)
                min_into(&next, t);
            continue;
        }
        rec_cdc_part_t *p = &c->parts[0];
        int rc;
        if (p->until_ns > 0) { /* a crowded second, through the query API */
            size_t na = qbc_rec__backfill_n_anchors(p->anchors);
            p->page_pos = p->position > na ? p->position - na : 1;
            char *q = qbc_rec_window_query(p->entities, p->since_ns, p->until_ns, p->page_pos);
            char *url = qbc_rec_query_url(r->api_base, realm->name, r->cfg.minorversion);
            rc = qbc_rec__start_api(r, realm, url, q, QBC_USAGE_CDC, on_window_answer, NULL);
            free(url);
            free(q);
        } else {
            char *url = qbc_rec_cdc_url(r->api_base, realm->name, p->entities, p->since_ns, r->cfg.minorversion);
            rc = qbc_rec__start_api(r, realm, url, NULL, QBC_USAGE_CDC, on_cdc_answer, NULL);
            free(url);
        }
        if (rc != 0) {
            c->retry_ns = now + NS;
            continue;
        }
        c->inflight = 1;
        c->requests++;
        REC_STAT(r, cdc_requests, 1);
    }
    return next;
}
