/*
 * writer.c — the one thread that writes: group commit.
 *
 * Submitters (the ingress loop, the reconciler, the store's ingest thread with its
 * journaled webhook batches as QBC_JOB_APPLY jobs) queue jobs. The writer takes
 * everything queued (up to batch_max), applies it in one write transaction, commits
 * once (one fsync pair for the whole batch), and only then calls every job's
 * on_commit. While a commit is in flight new jobs pile up in the queue and form the
 * next batch, so the batch size adapts to load without any timer.
 *
 * Failure isolation: if a batch fails for any reason other than a full map that can
 * still grow, each of its jobs is retried in a transaction of its own, so one bad
 * job (or one too big for what is left of the map) fails alone. A job that fails
 * leaves no trace in the store; its submitter must not ack it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include "store_internal.h"

const unsigned qbc_store_batch_bounds[7] = {1, 2, 4, 8, 16, 64, 256};

unsigned qbc_store__batch_bucket(size_t n)
{
    unsigned b = 0;
    while (b < 7 && n > qbc_store_batch_bounds[b])
        b++;
    return b;
}

/* what one write transaction assigns and changes; adopted by the store only if it commits */
typedef struct {
    uint64_t feed, dead;
    qbc_commit_note_t note;
    uint64_t feed_first; /* QBC_JOB_FEED_APPEND: the first sequence appended (0: none, or numbered here) */
    int feed_reset;      /* QBC_JOB_FEED_APPEND: the feed was emptied for the id in feed_id */
    char feed_id[QBC_FEED_ID_LEN + 1];
} txn_ctx_t;

/*
 * folds a notice into the entity's pending record. merge_role and peer (NULL: none) link
 * a merge's two sides; a later notice without one keeps the link until the fetch retires
 * the record, so the feed record that answers it still says what was merged.
 */
static int put_pending(qbc_store_t *s, MDB_txn *txn, const char *realm, const char *entity, const char *id, qbc_op_t op,
                       int64_t updated_ns, uint64_t seq, uint8_t merge_role, const char *peer)
{
    char kbuf[QBC_REALM_MAX + QBC_ENTITY_MAX + QBC_ID_MAX];
    unsigned char vbuf[PENDING_VALUE_MAX];
    qbc_pending_rec_t rec;
    MDB_val k, v;
    int rc;

    k.mv_size = qbc_store__pending_key(realm, entity, id, kbuf);
    k.mv_data = kbuf;
    memset(&rec, 0, sizeof(rec));
    rc = mdb_get(txn, s->dbi_pending, &k, &v);
    if (rc == 0) {
        if (qbc_store__pending_decode(v.mv_data, v.mv_size, &rec) != 0)
            memset(&rec, 0, sizeof(rec)); /* unreadable: start over rather than lose the notice */
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }
    qbc_store__pending_fold(&rec, op, updated_ns, seq);
    if (merge_role != 0 && peer != NULL && peer[0] != '\0') {
        rec.merge_role = merge_role;
        snprintf(rec.merge_peer, sizeof(rec.merge_peer), "%s", peer);
    }
    v.mv_size = qbc_store__pending_encode_full(&rec, vbuf);
    v.mv_data = vbuf;
    return mdb_put(txn, s->dbi_pending, &k, &v, 0);
}

/*
 * Applies one journaled webhook, as the ingest thread decided it: the raw body under
 * its inbox sequence, its quarantine note, the CloudEvents ids it brought, and one
 * pending notice per event that is not a repeat. A Merge also leaves a Delete
 * notice for the id merged away, so the reconciler retires it.
 */
static int apply_webhook(qbc_store_t *s, MDB_txn *txn, const qbc_jwebhook_t *w, txn_ctx_t *t)
{
    unsigned char kb[8];
    int rc;

    put_u64be(kb, w->inbox_seq);
    MDB_val k = {8, kb}, v = {INBOX_HEADER_SIZE + w->body_len, NULL};
    if ((rc = mdb_put(txn, s->dbi_inbox, &k, &v, MDB_APPEND | MDB_RESERVE)) != 0)
        return rc;
    qbc_store__inbox_header(v.mv_data, w->inbox_flags, w->format, w->n_events, w->received_ns);
    if (w->body_len > 0)
        memcpy((unsigned char *)v.mv_data + INBOX_HEADER_SIZE, w->body, w->body_len);
    if (w->inbox_flags & QBC_INBOX_QUARANTINED) {
        MDB_val qv = {w->reason_len, (void *)w->reason};
        if (w->reason_len == 0)
            qv.mv_size = strlen(qv.mv_data = "unparsable");
        if ((rc = mdb_put(txn, s->dbi_quarantine, &k, &qv, MDB_APPEND)) != 0)
            return rc;
    }
    for (uint32_t i = 0; i < w->n_events; i++) {
        const qbc_event_t *e = &w->events[i];
        if (w->dup[i])
            continue;
        if (e->event_id[0] != '\0') {
            MDB_val ek = {strlen(e->event_id), (void *)e->event_id}, ev = {8, kb};
            if ((rc = mdb_put(txn, s->dbi_event_ids, &ek, &ev, 0)) != 0)
                return rc;
        }
        int merge = e->op == QBC_OP_MERGE && e->deleted_id[0] != '\0';
        if ((rc = put_pending(s, txn, e->realm, e->entity, e->id, e->op, e->updated_ns, w->inbox_seq,
                              merge ? PENDING_MERGED_FROM : 0, e->deleted_id)) != 0)
            return rc;
        if (merge && (rc = put_pending(s, txn, e->realm, e->entity, e->deleted_id, QBC_OP_DELETE, e->updated_ns,
                                       w->inbox_seq, PENDING_MERGED_INTO, e->id)) != 0)
            return rc;
        t->note.new_pending++;
    }
    return 0;
}

/* applies a QBC_JOB_APPLY job's records and moves the journal's applied point past them */
static int apply_journal(qbc_store_t *s, MDB_txn *txn, qbc_apply_job_t *job, txn_ctx_t *t)
{
    const unsigned char *p = job->buf, *end = job->buf + job->len;
    qbc_jmark_t mark = {job->last_jseq, job->end_pos, 0};
    qbc_jrec_hdr_t h;
    int rc;

    job->applied = 0;
    if (__atomic_load_n(&s->j_stuck, __ATOMIC_ACQUIRE) != 0 && !job->recovery)
        return 0; /* an earlier batch could not be applied: records go in order, so the retry applies them */
    /* records back to back; a wrap marker is a bare header, and the next record follows it here */
    for (; p < end; p += h.size) {
        qbc_store__jrec_header(p, &h);
        mark.epoch = h.epoch;
        if (h.kind != QBC_JREC_WEBHOOK)
            continue;
        qbc_jwebhook_t w;
        if (qbc_store__jwebhook_decode(p + QBC_JREC_HEADER, h.len, &w) != 0)
            return MDB_CORRUPTED;
        rc = apply_webhook(s, txn, &w, t);
        qbc_store__jwebhook_free(&w);
        if (rc != 0)
            return rc;
    }
    /* where the journal's valid records resume */
    unsigned char b[QBC_JMARK_SIZE];
    qbc_store__jmark_encode(&mark, b);
    MDB_val k = {sizeof(QBC_JMARK_KEY) - 1, QBC_JMARK_KEY}, v = {sizeof(b), b};
    if ((rc = mdb_put(txn, s->dbi_meta, &k, &v, 0)) != 0)
        return rc;
    job->applied = 1;
    return 0;
}

/* one fetched version: kept and appended to the feed only if it is newer than what we hold */
static int apply_version(qbc_store_t *s, MDB_txn *txn, const qbc_version_t *v, txn_ctx_t *t, qbc_reconcile_job_t *job)
{
    char kbuf[KEY_BUF_SIZE];
    MDB_val k = {qbc_store__pending_key(v->realm, v->entity, v->id, kbuf), kbuf};
    qbc_entity_rec_t stored;
    int have, rc = qbc_store__entity_held(s, txn, &k, &stored, &have);

    if (rc != 0)
        return rc;
    if (!qbc_store__version_newer(have ? &stored : NULL, v))
        return 0; /* a duplicate or an older version: the feed already has it, or better */
    /* what the feed says can depend on what was held; decided here, in the dedupe's transaction */
    qbc_version_t adj;
    if (v->op == QBC_OP_DELETE && have && v->sync_token[0] == '\0' && stored.sync_token[0] != '\0') {
        /* QBO's delete stub has no SyncToken: the record and tombstone carry the last version held */
        adj = *v;
        snprintf(adj.sync_token, sizeof(adj.sync_token), "%s", stored.sync_token);
        v = &adj;
    } else if (!have && v->source == QBC_SOURCE_SNAPSHOT && v->op != QBC_OP_DELETE) {
        /* first seen through a snapshot */
        adj = *v;
        adj.op = QBC_OP_SNAPSHOT;
        v = &adj;
    }

    uint64_t seq = t->feed++;
    size_t flen;
    unsigned char *rec = qbc_store__feed_render(v, seq, &flen), fk[8];
    put_u64be(fk, seq);
    MDB_val fkey = {8, fk}, fval = {flen, rec};
    rc = mdb_put(txn, s->dbi_feed, &fkey, &fval, MDB_APPEND);
    free(rec);
    if (rc != 0)
        return rc;
    if ((rc = qbc_store__entity_put(s, txn, &k, v, seq)) != 0)
        return rc;
    job->n_feed++;
    job->last_feed_seq = seq;
    t->note.feed_appended++;
    return 0;
}

/*
 * removes a pending notice if it is still the one the caller read (same last_seq).
 * If a notice arrived meanwhile, it stays, and the entity is fetched again: a change
 * that lands during a fetch is never dropped. Returns 1 if removed, 0 if not, or an
 * LMDB error (negative LMDB codes are all below -30000, so no clash).
 */
static int retire_notice(qbc_store_t *s, MDB_txn *txn, const qbc_notice_ref_t *r, qbc_pending_rec_t *out)
{
    char kbuf[KEY_BUF_SIZE];
    MDB_val k = {qbc_store__pending_key(r->realm, r->entity, r->id, kbuf), kbuf}, v;
    qbc_pending_rec_t rec;
    int rc;

    if ((rc = mdb_get(txn, s->dbi_pending, &k, &v)) != 0)
        return rc == MDB_NOTFOUND ? 0 : rc;
    if (qbc_store__pending_decode(v.mv_data, v.mv_size, &rec) != 0 || rec.last_seq != r->last_seq)
        return 0;
    if (out != NULL)
        *out = rec;
    if ((rc = mdb_del(txn, s->dbi_pending, &k, NULL)) != 0)
        return rc;
    return 1;
}

/* reads a realm's state for a partial update; MDB_NOTFOUND when it has none */
static int realm_read(qbc_store_t *s, MDB_txn *txn, const char *realm, qbc_realm_t *out)
{
    MDB_val k = {strlen(realm), (void *)realm}, v;
    int rc;

    if (k.mv_size == 0 || k.mv_size >= QBC_REALM_MAX)
        return MDB_NOTFOUND;
    if ((rc = mdb_get(txn, s->dbi_realms, &k, &v)) != 0)
        return rc;
    return qbc_store__realm_decode(realm, v.mv_data, v.mv_size, out) == 0 ? 0 : MDB_CORRUPTED;
}

static int realm_put(qbc_store_t *s, MDB_txn *txn, const char *realm, const qbc_realm_t *st)
{
    char *json = qbc_store__realm_encode(st);
    MDB_val k = {strlen(realm), (void *)realm}, v = {strlen(json), json};
    int rc = mdb_put(txn, s->dbi_realms, &k, &v, 0);
    free(json);
    return rc;
}

static int realm_write(qbc_store_t *s, MDB_txn *txn, const qbc_realm_t *st, txn_ctx_t *t)
{
    int rc = realm_put(s, txn, st->realm, st);
    if (rc == 0)
        t->note.realms_changed++;
    return rc;
}

/* reads the state of the realm a job updates: 0, 1 when it has none (the job leaves it alone), or an LMDB error */
static int realm_for_update(qbc_store_t *s, MDB_txn *txn, const char *realm, qbc_realm_t *st)
{
    int rc;

    if (realm == NULL || (rc = realm_read(s, txn, realm, st)) == MDB_NOTFOUND)
        return 1;
    return rc;
}

/* moves a realm's CDC watermark forward (never back); a realm without state is left alone */
static int apply_cdc_mark(qbc_store_t *s, MDB_txn *txn, const char *realm, int64_t watermark_ns, int64_t last_cdc_ns,
                          txn_ctx_t *t)
{
    qbc_realm_t st;
    int rc;

    if ((rc = realm_for_update(s, txn, realm, &st)) != 0)
        return rc == 1 ? 0 : rc;
    if (watermark_ns > st.cdc_watermark_ns)
        st.cdc_watermark_ns = watermark_ns;
    if (last_cdc_ns != 0)
        st.last_cdc_ns = last_cdc_ns;
    return realm_write(s, txn, &st, t);
}

/* sets a realm's last_error (a realm without state is left alone) */
static int apply_realm_error(qbc_store_t *s, MDB_txn *txn, qbc_reconcile_job_t *job, txn_ctx_t *t)
{
    qbc_realm_t st;
    int rc;

    if ((rc = realm_for_update(s, txn, job->realm, &st)) != 0)
        return rc == 1 ? 0 : rc;
    snprintf(st.last_error, sizeof(st.last_error), "%s", job->realm_error);
    st.last_error_ns = job->realm_error[0] != '\0' ? qbc_now_ns() : 0;
    return realm_write(s, txn, &st, t);
}

static int job_get(qbc_store_t *s, MDB_txn *txn, uint64_t id, qbc_backfill_t *out)
{
    unsigned char kb[8];
    put_u64be(kb, id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_get(txn, s->dbi_jobs, &k, &v);
    if (rc != 0)
        return rc;
    return qbc_store__backfill_decode(id, v.mv_data, v.mv_size, out) == 0 ? 0 : MDB_CORRUPTED;
}

static int job_put(qbc_store_t *s, MDB_txn *txn, const qbc_backfill_t *b, txn_ctx_t *t)
{
    unsigned char kb[8];
    put_u64be(kb, b->id);
    char *json = qbc_store__backfill_encode(b);
    MDB_val k = {8, kb}, v = {strlen(json), json};
    int rc = mdb_put(txn, s->dbi_jobs, &k, &v, 0);
    free(json);
    if (rc == 0)
        t->note.jobs_changed++;
    return rc;
}

/* a checkpoint never revives a job that was cancelled (or finished) meanwhile */
static int apply_checkpoint(qbc_store_t *s, MDB_txn *txn, qbc_reconcile_job_t *job, txn_ctx_t *t)
{
    qbc_backfill_t cur;
    int rc = job_get(s, txn, job->checkpoint->id, &cur);

    if (rc == MDB_NOTFOUND || (rc == 0 && cur.status != QBC_BACKFILL_QUEUED && cur.status != QBC_BACKFILL_RUNNING) ||
        (rc == 0 && qbc_backfill_cmp(&cur, job->checkpoint) > 0)) { /* further on: another node's progress */
        job->checkpoint_refused = 1;
        return 0;
    }
    if (rc != 0)
        return rc;
    job->checkpoint_out = *job->checkpoint;
    job->checkpoint_out.versions_new = cur.versions_new + job->n_feed;
    return job_put(s, txn, &job->checkpoint_out, t);
}

/* a pending notice for every live version of `entity` in `realm` (an audit: see store.h) */
static int audit_entity(qbc_store_t *s, MDB_txn *txn, const char *realm, const char *entity, txn_ctx_t *t,
                        uint32_t *n_out)
{
    char prefix[KEY_BUF_SIZE], id[QBC_ID_MAX];
    size_t plen = qbc_store__pending_key(realm, entity, "", prefix);
    MDB_cursor *cur;
    MDB_val k = {plen, prefix}, v;
    int rc;

    if ((rc = mdb_cursor_open(txn, s->dbi_entities, &cur)) != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        qbc_entity_rec_t rec;
        if (k.mv_size <= plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        size_t il = k.mv_size - plen;
        if (il >= sizeof(id) || qbc_store__entity_decode(v.mv_data, v.mv_size, &rec) != 0 || rec.deleted)
            continue;
        if (rec.feed_seq >= s->next_feed) /* stored by this very transaction: just seen live */
            continue;
        memcpy(id, (const char *)k.mv_data + plen, il);
        id[il] = '\0';
        if ((rc = put_pending(s, txn, realm, entity, id, QBC_OP_UPDATE, rec.updated_ns, 0, 0, NULL)) != 0)
            break;
        (*n_out)++;
        t->note.new_pending++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int apply_audit(qbc_store_t *s, MDB_txn *txn, qbc_reconcile_job_t *job, txn_ctx_t *t)
{
    char ent[QBC_ENTITY_MAX];
    const char *e;
    size_t n;
    int rc = 0;
    for (const char *p = job->audit_entities; rc == 0 && (p = qbc_list_next(p, &e, &n)) != NULL;) {
        if (n > 0 && n < sizeof(ent)) {
            memcpy(ent, e, n);
            ent[n] = '\0';
            rc = audit_entity(s, txn, job->realm, ent, t, &job->n_audited);
        }
    }
    return rc;
}

static int apply_reconcile(qbc_store_t *s, MDB_txn *txn, qbc_reconcile_job_t *job, txn_ctx_t *t)
{
    int rc;

    job->n_feed = job->n_retired = job->n_audited = 0;
    job->last_feed_seq = 0;
    job->checkpoint_refused = 0;

    for (size_t i = 0; i < job->n_versions; i++)
        if ((rc = apply_version(s, txn, &job->versions[i], t, job)) != 0)
            return rc;
    for (size_t i = 0; i < job->n_retire; i++) {
        if ((rc = retire_notice(s, txn, &job->retire[i], NULL)) < 0 || rc > 1)
            return rc;
        job->n_retired += (uint32_t)rc;
    }
    if (job->set_cdc && (rc = apply_cdc_mark(s, txn, job->realm, job->cdc_watermark_ns, job->last_cdc_ns, t)) != 0)
        return rc;
    if (job->set_cdc && job->audit_entities != NULL && job->realm != NULL && (rc = apply_audit(s, txn, job, t)) != 0)
        return rc;
    if (job->realm_error != NULL && (rc = apply_realm_error(s, txn, job, t)) != 0)
        return rc;
    if (job->checkpoint != NULL && (rc = apply_checkpoint(s, txn, job, t)) != 0)
        return rc;
    return 0;
}

/*
 * stores *in as a new job with the next id of this node's space [job_id_base, + QBC_JOB_ID_SPACE)
 * (jobs are never removed, so ids are never reused; other nodes' jobs, imported, lie outside it)
 */
static int job_create(qbc_store_t *s, MDB_txn *txn, const qbc_backfill_t *in, txn_ctx_t *t, qbc_backfill_t *out)
{
    MDB_cursor *cur;
    unsigned char kb[8];
    MDB_val k = {8, kb}, v;
    uint64_t last = s->job_id_base, end = s->job_id_base + QBC_JOB_ID_SPACE;
    int rc;

    if ((rc = mdb_cursor_open(txn, s->dbi_jobs, &cur)) != 0)
        return rc;
    put_u64be(kb, end); /* the last key below the space's end */
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    rc = rc == 0              ? mdb_cursor_get(cur, &k, &v, MDB_PREV)
         : rc == MDB_NOTFOUND ? mdb_cursor_get(cur, &k, &v, MDB_LAST)
                              : rc;
    if (rc == 0 && k.mv_size == 8 && get_u64be(k.mv_data) > s->job_id_base && get_u64be(k.mv_data) < end)
        last = get_u64be(k.mv_data);
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    if (last + 1 >= end)
        return QBC_EFULL;
    *out = *in;
    out->id = last + 1;
    out->status = QBC_BACKFILL_QUEUED;
    if (out->start_position == 0)
        out->start_position = 1;
    if (out->created_ns == 0)
        out->created_ns = qbc_now_ns();
    return job_put(s, txn, out, t);
}

/* creates a backfill job (the next id) or cancels one */
static int apply_backfill(qbc_store_t *s, MDB_txn *txn, qbc_backfill_job_t *job, txn_ctx_t *t)
{
    int rc;

    job->id = 0;
    job->already_finished = job->imported = 0;
    if ((job->create != NULL) + (job->cancel_id != 0) + (job->import != NULL) != 1 || !s->has_jobs ||
        (job->import != NULL && job->import->id == 0))
        return QBC_EINVAL;
    if (job->import != NULL) { /* another node's job: taken if newer than what is held */
        rc = job_get(s, txn, job->import->id, &job->out);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
        job->id = job->import->id;
        if (rc == 0 && qbc_backfill_cmp(job->import, &job->out) <= 0)
            return 0;
        job->out = *job->import;
        job->imported = 1;
        return job_put(s, txn, &job->out, t);
    }
    if (job->cancel_id != 0) {
        qbc_backfill_t *b = &job->out;
        if ((rc = job_get(s, txn, job->cancel_id, b)) == MDB_NOTFOUND)
            return 0; /* id stays 0: no such job */
        if (rc != 0)
            return rc;
        job->id = b->id;
        if (b->status != QBC_BACKFILL_QUEUED && b->status != QBC_BACKFILL_RUNNING) {
            job->already_finished = 1;
            return 0;
        }
        b->status = QBC_BACKFILL_CANCELLED;
        b->finished_ns = qbc_now_ns();
        return job_put(s, txn, b, t);
    }
    if ((rc = job_create(s, txn, job->create, t, &job->out)) != 0)
        return rc;
    job->id = job->out.id;
    if (job->set_cdc)
        return apply_cdc_mark(s, txn, job->create->realm, job->cdc_watermark_ns, job->last_cdc_ns, t);
    return 0;
}

/* POST /admin/realms/{realm}/cdc: found = 1 if the realm exists */
static int apply_cdc_request(qbc_store_t *s, MDB_txn *txn, qbc_cdc_request_job_t *job, txn_ctx_t *t)
{
    qbc_realm_t st;
    int rc;

    job->found = 0;
    job->requested_ns = 0;
    if ((rc = realm_read(s, txn, job->realm, &st)) == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    st.cdc_requested_ns = job->requested_ns = qbc_now_ns();
    job->found = 1;
    return realm_write(s, txn, &st, t);
}

/* dead value: [1][pending value][attempts u32][died_ns i64][key_len u16][key][error] */
static int apply_dead_letter(qbc_store_t *s, MDB_txn *txn, qbc_dead_letter_job_t *job, txn_ctx_t *t)
{
    qbc_pending_rec_t rec;
    char kbuf[KEY_BUF_SIZE];
    int rc;

    job->moved = 0;
    if ((rc = retire_notice(s, txn, &job->notice, &rec)) <= 0 || rc > 1)
        return rc; /* 0: it changed meanwhile, so it gets a fresh start instead */
    job->moved = 1;
    const qbc_notice_ref_t *r = &job->notice;
    size_t klen = qbc_store__pending_key(r->realm, r->entity, r->id, kbuf);
    const char *err = job->error != NULL ? job->error : "";
    size_t elen = strlen(err), vlen = 1 + PENDING_VALUE_SIZE + 4 + 8 + 2 + klen + elen;
    unsigned char dk[8];
    put_u64be(dk, t->dead);
    MDB_val k = {8, dk}, v = {vlen, NULL};
    if ((rc = mdb_put(txn, s->dbi_dead, &k, &v, MDB_APPEND | MDB_RESERVE)) != 0)
        return rc;
    unsigned char *p = v.mv_data;
    p[0] = 1;
    qbc_store__pending_encode(&rec, p + 1);
    put_u32be(p + 1 + PENDING_VALUE_SIZE, job->attempts);
    put_u64be(p + 5 + PENDING_VALUE_SIZE, (uint64_t)qbc_now_ns());
    p[13 + PENDING_VALUE_SIZE] = (unsigned char)(klen >> 8);
    p[14 + PENDING_VALUE_SIZE] = (unsigned char)klen;
    memcpy(p + 15 + PENDING_VALUE_SIZE, kbuf, klen);
    memcpy(p + 15 + PENDING_VALUE_SIZE + klen, err, elen);
    t->dead++;
    t->note.dead_changed++;
    return 0;
}

static int apply_redrive(qbc_store_t *s, MDB_txn *txn, qbc_redrive_job_t *job, txn_ctx_t *t)
{
    unsigned char dk[8];
    MDB_val k = {8, dk}, v, pv;
    int rc;

    job->found = 0;
    if (job->import != NULL) { /* another node's dead letter, redriven here (its realm's owner) */
        const qbc_event_t *e = job->import;
        char ikey[KEY_BUF_SIZE];
        if (e->realm[0] == '\0' || e->entity[0] == '\0' || e->id[0] == '\0')
            return QBC_EINVAL;
        MDB_val ik = {qbc_store__pending_key(e->realm, e->entity, e->id, ikey), ikey}, iv;
        if ((rc = mdb_get(txn, s->dbi_pending, &ik, &iv)) == MDB_NOTFOUND)
            rc = put_pending(s, txn, e->realm, e->entity, e->id, e->op, e->updated_ns, 0, 0, NULL);
        if (rc != 0)
            return rc;
        job->found = 1;
        t->note.new_pending++;
        return 0;
    }
    put_u64be(dk, job->dead_id);
    if ((rc = mdb_get(txn, s->dbi_dead, &k, &v)) != 0)
        return rc == MDB_NOTFOUND ? 0 : rc; /* found stays 0: nothing to redrive */
    const unsigned char *p = v.mv_data;
    if (v.mv_size < 15 + PENDING_VALUE_SIZE || p[0] != 1)
        return MDB_CORRUPTED;
    size_t klen = (size_t)p[13 + PENDING_VALUE_SIZE] << 8 | p[14 + PENDING_VALUE_SIZE];
    if (v.mv_size < 15 + PENDING_VALUE_SIZE + klen)
        return MDB_CORRUPTED;
    char kbuf[KEY_BUF_SIZE];
    if (job->drop) { /* redriven by another node: only gone from here */
        if ((rc = mdb_del(txn, s->dbi_dead, &k, NULL)) != 0)
            return rc;
        job->found = 1;
        t->note.dead_changed++;
        return 0;
    }
    memcpy(kbuf, p + 15 + PENDING_VALUE_SIZE, klen);
    unsigned char pval[PENDING_VALUE_SIZE];
    memcpy(pval, p + 1, PENDING_VALUE_SIZE);
    MDB_val pk = {klen, kbuf};
    pv.mv_size = PENDING_VALUE_SIZE;
    pv.mv_data = pval;
    /* a newer notice for the same entity already covers it: keep that one */
    if ((rc = mdb_put(txn, s->dbi_pending, &pk, &pv, MDB_NOOVERWRITE)) != 0 && rc != MDB_KEYEXIST)
        return rc;
    if ((rc = mdb_del(txn, s->dbi_dead, &k, NULL)) != 0)
        return rc;
    job->found = 1;
    t->note.new_pending++;
    t->note.dead_changed++;
    return 0;
}

static int apply_realm(qbc_store_t *s, MDB_txn *txn, qbc_realm_job_t *job, txn_ctx_t *t)
{
    const char *realm = job->realm;
    MDB_val k = {strnlen(realm, QBC_REALM_MAX), (void *)realm}, v;
    int rc;

    job->snapshot_id = 0;
    job->stale = 0;
    if (k.mv_size == 0 || k.mv_size >= QBC_REALM_MAX)
        return QBC_EINVAL;
    int known = (rc = mdb_get(txn, s->dbi_realms, &k, &v)) == 0;
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    if (job->if_current) {
        qbc_realm_t cur;
        if (!known || qbc_store__realm_decode(realm, v.mv_data, v.mv_size, &cur) != 0 ||
            cur.status != QBC_REALM_ACTIVE || cur.connected_ns != job->if_connected_ns) {
            job->stale = 1; /* disconnected or reconnected meanwhile: that decision stands */
            return 0;
        }
    }
    if (job->state != NULL || (job->tokens != NULL && !known)) {
        qbc_realm_t fresh;
        const qbc_realm_t *st = job->state;
        if (st == NULL) {
            memset(&fresh, 0, sizeof(fresh));
            fresh.status = QBC_REALM_ACTIVE;
            fresh.connected_ns = qbc_now_ns();
            st = &fresh;
        }
        if ((rc = realm_put(s, txn, realm, st)) != 0)
            return rc;
    }
    if (job->tokens != NULL) {
        unsigned char *plain = qbc_alloc(QBC_TOKENS_PLAIN_MAX),
                      *sealed = qbc_alloc(QBC_TOKENS_PLAIN_MAX + QBC_SEAL_OVERHEAD);
        size_t plen = qbc_store__tokens_encode(job->tokens, plain), slen = 0;
        rc = qbc_store__seal(s->master_key, realm, plain, plen, sealed, &slen) == 0 ? 0 : QBC_ECRYPTO;
        OPENSSL_cleanse(plain, QBC_TOKENS_PLAIN_MAX);
        free(plain);
        if (rc == 0) {
            v.mv_size = slen;
            v.mv_data = sealed;
            rc = mdb_put(txn, s->dbi_tokens, &k, &v, 0);
        }
        free(sealed);
        if (rc != 0)
            return rc;
    } else if (job->erase_tokens) {
        if ((rc = mdb_del(txn, s->dbi_tokens, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
            return rc;
    }
    t->note.realms_changed++;
    if (job->snapshot_if_new && !known) {
        /* the realm's first registration: its snapshot commits with it, or neither does */
        qbc_backfill_t b;
        memset(&b, 0, sizeof(b));
        snprintf(b.realm, sizeof(b.realm), "%s", realm);
        snprintf(b.reason, sizeof(b.reason), "%s", QBC_BACKFILL_REASON_SNAPSHOT);
        qbc_backfill_t out;
        if ((rc = job_create(s, txn, &b, t, &out)) != 0)
            return rc;
        job->snapshot_id = out.id;
    }
    return 0;
}

/* another feed's records under their own sequences (feed_append.c); the transaction adopts what it did */
static int apply_feed_append(qbc_store_t *s, MDB_txn *txn, qbc_feed_append_job_t *job, txn_ctx_t *t)
{
    qbc_feed_append_effect_t fx;
    memset(&fx, 0, sizeof(fx));
    fx.next_feed = t->feed;
    fx.first_seq = t->feed_first;
    int rc = qbc_store__apply_feed_append(s, txn, job, &fx);
    if (rc != 0)
        return rc;
    t->feed = fx.next_feed;
    t->feed_first = fx.first_seq;
    t->note.feed_appended += fx.appended;
    if (fx.reset) {
        t->feed_reset = 1;
        memcpy(t->feed_id, fx.feed_id, sizeof(t->feed_id));
    }
    return 0;
}

static int apply_ping(qbc_store_t *s, MDB_txn *txn)
{
    return qbc_store__meta_put_u64(txn, s->dbi_meta, "heartbeat", (uint64_t)qbc_now_ns());
}

/*
 * one job's writes. Returns 0, an LMDB code, or one of our own codes for a job that is
 * wrong in itself (QBC_EINVAL) or could not be sealed (QBC_ECRYPTO).
 */
static int apply_job(qbc_store_t *s, MDB_txn *txn, qbc_store_job_t *j, txn_ctx_t *t)
{
    switch ((int)j->kind) {
    case QBC_JOB_APPLY:
        return apply_journal(s, txn, (qbc_apply_job_t *)j, t);
    case QBC_JOB_PRUNE:
        return qbc_store__prune(s, txn, j);
    case QBC_JOB_PING:
        return apply_ping(s, txn);
    case QBC_JOB_RECONCILE:
        return apply_reconcile(s, txn, (qbc_reconcile_job_t *)j, t);
    case QBC_JOB_DEAD_LETTER:
        return apply_dead_letter(s, txn, (qbc_dead_letter_job_t *)j, t);
    case QBC_JOB_REALM:
        return apply_realm(s, txn, (qbc_realm_job_t *)j, t);
    case QBC_JOB_REDRIVE:
        return apply_redrive(s, txn, (qbc_redrive_job_t *)j, t);
    case QBC_JOB_BACKFILL:
        return apply_backfill(s, txn, (qbc_backfill_job_t *)j, t);
    case QBC_JOB_CDC_REQUEST:
        return apply_cdc_request(s, txn, (qbc_cdc_request_job_t *)j, t);
    case QBC_JOB_USAGE:
        return qbc_store__apply_usage(s, txn, (qbc_usage_job_t *)j);
    case QBC_JOB_CURSOR:
        return qbc_store__apply_cursor(s, txn, (qbc_cursor_job_t *)j);
    case QBC_JOB_SUB_PUT:
        return qbc_store__apply_sub_put(s, txn, (qbc_sub_put_job_t *)j);
    case QBC_JOB_SUB_DELETE:
        return qbc_store__apply_sub_delete(s, txn, (qbc_sub_delete_job_t *)j);
    case QBC_JOB_SUB_ACK:
        return qbc_store__apply_sub_ack(s, txn, (qbc_sub_ack_job_t *)j);
    case QBC_JOB_FEED_APPEND:
        return apply_feed_append(s, txn, (qbc_feed_append_job_t *)j, t);
    }
    return QBC_EINVAL; /* webhooks go through the journal (ingest.c) */
}

/* one write transaction over a list of jobs; returns an LMDB code (or errno). */
static int run_txn(qbc_store_t *s, qbc_store_job_t *list, qbc_commit_note_t *note)
{
    MDB_txn *txn;
    txn_ctx_t t = {.feed = s->next_feed, .dead = s->next_dead};
    int rc;

    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return rc;
    for (qbc_store_job_t *j = list; j != NULL; j = j->_next) {
        if ((rc = apply_job(s, txn, j, &t)) != 0) {
            mdb_txn_abort(txn);
            return rc;
        }
    }
    /*
     * A high-water mark keeps sequences unique after the last record is removed. Dead
     * letters are removed by redrive; inbox bodies only by retention, which writes the
     * inbox's mark itself (retention.c); the feed never removes a record. So the last
     * key is the mark, and rewriting one on every commit would cost a scattered page
     * write per commit for nothing.
     */
    if (t.dead != s->next_dead && (rc = qbc_store__meta_put_u64(txn, s->dbi_meta, "dead_seq", t.dead - 1)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    /* the feed's time index, for retention: when the first of these records was committed */
    int64_t stamp = 0;
    if ((t.feed != s->next_feed || t.feed_first != 0) && s->has_feed_times) {
        int64_t now = qbc_now_ns();
        if (now - (t.feed_reset ? 0 : s->feed_time_last_ns) >= s->feed_time_step_ns) {
            unsigned char tb[8], sb[8];
            put_u64be(tb, (uint64_t)now);
            put_u64be(sb, t.feed_first != 0 ? t.feed_first : s->next_feed);
            MDB_val tk = {8, tb}, tv = {8, sb};
            if ((rc = mdb_put(txn, s->dbi_feed_times, &tk, &tv, 0)) != 0) {
                mdb_txn_abort(txn);
                return rc;
            }
            stamp = now;
        }
    }
    int64_t t0 = qbc_mono_ns();
    rc = mdb_txn_commit(txn);
    __atomic_add_fetch(&s->st_commit_ns, (uint64_t)(qbc_mono_ns() - t0), __ATOMIC_RELAXED);
    if (rc != 0)
        return rc;
    s->next_feed = t.feed;
    s->next_dead = t.dead;
    if (t.feed_reset) {
        s->feed_time_last_ns = 0;
        pthread_mutex_lock(&s->feed_id_mu);
        memcpy(s->feed_id, t.feed_id, sizeof(s->feed_id));
        pthread_mutex_unlock(&s->feed_id_mu);
        qbc_log(QBC_LOG_INFO, "store", "%s: the feed copied is now %s (the records held before are gone)", s->dir,
                s->feed_id);
    }
    if (stamp != 0)
        s->feed_time_last_ns = stamp;
    __atomic_store_n(&s->feed_last, t.feed - 1, __ATOMIC_RELEASE);
    note->new_pending += t.note.new_pending;
    note->feed_appended += t.note.feed_appended;
    note->feed_reset += t.feed_reset;
    note->realms_changed += t.note.realms_changed;
    note->jobs_changed += t.note.jobs_changed;
    note->dead_changed += t.note.dead_changed;
    note->last_feed_seq = t.feed - 1;
    return 0;
}

/* runs a list as one transaction, growing the map as long as that helps. */
static int run_growing(qbc_store_t *s, qbc_store_job_t *list, qbc_commit_note_t *note)
{
    for (;;) {
        int rc = run_txn(s, list, note);
        if (rc != MDB_MAP_FULL)
            return rc;
        if (qbc_store__grow(s) != 0)
            return rc;
    }
}

/* an apply's code as a job's result: our own codes pass (the job itself was refused), LMDB's become ours */
static int to_result(int rc)
{
    if (rc == 0)
        return 0;
    if (rc == MDB_MAP_FULL)
        return QBC_EFULL;
    if (qbc_is_own_error(rc)) {
        qbc_log(QBC_LOG_WARN, "store", "write job refused: %s", qbc_strerror(rc));
        return rc;
    }
    qbc_log(QBC_LOG_ERROR, "store", "write transaction failed: %s", mdb_strerror(rc));
    return QBC_ESTORE;
}

static void flush_done(qbc_store_job_t *j);

static void finish(qbc_store_t *s, qbc_store_job_t *j, int result)
{
    j->result = result;
    /* counted: the submitters' jobs (webhooks are counted by the ingest thread) */
    if (result == 0 && (int)j->kind != QBC_JOB_APPLY && (int)j->kind != QBC_JOB_PRUNE && j->on_commit != flush_done)
        __atomic_add_fetch(&s->st_jobs, 1, __ATOMIC_RELAXED);
    j->on_commit(j); /* the job belongs to its submitter again */
}

/* tells the listeners what the batch changed (writer thread; they must not block) */
static void notify(qbc_store_t *s, const qbc_commit_note_t *note)
{
    if (note->new_pending == 0 && note->feed_appended == 0 && note->realms_changed == 0 && note->jobs_changed == 0 &&
        note->dead_changed == 0 && note->feed_reset == 0)
        return;
    /* held while calling: qbc_store_remove_listener waits for a call under way to end */
    pthread_mutex_lock(&s->listen_mu);
    for (size_t i = 0; i < QBC_STORE_MAX_LISTENERS; i++)
        if (s->listeners[i].cb != NULL)
            s->listeners[i].cb(s->listeners[i].ctx, note);
    pthread_mutex_unlock(&s->listen_mu);
}

/*
 * Listeners hear of a commit before any of its jobs' callbacks run, so whoever
 * learns of a commit from its job can rely on the listeners knowing too.
 */
static void run_batch(qbc_store_t *s, qbc_store_job_t *list, size_t n)
{
    qbc_commit_note_t note = {0};
    __atomic_add_fetch(&s->st_batch_hist[qbc_store__batch_bucket(n)], 1, __ATOMIC_RELAXED);

    int rc = run_growing(s, list, &note);
    if (rc == 0) {
        __atomic_add_fetch(&s->st_commits, 1, __ATOMIC_RELAXED);
        notify(s, &note);
        while (list != NULL) {
            qbc_store_job_t *next = list->_next;
            finish(s, list, 0);
            list = next;
        }
        return;
    }
    __atomic_add_fetch(&s->st_commit_failures, 1, __ATOMIC_RELAXED);
    if (n > 1)
        qbc_log(QBC_LOG_WARN, "store", "batch of %zu failed (%s); retrying its jobs one by one", n,
                qbc_is_own_error(rc) ? qbc_strerror(rc) : mdb_strerror(rc));
    while (list != NULL) {
        qbc_store_job_t *next = list->_next;
        qbc_commit_note_t one = {0};
        list->_next = NULL;
        rc = n > 1 ? run_growing(s, list, &one) : rc;
        if (rc == 0) {
            __atomic_add_fetch(&s->st_commits, 1, __ATOMIC_RELAXED);
            notify(s, &one);
        }
        finish(s, list, to_result(rc));
        list = next;
    }
}

/* waits on the writer's condition variable until woken or until mono_due; mu held */
static void wait_until(qbc_store_t *s, int64_t mono_due)
{
    qbc_cond_wait_until(&s->cv, &s->mu, mono_due); /* s->cv runs on the monotonic clock (env.c) */
}

/* appends a job to the writer's queue, counting the urgent ones (all but APPLY); mu held */
static void enqueue(qbc_store_t *s, qbc_store_job_t *job)
{
    job->_next = NULL;
    if (s->q_tail != NULL)
        s->q_tail->_next = job;
    else
        s->q_head = job;
    s->q_tail = job;
    s->q_urgent += (int)job->kind != QBC_JOB_APPLY;
}

/* queues a prune job behind whatever is queued, if one is due; mu held */
static void queue_prune(qbc_store_t *s)
{
    qbc_store_job_t *p = qbc_store__prune_job(s, qbc_mono_ns());
    if (p != NULL)
        enqueue(s, p);
}

static void *writer_main(void *arg)
{
    qbc_store_t *s = arg;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->j_apply_failed && !s->closing && qbc_mono_ns() >= s->j_retry_due_ns) { /* also when busy */
            pthread_mutex_unlock(&s->mu);
            qbc_store__retry_applies(s);
            pthread_mutex_lock(&s->mu);
        }
        while (s->q_head == NULL && !s->closing) {
            queue_prune(s);
            if (s->q_head != NULL)
                break;
            if (s->j_apply_failed) { /* space may have come back: try the failed applies again */
                if (qbc_mono_ns() >= s->j_retry_due_ns) {
                    pthread_mutex_unlock(&s->mu);
                    qbc_store__retry_applies(s);
                    pthread_mutex_lock(&s->mu);
                    continue;
                }
                int64_t due = s->j_retry_due_ns;
                if (qbc_store__prune_on(s) && !s->prune_queued && s->prune_due_ns < due)
                    due = s->prune_due_ns;
                wait_until(s, due);
            } else if (qbc_store__prune_on(s) && !s->prune_queued) {
                wait_until(s, s->prune_due_ns);
            } else {
                pthread_cond_wait(&s->cv, &s->mu);
            }
        }
        if (s->q_head == NULL)
            break;      /* closing, and everything queued has been written */
        queue_prune(s); /* a busy writer prunes too */
        /*
         * Only journal batches waiting: nobody waits for them (their webhooks are
         * acked), so gather them for up to apply_interval after the last commit. Fewer,
         * larger LMDB commits mean fewer flushes (~70 us of CPU each on a VM, and each
         * one delays the journal's). Any other job ends the wait at once.
         */
        int64_t due = s->last_commit_ns + s->apply_interval_ns;
        while (s->q_urgent == 0 && !s->closing && s->apply_interval_ns > 0 && qbc_mono_ns() < due)
            wait_until(s, due);
        qbc_store_job_t *list = s->q_head, *last = list;
        size_t n = 1;
        s->q_urgent -= (int)list->kind != QBC_JOB_APPLY;
        while (last->_next != NULL && n < s->batch_max) {
            last = last->_next;
            s->q_urgent -= (int)last->kind != QBC_JOB_APPLY;
            n++;
        }
        s->q_head = last->_next;
        if (s->q_head == NULL)
            s->q_tail = NULL;
        last->_next = NULL;
        pthread_mutex_unlock(&s->mu);
        run_batch(s, list, n);
        pthread_mutex_lock(&s->mu);
        s->last_commit_ns = qbc_mono_ns();
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int qbc_store__writer_start(qbc_store_t *s)
{
    int rc = pthread_create(&s->writer, NULL, writer_main, s);
    if (rc != 0)
        return -rc;
    s->writer_started = 1;
    return 0;
}

void qbc_store__writer_stop(qbc_store_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->writer_started)
        pthread_join(s->writer, NULL);
    s->writer_started = 0;
}

int qbc_store__run_now(qbc_store_t *s, qbc_store_job_t *list)
{
    qbc_commit_note_t note = {0};
    int rc = run_growing(s, list, &note);
    if (rc == 0)
        __atomic_add_fetch(&s->st_commits, 1, __ATOMIC_RELAXED);
    return to_result(rc);
}

/* the public submit calls: a writable store, a callback, the kind set here */
static int submit(qbc_store_t *s, qbc_store_job_t *job, qbc_job_kind_t kind)
{
    if (s->readonly || job->on_commit == NULL)
        return QBC_EINVAL;
    job->kind = kind;
    return qbc_store__writer_submit(s, job);
}

int qbc_store_ping(qbc_store_t *s, qbc_store_job_t *job)
{
    return submit(s, job, QBC_JOB_PING);
}

/* the typed submit calls: each hands its request's header to submit() with its kind */
#define SUBMIT_CALL(name, type, kind)                                                                                  \
    int name(qbc_store_t *s, type *job)                                                                                \
    {                                                                                                                  \
        return submit(s, &job->job, kind);                                                                             \
    }
SUBMIT_CALL(qbc_store_reconcile, qbc_reconcile_job_t, QBC_JOB_RECONCILE)
SUBMIT_CALL(qbc_store_dead_letter, qbc_dead_letter_job_t, QBC_JOB_DEAD_LETTER)
SUBMIT_CALL(qbc_store_put_realm, qbc_realm_job_t, QBC_JOB_REALM)
SUBMIT_CALL(qbc_store_redrive, qbc_redrive_job_t, QBC_JOB_REDRIVE)
SUBMIT_CALL(qbc_store_backfill, qbc_backfill_job_t, QBC_JOB_BACKFILL)
SUBMIT_CALL(qbc_store_request_cdc, qbc_cdc_request_job_t, QBC_JOB_CDC_REQUEST)
SUBMIT_CALL(qbc_store_add_usage, qbc_usage_job_t, QBC_JOB_USAGE)
SUBMIT_CALL(qbc_store_set_cursor, qbc_cursor_job_t, QBC_JOB_CURSOR)
SUBMIT_CALL(qbc_store_feed_append, qbc_feed_append_job_t, QBC_JOB_FEED_APPEND)
SUBMIT_CALL(qbc_store_sub_put, qbc_sub_put_job_t, QBC_JOB_SUB_PUT)
SUBMIT_CALL(qbc_store_sub_delete, qbc_sub_delete_job_t, QBC_JOB_SUB_DELETE)
SUBMIT_CALL(qbc_store_sub_ack, qbc_sub_ack_job_t, QBC_JOB_SUB_ACK)
#undef SUBMIT_CALL

int qbc_store_submit_webhooks(qbc_store_t *s, qbc_webhook_job_t **jobs, size_t n)
{
    if (s->readonly)
        return QBC_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (jobs[i]->job.on_commit == NULL)
            return QBC_EINVAL;
        jobs[i]->job.kind = QBC_JOB_WEBHOOK;
    }
    return n == 0 ? 0 : qbc_store__ingest_submit(s, jobs, n);
}

int qbc_store__writer_submit(qbc_store_t *s, qbc_store_job_t *job)
{
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        return QBC_ECLOSED;
    }
    int was_empty = s->q_head == NULL, urgent = (int)job->kind != QBC_JOB_APPLY;
    enqueue(s, job);
    if (urgent || was_empty) /* a journal batch joining others needs no wake-up (see writer_main) */
        pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* qbc_store_flush: a PING queued behind everything the writer already holds */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} flush_wait_t;

static void flush_done(qbc_store_job_t *j)
{
    flush_wait_t *f = j->data;
    pthread_mutex_lock(&f->mu);
    f->done = 1;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

int qbc_store_flush(qbc_store_t *s)
{
    flush_wait_t f = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    qbc_store_job_t job;
    int rc;

    memset(&job, 0, sizeof(job));
    job.kind = QBC_JOB_PING;
    job.on_commit = flush_done;
    job.data = &f;
    if ((rc = qbc_store__writer_submit(s, &job)) != 0)
        return rc;
    pthread_mutex_lock(&f.mu);
    while (!f.done)
        pthread_cond_wait(&f.cv, &f.mu);
    pthread_mutex_unlock(&f.mu);
    return job.result;
}
