/*
 * config.c — one table drives defaults, environment names, flag names and --help,
 * so the four can never disagree.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common.h"
#include "cluster.h"
#include "config.h"
#include "delivery.h"
#include "ingress.h"

typedef struct {
    const char *flag; /* kebab-case, also the env name after QBCDC_ */
    size_t offset;
    const char *def;
    const char *help;
} option_t;

#define OPT(flag, field, def, help)                                                                                    \
    {                                                                                                                  \
        flag, offsetof(qbc_config_t, field), def, help                                                                 \
    }

static const option_t options[] = {
    OPT("listen", listen, "127.0.0.1:8080", "HTTP listen address (ingress, feed, admin, metrics)"),
    OPT("tls-cert", tls_cert, NULL,
        "HTTPS: PEM certificate chain, the server's certificate first (with QBCDC_TLS_KEY); none: plain HTTP"),
    OPT("tls-key", tls_key, NULL, "HTTPS: the PEM private key of QBCDC_TLS_CERT (keep it 0600)"),
    OPT("data-dir", data_dir, "./data", "LMDB environment directory (created if missing)"),
    OPT("webhook-verifier-tokens", webhook_verifier_tokens, NULL,
        "comma-separated Intuit verifier tokens; any one may sign (rotation); none: webhooks get 503"),
    OPT("client-id", client_id, NULL, "Intuit app OAuth client id"),
    OPT("client-secret", client_secret, NULL, "Intuit app OAuth client secret"),
    OPT("api-base", api_base, "https://quickbooks.api.intuit.com", "QBO API base URL (sandbox or qbosim)"),
    OPT("oauth-token-url", oauth_token_url, "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
        "OAuth token endpoint"),
    OPT("oauth-authorize-url", oauth_authorize_url, "https://appcenter.intuit.com/connect/oauth2",
        "OAuth consent screen"),
    OPT("oauth-redirect-uri", oauth_redirect_uri, NULL, "redirect URI registered with Intuit"),
    OPT("oauth-revoke-url", oauth_revoke_url, "https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
        "OAuth revoke endpoint (DELETE /admin/realms/{realm})"),
    OPT("minorversion", minorversion, "75", "QBO minorversion sent on every API call"),
    OPT("cdc-interval", cdc_interval, "300", "seconds between fallback CDC polls per realm"),
    OPT("cdc-entities", cdc_entities,
        "Account,Bill,BillPayment,Budget,Class,CreditMemo,Customer,Department,Deposit,Employee,Estimate,Invoice,Item,"
        "JournalEntry,Payment,PaymentMethod,Purchase,PurchaseOrder,RefundReceipt,SalesReceipt,Term,Transfer,Vendor,"
        "VendorCredit",
        "entity names polled by CDC, pulled by default backfills and snapshots (QBO's names, any case)"),
    OPT("snapshot-on-connect", snapshot_on_connect, "1",
        "1: snapshot every object of a realm (every CDC entity) when it is connected for the first time; 0: never"),
    OPT("cdc-lookback", cdc_lookback, "2592000",
        "CDC's lookback in seconds (QBO: 30 days); a realm whose watermark is older is backfilled instead"),
    OPT("monthly-call-budget", monthly_call_budget, "500000",
        "Intuit's metered (CorePlus) calls qbcdc may make per month, for the whole app (Builder tier: 500000); "
        "spending "
        "stops short of it, live fetches first to get calls; 0: metered, not governed"),
    OPT("budget-period", budget_period, NULL,
        "seconds: a budget period of this length instead of the calendar month (tests and benchmarks only)"),
    OPT("budget-tz", budget_tz, NULL,
        "time zone whose midnight begins a budget month (a name under /usr/share/zoneinfo); none: UTC"),
    OPT("cdc-max-interval", cdc_max_interval, "604800",
        "the longest a realm's CDC interval is stretched to fit the budget (seconds; QBCDC_CDC_INTERVAL is the "
        "shortest)"),
    OPT("nats-url", nats_url, NULL,
        "NATS server URL(s), comma-separated; set: every feed record is published to a JetStream stream"),
    OPT("nats-replicas", nats_replicas, "1", "replicas of the stream qbcdc creates (1, 3 or 5 in a cluster)"),
    OPT("nats-stream", nats_stream, "QBCDC_FEED",
        "the JetStream stream of the feed (subjects qbcdc.feed.<realm>.<Entity>)"),
    OPT("node-id", node_id, NULL,
        "cluster mode: this node's id (1 to 63 of A-Z a-z 0-9 _ -), unique in the cluster; needs QBCDC_NATS_URL. "
        "Unset: one node, no partitions"),
    OPT("partitions", partitions, "32",
        "cluster mode: partitions the realms are split into; fixed when the cluster is created (the first node "
        "records it; a node configured otherwise takes no partition)"),
    OPT("lease-ttl", lease_ttl, "10",
        "cluster mode: seconds a partition's lease lasts unless renewed; a dead node's partitions are taken over "
        "after about this long"),
    OPT("advertise-url", advertise_url, NULL,
        "cluster mode: where the other nodes reach this node's HTTP API to forward a realm's admin requests to "
        "it (http[s]://host:port); unset: derived from QBCDC_LISTEN (a wildcard address becomes 127.0.0.1, which "
        "only works when every node runs on one machine: set it in a real deployment)"),
    OPT("forward-timeout-ms", forward_timeout_ms, "5000",
        "cluster mode: how long an admin request forwarded to a realm's owner may take before it is answered 503"),
    OPT("cdc-commit-max", cdc_commit_max, "500",
        "most entity versions a CDC sweep commits in one store transaction (a long backlog commits in chunks; only "
        "the last moves the watermark)"),
    OPT("cdc-audit-gap", cdc_audit_gap, "600",
        "seconds between two audits of one entity of a realm (after CDC answers at the cap cut deletes off; an "
        "audit owed meanwhile waits)"),
    OPT("admin-token", admin_token, NULL, "bearer token for /admin/*; none: /admin/* answers 403"),
    OPT("feed-token", feed_token, NULL, "bearer token for /v1/*; none: /v1/* answers 403"),
    OPT("master-key-file", master_key_file, NULL,
        "32-byte key encrypting OAuth tokens at rest (default $QBCDC_DATA_DIR/master.key, created 0600)"),
    OPT("map-size", map_size, "1G", "initial LMDB map size (bytes; K, M, G, T suffixes)"),
    OPT("map-max", map_max, "64G", "the map doubles when full up to this size; past it writes get 503"),
    OPT("inbox-retention", inbox_retention, "604800",
        "seconds raw webhook bodies (and their CloudEvents ids) are kept; 0: forever. Pending work, "
        "entity versions and the feed are never pruned"),
    OPT("feed-retention", feed_retention, "0",
        "seconds feed records are kept; 0: forever. A reader behind what was pruned gets 410 gone"),
    OPT("prune-interval-ms", prune_interval_ms, "60000", "how often old webhook bodies are pruned (ms)"),
    OPT("log-level", log_level, "info", "error, warn, info or debug"),
    OPT("summary-interval", summary_interval, "60",
        "seconds between the info-level 'alive' lines (webhooks, feed head, pending, QBO requests); 0: none"),
    OPT("log-format", log_format, "text",
        "text, or json: one JSON object a line (time, level, module, message, realm)"),
    OPT("drain-ms", drain_ms, "10000", "on SIGTERM, how long to wait for in-flight acks (ms)"),
    OPT("max-streams", max_streams, "1000",
        "most long-polls and SSE streams open at once; more get 503 with Retry-After (file descriptors are finite)"),
    OPT("rate-limit", rate_limit, "500", "QBO API requests per minute per realm, all kinds together"),
    OPT("max-inflight", max_inflight, "10", "QBO API requests in flight per realm"),
    OPT("ids-per-query", ids_per_query, "200", "most entity ids in one Id IN (...) query"),
    OPT("max-attempts", max_attempts, "8", "failed fetches of a change before it becomes a dead letter"),
    OPT("coalesce-ms", coalesce_ms, "500",
        "a realm fetched less than this ago gathers new changes before the next fetch"),
    OPT("request-timeout-ms", request_timeout_ms, "30000", "timeout of one QBO API request"),
    OPT("backoff-base-ms", backoff_base_ms, "1000",
        "first retry delay after a 5xx, timeout or reset (doubles, jittered)"),
    OPT("backoff-max-ms", backoff_max_ms, "60000", "longest retry delay"),
    OPT("throttle-pause-ms", throttle_pause_ms, "60000", "how long a realm pauses after a 429 without Retry-After"),
    OPT("delivery-allow-private", delivery_allow_private, "0",
        "1: push deliveries may target loopback, link-local and private addresses (tests, private networks)"),
    OPT("delivery-schedule", delivery_schedule, QBC_DELIVERY_SCHEDULE_DEFAULT,
        "push delivery: seconds before each attempt (the first, then after each failure); exhausted: disabled"),
    OPT("delivery-timeout-ms", delivery_timeout_ms, "15000", "push delivery: one attempt's timeout (ms)"),
    OPT("delivery-max-inflight", delivery_max_inflight, "64",
        "push delivery: deliveries in flight over all subscriptions (one per subscription)"),
    OPT("delivery-secret-grace", delivery_secret_grace, "86400",
        "push delivery: seconds a rotated-out signing secret still signs (both signatures are sent)"),
    OPT("sim", sim, "auto", "auto: with no QBCDC_CLIENT_ID, start the bundled qbosim and use it as Intuit; off: never"),
    OPT("sim-listen", sim_listen, "127.0.0.1:9090", "where the bundled qbosim listens (with --sim auto)"),
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static const char **field(qbc_config_t *cfg, const option_t *o)
{
    return (const char **)((char *)cfg + o->offset);
}

static void env_name(const option_t *o, char *buf, size_t sz)
{
    size_t n = (size_t)snprintf(buf, sz, "QBCDC_");
    for (const char *p = o->flag; *p && n + 1 < sz; p++)
        buf[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    buf[n] = '\0';
}

static int allowed_flag(const char *const *allowed, const char *flag)
{
    if (allowed == NULL)
        return 1;
    for (; *allowed; allowed++)
        if (strcmp(*allowed, flag) == 0)
            return 1;
    return 0;
}

/* bytes with an optional K/M/G/T suffix (powers of 1024) */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-')
        return -1;
    int shift = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        shift = 10, end++;
        break;
    case 'M':
        shift = 20, end++;
        break;
    case 'G':
        shift = 30, end++;
        break;
    case 'T':
        shift = 40, end++;
        break;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0' || (shift > 0 && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int split_tokens(qbc_config_t *cfg)
{
    const char *s = cfg->webhook_verifier_tokens;
    cfg->tokens = qbc_calloc(1, sizeof(char *));
    cfg->n_tokens = 0;
    if (s == NULL)
        return 0;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        /* trim spaces around each token: "a, b" is a common way to write a list */
        const char *b = s, *e = s + n;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > b) {
            cfg->tokens = qbc_realloc(cfg->tokens, (cfg->n_tokens + 2) * sizeof(char *));
            cfg->tokens[cfg->n_tokens++] = qbc_strndup(b, (size_t)(e - b));
            cfg->tokens[cfg->n_tokens] = NULL;
        }
        s += n;
        if (*s == ',')
            s++;
    }
    return 0;
}
/* "QBCDC_CDC_INTERVAL (--cdc-interval): 'abc' is not <want>" into err: the variable is named */
static int bad_value(char *err, size_t errsz, const char *flag, const char *value, const char *want)
{
    char env[64];
    size_t n = (size_t)snprintf(env, sizeof(env), "QBCDC_");
    for (const char *p = flag; *p != '\0' && n + 1 < sizeof(env); p++)
        env[n++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    env[n] = '\0';
    snprintf(err, errsz, "%s (--%s): '%.200s' is not %s", env, flag, value != NULL ? value : "", want);
    return QBC_EINVAL;
}

int qbc_config_load(qbc_config_t *cfg, int argc, char **argv, int first, const char *const *allowed, char *err,
                    size_t errsz)
{
    char name[64];

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_OPTIONS; i++) {
        env_name(&options[i], name, sizeof(name));
        const char *v = getenv(name);
        *field(cfg, &options[i]) = v != NULL && v[0] != '\0' ? v : options[i].def;
    }
    for (int a = first; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errsz, "unexpected argument '%s'", arg);
            return QBC_EINVAL;
        }
        const char *eq = strchr(arg + 2, '=');
        size_t flen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        const option_t *o = NULL;
        for (size_t i = 0; i < N_OPTIONS; i++)
            if (strlen(options[i].flag) == flen && strncmp(options[i].flag, arg + 2, flen) == 0)
                o = &options[i];
        if (o == NULL || !allowed_flag(allowed, o->flag)) {
            snprintf(err, errsz, "unknown flag '%.*s' (see --help)", (int)(flen + 2), arg);
            return QBC_EINVAL;
        }
        if (eq != NULL) {
            *field(cfg, o) = eq + 1;
        } else if (a + 1 < argc) {
            *field(cfg, o) = argv[++a];
        } else {
            snprintf(err, errsz, "flag '--%s' needs a value", o->flag);
            return QBC_EINVAL;
        }
    }

    if (parse_size(cfg->map_size, &cfg->map_size_bytes) != 0 || cfg->map_size_bytes < 64 * 1024) {
        return bad_value(err, errsz, "map-size", cfg->map_size, "a size of at least 64K (e.g. 1G)");
    }
    if (parse_size(cfg->map_max, &cfg->map_max_bytes) != 0 || cfg->map_max_bytes < cfg->map_size_bytes) {
        return bad_value(err, errsz, "map-max", cfg->map_max, "a size at least the map size");
    }
    if (parse_long(cfg->cdc_interval, 1, 86400 * 30, &cfg->cdc_interval_s) != 0) {
        return bad_value(err, errsz, "cdc-interval", cfg->cdc_interval, "a number of seconds from 1 to 2592000");
    }
    if (parse_long(cfg->minorversion, 1, 100000, &cfg->minorversion_n) != 0) {
        return bad_value(err, errsz, "minorversion", cfg->minorversion, "a positive integer");
    }
    if (parse_long(cfg->drain_ms, 0, 600000, &cfg->drain_ms_n) != 0) {
        return bad_value(err, errsz, "drain-ms", cfg->drain_ms, "a number from 0 to 600000");
    }
    struct {
        const char *text, *name;
        long min, max;
        long *out;
    } nums[] = {
        {cfg->rate_limit, "rate-limit", 1, 100000, &cfg->n_rate_limit},
        {cfg->max_inflight, "max-inflight", 1, 1000, &cfg->n_max_inflight},
        {cfg->ids_per_query, "ids-per-query", 1, 1000, &cfg->n_ids_per_query},
        {cfg->max_attempts, "max-attempts", 1, 1000, &cfg->n_max_attempts},
        {cfg->coalesce_ms, "coalesce-ms", 0, 600000, &cfg->n_coalesce_ms},
        {cfg->request_timeout_ms, "request-timeout-ms", 100, 600000, &cfg->n_request_timeout_ms},
        {cfg->backoff_base_ms, "backoff-base-ms", 1, 3600000, &cfg->n_backoff_base_ms},
        {cfg->backoff_max_ms, "backoff-max-ms", 1, 86400000, &cfg->n_backoff_max_ms},
        {cfg->throttle_pause_ms, "throttle-pause-ms", 1, 3600000, &cfg->n_throttle_pause_ms},
        {cfg->cdc_lookback, "cdc-lookback", 1, 86400 * 30, &cfg->n_cdc_lookback_s},
        {cfg->cdc_audit_gap, "cdc-audit-gap", 0, 86400 * 30, &cfg->n_cdc_audit_gap_s},
        {cfg->cdc_commit_max, "cdc-commit-max", 1, 1000000, &cfg->n_cdc_commit_max},
        {cfg->monthly_call_budget, "monthly-call-budget", 0, 1000000000L, &cfg->n_monthly_call_budget},
        {cfg->cdc_max_interval, "cdc-max-interval", 1, 25 * 86400, &cfg->n_cdc_max_interval_s},
        {cfg->nats_replicas, "nats-replicas", 1, 5, &cfg->n_nats_replicas},
        {cfg->partitions, "partitions", 1, 1024, &cfg->n_partitions},
        {cfg->lease_ttl, "lease-ttl", 3, 300, &cfg->n_lease_ttl_s},
        {cfg->forward_timeout_ms, "forward-timeout-ms", 100, 600000, &cfg->n_forward_timeout_ms},
        {cfg->max_streams, "max-streams", 1, 1000000, &cfg->n_max_streams},
        {cfg->summary_interval, "summary-interval", 0, 86400, &cfg->n_summary_interval_s},
        {cfg->inbox_retention, "inbox-retention", 0, 86400L * 3650, &cfg->n_inbox_retention_s},
        {cfg->feed_retention, "feed-retention", 0, 86400L * 3650, &cfg->n_feed_retention_s},
        {cfg->prune_interval_ms, "prune-interval-ms", 10, 86400000, &cfg->n_prune_interval_ms},
        {cfg->delivery_timeout_ms, "delivery-timeout-ms", 100, 600000, &cfg->n_delivery_timeout_ms},
        {cfg->delivery_max_inflight, "delivery-max-inflight", 1, 10000, &cfg->n_delivery_max_inflight},
        {cfg->delivery_secret_grace, "delivery-secret-grace", 1, 86400L * 30, &cfg->n_delivery_secret_grace_s},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        if (parse_long(nums[i].text, nums[i].min, nums[i].max, nums[i].out) != 0) {
            char want[64];
            snprintf(want, sizeof(want), "a number from %ld to %ld", nums[i].min, nums[i].max);
            return bad_value(err, errsz, nums[i].name, nums[i].text, want);
        }
    }
    cfg->n_budget_period_s = 0;
    if (cfg->budget_period != NULL && parse_long(cfg->budget_period, 1, 86400L * 366, &cfg->n_budget_period_s) != 0)
        return bad_value(err, errsz, "budget-period", cfg->budget_period, "a number of seconds from 1 to 31622400");
    if (cfg->budget_tz != NULL && strcmp(cfg->budget_tz, "UTC") != 0) {
        char path[512];
        snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", cfg->budget_tz);
        if (cfg->budget_tz[0] == '\0' || cfg->budget_tz[0] == '/' || strstr(cfg->budget_tz, "..") != NULL ||
            access(path, R_OK) != 0)
            return bad_value(err, errsz, "budget-tz", cfg->budget_tz,
                             "a time zone name under /usr/share/zoneinfo (e.g. America/Los_Angeles) or UTC");
    }
    if (qbc_log_set_format_name(cfg->log_format) != 0)
        return bad_value(err, errsz, "log-format", cfg->log_format, "text or json");
    if (qbc_log_set_level_name(cfg->log_level) != 0) {
        return bad_value(err, errsz, "log-level", cfg->log_level, "error, warn, info or debug");
    }
    if (cfg->listen == NULL || strchr(cfg->listen, ':') == NULL) {
        return bad_value(err, errsz, "listen", cfg->listen, "host:port");
    }
    if ((cfg->tls_cert != NULL && cfg->tls_cert[0] == '\0') || (cfg->tls_key != NULL && cfg->tls_key[0] == '\0'))
        return bad_value(err, errsz, cfg->tls_cert != NULL && cfg->tls_cert[0] == '\0' ? "tls-cert" : "tls-key", "",
                         "a file path (unset it for plain HTTP)");
    if (allowed_flag(allowed, "tls-key") && (cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        snprintf(err, errsz, "%s is set without %s: HTTPS needs both the certificate and its key",
                 cfg->tls_cert != NULL ? "QBCDC_TLS_CERT (--tls-cert)" : "QBCDC_TLS_KEY (--tls-key)",
                 cfg->tls_cert != NULL ? "QBCDC_TLS_KEY (--tls-key)" : "QBCDC_TLS_CERT (--tls-cert)");
        return QBC_EINVAL;
    }
    if (cfg->advertise_url != NULL) {
        const char *u = cfg->advertise_url;
        int okc = strlen(u) < sizeof(cfg->advertise_canon) &&
                  (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0);
        for (const char *p = u; okc && *p; p++)
            okc = *p > ' ' && *p < 0x7f && *p != '"' && *p != '\\';
        if (!okc || strlen(u) <= 8)
            return bad_value(err, errsz, "advertise-url", u, "http://host:port or https://host:port");
        snprintf(cfg->advertise_canon, sizeof(cfg->advertise_canon), "%s", u);
        cfg->advertise_derived = 0;
    } else { /* from the listen address: a wildcard host means this machine */
        const char *colon = strrchr(cfg->listen, ':');
        size_t hl = (size_t)(colon - cfg->listen);
        int wild = hl == 0 || (hl == 7 && strncmp(cfg->listen, "0.0.0.0", 7) == 0) ||
                   (hl == 4 && strncmp(cfg->listen, "[::]", 4) == 0);
        snprintf(cfg->advertise_canon, sizeof(cfg->advertise_canon), "%s://%.*s%s",
                 cfg->tls_cert != NULL ? "https" : "http", wild ? 9 : (int)hl, wild ? "127.0.0.1" : cfg->listen, colon);
        cfg->advertise_derived = 1;
    }
    cfg->advertise_url = cfg->advertise_canon;
    if (cfg->node_id != NULL) {
        if (!qbc_cluster_node_id_ok(cfg->node_id))
            return bad_value(err, errsz, "node-id", cfg->node_id, "1 to 63 of A-Z a-z 0-9 _ -");
        if (allowed_flag(allowed, "node-id") && (cfg->nats_url == NULL || cfg->nats_url[0] == '\0')) {
            snprintf(err, errsz,
                     "QBCDC_NODE_ID (--node-id) is set without QBCDC_NATS_URL (--nats-url): cluster "
                     "mode runs on NATS JetStream");
            return QBC_EINVAL;
        }
    }
    if (strcmp(cfg->sim, "auto") != 0 && strcmp(cfg->sim, "off") != 0) {
        return bad_value(err, errsz, "sim", cfg->sim, "auto or off");
    }
    if (strcmp(cfg->snapshot_on_connect, "0") != 0 && strcmp(cfg->snapshot_on_connect, "1") != 0) {
        return bad_value(err, errsz, "snapshot-on-connect", cfg->snapshot_on_connect, "0 or 1");
    }
    cfg->n_snapshot_on_connect = cfg->snapshot_on_connect[0] == '1';
    if (strcmp(cfg->delivery_allow_private, "0") != 0 && strcmp(cfg->delivery_allow_private, "1") != 0)
        return bad_value(err, errsz, "delivery-allow-private", cfg->delivery_allow_private, "0 or 1");
    cfg->n_delivery_allow_private = cfg->delivery_allow_private[0] == '1';
    qbc_delivery_schedule_t sched;
    if (qbc_delivery_schedule_parse(cfg->delivery_schedule, &sched) != 0)
        return bad_value(err, errsz, "delivery-schedule", cfg->delivery_schedule,
                         "a comma-separated list of 1 to 32 delays in seconds (e.g. 0,5,300)");
    /* names QBO does not know would fail (or be skipped by) every sweep: refuse them at startup */
    char why[1200];
    if (allowed_flag(allowed, "cdc-entities") &&
        qbc_entity_list_check(cfg->cdc_entities, cfg->cdc_entities_canon, sizeof(cfg->cdc_entities_canon), why,
                              sizeof(why)) != 0) {
        char want[1300];
        snprintf(want, sizeof(want), "a list of QBO entity names (%s)", why);
        return bad_value(err, errsz, "cdc-entities", cfg->cdc_entities, want);
    }
    if (allowed_flag(allowed, "cdc-entities"))
        cfg->cdc_entities = cfg->cdc_entities_canon;
    if (allowed_flag(allowed, "client-secret") && cfg->client_id != NULL && cfg->client_id[0] != '\0' &&
        (cfg->client_secret == NULL || cfg->client_secret[0] == '\0'))
        return bad_value(err, errsz, "client-secret", "", "set, and QBCDC_CLIENT_ID needs it");
    if (cfg->data_dir == NULL || cfg->data_dir[0] == '\0') {
        snprintf(err, errsz, "data dir must not be empty");
        return QBC_EINVAL;
    }
    return split_tokens(cfg);
}

void qbc_config_free(qbc_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_tokens; i++)
        free(cfg->tokens[i]);
    free(cfg->tokens);
    cfg->tokens = NULL;
}

void qbc_config_print_help(const char *const *allowed)
{
    char name[64];
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (!allowed_flag(allowed, options[i].flag))
            continue;
        env_name(&options[i], name, sizeof(name));
        printf("  --%-25s %s\n      %s", options[i].flag, name, options[i].help);
        if (options[i].def != NULL && strlen(options[i].def) < 60)
            printf(" [default: %s]", options[i].def);
        printf("\n");
    }
}
