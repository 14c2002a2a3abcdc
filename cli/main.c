/*
 * main.c — the qbcdc program: `serve` runs the service; the other commands are the
 * operator's command line. Exit codes: 0 success, 1 runtime failure, 2 usage error
 * (unknown command or flag, bad value), always with one line on stderr.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"
#include "adminapi.h"
#include "config.h"
#include "devsim.h"
#include "figures.h"
#include "reconciler.h"
#include "api.h"
#include "harden.h"
#include "delivery.h"
#include "jetstream.h"
#include "cluster.h"
#include "inspect.h"
#include "store.h"
#include "backup.h"

static qbc_api_t *running;

static void usage(FILE *f)
{
    fprintf(
        f,
        "qbcdc %s — change capture for QuickBooks Online\n"
        "\n"
        "Usage:\n"
        "  qbcdc serve [flags]        run the service (webhooks, feed, admin API) until SIGTERM/SIGINT\n"
        "  qbcdc inbox [flags]        list stored webhook bodies (JSON lines)\n"
        "  qbcdc pending [flags]      list pending change notices (JSON lines)\n"
        "  qbcdc entities [flags]     list the latest stored version of every entity (JSON lines)\n"
        "  qbcdc feed [flags]         print the change feed (JSON lines)\n"
        "  qbcdc dead [flags]         list dead letters (JSON lines)\n"
        "  qbcdc stats [flags]        print store counters (one JSON object)\n"
        "  qbcdc backup DEST          a consistent copy of the store, safe while the service runs\n"
        "  qbcdc cdc REALM            ask the running service for a CDC sweep now (admin API)\n"
        "  qbcdc backfill REALM       start a backfill job (admin API; --entities, --since)\n"
        "  qbcdc jobs [ID]            list backfill jobs or show one (admin API)\n"
        "  qbcdc cancel ID            cancel a backfill job (admin API)\n"
        "  qbcdc realms               realms with status, pending work and API use (admin API)\n"
        "  qbcdc budget               the month's metered-call budget: used, remaining, forecast (admin API)\n"
        "  qbcdc cluster              cluster mode: this node, the live nodes, who owns each partition (admin API)\n"
        "  qbcdc register REALM       register a refresh token read from stdin (admin API)\n"
        "  qbcdc disconnect REALM     revoke at Intuit and erase the tokens (admin API)\n"
        "  qbcdc dead-letters         list dead letters (admin API)\n"
        "  qbcdc retry ID             put a dead letter back into pending work (admin API)\n"
        "  qbcdc subscriptions ...    push delivery subscriptions: list, show, create, update, pause, resume,\n"
        "                             delete, redeliver (admin API; see qbcdc subscriptions --help)\n"
        "  qbcdc --help | --version\n"
        "\n"
        "Run `qbcdc <command> --help` for a command's flags. Every flag can also be set by\n"
        "its environment variable (QBCDC_DATA_DIR for --data-dir, ...); flags win.\n"
        "Prefer the environment for secrets: flags are visible to other local users in ps.\n",
        QBCDC_VERSION);
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "qbcdc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return 2;
}

static void on_signal(int sig)
{
    (void)sig;
    if (running != NULL)
        qbc_api_stop(running);
}

/* a configuration that runs, but not as its user most likely expects: said once at start */
static void warn_config(const qbc_config_t *cfg)
{
    if (cfg->feed_token == NULL || cfg->feed_token[0] == '\0')
        qbc_log(QBC_LOG_WARN, "main", "QBCDC_FEED_TOKEN is not set: /v1/* (the feed) answers 403 until it is");
    if (cfg->admin_token == NULL || cfg->admin_token[0] == '\0')
        qbc_log(QBC_LOG_WARN, "main",
                "QBCDC_ADMIN_TOKEN is not set: /admin/* and the admin CLI answer 403 until it is");
    if (cfg->client_id != NULL && (cfg->client_secret == NULL || cfg->client_secret[0] == '\0'))
        qbc_log(
            QBC_LOG_WARN, "main",
            "QBCDC_CLIENT_ID is set without QBCDC_CLIENT_SECRET: every token call will be refused (invalid_client)");
    if (cfg->client_id != NULL && cfg->oauth_redirect_uri == NULL)
        qbc_log(QBC_LOG_WARN, "main",
                "QBCDC_OAUTH_REDIRECT_URI is not set: GET /connect answers 503 (register tokens with PUT "
                "/admin/realms/{realm}/tokens or qbcdc register instead)");
}

/* the reconciler asks the cluster whose realm it is (reconciler.h qbc_reconciler_config_t.owns) */
static int owns_realm(void *ctx, const char *realm, int64_t *until_mono_ns)
{
    return qbc_cluster_owns(ctx, realm, until_mono_ns);
}

static uint64_t owns_epoch(void *ctx)
{
    return qbc_cluster_epoch(ctx);
}

/* the feed publisher's question (jetstream.h qbc_jetstream_config_t.owner) */
static int publishes_realm(void *ctx, const char *realm)
{
    return qbc_cluster_whose(ctx, realm, NULL);
}

/* the admin API asks whose realm a request is for (api.h qbc_api_cluster_t.owner) */
static int realm_owner(void *ctx, const char *realm, char *node, char *url)
{
    return qbc_cluster_realm_owner(ctx, realm, node, url);
}

static unsigned peers(void *ctx, char (*nodes)[QBC_API_NODE_MAX], char (*urls)[QBC_API_URL_MAX], unsigned max)
{
    return qbc_cluster_peers(ctx, nodes, urls, max);
}

static int job_node(void *ctx, uint64_t id, char *node, char *url)
{
    return qbc_cluster_job_node(ctx, id, node, url);
}

static uint64_t feed_horizon(void *ctx)
{
    return qbc_cluster_feed_horizon(ctx);
}

/*
 * cluster mode: /v1/changes serves the cluster feed, each node's copy of the stream, kept in
 * DATA_DIR/cluster-feed (a store of its own: its sequences and id are the stream's)
 */
static int start_feed_mirror(const qbc_config_t *cfg, qbc_store_t **copy, qbc_feed_mirror_t **mirror)
{
    char dir[4096];
    int rc;
    snprintf(dir, sizeof(dir), "%s/cluster-feed", cfg->data_dir);
    qbc_store_config_t scfg = {.dir = dir,
                               .journal_size = 1 << 20, /* nothing is journaled there: the smallest */
                               .feed_retention_s = cfg->n_feed_retention_s,
                               .prune_interval_ms = (int)cfg->n_prune_interval_ms,
                               .no_master_key = 1,
                               .adopt_feed_id = 1};
    if ((rc = qbc_store_open(&scfg, copy)) != 0) {
        fprintf(stderr, "qbcdc: cannot open the cluster feed's store in %s: %s\n", dir, qbc_strerror(rc));
        return rc;
    }
    qbc_feed_mirror_config_t mcfg = {.urls = cfg->nats_url, .stream = cfg->nats_stream};
    if ((rc = qbc_cluster_feed_start(&mcfg, *copy, mirror)) != 0)
        fprintf(stderr, "qbcdc: cannot start copying the cluster feed: %s\n", qbc_strerror(rc));
    return rc;
}

static int cmd_serve(int argc, char **argv)
{
    qbc_config_t cfg;
    char err[1600]; /* room for the list of known entities */
    qbc_store_t *store = NULL;
    qbc_api_t *api = NULL;
    qbc_reconciler_t *rec = NULL;
    qbc_jetstream_t *js = NULL;
    qbc_cluster_t *cluster = NULL;
    qbc_inbox_t *inbox = NULL;       /* cluster mode: webhooks through the replicated stream */
    qbc_realm_sync_t *realms = NULL; /* cluster mode: realms and tokens shared */
    qbc_meter_t *meter = NULL;       /* cluster mode: the monthly allowance metered together */
    qbc_dead_sync_t *dead = NULL;    /* cluster mode: dead letters listed and retried from any node */
    qbc_job_sync_t *jobs = NULL;     /* cluster mode: backfill and snapshot jobs shared */
    qbc_store_t *feed_copy = NULL;   /* cluster mode: the cluster feed, copied from the stream */
    qbc_feed_mirror_t *mirror = NULL;
    qbc_delivery_t *dl = NULL;
    qbc_devsim_t sim;
    int rc, exit_code = 1;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("Usage: qbcdc serve [flags]\n\n"
                   "Runs the service: POST /webhooks/intuit (verified, durably stored, then 200),\n"
                   "GET /healthz, GET /metrics. SIGTERM/SIGINT stop it gracefully: it stops\n"
                   "accepting, answers every webhook already being stored, and exits 0.\n\n"
                   "Flags (each also read from the environment variable shown):\n");
            qbc_config_print_help(NULL);
            return 0;
        }
    }
    if (qbc_config_load(&cfg, argc, argv, 2, NULL, err, sizeof(err)) != 0)
        return usage_error("%s", err);
    if (cfg.tls_cert != NULL && qbc_api_tls_check(cfg.tls_cert, cfg.tls_key, err, sizeof(err)) != 0) {
        qbc_config_free(&cfg);
        return usage_error("%s", err);
    }
    memset(&sim, 0, sizeof(sim));

    qbc_store_config_t scfg = {.dir = cfg.data_dir,
                               .map_size = cfg.map_size_bytes,
                               .map_max = cfg.map_max_bytes,
                               .inbox_retention_s = cfg.n_inbox_retention_s,
                               .feed_retention_s = cfg.n_feed_retention_s,
                               .prune_interval_ms = (int)cfg.n_prune_interval_ms,
                               .master_key_file = cfg.master_key_file,
                               /* cluster mode: this node's own job ids, unique across the nodes */
                               .job_id_base = cfg.node_id != NULL ? qbc_cluster_job_id_base(cfg.node_id) : 0};
    if ((rc = qbc_store_open(&scfg, &store)) != 0) {
        fprintf(stderr, "qbcdc: cannot open the store in %s: %s\n", cfg.data_dir, qbc_strerror(rc));
        goto Exit;
    }
    if (cfg.node_id != NULL) {
        qbc_cluster_config_t ccfg = {.urls = cfg.nats_url,
                                     .node_id = cfg.node_id,
                                     .partitions = (unsigned)cfg.n_partitions,
                                     .lease_ttl_s = (unsigned)cfg.n_lease_ttl_s,
                                     .replicas = (unsigned)cfg.n_nats_replicas,
                                     .advertise_url = cfg.advertise_url};
        if (cfg.advertise_derived)
            qbc_log(QBC_LOG_WARN, "main",
                    "QBCDC_ADVERTISE_URL is not set: the other nodes forward this node's realms' admin requests to %s "
                    "(derived from QBCDC_LISTEN); set it when the nodes run on different machines",
                    cfg.advertise_url);
        if ((rc = qbc_cluster_start(&ccfg, &cluster)) != 0) {
            fprintf(stderr, "qbcdc: cannot start cluster mode: %s\n", qbc_strerror(rc));
            goto Exit;
        }
        qbc_inbox_config_t icfg = {.urls = cfg.nats_url, .replicas = (unsigned)cfg.n_nats_replicas};
        if ((rc = qbc_cluster_inbox_start(&icfg, cluster, store, &inbox)) != 0) {
            fprintf(stderr, "qbcdc: cannot start the cluster's inbox: %s\n", qbc_strerror(rc));
            goto Exit;
        }
        qbc_realm_sync_config_t rscfg = {
            .urls = cfg.nats_url, .node_id = cfg.node_id, .replicas = (unsigned)cfg.n_nats_replicas};
        if ((rc = qbc_cluster_realms_start(&rscfg, store, &realms)) != 0) {
            fprintf(stderr, "qbcdc: cannot start sharing realms: %s\n", qbc_strerror(rc));
            goto Exit;
        }
        qbc_meter_config_t mcfg = {
            .urls = cfg.nats_url, .node_id = cfg.node_id, .replicas = (unsigned)cfg.n_nats_replicas};
        if ((rc = qbc_cluster_meter_start(&mcfg, &meter)) != 0) {
            fprintf(stderr, "qbcdc: cannot start the shared meter: %s\n", qbc_strerror(rc));
            goto Exit;
        }
        qbc_dead_sync_config_t xcfg = {
            .urls = cfg.nats_url, .node_id = cfg.node_id, .replicas = (unsigned)cfg.n_nats_replicas};
        if ((rc = qbc_cluster_dead_start(&xcfg, cluster, store, &dead)) != 0) {
            fprintf(stderr, "qbcdc: cannot start sharing dead letters: %s\n", qbc_strerror(rc));
            goto Exit;
        }
        qbc_job_sync_config_t jscfg = {
            .urls = cfg.nats_url, .node_id = cfg.node_id, .replicas = (unsigned)cfg.n_nats_replicas};
        if ((rc = qbc_cluster_jobs_start(&jscfg, store, &jobs)) != 0) {
            fprintf(stderr, "qbcdc: cannot start sharing jobs: %s\n", qbc_strerror(rc));
            goto Exit;
        }
        if ((rc = start_feed_mirror(&cfg, &feed_copy, &mirror)) != 0)
            goto Exit;
    }
    /* may supply the verifier token, so it comes before the server is configured */
    qbc_devsim_start(&cfg, &sim);
    warn_config(&cfg);
    qbc_api_config_t acfg = {.listen = cfg.listen,
                             .verifier_tokens = (const char *const *)cfg.tokens,
                             .n_verifier_tokens = cfg.n_tokens,
                             .max_body = 1024 * 1024,
                             .admin_token = cfg.admin_token,
                             .feed_token = cfg.feed_token,
                             .client_id = cfg.client_id,
                             .authorize_url = cfg.oauth_authorize_url,
                             .redirect_uri = cfg.oauth_redirect_uri,
                             .snapshot_on_connect = cfg.n_snapshot_on_connect,
                             .max_streams = (unsigned)cfg.n_max_streams,
                             .summary_interval_s = (unsigned)cfg.n_summary_interval_s,
                             .tls_cert = cfg.tls_cert,
                             .tls_key = cfg.tls_key,
                             .forward = inbox != NULL ? qbc_cluster_inbox_forward : NULL,
                             .forward_ctx = inbox,
                             .feed_store = feed_copy,
                             .feed_horizon = mirror != NULL ? feed_horizon : NULL,
                             .feed_horizon_ctx = mirror};
    if ((rc = qbc_api_create(&acfg, store, &api)) != 0) {
        fprintf(stderr, "qbcdc: cannot listen on %s: %s\n", cfg.listen, qbc_strerror(rc));
        goto Exit;
    }
    if (cluster != NULL) { /* a realm's admin requests go to its owner */
        qbc_api_cluster_t ac = {.node_id = cfg.node_id,
                                .forward_timeout_ms = (unsigned)cfg.n_forward_timeout_ms,
                                .owner = realm_owner,
                                .job_node = job_node,
                                .peers = peers,
                                .ctx = cluster};
        qbc_api_set_cluster(api, &ac);
    }

    if (qbc_devsim_register(&sim, cfg.sim_listen, store, cfg.n_snapshot_on_connect) == QBC_ECLOSED) {
        fprintf(stderr, "qbcdc: the bundled simulator could not start on %s (the address is taken?)\n", cfg.sim_listen);
        goto Exit;
    }
    if (cfg.client_id != NULL) {
        qbc_reconciler_config_t rcfg = {.api_base = cfg.api_base,
                                        .token_url = cfg.oauth_token_url,
                                        .revoke_url = cfg.oauth_revoke_url,
                                        .client_id = cfg.client_id,
                                        .client_secret = cfg.client_secret,
                                        .minorversion = cfg.minorversion_n,
                                        .rate_per_min = (unsigned)cfg.n_rate_limit,
                                        .max_inflight = (unsigned)cfg.n_max_inflight,
                                        .ids_per_query = (unsigned)cfg.n_ids_per_query,
                                        .max_attempts = (unsigned)cfg.n_max_attempts,
                                        .request_timeout_ms = (unsigned)cfg.n_request_timeout_ms,
                                        .backoff_base_ms = (unsigned)cfg.n_backoff_base_ms,
                                        .backoff_max_ms = (unsigned)cfg.n_backoff_max_ms,
                                        .throttle_pause_ms = (unsigned)cfg.n_throttle_pause_ms,
                                        .coalesce_ms = (unsigned)cfg.n_coalesce_ms,
                                        .cdc_interval_s = (unsigned)cfg.cdc_interval_s,
                                        .cdc_entities = cfg.cdc_entities,
                                        .cdc_lookback_s = (unsigned)cfg.n_cdc_lookback_s,
                                        .cdc_audit_gap_s = (int)cfg.n_cdc_audit_gap_s,
                                        .cdc_commit_max = (unsigned)cfg.n_cdc_commit_max,
                                        .monthly_budget = (uint64_t)cfg.n_monthly_call_budget,
                                        .budget_period_s = (unsigned)cfg.n_budget_period_s,
                                        .budget_local_months =
                                            cfg.budget_tz != NULL && strcmp(cfg.budget_tz, "UTC") != 0,
                                        .cdc_max_interval_s = (unsigned)cfg.n_cdc_max_interval_s};
        if (cluster != NULL) {
            rcfg.owns = owns_realm;
            rcfg.owns_epoch = owns_epoch;
            rcfg.owns_ctx = cluster;
            rcfg.meter = qbc_cluster_meter_share;
            rcfg.meter_ctx = meter;
        }
        if (rcfg.budget_local_months) { /* months begin at that zone's midnight; logs stay in UTC */
            setenv("TZ", cfg.budget_tz, 1);
            tzset();
        }
        if ((rc = qbc_reconciler_start(&rcfg, store, &rec)) != 0) {
            fprintf(stderr, "qbcdc: cannot start the reconciler: %s\n", qbc_strerror(rc));
            goto Exit;
        }
        qbc_api_set_reconciler(api, rec);
    } else {
        qbc_log(
            QBC_LOG_WARN, "main",
            "no QBCDC_CLIENT_ID: webhooks are stored but not reconciled (set Intuit credentials, or QBCDC_SIM=auto)");
    }
    if (cfg.nats_url != NULL && cfg.nats_url[0] != '\0') {
        qbc_jetstream_config_t jcfg = {.urls = cfg.nats_url,
                                       .replicas = (unsigned)cfg.n_nats_replicas,
                                       .stream = cfg.nats_stream,
                                       .cluster_versions = cfg.node_id != NULL,
                                       .owner = cluster != NULL ? publishes_realm : NULL,
                                       .owner_ctx = cluster};
        if ((rc = qbc_jetstream_start(&jcfg, store, &js)) != 0) {
            fprintf(stderr, "qbcdc: cannot start publishing to JetStream: %s\n", qbc_strerror(rc));
            goto Exit;
        }
    }
    qbc_delivery_config_t dcfg = {.allow_private = cfg.n_delivery_allow_private,
                                  .schedule = cfg.delivery_schedule,
                                  .timeout_ms = (unsigned)cfg.n_delivery_timeout_ms,
                                  .max_inflight = (unsigned)cfg.n_delivery_max_inflight,
                                  .secret_grace_s = (unsigned)cfg.n_delivery_secret_grace_s,
                                  .feed_store = feed_copy}; /* cluster mode: the cluster feed */
    if ((rc = qbc_delivery_start(&dcfg, store, &dl)) != 0) {
        fprintf(stderr, "qbcdc: cannot start push delivery: %s\n", qbc_strerror(rc));
        goto Exit;
    }
    qbc_api_set_delivery(api, dl);
    qbc_figures_cluster_t fcl = {cluster, inbox, realms, meter, dead, jobs, mirror};
    qbc_figures_install(api, rec, js, dl, &fcl);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    running = api;
    qbc_log(QBC_LOG_INFO, "main", "qbcdc %s serving; data in %s", QBCDC_VERSION, cfg.data_dir);
    rc = qbc_api_run(api, (int)cfg.drain_ms_n);
    running = NULL;
    exit_code = rc == 0 ? 0 : 1;
    qbc_log(QBC_LOG_INFO, "main", "stopped");

Exit:
    /* the reconciler first: it waits for its own store jobs, so the store must still be open */
    if (rec != NULL)
        qbc_reconciler_stop(rec, (int)cfg.drain_ms_n);
    qbc_devsim_stop(&sim);
    qbc_cluster_meter_stop(meter); /* after the reconciler: its last counts go to the bucket */
    /* cluster mode: no more QBO calls (the reconciler is gone), nothing more taken from the
       inbox, then the partitions handed over at once, before the slower stops below */
    qbc_cluster_inbox_stop(inbox); /* acks what it consumed: the store must be open */
    qbc_cluster_dead_stop(dead);   /* before the leases go: its store jobs finish first */
    qbc_cluster_stop(cluster);
    qbc_jetstream_stop(js); /* commits its cursor: before the store closes */
    qbc_delivery_stop(dl);  /* waits for its cursor commits: before the store closes */
    qbc_cluster_realms_stop(realms);
    qbc_cluster_jobs_stop(jobs);
    qbc_cluster_feed_stop(mirror); /* waits for its last commit: before its store closes */
    qbc_api_destroy(api);
    qbc_store_close(feed_copy);
    qbc_store_close(store); /* drains anything still queued, then closes LMDB */
    qbc_config_free(&cfg);
    return exit_code;
}

/* inbox | pending | stats: --data-dir plus a few flags of their own */
static int cmd_inspect(const char *what, int argc, char **argv)
{
    qbc_config_t cfg;
    char err[256];
    const char *realm = NULL;
    long after = 0, limit = 0;
    int bodies = 0;
    char *rest[64];
    int nrest = 0;

    rest[nrest++] = argv[0];
    rest[nrest++] = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("Usage: qbcdc %s [--data-dir DIR]%s\n\n", what,
                   strcmp(what, "inbox") == 0  ? " [--after SEQ] [--limit N] [--bodies]"
                   : strcmp(what, "feed") == 0 ? " [--after SEQ] [--realm R] [--limit N]"
                   : strcmp(what, "pending") == 0 || strcmp(what, "entities") == 0 ? " [--realm R] [--limit N]"
                   : strcmp(what, "dead") == 0                                     ? " [--limit N]"
                                                                                   : "");
            printf("Reads the store read-only (safe beside a running service) and prints JSON lines.\n");
            qbc_config_print_help((const char *const[]){"data-dir", NULL});
            return 0;
        }
        char *end;
        if (strcmp(a, "--bodies") == 0 && strcmp(what, "inbox") == 0) {
            bodies = 1;
        } else if (strcmp(a, "--after") == 0 && (strcmp(what, "inbox") == 0 || strcmp(what, "feed") == 0)) {
            if (v == NULL || (after = strtol(v, &end, 10), *end != '\0') || after < 0)
                return usage_error("--after needs a sequence number, got '%s'", v ? v : "");
            i++;
        } else if (strcmp(a, "--limit") == 0 && strcmp(what, "stats") != 0) {
            if (v == NULL || (limit = strtol(v, &end, 10), *end != '\0') || limit <= 0)
                return usage_error("--limit needs a positive number, got '%s'", v ? v : "");
            i++;
        } else if (strcmp(a, "--realm") == 0 &&
                   (strcmp(what, "pending") == 0 || strcmp(what, "entities") == 0 || strcmp(what, "feed") == 0)) {
            if (v == NULL)
                return usage_error("%s needs a value", a);
            realm = v;
            i++;
        } else if (nrest < 62) {
            rest[nrest++] = argv[i];
        }
    }
    if (qbc_config_load(&cfg, nrest, rest, 2, (const char *const[]){"data-dir", NULL}, err, sizeof(err)) != 0)
        return usage_error("%s", err);
    int code = qbc_inspect(what, cfg.data_dir, realm, after, limit, bodies);
    qbc_config_free(&cfg);
    return code;
}

int main(int argc, char **argv)
{
    qbc_harden_process();                  /* before any secret is read */
    curl_global_init(CURL_GLOBAL_DEFAULT); /* once, before any thread (STYLE.md 3.2) */
    atexit(curl_global_cleanup);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("qbcdc %s\n", QBCDC_VERSION);
        return 0;
    }
    if (strcmp(cmd, "backup") == 0)
        return qbc_cli_backup(argc, argv);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc, argv);
    if (strcmp(cmd, "inbox") == 0 || strcmp(cmd, "pending") == 0 || strcmp(cmd, "stats") == 0 ||
        strcmp(cmd, "entities") == 0 || strcmp(cmd, "feed") == 0 || strcmp(cmd, "dead") == 0)
        return cmd_inspect(cmd, argc, argv);
    if (strcmp(cmd, "cdc") == 0 || strcmp(cmd, "backfill") == 0 || strcmp(cmd, "jobs") == 0 ||
        strcmp(cmd, "cancel") == 0 || strcmp(cmd, "realms") == 0 || strcmp(cmd, "register") == 0 ||
        strcmp(cmd, "budget") == 0 || strcmp(cmd, "disconnect") == 0 || strcmp(cmd, "dead-letters") == 0 ||
        strcmp(cmd, "retry") == 0 || strcmp(cmd, "subscriptions") == 0 || strcmp(cmd, "cluster") == 0)
        return qbc_adminapi_main(cmd, argc, argv);
    if (cmd[0] == '-')
        return usage_error("unknown flag '%s' (see qbcdc --help)", cmd);
    return usage_error("unknown command '%s' (see qbcdc --help)", cmd);
}
