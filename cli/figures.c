/*
 * figures.c — the reconciler's live figures, shown by the HTTP API: per-realm API use
 * in GET /admin/realms, and counters in /metrics. The CLI owns both components, so
 * the bridge lives here and neither has to know the other.
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "figures.h"

typedef struct {
    qbc_reconciler_t *rec;    /* NULL: no reconciler runs */
    qbc_jetstream_t *js;      /* NULL: the feed is not published */
    qbc_cluster_t *cluster;   /* NULL: one node */
    qbc_inbox_t *inbox;       /* with cluster */
    qbc_realm_sync_t *realms; /* with cluster */
    qbc_meter_t *meter;       /* with cluster */
    qbc_dead_sync_t *dead;    /* with cluster */
    qbc_job_sync_t *jobs;     /* with cluster */
    qbc_feed_mirror_t *feed;  /* with cluster */
    qbc_delivery_t *dl;       /* push delivery (NULL: not running) */
} figures_t;

/* a component's last error for a JSON answer: the text, or null when none */
static json_t *error_or_null(const char *e)
{
    return e[0] ? json_string(e) : json_null();
}

/* the compact text of an answer object, which it frees */
static char *dump(json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

static int by_realm(const void *x, const void *y)
{
    return strcmp(((const qbc_realm_allowance_t *)x)->realm, ((const qbc_realm_allowance_t *)y)->realm);
}

static int by_use(const void *x, const void *y)
{
    const qbc_realm_allowance_t *a = x, *b = y;
    uint64_t ua = 0, ub = 0;
    for (int p = 0; p < QBC_USAGE_PURPOSES; p++) {
        ua += a->used[p];
        ub += b->used[p];
    }
    return ua < ub ? 1 : ua > ub ? -1 : strcmp(a->realm, b->realm);
}

static json_t *purposes(const uint64_t *used)
{
    json_t *o = json_object();
    for (int p = 0; p < QBC_USAGE_PURPOSES; p++)
        json_object_set_new(o, qbc_usage_purpose_name(p), json_integer((json_int_t)used[p]));
    return o;
}

/* GET /admin/budget's "cluster": this node's share, every node's, and the meter's state */
static json_t *budget_cluster(qbc_meter_t *m, const qbc_allowance_figures_t *f)
{
    uint64_t node_total = 0;
    for (int p = 0; p < QBC_USAGE_PURPOSES; p++)
        node_total += f->node_used[p];
    json_t *c = json_object();
    json_object_set_new(c, "node_used", json_integer((json_int_t)node_total));
    json_object_set_new(c, "node_by_purpose", purposes(f->node_used));
    json_object_set_new(c, "others_used", json_integer((json_int_t)f->others_total));
    json_object_set_new(c, "others_inflight", json_integer((json_int_t)f->others_inflight));
    json_object_set_new(c, "reserve", json_integer((json_int_t)f->cluster_reserve));
    json_object_set_new(c, "recovered", json_integer((json_int_t)f->recovered));
    json_object_set_new(c, "meter_connected", json_boolean(f->meter_connected));
    json_object_set_new(c, "meter_synced", json_boolean(f->meter_synced));
    json_object_set_new(c, "meter_lag_s", json_real(round(f->meter_lag_s * 10) / 10));
    json_t *nodes = json_array();
    if (m != NULL) {
        qbc_meter_node_t *list = qbc_calloc(64, sizeof(*list));
        size_t n = qbc_cluster_meter_nodes(m, f->period_start_ns, list, 64);
        char ts[QBC_TIME_BUFSZ];
        for (size_t i = 0; i < n; i++) {
            uint64_t t = 0;
            for (int p = 0; p < QBC_USAGE_PURPOSES; p++)
                t += list[i].used[p];
            json_array_append_new(nodes, json_pack("{s:s,s:I,s:o,s:I,s:s}", "node", list[i].node, "used", (json_int_t)t,
                                                   "by_purpose", purposes(list[i].used), "inflight",
                                                   (json_int_t)list[i].inflight, "updated",
                                                   qbc_time_format(list[i].updated_ns, ts)));
        }
        free(list);
        qbc_meter_stats_t ms;
        qbc_cluster_meter_stats(m, &ms);
        json_object_set_new(c, "puts", json_integer((json_int_t)ms.puts));
        json_object_set_new(c, "last_error", error_or_null(ms.last_error));
    }
    json_object_set_new(c, "nodes", nodes);
    return c;
}

/* GET /admin/budget */
static char *budget(void *ctx)
{
    qbc_reconciler_t *r = ((figures_t *)ctx)->rec;
    if (r == NULL)
        return NULL;
    qbc_allowance_figures_t f;
    qbc_realm_allowance_t *list;
    size_t n;
    char ts[QBC_TIME_BUFSZ];

    qbc_reconciler_allowance(r, &f);
    if (f.period_start_ns == 0)
        return NULL; /* not yet begun */
    qbc_reconciler_realm_allowances(r, &list, &n);
    qsort(list, n, sizeof(*list), by_use);
    json_t *top = json_array();
    for (size_t i = 0; i < n && i < 10; i++) {
        uint64_t t = 0;
        for (int p = 0; p < QBC_USAGE_PURPOSES; p++)
            t += list[i].used[p];
        if (t == 0)
            break;
        json_array_append_new(top, json_pack("{s:s,s:I,s:o}", "realm", list[i].realm, "used", (json_int_t)t,
                                             "by_purpose", purposes(list[i].used)));
    }
    free(list);
    json_t *o = json_object();
    json_object_set_new(o, "period_start", json_string(qbc_time_format(f.period_start_ns, ts)));
    json_object_set_new(o, "period_end", json_string(qbc_time_format(f.period_end_ns, ts)));
    json_object_set_new(o, "budget", f.budget ? json_integer((json_int_t)f.budget) : json_null());
    json_object_set_new(o, "used", json_integer((json_int_t)f.used_total));
    json_object_set_new(o, "remaining", f.budget ? json_integer((json_int_t)f.remaining) : json_null());
    json_object_set_new(o, "forecast", json_integer((json_int_t)f.forecast));
    json_object_set_new(o, "inflight", json_integer((json_int_t)f.inflight));
    json_object_set_new(o, "state", json_string(f.state));
    json_object_set_new(o, "by_purpose", purposes(f.used));
    json_object_set_new(o, "live_reserve", json_integer((json_int_t)f.live_reserve));
    json_object_set_new(o, "cdc_planned", json_integer((json_int_t)f.cdc_planned));
    json_object_set_new(o, "cdc_base_interval_s", json_integer(f.cdc_base_interval_s));
    json_t *w = json_array();
    if (f.live_blocked)
        json_array_append_new(w, json_string("live"));
    if (f.cdc_blocked)
        json_array_append_new(w, json_string("cdc"));
    if (f.backfill_blocked)
        json_array_append_new(w, json_string("backfill"));
    json_object_set_new(o, "waiting", w);
    json_object_set_new(o, "top_realms", top);
    if (f.shared) /* cluster mode: the figures above are the cluster's; what each node spent */
        json_object_set_new(o, "cluster", budget_cluster(((figures_t *)ctx)->meter, &f));
    return dump(o);
}

static int backfill_waiting(void *ctx, char *why, size_t size)
{
    qbc_allowance_figures_t f;
    if (((figures_t *)ctx)->rec == NULL)
        return 0;
    qbc_reconciler_allowance(((figures_t *)ctx)->rec, &f);
    if (!f.backfill_blocked)
        return 0;
    char ts[QBC_TIME_BUFSZ];
    snprintf(why, size,
             "the period's call budget is kept for live fetches and CDC (%llu of %llu used); resumes by %s or when "
             "QBCDC_MONTHLY_CALL_BUDGET is raised",
             (unsigned long long)f.used_total, (unsigned long long)f.budget, qbc_time_format(f.period_end_ns, ts));
    return 1;
}

static void realm_stats(void *ctx, void *json_array)
{
    qbc_reconciler_t *r = ((figures_t *)ctx)->rec;
    if (r == NULL)
        return;
    qbc_reconciler_stats_t *st = qbc_alloc(sizeof(*st));
    json_t *list = json_array;
    size_t i;
    json_t *o;

    qbc_reconciler_snapshot(r, st);
    qbc_realm_allowance_t *allow;
    size_t n_allow;
    qbc_reconciler_realm_allowances(r, &allow, &n_allow);
    qbc_cluster_t *cluster = ((figures_t *)ctx)->cluster;
    unsigned partitions = 0;
    if (cluster != NULL) { /* once, not per realm: the figures hold every node's name */
        qbc_cluster_stats_t cs;
        qbc_cluster_stats(cluster, &cs);
        partitions = cs.partitions;
    }
    json_array_foreach(list, i, o)
    {
        const char *realm = json_string_value(json_object_get(o, "realm"));
        unsigned calls = 0, inflight = 0;
        int64_t paused = 0;
        for (size_t k = 0; realm != NULL && k < st->n_realms; k++) {
            if (strcmp(st->realms[k].realm, realm) == 0) {
                calls = st->realms[k].calls_last_minute;
                inflight = st->realms[k].inflight;
                paused = st->realms[k].paused_until_ns;
            }
        }
        char ts[QBC_TIME_BUFSZ];
        qbc_realm_allowance_t key, *ra = NULL;
        if (realm != NULL) {
            snprintf(key.realm, sizeof(key.realm), "%s", realm);
            ra = bsearch(&key, allow, n_allow, sizeof(*allow), by_realm);
        }
        json_t *b = json_object();
        uint64_t total = 0;
        json_t *bp = json_object();
        for (int p = 0; p < QBC_USAGE_PURPOSES; p++) {
            total += ra != NULL ? ra->used[p] : 0;
            json_object_set_new(bp, qbc_usage_purpose_name(p), json_integer(ra != NULL ? (json_int_t)ra->used[p] : 0));
        }
        json_object_set_new(b, "calls_this_period", json_integer((json_int_t)total));
        json_object_set_new(b, "by_purpose", bp);
        json_object_set_new(b, "cdc_interval_s", ra != NULL ? json_integer(ra->cdc_interval_s) : json_null());
        json_object_set_new(b, "next_cdc",
                            ra != NULL && ra->next_cdc_ns > 0 ? json_string(qbc_time_format(ra->next_cdc_ns, ts))
                                                              : json_null());
        json_object_set_new(b, "sweeps", json_integer(ra != NULL ? (json_int_t)ra->sweeps : 0));
        json_object_set_new(b, "gap_sweeps", json_integer(ra != NULL ? (json_int_t)ra->gap_sweeps : 0));
        json_object_set_new(b, "gaps", json_integer(ra != NULL ? (json_int_t)ra->gaps : 0));
        json_object_set_new(b, "gap_rate", json_real(ra != NULL ? round(ra->gap_rate * 1000) / 1000 : 0));
        json_object_set_new(b, "webhooks_quiet", json_boolean(ra != NULL && ra->webhooks_quiet));
        json_object_set_new(b, "waiting_budget", json_boolean(ra != NULL && ra->waiting));
        json_object_set_new(o, "budget", b);
        json_object_set_new(o, "api_calls_last_minute", json_integer(calls));
        json_object_set_new(o, "api_inflight", json_integer(inflight));
        json_object_set_new(o, "throttled_until",
                            paused > qbc_now_ns() ? json_string(qbc_time_format(paused, ts)) : json_null());
        if (cluster != NULL && realm != NULL) { /* cluster mode: which node calls QBO for it */
            unsigned part = qbc_cluster_partition_of(realm, partitions);
            char owner[QBC_NODE_ID_MAX];
            qbc_cluster_owner(cluster, part, owner);
            json_object_set_new(o, "partition", json_integer(part));
            json_object_set_new(o, "owner", owner[0] ? json_string(owner) : json_null());
            json_object_set_new(o, "owned_here", json_boolean(qbc_cluster_owns_partition(cluster, part)));
        }
    }
    free(allow);
    free(st);
}

/* cluster mode: GET /admin/dead-letters */
static json_t *dead_json(const qbc_cluster_dead_t *d)
{
    char ts[QBC_TIME_BUFSZ];
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:s}", "id", d->key, "node", d->node, "realm", d->realm,
                          "entity", d->entity, "entity_id", d->entity_id, "op", qbc_op_name(d->op), "attempts",
                          (int)d->attempts, "error", d->error, "died_at", qbc_time_format(d->died_ns, ts));
    json_object_set_new(o, "retry_requested", json_boolean(d->state == QBC_DEAD_RETRY));
    return o;
}

static int dead_letters(void *ctx, void *json_array)
{
    qbc_dead_sync_t *ds = ((figures_t *)ctx)->dead;
    qbc_cluster_dead_t *list = qbc_calloc(1000, sizeof(*list));
    size_t n = qbc_cluster_dead_list(ds, list, 1000); /* the first 1000, as on one node */
    for (size_t i = 0; i < n; i++)
        json_array_append_new(json_array, dead_json(&list[i]));
    free(list);
    return 0;
}

static int dead_retry(void *ctx, const char *id, void *json_object)
{
    qbc_cluster_dead_t d;
    int rc = qbc_cluster_dead_retry(((figures_t *)ctx)->dead, id, &d);
    if (rc == 0) {
        json_object_set_new(json_object, "status", json_string("requested"));
        json_object_set_new(json_object, "dead_letter", dead_json(&d));
    }
    return rc;
}

static void counter(qbc_buf_t *t, const char *name, const char *help, uint64_t v)
{
    qbc_buf_printf(t, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, (unsigned long long)v);
}

static void gauge(qbc_buf_t *t, const char *name, const char *help, uint64_t v)
{
    qbc_buf_printf(t, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name, (unsigned long long)v);
}

/* GET /admin/jetstream */
static char *jetstream(void *ctx)
{
    qbc_jetstream_t *js = ((figures_t *)ctx)->js;
    if (js == NULL)
        return NULL;
    qbc_jetstream_stats_t j;
    qbc_jetstream_stats(js, &j);
    json_t *o = json_pack("{s:b,s:I,s:I,s:I,s:I,s:I}", "connected", j.connected, "cursor", (json_int_t)j.cursor, "head",
                          (json_int_t)j.head, "lag", (json_int_t)(j.head > j.cursor ? j.head - j.cursor : 0),
                          "published", (json_int_t)j.published, "failures", (json_int_t)j.failures);
    json_object_set_new(o, "skipped", json_integer((json_int_t)j.skipped));
    json_object_set_new(o, "not_owner", json_integer((json_int_t)j.not_owner));
    json_object_set_new(o, "waiting_owner", json_boolean(j.waiting_owner));
    json_object_set_new(o, "last_error", error_or_null(j.last_error));
    return dump(o);
}

static void jetstream_metrics(qbc_jetstream_t *js, qbc_buf_t *t)
{
    qbc_jetstream_stats_t j;
    qbc_jetstream_stats(js, &j);
    gauge(t, "qbcdc_jetstream_connected", "1 when the feed publisher is connected and knows its stream.", j.connected);
    gauge(t, "qbcdc_jetstream_cursor", "The last feed sequence the stream acknowledged.", j.cursor);
    gauge(t, "qbcdc_jetstream_lag", "Feed records not yet in the stream (publish lag).",
          j.head > j.cursor ? j.head - j.cursor : 0);
    counter(t, "qbcdc_jetstream_published_total", "Feed records published to the stream since start.", j.published);
    counter(t, "qbcdc_jetstream_publish_failures_total", "Publishes that failed and were retried.", j.failures);
    counter(t, "qbcdc_jetstream_skipped_total",
            "Cluster mode: records not published because the stream held that version already.", j.skipped);
    counter(t, "qbcdc_jetstream_not_owner_total",
            "Cluster mode: records not published because their realm was another node's by then.", j.not_owner);
}

/* GET /admin/cluster */
static char *cluster_view(void *ctx)
{
    qbc_cluster_t *c = ((figures_t *)ctx)->cluster;
    if (c == NULL)
        return NULL;
    qbc_cluster_stats_t cs;
    qbc_cluster_stats(c, &cs);
    json_t *nodes = json_array(), *parts = json_array(), *mine = json_array();
    for (unsigned i = 0; i < cs.n_nodes; i++)
        json_array_append_new(nodes, json_string(cs.nodes[i]));
    for (unsigned p = 0; p < cs.partitions; p++) {
        char owner[QBC_NODE_ID_MAX];
        qbc_cluster_owner(c, p, owner);
        json_array_append_new(parts, owner[0] ? json_string(owner) : json_null());
    }
    for (unsigned p = 0; p < cs.partitions; p++) {
        if (qbc_cluster_owns_partition(c, p))
            json_array_append_new(mine, json_integer(p));
    }
    json_t *o = json_pack("{s:s,s:b,s:i,s:o,s:o,s:o,s:I,s:I,s:I,s:I}", "node_id", cs.node_id, "connected", cs.connected,
                          "partitions", (int)cs.partitions, "nodes", nodes, "owned", mine, "owners", parts, "acquired",
                          (json_int_t)cs.acquired, "released", (json_int_t)cs.released, "lost", (json_int_t)cs.lost,
                          "renew_failures", (json_int_t)cs.renew_failures);
    json_object_set_new(o, "last_round", cs.last_tick_ns ? json_integer(cs.last_tick_ns / 1000000000LL) : json_null());
    json_object_set_new(o, "last_error", error_or_null(cs.last_error));
    qbc_inbox_t *ib = ((figures_t *)ctx)->inbox;
    if (ib != NULL) {
        qbc_inbox_stats_t is;
        qbc_cluster_inbox_stats(ib, &is);
        json_t *in = json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:i}", "connected", is.connected, "published",
                               (json_int_t)is.published, "publish_failures", (json_int_t)is.publish_failures,
                               "consumed", (json_int_t)is.consumed, "queued", (json_int_t)is.queued, "outstanding",
                               (json_int_t)is.outstanding, "partitions_read", (int)is.partitions_read);
        json_object_set_new(in, "last_error", error_or_null(is.last_error));
        json_object_set_new(o, "inbox", in);
    }
    qbc_realm_sync_t *rs = ((figures_t *)ctx)->realms;
    if (rs != NULL) {
        qbc_realm_sync_stats_t rst;
        qbc_cluster_realms_stats(rs, &rst);
        json_t *rj =
            json_pack("{s:b,s:I,s:I,s:I,s:I,s:I}", "connected", rst.connected, "put", (json_int_t)rst.put, "imported",
                      (json_int_t)rst.imported, "unsealable", (json_int_t)rst.unsealable, "watermarks_put",
                      (json_int_t)rst.watermarks_put, "watermarks_taken", (json_int_t)rst.watermarks_taken);
        json_object_set_new(rj, "last_error", error_or_null(rst.last_error));
        json_object_set_new(o, "realms", rj);
    }
    qbc_dead_sync_t *ds = ((figures_t *)ctx)->dead;
    if (ds != NULL) {
        qbc_dead_sync_stats_t dst;
        qbc_cluster_dead_stats(ds, &dst);
        json_t *dj =
            json_pack("{s:b,s:I,s:I,s:I,s:I}", "connected", dst.connected, "listed", (json_int_t)dst.listed, "put",
                      (json_int_t)dst.put, "redriven", (json_int_t)dst.redriven, "purged", (json_int_t)dst.purged);
        json_object_set_new(dj, "last_error", error_or_null(dst.last_error));
        json_object_set_new(o, "dead_letters", dj);
    }
    qbc_job_sync_t *jsync = ((figures_t *)ctx)->jobs;
    if (jsync != NULL) {
        qbc_job_sync_stats_t jst;
        qbc_cluster_jobs_stats(jsync, &jst);
        json_t *jj = json_pack("{s:b,s:I,s:I,s:I}", "connected", jst.connected, "put", (json_int_t)jst.put, "imported",
                               (json_int_t)jst.imported, "conflicts", (json_int_t)jst.conflicts);
        json_object_set_new(jj, "last_error", error_or_null(jst.last_error));
        json_object_set_new(o, "jobs", jj);
    }
    qbc_feed_mirror_t *fm = ((figures_t *)ctx)->feed;
    if (fm != NULL) {
        qbc_feed_mirror_stats_t fs;
        qbc_cluster_feed_stats(fm, &fs);
        json_t *fj =
            json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:I}", "connected", fs.connected, "mirrored", (json_int_t)fs.mirrored,
                      "stream_last", (json_int_t)fs.stream_last, "lag",
                      (json_int_t)(fs.stream_last > fs.mirrored ? fs.stream_last - fs.mirrored : 0), "records",
                      (json_int_t)fs.records, "skipped", (json_int_t)fs.skipped, "resets", (json_int_t)fs.resets);
        json_object_set_new(fj, "feed_id", fs.feed_id[0] ? json_string(fs.feed_id) : json_null());
        json_object_set_new(fj, "last_error", error_or_null(fs.last_error));
        json_object_set_new(o, "feed", fj);
    }
    return dump(o);
}

static void inbox_metrics(qbc_inbox_t *ib, qbc_buf_t *t)
{
    qbc_inbox_stats_t is;
    qbc_cluster_inbox_stats(ib, &is);
    counter(t, "qbcdc_cluster_inbox_published_total", "Webhooks whose events the replicated inbox stream took.",
            is.published);
    counter(t, "qbcdc_cluster_inbox_publish_failures_total",
            "Webhooks answered 503 because the replicated inbox did not take them.", is.publish_failures);
    counter(t, "qbcdc_cluster_inbox_consumed_total",
            "Inbox messages of this node's partitions made durable in its store.", is.consumed);
    gauge(t, "qbcdc_cluster_inbox_queued", "Webhooks waiting to be published to the inbox stream.", is.queued);
}

static void feed_mirror_metrics(qbc_feed_mirror_t *fm, qbc_buf_t *t)
{
    qbc_feed_mirror_stats_t fs;
    qbc_cluster_feed_stats(fm, &fs);
    gauge(t, "qbcdc_cluster_feed_mirror_connected", "1 when this node reads the cluster's feed stream.", fs.connected);
    gauge(t, "qbcdc_cluster_feed_mirror_seq", "The last stream sequence this node's copy of the cluster feed holds.",
          fs.mirrored);
    gauge(t, "qbcdc_cluster_feed_mirror_lag",
          "Stream messages not yet in this node's copy of the cluster feed (the stream's last sequence as seen).",
          fs.stream_last > fs.mirrored ? fs.stream_last - fs.mirrored : 0);
    counter(t, "qbcdc_cluster_feed_mirror_records_total", "Records copied from the feed stream since start.",
            fs.records);
    counter(t, "qbcdc_cluster_feed_mirror_skipped_total", "Feed stream messages that were no feed record (not copied).",
            fs.skipped);
}

static void cluster_metrics(qbc_cluster_t *c, qbc_buf_t *t)
{
    qbc_cluster_stats_t cs;
    qbc_cluster_stats(c, &cs);
    gauge(t, "qbcdc_cluster_connected", "1 when this node reaches the cluster's lease bucket.", cs.connected);
    gauge(t, "qbcdc_cluster_partitions", "Partitions the cluster has (QBCDC_PARTITIONS).", cs.partitions);
    gauge(t, "qbcdc_cluster_partitions_owned", "Partitions this node holds the lease of.", cs.owned);
    gauge(t, "qbcdc_cluster_nodes", "Live nodes this node sees.", cs.n_nodes);
    counter(t, "qbcdc_cluster_leases_acquired_total", "Partition leases this node took.", cs.acquired);
    counter(t, "qbcdc_cluster_leases_released_total", "Partition leases this node handed over.", cs.released);
    counter(t, "qbcdc_cluster_leases_lost_total", "Partition leases lost (not renewed in time, or taken).", cs.lost);
}

static char *metrics(void *ctx)
{
    figures_t *fg = ctx;
    qbc_reconciler_t *r = fg->rec;
    if (r == NULL) {
        if (fg->js == NULL && fg->cluster == NULL && fg->dl == NULL)
            return NULL;
        qbc_buf_t t = {qbc_alloc(1024), 0, 1024, 0};
        t.data[0] = '\0';
        if (fg->js != NULL)
            jetstream_metrics(fg->js, &t);
        if (fg->cluster != NULL)
            cluster_metrics(fg->cluster, &t);
        if (fg->inbox != NULL)
            inbox_metrics(fg->inbox, &t);
        if (fg->feed != NULL)
            feed_mirror_metrics(fg->feed, &t);
        if (fg->dl != NULL)
            qbc_delivery_metrics(fg->dl, &t);
        return t.data;
    }
    qbc_reconciler_stats_t *st = qbc_alloc(sizeof(*st));
    qbc_buf_t t = {qbc_alloc(4096), 0, 4096, 0};

    qbc_reconciler_snapshot(r, st);
    counter(&t, "qbcdc_qbo_requests_total", "HTTP requests made to QBO (API and OAuth).", st->requests);
    counter(&t, "qbcdc_qbo_queries_total", "Id IN queries (also those inside batch requests).", st->queries);
    counter(&t, "qbcdc_qbo_batches_total", "Batch requests.", st->batches);
    counter(&t, "qbcdc_qbo_reads_total", "Single entity reads.", st->reads);
    counter(&t, "qbcdc_qbo_token_refreshes_total", "OAuth access-token refreshes.", st->token_refreshes);
    counter(&t, "qbcdc_qbo_token_refresh_failures_total",
            "Access-token refreshes refused (invalid_client, ...) or left without an answer.",
            st->token_refresh_failures);
    counter(&t, "qbcdc_oauth_calls_total", "Code exchanges and revokes made at Intuit's OAuth endpoints for the API.",
            st->token_calls);
    qbc_buf_printf(&t, "# HELP qbcdc_qbo_calls_total Finished calls to QBO's API and Intuit's OAuth endpoints, by "
                       "endpoint and HTTP status (error: no answer).\n# TYPE qbcdc_qbo_calls_total counter\n");
    for (int e = 0; e < QBC_REC_CALL_ENDPOINTS; e++)
        for (int s = 0; s < QBC_REC_CALL_STATUSES; s++)
            if (st->calls[e][s] != 0 || s == 1) /* the "200" rows always, so rules find the family */
                qbc_buf_printf(&t, "qbcdc_qbo_calls_total{endpoint=\"%s\",status=\"%s\"} %llu\n",
                               qbc_reconciler_call_endpoints[e], qbc_reconciler_call_statuses[s],
                               (unsigned long long)st->calls[e][s]);
    counter(&t, "qbcdc_qbo_throttled_total", "429 answers received.", st->throttled);
    counter(&t, "qbcdc_qbo_server_errors_total", "5xx answers, timeouts and resets.", st->server_errors);
    counter(&t, "qbcdc_versions_offered_total", "Entity versions offered to the store.", st->versions_offered);
    counter(&t, "qbcdc_feed_appended_total", "Versions that were new and entered the feed.", st->feed_appended);
    counter(&t, "qbcdc_dead_letters_total", "Changes given up after max attempts.", st->dead_letters);
    counter(&t, "qbcdc_cdc_requests_total", "CDC API calls (sweeps split at the 1,000-object cap make several).",
            st->cdc_requests);
    counter(&t, "qbcdc_cdc_crowded_seconds_total",
            "Seconds with more than 1,000 changes of one entity, read through the query API instead of CDC.",
            st->cdc_stuck_seconds);
    counter(&t, "qbcdc_cdc_audit_notices_total",
            "Live versions read again because a capped CDC answer may have cut deleted objects off.",
            st->cdc_audit_notices);
    counter(&t, "qbcdc_cdc_sweeps_total", "Completed CDC sweeps (watermark committed with their versions).",
            st->cdc_sweeps);
    counter(&t, "qbcdc_cdc_sweeps_failed_total", "CDC sweeps abandoned; the realm's last_error says why.",
            st->cdc_sweeps_failed);
    counter(&t, "qbcdc_cdc_commits_total",
            "Store commits of CDC sweeps (QBCDC_CDC_COMMIT_MAX versions at most each; the last carries the watermark).",
            st->cdc_commits);
    counter(&t, "qbcdc_cdc_versions_new_total", "Versions CDC found that webhooks had not delivered.",
            st->cdc_versions_new);
    counter(&t, "qbcdc_backfill_requests_total", "Backfill query pages requested.", st->backfill_requests);
    counter(&t, "qbcdc_backfill_versions_new_total", "Versions backfills found that were new to the feed.",
            st->backfill_versions_new);
    qbc_allowance_figures_t f;
    qbc_reconciler_allowance(r, &f);
    qbc_buf_printf(&t, "# HELP qbcdc_budget_calls Metered (CorePlus) calls this budget period, by purpose.\n"
                       "# TYPE qbcdc_budget_calls gauge\n");
    for (int p = 0; p < QBC_USAGE_PURPOSES; p++)
        qbc_buf_printf(&t, "qbcdc_budget_calls{purpose=\"%s\"} %llu\n", qbc_usage_purpose_name(p),
                       (unsigned long long)f.used[p]);
    qbc_buf_printf(&t,
                   "# HELP qbcdc_budget_limit Metered calls allowed per period (QBCDC_MONTHLY_CALL_BUDGET; 0: not "
                   "governed).\n# TYPE qbcdc_budget_limit gauge\nqbcdc_budget_limit %llu\n",
                   (unsigned long long)f.budget);
    qbc_buf_printf(&t,
                   "# HELP qbcdc_budget_used_ratio Share of the period's budget used (0 when not governed).\n"
                   "# TYPE qbcdc_budget_used_ratio gauge\nqbcdc_budget_used_ratio %g\n",
                   f.budget ? (double)f.used_total / (double)f.budget : 0.0);
    qbc_buf_printf(&t,
                   "# HELP qbcdc_budget_forecast_ratio The period's calls at its pace so far, as a share of the "
                   "budget.\n# TYPE qbcdc_budget_forecast_ratio gauge\nqbcdc_budget_forecast_ratio %g\n",
                   f.budget ? (double)f.forecast / (double)f.budget : 0.0);
    qbc_buf_printf(&t,
                   "# HELP qbcdc_budget_waiting Work waiting for the next budget period, by purpose (1: waiting).\n"
                   "# TYPE qbcdc_budget_waiting gauge\nqbcdc_budget_waiting{purpose=\"live\"} %d\n"
                   "qbcdc_budget_waiting{purpose=\"cdc\"} %d\nqbcdc_budget_waiting{purpose=\"backfill\"} %d\n",
                   f.live_blocked, f.cdc_blocked, f.backfill_blocked);
    qbc_buf_printf(&t,
                   "# HELP qbcdc_budget_period_end_seconds Unix time the budget period ends.\n"
                   "# TYPE qbcdc_budget_period_end_seconds gauge\nqbcdc_budget_period_end_seconds %lld\n",
                   (long long)(f.period_end_ns / 1000000000));
    if (f.shared) { /* cluster mode: qbcdc_budget_calls is the cluster's; this node's own beside it */
        qbc_buf_printf(&t, "# HELP qbcdc_budget_node_calls Metered calls this node made this budget period, by "
                           "purpose (qbcdc_budget_calls is the cluster's).\n# TYPE qbcdc_budget_node_calls gauge\n");
        for (int p = 0; p < QBC_USAGE_PURPOSES; p++)
            qbc_buf_printf(&t, "qbcdc_budget_node_calls{purpose=\"%s\"} %llu\n", qbc_usage_purpose_name(p),
                           (unsigned long long)f.node_used[p]);
        gauge(&t, "qbcdc_budget_cluster_reserve", "Calls kept for other nodes' spending not yet seen in the meter.",
              f.cluster_reserve);
        gauge(&t, "qbcdc_budget_meter_connected", "1 when the shared meter (bucket qbcdc_meter) is reachable.",
              (uint64_t)f.meter_connected);
        gauge(&t, "qbcdc_budget_meter_nodes", "Nodes that counted calls this period, this one included.",
              (uint64_t)f.n_others + 1);
    }
    qbc_buf_printf(&t, "# HELP qbcdc_reconcile_seconds From a change's first sighting to the commit of its version.\n"
                       "# TYPE qbcdc_reconcile_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < 11; i++) {
        cum += st->fetch_latency_hist[i];
        qbc_buf_printf(&t, "qbcdc_reconcile_seconds_bucket{le=\"%g\"} %llu\n",
                       qbc_reconciler_latency_bounds_ms[i] / 1000.0, (unsigned long long)cum);
    }
    cum += st->fetch_latency_hist[11];
    qbc_buf_printf(&t, "qbcdc_reconcile_seconds_bucket{le=\"+Inf\"} %llu\nqbcdc_reconcile_seconds_count %llu\n",
                   (unsigned long long)cum, (unsigned long long)cum);
    qbc_buf_printf(&t, "# HELP qbcdc_realm_api_calls_last_minute QBO API calls per realm in the last minute.\n"
                       "# TYPE qbcdc_realm_api_calls_last_minute gauge\n");
    for (size_t k = 0; k < st->n_realms; k++)
        qbc_buf_printf(&t, "qbcdc_realm_api_calls_last_minute{realm=\"%s\"} %u\n", st->realms[k].realm,
                       st->realms[k].calls_last_minute);
    free(st);
    if (fg->js != NULL)
        jetstream_metrics(fg->js, &t);
    if (fg->cluster != NULL)
        cluster_metrics(fg->cluster, &t);
    if (fg->inbox != NULL)
        inbox_metrics(fg->inbox, &t);
    if (fg->feed != NULL)
        feed_mirror_metrics(fg->feed, &t);
    if (fg->dl != NULL)
        qbc_delivery_metrics(fg->dl, &t);
    return t.data;
}

static void summary(void *ctx, char *buf, size_t size)
{
    if (((figures_t *)ctx)->rec == NULL) {
        snprintf(buf, size, "no reconciler");
        return;
    }
    qbc_reconciler_stats_t *st = qbc_alloc(sizeof(*st));
    qbc_reconciler_snapshot(((figures_t *)ctx)->rec, st);
    snprintf(buf, size, "%llu QBO requests, %llu feed records from fetches, %llu CDC sweeps (%llu failed)",
             (unsigned long long)st->requests, (unsigned long long)st->feed_appended,
             (unsigned long long)st->cdc_sweeps, (unsigned long long)st->cdc_sweeps_failed);
    free(st);
}

void qbc_figures_install(qbc_api_t *ing, qbc_reconciler_t *r, qbc_jetstream_t *js, qbc_delivery_t *dl,
                         const qbc_figures_cluster_t *cluster)
{
    static figures_t fg;
    fg.cluster = cluster != NULL ? cluster->leases : NULL;
    fg.inbox = cluster != NULL ? cluster->inbox : NULL;
    fg.realms = cluster != NULL ? cluster->realms : NULL;
    fg.meter = cluster != NULL ? cluster->meter : NULL;
    fg.dead = cluster != NULL ? cluster->dead : NULL;
    fg.jobs = cluster != NULL ? cluster->jobs : NULL;
    fg.feed = cluster != NULL ? cluster->feed : NULL;
    fg.rec = r;
    fg.js = js;
    fg.dl = dl;
    qbc_api_hooks_t hooks = {.realm_stats = realm_stats,
                             .metrics = metrics,
                             .summary = summary,
                             .budget = budget,
                             .jetstream = jetstream,
                             .cluster = cluster_view,
                             .backfill_waiting = backfill_waiting,
                             .dead_letters = fg.dead != NULL ? dead_letters : NULL,
                             .dead_retry = fg.dead != NULL ? dead_retry : NULL,
                             .ctx = &fg};
    qbc_api_set_hooks(ing, &hooks);
}
