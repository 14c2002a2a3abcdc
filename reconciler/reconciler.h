/*
 * reconciler.h — turns pending change notices into full entity versions.
 *
 * One thread, one libcurl multi handle (STYLE.md 3.2, option A: curl_multi_poll +
 * curl_multi_wakeup). It reads pending notices from the store, fetches the entities
 * from the QBO API (many ids of one entity type in one realm become one query, several
 * types one batch), offers the versions to the store (qbc_store_reconcile: dedupe, feed
 * append and notice removal in one transaction), refreshes OAuth tokens, and keeps every
 * realm inside its rate budget. CDC sweeps (the fallback for lost webhooks, periodic and
 * on request) and backfill jobs (operators', automatic catch-ups and first-connection
 * snapshots) are lower-priority users of the same calls, budget and dedupe.
 *
 * Every call to Intuit's OAuth endpoints goes through this thread too: its own refreshes,
 * and the code exchanges and revokes the API asks for (qbc_reconciler_oauth), with one
 * parser for token answers and transfers that stop with the reconciler.
 *
 * Threading: everything here runs on the reconciler thread except qbc_reconciler_wake(),
 * qbc_reconciler_snapshot(), qbc_reconciler_oauth() and qbc_reconciler_oauth_cancel(),
 * which any thread may call.
 */
#ifndef QBC_RECONCILER_H
#define QBC_RECONCILER_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "store.h"

typedef struct st_qbc_meter_share_t qbc_meter_share_t;

typedef struct st_qbc_reconciler_config_t {
    const char *api_base;   /**< e.g. https://quickbooks.api.intuit.com (no trailing slash) */
    const char *token_url;  /**< OAuth token endpoint */
    const char *revoke_url; /**< OAuth revoke endpoint (NULL: revokes are refused with QBC_EINVAL) */
    const char *client_id;
    const char *client_secret;
    long minorversion;           /**< sent on every API call (75) */
    unsigned rate_per_min;       /**< per realm, every kind of call (0: 500) */
    unsigned max_inflight;       /**< per realm (0: 10) */
    unsigned ids_per_query;      /**< most ids in one Id IN (...) query (0: 200) */
    unsigned max_attempts;       /**< failed fetches of a notice before it becomes a dead letter (0: 8) */
    unsigned request_timeout_ms; /**< per HTTP request (0: 30000) */
    unsigned backoff_base_ms;    /**< first retry delay after 5xx/timeout/reset; doubles, with jitter (0: 1000) */
    unsigned backoff_max_ms;     /**< cap on that delay (0: 60000) */
    unsigned throttle_pause_ms;  /**< pause of a realm after a 429 without Retry-After (0: 60000) */
    unsigned coalesce_ms;        /**< a realm fetched less than this ago waits, gathering notices (unless a full
                                      query's worth is ready); an idle realm is fetched at once (0: 500) */
    unsigned cdc_interval_s;     /**< seconds between CDC sweeps of each realm (0: 300) */
    const char *cdc_entities;    /**< comma-separated entity names for CDC and default backfills (NULL: a default) */
    unsigned cdc_lookback_s;     /**< CDC's lookback; a watermark older than this backfills instead (0: 30 days) */
    int cdc_audit_gap_s;         /**< an entity is audited at most this often per realm (<0: 600; 0: no gap) */
    unsigned cdc_commit_max;     /**< most versions in one CDC store commit; a sweep commits in chunks (0: 500) */
    /**
     * Intuit's metered (CorePlus) calls the app may make per period, for qbcdc as a whole; 0: not
     * governed (still metered). Calls are counted per period, realm and purpose (qbc_usage_*).
     */
    uint64_t monthly_budget;
    unsigned budget_period_s;    /**< a period of this many seconds instead of the calendar month (tests) */
    int budget_local_months;     /**< 1: months begin at local midnight (TZ set by the caller); 0: UTC */
    unsigned cdc_max_interval_s; /**< the longest a realm's CDC interval is stretched to (0: 7 days) */
    /**
     * cluster mode (NULL: every realm is this node's): whether this node may call QBO for realm
     * now, 1 or 0, and with 1 until when (monotonic ns) unless asked again. Called on the
     * reconciler's thread, often: it must be cheap and never block on I/O (cluster.h
     * qbc_cluster_owns). A realm that stops being ours gets no new call and its calls in flight
     * are stopped (token refreshes excepted), its notices left pending.
     */
    int (*owns)(void *ctx, const char *realm, int64_t *until_mono_ns);
    /** with owns: a number that changes whenever the answer of owns may change other than by time */
    uint64_t (*owns_epoch)(void *ctx);
    void *owns_ctx;
    /**
     * cluster mode (NULL: this node meters alone): Intuit's allowance is the app's, so the nodes
     * share their counts. Called on the reconciler's thread about every 100 ms with this node's
     * counts of the period (qbc_meter_share_t's "in" part); it fills the "out" part with what
     * is known of the other nodes. It must be cheap and never block on I/O (cluster.h
     * qbc_cluster_meter_share). The governor then counts the others' calls as spent too.
     */
    void (*meter)(void *ctx, qbc_meter_share_t *x);
    void *meter_ctx;
} qbc_reconciler_config_t;

/** what the meter hook exchanges (qbc_reconciler_config_t.meter) */
struct st_qbc_meter_share_t {
    /* in: this node's */
    int64_t period_start_ns, period_end_ns; /**< wall clock */
    uint64_t used[QBC_USAGE_PURPOSES];      /**< metered calls answered this period */
    uint64_t inflight;                      /**< metered calls started, not answered */
    /* out: the shared meter's, as last known */
    int connected;  /**< the meter reaches its bucket now */
    int synced;     /**< the bucket's entries were read at least once since start */
    int64_t lag_ns; /**< how long the others' counts may be behind: since the meter last reached the bucket */
    uint64_t own[QBC_USAGE_PURPOSES];    /**< this node's counts of the period as the bucket holds them */
    uint64_t others[QBC_USAGE_PURPOSES]; /**< the other nodes' counts of the period */
    uint64_t others_inflight;
    unsigned n_others; /**< nodes that counted calls this period, this one excepted */
};

typedef struct st_qbc_reconciler_t qbc_reconciler_t;

/**
 * starts the reconciler thread. It registers a store listener so that new pending
 * notices and token changes wake it at once (an isolated change is fetched without
 * waiting for a timer).
 * @return 0, or -errno / QBC_EINVAL (bad config)
 */
int qbc_reconciler_start(const qbc_reconciler_config_t *cfg, qbc_store_t *store, qbc_reconciler_t **out);

/** asks the thread to look for work now. Thread-safe, cheap, never blocks. */
void qbc_reconciler_wake(qbc_reconciler_t *r);

/**
 * stops: no new requests; waits up to drain_ms for requests in flight and for the
 * commits of what they fetched, then aborts the rest (their notices stay pending, so
 * nothing is lost) and joins the thread.
 */
void qbc_reconciler_stop(qbc_reconciler_t *r, int drain_ms);

/* ========================== OAuth calls for others ===================== */

typedef enum {
    QBC_OAUTH_EXCHANGE = 1, /**< trade an authorization code for tokens (the connect flow's callback) */
    QBC_OAUTH_REVOKE = 2,   /**< revoke a refresh token, which ends the company's connection */
} qbc_oauth_op_t;

typedef struct st_qbc_oauth_request_t {
    qbc_oauth_op_t op;
    const char *code;         /**< EXCHANGE: the authorization code */
    const char *redirect_uri; /**< EXCHANGE: the redirect URI the code was issued for */
    const char *token;        /**< REVOKE: the refresh token */
} qbc_oauth_request_t;

typedef struct st_qbc_oauth_result_t {
    int ok;              /**< EXCHANGE: tokens hold the new pair; REVOKE: Intuit answered 200 */
    long status;         /**< HTTP status; 0 when there was no answer */
    char error[200];     /**< when !ok: why, safe to show (never a token) */
    qbc_tokens_t tokens; /**< EXCHANGE with ok: the tokens (access token expiry in wall-clock ns) */
} qbc_oauth_result_t;

/**
 * the outcome of a call, on the reconciler thread. res (and its tokens) is valid during
 * the call only and wiped afterwards. It must not block nor call back into the reconciler:
 * copy what it needs, hand it to another thread, return.
 */
typedef void (*qbc_oauth_cb)(void *ctx, const qbc_oauth_result_t *res);

/**
 * has the reconciler's thread call Intuit's token endpoint (EXCHANGE) or revoke endpoint
 * (REVOKE), with the client's Basic credentials. The strings are copied (and wiped after
 * use). cb runs exactly once: with the answer, or with ok 0 and an error when the call
 * cannot be made or the reconciler stops first; unless qbc_reconciler_oauth_cancel() was
 * called for it before. Any thread.
 * @param[out] out_id the call's id (> 0), for qbc_reconciler_oauth_cancel
 * @return 0; or, and then cb will not run:
 *   <ul>
 *   <li>QBC_ECLOSED - the reconciler is stopping.
 *   <li>QBC_EINVAL - a field the operation needs is missing, or no endpoint is configured.
 *   </ul>
 */
int qbc_reconciler_oauth(qbc_reconciler_t *r, const qbc_oauth_request_t *req, qbc_oauth_cb cb, void *ctx,
                         uint64_t *out_id);

/**
 * cancels a call. When it returns, the call's callback is not running and will never run
 * (libuv's rule), so ctx may be freed. An unknown or finished id is a no-op. Any thread but
 * the callback's.
 */
void qbc_reconciler_oauth_cancel(qbc_reconciler_t *r, uint64_t id);

/** per-realm figures for GET /admin/realms and /metrics. */
typedef struct st_qbc_realm_stats_t {
    char realm[QBC_REALM_MAX];
    unsigned calls_last_minute;
    unsigned inflight;
    int64_t paused_until_ns; /**< after a 429 (0: not paused) */
    uint64_t pending;        /**< notices not yet reconciled (as last seen) */
} qbc_realm_stats_t;

/** the endpoints and answer statuses QBO calls are counted by (qbc_reconciler_stats_t.calls) */
#define QBC_REC_CALL_ENDPOINTS 6
#define QBC_REC_CALL_STATUSES 12
/** "query", "read", "batch", "cdc", "token", "revoke" */
extern const char *const qbc_reconciler_call_endpoints[QBC_REC_CALL_ENDPOINTS];
/** "error" (no HTTP answer), "200", "400", "401", "403", "404", "429", "500", "502", "503", "504", "other" */
extern const char *const qbc_reconciler_call_statuses[QBC_REC_CALL_STATUSES];

typedef struct st_qbc_reconciler_stats_t {
    uint64_t requests; /**< HTTP requests made to QBO (API + OAuth) */
    uint64_t queries;  /**< of which: Id IN queries */
    uint64_t reads;    /**< of which: single entity reads */
    uint64_t batches;  /**< of which: batch requests (each carries several queries, counted in queries) */
    uint64_t token_refreshes;
    uint64_t token_refresh_failures; /**< refreshes refused (invalid_client...) or that got no answer */
    uint64_t token_calls;            /**< code exchanges and revokes made for the API (qbc_reconciler_oauth) */
    uint64_t throttled;              /**< 429s received */
    uint64_t server_errors;          /**< 5xx, timeouts, resets */
    uint64_t versions_offered;       /**< versions submitted to the store */
    uint64_t feed_appended;          /**< of which were new */
    uint64_t dead_letters;
    uint64_t cdc_requests;      /**< CDC API calls (and query pages of crowded seconds) */
    uint64_t cdc_stuck_seconds; /**< seconds with more than a CDC page of one entity, read by query instead */
    uint64_t cdc_audit_notices; /**< live versions read again because a capped CDC answer may have cut deletes */
    uint64_t cdc_sweeps;        /**< completed sweeps (watermark committed) */
    uint64_t cdc_sweeps_failed; /**< sweeps abandoned (their realm's last_error says why) */
    uint64_t cdc_commits;       /**< store commits of CDC sweeps: chunks and the final one (with the watermark) */
    uint64_t cdc_versions_new;  /**< versions CDC found that webhooks had not delivered */
    uint64_t live_cdc_calls;    /**< live fetches made as one CDC call instead of several queries and reads */
    uint64_t live_cdc_notices;  /**< notices those calls covered */
    uint64_t backfill_requests; /**< backfill query pages */
    uint64_t backfill_versions_new;
    uint64_t fetch_latency_hist[12]; /**< notice first seen -> committed, buckets of qbc_reconciler_latency_bounds_ms */
    /** finished calls to QBO and Intuit's OAuth endpoints, [endpoint][status] as named above */
    uint64_t calls[QBC_REC_CALL_ENDPOINTS][QBC_REC_CALL_STATUSES];
    size_t n_realms;
    qbc_realm_stats_t realms[64]; /**< the first 64 realms */
} qbc_reconciler_stats_t;

extern const unsigned qbc_reconciler_latency_bounds_ms[11];

/** the period's allowance as metered and governed (qbc_reconciler_allowance) */
typedef struct st_qbc_allowance_figures_t {
    uint64_t budget;                        /**< calls per period; 0: not governed */
    int64_t period_start_ns, period_end_ns; /**< wall clock */
    uint64_t used[QBC_USAGE_PURPOSES];      /**< metered calls answered this period, by purpose */
    uint64_t used_total;
    uint64_t inflight;                               /**< metered calls started and not answered yet */
    uint64_t remaining;                              /**< budget - used (0 when over) */
    uint64_t forecast;                               /**< calls by the period's end at the period's pace so far */
    uint64_t live_reserve;                           /**< kept free for live fetches (estimated from their pace) */
    uint64_t cdc_planned;                            /**< sweeps the CDC schedule plans for the rest of the period */
    int64_t cdc_base_interval_s;                     /**< the fitted interval of a realm without webhook gaps */
    int live_blocked, cdc_blocked, backfill_blocked; /**< 1: that purpose waits for the next period */
    char state[16];                                  /**< ok, warning (80%), critical (95%), exhausted, ungoverned */
    /**
     * cluster mode (with the meter hook): used, used_total, remaining, forecast and state are
     * the cluster's (this node's and the others' as last known); the figures below say more
     */
    int shared;                             /**< 1: the meter hook is set */
    uint64_t node_used[QBC_USAGE_PURPOSES]; /**< this node's own calls this period */
    uint64_t others_total;                  /**< the other nodes' calls this period, as last known */
    uint64_t others_inflight;               /**< and their calls in flight */
    unsigned n_others;                      /**< other nodes that counted calls this period */
    uint64_t cluster_reserve; /**< kept for the others' calls not seen yet (their pace x how late they can be) */
    uint64_t recovered;       /**< calls of this node taken back from the bucket (a restart on an empty disk) */
    int meter_connected, meter_synced;
    double meter_lag_s; /**< how far behind the others' counts may be */
} qbc_allowance_figures_t;

/** one realm's share of the allowance and its CDC schedule */
typedef struct st_qbc_realm_allowance_t {
    char realm[QBC_REALM_MAX];
    uint64_t used[QBC_USAGE_PURPOSES]; /**< this period */
    int64_t cdc_interval_s;            /**< its fitted CDC interval */
    int64_t next_cdc_ns;               /**< wall clock: when its next sweep is due (0: not scheduled) */
    uint64_t sweeps, gap_sweeps;       /**< sweeps since start, and those that found changes webhooks had missed */
    uint64_t gaps;                     /**< changes sweeps found that webhooks had missed */
    double gap_rate;                   /**< recent share of sweeps that found gaps (0..1) */
    int webhooks_quiet;                /**< its webhooks stopped while it had been active */
    int waiting;                       /**< its live or CDC work waits for the allowance */
} qbc_realm_allowance_t;

/** the allowance figures as of the last second. Thread-safe. */
void qbc_reconciler_allowance(qbc_reconciler_t *r, qbc_allowance_figures_t *out);

/**
 * every realm's figures, sorted by realm, into a malloc'd array (*out, free it) of *n.
 * Thread-safe. @return 0
 */
int qbc_reconciler_realm_allowances(qbc_reconciler_t *r, qbc_realm_allowance_t **out, size_t *n);

/** a consistent copy of the counters. Thread-safe. */
void qbc_reconciler_snapshot(qbc_reconciler_t *r, qbc_reconciler_stats_t *out);

#endif
