/*
 * test_retention.c — store/retention.c: old raw bodies, their quarantine notes and
 * their CloudEvents ids are pruned in slices; young ones, pending notices and
 * sequences are untouched; sequences are never handed out twice, even after every
 * body is gone and the store is reopened.
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
    qbc_store_job_t job;
    memset(&job, 0, sizeof(job));
    job.kind = QBC_JOB_WEBHOOK;
    job.body = "not json";
    job.body_len = 8;
    job.inbox_flags = QBC_INBOX_QUARANTINED;
    job.quarantine_reason = "unparsable";
    job.received_ns = received_ns;
    job.on_commit = on_commit;
    reset_done();
    if (qbc_store_submit(s, &job) != 0)
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
    done_testing();
}
