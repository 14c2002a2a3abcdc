/*
 * inbox.c — cluster mode: webhooks acked once their notices are in a replicated stream, and
 * consumed by the owner of their partition (cluster.h, qbc_cluster_inbox_*).
 *
 * The stream QBCDC_INBOX (work-queue retention, replicas QBCDC_NATS_REPLICAS) has one subject
 * per partition, qbcdc.inbox.<p>. Any node that receives a webhook stores its body, then
 * publishes the body as Intuit sent it once per partition its events touch (Nats-Msg-Id: the
 * body's SHA-256 and the partition, so Intuit's retries of one body are stored once) and acks
 * Intuit only after every PubAck. The owner of a partition reads qbcdc.inbox.<p> through the
 * durable consumer inbox-<p>, keeps the events of its partition's realms, submits them to its
 * store as a webhook, and acks the message only once that is durable there: a node that dies
 * before leaves it to be redelivered (after the ack wait) to whoever owns the partition next.
 *
 * Two threads share one NATS connection: the publisher (a queue fed by the store's threads;
 * what queued up while a batch was out goes next, published asynchronously, each webhook
 * answered once all its PubAcks are in) and the consumer (which follows the partitions the
 * lease thread says are this node's).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <nats/nats.h>
#include <openssl/sha.h>
#include "cluster.h"
#include "jetstream.h"
#include "common.h"
#include "ingress.h"

#define MOD "cluster"
#define NS 1000000000LL
#define STREAM "QBCDC_INBOX"
#define QUEUE_MAX 20000      /* webhooks waiting to be published; more: 503, Intuit retries */
#define OUTSTANDING_MAX 2048 /* consumed messages not yet durable in the store */
#define FETCH_BATCH 128
#define ACK_WAIT_S 10

typedef struct st_fwd_t {
    struct st_fwd_t *next;
    const void *body;
    size_t len;
    const qbc_event_t *events;
    size_t n_events;
    void (*done)(void *arg, int result);
    void *arg;
} fwd_t;

/* a consumed message on its way into the store */
typedef struct st_in_job_t {
    qbc_webhook_job_t wj; /* first: the store hands back &wj.job */
    qbc_inbox_t *ib;
    natsMsg *msg;
    qbc_payload_t payload;
    qbc_event_t *mine;
} in_job_t;

struct st_qbc_inbox_t {
    qbc_cluster_t *cluster;
    qbc_store_t *store;
    char **servers;
    int n_servers;
    unsigned replicas, partitions;
    pthread_t pub_thread, sub_thread;
    int pub_started, sub_started;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* the publisher's queue, the consumer's naps, outstanding jobs */
    int stop;
    fwd_t *head, **tail;
    size_t queued;
    unsigned outstanding; /* under mu */
    qbc_inbox_stats_t st; /* under mu */
    natsConnection *nc;   /* under mu: set once connected (by the publisher thread) */
    /* the batch being published: its items, and which of them a message failed for (the
       PubAck handler runs on a nats.c thread; each message carries Qbcdc-Fwd: <gen>.<index>) */
    fwd_t **batch;
    int *batch_failed;
    size_t n_batch, cap_batch;
    uint64_t batch_gen;
    jsCtx *js;
    natsSubscription **subs; /* the consumer thread's */
};

static void set_error(qbc_inbox_t *ib, const char *fmt, const char *detail)
{
    pthread_mutex_lock(&ib->mu);
    snprintf(ib->st.last_error, sizeof(ib->st.last_error), fmt, detail);
    pthread_mutex_unlock(&ib->mu);
}

/* waits until woken, stopped or ms pass (mu held); 1 if stopping */
static int wait_locked(qbc_inbox_t *ib, int64_t ms)
{
    if (!ib->stop && ms > 0)
        qbc_cond_wait_until(&ib->cv, &ib->mu, qbc_mono_ns() + ms * 1000000);
    return ib->stop;
}

/* ---------------------------------------------------------------- the connection and the stream */

/* nats.c's thread: a message of the batch was acknowledged (pa) or not (pae) */
static void on_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)pa;
    qbc_inbox_t *ib = closure;
    const char *tag = NULL;
    unsigned long long gen = 0;
    size_t idx = 0;
    if (pae != NULL && natsMsgHeader_Get(msg, "Qbcdc-Fwd", &tag) == NATS_OK && tag != NULL &&
        sscanf(tag, "%llu.%zu", &gen, &idx) == 2) {
        pthread_mutex_lock(&ib->mu);
        if (gen == ib->batch_gen && idx < ib->n_batch)
            ib->batch_failed[idx] = 1;
        pthread_mutex_unlock(&ib->mu);
    }
    natsMsg_Destroy(msg);
}

static int connect_and_prepare(qbc_inbox_t *ib)
{
    natsConnection *nc = NULL;
    natsStatus s = qbc_nats_connect(ib->servers, ib->n_servers, 250, &nc);
    if (s != NATS_OK) {
        set_error(ib, "cannot connect to NATS: %.100s", natsStatus_GetText(s));
        return -1;
    }
    jsCtx *js = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    jo.PublishAsync.AckHandler = on_pub_ack;
    jo.PublishAsync.AckHandlerClosure = ib;
    jo.PublishAsync.MaxPending = 4096;
    if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK) {
        set_error(ib, "no JetStream context: %.100s", natsStatus_GetText(s));
        natsConnection_Destroy(nc);
        return -1;
    }
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    s = js_GetStreamInfo(&si, js, STREAM, NULL, &jerr);
    if (s == NATS_NOT_FOUND) {
        jsStreamConfig cfg;
        const char *subjects[] = {"qbcdc.inbox.>"};
        jsStreamConfig_Init(&cfg);
        cfg.Name = STREAM;
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        cfg.Retention = js_WorkQueuePolicy; /* a message goes once its partition's owner has it */
        cfg.Storage = js_FileStorage;
        cfg.Replicas = (int64_t)(ib->replicas ? ib->replicas : 1);
        cfg.Duplicates = 120 * NS;
        s = js_AddStream(&si, js, &cfg, NULL, &jerr);
        if (s != NATS_OK) /* another node created it meanwhile */
            s = js_GetStreamInfo(&si, js, STREAM, NULL, &jerr);
    }
    if (si != NULL)
        jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
        set_error(ib, "no stream " STREAM ": %.100s", natsStatus_GetText(s));
        jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        return -1;
    }
    pthread_mutex_lock(&ib->mu);
    ib->nc = nc;
    ib->js = js;
    ib->st.connected = 1;
    ib->st.last_error[0] = '\0';
    pthread_cond_broadcast(&ib->cv);
    pthread_mutex_unlock(&ib->mu);
    return 0;
}

/* ---------------------------------------------------------------- publishing */

/*
 * sends one webhook of the batch (index idx): its body once per partition its events touch,
 * asynchronously; the PubAcks come to on_pub_ack. 0, or -1 if a message could not be sent.
 */
static int publish_async(qbc_inbox_t *ib, const fwd_t *f, size_t idx)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(f->body, f->len, md);
    char hex[2 * 16 + 1];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    char tag[48];
    snprintf(tag, sizeof(tag), "%llu.%zu", (unsigned long long)ib->batch_gen, idx);
    unsigned sent[64];
    size_t n_sent = 0;
    for (size_t i = 0; i < f->n_events; i++) {
        unsigned p = qbc_cluster_partition_of(f->events[i].realm, ib->partitions);
        int seen = 0;
        for (size_t k = 0; k < n_sent && !seen; k++)
            seen = sent[k] == p;
        if (seen)
            continue;
        char subject[48], id[64];
        snprintf(subject, sizeof(subject), "qbcdc.inbox.%u", p);
        snprintf(id, sizeof(id), "%s.%u", hex, p); /* Intuit's retry of one body is stored once */
        natsMsg *m = NULL;
        natsStatus s = natsMsg_Create(&m, subject, NULL, f->body, (int)f->len);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(m, "Qbcdc-Fwd", tag);
        if (s == NATS_OK)
            s = js_PublishMsgAsync(ib->js, &m, NULL); /* takes m on success */
        if (m != NULL)
            natsMsg_Destroy(m);
        if (s != NATS_OK) {
            set_error(ib, "cannot publish a webhook to " STREAM ": %.100s", natsStatus_GetText(s));
            return -1;
        }
        if (n_sent < sizeof(sent) / sizeof(sent[0]))
            sent[n_sent++] = p; /* past 64 partitions in one body: a repeat is a no-op (msg id) */
    }
    return 0;
}

/* publishes a batch of webhooks at once and waits for every PubAck (5 s at most); then done() */
static void publish_batch(qbc_inbox_t *ib, fwd_t *list)
{
    size_t n = 0;
    for (fwd_t *f = list; f != NULL; f = f->next)
        n++;
    pthread_mutex_lock(&ib->mu);
    if (n > ib->cap_batch) {
        ib->cap_batch = n;
        ib->batch = qbc_realloc(ib->batch, n * sizeof(*ib->batch));
        ib->batch_failed = qbc_realloc(ib->batch_failed, n * sizeof(*ib->batch_failed));
    }
    ib->batch_gen++;
    ib->n_batch = n;
    size_t i = 0;
    for (fwd_t *f = list; f != NULL; f = f->next, i++) {
        ib->batch[i] = f;
        ib->batch_failed[i] = 0;
    }
    pthread_mutex_unlock(&ib->mu);
    for (i = 0; i < n; i++)
        if (publish_async(ib, ib->batch[i], i) != 0) {
            pthread_mutex_lock(&ib->mu);
            ib->batch_failed[i] = 1;
            pthread_mutex_unlock(&ib->mu);
        }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 5000;
    natsStatus s = js_PublishAsyncComplete(ib->js, &po);
    int all_failed = 0;
    if (s != NATS_OK) { /* no answer for some: they count as failed (Intuit retries the webhook) */
        natsMsgList pending = {0};
        if (js_PublishAsyncGetPendingList(&pending, ib->js) == NATS_OK) {
            for (int k = 0; k < pending.Count; k++) {
                const char *tag = NULL;
                unsigned long long gen = 0;
                size_t idx = 0;
                if (natsMsgHeader_Get(pending.Msgs[k], "Qbcdc-Fwd", &tag) == NATS_OK && tag != NULL &&
                    sscanf(tag, "%llu.%zu", &gen, &idx) == 2 && idx < n) {
                    pthread_mutex_lock(&ib->mu);
                    ib->batch_failed[idx] = 1;
                    pthread_mutex_unlock(&ib->mu);
                }
            }
            natsMsgList_Destroy(&pending);
        } else {
            all_failed = 1;
        }
        set_error(ib, "the inbox stream did not acknowledge in time: %.100s", natsStatus_GetText(s));
    }
    uint64_t ok = 0, failed = 0;
    pthread_mutex_lock(&ib->mu);
    ib->batch_gen++; /* late PubAcks of this batch change nothing now */
    int *res = qbc_alloc(n * sizeof(*res) + 1);
    for (i = 0; i < n; i++)
        res[i] = all_failed || ib->batch_failed[i];
    ib->n_batch = 0;
    pthread_mutex_unlock(&ib->mu);
    i = 0;
    for (fwd_t *f = list, *next; f != NULL; f = next, i++) {
        next = f->next;
        res[i] ? failed++ : ok++;
        f->done(f->arg, res[i] ? -EIO : 0);
        free(f);
    }
    free(res);
    pthread_mutex_lock(&ib->mu);
    ib->st.published += ok;
    ib->st.publish_failures += failed;
    pthread_mutex_unlock(&ib->mu);
}

static void *pub_main(void *arg)
{
    qbc_inbox_t *ib = arg;
    int64_t backoff_ms = 250;
    for (;;) {
        pthread_mutex_lock(&ib->mu);
        while (!ib->stop && ib->head == NULL && ib->nc != NULL)
            wait_locked(ib, 1000);
        int stop = ib->stop, connected = ib->nc != NULL;
        fwd_t *batch = connected ? ib->head : NULL;
        if (connected) {
            ib->head = NULL;
            ib->tail = &ib->head;
            ib->queued = 0;
        }
        pthread_mutex_unlock(&ib->mu);
        if (stop && batch == NULL)
            break;
        if (!connected) {
            if (connect_and_prepare(ib) != 0) {
                /* nowhere to put them: 503 now rather than after the webhook's timeout */
                pthread_mutex_lock(&ib->mu);
                fwd_t *fail = ib->head;
                ib->head = NULL;
                ib->tail = &ib->head;
                ib->queued = 0;
                ib->st.publish_failures++;
                wait_locked(ib, backoff_ms);
                pthread_mutex_unlock(&ib->mu);
                for (fwd_t *f = fail, *next; f != NULL; f = next) {
                    next = f->next;
                    f->done(f->arg, QBC_ECLOSED);
                    free(f);
                }
                backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
            } else {
                backoff_ms = 250;
                qbc_log(QBC_LOG_INFO, MOD, "webhooks go to the replicated stream " STREAM);
            }
            continue;
        }
        publish_batch(ib, batch);
    }
    return NULL;
}

int qbc_cluster_inbox_forward(void *ctx, const void *body, size_t len, const qbc_event_t *events, size_t n_events,
                              void (*done)(void *arg, int result), void *arg)
{
    qbc_inbox_t *ib = ctx;
    fwd_t *f = malloc(sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    *f = (fwd_t){NULL, body, len, events, n_events, done, arg};
    pthread_mutex_lock(&ib->mu);
    if (ib->stop || ib->queued >= QUEUE_MAX) {
        int rc = ib->stop ? QBC_ECLOSED : QBC_EFULL;
        ib->st.publish_failures++;
        pthread_mutex_unlock(&ib->mu);
        free(f);
        return rc;
    }
    *ib->tail = f;
    ib->tail = &f->next;
    ib->queued++;
    pthread_cond_broadcast(&ib->cv);
    pthread_mutex_unlock(&ib->mu);
    return 0;
}

/* ---------------------------------------------------------------- consuming */

/* how long a message the store refused waits before its redelivery: 1 s, doubling with each
   delivery, at most 30 s */
static int64_t nak_delay_ms(natsMsg *msg)
{
    jsMsgMetaData *meta = NULL;
    uint64_t n = 1;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        n = meta->NumDelivered;
        jsMsgMetaData_Destroy(meta);
    }
    return n >= 6 ? 30000 : 1000LL << (n > 0 ? n - 1 : 0);
}

/* store thread: the events are durable here (or not): ack the message (or have it redelivered) */
static void in_job_done(qbc_store_job_t *job)
{
    in_job_t *j = (in_job_t *)job;
    qbc_inbox_t *ib = j->ib;
    if (job->result == 0)
        natsMsg_Ack(j->msg, NULL);
    else /* a store that refused it (full, closing) may refuse it again: back off, not a loop */
        natsMsg_NakWithDelay(j->msg, nak_delay_ms(j->msg) * 1000000LL, NULL);
    natsMsg_Destroy(j->msg);
    qbc_payload_clear(&j->payload);
    free(j->mine);
    pthread_mutex_lock(&ib->mu);
    ib->outstanding--;
    if (job->result == 0)
        ib->st.consumed++;
    pthread_cond_broadcast(&ib->cv);
    pthread_mutex_unlock(&ib->mu);
    free(j);
}

/* takes a fetched message: its partition's events into the store, or acked and dropped */
static in_job_t *take_message(qbc_inbox_t *ib, unsigned p, natsMsg *msg)
{
    in_job_t *j = qbc_calloc(1, sizeof(*j));
    j->ib = ib;
    j->msg = msg;
    const char *data = natsMsg_GetData(msg);
    int len = natsMsg_GetDataLength(msg);
    if (qbc_payload_parse(data != NULL ? data : "", (size_t)len, &j->payload) != 0 || j->payload.n_events == 0) {
        qbc_log(QBC_LOG_ERROR, MOD, "partition %u: an inbox message without events (dropped)", p);
        natsMsg_Ack(msg, NULL);
        natsMsg_Destroy(msg);
        qbc_payload_clear(&j->payload);
        free(j);
        return NULL;
    }
    j->mine = qbc_calloc(j->payload.n_events, sizeof(*j->mine));
    size_t n = 0;
    for (size_t i = 0; i < j->payload.n_events; i++)
        if (qbc_cluster_partition_of(j->payload.events[i].realm, ib->partitions) == p)
            j->mine[n++] = j->payload.events[i];
    j->wj.job.on_commit = in_job_done;
    j->wj.body = data;
    j->wj.body_len = (size_t)len;
    j->wj.received_ns = qbc_now_ns();
    j->wj.format = (uint8_t)j->payload.format;
    j->wj.events = j->mine;
    j->wj.n_events = n;
    return j;
}

/* the durable consumer of partition p, created if missing, and a pull subscription bound to it */
static natsSubscription *subscribe(qbc_inbox_t *ib, unsigned p)
{
    char durable[32], subject[48];
    snprintf(durable, sizeof(durable), "inbox-%u", p);
    snprintf(subject, sizeof(subject), "qbcdc.inbox.%u", p);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = durable;
    cc.FilterSubject = subject;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = ACK_WAIT_S * NS;
    cc.DeliverPolicy = js_DeliverAll;
    cc.MaxAckPending = OUTSTANDING_MAX;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddConsumer(&ci, ib->js, STREAM, &cc, NULL, &jerr);
    if (ci != NULL)
        jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK && jerr != JSConsumerNameExistErr && jerr != JSConsumerExistingActiveErr) {
        set_error(ib, "cannot make the inbox consumer: %.100s", natsStatus_GetText(s));
        return NULL;
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = STREAM;
    so.Consumer = durable; /* bound: destroying the subscription leaves the consumer and its acks */
    natsSubscription *sub = NULL;
    s = js_PullSubscribe(&sub, ib->js, subject, durable, NULL, &so, &jerr);
    if (s != NATS_OK) {
        set_error(ib, "cannot read the inbox: %.100s", natsStatus_GetText(s));
        return NULL;
    }
    return sub;
}

static void *sub_main(void *arg)
{
    qbc_inbox_t *ib = arg;
    in_job_t **jobs = qbc_calloc(FETCH_BATCH, sizeof(*jobs));
    for (;;) {
        pthread_mutex_lock(&ib->mu);
        while (!ib->stop && (ib->nc == NULL || ib->outstanding >= OUTSTANDING_MAX))
            wait_locked(ib, 200);
        int stop = ib->stop;
        pthread_mutex_unlock(&ib->mu);
        if (stop)
            break;
        size_t got = 0;
        unsigned subscribed = 0;
        for (unsigned p = 0; p < ib->partitions; p++) {
            int mine = qbc_cluster_owns_partition(ib->cluster, p);
            if (mine && ib->subs[p] == NULL) {
                ib->subs[p] = subscribe(ib, p);
                if (ib->subs[p] != NULL)
                    qbc_log(QBC_LOG_DEBUG, MOD, "partition %u: reading its inbox", p);
            } else if (!mine && ib->subs[p] != NULL) {
                natsSubscription_Destroy(ib->subs[p]);
                ib->subs[p] = NULL;
            }
            if (ib->subs[p] == NULL)
                continue;
            subscribed++;
            natsMsgList list = {0};
            jsFetchRequest req;
            jsFetchRequest_Init(&req);
            req.Batch = FETCH_BATCH;
            req.NoWait = true;
            req.Expires = NS / 2;
            natsStatus fs = natsSubscription_FetchRequest(&list, ib->subs[p], &req);
            if (fs != NATS_OK && fs != NATS_ERR && fs != NATS_INVALID_SUBSCRIPTION)
                continue;        /* nothing waiting, or NATS reconnecting (nats.c does that) */
            if (fs != NATS_OK) { /* the consumer or the subscription is gone: made again next turn */
                set_error(ib, "reading the inbox: %.100s", natsStatus_GetText(fs));
                natsSubscription_Destroy(ib->subs[p]);
                ib->subs[p] = NULL;
                continue;
            }
            size_t n = 0;
            for (int i = 0; i < list.Count; i++) {
                natsMsg *m = list.Msgs[i];
                list.Msgs[i] = NULL; /* ours now */
                in_job_t *j = take_message(ib, p, m);
                if (j != NULL)
                    jobs[n++] = j;
            }
            got += (size_t)list.Count;
            natsMsgList_Destroy(&list);
            if (n == 0)
                continue;
            pthread_mutex_lock(&ib->mu);
            ib->outstanding += (unsigned)n;
            pthread_mutex_unlock(&ib->mu);
            if (qbc_store_submit_webhooks(ib->store, (qbc_webhook_job_t **)jobs, n) != 0) {
                for (size_t i = 0; i < n; i++) { /* the store is closing: redelivered later */
                    jobs[i]->wj.job.result = QBC_ECLOSED;
                    in_job_done(&jobs[i]->wj.job);
                }
            }
        }
        pthread_mutex_lock(&ib->mu);
        ib->st.partitions_read = subscribed;
        if (got == 0)
            wait_locked(ib, 50);
        pthread_mutex_unlock(&ib->mu);
    }
    for (unsigned p = 0; p < ib->partitions; p++)
        if (ib->subs[p] != NULL)
            natsSubscription_Destroy(ib->subs[p]);
    free(jobs);
    return NULL;
}

/* ---------------------------------------------------------------- public */

int qbc_cluster_inbox_start(const qbc_inbox_config_t *cfg, qbc_cluster_t *cluster, qbc_store_t *store,
                            qbc_inbox_t **out)
{
    *out = NULL;
    if (cfg == NULL || cfg->urls == NULL || cfg->urls[0] == '\0' || cluster == NULL)
        return QBC_EINVAL;
    qbc_cluster_stats_t cs;
    qbc_cluster_stats(cluster, &cs);
    qbc_inbox_t *ib = qbc_calloc(1, sizeof(*ib));
    ib->cluster = cluster;
    ib->store = store;
    ib->replicas = cfg->replicas;
    ib->partitions = cs.partitions;
    ib->subs = qbc_calloc(cs.partitions, sizeof(*ib->subs));
    ib->tail = &ib->head;
    ib->n_servers = qbc_nats_servers(cfg->urls, &ib->servers);
    pthread_mutex_init(&ib->mu, NULL);
    if (qbc_cond_init_mono(&ib->cv) != 0)
        qbc_fatal("cannot make a monotonic condition variable");
    if (pthread_create(&ib->pub_thread, NULL, pub_main, ib) == 0)
        ib->pub_started = 1;
    if (ib->pub_started && pthread_create(&ib->sub_thread, NULL, sub_main, ib) == 0)
        ib->sub_started = 1;
    if (!ib->sub_started) {
        int err = errno;
        qbc_cluster_inbox_stop(ib);
        return -err;
    }
    *out = ib;
    return 0;
}

void qbc_cluster_inbox_stop(qbc_inbox_t *ib)
{
    if (ib == NULL)
        return;
    pthread_mutex_lock(&ib->mu);
    ib->stop = 1;
    pthread_cond_broadcast(&ib->cv);
    pthread_mutex_unlock(&ib->mu);
    if (ib->sub_started)
        pthread_join(ib->sub_thread, NULL);
    if (ib->pub_started)
        pthread_join(ib->pub_thread, NULL);
    /* what was consumed must be acked before the connection goes (else it is redelivered: harmless) */
    int64_t until = qbc_mono_ns() + 10 * NS;
    pthread_mutex_lock(&ib->mu);
    while (ib->outstanding > 0 && qbc_mono_ns() < until)
        qbc_cond_wait_until(&ib->cv, &ib->mu, until);
    fwd_t *left = ib->head;
    ib->head = NULL;
    pthread_mutex_unlock(&ib->mu);
    for (fwd_t *f = left, *next; f != NULL; f = next) {
        next = f->next;
        f->done(f->arg, QBC_ECLOSED);
        free(f);
    }
    if (ib->js != NULL)
        jsCtx_Destroy(ib->js);
    if (ib->nc != NULL) {
        if (natsConnection_Status(ib->nc) == NATS_CONN_STATUS_CONNECTED)
            natsConnection_FlushTimeout(ib->nc, 1000); /* the last acks */
        natsConnection_Close(ib->nc);
        natsConnection_Destroy(ib->nc);
    }
    qbc_nats_servers_free(ib->servers, ib->n_servers);
    free(ib->subs);
    free(ib->batch);
    free(ib->batch_failed);
    pthread_mutex_destroy(&ib->mu);
    pthread_cond_destroy(&ib->cv);
    free(ib);
}

void qbc_cluster_inbox_stats(qbc_inbox_t *ib, qbc_inbox_stats_t *out)
{
    pthread_mutex_lock(&ib->mu);
    *out = ib->st;
    out->queued = ib->queued;
    out->outstanding = ib->outstanding;
    out->connected = ib->nc != NULL && natsConnection_Status(ib->nc) == NATS_CONN_STATUS_CONNECTED;
    pthread_mutex_unlock(&ib->mu);
}
