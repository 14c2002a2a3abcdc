/*
 * figures.h — shows the reconciler's and the JetStream publisher's live figures through the HTTP API.
 */
#ifndef QBC_CLI_FIGURES_H
#define QBC_CLI_FIGURES_H

#include "api.h"
#include "cluster.h"
#include "delivery.h"
#include "jetstream.h"
#include "reconciler.h"

/**
 * GET /admin/realms gains api_calls_last_minute, api_inflight, throttled_until and the budget;
 * /metrics the reconciler's and the JetStream publisher's counters; GET /admin/budget. Either
 * may be NULL (not running); the push delivery's metrics (dl) too; the cluster's leases and inbox in
 * GET /admin/cluster and /metrics. Once, before the server runs.
 */
typedef struct st_qbc_figures_cluster_t {
    qbc_cluster_t *leases;    /**< NULL: one node (then the others are NULL too) */
    qbc_inbox_t *inbox;       /**< the replicated inbox */
    qbc_realm_sync_t *realms; /**< realms shared through the bucket */
    qbc_meter_t *meter;       /**< the allowance's shared meter (GET /admin/budget's nodes) */
    qbc_dead_sync_t *dead;    /**< dead letters shared (GET /admin/dead-letters, retries) */
    qbc_job_sync_t *jobs;     /**< backfill and snapshot jobs shared through the bucket */
    qbc_feed_mirror_t *feed;  /**< this node's copy of the cluster feed */
} qbc_figures_cluster_t;

void qbc_figures_install(qbc_api_t *ing, qbc_reconciler_t *r, qbc_jetstream_t *js, qbc_delivery_t *dl,
                         const qbc_figures_cluster_t *cluster);

#endif
