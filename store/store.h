/*
 * store.h — qbcdc's durable state in one LMDB environment.
 *
 * Named databases (schema version QBC_STORE_SCHEMA_VERSION):
 *   meta       "schema_version" -> u32 BE; "heartbeat" -> i64 BE ns (health probe writes)
 *   inbox      u64 BE sequence -> inbox record (header + the raw webhook body, exactly as received)
 *   quarantine u64 BE inbox sequence -> reason text (signed bodies that did not parse)
 *   pending    "realm\0Entity\0id" -> pending notice (coalesces repeated notices)
 *   event_ids  CloudEvents event id -> u64 BE inbox sequence (retry dedupe)
 * Later issues add entities, feed, tokens, cursors, dead letters; maxdbs leaves room.
 *
 * Threading: one writer thread owns every write transaction and does group commit:
 * qbc_store_submit() queues a job from any thread; the writer drains the queue,
 * applies every queued job in one transaction, commits (fsync) once, then calls each
 * job's on_commit exactly once. Readers use short read-only transactions from any
 * thread through the qbc_store_stats()/qbc_store_*_scan() calls.
 */
#ifndef QBC_STORE_H
#define QBC_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"

#define QBC_STORE_SCHEMA_VERSION 1

/* ============================== events ============================== */

/** a change operation as Intuit reports it (both webhook formats map onto these). */
typedef enum {
    QBC_OP_UNKNOWN = 0,
    QBC_OP_CREATE = 1,
    QBC_OP_UPDATE = 2,
    QBC_OP_DELETE = 3,
    QBC_OP_MERGE = 4,
    QBC_OP_VOID = 5,
    QBC_OP_EMAILED = 6,
} qbc_op_t;

/** lowercase wire name used by the feed ("create", "update", ...); "unknown" for anything else. */
const char *qbc_op_name(qbc_op_t op);

#define QBC_REALM_MAX 64     /**< bytes, including NUL */
#define QBC_ENTITY_MAX 48    /**< bytes, including NUL */
#define QBC_ID_MAX 64        /**< bytes, including NUL */
#define QBC_EVENT_ID_MAX 192 /**< bytes, including NUL */

/**
 * one parsed change notice: "entity <entity> <id> in company <realm> had <op> at <updated_ns>".
 * Strings are NUL-terminated; empty when absent.
 */
typedef struct st_qbc_event_t {
    char realm[QBC_REALM_MAX];
    char entity[QBC_ENTITY_MAX];          /**< canonical QBO name, e.g. "Invoice", "JournalEntry" */
    char id[QBC_ID_MAX];
    char deleted_id[QBC_ID_MAX];          /**< Merge: the id merged away ("" otherwise) */
    char event_id[QBC_EVENT_ID_MAX];      /**< CloudEvents "id" ("" for classic payloads) */
    qbc_op_t op;
    int64_t updated_ns;                   /**< lastUpdated / time, ns since epoch; 0 if absent */
} qbc_event_t;

/** payload formats an inbox record can hold. */
typedef enum {
    QBC_FORMAT_UNKNOWN = 0,     /**< did not parse far enough to tell */
    QBC_FORMAT_CLASSIC = 1,     /**< {"eventNotifications":[...]} */
    QBC_FORMAT_CLOUDEVENTS = 2, /**< [ {"specversion":...}, ... ] */
} qbc_format_t;

/* =============================== store ============================== */

typedef struct st_qbc_store_t qbc_store_t;

typedef struct st_qbc_store_config_t {
    const char *dir;     /**< environment directory; created (0700) if missing */
    uint64_t map_size;   /**< initial map size in bytes (0: 1 GiB) */
    uint64_t map_max;    /**< the map grows by doubling up to this many bytes (0: 64 GiB) */
    unsigned batch_max;  /**< most jobs in one group commit (0: 4096) */
} qbc_store_config_t;

/**
 * opens (creating if needed) the environment, checks or writes the schema version,
 * clears stale reader slots, and starts the writer thread.
 * @return 0, -errno, QBC_ESTORE (LMDB error, logged) or QBC_EINVAL (schema newer than this build)
 */
int qbc_store_open(const qbc_store_config_t *cfg, qbc_store_t **out);

/**
 * finishes every job already submitted (their callbacks run), stops the writer,
 * and closes the environment. Jobs submitted afterwards are refused with QBC_ECLOSED.
 */
void qbc_store_close(qbc_store_t *store);

/* ============================ write jobs ============================ */

typedef enum {
    QBC_JOB_WEBHOOK = 1, /**< store a raw body and its parsed events */
    QBC_JOB_PING = 2,    /**< write the heartbeat key: proves the store is writable */
} qbc_job_kind_t;

#define QBC_INBOX_QUARANTINED 0x01 /**< the body did not parse (wholly or partly) */

typedef struct st_qbc_store_job_t qbc_store_job_t;

/**
 * called exactly once per accepted job, on the writer thread, after the commit that
 * holds it is durable (job->result == 0) or after it failed (job->result < 0, nothing
 * of the job was stored). The callback takes ownership of the job back; it must not
 * block: hand the job to another thread's queue and return.
 */
typedef void (*qbc_store_job_cb)(qbc_store_job_t *job);

struct st_qbc_store_job_t {
    /* --- filled by the submitter; owned by it, untouched by the store --- */
    qbc_job_kind_t kind;
    const void *body;          /**< raw webhook bytes (QBC_JOB_WEBHOOK) */
    size_t body_len;
    uint8_t inbox_flags;       /**< QBC_INBOX_* */
    uint8_t format;            /**< qbc_format_t */
    const char *quarantine_reason; /**< with QBC_INBOX_QUARANTINED: why (NUL-terminated) */
    const qbc_event_t *events; /**< parsed events (may be empty) */
    size_t n_events;
    int64_t received_ns;       /**< wall clock at receipt */
    qbc_store_job_cb on_commit;
    void *data;                /**< for the submitter */

    /* --- results, valid in on_commit --- */
    int result;                /**< 0, QBC_EFULL, QBC_ESTORE, QBC_ECLOSED */
    uint64_t inbox_seq;        /**< sequence of the stored body; 0 when not stored (all events duplicates) */
    uint32_t n_stored_events;  /**< events that became or refreshed pending notices */
    uint32_t n_dup_events;     /**< CloudEvents ids seen before (skipped) */

    /* --- private to the store --- */
    qbc_store_job_t *_next;
};

/**
 * queues a job for the next group commit. Thread-safe.
 * @return 0 (on_commit will be called exactly once), or QBC_ECLOSED (it will not)
 */
int qbc_store_submit(qbc_store_t *store, qbc_store_job_t *job);

/* ============================== reading ============================= */

typedef struct st_qbc_store_stats_t {
    uint64_t inbox_depth;       /**< raw bodies held */
    uint64_t quarantined;       /**< bodies held in quarantine */
    uint64_t pending;           /**< coalesced pending notices */
    uint64_t event_ids;         /**< CloudEvents ids remembered */
    uint64_t last_inbox_seq;
    uint64_t used_bytes;        /**< pages in use x page size */
    uint64_t map_bytes;         /**< current map size */
    /* writer counters since open (read without locking; may lag by one batch) */
    uint64_t commits;
    uint64_t commit_failures;
    uint64_t jobs_committed;
    uint64_t map_growths;
    uint64_t batch_hist[8];     /**< group-commit sizes: <=1, <=2, <=4, <=8, <=16, <=64, <=256, more */
    uint64_t commit_ns_sum;     /**< time spent in mdb_txn_commit (incl. fsync) */
} qbc_store_stats_t;

int qbc_store_stats(qbc_store_t *store, qbc_store_stats_t *out);

/** upper bounds of batch_hist buckets, for rendering; the last bucket is +Inf. */
extern const unsigned qbc_store_batch_bounds[7];

/** an inbox record as read back; pointers are valid only during the callback. */
typedef struct st_qbc_inbox_record_t {
    uint64_t seq;
    int64_t received_ns;
    uint8_t flags;
    uint8_t format;
    uint32_t n_events;
    const char *body;
    size_t body_len;
    const char *quarantine_reason; /**< NULL unless quarantined */
} qbc_inbox_record_t;

/** return non-zero from a scan callback to stop early. */
typedef int (*qbc_inbox_scan_cb)(const qbc_inbox_record_t *rec, void *ctx);

/** calls cb for each inbox record with seq > after, in order. Holds one read transaction. */
int qbc_store_inbox_scan(qbc_store_t *store, uint64_t after, qbc_inbox_scan_cb cb, void *ctx);

/** a coalesced pending notice as read back; strings valid only during the callback. */
typedef struct st_qbc_pending_t {
    const char *realm, *entity, *id;
    uint32_t op_mask;     /**< bit (1 << qbc_op_t) for every operation reported */
    qbc_op_t last_op;     /**< the operation of the notice with the latest updated_ns */
    uint32_t count;       /**< notices coalesced into this one */
    uint64_t first_seq, last_seq; /**< inbox sequences of the first and latest notices */
    int64_t updated_ns;   /**< latest updated_ns seen */
} qbc_pending_t;

typedef int (*qbc_pending_scan_cb)(const qbc_pending_t *p, void *ctx);

/** calls cb for each pending notice, realm by realm (realm NULL: all realms). */
int qbc_store_pending_scan(qbc_store_t *store, const char *realm, qbc_pending_scan_cb cb, void *ctx);

/**
 * opens an existing environment read-only for inspection (CLI), without a writer.
 * Safe while a service holds it open (LMDB is multi-process). Close with qbc_store_close().
 */
int qbc_store_open_readonly(const char *dir, qbc_store_t **out);

#endif
