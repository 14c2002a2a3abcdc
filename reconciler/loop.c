/*
 * loop.c — the reconciler thread (STYLE.md 3.2, option A): one curl multi handle driven by
 * curl_multi_perform + curl_multi_poll; other threads (the store's writer via its
 * listener and job callbacks, qbc_reconciler_wake) interrupt the poll with
 * curl_multi_wakeup. Also start/stop, realm scans and the statistics. Transfers are
 * transfer.c, what fetch answers become fetch.c, store jobs settle.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "rec_internal.h"

const unsigned qbc_reconciler_latency_bounds_ms[11] = {10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000};

void qbc_rec__stat_add(qbc_reconciler_t *r, size_t offset, uint64_t v)
{
    pthread_mutex_lock(&r->stats_mu);
    *(uint64_t *)((char *)&r->stats + offset) += v;
    pthread_mutex_unlock(&r->stats_mu);
}

/* ---------------------------------------------------------------- the store listener */

/* the store's writer thread, after a commit: mark what changed and wake the loop */
static void on_store_commit(void *ctx, const qbc_commit_note_t *note)
{
    qbc_reconciler_t *r = ctx;
    if (note->new_pending == 0 && note->realms_changed == 0 && note->jobs_changed == 0)
        return;
    if (note->new_pending)
        atomic_store(&r->dirty_pending, 1);
    if (note->realms_changed)
        atomic_store(&r->dirty_realms, 1);
    if (note->jobs_changed)
        atomic_store(&r->dirty_jobs, 1);
    curl_multi_wakeup(r->multi);
}

void qbc_rec__realm_throttled(qbc_reconciler_t *r, rec_realm_t *realm, int64_t now, uint64_t retry_after_ms,
                              const char *why)
{
    uint64_t ms = retry_after_ms ? retry_after_ms : r->cfg.throttle_pause_ms;
    if (realm->budget.paused_until_ns <= now)
        qbc_log(QBC_LOG_WARN, REC_MOD, "realm %s throttled (%s); pausing it for %llu ms", realm->name, why,
                (unsigned long long)ms);
    qbc_budget_throttle(&realm->budget, now, (int64_t)ms * 1000000);
}

/* ---------------------------------------------------------------- realms */

static int on_realm(const qbc_realm_t *st, int has_tokens, void *ctx)
{
    qbc_reconciler_t *r = ctx;
    rec_realm_t *realm = qbc_rec__realm_get(r, st->realm, 1);
    if (realm != NULL) {
        realm->in_store = 1;
        qbc_rec__auth_realm_seen(r, realm, st, has_tokens);
        qbc_rec__cdc_realm_seen(r, realm, st, qbc_mono_ns());
    }
    return 0;
}

static void scan_realms(qbc_reconciler_t *r)
{
    for (size_t i = 0; i < r->n_realms; i++)
        r->realms[i]->in_store = 0;
    int rc = qbc_store_realm_scan(r->store, on_realm, r);
    if (rc != 0) {
        qbc_log(QBC_LOG_ERROR, REC_MOD, "reading realms: %s", qbc_strerror(rc));
        return;
    }
    for (size_t i = 0; i < r->n_realms; i++)
        if (!r->realms[i]->in_store) /* no record (or removed): no tokens to use */
            r->realms[i]->has_tokens = 0;
}

static void publish_realm_stats(qbc_reconciler_t *r, int64_t now)
{
    int64_t wall = qbc_now_ns();
    pthread_mutex_lock(&r->stats_mu);
    size_t n = r->n_realms < 64 ? r->n_realms : 64;
    r->stats.n_realms = n;
    for (size_t i = 0; i < n; i++) {
        rec_realm_t *realm = r->realms[i];
        qbc_realm_stats_t *s = &r->stats.realms[i];
        snprintf(s->realm, sizeof(s->realm), "%s", realm->name);
        s->calls_last_minute = qbc_budget_used(&realm->budget, now);
        s->inflight = realm->budget.inflight;
        s->paused_until_ns = realm->budget.paused_until_ns > now ? wall + (realm->budget.paused_until_ns - now) : 0;
        s->pending = realm->pending;
    }
    pthread_mutex_unlock(&r->stats_mu);
}

static void *thread_main(void *arg)
{
    qbc_reconciler_t *r = arg;
    int64_t drain_deadline = 0, last_scan = INT64_MIN / 2, last_stats = 0;
    for (;;) {
        int64_t now = qbc_mono_ns(), next = now + 1000000000LL;
        qbc_rec__jobs_done(r);
        if (!atomic_load(&r->stopping)) {
            qbc_rec__oauth_calls_start(r);
            if (atomic_exchange(&r->dirty_realms, 0))
                scan_realms(r);
            if (now - last_scan >= 2000000 && (atomic_exchange(&r->dirty_pending, 0) || now >= r->next_scan_ns)) {
                qbc_rec__scan_pending(r, now);
                last_scan = now;
                r->next_scan_ns = now + 5000000000LL; /* a safety net; wake-ups do the real work */
            } else if (atomic_load(&r->dirty_pending)) {
                next = last_scan + 2000000;
            }
            if (atomic_exchange(&r->dirty_jobs, 0))
                qbc_rec__backfill_scan(r);
            qbc_rec__allowance_tick(r, now);
            qbc_rec__fence(r, now);
            int64_t t = qbc_rec__plan(r, now);
            if (t < next)
                next = t;
            /* lower priorities plan after the live path, from what its budget left */
            if ((t = qbc_rec__cdc_plan(r, now)) < next)
                next = t;
            if ((t = qbc_rec__backfill_plan(r, now)) < next)
                next = t;
        } else {
            if (drain_deadline == 0)
                drain_deadline = now + (int64_t)r->drain_ms * 1000000;
            if (r->n_xfers > 0 && now >= drain_deadline) {
                qbc_log(QBC_LOG_INFO, REC_MOD, "stop: aborting %zu requests; their notices stay pending", r->n_xfers);
                qbc_rec__abort_all(r);
            }
            if (r->n_xfers == 0 && r->outstanding_jobs == 0)
                break;
            next = now + 20000000;
        }
        int done = qbc_rec__drain_curl(r);
        if (now - last_stats >= 100000000) {
            publish_realm_stats(r, now);
            last_stats = now;
        }
        if (done > 0)
            continue; /* their answers may have made new work (single reads, commits) */
        now = qbc_mono_ns();
        int timeout = next <= now ? 0 : (next - now) / 1000000 > 1000 ? 1000 : (int)((next - now) / 1000000) + 1;
        if (next <= now)
            timeout = 0;
        curl_multi_poll(r->multi, NULL, 0, timeout, NULL);
    }
    publish_realm_stats(r, qbc_mono_ns());
    qbc_rec__allowance_flush(r); /* the last second's counts */
    qbc_rec__allowance_share_final(r);
    return NULL;
}

/* ---------------------------------------------------------------- public API */

/* frees what qbc_reconciler_start allocated and the realms found since; the thread is gone */
static void reconciler_free(qbc_reconciler_t *r)
{
    for (size_t i = 0; i < r->n_cdc_entities; i++)
        free(r->cdc_entities[i]);
    free(r->cdc_entities);
    for (size_t i = 0; i < r->n_realms; i++) {
        rec_realm_t *realm = r->realms[i];
        qbc_rec__cdc_free(&realm->cdc);
        OPENSSL_cleanse(realm->access_token, sizeof(realm->access_token));
        qbc_budget_dispose(&realm->budget);
        qbc_budget_dispose(&realm->batch_budget);
        free(realm->groups);
        free(realm);
    }
    free(r->realms);
    qbc_rec__allowance_free(r);
    curl_multi_cleanup(r->multi);
    curl_global_cleanup();
    free(r->api_base);
    free(r->token_url);
    free(r->client_id);
    OPENSSL_cleanse(r->client_secret, strlen(r->client_secret));
    free(r->client_secret);
    free(r->revoke_url);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->oauth_mu);
    pthread_mutex_destroy(&r->stats_mu);
    free(r);
}

int qbc_reconciler_start(const qbc_reconciler_config_t *cfg, qbc_store_t *store, qbc_reconciler_t **out)
{
    *out = NULL;
    if (cfg == NULL || store == NULL || cfg->api_base == NULL || cfg->api_base[0] == '\0' || cfg->token_url == NULL ||
        cfg->token_url[0] == '\0' || cfg->client_id == NULL || cfg->client_secret == NULL)
        return QBC_EINVAL;
    qbc_reconciler_t *r = qbc_calloc(1, sizeof(*r));
    r->cfg = *cfg;
    qbc_reconciler_config_t *c = &r->cfg;
    if (c->minorversion <= 0)
        c->minorversion = 75;
    if (c->rate_per_min == 0)
        c->rate_per_min = 500;
    if (c->max_inflight == 0)
        c->max_inflight = 10;
    if (c->ids_per_query == 0)
        c->ids_per_query = 200;
    if (c->ids_per_query > 1000) /* MAXRESULTS 1000: one page always holds the answer */
        c->ids_per_query = 1000;
    if (c->max_attempts == 0)
        c->max_attempts = 8;
    if (c->request_timeout_ms == 0)
        c->request_timeout_ms = 30000;
    if (c->backoff_base_ms == 0)
        c->backoff_base_ms = 1000;
    if (c->backoff_max_ms == 0)
        c->backoff_max_ms = 60000;
    if (c->backoff_max_ms < c->backoff_base_ms)
        c->backoff_max_ms = c->backoff_base_ms;
    if (c->throttle_pause_ms == 0)
        c->throttle_pause_ms = 60000;
    if (c->coalesce_ms == 0)
        c->coalesce_ms = 500;
    if (c->cdc_interval_s == 0)
        c->cdc_interval_s = 300;
    if (c->cdc_lookback_s == 0)
        c->cdc_lookback_s = 30 * 86400;
    if (c->cdc_audit_gap_s < 0)
        c->cdc_audit_gap_s = 600;
    if (c->cdc_commit_max == 0)
        c->cdc_commit_max = 500;
    if (c->cdc_max_interval_s == 0)
        c->cdc_max_interval_s = 7 * 86400;
    if (c->cdc_max_interval_s < c->cdc_interval_s)
        c->cdc_max_interval_s = c->cdc_interval_s;
    r->allow.budget = c->monthly_budget;
    r->allow.margin = c->monthly_budget / 1000 + (c->monthly_budget > 0);
    {
        const char *list = c->cdc_entities != NULL && c->cdc_entities[0] != '\0'
                               ? c->cdc_entities
                               : "Account,Bill,Customer,Invoice,Item,JournalEntry,Payment,Vendor";
        char *copy = qbc_strdup(list), *save = NULL;
        for (char *tok = strtok_r(copy, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
            if (!qbc_rec_entity_ok(tok)) {
                qbc_log(QBC_LOG_WARN, REC_MOD, "CDC entity '%.60s' is not a QBO entity name; skipped", tok);
                continue;
            }
            r->cdc_entities = qbc_realloc(r->cdc_entities, (r->n_cdc_entities + 1) * sizeof(char *));
            r->cdc_entities[r->n_cdc_entities++] = qbc_strdup(tok);
        }
        free(copy);
        c->cdc_entities = NULL; /* the split list is what counts */
    }
    r->coalesce_ns = (int64_t)c->coalesce_ms * 1000000;
    size_t bl = strlen(cfg->api_base);
    while (bl > 0 && cfg->api_base[bl - 1] == '/')
        bl--;
    r->api_base = qbc_strndup(cfg->api_base, bl);
    r->token_url = qbc_strdup(cfg->token_url);
    r->client_id = qbc_strdup(cfg->client_id);
    r->client_secret = qbc_strdup(cfg->client_secret);
    c->api_base = r->api_base;
    c->token_url = r->token_url;
    c->client_id = r->client_id;
    c->client_secret = r->client_secret;
    r->revoke_url = cfg->revoke_url != NULL && cfg->revoke_url[0] != '\0' ? qbc_strdup(cfg->revoke_url) : NULL;
    c->revoke_url = r->revoke_url;
    r->store = store;
    r->rng = (uint64_t)qbc_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)r;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->stats_mu, NULL);
    pthread_mutex_init(&r->oauth_mu, NULL);
    atomic_init(&r->dirty_pending, 1);
    atomic_init(&r->dirty_realms, 1);
    atomic_init(&r->stopping, 0);
    atomic_init(&r->dirty_jobs, 1);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if ((r->multi = curl_multi_init()) == NULL)
        qbc_fatal("curl_multi_init failed");
    curl_multi_setopt(r->multi, CURLMOPT_MAXCONNECTS, 256L);

    int rc = 0;
    if ((r->listener = qbc_store_add_listener(store, on_store_commit, r)) < 0) {
        qbc_log(QBC_LOG_ERROR, REC_MOD, "the store has no room for another listener");
        rc = r->listener;
    } else if ((rc = pthread_create(&r->thread, NULL, thread_main, r)) != 0) {
        rc = -rc;
        qbc_store_remove_listener(store, r->listener);
    }
    if (rc != 0) {
        reconciler_free(r);
        return rc;
    }
    r->thread_started = 1;
    *out = r;
    return 0;
}

void qbc_reconciler_wake(qbc_reconciler_t *r)
{
    if (r == NULL)
        return;
    atomic_store(&r->dirty_pending, 1);
    atomic_store(&r->dirty_realms, 1);
    curl_multi_wakeup(r->multi);
}

void qbc_reconciler_stop(qbc_reconciler_t *r, int drain_ms)
{
    if (r == NULL)
        return;
    r->drain_ms = drain_ms < 0 ? 0 : drain_ms;
    atomic_store(&r->stopping, 1);
    curl_multi_wakeup(r->multi);
    if (r->thread_started)
        pthread_join(r->thread, NULL);                /* it waited for every store job it submitted */
    qbc_store_remove_listener(r->store, r->listener); /* the writer never wakes r again */
    qbc_rec__abort_all(r);
    qbc_rec__oauth_calls_end(r); /* those queued but never started */
    qbc_rec__notices_free(r);
    qbc_rec__backfill_free_all(r);
    reconciler_free(r);
}

void qbc_reconciler_snapshot(qbc_reconciler_t *r, qbc_reconciler_stats_t *out)
{
    pthread_mutex_lock(&r->stats_mu);
    *out = r->stats;
    pthread_mutex_unlock(&r->stats_mu);
}
