/*
 * test_retention.c — store/retention.c: old raw bodies, their quarantine notes and
 * their CloudEvents ids are pruned in slices; young ones, pending notices and
 * sequences are untouched; sequences are never handed out twice, even after every
 * body is gone and the store is reopened. Feed records older than the feed
 * retention go, in slices, and a read behind them answers QBC_EGONE.
 */
#include <time.h>
#include "store_fixture.h"

#define HOUR_NS (3600LL * 1000000000LL)

static qbc_store_stats_t stats_of(qbc_store_t *s)
{
    qbc_store_stats_t st;
    qbc_store_stats(s, &st);
    return st;
}

static int pruned_at_least(const qbc_store_stats_t *st, uint64_t n)
{
    return st->pruned_inbox >= n;
}

static int ids_at_most(const qbc_store_stats_t *st, uint64_t n)
{
    return st->event_ids <= n;
}

/* polls the stats (up to 20 s) until done(stats, n) holds; returns the last stats read */
static qbc_store_stats_t wait_stats(qbc_store_t *s, int (*done)(const qbc_store_stats_t *, uint64_t), uint64_t n)
{
    qbc_store_stats_t st = stats_of(s);
    for (int i = 0; i < 2000 && !done(&st, n); i++) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
        st = stats_of(s);
    }
    return st;
}

/* one quarantined body received at received_ns */
static void submit_quarantined(qbc_store_t *s, int64_t received_ns)
{
    qbc_webhook_job_t job, *one = &job;
    memset(&job, 0, sizeof(job));
    job.body = "not json";
    job.body_len = 8;
    job.inbox_flags = QBC_INBOX_QUARANTINED;
    job.quarantine_reason = "unparsable";
    job.received_ns = received_ns;
    job.job.on_commit = on_commit;
    reset_done();
    if (qbc_store_submit_webhooks(s, &one, 1) != 0)
        abort();
    wait_done(1);
}

static void test_prune_old(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir, .inbox_retention_s = 3600, .prune_interval_ms = 20};
    qbc_store_t *s;
    int64_t now = qbc_now_ns();

    is_int(qbc_store_open(&cfg, &s), 0, "open with a one-hour retention");
    /* more than one slice of bodies (2,000) and of ids (4,096) */
    free(submit_at(s, 0, 4000, 60, "old-", now - 3 * HOUR_NS));
    submit_quarantined(s, now - 2 * HOUR_NS);
    free(submit_at(s, 5000, 2000, 60, "old-", now - 2 * HOUR_NS));
    submit_quarantined(s, now);
    free(submit_at(s, 10000, 20, 60, "new-", now));
    qbc_store_flush(s);

    is_int(wait_stats(s, pruned_at_least, 6001).pruned_inbox, 6001, "every body older than the retention was pruned");
    is_int(wait_stats(s, ids_at_most, 20).event_ids, 20, "and every CloudEvents id they brought");
    qbc_store_stats_t st = stats_of(s);
    is_int(st.pruned_event_ids, 6000, "counted");
    is_int(st.inbox_depth, 21, "the young bodies are kept");
    is_int(st.quarantined, 1, "only the young quarantine note is kept");
    is_int(st.pending, 6020, "no pending notice was touched");
    is_int(st.last_inbox_seq, 6022, "the last sequence is still known");
    ok(st.inbox_oldest_ns >= now && st.inbox_oldest_ns < now + HOUR_NS, "the oldest body held is young");
    scan_t sc = scan_inbox(s);
    is_int(sc.n, 21, "the young bodies read back");
    is_int(sc.last_seq, 6022, "up to the last");

    /* a late retry of a young event is still a repeat; one of a pruned event is stored anew */
    wh_t *w = submit_at(s, 10000, 3, 60, "new-", now);
    is_int(w[0].job.inbox_seq, 0, "a retried young event: a repeat, not stored");
    free(w);
    w = submit_at(s, 0, 3, 60, "old-", now);
    is_int(w[0].job.inbox_seq, 6023, "a retried pruned event: stored, with the next sequence");
    free(w);
    qbc_store_close(s);

    /* a store opened without retention prunes nothing */
    qbc_store_config_t keep = {.dir = dir, .prune_interval_ms = 20};
    is_int(qbc_store_open(&keep, &s), 0, "reopen with no retention");
    free(submit_at(s, 20000, 5, 60, NULL, now - 5 * HOUR_NS));
    qbc_store_flush(s);
    struct timespec ts = {0, 200 * 1000000};
    nanosleep(&ts, NULL);
    st = stats_of(s);
    is_int(st.pruned_inbox, 0, "no retention: nothing pruned");
    is_int(st.inbox_depth, 29, "every body kept");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

/* n feed records (one new entity each, ids first..), committed in one job */
static void add_feed(qbc_store_t *s, int first, int n)
{
    qbc_version_t *v = calloc((size_t)n, sizeof(*v));
    for (int i = 0; i < n; i++) {
        strcpy(v[i].realm, "9");
        strcpy(v[i].entity, "Invoice");
        snprintf(v[i].id, sizeof(v[i].id), "%d", first + i);
        strcpy(v[i].sync_token, "0");
        v[i].updated_ns = 1000;
        v[i].op = QBC_OP_CREATE;
        v[i].source = QBC_SOURCE_WEBHOOK;
        v[i].data = "{}";
        v[i].data_len = 2;
    }
    qbc_reconcile_job_t j;
    memset(&j, 0, sizeof(j));
    j.versions = v;
    j.n_versions = (size_t)n;
    j.job.on_commit = on_commit;
    reset_done();
    if (qbc_store_reconcile(s, &j) != 0)
        abort();
    wait_done(1);
    free(v);
}

static int count_cb(const qbc_feed_rec_t *r, void *ctx)
{
    (void)r;
    (*(int *)ctx)++;
    return 0;
}

static int pruned_feed_at_least(const qbc_store_stats_t *st, uint64_t n)
{
    return st->pruned_feed >= n;
}

static void test_prune_feed(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir, .feed_retention_s = 1, .prune_interval_ms = 20};
    qbc_store_t *s;
    int n = 0;

    is_int(qbc_store_open(&cfg, &s), 0, "open with a one-second feed retention");
    for (int i = 0; i < 5; i++)
        add_feed(s, i * 1000, 1000); /* 5,000 records: more than one slice */
    struct timespec ts = {1, 300 * 1000000};
    nanosleep(&ts, NULL); /* the first 5,000 are now older than the retention */
    add_feed(s, 100000, 3);
    qbc_store_stats_t st = wait_stats(s, pruned_feed_at_least, 5000);
    is_int(st.pruned_feed, 5000, "every record older than the retention was pruned");
    is_int(st.feed_records, 3, "the young ones are kept");
    is_int(st.feed_pruned_through, 5000, "pruned through seq 5000");
    is_int(st.last_feed_seq, 5003, "the last sequence is unchanged");
    is_int(qbc_store_feed_scan(s, 0, 100, NULL, NULL, count_cb, &n, NULL), QBC_EGONE,
           "reading from the start: gone (the reader cannot be told everything)");
    is_int(qbc_store_feed_scan(s, 4999, 100, NULL, NULL, count_cb, &n, NULL), QBC_EGONE, "from 4999: gone");
    is_int(qbc_store_feed_scan(s, 5000, 100, NULL, NULL, count_cb, &n, NULL), 0, "from 5000: fine");
    is_int(n, 3, "and it reads the 3 kept");
    is_int(qbc_store_feed_pruned(s), 5000, "qbc_store_feed_pruned says where");
    qbc_store_close(s);

    qbc_store_config_t keep = {.dir = dir};
    is_int(qbc_store_open(&keep, &s), 0, "reopen without a feed retention");
    add_feed(s, 200000, 1);
    st = stats_of(s);
    is_int(st.last_feed_seq, 5004, "sequences go on");
    is_int(st.feed_pruned_through, 5000, "what was pruned stays pruned");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

static void test_prune_everything(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir, .inbox_retention_s = 60, .prune_interval_ms = 20};
    qbc_store_t *s;
    int64_t old = qbc_now_ns() - HOUR_NS;

    is_int(qbc_store_open(&cfg, &s), 0, "open with a one-minute retention");
    free(submit_at(s, 0, 50, 60, "ce-", old));
    qbc_store_flush(s);
    is_int(wait_stats(s, pruned_at_least, 50).pruned_inbox, 50, "all 50 bodies pruned");
    is_int(wait_stats(s, ids_at_most, 0).event_ids, 0, "and all their ids");
    qbc_store_stats_t st = stats_of(s);
    is_int(st.inbox_depth, 0, "the inbox is empty");
    is_int(st.last_inbox_seq, 50, "its last sequence is still 50");
    is_int(st.inbox_oldest_ns, 0, "no oldest body");
    qbc_store_close(s);

    qbc_store_config_t keep = {.dir = dir};
    is_int(qbc_store_open(&keep, &s), 0, "reopen");
    wh_t *w = submit_many(s, 100, 1, 60, NULL);
    is_int(w[0].job.inbox_seq, 51, "an empty inbox still never reuses a sequence");
    free(w);
    qbc_store_close(s);

    qbc_store_t *ro;
    is_int(qbc_store_open_readonly(dir, &ro), 0, "a reader opens it");
    st = stats_of(ro);
    is_int(st.last_inbox_seq, 51, "and sees the last sequence");
    qbc_store_close(ro);
    rm_rf(dir);
    free(dir);
}

int main(void)
{
    qbc_log_set_level(QBC_LOG_WARN);
    diag("pruning old bodies, quarantine notes and ids");
    test_prune_old();
    diag("pruning every body");
    test_prune_everything();
    diag("pruning the feed");
    test_prune_feed();
    done_testing();
}
