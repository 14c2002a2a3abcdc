/*
 * admin.c — the operators' endpoints under /admin/ (bearer QBCDC_ADMIN_TOKEN).
 *
 *   PUT /admin/realms/{realm}/tokens   register or replace a realm's OAuth tokens
 *   GET /admin/realms                  every realm with its status and pending work
 *   DELETE /admin/realms/{realm}       revoke at Intuit, erase the tokens (connect.c)
 *   GET /admin/dead-letters, POST /admin/dead-letters/{id}/retry   admin_dead_letters.c
 *   POST /admin/realms/{realm}/cdc, POST /admin/realms/{realm}/backfill,
 *   GET /admin/jobs, GET /admin/jobs/{id}, DELETE /admin/jobs/{id},
 *   POST /admin/jobs/{id}/cancel                                    admin_jobs.c
 *   /admin/subscriptions[/{id}[/pause, /resume, /redeliver]]       admin_subscriptions.c
 *
 * Tokens never appear in an answer or a log line; the answer to PUT comes only after
 * the encrypted tokens are committed.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "api_internal.h"

/* realm ids are numeric at Intuit (qbo-facts §11 says: don't over-validate); we only
 * keep them safe as keys, paths and log text */
int qbc_api__valid_realm(const char *s, size_t len)
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

static void realm_op_answer(api_job_t *aj, h2o_req_t *req);

static void realm_op_dispose(api_job_t *aj)
{
    realm_op_t *op = (realm_op_t *)aj;
    if (op->tokens != NULL) {
        OPENSSL_cleanse(op->tokens, sizeof(*op->tokens));
        free(op->tokens);
    }
    free(op);
}

realm_op_t *qbc_api__realm_op_new(qbc_api_t *api, h2o_req_t *req, const char *realm)
{
    realm_op_t *op = qbc_calloc(1, sizeof(*op));
    qbc_api__job_init(&op->aj, api, req, &op->rj.job, realm_op_answer, realm_op_dispose);
    snprintf(op->rj.realm, sizeof(op->rj.realm), "%s", realm);
    return op;
}

void qbc_api__realm_op_activate(qbc_api_t *api, realm_op_t *op)
{
    /* keep what the realm already had (CDC watermark), but make it active again */
    if (qbc_store_realm_get(api->store, op->rj.realm, &op->state) != 0) {
        memset(&op->state, 0, sizeof(op->state));
        snprintf(op->state.realm, sizeof(op->state.realm), "%s", op->rj.realm);
    }
    op->state.status = QBC_REALM_ACTIVE;
    op->state.last_error[0] = '\0';
    op->state.last_error_ns = 0;
    op->state.connected_ns = qbc_now_ns();
    op->rj.state = &op->state;
    op->rj.tokens = op->tokens;
    /* whether the realm is new is decided by the store, in the transaction that registers it */
    op->rj.snapshot_if_new = api->snapshot_on_connect;
}

int qbc_api__realm_op_submit(qbc_api_t *api, realm_op_t *op)
{
    return qbc_api__job_submitted(&op->aj, qbc_store_put_realm(api->store, &op->rj));
}

static int put_tokens(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t realm)
{
    json_error_t jerr;
    json_t *body = json_loadb(req->entity.base != NULL ? req->entity.base : "", req->entity.len, 0, &jerr);
    json_t *rt = body ? json_object_get(body, "refresh_token") : NULL;
    json_t *at = body ? json_object_get(body, "access_token") : NULL;
    json_t *ex = body ? json_object_get(body, "expires_in") : NULL;

    if (!qbc_api__valid_realm(realm.base, realm.len)) {
        json_decref(body);
        qbc_api__respond_error(req, 400, "Bad Request", "bad_realm", "realm ids are 1-63 letters, digits, '-' or '_'");
        return 0;
    }
    if (body == NULL || !json_is_object(body)) {
        json_decref(body);
        qbc_api__respond_error(req, 400, "Bad Request", "bad_json", "body must be a JSON object");
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
        qbc_api__respond_error(req, 400, "Bad Request", "bad_tokens", problem);
        return 0;
    }

    char name[QBC_REALM_MAX];
    snprintf(name, sizeof(name), "%.*s", (int)realm.len, realm.base);
    realm_op_t *op = qbc_api__realm_op_new(api, req, name);
    op->tokens = qbc_calloc(1, sizeof(*op->tokens));
    snprintf(op->tokens->refresh_token, QBC_TOKEN_MAX, "%s", json_string_value(rt));
    if (json_is_string(at) && json_string_length(at) > 0) {
        snprintf(op->tokens->access_token, QBC_TOKEN_MAX, "%s", json_string_value(at));
        int64_t ttl = json_is_integer(ex) ? json_integer_value(ex) : 3600;
        op->tokens->access_expires_ns = qbc_now_ns() + ttl * 1000000000;
    }
    json_decref(body); /* jansson does not wipe: the tokens also linger in the request buffer until it is freed */

    qbc_api__realm_op_activate(api, op);
    qbc_api__realm_op_submit(api, op);
    return 0;
}

typedef struct {
    json_t *list;
    qbc_store_t *store;
    json_t *catchup;   /* realm -> the automatic backfill still filling its gap: {"job","since"} */
    const char *only;  /* qbc_api__feed_completeness: just this realm (NULL: all) */
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
    json_object_set_new(o, "last_error_at",
                        r->last_error[0] && r->last_error_ns ? json_string(qbc_time_format(r->last_error_ns, ts))
                                                             : json_null());
    json_object_set_new(o, "connected_at",
                        r->connected_ns ? json_string(qbc_time_format(r->connected_ns, ts)) : json_null());
    json_object_set_new(o, "last_cdc", r->last_cdc_ns ? json_string(qbc_time_format(r->last_cdc_ns, ts)) : json_null());
    json_t *gap = json_object_get(ctx->catchup, r->realm);
    int64_t complete = complete_until(ctx, r);
    json_object_set_new(o, "cdc_watermark",
                        r->cdc_watermark_ns ? json_string(qbc_time_format(r->cdc_watermark_ns, ts)) : json_null());
    /* how old the completeness watermark is: it moves only with a sweep that completed */
    int64_t wm_age = r->cdc_watermark_ns ? (qbc_now_ns() - r->cdc_watermark_ns) / 1000000000 : -1;
    json_object_set_new(o, "cdc_watermark_age_s", wm_age >= 0 ? json_integer(wm_age) : json_null());
    json_object_set_new(o, "complete_until", complete ? json_string(qbc_time_format(complete, ts)) : json_null());
    json_object_set_new(o, "catchup_job",
                        gap ? json_integer(json_integer_value(json_object_get(gap, "job"))) : json_null());
    json_object_set_new(o, "cdc_requested",
                        r->cdc_requested_ns ? json_string(qbc_time_format(r->cdc_requested_ns, ts)) : json_null());
    /*
     * what became of that request: done (a sweep completed since), failed (the sweep it started
     * was abandoned: last_error says why; the next scheduled one tries again) or pending
     */
    const char *req_status = NULL;
    if (r->cdc_requested_ns != 0) {
        if (r->last_cdc_ns >= r->cdc_requested_ns)
            req_status = "done";
        else if (strncmp(r->last_error, "CDC sweep failed", 16) == 0 && r->last_error_ns >= r->cdc_requested_ns)
            req_status = "failed";
        else
            req_status = "pending";
    }
    json_object_set_new(o, "cdc_request_status", req_status != NULL ? json_string(req_status) : json_null());
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

char *qbc_api__feed_completeness(qbc_api_t *api, const char *realm)
{
    realms_ctx_t ctx = {json_object(), api->store, json_object(), realm, json_object()};
    char *text = NULL;
    if (qbc_store_backfill_scan(api->store, catchup_cb, &ctx) == 0 &&
        qbc_store_realm_scan(api->store, completeness_cb, &ctx) == 0)
        text = json_dumps(ctx.list, JSON_COMPACT);
    json_decref(ctx.list);
    json_decref(ctx.catchup);
    json_decref(ctx.snapshots);
    return text;
}

static int get_realms(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id)
{
    (void)id;
    realms_ctx_t ctx = {json_array(), api->store, json_object(), NULL, json_object()};
    if (qbc_store_backfill_scan(api->store, catchup_cb, &ctx) != 0 ||
        qbc_store_realm_scan(api->store, realm_cb, &ctx) != 0) {
        json_decref(ctx.list);
        json_decref(ctx.catchup);
        json_decref(ctx.snapshots);
        qbc_api__respond_error(req, 503, "Service Unavailable", "store_unavailable", "cannot read the store");
        return 0;
    }
    json_decref(ctx.catchup);
    json_decref(ctx.snapshots);
    if (api->hooks.realm_stats != NULL)
        api->hooks.realm_stats(api->hooks.ctx, ctx.list);
    /* cluster mode: the rows of the realms other nodes own come from their owners */
    int out = qbc_api__realms_fan_out(api, req, ctx.list);
    if (out) {
        json_decref(ctx.list);
        return 0;
    }
    json_t *o = json_pack("{s:o}", "realms", ctx.list);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    qbc_api__respond_json(req, 200, "OK", text);
    free(text);
    return 0;
}

/* answers a committed realm write: a registration (PUT tokens, the OAuth callback) or a disconnect */
static void realm_op_answer(api_job_t *aj, h2o_req_t *req)
{
    realm_op_t *op = (realm_op_t *)aj;
    int ok = op->rj.job.result == 0;
    char buf[32];

    if (ok && op->rj.snapshot_id != 0)
        qbc_log(QBC_LOG_INFO, "api", "realm %s connected for the first time: snapshot job %llu queued", op->rj.realm,
                (unsigned long long)op->rj.snapshot_id);
    if (ok)
        qbc_log(QBC_LOG_INFO, "api",
                op->disconnect ? "realm %s disconnected (tokens erased)"
                               : "realm %s registered (tokens stored encrypted)",
                op->rj.realm);
    if (req == NULL)
        return;
    if (!ok) {
        qbc_api__respond_error(req, 503, "Service Unavailable", "store_unavailable", "could not store the tokens");
        return;
    }
    json_t *o;
    if (op->disconnect) {
        o = json_pack("{s:s,s:s,s:b}", "realm", op->rj.realm, "status", "disconnected", "revoked", op->revoked);
        if (!op->revoked)
            json_object_set_new(o, "revoke_error", json_string(op->revoke_error));
    } else {
        o = json_pack("{s:s,s:s}", "realm", op->rj.realm, "status", "active");
        if (op->state_hint[0] != '\0')
            json_object_set_new(o, "state_hint", json_string(op->state_hint));
        if (op->rj.snapshot_id != 0) { /* the first registration started the realm's snapshot */
            snprintf(buf, sizeof(buf), "%llu", (unsigned long long)op->rj.snapshot_id);
            json_object_set_new(o, "snapshot_job", json_string(buf));
        }
    }
    qbc_api__respond_obj(req, 200, "OK", o);
}

/*
 * answers with the JSON object a figures hook made (malloc'd text, freed here), or, when it
 * made none (the component does not run), with the given error
 */
static int respond_hook(h2o_req_t *req, char *text, int status, const char *reason, const char *code,
                        const char *message)
{
    if (text == NULL) {
        qbc_api__respond_error(req, status, reason, code, message);
        return 0;
    }
    qbc_api__respond_json(req, 200, "OK", text);
    free(text);
    return 0;
}

/* GET /admin/budget: the monthly allowance as the reconciler meters and governs it */
static int get_budget(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id)
{
    (void)id;
    return respond_hook(req, api->hooks.budget != NULL ? api->hooks.budget(api->hooks.ctx) : NULL, 503,
                        "Service Unavailable", "no_reconciler",
                        "no reconciler runs (QBCDC_CLIENT_ID is not set): nothing is metered");
}

/* GET /admin/jetstream: where the feed's publisher to NATS JetStream stands */
static int get_jetstream(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id)
{
    (void)id;
    return respond_hook(req, api->hooks.jetstream != NULL ? api->hooks.jetstream(api->hooks.ctx) : NULL, 404,
                        "Not Found", "not_publishing",
                        "the feed is not published to NATS JetStream (QBCDC_NATS_URL is not set)");
}

/* GET /admin/cluster: this node, the live nodes and who owns each partition (cluster mode) */
static int get_cluster(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id)
{
    (void)id;
    return respond_hook(req, api->hooks.cluster != NULL ? api->hooks.cluster(api->hooks.ctx) : NULL, 404, "Not Found",
                        "not_clustered", "this node is not in a cluster (QBCDC_NODE_ID is not set)");
}

static int delete_realm(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t seg)
{
    char realm[QBC_REALM_MAX];
    if (qbc_api__forward_realm(api, req, seg)) /* cluster mode: the owner revokes, not racing its own refresh */
        return 0;
    if (!qbc_api__valid_realm(seg.base, seg.len)) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such realm");
        return 0;
    }
    snprintf(realm, sizeof(realm), "%.*s", (int)seg.len, seg.base);
    return qbc_api__disconnect_realm(api, req, realm);
}

/*
 * /admin/<s0>[/<id>[/<s2>]]: the path's shape picks the routes, the method one of them;
 * id (the second segment, or empty) goes to the handler
 */
static const struct {
    const char *method;
    int n; /* segments after /admin */
    const char *s0, *s2;
    int (*fn)(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id);
} routes[] = {
    {"GET", 1, "realms", NULL, get_realms},
    {"GET", 1, "budget", NULL, get_budget},
    {"GET", 1, "jetstream", NULL, get_jetstream},
    {"GET", 1, "cluster", NULL, get_cluster},
    {"DELETE", 2, "realms", NULL, delete_realm},
    {"PUT", 3, "realms", "tokens", put_tokens},
    {"POST", 3, "realms", "cdc", qbc_api__post_cdc},
    {"POST", 3, "realms", "backfill", qbc_api__post_backfill},
    {"GET", 1, "dead-letters", NULL, qbc_api__get_dead_letters},
    {"POST", 3, "dead-letters", "retry", qbc_api__retry_dead_letter},
    {"GET", 1, "jobs", NULL, qbc_api__get_jobs},
    {"GET", 2, "jobs", NULL, qbc_api__get_job},
    {"DELETE", 2, "jobs", NULL, qbc_api__cancel_job},
    {"POST", 3, "jobs", "cancel", qbc_api__cancel_job},
    {"POST", 1, "subscriptions", NULL, qbc_api__create_subscription},
    {"GET", 1, "subscriptions", NULL, qbc_api__list_subscriptions},
    {"GET", 2, "subscriptions", NULL, qbc_api__get_subscription},
    {"PATCH", 2, "subscriptions", NULL, qbc_api__patch_subscription},
    {"DELETE", 2, "subscriptions", NULL, qbc_api__delete_subscription},
    {"POST", 3, "subscriptions", "pause", qbc_api__pause_subscription},
    {"POST", 3, "subscriptions", "resume", qbc_api__resume_subscription},
    {"POST", 3, "subscriptions", "redeliver", qbc_api__redeliver_subscription},
};

static int seg_is(h2o_iovec_t seg, const char *want)
{
    return want == NULL || h2o_memis(seg.base, seg.len, want, strlen(want));
}

int qbc_api__on_admin(h2o_handler_t *_self, h2o_req_t *req)
{
    qbc_api_t *api = ((api_handler_t *)_self)->api;
    h2o_iovec_t seg[4];
    char allow[64] = "", msg[80];

    if (qbc_api__require_bearer(req, api->admin_token, "/admin") != 0)
        return 0;
    int n = qbc_api__path_segments(req, 1, seg, 4); /* after "admin" */
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (routes[i].n != n || !seg_is(seg[0], routes[i].s0) || (n == 3 && !seg_is(seg[2], routes[i].s2)))
            continue;
        if (h2o_memis(req->method.base, req->method.len, routes[i].method, strlen(routes[i].method)))
            return routes[i].fn(api, req, n >= 2 ? seg[1] : h2o_iovec_init("", 0));
        size_t l = strlen(allow);
        snprintf(allow + l, sizeof(allow) - l, "%s%s", l ? ", " : "", routes[i].method);
    }
    if (allow[0] == '\0') {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such admin endpoint");
        return 0;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, h2o_strdup(&req->pool, allow, SIZE_MAX).base,
                   strlen(allow));
    snprintf(msg, sizeof(msg), "use %s", allow);
    qbc_api__respond_error(req, 405, "Method Not Allowed", "method_not_allowed", msg);
    return 0;
}
