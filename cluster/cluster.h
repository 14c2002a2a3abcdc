/*
 * cluster.h — qbcdc nodes sharing a NATS JetStream cluster (issue 13, part 2).
 *
 * Realms are split into a fixed number of partitions (QBCDC_PARTITIONS, recorded in the bucket
 * when the first node creates it; a node configured otherwise refuses to take part). Each
 * partition is owned by at most one live node at a time, through a lease: the key
 * lease.<partition> of the JetStream key-value bucket qbcdc_cluster, whose value is the owner's
 * node id (QBCDC_NODE_ID). A lease is taken with a create (it fails if the key exists), renewed
 * with an update that names the revision last written (it fails if anyone else wrote since),
 * and lapses by itself: the bucket's TTL removes a key not written for that long. Each node also
 * writes node.<id> on every renewal, so the bucket's keys name the live nodes.
 *
 * Who should own a partition: the live node that scores highest for it by rendezvous hashing
 * (qbc_cluster_preferred). When a node joins, each node releases the partitions that now prefer
 * the newcomer, which takes them; when a node dies, its keys lapse after the TTL and the next
 * preferred node takes its partitions. A partition left free for longer than a TTL (its
 * preferred node alive but not taking it) is taken by whoever sees it.
 *
 * Fencing: a node treats a partition as its own only until its last successful renewal (the
 * moment the request was sent, on the monotonic clock) plus TTL minus a margin (TTL/3), which
 * ends before the server can let the key lapse; qbc_cluster_owns reports that deadline, and
 * the reconciler makes no call to QBO for a realm past it (and aborts the calls in flight).
 */
#ifndef QBC_CLUSTER_H
#define QBC_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include "reconciler.h"
#include "store.h"

#define QBC_CLUSTER_MAX_PARTITIONS 1024
#define QBC_NODE_ID_MAX 64 /**< bytes of a node id, with its NUL */

typedef struct st_qbc_cluster_config_t {
    const char *urls;     /**< comma-separated NATS server URLs (QBCDC_NATS_URL) */
    const char *node_id;  /**< QBCDC_NODE_ID: 1 to 63 of [A-Za-z0-9_-] (qbc_cluster_node_id_ok) */
    unsigned partitions;  /**< QBCDC_PARTITIONS: 1 to QBC_CLUSTER_MAX_PARTITIONS */
    unsigned lease_ttl_s; /**< QBCDC_LEASE_TTL: the bucket's TTL (0: 10) */
    unsigned replicas;    /**< of the bucket, when this node creates it (0: 1) */
    /**
     * QBCDC_ADVERTISE_URL: where the other nodes reach this node's HTTP API ("http://host:port"),
     * written in node.<id> beside the time (JSON {"t":<s>,"url":"..."}); NULL or "": none (admin
     * requests for this node's realms cannot be forwarded to it)
     */
    const char *advertise_url;
} qbc_cluster_config_t;

typedef struct st_qbc_cluster_t qbc_cluster_t;

/** figures for GET /admin/cluster and /metrics */
typedef struct st_qbc_cluster_stats_t {
    char node_id[QBC_NODE_ID_MAX];
    int connected;       /**< to NATS, the bucket known */
    unsigned partitions; /**< configured */
    unsigned owned;      /**< partitions this node holds now (fenced in) */
    unsigned n_nodes;    /**< live nodes as last seen (node.* keys) */
    char nodes[32][QBC_NODE_ID_MAX];
    uint64_t acquired;       /**< leases taken since start */
    uint64_t released;       /**< leases handed back (to a preferred node, or at stop) */
    uint64_t lost;           /**< leases found taken by another or lapsed while held */
    uint64_t renew_failures; /**< renewals that got no answer */
    int64_t last_tick_ns;    /**< wall clock of the last complete round with the bucket */
    char last_error[160];
} qbc_cluster_stats_t;

/** 1 if id is a valid node id (1 to 63 bytes of [A-Za-z0-9_-]), else 0. */
int qbc_cluster_node_id_ok(const char *id);

/** the partition of a realm: FNV-1a (64 bits) of its id, modulo partitions (partitions > 0). */
unsigned qbc_cluster_partition_of(const char *realm, unsigned partitions);

/**
 * the node that should own a partition: the index in nodes[0..n) of the highest rendezvous
 * score (a hash of node id and partition); ties go to the smaller id. -1 when n is 0. Removing
 * a node moves only the partitions it was preferred for; adding one moves only those the
 * newcomer is now preferred for.
 */
int qbc_cluster_preferred(unsigned partition, const char *const *nodes, unsigned n);

/**
 * starts the lease thread (it connects, and keeps trying, by itself).
 * @return 0, or QBC_EINVAL (no URL, a bad node id, partitions out of range)
 */
int qbc_cluster_start(const qbc_cluster_config_t *cfg, qbc_cluster_t **out);

/** stops the thread and deletes this node's leases and node key (a graceful hand-over). NULL: nothing. */
void qbc_cluster_stop(qbc_cluster_t *c);

/**
 * whether this node owns realm's partition now. Thread-safe, takes a mutex, never blocks on I/O.
 * @param[out] until_mono_ns (may be NULL) with 1: when the ownership ends unless renewed first
 *             (monotonic clock); ask again then
 * @return 1 or 0
 */
int qbc_cluster_owns(qbc_cluster_t *c, const char *realm, int64_t *until_mono_ns);

/** whether this node holds partition's lease now (within its fence). Thread-safe. */
int qbc_cluster_owns_partition(qbc_cluster_t *c, unsigned partition);

/** a number that changes whenever the set of owned partitions changes. Thread-safe. */
uint64_t qbc_cluster_epoch(qbc_cluster_t *c);

/**
 * the owner of a partition as last read from the bucket ("" when free). Thread-safe.
 * @param out at least QBC_NODE_ID_MAX bytes
 */
void qbc_cluster_owner(qbc_cluster_t *c, unsigned partition, char *out);

/**
 * whose realm is now: this node's (holding its partition's lease, within the fence), another
 * node's (the owner last read from the bucket), or nobody's (free, not read yet, or this
 * node's by the bucket but past its fence: a renewal late, NATS unreachable). Thread-safe,
 * never blocks on I/O.
 * @param[out] owner (may be NULL) at least QBC_NODE_ID_MAX bytes: with 0, the other node's id
 * @return 1 this node's, 0 another node's, -1 nobody's
 */
int qbc_cluster_whose(qbc_cluster_t *c, const char *realm, char *owner);

/** a consistent copy of the figures. Thread-safe. */
void qbc_cluster_stats(qbc_cluster_t *c, qbc_cluster_stats_t *out);

#define QBC_CLUSTER_URL_MAX 256 /**< bytes of an advertised URL, with its NUL */

/**
 * the other live nodes that advertise a URL, as last read: up to max of them into ids[i] and
 * urls[i]. Thread-safe, never blocks on I/O. @return how many
 */
unsigned qbc_cluster_peers(qbc_cluster_t *c, char (*ids)[QBC_NODE_ID_MAX], char (*urls)[QBC_CLUSTER_URL_MAX],
                           unsigned max);

/**
 * who serves a realm's admin requests (the forwarding of api/forward.c): qbc_cluster_whose, and
 * the other node's advertised URL. Thread-safe, never blocks on I/O.
 * @param[out] node (QBC_NODE_ID_MAX bytes) the owner as last read from the bucket ("" if none)
 * @param[out] url (QBC_CLUSTER_URL_MAX bytes) the owner's advertised URL ("" if none known)
 * @return 1 this node owns it now (within its fence), 0 another node does and its URL is known,
 *         QBC_ENOTFOUND no owner is known, or its URL is not (node says which)
 */
int qbc_cluster_realm_owner(qbc_cluster_t *c, const char *realm, char *node, char *url);

/**
 * the live node whose job id space holds id (qbc_cluster_job_id_base): where a job not yet
 * imported from the bucket can be read. Thread-safe, never blocks on I/O.
 * @return 1 this node's space, 0 another live node's (node and url filled), QBC_ENOTFOUND none
 *         (space 0, or no live node with a known URL has it)
 */
int qbc_cluster_job_node(qbc_cluster_t *c, uint64_t id, char *node, char *url);

/*
 * Job ids across nodes: each node creates backfill jobs in its own id space, [base, base +
 * QBC_JOB_ID_SPACE) with base = (1 + hash(node id) mod (2^20 - 1)) * 2^32 (store.h
 * qbc_store_config_t.job_id_base), so two nodes never hand out one id unless their ids hash
 * alike (about 1 in a million per pair): a job of another node met in this node's space is
 * counted (conflicts in qbc_job_sync_stats_t) and logged, not taken. Space 0 (ids below 2^32)
 * is a node's jobs from before cluster mode: never shared.
 */
#define QBC_CLUSTER_JOB_SPACES ((1ULL << 20) - 1)

/** a node's job id base (never 0). Pure. */
uint64_t qbc_cluster_job_id_base(const char *node_id);

/** the space of a job id: 0 (a node's own from before cluster mode) or 1 .. QBC_CLUSTER_JOB_SPACES. Pure. */
static inline uint64_t qbc_cluster_job_space(uint64_t id)
{
    return id / QBC_JOB_ID_SPACE;
}

/* ---------------------------------------------------------------- the replicated inbox (inbox.c) */

/*
 * Webhooks in cluster mode: any node stores a webhook's body, publishes it to the stream
 * QBCDC_INBOX on qbcdc.inbox.<partition> for each partition its events touch, and acks Intuit
 * after the PubAcks; the owner of a partition consumes its subject (durable consumer
 * inbox-<partition>), stores the events of its realms and acks the message once they are
 * durable in its store. A message a dead owner had not acked is redelivered to the next one.
 */

typedef struct st_qbc_inbox_config_t {
    const char *urls;  /**< comma-separated NATS server URLs */
    unsigned replicas; /**< of the stream, when this node creates it (0: 1) */
} qbc_inbox_config_t;

typedef struct st_qbc_inbox_t qbc_inbox_t;

typedef struct st_qbc_inbox_stats_t {
    int connected;
    uint64_t published;        /**< webhooks whose events the stream took */
    uint64_t publish_failures; /**< webhooks answered 503 because it did not */
    uint64_t consumed;         /**< messages of owned partitions now durable in this node's store */
    size_t queued;             /**< webhooks waiting to be published */
    unsigned outstanding;      /**< consumed messages not yet durable here */
    unsigned partitions_read;  /**< partitions whose inbox this node reads */
    char last_error[160];
} qbc_inbox_stats_t;

/**
 * starts the inbox's two threads (they connect by themselves).
 * @param cluster the lease thread, whose partitions the consumer reads; must outlive the inbox
 * @param store where consumed events go; must outlive the inbox
 * @return 0, or QBC_EINVAL (no URL)
 */
int qbc_cluster_inbox_start(const qbc_inbox_config_t *cfg, qbc_cluster_t *cluster, qbc_store_t *store,
                            qbc_inbox_t **out);

/**
 * ingress.h's forward hook (ctx: the qbc_inbox_t): queues a stored webhook for publishing.
 * Never blocks. done(arg, 0) once every partition's message is acknowledged, done(arg, < 0)
 * when one was not (-EIO), from the publisher thread.
 * @return 0, or QBC_EFULL (20,000 waiting) / QBC_ECLOSED (stopping) / -ENOMEM, done not called
 */
int qbc_cluster_inbox_forward(void *ctx, const void *body, size_t len, const qbc_event_t *events, size_t n_events,
                              void (*done)(void *arg, int result), void *arg);

/**
 * stops both threads: webhooks still queued get done(arg, QBC_ECLOSED); consumed messages get
 * up to 10 s to become durable and acked. The store must still be open. NULL: nothing.
 */
void qbc_cluster_inbox_stop(qbc_inbox_t *ib);

/** a consistent copy of the figures. Thread-safe. */
void qbc_cluster_inbox_stats(qbc_inbox_t *ib, qbc_inbox_stats_t *out);

/* ---------------------------------------------------------------- realms shared (realms.c) */

/*
 * Every node keeps every realm and its tokens through the key-value bucket qbcdc_realms: a
 * realm registered or disconnected on any node, or its tokens refreshed by its owner, reaches
 * the others, so a node taking a partition over has current tokens. Tokens travel sealed with
 * the master key (every node needs the same QBCDC_MASTER_KEY_FILE). The node that sweeps a realm
 * puts its CDC watermark as it advances (at most every 5 s a realm, and at stop); a node sweeps
 * from its own watermark, and from the bucket's only when it has none (see realms.c).
 */

typedef struct st_qbc_realm_sync_config_t {
    const char *urls;    /**< comma-separated NATS server URLs */
    const char *node_id; /**< written beside each realm it puts (for operators) */
    unsigned replicas;   /**< of the bucket, when this node creates it (0: 1) */
} qbc_realm_sync_config_t;

typedef struct st_qbc_realm_sync_t qbc_realm_sync_t;

typedef struct st_qbc_realm_sync_stats_t {
    int connected;
    uint64_t put;              /**< realms this node wrote to the bucket (newer here) */
    uint64_t imported;         /**< realms it took from the bucket (newer there) */
    uint64_t unsealable;       /**< entries whose tokens did not open with this node's master key */
    uint64_t watermarks_put;   /**< puts that carried this node's CDC watermark up */
    uint64_t watermarks_taken; /**< realms never swept here that took the bucket's watermark */
    char last_error[160];
} qbc_realm_sync_stats_t;

/**
 * starts the sync thread (it connects by itself) and listens to the store's commits.
 * @param store must outlive it
 * @return 0, QBC_EINVAL (no URL or a bad node id), QBC_EFULL (no store listener left)
 */
int qbc_cluster_realms_start(const qbc_realm_sync_config_t *cfg, qbc_store_t *store, qbc_realm_sync_t **out);

/** stops the thread; imports already queued get 10 s to commit. The store must be open. NULL: nothing. */
void qbc_cluster_realms_stop(qbc_realm_sync_t *rs);

/** a consistent copy of the figures. Thread-safe. */
void qbc_cluster_realms_stats(qbc_realm_sync_t *rs, qbc_realm_sync_stats_t *out);

/* ---------------------------------------------------------------- the shared meter (meter.c) */

/*
 * Intuit's monthly allowance is the app's, for every node together. Each node puts its own
 * counts of the period into the key-value bucket qbcdc_meter, key <period_start_s>.<node_id>
 * (history 1, no TTL; the value: its calls by purpose and in flight), at most every 250 ms
 * while they change, and watches everyone's; the reconciler's governor counts the others' calls
 * of the period as spent (reconciler.h qbc_reconciler_config_t.meter, allowance.c). A node
 * whose disk was lost takes its own count back from its key. Keys of periods more than two
 * periods old are removed by whichever node sees them. Without NATS the last counts known stay
 * in use (qbc_meter_share_t.lag_ns says how old they are).
 */

typedef struct st_qbc_meter_config_t {
    const char *urls;    /**< comma-separated NATS server URLs */
    const char *node_id; /**< this node's key suffix (qbc_cluster_node_id_ok) */
    unsigned replicas;   /**< of the bucket, when this node creates it (0: 1) */
} qbc_meter_config_t;

typedef struct st_qbc_meter_t qbc_meter_t;

/** one node's counts of one period, as the bucket holds them */
typedef struct st_qbc_meter_node_t {
    char node[QBC_NODE_ID_MAX];
    int64_t period_start_ns;
    uint64_t used[QBC_USAGE_PURPOSES];
    uint64_t inflight;
    int64_t updated_ns; /**< wall clock of its put */
} qbc_meter_node_t;

typedef struct st_qbc_meter_stats_t {
    int connected;         /**< reaches the bucket now */
    int synced;            /**< has read the bucket's entries once since start */
    uint64_t puts;         /**< this node's counts written */
    uint64_t put_failures; /**< writes that failed (retried) */
    uint64_t removed;      /**< keys of old periods removed */
    double lag_s;          /**< since the bucket was last reached (0 when connected) */
    char last_error[160];
} qbc_meter_stats_t;

/**
 * starts the meter's thread (it connects by itself, and keeps trying).
 * @return 0, or QBC_EINVAL (no URL or a bad node id), or -errno
 */
int qbc_cluster_meter_start(const qbc_meter_config_t *cfg, qbc_meter_t **out);

/** puts this node's last counts if they are not in the bucket yet (2 s at most), then stops. NULL: nothing. */
void qbc_cluster_meter_stop(qbc_meter_t *m);

/**
 * reconciler.h's meter hook (ctx: the qbc_meter_t): takes this node's counts (x's "in" part)
 * for the thread to put, fills x's "out" part from the bucket's entries of x->period_start_ns.
 * Thread-safe, takes a mutex, never blocks on I/O.
 */
void qbc_cluster_meter_share(void *ctx, qbc_meter_share_t *x);

/**
 * every node's counts of the period starting at period_start_ns, sorted by node, this node's
 * as it last handed them (not yet put, maybe). Thread-safe.
 * @return how many were written to out (at most max)
 */
size_t qbc_cluster_meter_nodes(qbc_meter_t *m, int64_t period_start_ns, qbc_meter_node_t *out, size_t max);

/** a consistent copy of the figures. Thread-safe. */
void qbc_cluster_meter_stats(qbc_meter_t *m, qbc_meter_stats_t *out);

/* ---------------------------------------------------------------- dead letters shared (dead.c) */

/*
 * A dead letter lives in the store of the node that gave up on it; in cluster mode each node
 * also puts its dead letters into the key-value bucket qbcdc_dead_letters, key
 * <node>.<store>.<id> (store: the first 8 hex digits of its store's feed id, so a node on a new
 * disk never reuses a key), so every node lists the cluster's and they outlive their node's
 * disk. A retry asked on any node marks the entry; the owner of its realm makes the notice
 * pending in its own store and marks it redriven; its home then drops its copy and the key.
 * The id operators see and retry by is the key (a bare number: this node's own dead letter).
 */

#define QBC_DEAD_KEY_MAX 96 /**< bytes of a dead letter's cluster id, with its NUL */

typedef enum {
    QBC_DEAD_DEAD = 0,     /**< given up; listed */
    QBC_DEAD_RETRY = 1,    /**< a retry was asked: the realm's owner redrives it */
    QBC_DEAD_REDRIVEN = 2, /**< pending again on the owner; its home drops it and the key */
} qbc_dead_state_t;

/** a dead letter as the cluster knows it */
typedef struct st_qbc_cluster_dead_t {
    char key[QBC_DEAD_KEY_MAX]; /**< its cluster id: <node>.<store>.<id> */
    char node[QBC_NODE_ID_MAX]; /**< its home */
    char store_tag[9];
    uint64_t id; /**< in its home's store */
    char realm[QBC_REALM_MAX], entity[QBC_ENTITY_MAX], entity_id[QBC_ID_MAX];
    qbc_op_t op;
    uint32_t attempts;
    char error[256];
    int64_t died_ns, updated_ns;
    int state;                /**< qbc_dead_state_t */
    int64_t state_ns;         /**< when it got that state */
    char by[QBC_NODE_ID_MAX]; /**< the node that asked the retry, or redrove it */
} qbc_cluster_dead_t;

typedef struct st_qbc_dead_sync_config_t {
    const char *urls;    /**< comma-separated NATS server URLs */
    const char *node_id; /**< this node (qbc_cluster_node_id_ok) */
    unsigned replicas;   /**< of the bucket, when this node creates it (0: 1) */
} qbc_dead_sync_config_t;

typedef struct st_qbc_dead_sync_t qbc_dead_sync_t;

typedef struct st_qbc_dead_sync_stats_t {
    int connected;
    uint64_t listed;   /**< dead letters in the bucket now, not yet redriven */
    uint64_t put;      /**< this node's dead letters written to the bucket */
    uint64_t redriven; /**< others' (or its own) redriven here, its realms' owner */
    uint64_t purged;   /**< keys removed (redriven, or gone from their home) */
    char last_error[160];
} qbc_dead_sync_stats_t;

/**
 * starts the thread (it connects by itself) and listens to the store's commits.
 * @param cluster whose ownership says which node redrives a dead letter; must outlive it
 * @param store must outlive it
 * @return 0, QBC_EINVAL (no URL, a bad node id, a store without a feed id), QBC_EFULL (no store
 *         listener left), or -errno
 */
int qbc_cluster_dead_start(const qbc_dead_sync_config_t *cfg, qbc_cluster_t *cluster, qbc_store_t *store,
                           qbc_dead_sync_t **out);

/** stops the thread; store jobs under way get 10 s to commit. The store must be open. NULL: nothing. */
void qbc_cluster_dead_stop(qbc_dead_sync_t *ds);

/**
 * the cluster's dead letters not redriven yet (the bucket's, and this node's own not in it yet),
 * oldest first, into out. Thread-safe; reads the store. @return how many (at most max)
 */
size_t qbc_cluster_dead_list(qbc_dead_sync_t *ds, qbc_cluster_dead_t *out, size_t max);

/**
 * asks for a dead letter's retry, by its cluster id (or a bare number: this node's own). The
 * thread marks it in the bucket; its realm's owner redrives it. Thread-safe, no I/O.
 * @param[out] out (may be NULL) with 0: the dead letter as listed
 * @return 0, QBC_ENOTFOUND (no such dead letter listed), QBC_ECLOSED (the bucket is out of reach
 *         now), QBC_EFULL (too many retries waiting)
 */
int qbc_cluster_dead_retry(qbc_dead_sync_t *ds, const char *id, qbc_cluster_dead_t *out);

/** a consistent copy of the figures. Thread-safe. */
void qbc_cluster_dead_stats(qbc_dead_sync_t *ds, qbc_dead_sync_stats_t *out);

/* ---------------------------------------------------------------- jobs shared (jobs.c) */

/*
 * Backfill and snapshot jobs, cluster-wide, through the key-value bucket qbcdc_jobs: one key
 * per job (its decimal id), its value {"v":1,"node":<who wrote it>,"job":<the store's JSON of
 * the job: definition, checkpoint, status>}. A store listener puts every job of this node's
 * store that is newer (qbc_backfill_cmp) than the bucket's: created here, its checkpoint moved
 * by this node's reconciler, cancelled here. A watcher imports every newer entry into the
 * store (qbc_backfill_job_t.import), on every node: GET /admin/jobs answers the cluster's
 * jobs from any node, and the node that owns a job's realm (the only one whose reconciler
 * calls QBO for it) holds its latest checkpoint when it takes the realm over, and resumes
 * from it. A cancel on any node reaches the bucket, then the owner, whose next checkpoint
 * the store refuses. Jobs of id space 0 stay local.
 */

typedef struct st_qbc_job_sync_config_t {
    const char *urls;    /**< comma-separated NATS server URLs */
    const char *node_id; /**< written beside each job it puts */
    unsigned replicas;   /**< of the bucket, when this node creates it (0: 1) */
} qbc_job_sync_config_t;

typedef struct st_qbc_job_sync_t qbc_job_sync_t;

typedef struct st_qbc_job_sync_stats_t {
    int connected;
    uint64_t put;       /**< job states this node wrote to the bucket (newer here) */
    uint64_t imported;  /**< job states it took from the bucket (newer there) */
    uint64_t conflicts; /**< another node's jobs in this node's id space (not taken) */
    char last_error[160];
} qbc_job_sync_stats_t;

/**
 * starts the sync thread (it connects by itself) and listens to the store's commits.
 * @param store must outlive it
 * @return 0, QBC_EINVAL (no URL or a bad node id), QBC_EFULL (no store listener left)
 */
int qbc_cluster_jobs_start(const qbc_job_sync_config_t *cfg, qbc_store_t *store, qbc_job_sync_t **out);

/** stops the thread; imports already queued get 10 s to commit. The store must be open. NULL: nothing. */
void qbc_cluster_jobs_stop(qbc_job_sync_t *js);

/** a consistent copy of the figures. Thread-safe. */
void qbc_cluster_jobs_stats(qbc_job_sync_t *js, qbc_job_sync_stats_t *out);

/* ---------------------------------------------------------------- the cluster feed (feed_mirror.c) */

/*
 * /v1/changes on any node serves the cluster-wide feed: the stream QBCDC_FEED, which every
 * node's publisher (jetstream.h) fills with its own realms' changes, each entity version once.
 * Each node copies the stream, in stream order, into a store of its own (opened by the caller
 * with qbc_store_config_t.adopt_feed_id), through an ordered consumer that starts after the
 * last stream sequence the copy holds: the records keep their bytes, except that "seq" becomes
 * the stream sequence, which is also their sequence in the copy (QBC_JOB_FEED_APPEND). So the
 * same record has the same seq on every node, and a consumer can switch nodes with its cursor.
 *
 * The copy's feed id is the stream's identity (a hash of its name and creation time): the same
 * on every node, and another one if the stream is deleted and made again (the copy then
 * starts over). The read position is committed with the records, so a restart resumes exactly.
 * Messages the stream lost before they were copied (purged, or aged out by its limits) are
 * recorded as pruned: a reader behind them gets 410, never a silent gap. Single messages
 * deleted from the stream only leave gaps in the sequences, as filtered reads do.
 */

typedef struct st_qbc_feed_mirror_config_t {
    const char *urls;   /**< comma-separated NATS server URLs (QBCDC_NATS_URL) */
    const char *stream; /**< the feed stream (QBCDC_NATS_STREAM); NULL: "QBCDC_FEED" */
} qbc_feed_mirror_config_t;

typedef struct st_qbc_feed_mirror_t qbc_feed_mirror_t;

/** figures for GET /admin/cluster and /metrics */
typedef struct st_qbc_feed_mirror_stats_t {
    int connected;                     /**< reading the stream now */
    uint64_t mirrored;                 /**< the last stream sequence copied (the committed position) */
    uint64_t stream_last;              /**< the stream's last sequence as last seen (0: not seen since start) */
    uint64_t records;                  /**< records copied since start */
    uint64_t skipped;                  /**< messages that were not a feed record (not copied, logged) */
    uint64_t resets;                   /**< times the copy started over (the stream was made again) */
    char feed_id[QBC_FEED_ID_LEN + 1]; /**< the stream's identity ("" until first read) */
    char last_error[160];              /**< "" when none */
} qbc_feed_mirror_stats_t;

/**
 * starts the copying thread (it connects, and keeps trying, by itself; until the stream
 * exists it waits for a node's publisher to make it).
 * @param copy the store the records go to, opened with adopt_feed_id and used for nothing
 *        else; must outlive the mirror
 * @return 0, QBC_EINVAL (no URL), or -errno (no thread)
 */
int qbc_cluster_feed_start(const qbc_feed_mirror_config_t *cfg, qbc_store_t *copy, qbc_feed_mirror_t **out);

/** stops the thread (a batch being committed is waited for) and closes its connection. NULL: nothing. */
void qbc_cluster_feed_stop(qbc_feed_mirror_t *m);

/** a consistent copy of the figures. Thread-safe. */
void qbc_cluster_feed_stats(qbc_feed_mirror_t *m, qbc_feed_mirror_stats_t *out);

/**
 * how far the cluster feed reaches, as far as this node knows: the larger of the copied
 * position and the stream's last sequence as last seen; UINT64_MAX before the stream was
 * first seen. A reader's `after` beyond it is of another feed (the API's 409); below it and
 * beyond the copy's head, it waits for the copy to catch up. Thread-safe, never blocks on I/O.
 */
uint64_t qbc_cluster_feed_horizon(qbc_feed_mirror_t *m);

/** a message of the feed stream as a record of the cluster feed (qbc_cluster__feed_record) */
typedef struct st_qbc_feed_msg_t {
    char realm[QBC_REALM_MAX];
    char entity[QBC_ENTITY_MAX];
    char *json; /**< malloc'd, NUL-terminated after json_len bytes: the record with "seq" = the stream's */
    size_t json_len;
    /**
     * 1: version holds the change the record reports ("id", "op", "version", "last_updated",
     * "source" and "data", whose bytes version.data points to within json); 0: the record
     * names no version this node can read (it is copied all the same, as a record alone)
     */
    int has_version;
    qbc_version_t version;
} qbc_feed_msg_t;

/**
 * reads a feed stream message (the record as its origin node's /v1/changes serves it, "seq"
 * being the origin's sequence) into the record the cluster feed serves: the same bytes,
 * except the value of "seq", which becomes seq, and whitespace between tokens (dropped, so
 * the record is one line). Bytes from NATS are checked as untrusted (common/json_scan.h,
 * RFC 8259 numbers): a JSON object with exactly one "seq" member, a non-negative integer,
 * and the strings "realm" (1 to QBC_REALM_MAX - 1 bytes) and "entity" (1 to
 * QBC_ENTITY_MAX - 1 bytes). The version it reports is read too, when it has one
 * (qbc_feed_msg_t.has_version). Thread-safe.
 * @param[out] out filled on success (free out->json); zeroed on failure
 * @return 0, or QBC_EMALFORMED (why: a static text in *why, may be NULL)
 */
int qbc_cluster__feed_record(const char *data, size_t len, uint64_t seq, qbc_feed_msg_t *out, const char **why);

/* ---------------------------------------------------------------- internal, for the unit tests */

/**
 * which CDC watermark a node sweeps a realm from: its own when it has one (its store holds the
 * versions it fetched up to there), else the bucket's (the realm is new to it, or never swept
 * there: a fresh disk). 0: none.
 */
int64_t qbc_cluster__watermark_start(int have_local, int64_t local_wm, int64_t bucket_wm);

/**
 * whether a node puts a realm's entry again for its watermark: the entry is of the same
 * connection as the node's (order_vs_bucket 0: the tokens compare equal), the node's watermark
 * is ahead of the bucket's, and its last put of the realm (0: never) is 5 s old, or this is
 * the last scan before stopping (final). With 0 and a put still due, *due_mono says when.
 */
int qbc_cluster__watermark_put_due(int order_vs_bucket, int64_t local_wm, int64_t bucket_wm, int64_t last_put_mono,
                                   int64_t now_mono, int final, int64_t *due_mono);

/** a dead letter's key. @return 0, or -1 (a bad node or store tag, or size too small) */
int qbc_cluster__dead_key(const char *node, const char *store_tag, uint64_t id, char *out, size_t size);

/** parses a dead letter's key. @return 0, or -1 when it is not one */
int qbc_cluster__dead_key_parse(const char *key, char node[QBC_NODE_ID_MAX], char store_tag[9], uint64_t *id);

typedef enum {
    QBC_DEAD_WAIT = 0,      /**< nothing for this node to do */
    QBC_DEAD_REDRIVE_LOCAL, /**< its home owns the realm: a local redrive, then mark it redriven */
    QBC_DEAD_IMPORT,        /**< this node owns the realm: a pending notice here, then mark it redriven */
    QBC_DEAD_DROP_LOCAL,    /**< redriven, and this is its home: drop the local copy, then purge the key */
    QBC_DEAD_PURGE,         /**< redriven, and its home store is gone (or never came back): purge the key */
} qbc_dead_action_t;

/**
 * what this node does with a dead letter of the bucket.
 * @param me, my_store this node and its store's tag
 * @param owns_realm this node owns d's realm now
 * @param now_ns wall clock
 */
qbc_dead_action_t qbc_cluster__dead_decide(const qbc_cluster_dead_t *d, const char *me, const char *my_store,
                                           int owns_realm, int64_t now_ns);

/** the meter's key of a node's period: "<period_start_s>.<node>". @return 0, or -1 (a bad node, or size too small) */
int qbc_cluster__meter_key(int64_t period_start_ns, const char *node, char *out, size_t size);

/** parses a meter key. @return 0, or -1 when it is not one */
int qbc_cluster__meter_key_parse(const char *key, int64_t *period_start_ns, char node[QBC_NODE_ID_MAX]);

/**
 * fills x's "out" counts (own, others, others_inflight, n_others) from n entries: those of
 * x->period_start_ns only; me's are own, everyone else's are added up.
 */
void qbc_cluster__meter_sum(const qbc_meter_node_t *e, size_t n, const char *me, qbc_meter_share_t *x);

/**
 * the value lease.c writes in node.<id>: {"t":<unix seconds>,"url":"<advertised>"} (no "url"
 * without one), into out. @return its length, or -1 when it does not fit
 */
int qbc_cluster__node_value(char *out, size_t size, int64_t unix_s, const char *url);
/**
 * the advertised URL in a node.<id> value (len bytes; older nodes wrote the time alone) into
 * url (QBC_CLUSTER_URL_MAX bytes). @return 0, or QBC_ENOTFOUND ("" in url)
 */
int qbc_cluster__node_value_url(const char *value, size_t len, char *url);

typedef enum {
    QBC_LEASE_WAIT = 0, /**< nothing to do (or someone else's) */
    QBC_LEASE_TAKE,     /**< create the key (or adopt our own lease from before a restart) */
    QBC_LEASE_RENEW,    /**< update it with our revision */
    QBC_LEASE_RELEASE,  /**< stop using it, then delete the key */
} qbc_lease_action_t;

/**
 * what a node does with one partition in a round.
 * @param held this node holds the lease (and is within its fence)
 * @param owner the lease's owner as just read ("" or NULL: free)
 * @param me this node's id
 * @param preferred the preferred live node's id (NULL: none known)
 * @param free_for_ns how long the partition has been seen free (0 the first time)
 * @param ttl_ns the lease TTL
 */
qbc_lease_action_t qbc_cluster__decide(int held, const char *owner, const char *me, const char *preferred,
                                       int64_t free_for_ns, int64_t ttl_ns);

#endif
