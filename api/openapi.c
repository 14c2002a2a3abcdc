/*
 * openapi.c — the API's own description.
 *
 *   GET /openapi.json   the OpenAPI 3.1 document of the whole HTTP API, no auth
 *
 * The document is docs/openapi.json, embedded at build time byte for byte
 * (docs/embed.py), so what is served is exactly what the repository holds.
 */
#include <string.h>
#include "api_internal.h"

int qbc_api__on_openapi(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    /* h2o routes by prefix: /openapi.json/x arrives here too */
    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/openapi.json"))) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such endpoint");
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
        qbc_api__respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use GET");
        return 0;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = qbc_openapi_json_len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    /* the bytes are static: send them as they are instead of copying them into the pool */
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t body = h2o_iovec_init(qbc_openapi_json, qbc_openapi_json_len);
    h2o_start_response(req, &generator);
    h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
    return 0;
}
