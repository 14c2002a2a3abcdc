/*
 * ingress_internal.h — shared by the files of ingress/ only.
 */
#ifndef QBC_INGRESS_INTERNAL_H
#define QBC_INGRESS_INTERNAL_H

#include <signal.h>
#include "h2o.h"
#include "ingress.h"

/* ============================== metrics ============================= */

/* results a webhook POST can have; each is one label value of qbcdc_webhooks_total */
typedef enum {
    WH_STORED = 0,     /* 200: body committed */
    WH_DUPLICATE,      /* 200: every CloudEvents id seen before; nothing new stored */
    WH_QUARANTINED,    /* 200: signed but (partly) unparsable; kept in quarantine */
    WH_UNAUTHORIZED,   /* 401 */
    WH_TOO_LARGE,      /* 413 */
    WH_UNAVAILABLE,    /* 503: store refused (full, failed, shutting down) */
    WH_NOT_CONFIGURED, /* 503: no verifier tokens */
    WH_BAD_REQUEST,    /* 405/400: wrong method, empty body */
    WH__COUNT
} webhook_result_t;

#define ACK_BUCKETS 14

typedef struct st_ingress_metrics_t {
    /* touched on the loop thread only */
    uint64_t webhooks[WH__COUNT];
    uint64_t events_stored, events_duplicate, events_rejected;
    uint64_t unexpected_content_type;
    uint64_t ack_buckets[ACK_BUCKETS + 1]; /* last: +Inf */
    uint64_t ack_count;
    double ack_sum_s;
    uint64_t inflight;
    int64_t started_ns;
} ingress_metrics_t;

void metrics_observe_ack(ingress_metrics_t *m, int64_t ns);
/** renders the Prometheus text exposition of ingress + store metrics into a malloc'd buffer. */
char *metrics_render(const ingress_metrics_t *m, qbc_store_t *store, size_t *len);

/* ============================== server ============================== */

struct st_qbc_ingress_t {
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t commits; /* store writer -> loop: finished jobs */
    qbc_store_t *store;
    char **tokens;
    size_t n_tokens;
    qbc_verifier_t *verifier; /* the tokens, prepared */
    size_t max_body;
    volatile sig_atomic_t stop;
    ingress_metrics_t metrics;
    int64_t not_configured_logged_ns;
    char *admin_token, *feed_token;
    char *client_id, *client_secret, *authorize_url, *token_url, *redirect_uri, *revoke_url;
    int snapshot_on_connect;                    /* a first registration also creates a snapshot job */
    struct st_connect_states_t *connect_states; /* one-use OAuth states (connect.c) */
    /* change feed readers (feed.c) */
    h2o_linklist_t feed_waiters;             /* long-polls and SSE streams */
    h2o_multithread_receiver_t feed_wake;    /* store writer -> loop: the feed grew */
    h2o_multithread_message_t feed_wake_msg; /* the one wake-up message, queued at most once */
    int feed_wake_queued;                    /* atomic: feed_wake_msg is in the queue */
    h2o_timeout_t feed_tick;                 /* deadlines and SSE keep-alives */
    h2o_timeout_entry_t feed_tick_entry;
    uint64_t feed_wakeups;
    char *feed_id_json;                   /* the store's feed id as a JSON string, quotes included (feed_init) */
    qbc_ingress_hooks_t hooks;            /* set by the embedder */
    h2o_multithread_receiver_t exchanges; /* token-exchange threads -> loop (connect.c) */
    qbc_store_job_t **held;               /* webhooks of this loop turn, not yet queued */
    size_t n_held, cap_held;
};

/** one webhook (or health probe) in flight between the loop and the store writer. */
typedef struct st_ingress_job_t {
    qbc_store_job_t job;
    h2o_multithread_message_t msg;
    qbc_ingress_t *ing;
    struct st_req_guard_t *guard; /* NULL once the request is gone */
    qbc_payload_t payload;
    char *body;
    int64_t start_mono_ns;
    int result_kind;           /* webhook_result_t chosen at parse time (stored/quarantined) */
    struct st_admin_part_t *a; /* operator jobs only (NULL for webhooks and health probes) */
} ingress_job_t;

/*
 * what operator jobs carry besides the store job. Kept apart so that a webhook, the
 * hot path, allocates and clears only what it uses.
 */
typedef struct st_admin_part_t {
    /* QBC_JOB_REALM (admin token registration, OAuth callback, disconnect) */
    char realm[QBC_REALM_MAX];
    qbc_realm_t realm_state;
    qbc_tokens_t *tokens; /* malloc'd, wiped on free */
    char state_hint[128];
    int disconnect; /* DELETE /admin/realms/{realm} */
    int revoked;    /* the revoke endpoint said 200 */
    char revoke_error[200];
    qbc_backfill_t backfill; /* QBC_JOB_BACKFILL: the job to create */
} admin_part_t;

/** a job bound to req (guarded: if the request goes away, the answer is dropped). */
ingress_job_t *ingress_job_new(qbc_ingress_t *ing, h2o_req_t *req, qbc_job_kind_t kind);
void ingress_job_free(ingress_job_t *j);
/** submits to the store; 0, or QBC_ECLOSED (then the caller frees the job and answers). */
int ingress_submit(qbc_ingress_t *ing, ingress_job_t *j);
/** queues the webhooks held during this loop turn (after every h2o_evloop_run). */
void ingress_flush_webhooks(qbc_ingress_t *ing);
int valid_realm(const char *s, size_t len);
/**
 * makes j (a QBC_JOB_REALM job with j->a->realm and j->a->tokens set) store the tokens
 * and mark the realm active again, keeping the rest of its state (CDC watermark).
 */
void activate_realm_job(qbc_ingress_t *ing, ingress_job_t *j);

/** lives in req->pool; its dispose tells the job the request was torn down. */
typedef struct st_req_guard_t {
    h2o_req_t *req;
    ingress_job_t *job;
} req_guard_t;

void respond_json(h2o_req_t *req, int status, const char *reason, const char *body);
void respond_error(h2o_req_t *req, int status, const char *reason, const char *code, const char *message);

/**
 * checks "Authorization: Bearer <want>" in constant time. Answers the request itself
 * (403 when want is NULL: the endpoint is disabled; 401 when missing or wrong) and
 * returns -1; returns 0 when authorised.
 */
int require_bearer(h2o_req_t *req, const char *want, const char *what);

/**
 * splits the normalised path at '/', drops the first skip segments ("admin", "v1"),
 * and stores the rest in seg (views into the request). Returns their number, or -1
 * if there are more than max.
 */
int path_segments(h2o_req_t *req, size_t skip, h2o_iovec_t *seg, size_t max);

/** copies a query parameter's value (percent-decoded) into out; returns 0 or -1 if absent/too long. */
int query_param(h2o_req_t *req, const char *name, char *out, size_t outsz);

/**
 * checks that every parameter of the query string is one of known (a NULL-terminated
 * list of at most 32 names) and that none is given twice, so that an endpoint never
 * silently ignores a parameter.
 * @param[out] seen bit i set when known[i] is present
 * @param[out] bad on failure, the offending name, percent-decoded (truncated to badsz)
 * @param[out] repeated on failure, 1 when the name is known but given twice
 * @return 0, or -1
 */
int query_check(h2o_req_t *req, const char *const *known, unsigned *seen, char *bad, size_t badsz, int *repeated);

int on_webhook(h2o_handler_t *self, h2o_req_t *req);
int on_admin(h2o_handler_t *self, h2o_req_t *req);
int on_connect(h2o_handler_t *self, h2o_req_t *req);
int on_oauth_callback(h2o_handler_t *self, h2o_req_t *req);
int on_feed(h2o_handler_t *self, h2o_req_t *req);
/**
 * {"<realm>":"<ISO time>",...}: per realm (or just realm), the time up to which the feed
 * is confirmed complete (GET /admin/realms' complete_until). malloc'd; NULL on a store error.
 */
char *feed_completeness(qbc_ingress_t *ing, const char *realm);
void feed_init(qbc_ingress_t *ing);
/** ends every long-poll (empty answer) and SSE stream (final chunk): the service is stopping. */
void feed_shutdown(qbc_ingress_t *ing);
void feed_dispose(qbc_ingress_t *ing);
/** DELETE /admin/realms/{realm}: revoke at Intuit, erase locally, answer when durable. */
int disconnect_realm(qbc_ingress_t *ing, h2o_req_t *req, const char *realm);
void connect_init(qbc_ingress_t *ing);
void connect_dispose(qbc_ingress_t *ing);
int on_healthz(h2o_handler_t *self, h2o_req_t *req);
int on_metrics(h2o_handler_t *self, h2o_req_t *req);
/** GET /openapi.json: the embedded document (openapi.c). */
int on_openapi(h2o_handler_t *self, h2o_req_t *req);
/** docs/openapi.json byte for byte (generated at build time by docs/embed.py); NUL-terminated, not counted in _len. */
extern const unsigned char qbc_openapi_json[];
extern const size_t qbc_openapi_json_len;
extern qbc_ingress_t *qbc_ingress__left_for_exit;

/** answers a committed QBC_JOB_BACKFILL or QBC_JOB_CDC_REQUEST (admin.c); req may be NULL (gone) */
void admin_job_answer(ingress_job_t *j, h2o_req_t *req);

/** runs on the loop thread for every job the store finished. */
void on_job_committed(ingress_job_t *j);

/** the handler subclass that carries our context (h2o's "super first" inheritance). */
typedef struct st_ingress_handler_t {
    h2o_handler_t super;
    qbc_ingress_t *ing;
} ingress_handler_t;

#endif
