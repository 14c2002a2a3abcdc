/*
 * metrics.c — the Prometheus text exposition for GET /metrics.
 *
 * Ingress counters live on the loop thread (no locking); store figures come from
 * qbc_store_stats(), one short read transaction per scrape.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ingress_internal.h"

static const double ack_bounds[ACK_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01,
                                               0.025,  0.05,    0.1,    0.25,  0.5,   1.0,   3.0};
static const char *result_names[WH__COUNT] = {"stored",    "duplicate",   "quarantined",    "unauthorized",
                                              "too_large", "unavailable", "not_configured", "bad_request"};

void metrics_observe_ack(ingress_metrics_t *m, int64_t ns)
{
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < ACK_BUCKETS && s > ack_bounds[i])
        i++;
    m->ack_buckets[i]++;
    m->ack_count++;
    m->ack_sum_s += s;
}

static void gauge(qbc_buf_t *o, const char *name, const char *help, double v)
{
    qbc_buf_printf(o, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

static void counter(qbc_buf_t *o, const char *name, const char *help, double v)
{
    qbc_buf_printf(o, "# HELP %s %s\n# TYPE %s counter\n%s %.17g\n", name, help, name, name, v);
}

/* a histogram over the store's batch-size buckets (qbc_store_batch_bounds, then +Inf) */
static void batch_histogram(qbc_buf_t *o, const char *name, const char *help, const uint64_t hist[8], uint64_t sum)
{
    unsigned long long cum = 0;
    qbc_buf_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int i = 0; i < 7; i++) {
        cum += hist[i];
        qbc_buf_printf(o, "%s_bucket{le=\"%u\"} %llu\n", name, qbc_store_batch_bounds[i], cum);
    }
    cum += hist[7];
    qbc_buf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %llu\n%s_count %llu\n", name, cum, name,
                   (unsigned long long)sum, name, cum);
}

char *metrics_render(const ingress_metrics_t *m, qbc_store_t *store, size_t *len)
{
    qbc_buf_t o = {qbc_alloc(8192), 0, 8192, 0};
    qbc_store_stats_t st;
    int store_ok = qbc_store_stats(store, &st) == 0;

    qbc_buf_printf(&o,
                   "# HELP qbcdc_build_info Build information.\n# TYPE qbcdc_build_info gauge\n"
                   "qbcdc_build_info{version=\"%s\"} 1\n",
                   QBCDC_VERSION);
    gauge(&o, "qbcdc_start_time_seconds", "Unix time the service started.", (double)m->started_ns / 1e9);

    qbc_buf_printf(&o, "# HELP qbcdc_webhooks_total Webhook POSTs by result.\n# TYPE qbcdc_webhooks_total counter\n");
    for (int i = 0; i < WH__COUNT; i++)
        qbc_buf_printf(&o, "qbcdc_webhooks_total{result=\"%s\"} %llu\n", result_names[i],
                       (unsigned long long)m->webhooks[i]);
    qbc_buf_printf(&o,
                   "# HELP qbcdc_webhook_events_total Change notices in webhooks by result.\n"
                   "# TYPE qbcdc_webhook_events_total counter\n"
                   "qbcdc_webhook_events_total{result=\"stored\"} %llu\n"
                   "qbcdc_webhook_events_total{result=\"duplicate\"} %llu\n"
                   "qbcdc_webhook_events_total{result=\"rejected\"} %llu\n",
                   (unsigned long long)m->events_stored, (unsigned long long)m->events_duplicate,
                   (unsigned long long)m->events_rejected);
    counter(&o, "qbcdc_webhooks_unexpected_content_type_total",
            "Signed webhooks whose Content-Type was neither application/json nor application/cloudevents+json "
            "(stored all the same).",
            (double)m->unexpected_content_type);
    gauge(&o, "qbcdc_webhooks_inflight", "Webhooks waiting for their commit.", (double)m->inflight);

    qbc_buf_printf(&o,
                   "# HELP qbcdc_webhook_ack_seconds Time from a verified webhook to its answer (includes the fsync'd "
                   "commit).\n# TYPE qbcdc_webhook_ack_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < ACK_BUCKETS; i++) {
        cum += m->ack_buckets[i];
        qbc_buf_printf(&o, "qbcdc_webhook_ack_seconds_bucket{le=\"%g\"} %llu\n", ack_bounds[i],
                       (unsigned long long)cum);
    }
    cum += m->ack_buckets[ACK_BUCKETS];
    qbc_buf_printf(&o, "qbcdc_webhook_ack_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    qbc_buf_printf(&o, "qbcdc_webhook_ack_seconds_sum %.9f\nqbcdc_webhook_ack_seconds_count %llu\n", m->ack_sum_s,
                   (unsigned long long)m->ack_count);

    gauge(&o, "qbcdc_store_up", "1 if the store answered this scrape.", store_ok);
    if (store_ok) {
        batch_histogram(&o, "qbcdc_store_group_commit_size",
                        "Jobs per LMDB group commit (webhooks arrive as one apply job per journal batch).",
                        st.batch_hist, st.jobs_committed);
        batch_histogram(&o, "qbcdc_journal_group_commit_size",
                        "Webhooks acked per journal commit (one write + fdatasync).", st.journal_batch_hist,
                        st.journal_webhooks);
        counter(&o, "qbcdc_journal_commit_seconds_total", "Time spent writing and fdatasyncing the webhook journal.",
                (double)st.journal_commit_ns_sum / 1e9);
        gauge(&o, "qbcdc_journal_unapplied_bytes", "Acked webhooks journaled but not yet applied to LMDB, in bytes.",
              (double)st.journal_unapplied_bytes);
        gauge(&o, "qbcdc_journal_size_bytes", "Size of the webhook journal ring.", (double)st.journal_size);
        counter(&o, "qbcdc_store_commits_total", "LMDB write transactions committed (each one fsync'd).",
                (double)st.commits);
        counter(&o, "qbcdc_store_commit_failures_total", "Group commits that failed.", (double)st.commit_failures);
        counter(&o, "qbcdc_store_commit_seconds_total", "Time spent committing, fsync included.",
                (double)st.commit_ns_sum / 1e9);
        counter(&o, "qbcdc_store_map_growths_total", "Times the LMDB map was grown.", (double)st.map_growths);
        gauge(&o, "qbcdc_inbox_depth", "Raw webhook bodies held in the inbox.", (double)st.inbox_depth);
        gauge(&o, "qbcdc_inbox_quarantined", "Signed webhook bodies held in quarantine (did not parse).",
              (double)st.quarantined);
        gauge(&o, "qbcdc_pending_notices", "Coalesced change notices waiting for the reconciler.", (double)st.pending);
        gauge(&o, "qbcdc_cloudevent_ids", "CloudEvents ids remembered for retry deduplication.", (double)st.event_ids);
        gauge(&o, "qbcdc_inbox_oldest_age_seconds",
              "Age of the oldest raw webhook body held (retention: QBCDC_INBOX_RETENTION); 0 when none.",
              st.inbox_oldest_ns > 0 ? (double)(qbc_now_ns() - st.inbox_oldest_ns) / 1e9 : 0.0);
        counter(&o, "qbcdc_inbox_pruned_total", "Raw webhook bodies removed by retention.", (double)st.pruned_inbox);
        counter(&o, "qbcdc_cloudevent_ids_pruned_total", "CloudEvents ids removed by retention.",
                (double)st.pruned_event_ids);
        counter(&o, "qbcdc_feed_pruned_total", "Feed records removed by retention (QBCDC_FEED_RETENTION).",
                (double)st.pruned_feed);
        gauge(&o, "qbcdc_feed_pruned_through_seq",
              "The last feed sequence removed by retention; readers behind it get 410.",
              (double)st.feed_pruned_through);
        gauge(&o, "qbcdc_store_used_bytes", "Bytes of the LMDB map in use.", (double)st.used_bytes);
        gauge(&o, "qbcdc_store_map_bytes", "Current LMDB map size in bytes.", (double)st.map_bytes);
    }
    *len = o.len;
    return o.data;
}
