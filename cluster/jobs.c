/*
 * jobs.c — cluster mode: backfill and snapshot jobs shared through the JetStream key-value
 * bucket qbcdc_jobs (cluster.h, qbc_cluster_jobs_*).
 *
 * One key per job (its decimal id; ids are node-scoped, see qbc_cluster_job_id_base), its
 * value {"v":1,"node":"<writer>","job":{...}}, the job as the store encodes it (definition,
 * checkpoint, status). A thread watches the bucket and imports into the local store every
 * entry newer than the local copy (qbc_backfill_cmp, decided again by the store's writer in
 * the transaction); a store listener wakes it to put every local job newer than the
 * bucket's: one created here, a checkpoint of this node's reconciler, a cancel. An entry older
 * than the local copy (two nodes writing at once; the last put wins in the bucket) marks the
 * local one to be put again, so the bucket and every store settle on the newest state.
 * Equal is left alone, which is what stops an import from being put back.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <nats/nats.h>
#include "cluster_internal.h"
#include "jetstream.h"
#include "common.h"

#define MOD "cluster"
#define BUCKET "qbcdc_jobs"

/* what the bucket holds for a job, as last seen (watch) or written (put): what qbc_backfill_cmp reads */
typedef struct st_known_t {
    uint64_t id;
    qbc_backfill_status_t status;
    uint32_t entities_done, rereads, entity_index;
    uint64_t records_seen, start_position;
    int64_t finished_ns;
    int conflict; /* another node's job under this id: logged once, this node's stays out of the bucket */
} known_t;

struct st_qbc_job_sync_t {
    qbc_store_t *store;
    char node_id[QBC_NODE_ID_MAX];
    uint64_t my_space;
    char **servers;
    int n_servers;
    unsigned replicas;
    qbc_worker_t worker; /* the thread: its mutex guards the fields marked "under mu" */
    int dirty;
    int listener;
    unsigned outstanding;    /* imports queued in the store */
    qbc_job_sync_stats_t st; /* under mu */
    /* thread only */
    qbc_kv_t b; /* the bucket (kv.c) */
    known_t *known;
    size_t n_known, cap_known;
};

static void set_error(qbc_job_sync_t *js, const char *fmt, const char *detail)
{
    pthread_mutex_lock(&js->worker.mu);
    snprintf(js->st.last_error, sizeof(js->st.last_error), fmt, detail);
    pthread_mutex_unlock(&js->worker.mu);
}

static void mark_dirty(qbc_job_sync_t *js)
{
    pthread_mutex_lock(&js->worker.mu);
    js->dirty = 1;
    pthread_cond_signal(&js->worker.cv);
    pthread_mutex_unlock(&js->worker.mu);
}

static void known_set(known_t *k, const qbc_backfill_t *b)
{
    k->status = b->status;
    k->entities_done = b->entities_done;
    k->rereads = b->rereads;
    k->entity_index = b->entity_index;
    k->records_seen = b->records_seen;
    k->start_position = b->start_position;
    k->finished_ns = b->finished_ns;
}

/* qbc_backfill_cmp(b, what the bucket holds) */
static int known_cmp_job(const known_t *k, const qbc_backfill_t *b)
{
    qbc_backfill_t *x = qbc_calloc(1, sizeof(*x));
    x->status = k->status;
    x->entities_done = k->entities_done;
    x->rereads = k->rereads;
    x->entity_index = k->entity_index;
    x->records_seen = k->records_seen;
    x->start_position = k->start_position;
    x->finished_ns = k->finished_ns;
    int c = qbc_backfill_cmp(b, x);
    free(x);
    return c;
}

static int known_key_cmp(const void *key, const void *k)
{
    uint64_t a = *(const uint64_t *)key, b = ((const known_t *)k)->id;
    return a < b ? -1 : a > b;
}

/* the bucket's view of a job (sorted by id), created if asked */
static known_t *known_get(qbc_job_sync_t *js, uint64_t id, int create)
{
    known_t *k = js->n_known ? bsearch(&id, js->known, js->n_known, sizeof(*js->known), known_key_cmp) : NULL;
    if (k != NULL || !create)
        return k;
    if (js->n_known == js->cap_known) {
        js->cap_known = js->cap_known ? js->cap_known * 2 : 64;
        js->known = qbc_realloc(js->known, js->cap_known * sizeof(*js->known));
    }
    size_t at = js->n_known; /* ids mostly come in order: look from the end */
    while (at > 0 && js->known[at - 1].id > id)
        at--;
    memmove(&js->known[at + 1], &js->known[at], (js->n_known - at) * sizeof(*js->known));
    js->n_known++;
    k = &js->known[at];
    memset(k, 0, sizeof(*k));
    k->id = id;
    return k;
}

static void on_commit_note(void *ctx, const qbc_commit_note_t *note)
{
    if (note->jobs_changed != 0)
        mark_dirty(ctx);
}

/* ---------------------------------------------------------------- the bucket */

static void disconnect(qbc_job_sync_t *js)
{
    qbc_cluster__kv_close(&js->b);
    pthread_mutex_lock(&js->worker.mu);
    js->st.connected = 0;
    pthread_mutex_unlock(&js->worker.mu);
}

static int connect_and_prepare(qbc_job_sync_t *js)
{
    char err[160];
    if (qbc_cluster__kv_open(js->servers, js->n_servers, BUCKET,
                             "qbcdc: backfill and snapshot jobs (definition, checkpoint, status)", js->replicas, &js->b,
                             err, sizeof(err)) != 0) {
        set_error(js, "%s", err);
        return -1;
    }
    pthread_mutex_lock(&js->worker.mu);
    js->st.connected = 1;
    js->st.last_error[0] = '\0';
    js->dirty = 1; /* what the store holds goes up once the bucket's entries are in */
    pthread_mutex_unlock(&js->worker.mu);
    return 0;
}

/* ---------------------------------------------------------------- local -> bucket */

typedef struct {
    qbc_job_sync_t *js;
    int failed;
} scan_ctx_t;

static int put_job(qbc_job_sync_t *js, const qbc_backfill_t *b)
{
    char *enc = qbc_backfill_encode(b);
    size_t n = strlen(enc) + strlen(js->node_id) + 64;
    char *text = qbc_alloc(n), key[24];
    snprintf(text, n, "{\"v\":1,\"node\":\"%s\",\"job\":%s}", js->node_id, enc); /* node ids need no escaping */
    free(enc);
    snprintf(key, sizeof(key), "%" PRIu64, b->id);
    uint64_t rev = 0;
    natsStatus s = kvStore_PutString(&rev, js->b.kv, key, text);
    free(text);
    if (s != NATS_OK) {
        set_error(js, "cannot put a job: %.100s", natsStatus_GetText(s));
        return -1;
    }
    known_set(known_get(js, b->id, 1), b);
    qbc_log(QBC_LOG_DEBUG, MOD, "job %" PRIu64 ": put to " BUCKET " (%s, %u entities done, %llu records)", b->id,
            qbc_backfill_status_name(b->status), b->entities_done, (unsigned long long)b->records_seen);
    pthread_mutex_lock(&js->worker.mu);
    js->st.put++;
    pthread_mutex_unlock(&js->worker.mu);
    return 0;
}

static int on_local_job(const qbc_backfill_t *b, void *ctx)
{
    scan_ctx_t *sc = ctx;
    if (sc->failed || qbc_cluster_job_space(b->id) == 0) /* from before cluster mode: this node's own */
        return 0;
    known_t *k = known_get(sc->js, b->id, 0);
    if (k == NULL || (!k->conflict && known_cmp_job(k, b) > 0))
        sc->failed = put_job(sc->js, b) != 0;
    return 0;
}

/* ---------------------------------------------------------------- bucket -> local */

typedef struct st_import_t {
    qbc_backfill_job_t job; /* first */
    qbc_job_sync_t *js;
    qbc_backfill_t b;
} import_t;

static void import_done(qbc_store_job_t *job)
{
    import_t *im = (import_t *)job;
    qbc_job_sync_t *js = im->js;
    pthread_mutex_lock(&js->worker.mu);
    js->outstanding--;
    if (job->result == 0 && im->job.imported)
        js->st.imported++;
    pthread_cond_signal(&js->worker.cv);
    pthread_mutex_unlock(&js->worker.mu);
    if (job->result != 0)
        qbc_log(QBC_LOG_WARN, MOD, "job %" PRIu64 ": storing it from " BUCKET " failed: %s", im->b.id,
                qbc_strerror(job->result));
    free(im);
}

static void import_entry(qbc_job_sync_t *js, kvEntry *e)
{
    const char *key = kvEntry_Key(e);
    char *end = NULL;
    if (kvEntry_Operation(e) != kvOp_Put || key == NULL || key[0] < '1' || key[0] > '9')
        return;
    uint64_t id = strtoull(key, &end, 10);
    if (end == NULL || *end != '\0' || qbc_cluster_job_space(id) == 0)
        return;
    json_t *v = json_loadb(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, NULL);
    json_t *jo = json_object_get(v, "job");
    char node[QBC_NODE_ID_MAX];
    snprintf(node, sizeof(node), "%s", json_string_value(json_object_get(v, "node")) ?: "");
    char *text = json_is_object(jo) ? json_dumps(jo, JSON_COMPACT) : NULL;
    import_t *im = qbc_calloc(1, sizeof(*im));
    int bad = text == NULL || qbc_backfill_decode(id, text, strlen(text), &im->b) != 0 || im->b.realm[0] == '\0';
    free(text);
    json_decref(v);
    if (bad) {
        free(im);
        return;
    }
    qbc_backfill_t *local = qbc_alloc(sizeof(*local));
    int have = qbc_store_backfill_get(js->store, id, local) == 0;
    if (have && (strcmp(local->realm, im->b.realm) != 0 || local->created_ns != im->b.created_ns)) {
        /* two jobs under one id: another node hands out ids in this node's space (or this one in
           its): taking it would mix two jobs up */
        known_t *k = known_get(js, id, 1);
        known_set(k, local); /* as if the bucket held ours: not put again over theirs */
        int first = !k->conflict;
        k->conflict = 1;
        pthread_mutex_lock(&js->worker.mu);
        js->st.conflicts += first;
        pthread_mutex_unlock(&js->worker.mu);
        if (first)
            qbc_log(QBC_LOG_ERROR, MOD,
                    "job %" PRIu64 " in " BUCKET " (realm %s, written by node %s) is not this node's job %" PRIu64
                    " (realm %s): two nodes hand out ids in one space (their node ids hash alike); not taken: rename "
                    "one of them",
                    id, im->b.realm, node, id, local->realm);
        free(local);
        free(im);
        return;
    }
    known_set(known_get(js, id, 1), &im->b);
    int c = have ? qbc_backfill_cmp(&im->b, local) : 1;
    free(local);
    if (c <= 0) { /* ours is as new; if newer, the bucket gets it back at the next scan */
        if (c < 0)
            mark_dirty(js);
        free(im);
        return;
    }
    qbc_log(QBC_LOG_DEBUG, MOD, "job %" PRIu64 ": newer in " BUCKET " (%s from %s, %u entities done): taking it", id,
            qbc_backfill_status_name(im->b.status), node, im->b.entities_done);
    im->js = js;
    im->job.import = &im->b;
    im->job.job.on_commit = import_done;
    pthread_mutex_lock(&js->worker.mu);
    js->outstanding++;
    pthread_mutex_unlock(&js->worker.mu);
    if (qbc_store_backfill(js->store, &im->job) != 0) {
        pthread_mutex_lock(&js->worker.mu);
        js->outstanding--;
        pthread_mutex_unlock(&js->worker.mu);
        free(im);
    }
}

/* ---------------------------------------------------------------- the thread */

static void *thread_main(void *arg)
{
    qbc_job_sync_t *js = arg;
    int64_t backoff_ms = 250, last_scan = 0;
    int initial_done = 0;
    for (;;) {
        if (qbc_worker_stopping(&js->worker))
            break;
        if (js->b.nc == NULL) {
            initial_done = 0;
            if (connect_and_prepare(js) != 0) {
                qbc_worker_nap(&js->worker, backoff_ms);
                backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
                continue;
            }
            backoff_ms = 250;
        }
        /* the bucket's changes first (the first ones: every entry, then a NULL) */
        kvEntry *e = NULL;
        natsStatus s;
        int got = 0;
        while ((s = kvWatcher_Next(&e, js->b.w, got ? 1 : 100)) == NATS_OK) {
            got++;
            if (e == NULL) {
                initial_done = 1;
                continue;
            }
            import_entry(js, e);
            kvEntry_Destroy(e);
            if (got >= 256)
                break;
        }
        if (s != NATS_OK && s != NATS_TIMEOUT) { /* a reconnect in progress, or the watch is gone */
            if (natsConnection_IsClosed(js->b.nc)) {
                disconnect(js);
                continue;
            }
            qbc_worker_nap(&js->worker, 200);
        }
        /* then what changed here, once the bucket's view is known: every checkpoint marks the
           jobs changed, so at most a scan every 200 ms (a checkpoint reaches the bucket within) */
        int64_t now = qbc_mono_ns();
        pthread_mutex_lock(&js->worker.mu);
        int dirty = js->dirty;
        js->dirty = 0;
        pthread_mutex_unlock(&js->worker.mu);
        if (dirty && (!initial_done || now - last_scan < 200000000LL)) {
            pthread_mutex_lock(&js->worker.mu);
            js->dirty = 1;
            pthread_mutex_unlock(&js->worker.mu);
        } else if (initial_done && js->b.kv != NULL && (dirty || now - last_scan > 10 * 1000000000LL)) {
            scan_ctx_t sc = {js, 0};
            qbc_store_backfill_scan(js->store, on_local_job, &sc);
            last_scan = now;
            if (sc.failed)
                mark_dirty(js); /* try again at the next turn */
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- public */

int qbc_cluster_jobs_start(const qbc_job_sync_config_t *cfg, qbc_store_t *store, qbc_job_sync_t **out)
{
    *out = NULL;
    if (cfg == NULL || cfg->urls == NULL || cfg->urls[0] == '\0' || !qbc_cluster_node_id_ok(cfg->node_id))
        return QBC_EINVAL;
    qbc_job_sync_t *js = qbc_calloc(1, sizeof(*js));
    js->store = store;
    js->replicas = cfg->replicas;
    snprintf(js->node_id, sizeof(js->node_id), "%s", cfg->node_id);
    js->my_space = qbc_cluster_job_space(qbc_cluster_job_id_base(cfg->node_id));
    js->n_servers = qbc_nats_servers(cfg->urls, &js->servers);
    qbc_worker_init(&js->worker);
    js->listener = qbc_store_add_listener(store, on_commit_note, js);
    if (js->listener < 0) {
        int rc = js->listener;
        qbc_cluster_jobs_stop(js);
        return rc;
    }
    int rc = qbc_worker_start(&js->worker, thread_main, js);
    if (rc != 0) {
        qbc_cluster_jobs_stop(js);
        return rc;
    }
    *out = js;
    return 0;
}

void qbc_cluster_jobs_stop(qbc_job_sync_t *js)
{
    if (js == NULL)
        return;
    qbc_worker_join(&js->worker); /* it notices within a watch's 100 ms */
    if (js->listener >= 0)
        qbc_store_remove_listener(js->store, js->listener);
    /* imports still queued in the store call back into js: wait for them (10 s at most) */
    qbc_worker_drain(&js->worker, &js->outstanding, 10000);
    disconnect(js);
    qbc_nats_servers_free(js->servers, js->n_servers);
    free(js->known);
    qbc_worker_dispose(&js->worker);
    free(js);
}

void qbc_cluster_jobs_stats(qbc_job_sync_t *js, qbc_job_sync_stats_t *out)
{
    pthread_mutex_lock(&js->worker.mu);
    *out = js->st;
    pthread_mutex_unlock(&js->worker.mu);
}
