/*
 * test_subscriptions.c — store/subscriptions.c: push subscriptions are created with fresh
 * ids, their secrets are sealed (not in the file in clear) and open again after a reopen,
 * settings are replaced without touching the cursor, acks move the cursor forward only
 * within its epoch, a replay (set_cursor) makes the acks in flight stale, a disable keeps
 * its reason until re-enabled, and a delete removes both records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_fixture.h"

typedef struct {
    int n;
    uint64_t id, epoch, cursor;
    int64_t disabled_ns;
    char config[256], secrets[256], reason[QBC_SUB_REASON_MAX];
} got_t;

static int collect(const qbc_sub_rec_t *r, void *ctx)
{
    got_t *g = ctx;
    g->n++;
    g->id = r->id;
    g->epoch = r->epoch;
    g->cursor = r->cursor;
    g->disabled_ns = r->disabled_ns;
    snprintf(g->config, sizeof(g->config), "%.*s", (int)r->config_len, r->config);
    snprintf(g->secrets, sizeof(g->secrets), "%s", r->secrets ? r->secrets : "(none)");
    snprintf(g->reason, sizeof(g->reason), "%s", r->disabled_reason);
    return 0;
}

static got_t get(qbc_store_t *s, uint64_t id)
{
    got_t g;
    memset(&g, 0, sizeof(g));
    qbc_store_sub_scan(s, id, collect, &g);
    return g;
}

static int put(qbc_store_t *s, qbc_sub_put_job_t *j)
{
    j->job.on_commit = on_commit;
    reset_done();
    if (qbc_store_sub_put(s, j) != 0)
        return -1;
    wait_done(1);
    return j->job.result;
}

static int ack(qbc_store_t *s, uint64_t id, uint64_t epoch, uint64_t cursor, const char *reason, int *stale)
{
    qbc_sub_ack_job_t j;
    memset(&j, 0, sizeof(j));
    j.job.on_commit = on_commit;
    j.id = id, j.epoch = epoch, j.cursor = cursor, j.disabled_reason = reason;
    reset_done();
    if (qbc_store_sub_ack(s, &j) != 0)
        return -1;
    wait_done(1);
    *stale = j.stale;
    return j.job.result;
}

static int file_has(const char *dir, const char *needle)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    static char buf[1 << 20];
    size_t n, nl = strlen(needle);
    int found = 0;
    while (!found && (n = fread(buf, 1, sizeof(buf), f)) > 0)
        for (size_t i = 0; i + nl <= n && !found; i++)
            found = memcmp(buf + i, needle, nl) == 0;
    fclose(f);
    return found;
}

int main(void)
{
    qbc_log_set_level(QBC_LOG_ERROR);
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    int stale = -1;

    is_int(qbc_store_open(&cfg, &s), 0, "open");
    is_int(get(s, 0).n, 0, "no subscriptions yet");
    is_int(qbc_store_sub_scan(s, 7, collect, &(got_t){0}), QBC_ENOTFOUND, "an unknown id is not found");

    qbc_sub_put_job_t a = {
        .config = "{\"url\":\"http://a\"}", .secrets = "whsec_SECRETSECRETSECRET1", .cursor = 5, .set_cursor = 1};
    is_int(put(s, &a), 0, "create one");
    is_int(a.id_out, 1, "the first id is 1");
    qbc_sub_put_job_t b = {.config = "{\"url\":\"http://b\"}", .secrets = "whsec_other"};
    is_int(put(s, &b), 0, "create another");
    is_int(b.id_out, 2, "ids go up");
    qbc_sub_put_job_t nosecret = {.config = "{}"};
    ok(put(s, &nosecret) == QBC_EINVAL, "a create without secrets is refused");

    got_t g = get(s, 1);
    ok(g.n == 1 && strcmp(g.config, "{\"url\":\"http://a\"}") == 0, "settings read back as written");
    is_str(g.secrets, "whsec_SECRETSECRETSECRET1", "the secrets open");
    ok(g.cursor == 5 && g.epoch == 1, "the cursor starts where it was asked, epoch 1");
    is_int(get(s, 0).n, 2, "a scan sees both");
    qbc_store_flush(s);
    is_int(file_has(dir, "SECRETSECRETSECRET1"), 0, "the secret is not in the file in clear");
    is_int(file_has(dir, "http://a"), 1, "(the settings are, so the search works)");

    is_int(ack(s, 1, 1, 9, NULL, &stale), 0, "an ack");
    ok(!stale && get(s, 1).cursor == 9, "moves the cursor");
    is_int(ack(s, 1, 1, 7, NULL, &stale), 0, "an older ack");
    is_int(get(s, 1).cursor, 9, "never moves it back");

    qbc_sub_put_job_t upd = {.id = 1, .config = "{\"url\":\"http://a2\"}"};
    is_int(put(s, &upd), 0, "settings replaced");
    g = get(s, 1);
    ok(strcmp(g.config, "{\"url\":\"http://a2\"}") == 0 && g.cursor == 9 && g.epoch == 1,
       "new settings, the same cursor and epoch");
    is_str(g.secrets, "whsec_SECRETSECRETSECRET1", "and the secrets held");
    qbc_sub_put_job_t missing = {.id = 99, .config = "{}"};
    ok(put(s, &missing) == 0 && !missing.found, "replacing an unknown id writes nothing (found 0)");

    qbc_sub_put_job_t replay = {.id = 1, .config = "{\"url\":\"http://a2\"}", .set_cursor = 1, .cursor = 2};
    is_int(put(s, &replay), 0, "a replay");
    g = get(s, 1);
    ok(g.cursor == 2 && g.epoch == 2, "moves the cursor back and the epoch up");
    is_int(ack(s, 1, 1, 20, NULL, &stale), 0, "an ack of the epoch before");
    ok(stale && get(s, 1).cursor == 2, "is stale: nothing written");

    is_int(ack(s, 1, 2, 3, "gave up after 3 attempts: HTTP 500", &stale), 0, "a disable");
    g = get(s, 1);
    ok(g.disabled_ns > 0 && strcmp(g.reason, "gave up after 3 attempts: HTTP 500") == 0 && g.cursor == 3,
       "is stored with its reason and cursor");
    is_int(ack(s, 1, 2, 4, NULL, &stale), 0, "an ack without a reason after the disable");
    g = get(s, 1);
    ok(g.disabled_ns > 0 && strcmp(g.reason, "gave up after 3 attempts: HTTP 500") == 0 && g.cursor == 4,
       "moves the cursor but never re-enables");
    qbc_sub_put_job_t en = {.id = 1, .config = "{\"url\":\"http://a2\"}", .enable = 1};
    is_int(put(s, &en), 0, "re-enable");
    g = get(s, 1);
    ok(g.disabled_ns == 0 && g.reason[0] == '\0' && g.cursor == 4, "enabled again at its cursor");

    qbc_sub_put_job_t rot = {.id = 2, .config = "{\"url\":\"http://b\"}", .secrets = "whsec_rotated"};
    is_int(put(s, &rot), 0, "new secrets");
    qbc_store_close(s);
    is_int(qbc_store_open(&cfg, &s), 0, "reopen");
    is_str(get(s, 2).secrets, "whsec_rotated", "the new secrets survive the reopen");
    is_int(get(s, 1).cursor, 4, "and the cursor");

    qbc_sub_delete_job_t d = {.id = 2};
    d.job.on_commit = on_commit;
    reset_done();
    is_int(qbc_store_sub_delete(s, &d), 0, "delete");
    wait_done(1);
    ok(d.job.result == 0 && d.found, "found and removed");
    is_int(get(s, 0).n, 1, "one is left");
    is_int(ack(s, 2, 1, 5, NULL, &stale), 0, "an ack of the deleted one");
    ok(stale && get(s, 0).n == 1, "writes nothing");
    qbc_sub_put_job_t c = {.config = "{}", .secrets = "x"};
    is_int(put(s, &c), 0, "create after a delete");
    is_int(c.id_out, 3, "gets a new id, never one used before");

    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
    return done_testing();
}
