/*
 * feed.c — the change feed for downstream apps, and the /v1 router (bearer QBCDC_FEED_TOKEN).
 *
 *   GET /v1/changes?after=&limit=&realm=&entity=&wait=   pull, or long-poll with wait
 *   GET /v1/changes/stream?after=&realm=&entity=         Server-Sent Events (Last-Event-ID)
 *   (and routes the entity reads under /v1/realms/ to entities.c)
 *
 * Every answer names the feed: "feed_id" in the JSON (an SSE stream starts with an
 * "event: feed" carrying it and the head) and a qbcdc-feed-id header. The id is made
 * with the store, so a consumer whose data dir was replaced sees a new one; a reader
 * whose `after` is beyond the feed's last sequence gets 409 after_beyond_head instead
 * of waiting for sequence numbers that will mean other changes. Either way it resyncs
 * by listing the entities, then reads on from the head.
 *
 * Reads never block the ingress or the reconciler: each answer is one short read
 * transaction. Waiting readers are woken by a store listener (writer thread) through
 * h2o's queue, so a long-poll answers as soon as the commit that feeds it returns.
 * An SSE stream reads the store only when h2o asks it for more (the proceed
 * callback): a slow consumer never makes us buffer for it; it only falls behind.
 *
 * In cluster mode the feed read is the node's copy of the cluster feed (api.h feed_store):
 * the stream's sequences, the stream's id (503 feed_unavailable until the copy knows it),
 * and "beyond the head" means beyond the stream's last sequence as this node knows it (a
 * reader that comes from a node further ahead waits for this one to catch up).
 *
 * With a feed retention (QBCDC_FEED_RETENTION), a reader whose `after` is behind what
 * was pruned cannot be given every change: it gets 410 {"error":"gone", ...,
 * "pruned_through":N} (an SSE stream: an "event: gone" with the same object, then the
 * end), never a silent gap. It resyncs, then reads on with after=N.
 */
#include <errno.h>
#include <poll.h>
#include <jansson.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api_internal.h"

#define DEFAULT_LIMIT 100
#define MAX_LIMIT 1000
#define MAX_WAIT_S 300
#define SSE_BATCH 500
#define SSE_KEEPALIVE_NS (15 * (int64_t)1000000000)
#define TICK_MS 250

typedef struct st_feed_waiter_t {
    h2o_generator_t generator; /* first: SSE's proceed/stop recover the waiter from it */
    h2o_linklist_t link;
    qbc_api_t *api;
    h2o_req_t *req; /* NULL once the request is gone */
    int sse;
    int sending; /* SSE: a chunk is in flight; wait for proceed */
    int closing; /* SSE: send the final chunk when the current one is done */
    uint64_t after;
    size_t limit;
    char realm[QBC_REALM_MAX], entity[QBC_ENTITY_MAX];
    int64_t deadline_ns;
    int64_t last_write_ns;
    char *chunk;                       /* SSE: the bytes h2o is sending (kept until proceed) */
    char feed_id[QBC_FEED_ID_LEN + 1]; /* the feed it reads (cluster mode's may be replaced meanwhile) */
} feed_waiter_t;

/* ------------------------------------------------------------------ reading */

typedef struct {
    qbc_buf_t b; /* what is said so far (NUL-terminated) */
    size_t n;    /* changes in it */
    int sse;
} collect_t;

static void put(collect_t *c, const char *p, size_t n)
{
    qbc_buf_append(&c->b, p, n);
}

static int collect_cb(const qbc_feed_rec_t *r, void *ctx)
{
    collect_t *c = ctx;
    char hdr[48];
    if (c->sse) {
        int n = snprintf(hdr, sizeof(hdr), "id: %llu\ndata: ", (unsigned long long)r->seq);
        put(c, hdr, (size_t)n);
        put(c, r->json, r->json_len); /* one line: the JSON is compact */
        put(c, "\n\n", 2);
    } else {
        if (c->n > 0)
            put(c, ",", 1);
        put(c, r->json, r->json_len);
    }
    c->n++;
    return 0;
}

/* reads up to limit matching records after w->after; advances w->after past what it examined */
static int read_feed(qbc_api_t *api, feed_waiter_t *w, size_t limit, collect_t *c)
{
    uint64_t last = w->after;
    int rc = qbc_store_feed_scan(api->feed_store, w->after, limit, w->realm[0] ? w->realm : NULL,
                                 w->entity[0] ? w->entity : NULL, collect_cb, c, &last);
    if (rc == 0)
        w->after = last;
    return rc;
}

/*
 * the last sequence a reader may stand at: the feed's head, or in cluster mode the stream's
 * last sequence as known, when this node's copy is behind it
 */
static uint64_t feed_horizon(qbc_api_t *api)
{
    uint64_t head = qbc_store_feed_last(api->feed_store);
    if (api->feed_horizon != NULL) {
        uint64_t h = api->feed_horizon(api->feed_horizon_ctx);
        if (h > head)
            head = h;
    }
    return head;
}

/* {"error":code,"message":...,<key>:n,"feed_id":"..."}: the answers that send a reader to resync */
static char *resync_json(qbc_api_t *api, const char *code, const char *msg, const char *key, uint64_t n)
{
    char id[QBC_FEED_ID_LEN + 1];
    qbc_api__feed_id(api, id);
    json_t *o = json_pack("{s:s,s:s,s:I,s:s}", "error", code, "message", msg, key, (json_int_t)n, "feed_id", id);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/*
 * the object a reader behind the retention gets:
 * {"error":"gone","message":...,"pruned_through":N,"feed_id":"..."}
 */
static char *gone_json(qbc_api_t *api, uint64_t after)
{
    uint64_t through = qbc_store_feed_pruned(api->feed_store);
    char msg[400];
    snprintf(msg, sizeof(msg),
             "changes after %llu up to %llu were removed by the feed retention; resync: list the latest versions "
             "with GET /v1/realms/{realm}/entities/{Entity}?after_id=&limit=, then read on with after=%llu",
             (unsigned long long)after, (unsigned long long)through, (unsigned long long)through);
    return resync_json(api, "gone", msg, "pruned_through", through);
}

/*
 * 409 for a reader whose `after` is beyond the feed's last sequence: it read another
 * feed (most likely this data dir replaced its own), and waiting would hand it
 * sequence numbers it already holds for other changes.
 * {"error":"after_beyond_head","message":...,"head":N,"feed_id":"..."}
 */
static void answer_beyond_head(qbc_api_t *api, h2o_req_t *req, uint64_t after, uint64_t head)
{
    char msg[400];
    snprintf(msg, sizeof(msg),
             "after=%llu is beyond this feed's last sequence %llu: you read another feed (compare feed_id; its data "
             "directory was probably replaced); resync: list the latest versions with "
             "GET /v1/realms/{realm}/entities/{Entity}?after_id=&limit=, then read on with after=%llu",
             (unsigned long long)after, (unsigned long long)head, (unsigned long long)head);
    char *text = resync_json(api, "after_beyond_head", msg, "head", head);
    qbc_api__respond_json(req, 409, "Conflict", text);
    free(text);
}

/* answers a failed read: 410 when the reader is behind the retention, else 503 */
static void answer_read_error(feed_waiter_t *w, int rc)
{
    if (rc == QBC_EGONE) {
        char *body = gone_json(w->api, w->after);
        qbc_api__respond_json(w->req, 410, "Gone", body);
        free(body);
    } else {
        qbc_api__respond_error(w->req, 503, "Service Unavailable", "store_unavailable", "cannot read the feed");
    }
}

/* {"changes":[...],"next":N,"complete_until":{realm: time},"feed_id":"..."} */
static void answer_changes(feed_waiter_t *w, collect_t *c)
{
    collect_t out = {{0}, 0, 0};
    char tail[64];
    put(&out, "{\"changes\":[", 12);
    if (c->b.len > 0)
        put(&out, c->b.data, c->b.len);
    int n = snprintf(tail, sizeof(tail), "],\"next\":%llu,\"complete_until\":", (unsigned long long)w->after);
    put(&out, tail, (size_t)n);
    char *complete = qbc_api__feed_completeness(w->api, w->realm[0] ? w->realm : NULL);
    put(&out, complete != NULL ? complete : "{}", complete != NULL ? strlen(complete) : 2);
    free(complete);
    char id[QBC_FEED_ID_LEN + 1];
    qbc_api__feed_id(w->api, id);
    json_t *idj = json_string(id);
    char *id_json = json_dumps(idj, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(idj);
    put(&out, ",\"feed_id\":", 11);
    put(&out, id_json, strlen(id_json));
    put(&out, "}", 1);
    free(id_json);
    qbc_api__respond_json(w->req, 200, "OK", out.b.data);
    free(out.b.data);
}

/* ------------------------------------------------------------------ waiters */

static void waiter_unlink(feed_waiter_t *w)
{
    if (h2o_linklist_is_linked(&w->link)) {
        h2o_linklist_unlink(&w->link);
        w->api->n_waiters--;
    }
}

static void waiter_link(feed_waiter_t *w)
{
    h2o_linklist_insert(&w->api->feed_waiters, &w->link);
    w->api->n_waiters++;
}

/* the cap on long-polls and streams: 503 with Retry-After when it is reached (answered here) */
static int waiters_full(qbc_api_t *api, h2o_req_t *req)
{
    if (api->n_waiters < api->max_waiters)
        return 0;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("5"));
    qbc_api__respond_error(req, 503, "Service Unavailable", "too_many_streams",
                           "too many long-polls and streams are open (QBCDC_MAX_STREAMS); retry later");
    return 1;
}

/*
 * 1 when the client has closed its end: a waiting request reads nothing from its socket,
 * so h2o would only notice at the next write (a long-poll's end, a stream's keep-alive)
 * while the descriptor stays taken. Polling the socket for POLLRDHUP tells at once.
 */
static int client_gone(h2o_req_t *req)
{
    if (req == NULL || req->conn == NULL || req->conn->callbacks->get_socket == NULL)
        return 0;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL)
        return 0;
    /*
     * POLLRDHUP, not a peek: over TLS a leaving client's close_notify is data, so a peek
     * would see a byte and never the end of the stream behind it
     */
    struct pollfd p = {.fd = h2o_socket_get_fd(sock), .events = POLLRDHUP};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

static void on_waiter_dispose(void *p)
{
    feed_waiter_t *w = p;
    waiter_unlink(w);
    w->req = NULL;
    free(w->chunk);
    w->chunk = NULL;
}

static feed_waiter_t *waiter_new(qbc_api_t *api, h2o_req_t *req)
{
    feed_waiter_t *w = h2o_mem_alloc_shared(&req->pool, sizeof(*w), on_waiter_dispose);
    memset(w, 0, sizeof(*w));
    w->api = api;
    w->req = req;
    return w;
}

/*
 * 1 when the feed the waiter reads was replaced meanwhile (cluster mode: the stream made again,
 * its copy started over): its `after` means nothing in the new one
 */
static int feed_replaced(feed_waiter_t *w)
{
    char id[QBC_FEED_ID_LEN + 1];
    qbc_api__feed_id(w->api, id);
    return strcmp(id, w->feed_id) != 0;
}

/* a long-poll with something to say (or out of time) answers and leaves the list */
static void poll_try(feed_waiter_t *w, int timed_out)
{
    collect_t c = {{0}, 0, 0};
    if (feed_replaced(w)) { /* an empty page naming the new feed: the reader resyncs */
        waiter_unlink(w);
        answer_changes(w, &c);
        return;
    }
    int rc = read_feed(w->api, w, w->limit, &c);
    if (rc != 0) {
        waiter_unlink(w);
        answer_read_error(w, rc);
    } else if (c.n > 0 || timed_out) {
        waiter_unlink(w);
        answer_changes(w, &c);
    }
    free(c.b.data);
}

static void sse_send(feed_waiter_t *w, const char *extra);

/* SSE: writes the next batch if h2o is ready for it */
static void sse_pump(feed_waiter_t *w)
{
    if (w->req == NULL || w->sending)
        return;
    if (feed_replaced(w))
        w->closing = 1; /* the reader reconnects, and the new stream's "event: feed" names the new feed */
    if (w->closing) {
        w->sending = 1;
        waiter_unlink(w);
        h2o_send(w->req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    sse_send(w, NULL);
}

static void sse_send(feed_waiter_t *w, const char *extra)
{
    collect_t c = {{0}, 0, 1};
    if (extra != NULL)
        put(&c, extra, strlen(extra));
    int rc = read_feed(w->api, w, SSE_BATCH, &c);
    if (rc == QBC_EGONE) { /* behind the retention: say so, then end the stream */
        char *body = gone_json(w->api, w->after);
        put(&c, "event: gone\ndata: ", 18);
        put(&c, body, strlen(body));
        put(&c, "\n\n", 2);
        free(body);
        w->closing = 1;
    } else if (rc != 0 || c.b.len == 0) {
        free(c.b.data);
        return; /* nothing to say: wait for the next wake-up or keep-alive */
    }
    free(w->chunk);
    w->chunk = c.b.data;
    w->sending = 1;
    w->last_write_ns = qbc_mono_ns();
    h2o_iovec_t v = h2o_iovec_init(c.b.data, c.b.len);
    h2o_send(w->req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void on_sse_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    feed_waiter_t *w = (feed_waiter_t *)g;
    (void)req;
    w->sending = 0;
    free(w->chunk);
    w->chunk = NULL;
    sse_pump(w); /* more may have arrived while the last chunk was in flight */
}

static void on_sse_stop(h2o_generator_t *g, h2o_req_t *req)
{
    feed_waiter_t *w = (feed_waiter_t *)g;
    (void)req;
    waiter_unlink(w);
}

/* loop thread: the feed grew (or was replaced) */
static void on_feed_wake(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    qbc_api_t *api = H2O_STRUCT_FROM_MEMBER(qbc_api_t, feed_wake, receiver);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    /* cleared before reading the feed: a commit that lands after this point queues a new
     * wake-up, and one that landed before it is seen by the reads below */
    __atomic_store_n(&api->feed_wake_queued, 0, __ATOMIC_SEQ_CST);
    api->feed_wakeups++;
    for (h2o_linklist_t *l = api->feed_waiters.next, *next; l != &api->feed_waiters; l = next) {
        next = l->next; /* poll_try may unlink l */
        feed_waiter_t *w = H2O_STRUCT_FROM_MEMBER(feed_waiter_t, link, l);
        if (w->sse)
            sse_pump(w);
        else
            poll_try(w, 0);
    }
}

/*
 * writer thread: wake the loop when the feed grew (never blocks). h2o 2.2 calls a
 * receiver only for real messages, so there is one preallocated message, queued at
 * most once at a time.
 */
static void on_store_note(void *ctx, const qbc_commit_note_t *note)
{
    qbc_api_t *api = ctx;
    /* a reset (cluster mode: the stream made again) ends the waits on the old feed */
    if ((note->feed_appended > 0 || note->feed_reset > 0) &&
        !__atomic_exchange_n(&api->feed_wake_queued, 1, __ATOMIC_SEQ_CST))
        h2o_multithread_send_message(&api->feed_wake, &api->feed_wake_msg);
}

/* the periodic info line: a quiet log still says the service is alive, and how it goes */
static void log_summary(qbc_api_t *api, int64_t now)
{
    qbc_store_stats_t st;
    char more[200] = "";
    uint64_t acked = qbc_ingress_acked(api->ingress);
    int have = qbc_store_stats(api->store, &st) == 0;
    if (api->hooks.summary != NULL)
        api->hooks.summary(api->hooks.ctx, more, sizeof(more));
    qbc_log(QBC_LOG_INFO, "api", "alive: %llu webhooks acked (+%llu), feed head %llu, %llu pending, %u streams%s%s",
            (unsigned long long)acked, (unsigned long long)(acked - api->summary_acked),
            have ? (unsigned long long)st.last_feed_seq : 0ULL, have ? (unsigned long long)st.pending : 0ULL,
            api->n_waiters, more[0] ? ", " : "", more);
    api->summary_acked = acked;
    api->summary_due_ns = now + api->summary_every_ns;
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    qbc_api_t *api = H2O_STRUCT_FROM_MEMBER(qbc_api_t, feed_tick_entry, entry);
    int64_t now = qbc_mono_ns();
    for (h2o_linklist_t *l = api->feed_waiters.next, *next; l != &api->feed_waiters; l = next) {
        next = l->next;
        feed_waiter_t *w = H2O_STRUCT_FROM_MEMBER(feed_waiter_t, link, l);
        if (!w->sse && (now >= w->deadline_ns || client_gone(w->req))) {
            poll_try(w, 1); /* a client that left gets its (unread) answer now: the connection closes */
        } else if (w->sse && !w->closing && client_gone(w->req)) {
            w->closing = 1;
            if (!w->sending)
                sse_pump(w);
        } else if (w->sse && !w->sending && now - w->last_write_ns > SSE_KEEPALIVE_NS) {
            /* a comment line keeps proxies from closing an idle stream */
            static const char ka[] = ": keep-alive\n\n";
            free(w->chunk);
            w->chunk = qbc_strdup(ka);
            w->sending = 1;
            w->last_write_ns = now;
            h2o_iovec_t v = h2o_iovec_init(w->chunk, sizeof(ka) - 1);
            h2o_send(w->req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
        }
    }
    if (api->summary_every_ns > 0 && now >= api->summary_due_ns)
        log_summary(api, now);
    h2o_timeout_link(api->ctx.loop, &api->feed_tick, &api->feed_tick_entry);
}

/* ------------------------------------------------------------------ requests */

/* after/limit/realm/entity/wait from the query string; answers 400 itself and returns -1 on bad input */
static int parse_params(h2o_req_t *req, feed_waiter_t *w, long *wait_s)
{
    char v[128], *end;
    uint64_t u;
    int got;

    w->after = 0;
    w->limit = DEFAULT_LIMIT;
    *wait_s = 0;
    if ((got = qbc_api__param(req, "after", v, sizeof(v))) < 0)
        return -1;
    if (got) {
        if (qbc_api__parse_u64(v, &u) != 0) {
            qbc_api__respond_error(req, 400, "Bad Request", "bad_after",
                                   "after must be a sequence number (0 to 18446744073709551615)");
            return -1;
        }
        w->after = u;
    }
    if ((got = qbc_api__param(req, "limit", v, sizeof(v))) < 0)
        return -1;
    if (got) {
        long l = strtol(v, &end, 10);
        if (v[0] == '\0' || *end != '\0' || l < 1 || l > MAX_LIMIT) {
            qbc_api__respond_error(req, 400, "Bad Request", "bad_limit", "limit must be from 1 to 1000");
            return -1;
        }
        w->limit = (size_t)l;
    }
    if ((got = qbc_api__param(req, "wait", v, sizeof(v))) < 0)
        return -1;
    if (got) {
        long s = strtol(v, &end, 10);
        if (v[0] == '\0' || *end != '\0' || s < 0 || s > MAX_WAIT_S) {
            qbc_api__respond_error(req, 400, "Bad Request", "bad_wait", "wait must be from 0 to 300 seconds");
            return -1;
        }
        *wait_s = s;
    }
    if ((got = qbc_api__param(req, "realm", v, sizeof(v))) < 0)
        return -1;
    if (got && v[0] != '\0') {
        if (!qbc_api__valid_realm(v, strlen(v))) {
            qbc_api__respond_error(req, 400, "Bad Request", "bad_realm", "no such realm id");
            return -1;
        }
        snprintf(w->realm, sizeof(w->realm), "%s", v);
    }
    if ((got = qbc_api__param(req, "entity", v, sizeof(v))) < 0)
        return -1;
    if (got && v[0] != '\0') {
        if (qbc_entity_canonical(v, strlen(v), w->entity) != 0) {
            qbc_api__respond_error(req, 400, "Bad Request", "bad_entity", "entity must be a QBO entity name");
            return -1;
        }
    }
    return 0;
}

static int get_changes(qbc_api_t *api, h2o_req_t *req)
{
    feed_waiter_t *w = waiter_new(api, req);
    long wait_s;

    if (parse_params(req, w, &wait_s) != 0)
        return 0;
    qbc_api__feed_id(api, w->feed_id);
    uint64_t head = feed_horizon(api);
    if (w->after > head) {
        answer_beyond_head(api, req, w->after, head);
        return 0;
    }
    collect_t c = {{0}, 0, 0};
    int rc = read_feed(api, w, w->limit, &c);
    if (rc != 0) {
        free(c.b.data);
        answer_read_error(w, rc);
        return 0;
    }
    if (c.n > 0 || wait_s == 0 || api->stop) {
        answer_changes(w, &c);
        free(c.b.data);
        return 0;
    }
    free(c.b.data);
    if (waiters_full(api, req))
        return 0;
    w->deadline_ns = qbc_mono_ns() + wait_s * (int64_t)1000000000;
    waiter_link(w);
    return 0;
}

static int get_stream(qbc_api_t *api, h2o_req_t *req)
{
    feed_waiter_t *w = waiter_new(api, req);
    long wait_s;

    if (parse_params(req, w, &wait_s) != 0)
        return 0;
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), -1);
    if (i >= 0) {
        /* a reconnecting EventSource resumes after the last event it saw */
        uint64_t a;
        h2o_iovec_t hv = req->headers.entries[i].value;
        if (qbc_api__parse_last_event_id(hv.base, hv.len, &a) != 0) {
            qbc_api__respond_error(req, 400, "Bad Request", "bad_last_event_id",
                                   "Last-Event-ID must be a feed sequence number");
            return 0;
        }
        w->after = a;
    }
    qbc_api__feed_id(api, w->feed_id);
    uint64_t horizon = feed_horizon(api), head = qbc_store_feed_last(api->feed_store);
    if (w->after > horizon) {
        answer_beyond_head(api, req, w->after, horizon);
        return 0;
    }
    if (waiters_full(api, req))
        return 0;
    w->sse = 1;
    w->generator.proceed = on_sse_proceed;
    w->generator.stop = on_sse_stop;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    h2o_start_response(req, &w->generator);
    waiter_link(w);
    /*
     * the first chunk: which feed this is and how far it goes (no id: line, so the
     * client's Last-Event-ID stays a sequence), then the backlog
     */
    json_t *o = json_pack("{s:s,s:I}", "feed_id", w->feed_id, "head", (json_int_t)head);
    char *hello = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    collect_t first = {{0}, 0, 1};
    put(&first, "event: feed\ndata: ", 18);
    put(&first, hello, strlen(hello));
    put(&first, "\n\n", 2);
    free(hello);
    sse_send(w, first.b.data);
    free(first.b.data);
    return 0;
}

int qbc_api__on_v1(h2o_handler_t *_self, h2o_req_t *req)
{
    qbc_api_t *api = ((api_handler_t *)_self)->api;
    h2o_iovec_t seg[5];
    int n;

    if (qbc_api__require_bearer(req, api->feed_token, "/v1") != 0)
        return 0;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        qbc_api__respond_error(req, 405, "Method Not Allowed", "method_not_allowed", "use GET");
        return 0;
    }
    char id[QBC_FEED_ID_LEN + 1];
    qbc_api__feed_id(api, id);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("qbcdc-feed-id"), 0, NULL,
                          h2o_strdup(&req->pool, id, SIZE_MAX).base, strlen(id));
    n = qbc_api__path_segments(req, 1, seg, 5); /* after "v1" */
    int changes = n >= 1 && n <= 2 && h2o_memis(seg[0].base, seg[0].len, H2O_STRLIT("changes"));
    if (changes && id[0] == '\0') { /* cluster mode, before the copy of the cluster feed knows the stream */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("2"));
        qbc_api__respond_error(req, 503, "Service Unavailable", "feed_unavailable",
                               "this node has not read the cluster's feed stream yet; retry later");
        return 0;
    }
    if (n == 1 && changes)
        return get_changes(api, req);
    if (n == 2 && changes && h2o_memis(seg[1].base, seg[1].len, H2O_STRLIT("stream")))
        return get_stream(api, req);
    if (n == 5 && h2o_memis(seg[0].base, seg[0].len, H2O_STRLIT("realms")) &&
        h2o_memis(seg[2].base, seg[2].len, H2O_STRLIT("entities")))
        return qbc_api__get_entity(api, req, seg[1], seg[3], seg[4]);
    if (n == 4 && h2o_memis(seg[0].base, seg[0].len, H2O_STRLIT("realms")) &&
        h2o_memis(seg[2].base, seg[2].len, H2O_STRLIT("entities")))
        return qbc_api__list_entities(api, req, seg[1], seg[3]);
    qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such feed endpoint");
    return 0;
}

void qbc_api__feed_init(qbc_api_t *api)
{
    h2o_linklist_init_anchor(&api->feed_waiters);
    h2o_multithread_register_receiver(api->ctx.queue, &api->feed_wake, on_feed_wake);
    h2o_timeout_init(api->ctx.loop, &api->feed_tick, TICK_MS);
    api->feed_tick_entry.cb = on_tick;
    h2o_timeout_link(api->ctx.loop, &api->feed_tick, &api->feed_tick_entry);
    api->feed_listener = qbc_store_add_listener(api->feed_store, on_store_note, api);
    if (api->feed_listener < 0)
        qbc_fatal("the store has no room for the feed's listener");
}

void qbc_api__feed_id(qbc_api_t *api, char out[QBC_FEED_ID_LEN + 1])
{
    qbc_store_feed_id_copy(api->feed_store, out);
}

void qbc_api__feed_shutdown(qbc_api_t *api)
{
    for (h2o_linklist_t *l = api->feed_waiters.next, *next; l != &api->feed_waiters; l = next) {
        next = l->next;
        feed_waiter_t *w = H2O_STRUCT_FROM_MEMBER(feed_waiter_t, link, l);
        if (w->sse) {
            w->closing = 1;
            sse_pump(w);
        } else {
            poll_try(w, 1);
        }
    }
}

void qbc_api__feed_dispose(qbc_api_t *api)
{
    if (h2o_timeout_is_linked(&api->feed_tick_entry))
        h2o_timeout_unlink(&api->feed_tick_entry);
    h2o_timeout_dispose(api->ctx.loop, &api->feed_tick);
    h2o_multithread_unregister_receiver(api->ctx.queue, &api->feed_wake);
}
