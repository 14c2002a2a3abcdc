/*
 * admin.c — the operators' endpoints under /admin/ (bearer QBCDC_ADMIN_TOKEN).
 *
 *   PUT /admin/realms/{realm}/tokens   register or replace a realm's OAuth tokens
 *   GET /admin/realms                  every realm with its status and pending work
 *   DELETE /admin/realms/{realm}       revoke at Intuit, erase the tokens (connect.c)
 *   GET /admin/dead-letters            notices the reconciler gave up on
 *   POST /admin/dead-letters/{id}/retry  put one back into pending work
 *   POST /admin/realms/{realm}/cdc     ask the reconciler for a CDC sweep of the realm now
 *   POST /admin/realms/{realm}/backfill  start a backfill job
 *   GET /admin/jobs, GET /admin/jobs/{id}  backfill jobs and their progress
 *   DELETE /admin/jobs/{id}, POST /admin/jobs/{id}/cancel  cancel a backfill job (both work)
 *
 * Tokens never appear in an answer or a log line; the answer to PUT comes only after
 * the encrypted tokens are committed.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "ingress_internal.h"

/* realm ids are numeric at Intuit (qbo-facts §11 says: don't over-validate); we only
 * keep them safe as keys, paths and log text */
int valid_realm(const char *s, size_t len)
{
    if (len == 0 || len >= QBC_REALM_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

void activate_realm_job(qbc_ingress_t *ing, ingress_job_t *j)
{
    admin_part_t *a = j->a;
    /* keep what the realm already had (CDC watermark), but make it active again */
    if (qbc_store_realm_get(ing->store, a->realm, &a->realm_state) != 0) {
        memset(&a->realm_state, 0, sizeof(a->realm_state));
        snprintf(a->realm_state.realm, sizeof(a->realm_state.realm), "%s", a->realm);
    }
    a->realm_state.status = QBC_REALM_ACTIVE;
    a->realm_state.last_error[0] = '\0';
    a->realm_state.connected_ns = qbc_now_ns();
    j->job.realm = a->realm;
    j->job.realm_state = &a->realm_state;
    j->job.tokens = a->tokens;
    /* whether the realm is new is decided by the store, in the transaction that registers it */
    j->job.snapshot_if_new = ing->snapshot_on_connect;
}

static int put_tokens(qbc_ingress_t *ing, h2o_req_t *req, h2o_iovec_t realm)
{
    json_error_t jerr;
    json_t *body = json_loadb(req->entity.base != NULL ? req->entity.base : "", req->entity.len, 0, &jerr);
    json_t *rt = body ? json_object_get(body, "refresh_token") : NULL;
    json_t *at = body ? json_object_get(body, "access_token") : NULL;
    json_t *ex = body ? json_object_get(body, "expires_in") : NULL;

    if (!valid_realm(realm.base, realm.len)) {
        json_decref(body);
        respond_error(req, 400, "Bad Request", "bad_realm", "realm ids are 1-63 letters, digits, '-' or '_'");
        return 0;
    }
    if (body == NULL || !json_is_object(body)) {
        json_decref(body);
        respond_error(req, 400, "Bad Request", "bad_json", "body must be a JSON object");
        return 0;
    }
    const char *problem = NULL;
    if (!json_is_string(rt) || json_string_length(rt) == 0 || json_string_length(rt) >= QBC_TOKEN_MAX)
        problem = "refresh_token must be a non-empty string";
    else if (at != NULL && !json_is_null(at) && (!json_is_string(at) || json_string_length(at) >= QBC_TOKEN_MAX))
        problem = "access_token must be a string";
    else if (ex != NULL && !json_is_null(ex) &&
             (!json_is_integer(ex) || json_integer_value(ex) <= 0 || json_integer_value(ex) > 86400 * 365))
        problem = "expires_in must be a positive number of seconds";
    if (problem != NULL) {
        json_decref(body);
        respond_error(req, 400, "Bad Request", "bad_tokens", problem);
        return 0;
    }

    ingress_job_t *j = ingress_job_new(ing, req, QBC_JOB_REALM);
    snprintf(j->a->realm, sizeof(j->a->realm), "%.*s", (int)realm.len, realm.base);
    j->a->tokens = qbc_calloc(1, sizeof(*j->a->tokens));
    snprintf(j->a->tokens->refresh_token, QBC_TOKEN_MAX, "%s", json_string_value(rt));
    if (json_is_string(at) && json_string_length(at) > 0) {
        snprintf(j->a->tokens->access_token, QBC_TOKEN_MAX, "%s", json_string_value(at));
        int64_t ttl = json_is_integer(ex) ? json_integer_value(ex) : 3600;
        j->a->tokens->access_expires_ns = qbc_now_ns() + ttl * 1000000000;
    }
    json_decref(body); /* jansson does not wipe: the tokens also linger in the request buffer until it is freed */

    activate_realm_job(ing, j);
    if (ingress_submit(ing, j) != 0) {
        ingress_job_free(j);
        respond_error(req, 503, "Service Unavailable", "shutting_down", "the service is stopping; retry later");
    }
    return 0;
}

typedef struct {
    json_t *list;
    qbc_store_t *store;
    json_t *catchup;   /* realm -> the automatic backfill still filling its gap: {"job","since"} */
    const char *only;  /* feed_completeness: just this realm (NULL: all) */
    json_t *snapshots; /* realm -> its latest snapshot job, as GET /admin/realms shows it */
} realms_ctx_t;

static int job_live(const qbc_backfill_t *b)
{
    return b->status == QBC_BACKFILL_QUEUED || b->status == QBC_BACKFILL_RUNNING;
}

static size_t job_n_entities(const qbc_backfill_t *b)
{
    size_t n = 0, len;
    const char *e;
    for (const char *p = b->entities; (p = qbc_list_next(p, &e, &len)) != NULL;)
        n += len > 0 && len < QBC_ENTITY_MAX;
    return n;
}

/*
 * a realm whose CDC watermark jumped ahead over a gap that a backfill is still filling;
 * and each realm's latest snapshot job
 */
static int catchup_cb(const qbc_backfill_t *b, void *p)
{
    realms_ctx_t *ctx = p;
    int snapshot = strcmp(b->reason, QBC_BACKFILL_REASON_SNAPSHOT) == 0;
    if (job_live(b) && strcmp(b->reason, "cdc_too_old") == 0 && json_object_get(ctx->catchup, b->realm) == NULL)
        json_object_set_new(ctx->catchup, b->realm,
                            json_pack("{s:I,s:I}", "job", (json_int_t)b->id, "since", (json_int_t)b->since_ns));
    if (snapshot) { /* the scan goes in id order: the latest wins */
        char id[24];
        snprintf(id, sizeof(id), "%llu", (unsigned long long)b->id);
        json_object_set_new(ctx->snapshots, b->realm,
                            json_pack("{s:s,s:s,s:i,s:I,s:I}", "job", id, "status", qbc_backfill_status_name(b->status),
                                      "entities_done", (int)b->entities_done, "entities_total",
                                      (json_int_t)job_n_entities(b), "records_seen", (json_int_t)b->records_seen));
        if (b->entities[0] == '\0') /* "" = the CDC list, resolved when the job starts */
            json_object_set_new(json_object_get(ctx->snapshots, b->realm), "entities_total", json_null());
    }
    return 0;
}

static int pending_count_cb(const qbc_pending_t *p, void *ctx)
{
    (void)p;
    (*(uint64_t *)ctx)++;
    return 0;
}

/*
 * complete_until: the feed holds every change up to here, confirmed by a complete CDC
 * sweep — or, while an automatic backfill fills the gap of a realm idle past CDC's
 * lookback, only up to where that gap starts. (cdc_watermark is where the next sweep
 * starts.) 0 when nothing is confirmed yet, and while the realm's snapshot is queued or
 * running: the objects from before its connection are still coming.
 */
static int64_t complete_until(realms_ctx_t *ctx, const qbc_realm_t *r)
{
    json_t *gap = json_object_get(ctx->catchup, r->realm);
    json_t *snap = json_object_get(ctx->snapshots, r->realm);
    const char *snap_status = snap != NULL ? json_string_value(json_object_get(snap, "status")) : NULL;
    if (snap_status != NULL && (strcmp(snap_status, "queued") == 0 || strcmp(snap_status, "running") == 0))
        return 0;
    return gap ? json_integer_value(json_object_get(gap, "since")) : r->cdc_watermark_ns;
}

static int realm_cb(const qbc_realm_t *r, int has_tokens, void *p)
{
    realms_ctx_t *ctx = p;
    uint64_t pending = 0;
    char ts[QBC_TIME_BUFSZ];

    qbc_store_pending_scan(ctx->store, r->realm, pending_count_cb, &pending);
    json_t *snap = json_object_get(ctx->snapshots, r->realm);
    const char *snap_status = snap != NULL ? json_string_value(json_object_get(snap, "status")) : NULL;
    /* a derived view: the stored status stays active while the snapshot job is queued or running */
    int snapshotting = r->status == QBC_REALM_ACTIVE && snap_status != NULL &&
                       (strcmp(snap_status, "queued") == 0 || strcmp(snap_status, "running") == 0);
    json_t *o = json_pack("{s:s,s:s,s:b,s:I}", "realm", r->realm, "status",
                          snapshotting ? "snapshotting" : qbc_realm_status_name(r->status), "has_tokens", has_tokens,
                          "pending", (json_int_t)pending);
    json_object_set_new(o, "snapshot", snap != NULL ? json_incref(snap) : json_null());
    json_object_set_new(o, "last_error", r->last_error[0] ? json_string(r->last_error) : json_null());
    json_object_set_new(o, "connected_at",
                        r->connected_ns ? json_string(qbc_time_format(r->connected_ns, ts)) : json_null());
    json_object_set_new(o, "last_cdc", r->last_cdc_ns ? json_string(qbc_time_format(r->last_cdc_ns, ts)) : json_null());
    json_t *gap = json_object_get(ctx->catchup, r->realm);
    int64_t complete = complete_until(ctx, r);
    json_object_set_new(o, "cdc_watermark",
                        r->cdc_watermark_ns ? json_string(qbc_time_format(r->cdc_watermark_ns, ts)) : json_null());
    json_object_set_new(o, "complete_until", complete ? json_string(qbc_time_format(complete, ts)) : json_null());
    json_object_set_new(o, "catchup_job",
                        gap ? json_integer(json_integer_value(json_object_get(gap, "job"))) : json_null());
    json_object_set_new(o, "cdc_requested",
                        r->cdc_requested_ns ? json_string(qbc_time_format(r->cdc_requested_ns, ts)) : json_null());
    json_array_append_new(ctx->list, o);
    return 0;
}

static int completeness_cb(const qbc_realm_t *r, int has_tokens, void *p)
{
    realms_ctx_t *ctx = p;
    char ts[QBC_TIME_BUFSZ];
    int64_t complete = complete_until(ctx, r);
    (void)has_tokens;
    if (complete != 0 && (ctx->only == NULL || strcmp(ctx->only, r->realm) == 0))
        json_object_set_new(ctx->list, r->realm, json_string(qbc_time_format(complete, ts)));
    return 0;
}

char *feed_completeness(qbc_ingress_t *ing, const char *realm)
{
    realms_ctx_t ctx = {json_object(), ing->store, json_object(), realm, json_object()};
    char *text = NULL;
    if (qbc_store_backfill_scan(ing->store, catchup_cb, &ctx) == 0 &&
        qbc_store_realm_scan(ing->store, completeness_cb, &ctx) == 0)
        text = json_dumps(ctx.list, JSON_COMPACT);
    json_decref(ctx.list);
    json_decref(ctx.catchup);
    json_decref(ctx.snapshots);
    return text;
}

static int get_realms(qbc_ingress_t *ing, h2o_req_t *req)
{
    realms_ctx_t ctx = {json_array(), ing->store, json_object(), NULL, json_object()};
    if (qbc_store_backfill_scan(ing->store, catchup_cb, &ctx) != 0 ||
        qbc_store_realm_scan(ing->store, realm_cb, &ctx) != 0) {
        json_decref(ctx.list);
        json_decref(ctx.catchup);
        json_decref(ctx.snapshots);
        respond_error(req, 503, "Service Unavailable", "store_unavailable", "cannot read the store");
        return 0;
    }
    json_decref(ctx.catchup);
    json_decref(ctx.snapshots);
    if (ing->hooks.realm_stats != NULL)
        ing->hooks.realm_stats(ing->hooks.ctx, ctx.list);
    json_t *o = json_pack("{s:o}", "realms", ctx.list);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    respond_json(req, 200, "OK", text);
    free(text);
    return 0;
}

static int dead_cb(const qbc_dead_t *d, void *ctx)
{
    char ts[QBC_TIME_BUFSZ];
    json_array_append_new(ctx, json_pack("{s:I,s:s,s:s,s:s,s:s,s:i,s:s,s:s}", "id", (json_int_t)d->id, "realm",
                                         d->realm, "entity", d->entity, "entity_id", d->entity_id, "op",
                                         qbc_op_name(d->last_op), "attempts", (int)d->attempts, "error", d->error,
                                         "died_at", qbc_time_format(d->died_ns, ts)));
    return json_array_size(ctx) >= 1000; /* the first 1000; the CLI lists all */
}

static int get_dead_letters(qbc_ingress_t *ing, h2o_req_t *req)
{
    json_t *list = json_array();
    if (qbc_store_dead_scan(ing->store, dead_cb, list) != 0) {
        json_decref(list);
        respond_error(req, 503, "Service Unavailable", "store_unavailable", "cannot read the store");
        return 0;
    }
    json_t *o = json_pack("{s:o}", "dead_letters", list);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    respond_json(req, 200, "OK", text);
    free(text);
    return 0;
}

static int retry_dead_letter(qbc_ingress_t *ing, h2o_req_t *req, h2o_iovec_t id)
{
    char buf[24], *end;
    if (id.len == 0 || id.len >= sizeof(buf)) {
        respond_error(req, 404, "Not Found", "not_found", "no such dead letter");
        return 0;
    }
    memcpy(buf, id.base, id.len);
    buf[id.len] = '\0';
    unsigned long long n = strtoull(buf, &end, 10);
    if (*end != '\0' || buf[0] == '-') {
        respond_error(req, 404, "Not Found", "not_found", "no such dead letter");
        return 0;
    }
    ingress_job_t *j = ingress_job_new(ing, req, QBC_JOB_REDRIVE);
    j->job.dead_id = n;
    if (ingress_submit(ing, j) != 0) {
        ingress_job_free(j);
        respond_error(req, 503, "Service Unavailable", "shutting_down", "retry later");
    }
    return 0;
}

/* ---------------------------------------------------------------- CDC and backfill jobs */

static json_t *time_or_null(int64_t ns)
{
    char ts[QBC_TIME_BUFSZ];
    return ns ? json_string(qbc_time_format(ns, ts)) : json_null();
}

static json_t *job_json(const qbc_backfill_t *b)
{
    char id[24];
    json_t *ents = json_array();
    size_t n = 0;
    const char *current = NULL;
    char cur[QBC_ENTITY_MAX] = "";
    const char *e;
    size_t len;
    for (const char *p = b->entities; (p = qbc_list_next(p, &e, &len)) != NULL;) {
        if (len > 0 && len < QBC_ENTITY_MAX) {
            json_array_append_new(ents, json_stringn(e, len));
            if (n == b->entity_index) {
                memcpy(cur, e, len);
                cur[len] = '\0';
                current = cur;
            }
            n++;
        }
    }
    snprintf(id, sizeof(id), "%llu", (unsigned long long)b->id);
    int live = b->status == QBC_BACKFILL_QUEUED || b->status == QBC_BACKFILL_RUNNING;
    json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "job", id, "realm", b->realm, "status",
                          qbc_backfill_status_name(b->status), "reason", b->reason);
    /* "" = the CDC entity list, resolved (and written here) when the job starts */
    json_object_set_new(o, "entities", b->entities[0] ? ents : (json_decref(ents), json_null()));
    json_object_set_new(o, "since", time_or_null(b->since_ns));
    json_object_set_new(o, "entities_done", json_integer(b->entities_done));
    json_object_set_new(o, "entities_total", b->entities[0] ? json_integer((json_int_t)n) : json_null());
    json_object_set_new(o, "current_entity", live && current ? json_string(current) : json_null());
    json_object_set_new(o, "start_position", json_integer((json_int_t)b->start_position));
    json_object_set_new(o, "records_seen", json_integer((json_int_t)b->records_seen));
    json_object_set_new(o, "versions_new", json_integer((json_int_t)b->versions_new));
    json_object_set_new(o, "rereads", json_integer((json_int_t)b->rereads));
    json_object_set_new(o, "created_at", time_or_null(b->created_ns));
    json_object_set_new(o, "started_at", time_or_null(b->started_ns));
    json_object_set_new(o, "finished_at", time_or_null(b->finished_ns));
    json_object_set_new(o, "error", b->error[0] ? json_string(b->error) : json_null());
    json_t *skipped = json_array();
    for (uint32_t i = 0; i < b->n_skipped && i < QBC_BACKFILL_SKIPPED_MAX; i++)
        json_array_append_new(skipped,
                              json_pack("{s:s,s:s}", "entity", b->skipped[i].entity, "error", b->skipped[i].error));
    json_object_set_new(o, "skipped", skipped);
    return o;
}

static void respond_obj(h2o_req_t *req, int status, const char *reason, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    respond_json(req, status, reason, text);
    free(text);
}

void admin_job_answer(ingress_job_t *j, h2o_req_t *req)
{
    if (req == NULL)
        return;
    if (j->job.result != 0) {
        respond_error(req, 503, "Service Unavailable", "store_unavailable", "could not store the request; retry later");
        return;
    }
    if (j->job.kind == QBC_JOB_CDC_REQUEST) {
        if (j->job.n_retired == 0) {
            respond_error(req, 404, "Not Found", "not_found", "no such realm");
            return;
        }
        respond_obj(req, 202, "Accepted",
                    json_pack("{s:s,s:s,s:o}", "realm", j->a->realm, "status", "scheduled", "requested_at",
                              time_or_null(j->job.received_ns)));
        return;
    }
    if (j->job.backfill_cancel != 0) {
        if (j->job.backfill_id == 0) {
            respond_error(req, 404, "Not Found", "not_found", "no such job");
            return;
        }
        respond_obj(req, 200, "OK", job_json(&j->job.backfill_out));
        return;
    }
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)j->job.backfill_id);
    respond_obj(req, 202, "Accepted", json_pack("{s:s,s:s,s:s}", "job", id, "realm", j->a->realm, "status", "queued"));
}

static int realm_known(qbc_ingress_t *ing, h2o_req_t *req, h2o_iovec_t seg, char *realm)
{
    qbc_realm_t st;
    if (!valid_realm(seg.base, seg.len)) {
        respond_error(req, 404, "Not Found", "not_found", "no such realm");
        return 0;
    }
    snprintf(realm, QBC_REALM_MAX, "%.*s", (int)seg.len, seg.base);
    if (qbc_store_realm_get(ing->store, realm, &st) != 0) {
        respond_error(req, 404, "Not Found", "not_found", "no such realm");
        return 0;
    }
    return 1;
}

static int post_cdc(qbc_ingress_t *ing, h2o_req_t *req, h2o_iovec_t seg)
{
    char realm[QBC_REALM_MAX];
    if (!realm_known(ing, req, seg, realm))
        return 0;
    ingress_job_t *j = ingress_job_new(ing, req, QBC_JOB_CDC_REQUEST);
    snprintf(j->a->realm, sizeof(j->a->realm), "%s", realm);
    j->job.realm = j->a->realm;
    if (ingress_submit(ing, j) != 0) {
        ingress_job_free(j);
        respond_error(req, 503, "Service Unavailable", "shutting_down", "retry later");
    }
    return 0;
}

static int post_backfill(qbc_ingress_t *ing, h2o_req_t *req, h2o_iovec_t seg)
{
    char realm[QBC_REALM_MAX];
    if (!realm_known(ing, req, seg, realm))
        return 0;
    json_t *body = NULL, *ents = NULL, *since = NULL;
    if (req->entity.len > 0) {
        body = json_loadb(req->entity.base, req->entity.len, 0, NULL);
        if (!json_is_object(body)) {
            json_decref(body);
            respond_error(req, 400, "Bad Request", "bad_json", "body must be a JSON object (or empty)");
            return 0;
        }
        ents = json_object_get(body, "entities");
        since = json_object_get(body, "since");
    }
    ingress_job_t *j = ingress_job_new(ing, req, QBC_JOB_BACKFILL);
    qbc_backfill_t *b = &j->a->backfill;
    const char *problem = NULL, *code = "bad_backfill";
    char unknown[1200];
    snprintf(j->a->realm, sizeof(j->a->realm), "%s", realm);
    snprintf(b->realm, sizeof(b->realm), "%s", realm);
    snprintf(b->reason, sizeof(b->reason), "operator");
    b->start_position = 1;
    if (ents != NULL && !json_is_null(ents)) {
        size_t i, len = 0;
        json_t *e;
        if (!json_is_array(ents))
            problem = "entities must be an array of entity names";
        json_array_foreach(ents, i, e)
        {
            const char *given = json_string_value(e);
            char name[QBC_ENTITY_MAX], all[1024];
            if (given == NULL) {
                problem = "entities must be QBO entity names such as \"Invoice\"";
                break;
            }
            /* checked up front: a name QBO does not know would only fail the job later */
            if (qbc_entity_known(given, json_string_length(e), name) != 0) {
                qbc_entity_known_list(all, sizeof(all));
                snprintf(unknown, sizeof(unknown), "unknown entity '%.64s' (known: %s)", given, all);
                problem = unknown;
                code = "bad_request";
                break;
            }
            size_t n = strlen(name);
            if (qbc_list_has(b->entities, name))
                continue; /* named twice: read once */
            if (len + n + 2 >= sizeof(b->entities)) {
                problem = "too many entities";
                break;
            }
            len += (size_t)snprintf(b->entities + len, sizeof(b->entities) - len, "%s%s", len ? "," : "", name);
        }
        if (problem == NULL && len == 0 && json_is_array(ents))
            problem = "entities must not be empty (leave it out for the CDC entity list)";
    }
    if (problem == NULL && since != NULL && !json_is_null(since) &&
        (!json_is_string(since) ||
         qbc_time_parse(json_string_value(since), json_string_length(since), &b->since_ns) != 0 || b->since_ns <= 0))
        problem = "since must be an ISO-8601 date-time with an offset, e.g. 2026-01-31T00:00:00Z";
    json_decref(body);
    if (problem != NULL) {
        ingress_job_free(j);
        respond_error(req, 400, "Bad Request", code, problem);
        return 0;
    }
    j->job.backfill = b;
    if (ingress_submit(ing, j) != 0) {
        ingress_job_free(j);
        respond_error(req, 503, "Service Unavailable", "shutting_down", "retry later");
    }
    return 0;
}

static int parse_job_id(h2o_iovec_t seg, uint64_t *out)
{
    char buf[24], *end;
    if (seg.len == 0 || seg.len >= sizeof(buf) || seg.base[0] < '0' || seg.base[0] > '9')
        return -1;
    memcpy(buf, seg.base, seg.len);
    buf[seg.len] = '\0';
    unsigned long long n = strtoull(buf, &end, 10);
    if (*end != '\0' || n == 0)
        return -1;
    *out = n;
    return 0;
}

static int get_job(qbc_ingress_t *ing, h2o_req_t *req, h2o_iovec_t seg)
{
    uint64_t id;
    qbc_backfill_t b;
    int rc;
    if (parse_job_id(seg, &id) != 0 || (rc = qbc_store_backfill_get(ing->store, id, &b)) == QBC_ENOTFOUND) {
        respond_error(req, 404, "Not Found", "not_found", "no such job");
        return 0;
    }
    if (rc != 0) {
        respond_error(req, 503, "Service Unavailable", "store_unavailable", "cannot read the store");
        return 0;
    }
    respond_obj(req, 200, "OK", job_json(&b));
    return 0;
}

static int job_list_cb(const qbc_backfill_t *b, void *ctx)
{
    json_array_append_new(ctx, job_json(b));
    return 0;
}

static int get_jobs(qbc_ingress_t *ing, h2o_req_t *req)
{
    json_t *list = json_array();
    if (qbc_store_backfill_scan(ing->store, job_list_cb, list) != 0) {
        json_decref(list);
        respond_error(req, 503, "Service Unavailable", "store_unavailable", "cannot read the store");
        return 0;
    }
    respond_obj(req, 200, "OK", json_pack("{s:o}", "jobs", list));
    return 0;
}

static int cancel_job(qbc_ingress_t *ing, h2o_req_t *req, h2o_iovec_t seg)
{
    uint64_t id;
    if (parse_job_id(seg, &id) != 0) {
        respond_error(req, 404, "Not Found", "not_found", "no such job");
        return 0;
    }
    ingress_job_t *j = ingress_job_new(ing, req, QBC_JOB_BACKFILL);
    j->job.backfill_cancel = id;
    if (ingress_submit(ing, j) != 0) {
        ingress_job_free(j);
        respond_error(req, 503, "Service Unavailable", "shutting_down", "retry later");
    }
    return 0;
}

int on_admin(h2o_handler_t *_self, h2o_req_t *req)
{
    qbc_ingress_t *ing = ((ingress_handler_t *)_self)->ing;
    h2o_iovec_t seg[4];
    int n;

    if (require_bearer(req, ing->admin_token, "/admin") != 0)
        return 0;
    n = path_segments(req, 1, seg, 4); /* after "admin" */
    int is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
    int is_put = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("PUT"));
    int is_post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    int is_delete = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"));
    if (n == 1 && h2o_memis(seg[0].base, seg[0].len, H2O_STRLIT("realms"))) {
        if (is_get)
            return get_realms(ing, req);
        respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use GET");
        return 0;
    }
    if (n == 2 && h2o_memis(seg[0].base, seg[0].len, H2O_STRLIT("realms"))) {
        char realm[QBC_REALM_MAX];
        if (!is_delete) {
            respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use DELETE");
            return 0;
        }
        if (!valid_realm(seg[1].base, seg[1].len)) {
            respond_error(req, 404, "Not Found", "not_found", "no such realm");
            return 0;
        }
        snprintf(realm, sizeof(realm), "%.*s", (int)seg[1].len, seg[1].base);
        return disconnect_realm(ing, req, realm);
    }
    if (n == 1 && h2o_memis(seg[0].base, seg[0].len, H2O_STRLIT("dead-letters"))) {
        if (is_get)
            return get_dead_letters(ing, req);
        respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use GET");
        return 0;
    }
    if (n == 3 && h2o_memis(seg[0].base, seg[0].len, H2O_STRLIT("dead-letters")) &&
        h2o_memis(seg[2].base, seg[2].len, H2O_STRLIT("retry"))) {
        if (is_post)
            return retry_dead_letter(ing, req, seg[1]);
        respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use POST");
        return 0;
    }
    if (n == 3 && h2o_memis(seg[0].base, seg[0].len, H2O_STRLIT("realms")) &&
        h2o_memis(seg[2].base, seg[2].len, H2O_STRLIT("tokens"))) {
        if (is_put)
            return put_tokens(ing, req, seg[1]);
        respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use PUT");
        return 0;
    }
    if (n == 3 && h2o_memis(seg[0].base, seg[0].len, H2O_STRLIT("realms")) &&
        (h2o_memis(seg[2].base, seg[2].len, H2O_STRLIT("cdc")) ||
         h2o_memis(seg[2].base, seg[2].len, H2O_STRLIT("backfill")))) {
        if (!is_post) {
            respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use POST");
            return 0;
        }
        return seg[2].len == 3 ? post_cdc(ing, req, seg[1]) : post_backfill(ing, req, seg[1]);
    }
    if (n == 1 && h2o_memis(seg[0].base, seg[0].len, H2O_STRLIT("jobs"))) {
        if (is_get)
            return get_jobs(ing, req);
        respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use GET");
        return 0;
    }
    if (n == 2 && h2o_memis(seg[0].base, seg[0].len, H2O_STRLIT("jobs"))) {
        if (is_get)
            return get_job(ing, req, seg[1]);
        if (is_delete)
            return cancel_job(ing, req, seg[1]);
        respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use GET or DELETE");
        return 0;
    }
    if (n == 3 && h2o_memis(seg[0].base, seg[0].len, H2O_STRLIT("jobs")) &&
        h2o_memis(seg[2].base, seg[2].len, H2O_STRLIT("cancel"))) {
        if (is_post)
            return cancel_job(ing, req, seg[1]);
        respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use POST");
        return 0;
    }
    respond_error(req, 404, "Not Found", "not_found", "no such admin endpoint");
    return 0;
}
