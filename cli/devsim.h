/*
 * devsim.h — development mode: with no Intuit credentials, `qbcdc serve` starts the
 * bundled simulator (build/qbosim) and points itself at it, so a fresh checkout
 * shows webhooks flowing without an Intuit account.
 */
#ifndef QBC_CLI_DEVSIM_H
#define QBC_CLI_DEVSIM_H

#include <sys/types.h>
#include "config.h"
#include "store.h"

typedef struct st_qbc_devsim_t {
    pid_t pid;       /**< 0 when no simulator was started */
    char token[65];  /**< verifier token shared with the simulator */
    char *tokens[2]; /**< replaces cfg->tokens when we generated the token */
    char api_base[128], token_url[160], authorize_url[160], redirect_uri[320], revoke_url[160];
    char state_path[4096]; /**< the simulator's companies, kept beside the store (qbosim --state) */
} qbc_devsim_t;

/**
 * starts qbosim when cfg->sim is "auto" and no client id is configured; rewrites cfg
 * (verifier token if none, client id/secret, API and OAuth URLs) to point at it.
 * Returns 0 also when it decided not to start one (sim->pid == 0); QBC_ENOTFOUND if
 * the qbosim binary is not beside qbcdc (logged; the service runs without it).
 */
int qbc_devsim_start(qbc_config_t *cfg, qbc_devsim_t *sim);

/**
 * registers every simulated company's refresh token in the store (as PUT .../tokens
 * would), so the reconciler syncs them at once. Companies already active are left
 * alone: their stored tokens have rotated past the simulator's first ones. With snapshot
 * set, a company the store never held gets its snapshot job in the same transaction (as
 * the admin API's registration does).
 */
int qbc_devsim_register(qbc_devsim_t *sim, const char *sim_listen, qbc_store_t *store, int snapshot);

/** stops the simulator (SIGTERM, then SIGKILL after 3 s) if one was started. */
void qbc_devsim_stop(qbc_devsim_t *sim);

#endif
