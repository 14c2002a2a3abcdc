/*
 * test_cdc.c — reconciler/: CDC requests and answers (qbo-facts §2 samples), the window
 * split decisions, the 30-day rule, and backfill page queries (§3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "rec_internal.h"

#define NS 1000000000LL

static void test_requests(void)
{
    int64_t t;
    qbc_time_parse("2015-12-23T20:56:06.196Z", 24, &t);
    char *u = qbc_rec_cdc_url("http://h", "123145", "Invoice,Customer", t + 999999, 75);
    is_str(u,
           "http://h/v3/company/123145/cdc?entities=Invoice,Customer&changedSince=2015-12-23T20:56:06.196%2B00:00"
           "&minorversion=75",
           "changedSince has an explicit offset, '+' encoded as %2B, ms rounded down");
    free(u);
    char *q = qbc_rec_backfill_query("Invoice", 0, 1);
    is_str(q, "SELECT * FROM Invoice ORDERBY Id STARTPOSITION 1 MAXRESULTS 1000", "backfill of everything");
    free(q);
    q = qbc_rec_backfill_query("Customer", 0, 2001);
    is_str(q, "SELECT * FROM Customer WHERE Active IN (true,false) ORDERBY Id STARTPOSITION 2001 MAXRESULTS 1000",
           "name lists include inactive records");
    free(q);
    q = qbc_rec_window_query("Invoice", 1000 * NS, 1001 * NS, 1001);
    is_str(q,
           "SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime >= '1970-01-01T00:16:40.000+00:00' AND "
           "MetaData.LastUpdatedTime < '1970-01-01T00:16:41.000+00:00' ORDERBY Id STARTPOSITION 1001 MAXRESULTS 1000",
           "one second of one entity, by the query API");
    free(q);
    q = qbc_rec_window_query("Item", 1000 * NS, 1001 * NS, 1);
    ok(strstr(q, "< '1970-01-01T00:16:41.000+00:00' AND Active IN (true,false) ORDERBY") != NULL,
       "a name list's second includes inactive records");
    free(q);
    q = qbc_rec_backfill_query("Vendor", t, 1);
    is_str(q,
           "SELECT * FROM Vendor WHERE MetaData.LastUpdatedTime >= '2015-12-23T20:56:06.196+00:00' AND Active IN "
           "(true,false) ORDERBY Id STARTPOSITION 1 MAXRESULTS 1000",
           "since as a LastUpdatedTime bound with an offset");
    free(q);
}

static void test_answers(void)
{
    /* the reference sample of qbo-facts §2 (Ids only there; SyncToken/MetaData added so they are versions) */
    const char *body =
        "{\"CDCResponse\":[{\"QueryResponse\":["
        "{\"Customer\":[{\"Id\":\"63\",\"SyncToken\":\"0\",\"MetaData\":{\"LastUpdatedTime\":\"2015-12-23T12:50:00-08:"
        "00\"}},"
        "{\"Id\":\"99\",\"SyncToken\":\"4\",\"MetaData\":{\"LastUpdatedTime\":\"2015-12-23T12:51:00-08:00\"}}],"
        "\"startPosition\":1,\"maxResults\":3},"
        "{\"startPosition\":1,\"totalCount\":5,\"Estimate\":["
        "{\"Id\":\"34\",\"SyncToken\":\"1\",\"MetaData\":{\"LastUpdatedTime\":\"2015-12-23T12:52:00-08:00\"}},"
        "{\"status\":\"Deleted\",\"domain\":\"QBO\",\"Id\":\"979\",\"MetaData\":{\"LastUpdatedTime\":\"2015-12-23T12:"
        "55:50-08:00\"}}],"
        "\"maxResults\":5},{}]}],"
        "\"time\":\"2015-12-23T12:56:06.196-08:00\"}";
    qbc_rec_cdc_group_t *g;
    size_t ng, total;
    int64_t tm, want;
    qbc_fault_t f;
    is_int(qbc_rec_parse_cdc(body, strlen(body), &g, &ng, &tm, &total, &f), 0, "sample parses");
    is_int(ng, 2, "two entity groups ({} is an entity without changes)");
    is_int(total, 4, "four objects");
    qbc_time_parse("2015-12-23T12:56:06.196-08:00", 29, &want);
    ok(tm == want, "time is the answer's time");
    ok(strcmp(g[0].entity, "Customer") == 0 && g[0].n == 2 && strcmp(g[1].entity, "Estimate") == 0 && g[1].n == 2,
       "groups by entity");
    ok(g[1].items[1].deleted && strcmp(g[1].items[1].id, "979") == 0 && g[1].items[1].data == NULL,
       "status Deleted: a delete");
    qbc_version_t v;
    qbc_rec__version_of_item("r", "Customer", &g[0].items[0], QBC_SOURCE_CDC, &v);
    ok(v.op == QBC_OP_CREATE && v.source == QBC_SOURCE_CDC && v.data != NULL, "SyncToken 0: create, source cdc");
    qbc_rec__version_of_item("r", "Customer", &g[0].items[1], QBC_SOURCE_CDC, &v);
    is_int(v.op, QBC_OP_UPDATE, "later SyncToken: update");
    qbc_rec__version_of_item("r", "Estimate", &g[1].items[1], QBC_SOURCE_CDC, &v);
    ok(v.op == QBC_OP_DELETE && v.data == NULL && v.updated_ns > 0, "deleted: delete with its time");
    qbc_rec_cdc_groups_free(g, ng);

    const char *empty = "{\"CDCResponse\":[{\"QueryResponse\":[{}]}],\"time\":\"2015-12-23T12:56:06.196-08:00\"}";
    is_int(qbc_rec_parse_cdc(empty, strlen(empty), &g, &ng, &tm, &total, &f), 0, "empty answer parses");
    ok(ng == 0 && total == 0, "nothing in it");
    qbc_rec_cdc_groups_free(g, ng);

    const char *fault =
        "{\"Fault\":{\"Error\":[{\"Message\":\"A business validation error has occurred\","
        "\"Detail\":\"Operation cdc with changedSince date 2015-01-01 which is older than fixed days is "
        "not "
        "supported.\",\"code\":\"6000\"}],\"type\":\"ValidationFault\"},\"time\":\"2015-12-23T12:56:06.196-08:00\"}";
    is_int(qbc_rec_parse_cdc(fault, strlen(fault), &g, &ng, &tm, &total, &f), QBC_ENOTFOUND, "a Fault is reported");
    ok(qbc_rec_fault_too_old(&f), "and recognised as CDC's lookback limit");
    is_int(qbc_rec_classify(1, 400, &f), REC_RES_CLIENT, "a client error");
    const char *bad = "{\"CDCResponse\":{}}";
    is_int(qbc_rec_parse_cdc(bad, strlen(bad), &g, &ng, &tm, &total, &f), QBC_EMALFORMED, "wrong nesting refused");
}

/* n objects of one entity, times from t0 one second apart, the last n_del deleted */
static qbc_rec_cdc_group_t *fake(const char *entity, size_t n, size_t n_del, int64_t t0)
{
    qbc_rec_cdc_group_t *g = calloc(1, sizeof(*g));
    snprintf(g->entity, sizeof(g->entity), "%s", entity);
    g->items = calloc(n, sizeof(*g->items));
    g->n = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(g->items[i].id, sizeof(g->items[i].id), "%zu", i + 1);
        g->items[i].updated_ns = t0 + (int64_t)i * NS;
        g->items[i].deleted = i >= n - n_del;
    }
    return g;
}

static void test_split(void)
{
    int64_t next, since = 1000 * NS;
    qbc_rec_cdc_group_t *g = fake("Invoice", 999, 10, since);
    is_int(qbc_rec_cdc_decide(8, 999, g, 1, since, &next), REC_CDC_COMPLETE, "under the cap: complete");
    qbc_rec_cdc_groups_free(g, 1);
    g = fake("Invoice", 1000, 0, since);
    is_int(qbc_rec_cdc_decide(8, 1000, g, 1, since, &next), REC_CDC_SPLIT, "at the cap, several entities: split");
    is_int(qbc_rec_cdc_decide(1, 1000, g, 1, since, &next), REC_CDC_ADVANCE, "one entity: advance in time");
    ok(next == since + 999 * NS, "from the last object's time (inclusive)");
    qbc_rec_cdc_groups_free(g, 1);
    g = fake("Invoice", 1000, 1000, since);
    for (size_t i = 0; i < 1000; i++)
        g->items[i].updated_ns = since;
    is_int(qbc_rec_cdc_decide(1, 1000, g, 1, since, &next), REC_CDC_STUCK, "a full page in one second: stuck");
    ok(next == since, "the second to read by query starts at since (a whole second)");
    is_int(qbc_rec_cdc_decide(1, 1000, g, 1, since + 250000000, &next), REC_CDC_STUCK, "since inside that second");
    ok(next == since, "the second's start, rounded down");
    qbc_rec_cdc_groups_free(g, 1);
}

static void test_lookback(void)
{
    int64_t now = 100LL * 86400 * NS, lb = 30LL * 86400 * NS;
    int old;
    int64_t s = qbc_rec_cdc_since(now - 3600 * NS, 1, now, lb, &old);
    ok(s == now - 3600 * NS && !old, "a recent watermark is where CDC starts");
    s = qbc_rec_cdc_since(0, now - 86400 * NS, now, lb, &old);
    ok(s == now - 86400 * NS && !old, "no watermark yet: since the realm was connected");
    s = qbc_rec_cdc_since(now - 31LL * 86400 * NS, 1, now, lb, &old);
    ok(old && s == now - lb, "a watermark older than 30 days: too old (backfill)");
    qbc_rec_cdc_since(now - lb + 30 * NS, 1, now, lb, &old);
    ok(old, "within a minute of the limit counts as too old (clock skew)");
    s = qbc_rec_cdc_since(0, 0, now, lb, &old);
    ok(!old && s == now - lb, "nothing known: 30 days back at most");
}

/* a page of rows with ids first, first+1, ... (one id may be replaced by bad, to skip) */
static qbc_rec_item_t *page(int first, size_t n)
{
    qbc_rec_item_t *it = calloc(n, sizeof(*it));
    for (size_t i = 0; i < n; i++)
        snprintf(it[i].id, sizeof(it[i].id), "%d", first + (int)i);
    return it;
}

static void test_anchors(void)
{
    char a[QBC_BACKFILL_ANCHORS * QBC_ID_MAX];
    qbc_rec_item_t *p1 = page(1, 1000);
    qbc_rec__backfill_anchors(p1, 1000, a, sizeof(a));
    is_str(a, "981,982,983,984,985,986,987,988,989,990,991,992,993,994,995,996,997,998,999,1000",
           "a page's anchors: its last 20 ids");
    strcpy(p1[999].id, "bad id");
    qbc_rec__backfill_anchors(p1, 1000, a, sizeof(a));
    ok(strncmp(a, "980,", 4) == 0 && strstr(a, "bad") == NULL, "ids not valid in a query are passed over");
    qbc_rec__backfill_anchors(p1, 3, a, sizeof(a));
    is_str(a, "1,2,3", "a short page: all its ids");
    is_int(qbc_rec__backfill_first_new("", p1, 1000), 0, "no anchors (an entity's first page): every row is new");
    free(p1);

    qbc_rec__backfill_anchors((p1 = page(1, 1000)), 1000, a, sizeof(a));
    /* nothing moved: the next page starts 20 early, at id 981 */
    qbc_rec_item_t *p2 = page(981, 1000);
    is_int(qbc_rec__backfill_first_new(a, p2, 1000), 20, "nothing moved: new rows after the 20 anchors");
    free(p2);
    /* 7 rows deleted before the position: the page starts 7 rows later, at 988 */
    p2 = page(988, 1000);
    is_int(qbc_rec__backfill_first_new(a, p2, 1000), 13, "7 rows deleted before: new rows after the 13 anchors left");
    free(p2);
    /* the last anchors themselves deleted: the latest one left still aligns */
    p2 = page(981, 1000);
    for (int i = 15; i < 20; i++)
        snprintf(p2[i].id, sizeof(p2[i].id), "%d", 5000 + i);
    is_int(qbc_rec__backfill_first_new(a, p2, 1000), 15, "the last anchors deleted: after the latest one left");
    free(p2);
    /* 25 rows deleted before the position: no anchor in the page, rows may have been skipped */
    p2 = page(1006, 1000);
    is_int(qbc_rec__backfill_first_new(a, p2, 1000), -1, "more rows deleted than anchors kept: -1 (read again)");
    is_int(qbc_rec__backfill_first_new(a, p2, 0), -1, "an empty page after a full one: -1 too");
    free(p2);
    /* the table ended at exactly 1000 rows: the next page holds just the anchors */
    p2 = page(981, 20);
    is_int(qbc_rec__backfill_first_new(a, p2, 20), 20, "a table ending on a page boundary: the anchors, nothing new");
    free(p2);
    free(p1);
}

int main(void)
{
    subtest("backfill anchors", test_anchors);
    subtest("requests", test_requests);
    subtest("answers", test_answers);
    subtest("window split", test_split);
    subtest("lookback", test_lookback);
    return done_testing();
}
