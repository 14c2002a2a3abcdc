/*
 * writer.c — the one thread that writes: group commit.
 *
 * Submitters (the ingress loop, later the reconciler) queue jobs. The writer takes
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
#include "store_internal.h"

const unsigned qbc_store_batch_bounds[7] = {1, 2, 4, 8, 16, 64, 256};

static int put_pending(qbc_store_t *s, MDB_txn *txn, const char *realm, const char *entity, const char *id,
                       qbc_op_t op, int64_t updated_ns, uint64_t seq)
{
    char kbuf[QBC_REALM_MAX + QBC_ENTITY_MAX + QBC_ID_MAX];
    unsigned char vbuf[PENDING_VALUE_SIZE];
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
    qbc_store__pending_encode(&rec, vbuf);
    v.mv_size = sizeof(vbuf);
    v.mv_data = vbuf;
    return mdb_put(txn, s->dbi_pending, &k, &v, 0);
}

/*
 * Applies one webhook: CloudEvents ids seen before are skipped; when every event of
 * a well-formed body is such a repeat, the body itself is not stored again (Intuit's
 * retry of a batch we already hold). Everything else is stored: the raw body, its
 * quarantine note, and one pending notice per event. A Merge also leaves a Delete
 * notice for the id merged away, so the reconciler retires it.
 */
static int apply_webhook(qbc_store_t *s, MDB_txn *txn, qbc_store_job_t *job, uint64_t *seq)
{
    const uint64_t my_seq = *seq;
    unsigned char *dup = NULL;
    size_t n_new = 0;
    int rc = 0;

    if (job->n_events > 0)
        dup = qbc_calloc(job->n_events, 1);
    for (size_t i = 0; i < job->n_events; i++) {
        const qbc_event_t *e = &job->events[i];
        if (e->event_id[0] == '\0') {
            n_new++;
            continue;
        }
        MDB_val k = {strlen(e->event_id), (void *)e->event_id}, v;
        if ((rc = mdb_get(txn, s->dbi_event_ids, &k, &v)) == 0) {
            dup[i] = 1;
            job->n_dup_events++;
            continue;
        }
        if (rc != MDB_NOTFOUND)
            goto Exit;
        unsigned char sb[8];
        put_u64be(sb, my_seq);
        v.mv_size = 8;
        v.mv_data = sb;
        if ((rc = mdb_put(txn, s->dbi_event_ids, &k, &v, 0)) != 0)
            goto Exit;
        n_new++;
    }
    rc = 0;
    if (job->n_events > 0 && n_new == 0 && !(job->inbox_flags & QBC_INBOX_QUARANTINED))
        goto Exit; /* a pure repeat: already held */

    /* the raw body, written straight into the map */
    unsigned char kb[8];
    put_u64be(kb, my_seq);
    MDB_val k = {8, kb}, v = {INBOX_HEADER_SIZE + job->body_len, NULL};
    if ((rc = mdb_put(txn, s->dbi_inbox, &k, &v, MDB_APPEND | MDB_RESERVE)) != 0)
        goto Exit;
    qbc_store__inbox_header(v.mv_data, job->inbox_flags, job->format, (uint32_t)job->n_events, job->received_ns);
    if (job->body_len > 0)
        memcpy((unsigned char *)v.mv_data + INBOX_HEADER_SIZE, job->body, job->body_len);

    if (job->inbox_flags & QBC_INBOX_QUARANTINED) {
        const char *why = job->quarantine_reason != NULL ? job->quarantine_reason : "unparsable";
        MDB_val qv = {strlen(why), (void *)why};
        if ((rc = mdb_put(txn, s->dbi_quarantine, &k, &qv, MDB_APPEND)) != 0)
            goto Exit;
    }

    for (size_t i = 0; i < job->n_events; i++) {
        const qbc_event_t *e = &job->events[i];
        if (dup[i])
            continue;
        if ((rc = put_pending(s, txn, e->realm, e->entity, e->id, e->op, e->updated_ns, my_seq)) != 0)
            goto Exit;
        if (e->op == QBC_OP_MERGE && e->deleted_id[0] != '\0' &&
            (rc = put_pending(s, txn, e->realm, e->entity, e->deleted_id, QBC_OP_DELETE, e->updated_ns, my_seq)) != 0)
            goto Exit;
        job->n_stored_events++;
    }
    job->inbox_seq = my_seq;
    *seq = my_seq + 1;

Exit:
    free(dup);
    return rc;
}

static int apply_ping(qbc_store_t *s, MDB_txn *txn)
{
    unsigned char b[8];
    put_u64be(b, (uint64_t)qbc_now_ns());
    MDB_val k = {sizeof("heartbeat") - 1, "heartbeat"}, v = {8, b};
    return mdb_put(txn, s->dbi_meta, &k, &v, 0);
}

/* one write transaction over a list of jobs; returns an LMDB code (or errno). */
static int run_txn(qbc_store_t *s, qbc_store_job_t *list)
{
    MDB_txn *txn;
    uint64_t seq = s->next_seq;
    int rc;

    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return rc;
    for (qbc_store_job_t *j = list; j != NULL; j = j->_next) {
        j->inbox_seq = 0;
        j->n_stored_events = j->n_dup_events = 0;
        rc = j->kind == QBC_JOB_WEBHOOK ? apply_webhook(s, txn, j, &seq) : apply_ping(s, txn);
        if (rc != 0) {
            mdb_txn_abort(txn);
            return rc;
        }
    }
    if (seq != s->next_seq) {
        /* the high-water mark keeps sequences unique even after old inbox records are removed */
        unsigned char b[8];
        put_u64be(b, seq - 1);
        MDB_val k = {sizeof("inbox_seq") - 1, "inbox_seq"}, v = {8, b};
        if ((rc = mdb_put(txn, s->dbi_meta, &k, &v, 0)) != 0) {
            mdb_txn_abort(txn);
            return rc;
        }
    }
    int64_t t0 = qbc_mono_ns();
    rc = mdb_txn_commit(txn);
    __atomic_add_fetch(&s->st_commit_ns, (uint64_t)(qbc_mono_ns() - t0), __ATOMIC_RELAXED);
    if (rc != 0)
        return rc;
    s->next_seq = seq;
    return 0;
}

/* runs a list as one transaction, growing the map as long as that helps. */
static int run_growing(qbc_store_t *s, qbc_store_job_t *list)
{
    for (;;) {
        int rc = run_txn(s, list);
        if (rc != MDB_MAP_FULL)
            return rc;
        if (qbc_store__grow(s) != 0)
            return rc;
    }
}

static int to_result(int rc)
{
    if (rc == 0)
        return 0;
    if (rc == MDB_MAP_FULL)
        return QBC_EFULL;
    qbc_log(QBC_LOG_ERROR, "store", "write transaction failed: %s", mdb_strerror(rc));
    return QBC_ESTORE;
}

static void finish(qbc_store_t *s, qbc_store_job_t *j, int result)
{
    j->result = result;
    if (result == 0)
        __atomic_add_fetch(&s->st_jobs, 1, __ATOMIC_RELAXED);
    j->on_commit(j); /* the job belongs to its submitter again */
}

static void run_batch(qbc_store_t *s, qbc_store_job_t *list, size_t n)
{
    unsigned b = 0;
    while (b < 7 && n > qbc_store_batch_bounds[b])
        b++;
    __atomic_add_fetch(&s->st_batch_hist[b], 1, __ATOMIC_RELAXED);

    int rc = run_growing(s, list);
    if (rc == 0) {
        __atomic_add_fetch(&s->st_commits, 1, __ATOMIC_RELAXED);
        while (list != NULL) {
            qbc_store_job_t *next = list->_next;
            finish(s, list, 0);
            list = next;
        }
        return;
    }
    __atomic_add_fetch(&s->st_commit_failures, 1, __ATOMIC_RELAXED);
    if (n > 1)
        qbc_log(QBC_LOG_WARN, "store", "batch of %zu failed (%s); retrying its jobs one by one", n, mdb_strerror(rc));
    while (list != NULL) {
        qbc_store_job_t *next = list->_next;
        list->_next = NULL;
        rc = n > 1 ? run_growing(s, list) : rc;
        if (rc == 0)
            __atomic_add_fetch(&s->st_commits, 1, __ATOMIC_RELAXED);
        finish(s, list, to_result(rc));
        list = next;
    }
}

static void *writer_main(void *arg)
{
    qbc_store_t *s = arg;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->q_head == NULL && !s->closing)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->q_head == NULL)
            break; /* closing, and everything queued has been written */
        qbc_store_job_t *list = s->q_head, *last = list;
        size_t n = 1;
        while (last->_next != NULL && n < s->batch_max) {
            last = last->_next;
            n++;
        }
        s->q_head = last->_next;
        if (s->q_head == NULL)
            s->q_tail = NULL;
        last->_next = NULL;
        pthread_mutex_unlock(&s->mu);
        run_batch(s, list, n);
        pthread_mutex_lock(&s->mu);
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

int qbc_store_submit(qbc_store_t *s, qbc_store_job_t *job)
{
    if (s->readonly)
        return QBC_EINVAL;
    job->_next = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        return QBC_ECLOSED;
    }
    if (s->q_tail != NULL)
        s->q_tail->_next = job;
    else
        s->q_head = job;
    s->q_tail = job;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}
