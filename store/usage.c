/*
 * usage.c — metered calls by period (the "usage" database): what Intuit's monthly
 * CorePlus allowance is spent on.
 *
 *   key   [period_start_ns u64 BE][realm bytes]   (no realm: the period's total)
 *   value [calls u64 BE] x QBC_USAGE_PURPOSES      (live, cdc, backfill, other)
 *
 * The period's total is kept beside the realms' rows, in the same transaction, so
 * reading a period's spending is one get, whatever the number of realms.
 *
 * Also the feed sinks' cursors (meta "cursor:<name>": the last feed sequence a sink such
 * as the JetStream publisher delivered), which only move forward.
 */
#include <stdio.h>
#include <string.h>
#include "store_internal.h"

#define USAGE_VALUE_SIZE (8 * QBC_USAGE_PURPOSES)

const char *qbc_usage_purpose_name(int purpose)
{
    static const char *const names[QBC_USAGE_PURPOSES] = {"live", "cdc", "backfill", "other"};
    return purpose >= 0 && purpose < QBC_USAGE_PURPOSES ? names[purpose] : "other";
}

static int add_row(qbc_store_t *s, MDB_txn *txn, int64_t period, const char *realm, const uint64_t *calls)
{
    unsigned char key[8 + QBC_REALM_MAX], val[USAGE_VALUE_SIZE];
    size_t rlen = strlen(realm);
    put_u64be(key, (uint64_t)period);
    memcpy(key + 8, realm, rlen);
    MDB_val k = {8 + rlen, key}, v;
    uint64_t now[QBC_USAGE_PURPOSES] = {0};
    int rc = mdb_get(txn, s->dbi_usage, &k, &v);
    if (rc == 0 && v.mv_size == USAGE_VALUE_SIZE) {
        for (int i = 0; i < QBC_USAGE_PURPOSES; i++)
            now[i] = get_u64be((const unsigned char *)v.mv_data + 8 * i);
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        return rc;
    }
    for (int i = 0; i < QBC_USAGE_PURPOSES; i++)
        put_u64be(val + 8 * i, now[i] + calls[i]);
    v.mv_size = sizeof(val);
    v.mv_data = val;
    return mdb_put(txn, s->dbi_usage, &k, &v, 0);
}

int qbc_store__apply_usage(qbc_store_t *s, MDB_txn *txn, qbc_usage_job_t *job)
{
    uint64_t total[QBC_USAGE_PURPOSES] = {0};
    int rc;
    for (size_t i = 0; i < job->n_deltas; i++) {
        const qbc_usage_delta_t *d = &job->deltas[i];
        if (d->realm[0] == '\0' || memchr(d->realm, '\0', sizeof(d->realm)) == NULL)
            return QBC_EINVAL;
        if ((rc = add_row(s, txn, job->period_start_ns, d->realm, d->calls)) != 0)
            return rc;
        for (int p = 0; p < QBC_USAGE_PURPOSES; p++)
            total[p] += d->calls[p];
    }
    return job->n_deltas > 0 ? add_row(s, txn, job->period_start_ns, "", total) : 0;
}

int qbc_store_usage_scan(qbc_store_t *s, int64_t period_start_ns, qbc_usage_scan_cb cb, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    unsigned char key[8];
    int rc;

    if (!s->has_usage)
        return 0;
    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    if (mdb_cursor_open(txn, s->dbi_usage, &cur) != 0) {
        qbc_store__read_end(s, txn);
        return QBC_ESTORE;
    }
    put_u64be(key, (uint64_t)period_start_ns);
    MDB_val k = {8, key}, v;
    int op = MDB_SET_RANGE;
    while ((rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)) == 0) {
        op = MDB_NEXT;
        if (k.mv_size < 8 || memcmp(k.mv_data, key, 8) != 0)
            break;
        if (v.mv_size != USAGE_VALUE_SIZE || k.mv_size - 8 >= QBC_REALM_MAX)
            continue;
        char realm[QBC_REALM_MAX];
        memcpy(realm, (const char *)k.mv_data + 8, k.mv_size - 8);
        realm[k.mv_size - 8] = '\0';
        qbc_usage_t u = {realm, {0}};
        for (int i = 0; i < QBC_USAGE_PURPOSES; i++)
            u.calls[i] = get_u64be((const unsigned char *)v.mv_data + 8 * i);
        if (cb(&u, ctx) != 0)
            break;
    }
    mdb_cursor_close(cur);
    qbc_store__read_end(s, txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : QBC_ESTORE;
}

/* ---- sink cursors (meta "cursor:<name>"), kept here beside the other small counters ---- */

int qbc_store__cursor_key(const char *name, char *key, size_t size)
{
    size_t n = strnlen(name, 32);
    if (n == 0 || n >= 32)
        return QBC_EINVAL;
    snprintf(key, size, "cursor:%s", name);
    return 0;
}

int qbc_store__apply_cursor(qbc_store_t *s, MDB_txn *txn, qbc_cursor_job_t *job)
{
    char key[48];
    if (qbc_store__cursor_key(job->name, key, sizeof(key)) != 0)
        return QBC_EINVAL;
    if (qbc_store__meta_u64(txn, s->dbi_meta, key) >= job->value)
        return 0;
    return qbc_store__meta_put_u64(txn, s->dbi_meta, key, job->value);
}

int qbc_store_cursor(qbc_store_t *s, const char *name, uint64_t *out)
{
    char key[48];
    MDB_txn *txn;
    int rc;
    if (qbc_store__cursor_key(name, key, sizeof(key)) != 0)
        return QBC_EINVAL;
    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    *out = qbc_store__meta_u64(txn, s->dbi_meta, key);
    qbc_store__read_end(s, txn);
    return 0;
}
