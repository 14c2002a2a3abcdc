/*
 * publisher.c — the feed published to NATS JetStream: one thread, feed order, cursor in LMDB.
 *
 * The loop: connect (nats.c reconnects by itself once connected; the first connection is
 * retried here), make sure the stream exists, find where it stands, then publish every
 * record after the cursor, one at a time (each after the previous PubAck: the stream holds
 * the feed in order, with no gap a failed publish could leave behind an acknowledged one),
 * and commit the cursor to the store at most every 100 ms and when idle. A crash between a
 * PubAck and the commit is repaired at the next start from the stream's last message
 * (Qbcdc-Feed-Seq of the same feed id). A failed publish is retried from the cursor after a
 * back-off (1 s doubling to 30 s); Nats-Msg-Id makes a retry of one the stream already holds
 * a no-op within JetStream's duplicate window.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <nats/nats.h>
#include "common.h"
#include "jetstream.h"

#define MOD "jetstream"
#define NS 1000000000LL
#define CURSOR_NAME "jetstream"
#define BATCH 256
#define VERSIONS "qbcdc_versions"

struct st_qbc_jetstream_t {
    qbc_store_t *store;
    char *stream;
    char **servers;
    int n_servers;
    unsigned replicas;
    int versions; /* cluster mode: skip what the bucket qbcdc_versions says the stream has */
    int (*owner)(void *ctx, const char *realm); /* cluster mode: whose records to publish */
    void *owner_ctx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, wake;
    int listener;
    qbc_jetstream_stats_t st; /* under mu */
    /* thread only */
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv; /* qbcdc_versions, with versions */
    uint64_t cursor, committed;
};

static void set_error(qbc_jetstream_t *p, const char *fmt, const char *detail)
{
    pthread_mutex_lock(&p->mu);
    snprintf(p->st.last_error, sizeof(p->st.last_error), fmt, detail);
    pthread_mutex_unlock(&p->mu);
}

static void on_commit_note(void *ctx, const qbc_commit_note_t *note)
{
    qbc_jetstream_t *p = ctx;
    if (note->feed_appended == 0)
        return;
    pthread_mutex_lock(&p->mu);
    p->wake = 1;
    p->st.head = note->last_feed_seq;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* waits until woken, stopped, or ms pass; 1 if stopping */
static int nap(qbc_jetstream_t *p, int64_t ms)
{
    int64_t until = qbc_mono_ns() + ms * 1000000;
    pthread_mutex_lock(&p->mu);
    while (!p->stop && !p->wake && ms > 0)
        if (qbc_cond_wait_until(&p->cv, &p->mu, until) == ETIMEDOUT)
            break;
    p->wake = 0;
    int stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    return stop;
}

/* ---------------------------------------------------------------- the stream */

static void disconnect(qbc_jetstream_t *p)
{
    pthread_mutex_lock(&p->mu); /* qbc_jetstream_stats asks the connection for its status */
    natsConnection *nc = p->nc;
    jsCtx *js = p->js;
    p->js = NULL;
    p->nc = NULL;
    p->st.connected = 0;
    pthread_mutex_unlock(&p->mu);
    if (p->kv != NULL)
        kvStore_Destroy(p->kv);
    p->kv = NULL;
    if (js != NULL)
        jsCtx_Destroy(js);
    if (nc != NULL) {
        natsConnection_Close(nc);
        natsConnection_Destroy(nc);
    }
}

static int connect_and_prepare(qbc_jetstream_t *p)
{
    natsConnection *nc = NULL;
    natsStatus s = qbc_nats_connect(p->servers, p->n_servers, 500, &nc);
    pthread_mutex_lock(&p->mu);
    p->nc = nc;
    pthread_mutex_unlock(&p->mu);
    if (s != NATS_OK) {
        set_error(p, "cannot connect to NATS: %.100s", natsStatus_GetText(s));
        disconnect(p);
        return -1;
    }
    if ((s = natsConnection_JetStream(&p->js, p->nc, NULL)) != NATS_OK) {
        set_error(p, "no JetStream context: %.100s", natsStatus_GetText(s));
        disconnect(p);
        return -1;
    }
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    s = js_GetStreamInfo(&si, p->js, p->stream, NULL, &jerr);
    if (s == NATS_NOT_FOUND) {
        jsStreamConfig cfg;
        const char *subjects[] = {"qbcdc.feed.>"};
        jsStreamConfig_Init(&cfg);
        cfg.Name = p->stream;
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_FileStorage;
        cfg.Replicas = (int64_t)(p->replicas ? p->replicas : 1);
        cfg.Duplicates = 120 * NS;
        s = js_AddStream(&si, p->js, &cfg, NULL, &jerr);
        if (s == NATS_OK)
            qbc_log(QBC_LOG_INFO, MOD, "created the stream %s (subjects qbcdc.feed.>, %d replica(s))", p->stream,
                    (int)cfg.Replicas);
    }
    if (s != NATS_OK) {
        char why[160];
        snprintf(why, sizeof(why), "%s (JetStream error %d)", natsStatus_GetText(s), (int)jerr);
        set_error(p, "cannot find or create the stream: %.100s", why);
        disconnect(p);
        return -1;
    }
    uint64_t last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    if (p->versions) { /* the latest version of each entity in the stream, whichever node put it there */
        s = js_KeyValue(&p->kv, p->js, VERSIONS);
        if (s == NATS_NOT_FOUND) {
            kvConfig kc;
            kvConfig_Init(&kc);
            kc.Bucket = VERSIONS;
            kc.Description = "qbcdc: the latest version of each entity in the feed stream (cluster mode)";
            kc.History = 1;
            kc.StorageType = js_FileStorage;
            kc.Replicas = (int)(p->replicas ? p->replicas : 1);
            s = js_CreateKeyValue(&p->kv, p->js, &kc);
            if (s != NATS_OK)
                s = js_KeyValue(&p->kv, p->js, VERSIONS);
        }
        if (s != NATS_OK) {
            set_error(p, "no key-value bucket " VERSIONS ": %.100s", natsStatus_GetText(s));
            disconnect(p);
            return -1;
        }
    }

    /* where the stream stands: its last message, if it is of this feed, may be past our cursor */
    if (last > 0) {
        natsMsg *m = NULL;
        if (js_GetMsg(&m, p->js, p->stream, last, NULL, &jerr) == NATS_OK) {
            const char *seq = NULL, *fid = NULL;
            natsMsgHeader_Get(m, "Qbcdc-Feed-Seq", &seq);
            natsMsgHeader_Get(m, "Qbcdc-Feed-Id", &fid);
            uint64_t v = seq != NULL ? strtoull(seq, NULL, 10) : 0;
            if (fid != NULL && strcmp(fid, qbc_store_feed_id(p->store)) == 0 && v > p->cursor) {
                qbc_log(QBC_LOG_INFO, MOD,
                        "the stream already holds feed records up to %llu (the stored cursor said %llu): going on "
                        "from there",
                        (unsigned long long)v, (unsigned long long)p->cursor);
                p->cursor = v;
            }
            natsMsg_Destroy(m);
        }
    }
    pthread_mutex_lock(&p->mu);
    p->st.connected = 1;
    p->st.cursor = p->cursor;
    p->st.last_error[0] = '\0';
    pthread_mutex_unlock(&p->mu);
    qbc_log(QBC_LOG_INFO, MOD, "publishing the feed to %s from sequence %llu", p->stream,
            (unsigned long long)p->cursor + 1);
    return 0;
}

/* ---------------------------------------------------------------- publishing */

typedef struct {
    qbc_jetstream_t *p;
    uint64_t done; /* the last sequence published */
    int failed;
    int waiting; /* a record's realm had no owner: the batch stopped before it */
} batch_t;

/*
 * "id", "version" and "op" of a change object (read, never re-serialized). Its entity data
 * may hold integers past 2^63 (exact amounts): those are read as reals here, only to get
 * past them. 0 if the three are not all there.
 */
static int change_keys(const char *json, size_t len, char *id, size_t idsz, char *ver, size_t versz, char *op,
                       size_t opsz)
{
    json_t *o = json_loadb(json, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
    const char *s;
    int whole = json_is_string(json_object_get(o, "id")) && json_is_string(json_object_get(o, "op"));
    snprintf(id, idsz, "%s", (s = json_string_value(json_object_get(o, "id"))) ? s : "-");
    snprintf(ver, versz, "%s", (s = json_string_value(json_object_get(o, "version"))) ? s : "-");
    snprintf(op, opsz, "%s", (s = json_string_value(json_object_get(o, "op"))) ? s : "-");
    json_decref(o);
    return whole;
}

/*
 * a record's place in its entity's history: the version as a number (QBO's SyncToken), and
 * whether it is the delete (after every version; its own version may be unknown). 0 when
 * the version is not a number and the record not a delete.
 */
static int version_rank(const char *ver, const char *op, unsigned long long *num, int *rank)
{
    char *end = NULL;
    *rank = strcmp(op, "delete") == 0;
    *num = ver[0] >= '0' && ver[0] <= '9' ? strtoull(ver, &end, 10) : 0;
    return *rank || (end != NULL && *end == '\0');
}

/* a KV key for realm/entity/id, or 0 when one of them has a byte a key cannot hold */
static int version_key(char *out, size_t n, const char *realm, const char *entity, const char *id)
{
    if ((size_t)snprintf(out, n, "%s.%s.%s", realm, entity, id) >= n)
        return 0;
    for (const char *c = out; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
              *c == '_' || *c == '.'))
            return 0;
    return 1;
}

/*
 * cluster mode: 1 if the stream holds this entity at this version or a newer one already
 * (put there by another node, whose local feed has it too); -1 if the bucket did not answer
 */
static int already_published(qbc_jetstream_t *p, const char *key, unsigned long long num, int rank)
{
    kvEntry *e = NULL;
    natsStatus s = kvStore_Get(&e, p->kv, key);
    if (s == NATS_NOT_FOUND)
        return 0;
    if (s != NATS_OK)
        return -1;
    unsigned long long have = 0;
    int have_rank = 0;
    char buf[64];
    snprintf(buf, sizeof(buf), "%.*s", kvEntry_ValueLen(e), (const char *)kvEntry_Value(e));
    kvEntry_Destroy(e);
    char *slash = strchr(buf, '/');
    if (slash == NULL)
        return 0;
    *slash = '\0';
    if (!version_rank(buf, slash + 1, &have, &have_rank))
        return 0;
    if (have_rank) /* a delete is the last word about an id (QBO does not reuse them) */
        return 1;
    return rank ? 0 : have >= num;
}

/* the cursor moves past rec without publishing it; counted in *counter (under mu) */
static void pass(batch_t *b, const qbc_feed_rec_t *rec, uint64_t *counter)
{
    qbc_jetstream_t *p = b->p;
    b->done = rec->seq;
    pthread_mutex_lock(&p->mu);
    p->cursor = rec->seq;
    p->st.cursor = rec->seq;
    (*counter)++;
    pthread_mutex_unlock(&p->mu);
}

static int publish_one(const qbc_feed_rec_t *rec, void *ctx)
{
    batch_t *b = ctx;
    qbc_jetstream_t *p = b->p;
    if (p->owner != NULL) {
        int whose = p->owner(p->owner_ctx, rec->realm);
        if (whose < 0) { /* nobody's now (a NATS outage, a takeover under way): ask again soon */
            b->waiting = 1;
            return 1;
        }
        if (whose == 0) { /* another node's realm: it publishes what it fetches */
            pass(b, rec, &p->st.not_owner);
            return 0;
        }
    }
    char subject[256], msgid[512], id[QBC_ID_MAX], ver[QBC_SYNC_TOKEN_MAX], op[16], seq[24];
    snprintf(subject, sizeof(subject), "qbcdc.feed.%s.%s", rec->realm, rec->entity);
    int whole = change_keys(rec->json, rec->json_len, id, sizeof(id), ver, sizeof(ver), op, sizeof(op));
    /* the version names the content; the op is the publishing node's view (create or update, by
       what it held) and a delete is the last word about an id, whatever version it carries: so
       the same change published by two nodes (an owner killed between its PubAck and its put to
       qbcdc_versions, then its successor's sweep) has one id, and the stream keeps it once */
    if (whole && strcmp(op, "delete") == 0)
        snprintf(msgid, sizeof(msgid), "%s/%s/%s/delete", rec->realm, rec->entity, id);
    else if (whole)
        snprintf(msgid, sizeof(msgid), "%s/%s/%s/%s", rec->realm, rec->entity, id, ver);
    else /* unreadable: an id no other record can have (duplicates of it are still caught by the cursor) */
        snprintf(msgid, sizeof(msgid), "%s/seq/%llu", qbc_store_feed_id(p->store), (unsigned long long)rec->seq);
    char vkey[512];
    unsigned long long vnum = 0;
    int vrank = 0, dedupe = p->kv != NULL && whole && version_rank(ver, op, &vnum, &vrank) &&
                            version_key(vkey, sizeof(vkey), rec->realm, rec->entity, id);
    if (dedupe) {
        int had = already_published(p, vkey, vnum, vrank);
        if (had < 0) {
            set_error(p, "the bucket " VERSIONS " did not answer: %.100s", "retrying from the cursor");
            b->failed = 1;
            return 1;
        }
        if (had) { /* another node's feed put it (or a newer one) in the stream: not again, not backwards */
            pass(b, rec, &p->st.skipped);
            return 0;
        }
    }
    snprintf(seq, sizeof(seq), "%llu", (unsigned long long)rec->seq);

    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subject, NULL, rec->json, (int)rec->json_len);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Qbcdc-Feed-Seq", seq);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Qbcdc-Feed-Id", qbc_store_feed_id(p->store));
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msgid;
    po.MaxWait = 5000;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    if (s == NATS_OK)
        s = js_PublishMsg(&pa, p->js, m, &po, &jerr);
    natsMsg_Destroy(m);
    jsPubAck_Destroy(pa);
    if (s != NATS_OK) {
        char why[128];
        snprintf(why, sizeof(why), "%s (JetStream error %d)", natsStatus_GetText(s), (int)jerr);
        set_error(p, "publish failed: %.100s; retrying from the cursor", why);
        b->failed = 1;
        return 1;
    }
    if (dedupe) {
        char val[64];
        uint64_t rev = 0;
        snprintf(val, sizeof(val), "%llu/%s", vnum, op);
        kvStore_PutString(&rev, p->kv, vkey, val); /* if lost, the stream's duplicate window still helps */
    }
    b->done = rec->seq;
    pthread_mutex_lock(&p->mu);
    p->cursor = rec->seq;
    p->st.cursor = rec->seq;
    p->st.published++;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static void on_cursor_committed(qbc_store_job_t *j)
{
    if (j->result != 0)
        qbc_log(QBC_LOG_WARN, MOD, "storing the publish cursor failed: %s (the stream's last message says it)",
                qbc_strerror(j->result));
    free(j);
}

static void commit_cursor(qbc_jetstream_t *p)
{
    if (p->cursor <= p->committed)
        return;
    qbc_cursor_job_t *j = qbc_calloc(1, sizeof(*j));
    j->job.on_commit = on_cursor_committed;
    snprintf(j->name, sizeof(j->name), "%s", CURSOR_NAME);
    j->value = p->cursor;
    if (qbc_store_set_cursor(p->store, j) != 0) {
        free(j);
        return;
    }
    p->committed = p->cursor;
}

static void *thread_main(void *arg)
{
    qbc_jetstream_t *p = arg;
    int64_t backoff_ms = 1000, last_commit = 0;
    int logged = 0;
    qbc_store_cursor(p->store, CURSOR_NAME, &p->cursor);
    p->committed = p->cursor;
    while (!nap(p, 0)) {
        if (p->js == NULL) {
            if (connect_and_prepare(p) != 0) {
                if (!logged)
                    qbc_log(QBC_LOG_WARN, MOD, "%s; retrying (webhooks, fetches and /v1/changes go on)",
                            p->st.last_error);
                logged = 1;
                if (nap(p, backoff_ms))
                    break;
                backoff_ms = backoff_ms * 2 > 30000 ? 30000 : backoff_ms * 2;
                continue;
            }
            logged = 0;
            backoff_ms = 1000;
        }
        batch_t b = {p, 0, 0, 0};
        uint64_t examined = 0;
        int rc = qbc_store_feed_scan(p->store, p->cursor, BATCH, NULL, NULL, publish_one, &b, &examined);
        if (rc == QBC_EGONE) {
            qbc_log(QBC_LOG_ERROR, MOD,
                    "feed records after %llu were pruned before they were published "
                    "(QBCDC_FEED_RETENTION); going on from what is left",
                    (unsigned long long)p->cursor);
            p->cursor = qbc_store_feed_pruned(p->store);
            continue;
        }
        int64_t now = qbc_mono_ns();
        pthread_mutex_lock(&p->mu);
        p->st.waiting_owner = b.waiting;
        pthread_mutex_unlock(&p->mu);
        if (b.waiting) { /* the records before it are out; the rest wait for an owner */
            commit_cursor(p);
            if (nap(p, 250))
                break;
            continue;
        }
        if (b.failed) {
            commit_cursor(p);
            pthread_mutex_lock(&p->mu);
            p->st.failures++;
            pthread_mutex_unlock(&p->mu);
            if (!natsConnection_IsClosed(p->nc) && natsConnection_Status(p->nc) != NATS_CONN_STATUS_CONNECTED)
                qbc_log(QBC_LOG_DEBUG, MOD, "NATS is reconnecting");
            if (nap(p, backoff_ms))
                break;
            backoff_ms = backoff_ms * 2 > 30000 ? 30000 : backoff_ms * 2;
            continue;
        }
        backoff_ms = 1000;
        if (b.done == 0 || now - last_commit > NS / 10) {
            commit_cursor(p);
            last_commit = now;
        }
        if (b.done == 0 && nap(p, 1000)) /* nothing new: wait for a commit's wake-up */
            break;
    }
    commit_cursor(p);
    return NULL;
}

/* ---------------------------------------------------------------- public */

int qbc_jetstream_start(const qbc_jetstream_config_t *cfg, qbc_store_t *store, qbc_jetstream_t **out)
{
    *out = NULL;
    if (cfg == NULL || cfg->urls == NULL || cfg->urls[0] == '\0')
        return QBC_EINVAL;
    qbc_jetstream_t *p = qbc_calloc(1, sizeof(*p));
    p->store = store;
    p->stream = qbc_strdup(cfg->stream != NULL && cfg->stream[0] ? cfg->stream : "QBCDC_FEED");
    p->replicas = cfg->replicas;
    p->versions = cfg->cluster_versions;
    p->owner = cfg->owner;
    p->owner_ctx = cfg->owner_ctx;
    p->n_servers = qbc_nats_servers(cfg->urls, &p->servers);
    pthread_mutex_init(&p->mu, NULL);
    if (qbc_cond_init_mono(&p->cv) != 0) /* nap() waits on it with monotonic deadlines */
        qbc_fatal("cannot make a monotonic condition variable");
    qbc_store_stats_t ss;
    if (qbc_store_stats(store, &ss) == 0)
        p->st.head = ss.last_feed_seq;
    p->listener = qbc_store_add_listener(store, on_commit_note, p);
    if (pthread_create(&p->thread, NULL, thread_main, p) != 0) {
        qbc_store_remove_listener(store, p->listener);
        qbc_jetstream_stop(p);
        return -errno;
    }
    *out = p;
    return 0;
}

void qbc_jetstream_stop(qbc_jetstream_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->thread)
        pthread_join(p->thread, NULL);
    qbc_store_remove_listener(p->store, p->listener);
    disconnect(p);
    qbc_nats_servers_free(p->servers, p->n_servers);
    free(p->stream);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

void qbc_jetstream_stats(qbc_jetstream_t *p, qbc_jetstream_stats_t *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    /* nats.c reconnects by itself: connected is what the connection says now */
    out->connected = p->st.connected && p->nc != NULL && natsConnection_Status(p->nc) == NATS_CONN_STATUS_CONNECTED;
    pthread_mutex_unlock(&p->mu);
}
