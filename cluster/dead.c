/*
 * dead.c — cluster mode: dead letters seen and redriven from any node, through the JetStream
 * key-value bucket qbcdc_dead_letters (cluster.h, qbc_cluster_dead_*).
 *
 * A dead letter lives in the store of the node that gave up on it (its home). The home puts
 * each of its dead letters under <node>.<store>.<id> (store: the first 8 hex digits of the
 * store's feed id, so a node on a new disk, whose ids start again at 1, never reuses a key),
 * value JSON: the notice, its error, and a state:
 *
 *   dead      listed by every node;
 *   retry     a node was asked to retry it (POST /admin/dead-letters/{id}/retry, any node);
 *   redriven  the owner of its realm made it pending in its own store (a local redrive when the
 *             owner is its home, else an import: a pending notice for the entity);
 *
 * and once the home sees "redriven" it drops its local copy and purges the key. A key whose
 * home store is gone (same node id, another store) is purged when its node sees it redriven;
 * any node purges a "redriven" key older than ORPHAN_AFTER (its home never came back). Local
 * dead letters absent from the bucket are put (after each commit that made or removed one, and
 * every SCAN_EVERY); keys of the home's store whose dead letter is gone locally (a retry by
 * `qbcdc retry` with a local id) are purged. Every step is done by one thread, after the bucket's
 * entries were read; a step interrupted by a crash is taken up again from the bucket's state.
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
#define BUCKET "qbcdc_dead_letters"
#define SCAN_EVERY (10 * NS)
#define ORPHAN_AFTER (600 * NS)
#define MAX_ENTRIES 20000 /* listed and acted on; more are left in the bucket for later */
#define MAX_REQUESTS 256

typedef struct st_entry_t {
    qbc_cluster_dead_t d;
    uint64_t rev;
    int busy; /* a store job for it is in flight */
    int done; /* that job committed: the next step is due */
    int seen; /* in the last local scan (home entries) */
} entry_t;

struct st_qbc_dead_sync_t {
    qbc_store_t *store;
    qbc_cluster_t *cluster;
    char node_id[QBC_NODE_ID_MAX];
    char store_tag[9];
    char **servers;
    int n_servers;
    unsigned replicas;
    int listener;
    qbc_worker_t worker; /* the thread: its mutex guards the fields marked "under mu" */
    int dirty;
    unsigned outstanding; /* store jobs in flight */
    /* under mu */
    entry_t *entries; /* grown as needed, up to MAX_ENTRIES */
    size_t n_entries, cap_entries;
    char requests[MAX_REQUESTS][QBC_DEAD_KEY_MAX];
    size_t n_requests;
    int synced;
    qbc_dead_sync_stats_t st;
    /* thread only */
    qbc_kv_t c;
    int64_t last_scan;
};

/* ---------------------------------------------------------------- pure: keys, decisions */

int qbc_cluster__dead_key(const char *node, const char *store_tag, uint64_t id, char *out, size_t size)
{
    if (!qbc_cluster_node_id_ok(node) || store_tag == NULL || strlen(store_tag) != 8 ||
        strspn(store_tag, "0123456789abcdef") != 8)
        return -1;
    int n = snprintf(out, size, "%s.%s.%llu", node, store_tag, (unsigned long long)id);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

int qbc_cluster__dead_key_parse(const char *key, char node[QBC_NODE_ID_MAX], char store_tag[9], uint64_t *id)
{
    const char *a = key != NULL ? strchr(key, '.') : NULL, *b = a != NULL ? strchr(a + 1, '.') : NULL;
    if (a == NULL || b == NULL || a - key >= QBC_NODE_ID_MAX || b - a - 1 != 8 || b[1] == '\0' || strlen(b + 1) > 20 ||
        strspn(b + 1, "0123456789") != strlen(b + 1))
        return -1;
    char n[QBC_NODE_ID_MAX];
    memcpy(n, key, (size_t)(a - key));
    n[a - key] = '\0';
    if (!qbc_cluster_node_id_ok(n))
        return -1;
    char t[9];
    memcpy(t, a + 1, 8);
    t[8] = '\0';
    if (strspn(t, "0123456789abcdef") != 8)
        return -1;
    snprintf(node, QBC_NODE_ID_MAX, "%s", n);
    memcpy(store_tag, t, 9);
    *id = strtoull(b + 1, NULL, 10);
    return 0;
}

qbc_dead_action_t qbc_cluster__dead_decide(const qbc_cluster_dead_t *d, const char *me, const char *my_store,
                                           int owns_realm, int64_t now_ns)
{
    int home = strcmp(d->node, me) == 0, mine = home && strcmp(d->store_tag, my_store) == 0;
    switch (d->state) {
    case QBC_DEAD_RETRY:
        if (!owns_realm)
            return QBC_DEAD_WAIT; /* the realm's owner redrives it */
        return mine ? QBC_DEAD_REDRIVE_LOCAL : QBC_DEAD_IMPORT;
    case QBC_DEAD_REDRIVEN:
        if (mine)
            return QBC_DEAD_DROP_LOCAL; /* then the key goes */
        if (home || now_ns - d->state_ns > ORPHAN_AFTER)
            return QBC_DEAD_PURGE; /* its home store is gone */
        return QBC_DEAD_WAIT;
    default:
        return QBC_DEAD_WAIT;
    }
}

static const char *state_name(int s)
{
    return s == QBC_DEAD_RETRY ? "retry" : s == QBC_DEAD_REDRIVEN ? "redriven" : "dead";
}

/* ---------------------------------------------------------------- the table (under mu) */

static entry_t *find(qbc_dead_sync_t *ds, const char *key)
{
    for (size_t i = 0; i < ds->n_entries; i++)
        if (strcmp(ds->entries[i].d.key, key) == 0)
            return &ds->entries[i];
    return NULL;
}

/* a new zeroed entry at the end of the table, or NULL when it is full */
static entry_t *entry_add(qbc_dead_sync_t *ds)
{
    if (ds->n_entries == ds->cap_entries) {
        if (ds->cap_entries >= MAX_ENTRIES)
            return NULL;
        ds->cap_entries = ds->cap_entries ? ds->cap_entries * 2 : 64;
        ds->entries = qbc_realloc(ds->entries, ds->cap_entries * sizeof(*ds->entries));
    }
    entry_t *e = &ds->entries[ds->n_entries++];
    memset(e, 0, sizeof(*e));
    return e;
}

static void set_error(qbc_dead_sync_t *ds, const char *fmt, const char *detail)
{
    pthread_mutex_lock(&ds->worker.mu);
    snprintf(ds->st.last_error, sizeof(ds->st.last_error), fmt, detail);
    pthread_mutex_unlock(&ds->worker.mu);
}

static void take_entry(qbc_dead_sync_t *ds, kvEntry *e)
{
    qbc_cluster_dead_t d;
    memset(&d, 0, sizeof(d));
    const char *key = kvEntry_Key(e);
    if (qbc_cluster__dead_key_parse(key, d.node, d.store_tag, &d.id) != 0)
        return;
    snprintf(d.key, sizeof(d.key), "%s", key);
    int put = kvEntry_Operation(e) == kvOp_Put;
    if (put) {
        json_error_t jerr;
        json_t *o = json_loadb(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, &jerr);
        const char *realm = json_string_value(json_object_get(o, "realm"));
        const char *entity = json_string_value(json_object_get(o, "entity"));
        const char *eid = json_string_value(json_object_get(o, "entity_id"));
        const char *state = json_string_value(json_object_get(o, "state"));
        if (realm == NULL || entity == NULL || eid == NULL || state == NULL) {
            json_decref(o);
            return;
        }
        snprintf(d.realm, sizeof(d.realm), "%s", realm);
        snprintf(d.entity, sizeof(d.entity), "%s", entity);
        snprintf(d.entity_id, sizeof(d.entity_id), "%s", eid);
        snprintf(d.error, sizeof(d.error), "%s", json_string_value(json_object_get(o, "error")) ?: "");
        snprintf(d.by, sizeof(d.by), "%s", json_string_value(json_object_get(o, "by")) ?: "");
        d.op = (qbc_op_t)json_integer_value(json_object_get(o, "op_n"));
        d.attempts = (uint32_t)json_integer_value(json_object_get(o, "attempts"));
        d.died_ns = (int64_t)json_integer_value(json_object_get(o, "died_ns"));
        d.updated_ns = (int64_t)json_integer_value(json_object_get(o, "updated_ns"));
        d.state = strcmp(state, "retry") == 0      ? QBC_DEAD_RETRY
                  : strcmp(state, "redriven") == 0 ? QBC_DEAD_REDRIVEN
                                                   : QBC_DEAD_DEAD;
        d.state_ns = (int64_t)json_integer_value(json_object_get(o, "state_ns"));
        json_decref(o);
    }
    pthread_mutex_lock(&ds->worker.mu);
    entry_t *have = find(ds, key);
    if (!put) { /* a job still in flight for it finds nothing when it ends */
        if (have != NULL)
            *have = ds->entries[--ds->n_entries];
    } else if (have != NULL) {
        if (kvEntry_Revision(e) >= have->rev) { /* not an echo older than what we wrote since */
            if (have->d.state != d.state)
                have->busy = have->done = 0; /* a new step */
            have->d = d;
            have->rev = kvEntry_Revision(e);
        }
    } else {
        entry_t *n = entry_add(ds);
        if (n != NULL) {
            n->d = d;
            n->rev = kvEntry_Revision(e);
        }
    }
    pthread_mutex_unlock(&ds->worker.mu);
}

/* ---------------------------------------------------------------- the bucket */

/* writes d as its key's value: created when rev is 0, else updated over rev; the table follows at once */
static int put_entry(qbc_dead_sync_t *ds, const qbc_cluster_dead_t *d, uint64_t rev)
{
    json_t *o =
        json_pack("{s:i,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:I,s:s,s:I,s:s,s:I}", "v", 1, "node", d->node, "store",
                  d->store_tag, "id", (json_int_t)d->id, "realm", d->realm, "entity", d->entity, "entity_id",
                  d->entity_id, "op", qbc_op_name(d->op), "op_n", (int)d->op, "attempts", (int)d->attempts, "error",
                  d->error, "died_ns", (json_int_t)d->died_ns, "state", state_name(d->state), "state_ns",
                  (json_int_t)d->state_ns, "by", d->by, "updated_ns", (json_int_t)qbc_now_ns());
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    uint64_t nrev = 0;
    natsStatus s = rev == 0 ? kvStore_Create(&nrev, ds->c.kv, d->key, text, (int)strlen(text))
                            : kvStore_Update(&nrev, ds->c.kv, d->key, text, (int)strlen(text), rev);
    free(text);
    if (s != NATS_OK) { /* another node wrote it first: the watch brings its state, and we look again */
        set_error(ds, "dead letters: cannot write an entry: %.100s", natsStatus_GetText(s));
        return -1;
    }
    pthread_mutex_lock(&ds->worker.mu);
    entry_t *e = find(ds, d->key);
    if (e == NULL && (e = entry_add(ds)) != NULL)
        e->seen = 1; /* created from the local dead letter just read */
    if (e != NULL) {
        if (e->d.state != d->state)
            e->busy = e->done = 0; /* a new step */
        e->d = *d;
        e->rev = nrev;
    }
    pthread_mutex_unlock(&ds->worker.mu);
    return 0;
}

static void purge(qbc_dead_sync_t *ds, const char *key)
{
    if (kvStore_Purge(ds->c.kv, key, NULL) == NATS_OK) {
        pthread_mutex_lock(&ds->worker.mu);
        ds->st.purged++;
        pthread_mutex_unlock(&ds->worker.mu);
    }
}

/* ---------------------------------------------------------------- store jobs */

typedef struct st_dl_job_t {
    qbc_redrive_job_t rj; /* first */
    qbc_dead_sync_t *ds;
    qbc_event_t ev;
    char key[QBC_DEAD_KEY_MAX];
} dl_job_t;

/* writer thread: the step is durable (or failed: tried again next turn) */
static void job_done(qbc_store_job_t *job)
{
    dl_job_t *j = (dl_job_t *)job;
    qbc_dead_sync_t *ds = j->ds;
    pthread_mutex_lock(&ds->worker.mu);
    entry_t *e = find(ds, j->key);
    if (e != NULL) {
        e->busy = 0;
        e->done = job->result == 0;
    }
    ds->outstanding--;
    pthread_cond_signal(&ds->worker.cv);
    pthread_mutex_unlock(&ds->worker.mu);
    free(j);
}

static void submit(qbc_dead_sync_t *ds, entry_t *e, qbc_dead_action_t a)
{
    dl_job_t *j = qbc_calloc(1, sizeof(*j));
    j->ds = ds;
    snprintf(j->key, sizeof(j->key), "%s", e->d.key);
    j->rj.job.on_commit = job_done;
    j->rj.dead_id = e->d.id;
    j->rj.drop = a == QBC_DEAD_DROP_LOCAL;
    if (a == QBC_DEAD_IMPORT) {
        snprintf(j->ev.realm, sizeof(j->ev.realm), "%s", e->d.realm);
        snprintf(j->ev.entity, sizeof(j->ev.entity), "%s", e->d.entity);
        snprintf(j->ev.id, sizeof(j->ev.id), "%s", e->d.entity_id);
        j->ev.op = e->d.op;
        j->ev.updated_ns = e->d.died_ns;
        j->rj.import = &j->ev;
    }
    e->busy = 1;
    e->done = 0;
    ds->outstanding++;
    if (qbc_store_redrive(ds->store, &j->rj) != 0) {
        e->busy = 0;
        ds->outstanding--;
        free(j);
    }
}

/* ---------------------------------------------------------------- the steps */

typedef struct {
    qbc_dead_sync_t *ds;
    qbc_cluster_dead_t *missing; /* local dead letters without a key */
    size_t n_missing, cap;
} scan_t;

/* a dead letter of this node's store, as the cluster lists it (under key) */
static void local_row(qbc_cluster_dead_t *m, const qbc_dead_sync_t *ds, const char *key, const qbc_dead_t *d)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->key, sizeof(m->key), "%s", key);
    snprintf(m->node, sizeof(m->node), "%s", ds->node_id);
    memcpy(m->store_tag, ds->store_tag, sizeof(m->store_tag));
    m->id = d->id;
    snprintf(m->realm, sizeof(m->realm), "%s", d->realm);
    snprintf(m->entity, sizeof(m->entity), "%s", d->entity);
    snprintf(m->entity_id, sizeof(m->entity_id), "%s", d->entity_id);
    snprintf(m->error, sizeof(m->error), "%s", d->error);
    m->op = d->last_op;
    m->attempts = d->attempts;
    m->died_ns = d->died_ns;
}

static int on_local(const qbc_dead_t *d, void *ctx)
{
    scan_t *sc = ctx;
    qbc_dead_sync_t *ds = sc->ds;
    char key[QBC_DEAD_KEY_MAX];
    if (qbc_cluster__dead_key(ds->node_id, ds->store_tag, d->id, key, sizeof(key)) != 0)
        return 0;
    pthread_mutex_lock(&ds->worker.mu);
    entry_t *e = find(ds, key);
    if (e != NULL)
        e->seen = 1;
    pthread_mutex_unlock(&ds->worker.mu);
    if (e != NULL || sc->n_missing >= 1000)
        return 0;
    if (sc->n_missing == sc->cap) {
        sc->cap = sc->cap ? sc->cap * 2 : 16;
        sc->missing = qbc_realloc(sc->missing, sc->cap * sizeof(*sc->missing));
    }
    qbc_cluster_dead_t *m = &sc->missing[sc->n_missing++];
    local_row(m, ds, key, d);
    m->state = QBC_DEAD_DEAD;
    m->state_ns = d->died_ns;
    return 0;
}

/* this node's dead letters into the bucket; keys of ours whose dead letter is gone out of it */
static void local_scan(qbc_dead_sync_t *ds)
{
    scan_t sc = {ds, NULL, 0, 0};
    pthread_mutex_lock(&ds->worker.mu);
    for (size_t i = 0; i < ds->n_entries; i++)
        ds->entries[i].seen = 0;
    pthread_mutex_unlock(&ds->worker.mu);
    if (qbc_store_dead_scan(ds->store, on_local, &sc) != 0) {
        free(sc.missing);
        return;
    }
    for (size_t i = 0; i < sc.n_missing; i++) {
        if (put_entry(ds, &sc.missing[i], 0) == 0) {
            pthread_mutex_lock(&ds->worker.mu);
            ds->st.put++;
            pthread_mutex_unlock(&ds->worker.mu);
        }
    }
    free(sc.missing);
    char gone[16][QBC_DEAD_KEY_MAX];
    size_t n = 0;
    pthread_mutex_lock(&ds->worker.mu);
    for (size_t i = 0; i < ds->n_entries && n < 16; i++) {
        entry_t *e = &ds->entries[i];
        if (!e->seen && !e->busy && e->d.state == QBC_DEAD_DEAD && strcmp(e->d.node, ds->node_id) == 0 &&
            strcmp(e->d.store_tag, ds->store_tag) == 0)
            snprintf(gone[n++], sizeof(gone[0]), "%s", e->d.key);
    }
    pthread_mutex_unlock(&ds->worker.mu);
    for (size_t i = 0; i < n; i++)
        purge(ds, gone[i]);
}

/* retries asked for through the API: their entries' state becomes "retry" */
static void take_requests(qbc_dead_sync_t *ds)
{
    pthread_mutex_lock(&ds->worker.mu);
    size_t n = ds->n_requests;
    char(*keys)[QBC_DEAD_KEY_MAX] = n ? qbc_alloc(n * sizeof(*keys)) : NULL;
    if (n)
        memcpy(keys, ds->requests, n * sizeof(*keys));
    ds->n_requests = 0;
    pthread_mutex_unlock(&ds->worker.mu);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&ds->worker.mu);
        entry_t *e = find(ds, keys[i]);
        qbc_cluster_dead_t d;
        uint64_t rev = 0;
        int todo = e != NULL && e->d.state == QBC_DEAD_DEAD;
        if (todo) {
            d = e->d;
            rev = e->rev;
        }
        pthread_mutex_unlock(&ds->worker.mu);
        if (!todo)
            continue;
        d.state = QBC_DEAD_RETRY;
        d.state_ns = qbc_now_ns();
        snprintf(d.by, sizeof(d.by), "%s", ds->node_id);
        put_entry(ds, &d, rev);
    }
    free(keys);
}

/* each entry's next step (qbc_cluster__dead_decide) */
static void steps(qbc_dead_sync_t *ds)
{
    int64_t now = qbc_now_ns();
    typedef struct {
        qbc_cluster_dead_t d;
        uint64_t rev;
        int what; /* 1: mark redriven, 2: purge */
    } todo_t;
    todo_t todo[32];
    size_t n = 0;
    pthread_mutex_lock(&ds->worker.mu);
    for (size_t i = 0; i < ds->n_entries && n < 32; i++) {
        entry_t *e = &ds->entries[i];
        if (e->busy)
            continue;
        int owns = e->d.state == QBC_DEAD_RETRY && qbc_cluster_owns(ds->cluster, e->d.realm, NULL);
        qbc_dead_action_t a = qbc_cluster__dead_decide(&e->d, ds->node_id, ds->store_tag, owns, now);
        if (a == QBC_DEAD_WAIT)
            continue;
        if (a == QBC_DEAD_PURGE || ((a == QBC_DEAD_DROP_LOCAL) && e->done)) {
            todo[n++] = (todo_t){e->d, e->rev, 2};
        } else if (e->done) { /* redriven here: say so */
            todo[n++] = (todo_t){e->d, e->rev, 1};
        } else {
            submit(ds, e, a);
        }
    }
    pthread_mutex_unlock(&ds->worker.mu);
    for (size_t i = 0; i < n; i++) {
        if (todo[i].what == 2) {
            purge(ds, todo[i].d.key);
            continue;
        }
        todo[i].d.state = QBC_DEAD_REDRIVEN;
        todo[i].d.state_ns = now;
        snprintf(todo[i].d.by, sizeof(todo[i].d.by), "%s", ds->node_id);
        if (put_entry(ds, &todo[i].d, todo[i].rev) == 0) {
            pthread_mutex_lock(&ds->worker.mu);
            ds->st.redriven++;
            pthread_mutex_unlock(&ds->worker.mu);
            qbc_log(QBC_LOG_INFO, MOD, "dead letter %s (realm %s, %s %s) redriven here, its realm's owner",
                    todo[i].d.key, todo[i].d.realm, todo[i].d.entity, todo[i].d.entity_id);
        }
    }
}

static void on_commit_note(void *ctx, const qbc_commit_note_t *note)
{
    qbc_dead_sync_t *ds = ctx;
    if (note->dead_changed == 0)
        return;
    pthread_mutex_lock(&ds->worker.mu);
    ds->dirty = 1;
    pthread_cond_signal(&ds->worker.cv);
    pthread_mutex_unlock(&ds->worker.mu);
}

static void *thread_main(void *arg)
{
    qbc_dead_sync_t *ds = arg;
    int64_t backoff_ms = 250;
    for (;;) {
        if (qbc_worker_stopping(&ds->worker))
            break;
        if (ds->c.nc == NULL) {
            char err[160];
            if (qbc_cluster__kv_open(ds->servers, ds->n_servers, BUCKET,
                                     "qbcdc: dead letters of every node, and their retries", ds->replicas, &ds->c, err,
                                     sizeof(err)) != 0) {
                set_error(ds, "%s", err);
                qbc_worker_nap(&ds->worker, backoff_ms);
                backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
                continue;
            }
            backoff_ms = 250;
            pthread_mutex_lock(&ds->worker.mu);
            ds->st.last_error[0] = '\0';
            pthread_mutex_unlock(&ds->worker.mu);
        }
        kvEntry *e = NULL;
        natsStatus s;
        int got = 0;
        while ((s = kvWatcher_Next(&e, ds->c.w, got ? 1 : 100)) == NATS_OK) {
            got++;
            if (e == NULL) {
                pthread_mutex_lock(&ds->worker.mu);
                ds->synced = 1;
                ds->dirty = 1;
                pthread_mutex_unlock(&ds->worker.mu);
                continue;
            }
            take_entry(ds, e);
            kvEntry_Destroy(e);
            if (got >= 256)
                break;
        }
        int up = qbc_cluster__kv_up(&ds->c);
        pthread_mutex_lock(&ds->worker.mu);
        ds->st.connected = up;
        int synced = ds->synced, dirty = ds->dirty;
        pthread_mutex_unlock(&ds->worker.mu);
        if (s != NATS_OK && s != NATS_TIMEOUT && natsConnection_IsClosed(ds->c.nc)) {
            qbc_cluster__kv_close(&ds->c);
            pthread_mutex_lock(&ds->worker.mu);
            ds->synced = 0;
            pthread_mutex_unlock(&ds->worker.mu);
            continue;
        }
        if (!up || !synced) {
            qbc_worker_nap(&ds->worker, 200);
            continue;
        }
        take_requests(ds);
        int64_t now = qbc_mono_ns();
        if (dirty || now - ds->last_scan >= SCAN_EVERY) {
            pthread_mutex_lock(&ds->worker.mu);
            ds->dirty = 0;
            pthread_mutex_unlock(&ds->worker.mu);
            ds->last_scan = now;
            local_scan(ds);
        }
        steps(ds);
    }
    return NULL;
}

/* ---------------------------------------------------------------- public */

int qbc_cluster_dead_start(const qbc_dead_sync_config_t *cfg, qbc_cluster_t *cluster, qbc_store_t *store,
                           qbc_dead_sync_t **out)
{
    *out = NULL;
    if (cfg == NULL || cfg->urls == NULL || cfg->urls[0] == '\0' || !qbc_cluster_node_id_ok(cfg->node_id))
        return QBC_EINVAL;
    const char *feed_id = qbc_store_feed_id(store);
    if (strlen(feed_id) < 8)
        return QBC_EINVAL;
    qbc_dead_sync_t *ds = qbc_calloc(1, sizeof(*ds));
    ds->store = store;
    ds->cluster = cluster;
    ds->replicas = cfg->replicas;
    snprintf(ds->node_id, sizeof(ds->node_id), "%s", cfg->node_id);
    memcpy(ds->store_tag, feed_id, 8);
    ds->store_tag[8] = '\0';
    ds->n_servers = qbc_nats_servers(cfg->urls, &ds->servers);
    qbc_worker_init(&ds->worker);
    ds->listener = qbc_store_add_listener(store, on_commit_note, ds);
    if (ds->listener < 0) {
        int rc = ds->listener;
        qbc_cluster_dead_stop(ds);
        return rc;
    }
    int rc = qbc_worker_start(&ds->worker, thread_main, ds);
    if (rc != 0) {
        qbc_cluster_dead_stop(ds);
        return rc;
    }
    *out = ds;
    return 0;
}

void qbc_cluster_dead_stop(qbc_dead_sync_t *ds)
{
    if (ds == NULL)
        return;
    qbc_worker_join(&ds->worker);
    if (ds->listener >= 0)
        qbc_store_remove_listener(ds->store, ds->listener);
    /* store jobs still queued call back into ds: wait for them (10 s at most) */
    qbc_worker_drain(&ds->worker, &ds->outstanding, 10000);
    qbc_cluster__kv_close(&ds->c);
    qbc_nats_servers_free(ds->servers, ds->n_servers);
    free(ds->entries);
    qbc_worker_dispose(&ds->worker);
    free(ds);
}

typedef struct {
    qbc_dead_sync_t *ds;
    qbc_cluster_dead_t *out;
    size_t n, max;
} list_t;

static int list_local(const qbc_dead_t *d, void *ctx)
{
    list_t *l = ctx;
    if (l->n >= l->max)
        return 1;
    char key[QBC_DEAD_KEY_MAX];
    if (qbc_cluster__dead_key(l->ds->node_id, l->ds->store_tag, d->id, key, sizeof(key)) != 0)
        return 0;
    pthread_mutex_lock(&l->ds->worker.mu);
    int known = find(l->ds, key) != NULL;
    pthread_mutex_unlock(&l->ds->worker.mu);
    if (known)
        return 0;
    qbc_cluster_dead_t *m = &l->out[l->n++];
    local_row(m, l->ds, key, d);
    return 0;
}

static int by_died(const void *a, const void *b)
{
    const qbc_cluster_dead_t *x = a, *y = b;
    return x->died_ns < y->died_ns ? -1 : x->died_ns > y->died_ns ? 1 : strcmp(x->key, y->key);
}

size_t qbc_cluster_dead_list(qbc_dead_sync_t *ds, qbc_cluster_dead_t *out, size_t max)
{
    list_t l = {ds, out, 0, max};
    pthread_mutex_lock(&ds->worker.mu);
    for (size_t i = 0; i < ds->n_entries && l.n < max; i++)
        if (ds->entries[i].d.state != QBC_DEAD_REDRIVEN)
            out[l.n++] = ds->entries[i].d;
    pthread_mutex_unlock(&ds->worker.mu);
    /* this node's own, not in the bucket yet (made within the last moment, or NATS is away) */
    qbc_store_dead_scan(ds->store, list_local, &l);
    qsort(out, l.n, sizeof(*out), by_died);
    return l.n;
}

int qbc_cluster_dead_retry(qbc_dead_sync_t *ds, const char *id, qbc_cluster_dead_t *out)
{
    char key[QBC_DEAD_KEY_MAX];
    if (id[0] != '\0' && strspn(id, "0123456789") == strlen(id) && strlen(id) <= 20) { /* this node's own id */
        if (qbc_cluster__dead_key(ds->node_id, ds->store_tag, strtoull(id, NULL, 10), key, sizeof(key)) != 0)
            return QBC_ENOTFOUND;
    } else {
        char node[QBC_NODE_ID_MAX], tag[9];
        uint64_t n;
        if (qbc_cluster__dead_key_parse(id, node, tag, &n) != 0)
            return QBC_ENOTFOUND;
        snprintf(key, sizeof(key), "%s", id);
    }
    pthread_mutex_lock(&ds->worker.mu);
    entry_t *e = find(ds, key);
    int rc = e == NULL || e->d.state == QBC_DEAD_REDRIVEN ? QBC_ENOTFOUND
             : !ds->st.connected || !ds->synced           ? QBC_ECLOSED
             : ds->n_requests >= MAX_REQUESTS             ? QBC_EFULL
                                                          : 0;
    if (rc == 0) {
        if (out != NULL)
            *out = e->d;
        snprintf(ds->requests[ds->n_requests++], QBC_DEAD_KEY_MAX, "%s", key);
        pthread_cond_signal(&ds->worker.cv);
    }
    pthread_mutex_unlock(&ds->worker.mu);
    return rc;
}

void qbc_cluster_dead_stats(qbc_dead_sync_t *ds, qbc_dead_sync_stats_t *out)
{
    pthread_mutex_lock(&ds->worker.mu);
    *out = ds->st;
    out->listed = 0;
    for (size_t i = 0; i < ds->n_entries; i++)
        out->listed += ds->entries[i].d.state != QBC_DEAD_REDRIVEN;
    pthread_mutex_unlock(&ds->worker.mu);
}
