/*
 * lease.c — the lease thread: one round a second against the qbcdc_cluster bucket (cluster.h).
 *
 * A round: make sure of the connection and the bucket (and that its partition count is ours),
 * write node.<id> (every renewal interval, TTL/4), list the bucket's keys, and for each
 * partition read its lease and act on qbc_cluster__decide: take (create; or update our own
 * key from before a restart), renew (update with our last revision), release (fence out first,
 * then delete), or wait. A lease is held, and qbc_cluster_owns says so, only until the moment
 * its last successful write was sent plus TTL minus TTL/3: a node that cannot reach NATS stops
 * using its partitions well before the server lets their keys lapse and another node takes them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <nats/nats.h>
#include "cluster.h"
#include "jetstream.h"
#include "common.h"

#define MOD "cluster"
#define NS 1000000000LL
#define BUCKET "qbcdc_cluster"
#define MAX_NODES 32

typedef struct st_node_url_t {
    char id[QBC_NODE_ID_MAX];
    char url[QBC_CLUSTER_URL_MAX];
} node_url_t;

typedef struct st_lease_t {
    int held;
    uint64_t revision;           /* of our last write (held) */
    int64_t until_mono;          /* fence: held only before this */
    int64_t renewed_mono;        /* when the last write was sent */
    int64_t free_since;          /* monotonic; 0: not seen free */
    char owner[QBC_NODE_ID_MAX]; /* as last read */
} lease_t;

struct st_qbc_cluster_t {
    char **servers;
    int n_servers;
    unsigned partitions, replicas;
    int64_t ttl_ns;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    uint64_t epoch;             /* under mu */
    lease_t *leases;            /* under mu (written by the thread) */
    qbc_cluster_stats_t st;     /* under mu */
    node_url_t urls[MAX_NODES]; /* under mu: the live nodes' advertised URLs, as last read */
    unsigned n_urls;            /* under mu */
    char advertise_url[QBC_CLUSTER_URL_MAX];
    /* thread only */
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
    int64_t node_written;
};

static void set_error(qbc_cluster_t *c, const char *fmt, const char *detail)
{
    pthread_mutex_lock(&c->mu);
    snprintf(c->st.last_error, sizeof(c->st.last_error), fmt, detail);
    pthread_mutex_unlock(&c->mu);
}

/* waits until stopped or ms pass; 1 if stopping */
static int nap(qbc_cluster_t *c, int64_t ms)
{
    int64_t until = qbc_mono_ns() + ms * 1000000;
    pthread_mutex_lock(&c->mu);
    while (!c->stop)
        if (qbc_cond_wait_until(&c->cv, &c->mu, until) == ETIMEDOUT)
            break;
    int stop = c->stop;
    pthread_mutex_unlock(&c->mu);
    return stop;
}

/* ---------------------------------------------------------------- the bucket */

static void disconnect(qbc_cluster_t *c)
{
    pthread_mutex_lock(&c->mu); /* qbc_cluster_stats asks the connection for its status */
    natsConnection *nc = c->nc;
    c->nc = NULL;
    c->st.connected = 0;
    pthread_mutex_unlock(&c->mu);
    if (c->kv != NULL)
        kvStore_Destroy(c->kv);
    if (c->js != NULL)
        jsCtx_Destroy(c->js);
    if (nc != NULL) {
        natsConnection_Close(nc);
        natsConnection_Destroy(nc);
    }
    c->kv = NULL;
    c->js = NULL;
}

/*
 * the partition count recorded in the bucket must be ours. The first node writes it into the
 * bucket's description when it creates the bucket (a key would lapse with the TTL, and a node
 * with another count could then write its own).
 */
static int check_partitions(qbc_cluster_t *c)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, c->js, "KV_" BUCKET, NULL, &jerr);
    if (s != NATS_OK) {
        set_error(c, "cannot read the cluster's partition count: %.100s", natsStatus_GetText(s));
        return -1;
    }
    const char *desc = si->Config != NULL && si->Config->Description != NULL ? si->Config->Description : "";
    const char *at = strstr(desc, "partitions=");
    unsigned have = 0;
    int rc = 0;
    if (at == NULL || sscanf(at, "partitions=%u", &have) != 1) {
        set_error(c, "the bucket " BUCKET " has no partition count in its description: %.60s", desc);
        rc = -1;
    } else if (have != c->partitions) {
        char why[160];
        snprintf(why, sizeof(why), "the cluster has %u partitions, QBCDC_PARTITIONS says %u", have, c->partitions);
        set_error(c, "%.120s; this node takes no partition", why);
        qbc_log(QBC_LOG_ERROR, MOD,
                "%s; this node takes no partition (QBCDC_PARTITIONS is set when the cluster is created)", why);
        rc = -1;
    }
    jsStreamInfo_Destroy(si);
    return rc;
}

static int connect_and_prepare(qbc_cluster_t *c)
{
    natsConnection *nc = NULL;
    natsStatus s = qbc_nats_connect(c->servers, c->n_servers, 250, &nc);
    pthread_mutex_lock(&c->mu);
    c->nc = nc;
    pthread_mutex_unlock(&c->mu);
    if (s != NATS_OK) {
        set_error(c, "cannot connect to NATS: %.100s", natsStatus_GetText(s));
        disconnect(c);
        return -1;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 2000; /* a round must not hang on one request for longer than the fence margin */
    if ((s = natsConnection_JetStream(&c->js, c->nc, &jo)) != NATS_OK) {
        set_error(c, "no JetStream context: %.100s", natsStatus_GetText(s));
        disconnect(c);
        return -1;
    }
    s = js_KeyValue(&c->kv, c->js, BUCKET);
    if (s == NATS_NOT_FOUND) {
        kvConfig kc;
        kvConfig_Init(&kc);
        kc.Bucket = BUCKET;
        char desc[96];
        snprintf(desc, sizeof(desc), "qbcdc: partition leases and live nodes (partitions=%u)", c->partitions);
        kc.Description = desc;
        kc.History = 1;
        kc.TTL = c->ttl_ns;
        kc.StorageType = js_FileStorage;
        kc.Replicas = (int)(c->replicas ? c->replicas : 1);
        s = js_CreateKeyValue(&c->kv, c->js, &kc);
        if (s != NATS_OK) /* another node created it meanwhile */
            s = js_KeyValue(&c->kv, c->js, BUCKET);
    }
    if (s != NATS_OK) {
        set_error(c, "no key-value bucket " BUCKET ": %.100s", natsStatus_GetText(s));
        disconnect(c);
        return -1;
    }
    if (check_partitions(c) != 0) {
        disconnect(c);
        return -1;
    }
    pthread_mutex_lock(&c->mu);
    c->st.connected = 1;
    c->st.last_error[0] = '\0';
    pthread_mutex_unlock(&c->mu);
    qbc_log(QBC_LOG_INFO, MOD, "node %s in the cluster: %u partitions, leases of %lld s", c->st.node_id, c->partitions,
            (long long)(c->ttl_ns / NS));
    return 0;
}

/* ---------------------------------------------------------------- a round */

static void lease_key(char *out, size_t n, unsigned p)
{
    snprintf(out, n, "lease.%u", p);
}

/* under mu */
static void drop(qbc_cluster_t *c, unsigned p, int lost)
{
    lease_t *l = &c->leases[p];
    if (!l->held)
        return;
    l->held = 0;
    l->until_mono = 0;
    c->epoch++;
    c->st.owned--;
    if (lost)
        c->st.lost++;
    else
        c->st.released++;
}

static int node_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* the ids of the live nodes (and their advertised URLs); -1 when the bucket did not answer */
static int list_nodes(qbc_cluster_t *c, char out[][QBC_NODE_ID_MAX], unsigned *n)
{
    node_url_t urls[MAX_NODES];
    unsigned n_urls = 0;
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = 2000;
    o.Stream.Info.SubjectsFilter = "$KV." BUCKET ".node.>";
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, c->js, "KV_" BUCKET, &o, &jerr);
    if (s != NATS_OK) {
        set_error(c, "cannot list the nodes: %.100s", natsStatus_GetText(s));
        return -1;
    }
    const size_t skip = strlen("$KV." BUCKET ".node.");
    *n = 0;
    int failed = 0;
    jsStreamStateSubjects *subs = si->State.Subjects;
    for (int i = 0; subs != NULL && i < subs->Count && *n < MAX_NODES; i++) {
        const char *subj = subs->List[i].Subject;
        if (strlen(subj) <= skip || strlen(subj + skip) >= QBC_NODE_ID_MAX)
            continue;
        char key[96];
        snprintf(key, sizeof(key), "node.%s", subj + skip);
        kvEntry *e = NULL;
        s = kvStore_Get(&e, c->kv, key);
        if (s == NATS_OK) {
            snprintf(out[(*n)++], QBC_NODE_ID_MAX, "%s", subj + skip);
            snprintf(urls[n_urls].id, sizeof(urls[n_urls].id), "%s", subj + skip);
            qbc_cluster__node_value_url(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), urls[n_urls].url);
            n_urls++;
            kvEntry_Destroy(e);
        } else if (s != NATS_NOT_FOUND) {
            failed = 1; /* deleted (a graceful stop) is NOT_FOUND: not live */
            break;
        }
    }
    jsStreamInfo_Destroy(si);
    if (!failed) {
        pthread_mutex_lock(&c->mu);
        memcpy(c->urls, urls, n_urls * sizeof(urls[0]));
        c->n_urls = n_urls;
        pthread_mutex_unlock(&c->mu);
    }
    return failed ? -1 : 0;
}

/* a round; -1 when the bucket did not answer (the caller reconnects if the connection is gone) */
static int round_once(qbc_cluster_t *c)
{
    int64_t now = qbc_mono_ns(), renew_every = c->ttl_ns / 4;
    const char *me = c->st.node_id;
    char key[80];
    natsStatus s;
    if (now - c->node_written >= renew_every) {
        snprintf(key, sizeof(key), "node.%s", me);
        char val[QBC_CLUSTER_URL_MAX + 64];
        qbc_cluster__node_value(val, sizeof(val), qbc_now_ns() / NS, c->advertise_url);
        uint64_t rev;
        if ((s = kvStore_PutString(&rev, c->kv, key, val)) != NATS_OK) {
            set_error(c, "cannot write this node's key: %.100s", natsStatus_GetText(s));
            return -1;
        }
        c->node_written = now;
    }
    /* the live nodes: the node.* keys (listed from the stream's subjects: no consumer to create,
       which a JetStream cluster electing leaders can take seconds to do), each read to skip the
       ones deleted at a graceful stop; when the bucket does not answer, the last list stands */
    char nodebuf[MAX_NODES][QBC_NODE_ID_MAX];
    const char *nodes[MAX_NODES];
    unsigned n_nodes = 0;
    if (list_nodes(c, nodebuf, &n_nodes) != 0) {
        pthread_mutex_lock(&c->mu);
        n_nodes = c->st.n_nodes;
        for (unsigned i = 0; i < n_nodes; i++)
            snprintf(nodebuf[i], QBC_NODE_ID_MAX, "%s", c->st.nodes[i]);
        pthread_mutex_unlock(&c->mu);
    }
    for (unsigned i = 0; i < n_nodes; i++)
        nodes[i] = nodebuf[i];
    qsort(nodes, n_nodes, sizeof(nodes[0]), node_cmp);
    pthread_mutex_lock(&c->mu);
    c->st.n_nodes = n_nodes;
    for (unsigned i = 0; i < n_nodes; i++)
        snprintf(c->st.nodes[i], QBC_NODE_ID_MAX, "%s", nodes[i]);
    pthread_mutex_unlock(&c->mu);

    int failed = 0;
    for (unsigned p = 0; p < c->partitions && !failed; p++) {
        lease_t *l = &c->leases[p];
        lease_key(key, sizeof(key), p);
        kvEntry *e = NULL;
        char owner[QBC_NODE_ID_MAX] = "";
        uint64_t rev = 0;
        s = kvStore_Get(&e, c->kv, key);
        if (s == NATS_OK) {
            snprintf(owner, sizeof(owner), "%.*s", kvEntry_ValueLen(e), (const char *)kvEntry_Value(e));
            rev = kvEntry_Revision(e);
            kvEntry_Destroy(e);
        } else if (s != NATS_NOT_FOUND) {
            set_error(c, "cannot read a lease: %.100s", natsStatus_GetText(s));
            failed = 1;
            break;
        }
        now = qbc_mono_ns();
        pthread_mutex_lock(&c->mu);
        snprintf(l->owner, sizeof(l->owner), "%s", owner);
        if (l->held && now >= l->until_mono)
            drop(c, p, 1); /* fenced out: it may lapse any moment now */
        if (l->held && (owner[0] == '\0' || strcmp(owner, me) != 0 || rev != l->revision)) {
            qbc_log(QBC_LOG_WARN, MOD, "partition %u: lease lost (owner now \"%s\")", p, owner);
            drop(c, p, 1);
        }
        if (owner[0] != '\0')
            l->free_since = 0;
        else if (l->free_since == 0)
            l->free_since = now;
        int held = l->held;
        pthread_mutex_unlock(&c->mu);

        int pi = qbc_cluster_preferred(p, nodes, n_nodes);
        qbc_lease_action_t a = qbc_cluster__decide(held, owner, me, pi >= 0 ? nodes[pi] : NULL,
                                                   l->free_since ? now - l->free_since : 0, c->ttl_ns);
        if (a == QBC_LEASE_RENEW && now - l->renewed_mono < renew_every)
            continue;
        uint64_t nrev = 0;
        int64_t sent = qbc_mono_ns();
        switch (a) {
        case QBC_LEASE_WAIT:
            break;
        case QBC_LEASE_TAKE:
            s = owner[0] != '\0' ? kvStore_UpdateString(&nrev, c->kv, key, me, rev)
                                 : kvStore_CreateString(&nrev, c->kv, key, me);
            if (s == NATS_OK) {
                pthread_mutex_lock(&c->mu);
                l->held = 1;
                l->revision = nrev;
                l->renewed_mono = sent;
                l->until_mono = sent + c->ttl_ns - c->ttl_ns / 3;
                snprintf(l->owner, sizeof(l->owner), "%s", me);
                c->epoch++;
                c->st.owned++;
                c->st.acquired++;
                pthread_mutex_unlock(&c->mu);
                qbc_log(QBC_LOG_INFO, MOD, "partition %u: taken", p);
            }
            break;
        case QBC_LEASE_RENEW:
            s = kvStore_UpdateString(&nrev, c->kv, key, me, l->revision);
            pthread_mutex_lock(&c->mu);
            if (s == NATS_OK) {
                l->revision = nrev;
                l->renewed_mono = sent;
                l->until_mono = sent + c->ttl_ns - c->ttl_ns / 3;
            } else if (s == NATS_ERR) { /* the server's answer: someone wrote the key since (wrong last sequence) */
                qbc_log(QBC_LOG_WARN, MOD, "partition %u: renewal refused; lease lost", p);
                drop(c, p, 1);
            } else { /* no answer (a leader election, a reconnect): try again; the fence runs meanwhile */
                c->st.renew_failures++;
                failed = 1;
            }
            pthread_mutex_unlock(&c->mu);
            if (failed)
                set_error(c, "cannot renew a lease: %.100s", natsStatus_GetText(s));
            break;
        case QBC_LEASE_RELEASE:
            pthread_mutex_lock(&c->mu);
            drop(c, p, 0); /* stop using it before anyone else can take it */
            pthread_mutex_unlock(&c->mu);
            kvStore_Delete(c->kv, key);
            qbc_log(QBC_LOG_INFO, MOD, "partition %u: handed over to %s", p, nodes[pi]);
            break;
        }
    }
    if (!failed) {
        pthread_mutex_lock(&c->mu);
        c->st.last_tick_ns = qbc_now_ns();
        c->st.last_error[0] = '\0'; /* a whole round went through: what failed before is over */
        pthread_mutex_unlock(&c->mu);
    }
    return failed ? -1 : 0;
}

/*
 * at stop: hand everything back at once rather than let it lapse (a TTL of waiting). Not when
 * NATS is out of reach: each delete would wait for its timeout, and the leases lapse anyway.
 */
static void release_all(qbc_cluster_t *c)
{
    char key[80];
    int reachable = c->kv != NULL && c->nc != NULL && natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED;
    unsigned handed = 0, held_n = 0;
    for (unsigned p = 0; p < c->partitions; p++) {
        pthread_mutex_lock(&c->mu);
        int held = c->leases[p].held;
        drop(c, p, 0);
        pthread_mutex_unlock(&c->mu);
        held_n += held;
        if (held && reachable) {
            lease_key(key, sizeof(key), p);
            reachable = kvStore_Delete(c->kv, key) == NATS_OK;
            handed += reachable;
        }
    }
    if (reachable) {
        snprintf(key, sizeof(key), "node.%s", c->st.node_id);
        kvStore_Delete(c->kv, key);
    }
    if (held_n > 0)
        qbc_log(QBC_LOG_INFO, MOD, "stopping: handed %u of %u partitions over (the rest lapse after the lease TTL)",
                handed, held_n);
}

static void *thread_main(void *arg)
{
    qbc_cluster_t *c = arg;
    int64_t backoff_ms = 250;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        int stop = c->stop;
        pthread_mutex_unlock(&c->mu);
        if (stop)
            break;
        if (c->nc == NULL && connect_and_prepare(c) != 0) {
            if (nap(c, backoff_ms))
                break;
            backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
            continue;
        }
        backoff_ms = 250;
        int64_t started = qbc_mono_ns();
        if (round_once(c) != 0 && natsConnection_IsClosed(c->nc))
            disconnect(c);
        /* a lease past its fence is dropped even when the bucket does not answer */
        int64_t now = qbc_mono_ns();
        pthread_mutex_lock(&c->mu);
        for (unsigned p = 0; p < c->partitions; p++)
            if (c->leases[p].held && now >= c->leases[p].until_mono) {
                qbc_log(QBC_LOG_WARN, MOD, "partition %u: not renewed in time; no longer ours", p);
                drop(c, p, 1);
            }
        pthread_mutex_unlock(&c->mu);
        int64_t spent_ms = (qbc_mono_ns() - started) / 1000000;
        if (nap(c, spent_ms >= 1000 ? 1 : 1000 - spent_ms))
            break;
    }
    release_all(c);
    return NULL;
}

/* ---------------------------------------------------------------- public */

int qbc_cluster_start(const qbc_cluster_config_t *cfg, qbc_cluster_t **out)
{
    *out = NULL;
    if (cfg == NULL || cfg->urls == NULL || cfg->urls[0] == '\0' || !qbc_cluster_node_id_ok(cfg->node_id) ||
        cfg->partitions == 0 || cfg->partitions > QBC_CLUSTER_MAX_PARTITIONS)
        return QBC_EINVAL;
    qbc_cluster_t *c = qbc_calloc(1, sizeof(*c));
    snprintf(c->st.node_id, sizeof(c->st.node_id), "%s", cfg->node_id);
    c->partitions = c->st.partitions = cfg->partitions;
    c->replicas = cfg->replicas;
    if (cfg->advertise_url != NULL && strlen(cfg->advertise_url) < sizeof(c->advertise_url))
        snprintf(c->advertise_url, sizeof(c->advertise_url), "%s", cfg->advertise_url);
    c->ttl_ns = (int64_t)(cfg->lease_ttl_s ? cfg->lease_ttl_s : 10) * NS;
    c->leases = qbc_calloc(cfg->partitions, sizeof(*c->leases));
    c->n_servers = qbc_nats_servers(cfg->urls, &c->servers);
    pthread_mutex_init(&c->mu, NULL);
    if (qbc_cond_init_mono(&c->cv) != 0)
        qbc_fatal("cannot make a monotonic condition variable");
    if (pthread_create(&c->thread, NULL, thread_main, c) != 0) {
        int err = errno;
        c->thread = 0;
        qbc_cluster_stop(c);
        return -err;
    }
    *out = c;
    return 0;
}

void qbc_cluster_stop(qbc_cluster_t *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->thread)
        pthread_join(c->thread, NULL);
    disconnect(c);
    qbc_nats_servers_free(c->servers, c->n_servers);
    free(c->leases);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

int qbc_cluster_owns_partition(qbc_cluster_t *c, unsigned partition)
{
    if (partition >= c->partitions)
        return 0;
    int64_t now = qbc_mono_ns();
    pthread_mutex_lock(&c->mu);
    int owns = c->leases[partition].held && now < c->leases[partition].until_mono;
    pthread_mutex_unlock(&c->mu);
    return owns;
}

int qbc_cluster_owns(qbc_cluster_t *c, const char *realm, int64_t *until_mono_ns)
{
    unsigned p = qbc_cluster_partition_of(realm, c->partitions);
    int64_t now = qbc_mono_ns();
    pthread_mutex_lock(&c->mu);
    const lease_t *l = &c->leases[p];
    int owns = l->held && now < l->until_mono;
    if (owns && until_mono_ns != NULL)
        *until_mono_ns = l->until_mono;
    pthread_mutex_unlock(&c->mu);
    return owns;
}

int qbc_cluster_whose(qbc_cluster_t *c, const char *realm, char *owner)
{
    unsigned p = qbc_cluster_partition_of(realm, c->partitions);
    int64_t now = qbc_mono_ns();
    pthread_mutex_lock(&c->mu);
    const lease_t *l = &c->leases[p];
    int whose = l->held && now < l->until_mono                                ? 1
                : l->owner[0] != '\0' && strcmp(l->owner, c->st.node_id) != 0 ? 0
                                                                              : -1;
    if (whose == 0 && owner != NULL)
        snprintf(owner, QBC_NODE_ID_MAX, "%s", l->owner);
    pthread_mutex_unlock(&c->mu);
    return whose;
}

uint64_t qbc_cluster_epoch(qbc_cluster_t *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t e = c->epoch;
    pthread_mutex_unlock(&c->mu);
    return e;
}

void qbc_cluster_owner(qbc_cluster_t *c, unsigned partition, char *out)
{
    out[0] = '\0';
    if (partition >= c->partitions)
        return;
    pthread_mutex_lock(&c->mu);
    snprintf(out, QBC_NODE_ID_MAX, "%s", c->leases[partition].owner);
    pthread_mutex_unlock(&c->mu);
}

void qbc_cluster_stats(qbc_cluster_t *c, qbc_cluster_stats_t *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    out->connected = c->st.connected && c->nc != NULL && natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED;
    pthread_mutex_unlock(&c->mu);
}

int qbc_cluster_realm_owner(qbc_cluster_t *c, const char *realm, char *node, char *url)
{
    node[0] = url[0] = '\0';
    int whose = qbc_cluster_whose(c, realm, node);
    if (whose != 0)
        return whose == 1 ? 1 : QBC_ENOTFOUND;
    pthread_mutex_lock(&c->mu);
    for (unsigned i = 0; i < c->n_urls && url[0] == '\0'; i++)
        if (strcmp(c->urls[i].id, node) == 0)
            snprintf(url, QBC_CLUSTER_URL_MAX, "%s", c->urls[i].url);
    pthread_mutex_unlock(&c->mu);
    return url[0] != '\0' ? 0 : QBC_ENOTFOUND;
}

unsigned qbc_cluster_peers(qbc_cluster_t *c, char (*ids)[QBC_NODE_ID_MAX], char (*urls)[QBC_CLUSTER_URL_MAX],
                           unsigned max)
{
    unsigned n = 0;
    pthread_mutex_lock(&c->mu);
    for (unsigned i = 0; i < c->n_urls && n < max; i++)
        if (c->urls[i].url[0] != '\0' && strcmp(c->urls[i].id, c->st.node_id) != 0) {
            snprintf(ids[n], QBC_NODE_ID_MAX, "%s", c->urls[i].id);
            snprintf(urls[n], QBC_CLUSTER_URL_MAX, "%s", c->urls[i].url);
            n++;
        }
    pthread_mutex_unlock(&c->mu);
    return n;
}

int qbc_cluster_job_node(qbc_cluster_t *c, uint64_t id, char *node, char *url)
{
    uint64_t space = qbc_cluster_job_space(id);
    int rc = QBC_ENOTFOUND;
    node[0] = url[0] = '\0';
    if (space == 0)
        return rc;
    if (space == qbc_cluster_job_space(qbc_cluster_job_id_base(c->st.node_id))) /* node_id never changes */
        return 1;
    pthread_mutex_lock(&c->mu);
    for (unsigned i = 0; i < c->n_urls && rc != 0; i++)
        if (c->urls[i].url[0] != '\0' && qbc_cluster_job_space(qbc_cluster_job_id_base(c->urls[i].id)) == space) {
            snprintf(node, QBC_NODE_ID_MAX, "%s", c->urls[i].id);
            snprintf(url, QBC_CLUSTER_URL_MAX, "%s", c->urls[i].url);
            rc = 0;
        }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int qbc_cluster__node_value(char *out, size_t size, int64_t unix_s, const char *url)
{
    json_t *o = json_pack("{s:I}", "t", (json_int_t)unix_s);
    if (url != NULL && url[0] != '\0')
        json_object_set_new(o, "url", json_string(url));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    int n = text != NULL && strlen(text) < size ? snprintf(out, size, "%s", text) : -1;
    free(text);
    return n;
}

int qbc_cluster__node_value_url(const char *value, size_t len, char *url)
{
    url[0] = '\0';
    json_t *o = value != NULL ? json_loadb(value, len, 0, NULL) : NULL; /* older nodes: a bare number */
    const char *u = json_is_object(o) ? json_string_value(json_object_get(o, "url")) : NULL;
    int rc = u != NULL && u[0] != '\0' && strlen(u) < QBC_CLUSTER_URL_MAX ? 0 : QBC_ENOTFOUND;
    if (rc == 0)
        snprintf(url, QBC_CLUSTER_URL_MAX, "%s", u);
    json_decref(o);
    return rc;
}
