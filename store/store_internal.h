/*
 * store_internal.h — what the files of store/ share and nobody else sees.
 */
#ifndef QBC_STORE_INTERNAL_H
#define QBC_STORE_INTERNAL_H

#include <pthread.h>
#include <string.h>
#include <lmdb.h>
#include "store.h"

#define QBC_STORE_MAXDBS 24
#define QBC_MASTER_KEY_LEN 32
#define QBC_SEAL_OVERHEAD QBC_STORE_SEAL_OVERHEAD
#define ENTITY_HEADER_SIZE 22
#define KEY_BUF_SIZE (QBC_REALM_MAX + QBC_ENTITY_MAX + QBC_ID_MAX)
#define INBOX_HEADER_SIZE 16
#define PENDING_VALUE_SIZE 36

/* the webhook journal (journal.c, ingest.c) */
#define QBC_JREC_HEADER 40
#define QBC_JREC_WEBHOOK 1
#define QBC_JREC_WRAP 2
#define QBC_JOURNAL_MIN (1u << 20)
#define QBC_JOURNAL_DEFAULT (16u << 20)
#define QBC_JOB_APPLY 100 /* private job kind: apply journal records to LMDB (qbc_apply_job_t) */
#define QBC_JOB_PRUNE 101 /* private job kind: prune old inbox bodies and CloudEvents ids (retention.c) */

/** QBC_JOB_APPLY: journaled webhook records, applied to LMDB by the writer (ingest.c, env.c's replay) */
typedef struct st_qbc_apply_job_t {
    qbc_store_job_t job;
    unsigned char *buf; /* journal records back to back */
    size_t len;
    uint64_t last_jseq, end_pos; /* the last record's jseq and the journal position after it */
    int applied;                 /* result: 1 when applied (0: held back, an earlier apply failed) */
    int recovery;                /* the writer's retry after a failed apply: applied although stuck */
} qbc_apply_job_t;

/** one recent CloudEvents id, journaled but perhaps not yet applied (ingest.c) */
typedef struct st_qbc_recent_id_t qbc_recent_id_t;

#define QBC_FEED_ID_KEY "feed_id" /* meta: the feed identity, QBC_FEED_ID_LEN hex digits (env.c) */

struct st_qbc_store_t {
    MDB_env *env;
    MDB_dbi dbi_meta, dbi_inbox, dbi_quarantine, dbi_pending, dbi_event_ids;
    MDB_dbi dbi_entities, dbi_feed, dbi_realms, dbi_tokens, dbi_dead, dbi_jobs, dbi_feed_times, dbi_usage;
    MDB_dbi dbi_subs, dbi_sub_cursors; /* push subscriptions (subscriptions.c) */
    int has_subs;                      /* 0: a read-only open of a store made before them */
    int has_jobs;                      /* 0: a read-only open of a store made before the jobs database existed */
    int has_feed_times;
    int has_usage; /* the same for usage (metered calls by period) */ /* the same for feed_times */
    unsigned char *master_key; /* QBC_MASTER_KEY_LEN bytes on a page of its own, left out of core dumps */
    int has_key;
    pthread_mutex_t listen_mu; /* held while listeners are called, added or removed */
    struct {
        qbc_store_listener_cb cb; /* NULL: a free slot */
        void *ctx;
    } listeners[QBC_STORE_MAX_LISTENERS];
    uint64_t feed_last;                /* last committed feed sequence; read by anyone (atomic) */
    char feed_id[QBC_FEED_ID_LEN + 1]; /* set at open; changed only by QBC_JOB_FEED_APPEND (under feed_id_mu) */
    pthread_mutex_t feed_id_mu;        /* guards feed_id's changes and qbc_store_feed_id_copy */
    int adopt_feed_id;                 /* open: make no feed id (qbc_store_config_t.adopt_feed_id) */
    int readonly;
    int renew_feed_id;    /* open: replace the feed id (qbc_store_config_t.new_feed_id) */
    uint64_t job_id_base; /* qbc_store_config_t.job_id_base */
    char *dir;
    struct st_open_dir_t *dir_claim; /* this process's one environment on dir is this store's (env.c claim_dir) */
    uint64_t map_max;
    unsigned batch_max;

    /*
     * The resize gate: every read transaction in this process runs under the read
     * side; growing the map (which munmaps and remaps) takes the write side, so no
     * reader ever holds a pointer into the old mapping (STYLE.md 3.3).
     */
    pthread_rwlock_t gate;

    /* writer thread and its queue (guarded by mu) */
    pthread_t writer;
    int writer_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    qbc_store_job_t *q_head, *q_tail;
    int q_urgent; /* queued jobs other than QBC_JOB_APPLY */
    int closing;
    int64_t last_commit_ns, apply_interval_ns; /* journal batches gather for this long (writer.c) */

    /*
     * the journal and the ingest thread (journal.c, ingest.c): webhooks are decided,
     * journaled and acked there, then handed to the writer as QBC_JOB_APPLY jobs.
     */
    int jfd;
    uint64_t jsize;
    uint64_t j_head_pos, j_next_jseq, next_inbox; /* owned by the ingest thread */
    uint32_t j_epoch;                             /* this open's epoch, durable in meta */
    uint64_t j_applied_pos, j_applied_jseq;       /* atomics: set by the writer after an apply commits */
    uint64_t acked_inbox;                         /* atomic: the last inbox seq acked (journaled) */
    int j_stuck;                                  /* atomic: an apply failed; webhooks are refused */
    int j_apply_failed;                           /* writer thread: j_stuck came from an apply (retried) */
    int64_t j_retry_due_ns, j_retry_wait_ns;      /* writer thread: when the retry runs, and the back-off */
    pthread_t ingest;
    int ingest_started, iclosing;
    pthread_mutex_t imu;
    pthread_cond_t icv;                       /* jobs queued, or closing */
    pthread_cond_t space_cv;                  /* the writer applied something (journal space freed) */
    qbc_webhook_job_t *iq_head, *iq_tail;     /* linked through job._next */
    qbc_recent_id_t **recent;                 /* hash buckets of ids journaled but not known applied */
    qbc_recent_id_t *recent_old, *recent_new; /* the same, oldest first */
    int64_t ifull_logged_ns;
    uint64_t st_jcommits, st_jcommit_ns, st_jwebhooks, st_jbatch_hist[8];

    /* owned by the writer thread */
    uint64_t next_feed, next_dead;
    int64_t full_logged_ns;

    /* retention (retention.c): settings, then the writer thread's state */
    int64_t retention_ns, prune_interval_ns;      /* retention_ns 0: keep every inbox body */
    int64_t feed_retention_ns;                    /* 0: keep the whole feed */
    int64_t feed_time_step_ns, feed_time_last_ns; /* feed_times: one entry a step (writer.c) */
    int64_t prune_due_ns;
    int prune_queued;
    uint64_t prune_sweep_floor, prune_swept_floor; /* the id sweep under way began at; the last complete one */
    unsigned char prune_key[QBC_EVENT_ID_MAX];     /* where the id sweep resumes (length 0: at the start) */
    size_t prune_key_len;
    uint64_t st_pruned_inbox, st_pruned_ids, st_pruned_feed; /* relaxed atomics */

    /* counters: written by the writer with relaxed atomics, read by anyone */
    uint64_t st_commits, st_commit_failures, st_jobs, st_growths, st_commit_ns;
    uint64_t st_batch_hist[8];
};

/* ---- usage.c ---- */
/** writer thread: adds a QBC_JOB_USAGE job's counts. 0 or an LMDB code */
int qbc_store__apply_usage(qbc_store_t *s, MDB_txn *txn, qbc_usage_job_t *job);
/** meta's key of a named cursor ("cursor:<name>") into key (48 bytes). 0, or QBC_EINVAL (name empty or 32+ bytes) */
int qbc_store__cursor_key(const char *name, char *key, size_t size);
/** writer thread: moves a named cursor forward (QBC_JOB_CURSOR). 0, QBC_EINVAL or an LMDB code */
int qbc_store__apply_cursor(qbc_store_t *s, MDB_txn *txn, qbc_cursor_job_t *job);

/* ---- datafile.c ---- */
/**
 * checks data.mdb in dir before LMDB maps it: a file shorter than its last commit's pages is
 * refused (LMDB would die of SIGBUS reading past its end), unless every page missing at the
 * end is on LMDB's free list (pages allocated and freed again in one transaction are never
 * written). A missing file or one too young for a meta page passes (LMDB decides).
 * @return 0, or QBC_ESTORE (logged, with what to do)
 */
int qbc_store__check_data_file(const char *dir);
/**
 * one look at an open data.mdb (what qbc_store__check_data_file() does, once, without logging):
 * *size is the file's size and *need what its last commit's pages span (0 when it holds no meta).
 * @return 0 (fine, or no meta to judge by), or QBC_ESTORE (truncated)
 */
int qbc_store__check_data_fd(int fd, uint64_t *size, uint64_t *need);

/* ---- env.c ---- */
/** logs that the map is full at its maximum, at most once per 10 s per *last_logged_ns. */
void qbc_store__log_full(qbc_store_t *s, int64_t *last_logged_ns, const char *what);
/**
 * writer thread, after an apply failed (space ran out): applies what the journal holds past
 * LMDB's applied point again; on success webhooks are taken again, else the next try is
 * backed off (1 s doubling to 60 s). Webhooks stay refused meanwhile, so nothing is journaled
 * while it reads the journal.
 */
void qbc_store__retry_applies(qbc_store_t *s);
/** grows the map by doubling (bounded by map_max); writer thread only. 0 or QBC_EFULL/QBC_ESTORE. */
int qbc_store__grow(qbc_store_t *s);
/** begins a read-only transaction under the gate; pair with qbc_store__read_end. */
int qbc_store__read_begin(qbc_store_t *s, MDB_txn **txn);
void qbc_store__read_end(qbc_store_t *s, MDB_txn *txn);

/* ---- writer.c ---- */
/** the batch-size histogram bucket (qbc_store_batch_bounds, then +Inf) for a batch of n */
unsigned qbc_store__batch_bucket(size_t n);
int qbc_store__writer_start(qbc_store_t *s);
/** stops the writer after it has drained the queue; later submits get QBC_ECLOSED. */
void qbc_store__writer_stop(qbc_store_t *s);
#define qbc_store__writer_stop_for_test(s) (qbc_store__ingest_stop(s), qbc_store__writer_stop(s))

/* ---- journal.c ---- */
uint32_t qbc_store__crc32c(const void *data, size_t len);
/** bytes a record with this payload takes (header, payload, padding to 8). */
size_t qbc_store__jrec_size(size_t payload_len);
/** fills in the header (and padding) of a record whose payload is already at rec + QBC_JREC_HEADER. */
void qbc_store__jrec_seal(unsigned char *rec, uint64_t jseq, uint64_t pos, uint32_t len, uint8_t kind, uint32_t epoch);
/** a record's header fields as written (unchecked; size = the padded record length) */
typedef struct {
    uint64_t jseq, pos;
    uint32_t len, epoch;
    uint8_t kind;
    size_t size;
} qbc_jrec_hdr_t;
void qbc_store__jrec_header(const unsigned char *rec, qbc_jrec_hdr_t *h);
/**
 * the applied point, kept in meta under QBC_JMARK_KEY in the transaction that applied
 * the records: valid records resume after jseq, at pos, with no older epoch.
 */
#define QBC_JMARK_KEY "journal"
#define QBC_JMARK_SIZE 20
typedef struct {
    uint64_t jseq, pos;
    uint32_t epoch;
} qbc_jmark_t;
void qbc_store__jmark_encode(const qbc_jmark_t *m, unsigned char out[QBC_JMARK_SIZE]);
int qbc_store__jmark_decode(const void *data, size_t len, qbc_jmark_t *m);
/**
 * 0 if buf holds a valid record with this jseq and pos and an epoch >= *epoch (sets
 * *epoch to its epoch, its padded length and kind), else -1.
 */
int qbc_store__jrec_check(const unsigned char *buf, size_t avail, uint64_t jseq, uint64_t pos, uint32_t *epoch,
                          size_t *rec_len, uint8_t *kind);
/** a webhook record's payload as decoded (pointers into the payload, except events and dup) */
typedef struct {
    uint64_t inbox_seq; /* 0: a pure repeat; never journaled */
    int64_t received_ns;
    uint8_t inbox_flags, format;
    const unsigned char *body;
    size_t body_len;
    const char *reason;
    size_t reason_len;
    uint32_t n_events;
    qbc_event_t *events; /* malloc'd */
    unsigned char *dup;  /* malloc'd: 1 = a CloudEvents id seen before, skipped */
} qbc_jwebhook_t;
size_t qbc_store__jwebhook_size(const qbc_webhook_job_t *job);
/** job->inbox_seq must be set; dup: per event, 1 = repeat (NULL: none). */
void qbc_store__jwebhook_encode(const qbc_webhook_job_t *job, const unsigned char *dup, unsigned char *out);
int qbc_store__jwebhook_decode(const unsigned char *payload, size_t len, qbc_jwebhook_t *w);
void qbc_store__jwebhook_free(qbc_jwebhook_t *w);
/**
 * opens (creating, zero-filled, if missing) and locks DIR/journal. bound: LMDB's
 * meta has a "journal" key, i.e. this environment has had a journal; if not, an
 * existing file is someone else's and is set aside as DIR/journal.orphan.
 */
int qbc_store__journal_open(qbc_store_t *s, uint64_t size, int bound);
void qbc_store__journal_close(qbc_store_t *s);
/** writes len bytes at position pos (splitting at the end of the ring). */
int qbc_store__journal_write(qbc_store_t *s, const unsigned char *buf, uint64_t pos, size_t len);
int qbc_store__journal_sync(qbc_store_t *s);
/**
 * reads the journal and gathers every valid record after the applied point into
 * *out (back to back, WRAP markers dropped), for replay; sets where writing resumes.
 */
int qbc_store__journal_scan(qbc_store_t *s, const qbc_jmark_t *applied, unsigned char **out, size_t *out_len,
                            uint64_t *end_pos, uint64_t *next_jseq, uint64_t *n_records);

/* ---- ingest.c ---- */
int qbc_store__ingest_start(qbc_store_t *s);
int qbc_store__ingest_submit(qbc_store_t *s, qbc_webhook_job_t **jobs, size_t n);
/** stops the ingest thread after it has journaled (or failed) everything queued. */
void qbc_store__ingest_stop(qbc_store_t *s);
void qbc_store__ingest_free(qbc_store_t *s);
/** writer thread, after an apply commit: frees journal space up to (jseq, pos). */
void qbc_store__ingest_applied(qbc_store_t *s, uint64_t jseq, uint64_t pos);

/* ---- writer.c ---- */
/** queues a job for the writer itself (the ingest thread's APPLY jobs). */
int qbc_store__writer_submit(qbc_store_t *s, qbc_store_job_t *job);
/** applies a list of jobs in one transaction, growing the map as needed (before the writer runs: replay). */
int qbc_store__run_now(qbc_store_t *s, qbc_store_job_t *list);

/* ---- retention.c ---- */
/** some retention is set: the writer prunes now and then */
int qbc_store__prune_on(const qbc_store_t *s);
/** a prune job if one is due (writer thread; it frees itself when done), else NULL */
qbc_store_job_t *qbc_store__prune_job(qbc_store_t *s, int64_t now_mono_ns);
/** the prune job's transaction: one bounded slice of pruning */
int qbc_store__prune(qbc_store_t *s, MDB_txn *txn, qbc_store_job_t *job);

/* ---- feed_append.c ---- */
/** what a QBC_JOB_FEED_APPEND job did to the transaction's feed (writer.c adopts it after the commit) */
typedef struct st_qbc_feed_append_effect_t {
    uint64_t next_feed;                /* in: the feed's next sequence; out: after the records */
    uint64_t first_seq;                /* out: the first record appended (0: none) */
    int reset;                         /* out: the feed was emptied for a new id */
    char feed_id[QBC_FEED_ID_LEN + 1]; /* out, with reset: the new id */
    uint32_t appended;                 /* out: records appended */
} qbc_feed_append_effect_t;
/** writer thread: a QBC_JOB_FEED_APPEND job's writes. 0, QBC_EINVAL or an LMDB code */
int qbc_store__apply_feed_append(qbc_store_t *s, MDB_txn *txn, qbc_feed_append_job_t *job,
                                 qbc_feed_append_effect_t *fx);
/** 1 if p[0..len) is a feed id: QBC_FEED_ID_LEN lowercase hex digits (env.c) */
int qbc_store__valid_feed_id(const void *p, size_t len);

/* ---- subscriptions.c ---- */
int qbc_store__apply_sub_put(qbc_store_t *s, MDB_txn *txn, qbc_sub_put_job_t *job);
int qbc_store__apply_sub_delete(qbc_store_t *s, MDB_txn *txn, qbc_sub_delete_job_t *job);
int qbc_store__apply_sub_ack(qbc_store_t *s, MDB_txn *txn, qbc_sub_ack_job_t *job);

/* ---- crypt.c ---- */
/** reads the 32-byte key, or creates it (random, 0600) when missing. */
int qbc_store__load_master_key(const char *path, unsigned char key[QBC_MASTER_KEY_LEN]);
/** out must hold len + QBC_SEAL_OVERHEAD bytes. */
int qbc_store__seal(const unsigned char key[QBC_MASTER_KEY_LEN], const char *realm, const unsigned char *plain,
                    size_t len, unsigned char *out, size_t *out_len);
/** plain must hold in_len bytes. QBC_EAUTH if the key or realm is wrong or the blob was altered. */
int qbc_store__open_sealed(const unsigned char key[QBC_MASTER_KEY_LEN], const char *realm, const unsigned char *in,
                           size_t in_len, unsigned char *plain, size_t *plain_len);

/* ---- records.c: the byte layouts of values and keys ---- */
static inline void put_u32be(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8),
    p[3] = (unsigned char)v;
}
static inline uint32_t get_u32be(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void put_u64be(unsigned char *p, uint64_t v)
{
    put_u32be(p, (uint32_t)(v >> 32));
    put_u32be(p + 4, (uint32_t)v);
}
static inline uint64_t get_u64be(const unsigned char *p)
{
    return (uint64_t)get_u32be(p) << 32 | get_u32be(p + 4);
}

/** writes a u64 BE value into meta (a high-water mark, the heartbeat, "feed_pruned") */
static inline int qbc_store__meta_put_u64(MDB_txn *txn, MDB_dbi meta, const char *name, uint64_t value)
{
    unsigned char b[8];
    put_u64be(b, value);
    MDB_val k = {strlen(name), (void *)name}, v = {8, b};
    return mdb_put(txn, meta, &k, &v, 0);
}

/** a u64 BE value of meta (a high-water mark, "feed_pruned"), 0 when absent */
static inline uint64_t qbc_store__meta_u64(MDB_txn *txn, MDB_dbi meta, const char *name)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    return mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 8 ? get_u64be((const unsigned char *)v.mv_data) : 0;
}

/** the in-memory form of a pending notice's value. */
typedef struct st_qbc_pending_rec_t {
    uint8_t last_op;
    uint32_t op_mask;
    uint32_t count;
    uint64_t first_seq, last_seq;
    int64_t updated_ns;
    uint8_t merge_role;          /**< 0, PENDING_MERGED_FROM or PENDING_MERGED_INTO */
    char merge_peer[QBC_ID_MAX]; /**< the other side of the latest merge reported ("" without one) */
} qbc_pending_rec_t;

#define PENDING_MERGED_FROM 1 /**< this entity survived a merge: merge_peer was merged into it */
#define PENDING_MERGED_INTO 2 /**< this entity was merged away into merge_peer */
/** a pending value's most bytes: the fixed part, then [role u8][peer length u8][peer] after a merge */
#define PENDING_VALUE_MAX (PENDING_VALUE_SIZE + 2 + QBC_ID_MAX)

/** writes the fixed part of a pending value (all a dead letter keeps). */
void qbc_store__pending_encode(const qbc_pending_rec_t *r, unsigned char out[PENDING_VALUE_SIZE]);
/** writes a whole pending value, merge link included; returns its length. */
size_t qbc_store__pending_encode_full(const qbc_pending_rec_t *r, unsigned char out[PENDING_VALUE_MAX]);
/** reads a pending value; one without a merge link (or written before there were any) has merge_role 0. */
int qbc_store__pending_decode(const void *data, size_t len, qbc_pending_rec_t *r);
/** folds one more notice into r (r zeroed = first notice). */
void qbc_store__pending_fold(qbc_pending_rec_t *r, qbc_op_t op, int64_t updated_ns, uint64_t seq);

/** key "realm\0entity\0id" into buf (size >= QBC_REALM_MAX+QBC_ENTITY_MAX+QBC_ID_MAX); returns its length. */
size_t qbc_store__pending_key(const char *realm, const char *entity, const char *id, char *buf);
/** splits a pending key back into its three parts (pointers into a NUL-terminated copy in buf). */
int qbc_store__pending_key_split(const void *key, size_t len, char *buf, size_t bufsz, const char **realm,
                                 const char **entity, const char **id);

void qbc_store__inbox_header(unsigned char out[INBOX_HEADER_SIZE], uint8_t flags, uint8_t format, uint32_t n_events,
                             int64_t received_ns);
int qbc_store__inbox_decode(uint64_t seq, const void *data, size_t len, qbc_inbox_record_t *rec);

/** entity value: [1][flags][op][source][updated_ns][feed_seq][token_len][token][data]. Returns its size. */
size_t qbc_store__entity_size(const qbc_version_t *v);
void qbc_store__entity_encode(const qbc_version_t *v, uint64_t feed_seq, unsigned char *out);
/** fills rec with pointers into the value (rec->data is NOT copied). */
int qbc_store__entity_decode(const void *data, size_t len, qbc_entity_rec_t *rec);
/**
 * the entity version stored under key k in txn, read into *stored (its data points into the
 * map: valid for txn's life); *have 1 when one is held and readable, else 0.
 * @return 0, or mdb_get's error
 */
int qbc_store__entity_held(qbc_store_t *s, MDB_txn *txn, MDB_val *k, qbc_entity_rec_t *stored, int *have);
/** stores v as the entity's latest version under key k, its feed record feed_seq. 0, or mdb_put's error */
int qbc_store__entity_put(qbc_store_t *s, MDB_txn *txn, MDB_val *k, const qbc_version_t *v, uint64_t feed_seq);
/** is v newer than the stored version (NULL: nothing stored)? See qbc_version_t. */
int qbc_store__version_newer(const qbc_entity_rec_t *stored, const qbc_version_t *v);

/** feed value: [1][realm_len][entity_len][0][realm][entity][JSON change object]. malloc'd; sets *len. */
unsigned char *qbc_store__feed_render(const qbc_version_t *v, uint64_t seq, size_t *len);
int qbc_store__feed_decode(uint64_t seq, const void *data, size_t len, char *realm_buf, char *entity_buf,
                           qbc_feed_rec_t *rec);

/** realm state as JSON text (malloc'd) and back. */
char *qbc_store__realm_encode(const qbc_realm_t *r);
int qbc_store__realm_decode(const char *realm, const void *data, size_t len, qbc_realm_t *out);

/** a backfill job as JSON text (malloc'd) and back. */
char *qbc_store__backfill_encode(const qbc_backfill_t *b);
int qbc_store__backfill_decode(uint64_t id, const void *data, size_t len, qbc_backfill_t *out);

/** tokens in clear, serialised (out must hold QBC_TOKENS_PLAIN_MAX); returns the length. */
#define QBC_TOKENS_PLAIN_MAX (1 + 16 + 4 + 2 * QBC_TOKEN_MAX)
size_t qbc_store__tokens_encode(const qbc_tokens_t *t, unsigned char *out);
int qbc_store__tokens_decode(const unsigned char *in, size_t len, qbc_tokens_t *t);

#endif
