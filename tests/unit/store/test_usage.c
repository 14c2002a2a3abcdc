/*
 * test_usage.c — store/usage.c: metered calls by period. Deltas add up per realm and
 * purpose, the period's total is their sum, periods are apart, the counts survive a
 * reopen, and a bad realm name refuses the whole job. A sink's cursor only moves forward.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_fixture.h"

typedef struct {
    int n;
    char realms[8][QBC_REALM_MAX];
    uint64_t calls[8][QBC_USAGE_PURPOSES];
} rows_t;

static int collect(const qbc_usage_t *u, void *ctx)
{
    rows_t *r = ctx;
    if (r->n < 8) {
        snprintf(r->realms[r->n], QBC_REALM_MAX, "%s", u->realm);
        memcpy(r->calls[r->n], u->calls, sizeof(u->calls));
        r->n++;
    }
    return 0;
}

static int add(qbc_store_t *s, int64_t period, const qbc_usage_delta_t *d, size_t n)
{
    qbc_usage_job_t j;
    memset(&j, 0, sizeof(j));
    j.job.on_commit = on_commit;
    j.period_start_ns = period;
    j.deltas = d;
    j.n_deltas = n;
    reset_done();
    if (qbc_store_add_usage(s, &j) != 0)
        return -1;
    wait_done(1);
    return j.job.result;
}

static rows_t scan(qbc_store_t *s, int64_t period)
{
    rows_t r;
    memset(&r, 0, sizeof(r));
    qbc_store_usage_scan(s, period, collect, &r);
    return r;
}

int main(void)
{
    qbc_log_set_level(QBC_LOG_ERROR);
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    const int64_t p1 = 1764547200000000000LL, p2 = 1767225600000000000LL; /* Dec 1 and Jan 1, 2026 */

    is_int(qbc_store_open(&cfg, &s), 0, "open");
    is_int(scan(s, p1).n, 0, "nothing counted yet: no rows");
    qbc_usage_delta_t d[2] = {{"123", {5, 2, 0, 0}}, {"45", {1, 0, 7, 1}}};
    is_int(add(s, p1, d, 2), 0, "two realms' calls added");
    qbc_usage_delta_t d2[1] = {{"123", {1, 1, 1, 1}}};
    is_int(add(s, p1, d2, 1), 0, "more for one of them");
    is_int(add(s, p2, d2, 1), 0, "and some in the next period");
    rows_t r = scan(s, p1);
    is_int(r.n, 3, "the period has its total and two realms");
    is_str(r.realms[0], "", "the total first");
    ok(r.calls[0][0] == 7 && r.calls[0][1] == 3 && r.calls[0][2] == 8 && r.calls[0][3] == 2,
       "the total is the sum by purpose (7 live, 3 cdc, 8 backfill, 2 other)");
    ok(strcmp(r.realms[1], "123") == 0 && r.calls[1][0] == 6 && r.calls[1][1] == 3 && r.calls[1][3] == 1,
       "realm 123's counts added up");
    ok(strcmp(r.realms[2], "45") == 0 && r.calls[2][2] == 7, "realm 45's apart");
    r = scan(s, p2);
    ok(r.n == 2 && r.calls[0][0] == 1, "the next period counts apart");
    qbc_usage_delta_t bad[2] = {{"9", {1, 0, 0, 0}}, {"", {1, 0, 0, 0}}};
    ok(add(s, p1, bad, 2) != 0, "a delta without a realm refuses the job");
    r = scan(s, p1);
    ok(r.calls[0][0] == 7 && r.n == 3, "and nothing of it was written");
    qbc_store_close(s);
    is_int(qbc_store_open(&cfg, &s), 0, "reopen");
    r = scan(s, p1);
    ok(r.n == 3 && r.calls[0][2] == 8, "the counts survive it");
    /* a sink's cursor: only forward */
    uint64_t c = 99;
    ok(qbc_store_cursor(s, "jetstream", &c) == 0 && c == 0, "a cursor never set reads 0");
    qbc_cursor_job_t cj;
    memset(&cj, 0, sizeof(cj));
    cj.job.on_commit = on_commit;
    snprintf(cj.name, sizeof(cj.name), "jetstream");
    cj.value = 42;
    reset_done();
    qbc_store_set_cursor(s, &cj);
    wait_done(1);
    cj.value = 7;
    reset_done();
    qbc_store_set_cursor(s, &cj);
    wait_done(1);
    ok(qbc_store_cursor(s, "jetstream", &c) == 0 && c == 42, "set to 42, then 7: it stays at 42");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
    return done_testing();
}
