/*
 * delivery.h — push delivery of the feed to downstream apps: signed webhooks following the
 * Standard Webhooks specification (standardwebhooks.com), issue 14.
 *
 * A subscription is a receiver URL, optional filters (realms, entities, ops), a batch size,
 * a signing secret ("whsec_" + base64 of the key) and a durable cursor in the store (the
 * last feed sequence its receiver acknowledged with a 2xx). One thread (worker.c) follows
 * the feed for every subscription with one curl multi handle: at most one delivery in
 * flight per subscription (to keep feed order), at most max_inflight overall, connections
 * reused. A delivery is a POST of
 *
 *   {"type":"qbcdc.changes","timestamp":"<ISO-8601>","data":{"changes":[...],"feed_id":"..."}}
 *
 * whose changes are the feed's stored bytes spliced as they are (never re-serialized), with
 * the headers webhook-id (the same for every retry of one delivery), webhook-timestamp and
 * webhook-signature ("v1,<base64 HMAC-SHA256 of id.timestamp.body>", one per valid secret).
 * Failures are retried on a schedule (schedule.c); when it is exhausted, or at once when the
 * receiver answers 410, the subscription is disabled with the reason and its cursor kept:
 * nothing is ever skipped. A slow or dead receiver costs only its own subscription.
 *
 * Files: sign.c (secrets, signatures), schedule.c (retry schedule, jitter, Retry-After),
 * policy.c (which receiver addresses are allowed), settings.c (a subscription's settings
 * as the admin API takes and the store keeps them), worker.c (the thread).
 *
 * Errors are the project's codes (common.h): 0 on success, QBC_E* on failure.
 */
#ifndef QBC_DELIVERY_H
#define QBC_DELIVERY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <jansson.h>
#include "common.h"
#include "store.h"

/* ============================== signing (sign.c) ============================== */

#define QBC_WHSEC_PREFIX "whsec_"
#define QBC_WHSEC_KEY_MIN 24 /**< bytes a secret's key must have, at least */
#define QBC_WHSEC_KEY_MAX 64 /**< and at most */
/** a generated secret: "whsec_" + base64 of 32 random bytes, with the NUL */
#define QBC_WHSEC_BUFSZ (sizeof(QBC_WHSEC_PREFIX) - 1 + QBC_BASE64_ENCODED_SIZE(QBC_WHSEC_KEY_MAX))
/** one signature, "v1," + base64 of 32 bytes, with the NUL */
#define QBC_WEBHOOK_SIG_BUFSZ (3 + QBC_BASE64_ENCODED_SIZE(32))

/**
 * makes a new secret: "whsec_" + base64 of 32 bytes from OpenSSL's RAND_bytes.
 * @param[out] out at least QBC_WHSEC_BUFSZ bytes
 * @return 0, or QBC_ECRYPTO (no randomness)
 */
int qbc_delivery_secret_new(char *out);

/**
 * decodes a secret into its key: the base64 after "whsec_" (the prefix is optional, as
 * the specification's libraries accept it both ways).
 * @param[out] key at least QBC_WHSEC_KEY_MAX bytes
 * @return 0, or QBC_EMALFORMED (not base64, or a key shorter than QBC_WHSEC_KEY_MIN or
 *         longer than QBC_WHSEC_KEY_MAX bytes)
 */
int qbc_delivery_secret_key(const char *secret, unsigned char *key, size_t *key_len);

/**
 * one Standard Webhooks signature: "v1," + base64(HMAC-SHA256(key, msg_id "." timestamp
 * "." body)). Pure; any thread.
 * @param[out] out QBC_WEBHOOK_SIG_BUFSZ bytes
 */
void qbc_delivery_sign(const unsigned char *key, size_t key_len, const char *msg_id, int64_t timestamp,
                       const void *body, size_t body_len, char *out);

/* ============================ retry schedule (schedule.c) ============================ */

#define QBC_DELIVERY_SCHEDULE_MAX 32 /**< attempts a schedule may hold */
/** the default: Svix's, about 28 hours from the first attempt to the last */
#define QBC_DELIVERY_SCHEDULE_DEFAULT "0,5,300,1800,7200,18000,36000,36000"

/**
 * a retry schedule: delay_ms[0] is waited before the first attempt (0: at once), delay_ms[i]
 * after the i-th failed one; n attempts in all, then the subscription is disabled.
 */
typedef struct st_qbc_delivery_schedule_t {
    unsigned n;
    int64_t delay_ms[QBC_DELIVERY_SCHEDULE_MAX];
} qbc_delivery_schedule_t;

/**
 * parses "0,5,300" (seconds, decimals allowed: "0,0.2,1"; spaces around items ignored).
 * @return 0, or QBC_EINVAL (empty, more than QBC_DELIVERY_SCHEDULE_MAX items, an item that
 *         is not a non-negative number of at most 7 days)
 */
int qbc_delivery_schedule_parse(const char *text, qbc_delivery_schedule_t *out);

/**
 * the delay before the next attempt, after `failures` failed attempts, with +-10% jitter
 * (uniform; from rnd, a number in [0, 1)), and at least retry_after_ms (a receiver's
 * Retry-After, 0: none; capped at one day).
 * @return the delay in ms, or -1 when the schedule is exhausted (failures >= n)
 */
int64_t qbc_delivery_schedule_next(const qbc_delivery_schedule_t *s, unsigned failures, int64_t retry_after_ms,
                                   double rnd);

/**
 * a Retry-After header's value in ms: delay-seconds only (1*DIGIT, surrounding spaces
 * allowed, at most 9 digits); an HTTP-date or anything else is ignored (0), so that the
 * schedule applies. len bytes, not NUL-terminated.
 */
int64_t qbc_delivery_retry_after(const char *value, size_t len);

/* ============================== URL policy (policy.c) ============================== */

/**
 * 1 if addr is loopback, unspecified, link-local, private (RFC 1918, unique local IPv6,
 * CGNAT 100.64/10), multicast or broadcast (IPv4-mapped IPv6 addresses as their IPv4), else 0.
 */
int qbc_delivery_addr_private(const struct sockaddr *addr);

/**
 * checks a receiver URL: http or https, a host, no user info; every address the host
 * resolves to must be public unless allow_private. Resolves the host (getaddrinfo: blocks
 * for as long as the resolver takes).
 * @param[out] why a one-line reason when refused (quotes nothing of the URL but its host)
 * @return 0, QBC_EINVAL (malformed or not allowed: why says which), or QBC_ENOTFOUND (the
 *         host does not resolve)
 */
int qbc_delivery_url_check(const char *url, int allow_private, char *why, size_t whysz);

/* ============================ settings (settings.c) ============================ */

#define QBC_DELIVERY_BATCH_DEFAULT 100
#define QBC_DELIVERY_BATCH_MAX 1000

/**
 * the settings of a subscription after a create (stored NULL) or an update (stored: the
 * settings held, as qbc_delivery_settings_merge made them), as the store keeps them:
 * {"url","realms","entities","ops","batch_max","paused","created_at"} (filters null: all).
 * patch is the request's object; its fields url, realms, entities, ops, batch_max and paused
 * are taken (others are the caller's: secret, start_after, ...). Entity names are made
 * canonical. Checks the URL with qbc_delivery_url_check.
 * @param[out] out a new reference (the caller's)
 * @param[out] why a one-line reason on failure, for a 400
 * @return 0, or QBC_EINVAL
 */
int qbc_delivery_settings_merge(const json_t *stored, const json_t *patch, int allow_private, json_t **out, char *why,
                                size_t whysz);

/**
 * the secrets text the store seals: {"current":"whsec_...","previous":"whsec_..."|null,
 * "previous_until":<ns>}. With old (the text held, or NULL) a rotation: the old current
 * secret stays valid until now_ns + grace_s (both signatures are sent until then).
 * @return malloc'd text (the caller wipes and frees it)
 */
char *qbc_delivery_secrets_text(const char *old, const char *current, int64_t now_ns, int64_t grace_s);

/* ============================== the worker (worker.c) ============================== */

typedef struct st_qbc_delivery_t qbc_delivery_t;

typedef struct st_qbc_delivery_config_t {
    int allow_private;       /**< 1: receivers on loopback/private addresses are allowed */
    const char *schedule;    /**< NULL: QBC_DELIVERY_SCHEDULE_DEFAULT (qbc_delivery_schedule_parse) */
    unsigned timeout_ms;     /**< one attempt, connection included (0: 15000) */
    unsigned max_inflight;   /**< deliveries in flight over all subscriptions (0: 64) */
    unsigned secret_grace_s; /**< how long a rotated-out secret still signs (0: 86400) */
    /**
     * the feed delivered: cluster mode's copy of the cluster feed (cluster.h), the same the API's
     * /v1/changes reads (api.h feed_store), so a subscription delivers every change of the
     * cluster from the node it was made on; its cursor is a stream sequence. It must stay open
     * until qbc_delivery_stop() returns. NULL: the store's own feed. Subscriptions and their
     * cursors are kept in the store either way.
     */
    qbc_store_t *feed_store;
} qbc_delivery_config_t;

/**
 * reads the subscriptions from the store and starts the delivery thread. The store must
 * stay open until qbc_delivery_stop() returns.
 * @return 0, QBC_EINVAL (a bad schedule), QBC_ESTORE (the subscriptions cannot be read), or
 *         -errno (no thread)
 */
int qbc_delivery_start(const qbc_delivery_config_t *cfg, qbc_store_t *store, qbc_delivery_t **out);

/**
 * stops the thread: deliveries in flight are abandoned (they are delivered again after a
 * restart: at least once), and waits for its store jobs to come back. NULL: nothing.
 */
void qbc_delivery_stop(qbc_delivery_t *d);

/**
 * makes a redelivery a range: once subscription id (whose cursor an operator just moved back,
 * giving the cursor epoch `epoch`) has delivered up to `to`, it goes on after resume_at (where
 * it stood before) instead of delivering (to, resume_at] again. Call it after the store has
 * committed the move and before qbc_delivery_reload(), so that the worker never sees the new
 * epoch without its range. Kept in memory only: after a restart the whole way up to
 * resume_at is delivered again (at least once still holds). Any thread.
 * @return 0, or QBC_ENOTFOUND (no such subscription, or its cursor moved past epoch meanwhile)
 */
int qbc_delivery_redeliver_range(qbc_delivery_t *d, uint64_t id, uint64_t epoch, uint64_t to, uint64_t resume_at);

/** the settings given at start: what the admin API checks URLs and rotates secrets with */
int qbc_delivery_allow_private(const qbc_delivery_t *d);
unsigned qbc_delivery_secret_grace(const qbc_delivery_t *d);

/**
 * reads the subscriptions from the store again (after an admin change has committed), so
 * that the next delivery and qbc_delivery_describe() use them. Any thread.
 * @return 0 or QBC_ESTORE
 */
int qbc_delivery_reload(qbc_delivery_t *d);

/**
 * a subscription's settings and live state as the admin API shows it: id, url, filters,
 * batch_max, state (active|paused|disabled), disabled_reason, cursor, head, lag (sequences
 * and seconds), next_retry_at, attempts (the last few: time, status, latency, error),
 * delivered counters. Never a secret. Any thread.
 * @return a new reference, or NULL when there is no such subscription
 */
json_t *qbc_delivery_describe(qbc_delivery_t *d, uint64_t id);

/** every subscription, described, in id order (a new reference) */
json_t *qbc_delivery_describe_all(qbc_delivery_t *d);

/** appends the Prometheus text of the delivery metrics to out. Any thread. */
void qbc_delivery_metrics(qbc_delivery_t *d, qbc_buf_t *out);

#endif
