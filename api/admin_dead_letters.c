/*
 * admin_dead_letters.c — notices the reconciler gave up on (admin.c routes here).
 *
 *   GET /admin/dead-letters            notices the reconciler gave up on
 *   POST /admin/dead-letters/{id}/retry  put one back into pending work
 *
 * Cluster mode (the dead_letters and dead_retry hooks): the cluster's dead letters, with ids
 * <node>.<store>.<n>; a retry is asked through the shared bucket (cluster.h) and answered 202,
 * and the owner of the realm redrives it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api_internal.h"

static int dead_cb(const qbc_dead_t *d, void *ctx)
{
    char ts[QBC_TIME_BUFSZ];
    json_array_append_new(ctx, json_pack("{s:I,s:s,s:s,s:s,s:s,s:i,s:s,s:s}", "id", (json_int_t)d->id, "realm",
                                         d->realm, "entity", d->entity, "entity_id", d->entity_id, "op",
                                         qbc_op_name(d->last_op), "attempts", (int)d->attempts, "error", d->error,
                                         "died_at", qbc_time_format(d->died_ns, ts)));
    return json_array_size(ctx) >= 1000; /* the first 1000; the CLI lists all */
}

int qbc_api__get_dead_letters(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id)
{
    (void)id;
    json_t *list = json_array();
    if (api->hooks.dead_letters != NULL) /* cluster mode: every node's, by cluster id */
        qbc_api__respond_list(req, "dead_letters", list, api->hooks.dead_letters(api->hooks.ctx, list));
    else
        qbc_api__respond_list(req, "dead_letters", list, qbc_store_dead_scan(api->store, dead_cb, list));
    return 0;
}

/* cluster mode: the retry is asked through the shared bucket; the realm's owner redrives it */
static int retry_in_cluster(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id)
{
    char buf[128];
    if (id.len == 0 || id.len >= sizeof(buf)) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such dead letter");
        return 0;
    }
    memcpy(buf, id.base, id.len);
    buf[id.len] = '\0';
    json_t *o = json_object();
    int rc = api->hooks.dead_retry(api->hooks.ctx, buf, o);
    if (rc == 0) {
        char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        qbc_api__respond_json(req, 202, "Accepted", text);
        free(text);
    } else if (rc == QBC_ENOTFOUND) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such dead letter in the cluster");
    } else {
        qbc_api__respond_error(req, 503, "Service Unavailable", "cluster_unavailable",
                               "the cluster's dead letters bucket is out of reach; retry later");
    }
    json_decref(o);
    return 0;
}

typedef struct {
    api_job_t aj;
    qbc_redrive_job_t rj;
} redrive_op_t;

static void redrive_answer(api_job_t *aj, h2o_req_t *req)
{
    redrive_op_t *op = (redrive_op_t *)aj;
    if (req == NULL)
        return;
    if (op->rj.job.result != 0)
        qbc_api__respond_error(req, 503, "Service Unavailable", "store_unavailable", "retry later");
    else if (!op->rj.found)
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such dead letter");
    else
        qbc_api__respond_json(req, 200, "OK", "{\"status\":\"pending\"}");
}

static void redrive_dispose(api_job_t *aj)
{
    free(aj);
}

int qbc_api__retry_dead_letter(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id)
{
    if (api->hooks.dead_retry != NULL)
        return retry_in_cluster(api, req, id);
    char buf[24], *end;
    if (id.len == 0 || id.len >= sizeof(buf)) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such dead letter");
        return 0;
    }
    memcpy(buf, id.base, id.len);
    buf[id.len] = '\0';
    unsigned long long n = strtoull(buf, &end, 10);
    if (*end != '\0' || buf[0] == '-') {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such dead letter");
        return 0;
    }
    redrive_op_t *op = qbc_calloc(1, sizeof(*op));
    qbc_api__job_init(&op->aj, api, req, &op->rj.job, redrive_answer, redrive_dispose);
    op->rj.dead_id = n;
    qbc_api__job_submitted(&op->aj, qbc_store_redrive(api->store, &op->rj));
    return 0;
}
