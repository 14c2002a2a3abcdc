/*
 * ingress.h — the HTTP face of qbcdc: Intuit's webhooks in, health and metrics out.
 *
 * Three layers, each usable on its own (and unit-tested on its own):
 *   signature  intuit-signature = base64(HMAC-SHA256(verifier token, raw body))
 *   payload    both webhook formats (classic eventNotifications, CloudEvents array)
 *              parsed into qbc_event_t (store.h)
 *   server     the h2o evloop HTTP/1.1 server that ties them to the store writer
 */
#ifndef QBC_INGRESS_H
#define QBC_INGRESS_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "store.h"

/* ============================= signature ============================ */

/** the base64 text of a 32-byte HMAC-SHA256, with its NUL. */
#define QBC_SIGNATURE_B64_SIZE 45

/**
 * computes intuit-signature for a body: base64(HMAC-SHA256(key = token bytes,
 * message = body bytes)). Writes a NUL-terminated string into out.
 */
void qbc_signature_compute(const char *token, size_t token_len, const void *body, size_t body_len,
                           char out[QBC_SIGNATURE_B64_SIZE]);

/**
 * checks an intuit-signature header value against every verifier token (rotation:
 * any one may match). Comparison is constant-time per token. Surrounding spaces/tabs
 * in the header are ignored; anything else that is not exactly one padded base64
 * encoding of 32 bytes is rejected.
 * @param header header value (not necessarily NUL-terminated), NULL if absent
 * @param tokens array of NUL-terminated tokens
 * @return 0 if some token matches, QBC_EAUTH otherwise (also for NULL header or no tokens)
 */
int qbc_signature_verify(const char *header, size_t header_len, const void *body, size_t body_len,
                         const char *const *tokens, size_t n_tokens);

/**
 * the same check with each token's keyed SHA-256 states prepared once: OpenSSL 3's
 * one-shot HMAC() looks the algorithm up and schedules the key on every call, which
 * costs more than hashing a webhook. Build one for the service's tokens and reuse it
 * from one thread at a time (it keeps a scratch context).
 */
typedef struct st_qbc_verifier_t qbc_verifier_t;

/** @return NULL if OpenSSL cannot provide HMAC-SHA256 (empty tokens are skipped, as above) */
qbc_verifier_t *qbc_verifier_new(const char *const *tokens, size_t n_tokens);
/** @return 0 if some token matches, QBC_EAUTH otherwise; exactly qbc_signature_verify's rules */
int qbc_verifier_check(const qbc_verifier_t *v, const char *header, size_t header_len, const void *body,
                       size_t body_len);
void qbc_verifier_free(qbc_verifier_t *v);

/* ============================== payload ============================= */

/** the result of parsing one webhook body. */
typedef struct st_qbc_payload_t {
    qbc_format_t format;
    qbc_event_t *events; /**< malloc'd array, n_events long (NULL when 0) */
    size_t n_events;
    size_t n_rejected; /**< events present but unusable (missing realm/id, unknown op, ...) */
    char error[160];   /**< first problem found, "" when none */
} qbc_payload_t;

/**
 * parses a webhook body in either format. The format is detected from the JSON
 * shape: an object with "eventNotifications" is classic, an array of objects with
 * "specversion" is CloudEvents (leading/trailing whitespace allowed).
 *
 * Events that are usable are returned even when others in the same body are not.
 * @return 0 when every event in the body was usable; QBC_EMALFORMED when the body
 *         is not JSON, not either shape, or any event was rejected (out->error says
 *         why; out->events still holds the usable ones). out must be cleared with
 *         qbc_payload_clear() in every case.
 */
int qbc_payload_parse(const char *body, size_t len, qbc_payload_t *out);

void qbc_payload_clear(qbc_payload_t *p);

/**
 * maps an entity name in any case ("invoice", "INVOICE", "journalentry") to QBO's
 * canonical spelling ("Invoice", "JournalEntry"). Unknown names keep their letters
 * with the first upper-cased. Writes at most QBC_ENTITY_MAX bytes including NUL.
 * @return 0, or QBC_EMALFORMED (empty, too long, or not [A-Za-z0-9])
 */
int qbc_entity_canonical(const char *name, size_t len, char out[QBC_ENTITY_MAX]);

/**
 * like qbc_entity_canonical, but only for the names in QBO's entity table: what an
 * operator may ask qbcdc to read (QBCDC_CDC_ENTITIES, backfill entities). Any case is
 * accepted and canonicalized ("invoice" -> "Invoice").
 * @return 0, or QBC_ENOTFOUND (not a name qbcdc knows; out is "")
 */
int qbc_entity_known(const char *name, size_t len, char out[QBC_ENTITY_MAX]);

/** every name of QBO's entity table, comma-separated, into out (truncated to outsz) */
void qbc_entity_known_list(char *out, size_t outsz);

/**
 * checks a comma-separated list of entity names (spaces around names are ignored) with
 * qbc_entity_known and writes it canonicalized into out ("invoice, Bill" -> "Invoice,Bill").
 * @param err on failure, one line: "unknown entity 'Foo' (known: Account, ...)"
 * @return 0, QBC_ENOTFOUND (an unknown name), or QBC_EINVAL (empty list, or out too small)
 */
int qbc_entity_list_check(const char *list, char *out, size_t outsz, char *err, size_t errsz);

/**
 * maps an operation word from either format ("Create", "created", "void", "voided",
 * "Merge", "merged", "emailed", ...; case-insensitive) to qbc_op_t.
 * @return the operation, or QBC_OP_UNKNOWN
 */
qbc_op_t qbc_op_parse(const char *word, size_t len);

/* =============================== server ============================= */

typedef struct st_qbc_ingress_config_t {
    const char *listen;                 /**< "host:port" (IPv4, [IPv6]:port, or :port) */
    const char *const *verifier_tokens; /**< may be empty: webhooks then answer 503 */
    size_t n_verifier_tokens;
    size_t max_body;         /**< bytes; bigger bodies get 413 (default 1 MiB) */
    const char *admin_token; /**< bearer for /admin/...; NULL: /admin/... answers 403 */
    const char *feed_token;  /**< bearer for /v1/...; NULL: /v1/... answers 403 */
    /* the OAuth authorization-code flow (GET /connect, GET /oauth/callback) */
    const char *client_id, *client_secret;
    const char *authorize_url, *token_url, *redirect_uri;
    const char *revoke_url; /**< DELETE /admin/realms/{realm} revokes here */
    /**
     * 1: a realm registered for the first time (PUT /admin/realms/{realm}/tokens of a realm the
     * store did not hold, or the OAuth callback) gets a snapshot job in the same transaction
     */
    int snapshot_on_connect;
} qbc_ingress_config_t;

typedef struct st_qbc_ingress_t qbc_ingress_t;

/** figures from other components, called on the loop thread while answering. */
typedef struct st_qbc_ingress_hooks_t {
    /** adds live per-realm figures to GET /admin/realms entries (a jansson array of objects) */
    void (*realm_stats)(void *ctx, void *json_array);
    /** more Prometheus text for /metrics (malloc'd, or NULL) */
    char *(*metrics)(void *ctx);
    void *ctx;
} qbc_ingress_hooks_t;

/** installs hooks (copied); call before qbc_ingress_run. */
void qbc_ingress_set_hooks(qbc_ingress_t *ing, const qbc_ingress_hooks_t *hooks);

/**
 * binds the listener and prepares the h2o context. Does not run the loop.
 * @return 0, -errno (bind/listen failures), or QBC_EINVAL (bad listen address)
 */
int qbc_ingress_create(const qbc_ingress_config_t *cfg, qbc_store_t *store, qbc_ingress_t **out);

/**
 * runs the event loop on the calling thread until qbc_ingress_stop() is called
 * (or SIGTERM/SIGINT when install_signals was set via qbc_ingress_run_until_signal),
 * then stops accepting, waits for in-flight acks (bounded by drain_ms), and returns 0.
 */
int qbc_ingress_run(qbc_ingress_t *ing, int drain_ms);

/** asks a running loop to stop; async-signal-safe. */
void qbc_ingress_stop(qbc_ingress_t *ing);

void qbc_ingress_destroy(qbc_ingress_t *ing);

#endif
