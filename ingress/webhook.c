/*
 * webhook.c — POST /webhooks/intuit and GET /healthz.
 *
 * The promise: a 200 goes out only after the commit holding the raw body and its
 * parsed events is fsync'd (the store's journal record; store/ingest.c). So the
 * handler verifies, queues a job for the store and returns without answering; the
 * store parses it on its own thread, and the answer is written when the job comes
 * back (on_job_committed), on this same loop thread.
 *
 * A signed body that does not parse is still stored (quarantined) and acked: it is
 * authentic, and a non-200 would make Intuit retry it forever while holding back the
 * realm's later events (qbo-facts §1.5).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "ingress_internal.h"

static int path_is(h2o_req_t *req, const char *path)
{
    return h2o_memis(req->path_normalized.base, req->path_normalized.len, path, strlen(path));
}

static void on_guard_dispose(void *p)
{
    req_guard_t *g = p;
    if (g->job != NULL)
        g->job->guard = NULL; /* the connection went away: answer nobody */
}

/*
 * store thread, before the job is journaled: parse the body into events. Parsing is
 * the largest per-webhook cost; doing it there keeps the event loop free to take the
 * next request while the previous batch is being committed.
 */
static void parse_in_store(qbc_store_job_t *job)
{
    ingress_job_t *j = H2O_STRUCT_FROM_MEMBER(ingress_job_t, job, job);
    j->result_kind = WH_STORED;
    if (qbc_payload_parse(j->body != NULL ? j->body : "", j->job.body_len, &j->payload) != 0) {
        j->job.inbox_flags |= QBC_INBOX_QUARANTINED;
        j->job.quarantine_reason = j->payload.error[0] ? j->payload.error : "unparsable";
        j->result_kind = WH_QUARANTINED;
    }
    j->job.format = (uint8_t)j->payload.format;
    j->job.events = j->payload.events;
    j->job.n_events = j->payload.n_events;
}

/* store thread (ingest or writer): hand the finished job back to the loop (must not block) */
static void job_done_in_store(qbc_store_job_t *job)
{
    ingress_job_t *j = H2O_STRUCT_FROM_MEMBER(ingress_job_t, job, job);
    h2o_multithread_send_message(&j->ing->commits, &j->msg);
}

ingress_job_t *ingress_job_new(qbc_ingress_t *ing, h2o_req_t *req, qbc_job_kind_t kind)
{
    ingress_job_t *j = qbc_calloc(1, sizeof(*j));
    if (kind != QBC_JOB_WEBHOOK && kind != QBC_JOB_PING)
        j->a = qbc_calloc(1, sizeof(*j->a));
    j->ing = ing;
    j->job.kind = kind;
    j->job.on_commit = job_done_in_store;
    j->job.received_ns = qbc_now_ns();
    j->start_mono_ns = qbc_mono_ns();
    j->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*j->guard), on_guard_dispose);
    j->guard->req = req;
    j->guard->job = j;
    return j;
}

void ingress_job_free(ingress_job_t *j)
{
    if (j->guard != NULL)
        j->guard->job = NULL;
    if (j->a != NULL) {
        if (j->a->tokens != NULL) {
            OPENSSL_cleanse(j->a->tokens, sizeof(*j->a->tokens));
            free(j->a->tokens);
        }
        free(j->a);
    }
    qbc_payload_clear(&j->payload);
    free(j->body);
    free(j);
}

int ingress_submit(qbc_ingress_t *ing, ingress_job_t *j)
{
    int rc = qbc_store_submit(ing->store, &j->job);
    if (rc == 0)
        ing->metrics.inflight++;
    return rc;
}

/* is the media type one Intuit uses for webhooks? (parameters like charset ignored) */
static int content_type_expected(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t n = 0;
    while (n < v.len && v.base[n] != ';' && v.base[n] != ' ')
        n++;
    return h2o_lcstris(v.base, n, H2O_STRLIT("application/json")) ||
           h2o_lcstris(v.base, n, H2O_STRLIT("application/cloudevents+json")) ||
           h2o_lcstris(v.base, n, H2O_STRLIT("application/cloudevents-batch+json"));
}

int on_webhook(h2o_handler_t *_self, h2o_req_t *req)
{
    qbc_ingress_t *ing = ((ingress_handler_t *)_self)->ing;
    ingress_metrics_t *m = &ing->metrics;

    if (!path_is(req, "/webhooks/intuit")) {
        respond_error(req, 404, "Not Found", "not_found", "no such endpoint");
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        m->webhooks[WH_BAD_REQUEST]++;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("POST"));
        respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use POST");
        return 0;
    }
    if (ing->n_tokens == 0) {
        m->webhooks[WH_NOT_CONFIGURED]++;
        int64_t now = qbc_mono_ns();
        if (ing->not_configured_logged_ns == 0 || now - ing->not_configured_logged_ns > 60 * (int64_t)1000000000) {
            qbc_log(QBC_LOG_ERROR, "ingress",
                    "refusing a webhook with 503: no verifier token is configured (QBCDC_WEBHOOK_VERIFIER_TOKENS)");
            ing->not_configured_logged_ns = now;
        }
        respond_error(req, 503, "Service Unavailable", "not_configured",
                      "no webhook verifier token is configured (QBCDC_WEBHOOK_VERIFIER_TOKENS)");
        return 0;
    }
    if (req->entity.len > ing->max_body) {
        m->webhooks[WH_TOO_LARGE]++;
        respond_error(req, 413, "Payload Too Large", "too_large", "webhook bodies are limited to 1 MiB");
        return 0;
    }

    ssize_t si = h2o_find_header_by_str(&req->headers, H2O_STRLIT("intuit-signature"), -1);
    const char *body = req->entity.base != NULL ? req->entity.base : "";
    if (si < 0 || qbc_verifier_check(ing->verifier, req->headers.entries[si].value.base,
                                     req->headers.entries[si].value.len, body, req->entity.len) != 0) {
        m->webhooks[WH_UNAUTHORIZED]++;
        qbc_log(QBC_LOG_WARN, "ingress", "webhook refused: %s intuit-signature (%zu-byte body)",
                si < 0 ? "missing" : "wrong", req->entity.len);
        respond_error(req, 401, "Unauthorized", "bad_signature",
                      si < 0 ? "intuit-signature header missing" : "intuit-signature does not match");
        return 0;
    }
    if (!content_type_expected(req))
        m->unexpected_content_type++; /* authentic all the same: keep it */

    ingress_job_t *j = ingress_job_new(ing, req, QBC_JOB_WEBHOOK);
    if (req->entity.len > 0) {
        j->body = malloc(req->entity.len); /* client-sized: may fail, and that is a 503, not a crash */
        if (j->body == NULL) {
            ingress_job_free(j);
            m->webhooks[WH_UNAVAILABLE]++;
            respond_error(req, 503, "Service Unavailable", "no_memory", "cannot buffer the body; retry later");
            return 0;
        }
        memcpy(j->body, req->entity.base, req->entity.len);
    }
    j->job.body = j->body;
    j->job.body_len = req->entity.len;
    j->job.prepare = parse_in_store; /* the loop thread only verifies, copies and queues */

    /* held until this loop turn ends, then queued with the turn's others (ingress_flush_webhooks) */
    if (ing->n_held == ing->cap_held) {
        ing->cap_held = ing->cap_held != 0 ? ing->cap_held * 2 : 64;
        ing->held = qbc_realloc(ing->held, ing->cap_held * sizeof(*ing->held));
    }
    ing->held[ing->n_held++] = &j->job;
    m->inflight++;
    return 0;
}

/*
 * Called after every turn of the event loop: hands the webhooks the turn received
 * to the store in one go, so the store's ingest thread is woken once per turn, not
 * once per webhook (a cross-thread wake-up costs several µs on a VM).
 */
void ingress_flush_webhooks(qbc_ingress_t *ing)
{
    if (ing->n_held == 0)
        return;
    size_t n = ing->n_held;
    ing->n_held = 0;
    if (qbc_store_submit_webhooks(ing->store, ing->held, n) == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        ingress_job_t *j = H2O_STRUCT_FROM_MEMBER(ingress_job_t, job, ing->held[i]);
        h2o_req_t *req = j->guard != NULL ? j->guard->req : NULL;
        ing->metrics.inflight--;
        ingress_job_free(j);
        if (req != NULL) {
            ing->metrics.webhooks[WH_UNAVAILABLE]++;
            respond_error(req, 503, "Service Unavailable", "shutting_down", "the service is stopping; retry later");
        }
    }
}

int on_healthz(h2o_handler_t *_self, h2o_req_t *req)
{
    qbc_ingress_t *ing = ((ingress_handler_t *)_self)->ing;

    if (!path_is(req, "/healthz")) {
        respond_error(req, 404, "Not Found", "not_found", "no such endpoint");
        return 0;
    }
    /* "writable" is proven the only honest way: a tiny fsync'd write through the writer */
    ingress_job_t *j = ingress_job_new(ing, req, QBC_JOB_PING);
    if (ingress_submit(ing, j) != 0) {
        ingress_job_free(j);
        respond_json(req, 503, "Service Unavailable", "{\"status\":\"stopping\"}");
    }
    return 0;
}

int on_metrics(h2o_handler_t *_self, h2o_req_t *req)
{
    qbc_ingress_t *ing = ((ingress_handler_t *)_self)->ing;
    size_t len;

    if (!path_is(req, "/metrics")) {
        respond_error(req, 404, "Not Found", "not_found", "no such endpoint");
        return 0;
    }
    char *text = metrics_render(&ing->metrics, ing->store, &len);
    char *more = ing->hooks.metrics != NULL ? ing->hooks.metrics(ing->hooks.ctx) : NULL;
    if (more != NULL) {
        size_t ml = strlen(more);
        text = qbc_realloc(text, len + ml + 1);
        memcpy(text + len, more, ml + 1);
        len += ml;
        free(more);
    }
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    h2o_send_inline(req, text, len);
    free(text);
    return 0;
}

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

/*
 * {"status":S,"inbox_seq":N,"events":N,"duplicates":N} into buf (>= 128 bytes). Every
 * acked webhook builds one, so it is put together by hand: snprintf costs more than
 * the rest of the answer.
 */
static void ack_body(char *buf, const char *status, uint64_t seq, uint32_t events, uint32_t dups)
{
    char *p = put_str(buf, "{\"status\":\"");
    p = put_str(p, status);
    p = put_str(p, "\",\"inbox_seq\":");
    p = put_u64(p, seq);
    p = put_str(p, ",\"events\":");
    p = put_u64(p, events);
    p = put_str(p, ",\"duplicates\":");
    p = put_u64(p, dups);
    p = put_str(p, "}");
    *p = '\0';
}

void on_job_committed(ingress_job_t *j)
{
    qbc_ingress_t *ing = j->ing;
    ingress_metrics_t *m = &ing->metrics;
    h2o_req_t *req = j->guard != NULL ? j->guard->req : NULL;
    char buf[256];

    m->inflight--;
    if (j->job.kind == QBC_JOB_REALM) {
        if (req != NULL) {
            if (j->job.result == 0 && j->a->disconnect) {
                json_t *o = json_pack("{s:s,s:s,s:b}", "realm", j->a->realm, "status", "disconnected", "revoked",
                                      j->a->revoked);
                if (!j->a->revoked)
                    json_object_set_new(o, "revoke_error", json_string(j->a->revoke_error));
                char *text = json_dumps(o, JSON_COMPACT);
                json_decref(o);
                respond_json(req, 200, "OK", text);
                free(text);
            } else if (j->job.result == 0) {
                json_t *o = json_pack("{s:s,s:s}", "realm", j->a->realm, "status", "active");
                if (j->a->state_hint[0] != '\0')
                    json_object_set_new(o, "state_hint", json_string(j->a->state_hint));
                if (j->job.backfill_id != 0) { /* the first registration started the realm's snapshot */
                    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)j->job.backfill_id);
                    json_object_set_new(o, "snapshot_job", json_string(buf));
                }
                char *text = json_dumps(o, JSON_COMPACT);
                json_decref(o);
                respond_json(req, 200, "OK", text);
                free(text);
            } else {
                respond_error(req, 503, "Service Unavailable", "store_unavailable", "could not store the tokens");
            }
        }
        if (j->job.result == 0 && j->job.backfill_id != 0)
            qbc_log(QBC_LOG_INFO, "ingress", "realm %s connected for the first time: snapshot job %llu queued",
                    j->a->realm, (unsigned long long)j->job.backfill_id);
        if (j->job.result == 0)
            qbc_log(QBC_LOG_INFO, "ingress",
                    j->a->disconnect ? "realm %s disconnected (tokens erased)"
                                     : "realm %s registered (tokens stored encrypted)",
                    j->a->realm);
        ingress_job_free(j);
        return;
    }
    if (j->job.kind == QBC_JOB_REDRIVE) {
        if (req != NULL) {
            if (j->job.result != 0)
                respond_error(req, 503, "Service Unavailable", "store_unavailable", "retry later");
            else if (j->job.n_retired == 0)
                respond_error(req, 404, "Not Found", "not_found", "no such dead letter");
            else
                respond_json(req, 200, "OK", "{\"status\":\"pending\"}");
        }
        ingress_job_free(j);
        return;
    }
    if (j->job.kind == QBC_JOB_BACKFILL || j->job.kind == QBC_JOB_CDC_REQUEST) {
        admin_job_answer(j, req);
        ingress_job_free(j);
        return;
    }
    if (j->job.kind == QBC_JOB_PING) {
        if (req != NULL) {
            if (j->job.result == 0)
                respond_json(req, 200, "OK", "{\"status\":\"ok\"}");
            else
                respond_json(req, 503, "Service Unavailable",
                             "{\"status\":\"unavailable\",\"error\":\"store_not_writable\"}");
        }
        ingress_job_free(j);
        return;
    }

    int kind;
    m->events_rejected += j->payload.n_rejected;
    if (j->result_kind == WH_QUARANTINED && j->job.result == 0)
        qbc_log(QBC_LOG_WARN, "ingress", "signed webhook quarantined as inbox #%llu: %s (%zu usable event(s))",
                (unsigned long long)j->job.inbox_seq, j->job.quarantine_reason, j->payload.n_events);
    if (j->job.result == 0) {
        kind = j->result_kind == WH_QUARANTINED ? WH_QUARANTINED : j->job.inbox_seq == 0 ? WH_DUPLICATE : WH_STORED;
        m->events_stored += j->job.n_stored_events;
        m->events_duplicate += j->job.n_dup_events;
    } else {
        kind = WH_UNAVAILABLE;
    }
    m->webhooks[kind]++;
    if (req != NULL) {
        if (j->job.result == 0) {
            ack_body(buf,
                     kind == WH_QUARANTINED ? "quarantined"
                     : kind == WH_DUPLICATE ? "duplicate"
                                            : "stored",
                     j->job.inbox_seq, j->job.n_stored_events, j->job.n_dup_events);
            respond_json(req, 200, "OK", buf);
        } else {
            /* nothing of it was stored: Intuit must retry */
            respond_error(
                req, 503, "Service Unavailable", j->job.result == QBC_EFULL ? "store_full" : "store_unavailable",
                j->job.result == QBC_EFULL ? "the store is full; retry later" : "the store failed; retry later");
        }
        metrics_observe_ack(m, qbc_mono_ns() - j->start_mono_ns);
    }
    ingress_job_free(j);
}
