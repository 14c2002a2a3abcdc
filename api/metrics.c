/*
 * metrics.c — the Prometheus text exposition.
 *
 *   GET /metrics   build and start time, the webhook endpoint's figures (ingress/), the
 *                  store's, and the embedder's (the reconciler's, through a hook)
 *
 * Webhook counters live on the loop thread (no locking); store figures come from
 * qbc_store_stats(), one short read transaction per scrape.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api_internal.h"

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

typedef struct {
    uint64_t by_status[3];
    int64_t oldest_mark_ns; /* the oldest CDC watermark of an active realm (0: none) */
} realm_census_t;

static int count_realm(const qbc_realm_t *r, int has_tokens, void *ctx)
{
    (void)has_tokens;
    realm_census_t *c = ctx;
    if ((unsigned)r->status < 3)
        c->by_status[r->status]++;
    if (r->status == QBC_REALM_ACTIVE && r->cdc_watermark_ns > 0 &&
        (c->oldest_mark_ns == 0 || r->cdc_watermark_ns < c->oldest_mark_ns))
        c->oldest_mark_ns = r->cdc_watermark_ns;
    return 0;
}

static int count_job(const qbc_backfill_t *b, void *ctx)
{
    uint64_t *by_status = ctx;
    if ((unsigned)b->status < 5)
        by_status[b->status]++;
    return 0;
}

static char *render(qbc_api_t *api, size_t *len)
{
    qbc_store_t *store = api->store;
    qbc_buf_t o = {qbc_alloc(8192), 0, 8192, 0};
    qbc_store_stats_t st;
    int store_ok = qbc_store_stats(store, &st) == 0;

    qbc_buf_printf(&o,
                   "# HELP qbcdc_build_info Build information.\n# TYPE qbcdc_build_info gauge\n"
                   "qbcdc_build_info{version=\"%s\"} 1\n",
                   QBCDC_VERSION);
    gauge(&o, "qbcdc_start_time_seconds", "Unix time the service started.", (double)api->started_ns / 1e9);

    qbc_ingress_metrics(api->ingress, &o);
    counter(&o, "qbcdc_http_ambiguous_framing_total",
            "HTTP/1 requests refused with 400 for ambiguous body framing (differing Content-Lengths, or a "
            "Content-Length beside a Transfer-Encoding).",
            (double)__atomic_load_n(&qbc_api__ambiguous_framing, __ATOMIC_RELAXED));
    if (api->forwarder != NULL) { /* cluster mode: realm admin requests for another node (forward.c) */
        qbc_buf_printf(&o,
                       "# HELP qbcdc_admin_forwarded_total Realm admin requests this node does not own, by outcome: "
                       "relayed (the owner's answer), unreachable (no answer in time), loop (forwarded here and "
                       "not ours either), no_owner (none known).\n# TYPE qbcdc_admin_forwarded_total counter\n");
        const char *names[] = {"relayed", "unreachable", "loop", "no_owner"};
        const uint64_t v[] = {api->fwd.relayed, api->fwd.unreachable, api->fwd.loops, api->fwd.no_owner};
        for (int i = 0; i < 4; i++)
            qbc_buf_printf(&o, "qbcdc_admin_forwarded_total{result=\"%s\"} %llu\n", names[i], (unsigned long long)v[i]);
    }
    gauge(&o, "qbcdc_feed_streams", "Long-polls and SSE streams open (at most QBCDC_MAX_STREAMS).",
          (double)api->n_waiters);

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
        gauge(&o, "qbcdc_pending_oldest_age_seconds",
              "Age of the oldest pending change notice (since its first webhook was received); 0 when none.",
              st.pending_oldest_ns > 0 && qbc_now_ns() > st.pending_oldest_ns
                  ? (double)(qbc_now_ns() - st.pending_oldest_ns) / 1e9
                  : 0.0);
        gauge(&o, "qbcdc_dead_letters", "Notices the reconciler gave up on (GET /admin/dead-letters).",
              (double)st.dead_letters);
        realm_census_t census = {{0, 0, 0}, 0};
        if (qbc_store_realm_scan(store, count_realm, &census) == 0) {
            qbc_buf_printf(&o, "# HELP qbcdc_realms Realms by status.\n# TYPE qbcdc_realms gauge\n");
            for (int i = 0; i < 3; i++)
                qbc_buf_printf(&o, "qbcdc_realms{status=\"%s\"} %llu\n", qbc_realm_status_name((qbc_realm_status_t)i),
                               (unsigned long long)census.by_status[i]);
            gauge(&o, "qbcdc_cdc_watermark_age_seconds_max",
                  "Age of the oldest CDC watermark of an active realm: the feed is confirmed complete up to that "
                  "long ago (0: none yet).",
                  census.oldest_mark_ns > 0 ? (double)(qbc_now_ns() - census.oldest_mark_ns) / 1e9 : 0.0);
        }
        uint64_t jobs[5] = {0, 0, 0, 0, 0};
        if (qbc_store_backfill_scan(store, count_job, jobs) == 0) {
            qbc_buf_printf(&o, "# HELP qbcdc_jobs Backfill and snapshot jobs by state.\n# TYPE qbcdc_jobs gauge\n");
            for (int i = 0; i < 5; i++)
                qbc_buf_printf(&o, "qbcdc_jobs{state=\"%s\"} %llu\n",
                               qbc_backfill_status_name((qbc_backfill_status_t)i), (unsigned long long)jobs[i]);
        }
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

int qbc_api__on_metrics(h2o_handler_t *_self, h2o_req_t *req)
{
    qbc_api_t *api = ((api_handler_t *)_self)->api;
    size_t len;

    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/metrics"))) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such endpoint");
        return 0;
    }
    char *text = render(api, &len);
    char *more = api->hooks.metrics != NULL ? api->hooks.metrics(api->hooks.ctx) : NULL;
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
