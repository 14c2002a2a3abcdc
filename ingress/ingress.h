/*
 * ingress.h — Intuit's webhooks coming in.
 *
 * Three layers, each usable on its own (and unit-tested on its own):
 *   signature  intuit-signature = base64(HMAC-SHA256(verifier token, raw body))
 *   payload    both webhook formats (classic eventNotifications, CloudEvents array)
 *              parsed into qbc_event_t (store.h), and the entity and operation names
 *   webhook    the POST /webhooks/intuit handler: verifies, hands the body to the
 *              store's journal, answers 200 once it is durable (qbc_ingress_t)
 *
 * The HTTP server that routes requests to the handler is api/ (api.h); the handler only
 * needs an h2o context whose loop it runs on.
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

/* =============================== webhook ============================ */

struct st_h2o_context_t;
struct st_h2o_req_t;

typedef struct st_qbc_ingress_config_t {
    const char *const *verifier_tokens; /**< copied; may be empty: webhooks then answer 503 */
    size_t n_verifier_tokens;
    size_t max_body; /**< bytes; bigger bodies get 413 (default 1 MiB) */
    /**
     * cluster mode (NULL: none). Once the store holds a webhook's body, its events go on
     * through forward instead of into the local store: the webhook is acked when done(arg, 0)
     * is called, answered 503 when done(arg, r < 0) is. forward is called on a store thread
     * and must not block; body and events stay valid until done is called, which may be on
     * any thread, exactly once. It returns 0, or < 0 without calling done (503 at once).
     */
    int (*forward)(void *ctx, const void *body, size_t len, const qbc_event_t *events, size_t n_events,
                   void (*done)(void *arg, int result), void *arg);
    void *forward_ctx;
} qbc_ingress_config_t;

/** the webhook endpoint: its verifier, the webhooks of the current loop turn, its counters. */
typedef struct st_qbc_ingress_t qbc_ingress_t;

/**
 * creates the webhook endpoint for the event loop of ctx. Every function below runs on
 * that loop's thread. Store commits come back through ctx's multithread queue.
 * @return 0 (it fails only for memory, which aborts)
 */
int qbc_ingress_create(const qbc_ingress_config_t *cfg, qbc_store_t *store, struct st_h2o_context_t *ctx,
                       qbc_ingress_t **out);

/**
 * handles one request routed to /webhooks/intuit: answers refusals at once (401, 404, 405,
 * 413, 503), or takes the body and answers once the store holds it durably (or could not).
 * @return 0 (the request is answered now or later)
 */
int qbc_ingress_on_req(qbc_ingress_t *ing, struct st_h2o_req_t *req);

/**
 * hands the webhooks taken during this loop turn to the store in one go; call after every
 * turn of the loop (h2o_evloop_run), and while draining.
 */
void qbc_ingress_flush(qbc_ingress_t *ing);

/** webhooks answered 200 since start (stored, duplicate or quarantined). */
uint64_t qbc_ingress_acked(const qbc_ingress_t *ing);

/** webhooks taken and not answered yet (held, or waiting for their commit). */
uint64_t qbc_ingress_inflight(const qbc_ingress_t *ing);

/**
 * appends the webhook metrics (qbcdc_webhooks_total, qbcdc_webhook_events_total,
 * qbcdc_webhook_ack_seconds, ...) in Prometheus text format to out.
 */
void qbc_ingress_metrics(const qbc_ingress_t *ing, qbc_buf_t *out);

/**
 * frees the endpoint. Call with nothing in flight (qbc_ingress_inflight() == 0) and
 * before ctx is disposed: it unregisters its receiver from ctx's queue. NULL is a no-op.
 */
void qbc_ingress_destroy(qbc_ingress_t *ing);

#endif
