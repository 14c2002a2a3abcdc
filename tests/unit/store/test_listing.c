/*
 * test_listing.c — store/: the feed identity (created with the store, kept across
 * opens, given at the first writable open to a store made before feed ids, read by a
 * read-only open) and the entity listing (qbc_store_entity_list: key order, after_id
 * exclusive, limit and out_more, tombstones, and no leak across the realm/entity
 * prefix).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_fixture.h"
#include "store_internal.h"

static int is_hex_id(const char *id)
{
    if (strlen(id) != QBC_FEED_ID_LEN)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static qbc_store_t *open_rw(const char *dir)
{
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s = NULL;
    if (qbc_store_open(&cfg, &s) != 0)
        abort();
    return s;
}

/* removes meta's feed_id with LMDB directly: the store as a build before feed ids left it */
static void drop_feed_id(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    MDB_val k = {sizeof(QBC_FEED_ID_KEY) - 1, QBC_FEED_ID_KEY};
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, QBC_STORE_MAXDBS) != 0 ||
        mdb_env_open(env, dir, MDB_NOTLS, 0600) != 0 || mdb_txn_begin(env, NULL, 0, &txn) != 0 ||
        mdb_dbi_open(txn, "meta", 0, &meta) != 0 || mdb_del(txn, meta, &k, NULL) != 0 || mdb_txn_commit(txn) != 0)
        abort();
    mdb_env_close(env);
}

static void test_feed_id(void)
{
    char *dir = make_tmp(), *dir2 = make_tmp(), first[QBC_FEED_ID_LEN + 1], path[512], aside[512];
    qbc_store_t *s = open_rw(dir);
    snprintf(first, sizeof(first), "%s", qbc_store_feed_id(s));
    ok(is_hex_id(first), "a new store has a feed id of 32 lowercase hex digits");
    qbc_store_close(s);

    s = open_rw(dir);
    is_str(qbc_store_feed_id(s), first, "a second writable open keeps it");
    qbc_store_close(s);
    if (qbc_store_open_readonly(dir, &s) != 0)
        abort();
    is_str(qbc_store_feed_id(s), first, "a read-only open reads it");
    qbc_store_close(s);

    s = open_rw(dir2);
    ok(is_hex_id(qbc_store_feed_id(s)) && strcmp(qbc_store_feed_id(s), first) != 0,
       "another new store has another feed id");
    qbc_store_close(s);

    /* a store made before feed ids: a read-only open (no journal to replay) has none ... */
    drop_feed_id(dir);
    snprintf(path, sizeof(path), "%s/journal", dir);
    snprintf(aside, sizeof(aside), "%s/journal.aside", dir);
    if (rename(path, aside) != 0 || qbc_store_open_readonly(dir, &s) != 0)
        abort();
    is_str(qbc_store_feed_id(s), "", "a read-only open of a store without a feed id: \"\"");
    qbc_store_close(s);
    if (rename(aside, path) != 0)
        abort();
    /* ... and the first writable open gives it one, for good */
    s = open_rw(dir);
    snprintf(first, sizeof(first), "%s", qbc_store_feed_id(s));
    ok(is_hex_id(first), "the first writable open of a store without one creates it");
    qbc_store_close(s);
    s = open_rw(dir);
    is_str(qbc_store_feed_id(s), first, "and it is kept from then on");
    qbc_store_close(s);
    rm_rf(dir);
    rm_rf(dir2);
    free(dir);
    free(dir2);
}

/* ---- the listing ---- */

typedef struct {
    char ids[64][QBC_ID_MAX];
    char data[64][64];
    int deleted[64];
    int n, stop_at, wrong;
    const char *realm, *entity;
} list_t;

static int list_cb(const char *realm, const char *entity, const char *id, const qbc_entity_rec_t *rec, void *p)
{
    list_t *l = p;
    if (strcmp(realm, l->realm) != 0 || strcmp(entity, l->entity) != 0)
        l->wrong++;
    snprintf(l->ids[l->n], QBC_ID_MAX, "%s", id);
    snprintf(l->data[l->n], sizeof(l->data[0]), "%.*s", (int)rec->data_len, rec->data ? rec->data : "");
    l->deleted[l->n] = rec->deleted;
    l->n++;
    return l->stop_at > 0 && l->n >= l->stop_at;
}

static int list(qbc_store_t *s, const char *realm, const char *entity, const char *after, size_t limit, list_t *l,
                int *more)
{
    memset(l, 0, sizeof(*l));
    l->realm = realm;
    l->entity = entity;
    return qbc_store_entity_list(s, realm, entity, after, limit, list_cb, l, more);
}

static void put_versions(qbc_store_t *s)
{
    /* realm "1" Invoice 1, 10, 2, 3 (3 deleted); neighbours that share byte prefixes */
    static const char *rows[][4] = {
        {"1", "Invoice", "2", "{\"Id\":\"2\",\"Amt\":1.50}"},
        {"1", "Invoice", "10", "{\"Id\":\"10\"}"},
        {"1", "Invoice", "1", "{\"Id\":\"1\"}"},
        {"1", "Invoice", "3", "{\"Id\":\"3\"}"},
        {"1", "InvoiceX", "0", "{\"Id\":\"0\"}"},
        {"1", "Bill", "5", "{\"Id\":\"5\"}"},
        {"12", "Invoice", "0", "{\"Id\":\"0\"}"},
        {"0", "Invoice", "9", "{\"Id\":\"9\"}"},
        {"1", "Item", "0", "{\"Id\":\"0\"}"},
    };
    size_t n = sizeof(rows) / sizeof(rows[0]);
    qbc_version_t v[16];
    memset(v, 0, sizeof(v));
    for (size_t i = 0; i < n; i++) {
        snprintf(v[i].realm, sizeof(v[i].realm), "%s", rows[i][0]);
        snprintf(v[i].entity, sizeof(v[i].entity), "%s", rows[i][1]);
        snprintf(v[i].id, sizeof(v[i].id), "%s", rows[i][2]);
        snprintf(v[i].sync_token, sizeof(v[i].sync_token), "0");
        v[i].updated_ns = 1000;
        v[i].op = QBC_OP_CREATE;
        v[i].source = QBC_SOURCE_WEBHOOK;
        v[i].data = rows[i][3];
        v[i].data_len = strlen(rows[i][3]);
    }
    /* the delete of Invoice 3 comes as a second version */
    snprintf(v[n].realm, sizeof(v[n].realm), "1");
    snprintf(v[n].entity, sizeof(v[n].entity), "Invoice");
    snprintf(v[n].id, sizeof(v[n].id), "3");
    v[n].op = QBC_OP_DELETE;
    v[n].source = QBC_SOURCE_WEBHOOK;
    v[n].updated_ns = 2000;
    qbc_reconcile_job_t j;
    for (size_t i = 0; i <= n; i++) {
        memset(&j, 0, sizeof(j));
        j.versions = &v[i];
        j.n_versions = 1;
        j.job.on_commit = on_commit;
        reset_done();
        if (qbc_store_reconcile(s, &j) != 0)
            abort();
        wait_done(1);
        if (j.job.result != 0)
            abort();
    }
}

static void test_listing(void)
{
    char *dir = make_tmp();
    qbc_store_t *s = open_rw(dir);
    list_t l;
    int more;

    put_versions(s);
    is_int(list(s, "1", "Invoice", NULL, 100, &l, &more), 0, "list realm 1 Invoice");
    is_int(l.n, 4, "four invoices of realm 1, none of another realm or type");
    is_int(l.wrong, 0, "every one is of realm 1 and Invoice");
    ok(l.n == 4 && strcmp(l.ids[0], "1") == 0 && strcmp(l.ids[1], "10") == 0 && strcmp(l.ids[2], "2") == 0 &&
           strcmp(l.ids[3], "3") == 0,
       "in the id's byte order: 1, 10, 2, 3");
    is_int(more, 0, "the page reached the end");
    is_str(l.data[2], "{\"Id\":\"2\",\"Amt\":1.50}", "data is the stored bytes");
    ok(l.deleted[3] && !l.deleted[0] && l.data[3][0] == '\0', "a tombstone is listed as deleted, without data");

    list(s, "1", "Invoice", NULL, 2, &l, &more);
    ok(l.n == 2 && more == 1 && strcmp(l.ids[1], "10") == 0, "limit 2: 1, 10, and more follows");
    list(s, "1", "Invoice", "10", 2, &l, &more);
    ok(l.n == 2 && more == 0 && strcmp(l.ids[0], "2") == 0 && strcmp(l.ids[1], "3") == 0,
       "after_id 10 (exclusive): 2, 3, the end");
    list(s, "1", "Invoice", "3", 2, &l, &more);
    ok(l.n == 0 && more == 0, "after the last id: an empty page");
    list(s, "1", "Invoice", "1", 100, &l, &more);
    ok(l.n == 3 && strcmp(l.ids[0], "10") == 0, "after_id 1 skips 1 itself, not 10");
    list(s, "1", "Invoice", "0", 100, &l, &more);
    ok(l.n == 4 && strcmp(l.ids[0], "1") == 0, "after an id not stored: from the next one");
    list(s, "1", "Invoice", "2", 3, &l, &more);
    ok(l.n == 1 && more == 0 && l.wrong == 0, "a page at the end of the prefix does not run into InvoiceX or Item");
    list(s, "12", "Invoice", NULL, 100, &l, &more);
    ok(l.n == 1 && strcmp(l.ids[0], "0") == 0 && l.wrong == 0, "realm 12 is not realm 1");
    list(s, "1", "Bill", NULL, 100, &l, &more);
    ok(l.n == 1 && strcmp(l.ids[0], "5") == 0 && l.wrong == 0, "Bill of realm 1 alone");
    list(s, "1", "Customer", NULL, 100, &l, &more);
    ok(l.n == 0 && more == 0, "a type with nothing stored: an empty page");
    memset(&l, 0, sizeof(l));
    l.realm = "1";
    l.entity = "Invoice";
    l.stop_at = 1;
    qbc_store_entity_list(s, "1", "Invoice", NULL, 100, list_cb, &l, &more);
    ok(l.n == 1 && more == 1, "a callback that stops early: more says what follows");
    is_int(list(s, "", "Invoice", NULL, 10, &l, &more), QBC_EINVAL, "an empty realm: QBC_EINVAL");
    char long_id[QBC_ID_MAX + 1];
    memset(long_id, '7', QBC_ID_MAX);
    long_id[QBC_ID_MAX] = '\0';
    is_int(list(s, "1", "Invoice", long_id, 10, &l, &more), QBC_EINVAL, "an after_id too long: QBC_EINVAL");
    qbc_store_close(s);

    if (qbc_store_open_readonly(dir, &s) != 0)
        abort();
    list(s, "1", "Invoice", "1", 100, &l, &more);
    ok(l.n == 3, "a read-only open lists the same");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

int main(void)
{
    subtest("feed id", test_feed_id);
    subtest("entity listing", test_listing);
    return done_testing();
}
