/*
 * main.c — qbosim's command line: flags → sim_conf_t → sim_server_run().
 *
 * Unknown flags and bad values print one line on stderr and exit 2, like qbcdc.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "common.h"
#include "sim.h"

static const char usage[] =
    "usage: qbosim [flags]\n"
    "A local QuickBooks Online stand-in: OAuth, the v3 API (entity read, query, cdc, batch),\n"
    "per-realm limits, signed webhooks (classic or CloudEvents) and fault injection.\n"
    "\n"
    "Server and data:\n"
    "  --listen HOST:PORT        address to serve on (default 127.0.0.1:9090)\n"
    "  --realms N                number of companies (default 3)\n"
    "  --seed N                  seed for companies, entities and mutations (default 1)\n"
    "  --entities N              entities of each type per realm at start (default 20)\n"
    "  --seed-days N             seeded records were last changed within N days (default 45)\n"
    "OAuth:\n"
    "  --client-id ID            app client id (default qbosim-client)\n"
    "  --client-secret S         app client secret (default qbosim-secret)\n"
    "  --access-ttl SECONDS      access token lifetime (default 3600)\n"
    "  --refresh-ttl SECONDS     refresh token lifetime (default 8726400)\n"
    "  --refresh-grace SECONDS   how long a rotated-away refresh token still works (default 86400)\n"
    "Webhooks:\n"
    "  --webhook-url URL[,URL..] where to POST webhooks (none: changes are made, nothing is sent);\n"
    "                            several: attempts go round-robin over them (qbcdc nodes behind a\n"
    "                            load balancer)\n"
    "  --webhook-pin sha256//B64 an https URL's server key must have this pin (curl's\n"
    "                            PINNEDPUBLICKEY); names are then not checked\n"
    "  --state FILE              keep the companies' data in FILE across restarts (loaded at start,\n"
    "                            saved every few seconds and at exit); without it, seeded each start\n"
    "  --verifier-token T        key for intuit-signature (default qbosim-verifier)\n"
    "  --format F                classic | cloudevents (default classic)\n"
    "  --void-type T             CloudEvents verb for voids: void | voided (default void)\n"
    "  --mutate-rate R           background changes per second over all realms (default 0)\n"
    "  --per-hook K              changes per webhook (default 1)\n"
    "  --batch-window-ms MS      background changes are collected this long per webhook (default 0)\n"
    "  --loss P                  fraction of webhooks never sent (default 0)\n"
    "  --dup P                   fraction of webhooks sent twice (default 0)\n"
    "  --reorder P               chance that adjacent webhooks swap places (default 0)\n"
    "  --delay-ms MS             delay before a webhook's first attempt (default 0)\n"
    "  --delay-jitter-ms MS      extra random delay, 0..MS (default 0)\n"
    "  --retry-scale F           multiplies Intuit's retry schedule 10s,20s,30s,5m,20m,2h,4h,6h... (default 1)\n"
    "  --max-attempts N          give up after N attempts, 0 = never (default 0)\n"
    "  --webhook-timeout-ms MS   a 200 must come within this (default 3000)\n"
    "  --webhook-concurrency N   parallel deliveries (default 1: in order)\n"
    "Limits:\n"
    "  --rate-limit N            requests per window per realm (default 500)\n"
    "  --rate-window SECONDS     length of that window (default 60)\n"
    "  --concurrency-limit N     requests in flight per realm (default 10)\n"
    "  --batch-rate-limit N      batch requests per minute per realm (default 40)\n"
    "  --batch-max-items N       items per batch request (default 30)\n"
    "  --throttle-xml P          fraction of 429s answered as XML (default 0.5)\n"
    "Faults (also adjustable at run time with POST /sim/faults):\n"
    "  --latency-ms MS           delay every API answer (default 0)\n"
    "  --error-rate P            fraction of API requests answered 500/503 (default 0)\n"
    "  --reset-rate P            fraction of API requests whose connection is dropped (default 0)\n"
    "Other:\n"
    "  --log-level L             error | warn | info | debug (default info)\n"
    "  --help, --version\n"
    "\n"
    "Control endpoints: GET /sim/realms, GET /sim/truth, GET /sim/stats, GET /sim/entity?realm=R&entity=E&id=N,\n"
    "POST /sim/mutate?n=N[&realm=R][&per_hook=K][&loss=P][&format=F], GET|POST /sim/faults,\n"
    "POST /sim/expire-tokens, POST /sim/revoke?realm=R. See sim/README.md.\n";

static int bad(const char *flag, const char *val)
{
    fprintf(stderr, "qbosim: invalid value for --%s: '%s' (see --help)\n", flag, val);
    return 2;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    sim_conf_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.listen_host, sizeof(c.listen_host), "127.0.0.1");
    c.listen_port = 9090;
    c.nrealms = 3;
    c.seed = 1;
    c.per_type = 20;
    c.seed_days = 45;
    c.verifier_token = "qbosim-verifier";
    c.client_id = "qbosim-client";
    c.client_secret = "qbosim-secret";
    c.format = SIM_FMT_CLASSIC;
    c.void_verb = "void";
    c.access_ttl_s = 3600;
    c.refresh_ttl_s = 8726400;
    c.refresh_grace_s = 86400;
    c.per_hook = 1;
    c.retry_scale = 1.0;
    c.webhook_timeout_ms = 3000;
    c.webhook_concurrency = 1;
    c.rate_limit = 500;
    c.rate_window_s = 60;
    c.concurrency_limit = 10;
    c.batch_rate_limit = 40;
    c.batch_max_items = 30;
    c.throttle_xml = 0.5;

    enum {
        O_LISTEN = 256,
        O_REALMS,
        O_SEED,
        O_ENTITIES,
        O_SEED_DAYS,
        O_CLIENT_ID,
        O_CLIENT_SECRET,
        O_ACCESS_TTL,
        O_REFRESH_TTL,
        O_REFRESH_GRACE,
        O_WEBHOOK_URL,
        O_WEBHOOK_PIN,
        O_STATE,
        O_VERIFIER,
        O_FORMAT,
        O_VOID_TYPE,
        O_MUTATE_RATE,
        O_PER_HOOK,
        O_BATCH_WINDOW,
        O_LOSS,
        O_DUP,
        O_REORDER,
        O_DELAY,
        O_JITTER,
        O_RETRY_SCALE,
        O_MAX_ATTEMPTS,
        O_WH_TIMEOUT,
        O_WH_CONC,
        O_RATE_LIMIT,
        O_RATE_WINDOW,
        O_CONC_LIMIT,
        O_BATCH_RATE,
        O_BATCH_MAX,
        O_THROTTLE_XML,
        O_LATENCY,
        O_ERROR_RATE,
        O_RESET_RATE,
        O_LOG_LEVEL,
        O_HELP,
        O_VERSION
    };
    static const struct option opts[] = {{"listen", required_argument, NULL, O_LISTEN},
                                         {"realms", required_argument, NULL, O_REALMS},
                                         {"seed", required_argument, NULL, O_SEED},
                                         {"entities", required_argument, NULL, O_ENTITIES},
                                         {"seed-days", required_argument, NULL, O_SEED_DAYS},
                                         {"client-id", required_argument, NULL, O_CLIENT_ID},
                                         {"client-secret", required_argument, NULL, O_CLIENT_SECRET},
                                         {"access-ttl", required_argument, NULL, O_ACCESS_TTL},
                                         {"refresh-ttl", required_argument, NULL, O_REFRESH_TTL},
                                         {"refresh-grace", required_argument, NULL, O_REFRESH_GRACE},
                                         {"webhook-url", required_argument, NULL, O_WEBHOOK_URL},
                                         {"webhook-pin", required_argument, NULL, O_WEBHOOK_PIN},
                                         {"state", required_argument, NULL, O_STATE},
                                         {"verifier-token", required_argument, NULL, O_VERIFIER},
                                         {"format", required_argument, NULL, O_FORMAT},
                                         {"void-type", required_argument, NULL, O_VOID_TYPE},
                                         {"mutate-rate", required_argument, NULL, O_MUTATE_RATE},
                                         {"per-hook", required_argument, NULL, O_PER_HOOK},
                                         {"batch-window-ms", required_argument, NULL, O_BATCH_WINDOW},
                                         {"loss", required_argument, NULL, O_LOSS},
                                         {"dup", required_argument, NULL, O_DUP},
                                         {"reorder", required_argument, NULL, O_REORDER},
                                         {"delay-ms", required_argument, NULL, O_DELAY},
                                         {"delay-jitter-ms", required_argument, NULL, O_JITTER},
                                         {"retry-scale", required_argument, NULL, O_RETRY_SCALE},
                                         {"max-attempts", required_argument, NULL, O_MAX_ATTEMPTS},
                                         {"webhook-timeout-ms", required_argument, NULL, O_WH_TIMEOUT},
                                         {"webhook-concurrency", required_argument, NULL, O_WH_CONC},
                                         {"rate-limit", required_argument, NULL, O_RATE_LIMIT},
                                         {"rate-window", required_argument, NULL, O_RATE_WINDOW},
                                         {"concurrency-limit", required_argument, NULL, O_CONC_LIMIT},
                                         {"batch-rate-limit", required_argument, NULL, O_BATCH_RATE},
                                         {"batch-max-items", required_argument, NULL, O_BATCH_MAX},
                                         {"throttle-xml", required_argument, NULL, O_THROTTLE_XML},
                                         {"latency-ms", required_argument, NULL, O_LATENCY},
                                         {"error-rate", required_argument, NULL, O_ERROR_RATE},
                                         {"reset-rate", required_argument, NULL, O_RESET_RATE},
                                         {"log-level", required_argument, NULL, O_LOG_LEVEL},
                                         {"help", no_argument, NULL, O_HELP},
                                         {"version", no_argument, NULL, O_VERSION},
                                         {NULL, 0, NULL, 0}};
    opterr = 0;
    int o, idx;
    long l;
    double d;
    while ((o = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        const char *name = NULL;
        for (const struct option *op = opts; op->name; op++)
            if (op->val == o)
                name = op->name;
        switch (o) {
        case O_LISTEN: {
            const char *colon = optarg ? strrchr(optarg, ':') : NULL;
            if (!colon || colon == optarg || (size_t)(colon - optarg) >= sizeof(c.listen_host) ||
                parse_long(colon + 1, 0, 65535, &l))
                return bad(name, optarg);
            memcpy(c.listen_host, optarg, (size_t)(colon - optarg));
            c.listen_host[colon - optarg] = '\0';
            c.listen_port = (int)l;
            break;
        }
#define LONG_OPT(id, lo, hi, dst)                                                                                      \
    case id:                                                                                                           \
        if (parse_long(optarg, lo, hi, &l))                                                                            \
            return bad(name, optarg);                                                                                  \
        dst = l;                                                                                                       \
        break;
#define DBL_OPT(id, lo, hi, dst)                                                                                       \
    case id:                                                                                                           \
        if (parse_double(optarg, lo, hi, &d))                                                                          \
            return bad(name, optarg);                                                                                  \
        dst = d;                                                                                                       \
        break;
            LONG_OPT(O_REALMS, 1, 100000, c.nrealms)
            LONG_OPT(O_ENTITIES, 0, 1000000, c.per_type)
            LONG_OPT(O_SEED_DAYS, 1, 3650, c.seed_days)
            LONG_OPT(O_ACCESS_TTL, 1, 100L * 365 * 86400, c.access_ttl_s)
            LONG_OPT(O_REFRESH_TTL, 1, 100L * 365 * 86400, c.refresh_ttl_s)
            LONG_OPT(O_REFRESH_GRACE, 0, 100L * 365 * 86400, c.refresh_grace_s)
            LONG_OPT(O_PER_HOOK, 1, 100000, c.per_hook)
            LONG_OPT(O_BATCH_WINDOW, 0, 3600000, c.batch_window_ms)
            LONG_OPT(O_DELAY, 0, 3600000, c.delay_ms)
            LONG_OPT(O_JITTER, 0, 3600000, c.delay_jitter_ms)
            LONG_OPT(O_MAX_ATTEMPTS, 0, 1000000, c.max_attempts)
            LONG_OPT(O_WH_TIMEOUT, 1, 600000, c.webhook_timeout_ms)
            LONG_OPT(O_WH_CONC, 1, 256, c.webhook_concurrency)
            LONG_OPT(O_RATE_LIMIT, 0, 10000000, c.rate_limit)
            LONG_OPT(O_RATE_WINDOW, 1, 86400, c.rate_window_s)
            LONG_OPT(O_CONC_LIMIT, 1, 1000000, c.concurrency_limit)
            LONG_OPT(O_BATCH_RATE, 0, 10000000, c.batch_rate_limit)
            LONG_OPT(O_BATCH_MAX, 1, 100000, c.batch_max_items)
            LONG_OPT(O_LATENCY, 0, 600000, c.latency_ms)
            DBL_OPT(O_MUTATE_RATE, 0, 1e6, c.mutate_rate)
            DBL_OPT(O_LOSS, 0, 1, c.loss)
            DBL_OPT(O_DUP, 0, 1, c.dup)
            DBL_OPT(O_REORDER, 0, 1, c.reorder)
            DBL_OPT(O_RETRY_SCALE, 0, 1000, c.retry_scale)
            DBL_OPT(O_THROTTLE_XML, 0, 1, c.throttle_xml)
            DBL_OPT(O_ERROR_RATE, 0, 1, c.error_rate)
            DBL_OPT(O_RESET_RATE, 0, 1, c.reset_rate)
#undef LONG_OPT
#undef DBL_OPT
        case O_SEED: {
            char *end;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (!*optarg || *end)
                return bad(name, optarg);
            c.seed = v;
            break;
        }
        case O_CLIENT_ID:
            c.client_id = optarg;
            break;
        case O_CLIENT_SECRET:
            c.client_secret = optarg;
            break;
        case O_WEBHOOK_URL:
            c.webhook_url = optarg;
            break;
        case O_WEBHOOK_PIN:
            if (strncmp(optarg, "sha256//", 8) != 0)
                return bad(name, optarg);
            c.webhook_pin = optarg;
            break;
        case O_STATE:
            if (!*optarg)
                return bad(name, optarg);
            c.state_path = optarg;
            break;
        case O_VERIFIER:
            if (!*optarg)
                return bad(name, optarg);
            c.verifier_token = optarg;
            break;
        case O_FORMAT:
            if (strcmp(optarg, "classic") == 0)
                c.format = SIM_FMT_CLASSIC;
            else if (strcmp(optarg, "cloudevents") == 0)
                c.format = SIM_FMT_CLOUDEVENTS;
            else
                return bad(name, optarg);
            break;
        case O_VOID_TYPE:
            if (strcmp(optarg, "void") != 0 && strcmp(optarg, "voided") != 0)
                return bad(name, optarg);
            c.void_verb = optarg;
            break;
        case O_LOG_LEVEL:
            if (qbc_log_set_level_name(optarg) != 0)
                return bad(name, optarg);
            break;
        case O_HELP:
            fputs(usage, stdout);
            return 0;
        case O_VERSION:
            printf("qbosim %s\n", QBCDC_VERSION);
            return 0;
        default:
            fprintf(stderr, "qbosim: unknown or incomplete flag '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qbosim: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = sim_server_run(&c);
    curl_global_cleanup();
    return rc;
}
