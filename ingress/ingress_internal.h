/*
 * ingress_internal.h — shared by webhook.c and metrics.c of ingress/ only.
 */
#ifndef QBC_INGRESS_INTERNAL_H
#define QBC_INGRESS_INTERNAL_H

#include "h2o.h"
#include "ingress.h"

/* results a webhook POST can have; each is one label value of qbcdc_webhooks_total */
typedef enum {
    WH_STORED = 0,     /* 200: body committed */
    WH_DUPLICATE,      /* 200: every CloudEvents id seen before; nothing new stored */
    WH_QUARANTINED,    /* 200: signed but (partly) unparsable; kept in quarantine */
    WH_UNAUTHORIZED,   /* 401 */
    WH_TOO_LARGE,      /* 413 */
    WH_UNAVAILABLE,    /* 503: store refused (full, failed, shutting down) */
    WH_NOT_CONFIGURED, /* 503: no verifier tokens */
    WH_BAD_REQUEST,    /* 405/400: wrong method, empty body */
    WH__COUNT
} webhook_result_t;

#define ACK_BUCKETS 14

/* touched on the loop thread only */
typedef struct st_webhook_metrics_t {
    uint64_t webhooks[WH__COUNT];
    uint64_t events_stored, events_duplicate, events_rejected;
    uint64_t unexpected_content_type;
    uint64_t ack_buckets[ACK_BUCKETS + 1]; /* last: +Inf */
    uint64_t ack_count;
    double ack_sum_s;
    uint64_t inflight; /* taken, not answered */
} webhook_metrics_t;

struct st_qbc_ingress_t {
    h2o_context_t *ctx;
    h2o_multithread_receiver_t commits; /* store ingest/writer -> loop: finished webhooks */
    qbc_store_t *store;
    char **tokens;
    size_t n_tokens;
    qbc_verifier_t *verifier; /* the tokens, prepared */
    size_t max_body;
    int (*forward)(void *ctx, const void *body, size_t len, const qbc_event_t *events, size_t n_events,
                   void (*done)(void *arg, int result), void *arg);
    void *forward_ctx;
    int64_t not_configured_logged_ns;
    webhook_metrics_t metrics;
    qbc_webhook_job_t **held; /* webhooks of this loop turn, not yet queued */
    size_t n_held, cap_held;
};

/** counts one answered webhook's time from verification to answer. */
void qbc_ingress__observe_ack(webhook_metrics_t *m, int64_t ns);

#endif
