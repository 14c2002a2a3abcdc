/*
 * action.c — the one place that decides what a failed (or good) QBO answer means for
 * whoever asked: live fetches, CDC sweeps and backfill jobs. Callers carry the action
 * out in their own terms (a notice retried, a sweep ended, a job failed).
 */
#include <string.h>
#include <strings.h>
#include "rec_internal.h"

int qbc_rec__entity_refused(long status, const qbc_fault_t *f)
{
    int has = f != NULL && f->present;
    if (status == 401 || status == 403 || status == 404 || status == 429 || status >= 500)
        return 0;
    if (has && (strstr(f->type, "Authentication") != NULL || strstr(f->type, "Authorization") != NULL ||
                strcasecmp(f->type, "AUTHENTICATION") == 0 || qbc_rec_fault_too_old(f)))
        return 0;
    return (status >= 400 && status < 500) || (has && strcmp(f->type, "ValidationFault") == 0);
}

rec_action_t qbc_rec__action_for(qbc_rec_class_t cls, rec_purpose_t purpose, long status, const qbc_fault_t *fault)
{
    switch (cls) {
    case REC_RES_OK:
        return REC_ACT_USE;
    case REC_RES_THROTTLED:
        return REC_ACT_PAUSE;
    case REC_RES_AUTH:
        return REC_ACT_REAUTH;
    case REC_RES_RETRY:
        return REC_ACT_RETRY;
    case REC_RES_GONE:
    case REC_RES_CLIENT:
        break;
    }
    switch (purpose) {
    case REC_FOR_QUERY: /* one id may be what QBO refuses, or hidden from queries: ask for each alone */
        return REC_ACT_READ_ALONE;
    case REC_FOR_READ:
        return cls == REC_RES_GONE ? REC_ACT_DELETED : REC_ACT_GIVE_UP;
    case REC_FOR_CDC:
        if (qbc_rec_fault_too_old(fault))
            return REC_ACT_CATCH_UP;
        break;
    case REC_FOR_BACKFILL:
        break;
    }
    if (cls == REC_RES_CLIENT && qbc_rec__entity_refused(status, fault))
        return REC_ACT_SKIP_ENTITY;
    return REC_ACT_GIVE_UP;
}
