/*
 * admin.c — the operators' endpoints under /admin/ (bearer QBCDC_ADMIN_TOKEN).
 *
 *   PUT /admin/realms/{realm}/tokens   register or replace a realm's OAuth tokens
 *   GET /admin/realms                  every realm with its status and pending work
 *   DELETE /admin/realms/{realm}       revoke at Intuit, erase the tokens (connect.c)
 *   GET /admin/dead-letters            notices the reconciler gave up on
 *   POST /admin/dead-letters/{id}/retry  put one back into pending work
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

/* splits "/admin/realms/{realm}/tokens" style paths: returns the number of segments after /admin */
static int split_path(h2o_req_t *req, h2o_iovec_t seg[4])
{
    const char *p = req->path_normalized.base, *end = p + req->path_normalized.len;
    int n = -1;
    while (p < end && n < 4) {
        while (p < end && *p == '/')
            p++;
        if (p == end)
            break;
        const char *s = p;
        while (p < end && *p != '/')
            p++;
        if (n >= 0)
            seg[n] = h2o_iovec_init(s, (size_t)(p - s));
        n++;
    }
    return p < end ? -1 : n; /* -1: too many segments */
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
    else if (ex != NULL && !json_is_null(ex) && (!json_is_integer(ex) || json_integer_value(ex) <= 0 ||
                                                json_integer_value(ex) > 86400 * 365))
        problem = "expires_in must be a positive number of seconds";
    if (problem != NULL) {
        json_decref(body);
        respond_error(req, 400, "Bad Request", "bad_tokens", problem);
        return 0;
    }

    ingress_job_t *j = ingress_job_new(ing, req, QBC_JOB_REALM);
    snprintf(j->realm, sizeof(j->realm), "%.*s", (int)realm.len, realm.base);
    j->tokens = qbc_calloc(1, sizeof(*j->tokens));
    snprintf(j->tokens->refresh_token, QBC_TOKEN_MAX, "%s", json_string_value(rt));
    if (json_is_string(at) && json_string_length(at) > 0) {
        snprintf(j->tokens->access_token, QBC_TOKEN_MAX, "%s", json_string_value(at));
        int64_t ttl = json_is_integer(ex) ? json_integer_value(ex) : 3600;
        j->tokens->access_expires_ns = qbc_now_ns() + ttl * 1000000000;
    }
    json_decref(body); /* jansson does not wipe: the tokens also linger in the request buffer until it is freed */

    /* keep what the realm already had (CDC watermark), but make it active again */
    if (qbc_store_realm_get(ing->store, j->realm, &j->realm_state) != 0) {
        memset(&j->realm_state, 0, sizeof(j->realm_state));
        snprintf(j->realm_state.realm, sizeof(j->realm_state.realm), "%s", j->realm);
    }
    j->realm_state.status = QBC_REALM_ACTIVE;
    j->realm_state.last_error[0] = '\0';
    j->realm_state.connected_ns = qbc_now_ns();
    j->job.realm = j->realm;
    j->job.realm_state = &j->realm_state;
    j->job.tokens = j->tokens;
    if (ingress_submit(ing, j) != 0) {
        ingress_job_free(j);
        respond_error(req, 503, "Service Unavailable", "shutting_down", "the service is stopping; retry later");
    }
    return 0;
}

typedef struct {
    json_t *list;
    qbc_store_t *store;
} realms_ctx_t;

static int pending_count_cb(const qbc_pending_t *p, void *ctx)
{
    (void)p;
    (*(uint64_t *)ctx)++;
    return 0;
}

static int realm_cb(const qbc_realm_t *r, int has_tokens, void *p)
{
    realms_ctx_t *ctx = p;
    uint64_t pending = 0;
    char ts[QBC_TIME_BUFSZ];

    qbc_store_pending_scan(ctx->store, r->realm, pending_count_cb, &pending);
    json_t *o = json_pack("{s:s,s:s,s:b,s:I}", "realm", r->realm, "status", qbc_realm_status_name(r->status),
                          "has_tokens", has_tokens, "pending", (json_int_t)pending);
    json_object_set_new(o, "last_error", r->last_error[0] ? json_string(r->last_error) : json_null());
    json_object_set_new(o, "connected_at", r->connected_ns ? json_string(qbc_time_format(r->connected_ns, ts)) : json_null());
    json_object_set_new(o, "last_cdc", r->last_cdc_ns ? json_string(qbc_time_format(r->last_cdc_ns, ts)) : json_null());
    json_array_append_new(ctx->list, o);
    return 0;
}

static int get_realms(qbc_ingress_t *ing, h2o_req_t *req)
{
    realms_ctx_t ctx = {json_array(), ing->store};
    if (qbc_store_realm_scan(ing->store, realm_cb, &ctx) != 0) {
        json_decref(ctx.list);
        respond_error(req, 503, "Service Unavailable", "store_unavailable", "cannot read the store");
        return 0;
    }
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

int on_admin(h2o_handler_t *_self, h2o_req_t *req)
{
    qbc_ingress_t *ing = ((ingress_handler_t *)_self)->ing;
    h2o_iovec_t seg[4];
    int n;

    if (require_bearer(req, ing->admin_token, "/admin") != 0)
        return 0;
    n = split_path(req, seg);
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
    respond_error(req, 404, "Not Found", "not_found", "no such admin endpoint");
    return 0;
}
