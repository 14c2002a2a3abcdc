/*
 * meter.c — cluster mode: the monthly allowance's meter shared by every node through the
 * JetStream key-value bucket qbcdc_meter (cluster.h, qbc_cluster_meter_*).
 *
 * Key <period_start_s>.<node_id>, value JSON {"v":1,"node":...,"period_start":s,
 * "period_end":s,"used":{"live":n,"cdc":n,"backfill":n,"other":n},"inflight":n,"at":ns}.
 * One thread: it watches the whole bucket into a small table (nodes x periods kept), and puts
 * this node's counts when the reconciler's last hand-over (qbc_cluster_meter_share) differs
 * from what it last put, at most every PUT_EVERY. What it puts never goes below what the bucket
 * holds for this node (the larger of the two, per purpose): a node restarted on an empty disk
 * does not overwrite the count it is about to take back, and the reconciler takes it back
 * (allowance.c). Nothing is put before the bucket's entries were read once.
 *
 * Staleness: a node's calls reach the others within PUT_EVERY plus a watch's delivery (well
 * under a second on a LAN); allowance.c keeps a reserve for that. Without NATS, the table keeps
 * the last entries known and lag_ns grows; the fence (lease.c) stops this node's QBO calls
 * within the lease TTL anyway, since its leases cannot be renewed either.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cluster_internal.h"
#include "jetstream.h"
#include "common.h"

#define MOD "cluster"
#define NS 1000000000LL
#define BUCKET "qbcdc_meter"
#define PUT_EVERY (NS / 4)
#define CLEAN_EVERY (10 * NS)
#define MAX_ENTRIES 512 /* nodes x the periods kept; more is a misconfiguration, ignored */

struct st_qbc_meter_t {
    char node_id[QBC_NODE_ID_MAX];
    char **servers;
    int n_servers;
    unsigned replicas;
    qbc_worker_t worker; /* the thread: its mutex guards the fields marked "under mu" */
    /* under mu */
    qbc_meter_node_t mine; /* as the reconciler last handed it (period_start_ns 0: not yet) */
    int64_t period_end_ns;
    uint64_t mine_seq, put_seq; /* mine changed / what was put */
    qbc_meter_node_t *entries;  /* the bucket's, as watched */
    size_t n_entries;
    int64_t up_mono; /* the last moment the bucket was reachable (0: never) */
    int64_t start_mono;
    qbc_meter_stats_t st;
    /* thread only */
    qbc_kv_t c;
    int64_t last_put_mono, last_clean_mono;
};

/* ---------------------------------------------------------------- pure: keys and sums */

int qbc_cluster__meter_key(int64_t period_start_ns, const char *node, char *out, size_t size)
{
    if (!qbc_cluster_node_id_ok(node) || period_start_ns < 0)
        return -1;
    int n = snprintf(out, size, "%lld.%s", (long long)(period_start_ns / NS), node);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

int qbc_cluster__meter_key_parse(const char *key, int64_t *period_start_ns, char node[QBC_NODE_ID_MAX])
{
    const char *dot = key != NULL ? strchr(key, '.') : NULL;
    if (dot == NULL || dot == key || dot - key > 18)
        return -1;
    int64_t s = 0;
    for (const char *p = key; p < dot; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        s = s * 10 + (*p - '0');
    }
    if (!qbc_cluster_node_id_ok(dot + 1))
        return -1;
    *period_start_ns = s * NS;
    snprintf(node, QBC_NODE_ID_MAX, "%s", dot + 1);
    return 0;
}

void qbc_cluster__meter_sum(const qbc_meter_node_t *e, size_t n, const char *me, qbc_meter_share_t *x)
{
    memset(x->own, 0, sizeof(x->own));
    memset(x->others, 0, sizeof(x->others));
    x->others_inflight = 0;
    x->n_others = 0;
    for (size_t i = 0; i < n; i++) {
        /* keys carry whole seconds: compare periods at that grain */
        if (e[i].period_start_ns / NS != x->period_start_ns / NS)
            continue;
        if (strcmp(e[i].node, me) == 0) {
            memcpy(x->own, e[i].used, sizeof(x->own));
            continue;
        }
        for (int p = 0; p < QBC_USAGE_PURPOSES; p++)
            x->others[p] += e[i].used[p];
        x->others_inflight += e[i].inflight;
        x->n_others++;
    }
}

/* ---------------------------------------------------------------- the table (under mu) */

static qbc_meter_node_t *entry_find(qbc_meter_t *m, int64_t period_start_ns, const char *node)
{
    for (size_t i = 0; i < m->n_entries; i++)
        if (m->entries[i].period_start_ns == period_start_ns && strcmp(m->entries[i].node, node) == 0)
            return &m->entries[i];
    return NULL;
}

static void set_error(qbc_meter_t *m, const char *text)
{
    pthread_mutex_lock(&m->worker.mu);
    snprintf(m->st.last_error, sizeof(m->st.last_error), "%s", text);
    pthread_mutex_unlock(&m->worker.mu);
}

/* a watched entry into the table: a put replaces the node's period, a delete removes it */
static void take_entry(qbc_meter_t *m, kvEntry *e)
{
    int64_t period = 0;
    char node[QBC_NODE_ID_MAX];
    if (qbc_cluster__meter_key_parse(kvEntry_Key(e), &period, node) != 0)
        return;
    qbc_meter_node_t v;
    memset(&v, 0, sizeof(v));
    int put = kvEntry_Operation(e) == kvOp_Put;
    if (put) {
        json_error_t jerr;
        json_t *o = json_loadb(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, &jerr);
        json_t *used = json_object_get(o, "used");
        if (!json_is_object(used)) {
            json_decref(o);
            return;
        }
        snprintf(v.node, sizeof(v.node), "%s", node);
        v.period_start_ns = period;
        for (int p = 0; p < QBC_USAGE_PURPOSES; p++) {
            json_int_t n = json_integer_value(json_object_get(used, qbc_usage_purpose_name(p)));
            v.used[p] = n > 0 ? (uint64_t)n : 0;
        }
        json_int_t in = json_integer_value(json_object_get(o, "inflight"));
        v.inflight = in > 0 ? (uint64_t)in : 0;
        v.updated_ns = (int64_t)json_integer_value(json_object_get(o, "at"));
        json_decref(o);
    }
    pthread_mutex_lock(&m->worker.mu);
    qbc_meter_node_t *have = entry_find(m, period, node);
    if (!put) {
        if (have != NULL)
            *have = m->entries[--m->n_entries];
    } else if (have != NULL) {
        *have = v;
    } else if (m->n_entries < MAX_ENTRIES) {
        m->entries[m->n_entries++] = v;
    }
    pthread_mutex_unlock(&m->worker.mu);
}

/* ---------------------------------------------------------------- the thread */

static void put_mine(qbc_meter_t *m, int64_t now)
{
    pthread_mutex_lock(&m->worker.mu);
    qbc_meter_node_t mine = m->mine;
    int64_t end = m->period_end_ns;
    uint64_t seq = m->mine_seq;
    int todo = m->st.synced && mine.period_start_ns != 0 && seq != m->put_seq;
    const qbc_meter_node_t *b = todo ? entry_find(m, mine.period_start_ns, m->node_id) : NULL;
    for (int p = 0; b != NULL && p < QBC_USAGE_PURPOSES; p++)
        if (b->used[p] > mine.used[p]) /* never below what the bucket holds for us */
            mine.used[p] = b->used[p];
    pthread_mutex_unlock(&m->worker.mu);
    if (!todo)
        return;
    char key[48];
    if (qbc_cluster__meter_key(mine.period_start_ns, m->node_id, key, sizeof(key)) != 0)
        return;
    json_t *used = json_object();
    for (int p = 0; p < QBC_USAGE_PURPOSES; p++)
        json_object_set_new(used, qbc_usage_purpose_name(p), json_integer((json_int_t)mine.used[p]));
    json_t *o = json_pack("{s:i,s:s,s:I,s:I,s:o,s:I,s:I}", "v", 1, "node", m->node_id, "period_start",
                          (json_int_t)(mine.period_start_ns / NS), "period_end", (json_int_t)(end / NS), "used", used,
                          "inflight", (json_int_t)mine.inflight, "at", (json_int_t)qbc_now_ns());
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    uint64_t rev = 0;
    natsStatus s = kvStore_PutString(&rev, m->c.kv, key, text);
    free(text);
    m->last_put_mono = now;
    pthread_mutex_lock(&m->worker.mu);
    if (s == NATS_OK) {
        m->put_seq = seq;
        m->st.puts++;
        m->st.last_error[0] = '\0';
    } else {
        m->st.put_failures++;
        snprintf(m->st.last_error, sizeof(m->st.last_error), "cannot put this node's count: %.100s",
                 natsStatus_GetText(s));
    }
    pthread_mutex_unlock(&m->worker.mu);
}

/* keys of periods more than two periods before ours: gone from the bucket (any node's) */
static void clean(qbc_meter_t *m)
{
    char keys[16][48];
    size_t n = 0;
    pthread_mutex_lock(&m->worker.mu);
    int64_t start = m->mine.period_start_ns, len = m->period_end_ns - start;
    for (size_t i = 0; start != 0 && len > 0 && i < m->n_entries && n < 16; i++)
        if (m->entries[i].period_start_ns < start - 2 * len &&
            qbc_cluster__meter_key(m->entries[i].period_start_ns, m->entries[i].node, keys[n], sizeof(keys[n])) == 0)
            n++;
    pthread_mutex_unlock(&m->worker.mu);
    for (size_t i = 0; i < n; i++) {
        if (kvStore_Purge(m->c.kv, keys[i], NULL) == NATS_OK) {
            pthread_mutex_lock(&m->worker.mu);
            m->st.removed++;
            pthread_mutex_unlock(&m->worker.mu);
        }
    }
}

static void *thread_main(void *arg)
{
    qbc_meter_t *m = arg;
    int64_t backoff_ms = 250;
    for (;;) {
        if (qbc_worker_stopping(&m->worker))
            break;
        if (m->c.nc == NULL) {
            char err[160];
            if (qbc_cluster__kv_open(m->servers, m->n_servers, BUCKET,
                                     "qbcdc: each node's metered calls per budget period", m->replicas, &m->c, err,
                                     sizeof(err)) != 0) {
                set_error(m, err);
                qbc_worker_nap(&m->worker, backoff_ms);
                backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
                continue;
            }
            backoff_ms = 250;
            pthread_mutex_lock(&m->worker.mu);
            m->st.last_error[0] = '\0';
            m->put_seq = 0; /* what we had put may have been lost with the servers: put again */
            pthread_mutex_unlock(&m->worker.mu);
        }
        kvEntry *e = NULL;
        natsStatus s;
        int got = 0;
        while ((s = kvWatcher_Next(&e, m->c.w, got ? 1 : 50)) == NATS_OK) {
            got++;
            if (e == NULL) { /* the bucket's entries are all in */
                pthread_mutex_lock(&m->worker.mu);
                m->st.synced = 1;
                pthread_mutex_unlock(&m->worker.mu);
                continue;
            }
            take_entry(m, e);
            kvEntry_Destroy(e);
            if (got >= 256)
                break;
        }
        int64_t now = qbc_mono_ns();
        int up = qbc_cluster__kv_up(&m->c);
        pthread_mutex_lock(&m->worker.mu);
        if (!up && m->st.connected) /* said once, until the next put goes through */
            snprintf(m->st.last_error, sizeof(m->st.last_error),
                     "NATS is out of reach: governing with the other nodes' counts as last known");
        m->st.connected = up;
        if (up)
            m->up_mono = now;
        pthread_mutex_unlock(&m->worker.mu);
        if (s != NATS_OK && s != NATS_TIMEOUT && natsConnection_IsClosed(m->c.nc)) {
            qbc_cluster__kv_close(&m->c);
            continue;
        }
        if (up && now - m->last_put_mono >= PUT_EVERY)
            put_mine(m, now);
        if (up && now - m->last_clean_mono >= CLEAN_EVERY) {
            m->last_clean_mono = now;
            clean(m);
        }
        if (!up) { /* nats.c reconnects; look again shortly */
            qbc_worker_nap(&m->worker, 200);
        }
    }
    /* this node's last counts (the reconciler stopped before us) */
    if (m->c.nc != NULL && qbc_cluster__kv_up(&m->c))
        put_mine(m, qbc_mono_ns());
    return NULL;
}

/* ---------------------------------------------------------------- public */

int qbc_cluster_meter_start(const qbc_meter_config_t *cfg, qbc_meter_t **out)
{
    *out = NULL;
    if (cfg == NULL || cfg->urls == NULL || cfg->urls[0] == '\0' || !qbc_cluster_node_id_ok(cfg->node_id))
        return QBC_EINVAL;
    qbc_meter_t *m = qbc_calloc(1, sizeof(*m));
    snprintf(m->node_id, sizeof(m->node_id), "%s", cfg->node_id);
    m->replicas = cfg->replicas;
    m->n_servers = qbc_nats_servers(cfg->urls, &m->servers);
    m->entries = qbc_calloc(MAX_ENTRIES, sizeof(*m->entries));
    m->start_mono = qbc_mono_ns();
    qbc_worker_init(&m->worker);
    int rc = qbc_worker_start(&m->worker, thread_main, m);
    if (rc != 0) {
        qbc_cluster_meter_stop(m);
        return rc;
    }
    *out = m;
    return 0;
}

void qbc_cluster_meter_stop(qbc_meter_t *m)
{
    if (m == NULL)
        return;
    qbc_worker_join(&m->worker); /* it notices within a watch's 50 ms */
    qbc_cluster__kv_close(&m->c);
    qbc_nats_servers_free(m->servers, m->n_servers);
    free(m->entries);
    qbc_worker_dispose(&m->worker);
    free(m);
}

void qbc_cluster_meter_share(void *ctx, qbc_meter_share_t *x)
{
    qbc_meter_t *m = ctx;
    int64_t now = qbc_mono_ns();
    pthread_mutex_lock(&m->worker.mu);
    if (m->mine.period_start_ns != x->period_start_ns || memcmp(m->mine.used, x->used, sizeof(x->used)) != 0 ||
        m->mine.inflight != x->inflight) {
        snprintf(m->mine.node, sizeof(m->mine.node), "%s", m->node_id);
        m->mine.period_start_ns = x->period_start_ns;
        memcpy(m->mine.used, x->used, sizeof(x->used));
        m->mine.inflight = x->inflight;
        m->mine.updated_ns = qbc_now_ns();
        m->period_end_ns = x->period_end_ns;
        m->mine_seq++;
    }
    qbc_cluster__meter_sum(m->entries, m->n_entries, m->node_id, x);
    x->connected = m->st.connected;
    x->synced = m->st.synced;
    x->lag_ns = m->st.connected ? 0 : now - (m->up_mono ? m->up_mono : m->start_mono);
    pthread_mutex_unlock(&m->worker.mu);
}

static int by_node(const void *a, const void *b)
{
    return strcmp(((const qbc_meter_node_t *)a)->node, ((const qbc_meter_node_t *)b)->node);
}

size_t qbc_cluster_meter_nodes(qbc_meter_t *m, int64_t period_start_ns, qbc_meter_node_t *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&m->worker.mu);
    if (m->mine.period_start_ns / NS == period_start_ns / NS && n < max)
        out[n++] = m->mine;
    for (size_t i = 0; i < m->n_entries && n < max; i++)
        if (m->entries[i].period_start_ns / NS == period_start_ns / NS && strcmp(m->entries[i].node, m->node_id) != 0)
            out[n++] = m->entries[i];
    pthread_mutex_unlock(&m->worker.mu);
    qsort(out, n, sizeof(*out), by_node);
    return n;
}

void qbc_cluster_meter_stats(qbc_meter_t *m, qbc_meter_stats_t *out)
{
    int64_t now = qbc_mono_ns();
    pthread_mutex_lock(&m->worker.mu);
    *out = m->st;
    out->lag_s = m->st.connected ? 0 : (double)(now - (m->up_mono ? m->up_mono : m->start_mono)) / NS;
    pthread_mutex_unlock(&m->worker.mu);
}
