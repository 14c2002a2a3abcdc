/*
 * subscriptions.c — push delivery subscriptions (issue 14): their settings, sealed secrets
 * and durable cursors.
 *
 *   subscriptions  u64 BE id -> [u32 BE settings length][settings JSON][sealed secrets]
 *                  (the secrets text sealed like OAuth tokens, AES-256-GCM with the master
 *                  key, bound to "subscription:<id>"; the settings are not read here)
 *   sub_cursors    u64 BE id -> [epoch u64 BE][cursor u64 BE][disabled_ns i64 BE][reason]
 *   meta "sub_seq" the last id assigned (ids are never reused; in cluster mode they are taken
 *                  from the node's id space, qbc_store_config_t.job_id_base, as jobs' are)
 *
 * The cursor is kept apart from the settings so that the delivery worker's acks and an
 * operator's edits never overwrite each other. The epoch grows whenever an operator moves
 * the cursor (create, replay): an ack of the epoch before is stale and writes nothing, so a
 * delivery that was in flight during a replay cannot move the cursor past it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "store_internal.h"

#define CURSOR_FIXED 24
#define CONFIG_MAX (64 * 1024)

static void aad(uint64_t id, char *buf, size_t size)
{
    snprintf(buf, size, "subscription:%llu", (unsigned long long)id);
}

static int cursor_get(qbc_store_t *s, MDB_txn *txn, uint64_t id, uint64_t *epoch, uint64_t *cursor)
{
    unsigned char kb[8];
    put_u64be(kb, id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_get(txn, s->dbi_sub_cursors, &k, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size < CURSOR_FIXED)
        return QBC_EMALFORMED;
    *epoch = get_u64be(v.mv_data);
    *cursor = get_u64be((const unsigned char *)v.mv_data + 8);
    return 0;
}

static int cursor_put(qbc_store_t *s, MDB_txn *txn, uint64_t id, uint64_t epoch, uint64_t cursor, int64_t disabled_ns,
                      const char *reason)
{
    unsigned char kb[8], vb[CURSOR_FIXED + QBC_SUB_REASON_MAX];
    size_t rlen = reason != NULL ? strnlen(reason, QBC_SUB_REASON_MAX - 1) : 0;
    put_u64be(kb, id);
    put_u64be(vb, epoch);
    put_u64be(vb + 8, cursor);
    put_u64be(vb + 16, (uint64_t)disabled_ns);
    if (rlen > 0)
        memcpy(vb + CURSOR_FIXED, reason, rlen);
    MDB_val k = {8, kb}, v = {CURSOR_FIXED + rlen, vb};
    return mdb_put(txn, s->dbi_sub_cursors, &k, &v, 0);
}

int qbc_store__apply_sub_put(qbc_store_t *s, MDB_txn *txn, qbc_sub_put_job_t *job)
{
    unsigned char kb[8];
    size_t clen = job->config != NULL ? strlen(job->config) : 0;
    int rc;

    if (clen == 0 || clen > CONFIG_MAX || (job->id == 0 && job->secrets == NULL))
        return QBC_EINVAL;
    if (job->secrets != NULL && strlen(job->secrets) > QBC_SUB_SECRETS_MAX)
        return QBC_EINVAL;
    uint64_t id = job->id;
    unsigned char *old_sealed = NULL;
    size_t old_len = 0;
    if (id == 0) {
        /* cluster mode: in this node's id space, as jobs (qbc_store_config_t.job_id_base), so
           any node can tell which node a subscription lives on */
        uint64_t last = qbc_store__meta_u64(txn, s->dbi_meta, "sub_seq");
        id = (last > s->job_id_base ? last : s->job_id_base) + 1;
        if ((rc = qbc_store__meta_put_u64(txn, s->dbi_meta, "sub_seq", id)) != 0)
            return rc;
    } else {
        put_u64be(kb, id);
        MDB_val k = {8, kb}, v;
        if ((rc = mdb_get(txn, s->dbi_subs, &k, &v)) == MDB_NOTFOUND) {
            job->found = 0;
            return 0;
        }
        if (rc != 0)
            return rc;
        if (v.mv_size < 4 || get_u32be(v.mv_data) > v.mv_size - 4)
            return QBC_EMALFORMED;
        size_t off = 4 + get_u32be(v.mv_data);
        old_len = v.mv_size - off;
        old_sealed = qbc_alloc(old_len + 1);
        memcpy(old_sealed, (const unsigned char *)v.mv_data + off, old_len);
    }
    job->found = 1;
    job->id_out = id;

    /* the value: settings, then the sealed secrets (new ones, or those held) */
    size_t slen = job->secrets != NULL ? strlen(job->secrets) + QBC_SEAL_OVERHEAD : old_len;
    unsigned char *val = qbc_alloc(4 + clen + slen);
    put_u32be(val, (uint32_t)clen);
    memcpy(val + 4, job->config, clen);
    if (job->secrets != NULL) {
        char a[48];
        size_t out_len = 0;
        aad(id, a, sizeof(a));
        if (!s->has_key || qbc_store__seal(s->master_key, a, (const unsigned char *)job->secrets, strlen(job->secrets),
                                           val + 4 + clen, &out_len) != 0) {
            free(val);
            free(old_sealed);
            return QBC_ECRYPTO;
        }
    } else {
        memcpy(val + 4 + clen, old_sealed, old_len);
    }
    free(old_sealed);
    put_u64be(kb, id);
    MDB_val k = {8, kb}, v = {4 + clen + slen, val};
    rc = mdb_put(txn, s->dbi_subs, &k, &v, 0);
    free(val);
    if (rc != 0)
        return rc;

    uint64_t epoch = 0, cursor = 0;
    int have = cursor_get(s, txn, id, &epoch, &cursor);
    if (have != 0 && have != MDB_NOTFOUND && have != QBC_EMALFORMED)
        return have;
    if (have != 0 || job->set_cursor) {
        epoch++;
        cursor = job->set_cursor ? job->cursor : 0;
        rc = cursor_put(s, txn, id, epoch, cursor, 0, NULL);
    } else if (job->enable) {
        rc = cursor_put(s, txn, id, epoch, cursor, 0, NULL);
    }
    job->epoch = epoch;
    return rc;
}

int qbc_store__apply_sub_delete(qbc_store_t *s, MDB_txn *txn, qbc_sub_delete_job_t *job)
{
    unsigned char kb[8];
    put_u64be(kb, job->id);
    MDB_val k = {8, kb};
    int rc = mdb_del(txn, s->dbi_subs, &k, NULL);
    job->found = rc == 0;
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    if ((rc = mdb_del(txn, s->dbi_sub_cursors, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
        return rc;
    return 0;
}

int qbc_store__apply_sub_ack(qbc_store_t *s, MDB_txn *txn, qbc_sub_ack_job_t *job)
{
    uint64_t epoch, cursor;
    int rc = cursor_get(s, txn, job->id, &epoch, &cursor);
    if (rc == MDB_NOTFOUND || rc == QBC_EMALFORMED || (rc == 0 && epoch != job->epoch)) {
        job->stale = 1; /* deleted, or an operator moved the cursor meanwhile */
        return 0;
    }
    if (rc != 0)
        return rc;
    job->stale = 0;
    if (job->cursor > cursor)
        cursor = job->cursor;
    if (job->disabled_reason != NULL)
        return cursor_put(s, txn, job->id, epoch, cursor, qbc_now_ns(), job->disabled_reason);
    /* an ack never re-enables: only an operator does (QBC_JOB_SUB_PUT) */
    unsigned char kb[8];
    put_u64be(kb, job->id);
    MDB_val k = {8, kb}, v;
    if ((rc = mdb_get(txn, s->dbi_sub_cursors, &k, &v)) != 0)
        return rc;
    char reason[QBC_SUB_REASON_MAX];
    size_t rlen = v.mv_size - CURSOR_FIXED < sizeof(reason) - 1 ? v.mv_size - CURSOR_FIXED : sizeof(reason) - 1;
    memcpy(reason, (const unsigned char *)v.mv_data + CURSOR_FIXED, rlen);
    reason[rlen] = '\0';
    return cursor_put(s, txn, job->id, epoch, cursor, (int64_t)get_u64be((const unsigned char *)v.mv_data + 16),
                      reason);
}

/* one record, decoded into rec (secrets opened into buf); 0 or an error */
static int decode(qbc_store_t *s, MDB_txn *txn, const MDB_val *k, const MDB_val *v, qbc_sub_rec_t *rec, char *buf,
                  size_t bufsz, char *reason)
{
    memset(rec, 0, sizeof(*rec));
    if (k->mv_size != 8 || v->mv_size < 4 || get_u32be(v->mv_data) > v->mv_size - 4)
        return QBC_EMALFORMED;
    rec->id = get_u64be(k->mv_data);
    rec->config_len = get_u32be(v->mv_data);
    rec->config = (const char *)v->mv_data + 4;
    const unsigned char *sealed = (const unsigned char *)v->mv_data + 4 + rec->config_len;
    size_t slen = v->mv_size - 4 - rec->config_len, plen = 0;
    char a[48];
    aad(rec->id, a, sizeof(a));
    if (!s->has_key || slen < QBC_SEAL_OVERHEAD || slen - QBC_SEAL_OVERHEAD >= bufsz)
        return QBC_EAUTH;
    unsigned char *copy = qbc_alloc(slen);
    memcpy(copy, sealed, slen);
    int rc = qbc_store__open_sealed(s->master_key, a, copy, slen, (unsigned char *)buf, &plen);
    free(copy);
    if (rc != 0)
        return QBC_EAUTH;
    buf[plen] = '\0';
    rec->secrets = buf;
    MDB_val cv;
    if (mdb_get(txn, s->dbi_sub_cursors, (MDB_val *)k, &cv) == 0 && cv.mv_size >= CURSOR_FIXED) {
        const unsigned char *c = cv.mv_data;
        rec->epoch = get_u64be(c);
        rec->cursor = get_u64be(c + 8);
        rec->disabled_ns = (int64_t)get_u64be(c + 16);
        size_t rlen =
            cv.mv_size - CURSOR_FIXED < QBC_SUB_REASON_MAX - 1 ? cv.mv_size - CURSOR_FIXED : QBC_SUB_REASON_MAX - 1;
        memcpy(reason, c + CURSOR_FIXED, rlen);
        reason[rlen] = '\0';
    } else {
        reason[0] = '\0';
    }
    rec->disabled_reason = reason;
    return 0;
}

int qbc_store_sub_scan(qbc_store_t *s, uint64_t only_id, qbc_sub_scan_cb cb, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc, found = 0;

    if (!s->has_subs)
        return only_id != 0 ? QBC_ENOTFOUND : 0;
    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    if (mdb_cursor_open(txn, s->dbi_subs, &cur) != 0) {
        qbc_store__read_end(s, txn);
        return QBC_ESTORE;
    }
    unsigned char kb[8];
    put_u64be(kb, only_id);
    MDB_val k = {8, kb}, v;
    char *buf = qbc_alloc(QBC_SUB_SECRETS_MAX + 1), reason[QBC_SUB_REASON_MAX];
    int op = only_id != 0 ? MDB_SET_KEY : MDB_FIRST;
    while ((rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)) == 0) {
        op = MDB_NEXT;
        qbc_sub_rec_t rec;
        int drc = decode(s, txn, &k, &v, &rec, buf, QBC_SUB_SECRETS_MAX + 1, reason);
        if (drc == QBC_EAUTH)
            qbc_log(QBC_LOG_ERROR, "store", "the secrets of subscription %llu do not decrypt: wrong master key?",
                    (unsigned long long)rec.id);
        if (drc != 0)
            rec.secrets = NULL;
        found = 1;
        int stop = drc == QBC_EMALFORMED ? 0 : cb(&rec, ctx);
        OPENSSL_cleanse(buf, QBC_SUB_SECRETS_MAX + 1);
        if (stop || only_id != 0)
            break;
    }
    free(buf);
    mdb_cursor_close(cur);
    qbc_store__read_end(s, txn);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return QBC_ESTORE;
    return only_id != 0 && !found ? QBC_ENOTFOUND : 0;
}

int qbc_store_feed_seq_before(qbc_store_t *s, int64_t time_ns, uint64_t *after)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    unsigned char tb[8];
    int rc;

    *after = 0;
    if (!s->has_feed_times)
        return 0;
    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    if (mdb_cursor_open(txn, s->dbi_feed_times, &cur) != 0) {
        qbc_store__read_end(s, txn);
        return QBC_ESTORE;
    }
    /* the last stamp at or before time_ns: records from its first sequence on may be later */
    put_u64be(tb, (uint64_t)(time_ns < 0 ? 0 : time_ns));
    MDB_val k = {8, tb}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == 0 && memcmp(k.mv_data, tb, 8) != 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0 && v.mv_size == 8 && get_u64be(v.mv_data) > 0)
        *after = get_u64be(v.mv_data) - 1;
    mdb_cursor_close(cur);
    qbc_store__read_end(s, txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : QBC_ESTORE;
}
