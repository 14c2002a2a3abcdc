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
#include "store.h"

#define QBC_CLUSTER_MAX_PARTITIONS 1024
#define QBC_NODE_ID_MAX 64 /**< bytes of a node id, with its NUL */

typedef struct st_qbc_cluster_config_t {
    const char *urls;     /**< comma-separated NATS server URLs (QBCDC_NATS_URL) */
    const char *node_id;  /**< QBCDC_NODE_ID: 1 to 63 of [A-Za-z0-9_-] (qbc_cluster_node_id_ok) */
    unsigned partitions;  /**< QBCDC_PARTITIONS: 1 to QBC_CLUSTER_MAX_PARTITIONS */
    unsigned lease_ttl_s; /**< QBCDC_LEASE_TTL: the bucket's TTL (0: 10) */
    unsigned replicas;    /**< of the bucket, when this node creates it (0: 1) */
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
 * the master key (every node needs the same QBCDC_MASTER_KEY_FILE). CDC watermarks stay each
 * node's own (see realms.c).
 */

typedef struct st_qbc_realm_sync_config_t {
    const char *urls;    /**< comma-separated NATS server URLs */
    const char *node_id; /**< written beside each realm it puts (for operators) */
    unsigned replicas;   /**< of the bucket, when this node creates it (0: 1) */
} qbc_realm_sync_config_t;

typedef struct st_qbc_realm_sync_t qbc_realm_sync_t;

typedef struct st_qbc_realm_sync_stats_t {
    int connected;
    uint64_t put;        /**< realms this node wrote to the bucket (newer here) */
    uint64_t imported;   /**< realms it took from the bucket (newer there) */
    uint64_t unsealable; /**< entries whose tokens did not open with this node's master key */
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
} qbc_feed_msg_t;

/**
 * reads a feed stream message (the record as its origin node's /v1/changes serves it, "seq"
 * being the origin's sequence) into the record the cluster feed serves: the same bytes,
 * except the value of "seq", which becomes seq, and whitespace between tokens (dropped, so
 * the record is one line). Bytes from NATS are checked as untrusted (common/json_scan.h,
 * RFC 8259 numbers): a JSON object with exactly one "seq" member, a non-negative integer,
 * and the strings "realm" (1 to QBC_REALM_MAX - 1 bytes) and "entity" (1 to
 * QBC_ENTITY_MAX - 1 bytes). Thread-safe.
 * @param[out] out filled on success (free out->json); zeroed on failure
 * @return 0, or QBC_EMALFORMED (why: a static text in *why, may be NULL)
 */
int qbc_cluster__feed_record(const char *data, size_t len, uint64_t seq, qbc_feed_msg_t *out, const char **why);

/* ---------------------------------------------------------------- internal, for the unit tests */

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
