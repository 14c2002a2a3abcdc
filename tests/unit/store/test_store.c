/*
 * test_store.c — store/: group commit, inbox, pending coalescing, CloudEvents
 * dedupe, sequence durability across reopen, map growth and a full map.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "store_fixture.h"
#include "../../../store/store_internal.h"

static qbc_event_t ev(const char *realm, const char *entity, const char *id, qbc_op_t op, int64_t t,
                      const char *event_id)
{
    qbc_event_t e;
    memset(&e, 0, sizeof(e));
    strcpy(e.realm, realm);
    strcpy(e.entity, entity);
    strcpy(e.id, id);
    strcpy(e.event_id, event_id);
    e.op = op;
    e.updated_ns = t;
    return e;
}

static void init_job(qbc_webhook_job_t *j, const char *body, const qbc_event_t *evs, size_t n)
{
    memset(j, 0, sizeof(*j));
    j->body = body;
    j->body_len = strlen(body);
    j->events = evs;
    j->n_events = n;
    j->format = QBC_FORMAT_CLASSIC;
    j->received_ns = qbc_now_ns();
    j->job.on_commit = on_commit;
}

/* one webhook job (the store takes them in batches) */
static int submit_wh(qbc_store_t *s, qbc_webhook_job_t *j)
{
    return qbc_store_submit_webhooks(s, &j, 1);
}

/* ---- scans into arrays ---- */

typedef struct {
    int n;
    uint64_t seqs[4096];
    char bodies[8][128];
    uint8_t flags[4096];
    char reason[128];
} inbox_seen_t;

static int inbox_cb(const qbc_inbox_record_t *r, void *ctx)
{
    inbox_seen_t *s = ctx;
    if (s->n < 4096) {
        s->seqs[s->n] = r->seq;
        s->flags[s->n] = r->flags;
        if (s->n < 8)
            snprintf(s->bodies[s->n], sizeof(s->bodies[0]), "%.*s", (int)r->body_len, r->body);
        if (r->quarantine_reason)
            snprintf(s->reason, sizeof(s->reason), "%s", r->quarantine_reason);
    }
    s->n++;
    return 0;
}

typedef struct {
    int n;
    char keys[16][200];
    qbc_pending_t p[16];
} pending_seen_t;

static int pending_cb(const qbc_pending_t *p, void *ctx)
{
    pending_seen_t *s = ctx;
    if (s->n < 16) {
        snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s/%s/%s", p->realm, p->entity, p->id);
        s->p[s->n] = *p;
    }
    s->n++;
    return 0;
}

/* ---- tests ---- */

static void test_basic(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    qbc_webhook_job_t j[3];

    is_int(qbc_store_open(&cfg, &s), 0, "open creates a new store");
    qbc_event_t e1[2] = {ev("111", "Invoice", "7", QBC_OP_CREATE, 100, ""),
                         ev("111", "Customer", "3", QBC_OP_UPDATE, 100, "")};
    qbc_event_t e2[1] = {ev("111", "Invoice", "7", QBC_OP_UPDATE, 200, "")};
    qbc_event_t e3[1] = {ev("222", "Invoice", "7", QBC_OP_DELETE, 50, "")};
    init_job(&j[0], "{\"body\":1}", e1, 2);
    init_job(&j[1], "{\"body\":2}", e2, 1);
    init_job(&j[2], "{\"body\":3}", e3, 1);
    reset_done();
    for (int i = 0; i < 3; i++)
        is_int(submit_wh(s, &j[i]), 0, "submit");
    wait_done(3);
    qbc_store_flush(s);
    for (int i = 0; i < 3; i++)
        is_int(j[i].job.result, 0, "job committed");
    is_int(j[0].inbox_seq, 1, "first body gets sequence 1");
    is_int(j[2].inbox_seq, 3, "third body gets sequence 3");
    is_int(j[0].n_stored_events, 2, "both events of job 1 stored");

    qbc_store_stats_t st;
    is_int(qbc_store_stats(s, &st), 0, "stats");
    is_int(st.inbox_depth, 3, "inbox holds three bodies");
    is_int(st.pending, 3, "two notices for one (realm, entity, id) coalesce: 3 pending");
    is_int(st.jobs_committed, 3, "three jobs counted");
    ok(st.commits >= 1 && st.commits <= 3, "at most one commit per job");
    ok(st.used_bytes > 0 && st.map_bytes >= st.used_bytes, "byte counts are sane");

    inbox_seen_t in;
    memset(&in, 0, sizeof(in));
    qbc_store_inbox_scan(s, 0, inbox_cb, &in);
    is_int(in.n, 3, "scan sees three records");
    is_str(in.bodies[1], "{\"body\":2}", "raw body stored byte for byte");
    memset(&in, 0, sizeof(in));
    qbc_store_inbox_scan(s, 2, inbox_cb, &in);
    is_int(in.n, 1, "scan after 2 sees one record");

    pending_seen_t pn;
    memset(&pn, 0, sizeof(pn));
    qbc_store_pending_scan(s, "111", pending_cb, &pn);
    is_int(pn.n, 2, "realm 111 has two pending notices");
    is_str(pn.keys[1], "111/Invoice/7", "pending key order: entity then id");
    is_int(pn.p[1].count, 2, "coalesced notice counts 2");
    is_int(pn.p[1].last_op, QBC_OP_UPDATE, "latest operation by time wins");
    is_int(pn.p[1].op_mask, (1 << QBC_OP_CREATE) | (1 << QBC_OP_UPDATE), "op mask keeps both");
    is_int(pn.p[1].first_seq, 1, "first_seq");
    is_int(pn.p[1].last_seq, 2, "last_seq");
    memset(&pn, 0, sizeof(pn));
    qbc_store_pending_scan(s, "22", pending_cb, &pn);
    is_int(pn.n, 0, "realm prefix 22 does not match realm 222");
    memset(&pn, 0, sizeof(pn));
    qbc_store_pending_scan(s, NULL, pending_cb, &pn);
    is_int(pn.n, 3, "all realms: three notices");

    qbc_store_close(s);

    /* reopen: data and sequence survive */
    is_int(qbc_store_open(&cfg, &s), 0, "reopen");
    qbc_event_t e4[1] = {ev("111", "Item", "1", QBC_OP_CREATE, 1, "")};
    init_job(&j[0], "{\"body\":4}", e4, 1);
    reset_done();
    submit_wh(s, &j[0]);
    wait_done(1);
    qbc_store_flush(s);
    is_int(j[0].inbox_seq, 4, "sequence continues after reopen");
    qbc_store_close(s);

    /* a read-only view beside nothing */
    is_int(qbc_store_open_readonly(dir, &s), 0, "open read-only");
    qbc_store_stats(s, &st);
    is_int(st.inbox_depth, 4, "read-only view sees four bodies");
    qbc_webhook_job_t ro;
    init_job(&ro, "x", NULL, 0);
    ok(submit_wh(s, &ro) != 0, "read-only store refuses writes");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

static void test_out_of_order_and_merge(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    qbc_webhook_job_t j[2];

    qbc_store_open(&cfg, &s);
    /* a Delete at t=300 arrives before an Update at t=200: the delete stays last */
    qbc_event_t a[1] = {ev("1", "Invoice", "9", QBC_OP_DELETE, 300, "")};
    qbc_event_t b[2] = {ev("1", "Invoice", "9", QBC_OP_UPDATE, 200, ""),
                        ev("1", "Customer", "5", QBC_OP_MERGE, 400, "")};
    strcpy(b[1].deleted_id, "6");
    init_job(&j[0], "a", a, 1);
    init_job(&j[1], "b", b, 2);
    reset_done();
    submit_wh(s, &j[0]);
    submit_wh(s, &j[1]);
    wait_done(2);
    qbc_store_flush(s);
    pending_seen_t pn;
    memset(&pn, 0, sizeof(pn));
    qbc_store_pending_scan(s, "1", pending_cb, &pn);
    is_int(pn.n, 3, "merge adds a notice for the merged-away id");
    is_str(pn.keys[0], "1/Customer/5", "survivor notice");
    is_int(pn.p[0].last_op, QBC_OP_MERGE, "survivor op is merge");
    is_str(pn.keys[1], "1/Customer/6", "merged-away notice");
    is_int(pn.p[1].last_op, QBC_OP_DELETE, "merged-away id is a delete");
    is_int(pn.p[2].last_op, QBC_OP_DELETE, "a late, older update does not hide a delete");
    is_int(pn.p[2].updated_ns, 300, "latest time kept");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

static void test_cloudevents_dedupe(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    qbc_webhook_job_t j[3];

    qbc_store_open(&cfg, &s);
    qbc_event_t a[2] = {ev("1", "Invoice", "1", QBC_OP_CREATE, 1, "evt-1"),
                        ev("1", "Invoice", "2", QBC_OP_CREATE, 1, "evt-2")};
    qbc_event_t b[2] = {ev("1", "Invoice", "1", QBC_OP_CREATE, 1, "evt-1"),
                        ev("1", "Invoice", "2", QBC_OP_CREATE, 1, "evt-2")};
    qbc_event_t c[2] = {ev("1", "Invoice", "2", QBC_OP_CREATE, 1, "evt-2"),
                        ev("1", "Invoice", "3", QBC_OP_CREATE, 1, "evt-3")};
    init_job(&j[0], "[a]", a, 2);
    init_job(&j[1], "[a]", b, 2);
    init_job(&j[2], "[c]", c, 2);
    j[0].format = j[1].format = j[2].format = QBC_FORMAT_CLOUDEVENTS;
    reset_done();
    for (int i = 0; i < 3; i++)
        submit_wh(s, &j[i]);
    wait_done(3);
    qbc_store_flush(s);
    is_int(j[0].inbox_seq, 1, "first delivery stored");
    is_int(j[1].job.result, 0, "a full repeat still succeeds (so it is acked)");
    is_int(j[1].inbox_seq, 0, "a full repeat is not stored again");
    is_int(j[1].n_dup_events, 2, "both events counted as duplicates");
    is_int(j[2].inbox_seq, 2, "a partial repeat is stored");
    is_int(j[2].n_dup_events, 1, "one duplicate in the partial repeat");
    is_int(j[2].n_stored_events, 1, "one new event in the partial repeat");
    pending_seen_t pn;
    memset(&pn, 0, sizeof(pn));
    qbc_store_pending_scan(s, NULL, pending_cb, &pn);
    is_int(pn.n, 3, "three pending notices");
    is_int(pn.p[1].count, 1, "the repeated event was not counted twice");

    /* the same id twice inside one body counts once */
    qbc_event_t d[2] = {ev("1", "Bill", "1", QBC_OP_CREATE, 1, "evt-9"),
                        ev("1", "Bill", "1", QBC_OP_CREATE, 1, "evt-9")};
    init_job(&j[0], "[d]", d, 2);
    reset_done();
    submit_wh(s, &j[0]);
    wait_done(1);
    qbc_store_flush(s);
    is_int(j[0].n_dup_events, 1, "a repeat within one body is a duplicate");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

static void test_quarantine(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    qbc_webhook_job_t j;

    qbc_store_open(&cfg, &s);
    init_job(&j, "not json", NULL, 0);
    j.inbox_flags = QBC_INBOX_QUARANTINED;
    j.format = QBC_FORMAT_UNKNOWN;
    j.quarantine_reason = "not JSON";
    reset_done();
    submit_wh(s, &j);
    wait_done(1);
    qbc_store_flush(s);
    is_int(j.job.result, 0, "quarantined body committed");
    qbc_store_stats_t st;
    qbc_store_stats(s, &st);
    is_int(st.quarantined, 1, "quarantine counted");
    inbox_seen_t in;
    memset(&in, 0, sizeof(in));
    qbc_store_inbox_scan(s, 0, inbox_cb, &in);
    is_int(in.flags[0], QBC_INBOX_QUARANTINED, "record flagged");
    is_str(in.reason, "not JSON", "reason kept");
    is_str(in.bodies[0], "not json", "quarantined body kept verbatim");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

#define MANY 3000

static void test_group_commit_and_growth(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir, .map_size = 256 * 1024, .map_max = 64 << 20};
    qbc_store_t *s;
    static qbc_webhook_job_t jobs[MANY];
    static qbc_event_t evs[MANY];
    static char bodies[MANY][600];

    is_int(qbc_store_open(&cfg, &s), 0, "open with a 256 KiB map");
    reset_done();
    for (int i = 0; i < MANY; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", i);
        evs[i] = ev("9", "Invoice", id, QBC_OP_UPDATE, i, "");
        memset(bodies[i], 'x', sizeof(bodies[i]) - 1);
        bodies[i][sizeof(bodies[i]) - 1] = '\0';
        init_job(&jobs[i], bodies[i], &evs[i], 1);
        submit_wh(s, &jobs[i]);
    }
    wait_done(MANY);
    qbc_store_flush(s);
    int failed = 0;
    for (int i = 0; i < MANY; i++)
        failed += jobs[i].job.result != 0;
    is_int(failed, 0, "every job committed although the map started too small");
    qbc_store_stats_t st;
    qbc_store_stats(s, &st);
    ok(st.map_growths >= 1, "the map grew");
    ok(st.commits < MANY, "group commit: fewer commits than jobs");
    is_int(st.inbox_depth, MANY, "all bodies held");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

static void test_full_map(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir, .map_size = 512 * 1024, .map_max = 512 * 1024};
    qbc_store_t *s;
    static qbc_webhook_job_t jobs[400];
    static char body[4000];

    memset(body, 'y', sizeof(body) - 1);
    qbc_store_open(&cfg, &s);
    reset_done();
    for (int i = 0; i < 400; i++) {
        init_job(&jobs[i], body, NULL, 0);
        submit_wh(s, &jobs[i]);
    }
    wait_done(400);
    qbc_store_flush(s);
    int ok_n = 0, full_n = 0, other = 0;
    for (int i = 0; i < 400; i++) {
        if (jobs[i].job.result == 0)
            ok_n++;
        else if (jobs[i].job.result == QBC_EFULL)
            full_n++;
        else
            other++;
    }
    ok(ok_n > 0, "some jobs fit");
    ok(full_n > 0, "jobs past the maximum map fail with QBC_EFULL");
    is_int(other, 0, "no other failures");
    qbc_store_close(s);

    /* everything that was reported committed is there after reopening */
    is_int(qbc_store_open(&cfg, &s), 0, "reopen a full store");
    qbc_store_stats_t st;
    qbc_store_stats(s, &st);
    is_int(st.inbox_depth, ok_n, "every committed body survived; no failed one was stored");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

static void test_schema_guard(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;

    qbc_store_open(&cfg, &s);
    qbc_store_close(s);
    /* pretend a newer build wrote this store */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    mdb_env_create(&env);
    mdb_env_set_maxdbs(env, 24);
    mdb_env_open(env, dir, 0, 0600);
    mdb_txn_begin(env, NULL, 0, &txn);
    mdb_dbi_open(txn, "meta", 0, &dbi);
    unsigned char v9[4] = {0, 0, 0, 99};
    MDB_val k = {14, "schema_version"}, v = {4, v9};
    mdb_put(txn, dbi, &k, &v, 0);
    mdb_txn_commit(txn);
    mdb_env_close(env);
    is_int(qbc_store_open(&cfg, &s), QBC_EINVAL, "a newer schema is refused, not overwritten");
    rm_rf(dir);
    free(dir);

    is_int(qbc_store_open_readonly("/nonexistent/qbcdc", &s), -ENOENT, "read-only open of a missing dir");
}

static void test_closed(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    qbc_webhook_job_t j;

    qbc_store_open(&cfg, &s);
    qbc_store__writer_stop_for_test(s);
    init_job(&j, "late", NULL, 0);
    is_int(submit_wh(s, &j), QBC_ECLOSED, "submit after close is refused");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

int main(void)
{
    qbc_log_set_level(QBC_LOG_ERROR);
    subtest("basic", test_basic);
    subtest("out of order and merge", test_out_of_order_and_merge);
    subtest("cloudevents dedupe", test_cloudevents_dedupe);
    subtest("quarantine", test_quarantine);
    subtest("group commit and growth", test_group_commit_and_growth);
    subtest("full map", test_full_map);
    subtest("schema guard", test_schema_guard);
    subtest("closed", test_closed);
    return done_testing();
}
