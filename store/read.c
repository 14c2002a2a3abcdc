/*
 * read.c — short read-only transactions for stats and inspection.
 *
 * Each call holds one read transaction for its own duration only; scan callbacks
 * get pointers into the map that are valid until they return (copy what you keep).
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "store_internal.h"

static uint64_t entries(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_stat st;
    return mdb_stat(txn, dbi, &st) == 0 ? st.ms_entries : 0;
}

uint64_t qbc_store_feed_pruned(qbc_store_t *s)
{
    MDB_txn *txn;
    if (qbc_store__read_begin(s, &txn) != 0)
        return 0;
    uint64_t p = qbc_store__meta_u64(txn, s->dbi_meta, "feed_pruned");
    qbc_store__read_end(s, txn);
    return p;
}

int qbc_store_webhooks_refused(qbc_store_t *s)
{
    return __atomic_load_n(&s->j_stuck, __ATOMIC_ACQUIRE);
}

static int64_t pending_oldest(qbc_store_t *s, MDB_txn *txn);

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
    MDB_cursor *cur;
    out->event_ids = entries(txn, s->dbi_event_ids);
    out->entities = entries(txn, s->dbi_entities);
    out->feed_records = entries(txn, s->dbi_feed);
    out->dead_letters = entries(txn, s->dbi_dead);
    out->realms = entries(txn, s->dbi_realms);
    if (mdb_cursor_open(txn, s->dbi_feed, &cur) == 0) {
        MDB_val k, v;
        if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8)
            out->last_feed_seq = get_u64be(k.mv_data);
        mdb_cursor_close(cur);
    }
    if (mdb_cursor_open(txn, s->dbi_inbox, &cur) == 0) {
        MDB_val k, v;
        qbc_inbox_record_t rec;
        if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8)
            out->last_inbox_seq = get_u64be(k.mv_data);
        if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 && k.mv_size == 8 &&
            qbc_store__inbox_decode(get_u64be(k.mv_data), v.mv_data, v.mv_size, &rec) == 0)
            out->inbox_oldest_ns = rec.received_ns;
        mdb_cursor_close(cur);
    }
    out->pending_oldest_ns = pending_oldest(s, txn);
    /* retention may have removed every body: the high-water mark still knows the last sequence */
    uint64_t mark = qbc_store__meta_u64(txn, s->dbi_meta, "inbox_seq");
    if (mark > out->last_inbox_seq)
        out->last_inbox_seq = mark;
    out->feed_pruned_through = qbc_store__meta_u64(txn, s->dbi_meta, "feed_pruned");
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &est);
    qbc_store__read_end(s, txn);

    out->used_bytes = (uint64_t)(info.me_last_pgno + 1) * est.ms_psize;
    out->map_bytes = info.me_mapsize;
    out->commits = __atomic_load_n(&s->st_commits, __ATOMIC_RELAXED);
    out->commit_failures = __atomic_load_n(&s->st_commit_failures, __ATOMIC_RELAXED);
    out->jobs_committed = __atomic_load_n(&s->st_jobs, __ATOMIC_RELAXED);
    out->map_growths = __atomic_load_n(&s->st_growths, __ATOMIC_RELAXED);
    out->pruned_inbox = __atomic_load_n(&s->st_pruned_inbox, __ATOMIC_RELAXED);
    out->pruned_event_ids = __atomic_load_n(&s->st_pruned_ids, __ATOMIC_RELAXED);
    out->pruned_feed = __atomic_load_n(&s->st_pruned_feed, __ATOMIC_RELAXED);
    out->commit_ns_sum = __atomic_load_n(&s->st_commit_ns, __ATOMIC_RELAXED);
    for (int i = 0; i < 8; i++)
        out->batch_hist[i] = __atomic_load_n(&s->st_batch_hist[i], __ATOMIC_RELAXED);
    if (!s->readonly) {
        out->journal_commits = __atomic_load_n(&s->st_jcommits, __ATOMIC_RELAXED);
        out->journal_commit_ns_sum = __atomic_load_n(&s->st_jcommit_ns, __ATOMIC_RELAXED);
        out->journal_webhooks = __atomic_load_n(&s->st_jwebhooks, __ATOMIC_RELAXED);
        for (int i = 0; i < 8; i++)
            out->journal_batch_hist[i] = __atomic_load_n(&s->st_jbatch_hist[i], __ATOMIC_RELAXED);
        /* the head belongs to the ingest thread: read it as a relaxed atomic, a figure only */
        uint64_t head = __atomic_load_n(&s->j_head_pos, __ATOMIC_RELAXED);
        uint64_t applied = __atomic_load_n(&s->j_applied_pos, __ATOMIC_RELAXED);
        out->journal_unapplied_bytes = head > applied ? head - applied : 0;
        out->journal_size = s->jsize;
        /*
         * bodies acked from the journal but not yet applied count as held: the
         * snapshot above is older than this load, and inbox seqs are contiguous
         */
        uint64_t acked = __atomic_load_n(&s->acked_inbox, __ATOMIC_ACQUIRE);
        if (acked > out->last_inbox_seq) {
            out->inbox_depth += acked - out->last_inbox_seq;
            out->last_inbox_seq = acked;
        }
    }
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

/*
 * when the oldest pending notice was first received: the body of the lowest first_seq,
 * or QBO's lastUpdated for a notice whose body retention removed (or that no webhook
 * made). One pass over the pending notices: they are few unless a realm is stuck, and then
 * this is the figure that says so.
 */
static int64_t pending_oldest(qbc_store_t *s, MDB_txn *txn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t min_seq = UINT64_MAX;
    int64_t min_seq_updated = 0, oldest = 0;
    int op = MDB_FIRST;

    if (mdb_cursor_open(txn, s->dbi_pending, &cur) != 0)
        return 0;
    while (mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op) == 0) {
        qbc_pending_rec_t rec;
        op = MDB_NEXT;
        if (qbc_store__pending_decode(v.mv_data, v.mv_size, &rec) != 0)
            continue;
        if (rec.first_seq != 0 && rec.first_seq < min_seq) {
            min_seq = rec.first_seq;
            min_seq_updated = rec.updated_ns;
        } else if (rec.first_seq == 0 && rec.updated_ns > 0 && (oldest == 0 || rec.updated_ns < oldest)) {
            oldest = rec.updated_ns;
        }
    }
    mdb_cursor_close(cur);
    if (min_seq != UINT64_MAX) {
        unsigned char key[8];
        qbc_inbox_record_t body;
        int64_t t = min_seq_updated;
        put_u64be(key, min_seq);
        k.mv_size = sizeof(key);
        k.mv_data = key;
        if (mdb_get(txn, s->dbi_inbox, &k, &v) == 0 &&
            qbc_store__inbox_decode(min_seq, v.mv_data, v.mv_size, &body) == 0)
            t = body.received_ns;
        if (t > 0 && (oldest == 0 || t < oldest))
            oldest = t;
    }
    return oldest;
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
        p.merged_from = rec.merge_role == PENDING_MERGED_FROM ? rec.merge_peer : "";
        p.merged_into = rec.merge_role == PENDING_MERGED_INTO ? rec.merge_peer : "";
        if (cb(&p, ctx) != 0)
            break;
    }
    mdb_cursor_close(cur);
    qbc_store__read_end(s, txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : QBC_ESTORE;
}

/* ================================ entities ================================ */

int qbc_store_entity_get(qbc_store_t *s, const char *realm, const char *entity, const char *id, qbc_entity_rec_t *out)
{
    char kbuf[KEY_BUF_SIZE];
    MDB_txn *txn;
    MDB_val k, v;
    int rc;

    memset(out, 0, sizeof(*out));
    if (strlen(realm) >= QBC_REALM_MAX || strlen(entity) >= QBC_ENTITY_MAX || strlen(id) >= QBC_ID_MAX)
        return QBC_ENOTFOUND;
    k.mv_size = qbc_store__pending_key(realm, entity, id, kbuf);
    k.mv_data = kbuf;
    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    rc = mdb_get(txn, s->dbi_entities, &k, &v);
    if (rc == 0 && qbc_store__entity_decode(v.mv_data, v.mv_size, out) == 0) {
        if (out->data != NULL) {
            char *copy = qbc_alloc(out->data_len + 1); /* the map's copy ends with the transaction */
            memcpy(copy, out->data, out->data_len);
            copy[out->data_len] = '\0';
            out->data = copy;
        }
    } else {
        memset(out, 0, sizeof(*out));
        rc = rc == MDB_NOTFOUND || rc == 0 ? QBC_ENOTFOUND : QBC_ESTORE;
    }
    qbc_store__read_end(s, txn);
    return rc;
}

void qbc_entity_rec_clear(qbc_entity_rec_t *rec)
{
    free(rec->data);
    rec->data = NULL;
}

int qbc_store_entity_scan(qbc_store_t *s, const char *realm, qbc_entity_scan_cb cb, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t plen = realm != NULL ? strlen(realm) + 1 : 0;
    int rc, op = MDB_FIRST;

    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    if (mdb_cursor_open(txn, s->dbi_entities, &cur) != 0) {
        qbc_store__read_end(s, txn);
        return QBC_ESTORE;
    }
    if (realm != NULL) {
        k.mv_size = plen;
        k.mv_data = (void *)realm;
        op = MDB_SET_RANGE;
    }
    while ((rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)) == 0) {
        char buf[KEY_BUF_SIZE + 1];
        const char *r, *e, *id;
        qbc_entity_rec_t rec;
        op = MDB_NEXT;
        if (realm != NULL && (k.mv_size < plen || memcmp(k.mv_data, realm, plen) != 0))
            break;
        if (qbc_store__pending_key_split(k.mv_data, k.mv_size, buf, sizeof(buf), &r, &e, &id) != 0 ||
            qbc_store__entity_decode(v.mv_data, v.mv_size, &rec) != 0)
            continue;
        if (cb(r, e, id, &rec, ctx) != 0)
            break;
    }
    mdb_cursor_close(cur);
    qbc_store__read_end(s, txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : QBC_ESTORE;
}

int qbc_store_entity_list(qbc_store_t *s, const char *realm, const char *entity, const char *after_id, size_t limit,
                          qbc_entity_scan_cb cb, void *ctx, int *out_more)
{
    char start[KEY_BUF_SIZE];
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t rl = strlen(realm), el = strlen(entity), il = after_id != NULL ? strlen(after_id) : 0;
    size_t plen = rl + el + 2; /* "realm\0entity\0": realm "1" is not realm "12", Bill is not BillPayment */
    size_t passed = 0;
    int rc, more = 0;

    if (out_more != NULL)
        *out_more = 0;
    if (rl == 0 || rl >= QBC_REALM_MAX || el == 0 || el >= QBC_ENTITY_MAX || il >= QBC_ID_MAX)
        return QBC_EINVAL;
    if (limit == 0)
        return 0;
    k.mv_size = qbc_store__pending_key(realm, entity, il > 0 ? after_id : "", start);
    k.mv_data = start;
    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    if (mdb_cursor_open(txn, s->dbi_entities, &cur) != 0) {
        qbc_store__read_end(s, txn);
        return QBC_ESTORE;
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    /* after_id is exclusive: the first key at or after it is skipped when it is that very key */
    if (rc == 0 && il > 0 && k.mv_size == plen + il && memcmp(k.mv_data, start, plen + il) == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char buf[KEY_BUF_SIZE + 1];
        const char *r, *e, *id;
        qbc_entity_rec_t rec;
        if (k.mv_size < plen || memcmp(k.mv_data, start, plen) != 0)
            break; /* past the prefix: another entity type or realm */
        if (passed == limit) {
            more = 1;
            break;
        }
        if (qbc_store__pending_key_split(k.mv_data, k.mv_size, buf, sizeof(buf), &r, &e, &id) != 0 ||
            qbc_store__entity_decode(v.mv_data, v.mv_size, &rec) != 0)
            continue;
        passed++;
        if (cb(r, e, id, &rec, ctx) != 0) {
            /* stopped early: is there anything after this one? */
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            more = rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, start, plen) == 0;
            break;
        }
    }
    mdb_cursor_close(cur);
    qbc_store__read_end(s, txn);
    if (out_more != NULL)
        *out_more = more;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : QBC_ESTORE;
}

/* ================================== feed ================================== */

int qbc_store_feed_scan(qbc_store_t *s, uint64_t after, size_t limit, const char *realm, const char *entity,
                        qbc_feed_scan_cb cb, void *ctx, uint64_t *out_last)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    unsigned char kb[8];
    MDB_val k = {8, kb}, v;
    size_t matched = 0, examined = 0;
    int rc, op = MDB_SET_RANGE;

    if (out_last != NULL)
        *out_last = after;
    if (limit == 0)
        return 0;
    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    /* in the same snapshot as the records: a prune is either wholly seen or not at all */
    if (after < qbc_store__meta_u64(txn, s->dbi_meta, "feed_pruned")) {
        qbc_store__read_end(s, txn);
        return QBC_EGONE;
    }
    if (mdb_cursor_open(txn, s->dbi_feed, &cur) != 0) {
        qbc_store__read_end(s, txn);
        return QBC_ESTORE;
    }
    put_u64be(kb, after + 1);
    while ((rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)) == 0) {
        char rbuf[QBC_REALM_MAX], ebuf[QBC_ENTITY_MAX];
        qbc_feed_rec_t rec;
        op = MDB_NEXT;
        if (k.mv_size != 8 || qbc_store__feed_decode(get_u64be(k.mv_data), v.mv_data, v.mv_size, rbuf, ebuf, &rec) != 0)
            continue;
        if (out_last != NULL)
            *out_last = rec.seq;
        if ((realm != NULL && strcmp(realm, rec.realm) != 0) || (entity != NULL && strcmp(entity, rec.entity) != 0)) {
            /* a rare filter must not hold one read transaction over the whole feed: stop, and
             * let out_last tell the reader where to go on */
            if (++examined >= QBC_FEED_SCAN_MAX_EXAMINE)
                break;
            continue;
        }
        if (cb(&rec, ctx) != 0 || ++matched >= limit)
            break;
    }
    mdb_cursor_close(cur);
    qbc_store__read_end(s, txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : QBC_ESTORE;
}

/* ================================= realms ================================= */

int qbc_store_realm_get(qbc_store_t *s, const char *realm, qbc_realm_t *out)
{
    MDB_txn *txn;
    MDB_val k = {strlen(realm), (void *)realm}, v;
    int rc;

    if (k.mv_size == 0 || k.mv_size >= QBC_REALM_MAX)
        return QBC_ENOTFOUND;
    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    rc = mdb_get(txn, s->dbi_realms, &k, &v);
    if (rc == 0)
        rc = qbc_store__realm_decode(realm, v.mv_data, v.mv_size, out);
    else
        rc = rc == MDB_NOTFOUND ? QBC_ENOTFOUND : QBC_ESTORE;
    qbc_store__read_end(s, txn);
    return rc;
}

int qbc_store_realm_scan(qbc_store_t *s, qbc_realm_scan_cb cb, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v, tv;
    int rc, op = MDB_FIRST;

    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    if (mdb_cursor_open(txn, s->dbi_realms, &cur) != 0) {
        qbc_store__read_end(s, txn);
        return QBC_ESTORE;
    }
    while ((rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)) == 0) {
        char name[QBC_REALM_MAX];
        qbc_realm_t r;
        op = MDB_NEXT;
        if (k.mv_size == 0 || k.mv_size >= sizeof(name))
            continue;
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        if (qbc_store__realm_decode(name, v.mv_data, v.mv_size, &r) != 0)
            continue;
        int has_tokens = mdb_get(txn, s->dbi_tokens, &k, &tv) == 0;
        if (cb(&r, has_tokens, ctx) != 0)
            break;
    }
    mdb_cursor_close(cur);
    qbc_store__read_end(s, txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : QBC_ESTORE;
}

int qbc_store_tokens_get(qbc_store_t *s, const char *realm, qbc_tokens_t *out)
{
    MDB_txn *txn;
    MDB_val k = {strlen(realm), (void *)realm}, v;
    unsigned char *sealed = NULL, *plain = NULL;
    size_t slen = 0, plen = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!s->has_key)
        return QBC_EAUTH;
    if (k.mv_size == 0 || k.mv_size >= QBC_REALM_MAX)
        return QBC_ENOTFOUND;
    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    rc = mdb_get(txn, s->dbi_tokens, &k, &v);
    if (rc == 0 && v.mv_size <= QBC_TOKENS_PLAIN_MAX + QBC_SEAL_OVERHEAD) {
        slen = v.mv_size;
        sealed = qbc_alloc(slen);
        memcpy(sealed, v.mv_data, slen);
    }
    qbc_store__read_end(s, txn);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? QBC_ENOTFOUND : QBC_ESTORE;
    if (sealed == NULL)
        return QBC_EMALFORMED;
    plain = qbc_alloc(slen);
    rc = qbc_store__open_sealed(s->master_key, realm, sealed, slen, plain, &plen);
    if (rc == 0)
        rc = qbc_store__tokens_decode(plain, plen, out);
    OPENSSL_cleanse(plain, slen);
    free(plain);
    free(sealed);
    if (rc == QBC_EAUTH)
        qbc_log(QBC_LOG_ERROR, "store", "tokens of realm %s do not decrypt: wrong master key, or altered", realm);
    return rc;
}

/* ============================== dead letters ============================== */

int qbc_store_dead_scan(qbc_store_t *s, qbc_dead_scan_cb cb, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, op = MDB_FIRST;

    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    if (mdb_cursor_open(txn, s->dbi_dead, &cur) != 0) {
        qbc_store__read_end(s, txn);
        return QBC_ESTORE;
    }
    while ((rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)) == 0) {
        const unsigned char *p = v.mv_data;
        char kbuf[KEY_BUF_SIZE + 1], err[512];
        qbc_pending_rec_t rec;
        qbc_dead_t d;
        op = MDB_NEXT;
        if (k.mv_size != 8 || v.mv_size < 15 + PENDING_VALUE_SIZE || p[0] != 1 ||
            qbc_store__pending_decode(p + 1, PENDING_VALUE_SIZE, &rec) != 0)
            continue;
        size_t klen = (size_t)p[13 + PENDING_VALUE_SIZE] << 8 | p[14 + PENDING_VALUE_SIZE];
        if (v.mv_size < 15 + PENDING_VALUE_SIZE + klen ||
            qbc_store__pending_key_split(p + 15 + PENDING_VALUE_SIZE, klen, kbuf, sizeof(kbuf), &d.realm, &d.entity,
                                         &d.entity_id) != 0)
            continue;
        size_t elen = v.mv_size - 15 - PENDING_VALUE_SIZE - klen;
        if (elen >= sizeof(err))
            elen = sizeof(err) - 1;
        memcpy(err, p + 15 + PENDING_VALUE_SIZE + klen, elen);
        err[elen] = '\0';
        d.id = get_u64be(k.mv_data);
        d.error = err;
        d.attempts = get_u32be(p + 1 + PENDING_VALUE_SIZE);
        d.died_ns = (int64_t)get_u64be(p + 5 + PENDING_VALUE_SIZE);
        d.last_op = (qbc_op_t)rec.last_op;
        if (cb(&d, ctx) != 0)
            break;
    }
    mdb_cursor_close(cur);
    qbc_store__read_end(s, txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : QBC_ESTORE;
}

int qbc_store_backfill_get(qbc_store_t *s, uint64_t id, qbc_backfill_t *out)
{
    MDB_txn *txn;
    unsigned char kb[8];
    MDB_val k = {8, kb}, v;
    int rc;

    if (!s->has_jobs)
        return QBC_ENOTFOUND;
    put_u64be(kb, id);
    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    rc = mdb_get(txn, s->dbi_jobs, &k, &v);
    if (rc == 0)
        rc = qbc_store__backfill_decode(id, v.mv_data, v.mv_size, out);
    else
        rc = rc == MDB_NOTFOUND ? QBC_ENOTFOUND : QBC_ESTORE;
    qbc_store__read_end(s, txn);
    return rc;
}

int qbc_store_backfill_scan(qbc_store_t *s, qbc_backfill_scan_cb cb, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, op = MDB_FIRST;

    if (!s->has_jobs)
        return 0;
    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    if (mdb_cursor_open(txn, s->dbi_jobs, &cur) != 0) {
        qbc_store__read_end(s, txn);
        return QBC_ESTORE;
    }
    while ((rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)) == 0) {
        qbc_backfill_t b;
        op = MDB_NEXT;
        if (k.mv_size != 8 || qbc_store__backfill_decode(get_u64be(k.mv_data), v.mv_data, v.mv_size, &b) != 0)
            continue;
        if (cb(&b, ctx) != 0)
            break;
    }
    mdb_cursor_close(cur);
    qbc_store__read_end(s, txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : QBC_ESTORE;
}

int qbc_store_seal(qbc_store_t *s, const char *aad, const void *plain, size_t len, unsigned char *out, size_t *out_len)
{
    if (!s->has_key)
        return QBC_ECRYPTO;
    return qbc_store__seal(s->master_key, aad, plain, len, out, out_len) == 0 ? 0 : QBC_ECRYPTO;
}

int qbc_store_unseal(qbc_store_t *s, const char *aad, const unsigned char *in, size_t in_len, unsigned char *plain,
                     size_t *plain_len)
{
    if (!s->has_key)
        return QBC_EAUTH;
    return qbc_store__open_sealed(s->master_key, aad, in, in_len, plain, plain_len);
}
