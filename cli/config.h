/*
 * config.h — qbcdc's configuration: environment variables (CONTRACT.md), each
 * overridable by a flag of the same name in kebab-case (QBCDC_DATA_DIR -> --data-dir).
 */
#ifndef QBC_CLI_CONFIG_H
#define QBC_CLI_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_qbc_config_t {
    const char *listen;
    const char *tls_cert, *tls_key; /* HTTPS: both set, or neither */
    const char *data_dir;
    const char *webhook_verifier_tokens; /* comma-separated */
    const char *client_id, *client_secret;
    const char *api_base, *oauth_token_url, *oauth_authorize_url, *oauth_redirect_uri, *oauth_revoke_url;
    const char *minorversion;
    const char *cdc_interval;
    const char *cdc_entities;
    const char *cdc_lookback, *cdc_audit_gap, *cdc_commit_max, *max_streams, *summary_interval;
    const char *monthly_call_budget, *budget_period, *budget_tz, *cdc_max_interval;
    const char *nats_url, *nats_replicas, *nats_stream;
    const char *node_id, *partitions, *lease_ttl;   /* cluster mode */
    const char *advertise_url, *forward_timeout_ms; /* cluster mode: admin requests forwarded to a realm's owner */
    const char *snapshot_on_connect;
    const char *admin_token, *feed_token;
    const char *master_key_file;
    const char *map_size, *map_max; /* store sizing (bytes, K/M/G/T suffixes) */
    const char *log_level, *log_format;
    const char *drain_ms;
    const char *sim, *sim_listen; /* dev mode: the bundled simulator */
    const char *rate_limit, *max_inflight, *ids_per_query, *max_attempts, *coalesce_ms, *request_timeout_ms;
    const char *backoff_base_ms, *backoff_max_ms, *throttle_pause_ms;
    const char *inbox_retention, *feed_retention, *prune_interval_ms;
    const char *delivery_allow_private, *delivery_schedule, *delivery_timeout_ms, *delivery_max_inflight;
    const char *delivery_secret_grace;

    /* derived, validated values */
    uint64_t map_size_bytes, map_max_bytes;
    long cdc_interval_s, minorversion_n, drain_ms_n;
    long n_rate_limit, n_max_inflight, n_ids_per_query, n_max_attempts, n_coalesce_ms, n_request_timeout_ms;
    long n_backoff_base_ms, n_backoff_max_ms, n_throttle_pause_ms;
    long n_cdc_lookback_s, n_cdc_audit_gap_s, n_cdc_commit_max, n_max_streams, n_summary_interval_s;
    long n_monthly_call_budget, n_budget_period_s, n_cdc_max_interval_s, n_nats_replicas;
    long n_partitions, n_lease_ttl_s, n_forward_timeout_ms;
    char advertise_canon[256]; /* advertise_url, or the one derived from listen; advertise_url points here */
    int advertise_derived;     /* 1: QBCDC_ADVERTISE_URL was not set */
    long n_inbox_retention_s, n_feed_retention_s, n_prune_interval_ms;
    int n_snapshot_on_connect;
    int n_delivery_allow_private;
    long n_delivery_timeout_ms, n_delivery_max_inflight, n_delivery_secret_grace_s;
    char cdc_entities_canon[1024]; /* cdc_entities checked and canonicalized; cdc_entities points here */
    char **tokens;                 /* split webhook_verifier_tokens */
    size_t n_tokens;
} qbc_config_t;

/**
 * fills cfg from defaults, then the environment, then argv[first..argc) flags
 * (--name=value or --name value). Only flags of the options named in `allowed`
 * (a NULL-terminated list of option names, e.g. "data-dir"; NULL = all) are accepted.
 * @param err buffer for a one-line message on failure
 * @return 0, or QBC_EINVAL with err set (unknown flag, missing value, bad value)
 */
int qbc_config_load(qbc_config_t *cfg, int argc, char **argv, int first, const char *const *allowed, char *err,
                    size_t errsz);
void qbc_config_free(qbc_config_t *cfg);

/** prints the option table (flag, variable, default, meaning) for --help. */
void qbc_config_print_help(const char *const *allowed);

#endif
