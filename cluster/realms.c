/*
 * realms.c — cluster mode: every node's realms and tokens kept alike through the JetStream
 * key-value bucket qbcdc_realms (cluster.h, qbc_cluster_realms_*).
 *
 * One key per realm; its value is JSON: the realm's status, connected_ns, its CDC watermark
 * when put, and its tokens, sealed with the master key (AES-256-GCM, the realm in the
 * authenticated data: every node needs the same key). A thread watches the bucket and writes
 * into the local store what is newer than the local copy; a store listener wakes it to put
 * into the bucket what is newer locally: a registration (PUT .../tokens, the OAuth callback)
 * on any node, the owner's token refreshes, a disconnect. "Newer" orders
 * (connected_ns, disconnected, access_expires_ns): a new connection wins over anything of the
 * old one, a disconnect over the connection it ends, a refresh over the tokens it replaced.
 * Equal is left alone, which is what stops an import from being put back.
 *
 * CDC watermarks: the node that sweeps a realm (its owner) puts the entry again as the
 * realm's watermark advances, at most every WM_EVERY per realm (and at stop), so the bucket
 * holds a recent one. Which one a node sweeps from: its own when it has one, since its store
 * holds the versions it fetched up to there, and a node taking a realm over sweeps from its
 * own watermark so that its store catches up on what others fetched meanwhile; the bucket's
 * only when it has none (a realm new to it, or never swept there: a node on a fresh disk),
 * which spares it a sweep over CDC's whole lookback. A watermark put only ever is one a sweep
 * completed, so an older one in the bucket (a token put by another node carries that node's)
 * costs a longer sweep, never a gap; the owner's next put corrects it.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <nats/nats.h>
#include <openssl/crypto.h>
#include "cluster.h"
#include "jetstream.h"
#include "common.h"

#define MOD "cluster"
#define BUCKET "qbcdc_realms"
#define AAD_PREFIX "qbcdc-cluster-tokens:"
#define WM_EVERY (5 * 1000000000LL) /* a realm's watermark put at most this often */

typedef struct st_order_t {
    int64_t connected_ns, disconnected, access_expires_ns;
} order_t;

/* what the bucket holds for a realm, as last seen (watch) or written (put) */
typedef struct st_known_t {
    char realm[QBC_REALM_MAX];
    order_t o;
    int64_t wm;          /* the bucket's CDC watermark */
    int64_t wm_put_mono; /* when this node last put the realm (0: never) */
} known_t;

struct st_qbc_realm_sync_t {
    qbc_store_t *store;
    char node_id[QBC_NODE_ID_MAX];
    char **servers;
    int n_servers;
    unsigned replicas;
    qbc_worker_t worker; /* the thread: its mutex guards the fields marked "under mu" */
    int dirty;
    int listener;
    unsigned outstanding;      /* imports queued in the store */
    int64_t wm_due;            /* mono: a watermark put was held back until then (0: none) */
    qbc_realm_sync_stats_t st; /* under mu */
    /* thread only */
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
    kvWatcher *w;
    known_t *known;
    size_t n_known, cap_known;
};

static void set_error(qbc_realm_sync_t *rs, const char *fmt, const char *detail)
{
    pthread_mutex_lock(&rs->worker.mu);
    snprintf(rs->st.last_error, sizeof(rs->st.last_error), fmt, detail);
    pthread_mutex_unlock(&rs->worker.mu);
}

static int order_cmp(const order_t *a, const order_t *b)
{
    const int64_t x[] = {a->connected_ns, a->disconnected, a->access_expires_ns};
    const int64_t y[] = {b->connected_ns, b->disconnected, b->access_expires_ns};
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

static int known_cmp(const void *key, const void *k)
{
    return strcmp(key, ((const known_t *)k)->realm);
}

/* the bucket's view of a realm (kept sorted: a fleet has thousands), created if asked */
static known_t *known_get(qbc_realm_sync_t *rs, const char *realm, int create)
{
    known_t *k = rs->n_known ? bsearch(realm, rs->known, rs->n_known, sizeof(*rs->known), known_cmp) : NULL;
    if (k != NULL || !create)
        return k;
    if (rs->n_known == rs->cap_known) {
        rs->cap_known = rs->cap_known ? rs->cap_known * 2 : 64;
        rs->known = qbc_realloc(rs->known, rs->cap_known * sizeof(*rs->known));
    }
    size_t at = 0;
    while (at < rs->n_known && strcmp(rs->known[at].realm, realm) < 0) /* new realms are rare */
        at++;
    memmove(&rs->known[at + 1], &rs->known[at], (rs->n_known - at) * sizeof(*rs->known));
    rs->n_known++;
    k = &rs->known[at];
    memset(k, 0, sizeof(*k));
    snprintf(k->realm, sizeof(k->realm), "%s", realm);
    return k;
}

static void on_commit_note(void *ctx, const qbc_commit_note_t *note)
{
    qbc_realm_sync_t *rs = ctx;
    if (note->realms_changed == 0)
        return;
    pthread_mutex_lock(&rs->worker.mu);
    rs->dirty = 1;
    pthread_cond_signal(&rs->worker.cv);
    pthread_mutex_unlock(&rs->worker.mu);
}

/* ---------------------------------------------------------------- the bucket */

static void disconnect(qbc_realm_sync_t *rs)
{
    if (rs->w != NULL)
        kvWatcher_Destroy(rs->w);
    if (rs->kv != NULL)
        kvStore_Destroy(rs->kv);
    if (rs->js != NULL)
        jsCtx_Destroy(rs->js);
    pthread_mutex_lock(&rs->worker.mu);
    natsConnection *nc = rs->nc;
    rs->nc = NULL;
    rs->st.connected = 0;
    pthread_mutex_unlock(&rs->worker.mu);
    if (nc != NULL) {
        natsConnection_Close(nc);
        natsConnection_Destroy(nc);
    }
    rs->w = NULL;
    rs->kv = NULL;
    rs->js = NULL;
}

static int connect_and_prepare(qbc_realm_sync_t *rs)
{
    natsConnection *nc = NULL;
    natsStatus s = qbc_nats_connect(rs->servers, rs->n_servers, 250, &nc);
    pthread_mutex_lock(&rs->worker.mu);
    rs->nc = nc;
    pthread_mutex_unlock(&rs->worker.mu);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&rs->js, rs->nc, NULL);
    if (s == NATS_OK) {
        s = js_KeyValue(&rs->kv, rs->js, BUCKET);
        if (s == NATS_NOT_FOUND) {
            kvConfig kc;
            kvConfig_Init(&kc);
            kc.Bucket = BUCKET;
            kc.Description = "qbcdc: realms, their sealed tokens and CDC watermarks";
            kc.History = 1;
            kc.StorageType = js_FileStorage;
            kc.Replicas = (int)(rs->replicas ? rs->replicas : 1);
            s = js_CreateKeyValue(&rs->kv, rs->js, &kc);
            if (s != NATS_OK) /* another node created it meanwhile */
                s = js_KeyValue(&rs->kv, rs->js, BUCKET);
        }
    }
    if (s == NATS_OK)
        s = kvStore_WatchAll(&rs->w, rs->kv, NULL);
    if (s != NATS_OK) {
        set_error(rs, "realms bucket: %.100s", natsStatus_GetText(s));
        disconnect(rs);
        return -1;
    }
    pthread_mutex_lock(&rs->worker.mu);
    rs->st.connected = 1;
    rs->st.last_error[0] = '\0';
    rs->dirty = 1; /* what the store holds goes up once the bucket's entries are in */
    pthread_mutex_unlock(&rs->worker.mu);
    return 0;
}

/* ---------------------------------------------------------------- the rules (pure) */

int64_t qbc_cluster__watermark_start(int have_local, int64_t local_wm, int64_t bucket_wm)
{
    return have_local && local_wm > 0 ? local_wm : bucket_wm > 0 ? bucket_wm : local_wm;
}

int qbc_cluster__watermark_put_due(int order_vs_bucket, int64_t local_wm, int64_t bucket_wm, int64_t last_put_mono,
                                   int64_t now_mono, int final, int64_t *due_mono)
{
    *due_mono = 0;
    if (order_vs_bucket != 0 || local_wm <= bucket_wm)
        return 0; /* another connection's tokens (they go up another way), or nothing newer */
    if (final || last_put_mono == 0 || now_mono >= last_put_mono + WM_EVERY)
        return 1;
    *due_mono = last_put_mono + WM_EVERY;
    return 0;
}

/* ---------------------------------------------------------------- local -> bucket */

typedef struct {
    qbc_realm_sync_t *rs;
    int failed;
    int final; /* at stop: watermarks put whatever their last put */
    int64_t now;
} scan_ctx_t;

static int put_realm(qbc_realm_sync_t *rs, const qbc_realm_t *st, const qbc_tokens_t *tok, int has_tok,
                     const order_t *o)
{
    json_t *v = json_pack("{s:i,s:s,s:I,s:I,s:I,s:I,s:s}", "v", 1, "status", qbc_realm_status_name(st->status),
                          "connected_ns", (json_int_t)st->connected_ns, "cdc_watermark_ns",
                          (json_int_t)st->cdc_watermark_ns, "last_cdc_ns", (json_int_t)st->last_cdc_ns,
                          "access_expires_ns", (json_int_t)o->access_expires_ns, "node", rs->node_id);
    if (has_tok) {
        json_t *t = json_pack("{s:s,s:s,s:I,s:I}", "refresh_token", tok->refresh_token, "access_token",
                              tok->access_token, "access_expires_ns", (json_int_t)tok->access_expires_ns,
                              "refresh_expires_ns", (json_int_t)tok->refresh_expires_ns);
        char *plain = json_dumps(t, JSON_COMPACT);
        json_decref(t); /* jansson's copies of the tokens: freed without wiping (its allocator) */
        size_t plen = strlen(plain), slen = 0;
        unsigned char *sealed = qbc_alloc(plen + QBC_STORE_SEAL_OVERHEAD);
        char aad[QBC_REALM_MAX + 32];
        snprintf(aad, sizeof(aad), AAD_PREFIX "%s", st->realm);
        int rc = qbc_store_seal(rs->store, aad, plain, plen, sealed, &slen);
        OPENSSL_cleanse(plain, plen);
        free(plain);
        if (rc != 0) {
            free(sealed);
            json_decref(v);
            set_error(rs, "cannot seal a realm's tokens: %s", qbc_strerror(rc));
            return -1;
        }
        char *b64 = qbc_alloc(QBC_BASE64_ENCODED_SIZE(slen));
        qbc_base64_encode(sealed, slen, b64);
        json_object_set_new(v, "tokens", json_string(b64));
        free(b64);
        free(sealed);
    }
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    uint64_t rev = 0;
    natsStatus s = kvStore_PutString(&rev, rs->kv, st->realm, text);
    free(text);
    if (s != NATS_OK) {
        set_error(rs, "cannot put a realm: %.100s", natsStatus_GetText(s));
        return -1;
    }
    known_t *k = known_get(rs, st->realm, 1);
    int wm_up = st->cdc_watermark_ns > k->wm;
    k->o = *o;
    k->wm = st->cdc_watermark_ns;
    k->wm_put_mono = qbc_mono_ns();
    pthread_mutex_lock(&rs->worker.mu);
    rs->st.put++;
    rs->st.watermarks_put += wm_up;
    pthread_mutex_unlock(&rs->worker.mu);
    return 0;
}

static int on_local_realm(const qbc_realm_t *st, int has_tokens, void *ctx)
{
    scan_ctx_t *sc = ctx;
    qbc_realm_sync_t *rs = sc->rs;
    if (sc->failed)
        return 0;
    qbc_tokens_t *tok = qbc_alloc(sizeof(*tok));
    int has_tok = has_tokens && qbc_store_tokens_get(rs->store, st->realm, tok) == 0;
    order_t o = {st->connected_ns, st->status == QBC_REALM_DISCONNECTED, has_tok ? tok->access_expires_ns : 0};
    known_t *k = known_get(rs, st->realm, 0);
    if ((has_tok || st->status == QBC_REALM_DISCONNECTED) && (k == NULL || order_cmp(&o, &k->o) > 0)) {
        sc->failed = put_realm(rs, st, tok, has_tok, &o) != 0;
    } else if (k != NULL) {
        /* the same connection as the bucket's, swept further here: its watermark goes up */
        int64_t due = 0;
        if (qbc_cluster__watermark_put_due(order_cmp(&o, &k->o), st->cdc_watermark_ns, k->wm, k->wm_put_mono, sc->now,
                                           sc->final, &due))
            sc->failed = put_realm(rs, st, tok, has_tok, &o) != 0;
        else if (due != 0 && (rs->wm_due == 0 || due < rs->wm_due))
            rs->wm_due = due;
    }
    OPENSSL_cleanse(tok, sizeof(*tok));
    free(tok);
    return 0;
}

/* ---------------------------------------------------------------- bucket -> local */

typedef struct st_import_t {
    qbc_realm_job_t job; /* first */
    qbc_realm_sync_t *rs;
    qbc_realm_t state;
    qbc_tokens_t tokens;
} import_t;

static void import_done(qbc_store_job_t *job)
{
    import_t *im = (import_t *)job;
    qbc_realm_sync_t *rs = im->rs;
    pthread_mutex_lock(&rs->worker.mu);
    rs->outstanding--;
    if (job->result == 0)
        rs->st.imported++;
    pthread_cond_signal(&rs->worker.cv);
    pthread_mutex_unlock(&rs->worker.mu);
    OPENSSL_cleanse(&im->tokens, sizeof(im->tokens));
    free(im);
}

typedef struct st_wm_job_t {
    qbc_reconcile_job_t job; /* first */
    qbc_realm_sync_t *rs;
    char realm[QBC_REALM_MAX];
} wm_job_t;

static void wm_done(qbc_store_job_t *job)
{
    wm_job_t *w = (wm_job_t *)job;
    qbc_realm_sync_t *rs = w->rs;
    pthread_mutex_lock(&rs->worker.mu);
    rs->outstanding--;
    if (job->result == 0)
        rs->st.watermarks_taken++;
    pthread_cond_signal(&rs->worker.cv);
    pthread_mutex_unlock(&rs->worker.mu);
    free(w);
}

/* a realm this node knows but never swept: it starts from the bucket's watermark (forward only) */
static void adopt_watermark(qbc_realm_sync_t *rs, const char *realm, int64_t wm, int64_t last_cdc_ns)
{
    wm_job_t *w = qbc_calloc(1, sizeof(*w));
    w->rs = rs;
    snprintf(w->realm, sizeof(w->realm), "%s", realm);
    w->job.job.on_commit = wm_done;
    w->job.realm = w->realm;
    w->job.set_cdc = 1;
    w->job.cdc_watermark_ns = wm;
    w->job.last_cdc_ns = last_cdc_ns;
    pthread_mutex_lock(&rs->worker.mu);
    rs->outstanding++;
    pthread_mutex_unlock(&rs->worker.mu);
    if (qbc_store_reconcile(rs->store, &w->job) != 0) {
        pthread_mutex_lock(&rs->worker.mu);
        rs->outstanding--;
        pthread_mutex_unlock(&rs->worker.mu);
        free(w);
    }
}

static void import_entry(qbc_realm_sync_t *rs, kvEntry *e)
{
    const char *realm = kvEntry_Key(e);
    if (kvEntry_Operation(e) != kvOp_Put || realm == NULL || strlen(realm) >= QBC_REALM_MAX)
        return;
    json_error_t jerr;
    json_t *v = json_loadb(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, &jerr);
    if (v == NULL)
        return;
    order_t o = {(int64_t)json_integer_value(json_object_get(v, "connected_ns")),
                 strcmp(json_string_value(json_object_get(v, "status")) ?: "", "disconnected") == 0,
                 (int64_t)json_integer_value(json_object_get(v, "access_expires_ns"))};
    known_t *k = known_get(rs, realm, 1);
    k->o = o;
    k->wm = (int64_t)json_integer_value(json_object_get(v, "cdc_watermark_ns"));

    import_t *im = qbc_calloc(1, sizeof(*im));
    im->rs = rs;
    int have_local = qbc_store_realm_get(rs->store, realm, &im->state) == 0;
    qbc_tokens_t *lt = qbc_alloc(sizeof(*lt));
    int local_tok = have_local && qbc_store_tokens_get(rs->store, realm, lt) == 0;
    order_t lo = {have_local ? im->state.connected_ns : 0, have_local && im->state.status == QBC_REALM_DISCONNECTED,
                  local_tok ? lt->access_expires_ns : 0};
    OPENSSL_cleanse(lt, sizeof(*lt));
    free(lt);
    if (have_local && order_cmp(&o, &lo) <= 0) { /* ours is as new: nothing to take but a watermark */
        if (qbc_cluster__watermark_start(1, im->state.cdc_watermark_ns, k->wm) != im->state.cdc_watermark_ns)
            adopt_watermark(rs, realm, k->wm, (int64_t)json_integer_value(json_object_get(v, "last_cdc_ns")));
        json_decref(v);
        free(im);
        return;
    }
    const char *b64 = json_string_value(json_object_get(v, "tokens"));
    int has_tok = 0;
    if (b64 != NULL) {
        size_t blen = strlen(b64), slen = 0, plen = 0;
        unsigned char *sealed = qbc_alloc(blen / 4 * 3 + 4), *plain = qbc_alloc(blen / 4 * 3 + 4);
        char aad[QBC_REALM_MAX + 32];
        snprintf(aad, sizeof(aad), AAD_PREFIX "%s", realm);
        int rc = qbc_base64_decode(b64, blen, sealed, &slen);
        if (rc == 0)
            rc = qbc_store_unseal(rs->store, aad, sealed, slen, plain, &plen);
        if (rc == 0) {
            json_t *t = json_loadb((const char *)plain, plen, 0, &jerr);
            const char *rt = json_string_value(json_object_get(t, "refresh_token"));
            const char *at = json_string_value(json_object_get(t, "access_token"));
            if (rt != NULL && strlen(rt) < QBC_TOKEN_MAX && (at == NULL || strlen(at) < QBC_TOKEN_MAX)) {
                snprintf(im->tokens.refresh_token, sizeof(im->tokens.refresh_token), "%s", rt);
                snprintf(im->tokens.access_token, sizeof(im->tokens.access_token), "%s", at ? at : "");
                im->tokens.access_expires_ns = (int64_t)json_integer_value(json_object_get(t, "access_expires_ns"));
                im->tokens.refresh_expires_ns = (int64_t)json_integer_value(json_object_get(t, "refresh_expires_ns"));
                has_tok = 1;
            }
            json_decref(t);
        } else {
            pthread_mutex_lock(&rs->worker.mu);
            rs->st.unsealable++;
            pthread_mutex_unlock(&rs->worker.mu);
            qbc_log(QBC_LOG_ERROR, MOD,
                    "realm %s: its tokens in " BUCKET " do not open with this node's master key (every node of "
                    "a cluster needs the same QBCDC_MASTER_KEY_FILE); not taken",
                    realm);
        }
        OPENSSL_cleanse(plain, blen / 4 * 3 + 4);
        free(plain);
        free(sealed);
        if (!has_tok) {
            json_decref(v);
            free(im);
            return;
        }
    }
    snprintf(im->state.realm, sizeof(im->state.realm), "%s", realm);
    im->state.status = o.disconnected ? QBC_REALM_DISCONNECTED : QBC_REALM_ACTIVE;
    im->state.connected_ns = o.connected_ns;
    if (!have_local) { /* a realm new here starts from the bucket's watermark (its last owner's) */
        im->state.cdc_watermark_ns = qbc_cluster__watermark_start(0, 0, k->wm);
        im->state.last_cdc_ns = (int64_t)json_integer_value(json_object_get(v, "last_cdc_ns"));
    }
    json_decref(v);
    snprintf(im->job.realm, sizeof(im->job.realm), "%s", realm);
    im->job.state = &im->state;
    im->job.tokens = has_tok ? &im->tokens : NULL;
    im->job.erase_tokens = !has_tok && o.disconnected;
    im->job.job.on_commit = import_done;
    pthread_mutex_lock(&rs->worker.mu);
    rs->outstanding++;
    pthread_mutex_unlock(&rs->worker.mu);
    if (qbc_store_put_realm(rs->store, &im->job) != 0) {
        pthread_mutex_lock(&rs->worker.mu);
        rs->outstanding--;
        pthread_mutex_unlock(&rs->worker.mu);
        OPENSSL_cleanse(&im->tokens, sizeof(im->tokens));
        free(im);
    }
}

/* ---------------------------------------------------------------- the thread */

static void *thread_main(void *arg)
{
    qbc_realm_sync_t *rs = arg;
    int64_t backoff_ms = 250, last_scan = 0;
    int initial_done = 0;
    for (;;) {
        if (qbc_worker_stopping(&rs->worker))
            break;
        if (rs->nc == NULL) {
            initial_done = 0;
            if (connect_and_prepare(rs) != 0) {
                qbc_worker_nap(&rs->worker, backoff_ms);
                backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
                continue;
            }
            backoff_ms = 250;
        }
        /* the bucket's changes first (the first ones: every entry, then a NULL) */
        kvEntry *e = NULL;
        natsStatus s;
        int got = 0;
        while ((s = kvWatcher_Next(&e, rs->w, got ? 1 : 100)) == NATS_OK) {
            got++;
            if (e == NULL) {
                initial_done = 1;
                continue;
            }
            import_entry(rs, e);
            kvEntry_Destroy(e);
            if (got >= 256)
                break;
        }
        if (s != NATS_OK && s != NATS_TIMEOUT) { /* a reconnect in progress, or the watch is gone */
            if (natsConnection_IsClosed(rs->nc)) {
                disconnect(rs);
                continue;
            }
            qbc_worker_nap(&rs->worker, 200);
        }
        /* then what changed here, once the bucket's view is known */
        int64_t now = qbc_mono_ns();
        pthread_mutex_lock(&rs->worker.mu);
        int dirty = rs->dirty || (rs->wm_due != 0 && now >= rs->wm_due);
        rs->dirty = 0;
        pthread_mutex_unlock(&rs->worker.mu);
        /* at most a scan a second: every token refresh and CDC sweep marks realms changed */
        if (dirty && now - last_scan < 1000000000LL) {
            pthread_mutex_lock(&rs->worker.mu);
            rs->dirty = 1;
            pthread_mutex_unlock(&rs->worker.mu);
        } else if (initial_done && rs->kv != NULL && (dirty || now - last_scan > 10 * 1000000000LL)) {
            scan_ctx_t sc = {rs, 0, 0, now};
            rs->wm_due = 0;
            qbc_store_realm_scan(rs->store, on_local_realm, &sc);
            last_scan = now;
            if (sc.failed) { /* try again at the next turn */
                pthread_mutex_lock(&rs->worker.mu);
                rs->dirty = 1;
                pthread_mutex_unlock(&rs->worker.mu);
            }
        } else if (!initial_done && dirty) {
            pthread_mutex_lock(&rs->worker.mu);
            rs->dirty = 1;
            pthread_mutex_unlock(&rs->worker.mu);
        }
    }
    /* at stop (the reconciler is gone): the watermarks swept since their last put */
    if (initial_done && rs->kv != NULL && rs->nc != NULL && !natsConnection_IsClosed(rs->nc)) {
        scan_ctx_t sc = {rs, 0, 1, qbc_mono_ns()};
        qbc_store_realm_scan(rs->store, on_local_realm, &sc);
    }
    return NULL;
}

/* ---------------------------------------------------------------- public */

int qbc_cluster_realms_start(const qbc_realm_sync_config_t *cfg, qbc_store_t *store, qbc_realm_sync_t **out)
{
    *out = NULL;
    if (cfg == NULL || cfg->urls == NULL || cfg->urls[0] == '\0' || !qbc_cluster_node_id_ok(cfg->node_id))
        return QBC_EINVAL;
    qbc_realm_sync_t *rs = qbc_calloc(1, sizeof(*rs));
    rs->store = store;
    rs->replicas = cfg->replicas;
    snprintf(rs->node_id, sizeof(rs->node_id), "%s", cfg->node_id);
    rs->n_servers = qbc_nats_servers(cfg->urls, &rs->servers);
    qbc_worker_init(&rs->worker);
    rs->listener = qbc_store_add_listener(store, on_commit_note, rs);
    if (rs->listener < 0) {
        int rc = rs->listener;
        qbc_cluster_realms_stop(rs);
        return rc;
    }
    int rc = qbc_worker_start(&rs->worker, thread_main, rs);
    if (rc != 0) {
        qbc_cluster_realms_stop(rs);
        return rc;
    }
    *out = rs;
    return 0;
}

void qbc_cluster_realms_stop(qbc_realm_sync_t *rs)
{
    if (rs == NULL)
        return;
    qbc_worker_join(&rs->worker); /* it notices within a watch's 100 ms */
    if (rs->listener >= 0)
        qbc_store_remove_listener(rs->store, rs->listener);
    /* imports still queued in the store call back into rs: wait for them (10 s at most) */
    qbc_worker_drain(&rs->worker, &rs->outstanding, 10000);
    disconnect(rs);
    qbc_nats_servers_free(rs->servers, rs->n_servers);
    free(rs->known);
    qbc_worker_dispose(&rs->worker);
    free(rs);
}

void qbc_cluster_realms_stats(qbc_realm_sync_t *rs, qbc_realm_sync_stats_t *out)
{
    pthread_mutex_lock(&rs->worker.mu);
    *out = rs->st;
    pthread_mutex_unlock(&rs->worker.mu);
}
