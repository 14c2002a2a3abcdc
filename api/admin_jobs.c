/*
 * admin_jobs.c — operators' CDC requests and backfill jobs (admin.c routes here).
 *
 *   POST /admin/realms/{realm}/cdc     ask the reconciler for a CDC sweep of the realm now
 *   POST /admin/realms/{realm}/backfill  start a backfill job
 *   GET /admin/jobs, GET /admin/jobs/{id}  backfill jobs and their progress
 *   DELETE /admin/jobs/{id}, POST /admin/jobs/{id}/cancel  cancel a backfill job (both work)
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api_internal.h"

static json_t *time_or_null(int64_t ns)
{
    char ts[QBC_TIME_BUFSZ];
    return ns ? json_string(qbc_time_format(ns, ts)) : json_null();
}

static json_t *job_json(const qbc_api_t *api, const qbc_backfill_t *b)
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
    /* a derived state: the stored one stays queued or running while the month's budget holds it back */
    char why[200] = "";
    int waiting =
        live && api->hooks.backfill_waiting != NULL && api->hooks.backfill_waiting(api->hooks.ctx, why, sizeof(why));
    json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "job", id, "realm", b->realm, "status",
                          waiting ? "waiting_budget" : qbc_backfill_status_name(b->status), "reason", b->reason);
    json_object_set_new(o, "waiting_reason", waiting ? json_string(why) : json_null());
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

/* a store job that creates or cancels a backfill job, bound to its request */
typedef struct {
    api_job_t aj;
    qbc_backfill_job_t bj;
    qbc_backfill_t create;
} backfill_op_t;

/* a CDC request bound to its request */
typedef struct {
    api_job_t aj;
    qbc_cdc_request_job_t cj;
} cdc_op_t;

static void op_dispose(api_job_t *aj)
{
    free(aj);
}

static int store_failed(h2o_req_t *req, int result)
{
    if (req == NULL)
        return 1;
    if (result == 0)
        return 0;
    qbc_api__respond_error(req, 503, "Service Unavailable", "store_unavailable",
                           "could not store the request; retry later");
    return 1;
}

static void cdc_answer(api_job_t *aj, h2o_req_t *req)
{
    cdc_op_t *op = (cdc_op_t *)aj;
    if (store_failed(req, op->cj.job.result))
        return;
    if (!op->cj.found) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such realm");
        return;
    }
    qbc_api__respond_obj(req, 202, "Accepted",
                         json_pack("{s:s,s:s,s:o}", "realm", op->cj.realm, "status", "scheduled", "requested_at",
                                   time_or_null(op->cj.requested_ns)));
}

static void backfill_answer(api_job_t *aj, h2o_req_t *req)
{
    backfill_op_t *op = (backfill_op_t *)aj;
    if (store_failed(req, op->bj.job.result))
        return;
    if (op->bj.cancel_id != 0) {
        if (op->bj.id == 0)
            qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such job");
        else
            qbc_api__respond_obj(req, 200, "OK", job_json(op->aj.api, &op->bj.out));
        return;
    }
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)op->bj.id);
    qbc_api__respond_obj(req, 202, "Accepted",
                         json_pack("{s:s,s:s,s:s}", "job", id, "realm", op->create.realm, "status", "queued"));
}

static backfill_op_t *backfill_op_new(qbc_api_t *api, h2o_req_t *req)
{
    backfill_op_t *op = qbc_calloc(1, sizeof(*op));
    qbc_api__job_init(&op->aj, api, req, &op->bj.job, backfill_answer, op_dispose);
    return op;
}

static int realm_known(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t seg, char *realm)
{
    qbc_realm_t st;
    if (!qbc_api__valid_realm(seg.base, seg.len)) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such realm");
        return 0;
    }
    snprintf(realm, QBC_REALM_MAX, "%.*s", (int)seg.len, seg.base);
    if (qbc_store_realm_get(api->store, realm, &st) != 0) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such realm");
        return 0;
    }
    return 1;
}

int qbc_api__post_cdc(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t seg)
{
    char realm[QBC_REALM_MAX];
    if (qbc_api__forward_realm(api, req, seg)) /* cluster mode: the realm's owner sweeps it */
        return 0;
    if (!realm_known(api, req, seg, realm))
        return 0;
    cdc_op_t *op = qbc_calloc(1, sizeof(*op));
    qbc_api__job_init(&op->aj, api, req, &op->cj.job, cdc_answer, op_dispose);
    snprintf(op->cj.realm, sizeof(op->cj.realm), "%s", realm);
    qbc_api__job_submitted(&op->aj, qbc_store_request_cdc(api->store, &op->cj));
    return 0;
}

int qbc_api__post_backfill(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t seg)
{
    char realm[QBC_REALM_MAX];
    if (qbc_api__forward_realm(api, req, seg)) /* cluster mode: the realm's owner creates (and runs) it */
        return 0;
    if (!realm_known(api, req, seg, realm))
        return 0;
    json_t *body = NULL, *ents = NULL, *since = NULL;
    if (req->entity.len > 0) {
        body = json_loadb(req->entity.base, req->entity.len, 0, NULL);
        if (!json_is_object(body)) {
            json_decref(body);
            qbc_api__respond_error(req, 400, "Bad Request", "bad_json", "body must be a JSON object (or empty)");
            return 0;
        }
        ents = json_object_get(body, "entities");
        since = json_object_get(body, "since");
    }
    backfill_op_t *op = backfill_op_new(api, req);
    qbc_backfill_t *b = &op->create;
    const char *problem = NULL, *code = "bad_backfill";
    char unknown[1200];
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
        qbc_api__job_free(&op->aj);
        qbc_api__respond_error(req, 400, "Bad Request", code, problem);
        return 0;
    }
    op->bj.create = b;
    qbc_api__job_submitted(&op->aj, qbc_store_backfill(api->store, &op->bj));
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

int qbc_api__get_job(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t seg)
{
    uint64_t id = 0;
    qbc_backfill_t b;
    int rc = 0;
    if (parse_job_id(seg, &id) != 0 || (rc = qbc_store_backfill_get(api->store, id, &b)) == QBC_ENOTFOUND) {
        /* cluster mode: another node's job not imported here yet: its creator answers */
        if (!(id != 0 && rc == QBC_ENOTFOUND && qbc_api__forward_job(api, req, id)))
            qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such job");
        return 0;
    }
    if (rc != 0) {
        qbc_api__respond_error(req, 503, "Service Unavailable", "store_unavailable", "cannot read the store");
        return 0;
    }
    qbc_api__respond_obj(req, 200, "OK", job_json(api, &b));
    return 0;
}

typedef struct {
    const qbc_api_t *api;
    json_t *list;
} job_list_t;

static int job_list_cb(const qbc_backfill_t *b, void *ctx)
{
    job_list_t *l = ctx;
    json_array_append_new(l->list, job_json(l->api, b));
    return 0;
}

int qbc_api__get_jobs(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id)
{
    (void)id;
    job_list_t l = {api, json_array()};
    qbc_api__respond_list(req, "jobs", l.list, qbc_store_backfill_scan(api->store, job_list_cb, &l));
    return 0;
}

int qbc_api__cancel_job(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t seg)
{
    uint64_t id;
    if (parse_job_id(seg, &id) != 0) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such job");
        return 0;
    }
    qbc_backfill_t *b = qbc_alloc(sizeof(*b));
    int held = qbc_store_backfill_get(api->store, id, b) != QBC_ENOTFOUND;
    free(b);
    if (!held && qbc_api__forward_job(api, req, id)) /* cluster mode: not imported here yet */
        return 0;
    backfill_op_t *op = backfill_op_new(api, req);
    op->bj.cancel_id = id;
    qbc_api__job_submitted(&op->aj, qbc_store_backfill(api->store, &op->bj));
    return 0;
}
