/*
 * webhook_sender.c — builds webhook bodies and delivers them the way Intuit does.
 *
 * Bodies (qbo-facts §1): classic {"eventNotifications":[{"realmId","dataChangeEvent":
 * {"entities":[{name,id,operation,lastUpdated[,deletedId]}]}}]}, one notification per
 * realm (§1.1), lastUpdated in the official sample's "-0700" form; CloudEvents: a JSON
 * array of {specversion,id,source,type,datacontenttype,time,intuitentityid,
 * intuitaccountid,data} (§1.2), type "qbo.<entity>.<created|updated|deleted|merged|
 * void>.v1", data {} except merges ({"deletedid":"<id>"}, §1.2 [S4]).
 *
 * Delivery runs on its own thread with a libcurl multi handle driven by
 * curl_multi_poll (STYLE.md 3.2, option A). Each POST carries intuit-signature =
 * base64(HMAC-SHA256(verifier token, raw body)) (§1.3) and the other headers of the
 * sample delivery (§1.1). Anything but a 200 within the timeout is retried on
 * Intuit's schedule, 10 s, 20 s, 30 s, 5 min, 20 min, 2 h, 4 h, 6 h, then every 6 h
 * (§1.5), multiplied by retry_scale so tests can run it in milliseconds. A retry
 * resends the identical body (same CloudEvents ids, §1.2 "Retry dedup").
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <curl/curl.h>
#include "common.h"
#include "ingress.h"
#include "sim.h"

/* ============================== bodies ============================== */

/* one implementation of intuit-signature for both sides: the ingress's */
void sim_sign(const char *token, const void *body, size_t len, char out[48])
{
    qbc_signature_compute(token, strlen(token), body, len, out);
    if (out[0] == '\0')
        qbc_fatal("HMAC failed");
}

static void uuid4(sim_rng_t *rng, char out[40])
{
    uint64_t a = sim_rng_next(rng), b = sim_rng_next(rng);
    a = (a & ~0xf000ULL) | 0x4000ULL;                        /* version 4 */
    b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL; /* variant 10 */
    snprintf(out, 40, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff,
             (unsigned)a & 0xffff, (unsigned)(b >> 48), (unsigned long long)(b & 0xffffffffffffULL));
}

static const char *ce_verb(int op, const char *void_verb)
{
    switch (op) {
    case SIM_OP_CREATE:
        return "created";
    case SIM_OP_UPDATE:
        return "updated";
    case SIM_OP_DELETE:
        return "deleted";
    case SIM_OP_MERGE:
        return "merged";
    default:
        return void_verb;
    }
}

char *sim_webhook_body(const sim_model_t *m, const sim_change_t *c, size_t n, int format, sim_rng_t *rng,
                       const char *ce_source, const char *void_verb)
{
    char buf[48], id[16];
    json_t *root;
    if (format == SIM_FMT_CLOUDEVENTS) {
        root = json_array();
        for (size_t i = 0; i < n; i++) {
            char type[64], lower[32];
            const char *name = sim_etype_names[c[i].etype];
            size_t k;
            for (k = 0; name[k] && k < sizeof(lower) - 1; k++)
                lower[k] = (char)tolower((unsigned char)name[k]);
            lower[k] = '\0';
            snprintf(type, sizeof(type), "qbo.%s.%s.v1", lower, ce_verb(c[i].op, void_verb));
            json_t *ev = json_object();
            json_object_set_new(ev, "specversion", json_string("1.0"));
            uuid4(rng, buf);
            json_object_set_new(ev, "id", json_string(buf));
            json_object_set_new(ev, "source", json_string(ce_source));
            json_object_set_new(ev, "type", json_string(type));
            json_object_set_new(ev, "datacontenttype", json_string("application/json"));
            json_object_set_new(ev, "time", json_string(sim_time_utc_ns(c[i].at_ns, buf)));
            snprintf(id, sizeof(id), "%u", c[i].id);
            json_object_set_new(ev, "intuitentityid", json_string(id));
            json_object_set_new(ev, "intuitaccountid", json_string(m->realms[c[i].realm].id));
            json_t *data = json_object();
            if (c[i].op == SIM_OP_MERGE) {
                snprintf(id, sizeof(id), "%u", c[i].deleted_id);
                json_object_set_new(data, "deletedid", json_string(id));
            }
            json_object_set_new(ev, "data", data);
            json_array_append_new(root, ev);
        }
    } else {
        json_t *notes = json_array();
        /* one eventNotification per realm, in order of first appearance (§1.1) */
        for (size_t i = 0; i < n; i++) {
            size_t j;
            for (j = 0; j < i; j++)
                if (c[j].realm == c[i].realm)
                    break;
            if (j < i)
                continue;
            json_t *ents = json_array();
            for (j = i; j < n; j++) {
                if (c[j].realm != c[i].realm)
                    continue;
                json_t *e = json_object();
                json_object_set_new(e, "name", json_string(sim_etype_names[c[j].etype]));
                snprintf(id, sizeof(id), "%u", c[j].id);
                json_object_set_new(e, "id", json_string(id));
                json_object_set_new(e, "operation", json_string(sim_op_names[c[j].op]));
                json_object_set_new(e, "lastUpdated", json_string(sim_time_pacific(c[j].at_ns, 0, 0, buf)));
                if (c[j].op == SIM_OP_MERGE) {
                    snprintf(id, sizeof(id), "%u", c[j].deleted_id);
                    json_object_set_new(e, "deletedId", json_string(id));
                }
                json_array_append_new(ents, e);
            }
            json_t *dce = json_object();
            json_object_set_new(dce, "entities", ents);
            json_t *note = json_object();
            json_object_set_new(note, "realmId", json_string(m->realms[c[i].realm].id));
            json_object_set_new(note, "dataChangeEvent", dce);
            json_array_append_new(notes, note);
        }
        root = json_object();
        json_object_set_new(root, "eventNotifications", notes);
    }
    char *s = sim_json_dump(root);
    json_decref(root);
    return s;
}

int64_t sim_retry_delay_ms(int failed_attempts)
{
    static const int64_t sched[] = {10000, 20000, 30000, 300000, 1200000, 7200000, 14400000, 21600000};
    if (failed_attempts < 1)
        failed_attempts = 1;
    size_t i = (size_t)failed_attempts - 1;
    if (i >= sizeof(sched) / sizeof(sched[0]))
        i = sizeof(sched) / sizeof(sched[0]) - 1;
    return sched[i];
}

/* ============================== delivery ============================== */

typedef struct st_job_t {
    struct st_job_t *next;
    char *body;
    size_t len;
    char ctype[64];
    int64_t due_ms; /* monotonic */
    int attempts;
    uint64_t tag;
    CURL *easy;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
} job_t;

struct st_sim_sender_t {
    sim_sender_conf_t conf;
    char *url, *token;
    char **urls; /* url split at commas: attempts go round-robin over them, as through a load balancer */
    size_t n_urls, next_url;
    sim_sender_first_cb cb;
    void *cb_ctx;
    pthread_t th;
    pthread_mutex_t mu;
    job_t *inbox, **inbox_tail;
    int stop;
    CURLM *multi;
    job_t *waiting; /* sorted by due_ms */
    job_t *running; /* attached to the multi handle */
    size_t inflight;
    sim_wh_stats_t st; /* under mu */
};

static int64_t mono_ms(void)
{
    return qbc_mono_ns() / 1000000;
}

static void free_job(job_t *j)
{
    if (j->easy)
        curl_easy_cleanup(j->easy);
    curl_slist_free_all(j->hdrs);
    free(j->body);
    free(j);
}

static void insert_waiting(sim_sender_t *s, job_t *j)
{
    job_t **pp = &s->waiting;
    while (*pp && (*pp)->due_ms <= j->due_ms)
        pp = &(*pp)->next;
    j->next = *pp;
    *pp = j;
}

static size_t discard_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

static void start_job(sim_sender_t *s, job_t *j)
{
    if (!j->hdrs) {
        char line[160], sig[48], tbuf[40];
        sim_sign(s->token, j->body, j->len, sig);
        snprintf(line, sizeof(line), "intuit-signature: %s", sig);
        j->hdrs = curl_slist_append(j->hdrs, line);
        snprintf(line, sizeof(line), "Content-Type: %s", j->ctype);
        j->hdrs = curl_slist_append(j->hdrs, line);
        snprintf(line, sizeof(line), "intuit-created-time: %s", sim_time_pacific(qbc_now_ns(), 0, 0, tbuf));
        j->hdrs = curl_slist_append(j->hdrs, line);
        snprintf(line, sizeof(line), "intuit-t-id: %016llx", (unsigned long long)(j->tag * 0x9e3779b97f4a7c15ULL));
        j->hdrs = curl_slist_append(j->hdrs, line);
        j->hdrs = curl_slist_append(j->hdrs, "intuit-notification-schema-version: 0.1");
        j->hdrs = curl_slist_append(j->hdrs, "User-Agent: intuit_notification_server/0.1");
        j->hdrs = curl_slist_append(j->hdrs, "Expect:");
    }
    if (!j->easy) {
        j->easy = curl_easy_init();
        if (!j->easy)
            qbc_fatal("curl_easy_init failed");
        curl_easy_setopt(j->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->body);
        curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE, (long)j->len);
        curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->hdrs);
        curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
        curl_easy_setopt(j->easy, CURLOPT_ERRORBUFFER, j->errbuf);
        curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, (long)s->conf.timeout_ms);
        curl_easy_setopt(j->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)s->conf.timeout_ms);
        curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
        if (s->conf.pin != NULL) {
            curl_easy_setopt(j->easy, CURLOPT_PINNEDPUBLICKEY, s->conf.pin);
            curl_easy_setopt(j->easy, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(j->easy, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, discard_cb);
    }
    curl_easy_setopt(j->easy, CURLOPT_URL, s->urls[s->next_url++ % s->n_urls]);
    j->errbuf[0] = '\0';
    j->attempts++;
    pthread_mutex_lock(&s->mu);
    s->st.posts++;
    if (j->attempts > 1)
        s->st.retries++;
    pthread_mutex_unlock(&s->mu);
    curl_multi_add_handle(s->multi, j->easy);
    j->next = s->running;
    s->running = j;
    s->inflight++;
}

static void finish_job(sim_sender_t *s, job_t *j, CURLcode result)
{
    long status = 0;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(s->multi, j->easy);
    for (job_t **pp = &s->running; *pp; pp = &(*pp)->next) {
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    }
    j->next = NULL;
    s->inflight--;
    int delivered = result == CURLE_OK && status == 200;
    int first = j->attempts == 1;
    int give_up = !delivered && s->conf.max_attempts > 0 && j->attempts >= s->conf.max_attempts;
    pthread_mutex_lock(&s->mu);
    if (delivered)
        s->st.delivered++;
    else
        s->st.failed++;
    if (give_up)
        s->st.gave_up++;
    if (delivered || give_up)
        s->st.pending--;
    pthread_mutex_unlock(&s->mu);
    if (!delivered)
        qbc_log(QBC_LOG_DEBUG, "qbosim", "webhook attempt %d failed: %s (HTTP %ld)", j->attempts,
                result != CURLE_OK ? (j->errbuf[0] ? j->errbuf : curl_easy_strerror(result)) : "status", status);
    if (first && s->cb)
        s->cb(s->cb_ctx, j->tag);
    if (delivered || give_up) {
        free_job(j);
        return;
    }
    int64_t delay = (int64_t)((double)sim_retry_delay_ms(j->attempts) * s->conf.retry_scale);
    j->due_ms = mono_ms() + delay;
    insert_waiting(s, j);
}

static void *sender_main(void *arg)
{
    sim_sender_t *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int stop = s->stop;
        job_t *in = s->inbox;
        s->inbox = NULL;
        s->inbox_tail = &s->inbox;
        pthread_mutex_unlock(&s->mu);
        while (in) {
            job_t *next = in->next;
            insert_waiting(s, in);
            in = next;
        }
        if (stop)
            break;
        int64_t now = mono_ms();
        while (s->waiting && s->waiting->due_ms <= now && s->inflight < (size_t)s->conf.max_concurrency) {
            job_t *j = s->waiting;
            s->waiting = j->next;
            j->next = NULL;
            start_job(s, j);
        }
        int running = 0;
        curl_multi_perform(s->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            job_t *j = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            finish_job(s, j, msg->data.result);
        }
        int timeout = 200;
        if (s->waiting && s->inflight < (size_t)s->conf.max_concurrency) {
            int64_t d = s->waiting->due_ms - mono_ms();
            timeout = d < 0 ? 0 : d < timeout ? (int)d : timeout;
        }
        curl_multi_poll(s->multi, NULL, 0, timeout, NULL);
    }
    return NULL;
}

sim_sender_t *sim_sender_start(const sim_sender_conf_t *conf, sim_sender_first_cb cb, void *cb_ctx)
{
    sim_sender_t *s = qbc_calloc(1, sizeof(*s));
    s->conf = *conf;
    s->url = qbc_strdup(conf->url);
    char *copy = qbc_strdup(conf->url), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        s->urls = qbc_realloc(s->urls, (s->n_urls + 1) * sizeof(*s->urls));
        s->urls[s->n_urls++] = qbc_strdup(t);
    }
    free(copy);
    if (s->n_urls == 0) { /* "," alone: the whole string, as before */
        s->urls = qbc_calloc(1, sizeof(*s->urls));
        s->urls[s->n_urls++] = qbc_strdup(conf->url);
    }
    s->token = qbc_strdup(conf->verifier_token);
    s->cb = cb;
    s->cb_ctx = cb_ctx;
    s->inbox_tail = &s->inbox;
    if (s->conf.max_concurrency < 1)
        s->conf.max_concurrency = 1;
    if (s->conf.timeout_ms < 1)
        s->conf.timeout_ms = 3000;
    pthread_mutex_init(&s->mu, NULL);
    s->multi = curl_multi_init();
    if (!s->multi)
        qbc_fatal("curl_multi_init failed");
    if (pthread_create(&s->th, NULL, sender_main, s) != 0)
        qbc_fatal("pthread_create failed");
    return s;
}

void sim_sender_stop(sim_sender_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_mutex_unlock(&s->mu);
    curl_multi_wakeup(s->multi);
    pthread_join(s->th, NULL);
    while (s->waiting) {
        job_t *j = s->waiting;
        s->waiting = j->next;
        free_job(j);
    }
    while (s->running) {
        job_t *j = s->running;
        s->running = j->next;
        curl_multi_remove_handle(s->multi, j->easy);
        free_job(j);
    }
    curl_multi_cleanup(s->multi);
    pthread_mutex_destroy(&s->mu);
    free(s->url);
    for (size_t i = 0; i < s->n_urls; i++)
        free(s->urls[i]);
    free(s->urls);
    free(s->token);
    free(s);
}

void sim_sender_submit(sim_sender_t *s, char *body, size_t len, const char *content_type, int64_t delay_ms,
                       uint64_t tag)
{
    job_t *j = qbc_calloc(1, sizeof(*j));
    j->body = body;
    j->len = len;
    snprintf(j->ctype, sizeof(j->ctype), "%s", content_type);
    j->due_ms = mono_ms() + (delay_ms > 0 ? delay_ms : 0);
    j->tag = tag;
    pthread_mutex_lock(&s->mu);
    *s->inbox_tail = j;
    s->inbox_tail = &j->next;
    s->st.pending++;
    pthread_mutex_unlock(&s->mu);
    curl_multi_wakeup(s->multi);
}

void sim_sender_count_lost(sim_sender_t *s, uint64_t n)
{
    pthread_mutex_lock(&s->mu);
    s->st.lost += n;
    pthread_mutex_unlock(&s->mu);
}

void sim_sender_count_dup(sim_sender_t *s, uint64_t n)
{
    pthread_mutex_lock(&s->mu);
    s->st.duplicated += n;
    pthread_mutex_unlock(&s->mu);
}

void sim_sender_stats(sim_sender_t *s, sim_wh_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}
