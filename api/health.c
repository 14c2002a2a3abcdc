/*
 * health.c — liveness that means something.
 *
 *   GET /healthz   200 {"status":"ok"} once a tiny fsync'd write went through the store's
 *                  writer and webhooks can be stored; 503 with the reason when the store
 *                  cannot write, refuses webhooks (a failed apply), or the service is stopping
 */
#include <stdlib.h>
#include "api_internal.h"

/* the probe: a ping through the writer, bound to its request */
typedef struct {
    qbc_store_job_t ping;
    api_job_t aj;
} health_job_t;

static void answer(api_job_t *aj, h2o_req_t *req)
{
    int ok = H2O_STRUCT_FROM_MEMBER(health_job_t, aj, aj)->ping.result == 0;
    if (req != NULL)
        qbc_api__respond_json(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable",
                              ok ? "{\"status\":\"ok\"}"
                                 : "{\"status\":\"unavailable\",\"error\":\"store_not_writable\"}");
}

static void dispose(api_job_t *aj)
{
    free(H2O_STRUCT_FROM_MEMBER(health_job_t, aj, aj));
}

int qbc_api__on_healthz(h2o_handler_t *_self, h2o_req_t *req)
{
    qbc_api_t *api = ((api_handler_t *)_self)->api;

    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/healthz"))) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such endpoint");
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
        qbc_api__respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use GET");
        return 0;
    }
    /* "writable" is proven the only honest way: a tiny fsync'd write through the writer */
    health_job_t *j = qbc_calloc(1, sizeof(*j));
    qbc_api__job_init(&j->aj, api, req, &j->ping, answer, dispose);
    if (qbc_store_ping(api->store, &j->ping) != 0) {
        qbc_api__job_free(&j->aj);
        qbc_api__respond_json(req, 503, "Service Unavailable", "{\"status\":\"stopping\"}");
        return 0;
    }
    j->aj.api->inflight++;
    return 0;
}
