/*
 * read.c — short read-only transactions for stats and inspection.
 *
 * Each call holds one read transaction for its own duration only; scan callbacks
 * get pointers into the map that are valid until they return (copy what you keep).
 */
#include <string.h>
#include "store_internal.h"

static uint64_t entries(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_stat st;
    return mdb_stat(txn, dbi, &st) == 0 ? st.ms_entries : 0;
}

int qbc_store_stats(qbc_store_t *s, qbc_store_stats_t *out)
{
    MDB_txn *txn;
    MDB_envinfo info;
    MDB_stat est;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    out->inbox_depth = entries(txn, s->dbi_inbox);
    out->quarantined = entries(txn, s->dbi_quarantine);
    out->pending = entries(txn, s->dbi_pending);
    out->event_ids = entries(txn, s->dbi_event_ids);
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, s->dbi_inbox, &cur) == 0) {
        MDB_val k, v;
        if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8)
            out->last_inbox_seq = get_u64be(k.mv_data);
        mdb_cursor_close(cur);
    }
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &est);
    qbc_store__read_end(s, txn);

    out->used_bytes = (uint64_t)(info.me_last_pgno + 1) * est.ms_psize;
    out->map_bytes = info.me_mapsize;
    out->commits = __atomic_load_n(&s->st_commits, __ATOMIC_RELAXED);
    out->commit_failures = __atomic_load_n(&s->st_commit_failures, __ATOMIC_RELAXED);
    out->jobs_committed = __atomic_load_n(&s->st_jobs, __ATOMIC_RELAXED);
    out->map_growths = __atomic_load_n(&s->st_growths, __ATOMIC_RELAXED);
    out->commit_ns_sum = __atomic_load_n(&s->st_commit_ns, __ATOMIC_RELAXED);
    for (int i = 0; i < 8; i++)
        out->batch_hist[i] = __atomic_load_n(&s->st_batch_hist[i], __ATOMIC_RELAXED);
    return 0;
}

int qbc_store_inbox_scan(qbc_store_t *s, uint64_t after, qbc_inbox_scan_cb cb, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    unsigned char kb[8];
    MDB_val k = {8, kb}, v;
    int rc, op = MDB_SET_RANGE;

    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, s->dbi_inbox, &cur)) != 0) {
        qbc_store__read_end(s, txn);
        return QBC_ESTORE;
    }
    put_u64be(kb, after + 1);
    while ((rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)) == 0) {
        qbc_inbox_record_t rec;
        op = MDB_NEXT;
        if (k.mv_size != 8 || qbc_store__inbox_decode(get_u64be(k.mv_data), v.mv_data, v.mv_size, &rec) != 0)
            continue;
        if (rec.flags & QBC_INBOX_QUARANTINED) {
            MDB_val qv;
            static __thread char reason[512];
            if (mdb_get(txn, s->dbi_quarantine, &k, &qv) == 0) {
                size_t n = qv.mv_size < sizeof(reason) - 1 ? qv.mv_size : sizeof(reason) - 1;
                memcpy(reason, qv.mv_data, n);
                reason[n] = '\0';
                rec.quarantine_reason = reason;
            }
        }
        if (cb(&rec, ctx) != 0)
            break;
    }
    mdb_cursor_close(cur);
    qbc_store__read_end(s, txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : QBC_ESTORE;
}

int qbc_store_pending_scan(qbc_store_t *s, const char *realm, qbc_pending_scan_cb cb, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t plen = realm != NULL ? strlen(realm) + 1 : 0; /* the realm and its NUL separator */
    int rc, op = MDB_FIRST;

    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, s->dbi_pending, &cur)) != 0) {
        qbc_store__read_end(s, txn);
        return QBC_ESTORE;
    }
    if (realm != NULL) {
        k.mv_size = plen;
        k.mv_data = (void *)realm; /* includes the NUL: realm "1" does not match realm "12" */
        op = MDB_SET_RANGE;
    }
    while ((rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)) == 0) {
        char buf[QBC_REALM_MAX + QBC_ENTITY_MAX + QBC_ID_MAX + 1];
        qbc_pending_rec_t rec;
        qbc_pending_t p;
        op = MDB_NEXT;
        if (realm != NULL && (k.mv_size < plen || memcmp(k.mv_data, realm, plen) != 0))
            break;
        if (qbc_store__pending_key_split(k.mv_data, k.mv_size, buf, sizeof(buf), &p.realm, &p.entity, &p.id) != 0 ||
            qbc_store__pending_decode(v.mv_data, v.mv_size, &rec) != 0)
            continue;
        p.op_mask = rec.op_mask;
        p.last_op = (qbc_op_t)rec.last_op;
        p.count = rec.count;
        p.first_seq = rec.first_seq;
        p.last_seq = rec.last_seq;
        p.updated_ns = rec.updated_ns;
        if (cb(&p, ctx) != 0)
            break;
    }
    mdb_cursor_close(cur);
    qbc_store__read_end(s, txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : QBC_ESTORE;
}
