/*
 * admin_dead_letters.c — notices the reconciler gave up on (admin.c routes here).
 *
 *   GET /admin/dead-letters            notices the reconciler gave up on
 *   POST /admin/dead-letters/{id}/retry  put one back into pending work
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
    qbc_api__respond_list(req, "dead_letters", list, qbc_store_dead_scan(api->store, dead_cb, list));
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
