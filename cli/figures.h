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
void qbc_figures_install(qbc_api_t *ing, qbc_reconciler_t *r, qbc_jetstream_t *js, qbc_delivery_t *dl,
                         qbc_cluster_t *cluster, qbc_inbox_t *inbox);

#endif
