/*
 * figures.h — shows the reconciler's live figures through the ingress.
 */
#ifndef QBC_CLI_FIGURES_H
#define QBC_CLI_FIGURES_H

#include "ingress.h"
#include "reconciler.h"

/** GET /admin/realms gains api_calls_last_minute, api_inflight, throttled_until; /metrics the counters. */
void qbc_figures_install(qbc_ingress_t *ing, qbc_reconciler_t *r);

#endif
