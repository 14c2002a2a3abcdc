/*
 * store_internal.h — what the files of store/ share and nobody else sees.
 */
#ifndef QBC_STORE_INTERNAL_H
#define QBC_STORE_INTERNAL_H

#include <pthread.h>
#include <lmdb.h>
#include "store.h"

#define QBC_STORE_MAXDBS 24
#define INBOX_HEADER_SIZE 16
#define PENDING_VALUE_SIZE 36

struct st_qbc_store_t {
    MDB_env *env;
    MDB_dbi dbi_meta, dbi_inbox, dbi_quarantine, dbi_pending, dbi_event_ids;
    int readonly;
    char *dir;
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
    int closing;

    /* owned by the writer thread */
    uint64_t next_seq;
    int64_t full_logged_ns;

    /* counters: written by the writer with relaxed atomics, read by anyone */
    uint64_t st_commits, st_commit_failures, st_jobs, st_growths, st_commit_ns;
    uint64_t st_batch_hist[8];
};

/* ---- env.c ---- */
/** grows the map by doubling (bounded by map_max); writer thread only. 0 or QBC_EFULL/QBC_ESTORE. */
int qbc_store__grow(qbc_store_t *s);
/** begins a read-only transaction under the gate; pair with qbc_store__read_end. */
int qbc_store__read_begin(qbc_store_t *s, MDB_txn **txn);
void qbc_store__read_end(qbc_store_t *s, MDB_txn *txn);

/* ---- writer.c ---- */
int qbc_store__writer_start(qbc_store_t *s);
/** stops the writer after it has drained the queue; later submits get QBC_ECLOSED. */
void qbc_store__writer_stop(qbc_store_t *s);
#define qbc_store__writer_stop_for_test qbc_store__writer_stop

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

/** the in-memory form of a pending notice's value. */
typedef struct st_qbc_pending_rec_t {
    uint8_t last_op;
    uint32_t op_mask;
    uint32_t count;
    uint64_t first_seq, last_seq;
    int64_t updated_ns;
} qbc_pending_rec_t;

void qbc_store__pending_encode(const qbc_pending_rec_t *r, unsigned char out[PENDING_VALUE_SIZE]);
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

#endif
