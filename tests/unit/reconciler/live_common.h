/*
 * live_common.h — helpers for the tests that run against the real qbosim and a real
 * store (test_live.c, test_e2e.c): HTTP, starting qbosim, registering tokens,
 * notices, comparing the store with /sim/truth. Included once per test binary.
 */
#ifndef QBC_TEST_LIVE_COMMON_H
#define QBC_TEST_LIVE_COMMON_H
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <curl/curl.h>
#include <jansson.h>
#include "tap.h"
#include "rec_internal.h"

static int g_port;
static pid_t g_sim;
static qbc_store_t *g_store;
static char g_base[64];

/* ---------------------------------------------------------------- http */

struct buf {
    char *p;
    size_t n;
};

static __attribute__((unused)) size_t on_data(char *p, size_t s, size_t m, void *ud)
{
    struct buf *b = ud;
    b->p = realloc(b->p, b->n + s * m + 1);
    memcpy(b->p + b->n, p, s * m);
    b->n += s * m;
    b->p[b->n] = '\0';
    return s * m;
}

static json_t *http_json_at(const char *base, const char *method, const char *path, const char *body, const char *auth,
                            long *status)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", base, path);
    CURL *e = curl_easy_init();
    struct buf b = {NULL, 0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (auth)
        h = curl_slist_append(h, auth);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (body)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(e);
    long st = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
    if (status)
        *status = rc == CURLE_OK ? st : 0;
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    json_t *j = b.p ? json_loads(b.p, 0, NULL) : NULL;
    free(b.p);
    return j;
}

static json_t *http_json(const char *method, const char *path, const char *body, long *status)
{
    return http_json_at(g_base, method, path, body, NULL, status);
}

/* ---------------------------------------------------------------- qbosim */

static __attribute__((unused)) int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static __attribute__((unused)) int sim_start(const char *const *extra)
{
    g_port = free_port();
    snprintf(g_base, sizeof(g_base), "http://127.0.0.1:%d", g_port);
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", g_port);
    const char *argv[40] = {QBOSIM_PATH, "--listen",    listen, "--realms",    "3",   "--seed",
                            "7",         "--entities",  "40",   "--client-id", "cid", "--client-secret",
                            "csecret",   "--log-level", "warn"};
    size_t n = 15;
    for (; extra && *extra && n < 38; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    g_sim = fork();
    if (g_sim == 0) {
        execv(QBOSIM_PATH, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        long st = 0;
        json_t *j = http_json("GET", "/sim/health", NULL, &st);
        json_decref(j);
        if (st == 200)
            return 0;
        usleep(50000);
    }
    return -1;
}

static __attribute__((unused)) void sim_stop(void)
{
    if (g_sim > 0) {
        kill(g_sim, SIGTERM);
        waitpid(g_sim, NULL, 0);
        g_sim = 0;
    }
}

/* ---------------------------------------------------------------- store helpers */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

static __attribute__((unused)) void on_commit(qbc_store_job_t *j)
{
    pthread_mutex_lock(&g_mu);
    j->data = (void *)1;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

/* readies j for submission: its callback marks it done (see wait_job) */
static __attribute__((unused)) qbc_store_job_t *prep_job(qbc_store_job_t *j)
{
    j->on_commit = on_commit;
    j->data = NULL;
    return j;
}

/* waits for j, submitted after prep_job (submitted: what the submit call returned) */
static __attribute__((unused)) int wait_job(qbc_store_job_t *j, int submitted)
{
    if (submitted != 0)
        return -1;
    pthread_mutex_lock(&g_mu);
    while (j->data == NULL)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    qbc_store_flush(g_store); /* a webhook is acked from the journal; read it back from LMDB */
    return j->result;
}

/* registers every realm's current refresh token (as PUT /admin/realms/{realm}/tokens would) */
static __attribute__((unused)) int register_tokens(const char *only)
{
    json_t *realms = http_json("GET", "/sim/realms", NULL, NULL);
    const char *realm;
    json_t *v;
    int n = 0;
    json_object_foreach(realms, realm, v)
    {
        if (only && strcmp(only, realm) != 0)
            continue;
        qbc_tokens_t *t = calloc(1, sizeof(*t));
        snprintf(t->refresh_token, sizeof(t->refresh_token), "%s",
                 json_string_value(json_object_get(v, "refresh_token")));
        qbc_realm_t st;
        memset(&st, 0, sizeof(st));
        snprintf(st.realm, sizeof(st.realm), "%s", realm);
        st.status = QBC_REALM_ACTIVE;
        st.connected_ns = qbc_now_ns();
        qbc_realm_job_t j;
        memset(&j, 0, sizeof(j));
        snprintf(j.realm, sizeof(j.realm), "%s", realm);
        j.state = &st;
        j.tokens = t;
        prep_job(&j.job);
        if (wait_job(&j.job, qbc_store_put_realm(g_store, &j)) == 0)
            n++;
        memset(t, 0, sizeof(*t));
        free(t);
    }
    json_decref(realms);
    return n;
}

/* one pending notice per entity qbosim knows: live ones as updates, deleted ones as deletes
 * (every other deleted one as an update, so that its query misses and a read answers 610) */
static __attribute__((unused)) size_t notify_some(const char *only_realm, size_t max)
{
    json_t *truth = http_json("GET", "/sim/truth", NULL, NULL);
    size_t cap = 8192, n = 0;
    qbc_event_t *evs = calloc(cap, sizeof(*evs));
    const char *realm;
    json_t *rv;
    int64_t now = qbc_now_ns();
    json_object_foreach(truth, realm, rv)
    {
        if (only_realm && strcmp(realm, only_realm) != 0)
            continue;
        const char *key;
        json_t *tok;
        json_object_foreach(json_object_get(rv, "live"), key, tok)
        {
            if (n == cap || n == max)
                break;
            qbc_event_t *e = &evs[n++];
            snprintf(e->realm, sizeof(e->realm), "%s", realm);
            sscanf(key, "%47[^/]/%63s", e->entity, e->id);
            e->op = QBC_OP_UPDATE;
            e->updated_ns = now;
        }
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(rv, "deleted"), i, d)
        {
            if (n == cap || n == max)
                break;
            qbc_event_t *e = &evs[n++];
            snprintf(e->realm, sizeof(e->realm), "%s", realm);
            sscanf(json_string_value(d), "%47[^/]/%63s", e->entity, e->id);
            e->op = i % 2 ? QBC_OP_UPDATE : QBC_OP_DELETE;
            e->updated_ns = now;
        }
    }
    json_decref(truth);
    qbc_webhook_job_t j, *jp = &j;
    memset(&j, 0, sizeof(j));
    j.body = "{\"test\":1}";
    j.body_len = strlen(j.body);
    j.events = evs;
    j.n_events = n;
    j.format = QBC_FORMAT_CLASSIC;
    j.received_ns = now;
    prep_job(&j.job);
    int rc = wait_job(&j.job, qbc_store_submit_webhooks(g_store, &jp, 1));
    free(evs);
    return rc == 0 ? n : 0;
}

static __attribute__((unused)) size_t notify_all(const char *only_realm)
{
    return notify_some(only_realm, (size_t)-1);
}

static __attribute__((unused)) uint64_t pending(void)
{
    qbc_store_stats_t st;
    return qbc_store_stats(g_store, &st) == 0 ? st.pending : (uint64_t)-1;
}

static __attribute__((unused)) int wait_pending(uint64_t want, int timeout_ms)
{
    for (int i = 0; i < timeout_ms / 20; i++) {
        if (pending() <= want)
            return 1;
        usleep(20000);
    }
    return 0;
}

struct cmp_ctx {
    json_t *truth;
    size_t checked, wrong;
};

static __attribute__((unused)) int on_entity(const char *realm, const char *entity, const char *id,
                                             const qbc_entity_rec_t *rec, void *arg)
{
    struct cmp_ctx *c = arg;
    char key[160];
    snprintf(key, sizeof(key), "%s/%s", entity, id);
    json_t *rv = json_object_get(c->truth, realm);
    json_t *tok = json_object_get(json_object_get(rv, "live"), key);
    c->checked++;
    if (tok != NULL) {
        if (rec->deleted || strcmp(rec->sync_token, json_string_value(tok)) != 0) {
            if (c->wrong++ < 5)
                printf("# %s %s: stored %s%s, truth %s\n", realm, key, rec->sync_token,
                       rec->deleted ? " (deleted)" : "", json_string_value(tok));
        }
    } else if (!rec->deleted) {
        if (c->wrong++ < 5)
            printf("# %s %s: stored live, truth deleted\n", realm, key);
    }
    return 0;
}

/* every stored entity equals the truth; returns how many were compared */
static __attribute__((unused)) size_t compare_truth(size_t *wrong)
{
    struct cmp_ctx c = {http_json("GET", "/sim/truth", NULL, NULL), 0, 0};
    qbc_store_entity_scan(g_store, NULL, on_entity, &c);
    json_decref(c.truth);
    *wrong = c.wrong;
    return c.checked;
}

static __attribute__((unused)) long sim_total_requests(void)
{
    json_t *s = http_json("GET", "/sim/stats", NULL, NULL);
    long total = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(s, "realms"), k, v) total +=
        (long)json_integer_value(json_object_get(v, "total"));
    json_decref(s);
    return total;
}

static __attribute__((unused)) const char *first_realm(char *buf, size_t n)
{
    json_t *realms = http_json("GET", "/sim/realms", NULL, NULL);
    const char *k;
    json_t *v;
    buf[0] = '\0';
    json_object_foreach(realms, k, v)
    {
        snprintf(buf, n, "%s", k);
        break;
    }
    json_decref(realms);
    return buf;
}

static __attribute__((unused)) int count_cb(const qbc_pending_t *p, void *ctx)
{
    (void)p;
    (*(size_t *)ctx)++;
    return 0;
}

static char *make_tmp(void)
{
    char *d = strdup("/tmp/qbcdc-rec-test-XXXXXX");
    return mkdtemp(d);
}

static __attribute__((unused)) void rm_tmp(char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("could not remove the test directory");
    free(dir);
}

#endif
