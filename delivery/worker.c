/*
 * worker.c — the delivery thread: every subscription's deliveries, on one curl multi handle.
 *
 * Each turn it starts, for every subscription that is enabled, not paused, due and idle, the
 * next delivery: the changes after its cursor that pass its filters (up to batch_max, read
 * from the store and spliced into the body as stored), signed with its secrets. At most one
 * delivery is in flight per subscription, so its receiver sees the feed in order; at most
 * max_inflight over all. A 2xx moves the cursor past the batch (and past the filtered-out
 * records between) and commits it with an epoch-checked ack job, at most one such job in
 * flight per subscription; anything else keeps the batch, body and webhook-id for the next
 * attempt, after the schedule's delay. The store's commit listener wakes the thread when the
 * feed grows (curl_multi_wakeup); so do admin changes (qbc_delivery_reload) and stop.
 *
 * Locking: d->mu guards the subscription table and every field the admin API reads; the
 * thread takes it to schedule and to take results, never across a curl call. The body and
 * headers of a transfer in flight are the thread's alone; a reload never touches them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include "delivery.h"

#define MOD "delivery"
#define ATTEMPTS_KEPT 8
#define COMMITS_KEPT 1024
#define BODY_SOFT_MAX (8u << 20)
#define NS 1000000000LL

typedef struct {
    int64_t at_ns;
    long status; /* HTTP status, 0: none (network error) */
    int latency_ms;
    uint64_t first, last;
    char error[120];
} attempt_t;

typedef struct st_sub_t {
    uint64_t id;
    int seen, gone;
    /* settings (from the store) */
    json_t *settings;
    char *url;
    json_t *realms, *entities; /* borrowed from settings; NULL: all */
    unsigned ops_mask;         /* 0: all */
    unsigned batch_max;
    int paused;
    unsigned char key[QBC_WHSEC_KEY_MAX], old_key[QBC_WHSEC_KEY_MAX];
    size_t key_len, old_key_len;
    int64_t old_until_ns;
    /* cursor */
    uint64_t epoch, cursor, committed;
    int64_t disabled_ns;
    char reason[QBC_SUB_REASON_MAX];
    /* the delivery under way (the thread's) */
    qbc_buf_t body;
    uint64_t b_first, b_last, b_epoch;
    unsigned b_changes;
    char msg_id[128];
    unsigned failures;
    int64_t next_mono, next_wall;
    CURL *easy;
    struct curl_slist *hdrs;
    int64_t started_mono;
    int64_t retry_after_ms;
    int jobs_out; /* ack jobs in the store */
    /* a range redelivery (qbc_delivery_redeliver_range): at range_to, jump to resume_at (memory only) */
    uint64_t range_epoch, range_to, resume_at;
    int flushed; /* qbc_delivery_stop: its last cursor is submitted */
    /* figures */
    attempt_t attempts[ATTEMPTS_KEPT];
    unsigned n_attempts;
    uint64_t batches_ok, changes_ok, attempts_failed;
} sub_t;

struct st_qbc_delivery_t {
    qbc_store_t *store; /* subscriptions and their cursors */
    qbc_store_t *feed;  /* the feed delivered: store, or cluster mode's copy of the cluster feed */
    qbc_delivery_schedule_t schedule;
    unsigned timeout_ms, max_inflight, grace_s;
    int allow_private;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t jobs_cv;
    int stop;
    CURLM *multi;
    int listener;
    int64_t started_ns; /* wall clock: the lag of changes committed before it is counted from it */
    sub_t **subs;
    size_t n_subs;
    unsigned inflight;
    size_t next_first; /* the subscription a turn starts with: turns rotate, so no one is always last */
    int jobs_out;
    /* commits seen: (the feed's last sequence after it, wall time) for lag in seconds */
    uint64_t commit_seq[COMMITS_KEPT];
    int64_t commit_ns[COMMITS_KEPT];
    unsigned commit_next, commit_n;
    /* counters */
    uint64_t n_ok, n_http_4xx, n_http_5xx, n_http_other, n_timeout, n_network, changes_delivered, disabled_total;
};

typedef struct {
    qbc_sub_ack_job_t aj;
    qbc_delivery_t *d;
    sub_t *sub;
    char reason[QBC_SUB_REASON_MAX];
} ack_t;

/* ---------------------------------------------------------------- subscriptions */

static void sub_free(sub_t *s)
{
    OPENSSL_cleanse(s->key, sizeof(s->key));
    OPENSSL_cleanse(s->old_key, sizeof(s->old_key));
    json_decref(s->settings);
    free(s->url);
    qbc_buf_free(&s->body, 0);
    free(s);
}

static sub_t *find(qbc_delivery_t *d, uint64_t id)
{
    for (size_t i = 0; i < d->n_subs; i++)
        if (d->subs[i]->id == id && !d->subs[i]->gone)
            return d->subs[i];
    return NULL;
}

static void drop_batch(sub_t *s)
{
    s->body.len = 0;
    s->b_changes = 0;
    s->b_first = s->b_last = 0;
    s->msg_id[0] = '\0';
    s->failures = 0;
}

/* the settings and secrets of one stored record into s (under d->mu) */
static int sub_load(qbc_delivery_t *d, sub_t *s, const qbc_sub_rec_t *r)
{
    json_t *o = json_loadb(r->config, r->config_len, 0, NULL);
    const char *url = json_string_value(json_object_get(o, "url"));
    if (url == NULL) {
        json_decref(o);
        return -1;
    }
    json_decref(s->settings);
    free(s->url);
    s->settings = o;
    s->url = qbc_strdup(url);
    s->realms = json_is_array(json_object_get(o, "realms")) ? json_object_get(o, "realms") : NULL;
    s->entities = json_is_array(json_object_get(o, "entities")) ? json_object_get(o, "entities") : NULL;
    s->ops_mask = 0;
    json_t *ops = json_object_get(o, "ops"), *e;
    size_t i;
    json_array_foreach(ops, i, e)
    {
        for (int op = QBC_OP_CREATE; op <= QBC_OP_SNAPSHOT; op++)
            if (json_is_string(e) && strcmp(json_string_value(e), qbc_op_name((qbc_op_t)op)) == 0)
                s->ops_mask |= 1u << op;
    }
    json_int_t bm = json_integer_value(json_object_get(o, "batch_max"));
    s->batch_max = bm >= 1 && bm <= QBC_DELIVERY_BATCH_MAX ? (unsigned)bm : QBC_DELIVERY_BATCH_DEFAULT;
    s->paused = json_is_true(json_object_get(o, "paused"));
    s->key_len = s->old_key_len = 0;
    s->old_until_ns = 0;
    if (r->secrets != NULL) {
        json_t *sec = json_loads(r->secrets, 0, NULL);
        const char *cur = json_string_value(json_object_get(sec, "current"));
        const char *prev = json_string_value(json_object_get(sec, "previous"));
        if (cur == NULL || qbc_delivery_secret_key(cur, s->key, &s->key_len) != 0)
            s->key_len = 0;
        if (prev != NULL && qbc_delivery_secret_key(prev, s->old_key, &s->old_key_len) == 0)
            s->old_until_ns = (int64_t)json_integer_value(json_object_get(sec, "previous_until"));
        json_decref(sec);
    }
    if (r->epoch != s->epoch) { /* new, or an operator moved the cursor (replay) */
        s->epoch = r->epoch;
        s->cursor = s->committed = r->cursor;
        if (s->easy == NULL)
            drop_batch(s);
        s->failures = 0;
        s->next_mono = 0;
    }
    int64_t was_disabled = s->disabled_ns;
    s->disabled_ns = r->disabled_ns;
    snprintf(s->reason, sizeof(s->reason), "%s", r->disabled_reason);
    if (was_disabled && !r->disabled_ns) { /* re-enabled: from its cursor, at once */
        s->failures = 0;
        s->next_mono = 0;
    }
    (void)d;
    return 0;
}

static int reload_one(const qbc_sub_rec_t *r, void *ctx)
{
    qbc_delivery_t *d = ctx;
    sub_t *s = find(d, r->id);
    int fresh = s == NULL;
    if (fresh) {
        s = qbc_calloc(1, sizeof(*s));
        s->id = r->id;
    }
    if (sub_load(d, s, r) != 0) {
        qbc_log(QBC_LOG_ERROR, MOD, "subscription %llu has unreadable settings; not delivering it",
                (unsigned long long)r->id);
        if (fresh)
            sub_free(s);
        else
            s->seen = 1;
        return 0;
    }
    s->seen = 1;
    if (r->secrets == NULL || s->key_len == 0)
        qbc_log(QBC_LOG_ERROR, MOD,
                "subscription %llu: its secret does not open (another master key?): nothing is delivered to it",
                (unsigned long long)r->id);
    if (fresh) {
        d->subs = qbc_realloc(d->subs, (d->n_subs + 1) * sizeof(*d->subs));
        d->subs[d->n_subs++] = s;
    }
    return 0;
}

/* frees subscriptions that are gone and hold nothing of the thread's or the store's */
static void reap(qbc_delivery_t *d)
{
    size_t k = 0;
    for (size_t i = 0; i < d->n_subs; i++) {
        sub_t *s = d->subs[i];
        if (s->gone && s->easy == NULL && s->jobs_out == 0)
            sub_free(s);
        else
            d->subs[k++] = s;
    }
    d->n_subs = k;
}

int qbc_delivery_reload(qbc_delivery_t *d)
{
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n_subs; i++)
        d->subs[i]->seen = 0;
    int rc = qbc_store_sub_scan(d->store, 0, reload_one, d);
    if (rc == 0)
        for (size_t i = 0; i < d->n_subs; i++)
            if (!d->subs[i]->seen)
                d->subs[i]->gone = 1;
    reap(d);
    pthread_mutex_unlock(&d->mu);
    if (d->multi != NULL)
        curl_multi_wakeup(d->multi);
    return rc == 0 ? 0 : QBC_ESTORE;
}

/* ---------------------------------------------------------------- acks */

static void on_ack(qbc_store_job_t *j)
{
    ack_t *a = (ack_t *)j;
    qbc_delivery_t *d = a->d;
    pthread_mutex_lock(&d->mu);
    if (j->result == 0 && !a->aj.stale && a->aj.cursor > a->sub->committed)
        a->sub->committed = a->aj.cursor;
    if (j->result != 0)
        qbc_log(QBC_LOG_WARN, MOD, "storing the cursor of subscription %llu failed: %s (it is delivered again)",
                (unsigned long long)a->sub->id, qbc_strerror(j->result));
    a->sub->jobs_out--;
    d->jobs_out--;
    pthread_cond_broadcast(&d->jobs_cv);
    pthread_mutex_unlock(&d->mu);
    if (d->multi != NULL)
        curl_multi_wakeup(d->multi);
    free(a);
}

/* submits the cursor (and a disable) unless an ack of it is under way; under d->mu */
static void ack(qbc_delivery_t *d, sub_t *s, const char *disable)
{
    if (disable == NULL && (s->cursor <= s->committed || s->jobs_out > 0))
        return;
    ack_t *a = qbc_calloc(1, sizeof(*a));
    a->d = d;
    a->sub = s;
    a->aj.job.on_commit = on_ack;
    a->aj.id = s->id;
    a->aj.epoch = s->epoch;
    a->aj.cursor = s->cursor;
    if (disable != NULL) {
        snprintf(a->reason, sizeof(a->reason), "%s", disable);
        a->aj.disabled_reason = a->reason;
    }
    if (qbc_store_sub_ack(d->store, &a->aj) != 0) {
        free(a);
        return;
    }
    s->jobs_out++;
    d->jobs_out++;
}

static void disable(qbc_delivery_t *d, sub_t *s, const char *why)
{
    s->disabled_ns = qbc_now_ns();
    snprintf(s->reason, sizeof(s->reason), "%s", why);
    d->disabled_total++;
    qbc_log(QBC_LOG_WARN, MOD, "subscription %llu disabled at sequence %llu: %s", (unsigned long long)s->id,
            (unsigned long long)s->cursor, why);
    drop_batch(s);
    ack(d, s, why);
}

/* ---------------------------------------------------------------- batches */

typedef struct {
    sub_t *s;
    qbc_buf_t *b;
    unsigned n;
    uint64_t last;  /* the last record taken (delivered or filtered out) */
    uint64_t bound; /* take nothing past this sequence (0: no bound) */
} scan_t;

static int in_list(const json_t *list, const char *v)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        if (strcmp(json_string_value(e), v) == 0)
            return 1;
    }
    return 0;
}

/* the op of a stored change: the first ,"op":" (any earlier quote in the record is escaped) */
static unsigned op_of(const char *json, size_t len)
{
    static const char key[] = ",\"op\":\"";
    const char *p = memmem(json, len, key, sizeof(key) - 1);
    if (p == NULL)
        return 0;
    p += sizeof(key) - 1;
    const char *q = memchr(p, '"', (size_t)(json + len - p));
    for (int op = QBC_OP_CREATE; q != NULL && op <= QBC_OP_SNAPSHOT; op++) {
        const char *name = qbc_op_name((qbc_op_t)op);
        if (strlen(name) == (size_t)(q - p) && memcmp(name, p, (size_t)(q - p)) == 0)
            return (unsigned)op;
    }
    return 0;
}

static int add_change(const qbc_feed_rec_t *rec, void *ctx)
{
    scan_t *sc = ctx;
    sub_t *s = sc->s;
    if (sc->bound != 0 && rec->seq > sc->bound)
        return 1; /* not taken: the cursor does not move past it */
    sc->last = rec->seq;
    if ((s->realms != NULL && !in_list(s->realms, rec->realm)) ||
        (s->entities != NULL && !in_list(s->entities, rec->entity)) ||
        (s->ops_mask != 0 && !(s->ops_mask & (1u << op_of(rec->json, rec->json_len)))))
        return 0;
    if (sc->n > 0)
        qbc_buf_append(sc->b, ",", 1);
    qbc_buf_append(sc->b, rec->json, rec->json_len); /* the stored bytes: numbers stay exact */
    if (sc->n == 0)
        s->b_first = rec->seq;
    sc->n++;
    return sc->n >= s->batch_max || sc->b->len >= BODY_SOFT_MAX;
}

/*
 * the next batch after the cursor (under d->mu). 1: a batch to deliver; 0: nothing to
 * deliver (the cursor may have moved past filtered-out records)
 */
static int build_batch(qbc_delivery_t *d, sub_t *s)
{
    char ts[QBC_TIME_BUFSZ];
    qbc_buf_t *b = &s->body;
    b->len = 0;
    int ranged = s->range_epoch == s->epoch && s->resume_at > s->range_to;
    if (ranged && s->cursor >= s->range_to) { /* the range is delivered again: back where it was */
        qbc_log(QBC_LOG_INFO, MOD, "subscription %llu redelivered up to %llu; going on after %llu",
                (unsigned long long)s->id, (unsigned long long)s->range_to, (unsigned long long)s->resume_at);
        s->cursor = s->resume_at;
        s->range_epoch = 0;
        ack(d, s, NULL);
        return 0;
    }
    qbc_buf_printf(b, "{\"type\":\"qbcdc.changes\",\"timestamp\":\"%s\",\"data\":{\"changes\":[",
                   qbc_time_format(qbc_now_ns(), ts));
    scan_t sc = {s, b, 0, s->cursor, ranged ? s->range_to : 0};
    int rc = qbc_store_feed_scan(d->feed, s->cursor, 10000, NULL, NULL, add_change, &sc, NULL);
    uint64_t last = sc.last;
    if (rc == QBC_EGONE) {
        uint64_t pruned = qbc_store_feed_pruned(d->feed);
        qbc_log(QBC_LOG_ERROR, MOD,
                "subscription %llu: feed records after %llu were pruned before they were delivered "
                "(QBCDC_FEED_RETENTION); going on from %llu",
                (unsigned long long)s->id, (unsigned long long)s->cursor, (unsigned long long)pruned);
        s->cursor = pruned;
        ack(d, s, NULL);
        b->len = 0;
        return 0;
    }
    if (rc != 0 || sc.n == 0) {
        if (rc == 0 && last > s->cursor) { /* nothing passed the filters: past them */
            s->cursor = last;
            ack(d, s, NULL);
        } else if (rc == 0 && ranged) { /* nothing left of the range (the feed has no gaps: not expected) */
            s->cursor = s->resume_at > s->cursor ? s->resume_at : s->cursor;
            s->range_epoch = 0;
            ack(d, s, NULL);
        }
        b->len = 0;
        return 0;
    }
    s->b_last = last;
    s->b_changes = sc.n;
    s->b_epoch = s->epoch;
    char feed_id[QBC_FEED_ID_LEN + 1];
    qbc_store_feed_id_copy(d->feed, feed_id); /* cluster mode's copy may change its id */
    qbc_buf_printf(b, "],\"feed_id\":\"%s\"}}", feed_id);
    /* stable across retries, and across restarts for the same range */
    snprintf(s->msg_id, sizeof(s->msg_id), "msg_%.12s_%llu_%llu_%llu_%llu", feed_id, (unsigned long long)s->id,
             (unsigned long long)s->epoch, (unsigned long long)s->b_first, (unsigned long long)s->b_last);
    s->failures = 0;
    return 1;
}

/* ---------------------------------------------------------------- transfers */

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    sub_t *s = ud;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0)
        s->retry_after_ms = qbc_delivery_retry_after(p + sizeof(name) - 1, len - (sizeof(name) - 1));
    return len;
}

static curl_socket_t open_public(void *ctx, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)ctx, (void)purpose;
    if (qbc_delivery_addr_private(&a->addr))
        return CURL_SOCKET_BAD; /* CURLE_COULDNT_CONNECT: the name resolved to a private address */
    return socket(a->family, a->socktype, a->protocol);
}

static void start(qbc_delivery_t *d, sub_t *s)
{
    char h[96 + 2 * QBC_WEBHOOK_SIG_BUFSZ], sig[QBC_WEBHOOK_SIG_BUFSZ];
    int64_t now = qbc_now_ns(), ts = now / NS;
    CURL *e = curl_easy_init();
    if (e == NULL)
        return;
    struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");
    l = curl_slist_append(l, "Expect:");
    snprintf(h, sizeof(h), "webhook-id: %s", s->msg_id);
    l = curl_slist_append(l, h);
    snprintf(h, sizeof(h), "webhook-timestamp: %lld", (long long)ts);
    l = curl_slist_append(l, h);
    qbc_delivery_sign(s->key, s->key_len, s->msg_id, ts, s->body.data, s->body.len, sig);
    int n = snprintf(h, sizeof(h), "webhook-signature: %s", sig);
    if (s->old_key_len > 0 && now < s->old_until_ns) { /* a rotation's grace: both */
        qbc_delivery_sign(s->old_key, s->old_key_len, s->msg_id, ts, s->body.data, s->body.len, sig);
        snprintf(h + n, sizeof(h) - (size_t)n, " %s", sig);
    }
    l = curl_slist_append(l, h);
    curl_easy_setopt(e, CURLOPT_URL, s->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, s->body.data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body.len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "qbcdc/" QBCDC_VERSION);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)d->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(d->timeout_ms < 10000 ? d->timeout_ms : 10000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    if (!d->allow_private)
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_public);
    s->retry_after_ms = 0;
    s->easy = e;
    s->hdrs = l;
    s->started_mono = qbc_mono_ns();
    d->inflight++;
    curl_multi_add_handle(d->multi, e);
}

static void record(sub_t *s, long status, int latency_ms, const char *error)
{
    memmove(&s->attempts[1], &s->attempts[0], sizeof(attempt_t) * (ATTEMPTS_KEPT - 1));
    attempt_t *a = &s->attempts[0];
    a->at_ns = qbc_now_ns();
    a->status = status;
    a->latency_ms = latency_ms;
    a->first = s->b_first;
    a->last = s->b_last;
    snprintf(a->error, sizeof(a->error), "%.119s", error != NULL ? error : "");
    if (s->n_attempts < ATTEMPTS_KEPT)
        s->n_attempts++;
}

static double rnd(void)
{
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        return 0.5;
    return (double)r / 4294967296.0;
}

/* a transfer's end (under d->mu) */
static void finished(qbc_delivery_t *d, sub_t *s, CURLcode res)
{
    long status = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    int latency = (int)((qbc_mono_ns() - s->started_mono) / 1000000);
    d->inflight--;
    if (s->gone || s->b_epoch != s->epoch) { /* deleted, or replayed meanwhile: the result means nothing */
        drop_batch(s);
        return;
    }
    char why[160];
    if (res == CURLE_OK && status >= 200 && status < 300) {
        record(s, status, latency, NULL);
        d->n_ok++;
        d->changes_delivered += s->b_changes;
        s->batches_ok++;
        s->changes_ok += s->b_changes;
        s->cursor = s->b_last;
        drop_batch(s);
        s->next_mono = 0;
        ack(d, s, NULL);
        return;
    }
    s->attempts_failed++;
    if (res != CURLE_OK) {
        snprintf(why, sizeof(why), "%s", curl_easy_strerror(res));
        if (res == CURLE_OPERATION_TIMEDOUT)
            d->n_timeout++;
        else
            d->n_network++;
        status = 0;
    } else {
        snprintf(why, sizeof(why), "HTTP %ld", status);
        if (status >= 500)
            d->n_http_5xx++;
        else if (status >= 400)
            d->n_http_4xx++;
        else /* 1xx, 3xx (redirects are not followed) */
            d->n_http_other++;
    }
    record(s, status, latency, why);
    s->failures++;
    if (status == 410) {
        disable(d, s, "the receiver answered 410 Gone");
        return;
    }
    int64_t ra = status == 429 || status == 503 ? s->retry_after_ms : 0;
    int64_t delay = qbc_delivery_schedule_next(&d->schedule, s->failures, ra, rnd());
    if (delay < 0) {
        char reason[QBC_SUB_REASON_MAX];
        snprintf(reason, sizeof(reason), "gave up after %u attempts of sequences %llu-%llu; the last: %s", s->failures,
                 (unsigned long long)s->b_first, (unsigned long long)s->b_last, why);
        disable(d, s, reason);
        return;
    }
    s->next_mono = qbc_mono_ns() + delay * 1000000;
    s->next_wall = qbc_now_ns() + delay * 1000000;
}

static int eligible(const sub_t *s)
{
    return !s->gone && !s->paused && s->disabled_ns == 0 && s->easy == NULL && s->key_len > 0;
}

/* starts what is due; returns how long the thread may sleep (ms) */
static long schedule_turn(qbc_delivery_t *d)
{
    long wait_ms = 1000;
    int64_t now = qbc_mono_ns();
    uint64_t head = qbc_store_feed_last(d->feed);
    pthread_mutex_lock(&d->mu);
    size_t n = d->n_subs, first = n > 0 ? d->next_first++ % n : 0;
    for (size_t i = 0; i < n; i++) /* a cursor that moved while its last ack was in the store */
        if (!d->subs[i]->gone)
            ack(d, d->subs[i], NULL);
    for (size_t k = 0; k < n && d->inflight < d->max_inflight; k++) {
        sub_t *s = d->subs[(first + k) % n];
        if (!eligible(s))
            continue;
        if (s->body.len == 0) {
            if (s->cursor >= head || !build_batch(d, s))
                continue;
            if (d->schedule.delay_ms[0] > 0)
                s->next_mono = now + d->schedule.delay_ms[0] * 1000000;
        }
        if (s->next_mono > now) {
            long ms = (long)((s->next_mono - now) / 1000000) + 1;
            wait_ms = ms < wait_ms ? ms : wait_ms;
            continue;
        }
        start(d, s);
    }
    reap(d);
    pthread_mutex_unlock(&d->mu);
    return wait_ms;
}

static void take_results(qbc_delivery_t *d)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(d->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode res = m->data.result;
        sub_t *s = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&s);
        curl_multi_remove_handle(d->multi, e);
        pthread_mutex_lock(&d->mu);
        finished(d, s, res);
        s->easy = NULL;
        curl_slist_free_all(s->hdrs);
        s->hdrs = NULL;
        pthread_mutex_unlock(&d->mu);
        curl_easy_cleanup(e);
    }
}

static void *thread_main(void *arg)
{
    qbc_delivery_t *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        int stop = d->stop;
        pthread_mutex_unlock(&d->mu);
        if (stop)
            break;
        long wait_ms = schedule_turn(d);
        int running = 0;
        curl_multi_perform(d->multi, &running);
        take_results(d);
        curl_multi_poll(d->multi, NULL, 0, (int)wait_ms, NULL);
        curl_multi_perform(d->multi, &running);
        take_results(d);
    }
    /* abandoned in flight: delivered again after a restart */
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n_subs; i++) {
        sub_t *s = d->subs[i];
        if (s->easy != NULL) {
            curl_multi_remove_handle(d->multi, s->easy);
            curl_easy_cleanup(s->easy);
            curl_slist_free_all(s->hdrs);
            s->easy = NULL;
            s->hdrs = NULL;
            d->inflight--;
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void on_commit_note(void *ctx, const qbc_commit_note_t *note)
{
    qbc_delivery_t *d = ctx;
    if (note->feed_appended == 0)
        return;
    pthread_mutex_lock(&d->mu);
    d->commit_seq[d->commit_next] = note->last_feed_seq;
    d->commit_ns[d->commit_next] = qbc_now_ns();
    d->commit_next = (d->commit_next + 1) % COMMITS_KEPT;
    if (d->commit_n < COMMITS_KEPT)
        d->commit_n++;
    pthread_mutex_unlock(&d->mu);
    curl_multi_wakeup(d->multi);
}

/* ---------------------------------------------------------------- public */

int qbc_delivery_start(const qbc_delivery_config_t *cfg, qbc_store_t *store, qbc_delivery_t **out)
{
    *out = NULL;
    qbc_delivery_t *d = qbc_calloc(1, sizeof(*d));
    d->store = store;
    d->feed = cfg->feed_store != NULL ? cfg->feed_store : store;
    if (qbc_delivery_schedule_parse(cfg->schedule != NULL ? cfg->schedule : QBC_DELIVERY_SCHEDULE_DEFAULT,
                                    &d->schedule) != 0) {
        free(d);
        return QBC_EINVAL;
    }
    d->allow_private = cfg->allow_private;
    d->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 15000;
    d->max_inflight = cfg->max_inflight ? cfg->max_inflight : 64;
    d->grace_s = cfg->secret_grace_s ? cfg->secret_grace_s : 86400;
    d->listener = -1;
    d->started_ns = qbc_now_ns();
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->jobs_cv, NULL);
    int rc = qbc_delivery_reload(d);
    if (rc != 0) {
        qbc_delivery_stop(d);
        return rc;
    }
    d->multi = curl_multi_init();
    if (d->multi == NULL) {
        qbc_delivery_stop(d);
        return -ENOMEM;
    }
    curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)d->max_inflight);
    if ((d->listener = qbc_store_add_listener(d->feed, on_commit_note, d)) < 0)
        qbc_log(QBC_LOG_WARN, MOD, "no store listener left: deliveries start within a second of a commit, not at once");
    if ((rc = pthread_create(&d->thread, NULL, thread_main, d)) != 0) {
        qbc_delivery_stop(d);
        return -rc;
    }
    d->started = 1;
    *out = d;
    return 0;
}

void qbc_delivery_stop(qbc_delivery_t *d)
{
    if (d == NULL)
        return;
    if (d->listener >= 0)
        qbc_store_remove_listener(d->feed, d->listener);
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_mutex_unlock(&d->mu);
    if (d->started) {
        curl_multi_wakeup(d->multi);
        pthread_join(d->thread, NULL);
    }
    /* every cursor as far as it got (once each), then the store's callbacks into d */
    pthread_mutex_lock(&d->mu);
    for (;;) {
        int waiting = 0;
        for (size_t i = 0; i < d->n_subs; i++) {
            sub_t *s = d->subs[i];
            if (s->gone || s->flushed || s->cursor <= s->committed)
                continue;
            if (s->jobs_out == 0) {
                ack(d, s, NULL);
                s->flushed = 1;
            } else {
                waiting = 1;
            }
        }
        if (!waiting && d->jobs_out == 0)
            break;
        pthread_cond_wait(&d->jobs_cv, &d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    if (d->multi != NULL)
        curl_multi_cleanup(d->multi);
    for (size_t i = 0; i < d->n_subs; i++)
        sub_free(d->subs[i]);
    free(d->subs);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->jobs_cv);
    free(d);
}

int qbc_delivery_redeliver_range(qbc_delivery_t *d, uint64_t id, uint64_t epoch, uint64_t to, uint64_t resume_at)
{
    int rc = QBC_ENOTFOUND;
    pthread_mutex_lock(&d->mu);
    sub_t *s = find(d, id);
    if (s != NULL && epoch >= s->epoch) { /* (the epoch it applies to may not be loaded yet) */
        s->range_epoch = epoch;
        s->range_to = to;
        s->resume_at = resume_at;
        rc = 0;
    }
    pthread_mutex_unlock(&d->mu);
    if (d->multi != NULL)
        curl_multi_wakeup(d->multi);
    return rc;
}

int qbc_delivery_allow_private(const qbc_delivery_t *d)
{
    return d->allow_private;
}

unsigned qbc_delivery_secret_grace(const qbc_delivery_t *d)
{
    return d->grace_s;
}

/* ---------------------------------------------------------------- figures */

static json_t *time_or_null(int64_t ns)
{
    char ts[QBC_TIME_BUFSZ];
    return ns ? json_string(qbc_time_format(ns, ts)) : json_null();
}

static const char *state_of(const sub_t *s)
{
    return s->disabled_ns ? "disabled" : s->paused ? "paused" : "active";
}

/* when the oldest change after cursor was committed (as this process saw it; 0: not behind) */
static int64_t behind_since(const qbc_delivery_t *d, uint64_t cursor, uint64_t head)
{
    if (cursor >= head)
        return 0;
    int64_t t = 0;
    unsigned k;
    for (k = 0; k < d->commit_n; k++) { /* newest to oldest */
        unsigned i = (d->commit_next + COMMITS_KEPT - 1 - k) % COMMITS_KEPT;
        if (d->commit_seq[i] <= cursor)
            return t;
        t = d->commit_ns[i];
    }
    /* older than every commit remembered: before this process started, or before the oldest kept */
    return d->commit_n < COMMITS_KEPT || t == 0 ? d->started_ns : t;
}

static json_t *describe(qbc_delivery_t *d, const sub_t *s, uint64_t head)
{
    json_t *o = json_deep_copy(s->settings);
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)s->id);
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "state", json_string(state_of(s)));
    json_object_set_new(o, "disabled_reason", s->disabled_ns ? json_string(s->reason) : json_null());
    json_object_set_new(o, "disabled_at", time_or_null(s->disabled_ns));
    json_object_set_new(o, "cursor", json_integer((json_int_t)s->cursor));
    json_object_set_new(o, "cursor_committed", json_integer((json_int_t)s->committed));
    json_object_set_new(o, "head", json_integer((json_int_t)head));
    int64_t since = behind_since(d, s->cursor, head), now = qbc_now_ns();
    json_object_set_new(o, "lag",
                        json_pack("{s:I,s:f}", "sequences", (json_int_t)(head > s->cursor ? head - s->cursor : 0),
                                  "seconds", since ? (double)(now - since) / 1e9 : 0.0));
    json_object_set_new(o, "in_flight", json_boolean(s->easy != NULL));
    json_object_set_new(o, "consecutive_failures", json_integer(s->failures));
    json_object_set_new(o, "next_retry_at",
                        s->failures > 0 && s->easy == NULL && !s->disabled_ns ? time_or_null(s->next_wall)
                                                                              : json_null());
    json_object_set_new(o, "pending_webhook_id", s->msg_id[0] ? json_string(s->msg_id) : json_null());
    json_object_set_new(
        o, "redelivering",
        s->range_epoch == s->epoch && s->resume_at > s->range_to
            ? json_pack("{s:I,s:I}", "to", (json_int_t)s->range_to, "resume_after", (json_int_t)s->resume_at)
            : json_null());
    json_t *at = json_array();
    for (unsigned i = 0; i < s->n_attempts; i++) {
        const attempt_t *a = &s->attempts[i];
        json_t *x = json_pack("{s:o,s:o,s:i,s:I,s:I}", "at", time_or_null(a->at_ns), "status",
                              a->status ? json_integer(a->status) : json_null(), "latency_ms", a->latency_ms,
                              "first_seq", (json_int_t)a->first, "last_seq", (json_int_t)a->last);
        json_object_set_new(x, "error", a->error[0] ? json_string(a->error) : json_null());
        json_array_append_new(at, x);
    }
    json_object_set_new(o, "attempts", at);
    json_object_set_new(o, "delivered",
                        json_pack("{s:I,s:I,s:I}", "batches", (json_int_t)s->batches_ok, "changes",
                                  (json_int_t)s->changes_ok, "failed_attempts", (json_int_t)s->attempts_failed));
    return o;
}

json_t *qbc_delivery_describe(qbc_delivery_t *d, uint64_t id)
{
    uint64_t head = qbc_store_feed_last(d->feed);
    pthread_mutex_lock(&d->mu);
    sub_t *s = find(d, id);
    json_t *o = s != NULL ? describe(d, s, head) : NULL;
    pthread_mutex_unlock(&d->mu);
    return o;
}

json_t *qbc_delivery_describe_all(qbc_delivery_t *d)
{
    uint64_t head = qbc_store_feed_last(d->feed);
    json_t *a = json_array();
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n_subs; i++)
        if (!d->subs[i]->gone)
            json_array_append_new(a, describe(d, d->subs[i], head));
    pthread_mutex_unlock(&d->mu);
    return a;
}

void qbc_delivery_metrics(qbc_delivery_t *d, qbc_buf_t *t)
{
    uint64_t head = qbc_store_feed_last(d->feed);
    int64_t now = qbc_now_ns();
    pthread_mutex_lock(&d->mu);
    qbc_buf_printf(t, "# HELP qbcdc_delivery_attempts_total Push delivery attempts by result.\n"
                      "# TYPE qbcdc_delivery_attempts_total counter\n");
    const char *names[] = {"ok", "http_4xx", "http_5xx", "http_other", "timeout", "network"};
    uint64_t vals[] = {d->n_ok, d->n_http_4xx, d->n_http_5xx, d->n_http_other, d->n_timeout, d->n_network};
    for (int i = 0; i < 6; i++)
        qbc_buf_printf(t, "qbcdc_delivery_attempts_total{result=\"%s\"} %llu\n", names[i], (unsigned long long)vals[i]);
    qbc_buf_printf(t,
                   "# HELP qbcdc_delivery_changes_total Changes delivered (acknowledged with a 2xx) to subscribers.\n"
                   "# TYPE qbcdc_delivery_changes_total counter\nqbcdc_delivery_changes_total %llu\n",
                   (unsigned long long)d->changes_delivered);
    qbc_buf_printf(t,
                   "# HELP qbcdc_delivery_disabled_total Subscriptions disabled (schedule exhausted, or 410).\n"
                   "# TYPE qbcdc_delivery_disabled_total counter\nqbcdc_delivery_disabled_total %llu\n",
                   (unsigned long long)d->disabled_total);
    qbc_buf_printf(t,
                   "# HELP qbcdc_delivery_inflight Deliveries in flight.\n"
                   "# TYPE qbcdc_delivery_inflight gauge\nqbcdc_delivery_inflight %u\n",
                   d->inflight);
    unsigned by_state[3] = {0};
    for (size_t i = 0; i < d->n_subs; i++)
        if (!d->subs[i]->gone)
            by_state[d->subs[i]->disabled_ns ? 2 : d->subs[i]->paused ? 1 : 0]++;
    qbc_buf_printf(t,
                   "# HELP qbcdc_delivery_subscriptions Push subscriptions by state.\n"
                   "# TYPE qbcdc_delivery_subscriptions gauge\n"
                   "qbcdc_delivery_subscriptions{state=\"active\"} %u\nqbcdc_delivery_subscriptions{state=\"paused\"} "
                   "%u\nqbcdc_delivery_subscriptions{state=\"disabled\"} %u\n",
                   by_state[0], by_state[1], by_state[2]);
    qbc_buf_printf(t, "# HELP qbcdc_delivery_lag_sequences Feed records after a subscription's cursor.\n"
                      "# TYPE qbcdc_delivery_lag_sequences gauge\n");
    for (size_t i = 0; i < d->n_subs; i++)
        if (!d->subs[i]->gone)
            qbc_buf_printf(t, "qbcdc_delivery_lag_sequences{subscription=\"%llu\"} %llu\n",
                           (unsigned long long)d->subs[i]->id,
                           (unsigned long long)(head > d->subs[i]->cursor ? head - d->subs[i]->cursor : 0));
    qbc_buf_printf(t, "# HELP qbcdc_delivery_lag_seconds Age of the oldest change a subscription has not had.\n"
                      "# TYPE qbcdc_delivery_lag_seconds gauge\n");
    for (size_t i = 0; i < d->n_subs; i++)
        if (!d->subs[i]->gone) {
            int64_t since = behind_since(d, d->subs[i]->cursor, head);
            qbc_buf_printf(t, "qbcdc_delivery_lag_seconds{subscription=\"%llu\"} %.3f\n",
                           (unsigned long long)d->subs[i]->id, since ? (double)(now - since) / 1e9 : 0.0);
        }
    pthread_mutex_unlock(&d->mu);
}
