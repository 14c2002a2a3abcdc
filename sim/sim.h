/*
 * sim.h — qbosim internals shared between its files: the simulated companies
 * (model.c), the wire shapes (json_shapes.c), the query language (query.c),
 * CDC (cdc.c), OAuth (oauth.c), limits (limits.c), the webhook sender thread
 * (webhook_sender.c) and the HTTP routes (server.c).
 *
 * Threading: everything here except the webhook sender runs on the one h2o
 * event-loop thread. The sender owns its own thread and libcurl multi handle;
 * it only ever sees finished payloads (bytes), never the model.
 *
 * Every shape emitted on the wire follows a sourced sample in
 * /work/shared/qbo-facts.md; the section is named next to the code that emits it.
 */
#ifndef QBOSIM_SIM_H
#define QBOSIM_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "common.h"

/* ============================== random ============================== */

/**
 * qbosim's exact-value cases recur every SIM_EXACT_CYCLE ids of a type: the entity with
 * Id i carries case (i - 1) % SIM_EXACT_CYCLE (sim/README.md, "Exact values").
 */
#define SIM_EXACT_CYCLE 16

/** a splitmix64 stream: deterministic for a given seed. */
typedef struct st_sim_rng_t {
    uint64_t s;
} sim_rng_t;

void sim_rng_seed(sim_rng_t *r, uint64_t seed);
uint64_t sim_rng_next(sim_rng_t *r);
/** uniform in [0, n); n > 0. */
uint64_t sim_rng_below(sim_rng_t *r, uint64_t n);
/** uniform in [0, 1). */
double sim_rng_unit(sim_rng_t *r);

/* =============================== time =============================== */

/** UTC offset of America/Los_Angeles at a UTC instant, in seconds (-28800 or -25200). */
int sim_pacific_offset(int64_t ns);
/**
 * formats ns as Pacific local time with offset: "2014-09-19T13:16:17-07:00" (with_ms 0)
 * or "2015-07-24T10:48:27.082-07:00" (with_ms 1); colon_offset 0 gives "-0700" (classic
 * webhook lastUpdated, qbo-facts §1.1). buf holds at least 40 bytes. Returns buf.
 */
char *sim_time_pacific(int64_t ns, int with_ms, int colon_offset, char *buf);
/** "2025-10-07T19:59:07.034359333Z" (CloudEvents time, qbo-facts §1.2). buf >= 40 bytes. */
char *sim_time_utc_ns(int64_t ns, char *buf);
/**
 * parses a QBO date-time as a client sends it in a query or changedSince: with an offset
 * (anything qbc_time_parse accepts), without one (read as Pacific, as QBO does, §11) or a
 * bare date "YYYY-MM-DD" (Pacific midnight). Returns 0 or QBC_EMALFORMED.
 */
int sim_time_parse_qbo(const char *s, size_t len, int64_t *out_ns);

/** URL/form-decodes s into out (NUL-terminated, truncated to outsz); returns the length. */
size_t sim_url_decode(const char *s, size_t len, char *out, size_t outsz);
/**
 * finds key in a form-encoded string (a=1&b=2) and decodes its value into out.
 * Returns the value's length, or -1 if the key is absent.
 */
int sim_form_get(const char *s, size_t len, const char *key, char *out, size_t outsz);

/* ============================== model =============================== */

enum sim_etype {
    SIM_CUSTOMER,
    SIM_VENDOR,
    SIM_ITEM,
    SIM_ACCOUNT,
    SIM_INVOICE,
    SIM_PAYMENT,
    SIM_BILL,
    SIM_JOURNALENTRY,
    SIM_NTYPES
};

/** the QBO entity name ("Customer"), its URL segment ("customer"). */
extern const char *const sim_etype_names[SIM_NTYPES];
/** returns the type whose name equals (case-sensitively if exact, else not) s, or -1. */
int sim_etype_lookup(const char *s, size_t len, int exact);
/** name-list entities carry Active and can be merged; transactions carry TotalAmt and can be deleted. */
int sim_etype_is_namelist(int t);
/** transactions that QBO lets you void (qbo-facts §1.6: Invoice, Payment). */
int sim_etype_is_voidable(int t);

enum sim_op { SIM_OP_CREATE, SIM_OP_UPDATE, SIM_OP_DELETE, SIM_OP_MERGE, SIM_OP_VOID };
extern const char *const sim_op_names[5]; /* "Create", ... as in classic webhooks */

typedef struct st_sim_entity_t {
    uint32_t id;
    uint32_t sync_token;
    int64_t create_ns;
    int64_t update_ns; /* internal precision; rendered to the second */
    unsigned deleted : 1;
    unsigned active : 1;
    unsigned voided : 1;
    int64_t amount_cents;
    uint32_t merged_into; /* id of the survivor when deleted by a merge, else 0 */
} sim_entity_t;

typedef struct st_sim_table_t {
    sim_entity_t *e; /* index = id - 1 */
    size_t n, cap;
} sim_table_t;

typedef struct st_sim_realm_t {
    char id[24];
    sim_table_t t[SIM_NTYPES];
    size_t live_count;
} sim_realm_t;

/** one change made by the model, as a webhook reports it. */
typedef struct st_sim_change_t {
    int realm;
    int etype;
    int op;
    uint32_t id;
    uint32_t deleted_id; /* merge only */
    int64_t at_ns;
} sim_change_t;

typedef struct st_sim_model_t {
    sim_realm_t *realms;
    size_t nrealms;
    sim_rng_t rng; /* drives mutations */
    int64_t last_change_ns;
} sim_model_t;

/**
 * builds nrealms companies with per_type entities of every type, all derived from seed;
 * their CreateTime/LastUpdatedTime spread over the seed_days before now_ns.
 */
void sim_model_init(sim_model_t *m, size_t nrealms, size_t per_type, uint64_t seed, int64_t now_ns, int seed_days);
void sim_model_dispose(sim_model_t *m);
/**
 * writes the model (companies, entities, the mutation RNG) to path, atomically (path.tmp,
 * fsync, rename). @return 0, -errno or QBC_ESTORE (state.c)
 */
int sim_model_save(const sim_model_t *m, const char *path);
/**
 * replaces m (initialised with the same number of companies) by the model saved at path.
 * @return 0; QBC_ENOTFOUND (no file: m is unchanged); QBC_EMALFORMED (another build's or
 * another size's file: m is unchanged); -errno
 */
int sim_model_load(sim_model_t *m, const char *path);
/** index of the realm with that id, or -1. */
int sim_model_find_realm(const sim_model_t *m, const char *id, size_t len);
/** the entity (possibly deleted), or NULL if the id was never used. */
sim_entity_t *sim_model_get(sim_model_t *m, int realm, int etype, uint32_t id);
/**
 * makes one random change in realm (or a random realm if realm < 0) at now_ns, bumping
 * SyncToken and LastUpdatedTime as QBO does, and describes it in *out.
 */
void sim_model_mutate(sim_model_t *m, int realm, int64_t now_ns, sim_change_t *out);
/**
 * a CDC `time` for an answer computed at now_ns: later than every change made so far,
 * a whole millisecond (it is rendered with ms), and no later change will be stamped
 * before it. So a client can pass it back as changedSince and miss nothing (§2).
 */
int64_t sim_model_watermark(sim_model_t *m, int64_t now_ns);
/** GET /sim/truth shape. */
json_t *sim_model_truth(const sim_model_t *m);

/* ============================ JSON shapes ============================ */

/**
 * appends the entity's JSON text to out: the body as QBO returns it (qbo-facts §9), or the
 * deleted stub (§2) if deleted. This is the only place an entity is rendered: reads,
 * queries, CDC, batch and /sim/entity all splice these bytes, so one entity state always
 * gives the same bytes. Amounts are written from integer cents and the exact-value cases
 * in the spelling sim/README.md lists, never through a double.
 */
void sim_entity_write(int etype, const sim_entity_t *e, qbc_buf_t *out);
/** appends cents as a JSON number "<units>.<2 digits>": 293292 -> 2932.92, -5 -> -0.05. */
void sim_json_money(int64_t cents, qbc_buf_t *out);
/**
 * appends s as a JSON string. s is qbosim's own text (ids, times, names) and must need no
 * escaping: a quote, backslash, control or non-ASCII byte is a bug (qbc_fatal). Text that
 * needs escaping is built with jansson and spliced with sim_json_splice.
 */
void sim_json_plain_string(const char *s, qbc_buf_t *out);
/** appends j (any JSON type) compactly with its key order kept. */
void sim_json_splice(const json_t *j, qbc_buf_t *out);
/** {"Fault":{"Error":[{Message,Detail,code,element}],"type":type},"time":...} (§6). */
json_t *sim_fault_json(const char *type, const char *code, const char *message, const char *detail, int64_t now_ns);
/** the gateway's lowercase 401 shape (§6). */
json_t *sim_auth_fault_json(const char *detail, int64_t now_ns);
/** the throttle fault as XML (§5); caller frees. */
char *sim_throttle_xml(int64_t now_ns);
/** serialises compactly with key order kept; caller frees. */
char *sim_json_dump(const json_t *j);

/* =============================== query ============================== */

enum sim_qfield { SIM_F_ID, SIM_F_SYNCTOKEN, SIM_F_CREATED, SIM_F_UPDATED, SIM_F_ACTIVE, SIM_F_TOTALAMT };
enum sim_qop { SIM_Q_EQ, SIM_Q_LT, SIM_Q_GT, SIM_Q_LE, SIM_Q_GE, SIM_Q_IN, SIM_Q_LIKE };

#define SIM_Q_MAX_CONDS 16
#define SIM_Q_MAX_VALUES 1000

typedef struct st_sim_qval_t {
    int is_bool;
    int b;
    int64_t num; /* ids, SyncTokens, cents, or ns for times */
    char *str;   /* the literal (for LIKE) */
} sim_qval_t;

typedef struct st_sim_qcond_t {
    int field, op;
    sim_qval_t *vals;
    size_t nvals;
} sim_qcond_t;

typedef struct st_sim_query_t {
    int count; /* SELECT COUNT(*) */
    int etype;
    sim_qcond_t conds[SIM_Q_MAX_CONDS];
    size_t nconds;
    int order_field, order_desc; /* order_field -1 = by Id */
    long start;                  /* 1-based */
    long max;
} sim_query_t;

/**
 * parses a QBO query (qbo-facts §3). On failure returns QBC_EMALFORMED and writes the
 * Fault detail ("QueryParserError: ..." or "QueryValidationError: ...") into err.
 */
int sim_query_parse(const char *s, size_t len, sim_query_t *q, char *err, size_t errsz);
void sim_query_dispose(sim_query_t *q);
/** runs q against a realm and appends the QueryResponse object (§3) to out. */
void sim_query_run(sim_model_t *m, int realm, const sim_query_t *q, qbc_buf_t *out);

/* ================================ CDC =============================== */

#define SIM_CDC_MAX_OBJECTS 1000
#define SIM_CDC_MAX_DAYS 30

/**
 * appends to out the CDCResponse array for entities (a list of type indexes) changed at or
 * after since_ns, capped at max_objects in total (§2). Fills *out_total (if not NULL) with
 * the number of objects included.
 */
void sim_cdc_run(sim_model_t *m, int realm, const int *etypes, size_t n, int64_t since_ns, size_t max_objects,
                 size_t *out_total, qbc_buf_t *out);

/* =============================== OAuth ============================== */

typedef struct st_sim_oauth_t sim_oauth_t;

typedef struct st_sim_oauth_conf_t {
    const char *client_id, *client_secret;
    int64_t access_ttl_s;
    int64_t refresh_ttl_s;   /* x_refresh_token_expires_in */
    int64_t refresh_grace_s; /* how long a rotated-away refresh token keeps working */
} sim_oauth_conf_t;

sim_oauth_t *sim_oauth_create(const sim_oauth_conf_t *conf, uint64_t seed);
void sim_oauth_destroy(sim_oauth_t *o);
/** checks an Authorization: Basic header against the client credentials. */
int sim_oauth_check_client(sim_oauth_t *o, const char *hdr, size_t len);
/** issues a fresh refresh token for realm (a new connection); returns it (owned by o). */
const char *sim_oauth_connect(sim_oauth_t *o, const char *realm, int64_t now_ns);
/** the newest valid refresh token of realm, connecting anew if none. */
const char *sim_oauth_current_refresh(sim_oauth_t *o, const char *realm, int64_t now_ns);
/** an authorization code for realm (single use, 10 minutes). Owned by o. */
const char *sim_oauth_new_code(sim_oauth_t *o, const char *realm, const char *redirect_uri, int64_t now_ns);
/**
 * handles one token request body (form-encoded). Returns the HTTP status and sets *out
 * to the JSON body (§7): token response, or {"error":"invalid_grant"|...}.
 */
int sim_oauth_token(sim_oauth_t *o, const char *body, size_t len, int64_t now_ns, json_t **out);
/** revokes the connection that token belongs to. Returns 0 or QBC_ENOTFOUND. */
int sim_oauth_revoke_token(sim_oauth_t *o, const char *token, int64_t now_ns);
/** revokes every token of realm. */
void sim_oauth_revoke_realm(sim_oauth_t *o, const char *realm);
/** makes every access token expired now. */
void sim_oauth_expire_access(sim_oauth_t *o);
/**
 * checks "Authorization: Bearer <token>" for realm. Returns 0, or QBC_EAUTH with a
 * detail string for the 401 fault.
 */
int sim_oauth_check_bearer(sim_oauth_t *o, const char *hdr, size_t len, const char *realm, int64_t now_ns,
                           const char **detail);

/* =============================== limits ============================= */

typedef struct st_sim_ratelimit_t {
    int64_t *ring; /* admission times (ns) of the last `limit` admitted requests */
    size_t limit, head, count;
    int64_t window_ns;
} sim_ratelimit_t;

void sim_ratelimit_init(sim_ratelimit_t *r, size_t limit, int64_t window_ns);
void sim_ratelimit_dispose(sim_ratelimit_t *r);
/** admits (and records) cost requests at now_ns if the window has room; returns 1 if admitted. */
int sim_ratelimit_admit(sim_ratelimit_t *r, int64_t now_ns, size_t cost);
/** number of admissions within the window ending at now_ns. */
size_t sim_ratelimit_used(const sim_ratelimit_t *r, int64_t now_ns);

/* ============================== webhooks ============================ */

enum sim_wh_format { SIM_FMT_CLASSIC, SIM_FMT_CLOUDEVENTS };

typedef struct st_sim_sender_t sim_sender_t;

typedef struct st_sim_sender_conf_t {
    const char *url;
    const char *pin; /* NULL, or the receiver's key pin (curl's PINNEDPUBLICKEY) instead of name checks */
    const char *verifier_token;
    double retry_scale;  /* multiplies Intuit's retry schedule (1.0 = real) */
    int max_attempts;    /* 0 = retry forever */
    int timeout_ms;      /* Intuit waits 3 s for the 200 (§1.5) */
    int max_concurrency; /* parallel deliveries */
} sim_sender_conf_t;

/** called on the sender thread when a job's first attempt finished (delivered, failed or lost). */
typedef void (*sim_sender_first_cb)(void *ctx, uint64_t tag);

typedef struct st_sim_wh_stats_t {
    uint64_t posts;      /* HTTP attempts made, retries and duplicates included */
    uint64_t delivered;  /* webhooks answered 200 */
    uint64_t failed;     /* attempts answered non-200 or not at all */
    uint64_t retries;    /* attempts after the first */
    uint64_t lost;       /* webhooks dropped on purpose (loss) */
    uint64_t duplicated; /* extra copies sent on purpose */
    uint64_t gave_up;    /* webhooks whose retries ran out */
    uint64_t pending;    /* queued or in flight */
} sim_wh_stats_t;

sim_sender_t *sim_sender_start(const sim_sender_conf_t *conf, sim_sender_first_cb cb, void *cb_ctx);
/** stops the thread, dropping what is still queued. */
void sim_sender_stop(sim_sender_t *s);
/**
 * queues body (taken over) for delivery after delay_ms. tag is handed to the first-attempt
 * callback. content_type is copied.
 */
void sim_sender_submit(sim_sender_t *s, char *body, size_t len, const char *content_type, int64_t delay_ms,
                       uint64_t tag);
void sim_sender_count_lost(sim_sender_t *s, uint64_t n);
void sim_sender_count_dup(sim_sender_t *s, uint64_t n);
void sim_sender_stats(sim_sender_t *s, sim_wh_stats_t *out);
/** the signature header value for body under token (§1.3); out holds 45 bytes. */
void sim_sign(const char *token, const void *body, size_t len, char out[48]);
/** Intuit's retry delay before attempt n+1 after n failed attempts, in ms (§1.5). */
int64_t sim_retry_delay_ms(int failed_attempts);

/**
 * builds one webhook body for changes (all of one realm for classic, §1.1; any realms for
 * CloudEvents, §1.2). Caller frees.
 */
char *sim_webhook_body(const sim_model_t *m, const sim_change_t *c, size_t n, int format, sim_rng_t *rng,
                       const char *ce_source, const char *void_verb);

/* =============================== server ============================= */

/** every knob of qbosim; main.c fills it from flags (see --help). */
typedef struct st_sim_conf_t {
    char listen_host[64];
    int listen_port;
    size_t nrealms;
    uint64_t seed;
    size_t per_type;
    int seed_days;
    const char *webhook_url;
    const char *webhook_pin; /* https: the receiver's key pin (names not checked); NULL: usual checks */
    const char *verifier_token;
    const char *client_id, *client_secret;
    int format;
    const char *void_verb;
    int64_t access_ttl_s, refresh_ttl_s, refresh_grace_s;
    /* scheduled mutations and webhook shaping */
    double mutate_rate; /* changes per second, 0 = only on command */
    int per_hook;       /* changes per webhook */
    int batch_window_ms;
    double loss, dup, reorder;
    int delay_ms, delay_jitter_ms;
    double retry_scale;
    int max_attempts;
    int webhook_timeout_ms;
    int webhook_concurrency;
    /* limits */
    size_t rate_limit;
    int rate_window_s;
    int concurrency_limit;
    size_t batch_rate_limit;
    int batch_max_items;
    double throttle_xml;
    /* faults */
    int latency_ms;
    double error_rate, reset_rate;
    const char *state_path; /* --state: the model is loaded from and saved to this file (NULL: seeded each start) */
} sim_conf_t;

/** runs the simulator until SIGINT/SIGTERM; returns the process exit code. */
int sim_server_run(const sim_conf_t *conf);

#endif
