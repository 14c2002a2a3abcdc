/*
 * retention.c — pruning old raw webhook bodies and the CloudEvents ids they brought.
 *
 * The inbox keeps every acked body as it came (an audit trail and the source of the
 * pending notices, which live on in their own database). Without a bound it grows
 * with every webhook until the map is full and webhooks get 503. With a retention
 * set, the writer prunes, now and then, in small transactions between other jobs:
 *   - inbox bodies (and their quarantine notes) received longer ago than the
 *     retention, oldest first; the inbox's high-water mark in meta keeps their
 *     sequences from ever being handed out again;
 *   - CloudEvents ids whose body is gone: a retry that late is stored again, and its
 *     notices are harmless (the reconciler's version dedupe keeps the feed exact).
 * The ids are keyed by id, not by age, so they are swept in key order, a slice per
 * transaction, resuming where the last slice stopped; a sweep runs only after the
 * inbox's floor moved.
 *
 * With a feed retention set, feed records committed longer ago than it go too, oldest
 * first, 2,000 a transaction. Feed records carry no commit time, so the writer keeps a
 * small index beside them (feed_times: a wall-clock time -> the first sequence committed
 * then, one entry a step); every record before the last entry older than the cutoff was
 * committed before the cutoff. "feed_pruned" in meta says up to where the feed is gone,
 * and feed reads behind it answer QBC_EGONE: a reader is told it missed changes, never
 * silently handed a gap.
 *
 * Pending notices and entity versions are never pruned.
 */
#include <stdlib.h>
#include <string.h>
#include "store_internal.h"

#define PRUNE_INBOX_MAX 2000 /* bodies removed in one transaction */
#define PRUNE_IDS_MAX 4096   /* CloudEvents ids looked at in one transaction */
#define PRUNE_FEED_MAX 2000  /* feed records removed in one transaction */

typedef struct {
    qbc_store_job_t job;
    qbc_store_t *s;
    /* what the transaction did; adopted by the store only if it commits */
    uint64_t inbox_removed, ids_removed, floor;
    uint64_t feed_removed;
    int more;                                 /* a limit was hit: run again soon */
    int swept, sweep_started, sweep_done;     /* a slice of the id sweep ran; it began the sweep; it ended it */
    unsigned char next_key[QBC_EVENT_ID_MAX]; /* where the id sweep resumes */
    size_t next_len;
} prune_job_t;

/* removes bodies received before cutoff_ns, oldest first; sets p->floor to the first seq kept */
static int prune_inbox(qbc_store_t *s, MDB_txn *txn, int64_t cutoff_ns, prune_job_t *p)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t last = 0;
    int rc;

    if ((rc = mdb_cursor_open(txn, s->dbi_inbox, &cur)) != 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        qbc_inbox_record_t rec;
        uint64_t seq = k.mv_size == 8 ? get_u64be(k.mv_data) : 0;
        /* bodies arrive in sequence order, so the first young one ends the walk */
        if (qbc_store__inbox_decode(seq, v.mv_data, v.mv_size, &rec) == 0 && rec.received_ns >= cutoff_ns) {
            p->floor = seq;
            break;
        }
        if (p->inbox_removed == PRUNE_INBOX_MAX) {
            p->floor = seq;
            p->more = 1;
            break;
        }
        if ((rec.flags & QBC_INBOX_QUARANTINED) && (rc = mdb_del(txn, s->dbi_quarantine, &k, NULL)) != 0 &&
            rc != MDB_NOTFOUND)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        last = seq;
        p->inbox_removed++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;

    uint64_t mark = qbc_store__meta_u64(txn, s->dbi_meta, "inbox_seq");
    if (rc == MDB_NOTFOUND) /* nothing left: the floor is past everything ever stored */
        p->floor = (last > mark ? last : mark) + 1;
    if (last > mark && (rc = qbc_store__meta_put_u64(txn, s->dbi_meta, "inbox_seq", last)) != 0)
        return rc;
    return 0;
}

/* one slice of the id sweep: removes ids whose body's seq is below p->floor */
static int prune_ids(qbc_store_t *s, MDB_txn *txn, prune_job_t *p)
{
    MDB_cursor *cur;
    MDB_val k, v;
    size_t looked = 0;
    int rc;

    if ((rc = mdb_cursor_open(txn, s->dbi_event_ids, &cur)) != 0)
        return rc;
    if (s->prune_key_len > 0) {
        k.mv_size = s->prune_key_len;
        k.mv_data = s->prune_key;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    while (rc == 0) {
        if (looked++ == PRUNE_IDS_MAX) {
            size_t n = k.mv_size < sizeof(p->next_key) ? k.mv_size : sizeof(p->next_key);
            memcpy(p->next_key, k.mv_data, n);
            p->next_len = n;
            p->more = 1;
            break;
        }
        if (v.mv_size == 8 && get_u64be(v.mv_data) < p->floor) {
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            p->ids_removed++;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        p->sweep_done = 1;
        rc = 0;
    }
    return rc;
}

/* the last feed_times entry at or before cutoff_ns: *seq_out, its time *time_out; MDB_NOTFOUND if none */
static int feed_bound(qbc_store_t *s, MDB_txn *txn, int64_t cutoff_ns, uint64_t *seq_out, int64_t *time_out)
{
    MDB_cursor *cur;
    unsigned char kb[8];
    MDB_val k = {8, kb}, v;
    int rc;

    if ((rc = mdb_cursor_open(txn, s->dbi_feed_times, &cur)) != 0)
        return rc;
    put_u64be(kb, (uint64_t)cutoff_ns + 1);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);                 /* the first entry after the cutoff ... */
    rc = mdb_cursor_get(cur, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST); /* ... and the one before it */
    if (rc == 0 && (k.mv_size != 8 || v.mv_size != 8))
        rc = MDB_CORRUPTED;
    if (rc == 0) {
        *time_out = (int64_t)get_u64be(k.mv_data);
        *seq_out = get_u64be(v.mv_data);
    }
    mdb_cursor_close(cur);
    return rc;
}

/* removes feed records committed before cutoff_ns, oldest first, and the index entries behind them */
static int prune_feed(qbc_store_t *s, MDB_txn *txn, int64_t cutoff_ns, prune_job_t *p)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t bound, last = 0;
    int64_t bound_time;
    int rc = feed_bound(s, txn, cutoff_ns, &bound, &bound_time);

    if (rc != 0)
        return rc == MDB_NOTFOUND ? 0 : rc;
    if ((rc = mdb_cursor_open(txn, s->dbi_feed, &cur)) != 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 && k.mv_size == 8 && get_u64be(k.mv_data) < bound) {
        if (p->feed_removed == PRUNE_FEED_MAX) {
            p->more = 1;
            break;
        }
        last = get_u64be(k.mv_data);
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        p->feed_removed++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    if (last > qbc_store__meta_u64(txn, s->dbi_meta, "feed_pruned") &&
        (rc = qbc_store__meta_put_u64(txn, s->dbi_meta, "feed_pruned", last)) != 0)
        return rc;
    if (p->more)
        return 0;
    /* everything before the bound is gone: so are the index entries before its own */
    if ((rc = mdb_cursor_open(txn, s->dbi_feed_times, &cur)) != 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 && k.mv_size == 8 && (int64_t)get_u64be(k.mv_data) < bound_time) {
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int qbc_store__prune(qbc_store_t *s, MDB_txn *txn, qbc_store_job_t *job)
{
    prune_job_t *p = (prune_job_t *)job;
    int rc;

    p->inbox_removed = p->ids_removed = p->feed_removed = 0;
    p->more = p->swept = p->sweep_started = p->sweep_done = 0;
    p->next_len = 0;
    if (s->feed_retention_ns > 0 && s->has_feed_times &&
        (rc = prune_feed(s, txn, qbc_now_ns() - s->feed_retention_ns, p)) != 0)
        return rc;
    if (s->retention_ns <= 0)
        return 0;
    if ((rc = prune_inbox(s, txn, qbc_now_ns() - s->retention_ns, p)) != 0)
        return rc;
    /* sweep the ids only while a sweep is under way, or if bodies went since the last complete one */
    if (s->prune_key_len > 0 || p->floor > s->prune_swept_floor) {
        p->swept = 1;
        p->sweep_started = s->prune_key_len == 0;
        rc = prune_ids(s, txn, p);
    }
    return rc;
}

/* writer thread, after the prune transaction committed (or failed) */
static void prune_done(qbc_store_job_t *job)
{
    prune_job_t *p = (prune_job_t *)job;
    qbc_store_t *s = p->s;
    int64_t now = qbc_mono_ns();

    s->prune_queued = 0;
    if (job->result != 0) {
        qbc_log(QBC_LOG_WARN, "store", "pruning old webhook bodies failed: %s; trying again later",
                qbc_strerror(job->result));
        s->prune_due_ns = now + s->prune_interval_ns;
        free(p);
        return;
    }
    __atomic_add_fetch(&s->st_pruned_inbox, p->inbox_removed, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->st_pruned_ids, p->ids_removed, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->st_pruned_feed, p->feed_removed, __ATOMIC_RELAXED);
    if (p->swept) {
        /*
         * Later slices use a higher floor than the first, but the keys behind them were
         * looked at with a lower one: a finished sweep vouches only for its first floor.
         */
        if (p->sweep_started)
            s->prune_sweep_floor = p->floor;
        if (p->sweep_done)
            s->prune_swept_floor = s->prune_sweep_floor;
        memcpy(s->prune_key, p->next_key, p->next_len);
        s->prune_key_len = p->sweep_done ? 0 : p->next_len;
    }
    if (p->inbox_removed > 0 || p->feed_removed > 0)
        qbc_log(QBC_LOG_DEBUG, "store", "pruned %llu webhook bodies, %llu CloudEvents ids, %llu feed records",
                (unsigned long long)p->inbox_removed, (unsigned long long)p->ids_removed,
                (unsigned long long)p->feed_removed);
    s->prune_due_ns = p->more ? now : now + s->prune_interval_ns;
    free(p);
}

int qbc_store__prune_on(const qbc_store_t *s)
{
    return s->retention_ns > 0 || s->feed_retention_ns > 0;
}

qbc_store_job_t *qbc_store__prune_job(qbc_store_t *s, int64_t now_mono_ns)
{
    if (!qbc_store__prune_on(s) || s->prune_queued || now_mono_ns < s->prune_due_ns)
        return NULL;
    prune_job_t *p = qbc_calloc(1, sizeof(*p));
    p->s = s;
    p->job.kind = (qbc_job_kind_t)QBC_JOB_PRUNE;
    p->job.on_commit = prune_done;
    p->job.data = p;
    s->prune_queued = 1;
    return &p->job;
}
