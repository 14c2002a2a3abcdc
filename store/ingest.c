/*
 * ingest.c — the thread that makes webhooks durable: decide, journal, ack.
 *
 * For each batch of queued webhook jobs it runs their prepare hooks (parsing),
 * decides what the store will do with each (CloudEvents ids seen before are
 * repeats; a body made only of repeats is not stored again; every other body gets
 * the next inbox sequence), writes one journal record per stored body, fdatasyncs
 * the journal once for the whole batch, hands the records to the writer as one
 * QBC_JOB_APPLY job, and only then calls each job's on_commit. The writer applies
 * the records to LMDB in order; the decisions are made here, so the answer a job
 * gets (inbox_seq, repeats) is exactly what the store will hold.
 *
 * Repeats are found in LMDB's event_ids and, for ids journaled but maybe not yet
 * applied, in a small in-memory table that forgets ids once their record is applied.
 *
 * Back-pressure: a batch is journaled only over space the writer has applied; if
 * the writer falls behind, this thread waits (up to JOURNAL_WAIT_S, then 503s).
 * Refusals: when the LMDB map is close to its maximum (what is journaled must fit
 * when applied), or after an apply failed (the journal then keeps the records, and
 * the next start replays them), webhooks fail with QBC_EFULL / QBC_ESTORE.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "store_internal.h"

#define RECENT_BUCKETS 4096
#define JOURNAL_WAIT_S 5

struct st_qbc_recent_id_t {
    qbc_recent_id_t *next_hash, *next_fifo;
    uint64_t jseq;
    uint32_t hash;
    char id[];
};

static uint32_t id_hash(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s != '\0')
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

static int recent_has(qbc_store_t *s, const char *id, uint32_t h)
{
    for (qbc_recent_id_t *r = s->recent[h % RECENT_BUCKETS]; r != NULL; r = r->next_hash)
        if (r->hash == h && strcmp(r->id, id) == 0)
            return 1;
    return 0;
}

static void recent_add(qbc_store_t *s, const char *id, uint32_t h, uint64_t jseq)
{
    size_t n = strlen(id);
    qbc_recent_id_t *r = qbc_alloc(sizeof(*r) + n + 1), **b = &s->recent[h % RECENT_BUCKETS];
    memcpy(r->id, id, n + 1);
    r->hash = h;
    r->jseq = jseq;
    r->next_hash = *b;
    *b = r;
    r->next_fifo = NULL;
    if (s->recent_new != NULL)
        s->recent_new->next_fifo = r;
    else
        s->recent_old = r;
    s->recent_new = r;
}

/* forgets ids whose records LMDB now holds (they are found there instead) */
static void recent_evict(qbc_store_t *s, uint64_t applied_jseq)
{
    while (s->recent_old != NULL && s->recent_old->jseq <= applied_jseq) {
        qbc_recent_id_t *r = s->recent_old, **pp = &s->recent[r->hash % RECENT_BUCKETS];
        while (*pp != r)
            pp = &(*pp)->next_hash;
        *pp = r->next_hash;
        s->recent_old = r->next_fifo;
        if (s->recent_old == NULL)
            s->recent_new = NULL;
        free(r);
    }
}

/* webhook jobs are linked through their header's _next (the header is their first member) */
#define NEXT(j) ((qbc_webhook_job_t *)(j)->job._next)

static void finish(qbc_webhook_job_t *j, int result)
{
    j->job.result = result;
    j->job.on_commit(&j->job);
}

static void fail_all(qbc_webhook_job_t *list, int result)
{
    while (list != NULL) {
        qbc_webhook_job_t *next = NEXT(list);
        finish(list, result);
        list = next;
    }
}

/*
 * How many journal bytes may still be acked: what is left of the map at its
 * maximum, halved (the pages an apply touches besides the records), less what is
 * journaled and not yet applied. Generous: freed pages that LMDB will reuse are not
 * counted, so the map fills a little before it is truly full.
 */
static uint64_t map_room(qbc_store_t *s)
{
    MDB_envinfo info;
    MDB_stat st;
    pthread_rwlock_rdlock(&s->gate); /* both read the map, which a growth remaps */
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    pthread_rwlock_unlock(&s->gate);
    uint64_t psize = st.ms_psize, max_pages = s->map_max / psize, used = (uint64_t)info.me_last_pgno + 1 + 16;
    uint64_t unapplied = s->j_head_pos - __atomic_load_n(&s->j_applied_pos, __ATOMIC_ACQUIRE);
    uint64_t room = used < max_pages ? (max_pages - used) / 2 * psize : 0;
    return room > unapplied ? room - unapplied : 0;
}

/* waits until `end` can be written without overwriting unapplied records */
static int wait_for_space(qbc_store_t *s, uint64_t end)
{
    if (end - __atomic_load_n(&s->j_applied_pos, __ATOMIC_ACQUIRE) <= s->jsize)
        return 0;
    int64_t deadline = qbc_mono_ns() + JOURNAL_WAIT_S * (int64_t)1000000000;
    int rc = 0;
    pthread_mutex_lock(&s->imu);
    while (end - __atomic_load_n(&s->j_applied_pos, __ATOMIC_ACQUIRE) > s->jsize && rc == 0 &&
           __atomic_load_n(&s->j_stuck, __ATOMIC_ACQUIRE) == 0)
        rc = qbc_cond_wait_until(&s->space_cv, &s->imu, deadline);
    pthread_mutex_unlock(&s->imu);
    if (end - __atomic_load_n(&s->j_applied_pos, __ATOMIC_ACQUIRE) <= s->jsize)
        return 0;
    qbc_log(QBC_LOG_ERROR, "store", "the journal is full: the writer has not applied it for %d s", JOURNAL_WAIT_S);
    return QBC_ESTORE;
}

/* decides one job: which events repeat, and whether its body is stored (returns 1) */
static int decide(qbc_store_t *s, MDB_txn **txn, int *txn_rc, qbc_webhook_job_t *j, unsigned char *dup, uint64_t jseq)
{
    size_t n_new = 0;

    j->inbox_seq = 0;
    j->n_stored_events = j->n_dup_events = 0;
    for (size_t i = 0; i < j->n_events; i++) {
        const char *id = j->events[i].event_id;
        dup[i] = 0;
        if (id[0] == '\0') {
            n_new++;
            continue;
        }
        uint32_t h = id_hash(id);
        int seen = recent_has(s, id, h);
        if (!seen) {
            if (*txn == NULL && *txn_rc == 0)
                *txn_rc = qbc_store__read_begin(s, txn);
            MDB_val k = {strlen(id), (void *)id}, v;
            seen = *txn != NULL && mdb_get(*txn, s->dbi_event_ids, &k, &v) == 0;
        }
        if (seen) {
            dup[i] = 1;
            j->n_dup_events++;
            continue;
        }
        recent_add(s, id, h, jseq); /* a second copy later in this batch is a repeat too */
        n_new++;
    }
    if (j->n_events > 0 && n_new == 0 && !(j->inbox_flags & QBC_INBOX_QUARANTINED))
        return 0; /* a pure repeat: already held */
    j->n_stored_events = (uint32_t)n_new;
    return 1;
}

static void count_batch(qbc_store_t *s, size_t n, int64_t ns)
{
    __atomic_add_fetch(&s->st_jbatch_hist[qbc_store__batch_bucket(n)], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->st_jcommits, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->st_jcommit_ns, (uint64_t)ns, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->st_jwebhooks, n, __ATOMIC_RELAXED);
}

static void apply_done(qbc_store_job_t *job)
{
    qbc_apply_job_t *a = (qbc_apply_job_t *)job;
    qbc_store_t *s = a->job.data;
    if (a->job.result == 0 && a->applied) {
        qbc_store__ingest_applied(s, a->last_jseq, a->end_pos);
    } else if (a->job.result != 0) {
        __atomic_store_n(&s->j_stuck, a->job.result, __ATOMIC_RELEASE);
        if (!s->j_apply_failed) { /* this runs on the writer thread, which owns the retry */
            s->j_apply_failed = 1;
            s->j_retry_wait_ns = 1000000000LL;
            s->j_retry_due_ns = qbc_mono_ns() + s->j_retry_wait_ns;
        }
        qbc_log(QBC_LOG_ERROR, "store",
                "acked webhooks could not be applied to LMDB (%s); they stay in the journal and are applied again "
                "once there is room (tried again after 1 s, then less often); webhooks are refused until then",
                qbc_strerror(a->job.result));
        pthread_mutex_lock(&s->imu);
        pthread_cond_broadcast(&s->space_cv);
        pthread_mutex_unlock(&s->imu);
    }
    free(a->buf);
    free(a);
}

static void run_batch(qbc_store_t *s, qbc_webhook_job_t *list, size_t n)
{
    int stuck = __atomic_load_n(&s->j_stuck, __ATOMIC_ACQUIRE);
    size_t max_events = 0, max_rec = 0, k = 0, *plen = qbc_alloc(n * sizeof(*plen));

    /* parse, and size each job's record once (plen: payload bytes, in list order) */
    for (qbc_webhook_job_t *j = list; j != NULL; j = NEXT(j), k++) {
        if (j->prepare != NULL)
            j->prepare(j);
        plen[k] = qbc_store__jwebhook_size(j);
        if (qbc_store__jrec_size(plen[k]) > max_rec)
            max_rec = qbc_store__jrec_size(plen[k]);
        if (j->n_events > max_events)
            max_events = j->n_events;
    }
    if (stuck != 0) {
        free(plen);
        fail_all(list, stuck);
        return;
    }
    /* what the map can still take: the first jobs that fit go ahead, the rest are refused */
    uint64_t room = map_room(s), bound = 0;
    qbc_store_job_t **pp = (qbc_store_job_t **)&list;
    for (k = 0; *pp != NULL && bound + qbc_store__jrec_size(plen[k]) <= room; k++) {
        bound += qbc_store__jrec_size(plen[k]);
        pp = &(*pp)->_next;
    }
    if (*pp != NULL) {
        qbc_store__log_full(s, &s->ifull_logged_ns, "webhooks");
        qbc_webhook_job_t *refused = (qbc_webhook_job_t *)*pp;
        *pp = NULL;
        n = k;
        fail_all(refused, QBC_EFULL);
        if (list == NULL) {
            free(plen);
            return;
        }
    }
    /* the most this batch can take: every body stored, plus one wrap */
    bound += max_rec + QBC_JREC_HEADER;
    int rc = wait_for_space(s, s->j_head_pos + bound);
    if (rc != 0) {
        free(plen);
        fail_all(list, rc);
        return;
    }
    recent_evict(s, __atomic_load_n(&s->j_applied_jseq, __ATOMIC_ACQUIRE));

    unsigned char *buf = qbc_alloc(bound), *dup = qbc_alloc(max_events + 1);
    size_t len = 0, n_recs = 0;
    uint64_t pos = s->j_head_pos, seg_pos = pos, jseq = s->j_next_jseq;
    size_t seg_off = 0;
    MDB_txn *txn = NULL;
    int txn_rc = 0;
    struct {
        uint64_t pos;
        size_t off, len;
    } segs[4];
    int n_segs = 0;

    k = 0;
    for (qbc_webhook_job_t *j = list; j != NULL; j = NEXT(j), k++) {
        if (!decide(s, &txn, &txn_rc, j, dup, jseq))
            continue;
        size_t rlen = qbc_store__jrec_size(plen[k]);
        uint64_t left = s->jsize - pos % s->jsize;
        if (rlen > left) {
            if (n_segs == 2)
                qbc_fatal("journal batch wraps twice (journal too small for its batches)");
            /* to the next lap: mark the wrap (if a header fits) and end this segment */
            if (left >= QBC_JREC_HEADER) {
                qbc_store__jrec_seal(buf + len, jseq, pos, 0, QBC_JREC_WRAP, s->j_epoch);
                len += QBC_JREC_HEADER;
            }
            segs[n_segs].pos = seg_pos, segs[n_segs].off = seg_off, segs[n_segs].len = len - seg_off;
            n_segs++;
            pos += left;
            seg_pos = pos;
            seg_off = len;
        }
        j->inbox_seq = s->next_inbox++;
        qbc_store__jwebhook_encode(j, dup, buf + len + QBC_JREC_HEADER);
        qbc_store__jrec_seal(buf + len, jseq, pos, (uint32_t)plen[k], QBC_JREC_WEBHOOK, s->j_epoch);
        len += rlen;
        pos += rlen;
        jseq++;
        n_recs++;
    }
    if (txn != NULL)
        qbc_store__read_end(s, txn);
    free(dup);
    free(plen);
    segs[n_segs].pos = seg_pos, segs[n_segs].off = seg_off, segs[n_segs].len = len - seg_off;
    n_segs++;

    if (n_recs > 0) {
        int64_t t0 = qbc_mono_ns();
        for (int i = 0; i < n_segs && rc == 0; i++)
            if (segs[i].len > 0)
                rc = qbc_store__journal_write(s, buf + segs[i].off, segs[i].pos, segs[i].len);
        if (rc == 0)
            rc = qbc_store__journal_sync(s);
        if (rc != 0) {
            /* what reached the file is unknown: refuse everything until a restart replays what is valid */
            qbc_log(QBC_LOG_ERROR, "store", "journal write failed: %s; refusing webhooks", qbc_strerror(rc));
            __atomic_store_n(&s->j_stuck, QBC_ESTORE, __ATOMIC_RELEASE);
            free(buf);
            fail_all(list, QBC_ESTORE);
            return;
        }
        count_batch(s, n, qbc_mono_ns() - t0);
        __atomic_store_n(&s->j_head_pos, pos, __ATOMIC_RELAXED); /* stats read it */
        __atomic_store_n(&s->acked_inbox, s->next_inbox - 1, __ATOMIC_RELEASE);
        s->j_next_jseq = jseq;

        qbc_apply_job_t *a = qbc_calloc(1, sizeof(*a));
        a->job.kind = (qbc_job_kind_t)QBC_JOB_APPLY;
        a->buf = buf;
        a->len = len;
        a->last_jseq = jseq - 1;
        a->end_pos = pos;
        a->job.on_commit = apply_done;
        a->job.data = s;
        if (qbc_store__writer_submit(s, &a->job) != 0) {
            free(buf); /* the writer is gone; the next start replays the journal */
            free(a);
        }
    } else {
        free(buf);
        count_batch(s, n, 0);
    }
    while (list != NULL) {
        qbc_webhook_job_t *next = NEXT(list);
        __atomic_add_fetch(&s->st_jobs, 1, __ATOMIC_RELAXED);
        finish(list, 0);
        list = next;
    }
}

static void *ingest_main(void *arg)
{
    qbc_store_t *s = arg;

    pthread_mutex_lock(&s->imu);
    for (;;) {
        while (s->iq_head == NULL && !s->iclosing)
            pthread_cond_wait(&s->icv, &s->imu);
        if (s->iq_head == NULL)
            break;
        /* a batch: up to batch_max jobs and about an eighth of the journal */
        qbc_webhook_job_t *list = s->iq_head, *last = list;
        size_t n = 1, bytes = list->body_len;
        while (NEXT(last) != NULL && n < s->batch_max && bytes + NEXT(last)->body_len < s->jsize / 8) {
            last = NEXT(last);
            bytes += last->body_len;
            n++;
        }
        s->iq_head = NEXT(last);
        if (s->iq_head == NULL)
            s->iq_tail = NULL;
        last->job._next = NULL;
        pthread_mutex_unlock(&s->imu);
        run_batch(s, list, n);
        pthread_mutex_lock(&s->imu);
    }
    pthread_mutex_unlock(&s->imu);
    return NULL;
}

int qbc_store__ingest_submit(qbc_store_t *s, qbc_webhook_job_t **jobs, size_t n)
{
    pthread_mutex_lock(&s->imu);
    if (s->iclosing) {
        pthread_mutex_unlock(&s->imu);
        return QBC_ECLOSED;
    }
    for (size_t i = 0; i < n; i++) {
        jobs[i]->job._next = NULL;
        if (s->iq_tail != NULL)
            s->iq_tail->job._next = &jobs[i]->job;
        else
            s->iq_head = jobs[i];
        s->iq_tail = jobs[i];
    }
    pthread_cond_signal(&s->icv); /* one wake-up for the lot */
    pthread_mutex_unlock(&s->imu);
    return 0;
}

void qbc_store__ingest_applied(qbc_store_t *s, uint64_t jseq, uint64_t pos)
{
    __atomic_store_n(&s->j_applied_jseq, jseq, __ATOMIC_RELEASE);
    __atomic_store_n(&s->j_applied_pos, pos, __ATOMIC_RELEASE);
    pthread_mutex_lock(&s->imu);
    pthread_cond_broadcast(&s->space_cv);
    pthread_mutex_unlock(&s->imu);
}

int qbc_store__ingest_start(qbc_store_t *s)
{
    s->recent = qbc_calloc(RECENT_BUCKETS, sizeof(*s->recent));
    int rc = pthread_create(&s->ingest, NULL, ingest_main, s);
    if (rc != 0)
        return -rc;
    s->ingest_started = 1;
    return 0;
}

void qbc_store__ingest_stop(qbc_store_t *s)
{
    pthread_mutex_lock(&s->imu);
    s->iclosing = 1;
    pthread_cond_signal(&s->icv);
    pthread_mutex_unlock(&s->imu);
    if (s->ingest_started)
        pthread_join(s->ingest, NULL);
    s->ingest_started = 0;
}

void qbc_store__ingest_free(qbc_store_t *s)
{
    if (s->recent == NULL)
        return;
    recent_evict(s, UINT64_MAX);
    free(s->recent);
    s->recent = NULL;
}
