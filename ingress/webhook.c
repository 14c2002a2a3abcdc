/*
 * webhook.c — POST /webhooks/intuit.
 *
 * The promise: a 200 goes out only after the commit holding the raw body and its
 * parsed events is fsync'd (the store's journal record; store/ingest.c). So the
 * handler verifies, queues a job for the store and returns without answering; the
 * store parses it on its own thread, and the answer is written when the job comes
 * back (on_committed), on this same loop thread.
 *
 * A signed body that does not parse is still stored (quarantined) and acked: it is
 * authentic, and a non-200 would make Intuit retry it forever while holding back the
 * realm's later events (qbo-facts §1.5).
 *
 * Every answer body here is constant text or digits (ack_body), so none needs escaping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "ingress_internal.h"

/** one webhook between the loop and the store. */
typedef struct st_webhook_job_t {
    qbc_webhook_job_t wj; /* first: the store hands back &wj.job */
    h2o_multithread_message_t msg;
    qbc_ingress_t *ing;
    h2o_req_t *req;                    /* NULL once the request is gone (on_req_dispose) */
    struct st_webhook_job_t **backref; /* in the request's pool: points here while both live */
    qbc_payload_t payload;
    char *body;
    int64_t start_mono_ns;
    int result_kind;    /* webhook_result_t chosen at parse time (stored/quarantined) */
    int forwarded;      /* cluster mode: its events went to the replicated inbox */
    int forward_result; /* and that said (0: durable there) */
} webhook_job_t;

static void answer(h2o_req_t *req, int status, const char *reason, const char *json)
{
    size_t len = strlen(json);
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_send_inline(req, json, len);
}

#define REFUSAL(code, message) "{\"error\":\"" code "\",\"message\":\"" message "\"}"

/* the request's pool is being freed (the client went away): the answer goes to nobody */
static void on_req_dispose(void *p)
{
    webhook_job_t *j = *(webhook_job_t **)p;
    if (j != NULL)
        j->req = NULL;
}

static void job_free(webhook_job_t *j)
{
    if (j->req != NULL)
        *j->backref = NULL;
    qbc_payload_clear(&j->payload);
    free(j->body);
    free(j);
}

/*
 * store thread, before the job is journaled: parse the body into events. Parsing is
 * the largest per-webhook cost; doing it there keeps the event loop free to take the
 * next request while the previous batch is being committed.
 */
static void parse_in_store(qbc_webhook_job_t *job)
{
    webhook_job_t *j = H2O_STRUCT_FROM_MEMBER(webhook_job_t, wj, job);
    j->result_kind = WH_STORED;
    if (qbc_payload_parse(j->body != NULL ? j->body : "", j->wj.body_len, &j->payload) != 0) {
        j->wj.inbox_flags |= QBC_INBOX_QUARANTINED;
        j->wj.quarantine_reason = j->payload.error[0] ? j->payload.error : "unparsable";
        j->result_kind = WH_QUARANTINED;
    }
    j->wj.format = (uint8_t)j->payload.format;
    j->wj.events = j->payload.events;
    j->wj.n_events = j->payload.n_events;
    if (j->ing->forward != NULL) { /* cluster mode: the body here, the events to the partition's owner */
        j->wj.events = NULL;
        j->wj.n_events = 0;
    }
}

/* any thread: the replicated inbox has the events (result 0) or could not take them */
static void forward_done(void *arg, int result)
{
    webhook_job_t *j = arg;
    j->forward_result = result;
    h2o_multithread_send_message(&j->ing->commits, &j->msg);
}

/* store thread (ingest or writer): hand the finished job back to the loop (must not block) */
static void job_done_in_store(qbc_store_job_t *job)
{
    webhook_job_t *j = H2O_STRUCT_FROM_MEMBER(webhook_job_t, wj.job, job);
    qbc_ingress_t *ing = j->ing;
    if (ing->forward != NULL && job->result == 0 && j->payload.n_events > 0 && j->result_kind != WH_QUARANTINED) {
        j->forwarded = 1;
        if (ing->forward(ing->forward_ctx, j->body != NULL ? j->body : "", j->wj.body_len, j->payload.events,
                         j->payload.n_events, forward_done, j) == 0)
            return; /* answered when forward_done says */
        j->forward_result = QBC_ECLOSED;
    }
    h2o_multithread_send_message(&ing->commits, &j->msg);
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

int qbc_ingress_on_req(qbc_ingress_t *ing, h2o_req_t *req)
{
    webhook_metrics_t *m = &ing->metrics;

    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/webhooks/intuit"))) {
        answer(req, 404, "Not Found", REFUSAL("not_found", "no such endpoint"));
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        m->webhooks[WH_BAD_REQUEST]++;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("POST"));
        answer(req, 405, "Method Not Allowed", REFUSAL("method_not_allowed", "use POST"));
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
        answer(req, 503, "Service Unavailable",
               REFUSAL("not_configured", "no webhook verifier token is configured (QBCDC_WEBHOOK_VERIFIER_TOKENS)"));
        return 0;
    }
    if (req->entity.len > ing->max_body) {
        m->webhooks[WH_TOO_LARGE]++;
        answer(req, 413, "Payload Too Large", REFUSAL("too_large", "webhook bodies are limited to 1 MiB"));
        return 0;
    }

    ssize_t si = h2o_find_header_by_str(&req->headers, H2O_STRLIT("intuit-signature"), -1);
    const char *body = req->entity.base != NULL ? req->entity.base : "";
    if (si < 0 || qbc_verifier_check(ing->verifier, req->headers.entries[si].value.base,
                                     req->headers.entries[si].value.len, body, req->entity.len) != 0) {
        m->webhooks[WH_UNAUTHORIZED]++;
        qbc_log(QBC_LOG_WARN, "ingress", "webhook refused: %s intuit-signature (%zu-byte body)",
                si < 0 ? "missing" : "wrong", req->entity.len);
        answer(req, 401, "Unauthorized",
               si < 0 ? REFUSAL("bad_signature", "intuit-signature header missing")
                      : REFUSAL("bad_signature", "intuit-signature does not match"));
        return 0;
    }
    if (!content_type_expected(req))
        m->unexpected_content_type++; /* authentic all the same: keep it */

    webhook_job_t *j = qbc_calloc(1, sizeof(*j));
    if (req->entity.len > 0) {
        j->body = malloc(req->entity.len); /* client-sized: may fail, and that is a 503, not a crash */
        if (j->body == NULL) {
            free(j);
            m->webhooks[WH_UNAVAILABLE]++;
            answer(req, 503, "Service Unavailable", REFUSAL("no_memory", "cannot buffer the body; retry later"));
            return 0;
        }
        memcpy(j->body, req->entity.base, req->entity.len);
    }
    j->ing = ing;
    j->req = req;
    j->backref = h2o_mem_alloc_shared(&req->pool, sizeof(*j->backref), on_req_dispose);
    *j->backref = j;
    j->start_mono_ns = qbc_mono_ns();
    j->wj.job.on_commit = job_done_in_store;
    j->wj.received_ns = qbc_now_ns();
    j->wj.body = j->body;
    j->wj.body_len = req->entity.len;
    j->wj.prepare = parse_in_store; /* the loop thread only verifies, copies and queues */

    /* held until this loop turn ends, then queued with the turn's others (qbc_ingress_flush) */
    if (ing->n_held == ing->cap_held) {
        ing->cap_held = ing->cap_held != 0 ? ing->cap_held * 2 : 64;
        ing->held = qbc_realloc(ing->held, ing->cap_held * sizeof(*ing->held));
    }
    ing->held[ing->n_held++] = &j->wj;
    m->inflight++;
    return 0;
}

/*
 * Called after every turn of the event loop: hands the webhooks the turn received
 * to the store in one go, so the store's ingest thread is woken once per turn, not
 * once per webhook (a cross-thread wake-up costs several µs on a VM).
 */
void qbc_ingress_flush(qbc_ingress_t *ing)
{
    if (ing->n_held == 0)
        return;
    size_t n = ing->n_held;
    ing->n_held = 0;
    if (qbc_store_submit_webhooks(ing->store, ing->held, n) == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        webhook_job_t *j = H2O_STRUCT_FROM_MEMBER(webhook_job_t, wj, ing->held[i]);
        h2o_req_t *req = j->req;
        ing->metrics.inflight--;
        job_free(j);
        if (req != NULL) {
            ing->metrics.webhooks[WH_UNAVAILABLE]++;
            answer(req, 503, "Service Unavailable", REFUSAL("shutting_down", "the service is stopping; retry later"));
        }
    }
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

/* loop thread: a webhook's commit is done (or failed): count it and answer */
static void on_committed(webhook_job_t *j)
{
    qbc_ingress_t *ing = j->ing;
    webhook_metrics_t *m = &ing->metrics;
    h2o_req_t *req = j->req;
    char buf[256];
    int kind;

    m->inflight--;
    m->events_rejected += j->payload.n_rejected;
    if (j->result_kind == WH_QUARANTINED && j->wj.job.result == 0)
        qbc_log(QBC_LOG_WARN, "ingress", "signed webhook quarantined as inbox #%llu: %s (%zu usable event(s))",
                (unsigned long long)j->wj.inbox_seq, j->wj.quarantine_reason, j->payload.n_events);
    if (j->wj.job.result == 0 && j->forwarded) { /* cluster mode */
        kind = j->forward_result == 0 ? WH_STORED : WH_UNAVAILABLE;
        if (j->forward_result == 0) {
            m->events_stored += j->payload.n_events;
            j->wj.n_stored_events = (uint32_t)j->payload.n_events;
        }
    } else if (j->wj.job.result == 0) {
        kind = j->result_kind == WH_QUARANTINED ? WH_QUARANTINED : j->wj.inbox_seq == 0 ? WH_DUPLICATE : WH_STORED;
        m->events_stored += j->wj.n_stored_events;
        m->events_duplicate += j->wj.n_dup_events;
    } else {
        kind = WH_UNAVAILABLE;
    }
    m->webhooks[kind]++;
    if (req != NULL) {
        if (j->wj.job.result == 0 && j->forwarded && j->forward_result != 0) { /* Intuit must retry */
            answer(req, 503, "Service Unavailable",
                   REFUSAL("inbox_unavailable", "the cluster's inbox (NATS JetStream) did not take it; retry later"));
        } else if (j->wj.job.result == 0) {
            ack_body(buf,
                     kind == WH_QUARANTINED ? "quarantined"
                     : kind == WH_DUPLICATE ? "duplicate"
                                            : "stored",
                     j->wj.inbox_seq, j->wj.n_stored_events, j->wj.n_dup_events);
            answer(req, 200, "OK", buf);
        } else if (j->wj.job.result == QBC_EFULL) { /* nothing of it was stored: Intuit must retry */
            answer(req, 503, "Service Unavailable", REFUSAL("store_full", "the store is full; retry later"));
        } else {
            answer(req, 503, "Service Unavailable", REFUSAL("store_unavailable", "the store failed; retry later"));
        }
        qbc_ingress__observe_ack(m, qbc_mono_ns() - j->start_mono_ns);
    }
    job_free(j);
}

static void on_commit_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&msg->link);
        on_committed(H2O_STRUCT_FROM_MEMBER(webhook_job_t, msg, msg));
    }
}

int qbc_ingress_create(const qbc_ingress_config_t *cfg, qbc_store_t *store, h2o_context_t *ctx, qbc_ingress_t **out)
{
    qbc_ingress_t *ing = qbc_calloc(1, sizeof(*ing));
    ing->ctx = ctx;
    ing->store = store;
    ing->max_body = cfg->max_body != 0 ? cfg->max_body : 1024 * 1024;
    ing->forward = cfg->forward;
    ing->forward_ctx = cfg->forward_ctx;
    ing->n_tokens = cfg->n_verifier_tokens;
    ing->tokens = qbc_calloc(ing->n_tokens + 1, sizeof(char *));
    for (size_t i = 0; i < ing->n_tokens; i++)
        ing->tokens[i] = qbc_strdup(cfg->verifier_tokens[i]);
    if (ing->n_tokens > 0 &&
        (ing->verifier = qbc_verifier_new((const char *const *)ing->tokens, ing->n_tokens)) == NULL)
        qbc_fatal("OpenSSL provides no HMAC-SHA256");
    h2o_multithread_register_receiver(ctx->queue, &ing->commits, on_commit_messages);
    if (ing->n_tokens == 0)
        qbc_log(QBC_LOG_WARN, "ingress",
                "QBCDC_WEBHOOK_VERIFIER_TOKENS is not set: webhooks will be refused with 503 until it is");
    *out = ing;
    return 0;
}

void qbc_ingress_destroy(qbc_ingress_t *ing)
{
    if (ing == NULL)
        return;
    h2o_multithread_unregister_receiver(ing->ctx->queue, &ing->commits);
    qbc_verifier_free(ing->verifier);
    for (size_t i = 0; i < ing->n_tokens; i++) {
        OPENSSL_cleanse(ing->tokens[i], strlen(ing->tokens[i]));
        free(ing->tokens[i]);
    }
    free(ing->tokens);
    free(ing->held);
    free(ing);
}
