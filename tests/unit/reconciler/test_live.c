/*
 * test_live.c — the reconciler thread against the real simulator (build/qbosim) and a
 * real store: pending notices for every entity qbosim knows (live and deleted) must
 * converge to qbosim's truth, through token expiry, a revoked realm (disconnected, work
 * kept, resumed on new tokens), injected 5xx and resets, and a 429 storm on one realm.
 */
#include "live_common.h"

/* ---------------------------------------------------------------- the test */

/* a 429 storm on one realm: it pauses, the others stay fresh */
static void storm(void)
{
    const char *extra[] = {"--rate-limit", "20", "--rate-window", "2", NULL};
    if (sim_start(extra) != 0) {
        ok(0, "qbosim (strict limits) started");
        return;
    }
    char *dir = make_tmp();
    qbc_store_config_t scfg = {.dir = dir};
    is_int(qbc_store_open(&scfg, &g_store), 0, "store opened");
    register_tokens(NULL);
    json_t *realms = http_json("GET", "/sim/realms", NULL, NULL);
    char a[64] = "", b[64] = "";
    const char *k;
    json_t *v;
    json_object_foreach(realms, k, v)
    {
        if (!a[0])
            snprintf(a, sizeof(a), "%s", k);
        else if (!b[0])
            snprintf(b, sizeof(b), "%s", k);
    }
    json_decref(realms);
    size_t na = notify_some(a, 80);
    ok(na == 80, "80 notices for realm A");
    char token_url[128];
    snprintf(token_url, sizeof(token_url), "%s/oauth2/v1/tokens/bearer", g_base);
    qbc_reconciler_config_t cfg = {.api_base = g_base,
                                   .token_url = token_url,
                                   .client_id = "cid",
                                   .client_secret = "csecret",
                                   .ids_per_query = 1,
                                   .coalesce_ms = 1,
                                   .backoff_base_ms = 50,
                                   .backoff_max_ms = 400,
                                   .throttle_pause_ms = 1500};
    qbc_reconciler_t *r;
    is_int(qbc_reconciler_start(&cfg, g_store, &r), 0, "reconciler started");
    qbc_reconciler_stats_t st;
    for (int i = 0; i < 500; i++) {
        qbc_reconciler_snapshot(r, &st);
        if (st.throttled > 0)
            break;
        usleep(10000);
    }
    ok(st.throttled > 0, "realm A is throttled");
    int64_t t = qbc_mono_ns();
    size_t nb = notify_some(b, 5);
    /* B's five notices must be done while A still waits */
    int b_done = 0;
    while (!b_done && qbc_mono_ns() - t < 3000000000LL) {
        size_t left = 0;
        qbc_store_pending_scan(g_store, b, count_cb, &left);
        if (left == 0)
            b_done = 1;
        else
            usleep(5000);
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "realm B (%zu notices) done %.0f ms after A was throttled; A still has %llu pending", nb,
             (double)(qbc_mono_ns() - t) / 1e6, (unsigned long long)pending());
    diag(msg);
    ok(b_done && qbc_mono_ns() - t < 1000000000LL, "the other realm is served within 1 s");
    ok(wait_pending(0, 90000), "the throttled realm catches up");
    size_t wrong;
    compare_truth(&wrong);
    is_int(wrong, 0, "equal to the truth after the storm");
    qbc_reconciler_snapshot(r, &st);
    snprintf(msg, sizeof(msg), "storm: %llu requests, %llu throttled", (unsigned long long)st.requests,
             (unsigned long long)st.throttled);
    diag(msg);
    qbc_reconciler_stop(r, 1000);
    qbc_store_close(g_store);
    sim_stop();
    rm_tmp(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    qbc_log_set_level(QBC_LOG_WARN);
    if (getenv("QBC_TEST_LOG"))
        qbc_log_set_level_name(getenv("QBC_TEST_LOG"));
    if (sim_start(NULL) != 0) {
        ok(0, "qbosim started");
        return done_testing();
    }
    char *dir = make_tmp();
    qbc_store_config_t scfg = {.dir = dir};
    is_int(qbc_store_open(&scfg, &g_store), 0, "store opened");

    long t0 = sim_total_requests();
    json_decref(http_json("POST", "/sim/mutate?n=400", NULL, NULL));
    is_int(register_tokens(NULL), 3, "3 realms registered");
    size_t notified = notify_all(NULL);
    ok(notified > 400, "a notice for every entity");

    char token_url[128];
    snprintf(token_url, sizeof(token_url), "%s/oauth2/v1/tokens/bearer", g_base);
    qbc_reconciler_config_t cfg = {.api_base = g_base,
                                   .token_url = token_url,
                                   .client_id = "cid",
                                   .client_secret = "csecret",
                                   .minorversion = 75,
                                   .backoff_base_ms = 50,
                                   .backoff_max_ms = 400,
                                   .throttle_pause_ms = 1000,
                                   .max_attempts = 20,
                                   .coalesce_ms = 100};
    qbc_reconciler_t *r;
    int64_t start = qbc_mono_ns();
    is_int(qbc_reconciler_start(&cfg, g_store, &r), 0, "reconciler started");
    ok(wait_pending(0, 20000), "every notice reconciled");
    int64_t took = qbc_mono_ns() - start;
    size_t wrong, checked = compare_truth(&wrong);
    is_int(checked, notified, "one stored entity per notice");
    is_int(wrong, 0, "stored entities equal qbosim's truth");
    long calls = sim_total_requests() - t0;
    char msg[200];
    snprintf(msg, sizeof(msg), "burst: %zu entities, %ld API calls (%.3f per entity) in %.0f ms", notified, calls,
             (double)calls / (double)notified, (double)took / 1e6);
    diag(msg);
    ok((double)calls / (double)notified <= 0.05, "burst costs <= 0.05 calls per entity");
    qbc_reconciler_stats_t st;
    qbc_reconciler_snapshot(r, &st);
    is_int(st.token_refreshes, 3, "one refresh per realm");
    ok(st.versions_offered >= notified, "every version offered");
    is_int(st.feed_appended, notified, "each one new to the feed");

    /* an isolated change is fetched at once */
    {
        json_decref(http_json("POST", "/sim/mutate?n=1", NULL, NULL));
        long before = sim_total_requests();
        int64_t t = qbc_mono_ns();
        notify_all(NULL); /* mostly duplicates: the store dedupes, one is new */
        ok(wait_pending(0, 10000), "re-notified all converge");
        snprintf(msg, sizeof(msg), "re-notify of %zu entities: %ld calls, %.0f ms", notified,
                 sim_total_requests() - before, (double)(qbc_mono_ns() - t) / 1e6);
        diag(msg);
        checked = compare_truth(&wrong);
        is_int(wrong, 0, "still equal to the truth");
        qbc_reconciler_snapshot(r, &st);
        is_int(st.feed_appended, notified + 1, "duplicates add nothing to the feed; the change adds one");
    }

    /* access tokens expire: one refresh per realm, nothing lost */
    json_decref(http_json("POST", "/sim/expire-tokens", NULL, NULL));
    json_decref(http_json("POST", "/sim/mutate?n=60", NULL, NULL));
    notify_all(NULL);
    ok(wait_pending(0, 20000), "converges after tokens expired");
    checked = compare_truth(&wrong);
    is_int(wrong, 0, "equal to the truth after expiry");
    qbc_reconciler_snapshot(r, &st);
    is_int(st.token_refreshes, 6, "a 401 led to one refresh per realm");

    /* a revoked realm: disconnected, its notices kept; new tokens resume it */
    char realm[64];
    first_realm(realm, sizeof(realm));
    char path[128];
    snprintf(path, sizeof(path), "/sim/revoke?realm=%s", realm);
    json_decref(http_json("POST", path, NULL, NULL));
    snprintf(path, sizeof(path), "/sim/mutate?n=30&realm=%s", realm);
    json_decref(http_json("POST", path, NULL, NULL));
    json_decref(http_json("POST", "/sim/mutate?n=30", NULL, NULL));
    size_t in_realm = notify_all(realm);
    notify_all(NULL);
    qbc_realm_t rs;
    int disconnected = 0;
    for (int i = 0; i < 500 && !disconnected; i++) {
        if (qbc_store_realm_get(g_store, realm, &rs) == 0 && rs.status == QBC_REALM_DISCONNECTED)
            disconnected = 1;
        else
            usleep(20000);
    }
    ok(disconnected, "invalid_grant disconnects the realm");
    ok(strstr(rs.last_error, "invalid_grant") != NULL, "with the reason as last_error");
    ok(wait_pending(in_realm, 20000), "other realms carry on");
    usleep(300000);
    is_int(pending(), in_realm, "the disconnected realm's notices are kept");
    is_int(register_tokens(realm), 1, "new tokens registered");
    ok(wait_pending(0, 20000), "the realm resumes");
    checked = compare_truth(&wrong);
    is_int(wrong, 0, "equal to the truth after reconnecting");

    /* 5xx and connection resets: retried with backoff */
    json_decref(http_json("POST", "/sim/faults", "{\"error_rate\":0.3,\"reset_rate\":0.1}", NULL));
    json_decref(http_json("POST", "/sim/mutate?n=100", NULL, NULL));
    notify_all(NULL);
    ok(wait_pending(0, 30000), "converges through 5xx and resets");
    json_decref(http_json("POST", "/sim/faults", "{\"error_rate\":0,\"reset_rate\":0}", NULL));
    checked = compare_truth(&wrong);
    is_int(wrong, 0, "equal to the truth after faults");
    qbc_reconciler_snapshot(r, &st);
    ok(st.server_errors > 0, "server errors were seen and counted");
    is_int(st.dead_letters, 0, "no dead letters");

    /* latency of isolated changes (from first sighting to commit) */
    qbc_reconciler_snapshot(r, &st);
    snprintf(msg, sizeof(msg), "requests %llu (queries %llu, reads %llu), refreshes %llu, throttled %llu",
             (unsigned long long)st.requests, (unsigned long long)st.queries, (unsigned long long)st.reads,
             (unsigned long long)st.token_refreshes, (unsigned long long)st.throttled);
    diag(msg);

    /* isolated changes with 100 ms upstream latency: notice committed -> retired */
    {
        json_decref(http_json("POST", "/sim/faults", "{\"latency_ms\":100}", NULL));
        int64_t lat[20];
        int multi = 0; /* isolated changes that took more than one call */
        for (int i = 0; i < 20; i++) {
            usleep(150000); /* > coalesce_ms: each one is isolated */
            long before = sim_total_requests();
            int64_t t = qbc_mono_ns();
            notify_some(realm, 1);
            while (pending() > 0 && qbc_mono_ns() - t < 5000000000LL)
                usleep(500);
            lat[i] = qbc_mono_ns() - t;
            multi += sim_total_requests() - before != 1;
        }
        json_decref(http_json("POST", "/sim/faults", "{\"latency_ms\":0}", NULL));
        for (int i = 0; i < 20; i++)
            for (int k = i + 1; k < 20; k++)
                if (lat[k] < lat[i]) {
                    int64_t x = lat[i];
                    lat[i] = lat[k];
                    lat[k] = x;
                }
        snprintf(msg, sizeof(msg), "isolated change, 100 ms upstream latency: notice->retired p50 %.1f ms, max %.1f ms",
                 (double)lat[10] / 1e6, (double)lat[19] / 1e6);
        diag(msg);
        ok(lat[10] < 400000000LL, "an isolated change is fetched at once (p50 < 400 ms with 100 ms latency)");
        /* one call each; a sweep or refresh may coincide with one of the 20, not more */
        snprintf(msg, sizeof(msg), "an isolated change costs one call (%d of 20 took more)", multi);
        ok(multi <= 1, msg);
    }

    /* stop: requests still in flight after drain_ms are aborted; their notices stay pending */
    json_decref(http_json("POST", "/sim/faults", "{\"latency_ms\":3000}", NULL));
    size_t held = notify_some(realm, 10);
    for (int i = 0; i < 200; i++) {
        qbc_reconciler_snapshot(r, &st);
        int inflight = 0;
        for (size_t k = 0; k < st.n_realms; k++)
            inflight += st.realms[k].inflight;
        if (inflight > 0)
            break;
        usleep(10000);
    }
    int64_t ts = qbc_mono_ns();
    qbc_reconciler_stop(r, 200);
    double stop_ms = (double)(qbc_mono_ns() - ts) / 1e6;
    ok(stop_ms < 1500, "stop returns after about drain_ms when requests hang");
    is_int(pending(), held, "aborted fetches leave their notices pending");
    json_decref(http_json("POST", "/sim/faults", "{\"latency_ms\":0}", NULL));
    is_int(qbc_reconciler_start(&cfg, g_store, &r), 0, "a new reconciler on the same store");
    ok(wait_pending(0, 10000), "it picks the kept notices up");
    checked = compare_truth(&wrong);
    is_int(wrong, 0, "equal to the truth after the restart");
    ts = qbc_mono_ns();
    qbc_reconciler_stop(r, 2000);
    ok(qbc_mono_ns() - ts < 3000000000LL, "stopped, within its drain time");
    qbc_store_close(g_store);
    sim_stop();
    rm_tmp(dir);
    storm();
    curl_global_cleanup();
    return done_testing();
}
