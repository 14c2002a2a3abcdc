/*
 * fence.c — cluster mode: the reconciler calls QBO only for realms whose partition this node
 * owns (reconciler.h qbc_reconciler_config_t.owns).
 *
 * Each turn of the loop asks, for every realm, whether it is still ours: cheaply, since the
 * answer can change only when the cluster's epoch moves (a lease taken, released or lost) or
 * when the realm's fence deadline passes (a renewal moves it on without a new epoch). A realm
 * fenced out gets no new call (its budget says none is available) and its calls in flight are
 * stopped, their notices left pending: whichever node owns the realm next fetches them. A realm
 * that becomes ours is swept by CDC at once: the notices its previous owner had taken from the
 * replicated inbox but not fetched are on that node's disk, and the sweep finds their changes.
 */
#include "rec_internal.h"

void qbc_rec__fence(qbc_reconciler_t *r, int64_t now)
{
    if (r->cfg.owns == NULL)
        return;
    uint64_t epoch = r->cfg.owns_epoch(r->cfg.owns_ctx);
    for (size_t i = 0; i < r->n_realms; i++) {
        rec_realm_t *realm = r->realms[i];
        int checked = realm->fence_epoch == epoch && realm->fence_until_ns != INT64_MIN;
        if (checked && (realm->budget.fenced || now < realm->fence_until_ns))
            continue; /* nothing can have changed */
        int64_t until = 0;
        int owns = r->cfg.owns(r->cfg.owns_ctx, realm->name, &until);
        realm->fence_epoch = epoch;
        realm->fence_until_ns = owns ? until : 0;
        if (owns && realm->budget.fenced) {
            realm->budget.fenced = realm->batch_budget.fenced = 0;
            /* what its last owner had stored but not fetched is on that node's disk: a CDC sweep
               from our watermark finds it (the inbox redelivers only what was not yet stored) */
            if (realm->cdc.due_ns != 0 && realm->cdc.due_ns > now)
                realm->cdc.due_ns = now;
            qbc_log(QBC_LOG_DEBUG, REC_MOD, "realm %s: its partition is this node's; calling QBO for it", realm->name);
        } else if (!owns && !realm->budget.fenced) {
            realm->budget.fenced = realm->batch_budget.fenced = 1;
            unsigned n = qbc_rec__abort_realm(r, realm, "stopped: the realm's partition is no longer this node's");
            qbc_log(QBC_LOG_DEBUG, REC_MOD,
                    "realm %s: its partition is another node's; no calls to QBO for it (%u stopped)", realm->name, n);
        }
    }
}
