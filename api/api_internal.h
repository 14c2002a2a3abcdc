/*
 * api_internal.h — shared by the files of api/ only (prefix qbc_api__, like curl's Curl_).
 *
 * Files: server.c (listener, routes, loop, shutdown), request.c (answers, bearer, query
 * and path helpers), job.c (store jobs bound to a request), one file per endpoint family:
 * health.c, metrics.c, openapi.c, feed.c (/v1/changes, SSE), entities.c (/v1 entity reads
 * and listings), admin.c (/admin router, realms), admin_jobs.c (CDC, backfill jobs),
 * admin_dead_letters.c, admin_subscriptions.c (push delivery), connect.c (the OAuth connect flow and revoke),
 * forward.c (cluster mode: a realm's admin requests sent on to its owner).
 */
#ifndef QBC_API_INTERNAL_H
#define QBC_API_INTERNAL_H

#include <signal.h>
#include <jansson.h>
#include "h2o.h"
#include "api.h"
#include "ingress.h"
#include "reconciler.h"

/* ============================== server ============================== */

struct st_qbc_api_t {
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t commits; /* store writer -> loop: finished jobs */
    qbc_store_t *store;
    qbc_store_t *feed_store;             /* what /v1/changes reads: store, or cluster mode's copy */
    uint64_t (*feed_horizon)(void *ctx); /* NULL: the feed store's head */
    void *feed_horizon_ctx;
    qbc_ingress_t *ingress; /* POST /webhooks/intuit (ingress/) */
    volatile sig_atomic_t stop;
    uint64_t inflight; /* jobs and OAuth calls waiting to answer a request */
    int64_t started_ns;
    char *admin_token, *feed_token;
    char *client_id, *authorize_url, *redirect_uri;
    int snapshot_on_connect;                    /* a first registration also creates a snapshot job */
    struct st_connect_states_t *connect_states; /* one-use OAuth states (connect.c) */
    /* change feed readers (feed.c) */
    h2o_linklist_t feed_waiters;          /* long-polls and SSE streams */
    h2o_multithread_receiver_t feed_wake; /* store writer -> loop: the feed grew */
    int feed_listener;                    /* the store listener that sends feed_wake_msg */
    unsigned n_waiters, max_waiters;      /* long-polls and SSE streams open, and the cap */
    h2o_timeout_t accept_pause;           /* out of file descriptors: accepting resumes after it */
    h2o_timeout_entry_t accept_pause_entry;
    int64_t emfile_logged_ns;
    int64_t summary_every_ns, summary_due_ns; /* the periodic "alive" line (feed.c's tick) */
    uint64_t summary_acked;                   /* webhooks acked at the last one */
    h2o_multithread_message_t feed_wake_msg;  /* the one wake-up message, queued at most once */
    int feed_wake_queued;                     /* atomic: feed_wake_msg is in the queue */
    h2o_timeout_t feed_tick;                  /* deadlines and SSE keep-alives */
    h2o_timeout_entry_t feed_tick_entry;
    uint64_t feed_wakeups;
    qbc_api_hooks_t hooks;                /* set by the embedder */
    h2o_multithread_receiver_t exchanges; /* the reconciler's OAuth calls -> loop (connect.c) */
    h2o_linklist_t oauth_calls;           /* OAuth calls out (connect.c) */
    qbc_reconciler_t *reconciler;         /* Intuit's OAuth client (qbc_api_set_reconciler); NULL: none */
    struct st_qbc_delivery_t *delivery;   /* push delivery (qbc_api_set_delivery); NULL: /admin/subscriptions 503 */
    /* cluster mode: realm requests forwarded to their owner (forward.c) */
    qbc_api_cluster_t cluster;
    char cluster_node_id[QBC_API_NODE_MAX];
    struct st_api_forwarder_t *forwarder; /* NULL: one node, nothing forwarded */
    struct {
        uint64_t relayed, unreachable, loops, no_owner; /* loop thread only */
    } fwd;
};

/*
 * a store job bound to a request (job.c): each endpoint file embeds one in its own
 * struct beside the typed store job it submits, and says how to answer and free it.
 */
typedef struct st_api_job_t {
    h2o_multithread_message_t msg; /* store thread -> loop: the job is back */
    qbc_api_t *api;
    struct st_req_guard_t *guard; /* NULL once the request is gone */
    /** loop thread, once the store gave the job back; req is NULL when the client has gone */
    void (*answer)(struct st_api_job_t *j, h2o_req_t *req);
    /** frees the struct that embeds this one (after answer, or when it never reached the store) */
    void (*dispose)(struct st_api_job_t *j);
} api_job_t;

/** binds j to req and sj to j (sj->on_commit and sj->data are set here). */
void qbc_api__job_init(api_job_t *j, qbc_api_t *api, h2o_req_t *req, qbc_store_job_t *sj,
                       void (*answer)(api_job_t *, h2o_req_t *), void (*dispose)(api_job_t *));
/**
 * takes the result of the store's submit call for j: 0 counts j in flight (its answer
 * comes later); anything else frees j and answers 503 now. @return rc
 */
int qbc_api__job_submitted(api_job_t *j, int rc);
/** frees j without answering (its request, if any, is answered by the caller). */
void qbc_api__job_free(api_job_t *j);
/** registers (disposes) the receiver that brings finished jobs back to the loop */
void qbc_api__jobs_init(qbc_api_t *api);
void qbc_api__jobs_dispose(qbc_api_t *api);

/**
 * a realm write bound to a request: PUT .../tokens, the OAuth callback (connect.c) and
 * DELETE /admin/realms/{realm}; answered by admin.c
 */
typedef struct st_realm_op_t {
    api_job_t aj;
    qbc_realm_job_t rj;
    qbc_realm_t state;
    qbc_tokens_t *tokens; /* malloc'd, wiped on free */
    char state_hint[128];
    int disconnect; /* DELETE /admin/realms/{realm} */
    int revoked;    /* the revoke endpoint said 200 */
    char revoke_error[200];
} realm_op_t;

realm_op_t *qbc_api__realm_op_new(qbc_api_t *api, h2o_req_t *req, const char *realm);
/**
 * makes op (with op->tokens set) store the tokens and mark the realm active again,
 * keeping the rest of its state (CDC watermark); a first registration gets its snapshot
 */
void qbc_api__realm_op_activate(qbc_api_t *api, realm_op_t *op);
/** submits op to the store (qbc_api__job_submitted's contract) */
int qbc_api__realm_op_submit(qbc_api_t *api, realm_op_t *op);
int qbc_api__valid_realm(const char *s, size_t len);

/** lives in req->pool; its dispose tells the job the request was torn down. */
typedef struct st_req_guard_t {
    h2o_req_t *req;
    api_job_t *job;
} req_guard_t;

/** takes the first message off a receiver's list (h2o's multithread queue); NULL when none is left */
static inline h2o_multithread_message_t *qbc_api__take_message(h2o_linklist_t *messages)
{
    if (h2o_linklist_is_empty(messages))
        return NULL;
    h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
    h2o_linklist_unlink(&m->link);
    return m;
}

/**
 * answers {"<key>":list} (taking list), or 503 store_unavailable when the scan that filled
 * it failed (scan_rc != 0)
 */
void qbc_api__respond_list(h2o_req_t *req, const char *key, json_t *list, int scan_rc);

/** answers with body, which is JSON already (and escaped where it quotes anyone) */
void qbc_api__respond_json(h2o_req_t *req, int status, const char *reason, const char *body);
/** {"error":code,"message":message}, escaped by jansson (a message may quote the client) */
void qbc_api__respond_error(h2o_req_t *req, int status, const char *reason, const char *code, const char *message);
/** answers with o (a jansson object, whose reference it takes) */
void qbc_api__respond_obj(h2o_req_t *req, int status, const char *reason, json_t *o);

/**
 * checks "Authorization: Bearer <want>" in constant time. Answers the request itself
 * (403 when want is NULL: the endpoint is disabled; 401 when missing or wrong) and
 * returns -1; returns 0 when authorised.
 */
int qbc_api__require_bearer(h2o_req_t *req, const char *want, const char *what);

/**
 * splits the normalised path at '/', drops the first skip segments ("admin", "v1"),
 * and stores the rest in seg (views into the request). Returns their number, or -1
 * if there are more than max.
 */
int qbc_api__path_segments(h2o_req_t *req, size_t skip, h2o_iovec_t *seg, size_t max);

/**
 * copies a query parameter's value (percent-decoded) into out: the first parameter whose
 * raw (not decoded) name is name; "name" alone has an empty value.
 * @return 0, QBC_ENOTFOUND (absent), QBC_ETOOBIG (longer than outsz - 1: out holds a prefix),
 * or QBC_EMALFORMED (it decodes to a NUL byte, %00, so no C string holds it)
 */
int qbc_api__query_param(h2o_req_t *req, const char *name, char *out, size_t outsz);
/**
 * qbc_api__query_param over a query string: the len bytes after the '?' (not NUL-terminated;
 * query may be NULL when len is 0). The pure parser, so that fuzz/fuzz_http_query.c reaches it.
 */
int qbc_api__query_param_str(const char *query, size_t len, const char *name, char *out, size_t outsz);

/* ---- forward.c ---- */
typedef enum {
    QBC_FWD_LOCAL = 0, /**< this node owns the realm (or is alone): answer here */
    QBC_FWD_FORWARD,   /**< another node owns it and its URL is known: send it there */
    QBC_FWD_LOOP,      /**< forwarded here already, and not ours either: 503, never on again */
    QBC_FWD_NO_OWNER,  /**< no owner known, or not its URL: 503 */
} qbc_fwd_decision_t;
/**
 * what to do with a realm's admin request: owner_rc as qbc_api_cluster_t.owner returns it,
 * forwarded: it carries X-Qbcdc-Forwarded-By. Pure.
 */
qbc_fwd_decision_t qbc_api__forward_decide(int owner_rc, int forwarded);
/**
 * cluster mode: forwards req to the owner of realm (or answers 503) and returns 1, or returns
 * 0 when this node answers it (it owns the realm, or is not in a cluster). Loop thread.
 */
int qbc_api__forward_realm(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t realm);
/**
 * cluster mode: a job this node's store does not hold (yet), or a push subscription (which
 * lives on the node that made it): forwards req to the node whose id space holds id and
 * returns 1, or returns 0 (answer here: alone, already forwarded, this node's own space, or no
 * such node live). Loop thread.
 */
int qbc_api__forward_job(qbc_api_t *api, h2o_req_t *req, uint64_t id);
/**
 * GET /admin/realms in cluster mode: the merged answer. rows: this node's realm rows (each
 * with figures_from); owners: realm -> its owner's node id (absent: none known); answers: node
 * -> the rows that node answered for itself, or null when it was asked and did not answer (in
 * time). Each realm keeps rows' order; its row is its owner's own when the owner answered it,
 * else this node's (figures_from says whose). Returns {"realms":[...],"nodes_unanswered":[...]}
 * (new). Pure: borrows its arguments.
 */
json_t *qbc_api__realms_merge(json_t *rows, json_t *owners, json_t *answers, const char *self);
/**
 * GET /admin/realms in cluster mode: marks rows figures_from this node, then asks every other
 * live node that owns one of the realms for its own rows (X-Qbcdc-Forwarded-By: a node so asked
 * answers locally only) and answers the merge once all answered or timed out; returns 1. Returns
 * 0 when this node answers rows as they are (one node, asked by another node, stopping, or no
 * other owner to ask). Loop thread; rows stay the caller's.
 */
int qbc_api__realms_fan_out(qbc_api_t *api, h2o_req_t *req, json_t *rows);
/**
 * a listing of what each node holds alone (GET /admin/subscriptions): rows, this node's, each
 * tagged "node": self, then every answering node's rows tagged with its id, under the key what;
 * "nodes_unanswered" lists the nodes whose answer was no such array (null in answers). Pure.
 */
json_t *qbc_api__nodes_merge(const char *what, json_t *rows, json_t *answers, const char *self);
/**
 * GET /admin/subscriptions in cluster mode: asks every other live node (qbc_api_cluster_t.peers)
 * for its own subscriptions (marked X-Qbcdc-Forwarded-By: a node so asked answers its own) and
 * answers the request with qbc_api__nodes_merge once all have answered or timed out: returns 1.
 * Returns 0 (answer rows here, tagged with this node) when alone, asked by another node, or
 * stopping. rows is not taken.
 */
int qbc_api__subscriptions_fan_out(qbc_api_t *api, h2o_req_t *req, json_t *rows);
/** stops the forwarding thread: calls still out are answered 503 through the loop. */
void qbc_api__forward_shutdown(qbc_api_t *api);
void qbc_api__forward_dispose(qbc_api_t *api);

/* ---- framing.c ---- */
/** HTTP/1 requests refused (400, connection closed) for ambiguous body framing; relaxed atomic */
extern uint64_t qbc_api__ambiguous_framing;
/** 1 if the parsed headers (picohttpparser's struct phr_header[n]) frame the body ambiguously */
int qbc_api__framing_ambiguous(const void *headers, size_t n);

/* ---- tls.c ---- */
/** a server TLS context from a PEM chain and key; err names the variable at fault. */
int qbc_api__tls_create(const char *cert, const char *key, SSL_CTX **out, char *err, size_t errsz);

/**
 * qbc_api__query_param for endpoints that must not ignore a parameter: a value that does not
 * fit, or holds a NUL byte, is answered 400 here. @return 1 present (in out), 0 absent, -1 answered
 */
int qbc_api__param(h2o_req_t *req, const char *name, char *out, size_t outsz);

/** a decimal number that fits 64 bits, digits only (no sign, no space). @return 0 or -1 */
int qbc_api__parse_u64(const char *s, uint64_t *out);

/**
 * the value of a Last-Event-ID header (len bytes, not NUL-terminated): a feed sequence
 * number as qbc_api__parse_u64 reads it, at most 31 bytes (a NUL byte is not a digit either).
 * @return 0 or -1
 */
int qbc_api__parse_last_event_id(const char *v, size_t len, uint64_t *out);

/**
 * checks that every parameter of the query string is one of known (a NULL-terminated
 * list of at most 32 names) and that none is given twice, so that an endpoint never
 * silently ignores a parameter.
 * @param[out] seen bit i set when known[i] is present
 * @param[out] bad on failure, the offending name, percent-decoded (truncated to badsz)
 * @param[out] repeated on failure, 1 when the name is known but given twice
 * @return 0, or -1
 */
int qbc_api__query_check(h2o_req_t *req, const char *const *known, unsigned *seen, char *bad, size_t badsz,
                         int *repeated);
/** qbc_api__query_check over a query string (qbc_api__query_param_str's query and len) */
int qbc_api__query_check_str(const char *query, size_t len, const char *const *known, unsigned *seen, char *bad,
                             size_t badsz, int *repeated);

int qbc_api__on_admin(h2o_handler_t *self, h2o_req_t *req);
int qbc_api__on_connect(h2o_handler_t *self, h2o_req_t *req);
int qbc_api__on_oauth_callback(h2o_handler_t *self, h2o_req_t *req);
/** everything under /v1: the feed (feed.c) and entity reads (entities.c) */
int qbc_api__on_v1(h2o_handler_t *self, h2o_req_t *req);
/**
 * {"<realm>":"<ISO time>",...}: per realm (or just realm), the time up to which the feed
 * is confirmed complete (GET /admin/realms' complete_until). malloc'd; NULL on a store error.
 */
char *qbc_api__feed_completeness(qbc_api_t *api, const char *realm);
void qbc_api__feed_init(qbc_api_t *api);
/** the id of the feed /v1 serves (the feed store's: cluster mode's may change; "" while unknown) */
void qbc_api__feed_id(qbc_api_t *api, char out[QBC_FEED_ID_LEN + 1]);
/** ends every long-poll (empty answer) and SSE stream (final chunk): the service is stopping. */
void qbc_api__feed_shutdown(qbc_api_t *api);
void qbc_api__feed_dispose(qbc_api_t *api);
/** DELETE /admin/realms/{realm}: revoke at Intuit, erase locally, answer when durable. */
int qbc_api__disconnect_realm(qbc_api_t *api, h2o_req_t *req, const char *realm);
void qbc_api__connect_init(qbc_api_t *api);
/** cancels the OAuth calls still out and answers their requests 503 (the server is stopping) */
void qbc_api__connect_shutdown(qbc_api_t *api);
void qbc_api__connect_dispose(qbc_api_t *api);
int qbc_api__on_healthz(h2o_handler_t *self, h2o_req_t *req);
int qbc_api__on_metrics(h2o_handler_t *self, h2o_req_t *req);
/** GET /openapi.json: the embedded document (openapi.c). */
int qbc_api__on_openapi(h2o_handler_t *self, h2o_req_t *req);
/** docs/openapi.json byte for byte (generated at build time by docs/embed.py); NUL-terminated, not counted in _len. */
extern const unsigned char qbc_openapi_json[];
extern const size_t qbc_openapi_json_len;
extern qbc_api_t *qbc_api__left_for_exit;

/* the endpoint families that admin.c and feed.c route to (admin's take the path's id segment) */
int qbc_api__get_dead_letters(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t unused);
int qbc_api__retry_dead_letter(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id);
int qbc_api__post_cdc(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t realm);
int qbc_api__post_backfill(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t realm);
int qbc_api__get_job(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id);
int qbc_api__get_jobs(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t unused);
int qbc_api__cancel_job(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id);
/* admin_subscriptions.c: push delivery subscriptions (issue 14) */
int qbc_api__create_subscription(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t unused);
int qbc_api__list_subscriptions(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t unused);
int qbc_api__get_subscription(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id);
int qbc_api__patch_subscription(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id);
int qbc_api__delete_subscription(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id);
int qbc_api__pause_subscription(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id);
int qbc_api__resume_subscription(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id);
int qbc_api__redeliver_subscription(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t id);
int qbc_api__get_entity(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t realm, h2o_iovec_t entity, h2o_iovec_t id);
int qbc_api__list_entities(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t realm, h2o_iovec_t entity);

/** the handler subclass that carries our context (h2o's "super first" inheritance). */
typedef struct st_api_handler_t {
    h2o_handler_t super;
    qbc_api_t *api;
} api_handler_t;

#endif
