/*
 * api.h — qbcdc's HTTP server and the API that downstream apps and operators use.
 *
 * One h2o evloop HTTP/1.1 server on one thread serves every endpoint:
 *   /webhooks/intuit            Intuit's webhooks, handled by ingress/ (ingress.h)
 *   /v1/...                     the feed (pull, long-poll, SSE) and entity reads
 *                               (bearer QBCDC_FEED_TOKEN)
 *   /admin/...                  operators (bearer QBCDC_ADMIN_TOKEN)
 *   /connect, /oauth/callback   the OAuth connect flow
 *   /healthz, /metrics, /openapi.json
 * Store work goes to the store's threads as jobs and comes back through h2o's queue, so
 * the loop never blocks on a commit.
 */
#ifndef QBC_API_H
#define QBC_API_H

#include <stddef.h>
#include "common.h"
#include "store.h"

typedef struct st_qbc_api_config_t {
    const char *listen;                 /**< "host:port" (IPv4, [IPv6]:port, or :port) */
    const char *const *verifier_tokens; /**< Intuit's webhook verifier tokens; may be empty: webhooks then answer 503 */
    size_t n_verifier_tokens;
    size_t max_body;         /**< webhook bytes; bigger bodies get 413 (default 1 MiB) */
    const char *admin_token; /**< bearer for /admin/...; NULL: /admin/... answers 403 */
    const char *feed_token;  /**< bearer for /v1/...; NULL: /v1/... answers 403 */
    /*
     * the OAuth authorization-code flow (GET /connect, GET /oauth/callback); the calls to
     * Intuit's token and revoke endpoints are the reconciler's (qbc_api_set_reconciler)
     */
    const char *client_id, *authorize_url, *redirect_uri;
    /**
     * 1: a realm registered for the first time (PUT /admin/realms/{realm}/tokens of a realm the
     * store did not hold, or the OAuth callback) gets a snapshot job in the same transaction
     */
    int snapshot_on_connect;
    /**
     * most long-polls and SSE streams open at once (0: 1000); more get 503 with Retry-After,
     * so authenticated readers cannot use up the process's file descriptors
     */
    unsigned max_streams;
    /** seconds between the info-level summary lines that say the service is alive (0: none) */
    unsigned summary_interval_s;
    /**
     * HTTPS: a PEM certificate chain (the server's certificate first) and its PEM private
     * key; both NULL: plain HTTP. Check them first with qbc_api_tls_check().
     */
    const char *tls_cert, *tls_key;
    /** cluster mode: where webhooks' events go once the body is stored (ingress.h qbc_ingress_config_t) */
    int (*forward)(void *ctx, const void *body, size_t len, const qbc_event_t *events, size_t n_events,
                   void (*done)(void *arg, int result), void *arg);
    void *forward_ctx;
    /**
     * cluster mode: /v1/changes (pull, long-poll, SSE) reads this store, the node's copy of the
     * cluster feed (cluster.h's feed mirror), instead of the store given to qbc_api_create:
     * its records, head, pruned mark, feed id (which may change, and while it is "" the feed
     * answers 503) and commits. It must outlive the server. NULL: the store's own feed.
     */
    qbc_store_t *feed_store;
    /**
     * with feed_store, optional: how far the feed reaches (cluster.h qbc_cluster_feed_horizon),
     * when more than the copy's head: an `after` up to it waits for the copy instead of
     * getting 409 after_beyond_head. Called on the loop thread; must not block.
     */
    uint64_t (*feed_horizon)(void *ctx);
    void *feed_horizon_ctx;
} qbc_api_config_t;

typedef struct st_qbc_api_t qbc_api_t;

/** figures from other components, called on the loop thread while answering. */
typedef struct st_qbc_api_hooks_t {
    /** adds live per-realm figures to GET /admin/realms entries (a jansson array of objects) */
    void (*realm_stats)(void *ctx, void *json_array);
    /** more Prometheus text for /metrics (malloc'd, or NULL) */
    char *(*metrics)(void *ctx);
    /** a few words for the periodic summary log line (e.g. "120 fetches"), into buf */
    void (*summary)(void *ctx, char *buf, size_t size);
    /** the JSON object of GET /admin/budget (malloc'd text), or NULL: 503 */
    char *(*budget)(void *ctx);
    /** the JSON object of GET /admin/jetstream (malloc'd text), or NULL: 404 (not publishing) */
    char *(*jetstream)(void *ctx);
    /** the JSON object of GET /admin/cluster (malloc'd text), or NULL: 404 (not in a cluster) */
    char *(*cluster)(void *ctx);
    /** 1 if queued and running backfill jobs wait for the monthly budget (why: a reason), else 0 */
    int (*backfill_waiting)(void *ctx, char *why, size_t size);
    /**
     * cluster mode (NULL: this node's store answers): appends the cluster's dead letters to
     * GET /admin/dead-letters' list (a jansson array of objects); 0, or an error code (503)
     */
    int (*dead_letters)(void *ctx, void *json_array);
    /**
     * cluster mode: POST /admin/dead-letters/{id}/retry by a cluster id (or this node's own
     * number); 0: asked, answered 202 with the jansson object it fills (json_object); QBC_ENOTFOUND:
     * 404; another error: 503
     */
    int (*dead_retry)(void *ctx, const char *id, void *json_object);
    void *ctx;
} qbc_api_hooks_t;

/**
 * the reconciler whose thread makes the API's OAuth calls (the connect flow's code exchange,
 * a disconnect's revoke). Without one, /oauth/callback answers 503 and a disconnect erases
 * the tokens without revoking them. Call before qbc_api_run; it must outlive the server's run
 * (qbc_api_run cancels the calls still out before it returns).
 */
struct st_qbc_reconciler_t;
void qbc_api_set_reconciler(qbc_api_t *api, struct st_qbc_reconciler_t *r);

struct st_qbc_delivery_t;
/** the push delivery worker that /admin/subscriptions manages (delivery.h); call before qbc_api_run. */
void qbc_api_set_delivery(qbc_api_t *api, struct st_qbc_delivery_t *d);

#define QBC_API_NODE_MAX 64 /**< bytes of a cluster node id, with its NUL (cluster.h QBC_NODE_ID_MAX) */
#define QBC_API_URL_MAX 256 /**< bytes of a node's advertised URL, with its NUL (cluster.h QBC_CLUSTER_URL_MAX) */

/** cluster mode: who owns a realm, so that its admin requests reach the owner (forward.c). */
typedef struct st_qbc_api_cluster_t {
    const char *node_id; /**< this node's (copied): sent in X-Qbcdc-Forwarded-By */
    /** how long a forwarded request may take, connecting included (0: 5000 ms); then 503 */
    unsigned forward_timeout_ms;
    /**
     * the realm's owner, from any thread, without blocking: 1 this node (answer here), 0 another
     * node (node, QBC_API_NODE_MAX bytes, and its URL, QBC_API_URL_MAX bytes, filled), < 0 none
     * known or its URL is not (node filled when known)
     */
    int (*owner)(void *ctx, const char *realm, char *node, char *url);
    /**
     * optional: the live node whose job id space holds id (the node that created the job), as
     * owner answers: 1 this node, 0 another (node and url filled), < 0 none known. A job read or
     * cancel this node's store does not know yet (the bucket not yet imported) goes there.
     */
    int (*job_node)(void *ctx, uint64_t id, char *node, char *url);
    /**
     * optional: the other live nodes with an advertised URL, from any thread, without blocking:
     * up to max of them into nodes[i] (QBC_API_NODE_MAX bytes) and urls[i] (QBC_API_URL_MAX
     * bytes). GET /admin/subscriptions asks each for its own subscriptions. @return how many
     */
    unsigned (*peers)(void *ctx, char (*nodes)[QBC_API_NODE_MAX], char (*urls)[QBC_API_URL_MAX], unsigned max);
    void *ctx;
} qbc_api_cluster_t;

/**
 * cluster mode: POST /admin/realms/{realm}/cdc, POST /admin/realms/{realm}/backfill and DELETE
 * /admin/realms/{realm} received by a node that does not own the realm are forwarded to the
 * owner and its answer relayed (and a job read or cancel for a job this node does not hold yet,
 * to the node that created it); 503 with Retry-After when no owner is known or it does not
 * answer in time, or when a forwarded request reaches a node that does not own the realm
 * either (never forwarded twice). Starts the forwarding thread (stopped by qbc_api_run's end).
 * Call before qbc_api_run, at most once.
 */
void qbc_api_set_cluster(qbc_api_t *api, const qbc_api_cluster_t *c);

/** installs hooks (copied); call before qbc_api_run. */
void qbc_api_set_hooks(qbc_api_t *api, const qbc_api_hooks_t *hooks);

/**
 * loads a certificate chain and key as qbc_api_create() would, to refuse a bad pair before
 * anything starts; warns when the key file is readable by other users.
 * @param[out] err a one-line reason naming QBCDC_TLS_CERT or QBCDC_TLS_KEY
 * @return 0 or QBC_EINVAL
 */
int qbc_api_tls_check(const char *cert, const char *key, char *err, size_t errsz);

/**
 * binds the listener and prepares the h2o context. Does not run the loop.
 * @return 0, -errno (bind/listen failures), or QBC_EINVAL (bad listen address)
 */
int qbc_api_create(const qbc_api_config_t *cfg, qbc_store_t *store, qbc_api_t **out);

/**
 * runs the event loop on the calling thread until qbc_api_stop() is called, then stops
 * accepting, ends long-polls and SSE streams, and waits (at most drain_ms) for every
 * webhook ack and operator answer still waiting for the store.
 * @return 0, or QBC_ECLOSED when answers were still in flight after drain_ms
 */
int qbc_api_run(qbc_api_t *api, int drain_ms);

/** asks a running loop to stop; async-signal-safe. */
void qbc_api_stop(qbc_api_t *api);

/**
 * frees the server after qbc_api_run returned. If connections are still open (h2o 2.2 cannot
 * close idle keep-alive connections on request) or store jobs are still out (qbc_api_run's
 * drain ran out of time), it leaves the server reachable for the process's exit instead, so
 * a late answer never reaches freed memory. Call before qbc_store_close. NULL is a no-op.
 */
void qbc_api_destroy(qbc_api_t *api);

#endif
