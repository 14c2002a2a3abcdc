/*
 * test_allowance.c — reconciler/allowance.c without the thread: a reconciler struct built
 * by hand over a real store. Metering counts 2xx answers only, per realm and purpose, and
 * reaches the store; each purpose stops at its line (live > CDC > backfill) and never past
 * the budget; the CDC schedule sweeps everyone at the shortest interval when there is room
 * and, short of it, sweeps realms with webhook gaps more often and stays within the budget;
 * a new period starts from zero.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../../reconciler/rec_internal.h"
#include "../../tap.h"

#define NS 1000000000LL

static qbc_reconciler_t *make(qbc_store_t *store, uint64_t budget, unsigned period_s, size_t n_realms)
{
    qbc_reconciler_t *r = qbc_calloc(1, sizeof(*r));
    r->store = store;
    r->cfg.rate_per_min = 500;
    r->cfg.max_inflight = 10;
    r->cfg.cdc_interval_s = 2;
    r->cfg.cdc_max_interval_s = 3600;
    r->cfg.budget_period_s = period_s;
    r->allow.budget = budget;
    r->allow.margin = budget / 1000 + (budget > 0);
    pthread_mutex_init(&r->stats_mu, NULL);
    for (size_t i = 0; i < n_realms; i++) {
        char name[16];
        snprintf(name, sizeof(name), "%zu", 1000 + i);
        rec_realm_t *realm = qbc_rec__realm_get(r, name, 1);
        realm->has_tokens = 1;
    }
    return r;
}

static void destroy(qbc_reconciler_t *r)
{
    for (size_t i = 0; i < r->n_realms; i++) {
        qbc_budget_dispose(&r->realms[i]->budget);
        qbc_budget_dispose(&r->realms[i]->batch_budget);
        free(r->realms[i]->groups);
        free(r->realms[i]);
    }
    free(r->realms);
    qbc_rec__allowance_free(r);
    pthread_mutex_destroy(&r->stats_mu);
    free(r);
}

typedef struct {
    uint64_t total[QBC_USAGE_PURPOSES];
    int rows;
} stored_t;

static int on_row(const qbc_usage_t *u, void *ctx)
{
    stored_t *s = ctx;
    if (u->realm[0] == '\0')
        memcpy(s->total, u->calls, sizeof(u->calls));
    s->rows++;
    return 0;
}

static void test_meter_and_lines(qbc_store_t *store)
{
    qbc_reconciler_t *r = make(store, 1000, 3600, 2);
    rec_realm_t *a = r->realms[0], *b = r->realms[1];
    int64_t now = qbc_mono_ns();
    qbc_rec__allowance_tick(r, now);
    ok(r->allow.period_start_ns > 0 && r->allow.period_end_ns - r->allow.period_start_ns == 3600 * NS,
       "a period of QBCDC_BUDGET_PERIOD seconds");

    qbc_rec__allowance_started(r, 3);
    is_int((int)r->allow.inflight, 3, "a call started reserves its units");
    qbc_rec__allowance_ended(r, a, QBC_USAGE_LIVE, 3, 1);
    qbc_rec__allowance_started(r, 1);
    qbc_rec__allowance_ended(r, b, QBC_USAGE_CDC, 1, 0);
    qbc_rec__allowance_started(r, 1);
    qbc_rec__allowance_ended(r, b, QBC_USAGE_CDC, 1, 1);
    ok(r->allow.inflight == 0 && r->allow.used[QBC_USAGE_LIVE] == 3 && r->allow.used[QBC_USAGE_CDC] == 1,
       "answered 2xx: counted by purpose (a batch of 3 as 3); a failed call is not");
    ok(a->used[QBC_USAGE_LIVE] == 3 && b->used[QBC_USAGE_CDC] == 1, "and by realm");
    qbc_rec__allowance_flush(r);
    qbc_store_flush(store);
    stored_t s = {{0}, 0};
    qbc_store_usage_scan(store, r->allow.period_start_ns, on_row, &s);
    ok(s.rows == 3 && s.total[QBC_USAGE_LIVE] == 3 && s.total[QBC_USAGE_CDC] == 1,
       "flushed to the store: the total and both realms");

    /* the lines: stop = 1000 - 2; make 900 used, a live reserve of 50 and 40 sweeps planned */
    r->allow.used[QBC_USAGE_LIVE] = 900;
    r->allow.used[QBC_USAGE_CDC] = 0;
    r->allow.live_reserve = 50;
    r->allow.cdc_planned = 40;
    ok(qbc_rec__allowance_permits(r, QBC_USAGE_BACKFILL, 8), "backfill: 900 + 8 + 50 + 40 <= 998");
    ok(!qbc_rec__allowance_permits(r, QBC_USAGE_BACKFILL, 9), "backfill: one more is past its line");
    ok(qbc_rec__allowance_permits(r, QBC_USAGE_CDC, 48) && !qbc_rec__allowance_permits(r, QBC_USAGE_CDC, 49),
       "CDC: up to the live reserve");
    ok(qbc_rec__allowance_permits(r, QBC_USAGE_LIVE, 98) && !qbc_rec__allowance_permits(r, QBC_USAGE_LIVE, 99),
       "live: up to the budget less its margin, never past it");
    r->allow.inflight = 98;
    ok(!qbc_rec__allowance_permits(r, QBC_USAGE_LIVE, 1), "calls in flight count against it");
    r->allow.budget = 0;
    ok(qbc_rec__allowance_permits(r, QBC_USAGE_BACKFILL, 1000000), "budget 0: not governed");
    destroy(r);
}

static void test_schedule(qbc_store_t *store)
{
    /* room: 100 realms x 1800 sweeps of an hour at 2 s would take 180,000 calls */
    qbc_reconciler_t *r = make(store, 1000000, 3600, 100);
    int64_t now = qbc_mono_ns();
    qbc_rec__allowance_tick(r, now);
    int all_min = 1;
    for (size_t i = 0; i < r->n_realms; i++)
        all_min &= qbc_rec__cdc_interval_ns(r, r->realms[i]) == 2 * NS;
    ok(all_min, "with room, every realm sweeps at QBCDC_CDC_INTERVAL");
    destroy(r);

    /* short of it: 3,000 calls for the hour, 10 realms of 100 with webhook gaps */
    r = make(store, 3000, 3600, 100);
    for (size_t i = 0; i < 10; i++)
        qbc_rec__allowance_sweep_done(r, r->realms[i], 4); /* found 4 changes webhooks missed */
    for (size_t i = 10; i < 100; i++)
        qbc_rec__allowance_sweep_done(r, r->realms[i], 0);
    qbc_rec__allowance_tick(r, qbc_mono_ns());
    int64_t lossy = qbc_rec__cdc_interval_ns(r, r->realms[0]), healthy = qbc_rec__cdc_interval_ns(r, r->realms[50]);
    char line[160];
    snprintf(line, sizeof(line), "intervals: %lld s with gaps, %lld s without; %llu sweeps planned, reserve %llu",
             (long long)(lossy / NS), (long long)(healthy / NS), (unsigned long long)r->allow.cdc_planned,
             (unsigned long long)r->allow.live_reserve);
    diag(line);
    ok(lossy * 3 < healthy, "short of room: realms with webhook gaps are swept 4x as often");
    ok(healthy > 2 * NS && healthy <= 3600 * NS, "and the others stretched, within QBCDC_CDC_MAX_INTERVAL");
    double planned = 0, left = (double)(r->allow.period_end_ns - qbc_now_ns());
    for (size_t i = 0; i < r->n_realms; i++)
        planned += left / (double)qbc_rec__cdc_interval_ns(r, r->realms[i]);
    /* the period is aligned to the clock: near its end, even every realm at 2 s needs less */
    double most = left / (2.0 * NS) * (double)r->n_realms * 0.9;
    if (most > 2000)
        most = 2000;
    ok(planned + r->allow.live_reserve <= 3000 - 4 && planned >= most,
       "the sweeps of the time left fit the budget less the live reserve, and use most of it");

    /* 40 s before the period ends, sweeping every realm every 2 s takes 2,000 calls: there is
     * room for it, so the realms without gaps are not held back at their weight's pace */
    int64_t end = r->allow.period_end_ns;
    r->allow.period_end_ns = qbc_now_ns() + 40 * NS;
    r->allow.fit_due = 0;
    qbc_rec__allowance_tick(r, qbc_mono_ns());
    ok(qbc_rec__cdc_interval_ns(r, r->realms[0]) == 2 * NS && qbc_rec__cdc_interval_ns(r, r->realms[50]) == 2 * NS,
       "near the period's end, with room, every realm sweeps at QBCDC_CDC_INTERVAL");
    /* 100 s before it, that would take 5,000: the realms without gaps stretch, the budget is used */
    r->allow.period_end_ns = qbc_now_ns() + 100 * NS;
    r->allow.fit_due = 0;
    qbc_rec__allowance_tick(r, qbc_mono_ns());
    lossy = qbc_rec__cdc_interval_ns(r, r->realms[0]);
    healthy = qbc_rec__cdc_interval_ns(r, r->realms[50]);
    ok(lossy == 2 * NS && healthy > 2 * NS && r->allow.cdc_planned + r->allow.live_reserve <= 3000 - 4 &&
           r->allow.cdc_planned >= 2500,
       "100 s before it: gaps at the shortest interval, the others stretched to fit, most of it used");
    r->allow.period_end_ns = end;

    /* a new period starts from zero */
    r->allow.used[QBC_USAGE_CDC] = 500;
    r->realms[0]->used[QBC_USAGE_CDC] = 7;
    r->allow.period_end_ns = qbc_now_ns() - 1;
    qbc_rec__allowance_tick(r, qbc_mono_ns());
    ok(r->allow.used[QBC_USAGE_CDC] == 0 && r->realms[0]->used[QBC_USAGE_CDC] == 0 &&
           r->allow.period_end_ns > qbc_now_ns(),
       "a new period starts from zero");
    destroy(r);
}

static qbc_store_t *open_store(char *dir)
{
    qbc_store_config_t cfg = {.dir = dir, .no_master_key = 1};
    qbc_store_t *store = NULL;
    if (mkdtemp(dir) == NULL || qbc_store_open(&cfg, &store) != 0)
        return NULL;
    return store;
}

/* a shared meter as cluster.h's would answer (qbc_reconciler_config_t.meter) */
typedef struct {
    qbc_meter_share_t in; /* what the reconciler last handed over */
    int synced;
    uint64_t own_live, others_live, others_inflight;
} fake_meter_t;

static void fake_meter(void *ctx, qbc_meter_share_t *x)
{
    fake_meter_t *f = ctx;
    f->in = *x;
    memset(x->own, 0, sizeof(x->own));
    memset(x->others, 0, sizeof(x->others));
    x->connected = x->synced = f->synced;
    x->lag_ns = 0;
    x->own[QBC_USAGE_LIVE] = f->own_live;
    x->others[QBC_USAGE_LIVE] = f->others_live;
    x->others_inflight = f->others_inflight;
    x->n_others = 1;
}

static void test_shared_meter(qbc_store_t *store)
{
    qbc_reconciler_t *r = make(store, 100, 3600, 1);
    fake_meter_t f;
    memset(&f, 0, sizeof(f));
    r->cfg.meter = fake_meter;
    r->cfg.meter_ctx = &f;
    int64_t now = qbc_mono_ns();
    qbc_rec__allowance_tick(r, now);
    ok(!qbc_rec__allowance_permits(r, QBC_USAGE_LIVE, 1), "no metered call before the shared meter was read once");
    ok(r->allow.live_refused_ns == 0, "and that is not the budget refusing");

    f.synced = 1;
    f.others_live = 50;
    r->allow.share_due = 0;
    qbc_rec__allowance_tick(r, now);
    ok(qbc_rec__allowance_permits(r, QBC_USAGE_LIVE, 49), "the others' 50 calls count: 49 more fit under 99");
    ok(!qbc_rec__allowance_permits(r, QBC_USAGE_LIVE, 50), "50 do not");

    f.own_live = 30; /* this node's count in the bucket: it restarted on an empty disk */
    r->allow.share_due = 0;
    qbc_rec__allowance_tick(r, now);
    is_int((int)r->allow.used[QBC_USAGE_LIVE], 30, "its own count is taken back from the bucket");
    is_int((int)r->allow.recovered, 30, "and shown as recovered");
    ok(qbc_rec__allowance_permits(r, QBC_USAGE_LIVE, 19) && !qbc_rec__allowance_permits(r, QBC_USAGE_LIVE, 20),
       "19 more fit, 20 do not");
    f.others_inflight = 5;
    r->allow.share_due = 0;
    qbc_rec__allowance_tick(r, now);
    ok(!qbc_rec__allowance_permits(r, QBC_USAGE_LIVE, 15), "the others' calls in flight count too");

    qbc_rec__allowance_started(r, 2);
    qbc_rec__allowance_ended(r, r->realms[0], QBC_USAGE_LIVE, 2, 1);
    r->allow.share_due = 0;
    r->allow.publish_due = 0;
    qbc_rec__allowance_tick(r, now);
    is_int((int)f.in.used[QBC_USAGE_LIVE], 32, "this node's count is handed to the meter");
    qbc_allowance_figures_t fig;
    qbc_reconciler_allowance(r, &fig);
    ok(fig.shared && fig.used_total == 82 && fig.node_used[QBC_USAGE_LIVE] == 32 && fig.others_total == 50,
       "the figures show the cluster's use (82) and this node's (32)");
    is_int((int)fig.remaining, 18, "remaining is the cluster's");

    is_int((int)qbc_rec__cluster_reserve(0, 0), 0, "no reserve when the others spend nothing");
    is_int((int)qbc_rec__cluster_reserve(2.0, 0), 2, "a second of the others' pace while the meter is current");
    is_int((int)qbc_rec__cluster_reserve(2.0, 4 * NS), 10, "more while it is out of reach");
    is_int((int)qbc_rec__cluster_reserve(2.0, 600 * NS), 122, "a minute's worth at most");
    destroy(r);
}

static void remove_dir(const char *dir)
{
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("cleanup failed");
}

int main(void)
{
    qbc_log_set_level(QBC_LOG_ERROR);
    char d1[] = "/tmp/qbcdc-allow-XXXXXX", d2[] = "/tmp/qbcdc-allow-XXXXXX";
    qbc_store_t *s1 = open_store(d1), *s2 = open_store(d2);
    ok(s1 != NULL && s2 != NULL, "two stores");
    if (s1 == NULL || s2 == NULL)
        return done_testing();
    printf("# metering and the lines of each purpose\n");
    test_meter_and_lines(s1);
    printf("# the CDC schedule\n");
    test_schedule(s2);
    printf("# cluster mode: the meter shared\n");
    test_shared_meter(s2);
    qbc_store_close(s1);
    qbc_store_close(s2);
    remove_dir(d1);
    remove_dir(d2);
    return done_testing();
}
