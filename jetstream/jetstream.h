/*
 * jetstream.h — the feed published to a NATS JetStream stream (issue 13, part 1).
 *
 * With QBCDC_NATS_URL set, every feed record goes to the stream (QBCDC_FEED by default) on
 * subject qbcdc.feed.<realm>.<Entity>, the message being the record exactly as /v1/changes
 * serves it, with the headers Nats-Msg-Id = realm/Entity/id/version, or realm/Entity/id/delete
 * for a delete (a record published twice is stored once, by any node), Qbcdc-Feed-Seq and
 * Qbcdc-Feed-Id. One thread publishes in feed order, each record after the last one's PubAck,
 * and commits its cursor (the last feed sequence the stream acknowledged) to the store. On
 * start it reads the stream's last message: a record
 * acknowledged but not yet in the stored cursor (a crash between the two) is not published
 * again, whatever JetStream's duplicate window. A NATS outage blocks nothing else: webhooks,
 * reconciliation and /v1/changes go on; the publisher catches up when NATS returns.
 */
#ifndef QBC_JETSTREAM_H
#define QBC_JETSTREAM_H

#include <stdint.h>
#include <nats/nats.h>
#include "store.h"

typedef struct st_qbc_jetstream_config_t {
    const char *urls;   /**< comma-separated NATS server URLs (QBCDC_NATS_URL) */
    unsigned replicas;  /**< of the stream, when qbcdc creates it (0: 1) */
    const char *stream; /**< NULL: "QBCDC_FEED" */
    /**
     * cluster mode: several nodes publish their feeds to one stream. 1: the latest version of
     * each entity in the stream is kept in the key-value bucket qbcdc_versions (realm.Entity.id
     * -> "version/op"), and a record whose entity the stream holds at that version or a newer
     * one is skipped: each version once, per entity never backwards, beyond the stream's
     * 2-minute duplicate window too.
     */
    int cluster_versions;
    /**
     * cluster mode (NULL otherwise): who publishes a record, asked for each one. 1: the
     * record's realm is this node's (publish it); 0: another node owns it (skip it: the owner
     * publishes what it fetches, and a takeover's CDC sweep refetches what this node had not
     * published); -1: no owner known now (wait, and ask again). Only the owner publishing
     * means two nodes never publish one entity's versions at the same time, which the bucket
     * qbcdc_versions (read, then written) alone cannot order. Called from the publisher's
     * thread; must not block.
     */
    int (*owner)(void *ctx, const char *realm);
    void *owner_ctx;
} qbc_jetstream_config_t;

typedef struct st_qbc_jetstream_t qbc_jetstream_t;

/** figures for /metrics and /admin */
typedef struct st_qbc_jetstream_stats_t {
    int connected;      /**< to a NATS server, the stream known */
    uint64_t cursor;    /**< the last feed sequence the stream acknowledged */
    uint64_t head;      /**< the feed's last sequence */
    uint64_t published; /**< records published since start */
    uint64_t skipped;   /**< cluster mode: records the stream held already (another node's) */
    uint64_t not_owner; /**< cluster mode: records of realms another node owned by the time they came up */
    int waiting_owner;  /**< cluster mode: 1 while the next record's realm has no owner (publishing waits) */
    uint64_t failures;  /**< publishes that failed (retried) */
    char last_error[160];
} qbc_jetstream_stats_t;

/**
 * starts the publisher thread (it connects, and keeps trying, by itself).
 * @return 0, or QBC_EINVAL (no URL)
 */
int qbc_jetstream_start(const qbc_jetstream_config_t *cfg, qbc_store_t *store, qbc_jetstream_t **out);

/** stops the thread, commits the cursor, closes the connection. NULL: nothing. */
void qbc_jetstream_stop(qbc_jetstream_t *js);

/** a consistent copy of the figures. Thread-safe. */
void qbc_jetstream_stats(qbc_jetstream_t *js, qbc_jetstream_stats_t *out);

/* ---------------------------------------------------------------- connecting (nats.c) */

/**
 * splits QBCDC_NATS_URL (URLs separated by commas or spaces) into a malloc'd array of
 * malloc'd strings (qbc_nats_servers_free).
 * @return how many
 */
int qbc_nats_servers(const char *urls, char ***out);

void qbc_nats_servers_free(char **servers, int n);

/**
 * connects to the first of servers that answers (2 s each), with the options every qbcdc
 * connection has: once connected, nats.c reconnects by itself for ever, every
 * reconnect_wait_ms. Blocking: call it from a thread of one's own.
 * @return NATS_OK with *out set, or the failure (natsStatus_GetText says it), *out NULL
 */
natsStatus qbc_nats_connect(char **servers, int n, int reconnect_wait_ms, natsConnection **out);

#endif
