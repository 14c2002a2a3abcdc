/*
 * metrics.c — the webhook endpoint's Prometheus figures (api/metrics.c puts them into
 * GET /metrics). Counted on the loop thread, so without locks.
 */
#include <stdio.h>
#include "ingress_internal.h"

static const double ack_bounds[ACK_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01,
                                               0.025,  0.05,    0.1,    0.25,  0.5,   1.0,   3.0};
static const char *result_names[WH__COUNT] = {"stored",    "duplicate",   "quarantined",    "unauthorized",
                                              "too_large", "unavailable", "not_configured", "bad_request"};

void qbc_ingress__observe_ack(webhook_metrics_t *m, int64_t ns)
{
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < ACK_BUCKETS && s > ack_bounds[i])
        i++;
    m->ack_buckets[i]++;
    m->ack_count++;
    m->ack_sum_s += s;
}

uint64_t qbc_ingress_acked(const qbc_ingress_t *ing)
{
    const webhook_metrics_t *m = &ing->metrics;
    return m->webhooks[WH_STORED] + m->webhooks[WH_DUPLICATE] + m->webhooks[WH_QUARANTINED];
}

uint64_t qbc_ingress_inflight(const qbc_ingress_t *ing)
{
    return ing->metrics.inflight;
}

void qbc_ingress_metrics(const qbc_ingress_t *ing, qbc_buf_t *o)
{
    const webhook_metrics_t *m = &ing->metrics;

    qbc_buf_printf(o, "# HELP qbcdc_webhooks_total Webhook POSTs by result.\n# TYPE qbcdc_webhooks_total counter\n");
    for (int i = 0; i < WH__COUNT; i++)
        qbc_buf_printf(o, "qbcdc_webhooks_total{result=\"%s\"} %llu\n", result_names[i],
                       (unsigned long long)m->webhooks[i]);
    qbc_buf_printf(o,
                   "# HELP qbcdc_webhook_events_total Change notices in webhooks by result.\n"
                   "# TYPE qbcdc_webhook_events_total counter\n"
                   "qbcdc_webhook_events_total{result=\"stored\"} %llu\n"
                   "qbcdc_webhook_events_total{result=\"duplicate\"} %llu\n"
                   "qbcdc_webhook_events_total{result=\"rejected\"} %llu\n",
                   (unsigned long long)m->events_stored, (unsigned long long)m->events_duplicate,
                   (unsigned long long)m->events_rejected);
    qbc_buf_printf(o,
                   "# HELP qbcdc_webhooks_unexpected_content_type_total Signed webhooks whose Content-Type was "
                   "neither application/json nor application/cloudevents+json (stored all the same).\n"
                   "# TYPE qbcdc_webhooks_unexpected_content_type_total counter\n"
                   "qbcdc_webhooks_unexpected_content_type_total %llu\n"
                   "# HELP qbcdc_webhooks_inflight Webhooks waiting for their commit.\n"
                   "# TYPE qbcdc_webhooks_inflight gauge\nqbcdc_webhooks_inflight %llu\n",
                   (unsigned long long)m->unexpected_content_type, (unsigned long long)m->inflight);

    qbc_buf_printf(o,
                   "# HELP qbcdc_webhook_ack_seconds Time from a verified webhook to its answer (includes the fsync'd "
                   "commit).\n# TYPE qbcdc_webhook_ack_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < ACK_BUCKETS; i++) {
        cum += m->ack_buckets[i];
        qbc_buf_printf(o, "qbcdc_webhook_ack_seconds_bucket{le=\"%g\"} %llu\n", ack_bounds[i], (unsigned long long)cum);
    }
    cum += m->ack_buckets[ACK_BUCKETS];
    qbc_buf_printf(o, "qbcdc_webhook_ack_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    qbc_buf_printf(o, "qbcdc_webhook_ack_seconds_sum %.9f\nqbcdc_webhook_ack_seconds_count %llu\n", m->ack_sum_s,
                   (unsigned long long)m->ack_count);
}
