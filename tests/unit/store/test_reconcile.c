/*
 * test_reconcile.c — store/: the reconciler's side of the store: versions and the
 * feed (dedupe, ordering, tombstones), notice retirement, dead letters, realms and
 * encrypted tokens, commit listeners (and their removal), malformed jobs.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "store_fixture.h"

static qbc_commit_note_t last_note;
static int notes;

static void on_note(void *ctx, const qbc_commit_note_t *n)
{
    (void)ctx;
    pthread_mutex_lock(&mu);
    last_note = *n;
    notes++;
    pthread_mutex_unlock(&mu);
}

static int count_jobs(const qbc_backfill_t *b, void *n)
{
    (void)b;
    (*(int *)n)++;
    return 0;
}

/* every kind of job in one variable: a test reuses it (memset between kinds) */
typedef union {
    qbc_store_job_t job;
    qbc_webhook_job_t wh;
    qbc_reconcile_job_t rec;
    qbc_dead_letter_job_t dl;
    qbc_realm_job_t rj;
    qbc_redrive_job_t rd;
    qbc_backfill_job_t bf;
    qbc_cdc_request_job_t cdc;
    qbc_usage_job_t usage;
    qbc_cursor_job_t cursor;
    qbc_sub_put_job_t sub_put;
    qbc_sub_delete_job_t sub_delete;
    qbc_sub_ack_job_t sub_ack;
    qbc_feed_append_job_t feed_append;
} any_job_t;

/* the store's submit call for j's kind (j->job.kind, set by the test) */
static int submit_any(qbc_store_t *s, any_job_t *j)
{
    qbc_webhook_job_t *wh = &j->wh;
    switch (j->job.kind) {
    case QBC_JOB_WEBHOOK:
        return qbc_store_submit_webhooks(s, &wh, 1);
    case QBC_JOB_PING:
        return qbc_store_ping(s, &j->job);
    case QBC_JOB_RECONCILE:
        return qbc_store_reconcile(s, &j->rec);
    case QBC_JOB_DEAD_LETTER:
        return qbc_store_dead_letter(s, &j->dl);
    case QBC_JOB_REALM:
        return qbc_store_put_realm(s, &j->rj);
    case QBC_JOB_REDRIVE:
        return qbc_store_redrive(s, &j->rd);
    case QBC_JOB_BACKFILL:
        return qbc_store_backfill(s, &j->bf);
    case QBC_JOB_CDC_REQUEST:
        return qbc_store_request_cdc(s, &j->cdc);
    case QBC_JOB_USAGE:
        return qbc_store_add_usage(s, &j->usage);
    case QBC_JOB_CURSOR:
        return qbc_store_set_cursor(s, &j->cursor);
    case QBC_JOB_SUB_PUT:
        return qbc_store_sub_put(s, &j->sub_put);
    case QBC_JOB_SUB_DELETE:
        return qbc_store_sub_delete(s, &j->sub_delete);
    case QBC_JOB_SUB_ACK:
        return qbc_store_sub_ack(s, &j->sub_ack);
    case QBC_JOB_FEED_APPEND:
        return qbc_store_feed_append(s, &j->feed_append);
    }
    return -1;
}

/* submits one job and waits for it */
static int run(qbc_store_t *s, any_job_t *j)
{
    pthread_mutex_lock(&mu);
    int target = done_count + 1;
    pthread_mutex_unlock(&mu);
    j->job.on_commit = on_commit;
    if (submit_any(s, j) != 0)
        return -1;
    pthread_mutex_lock(&mu);
    while (done_count < target)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    qbc_store_flush(s); /* a webhook is acked from the journal; read it back from LMDB */
    return j->job.result;
}

static int offer(qbc_store_t *s, qbc_version_t *v, size_t n, const qbc_notice_ref_t *retire, size_t nr, any_job_t *j)
{
    memset(j, 0, sizeof(*j));
    j->job.kind = QBC_JOB_RECONCILE;
    j->rec.versions = v;
    j->rec.n_versions = n;
    j->rec.retire = retire;
    j->rec.n_retire = nr;
    return run(s, j);
}

static int webhook(qbc_store_t *s, const char *realm, const char *entity, const char *id, qbc_op_t op)
{
    qbc_event_t e;
    any_job_t j;
    memset(&e, 0, sizeof(e));
    snprintf(e.realm, sizeof(e.realm), "%s", realm);
    snprintf(e.entity, sizeof(e.entity), "%s", entity);
    snprintf(e.id, sizeof(e.id), "%s", id);
    e.op = op;
    e.updated_ns = 1;
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_WEBHOOK;
    j.wh.body = "{}";
    j.wh.body_len = 2;
    j.wh.events = &e;
    j.wh.n_events = 1;
    return run(s, &j);
}

typedef struct {
    int n;
    uint64_t seq[32];
    char json[32][512];
} feed_seen_t;

static int feed_cb(const qbc_feed_rec_t *r, void *ctx)
{
    feed_seen_t *f = ctx;
    if (f->n < 32) {
        f->seq[f->n] = r->seq;
        snprintf(f->json[f->n], sizeof(f->json[0]), "%.*s", (int)r->json_len, r->json);
    }
    f->n++;
    return 0;
}

static uint64_t pending_last_seq;
static int pending_n;
static int pending_cb(const qbc_pending_t *p, void *ctx)
{
    (void)ctx;
    pending_last_seq = p->last_seq;
    pending_n++;
    return 0;
}

static void count_pending(qbc_store_t *s)
{
    pending_n = 0;
    qbc_store_pending_scan(s, NULL, pending_cb, NULL);
}

static char *dir;

static void test_feed(void)
{
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    any_job_t j;
    feed_seen_t f;

    is_int(qbc_store_open(&cfg, &s), 0, "open");
    qbc_store_add_listener(s, on_note, NULL);
    webhook(s, "1", "Invoice", "7", QBC_OP_CREATE);
    count_pending(s);
    is_int(pending_n, 1, "a notice is pending");
    ok(last_note.new_pending == 1, "listener told of the new notice");

    qbc_notice_ref_t r;
    memset(&r, 0, sizeof(r));
    strcpy(r.realm, "1");
    strcpy(r.entity, "Invoice");
    strcpy(r.id, "7");
    r.last_seq = pending_last_seq;
    qbc_version_t v0 = ver("1", "Invoice", "7", "0", 1000, QBC_OP_CREATE, "{\"Id\":\"7\",\"SyncToken\":\"0\"}");
    is_int(offer(s, &v0, 1, &r, 1, &j), 0, "offer the created version");
    is_int(j.rec.n_feed, 1, "it enters the feed");
    is_int(j.rec.last_feed_seq, 1, "as sequence 1");
    is_int(j.rec.n_retired, 1, "and the notice is retired");
    count_pending(s);
    is_int(pending_n, 0, "nothing pending");
    is_int(last_note.feed_appended, 1, "listener told of the feed record");
    is_int(last_note.last_feed_seq, 1, "with the last sequence");

    is_int(offer(s, &v0, 1, NULL, 0, &j), 0, "the same version again");
    is_int(j.rec.n_feed, 0, "adds nothing (duplicate webhook)");
    qbc_version_t v2 = ver("1", "Invoice", "7", "2", 3000, QBC_OP_UPDATE, "{\"Id\":\"7\",\"SyncToken\":\"2\"}");
    qbc_version_t v1 = ver("1", "Invoice", "7", "1", 2000, QBC_OP_UPDATE, "{\"Id\":\"7\",\"SyncToken\":\"1\"}");
    offer(s, &v2, 1, NULL, 0, &j);
    is_int(j.rec.n_feed, 1, "a newer SyncToken enters the feed");
    offer(s, &v1, 1, NULL, 0, &j);
    is_int(j.rec.n_feed, 0, "an older one arriving late does not (reordered webhook)");
    qbc_version_t v10 = ver("1", "Invoice", "7", "10", 4000, QBC_OP_UPDATE, "{\"Id\":\"7\",\"SyncToken\":\"10\"}");
    offer(s, &v10, 1, NULL, 0, &j);
    is_int(j.rec.n_feed, 1, "SyncToken 10 is newer than 2 (numeric, not text, order)");
    qbc_version_t vt =
        ver("1", "Invoice", "7", "10", 5000, QBC_OP_UPDATE, "{\"Id\":\"7\",\"SyncToken\":\"10\",\"x\":1}");
    offer(s, &vt, 1, NULL, 0, &j);
    is_int(j.rec.n_feed, 1, "same SyncToken, later LastUpdatedTime: newer");

    qbc_version_t del = ver("1", "Invoice", "7", "", 6000, QBC_OP_DELETE, NULL);
    offer(s, &del, 1, NULL, 0, &j);
    is_int(j.rec.n_feed, 1, "a delete enters the feed");
    offer(s, &del, 1, NULL, 0, &j);
    is_int(j.rec.n_feed, 0, "once");
    qbc_version_t v11 = ver("1", "Invoice", "7", "11", 7000, QBC_OP_UPDATE, "{}");
    offer(s, &v11, 1, NULL, 0, &j);
    is_int(j.rec.n_feed, 0, "a live version after the delete is stale");

    qbc_entity_rec_t e;
    is_int(qbc_store_entity_get(s, "1", "Invoice", "7", &e), 0, "entity found");
    ok(e.deleted && e.data == NULL, "as a tombstone without data");
    qbc_entity_rec_clear(&e);
    is_int(qbc_store_entity_get(s, "1", "Invoice", "8", &e), QBC_ENOTFOUND, "an unseen entity is not found");

    /* several versions in one job, two realms */
    qbc_version_t many[3] = {ver("2", "Customer", "1", "0", 1, QBC_OP_CREATE, "{\"Id\":\"1\"}"),
                             ver("2", "Customer", "2", "3", 1, QBC_OP_UPDATE, "{\"Id\":\"2\"}"),
                             ver("1", "Item", "5", "1", 1, QBC_OP_MERGE, "{\"Id\":\"5\"}")};
    offer(s, many, 3, NULL, 0, &j);
    is_int(j.rec.n_feed, 3, "three versions in one transaction");
    is_int(qbc_store_feed_last(s), 8, "feed last sequence");

    memset(&f, 0, sizeof(f));
    uint64_t last = 0;
    qbc_store_feed_scan(s, 0, 100, NULL, NULL, feed_cb, &f, &last);
    is_int(f.n, 8, "the feed holds eight records");
    is_int(last, 8, "scan reports the last sequence examined");
    json_t *o = json_loads(f.json[0], 0, NULL);
    ok(o != NULL, "a feed record is JSON");
    is_int(json_integer_value(json_object_get(o, "seq")), 1, "seq");
    is_str(json_string_value(json_object_get(o, "op")), "create", "op");
    is_str(json_string_value(json_object_get(o, "version")), "0", "version is the SyncToken");
    is_str(json_string_value(json_object_get(o, "source")), "webhook", "source");
    is_str(json_string_value(json_object_get(o, "last_updated")), "1970-01-01T00:00:00.000Z", "last_updated ISO-8601");
    is_str(json_string_value(json_object_get(json_object_get(o, "data"), "Id")), "7", "data is the entity");
    json_decref(o);
    o = json_loads(f.json[4], 0, NULL);
    is_str(json_string_value(json_object_get(o, "op")), "delete", "the delete record");
    ok(json_object_get(o, "data") == NULL, "has no data");
    json_decref(o);

    memset(&f, 0, sizeof(f));
    qbc_store_feed_scan(s, 0, 100, "2", NULL, feed_cb, &f, &last);
    is_int(f.n, 2, "realm filter");
    memset(&f, 0, sizeof(f));
    qbc_store_feed_scan(s, 0, 100, "1", "Item", feed_cb, &f, &last);
    is_int(f.n, 1, "realm and entity filter");
    is_int(f.seq[0], 8, "the Item record");
    memset(&f, 0, sizeof(f));
    qbc_store_feed_scan(s, 3, 2, NULL, NULL, feed_cb, &f, &last);
    ok(f.n == 2 && f.seq[0] == 4 && f.seq[1] == 5, "after and limit");
    memset(&f, 0, sizeof(f));
    qbc_store_feed_scan(s, 0, 100, "nope", NULL, feed_cb, &f, &last);
    ok(f.n == 0 && last == 8, "a filter matching nothing still advances the cursor");
    qbc_store_close(s);

    is_int(qbc_store_open(&cfg, &s), 0, "reopen");
    qbc_version_t v4 = ver("2", "Customer", "1", "4", 1, QBC_OP_UPDATE, "{}");
    offer(s, &v4, 1, NULL, 0, &j);
    is_int(j.rec.last_feed_seq, 9, "feed sequences continue after reopening");
    qbc_store_close(s);
}

static void test_retire_race(void)
{
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    any_job_t j;

    qbc_store_open(&cfg, &s);
    webhook(s, "3", "Bill", "1", QBC_OP_UPDATE);
    count_pending(s);
    uint64_t read_seq = pending_last_seq;
    webhook(s, "3", "Bill", "1", QBC_OP_UPDATE); /* arrives while the fetch is in flight */
    qbc_notice_ref_t r;
    memset(&r, 0, sizeof(r));
    strcpy(r.realm, "3");
    strcpy(r.entity, "Bill");
    strcpy(r.id, "1");
    r.last_seq = read_seq;
    qbc_version_t v = ver("3", "Bill", "1", "1", 1, QBC_OP_UPDATE, "{}");
    offer(s, &v, 1, &r, 1, &j);
    is_int(j.rec.n_retired, 0, "a notice that changed during the fetch is not retired");
    count_pending(s);
    is_int(pending_n, 1, "it stays pending, to be fetched again");

    /* dead letters */
    r.last_seq = pending_last_seq;
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_DEAD_LETTER;
    j.dl.notice = r;
    j.dl.error = "HTTP 500 five times";
    j.dl.attempts = 5;
    is_int(run(s, &j), 0, "dead-letter job");
    is_int(j.dl.moved, 1, "the notice moved");
    count_pending(s);
    is_int(pending_n, 0, "out of pending");
    qbc_store_stats_t st;
    qbc_store_stats(s, &st);
    is_int(st.dead_letters, 1, "into the dead letters");

    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REDRIVE;
    j.rd.dead_id = 1;
    is_int(run(s, &j), 0, "redrive");
    is_int(j.rd.found, 1, "found it");
    count_pending(s);
    is_int(pending_n, 1, "back in pending");
    qbc_store_stats(s, &st);
    is_int(st.dead_letters, 0, "no longer dead");
    qbc_store_close(s);
}

static void test_tokens(void)
{
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    any_job_t j;
    static qbc_tokens_t t, back;
    qbc_realm_t rs;
    char path[512];
    struct stat st;

    qbc_store_open(&cfg, &s);
    snprintf(path, sizeof(path), "%s/master.key", dir);
    ok(stat(path, &st) == 0 && st.st_size == 32, "a 32-byte master key was created");
    is_int(st.st_mode & 0777, 0600, "with mode 0600");

    memset(&t, 0, sizeof(t));
    strcpy(t.refresh_token, "RT-very-secret-refresh-token-123");
    strcpy(t.access_token, "AT-very-secret-access-token-456");
    t.access_expires_ns = 42;
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REALM;
    snprintf(j.rj.realm, sizeof(j.rj.realm), "%s", "9341");
    j.rj.tokens = &t;
    is_int(run(s, &j), 0, "register tokens");
    is_int(qbc_store_tokens_get(s, "9341", &back), 0, "read them back");
    is_str(back.refresh_token, t.refresh_token, "refresh token round-trips");
    is_str(back.access_token, t.access_token, "access token round-trips");
    is_int(back.access_expires_ns, 42, "expiry round-trips");
    is_int(qbc_store_realm_get(s, "9341", &rs), 0, "the realm was created");
    is_int(rs.status, QBC_REALM_ACTIVE, "active");
    is_int(qbc_store_tokens_get(s, "9342", &back), QBC_ENOTFOUND, "no tokens for another realm");

    /* sealing for secrets that leave the store (cluster mode's realm bucket) */
    unsigned char sealed[64 + QBC_STORE_SEAL_OVERHEAD], plain[128];
    size_t slen = 0, plen = 0;
    is_int(qbc_store_seal(s, "aad:9341", "top-secret-refresh", 18, sealed, &slen), 0, "seal with the master key");
    is_int((int)slen, 18 + QBC_STORE_SEAL_OVERHEAD, "the overhead is QBC_STORE_SEAL_OVERHEAD");
    ok(memmem(sealed, slen, "top-secret", 10) == NULL, "the sealed bytes do not hold the secret");
    is_int(qbc_store_unseal(s, "aad:9341", sealed, slen, plain, &plen), 0, "unseal under the same aad");
    ok(plen == 18 && memcmp(plain, "top-secret-refresh", 18) == 0, "the same bytes back");
    is_int(qbc_store_unseal(s, "aad:9342", sealed, slen, plain, &plen), QBC_EAUTH, "another aad: refused");
    sealed[slen - 1] ^= 1;
    is_int(qbc_store_unseal(s, "aad:9341", sealed, slen, plain, &plen), QBC_EAUTH, "a flipped bit: refused");
    is_int(qbc_store_unseal(s, "aad:9341", sealed, 5, plain, &plen), QBC_EMALFORMED, "too short: malformed");
    qbc_store_close(s);

    /* the tokens are not in the data file in clear */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "grep -c very-secret '%s/data.mdb' >/dev/null", dir);
    ok(system(cmd) != 0, "no token appears in clear in data.mdb");

    /* a different master key cannot read them */
    char other[512];
    snprintf(other, sizeof(other), "%s/other.key", dir);
    qbc_store_config_t cfg2 = {.dir = dir, .master_key_file = other};
    qbc_log_set_level(-1);
    qbc_store_open(&cfg2, &s);
    is_int(qbc_store_tokens_get(s, "9341", &back), QBC_EAUTH, "the wrong master key cannot decrypt");
    qbc_store_close(s);
    qbc_log_set_level(QBC_LOG_ERROR);

    /* a bad key file is refused */
    FILE *fp = fopen(other, "w");
    fputs("short", fp);
    fclose(fp);
    ok(qbc_store_open(&cfg2, &s) != 0, "a master key of the wrong size is refused");

    qbc_store_open(&cfg, &s);
    rs.status = QBC_REALM_DISCONNECTED;
    strcpy(rs.last_error, "invalid_grant");
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REALM;
    snprintf(j.rj.realm, sizeof(j.rj.realm), "%s", "9341");
    j.rj.state = &rs;
    j.rj.erase_tokens = 1;
    run(s, &j);
    qbc_store_realm_get(s, "9341", &rs);
    is_int(rs.status, QBC_REALM_DISCONNECTED, "status updated");
    is_str(rs.last_error, "invalid_grant", "last error kept");
    is_int(qbc_store_tokens_get(s, "9341", &back), QBC_ENOTFOUND, "tokens erased");
    qbc_store_close(s);
}

/* issue 5: the CDC watermark rides in the same transaction as the versions; backfill jobs */
/* a CDC sweep's commit: one version, and the realm's watermark */
static void cdc_commit(any_job_t *j, const qbc_version_t *v, const char *realm, int64_t watermark_ns)
{
    memset(j, 0, sizeof(*j));
    j->job.kind = QBC_JOB_RECONCILE;
    j->rec.versions = v;
    j->rec.n_versions = 1;
    j->rec.realm = realm;
    j->rec.set_cdc = 1;
    j->rec.cdc_watermark_ns = watermark_ns;
}

static void test_cdc_and_jobs(void)
{
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    any_job_t j;
    qbc_realm_t rs;
    qbc_backfill_t b, back;

    qbc_store_open(&cfg, &s);
    qbc_store_add_listener(s, on_note, NULL);
    memset(&rs, 0, sizeof(rs));
    snprintf(rs.realm, sizeof(rs.realm), "777");
    rs.connected_ns = 5;
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REALM;
    snprintf(j.rj.realm, sizeof(j.rj.realm), "%s", "777");
    j.rj.state = &rs;
    is_int(run(s, &j), 0, "realm created");

    qbc_version_t v = ver("777", "Invoice", "1", "3", 100, QBC_OP_UPDATE, "{\"Id\":\"1\"}");
    v.source = QBC_SOURCE_CDC;
    cdc_commit(&j, &v, "777", 2000);
    j.rec.last_cdc_ns = 3000;
    is_int(run(s, &j), 0, "versions + watermark committed");
    is_int(j.rec.n_feed, 1, "the version entered the feed");
    qbc_store_realm_get(s, "777", &rs);
    ok(rs.cdc_watermark_ns == 2000 && rs.last_cdc_ns == 3000, "watermark and last poll stored with them");
    is_int(rs.connected_ns, 5, "the rest of the realm state kept");
    j.rec.cdc_watermark_ns = 1000; /* a stale sweep never moves it back */
    j.rec.last_cdc_ns = 4000;
    run(s, &j);
    qbc_store_realm_get(s, "777", &rs);
    ok(rs.cdc_watermark_ns == 2000 && rs.last_cdc_ns == 4000, "the watermark never goes back");
    is_int(j.rec.n_feed, 0, "the same version again is a duplicate");

    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_CDC_REQUEST;
    snprintf(j.cdc.realm, sizeof(j.cdc.realm), "%s", "777");
    run(s, &j);
    qbc_store_realm_get(s, "777", &rs);
    ok(j.cdc.found == 1 && rs.cdc_requested_ns > 0, "a CDC request is recorded on the realm");
    snprintf(j.cdc.realm, sizeof(j.cdc.realm), "%s", "nope");
    run(s, &j);
    is_int(j.cdc.found, 0, "an unknown realm is reported");

    /* jobs: create, checkpoint with versions, cancel, refuse later checkpoints */
    memset(&b, 0, sizeof(b));
    snprintf(b.realm, sizeof(b.realm), "777");
    snprintf(b.entities, sizeof(b.entities), "Invoice,Customer");
    snprintf(b.reason, sizeof(b.reason), "operator");
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_BACKFILL;
    j.bf.create = &b;
    is_int(run(s, &j), 0, "job created");
    is_int(j.bf.id, 1, "first id is 1");
    ok(last_note.jobs_changed == 1, "listeners hear of job changes");
    run(s, &j);
    is_int(j.bf.id, 2, "ids increase");
    is_int(qbc_store_backfill_get(s, 1, &back), 0, "read back");
    ok(back.status == QBC_BACKFILL_QUEUED && back.start_position == 1 && strcmp(back.entities, "Invoice,Customer") == 0,
       "queued at position 1 with its entities");

    qbc_version_t v2 = ver("777", "Invoice", "2", "0", 200, QBC_OP_CREATE, "{\"Id\":\"2\"}");
    qbc_version_t vs[2] = {v, v2};
    vs[0].source = vs[1].source = QBC_SOURCE_BACKFILL;
    back.status = QBC_BACKFILL_RUNNING;
    back.start_position = 1001;
    back.records_seen = 2;
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_RECONCILE;
    j.rec.versions = vs;
    j.rec.n_versions = 2;
    j.rec.checkpoint = &back;
    is_int(run(s, &j), 0, "page + checkpoint committed");
    ok(!j.rec.checkpoint_refused && j.rec.n_feed == 1, "one new version");
    qbc_store_backfill_get(s, 1, &b);
    ok(b.start_position == 1001 && b.records_seen == 2 && b.versions_new == 1 && b.status == QBC_BACKFILL_RUNNING,
       "checkpoint holds the position and counts new versions in the same transaction");

    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_BACKFILL;
    j.bf.cancel_id = 1;
    run(s, &j);
    ok(j.bf.id == 1 && j.bf.out.status == QBC_BACKFILL_CANCELLED && j.bf.out.finished_ns > 0, "cancelled");
    j.bf.cancel_id = 99;
    run(s, &j);
    is_int(j.bf.id, 0, "cancelling an unknown job reports it");
    back.start_position = 2001;
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_RECONCILE;
    j.rec.checkpoint = &back;
    run(s, &j);
    ok(j.rec.checkpoint_refused, "a checkpoint does not revive a cancelled job");
    qbc_store_backfill_get(s, 1, &b);
    ok(b.status == QBC_BACKFILL_CANCELLED && b.start_position == 1001, "it stays cancelled where it was");
    int count = 0;
    qbc_store_backfill_scan(s, count_jobs, &count);
    is_int(count, 2, "scan sees both jobs");
    qbc_store_close(s);

    qbc_store_open(&cfg, &s);
    qbc_store_backfill_get(s, 2, &b);
    is_int(b.status, QBC_BACKFILL_QUEUED, "jobs survive reopening");
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_BACKFILL;
    j.bf.create = &b;
    run(s, &j);
    is_int(j.bf.id, 3, "ids continue after reopening");
    qbc_store_close(s);
}

/* the merge rule of a job known in two places (store.h qbc_backfill_cmp) */
static void test_job_merge_rule(void)
{
    static qbc_backfill_t a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.status = b.status = QBC_BACKFILL_RUNNING;
    a.start_position = b.start_position = 1;
    is_int(qbc_backfill_cmp(&a, &b), 0, "the same state: neither replaces the other");
    b.status = QBC_BACKFILL_QUEUED;
    ok(qbc_backfill_cmp(&a, &b) > 0 && qbc_backfill_cmp(&b, &a) < 0, "running replaces queued");
    b.status = QBC_BACKFILL_RUNNING;
    a.records_seen = 2000;
    b.records_seen = 1000;
    b.entity_index = b.entities_done = 0;
    ok(qbc_backfill_cmp(&a, &b) > 0, "further on (records seen) replaces");
    b.entities_done = 1;
    ok(qbc_backfill_cmp(&a, &b) < 0, "entities done count before records seen");
    a.entities_done = 1;
    a.records_seen = b.records_seen;
    a.rereads = 1;
    ok(qbc_backfill_cmp(&a, &b) > 0, "a reread (position back to 1) is further on, not behind");
    a.rereads = 0;
    a.start_position = 1001;
    ok(qbc_backfill_cmp(&a, &b) > 0, "then the position");
    b.status = QBC_BACKFILL_CANCELLED;
    b.finished_ns = 50;
    a.records_seen = 999999;
    ok(qbc_backfill_cmp(&b, &a) > 0, "a finished job replaces a live one, however far that got");
    a.status = QBC_BACKFILL_DONE;
    a.finished_ns = 60;
    ok(qbc_backfill_cmp(&b, &a) > 0 && qbc_backfill_cmp(&a, &b) < 0, "of two outcomes, the first stays");
    a.finished_ns = 50;
    ok(qbc_backfill_cmp(&a, &b) > 0 && qbc_backfill_cmp(&b, &a) < 0, "at the same time: one order, done first");
}

typedef struct {
    int n;
    uint64_t ids[16];
} id_list_t;

static int collect_ids(const qbc_backfill_t *b, void *ctx)
{
    id_list_t *l = ctx;
    if (l->n < 16)
        l->ids[l->n++] = b->id;
    return 0;
}

/* cluster mode: ids in the node's own space, jobs of other nodes imported, checkpoints behind refused */
static void test_cluster_jobs(void)
{
    char sub[600];
    snprintf(sub, sizeof(sub), "%s/cluster", dir);
    const uint64_t S = QBC_JOB_ID_SPACE;
    qbc_store_config_t cfg = {.dir = sub, .job_id_base = 5 * S};
    qbc_store_t *s;
    any_job_t j;
    static qbc_backfill_t b, imp, back;

    is_int(qbc_store_open(&cfg, &s), 0, "a store with job ids from 5 * 2^32");
    memset(&b, 0, sizeof(b));
    snprintf(b.realm, sizeof(b.realm), "888");
    snprintf(b.reason, sizeof(b.reason), "operator");
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_BACKFILL;
    j.bf.create = &b;
    run(s, &j);
    ok(j.bf.id == 5 * S + 1, "the first job gets the space's first id");

    /* other nodes' jobs, above and below the space */
    memset(&imp, 0, sizeof(imp));
    imp.id = 6 * S + 1;
    snprintf(imp.realm, sizeof(imp.realm), "999");
    snprintf(imp.entities, sizeof(imp.entities), "Invoice,Customer");
    imp.status = QBC_BACKFILL_RUNNING;
    imp.entities_done = 1;
    imp.entity_index = 1;
    imp.start_position = 3001;
    imp.records_seen = 5000;
    imp.created_ns = 77;
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_BACKFILL;
    j.bf.import = &imp;
    is_int(run(s, &j), 0, "a job of another node imported");
    ok(j.bf.imported == 1 && j.bf.id == 6 * S + 1, "written under its own id");
    static qbc_backfill_t low;
    low = imp;
    low.id = 4 * S + 9;
    j.bf.import = &low;
    run(s, &j);
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_BACKFILL;
    j.bf.create = &b;
    run(s, &j);
    ok(j.bf.id == 5 * S + 2, "the next id of this node's space, whatever other spaces hold");
    id_list_t l = {0};
    qbc_store_backfill_scan(s, collect_ids, &l);
    ok(l.n == 4 && l.ids[0] == 4 * S + 9 && l.ids[3] == 6 * S + 1, "the scan lists every job in id order");

    /* the merge: an older state is not taken; a checkpoint behind an imported one is refused */
    static qbc_backfill_t older;
    older = imp;
    older.records_seen = 3000;
    older.start_position = 1001;
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_BACKFILL;
    j.bf.import = &older;
    run(s, &j);
    qbc_store_backfill_get(s, imp.id, &back);
    ok(j.bf.imported == 0 && back.records_seen == 5000, "an older state from the bucket is not taken");
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_RECONCILE;
    j.rec.checkpoint = &older;
    run(s, &j);
    qbc_store_backfill_get(s, imp.id, &back);
    ok(j.rec.checkpoint_refused && back.records_seen == 5000 && back.start_position == 3001,
       "a checkpoint behind the stored one (another node's progress) is refused");
    static qbc_backfill_t ahead;
    ahead = imp;
    ahead.start_position = 4001;
    ahead.records_seen = 6000;
    j.rec.checkpoint = &ahead;
    run(s, &j);
    qbc_store_backfill_get(s, imp.id, &back);
    ok(!j.rec.checkpoint_refused && back.start_position == 4001, "one further on is written");

    /* a cancel from the bucket stops it; a later outcome does not replace the first */
    static qbc_backfill_t cancelled, done;
    cancelled = back;
    cancelled.status = QBC_BACKFILL_CANCELLED;
    cancelled.finished_ns = 1000;
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_BACKFILL;
    j.bf.import = &cancelled;
    run(s, &j);
    ok(j.bf.imported && j.bf.out.status == QBC_BACKFILL_CANCELLED, "a cancel from another node is taken");
    done = ahead;
    done.status = QBC_BACKFILL_DONE;
    done.finished_ns = 2000;
    j.bf.import = &done;
    run(s, &j);
    qbc_store_backfill_get(s, imp.id, &back);
    ok(!j.bf.imported && back.status == QBC_BACKFILL_CANCELLED, "a later outcome does not replace it");
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_RECONCILE;
    j.rec.checkpoint = &ahead;
    run(s, &j);
    ok(j.rec.checkpoint_refused, "nor does the running node's next checkpoint");

    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_BACKFILL;
    j.bf.import = &imp;
    j.bf.create = &b;
    is_int(run(s, &j), QBC_EINVAL, "create and import at once: malformed");
    static qbc_backfill_t noid;
    noid = imp;
    noid.id = 0;
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_BACKFILL;
    j.bf.import = &noid;
    is_int(run(s, &j), QBC_EINVAL, "an import without an id: malformed");
    qbc_store_close(s);

    /* a node alone (base 0) numbers from 1, below every node's space */
    cfg.job_id_base = 0;
    qbc_store_open(&cfg, &s);
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_BACKFILL;
    j.bf.create = &b;
    run(s, &j);
    is_int(j.bf.id, 1, "without a base: 1, even with other spaces' jobs held");
    qbc_store_close(s);
}

static int collect_pending(const qbc_pending_t *p, void *ctx)
{
    char *out = ctx;
    size_t n = strlen(out);
    snprintf(out + n, 512 - n, "%s%s/%s/%s", n ? " " : "", p->realm, p->entity, p->id);
    return 0;
}

/* a CDC commit with audit_entities: a pending notice for each live version held, but not
 * for deleted ones, other entities, other realms, or versions the same job stored */
static void test_audit(void)
{
    char sub_dir[600];
    snprintf(sub_dir, sizeof(sub_dir), "%s/audit", dir);
    qbc_store_config_t cfg = {.dir = sub_dir};
    qbc_store_t *s;
    any_job_t j;
    qbc_realm_t rs;

    qbc_store_open(&cfg, &s);
    memset(&rs, 0, sizeof(rs));
    snprintf(rs.realm, sizeof(rs.realm), "55");
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REALM;
    snprintf(j.rj.realm, sizeof(j.rj.realm), "%s", "55");
    j.rj.state = &rs;
    run(s, &j);
    qbc_version_t held[] = {
        ver("55", "Invoice", "1", "0", 100, QBC_OP_CREATE, "{}"),
        ver("55", "Invoice", "2", "0", 100, QBC_OP_CREATE, "{}"),
        ver("55", "Invoice", "3", "", 100, QBC_OP_DELETE, NULL),
        ver("55", "Invoicer", "4", "0", 100, QBC_OP_CREATE, "{}"),
        ver("55", "Bill", "5", "0", 100, QBC_OP_CREATE, "{}"),
        ver("56", "Invoice", "6", "0", 100, QBC_OP_CREATE, "{}"),
    };
    is_int(offer(s, held, 6, NULL, 0, &j), 0, "six versions held");
    qbc_version_t now = ver("55", "Invoice", "7", "0", 200, QBC_OP_CREATE, "{}");
    cdc_commit(&j, &now, "55", 300);
    j.rec.audit_entities = "Invoice";
    is_int(run(s, &j), 0, "a CDC commit auditing Invoice");
    is_int(j.rec.n_audited, 2, "two notices made");
    char got[512] = "";
    qbc_store_pending_scan(s, NULL, collect_pending, got);
    is_str(got, "55/Invoice/1 55/Invoice/2",
           "for the live Invoices held; not the deleted one, the one just stored, Invoicer, Bill, or realm 56");
    qbc_store_close(s);
}

static int collect_merges(const qbc_pending_t *p, void *ctx)
{
    char *out = ctx;
    size_t n = strlen(out);
    snprintf(out + n, 512 - n, "%s%s:%s>%s", n ? " " : "", p->id, p->merged_from, p->merged_into);
    return 0;
}

/*
 * issue 9: a Merge webhook links its two sides through their pending notices to the feed
 * records; a delete carries the last version held, or null, never "".
 */
static void test_merge_and_delete(void)
{
    char sub_dir[600];
    snprintf(sub_dir, sizeof(sub_dir), "%s/merge", dir);
    qbc_store_config_t cfg = {.dir = sub_dir};
    qbc_store_t *s;
    any_job_t j;
    qbc_event_t e;
    feed_seen_t f;

    qbc_store_open(&cfg, &s);
    qbc_version_t held[] = {ver("9", "Customer", "27", "4", 100, QBC_OP_UPDATE, "{\"Id\":\"27\"}"),
                            ver("9", "Customer", "5", "2", 100, QBC_OP_UPDATE, "{\"Id\":\"5\"}")};
    is_int(offer(s, held, 2, NULL, 0, &j), 0, "two customers held");

    memset(&e, 0, sizeof(e));
    snprintf(e.realm, sizeof(e.realm), "9");
    snprintf(e.entity, sizeof(e.entity), "Customer");
    snprintf(e.id, sizeof(e.id), "5");
    snprintf(e.deleted_id, sizeof(e.deleted_id), "27");
    e.op = QBC_OP_MERGE;
    e.updated_ns = 200;
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_WEBHOOK;
    j.wh.body = "{}";
    j.wh.body_len = 2;
    j.wh.events = &e;
    j.wh.n_events = 1;
    is_int(run(s, &j), 0, "a Merge webhook: 27 merged into 5");
    is_int(webhook(s, "9", "Customer", "5", QBC_OP_UPDATE), 0, "and a later update of the survivor");
    char got[512] = "";
    qbc_store_pending_scan(s, NULL, collect_merges, got);
    is_str(got, "27:>5 5:27>", "each side's notice knows the other, the later update did not erase it");

    qbc_version_t v[] = {ver("9", "Customer", "5", "3", 200, QBC_OP_MERGE, "{\"Id\":\"5\"}"),
                         ver("9", "Customer", "27", "", 200, QBC_OP_DELETE, NULL),
                         ver("9", "Customer", "99", "", 200, QBC_OP_DELETE, NULL)};
    snprintf(v[0].merged_from, sizeof(v[0].merged_from), "27");
    snprintf(v[1].merged_into, sizeof(v[1].merged_into), "5");
    is_int(offer(s, v, 3, NULL, 0, &j), 0, "the merge's versions and a delete of an entity never held");
    memset(&f, 0, sizeof(f));
    qbc_store_feed_scan(s, 2, 10, NULL, NULL, feed_cb, &f, NULL);
    is_int(f.n, 3, "three records");
    ok(strstr(f.json[0], "\"op\":\"merge\"") && strstr(f.json[0], "\"merged_from\":\"27\"") &&
           !strstr(f.json[0], "merged_into"),
       "the survivor's record says what was merged into it");
    ok(strstr(f.json[1], "\"op\":\"delete\"") && strstr(f.json[1], "\"merged_into\":\"5\"") &&
           strstr(f.json[1], "\"version\":\"4\"") && !strstr(f.json[1], "\"data\""),
       "the merged-away entity's delete: its survivor, the last version held, no data");
    ok(strstr(f.json[2], "\"version\":null") != NULL, "a delete of an entity never held: version null, not \"\"");
    qbc_entity_rec_t rec;
    is_int(qbc_store_entity_get(s, "9", "Customer", "27", &rec), 0, "the tombstone");
    ok(rec.deleted && strcmp(rec.sync_token, "4") == 0, "keeps the last version held");
    qbc_entity_rec_clear(&rec);
    qbc_store_close(s);
}

typedef struct {
    uint64_t id, n;
    qbc_backfill_t last;
} jobs_seen_t;

static int collect_jobs(const qbc_backfill_t *b, void *ctx)
{
    jobs_seen_t *js = ctx;
    js->n++;
    js->id = b->id;
    js->last = *b;
    return 0;
}

/* issue 9: a realm's first registration brings its snapshot job; snapshot versions' ops */
static void test_snapshot(void)
{
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    static any_job_t j;
    static qbc_tokens_t t;
    qbc_realm_t rs;
    jobs_seen_t js;

    qbc_store_open(&cfg, &s);
    memset(&t, 0, sizeof(t));
    strcpy(t.refresh_token, "RT-1");
    memset(&js, 0, sizeof(js));
    qbc_store_backfill_scan(s, collect_jobs, &js);
    uint64_t jobs_before = js.n;

    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REALM;
    snprintf(j.rj.realm, sizeof(j.rj.realm), "%s", "7001");
    j.rj.tokens = &t;
    j.rj.snapshot_if_new = 1;
    is_int(run(s, &j), 0, "a new realm registered with snapshot_if_new");
    ok(j.rj.snapshot_id != 0, "a snapshot job came with it");
    static qbc_backfill_t snap;
    qbc_store_backfill_get(s, j.rj.snapshot_id, &snap);
    is_str(snap.reason, "snapshot", "reason snapshot");
    is_str(snap.entities, "", "every CDC entity (resolved when it starts)");
    is_int(snap.status, QBC_BACKFILL_QUEUED, "queued");
    memset(&js, 0, sizeof(js));
    qbc_store_backfill_scan(s, collect_jobs, &js);
    is_int(js.n, jobs_before + 1, "stored in the jobs database");
    is_int(js.id, j.rj.snapshot_id, "under its id");

    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REALM;
    snprintf(j.rj.realm, sizeof(j.rj.realm), "%s", "7001");
    j.rj.tokens = &t;
    j.rj.snapshot_if_new = 1;
    is_int(run(s, &j), 0, "the same realm registered again");
    is_int(j.rj.snapshot_id, 0, "no second snapshot for a known realm");
    memset(&js, 0, sizeof(js));
    qbc_store_backfill_scan(s, collect_jobs, &js);
    is_int(js.n, jobs_before + 1, "still one job");

    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REALM;
    snprintf(j.rj.realm, sizeof(j.rj.realm), "%s", "7002");
    j.rj.tokens = &t;
    is_int(run(s, &j), 0, "a new realm without snapshot_if_new");
    is_int(j.rj.snapshot_id, 0, "no snapshot");

    /* ops: first seen through a snapshot -> snapshot; held and newer -> update/create; deletes stay */
    qbc_version_t held = ver("7001", "Invoice", "1", "1", 100, QBC_OP_UPDATE, "{\"Id\":\"1\"}");
    offer(s, &held, 1, NULL, 0, &j);
    qbc_version_t v[4] = {
        ver("7001", "Invoice", "1", "2", 200, QBC_OP_UPDATE, "{\"Id\":\"1\"}"),
        ver("7001", "Invoice", "2", "0", 200, QBC_OP_CREATE, "{\"Id\":\"2\"}"),
        ver("7001", "Invoice", "3", "5", 200, QBC_OP_UPDATE, "{\"Id\":\"3\"}"),
        ver("7001", "Invoice", "4", "", 200, QBC_OP_DELETE, NULL),
    };
    for (int i = 0; i < 4; i++)
        v[i].source = QBC_SOURCE_SNAPSHOT;
    uint64_t last = qbc_store_feed_last(s);
    is_int(offer(s, v, 4, NULL, 0, &j), 0, "snapshot versions offered");
    is_int(j.rec.n_feed, 4, "all four are new");
    feed_seen_t f;
    memset(&f, 0, sizeof(f));
    qbc_store_feed_scan(s, last, 10, NULL, NULL, feed_cb, &f, NULL);
    is_int(f.n, 4, "four feed records");
    ok(strstr(f.json[0], "\"op\":\"update\"") && strstr(f.json[0], "\"source\":\"snapshot\""),
       "held and newer: update, source snapshot");
    ok(strstr(f.json[1], "\"op\":\"snapshot\""), "never held (SyncToken 0): snapshot");
    ok(strstr(f.json[2], "\"op\":\"snapshot\""), "never held: snapshot");
    ok(strstr(f.json[3], "\"op\":\"delete\""), "a delete stays a delete");
    qbc_entity_rec_t er;
    is_int(qbc_store_entity_get(s, "7001", "Invoice", "3", &er), 0, "the entity is stored");
    is_int(er.op, QBC_OP_SNAPSHOT, "with op snapshot");
    is_int(er.source, QBC_SOURCE_SNAPSHOT, "and source snapshot");
    qbc_entity_rec_clear(&er);

    /* a checkpoint with skipped entities and the realm's last_error, in one transaction */
    qbc_backfill_t cp = js.last;
    cp.status = QBC_BACKFILL_RUNNING;
    cp.n_skipped = 2;
    strcpy(cp.skipped[0].entity, "Estimate");
    strcpy(cp.skipped[0].error, "HTTP 400 fault 4000 (ValidationFault): Error parsing query");
    strcpy(cp.skipped[1].entity, "Class");
    strcpy(cp.skipped[1].error, "refused");
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_RECONCILE;
    j.rec.realm = "7001";
    j.rec.checkpoint = &cp;
    j.rec.realm_error = "snapshot job skipped 2 entities QBO refused: Estimate,Class";
    is_int(run(s, &j), 0, "a checkpoint with skipped entities");
    static qbc_backfill_t back;
    is_int(qbc_store_backfill_get(s, cp.id, &back), 0, "read the job back");
    is_int(back.n_skipped, 2, "two skipped entities persisted");
    is_str(back.skipped[0].entity, "Estimate", "the first");
    is_str(back.skipped[0].error, "HTTP 400 fault 4000 (ValidationFault): Error parsing query", "with its error");
    is_str(back.skipped[1].entity, "Class", "the second");
    qbc_store_realm_get(s, "7001", &rs);
    is_str(rs.last_error, "snapshot job skipped 2 entities QBO refused: Estimate,Class", "the realm's last_error");
    qbc_store_close(s);
}

static int notes_seen(void)
{
    pthread_mutex_lock(&mu);
    int n = notes;
    pthread_mutex_unlock(&mu);
    return n;
}

/* libuv's rule for listeners, and jobs the store refuses as malformed with its own code */
static void test_listeners_and_malformed(void)
{
    char sub_dir[600];
    snprintf(sub_dir, sizeof(sub_dir), "%s/listeners", dir);
    qbc_store_config_t cfg = {.dir = sub_dir};
    qbc_store_t *s;
    any_job_t j;

    qbc_store_open(&cfg, &s);
    int h = qbc_store_add_listener(s, on_note, NULL);
    ok(h >= 0, "a listener is added");
    int before = notes_seen();
    is_int(webhook(s, "4", "Item", "1", QBC_OP_CREATE), 0, "a commit");
    ok(notes_seen() > before, "the listener heard it");
    qbc_store_remove_listener(s, h);
    before = notes_seen();
    webhook(s, "4", "Item", "2", QBC_OP_CREATE);
    is_int(notes_seen(), before, "once removed, it never runs again");
    qbc_store_remove_listener(s, h); /* a second removal is a no-op */

    int hs[QBC_STORE_MAX_LISTENERS], n = 0;
    while (n < QBC_STORE_MAX_LISTENERS && (hs[n] = qbc_store_add_listener(s, on_note, NULL)) >= 0)
        n++;
    is_int(n, QBC_STORE_MAX_LISTENERS, "QBC_STORE_MAX_LISTENERS fit");
    is_int(qbc_store_add_listener(s, on_note, NULL), QBC_EFULL, "one more is refused with QBC_EFULL");
    qbc_store_remove_listener(s, hs[3]);
    int again = qbc_store_add_listener(s, on_note, NULL);
    is_int(again, hs[3], "a removed slot is used again");
    for (int i = 0; i < n; i++)
        qbc_store_remove_listener(s, hs[i]);

    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REALM; /* realm "" */
    is_int(run(s, &j), QBC_EINVAL, "a realm job without a realm: QBC_EINVAL");
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_BACKFILL;
    is_int(run(s, &j), QBC_EINVAL, "a backfill job that neither creates nor cancels: QBC_EINVAL");
    qbc_backfill_t b;
    memset(&b, 0, sizeof(b));
    snprintf(b.realm, sizeof(b.realm), "4");
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_BACKFILL;
    j.bf.create = &b;
    j.bf.cancel_id = 1;
    is_int(run(s, &j), QBC_EINVAL, "one that does both: QBC_EINVAL");
    j.bf.cancel_id = 0;
    is_int(run(s, &j), 0, "the same job, only creating: stored");
    qbc_store_job_t ping;
    memset(&ping, 0, sizeof(ping));
    is_int(qbc_store_ping(s, &ping), QBC_EINVAL, "a job without on_commit is refused at submission");

    /* conditional realm writes (if_current): a refresh's tokens never outlive a disconnect */
    static qbc_tokens_t t, back;
    qbc_realm_t rs;
    memset(&t, 0, sizeof(t));
    strcpy(t.refresh_token, "RT-1");
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REALM;
    snprintf(j.rj.realm, sizeof(j.rj.realm), "77");
    j.rj.tokens = &t;
    run(s, &j);
    qbc_store_realm_get(s, "77", &rs);
    int64_t gen = rs.connected_ns;
    strcpy(t.refresh_token, "RT-2");
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REALM;
    snprintf(j.rj.realm, sizeof(j.rj.realm), "77");
    j.rj.tokens = &t;
    j.rj.if_current = 1;
    j.rj.if_connected_ns = gen;
    ok(run(s, &j) == 0 && !j.rj.stale, "under the same connection the rotated tokens are written");
    qbc_store_tokens_get(s, "77", &back);
    is_str(back.refresh_token, "RT-2", "RT-2 stored");
    rs.status = QBC_REALM_DISCONNECTED; /* a disconnect: tokens erased */
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REALM;
    snprintf(j.rj.realm, sizeof(j.rj.realm), "77");
    j.rj.state = &rs;
    j.rj.erase_tokens = 1;
    run(s, &j);
    strcpy(t.refresh_token, "RT-3");
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REALM;
    snprintf(j.rj.realm, sizeof(j.rj.realm), "77");
    j.rj.tokens = &t;
    j.rj.if_current = 1;
    j.rj.if_connected_ns = gen;
    ok(run(s, &j) == 0 && j.rj.stale, "after a disconnect the same write is stale");
    is_int(qbc_store_tokens_get(s, "77", &back), QBC_ENOTFOUND, "and wrote nothing: the tokens stay erased");
    rs.status = QBC_REALM_ACTIVE;
    rs.connected_ns = gen + 1; /* a reconnection */
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REALM;
    snprintf(j.rj.realm, sizeof(j.rj.realm), "77");
    j.rj.state = &rs;
    run(s, &j);
    memset(&j, 0, sizeof(j));
    j.job.kind = QBC_JOB_REALM;
    snprintf(j.rj.realm, sizeof(j.rj.realm), "77");
    j.rj.tokens = &t;
    j.rj.if_current = 1;
    j.rj.if_connected_ns = gen;
    ok(run(s, &j) == 0 && j.rj.stale, "a write from the previous connection is stale after a reconnect");
    qbc_store_close(s);
}

int main(void)
{
    char tmpl[] = "/tmp/qbcdc-reconcile-test-XXXXXX";
    qbc_log_set_level(QBC_LOG_ERROR);
    dir = mkdtemp(tmpl);
    subtest("versions and the feed", test_feed);
    subtest("retire race and dead letters", test_retire_race);
    subtest("realms and tokens", test_tokens);
    subtest("CDC watermark and backfill jobs", test_cdc_and_jobs);
    subtest("the merge rule of a job known in two places", test_job_merge_rule);
    subtest("cluster mode: job id spaces, imports, checkpoints behind", test_cluster_jobs);
    subtest("audits after a capped CDC answer", test_audit);
    subtest("merge links and delete versions", test_merge_and_delete);
    subtest("snapshots: first registration, ops, skipped entities", test_snapshot);
    subtest("listener removal, malformed jobs, conditional realm writes", test_listeners_and_malformed);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("cleanup failed");
    return done_testing();
}
