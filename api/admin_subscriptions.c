/*
 * admin_subscriptions.c — push delivery subscriptions (issue 14; admin.c routes here).
 *
 *   POST /admin/subscriptions                    create: 201 with id and secret (shown once)
 *   GET /admin/subscriptions                     every subscription with its live state
 *   GET /admin/subscriptions/{id}                one: cursor, lag, attempts, next retry, state
 *   PATCH /admin/subscriptions/{id}              settings, secret rotation, replay, re-enable
 *   DELETE /admin/subscriptions/{id}             remove it and its cursor
 *   POST /admin/subscriptions/{id}/pause         PATCH {"paused":true}
 *   POST /admin/subscriptions/{id}/resume        PATCH {"paused":false,"enabled":true}
 *   POST /admin/subscriptions/{id}/redeliver     {"from":SEQ[,"to":SEQ]}: deliver that range again
 *
 * Bodies: {url, realms?, entities?, ops?, batch_max?, secret?, start_after?} (create),
 * plus paused, enabled (true re-enables a disabled subscription at its cursor) and
 * rotate_secret (true: a new secret is made) on PATCH. start_after is a feed sequence,
 * "head" (the default: only changes to come), or an ISO-8601 time (changes committed from
 * then on). Answers come after the store has committed; the secret is never shown again.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "api_internal.h"
#include "delivery.h"

typedef struct {
    api_job_t aj;
    qbc_sub_put_job_t put;
    qbc_sub_delete_job_t del;
    int status;                   /* the answer's: 201 create, 200 otherwise */
    uint64_t range_to, resume_at; /* a range redelivery: up to range_to, then on after resume_at */
    char *config, *secrets;
    char secret[QBC_WHSEC_BUFSZ]; /* shown in the answer when new ("" otherwise) */
} sub_op_t;

static void op_dispose(api_job_t *aj)
{
    sub_op_t *op = (sub_op_t *)aj;
    free(op->config);
    if (op->secrets != NULL) {
        OPENSSL_cleanse(op->secrets, strlen(op->secrets));
        free(op->secrets);
    }
    OPENSSL_cleanse(op->secret, sizeof(op->secret));
    free(op);
}

static void bad_request(h2o_req_t *req, const char *code, const char *why)
{
    qbc_api__respond_error(req, 400, "Bad Request", code, why);
}

static int not_running(qbc_api_t *api, h2o_req_t *req)
{
    if (api->delivery != NULL)
        return 0;
    qbc_api__respond_error(req, 503, "Service Unavailable", "no_delivery", "push delivery is not running");
    return 1;
}

static int parse_id(h2o_iovec_t seg, uint64_t *id)
{
    char buf[24];
    if (seg.len == 0 || seg.len >= sizeof(buf))
        return -1;
    memcpy(buf, seg.base, seg.len);
    buf[seg.len] = '\0';
    return qbc_api__parse_u64(buf, id) == 0 && *id != 0 ? 0 : -1;
}

/* only the names we take: an endpoint never ignores a field silently */
static int known_fields(h2o_req_t *req, const json_t *body, const char *const *known)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        int found = 0;
        for (const char *const *n = known; *n != NULL && !found; n++)
            found = strcmp(*n, k) == 0;
        if (!found) {
            char why[200];
            snprintf(why, sizeof(why), "unknown field '%.60s'", k);
            bad_request(req, "bad_subscription", why);
            (void)v;
            return -1;
        }
    }
    return 0;
}

/* start_after into *cursor: a sequence, "head", or an ISO-8601 time. -1: answered 400 */
static int start_after(qbc_api_t *api, h2o_req_t *req, const json_t *v, uint64_t *cursor)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        uint64_t head = qbc_store_feed_last(api->feed_store);
        if ((uint64_t)json_integer_value(v) > head) { /* changes to come would be skipped */
            char why[160];
            snprintf(why, sizeof(why), "start_after %lld is past the feed's head (%llu)",
                     (long long)json_integer_value(v), (unsigned long long)head);
            bad_request(req, "bad_subscription", why);
            return -1;
        }
        *cursor = (uint64_t)json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    int64_t t;
    if (s != NULL && strcmp(s, "head") == 0) {
        *cursor = qbc_store_feed_last(api->feed_store);
        return 0;
    }
    if (s != NULL && qbc_time_parse(s, strlen(s), &t) == 0 &&
        qbc_store_feed_seq_before(api->feed_store, t, cursor) == 0)
        return 0;
    bad_request(req, "bad_subscription",
                "start_after must be a feed sequence (>= 0), \"head\", or an ISO-8601 time with its offset");
    return -1;
}

static void answer(api_job_t *aj, h2o_req_t *req)
{
    sub_op_t *op = (sub_op_t *)aj;
    qbc_api_t *api = aj->api;
    int result = op->put.job.kind ? op->put.job.result : op->del.job.result;
    if (result == 0) {
        /* the range first: the worker must not see the new epoch without it */
        if (op->range_to != 0 && op->put.found)
            qbc_delivery_redeliver_range(api->delivery, op->put.id_out, op->put.epoch, op->range_to, op->resume_at);
        qbc_delivery_reload(api->delivery); /* before answering: the answer shows it */
    }
    if (req == NULL)
        return;
    if (result != 0) {
        qbc_api__respond_error(req, 503, "Service Unavailable", "store_unavailable",
                               "could not store the subscription; retry later");
        return;
    }
    char id[24];
    if (op->del.job.kind) {
        if (!op->del.found) {
            qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such subscription");
            return;
        }
        snprintf(id, sizeof(id), "%llu", (unsigned long long)op->del.id);
        qbc_api__respond_obj(req, 200, "OK", json_pack("{s:s,s:b}", "id", id, "deleted", 1));
        return;
    }
    if (!op->put.found) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such subscription");
        return;
    }
    json_t *o = qbc_delivery_describe(api->delivery, op->put.id_out);
    if (o == NULL) { /* deleted meanwhile */
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such subscription");
        return;
    }
    if (op->secret[0] != '\0')
        json_object_set_new(o, "secret", json_string(op->secret));
    qbc_api__respond_obj(req, op->status, op->status == 201 ? "Created" : "OK", o);
}

static sub_op_t *op_new(qbc_api_t *api, h2o_req_t *req, int delete)
{
    sub_op_t *op = qbc_calloc(1, sizeof(*op));
    qbc_api__job_init(&op->aj, api, req, delete ? &op->del.job : &op->put.job, answer, op_dispose);
    op->status = 200;
    return op;
}

static json_t *body_object(h2o_req_t *req)
{
    json_t *b = json_loadb(req->entity.base != NULL ? req->entity.base : "", req->entity.len, 0, NULL);
    if (b == NULL && req->entity.len == 0)
        return json_object(); /* POST .../pause with no body */
    if (!json_is_object(b)) {
        json_decref(b);
        bad_request(req, "bad_json", "body must be a JSON object");
        return NULL;
    }
    return b;
}

/* a secret given in the body, checked, or a new one (into out). -1: answered 400 */
static int take_secret(h2o_req_t *req, const json_t *v, char *out)
{
    if (v == NULL || json_is_null(v))
        return qbc_delivery_secret_new(out) == 0 ? 0 : (bad_request(req, "no_randomness", "no randomness"), -1);
    unsigned char key[QBC_WHSEC_KEY_MAX];
    size_t n;
    const char *s = json_string_value(v);
    if (s == NULL || strlen(s) >= QBC_WHSEC_BUFSZ || qbc_delivery_secret_key(s, key, &n) != 0) {
        bad_request(req, "bad_secret", "secret must be whsec_ followed by the base64 of 24 to 64 bytes");
        return -1;
    }
    OPENSSL_cleanse(key, sizeof(key));
    snprintf(out, QBC_WHSEC_BUFSZ, "%s%s", strncmp(s, QBC_WHSEC_PREFIX, 6) == 0 ? "" : QBC_WHSEC_PREFIX, s);
    return 0;
}

int qbc_api__create_subscription(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t unused)
{
    (void)unused;
    static const char *const known[] = {"url",    "realms",      "entities", "ops", "batch_max",
                                        "secret", "start_after", "paused",   NULL};
    char why[400];
    json_t *body, *settings = NULL;
    if (not_running(api, req) || (body = body_object(req)) == NULL)
        return 0;
    if (known_fields(req, body, known) != 0)
        goto Exit;
    if (qbc_delivery_settings_merge(NULL, body, qbc_delivery_allow_private(api->delivery), &settings, why,
                                    sizeof(why)) != 0) {
        bad_request(req, "bad_subscription", why);
        goto Exit;
    }
    uint64_t cursor = qbc_store_feed_last(api->feed_store);
    json_t *sa = json_object_get(body, "start_after");
    if (sa != NULL && start_after(api, req, sa, &cursor) != 0)
        goto Exit;
    sub_op_t *op = op_new(api, req, 0);
    if (take_secret(req, json_object_get(body, "secret"), op->secret) != 0) {
        qbc_api__job_free(&op->aj);
        goto Exit;
    }
    op->status = 201;
    op->config = json_dumps(settings, JSON_COMPACT | JSON_PRESERVE_ORDER);
    op->secrets = qbc_delivery_secrets_text(NULL, op->secret, qbc_now_ns(), 0);
    op->put.config = op->config;
    op->put.secrets = op->secrets;
    op->put.set_cursor = 1;
    op->put.cursor = cursor;
    qbc_api__job_submitted(&op->aj, qbc_store_sub_put(api->store, &op->put));
Exit:
    json_decref(settings);
    json_decref(body);
    return 0;
}

typedef struct {
    char *config, *secrets;
} held_t;

static int hold(const qbc_sub_rec_t *r, void *ctx)
{
    held_t *h = ctx;
    h->config = qbc_strndup(r->config, r->config_len);
    h->secrets = r->secrets != NULL ? qbc_strdup(r->secrets) : NULL;
    return 1;
}

/* PATCH with body (taken); range_to != 0: a range redelivery up to it, then on after resume_at */
static int patch_with(qbc_api_t *api, h2o_req_t *req, uint64_t id, json_t *body, uint64_t range_to, uint64_t resume_at)
{
    static const char *const known[] = {"url",    "realms",        "entities",    "ops",     "batch_max", "secret",
                                        "paused", "rotate_secret", "start_after", "enabled", NULL};
    char why[400];
    held_t h = {NULL, NULL};
    json_t *stored = NULL, *settings = NULL;
    if (known_fields(req, body, known) != 0)
        goto Exit;
    int rc = qbc_store_sub_scan(api->store, id, hold, &h);
    if (rc == QBC_ENOTFOUND) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such subscription");
        goto Exit;
    }
    if (rc != 0 || (stored = json_loads(h.config, 0, NULL)) == NULL) {
        qbc_api__respond_error(req, 503, "Service Unavailable", "store_unavailable", "cannot read the subscription");
        goto Exit;
    }
    if (qbc_delivery_settings_merge(stored, body, qbc_delivery_allow_private(api->delivery), &settings, why,
                                    sizeof(why)) != 0) {
        bad_request(req, "bad_subscription", why);
        goto Exit;
    }
    json_t *en = json_object_get(body, "enabled"), *rot = json_object_get(body, "rotate_secret");
    if ((en != NULL && !json_is_true(en)) || (rot != NULL && !json_is_boolean(rot))) {
        bad_request(req, "bad_subscription", "enabled may only be true (pause with paused); rotate_secret a boolean");
        goto Exit;
    }
    uint64_t cursor = 0;
    json_t *sa = json_object_get(body, "start_after");
    if (sa != NULL && start_after(api, req, sa, &cursor) != 0)
        goto Exit;
    sub_op_t *op = op_new(api, req, 0);
    json_t *sec = json_object_get(body, "secret");
    if (sec != NULL || json_is_true(rot)) {
        if (take_secret(req, sec, op->secret) != 0) {
            qbc_api__job_free(&op->aj);
            goto Exit;
        }
        op->secrets = qbc_delivery_secrets_text(h.secrets, op->secret, qbc_now_ns(),
                                                (int64_t)qbc_delivery_secret_grace(api->delivery));
        op->put.secrets = op->secrets;
    }
    op->config = json_dumps(settings, JSON_COMPACT | JSON_PRESERVE_ORDER);
    op->put.id = id;
    op->put.config = op->config;
    op->put.set_cursor = sa != NULL;
    op->put.cursor = cursor;
    op->put.enable = json_is_true(en);
    op->range_to = range_to;
    op->resume_at = resume_at;
    qbc_api__job_submitted(&op->aj, qbc_store_sub_put(api->store, &op->put));
Exit:
    free(h.config);
    if (h.secrets != NULL) {
        OPENSSL_cleanse(h.secrets, strlen(h.secrets));
        free(h.secrets);
    }
    json_decref(stored);
    json_decref(settings);
    json_decref(body);
    return 0;
}

static int sub_id(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t seg, uint64_t *id)
{
    if (not_running(api, req))
        return -1;
    if (parse_id(seg, id) != 0) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such subscription");
        return -1;
    }
    /* cluster mode: a subscription lives on the node whose id space holds its id; sent there */
    if (qbc_api__forward_job(api, req, *id))
        return -1;
    return 0;
}

int qbc_api__patch_subscription(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t seg)
{
    uint64_t id;
    json_t *body;
    if (sub_id(api, req, seg, &id) != 0 || (body = body_object(req)) == NULL)
        return 0;
    return patch_with(api, req, id, body, 0, 0);
}

static int pause_or_resume(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t seg, int pause)
{
    uint64_t id;
    if (sub_id(api, req, seg, &id) != 0)
        return 0;
    return patch_with(api, req, id,
                      pause ? json_pack("{s:b}", "paused", 1) : json_pack("{s:b,s:b}", "paused", 0, "enabled", 1), 0,
                      0);
}

int qbc_api__pause_subscription(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t seg)
{
    return pause_or_resume(api, req, seg, 1);
}

int qbc_api__resume_subscription(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t seg)
{
    return pause_or_resume(api, req, seg, 0);
}

int qbc_api__redeliver_subscription(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t seg)
{
    uint64_t id;
    json_t *body;
    if (sub_id(api, req, seg, &id) != 0 || (body = body_object(req)) == NULL)
        return 0;
    json_t *from = json_object_get(body, "from"), *to = json_object_get(body, "to");
    size_t want = 1 + (to != NULL);
    if (json_object_size(body) != want || !json_is_integer(from) || json_integer_value(from) < 1 ||
        (to != NULL && (!json_is_integer(to) || json_integer_value(to) < json_integer_value(from)))) {
        json_decref(body);
        bad_request(req, "bad_redeliver",
                    "body must be {\"from\": SEQ} or {\"from\": SEQ, \"to\": SEQ} (1 <= from <= to)");
        return 0;
    }
    /* where it stands now: after the range it goes on from there (nothing is delivered twice for nothing) */
    uint64_t resume_at = 0;
    json_t *cur = qbc_delivery_describe(api->delivery, id);
    if (cur != NULL)
        resume_at = (uint64_t)json_integer_value(json_object_get(cur, "cursor"));
    json_decref(cur);
    if (cur == NULL) {
        json_decref(body);
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such subscription");
        return 0;
    }
    if ((uint64_t)json_integer_value(from) > resume_at + 1) { /* moving forward would skip changes */
        char why[160];
        snprintf(why, sizeof(why), "from must be at most %llu: the subscription has delivered up to %llu",
                 (unsigned long long)resume_at + 1, (unsigned long long)resume_at);
        json_decref(body);
        bad_request(req, "bad_redeliver", why);
        return 0;
    }
    uint64_t range_to = to != NULL ? (uint64_t)json_integer_value(to) : 0;
    json_t *p = json_pack("{s:I,s:b}", "start_after", json_integer_value(from) - 1, "enabled", 1);
    json_decref(body);
    return patch_with(api, req, id, p, range_to < resume_at ? range_to : 0, resume_at);
}

int qbc_api__delete_subscription(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t seg)
{
    uint64_t id;
    if (sub_id(api, req, seg, &id) != 0)
        return 0;
    sub_op_t *op = op_new(api, req, 1);
    op->del.id = id;
    qbc_api__job_submitted(&op->aj, qbc_store_sub_delete(api->store, &op->del));
    return 0;
}

int qbc_api__list_subscriptions(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t unused)
{
    (void)unused;
    if (not_running(api, req))
        return 0;
    json_t *rows = qbc_delivery_describe_all(api->delivery);
    /* cluster mode: each node's subscriptions are its own; the list is every node's */
    if (api->cluster.node_id != NULL && api->cluster.node_id[0] != '\0') {
        size_t i;
        json_t *r;
        json_array_foreach(rows, i, r) json_object_set_new(r, "node", json_string(api->cluster.node_id));
        if (qbc_api__subscriptions_fan_out(api, req, rows)) {
            json_decref(rows);
            return 0;
        }
    }
    qbc_api__respond_list(req, "subscriptions", rows, 0);
    return 0;
}

int qbc_api__get_subscription(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t seg)
{
    uint64_t id;
    if (sub_id(api, req, seg, &id) != 0)
        return 0;
    json_t *o = qbc_delivery_describe(api->delivery, id);
    if (o == NULL)
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such subscription");
    else
        qbc_api__respond_obj(req, 200, "OK", o);
    return 0;
}
