/*
 * allowance.c — Intuit's monthly CorePlus allowance: metered, planned, governed.
 *
 * Intuit meters the app's read calls to the Accounting API per month (500,000 on the
 * Builder tier) and blocks the app until the next month once they are spent. So every
 * metered call (a 2xx answer to a query, read, CDC or batch request; a batch counts as
 * its items; and, since it may have been served, one sent but never answered: a timeout, a
 * reset, an abort) is counted here per period, realm and purpose, and handed to the store each
 * second (a crash loses at most a second of counts); a restart reads the period's counts
 * back.
 *
 * Governing, with spent = counted + in flight and stop = budget less a small margin:
 *   live fetches     may spend up to stop: only they may use the last calls;
 *   CDC sweeps       may spend up to stop - live_reserve;
 *   backfills, ...   may spend up to stop - live_reserve - cdc_planned,
 * where live_reserve is the live fetches' pace so far times the time left (x1.25, at
 * least 1% of the budget) and cdc_planned is what the CDC schedule will spend in the
 * time left. A purpose past its line waits for the next period: notices stay pending,
 * backfills wait; nothing is lost and the app is never blocked.
 *
 * The CDC schedule: each realm's interval is base / w, clamped to [cdc_interval_s,
 * cdc_max_interval_s], with w = 1 + 3 x (share of its recent sweeps that found changes no
 * webhook had reported) + 1 if its webhooks went quiet after it had been active. Every
 * few seconds `base` is fitted (bisection) so that the sweeps of the time left cost no
 * more than stop - spent - live_reserve: with room, every realm sweeps at the shortest
 * interval; short of it, realms whose webhooks deliver everything are swept least.
 *
 * Cluster mode (cfg.meter): the allowance is the app's, for every node together. About every
 * 100 ms this node hands its counts to the shared meter (cluster/meter.c, a JetStream bucket)
 * and gets back the other nodes' counts of the period and their calls in flight, which count
 * as spent here too. What the others spent since their last put is not seen yet: a reserve
 * of their pace (over the last 5 s) x (1 s + how long the meter has not reached the bucket)
 * stands for it, so the cluster's overshoot stays within about nodes x calls a second x the
 * meter's lag beyond that reserve. The CDC schedule fits into its share of the room left (the
 * room divided by the nodes spending). A node restarted on an empty disk takes its own count
 * of the period back from the bucket (the larger of the two); until the meter has read the
 * bucket once (10 s at most) it makes no metered call.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "rec_internal.h"

#define NS 1000000000LL
#define GAP_WEIGHT 3.0
#define QUIET_WEIGHT 1.0

/* ---------------------------------------------------------------- periods */

static void period_at(const qbc_reconciler_t *r, int64_t wall, int64_t *start, int64_t *end)
{
    if (r->cfg.budget_period_s > 0) {
        int64_t p = (int64_t)r->cfg.budget_period_s * NS;
        *start = wall / p * p;
        *end = *start + p;
        return;
    }
    time_t t = (time_t)(wall / NS);
    struct tm tm;
    if (r->cfg.budget_local_months)
        localtime_r(&t, &tm);
    else
        gmtime_r(&t, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    struct tm next = tm;
    next.tm_mon += 1; /* normalized by mktime/timegm: December -> January */
    time_t s = r->cfg.budget_local_months ? mktime(&tm) : timegm(&tm);
    time_t e = r->cfg.budget_local_months ? mktime(&next) : timegm(&next);
    *start = (int64_t)s * NS;
    *end = (int64_t)e * NS;
}

static uint64_t sum(const uint64_t *v)
{
    uint64_t t = 0;
    for (int i = 0; i < QBC_USAGE_PURPOSES; i++)
        t += v[i];
    return t;
}

/* the period's calls of the whole app: this node's, and the other nodes' as last known */
static uint64_t used_all(const rec_allowance_t *a)
{
    return sum(a->used) + a->others_total;
}

/* what governing counts as spent: answered, in flight (here and, as last known, elsewhere), and
   the reserve for the other nodes' calls not seen yet */
static uint64_t spent(const rec_allowance_t *a)
{
    return used_all(a) + a->inflight + a->share.others_inflight + a->cluster_reserve;
}

/* ---------------------------------------------------------------- metering */

void qbc_rec__allowance_started(qbc_reconciler_t *r, unsigned units)
{
    r->allow.inflight += units;
}

void qbc_rec__allowance_ended(qbc_reconciler_t *r, rec_realm_t *realm, int purpose, unsigned units, int counted)
{
    rec_allowance_t *a = &r->allow;
    a->inflight = a->inflight >= units ? a->inflight - units : 0;
    if (!counted || units == 0 || realm == NULL)
        return;
    if (purpose < 0 || purpose >= QBC_USAGE_PURPOSES)
        purpose = QBC_USAGE_OTHER;
    a->used[purpose] += units;
    realm->used[purpose] += units;
    realm->unflushed[purpose] += units;
    realm->unflushed_any = 1;
}

int qbc_rec__allowance_permits(qbc_reconciler_t *r, int purpose, unsigned units)
{
    rec_allowance_t *a = &r->allow;
    if (a->budget == 0)
        return 1;
    /* cluster mode: not before the shared meter was read once (this node's count may be there) */
    if (r->cfg.meter != NULL && !a->share.synced && qbc_mono_ns() - a->started_ns < QBC_REC_METER_WAIT_NS)
        return 0;
    uint64_t stop = a->budget > a->margin ? a->budget - a->margin : 0;
    uint64_t need = spent(a) + units;
    int ok;
    int64_t *refused;
    if (purpose == QBC_USAGE_LIVE) {
        ok = need <= stop;
        refused = &a->live_refused_ns;
    } else if (purpose == QBC_USAGE_CDC) {
        ok = need + a->live_reserve <= stop;
        refused = &a->cdc_refused_ns;
    } else {
        ok = need + a->live_reserve + a->cdc_planned <= stop;
        refused = &a->backfill_refused_ns;
    }
    if (!ok)
        *refused = qbc_mono_ns();
    return ok;
}

/* ---------------------------------------------------------------- the store */

typedef struct {
    qbc_usage_job_t job;
    qbc_usage_delta_t *deltas;
} usage_job_t;

/* the writer thread: nothing of the reconciler's is touched (it may be gone at shutdown) */
static void on_usage_committed(qbc_store_job_t *j)
{
    usage_job_t *u = (usage_job_t *)j;
    if (j->result != 0)
        qbc_log(QBC_LOG_ERROR, REC_MOD,
                "storing %zu realm(s)' metered call counts failed: %s; they are counted "
                "in memory only until the next start",
                u->job.n_deltas, qbc_strerror(j->result));
    free(u->deltas);
    free(u);
}

void qbc_rec__allowance_flush(qbc_reconciler_t *r)
{
    rec_allowance_t *a = &r->allow;
    size_t n = 0;
    for (size_t i = 0; i < r->n_realms; i++)
        n += r->realms[i]->unflushed_any;
    if (n == 0 || a->period_start_ns == 0)
        return;
    usage_job_t *u = qbc_calloc(1, sizeof(*u));
    u->deltas = qbc_calloc(n, sizeof(*u->deltas));
    size_t k = 0;
    for (size_t i = 0; i < r->n_realms && k < n; i++) {
        rec_realm_t *realm = r->realms[i];
        if (!realm->unflushed_any)
            continue;
        snprintf(u->deltas[k].realm, sizeof(u->deltas[k].realm), "%s", realm->name);
        memcpy(u->deltas[k].calls, realm->unflushed, sizeof(realm->unflushed));
        memset(realm->unflushed, 0, sizeof(realm->unflushed));
        realm->unflushed_any = 0;
        k++;
    }
    u->job.job.on_commit = on_usage_committed;
    u->job.period_start_ns = a->period_start_ns;
    u->job.deltas = u->deltas;
    u->job.n_deltas = k;
    int rc = qbc_store_add_usage(r->store, &u->job);
    if (rc != 0) {
        qbc_log(QBC_LOG_ERROR, REC_MOD, "cannot store metered call counts: %s", qbc_strerror(rc));
        free(u->deltas);
        free(u);
    }
}

static int on_usage_row(const qbc_usage_t *u, void *ctx)
{
    qbc_reconciler_t *r = ctx;
    if (u->realm[0] == '\0') {
        memcpy(r->allow.used, u->calls, sizeof(u->calls));
        return 0;
    }
    if (!qbc_rec_id_ok(u->realm))
        return 0;
    rec_realm_t *realm = qbc_rec__realm_get(r, u->realm, 1);
    if (realm != NULL)
        memcpy(realm->used, u->calls, sizeof(u->calls));
    return 0;
}

/* the period's counts as stored (a restart goes on from them) */
static void load(qbc_reconciler_t *r)
{
    rec_allowance_t *a = &r->allow;
    int rc = qbc_store_usage_scan(r->store, a->period_start_ns, on_usage_row, r);
    if (rc != 0)
        qbc_log(QBC_LOG_ERROR, REC_MOD, "reading this period's metered call counts: %s", qbc_strerror(rc));
    else if (sum(a->used) > 0)
        qbc_log(QBC_LOG_INFO, REC_MOD, "this period's metered calls so far: %llu of %llu",
                (unsigned long long)sum(a->used), (unsigned long long)a->budget);
    a->loaded = 1;
}

/* ---------------------------------------------------------------- the CDC schedule */

static double weight(const qbc_reconciler_t *r, const rec_realm_t *realm, int64_t wall)
{
    const rec_allowance_t *a = &r->allow;
    double w = 1.0 + GAP_WEIGHT * realm->gap_ewma;
    /* webhooks that went quiet after it had been active: they may be failing */
    if (realm->notices_seen >= 5 && wall > a->period_start_ns) {
        int64_t mean_gap = (wall - a->period_start_ns) / (int64_t)realm->notices_seen;
        int64_t quiet_after = 4 * mean_gap;
        int64_t floor_ns = (a->period_end_ns - a->period_start_ns) / 20;
        if (quiet_after < floor_ns)
            quiet_after = floor_ns;
        if (wall - realm->last_notice_wall > quiet_after)
            w += QUIET_WEIGHT;
    }
    return w;
}

static int64_t clamp_interval(const qbc_reconciler_t *r, double v)
{
    double lo = (double)r->cfg.cdc_interval_s * NS, hi = (double)r->cfg.cdc_max_interval_s * NS;
    if (hi < lo)
        hi = lo;
    return (int64_t)(v < lo ? lo : v > hi ? hi : v);
}

/* sweeps the realms would make in `left` ns at base interval `base` */
static double need_at(const qbc_reconciler_t *r, const double *w, const int *usable, double base, double left)
{
    double need = 0;
    for (size_t i = 0; i < r->n_realms; i++)
        if (usable[i])
            need += left / (double)clamp_interval(r, base / w[i]);
    return need;
}

static void fit(qbc_reconciler_t *r, int64_t now, int64_t wall)
{
    rec_allowance_t *a = &r->allow;
    double left = (double)(a->period_end_ns - wall), len = (double)(a->period_end_ns - a->period_start_ns);
    if (left < 0)
        left = 0;
    /* live fetches: their pace so far (over at least a twentieth of the period) for the time left */
    double elapsed = (double)(wall - a->period_start_ns);
    if (elapsed < len / 20)
        elapsed = len / 20;
    double live = ceil((double)(a->used[QBC_USAGE_LIVE] + a->share.others[QBC_USAGE_LIVE]) / elapsed * left * 1.25);
    uint64_t floor_reserve = a->budget / 100;
    a->live_reserve = a->budget == 0 ? 0 : (uint64_t)live > floor_reserve ? (uint64_t)live : floor_reserve;

    double *w = qbc_alloc((r->n_realms + 1) * sizeof(*w));
    int *usable = qbc_alloc((r->n_realms + 1) * sizeof(*usable));
    double wmax = 1;
    for (size_t i = 0; i < r->n_realms; i++) {
        w[i] = weight(r, r->realms[i], wall);
        usable[i] = qbc_rec__realm_usable(r->realms[i]);
        if (usable[i] && w[i] > wmax)
            wmax = w[i];
    }
    /* a realm's interval is clamp(base / w): at base = cdc_interval every realm sweeps at the
     * shortest interval; as base grows the realms of least weight stretch first */
    double lo = (double)r->cfg.cdc_interval_s * NS;
    double hi = (double)r->cfg.cdc_max_interval_s * NS * wmax;
    double base = lo;
    if (a->budget != 0) {
        uint64_t stop = a->budget > a->margin ? a->budget - a->margin : 0;
        double room = (double)stop - (double)spent(a) - (double)a->live_reserve;
        if (room < 0)
            room = 0;
        room /= 1 + a->share.n_others; /* the other nodes sweep their realms from the same room */
        if (need_at(r, w, usable, lo, left) > room) {
            base = hi;
            if (need_at(r, w, usable, hi, left) <= room) {
                double b_lo = lo, b_hi = hi; /* need falls as base grows */
                for (int k = 0; k < 50; k++) {
                    double mid = (b_lo + b_hi) / 2;
                    if (need_at(r, w, usable, mid, left) > room)
                        b_lo = mid;
                    else
                        b_hi = mid;
                }
                base = b_hi;
            }
        }
    }
    a->base_interval_ns = clamp_interval(r, base);
    a->cdc_planned = (uint64_t)ceil(need_at(r, w, usable, base, left));
    for (size_t i = 0; i < r->n_realms; i++) {
        rec_realm_t *realm = r->realms[i];
        realm->cdc_interval_ns = clamp_interval(r, base / w[i]);
        /* the next sweep follows the last one by the new interval (sooner or later than planned) */
        if (!realm->cdc.active && realm->last_sweep_ns != 0 && realm->cdc.due_ns != 0)
            realm->cdc.due_ns = realm->last_sweep_ns + realm->cdc_interval_ns;
    }
    (void)now;
    free(w);
    free(usable);
}

int64_t qbc_rec__cdc_interval_ns(const qbc_reconciler_t *r, const rec_realm_t *realm)
{
    return realm->cdc_interval_ns > 0 ? realm->cdc_interval_ns : (int64_t)r->cfg.cdc_interval_s * NS;
}

void qbc_rec__allowance_sweep_done(qbc_reconciler_t *r, rec_realm_t *realm, uint64_t gaps)
{
    (void)r;
    realm->sweeps++;
    realm->gaps += gaps;
    if (gaps > 0)
        realm->gap_sweeps++;
    /* the first sweep counts fully, then each one a third */
    realm->gap_ewma = realm->sweeps == 1 ? (gaps > 0) : realm->gap_ewma * (2.0 / 3) + (gaps > 0 ? 1.0 / 3 : 0);
}

/* ---------------------------------------------------------------- alerts, figures */

/* refused within the last 2 s: the planners ask at least every second while work waits */
static int blocked(int64_t refused_ns)
{
    return refused_ns != 0 && qbc_mono_ns() - refused_ns < 2 * NS;
}

static void alerts(qbc_reconciler_t *r)
{
    rec_allowance_t *a = &r->allow;
    if (a->budget == 0)
        return;
    uint64_t used = used_all(a);
    int level = blocked(a->live_refused_ns)    ? 100
                : used * 100 >= a->budget * 95 ? 95
                : used * 100 >= a->budget * 80 ? 80
                                               : 0;
    if (level <= a->warned)
        return;
    a->warned = level;
    if (level == 100)
        qbc_log(
            QBC_LOG_ERROR, REC_MOD,
            "the period's call budget is spent (%llu of %llu, QBCDC_MONTHLY_CALL_BUDGET): live fetches wait for the "
            "next period, their notices stay pending; nothing is lost",
            (unsigned long long)used, (unsigned long long)a->budget);
    else
        qbc_log(level == 95 ? QBC_LOG_ERROR : QBC_LOG_WARN, REC_MOD,
                "%d%% of the period's call budget is used (%llu of %llu); backfills and CDC give way first", level,
                (unsigned long long)used, (unsigned long long)a->budget);
}

static int by_realm(const void *x, const void *y)
{
    return strcmp(((const qbc_realm_allowance_t *)x)->realm, ((const qbc_realm_allowance_t *)y)->realm);
}

static void publish(qbc_reconciler_t *r, int64_t now, int64_t wall)
{
    rec_allowance_t *a = &r->allow;
    qbc_allowance_figures_t f;
    memset(&f, 0, sizeof(f));
    f.budget = a->budget;
    f.period_start_ns = a->period_start_ns;
    f.period_end_ns = a->period_end_ns;
    for (int p = 0; p < QBC_USAGE_PURPOSES; p++)
        f.used[p] = a->used[p] + a->share.others[p];
    f.used_total = used_all(a);
    f.inflight = a->inflight;
    if (r->cfg.meter != NULL) {
        f.shared = 1;
        memcpy(f.node_used, a->used, sizeof(f.node_used));
        f.others_total = a->others_total;
        f.others_inflight = a->share.others_inflight;
        f.n_others = a->share.n_others;
        f.cluster_reserve = a->cluster_reserve;
        f.recovered = a->recovered;
        f.meter_connected = a->share.connected;
        f.meter_synced = a->share.synced;
        f.meter_lag_s = (double)a->share.lag_ns / NS;
    }
    f.remaining = a->budget > f.used_total ? a->budget - f.used_total : 0;
    /* the pace so far, over at least a twentieth of the period (its first seconds say little) */
    double elapsed = (double)(wall - a->period_start_ns), len = (double)(a->period_end_ns - a->period_start_ns);
    if (elapsed < len / 20)
        elapsed = len / 20;
    f.forecast = elapsed > 0 ? (uint64_t)ceil((double)f.used_total / elapsed * len) : f.used_total;
    f.live_reserve = a->live_reserve;
    f.cdc_planned = a->cdc_planned;
    f.cdc_base_interval_s = a->base_interval_ns / NS;
    f.live_blocked = blocked(a->live_refused_ns);
    f.cdc_blocked = blocked(a->cdc_refused_ns);
    f.backfill_blocked = blocked(a->backfill_refused_ns);
    snprintf(f.state, sizeof(f.state), "%s",
             a->budget == 0                         ? "ungoverned"
             : f.live_blocked                       ? "exhausted"
             : f.used_total * 100 >= a->budget * 95 ? "critical"
             : f.used_total * 100 >= a->budget * 80 ? "warning"
                                                    : "ok");
    qbc_realm_allowance_t *list = qbc_calloc(r->n_realms + 1, sizeof(*list));
    for (size_t i = 0; i < r->n_realms; i++) {
        rec_realm_t *realm = r->realms[i];
        qbc_realm_allowance_t *o = &list[i];
        snprintf(o->realm, sizeof(o->realm), "%s", realm->name);
        memcpy(o->used, realm->used, sizeof(o->used));
        o->cdc_interval_s = qbc_rec__cdc_interval_ns(r, realm) / NS;
        o->next_cdc_ns = realm->cdc.due_ns != 0 && !realm->cdc.active ? wall + (realm->cdc.due_ns - now) : 0;
        o->sweeps = realm->sweeps;
        o->gap_sweeps = realm->gap_sweeps;
        o->gaps = realm->gaps;
        o->gap_rate = realm->gap_ewma;
        o->webhooks_quiet = weight(r, realm, wall) - GAP_WEIGHT * realm->gap_ewma > 1.5;
        o->waiting = realm->waiting;
    }
    qsort(list, r->n_realms, sizeof(*list), by_realm);
    pthread_mutex_lock(&r->stats_mu);
    a->pub = f;
    free(a->pub_realms);
    a->pub_realms = list;
    a->n_pub_realms = r->n_realms;
    pthread_mutex_unlock(&r->stats_mu);
}

/* ---------------------------------------------------------------- cluster mode: the shared meter */

uint64_t qbc_rec__cluster_reserve(double others_per_s, int64_t lag_ns)
{
    if (others_per_s <= 0)
        return 0;
    double lag_s = (double)lag_ns / NS;
    if (lag_s > 60)
        lag_s = 60; /* a long outage: the fence has stopped every call of this node by then */
    return (uint64_t)ceil(others_per_s * (1.0 + lag_s));
}

/* this node's counts out, the others' in (cfg.meter), about every 100 ms */
static void share(qbc_reconciler_t *r, int64_t now)
{
    rec_allowance_t *a = &r->allow;
    if (r->cfg.meter == NULL || now < a->share_due)
        return;
    a->share_due = now + NS / 10;
    qbc_meter_share_t x;
    memset(&x, 0, sizeof(x));
    x.period_start_ns = a->period_start_ns;
    x.period_end_ns = a->period_end_ns;
    memcpy(x.used, a->used, sizeof(x.used));
    x.inflight = a->inflight;
    r->cfg.meter(r->cfg.meter_ctx, &x);
    a->share = x;
    /* a node restarted on an empty disk: its count of the period is in the bucket */
    for (int p = 0; p < QBC_USAGE_PURPOSES; p++) {
        if (x.own[p] > a->used[p]) {
            a->recovered += x.own[p] - a->used[p];
            a->used[p] = x.own[p];
        }
    }
    if (a->recovered > 0 && x.synced && a->warned_recovered == 0) {
        a->warned_recovered = 1;
        qbc_log(QBC_LOG_WARN, REC_MOD,
                "this node's metered calls of the period were more in the cluster's meter than in its store (%llu "
                "more: a lost disk?); going on from the larger count",
                (unsigned long long)a->recovered);
    }
    a->others_total = sum(x.others);
    /* the others' pace over the last seconds: a sample a second */
    unsigned last = (a->rate_head + 5) % 6;
    if (a->rate_n == 0 || now - a->rate_at[last] >= NS) {
        if (a->rate_n > 0 && a->others_total < a->rate_total[last])
            a->rate_n = 0; /* a new period (or a node's key removed): start over */
        a->rate_total[a->rate_head] = a->others_total;
        a->rate_at[a->rate_head] = now;
        a->rate_head = (a->rate_head + 1) % 6;
        if (a->rate_n < 6)
            a->rate_n++;
    }
    double rate = 0;
    if (a->rate_n >= 2) {
        unsigned newest = (a->rate_head + 5) % 6, oldest = (a->rate_head + 6 - a->rate_n) % 6;
        int64_t dt = a->rate_at[newest] - a->rate_at[oldest];
        if (dt > 0)
            rate = (double)(a->rate_total[newest] - a->rate_total[oldest]) * NS / (double)dt;
    }
    a->cluster_reserve = qbc_rec__cluster_reserve(rate, x.lag_ns);
}

void qbc_rec__allowance_tick(qbc_reconciler_t *r, int64_t now)
{
    rec_allowance_t *a = &r->allow;
    int64_t wall = qbc_now_ns();
    if (a->period_start_ns == 0 || wall >= a->period_end_ns) {
        if (a->period_start_ns != 0) {
            qbc_rec__allowance_flush(r); /* the last second's counts belong to the period that ends */
            qbc_log(QBC_LOG_INFO, REC_MOD, "a new budget period begins; the last one used %llu metered calls",
                    (unsigned long long)sum(a->used));
        }
        period_at(r, wall, &a->period_start_ns, &a->period_end_ns);
        memset(a->used, 0, sizeof(a->used));
        for (size_t i = 0; i < r->n_realms; i++) {
            memset(r->realms[i]->used, 0, sizeof(r->realms[i]->used));
            r->realms[i]->notices_seen = 0;
        }
        a->warned = 0;
        a->loaded = 0;
        a->fit_due = 0;
        /* the others' counts were of the last period: the next exchange brings this one's */
        int synced = a->share.synced, connected = a->share.connected;
        memset(&a->share, 0, sizeof(a->share));
        a->share.synced = synced;
        a->share.connected = connected;
        a->share_due = 0;
        a->others_total = a->cluster_reserve = a->recovered = 0;
        a->rate_n = 0;
        a->warned_recovered = 0;
    }
    if (a->started_ns == 0)
        a->started_ns = now;
    if (!a->loaded && r->n_realms > 0)
        load(r);
    share(r, now);
    if (now >= a->flush_due) {
        qbc_rec__allowance_flush(r);
        a->flush_due = now + NS;
    }
    if (now >= a->fit_due) {
        fit(r, now, wall);
        a->fit_due = now + 2 * NS;
    }
    if (now >= a->publish_due) {
        alerts(r);
        publish(r, now, wall);
        a->publish_due = now + NS / 2;
    }
}

void qbc_rec__allowance_share_final(qbc_reconciler_t *r)
{
    if (r->allow.period_start_ns == 0)
        return;
    r->allow.share_due = 0;
    share(r, qbc_mono_ns());
}

void qbc_rec__allowance_free(qbc_reconciler_t *r)
{
    free(r->allow.pub_realms);
    r->allow.pub_realms = NULL;
}

/* ---------------------------------------------------------------- public */

void qbc_reconciler_allowance(qbc_reconciler_t *r, qbc_allowance_figures_t *out)
{
    pthread_mutex_lock(&r->stats_mu);
    *out = r->allow.pub;
    pthread_mutex_unlock(&r->stats_mu);
}

int qbc_reconciler_realm_allowances(qbc_reconciler_t *r, qbc_realm_allowance_t **out, size_t *n)
{
    pthread_mutex_lock(&r->stats_mu);
    *n = r->allow.n_pub_realms;
    *out = qbc_calloc(*n + 1, sizeof(**out));
    if (*n > 0)
        memcpy(*out, r->allow.pub_realms, *n * sizeof(**out));
    pthread_mutex_unlock(&r->stats_mu);
    return 0;
}
