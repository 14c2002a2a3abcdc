/*
 * feed_mirror.c — cluster mode: each node's copy of the cluster feed, the stream QBCDC_FEED
 * (cluster.h, qbc_cluster_feed_*).
 *
 * One thread and one NATS connection. It reads the stream through an ordered consumer (an
 * ephemeral push consumer the client library makes again, from the next sequence, if a
 * message goes missing on the way), starting after the position the copy holds. Messages
 * that queued up while a batch was being committed form the next batch: one
 * QBC_JOB_FEED_APPEND each, which carries the records, the stream's identity and the new
 * position, and is waited for before more is read (the consumer's flow control holds the
 * rest in the stream meanwhile). Any failure drops the subscription; the next one starts
 * again from the position the store holds. So does a gap in the stream sequences: the new
 * subscription reads the stream's first sequence, so that messages purged before they were
 * copied are recorded as pruned (readers behind get 410), while a gap of deleted messages
 * above the first sequence is passed over. While idle, the stream's info is read every 2 s:
 * a stream deleted or made again (another identity) makes the copy start over.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <nats/nats.h>
#include <openssl/sha.h>
#include "cluster.h"
#include "common.h"
#include "jetstream.h"
#include "json_scan.h"

#define MOD "cluster"
#define NS 1000000000LL
#define POSITION "cluster_feed" /* the copy's named cursor: the last stream sequence read */
#define BATCH 512
#define CHECK_EVERY_NS (2 * NS)

struct st_qbc_feed_mirror_t {
    qbc_store_t *copy;
    char *stream;
    char **servers;
    int n_servers;
    qbc_worker_t worker; /* the thread: its mutex guards the fields marked "under mu" */
    int seen;            /* the stream was read at least once since start */
    qbc_feed_mirror_stats_t st;
    /* the thread's */
    natsConnection *nc; /* under mu when set or cleared (stats read its status) */
    jsCtx *js;
    natsSubscription *sub;
    char feed_id[QBC_FEED_ID_LEN + 1]; /* the stream's identity, as last read */
    int64_t created_ns;
    uint64_t position;
    uint64_t gap_checked; /* the position prepare() read the stream's first sequence at */
    uint64_t behind_at;   /* the position at the last check, when the stream held more (else UINT64_MAX) */
    int64_t checked_ns;
    int logged_skip;
};

static void set_error(qbc_feed_mirror_t *m, const char *fmt, const char *detail)
{
    pthread_mutex_lock(&m->worker.mu);
    snprintf(m->st.last_error, sizeof(m->st.last_error), fmt, detail);
    pthread_mutex_unlock(&m->worker.mu);
}

/* waits until stopped or ms pass; 1 if stopping */
/* ---------------------------------------------------------------- a message as a record */

/* the enum value whose wire name is the string token i (0: none) */
static int named(const qbc_json_doc_t *doc, const char *text, size_t i, const char *(*name)(int), int last)
{
    if (i == QBC_JSON_NONE || doc->tok[i].type != QBC_JSON_STRING)
        return 0;
    for (int v = 1; v <= last; v++) {
        const char *n = name(v);
        if (qbc_json_str_eq(doc, text, i, n, strlen(n)))
            return v;
    }
    return 0;
}

static const char *op_name(int v)
{
    return qbc_op_name((qbc_op_t)v);
}

static const char *source_name(int v)
{
    return qbc_source_name((qbc_source_t)v);
}

/* a string member copied whole into dst (size bytes with its NUL), or "" for null; 0 or -1 */
static int str_member(const qbc_json_doc_t *doc, const char *text, size_t i, char *dst, size_t size, int null_ok)
{
    dst[0] = '\0';
    if (i == QBC_JSON_NONE)
        return -1;
    if (doc->tok[i].type == QBC_JSON_NULL && null_ok)
        return 0;
    if (doc->tok[i].type != QBC_JSON_STRING || doc->tok[i].len >= size)
        return -1;
    qbc_json_str_copy(doc, text, i, dst, size);
    return strlen(dst) == doc->tok[i].len ? 0 : -1; /* escapes in an id or a token: not one of ours */
}

/*
 * the version a record reports (records.c qbc_store__feed_render's members), data pointing
 * into record, the copy of text whose "seq" value (token seq_tok) grew by shift bytes; 0, or
 * -1: none readable
 */
static int read_version(const qbc_json_doc_t *doc, const char *text, qbc_feed_msg_t *out, size_t seq_tok,
                        const char *record, long shift)
{
    qbc_version_t *v = &out->version;
    char when[40];
    size_t id = qbc_json_get(doc, text, 0, "id", 2), op = qbc_json_get(doc, text, 0, "op", 2),
           ver = qbc_json_get(doc, text, 0, "version", 7), upd = qbc_json_get(doc, text, 0, "last_updated", 12),
           src = qbc_json_get(doc, text, 0, "source", 6), dat = qbc_json_get(doc, text, 0, "data", 4);
    memset(v, 0, sizeof(*v));
    snprintf(v->realm, sizeof(v->realm), "%s", out->realm);
    snprintf(v->entity, sizeof(v->entity), "%s", out->entity);
    if (str_member(doc, text, id, v->id, sizeof(v->id), 0) != 0 || v->id[0] == '\0' ||
        str_member(doc, text, ver, v->sync_token, sizeof(v->sync_token), 1) != 0 ||
        str_member(doc, text, upd, when, sizeof(when), 1) != 0)
        return -1;
    if (when[0] != '\0' && qbc_time_parse(when, strlen(when), &v->updated_ns) != 0)
        return -1;
    v->op = (qbc_op_t)named(doc, text, op, op_name, QBC_OP_SNAPSHOT);
    v->source = (uint8_t)named(doc, text, src, source_name, QBC_SOURCE_SNAPSHOT);
    if (v->op == QBC_OP_UNKNOWN || v->source == 0)
        return -1;
    if (v->op == QBC_OP_DELETE)
        return dat == QBC_JSON_NONE ? 0 : -1;
    if (dat == QBC_JSON_NONE || doc->tok[dat].type != QBC_JSON_OBJECT || v->sync_token[0] == '\0')
        return -1; /* a live version has its object and its SyncToken */
    if (doc->tok[dat].start < doc->tok[seq_tok].start)
        shift = 0; /* before "seq": not moved */
    v->data = record + (long)(doc->tok[dat].start - doc->tok[0].start) + shift;
    v->data_len = doc->tok[dat].end - doc->tok[dat].start;
    return 0;
}

int qbc_cluster__feed_record(const char *data, size_t len, uint64_t seq, qbc_feed_msg_t *out, const char **why)
{
    qbc_json_tok_t inline_tok[64];
    qbc_json_doc_t doc;
    qbc_json_error_t err;
    char *compact = NULL;
    const char *text = data, *reason = NULL;
    size_t n = len, seq_tok = QBC_JSON_NONE, realm_tok = QBC_JSON_NONE, entity_tok = QBC_JSON_NONE;
    int rc;

    memset(out, 0, sizeof(*out));
    qbc_json_init(&doc, inline_tok, sizeof(inline_tok) / sizeof(inline_tok[0]));
    if (data == NULL || len == 0) {
        reason = "an empty message";
        goto Fail;
    }
    if ((rc = qbc_json_scan(&doc, text, n, QBC_JSON_RFC8259, &err)) != 0) {
        reason = rc == -ENOMEM ? "out of memory" : "not JSON";
        goto Fail;
    }
    if (doc.tok[0].type != QBC_JSON_OBJECT) {
        reason = "not a JSON object";
        goto Fail;
    }
    if (memchr(text, '\n', n) != NULL || memchr(text, '\r', n) != NULL) {
        /* an SSE event is one line: the whitespace between tokens goes, every value's bytes stay */
        compact = qbc_json_copy_compact(&doc, text, 0, &n);
        text = compact;
        if ((rc = qbc_json_scan(&doc, text, n, QBC_JSON_RFC8259, &err)) != 0) {
            reason = "not JSON once compacted";
            goto Fail;
        }
    }
    /* the members: exactly one "seq" (a second would keep the origin's where a reader looks) */
    size_t k = 1;
    for (size_t i = 0; i < doc.tok[0].len; i++) {
        size_t v = doc.tok[k].next;
        if (qbc_json_str_eq(&doc, text, k, "seq", 3)) {
            if (seq_tok != QBC_JSON_NONE) {
                reason = "\"seq\" twice";
                goto Fail;
            }
            seq_tok = v;
        } else if (qbc_json_str_eq(&doc, text, k, "realm", 5)) {
            realm_tok = v;
        } else if (qbc_json_str_eq(&doc, text, k, "entity", 6)) {
            entity_tok = v;
        }
        k = doc.tok[v].next;
    }
    if (seq_tok == QBC_JSON_NONE || doc.tok[seq_tok].type != QBC_JSON_INTEGER ||
        (doc.tok[seq_tok].flags & QBC_JSON_NEGATIVE)) {
        reason = "no \"seq\" that is a sequence number";
        goto Fail;
    }
    if (realm_tok == QBC_JSON_NONE || doc.tok[realm_tok].type != QBC_JSON_STRING || doc.tok[realm_tok].len == 0 ||
        doc.tok[realm_tok].len >= QBC_REALM_MAX) {
        reason = "no \"realm\" string of 1 to 63 bytes";
        goto Fail;
    }
    if (entity_tok == QBC_JSON_NONE || doc.tok[entity_tok].type != QBC_JSON_STRING || doc.tok[entity_tok].len == 0 ||
        doc.tok[entity_tok].len >= QBC_ENTITY_MAX) {
        reason = "no \"entity\" string of 1 to 47 bytes";
        goto Fail;
    }
    qbc_json_str_copy(&doc, text, realm_tok, out->realm, sizeof(out->realm));
    qbc_json_str_copy(&doc, text, entity_tok, out->entity, sizeof(out->entity));

    /* the record: the object's bytes, the value of "seq" replaced */
    char num[24];
    int nl = snprintf(num, sizeof(num), "%llu", (unsigned long long)seq);
    const qbc_json_tok_t *root = &doc.tok[0], *st = &doc.tok[seq_tok];
    size_t head = st->start - root->start, tail = root->end - (st->start + st->len);
    out->json_len = head + (size_t)nl + tail;
    out->json = qbc_alloc(out->json_len + 1);
    memcpy(out->json, text + root->start, head);
    memcpy(out->json + head, num, (size_t)nl);
    memcpy(out->json + head + nl, text + st->start + st->len, tail);
    out->json[out->json_len] = '\0';
    out->has_version = read_version(&doc, text, out, seq_tok, out->json, (long)nl - (long)st->len) == 0;
    qbc_json_dispose(&doc);
    free(compact);
    return 0;

Fail:
    qbc_json_dispose(&doc);
    free(compact);
    memset(out, 0, sizeof(*out));
    if (why != NULL)
        *why = reason;
    return QBC_EMALFORMED;
}

/* ---------------------------------------------------------------- the stream */

/* the stream's identity: 32 hex digits of SHA-256 over its name and creation time */
static void stream_identity(const char *name, int64_t created_ns, char out[QBC_FEED_ID_LEN + 1])
{
    char text[512];
    unsigned char md[SHA256_DIGEST_LENGTH];
    int n = snprintf(text, sizeof(text), "qbcdc cluster feed\n%s\n%lld", name, (long long)created_ns);
    SHA256((const unsigned char *)text, (size_t)n, md);
    for (int i = 0; i < QBC_FEED_ID_LEN / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void unsubscribe(qbc_feed_mirror_t *m)
{
    if (m->sub != NULL) {
        natsSubscription_Unsubscribe(m->sub); /* the ephemeral consumer goes with it */
        natsSubscription_Destroy(m->sub);
        m->sub = NULL;
    }
    pthread_mutex_lock(&m->worker.mu);
    m->st.connected = 0;
    pthread_mutex_unlock(&m->worker.mu);
}

static void disconnect(qbc_feed_mirror_t *m)
{
    unsubscribe(m);
    if (m->js != NULL)
        jsCtx_Destroy(m->js);
    m->js = NULL;
    pthread_mutex_lock(&m->worker.mu);
    natsConnection *nc = m->nc;
    m->nc = NULL;
    pthread_mutex_unlock(&m->worker.mu);
    if (nc != NULL) {
        natsConnection_Close(nc);
        natsConnection_Destroy(nc);
    }
}

/* the stream's info: 0 with the identity and state, 1 when it does not exist, -1 on failure */
static int stream_info(qbc_feed_mirror_t *m, char id[QBC_FEED_ID_LEN + 1], uint64_t *first, uint64_t *last)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, m->js, m->stream, NULL, &jerr);
    if (s == NATS_NOT_FOUND) {
        set_error(m, "the stream %.60s does not exist (yet): a node's publisher makes it", m->stream);
        return 1;
    }
    if (s != NATS_OK) {
        char why[128];
        snprintf(why, sizeof(why), "%s (JetStream error %d)", natsStatus_GetText(s), (int)jerr);
        set_error(m, "cannot read the feed stream's info: %.100s", why);
        return -1;
    }
    stream_identity(m->stream, si->Created, id);
    *first = si->State.FirstSeq;
    *last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return 0;
}

/* a job waited for by the thread */
typedef struct {
    qbc_feed_append_job_t j;
    qbc_feed_mirror_t *m;
    int done;
} wait_job_t;

static void on_job_done(qbc_store_job_t *job)
{
    wait_job_t *w = (wait_job_t *)job;
    pthread_mutex_lock(&w->m->worker.mu);
    w->done = 1;
    pthread_cond_broadcast(&w->m->worker.cv);
    pthread_mutex_unlock(&w->m->worker.mu);
}

/* submits a job and waits for its commit (the store always answers); its result */
static int commit(qbc_feed_mirror_t *m, const qbc_feed_append_rec_t *recs, size_t n, uint64_t pruned, uint64_t position,
                  int *reset)
{
    wait_job_t w;
    memset(&w, 0, sizeof(w));
    w.m = m;
    w.j.job.on_commit = on_job_done;
    w.j.feed_id = m->feed_id;
    w.j.pruned_through = pruned;
    w.j.records = recs;
    w.j.n_records = n;
    w.j.position_name = POSITION;
    w.j.position = position;
    int rc = qbc_store_feed_append(m->copy, &w.j);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&m->worker.mu);
    while (!w.done)
        pthread_cond_wait(&m->worker.cv, &m->worker.mu);
    pthread_mutex_unlock(&m->worker.mu);
    if (reset != NULL)
        *reset = w.j.reset;
    return w.j.job.result;
}

/*
 * connects if needed, reads the stream's identity, starts the copy over if the stream is
 * another one, records what it lost before we read it, and subscribes after the position
 */
static int prepare(qbc_feed_mirror_t *m)
{
    natsStatus s;
    if (m->nc == NULL) {
        natsConnection *nc = NULL;
        if ((s = qbc_nats_connect(m->servers, m->n_servers, 500, &nc)) != NATS_OK) {
            set_error(m, "cannot connect to NATS: %.100s", natsStatus_GetText(s));
            return -1;
        }
        pthread_mutex_lock(&m->worker.mu);
        m->nc = nc;
        pthread_mutex_unlock(&m->worker.mu);
        /*
         * JetStream API calls answer in 2 s or are tried again: a consumer the server meant to
         * place on a member that is down (a killed nats-server of the stream's group) never
         * answers, and the next try is placed anew
         */
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = 2000;
        if ((s = natsConnection_JetStream(&m->js, m->nc, &jo)) != NATS_OK) {
            set_error(m, "no JetStream context: %.100s", natsStatus_GetText(s));
            disconnect(m);
            return -1;
        }
    }
    char id[QBC_FEED_ID_LEN + 1], have[QBC_FEED_ID_LEN + 1];
    uint64_t first = 0, last = 0, position = 0;
    if (stream_info(m, id, &first, &last) != 0)
        return -1;
    qbc_store_feed_id_copy(m->copy, have);
    if (qbc_store_cursor(m->copy, POSITION, &position) != 0) {
        set_error(m, "cannot read the copy's position: %.100s", "the store failed");
        return -1;
    }
    if (strcmp(have, id) != 0)
        position = 0; /* another stream (or the first read): the commit below starts the copy over */
    /* what the stream lost before we read it (purged, or aged out by its limits) */
    uint64_t pruned = first > position + 1 ? first - 1 : 0;
    memcpy(m->feed_id, id, sizeof(m->feed_id));
    int reset = 0, rc;
    if ((strcmp(have, id) != 0 || pruned > 0) && (rc = commit(m, NULL, 0, pruned, pruned, &reset)) != 0) {
        set_error(m, "cannot store the cluster feed: %.100s", qbc_strerror(rc));
        return -1;
    }
    if (pruned > position)
        position = pruned;
    if (reset && have[0] != '\0') {
        qbc_log(QBC_LOG_WARN, MOD,
                "the feed stream %s is another one than the copy held (made again?): the cluster feed starts over "
                "with id %s",
                m->stream, id);
        pthread_mutex_lock(&m->worker.mu);
        m->st.resets++;
        pthread_mutex_unlock(&m->worker.mu);
    }
    if (pruned > 0)
        qbc_log(QBC_LOG_WARN, MOD, "the feed stream no longer holds sequences up to %llu: readers behind get 410",
                (unsigned long long)pruned);

    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = m->stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = position + 1;
    jsErrCode jerr = 0;
    if ((s = js_SubscribeSync(&m->sub, m->js, "qbcdc.feed.>", NULL, &so, &jerr)) != NATS_OK) {
        char why[128];
        snprintf(why, sizeof(why), "%s (JetStream error %d)", natsStatus_GetText(s), (int)jerr);
        set_error(m, "cannot read the feed stream: %.100s", why);
        m->sub = NULL;
        return -1;
    }
    m->position = position;
    m->gap_checked = position;
    m->behind_at = UINT64_MAX;
    m->checked_ns = qbc_mono_ns();
    pthread_mutex_lock(&m->worker.mu);
    m->seen = 1;
    m->st.connected = 1;
    m->st.mirrored = position;
    m->st.stream_last = last;
    memcpy(m->st.feed_id, id, sizeof(m->st.feed_id));
    m->st.last_error[0] = '\0';
    pthread_mutex_unlock(&m->worker.mu);
    qbc_log(QBC_LOG_INFO, MOD, "copying the cluster feed (stream %s, feed id %s) from sequence %llu", m->stream, id,
            (unsigned long long)position + 1);
    return 0;
}

/* idle: is the stream still the one we copy? Its last sequence, for the lag. 0, 1 to subscribe again now (a
   stall), or -1 to subscribe again after a pause */
static int check_stream(qbc_feed_mirror_t *m)
{
    char id[QBC_FEED_ID_LEN + 1];
    uint64_t first, last;
    m->checked_ns = qbc_mono_ns();
    int rc = stream_info(m, id, &first, &last);
    if (rc < 0)
        return 0; /* NATS is reconnecting, most likely: the subscription resumes by itself */
    if (rc > 0 || strcmp(id, m->feed_id) != 0) {
        qbc_log(QBC_LOG_WARN, MOD, "the feed stream %s was deleted or made again", m->stream);
        return -1;
    }
    pthread_mutex_lock(&m->worker.mu);
    m->st.stream_last = last;
    pthread_mutex_unlock(&m->worker.mu);
    int behind = last > m->position, stalled = behind && m->behind_at == m->position;
    m->behind_at = behind ? m->position : UINT64_MAX;
    if (stalled) {
        /* the stream held more than the copy at two checks in a row and nothing came between:
           the ordered consumer stalled (seen after a nats-server was killed): read on anew */
        qbc_log(QBC_LOG_WARN, MOD,
                "the feed stream holds sequences up to %llu, the copy %llu, and none came: reading anew",
                (unsigned long long)last, (unsigned long long)m->position);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- copying */

/*
 * reads what has arrived (waiting up to 500 ms for the first) and commits it. 0; 1 to subscribe
 * again now (a gap in the stream's sequences: prepare() tells a purge, recorded as pruned,
 * from deleted messages, passed over); -1 to subscribe again after a pause (a failure)
 */
static int copy_batch(qbc_feed_mirror_t *m, qbc_feed_msg_t *msgs, qbc_feed_append_rec_t *recs)
{
    natsMsg *msg = NULL;
    natsStatus s = natsSubscription_NextMsg(&msg, m->sub, 500);
    if (s == NATS_TIMEOUT)
        return qbc_mono_ns() - m->checked_ns >= CHECK_EVERY_NS ? check_stream(m) : 0;
    if (s != NATS_OK) {
        set_error(m, "reading the feed stream: %.100s", natsStatus_GetText(s));
        return -1;
    }
    size_t n = 0, got = 0;
    uint64_t position = m->position, horizon = 0, skipped = 0;
    int gap = 0;
    while (msg != NULL) {
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
            uint64_t seq = meta->Sequence.Stream;
            if (seq > position + 1 && position != m->gap_checked) {
                /* messages missing before this one: purged (then readers behind must get 410) or
                   deleted; prepare() asks the stream, and this one comes again */
                gap = 1;
                jsMsgMetaData_Destroy(meta);
                natsMsg_Destroy(msg);
                break;
            }
            if (seq > position) {
                const char *why = NULL;
                if (qbc_cluster__feed_record(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), seq, &msgs[n],
                                             &why) == 0) {
                    recs[n] = (qbc_feed_append_rec_t){
                        seq,          msgs[n].realm,    msgs[n].entity,
                        msgs[n].json, msgs[n].json_len, msgs[n].has_version ? &msgs[n].version : NULL};
                    n++;
                } else {
                    skipped++;
                    if (m->logged_skip++ < 10)
                        qbc_log(QBC_LOG_WARN, MOD, "feed stream message %llu (%s) is no feed record (%s): not copied",
                                (unsigned long long)seq, natsMsg_GetSubject(msg), why);
                }
                position = seq;
            }
            if (seq + meta->NumPending > horizon)
                horizon = seq + meta->NumPending;
            jsMsgMetaData_Destroy(meta);
        }
        natsMsg_Destroy(msg);
        msg = NULL;
        if (++got >= BATCH || natsSubscription_NextMsg(&msg, m->sub, 1) != NATS_OK)
            msg = NULL;
    }
    int rc = position > m->position ? commit(m, recs, n, 0, position, NULL) : 0;
    for (size_t i = 0; i < n; i++)
        free(msgs[i].json);
    if (rc != 0) {
        set_error(m, "cannot store the cluster feed: %.100s", qbc_strerror(rc));
        return -1;
    }
    m->position = position;
    pthread_mutex_lock(&m->worker.mu);
    m->st.mirrored = position;
    m->st.records += n;
    m->st.skipped += skipped;
    if (horizon > m->st.stream_last)
        m->st.stream_last = horizon;
    pthread_mutex_unlock(&m->worker.mu);
    return gap;
}

static void *thread_main(void *arg)
{
    qbc_feed_mirror_t *m = arg;
    qbc_feed_msg_t *msgs = qbc_calloc(BATCH, sizeof(*msgs));
    qbc_feed_append_rec_t *recs = qbc_calloc(BATCH, sizeof(*recs));
    int64_t backoff_ms = 500;
    int logged = 0;
    while (!qbc_worker_nap(&m->worker, 0)) {
        if (m->sub == NULL) {
            if (prepare(m) != 0) {
                if (!logged)
                    qbc_log(QBC_LOG_WARN, MOD, "%s; retrying (the cluster feed waits)", m->st.last_error);
                logged = 1;
                if (m->nc != NULL && natsConnection_IsClosed(m->nc))
                    disconnect(m);
                if (qbc_worker_nap(&m->worker, backoff_ms))
                    break;
                backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
                continue;
            }
            logged = 0;
            backoff_ms = 500;
        }
        int rc = copy_batch(m, msgs, recs);
        if (rc != 0) {
            unsubscribe(m);
            if (m->nc != NULL && natsConnection_IsClosed(m->nc))
                disconnect(m);
            if (rc < 0 && qbc_worker_nap(&m->worker, backoff_ms))
                break;
        }
    }
    free(msgs);
    free(recs);
    return NULL;
}

/* ---------------------------------------------------------------- public */

int qbc_cluster_feed_start(const qbc_feed_mirror_config_t *cfg, qbc_store_t *copy, qbc_feed_mirror_t **out)
{
    *out = NULL;
    if (cfg == NULL || cfg->urls == NULL || cfg->urls[0] == '\0' || copy == NULL)
        return QBC_EINVAL;
    qbc_feed_mirror_t *m = qbc_calloc(1, sizeof(*m));
    m->copy = copy;
    m->stream = qbc_strdup(cfg->stream != NULL && cfg->stream[0] ? cfg->stream : "QBCDC_FEED");
    m->n_servers = qbc_nats_servers(cfg->urls, &m->servers);
    qbc_worker_init(&m->worker);
    uint64_t position = 0;
    qbc_store_cursor(copy, POSITION, &position);
    m->st.mirrored = position;
    qbc_store_feed_id_copy(copy, m->st.feed_id);
    int rc = qbc_worker_start(&m->worker, thread_main, m);
    if (rc != 0) {
        qbc_cluster_feed_stop(m);
        return rc;
    }
    *out = m;
    return 0;
}

void qbc_cluster_feed_stop(qbc_feed_mirror_t *m)
{
    if (m == NULL)
        return;
    qbc_worker_join(&m->worker);
    disconnect(m);
    qbc_nats_servers_free(m->servers, m->n_servers);
    free(m->stream);
    qbc_worker_dispose(&m->worker);
    free(m);
}

void qbc_cluster_feed_stats(qbc_feed_mirror_t *m, qbc_feed_mirror_stats_t *out)
{
    pthread_mutex_lock(&m->worker.mu);
    *out = m->st;
    out->connected = m->st.connected && m->nc != NULL && natsConnection_Status(m->nc) == NATS_CONN_STATUS_CONNECTED;
    pthread_mutex_unlock(&m->worker.mu);
}

uint64_t qbc_cluster_feed_horizon(qbc_feed_mirror_t *m)
{
    pthread_mutex_lock(&m->worker.mu);
    uint64_t h = !m->seen ? UINT64_MAX : m->st.stream_last > m->st.mirrored ? m->st.stream_last : m->st.mirrored;
    pthread_mutex_unlock(&m->worker.mu);
    return h;
}
