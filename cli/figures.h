/*
 * figures.h — shows the reconciler's live figures through the HTTP API.
 */
#ifndef QBC_CLI_FIGURES_H
#define QBC_CLI_FIGURES_H

#include "api.h"
#include "reconciler.h"

/** GET /admin/realms gains api_calls_last_minute, api_inflight, throttled_until; /metrics the counters. */
void qbc_figures_install(qbc_api_t *ing, qbc_reconciler_t *r);

#endif
