/*
 * fetch.c — what a finished fetch (query, batch, single read) becomes: its answer is
 * classified and parsed, each part's notices settle (offered versions, retries, reads
 * alone, dead letters), and the realm's budget learns from throttling.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "rec_internal.h"

/* what one query (or read) of x became; items are taken over */
static void part_done(qbc_reconciler_t *r, rec_xfer_t *x, const rec_part_t *p, qbc_rec_class_t cls, long status,
                      const qbc_fault_t *fault, const char *err, qbc_rec_item_t *items, size_t n_items, int64_t now)
{
    rec_notice_t **ns = x->ns + p->off;
    size_t n = p->n;
    int read = x->kind == X_READ;
    switch (qbc_rec__action_for(cls, read ? REC_FOR_READ : REC_FOR_QUERY, status, fault)) {
    case REC_ACT_USE:
        if (x->kind == X_CDC) {
            /*
             * a live CDC answer: notices it does not hold (their time is not the entity's, or
             * it changed again since) go back to queries, not to one read each
             */
            size_t k = 0;
            for (size_t i = 0; i < n; i++) {
                int held = 0;
                for (size_t j = 0; j < n_items && !held; j++)
                    held = strcmp(items[j].id, ns[i]->id) == 0;
                if (held)
                    ns[k++] = ns[i];
                else
                    qbc_rec__notice_release(ns[i]);
            }
            n = k;
        }
        qbc_rec__offer(r, x->realm, p->entity, ns, n, items, n_items, read);
        return;
    case REC_ACT_DELETED:
        for (size_t i = 0; i < n; i++)
            ns[i]->fetch_op = QBC_OP_DELETE;
        qbc_rec__offer(r, x->realm, p->entity, ns, n, NULL, 0, read);
        break;
    case REC_ACT_PAUSE:
        qbc_rec__realm_throttled(r, x->realm, now, x->retry_after_ms, err);
        for (size_t i = 0; i < n; i++)
            qbc_rec__notice_release(ns[i]);
        break;
    case REC_ACT_REAUTH:
        qbc_rec__auth_rejected(r, x->realm, x->token_gen);
        for (size_t i = 0; i < n; i++) {
            if (!ns[i]->auth_retried) {
                ns[i]->auth_retried = 1;
                qbc_rec__notice_release(ns[i]);
            } else {
                qbc_rec__notice_failed(r, ns[i], now, err);
            }
        }
        break;
    case REC_ACT_RETRY:
        qbc_log(QBC_LOG_DEBUG, REC_MOD, "realm %s %s: %s; will retry", x->realm->name, p->entity, err);
        for (size_t i = 0; i < n; i++)
            qbc_rec__notice_failed(r, ns[i], now, err);
        break;
    case REC_ACT_READ_ALONE:
        if (cls == REC_RES_CLIENT)
            qbc_log(QBC_LOG_WARN, REC_MOD, "realm %s: query of %zu %s refused (%s); reading them one by one",
                    x->realm->name, n, p->entity, err);
        for (size_t i = 0; i < n; i++) {
            ns[i]->need_read = 1;
            if (cls == REC_RES_CLIENT)
                snprintf(ns[i]->last_error, sizeof(ns[i]->last_error), "%s", err);
            qbc_rec__notice_release(ns[i]);
        }
        break;
    case REC_ACT_SKIP_ENTITY: /* not given to live fetches */
    case REC_ACT_CATCH_UP:
    case REC_ACT_GIVE_UP:
        for (size_t i = 0; i < n; i++) {
            ns[i]->attempts++;
            qbc_rec__dead_letter(r, ns[i], err);
        }
        break;
    }
    qbc_rec_items_free(items, n_items);
}

/*
 * a live CDC answer as batch-like parts, one per entity of x: each gets the objects of its
 * entity (deleted ones as deletes); notices it does not hold go on to single reads (offer).
 * At the answer's cap something may be missing: every part is given back (state -1: the
 * notices are retried, through queries and reads now that cdc_tried is set).
 */
static int live_cdc_parts(rec_xfer_t *x, qbc_rec_part_t **out, qbc_fault_t *fault)
{
    qbc_rec_cdc_group_t *groups = NULL;
    size_t n_groups = 0, total = 0;
    int64_t time_ns = 0;
    int rc = qbc_rec_parse_cdc(x->body.data, x->body.len, &groups, &n_groups, &time_ns, &total, fault);
    if (rc != 0)
        return rc;
    qbc_rec_part_t *parts = qbc_calloc(x->n_parts, sizeof(*parts));
    for (size_t i = 0; i < x->n_parts; i++) {
        parts[i].state = total >= REC_CDC_CAP ? -1 : 0;
        for (size_t g = 0; g < n_groups && total < REC_CDC_CAP; g++) {
            if (strcmp(groups[g].entity, x->parts[i].entity) == 0 && groups[g].items != NULL) {
                parts[i].items = groups[g].items;
                parts[i].n = groups[g].n;
                groups[g].items = NULL;
                groups[g].n = 0;
            }
        }
    }
    qbc_rec_cdc_groups_free(groups, n_groups);
    *out = parts;
    return 0;
}

static void api_done(qbc_reconciler_t *r, rec_xfer_t *x, int curl_ok, long status)
{
    int64_t now = qbc_mono_ns();
    qbc_fault_t fault;
    qbc_rec_item_t *items = NULL, one;
    size_t n_items = 0;
    int prc = 0;
    qbc_rec_part_t *parts = NULL;
    if (curl_ok)
        qbc_rec_parse_fault(x->body.data, x->body.len, &fault);
    else
        memset(&fault, 0, sizeof(fault));
    qbc_rec_class_t cls = qbc_rec_classify(curl_ok, status, &fault);
    if (cls == REC_RES_OK) {
        if (x->kind == X_BATCH) {
            const char **ents = qbc_alloc(x->n_parts * sizeof(*ents));
            for (size_t i = 0; i < x->n_parts; i++)
                ents[i] = x->parts[i].entity;
            parts = qbc_calloc(x->n_parts, sizeof(*parts));
            prc = qbc_rec_parse_batch(x->body.data, x->body.len, ents, x->n_parts, parts, &fault);
            free(ents);
        } else if (x->kind == X_CDC) {
            prc = live_cdc_parts(x, &parts, &fault);
        } else if (x->kind == X_QUERY) {
            prc = qbc_rec_parse_query(x->body.data, x->body.len, x->parts[0].entity, &items, &n_items, &fault);
        } else if ((prc = qbc_rec_parse_read(x->body.data, x->body.len, x->parts[0].entity, &one, &fault)) == 0) {
            items = qbc_alloc(sizeof(*items));
            items[0] = one;
            n_items = 1;
        }
        if (prc != 0)
            cls = REC_RES_RETRY;
    }
    char err[256] = "";
    if (cls != REC_RES_OK && cls != REC_RES_GONE) {
        qbc_rec_describe(status, &fault, curl_ok ? NULL : x->errbuf[0] ? x->errbuf : "failed", err, sizeof(err));
        if (prc != 0)
            snprintf(err, sizeof(err), "HTTP %ld: answer did not parse", status);
    }
    int throttled = cls == REC_RES_THROTTLED, retried = cls == REC_RES_RETRY;
    if (parts != NULL && cls == REC_RES_OK) {
        for (size_t i = 0; i < x->n_parts; i++) {
            qbc_rec_part_t *p = &parts[i];
            qbc_rec_class_t pc = REC_RES_OK;
            char perr[256] = "";
            if (p->state == 1) {
                pc = qbc_rec_classify(1, 200, &p->fault);
                if (pc == REC_RES_OK)
                    pc = REC_RES_CLIENT;
                qbc_rec_describe(200, &p->fault, NULL, perr, sizeof(perr));
            } else if (p->state != 0 && x->kind == X_CDC) {
                /* the CDC answer was at its cap: these go back, to queries and reads, no attempt counted */
                for (size_t k = 0; k < x->parts[i].n; k++)
                    qbc_rec__notice_release(x->ns[x->parts[i].off + k]);
                continue;
            } else if (p->state != 0) {
                pc = REC_RES_RETRY;
                snprintf(perr, sizeof(perr), "batch item %zu missing from the answer", i);
            }
            throttled |= pc == REC_RES_THROTTLED;
            retried |= pc == REC_RES_RETRY;
            part_done(r, x, &x->parts[i], pc, 200, &p->fault, perr, p->items, p->n, now);
        }
    } else {
        if (parts != NULL)
            for (size_t i = 0; i < x->n_parts; i++)
                qbc_rec_items_free(parts[i].items, parts[i].n);
        for (size_t i = 0; i < x->n_parts; i++) /* a query or read has one part and gets the items */
            part_done(r, x, &x->parts[i], cls, status, &fault, err, i == 0 ? items : NULL, i == 0 ? n_items : 0, now);
    }
    free(parts);
    if (x->kind == X_BATCH) {
        /* each item is metered: a throttled batch was too big for what the realm has left */
        if (throttled)
            x->realm->batch_cap = x->n_parts / 2 > 1 ? (unsigned)(x->n_parts / 2) : 1;
        else if (cls == REC_RES_OK && x->realm->batch_cap < REC_BATCH_MAX_ITEMS)
            x->realm->batch_cap++;
    }
    if (throttled)
        REC_STAT(r, throttled, 1);
    if (retried)
        REC_STAT(r, server_errors, 1);
}

void qbc_rec__xfer_done(qbc_reconciler_t *r, rec_xfer_t *x, CURLcode res)
{
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    int curl_ok = res == CURLE_OK;
    if (!curl_ok && x->errbuf[0] == '\0')
        snprintf(x->errbuf, sizeof(x->errbuf), "%s", curl_easy_strerror(res));
    if (x->kind == X_OAUTH) { /* no realm, no budget: someone else's call */
        qbc_rec__oauth_call_done(r, x->oauth_id, curl_ok, status, x->body.data, x->body.len,
                                 curl_ok ? NULL : x->errbuf);
        return;
    }
    qbc_budget_done(&x->realm->budget);
    if (x->kind == X_QUERY || x->kind == X_BATCH)
        for (size_t i = 0; i < x->n_parts; i++) {
            rec_group_t *g = qbc_rec__group_get(x->realm, x->parts[i].entity);
            if (g->inflight > 0)
                g->inflight--;
        }
    if (x->kind == X_TOKEN) {
        qbc_rec__auth_token_done(r, x->realm, curl_ok, status, x->body.data, x->body.len, curl_ok ? NULL : x->errbuf);
    } else if (x->kind == X_API) {
        rec_api_answer_t a = {
            curl_ok, status, x->body.data, x->body.len, x->retry_after_ms, curl_ok ? NULL : x->errbuf, x->token_gen};
        x->api_cb(r, x->realm, x->api_ctx, &a);
    } else {
        api_done(r, x, curl_ok, status);
    }
}
