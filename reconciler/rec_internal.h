/*
 * rec_internal.h — what the reconciler's files share. Not installed; the public API is
 * reconciler.h.
 *
 *   qbo_client.c  request building (URLs, the Id IN query, curl options)
 *   response.c    parsing QBO answers (QueryResponse, entity reads, both Fault shapes, XML)
 *   budget.c      per-realm sliding-window rate, in-flight cap, 429 pause; backoff with jitter
 *   oauth.c       token refresh: request, answer parsing, the per-realm state machine
 *   plan.c        pending notices -> tracked notices -> fetch tasks
 *   cdc.c         the CDC fallback: periodic and requested sweeps, window splitting, the watermark
 *   backfill.c    backfill jobs: paging through the query API with a checkpoint per page
 *   loop.c        the thread, the curl multi handle, transfers and store jobs
 */
#ifndef QBC_REC_INTERNAL_H
#define QBC_REC_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <curl/curl.h>
#include "reconciler.h"

#define REC_MOD "reconciler"
#define REC_MAX_BODY (64u << 20)                   /* largest answer we accept */
#define REC_EXPIRY_MARGIN_NS (60LL * 1000000000LL) /* refresh this long before expiry */

/* ============================== qbo_client.c ============================== */

/** 1 if s is a plausible QBO entity name: [A-Za-z]{1,47} */
int qbc_rec_entity_ok(const char *s);
/** 1 if s is safe inside a quoted query literal and a URL path: [A-Za-z0-9._-]{1,63} */
int qbc_rec_id_ok(const char *s);
/** 1 for the name-list entities whose queries need "Active IN (true,false)" */
int qbc_rec_is_namelist(const char *entity);
/** "SELECT * FROM E WHERE Id IN ('1','2')[ AND Active IN (true,false)] MAXRESULTS 1000" (malloc'd) */
char *qbc_rec_build_query(const char *entity, const char *const *ids, size_t n);
/** "{base}/v3/company/{realm}/query?minorversion=N" (malloc'd) */
char *qbc_rec_query_url(const char *api_base, const char *realm, long minorversion);
/** "{base}/v3/company/{realm}/{entity lowercased}/{id}?minorversion=N" (malloc'd) */
char *qbc_rec_read_url(const char *api_base, const char *realm, const char *entity, const char *id, long minorversion);

/** "{base}/v3/company/{realm}/batch?minorversion=N" (malloc'd) */
char *qbc_rec_batch_url(const char *api_base, const char *realm, long minorversion);
/** {"BatchItemRequest":[{"bId":"0","Query":"..."},...]} (malloc'd); bId is the index */
char *qbc_rec_build_batch(const char *const *queries, size_t n);

#define REC_BATCH_MAX_ITEMS 30 /* qbo-facts §4: recommended maximum */
#define REC_BATCH_PER_MIN 40   /* qbo-facts §4: batch requests per minute per realm */

/** "{base}/v3/company/{realm}/cdc?entities=A,B&changedSince=<UTC, ms, +00:00 as %2B00:00>&minorversion=N" (malloc'd) */
char *qbc_rec_cdc_url(const char *api_base, const char *realm, const char *entities, int64_t since_ns,
                      long minorversion);
/**
 * one page of a backfill: "SELECT * FROM E [WHERE MetaData.LastUpdatedTime >= '<since>'] [AND|WHERE
 * Active IN (true,false)] ORDERBY Id STARTPOSITION n MAXRESULTS 1000" (malloc'd); since_ns 0: everything
 */
char *qbc_rec_backfill_query(const char *entity, int64_t since_ns, uint64_t start_position);
/** the same with an exclusive upper bound too ("... AND MetaData.LastUpdatedTime < '<until>'"; until_ns 0: none) */
char *qbc_rec_window_query(const char *entity, int64_t since_ns, int64_t until_ns, uint64_t start_position);

#define REC_CDC_CAP 1000    /* qbo-facts §2: objects per CDC answer */
#define REC_QUERY_PAGE 1000 /* qbo-facts §3: MAXRESULTS */

/* ============================== response.c ============================== */

typedef struct st_qbc_fault_t {
    int present;
    char type[48];
    char code[16];
    char message[160];
    char detail[200];
} qbc_fault_t;

/** finds a Fault in a JSON (Fault/Error or fault/error) or XML body. @return 1 if found, else 0 */
int qbc_rec_parse_fault(const char *body, size_t len, qbc_fault_t *out);

/** one entity as fetched */
typedef struct st_qbc_rec_item_t {
    char id[QBC_ID_MAX];
    char sync_token[QBC_SYNC_TOKEN_MAX];
    int64_t updated_ns;
    int deleted; /**< "status":"Deleted" */
    char *data;  /**< compact JSON of the object (malloc'd), NULL when deleted */
    size_t data_len;
} qbc_rec_item_t;

void qbc_rec_items_free(qbc_rec_item_t *items, size_t n);

/**
 * parses a query answer: QueryResponse.<entity>[]. An empty QueryResponse gives n = 0.
 * @return 0, QBC_EMALFORMED (not JSON / no QueryResponse / a bad item), or QBC_ENOTFOUND when
 *         the body is a Fault (then *fault is filled)
 */
int qbc_rec_parse_query(const char *body, size_t len, const char *entity, qbc_rec_item_t **items, size_t *n,
                        qbc_fault_t *fault);

/** parses an entity read: {"<entity>":{...}}. Same returns as qbc_rec_parse_query. */
int qbc_rec_parse_read(const char *body, size_t len, const char *entity, qbc_rec_item_t *item, qbc_fault_t *fault);

/** one Query item of a batch answer */
typedef struct st_qbc_rec_part_t {
    int state; /**< 0: QueryResponse parsed; 1: a Fault (fault); -1: missing or malformed */
    qbc_fault_t fault;
    qbc_rec_item_t *items;
    size_t n;
} qbc_rec_part_t;

/**
 * parses {"BatchItemResponse":[{"bId":"i","QueryResponse":{...}} | {"bId":"i","Fault":{...}}]}
 * into parts[0..n_parts) (entities[i] names part i's entity).
 * @return 0, QBC_EMALFORMED, or QBC_ENOTFOUND when the whole body is a Fault
 */
int qbc_rec_parse_batch(const char *body, size_t len, const char *const *entities, size_t n_parts,
                        qbc_rec_part_t *parts, qbc_fault_t *fault);

/** one entity's objects in a CDC answer */
typedef struct st_qbc_rec_cdc_group_t {
    char entity[QBC_ENTITY_MAX];
    qbc_rec_item_t *items;
    size_t n;
} qbc_rec_cdc_group_t;

void qbc_rec_cdc_groups_free(qbc_rec_cdc_group_t *g, size_t n);

/**
 * parses {"CDCResponse":[{"QueryResponse":[{"<Entity>":[...],...} | {}, ...]}],"time":"..."}.
 * Deleted objects ({"status":"Deleted",...}) become items with deleted = 1.
 * @param time_ns the answer's "time" (0 if absent)
 * @param total objects in the answer, over every group
 * @return 0, QBC_EMALFORMED, or QBC_ENOTFOUND when the body is a Fault (then *fault is filled)
 */
int qbc_rec_parse_cdc(const char *body, size_t len, qbc_rec_cdc_group_t **groups, size_t *n_groups, int64_t *time_ns,
                      size_t *total, qbc_fault_t *fault);

/** what to do with a CDC answer for one part of a sweep */
typedef enum {
    REC_CDC_COMPLETE = 0, /**< under the cap: every change since the part's start is in it */
    REC_CDC_SPLIT,        /**< at the cap, several entities: ask again one entity at a time */
    REC_CDC_ADVANCE,      /**< at the cap, one entity: keep what came, ask again from *next_since */
    REC_CDC_STUCK,        /**< at the cap, one entity, no later time in it: the second at *next_since
                               holds more than a page; read that second through the query API */
} qbc_rec_cdc_step_t;

/**
 * decides how a sweep goes on after an answer of `total` objects for a part asking for n_entities
 * entities since since_ns. For REC_CDC_ADVANCE, *next_since is the LastUpdatedTime of the last object
 * (objects come in LastUpdatedTime order, deleted ones last), always later than since_ns. When that
 * time is not later (QBO's times have whole seconds; more than a page changed in one of them),
 * REC_CDC_STUCK, and *next_since is the start of that second.
 */
qbc_rec_cdc_step_t qbc_rec_cdc_decide(size_t n_entities, size_t total, const qbc_rec_cdc_group_t *groups,
                                      size_t n_groups, int64_t since_ns, int64_t *next_since);

/**
 * where a realm's next sweep starts: its watermark, or (none yet) when it was connected,
 * but never more than lookback_ns ago. Sets *too_old when the watermark (or the connection,
 * if there is no watermark) is older than lookback_ns less a margin (a minute, or a tenth of a short lookback): CDC
 * cannot answer that, a backfill must.
 */
int64_t qbc_rec_cdc_since(int64_t watermark_ns, int64_t connected_ns, int64_t now_ns, int64_t lookback_ns,
                          int *too_old);

/** 1 if a Fault says changedSince is beyond CDC's lookback ("... older than fixed days ...") */
int qbc_rec_fault_too_old(const qbc_fault_t *f);

typedef enum {
    REC_RES_OK = 0,    /**< 2xx, no fault */
    REC_RES_GONE,      /**< 610 object not found (deleted) */
    REC_RES_THROTTLED, /**< 429 / ThrottleExceeded 3001 */
    REC_RES_AUTH,      /**< 401 / AuthenticationFailed */
    REC_RES_RETRY,     /**< transport error, 5xx, SystemFault */
    REC_RES_CLIENT,    /**< other 4xx / faults: retrying the same request will not help */
} qbc_rec_class_t;

/** classifies an answer. curl_ok: 0 when the transfer failed (timeout, reset, refused). */
qbc_rec_class_t qbc_rec_classify(int curl_ok, long status, const qbc_fault_t *fault);

/** "HTTP 400 fault 4000 (ValidationFault): Error parsing query: <detail>" into buf */
void qbc_rec_describe(long status, const qbc_fault_t *fault, const char *curl_err, char *buf, size_t size);

/* ============================== budget.c ============================== */

enum { REC_PRIO_LIVE = 0, REC_PRIO_CDC = 1, REC_PRIO_BACKFILL = 2 };

typedef struct st_qbc_budget_t {
    int64_t *ts;  /**< ring of start times (mono ns) within the window */
    unsigned cap; /**< = rate */
    unsigned head, n;
    unsigned inflight;
    unsigned max_inflight;
    int64_t window_ns;
    int64_t paused_until_ns; /**< mono; 0: not paused */
    int fenced;              /**< cluster mode: another node's realm now; no call may start */
} qbc_budget_t;

void qbc_budget_init(qbc_budget_t *b, unsigned rate, unsigned max_inflight, int64_t window_ns);
void qbc_budget_dispose(qbc_budget_t *b);
/** how many calls of priority prio may start now */
unsigned qbc_budget_available(qbc_budget_t *b, int64_t now, int prio);
/** calls of priority prio the window still allows (ignoring the in-flight cap) */
unsigned qbc_budget_rate_left(qbc_budget_t *b, int64_t now, int prio);
/** the earliest time (mono ns) a call of prio may start, ignoring the in-flight cap; now if now */
int64_t qbc_budget_next(qbc_budget_t *b, int64_t now, int prio);
void qbc_budget_take(qbc_budget_t *b, int64_t now);
/** a call metered as `units` calls in the window (a batch), one in flight */
void qbc_budget_take_n(qbc_budget_t *b, int64_t now, unsigned units);
void qbc_budget_done(qbc_budget_t *b);
void qbc_budget_throttle(qbc_budget_t *b, int64_t now, int64_t pause_ns);
unsigned qbc_budget_used(qbc_budget_t *b, int64_t now);

uint64_t qbc_rng_next(uint64_t *state);
/** delay before retry number `attempt` (1-based): base doubling to max, "equal jitter" in [d/2, d] */
uint64_t qbc_backoff_ms(unsigned attempt, unsigned base_ms, unsigned max_ms, uint64_t *rng);
/** Retry-After value (delta seconds) -> ms; 0 when absent or not delta seconds */
uint64_t qbc_parse_retry_after(const char *v, size_t len);

/* ============================== oauth.c (pure parts) ============================== */

typedef enum {
    REC_OAUTH_OK = 0,
    REC_OAUTH_INVALID_GRANT, /**< refresh token refused: the realm is disconnected */
    REC_OAUTH_REFUSED,       /**< invalid_client or another 4xx: configuration problem, retry slowly */
    REC_OAUTH_RETRY,         /**< 5xx, transport, malformed answer */
} qbc_oauth_class_t;

/** "Authorization: Basic base64(id:secret)" (malloc'd; caller cleanses) */
char *qbc_oauth_basic_header(const char *client_id, const char *client_secret);
/** "grant_type=refresh_token&refresh_token=<urlencoded>" (malloc'd; caller cleanses) */
char *qbc_oauth_refresh_body(const char *refresh_token);
/**
 * classifies and parses a token answer. On REC_OAUTH_OK fills out (expiries from now_wall).
 * err gets a token-free description otherwise.
 */
qbc_oauth_class_t qbc_oauth_parse(int curl_ok, long status, const char *body, size_t len, int64_t now_wall,
                                  qbc_tokens_t *out, char *err, size_t errsize);

/* ============================== the reconciler ============================== */

typedef struct st_rec_realm_t rec_realm_t;
typedef struct st_rec_notice_t rec_notice_t;

/** a pending notice the reconciler tracks (one per realm/entity/id). */
struct st_rec_notice_t {
    rec_notice_t *hnext;
    rec_realm_t *realm;
    char entity[QBC_ENTITY_MAX];
    char id[QBC_ID_MAX];
    uint64_t last_seq; /**< as last seen in a scan */
    qbc_op_t last_op;
    int64_t updated_ns;
    char merged_from[QBC_ID_MAX]; /**< the pending notice's merge link (store.h qbc_pending_t) */
    char merged_into[QBC_ID_MAX];
    uint64_t fetch_seq; /**< the last_seq the fetch in progress retires */
    qbc_op_t fetch_op;
    int64_t fetch_updated_ns;
    int64_t fetched_ns;    /**< LastUpdatedTime of the version the fetch found (INT64_MAX: a delete; 0: none) */
    int64_t first_seen_ns; /**< mono: first scan that saw it (latency start) */
    int64_t bump_seen_ns;  /**< mono: a scan saw a newer change while it was in flight (0: none) */
    int64_t next_try_ns;   /**< mono: backoff */
    uint32_t attempts;
    uint32_t scan_gen;
    uint8_t inflight;  /**< in a transfer or in a store job */
    uint8_t need_read; /**< fetch it alone (query missed it or was refused) */
    uint8_t cdc_tried; /**< a live CDC call had it: queries and reads only from now on */
    uint8_t auth_retried;
    char last_error[256];
};

/** per (realm, entity): coalescing state */
typedef struct st_rec_group_t {
    char entity[QBC_ENTITY_MAX];
    int64_t last_query_ns; /**< mono */
    unsigned inflight;
} rec_group_t;

enum { REC_AUTH_NONE = 0, REC_AUTH_OK, REC_AUTH_REFRESHING, REC_AUTH_COMMITTING, REC_AUTH_DISCONNECTED };

/** one request a CDC sweep still has to make */
typedef struct st_rec_cdc_part_t {
    char entities[QBC_BACKFILL_ENTITIES_MAX]; /**< comma-separated */
    size_t n_entities;
    int64_t since_ns;
    /* a crowded second of one entity, read through the query API (until_ns 0: a CDC request) */
    int64_t until_ns;
    uint64_t position, page_pos;                     /**< the next STARTPOSITION; that of the page in flight */
    char anchors[QBC_BACKFILL_ANCHORS * QBC_ID_MAX]; /**< the last page's last ids (backfill.c) */
    unsigned rereads;
} rec_cdc_part_t;

/** a realm's CDC state (reconciler thread only) */
typedef struct st_rec_cdc_t {
    int64_t watermark_ns;   /**< wall: as committed (0: none yet) */
    int64_t requested_ns;   /**< wall: the latest POST .../cdc seen in the store */
    int64_t requested_done; /**< wall: the request the last sweep served */
    int64_t due_ns;         /**< mono: next periodic sweep (0: not scheduled yet) */
    int64_t retry_ns;       /**< mono: after a failed request */
    int active;             /**< a sweep is running (requests or its commit) */
    int inflight;           /**< a request or the commit is outstanding */
    int backfill_pending;   /**< an automatic backfill is being created */
    unsigned failures;
    rec_cdc_part_t *parts; /**< what is left to ask; parts[0] is next */
    size_t n_parts, cap_parts;
    int64_t sweep_wall_ns;   /**< when the sweep started */
    int64_t complete_ns;     /**< min "time" over the parts completed */
    qbc_version_t *versions; /**< gathered, not yet handed to the store */
    size_t nv, cap_v;
    char **owned; /**< the entity texts versions[] point into, in the same order (deletes have none) */
    size_t n_owned, cap_owned;
    /*
     * chunks (cdc_commit_max versions) committed ahead of the sweep's end: only the final
     * commit moves the watermark, and only once every chunk committed
     */
    unsigned chunks_inflight;
    int chunk_failed;
    int commit_waiting;                 /**< the sweep is read; its final commit waits for the chunks */
    uint64_t chunk_versions, chunk_new; /**< versions the chunks offered, and those new to the feed */
    uint64_t requests;                  /**< in this sweep */
    /*
     * audits (store.h audit_entities): per entity whose deletes a capped answer may have
     * cut off, owed until a sweep commits one, at most one every cdc_audit_gap_s; `audit`
     * is the list the commit in flight carries (comma-separated)
     */
    struct rec_audited_t {
        char entity[QBC_ENTITY_MAX];
        int64_t at_ns; /**< wall: the last audit committed (0: none) */
        int owed;
    } * audited;
    size_t n_audited;
    char audit[QBC_BACKFILL_ENTITIES_MAX];
    /*
     * entities QBO refused (4xx) for this realm: `refused` are left out of its sweeps from
     * then on (kept in memory: a restart tries them again); `sweep_refused` are those this
     * sweep found, remembered once its commit holds what the others read. `refused_error`
     * is the realm's last_error that commit carries.
     */
    char refused[QBC_BACKFILL_ENTITIES_MAX];
    char sweep_refused[QBC_BACKFILL_ENTITIES_MAX];
    char sweep_refused_why[200]; /**< QBO's fault for the first entity this sweep found refused */
    char refused_error[320];     /**< (the store keeps the first 255 bytes) */
} rec_cdc_t;

struct st_rec_realm_t {
    char name[QBC_REALM_MAX];
    char noted_error[256]; /**< the last_error this module last wrote for it ("" : none or cleared) */
    int64_t noted_ns;      /**< mono: when */
    int in_store;          /**< seen in the last realm scan */
    qbc_realm_status_t status;
    int has_tokens;
    int64_t connected_ns;
    int64_t disc_connected_ns; /**< connected_ns when we disconnected it */
    int auth;                  /**< REC_AUTH_* */
    char access_token[QBC_TOKEN_MAX];
    int64_t access_expires_ns; /**< wall */
    int64_t access_margin_ns;  /**< refresh this long before access_expires_ns */
    uint32_t token_gen;        /**< bumped whenever access_token changes */
    unsigned auth_failures;
    int force_refresh;            /**< the access token was refused: do not reuse the stored one */
    int64_t refresh_connected_ns; /**< connected_ns when the refresh in flight started */
    int64_t auth_retry_ns;        /**< mono */
    qbc_budget_t budget;
    qbc_budget_t batch_budget; /**< batch requests per minute */
    int64_t fence_until_ns;    /**< mono: cluster mode, owned until then unless renewed (fence.c) */
    uint64_t fence_epoch;      /**< the cluster's epoch when last checked */
    int64_t last_fetch_ns;     /**< mono: start of the last query or batch */
    unsigned batch_cap;        /**< most queries per batch now: halved by a throttled batch, regrows */
    rec_group_t *groups;
    size_t n_groups, cap_groups;
    uint64_t pending;      /**< notices tracked for it */
    uint64_t pending_scan; /**< counting during a scan */
    rec_cdc_t cdc;
    /* its share of the monthly allowance and its CDC schedule (allowance.c) */
    uint64_t used[QBC_USAGE_PURPOSES];      /**< metered calls this period */
    uint64_t unflushed[QBC_USAGE_PURPOSES]; /**< of which not yet handed to the store */
    int unflushed_any;
    int64_t cdc_interval_ns; /**< fitted (0: not fitted yet: the configured interval) */
    int64_t last_sweep_ns;   /**< mono: when its last sweep started (0: none yet) */
    double gap_ewma;         /**< recent share of sweeps that found changes webhooks missed */
    uint64_t sweeps, gap_sweeps, gaps;
    uint64_t notices_seen;    /**< webhook-made notices first seen this period */
    int64_t last_notice_wall; /**< when the last of them was first seen */
    int waiting;              /**< its live or CDC work waits for the allowance */
};

typedef struct st_rec_xfer_t rec_xfer_t;
typedef struct st_rec_job_t rec_job_t;

/** Intuit's monthly CorePlus allowance: metered, planned and governed (allowance.c; loop thread) */
typedef struct st_rec_allowance_t {
    uint64_t budget;                         /**< per period; 0: not governed */
    uint64_t margin;                         /**< spending stops this far short of budget */
    int64_t period_start_ns, period_end_ns;  /**< wall */
    uint64_t used[QBC_USAGE_PURPOSES];       /**< this period: stored and not yet flushed */
    uint64_t inflight;                       /**< metered units started, not answered */
    uint64_t live_reserve, cdc_planned;      /**< from the last fit */
    int64_t base_interval_ns;                /**< the last fit's interval for a realm of weight 1 */
    int64_t flush_due, fit_due, publish_due; /**< mono */
    int loaded;                              /**< the period's stored counts were read */
    int warned;                              /**< the highest alert logged this period: 0, 80, 95, 100 */
    int64_t live_refused_ns, cdc_refused_ns, backfill_refused_ns; /**< mono: the last refusal of each */
    /* cluster mode (cfg.meter): the other nodes' calls, as the shared meter last told */
    qbc_meter_share_t share;
    int64_t share_due, started_ns; /**< mono: the next exchange; the first tick */
    uint64_t others_total;         /**< sum of share.others */
    uint64_t cluster_reserve;      /**< kept for the others' calls not seen yet */
    uint64_t recovered;            /**< own calls taken back from the bucket this period */
    int warned_recovered;
    uint64_t rate_total[6]; /**< others_total sampled each second (a ring), for their pace */
    int64_t rate_at[6];
    unsigned rate_n, rate_head;
    /* published (under stats_mu) */
    qbc_allowance_figures_t pub;
    qbc_realm_allowance_t *pub_realms;
    size_t n_pub_realms;
} rec_allowance_t;

struct st_qbc_reconciler_t {
    qbc_reconciler_config_t cfg;
    char *api_base, *token_url, *client_id, *client_secret, *revoke_url;
    qbc_store_t *store;
    CURLM *multi;
    pthread_t thread;
    int thread_started;
    int64_t coalesce_ns;

    /* cross-thread */
    pthread_mutex_t mu;
    rec_job_t *done_jobs; /**< committed store jobs, handed back by the writer */
    atomic_int dirty_pending, dirty_realms, stopping;
    int drain_ms;
    /* OAuth calls for others (oauth.c): guarded by oauth_mu, which their callbacks run under */
    pthread_mutex_t oauth_mu;
    struct st_rec_oauth_call_t *oauth_calls; /**< queued and in flight, oldest first */
    uint64_t oauth_next_id;
    atomic_int dirty_oauth; /**< a call was queued */

    pthread_mutex_t stats_mu;
    qbc_reconciler_stats_t stats;

    /* reconciler thread only */
    rec_realm_t **realms;
    size_t n_realms, cap_realms;
    rec_notice_t **buckets;
    size_t n_buckets, n_notices;
    uint32_t scan_gen;
    rec_xfer_t *xfers; /**< transfers in flight */
    size_t n_xfers;
    size_t outstanding_jobs; /**< store jobs submitted, not yet handed back */
    uint64_t rng;
    int64_t next_scan_ns;
    int listener; /**< the store listener handle */
    atomic_int dirty_jobs;
    struct st_rec_backfill_t *backfills; /**< jobs queued or running, in id order */
    char **cdc_entities;                 /**< the configured list, split */
    size_t n_cdc_entities;
    rec_allowance_t allow;
};

/* the answer of a generic API call (CDC, backfill) */
typedef struct st_rec_api_answer_t {
    int curl_ok;
    long status;
    const char *body;
    size_t len;
    uint64_t retry_after_ms;
    const char *curl_err; /**< when !curl_ok */
    uint32_t token_gen;   /**< the access token generation it was sent with */
} rec_api_answer_t;
typedef void (*rec_api_cb)(qbc_reconciler_t *r, rec_realm_t *realm, void *ctx, const rec_api_answer_t *a);
/** how an API answer went: its Fault (if any) into *fault, and its class */
qbc_rec_class_t qbc_rec__answer_class(const rec_api_answer_t *a, qbc_fault_t *fault);
/**
 * a store job's outcome: job is the header of the qbc_reconcile_job_t of qbc_rec__submit_versions
 * or the qbc_backfill_job_t of qbc_rec__submit_backfill (cast it back); job->result and its results
 */
typedef void (*rec_commit_cb)(qbc_reconciler_t *r, const qbc_store_job_t *job, void *ctx);

/**
 * GET url (post_body NULL) or POST post_body as application/text, with the realm's bearer; cb
 * gets the answer. A metered call of usage_purpose (qbc_usage_purpose_t); the caller checked
 * qbc_rec__allowance_permits.
 */
int qbc_rec__start_api(qbc_reconciler_t *r, rec_realm_t *realm, const char *url, const char *post_body,
                       int usage_purpose, rec_api_cb cb, void *ctx);
/**
 * submits a reconcile job with versions[0..nv) (taken over: freed with the owned texts after
 * done runs), tmpl's set_cdc/watermarks/checkpoint/audit_entities/realm_error (copied), and
 * realm = realm->name. On failure (QBC_ECLOSED, QBC_EINVAL) nothing was taken over and done
 * will not run.
 */
int qbc_rec__submit_versions(qbc_reconciler_t *r, rec_realm_t *realm, const qbc_reconcile_job_t *tmpl,
                             qbc_version_t *versions, size_t nv, char **owned, size_t n_owned, rec_commit_cb done,
                             void *ctx);
/**
 * submits a store job creating the backfill job *create (copied), moving the realm's CDC
 * watermark to cdc_watermark_ns in the same transaction if it is > 0. Failure as above.
 */
int qbc_rec__submit_backfill(qbc_reconciler_t *r, rec_realm_t *realm, const qbc_backfill_t *create,
                             int64_t cdc_watermark_ns, rec_commit_cb done, void *ctx);

/* ---- transfer.c, fetch.c: one HTTP transfer ---- */

/* X_OAUTH: a call to the token or revoke endpoint for someone else (no realm, not budgeted) */
/* X_CDC: a live fetch through one CDC call (notices of several entities, or missing from a query) */
enum { X_QUERY = 1, X_READ = 2, X_TOKEN = 3, X_BATCH = 4, X_API = 5, X_OAUTH = 6, X_CDC = 7 };

/** one query of a transfer: an entity and its notices */
typedef struct st_rec_part_t {
    char entity[QBC_ENTITY_MAX];
    size_t off, n; /* its notices: x->ns[off .. off + n) */
} rec_part_t;

struct st_rec_xfer_t {
    rec_xfer_t *next, *prev;
    int kind;
    int usage_purpose; /* qbc_usage_purpose_t of a metered call */
    unsigned units;    /* metered calls it costs when answered 2xx (a batch: its items); 0: not metered */
    qbc_reconciler_t *r;
    rec_realm_t *realm;
    char entity[QBC_ENTITY_MAX];
    rec_notice_t **ns;
    size_t n;
    rec_part_t *parts; /* one per query (X_QUERY, X_READ: one) */
    size_t n_parts;
    uint32_t token_gen;
    CURL *easy;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    qbc_buf_t body; /* the answer, up to REC_MAX_BODY */
    uint64_t retry_after_ms;
    rec_api_cb api_cb; /* X_API: who gets the answer */
    void *api_ctx;
    uint64_t oauth_id; /* X_OAUTH: the call it makes */
};

/** X_OAUTH: POSTs body to url with the client's Basic credentials (taken by the transfer). 0 or -1 */
int qbc_rec__start_oauth(qbc_reconciler_t *r, const char *url, const char *content_type, const char *body,
                         uint64_t call_id);
/** runs curl's multi handle; each finished transfer goes to qbc_rec__xfer_done. @return how many finished */
int qbc_rec__drain_curl(qbc_reconciler_t *r);
/** stops every transfer (shutdown): their notices stay pending, API callers hear "aborted" */
void qbc_rec__abort_all(qbc_reconciler_t *r);
/**
 * stops realm's calls to the QBO API (fencing): their notices stay pending, API callers hear
 * why. Token refreshes go on (aborting one could lose the refresh token Intuit just rotated).
 * @return how many were stopped
 */
unsigned qbc_rec__abort_realm(qbc_reconciler_t *r, rec_realm_t *realm, const char *why);

/* ---- fence.c: cluster mode ---- */
/** fences realms out (no call may start, calls in flight stopped) or in, as the cluster says */
void qbc_rec__fence(qbc_reconciler_t *r, int64_t now);
/** fetch.c: what a finished transfer's answer becomes */
void qbc_rec__xfer_done(qbc_reconciler_t *r, rec_xfer_t *x, CURLcode res);

/* ---- settle.c: store jobs ---- */

/**
 * versions (and deletes) for notices ns[0..n) of one query's answer, submitted with the
 * notices they retire; items are taken over. Notices the answer did not hold go back for
 * single reads (from_read: the answer was such a read).
 */
void qbc_rec__offer(qbc_reconciler_t *r, rec_realm_t *realm, const char *entity, rec_notice_t **ns, size_t n,
                    qbc_rec_item_t *items, size_t n_items, int from_read);
/** loop thread: settles every store job the writer handed back since the last call */
void qbc_rec__jobs_done(qbc_reconciler_t *r);

/* ---- oauth.c: calls for others ---- */

/** loop thread: starts the OAuth calls queued since the last time */
void qbc_rec__oauth_calls_start(qbc_reconciler_t *r);
/** loop thread: an X_OAUTH transfer finished (curl_ok 0: no answer; err then says why) */
void qbc_rec__oauth_call_done(qbc_reconciler_t *r, uint64_t id, int curl_ok, long status, const char *body, size_t len,
                              const char *err);
/** after the thread has stopped: every call still queued hears "the reconciler is stopping" */
void qbc_rec__oauth_calls_end(qbc_reconciler_t *r);

/* ---- action.c: what an answer means ---- */

/** who asked: the action for the same answer differs */
typedef enum {
    REC_FOR_QUERY,    /**< a live fetch: a query of many ids, or a batch item */
    REC_FOR_READ,     /**< a live fetch of one entity by id */
    REC_FOR_CDC,      /**< a CDC sweep's request */
    REC_FOR_BACKFILL, /**< a backfill or snapshot page */
} rec_purpose_t;

/** what to do with an answer */
typedef enum {
    REC_ACT_USE = 0,     /**< a good answer: use it */
    REC_ACT_PAUSE,       /**< throttled: pause the realm (Retry-After), ask again afterwards */
    REC_ACT_REAUTH,      /**< the access token was refused: refresh it, ask again (a failure counts) */
    REC_ACT_RETRY,       /**< transient (transport, 5xx, unparsable): back off, ask again (a failure counts) */
    REC_ACT_READ_ALONE,  /**< a query was refused or missed rows: read each entity by id */
    REC_ACT_DELETED,     /**< 610 on a read by id: the entity is gone */
    REC_ACT_SKIP_ENTITY, /**< QBO refuses this entity for the realm: go on without it */
    REC_ACT_CATCH_UP,    /**< CDC cannot reach back that far: a backfill fills the gap */
    REC_ACT_GIVE_UP,     /**< permanent: dead-letter the notices, fail the job or end the sweep */
} rec_action_t;

/**
 * the action for an answer of class cls (qbc_rec_classify) given to purpose; status and
 * fault (may be NULL) refine the 4xx cases. The one decision table of the reconciler.
 */
rec_action_t qbc_rec__action_for(qbc_rec_class_t cls, rec_purpose_t purpose, long status, const qbc_fault_t *fault);
/**
 * 1 if a failed answer (qbc_rec_classify: REC_RES_CLIENT) to the query or CDC request of
 * one entity means QBO refuses that entity for the realm (qbo-facts §6: a 4xx or a
 * ValidationFault, e.g. "Invalid entity", "Error parsing query: X is not supported"),
 * so a job or sweep goes on without it. Not for 401/403 and authentication or
 * authorization faults (the realm's access, not the entity), nor CDC's "older than
 * fixed days" (a backfill replaces CDC then).
 */
int qbc_rec__entity_refused(long status, const qbc_fault_t *fault);

/* cdc.c */
/** starts due sweeps and their requests; returns the next time it has something to do */
int64_t qbc_rec__cdc_plan(qbc_reconciler_t *r, int64_t now);
/** the store's view of a realm (watermark, requests) */
void qbc_rec__cdc_realm_seen(qbc_reconciler_t *r, rec_realm_t *realm, const qbc_realm_t *st, int64_t now);
void qbc_rec__cdc_free(rec_cdc_t *c);
/** a version of a fetched item, source given; data is borrowed from the item */
void qbc_rec__version_of_item(const char *realm, const char *entity, const qbc_rec_item_t *it, uint8_t source,
                              qbc_version_t *v);
/** creates a backfill job (done tells how it went); 0 or an error */
int qbc_rec__backfill_create(qbc_reconciler_t *r, rec_realm_t *realm, int64_t since_ns, const char *reason,
                             int64_t new_watermark_ns, rec_commit_cb done, void *ctx);

/* backfill.c */
/**
 * where a backfill page's new rows begin: just after the latest of `anchors` (the
 * last ids of the page before, comma-separated) that the page holds; 0 when anchors
 * is "". -1 when it holds none: rows moved under the pages, so some may be skipped.
 */
long qbc_rec__backfill_first_new(const char *anchors, const qbc_rec_item_t *items, size_t n);
/** the configured CDC entities as one comma-separated list (as many as fit in out) */
void qbc_rec__cdc_entity_list(const qbc_reconciler_t *r, char *out, size_t outsz);
/** how many ids an anchors list holds */
size_t qbc_rec__backfill_n_anchors(const char *anchors);
/** the last QBC_BACKFILL_ANCHORS valid ids of a page, comma-separated, into out */
void qbc_rec__backfill_anchors(const qbc_rec_item_t *items, size_t n, char *out, size_t outsz);
/** reads the jobs from the store: new ones start, cancelled ones stop */
void qbc_rec__backfill_scan(qbc_reconciler_t *r);
int64_t qbc_rec__backfill_plan(qbc_reconciler_t *r, int64_t now);
void qbc_rec__backfill_free_all(qbc_reconciler_t *r);

/* allowance.c */
/** loop thread: period turns, counts flushed (each second), the CDC schedule fitted, alerts, figures */
void qbc_rec__allowance_tick(qbc_reconciler_t *r, int64_t now);
/** cluster mode: how long the governor waits for the shared meter's first read before it goes on alone */
#define QBC_REC_METER_WAIT_NS (10 * 1000000000LL)
/** the calls kept for other nodes' spending not seen yet: their pace x (1 s + the meter's lag, 60 s at most) */
uint64_t qbc_rec__cluster_reserve(double others_per_s, int64_t lag_ns);
/** 1 if `units` metered calls for purpose may start now (live > CDC > backfill; see allowance.c) */
int qbc_rec__allowance_permits(qbc_reconciler_t *r, int purpose, unsigned units);
/** a metered transfer started (its cost reserved) / ended (counted if counted) */
void qbc_rec__allowance_started(qbc_reconciler_t *r, unsigned units);
void qbc_rec__allowance_ended(qbc_reconciler_t *r, rec_realm_t *realm, int purpose, unsigned units, int counted);
/** the interval between the realm's CDC sweeps now (fitted to the allowance) */
int64_t qbc_rec__cdc_interval_ns(const qbc_reconciler_t *r, const rec_realm_t *realm);
/** a sweep of realm committed; gaps: changes it found that webhooks had not delivered */
void qbc_rec__allowance_sweep_done(qbc_reconciler_t *r, rec_realm_t *realm, uint64_t gaps);
/** last thing at stop: the counts not yet stored are handed to the store */
void qbc_rec__allowance_flush(qbc_reconciler_t *r);
/** at stop: this node's last counts to the shared meter (cluster mode) */
void qbc_rec__allowance_share_final(qbc_reconciler_t *r);
void qbc_rec__allowance_free(qbc_reconciler_t *r);

/* plan.c */
/** active, has tokens, not disconnected */
int qbc_rec__realm_usable(const rec_realm_t *realm);
rec_realm_t *qbc_rec__realm_get(qbc_reconciler_t *r, const char *name, int create);
rec_notice_t *qbc_rec__notice_find(qbc_reconciler_t *r, const char *realm, const char *entity, const char *id);
void qbc_rec__notice_remove(qbc_reconciler_t *r, rec_notice_t *n);
void qbc_rec__notices_free(qbc_reconciler_t *r);
/** reads every pending notice into the tracking table. */
int qbc_rec__scan_pending(qbc_reconciler_t *r, int64_t now);
/** starts what may start; returns the next time (mono) planning has something to do */
int64_t qbc_rec__plan(qbc_reconciler_t *r, int64_t now);
/** rec_group_t of (realm, entity), created on demand */
rec_group_t *qbc_rec__group_get(rec_realm_t *realm, const char *entity);
/** a notice went back to the pool after a failed fetch: counts an attempt, dead-letters after max */
void qbc_rec__notice_failed(qbc_reconciler_t *r, rec_notice_t *n, int64_t now, const char *error);
/** a notice goes back to the pool with no attempt counted (throttled, token refresh) */
void qbc_rec__notice_release(rec_notice_t *n);

/* loop.c: what plan.c and oauth.c call */
int qbc_rec__start_query(qbc_reconciler_t *r, rec_realm_t *realm, const char *entity, rec_notice_t **ns, size_t n);
/** one planned Id IN query */
typedef struct st_rec_chunk_t {
    const char *entity;
    rec_notice_t **ns;
    size_t n;
} rec_chunk_t;
/** several queries (2..REC_BATCH_MAX_ITEMS) of one realm in one batch request */
int qbc_rec__start_batch(qbc_reconciler_t *r, rec_realm_t *realm, const rec_chunk_t *chunks, size_t n);
int qbc_rec__start_read(qbc_reconciler_t *r, rec_realm_t *realm, rec_notice_t *n);
/**
 * one CDC call for notices ns[0..n) (sorted by entity) of the comma-separated entities, since
 * since_ns: what several queries and single reads would cost one call (plan.c decides)
 */
int qbc_rec__start_live_cdc(qbc_reconciler_t *r, rec_realm_t *realm, rec_notice_t **ns, size_t n, const char *entities,
                            int64_t since_ns);
int qbc_rec__start_token(qbc_reconciler_t *r, rec_realm_t *realm, const char *refresh_token);
void qbc_rec__dead_letter(qbc_reconciler_t *r, rec_notice_t *n, const char *error);
/**
 * writes a realm's state and/or tokens (either may be NULL). if_connected_ns != 0: only
 * while the realm is still active under that connection (qbc_realm_job_t.if_current), so a
 * refresh that ends after a disconnect or reconnect writes nothing.
 */
int qbc_rec__submit_realm(qbc_reconciler_t *r, rec_realm_t *realm, const qbc_realm_t *state, const qbc_tokens_t *tokens,
                          int64_t if_connected_ns);
void qbc_rec__stat_add(qbc_reconciler_t *r, size_t offset, uint64_t v);
/**
 * makes text the realm's last_error (stamped in the store; "" clears it), as one field update
 * in the store's transaction, so nothing else of the realm's state can be overwritten. The same
 * text again within a minute is not written again. For failures an operator must see in
 * GET /admin/realms and qbcdc realms, not only in the log.
 */
void qbc_rec__note_realm_error(qbc_reconciler_t *r, rec_realm_t *realm, const char *text);
/** clears the realm's last_error if this module set it and it starts with prefix */
void qbc_rec__clear_realm_error(qbc_reconciler_t *r, rec_realm_t *realm, const char *prefix);
#define REC_STAT(r, field, v) qbc_rec__stat_add((r), offsetof(qbc_reconciler_stats_t, field), (v))

/* oauth.c: the state machine */
/** 1 if realm has a usable access token now; otherwise starts (or waits for) a refresh and returns 0 */
int qbc_rec__auth_ready(qbc_reconciler_t *r, rec_realm_t *realm, int64_t now, int64_t *next_ns);
/** the token transfer finished */
void qbc_rec__auth_token_done(qbc_reconciler_t *r, rec_realm_t *realm, int curl_ok, long status, const char *body,
                              size_t len, const char *curl_err);
/**
 * the realm job holding rotated tokens committed (result 0), found the realm disconnected or
 * reconnected meanwhile (stale: nothing written), or failed; tokens is wiped by the caller
 */
void qbc_rec__auth_committed(qbc_reconciler_t *r, rec_realm_t *realm, int result, int stale,
                             const qbc_tokens_t *tokens);
/**
 * an API call answered 429: pauses the realm's budget for Retry-After (or the configured
 * pause) and says so once per pause. Counting it is the caller's.
 */
void qbc_rec__realm_throttled(qbc_reconciler_t *r, rec_realm_t *realm, int64_t now, uint64_t retry_after_ms,
                              const char *why);
/** an API call answered 401 with the token of generation gen */
void qbc_rec__auth_rejected(qbc_reconciler_t *r, rec_realm_t *realm, uint32_t gen);
/** realm state as read from the store changed */
void qbc_rec__auth_realm_seen(qbc_reconciler_t *r, rec_realm_t *realm, const qbc_realm_t *st, int has_tokens);

#endif
