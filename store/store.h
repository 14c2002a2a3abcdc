/*
 * store.h — qbcdc's durable state in one LMDB environment.
 *
 * Named databases (schema version QBC_STORE_SCHEMA_VERSION):
 *   meta       "schema_version" -> u32 BE; "feed_id" -> 32 lowercase hex digits (the feed's identity,
 *              created with the store); "heartbeat" -> i64 BE ns (health probe writes);
 *              "journal" -> last applied journal jseq, position after it, its epoch;
 *              "journal_epoch" -> u32 BE, one more at every writable open; "dead_seq", "inbox_seq"
 *              high-water marks; "feed_pruned" -> u64 BE, the last feed sequence retention removed
 *   inbox      u64 BE sequence -> inbox record (header + the raw webhook body, exactly as received)
 *   quarantine u64 BE inbox sequence -> reason text (signed bodies that did not parse)
 *   pending    "realm\0Entity\0id" -> pending notice (coalesces repeated notices)
 *   event_ids  CloudEvents event id -> u64 BE inbox sequence (retry dedupe)
 *   entities   "realm\0Entity\0id" -> latest stored version (or a tombstone)
 *   feed       u64 BE feed sequence -> one change, as the JSON object the feed serves
 *   feed_times i64 BE wall-clock ns -> u64 BE the first feed sequence committed then (one a
 *              step: a minute, or a quarter of the feed retention); feed retention reads it
 *   realms     realm -> realm state (JSON: status, last error, ...)
 *   tokens     realm -> OAuth tokens, AES-256-GCM encrypted with the master key
 *   dead       u64 BE dead-letter id -> a notice the reconciler gave up on, with its error
 *   jobs       u64 BE job id -> a backfill job and its checkpoint (JSON: qbc_backfill_t)
 *   subscriptions u64 BE id -> push delivery settings (JSON) and sealed secrets (subscriptions.c)
 *   sub_cursors   u64 BE id -> a subscription's cursor, its epoch, and why it is disabled
 *
 * Beside it, DIR/journal: a ring file where webhooks are made durable first (journal.c).
 *
 * Threading: qbc_store_submit() queues a job from any thread. Webhook jobs go to the
 * ingest thread, which journals a batch with one fdatasync and then calls each job's
 * on_commit; it hands the batch to the writer, which applies it to LMDB. Every other
 * job goes to the writer, which owns every write transaction and does group commit:
 * it drains its queue, applies every queued job in one transaction, commits (fsync)
 * once, then calls each job's on_commit exactly once. Readers use short read-only
 * transactions from any thread through the qbc_store_stats()/qbc_store_*_scan() calls.
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
    /**
     * the feed's op for an object first seen through a snapshot (a backfill job with reason
     * "snapshot"): the store held no version of it. Chosen by the store, not the caller.
     */
    QBC_OP_SNAPSHOT = 7,
} qbc_op_t;

/** lowercase wire name used by the feed ("create", "update", ..., "snapshot"); "unknown" for anything else. */
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
    char entity[QBC_ENTITY_MAX]; /**< canonical QBO name, e.g. "Invoice", "JournalEntry" */
    char id[QBC_ID_MAX];
    char deleted_id[QBC_ID_MAX];     /**< Merge: the id merged away ("" otherwise) */
    char event_id[QBC_EVENT_ID_MAX]; /**< CloudEvents "id" ("" for classic payloads) */
    qbc_op_t op;
    int64_t updated_ns; /**< lastUpdated / time, ns since epoch; 0 if absent */
} qbc_event_t;

/** payload formats an inbox record can hold. */
typedef enum {
    QBC_FORMAT_UNKNOWN = 0,     /**< did not parse far enough to tell */
    QBC_FORMAT_CLASSIC = 1,     /**< {"eventNotifications":[...]} */
    QBC_FORMAT_CLOUDEVENTS = 2, /**< [ {"specversion":...}, ... ] */
} qbc_format_t;

/** where a fetched version came from (the feed's "source"). */
typedef enum {
    QBC_SOURCE_WEBHOOK = 1,
    QBC_SOURCE_CDC = 2,
    QBC_SOURCE_BACKFILL = 3,
    QBC_SOURCE_SNAPSHOT = 4, /**< a backfill job with reason "snapshot" (a realm's first connection) */
} qbc_source_t;

/** "webhook", "cdc", "backfill", "snapshot" */
const char *qbc_source_name(qbc_source_t source);

#define QBC_SYNC_TOKEN_MAX 24 /**< bytes, including NUL */

/**
 * one version of an entity as fetched from QBO, offered to the store. The store keeps
 * it (and appends it to the feed) only if it is newer than what it holds: a higher
 * SyncToken, or the same SyncToken with a later LastUpdatedTime; a delete is newer
 * than any live version and is recorded once. Anything else is a duplicate.
 */
typedef struct st_qbc_version_t {
    char realm[QBC_REALM_MAX];
    char entity[QBC_ENTITY_MAX];
    char id[QBC_ID_MAX];
    /**
     * QBO SyncToken (decimal string); "" if unknown (deletes: the store then records the
     * last version it held, and the feed says null when it held none)
     */
    char sync_token[QBC_SYNC_TOKEN_MAX];
    int64_t updated_ns; /**< MetaData.LastUpdatedTime in ns since epoch; 0 if unknown */
    qbc_op_t op;        /**< what the feed reports: CREATE, UPDATE, DELETE, MERGE or VOID; with
                             source SNAPSHOT the store makes a live version of an object it
                             never held QBC_OP_SNAPSHOT (decided in the dedupe's transaction) */
    uint8_t source;     /**< qbc_source_t */
    const char *data;   /**< the entity's JSON object (compact text); NULL for DELETE */
    size_t data_len;
    char merged_from[QBC_ID_MAX]; /**< a merge's survivor: the id merged into it ("" otherwise) */
    char merged_into[QBC_ID_MAX]; /**< a merge's deleted side: the survivor's id ("" otherwise) */
} qbc_version_t;

/** a pending notice the caller handled; removed only if nothing was folded into it since it was read. */
typedef struct st_qbc_notice_ref_t {
    char realm[QBC_REALM_MAX];
    char entity[QBC_ENTITY_MAX];
    char id[QBC_ID_MAX];
    uint64_t last_seq; /**< qbc_pending_t.last_seq as read */
} qbc_notice_ref_t;

/* =============================== realms ============================= */

typedef enum {
    QBC_REALM_ACTIVE = 0,       /**< has tokens; synced */
    QBC_REALM_DISCONNECTED = 1, /**< tokens refused (invalid_grant) or erased; pending work is kept */
    QBC_REALM_PAUSED = 2,       /**< an operator paused it */
} qbc_realm_status_t;

/** "active", "disconnected", "paused" */
const char *qbc_realm_status_name(qbc_realm_status_t st);

/** a realm's durable state (tokens are separate: qbc_tokens_t). */
typedef struct st_qbc_realm_t {
    char realm[QBC_REALM_MAX];
    qbc_realm_status_t status;
    char last_error[256];     /**< "" when none; never contains a token */
    int64_t last_error_ns;    /**< wall clock when last_error was set (0: none) */
    int64_t connected_ns;     /**< when tokens were last registered */
    int64_t cdc_watermark_ns; /**< issue 5: changes up to here are confirmed by CDC (0: none yet) */
    int64_t last_cdc_ns;      /**< issue 5: when the last CDC poll finished */
    int64_t cdc_requested_ns; /**< POST /admin/realms/{realm}/cdc asked for a poll at this time (0: never) */
} qbc_realm_t;

/* ============================= backfill jobs ======================== */

typedef enum {
    QBC_BACKFILL_QUEUED = 0,
    QBC_BACKFILL_RUNNING = 1,
    QBC_BACKFILL_DONE = 2,
    QBC_BACKFILL_CANCELLED = 3,
    QBC_BACKFILL_FAILED = 4,
} qbc_backfill_status_t;

/** "queued", "running", "done", "cancelled", "failed" */
const char *qbc_backfill_status_name(qbc_backfill_status_t st);

#define QBC_BACKFILL_ENTITIES_MAX 1024 /**< bytes, including NUL, of the comma-separated entity list */

/**
 * a backfill job: pages through the query API for each entity in turn. Its checkpoint
 * (entity_index, start_position, counters) is written in the same transaction as the
 * versions of the page that moved it, so a restarted job resumes exactly after the
 * last committed page.
 */
#define QBC_BACKFILL_ANCHORS 20     /**< ids a backfill checkpoint keeps to find where the next page picks up */
#define QBC_BACKFILL_SKIPPED_MAX 24 /**< refused entities one job records (more are skipped, not recorded) */
#define QBC_BACKFILL_REASON_SNAPSHOT "snapshot" /**< the reason of a realm's initial snapshot job */

/** an entity a job skipped because QBO refused to query it for the realm */
typedef struct st_qbc_backfill_skip_t {
    char entity[QBC_ENTITY_MAX];
    char error[160]; /**< QBO's fault, as described by the reconciler */
} qbc_backfill_skip_t;

typedef struct st_qbc_backfill_t {
    uint64_t id; /**< assigned by the store when created (base + 1, + 2, ...; never reused) */
    char realm[QBC_REALM_MAX];
    char entities[QBC_BACKFILL_ENTITIES_MAX]; /**< comma-separated; "" = the CDC entity list (resolved at start) */
    int64_t since_ns;                         /**< MetaData.LastUpdatedTime >= this; 0: everything */
    qbc_backfill_status_t status;
    uint32_t entity_index;   /**< the entity being read (index into entities) */
    uint64_t start_position; /**< its next STARTPOSITION (1-based): the position after the last page read */
    /**
     * the last ids of the last page read (comma-separated; "" at an entity's start). The
     * next page starts this many rows early and goes on after the latest of them it
     * holds, so rows deleted before the position meanwhile cannot make it skip any.
     */
    char anchors[QBC_BACKFILL_ANCHORS * QBC_ID_MAX];
    uint32_t rereads; /**< entities read again from the start: rows moved under the pages */
    uint32_t entities_done;
    uint64_t records_seen;                       /**< objects the query API returned */
    uint64_t versions_new;                       /**< of which were newer than the store's and entered the feed */
    int64_t created_ns, started_ns, finished_ns; /**< wall clock; 0 when not yet */
    char reason[24];                             /**< "operator", "cdc_too_old" or "snapshot" (both automatic) */
    char error[256];                             /**< why it failed ("" otherwise) */
    uint32_t n_skipped;                          /**< entities QBO refused (4xx) that the job went past */
    qbc_backfill_skip_t skipped[QBC_BACKFILL_SKIPPED_MAX];
} qbc_backfill_t;

/**
 * ids of one node's jobs (qbc_store_config_t.job_id_base): 2^32 a node, and with cluster.h's 2^20 - 1
 * spaces every id stays below 2^52, a JSON number JavaScript still reads exactly
 */
#define QBC_JOB_ID_SPACE (1ULL << 32)

/**
 * the merge rule of a job known in two places (cluster mode: this node's store and the shared
 * bucket): > 0 when a should replace b, < 0 when b should replace a, 0 when neither. A finished
 * job (done, cancelled, failed) replaces a live one; between live ones, the further one
 * (entities_done, records_seen, rereads, entity_index, start_position: each only grows along a
 * job's life) replaces the other; between finished ones, the one finished first stays (so every
 * node settles on one outcome, e.g. a cancel racing the last page). Pure.
 */
int qbc_backfill_cmp(const qbc_backfill_t *a, const qbc_backfill_t *b);

/** a job as the store writes it (JSON, without its id; malloc'd). */
char *qbc_backfill_encode(const qbc_backfill_t *b);
/** reads qbc_backfill_encode's text into out (its id given). @return 0 or QBC_EMALFORMED */
int qbc_backfill_decode(uint64_t id, const void *data, size_t len, qbc_backfill_t *out);

#define QBC_TOKEN_MAX 4096 /**< bytes, including NUL, for either token */

/** a realm's OAuth tokens, in clear. Callers wipe copies they no longer need (OPENSSL_cleanse). */
typedef struct st_qbc_tokens_t {
    char refresh_token[QBC_TOKEN_MAX];
    char access_token[QBC_TOKEN_MAX]; /**< "" when none is held */
    int64_t access_expires_ns;        /**< wall clock; 0 when no access token */
    int64_t refresh_expires_ns;       /**< 0 when unknown */
} qbc_tokens_t;

/* =============================== store ============================== */

typedef struct st_qbc_store_t qbc_store_t;

typedef struct st_qbc_store_config_t {
    const char *dir;           /**< environment directory; created (0700) if missing */
    uint64_t map_size;         /**< initial map size in bytes (0: 1 GiB) */
    uint64_t map_max;          /**< the map grows by doubling up to this many bytes (0: 64 GiB) */
    unsigned batch_max;        /**< most jobs in one group commit (0: 4096) */
    uint64_t journal_size;     /**< bytes of the webhook journal, DIR/journal, when it is created (0: 16 MiB) */
    int apply_gather_ms;       /**< journaled webhooks gather this long before an LMDB apply (0: 5 ms, <0: none) */
    int64_t inbox_retention_s; /**< raw bodies (and their CloudEvents ids) older than this are pruned (0: kept) */
    int64_t feed_retention_s;  /**< feed records committed longer ago than this are pruned (0: kept) */
    int prune_interval_ms;     /**< how often the writer prunes, when a retention is set (0: 60 s) */
    int no_master_key;         /**< 1: open without the key (no token jobs); for journal recovery */
    int new_feed_id;           /**< 1: give the store a new feed id (a restored copy is another feed) */
    /**
     * 1: the store makes no feed id of its own: it has none ("") until a QBC_JOB_FEED_APPEND
     * job gives it the id of the feed it copies (cluster mode's copy of the feed stream)
     */
    int adopt_feed_id;
    const char *master_key_file; /**< 32-byte key for tokens at rest; created 0600 if missing (NULL: dir/master.key) */
    /**
     * cluster mode: backfill jobs (and push subscriptions) created here get ids job_id_base + 1, + 2, ... below
     * job_id_base + QBC_JOB_ID_SPACE (a node's own id space, cluster.h qbc_cluster_job_id_base),
     * so ids are unique across the nodes that share jobs. 0: 1, 2, ... (one node). A multiple of
     * QBC_JOB_ID_SPACE.
     */
    uint64_t job_id_base;
} qbc_store_config_t;

/**
 * opens (creating if needed) the environment, checks or writes the schema version,
 * clears stale reader slots, and starts the writer thread.
 * One process opens a directory once (LMDB's rule: a second environment on the same
 * files in one process breaks its locks); a second open, writable or read-only, is
 * refused with -EBUSY until the first is closed.
 * @return 0, -errno (-EBUSY: open in this process already), QBC_ESTORE (LMDB error, logged),
 *         QBC_EINVAL (schema newer than this build) or QBC_EMALFORMED (meta holds a feed id
 *         that is not one: see qbc_store_feed_id)
 */
int qbc_store_open(const qbc_store_config_t *cfg, qbc_store_t **out);

/**
 * finishes every job already submitted (their callbacks run), stops the writer,
 * and closes the environment. Jobs submitted afterwards are refused with QBC_ECLOSED.
 */
void qbc_store_close(qbc_store_t *store);

/* ============================ write jobs ============================ */

/*
 * Every write is a job: the submitter fills a typed request (one of the structs below,
 * whose first member is the common header qbc_store_job_t), submits it with the call of
 * its kind, and gets it back through its on_commit callback once the commit that holds
 * it is durable, or once it failed. The store never frees a job; between submission and
 * on_commit the job and everything it points to belong to the store and must stay valid
 * and unchanged. Jobs of one submitter are applied in submission order.
 */

typedef enum {
    QBC_JOB_WEBHOOK = 1,      /**< qbc_webhook_job_t: store a raw body and its parsed events */
    QBC_JOB_PING = 2,         /**< qbc_store_job_t alone: write the heartbeat key (the store is writable) */
    QBC_JOB_RECONCILE = 3,    /**< qbc_reconcile_job_t: fetched versions (dedupe + feed), notices retired */
    QBC_JOB_DEAD_LETTER = 4,  /**< qbc_dead_letter_job_t: move one pending notice to the dead letters */
    QBC_JOB_REALM = 5,        /**< qbc_realm_job_t: a realm's state and/or tokens, or erase its tokens */
    QBC_JOB_REDRIVE = 6,      /**< qbc_redrive_job_t: move a dead letter back to pending */
    QBC_JOB_BACKFILL = 7,     /**< qbc_backfill_job_t: create or cancel a backfill job */
    QBC_JOB_CDC_REQUEST = 8,  /**< qbc_cdc_request_job_t: ask for a CDC sweep of a realm now */
    QBC_JOB_USAGE = 9,        /**< qbc_usage_job_t: metered calls added to a period's counts */
    QBC_JOB_CURSOR = 10,      /**< qbc_cursor_job_t: a named position (a sink's) moved forward */
    QBC_JOB_SUB_PUT = 11,     /**< qbc_sub_put_job_t: create or replace a push subscription */
    QBC_JOB_SUB_DELETE = 12,  /**< qbc_sub_delete_job_t: remove a push subscription and its cursor */
    QBC_JOB_SUB_ACK = 13,     /**< qbc_sub_ack_job_t: a subscription's cursor moved (or it was disabled) */
    QBC_JOB_FEED_APPEND = 14, /**< qbc_feed_append_job_t: another feed's records, under their own sequences */
} qbc_job_kind_t;

typedef struct st_qbc_store_job_t qbc_store_job_t;

/**
 * called exactly once per accepted job, after the commit that holds it is durable
 * (job->result == 0) or after it failed (job->result < 0: nothing of the job was
 * stored). Webhook jobs: on the ingest thread, once their journal record is fsync'd
 * (LMDB holds them moments later, and after any crash: see qbc_store_flush); other
 * jobs: on the writer thread, after the fsync'd LMDB commit. The callback takes the
 * job back; it must not block: hand the job to another thread's queue and return.
 */
typedef void (*qbc_store_job_cb)(qbc_store_job_t *job);

/** the header every job starts with. */
struct st_qbc_store_job_t {
    qbc_job_kind_t kind;        /**< set by the submit call */
    qbc_store_job_cb on_commit; /**< set by the submitter: required */
    void *data;                 /**< for the submitter; untouched by the store */
    /**
     * valid in on_commit: 0, or one of
     *   QBC_EFULL   - the map is full (and cannot grow) or the journal has no room
     *   QBC_ESTORE  - LMDB or the journal failed (logged)
     *   QBC_ECRYPTO - the tokens could not be sealed (QBC_JOB_REALM)
     *   QBC_EINVAL  - the job is malformed (see its kind), or its kind is not enabled
     *   QBC_ECLOSED - the store closed before the job could be written
     */
    int result;
    qbc_store_job_t *_next; /* private to the store */
};

#define QBC_INBOX_QUARANTINED 0x01 /**< the body did not parse (wholly or partly) */

/** QBC_JOB_WEBHOOK: one authentic webhook body and the change notices parsed from it. */
typedef struct st_qbc_webhook_job_t {
    qbc_store_job_t job;
    const void *body; /**< raw webhook bytes, as received */
    size_t body_len;
    int64_t received_ns;           /**< wall clock at receipt */
    uint8_t inbox_flags;           /**< QBC_INBOX_* */
    uint8_t format;                /**< qbc_format_t */
    const char *quarantine_reason; /**< with QBC_INBOX_QUARANTINED: why (NUL-terminated) */
    const qbc_event_t *events;     /**< parsed events (may be empty) */
    size_t n_events;
    /**
     * optional: runs on the store's ingest thread just before the job is journaled (e.g.
     * parsing the body into events), so the submitter's thread stays free. It may set any
     * field above. Runs once.
     */
    void (*prepare)(struct st_qbc_webhook_job_t *job);
    /* results, valid in on_commit with result 0 */
    uint64_t inbox_seq;       /**< the stored body's sequence; 0 when not stored (every event a repeat) */
    uint32_t n_stored_events; /**< events that became or refreshed pending notices */
    uint32_t n_dup_events;    /**< events whose CloudEvents id was seen before (skipped) */
} qbc_webhook_job_t;

/**
 * QBC_JOB_RECONCILE: what a fetch learned, in one transaction: the versions it got (each
 * kept and appended to the feed only if newer than the stored one), the notices it
 * answered, and optionally a CDC mark, a realm error and a backfill checkpoint.
 */
typedef struct st_qbc_reconcile_job_t {
    qbc_store_job_t job;
    const qbc_version_t *versions;
    size_t n_versions;
    const qbc_notice_ref_t *retire; /**< notices handled; each removed only if unchanged since it was read */
    size_t n_retire;
    const char *realm; /**< the realm of set_cdc, audit_entities and realm_error */
    /** 1: move realm's CDC watermark forward to cdc_watermark_ns (never back) and set last_cdc_ns */
    int set_cdc;
    int64_t cdc_watermark_ns, last_cdc_ns;
    /**
     * with set_cdc, optional: comma-separated entities of realm to audit. Every version of
     * them the store holds live gets a pending notice in the same transaction, so the
     * reconciler reads each again and learns of those deleted meanwhile: a CDC answer at
     * its cap cuts deleted objects off (qbo-facts §2).
     */
    const char *audit_entities;
    /**
     * optional: realm's last_error becomes this text, stamped with the commit's time ("" clears
     * both; a realm without state is left alone); NULL: unchanged
     */
    const char *realm_error;
    /**
     * optional: a backfill checkpoint, written with versions_new increased by this job's
     * n_feed, unless that backfill was cancelled or finished meanwhile, or the stored job is
     * further on (imported from the node that ran it: qbc_backfill_cmp) (then only the
     * versions are stored and checkpoint_refused is set)
     */
    const qbc_backfill_t *checkpoint;
    /* results, valid in on_commit with result 0 */
    uint32_t n_feed;               /**< versions that were newer and went into the feed */
    uint64_t last_feed_seq;        /**< the highest feed sequence assigned (0: none) */
    uint32_t n_retired;            /**< notices removed (the others changed meanwhile) */
    uint32_t n_audited;            /**< pending notices made by audit_entities */
    int checkpoint_refused;        /**< 1: the checkpoint's backfill is cancelled, finished, gone or further on */
    qbc_backfill_t checkpoint_out; /**< the checkpoint as stored (unless refused) */
} qbc_reconcile_job_t;

/** QBC_JOB_DEAD_LETTER: give up on one pending notice, recording why. */
typedef struct st_qbc_dead_letter_job_t {
    qbc_store_job_t job;
    qbc_notice_ref_t notice; /**< moved only if unchanged since it was read; else it gets a fresh start */
    const char *error;       /**< why it was given up (no tokens in it); NULL: "" */
    uint32_t attempts;
    /* result, valid in on_commit with result 0 */
    int moved; /**< 1: it is a dead letter now; 0: it had changed (it stays pending) */
} qbc_dead_letter_job_t;

/** QBC_JOB_REALM: register or update a realm's state and tokens, or erase its tokens. */
typedef struct st_qbc_realm_job_t {
    qbc_store_job_t job;
    char realm[QBC_REALM_MAX];  /**< 1-63 bytes, NUL-terminated (else QBC_EINVAL) */
    const qbc_realm_t *state;   /**< NULL: leave the state as it is (created active if missing and tokens are given) */
    const qbc_tokens_t *tokens; /**< NULL: leave the tokens as they are; else stored sealed (AES-256-GCM) */
    int erase_tokens;           /**< 1 (with tokens NULL): delete the realm's tokens */
    /**
     * 1: if the store held no state for the realm before this job (its first registration),
     * also create a backfill job with reason QBC_BACKFILL_REASON_SNAPSHOT for every CDC entity
     * (entities "", resolved when it starts), in the same transaction. A known realm gets none.
     */
    int snapshot_if_new;
    /**
     * 1: write only while the realm is active and its connected_ns equals if_connected_ns (the
     * connection under which the caller read what it writes, e.g. a token refresh); else nothing
     * is written and stale is set. A disconnect or a new connection meanwhile wins.
     */
    int if_current;
    int64_t if_connected_ns;
    /* results, valid in on_commit with result 0 */
    uint64_t snapshot_id; /**< the snapshot job created (0: none) */
    int stale;            /**< with if_current: the realm was disconnected or reconnected; nothing written */
} qbc_realm_job_t;

/**
 * QBC_JOB_REDRIVE: put a dead letter back into pending work. Cluster mode adds two forms:
 * with drop, the dead letter is removed without becoming pending (another node redrove it);
 * with import (dead_id ignored), a pending notice is made for a dead letter of another node
 * (import->realm, entity, id, op, updated_ns), unless the entity has one already.
 */
typedef struct st_qbc_redrive_job_t {
    qbc_store_job_t job;
    uint64_t dead_id;
    int drop;
    const qbc_event_t *import;
    /* result, valid in on_commit with result 0 */
    int found; /**< 0: no such dead letter (import: always 1) */
} qbc_redrive_job_t;

/**
 * QBC_JOB_BACKFILL: create a backfill job (create != NULL), cancel one (cancel_id != 0), or
 * take one from another node (import != NULL).
 */
typedef struct st_qbc_backfill_job_t {
    qbc_store_job_t job;
    const qbc_backfill_t *create; /**< the job to create (its id and status are ignored) */
    uint64_t cancel_id;           /**< the job to cancel */
    /**
     * cluster mode: a job as the shared bucket holds it (id included), written only if the store
     * holds no job of that id or qbc_backfill_cmp(import, held) > 0. Exactly one of create,
     * cancel_id and import (else QBC_EINVAL).
     */
    const qbc_backfill_t *import;
    /**
     * with create, optional (a backfill replacing CDC): 1 moves the realm's CDC watermark to
     * cdc_watermark_ns (never back) and sets last_cdc_ns, in the same transaction
     */
    int set_cdc;
    int64_t cdc_watermark_ns, last_cdc_ns;
    /* results, valid in on_commit with result 0 */
    uint64_t id;          /**< the job created or cancelled (0: no such job to cancel) */
    int already_finished; /**< cancel: the job had finished (its state is unchanged) */
    int imported;         /**< import: it was written (else the held one is as new) */
    qbc_backfill_t out;   /**< the job as stored after this one */
} qbc_backfill_job_t;

/** QBC_JOB_CDC_REQUEST: ask the reconciler for a CDC sweep of realm now. */
typedef struct st_qbc_cdc_request_job_t {
    qbc_store_job_t job;
    char realm[QBC_REALM_MAX];
    /* results, valid in on_commit with result 0 */
    int found;            /**< 0: no such realm (nothing written) */
    int64_t requested_ns; /**< the realm's cdc_requested_ns as written */
} qbc_cdc_request_job_t;

/* ========================= metered call usage ========================= */

/** what metered calls were for: live fetches, CDC sweeps, backfills and snapshots, anything else */
typedef enum {
    QBC_USAGE_LIVE = 0,
    QBC_USAGE_CDC = 1,
    QBC_USAGE_BACKFILL = 2,
    QBC_USAGE_OTHER = 3,
} qbc_usage_purpose_t;
#define QBC_USAGE_PURPOSES 4

/** "live", "cdc", "backfill", "other" */
const char *qbc_usage_purpose_name(int purpose);

/** calls of one realm to add, by purpose */
typedef struct st_qbc_usage_delta_t {
    char realm[QBC_REALM_MAX];
    uint64_t calls[QBC_USAGE_PURPOSES];
} qbc_usage_delta_t;

/**
 * QBC_JOB_USAGE: metered calls (Intuit's CorePlus calls) counted since the last such job,
 * added to the counts of the period that starts at period_start_ns: each realm's and the
 * period's total (their sum). The reconciler submits one a second, so a crash loses at
 * most a second of counts.
 */
typedef struct st_qbc_usage_job_t {
    qbc_store_job_t job;
    int64_t period_start_ns; /**< wall clock; the key of the period (the caller decides periods) */
    const qbc_usage_delta_t *deltas;
    size_t n_deltas;
} qbc_usage_job_t;

/**
 * QBC_JOB_CURSOR: where a sink of the feed stands (the last feed sequence it delivered), kept
 * in meta as "cursor:<name>". It only moves forward: a lower value leaves it as it is.
 */
typedef struct st_qbc_cursor_job_t {
    qbc_store_job_t job;
    char name[32];
    uint64_t value;
} qbc_cursor_job_t;

/** the named cursor (0: never set) */
int qbc_store_cursor(qbc_store_t *store, const char *name, uint64_t *out);

/* ====================== a copy of another feed ====================== */

/** one record of a QBC_JOB_FEED_APPEND job */
typedef struct st_qbc_feed_append_rec_t {
    uint64_t seq;       /**< its sequence in the feed copied (> 0) */
    const char *realm;  /**< NUL-terminated, 1 to QBC_REALM_MAX - 1 bytes */
    const char *entity; /**< NUL-terminated, 1 to QBC_ENTITY_MAX - 1 bytes */
    const char *json;   /**< the change object exactly as the feed serves it (its "seq" is seq) */
    size_t json_len;    /**< > 0 */
    /**
     * the version the record reports (realm, entity, id, sync_token, updated_ns, op, source,
     * and data: the entity's bytes, within json), kept as the entity's latest in the copy if
     * newer than what it holds (the dedupe rule of QBC_JOB_RECONCILE), with seq as its feed
     * sequence; NULL: the record alone (one the source could not read as a version)
     */
    const qbc_version_t *version;
} qbc_feed_append_rec_t;

/**
 * QBC_JOB_FEED_APPEND: records of another feed (the cluster's feed stream: cluster.h's feed
 * mirror) appended to this store's feed under the sequences they have there, which may leave
 * gaps. Records are not deduplicated (the source did that), but the versions they report
 * are kept as each entity's latest when newer, so the copy answers entity reads
 * (qbc_store_entity_get, _list, _scan) for every realm of the source. Feed readers
 * (qbc_store_feed_scan, the listeners' feed_appended) see them as any feed record.
 * For a store that holds such a copy and nothing else; never mixed with QBC_JOB_RECONCILE.
 *
 * In order, in one transaction:
 *   <ol>
 *   <li>feed_id (NULL: keep the store's): the feed takes this identity. When the store had
 *       another one, or none (qbc_store_config_t.adopt_feed_id), every feed record, entity
 *       version, the time index, the pruned mark and the cursor position_name are removed
 *       first: the copy starts over (reset is set).
 *   <li>pruned_through (0: none): the records up to this sequence are gone at the source; the
 *       pruned mark moves forward to it, so a reader behind it gets QBC_EGONE, not a gap.
 *   <li>records, appended: each seq above the feed's last sequence, the pruned mark and the
 *       record before it.
 *   <li>position_name (NULL: none): the named cursor (qbc_store_cursor) moves forward to
 *       position: how far the source was read, committed with what that reading gave.
 *   </ol>
 * QBC_EINVAL, and nothing written: a feed id that is not QBC_FEED_ID_LEN lowercase hex digits,
 * a record out of order or with an empty or overlong realm or entity or empty json, or a bad
 * position_name.
 */
typedef struct st_qbc_feed_append_job_t {
    qbc_store_job_t job;
    const char *feed_id;
    uint64_t pruned_through;
    const qbc_feed_append_rec_t *records;
    size_t n_records;
    const char *position_name;
    uint64_t position;
    /* result, valid in on_commit with result 0 */
    int reset; /**< 1: the feed id changed; the records held before are gone */
} qbc_feed_append_job_t;

/* ========================= push subscriptions ========================= */

#define QBC_SUB_SECRETS_MAX 1024 /**< bytes of a subscription's secrets text */
#define QBC_SUB_REASON_MAX 256   /**< bytes, including NUL, of why a subscription was disabled */

/**
 * QBC_JOB_SUB_PUT: creates a push subscription (id 0) or replaces the settings of one. The
 * settings are opaque to the store (the delivery module's JSON); the secrets text is sealed
 * with the master key (AES-256-GCM, like OAuth tokens) before it is written. A new
 * subscription's cursor is set (to cursor, or 0); set_cursor moves an existing one (replay),
 * which makes the acks of the delivery in flight stale (the epoch grows) and re-enables it.
 * QBC_EINVAL: config empty or over 64 KiB, secrets over QBC_SUB_SECRETS_MAX, or a create
 * without secrets; QBC_ECRYPTO: no master key, or sealing failed.
 */
typedef struct st_qbc_sub_put_job_t {
    qbc_store_job_t job;
    uint64_t id;         /**< 0: create (the store assigns the next id, never reused) */
    const char *config;  /**< NUL-terminated JSON text, stored as is */
    const char *secrets; /**< NUL-terminated; NULL: keep the ones held (required to create) */
    int set_cursor;      /**< 1: the cursor becomes cursor (the epoch grows, a disable is cleared) */
    uint64_t cursor;
    int enable; /**< 1: clear a disable, keeping the cursor */
    /* results, valid in on_commit with result 0 */
    uint64_t id_out; /**< the subscription written */
    int found;       /**< 0: id was given and no such subscription exists (nothing written) */
    uint64_t epoch;  /**< the cursor's epoch after the job */
} qbc_sub_put_job_t;

/** QBC_JOB_SUB_DELETE: removes a subscription and its cursor. */
typedef struct st_qbc_sub_delete_job_t {
    qbc_store_job_t job;
    uint64_t id;
    int found; /**< result: 0 when there was no such subscription */
} qbc_sub_delete_job_t;

/**
 * QBC_JOB_SUB_ACK: the delivery worker's: the subscription's receiver acknowledged every
 * change up to cursor (it only moves forward), and, with disabled_reason, the subscription
 * is disabled (without, a disable stays: only QBC_JOB_SUB_PUT re-enables). Written only if
 * the cursor's epoch is still epoch (else stale is set).
 */
typedef struct st_qbc_sub_ack_job_t {
    qbc_store_job_t job;
    uint64_t id, epoch, cursor;
    const char *disabled_reason; /**< NULL: enabled as it is; else disabled now, with this reason */
    int stale;                   /**< result: 1 when nothing was written (deleted, or the cursor was moved) */
} qbc_sub_ack_job_t;

/** a subscription as read back; pointers valid only in the callback */
typedef struct st_qbc_sub_rec_t {
    uint64_t id;
    const char *config; /**< the settings as written (not NUL-terminated) */
    size_t config_len;
    const char *secrets; /**< opened, NUL-terminated (wiped after the callback); NULL when they do not open */
    uint64_t epoch, cursor;
    int64_t disabled_ns;         /**< when the worker disabled it (0: enabled) */
    const char *disabled_reason; /**< "" when enabled */
} qbc_sub_rec_t;

typedef int (*qbc_sub_scan_cb)(const qbc_sub_rec_t *rec, void *ctx);

/**
 * calls cb for every subscription in id order, or for only_id alone (0: all), in one read
 * transaction. Return non-zero from cb to stop.
 * @return 0, QBC_ENOTFOUND (only_id given and absent), or QBC_ESTORE
 */
int qbc_store_sub_scan(qbc_store_t *store, uint64_t only_id, qbc_sub_scan_cb cb, void *ctx);

/**
 * where a reader that wants every change committed at or after time_ns (wall clock) starts:
 * the feed's time index (feed_times, one stamp a step) gives the first sequence of the last
 * stamp at or before time_ns; *after is one less (so a few earlier changes may come too: at
 * least once, never a gap). Before the first stamp: 0. After the last one: from the last stamp.
 * @return 0 or QBC_ESTORE
 */
int qbc_store_feed_seq_before(qbc_store_t *store, int64_t time_ns, uint64_t *after);

/** one period's counts as read back; realm "" is the period's total */
typedef struct st_qbc_usage_t {
    const char *realm;
    uint64_t calls[QBC_USAGE_PURPOSES];
} qbc_usage_t;

typedef int (*qbc_usage_scan_cb)(const qbc_usage_t *u, void *ctx);

/**
 * calls cb with the counts of the period starting at period_start_ns: the total first
 * (realm ""), then each realm in name order. Nothing counted yet: cb is not called.
 */
int qbc_store_usage_scan(qbc_store_t *store, int64_t period_start_ns, qbc_usage_scan_cb cb, void *ctx);

/*
 * The submit calls. Each is thread-safe, sets job->kind and queues the job for the next
 * group commit.
 * @return 0: on_commit will be called exactly once; or, and then it will not be called:
 *   <ul>
 *   <li>QBC_ECLOSED - the store is closing or closed.
 *   <li>QBC_EINVAL - a read-only store, or on_commit is NULL.
 *   </ul>
 */
int qbc_store_ping(qbc_store_t *store, qbc_store_job_t *job);
int qbc_store_reconcile(qbc_store_t *store, qbc_reconcile_job_t *job);
int qbc_store_dead_letter(qbc_store_t *store, qbc_dead_letter_job_t *job);
int qbc_store_put_realm(qbc_store_t *store, qbc_realm_job_t *job);
int qbc_store_redrive(qbc_store_t *store, qbc_redrive_job_t *job);
int qbc_store_backfill(qbc_store_t *store, qbc_backfill_job_t *job);
int qbc_store_request_cdc(qbc_store_t *store, qbc_cdc_request_job_t *job);
int qbc_store_add_usage(qbc_store_t *store, qbc_usage_job_t *job);
int qbc_store_set_cursor(qbc_store_t *store, qbc_cursor_job_t *job);
int qbc_store_sub_put(qbc_store_t *store, qbc_sub_put_job_t *job);
int qbc_store_sub_delete(qbc_store_t *store, qbc_sub_delete_job_t *job);
int qbc_store_sub_ack(qbc_store_t *store, qbc_sub_ack_job_t *job);
int qbc_store_feed_append(qbc_store_t *store, qbc_feed_append_job_t *job);

/**
 * queues n webhook jobs at once, in order: one lock and one wake-up of the store's ingest
 * thread instead of n (an event loop gathers what one turn received). Returns as above,
 * for all n together.
 */
int qbc_store_submit_webhooks(qbc_store_t *store, qbc_webhook_job_t **jobs, size_t n);

/**
 * waits until everything whose on_commit has run is readable in LMDB. A webhook job
 * is acked once its journal record is fsync'd, and applied to LMDB moments later;
 * this is for whoever must read it back at once (tests, tools). Not from the
 * writer's or ingest thread's callbacks.
 */
int qbc_store_flush(qbc_store_t *store);

/* ============================== reading ============================= */

typedef struct st_qbc_store_stats_t {
    uint64_t inbox_depth; /**< raw bodies held (a service's count includes acked ones not yet applied) */
    uint64_t quarantined; /**< bodies held in quarantine */
    uint64_t pending;     /**< coalesced pending notices */
    /**
     * when the oldest pending notice was first received (its first webhook; QBO's lastUpdated
     * when that body is gone to retention, or for a notice no webhook made); 0: none pending
     */
    int64_t pending_oldest_ns;
    uint64_t event_ids; /**< CloudEvents ids remembered */
    uint64_t last_inbox_seq;
    int64_t inbox_oldest_ns; /**< when the oldest body in LMDB was received (0: none there) */
    uint64_t entities;       /**< entity versions and tombstones held */
    uint64_t feed_records;
    uint64_t last_feed_seq;
    uint64_t dead_letters;
    uint64_t realms;
    uint64_t used_bytes; /**< pages in use x page size */
    uint64_t map_bytes;  /**< current map size */
    /* writer counters since open (read without locking; may lag by one batch) */
    uint64_t commits;
    uint64_t commit_failures;
    uint64_t jobs_committed;
    uint64_t map_growths;
    uint64_t pruned_inbox;        /**< bodies removed by retention */
    uint64_t pruned_event_ids;    /**< CloudEvents ids removed by retention */
    uint64_t pruned_feed;         /**< feed records removed by retention */
    uint64_t feed_pruned_through; /**< the last feed sequence retention removed (0: none) */
    uint64_t batch_hist[8];       /**< group-commit sizes: <=1, <=2, <=4, <=8, <=16, <=64, <=256, more */
    uint64_t commit_ns_sum;       /**< time spent in mdb_txn_commit (incl. fsync) */
    /* the webhook journal: each commit is one write + fdatasync that acks a batch */
    uint64_t journal_commits;
    uint64_t journal_commit_ns_sum;   /**< time spent writing and syncing the journal */
    uint64_t journal_webhooks;        /**< webhook jobs answered by journal commits */
    uint64_t journal_batch_hist[8];   /**< webhooks per journal commit, buckets as batch_hist */
    uint64_t journal_unapplied_bytes; /**< journaled (acked) but not yet in LMDB */
    uint64_t journal_size;            /**< bytes of the journal ring (0: read-only open) */
} qbc_store_stats_t;

int qbc_store_stats(qbc_store_t *store, qbc_store_stats_t *out);

/**
 * whether webhooks can be stored now. Any thread, no I/O.
 * @return 0; or the error that makes the store refuse webhooks until it is restarted:
 *   <ul>
 *   <li>QBC_EFULL - acked webhooks could not be applied to LMDB for lack of space.
 *   <li>QBC_ESTORE - the journal or LMDB failed (logged).
 *   </ul>
 */
int qbc_store_webhooks_refused(qbc_store_t *store);

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
    uint32_t op_mask;             /**< bit (1 << qbc_op_t) for every operation reported */
    qbc_op_t last_op;             /**< the operation of the notice with the latest updated_ns */
    uint32_t count;               /**< notices coalesced into this one */
    uint64_t first_seq, last_seq; /**< inbox sequences of the first and latest notices */
    int64_t updated_ns;           /**< latest updated_ns seen */
    const char *merged_from;      /**< a Merge reported this entity as the survivor of that id ("" otherwise) */
    const char *merged_into;      /**< a Merge reported this entity merged away into that id ("" otherwise) */
} qbc_pending_t;

typedef int (*qbc_pending_scan_cb)(const qbc_pending_t *p, void *ctx);

/** calls cb for each pending notice, realm by realm (realm NULL: all realms). */
int qbc_store_pending_scan(qbc_store_t *store, const char *realm, qbc_pending_scan_cb cb, void *ctx);

/**
 * opens an existing environment read-only for inspection (CLI), without a writer.
 * Safe while a service in another process holds it open (LMDB is multi-process); in the
 * process that has it open it is refused with -EBUSY (see qbc_store_open). Close with
 * qbc_store_close().
 */
int qbc_store_open_readonly(const char *dir, qbc_store_t **out);

/** what qbc_store_backup() copied. */
typedef struct st_qbc_backup_report_t {
    uint64_t data_bytes;    /**< DEST/data.mdb, compacted */
    uint64_t journal_bytes; /**< DEST/journal (0: the store had no journal) */
    uint32_t extra_copied;  /**< bit i set: extra_files[i] existed and was copied */
} qbc_backup_report_t;

/**
 * copies the store in dir into dest: a consistent hot copy, safe while a service runs
 * on dir in another process (or while none does; in the process that has dir open it
 * fails with -EBUSY, see qbc_store_open). The copy holds every webhook acked before the call began;
 * opening it (any qbcdc command, or serve with QBCDC_DATA_DIR=dest) gives the store as it
 * was at one moment, with the journal's acked webhooks replayed on top (see backup.c).
 *
 * dest must not exist (it is created 0700) or be an empty directory. Files are written
 * 0600 and synced, then dest itself. On failure everything made in dest is removed.
 * @param[in] extra_files NULL-terminated paths copied into dest by their base names when
 *            they exist (the master key, ...); NULL for none
 * @param[out] err a one-line reason on failure
 * @return 0, or a negative errno / QBC_E* code (err says what)
 */
int qbc_store_backup(const char *dir, const char *dest, const char *const *extra_files, qbc_backup_report_t *rep,
                     char *err, size_t errsz);

/* ============================ notifications ========================= */

/** what a commit changed, for wake-ups (feed readers, the reconciler). */
typedef struct st_qbc_commit_note_t {
    uint32_t new_pending;    /**< notices created or refreshed */
    uint32_t feed_appended;  /**< feed records added */
    uint64_t last_feed_seq;  /**< the feed's last sequence after the commit */
    uint32_t realms_changed; /**< realm state or tokens written */
    uint32_t jobs_changed;   /**< backfill jobs created or cancelled */
    uint32_t dead_changed;   /**< dead letters made or removed */
    uint32_t feed_reset;     /**< the feed was emptied for another feed id (QBC_JOB_FEED_APPEND) */
} qbc_commit_note_t;

typedef void (*qbc_store_listener_cb)(void *ctx, const qbc_commit_note_t *note);

#define QBC_STORE_MAX_LISTENERS 16

/**
 * registers a callback run on the writer thread after every successful commit that
 * changed anything of the above (it must not block: wake someone and return).
 * @return a handle (>= 0) for qbc_store_remove_listener, or QBC_EFULL when
 *         QBC_STORE_MAX_LISTENERS are registered
 */
int qbc_store_add_listener(qbc_store_t *store, qbc_store_listener_cb cb, void *ctx);

/**
 * removes a listener. When it returns, the callback is not running and will never run
 * again (libuv's rule), so its context may be freed. Not from a listener callback.
 * An unknown or removed handle is a no-op.
 */
void qbc_store_remove_listener(qbc_store_t *store, int handle);

/* ============================ reading, continued ==================== */

/** the latest stored version of one entity. data is malloc'd (NULL for a tombstone). */
typedef struct st_qbc_entity_rec_t {
    char sync_token[QBC_SYNC_TOKEN_MAX];
    int64_t updated_ns;
    int deleted;
    qbc_op_t op; /**< the op of the feed record that stored it */
    uint8_t source;
    uint64_t feed_seq;
    char *data;
    size_t data_len;
} qbc_entity_rec_t;

/** @return 0, QBC_ENOTFOUND, or an error. Free with qbc_entity_rec_clear(). */
int qbc_store_entity_get(qbc_store_t *store, const char *realm, const char *entity, const char *id,
                         qbc_entity_rec_t *out);
void qbc_entity_rec_clear(qbc_entity_rec_t *rec);

typedef int (*qbc_entity_scan_cb)(const char *realm, const char *entity, const char *id, const qbc_entity_rec_t *rec,
                                  void *ctx);
/** every stored entity of a realm (NULL: all), in key order; rec->data is NOT copied (valid in the callback). */
int qbc_store_entity_scan(qbc_store_t *store, const char *realm, qbc_entity_scan_cb cb, void *ctx);

/**
 * pages through the latest stored version of every entity of one type in one realm, in
 * key order (the id's bytes, as memcmp orders them), in one read transaction: a cursor
 * range scan of the entities database from just after "realm\0entity\0after_id" to the
 * end of the "realm\0entity\0" prefix, so no other realm or entity type is ever seen.
 * Tombstones are included (rec->deleted).
 * @param[in] realm the realm, NUL-terminated (shorter than QBC_REALM_MAX)
 * @param[in] entity the canonical entity name (qbc_entity_canonical), shorter than QBC_ENTITY_MAX
 * @param[in] after_id start after this id (exclusive); NULL or "": from the first
 * @param[in] limit at most this many calls of cb (0: none)
 * @param[in] cb called with each version in order; rec->data is NOT copied and, like
 *        the strings, is valid only during the call. Return non-zero to stop early.
 * @param[out] out_more set to 1 when a version of this realm and entity follows the
 *        last one passed to cb (the page did not reach the end), else 0; may be NULL
 * @return 0 on success. Some possible errors are:
 *   <ul>
 *   <li>QBC_EINVAL - realm, entity or after_id too long, or realm or entity empty.
 *   <li>QBC_ESTORE - LMDB failed (logged).
 *   </ul>
 */
int qbc_store_entity_list(qbc_store_t *store, const char *realm, const char *entity, const char *after_id, size_t limit,
                          qbc_entity_scan_cb cb, void *ctx, int *out_more);

/** one feed record: the change object as JSON text (with its "seq"), valid in the callback. */
typedef struct st_qbc_feed_rec_t {
    uint64_t seq;
    const char *realm, *entity; /**< for filtering */
    const char *json;
    size_t json_len;
} qbc_feed_rec_t;

typedef int (*qbc_feed_scan_cb)(const qbc_feed_rec_t *rec, void *ctx);

#define QBC_FEED_SCAN_MAX_EXAMINE 100000 /**< non-matching records one scan looks at, at most */

/**
 * calls cb for feed records with seq > after, in order, that match realm and entity
 * (NULL: any), until cb returns non-zero or limit records matched.
 * @param out_last the last sequence examined (matching or not), so a filtered reader
 *        can advance past records it skipped; may be NULL
 * @return 0, QBC_ESTORE, or QBC_EGONE when records after `after` were removed by feed
 *         retention (after < qbc_store_feed_pruned()): the reader cannot be told everything
 */
int qbc_store_feed_scan(qbc_store_t *store, uint64_t after, size_t limit, const char *realm, const char *entity,
                        qbc_feed_scan_cb cb, void *ctx, uint64_t *out_last);

#define QBC_FEED_ID_LEN 32 /**< characters of a feed id (128 random bits, lowercase hex), without the NUL */

/**
 * the identity of this store's feed: QBC_FEED_ID_LEN lowercase hex digits, made from
 * 128 random bits (OpenSSL RAND_bytes) and kept in meta under "feed_id" when the
 * environment is created, or at the first writable open of a store made by a build
 * before feed ids. It never changes afterwards, so a reader that finds another id
 * knows it is reading another feed (a replaced data directory) whose sequence numbers
 * say nothing about the ones it holds. (A store opened with adopt_feed_id takes its id
 * from QBC_JOB_FEED_APPEND jobs instead, and may change it: read it with
 * qbc_store_feed_id_copy.)
 * @return the id, NUL-terminated, owned by the store and valid until qbc_store_close();
 *         "" only for a read-only open of a store that no writable open has given one.
 *         It is read (or created) by the open call, so this call cannot fail.
 */
const char *qbc_store_feed_id(qbc_store_t *store);

/**
 * the feed id copied into out, for a store whose id a QBC_JOB_FEED_APPEND job may change
 * (qbc_store_config_t.adopt_feed_id): qbc_store_feed_id's pointer would be read while the
 * writer replaces it. Thread-safe; "" while the store has none.
 */
void qbc_store_feed_id_copy(qbc_store_t *store, char out[QBC_FEED_ID_LEN + 1]);

/** the last feed sequence assigned (0 when the feed is empty). */
uint64_t qbc_store_feed_last(qbc_store_t *store);

/** the last feed sequence removed by retention (0: none); readers need after >= it. */
uint64_t qbc_store_feed_pruned(qbc_store_t *store);

/** a realm's state. @return 0 or QBC_ENOTFOUND */
int qbc_store_realm_get(qbc_store_t *store, const char *realm, qbc_realm_t *out);

typedef int (*qbc_realm_scan_cb)(const qbc_realm_t *realm, int has_tokens, void *ctx);
int qbc_store_realm_scan(qbc_store_t *store, qbc_realm_scan_cb cb, void *ctx);

/** a realm's tokens, decrypted. @return 0, QBC_ENOTFOUND, or QBC_EAUTH (cannot decrypt: wrong master key) */
int qbc_store_tokens_get(qbc_store_t *store, const char *realm, qbc_tokens_t *out);

/** bytes qbc_store_seal adds to what it seals (a version byte, the nonce, the tag) */
#define QBC_STORE_SEAL_OVERHEAD (1 + 12 + 16)

/**
 * seals bytes with the store's master key (AES-256-GCM, a fresh nonce), for secrets that
 * leave the store (cluster mode shares tokens through NATS this way). aad is authenticated
 * with them: unsealing under another aad fails. Thread-safe.
 * @param out at least len + QBC_STORE_SEAL_OVERHEAD bytes
 * @return 0, or QBC_ECRYPTO (no master key, or OpenSSL failed)
 */
int qbc_store_seal(qbc_store_t *store, const char *aad, const void *plain, size_t len, unsigned char *out,
                   size_t *out_len);

/**
 * opens what qbc_store_seal sealed under the same aad and master key.
 * @param plain at least in_len bytes
 * @return 0, QBC_EMALFORMED (not a sealed value), or QBC_EAUTH (another key or aad, or tampered)
 */
int qbc_store_unseal(qbc_store_t *store, const char *aad, const unsigned char *in, size_t in_len, unsigned char *plain,
                     size_t *plain_len);

/** one backfill job. @return 0, QBC_ENOTFOUND, or an error */
int qbc_store_backfill_get(qbc_store_t *store, uint64_t id, qbc_backfill_t *out);

typedef int (*qbc_backfill_scan_cb)(const qbc_backfill_t *job, void *ctx);
/** every backfill job in id order (one read transaction; return non-zero to stop). */
int qbc_store_backfill_scan(qbc_store_t *store, qbc_backfill_scan_cb cb, void *ctx);

/** a dead letter as read back; strings valid only in the callback. */
typedef struct st_qbc_dead_t {
    uint64_t id;
    const char *realm, *entity, *entity_id;
    const char *error;
    uint32_t attempts;
    int64_t died_ns;
    qbc_op_t last_op;
} qbc_dead_t;

typedef int (*qbc_dead_scan_cb)(const qbc_dead_t *d, void *ctx);
int qbc_store_dead_scan(qbc_store_t *store, qbc_dead_scan_cb cb, void *ctx);

#endif
