/*
 * forward.c — cluster mode: a realm's admin requests go to the node that owns the realm.
 *
 * POST /admin/realms/{realm}/cdc, POST /admin/realms/{realm}/backfill and DELETE
 * /admin/realms/{realm} act on the realm's owner: its reconciler is the only one that calls QBO
 * for the realm. A node that does not own the realm (qbc_api_cluster_t.owner) sends the request
 * on to the owner's advertised URL and relays its answer (status, Content-Type, Retry-After,
 * Allow, WWW-Authenticate, the body), adding X-Qbcdc-Node: <owner>. The request carries the
 * client's Authorization (the admin token is the same on every node) and X-Qbcdc-Forwarded-By:
 * <this node>; a node that receives a forwarded request for a realm it does not own answers 503
 * (forward_loop) instead of sending it on again, so two nodes that disagree about an owner
 * while a partition moves cannot bounce a request between them. No owner known, no URL for it,
 * or no answer within the timeout: 503 with the reason and Retry-After. A job read or cancel for
 * an id this node does not hold yet goes the same way to the node of the id's space.
 *
 * The HTTP calls run on one worker thread of its own (a libcurl multi handle); each answer
 * comes back to the loop through h2o's multithread queue, like the store's jobs. The loop
 * never waits. A client that hangs up meanwhile: its answer is dropped (the guard in the
 * request's pool tells the call).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include "api_internal.h"

#define FWD_BODY_MAX (4u << 20) /* an owner's answer larger than this is cut off: answered 502 */
#define HDR_FORWARDED "x-qbcdc-forwarded-by"

typedef struct st_fwd_guard_t {
    struct st_fwd_call_t *call;
} fwd_guard_t;

struct st_fan_t;

typedef struct st_fwd_call_t {
    h2o_multithread_message_t msg; /* worker -> loop: the answer */
    qbc_api_t *api;
    struct st_fan_t *fan; /* a GET /admin/realms fan-out's call (req and guard unused), or NULL */
    h2o_req_t *req;       /* while guard says the request lives (loop thread only) */
    fwd_guard_t *guard;   /* NULL once the request is gone (loop thread only) */
    struct st_fwd_call_t *next, *anext;
    char node[QBC_API_NODE_MAX];
    char url[QBC_API_URL_MAX + 1024];
    char method[16];
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    CURL *easy;
    /* the answer (worker thread, then the loop's) */
    CURLcode cc;
    char err[CURL_ERROR_SIZE];
    long status;
    char content_type[128], retry_after[32], allow[64], www_auth[64];
    char *resp;
    size_t resp_len, resp_cap;
    int too_big;
} fwd_call_t;

struct st_api_forwarder_t {
    pthread_t thread;
    pthread_mutex_t mu;
    CURLM *multi;
    fwd_call_t *queue;  /* under mu: to start */
    fwd_call_t *active; /* worker only: started, not finished (linked by anext) */
    int stop;           /* under mu */
    unsigned timeout_ms;
    h2o_multithread_receiver_t answers;
};

qbc_fwd_decision_t qbc_api__forward_decide(int owner_rc, int forwarded)
{
    if (owner_rc == 1)
        return QBC_FWD_LOCAL;
    if (forwarded)
        return QBC_FWD_LOOP; /* the node that sent it thinks we own it; we do not: never send it on again */
    return owner_rc == 0 ? QBC_FWD_FORWARD : QBC_FWD_NO_OWNER;
}

/* ---------------------------------------------------------------- the worker thread */

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    fwd_call_t *x = ctx;
    size_t len = size * n;
    if (x->resp_len + len > FWD_BODY_MAX) {
        x->too_big = 1;
        return 0;
    }
    if (x->resp_len + len > x->resp_cap) {
        x->resp_cap = (x->resp_len + len) * 2;
        x->resp = qbc_realloc(x->resp, x->resp_cap);
    }
    memcpy(x->resp + x->resp_len, p, len);
    x->resp_len += len;
    return len;
}

/* keeps the value of a header the answer is relayed with (trimmed) */
static void keep_header(const char *line, size_t len, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    snprintf(out, outsz, "%.*s", (int)(end - v), v);
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    fwd_call_t *x = ctx;
    size_t len = size * n;
    keep_header(p, len, "content-type", x->content_type, sizeof(x->content_type));
    keep_header(p, len, "retry-after", x->retry_after, sizeof(x->retry_after));
    keep_header(p, len, "allow", x->allow, sizeof(x->allow));
    keep_header(p, len, "www-authenticate", x->www_auth, sizeof(x->www_auth));
    return len;
}

static void call_start(struct st_api_forwarder_t *f, fwd_call_t *x)
{
    CURL *e = x->easy = curl_easy_init();
    if (e == NULL)
        qbc_fatal("curl_easy_init failed");
    curl_easy_setopt(e, CURLOPT_URL, x->url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
    if (strcmp(x->method, "GET") != 0 && strcmp(x->method, "DELETE") != 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body != NULL ? x->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)f->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)f->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->err);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
        x->cc = CURLE_FAILED_INIT;
        snprintf(x->err, sizeof(x->err), "could not start the call");
        curl_easy_cleanup(e);
        x->easy = NULL;
        h2o_multithread_send_message(&f->answers, &x->msg);
        return;
    }
    x->anext = f->active;
    f->active = x;
}

static void call_finish(struct st_api_forwarder_t *f, fwd_call_t *x, CURLcode cc)
{
    for (fwd_call_t **pp = &f->active; *pp != NULL; pp = &(*pp)->anext)
        if (*pp == x) {
            *pp = x->anext;
            break;
        }
    x->cc = cc;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    curl_multi_remove_handle(f->multi, x->easy);
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    h2o_multithread_send_message(&f->answers, &x->msg);
}

static void *worker_main(void *arg)
{
    struct st_api_forwarder_t *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        int stop = f->stop;
        fwd_call_t *q = f->queue;
        f->queue = NULL;
        pthread_mutex_unlock(&f->mu);
        for (fwd_call_t *x = q, *next; x != NULL; x = next) {
            next = x->next;
            if (stop) {
                x->cc = CURLE_ABORTED_BY_CALLBACK;
                snprintf(x->err, sizeof(x->err), "this node is stopping");
                h2o_multithread_send_message(&f->answers, &x->msg);
            } else {
                call_start(f, x);
            }
        }
        if (stop)
            break;
        int running = 0;
        curl_multi_perform(f->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            fwd_call_t *x = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            call_finish(f, x, m->data.result);
        }
        curl_multi_poll(f->multi, NULL, 0, 1000, NULL);
    }
    /* stopping: the calls still out are answered "stopping" */
    while (f->active != NULL) {
        fwd_call_t *x = f->active;
        snprintf(x->err, sizeof(x->err), "this node is stopping");
        call_finish(f, x, CURLE_ABORTED_BY_CALLBACK);
    }
    return NULL;
}

/* ---------------------------------------------------------------- the loop thread */

static void add_header(h2o_req_t *req, const h2o_token_t *token, const char *name, const char *value)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, value, SIZE_MAX);
    if (token != NULL)
        h2o_add_header(&req->pool, &req->res.headers, token, NULL, v.base, v.len);
    else
        h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, v.base, v.len);
}

/* 503 with the reason and when to try again */
static void unavailable(h2o_req_t *req, const char *code, const char *message)
{
    add_header(req, H2O_TOKEN_RETRY_AFTER, NULL, "2");
    qbc_api__respond_error(req, 503, "Service Unavailable", code, message);
}

static void relay(qbc_api_t *api, fwd_call_t *x, h2o_req_t *req)
{
    char msg[CURL_ERROR_SIZE + QBC_API_URL_MAX + 1024 + QBC_API_NODE_MAX + 256];
    if (x->cc != CURLE_OK || x->status < 100 || x->too_big) {
        api->fwd.unreachable++;
        snprintf(msg, sizeof(msg), "this node does not own the realm; its owner, node %s (%s), %s%s", x->node, x->url,
                 x->too_big ? "answered more than 4 MiB" : "did not answer: ",
                 x->too_big ? "" : (x->err[0] ? x->err : curl_easy_strerror(x->cc)));
        if (x->too_big)
            qbc_api__respond_error(req, 502, "Bad Gateway", "owner_answer_too_big", msg);
        else
            unavailable(req, "owner_unreachable", msg);
        return;
    }
    api->fwd.relayed++;
    add_header(req, NULL, "x-qbcdc-node", x->node);
    if (x->retry_after[0])
        add_header(req, H2O_TOKEN_RETRY_AFTER, NULL, x->retry_after);
    if (x->allow[0])
        add_header(req, H2O_TOKEN_ALLOW, NULL, x->allow);
    if (x->www_auth[0]) /* the owner refused the token: every node needs the same QBCDC_ADMIN_TOKEN */
        add_header(req, H2O_TOKEN_WWW_AUTHENTICATE, NULL, x->www_auth);
    add_header(req, H2O_TOKEN_CONTENT_TYPE, NULL, x->content_type[0] ? x->content_type : "application/json");
    req->res.status = (int)x->status;
    req->res.reason = qbc_http_reason((int)x->status);
    req->res.content_length = x->resp_len;
    h2o_send_inline(req, x->resp != NULL ? x->resp : "", x->resp_len);
}

static void call_free(fwd_call_t *x)
{
    curl_slist_free_all(x->headers);
    free(x->body);
    free(x->resp);
    free(x);
}

static void fan_answer(fwd_call_t *x);

static void on_answers(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    for (h2o_multithread_message_t *m; (m = qbc_api__take_message(messages)) != NULL;) {
        fwd_call_t *x = H2O_STRUCT_FROM_MEMBER(fwd_call_t, msg, m);
        x->api->inflight--;
        if (x->fan != NULL) {
            fan_answer(x);
        } else if (x->guard != NULL) {
            x->guard->call = NULL;
            relay(x->api, x, x->req);
        }
        call_free(x);
    }
}

static void on_guard_dispose(void *p)
{
    fwd_guard_t *g = p;
    if (g->call != NULL)
        g->call->guard = NULL; /* the client went away: answer nobody */
}

/* a request header's value as a C string in out, or "" */
static void req_header(h2o_req_t *req, const h2o_token_t *token, char *out, size_t outsz)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    out[0] = '\0';
    if (i >= 0)
        snprintf(out, outsz, "%.*s", (int)req->headers.entries[i].value.len, req->headers.entries[i].value.base);
}

static void enqueue(qbc_api_t *api, fwd_call_t *x);

/*
 * a call to node at its advertised url (trailing slashes dropped) followed by path, with what
 * every call to another node carries: the client's Authorization, and this node's mark
 */
static fwd_call_t *call_new(qbc_api_t *api, h2o_req_t *req, const char *node, const char *url, const char *method,
                            const char *path, size_t path_len)
{
    fwd_call_t *x = qbc_calloc(1, sizeof(*x));
    x->api = api;
    snprintf(x->node, sizeof(x->node), "%s", node);
    size_t ul = strlen(url);
    while (ul > 0 && url[ul - 1] == '/')
        ul--;
    snprintf(x->url, sizeof(x->url), "%.*s%.*s", (int)ul, url, (int)path_len, path);
    snprintf(x->method, sizeof(x->method), "%s", method);
    char h[QBC_API_NODE_MAX + 4200];
    strcpy(h, "Authorization: ");
    req_header(req, H2O_TOKEN_AUTHORIZATION, h + strlen(h), sizeof(h) - strlen(h));
    x->headers = curl_slist_append(x->headers, h);
    snprintf(h, sizeof(h), "X-Qbcdc-Forwarded-By: %s", api->cluster.node_id);
    x->headers = curl_slist_append(x->headers, h);
    return x;
}

static void forward(qbc_api_t *api, h2o_req_t *req, const char *node, const char *url)
{
    char method[16], h[QBC_API_NODE_MAX + 4200];
    snprintf(method, sizeof(method), "%.*s", (int)req->method.len, req->method.base);
    fwd_call_t *x = call_new(api, req, node, url, method, req->path.base, req->path.len);
    x->req = req;
    strcpy(h, "Content-Type: ");
    req_header(req, H2O_TOKEN_CONTENT_TYPE, h + strlen(h), sizeof(h) - strlen(h));
    if (h[strlen("Content-Type: ")] != '\0')
        x->headers = curl_slist_append(x->headers, h);
    x->headers = curl_slist_append(x->headers, "Expect:");
    if (req->entity.len > 0) {
        x->body = qbc_alloc(req->entity.len);
        memcpy(x->body, req->entity.base, req->entity.len);
        x->body_len = req->entity.len;
    }
    x->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*x->guard), on_guard_dispose);
    x->guard->call = x;
    enqueue(api, x);
}

static void enqueue(qbc_api_t *api, fwd_call_t *x)
{
    struct st_api_forwarder_t *f = api->forwarder;
    api->inflight++; /* the drain at stop waits for it like for any answer in flight */
    pthread_mutex_lock(&f->mu);
    x->next = f->queue;
    f->queue = x;
    pthread_mutex_unlock(&f->mu);
    curl_multi_wakeup(f->multi);
}

int qbc_api__forward_realm(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t realm_seg)
{
    char realm[QBC_REALM_MAX], node[QBC_API_NODE_MAX], url[QBC_API_URL_MAX], msg[600];
    if (api->forwarder == NULL || !qbc_api__valid_realm(realm_seg.base, realm_seg.len))
        return 0; /* one node, or a realm id that is no realm anywhere: answered here */
    snprintf(realm, sizeof(realm), "%.*s", (int)realm_seg.len, realm_seg.base);
    ssize_t fh = h2o_find_header_by_str(&req->headers, H2O_STRLIT(HDR_FORWARDED), -1);
    int rc = api->cluster.owner(api->cluster.ctx, realm, node, url);
    switch (qbc_api__forward_decide(rc, fh >= 0)) {
    case QBC_FWD_LOCAL:
        return 0;
    case QBC_FWD_FORWARD:
        if (api->forwarder->multi == NULL) { /* stopping: the worker is gone */
            qbc_api__respond_error(req, 503, "Service Unavailable", "shutting_down",
                                   "the service is stopping; retry later");
            return 1;
        }
        forward(api, req, node, url);
        return 1;
    case QBC_FWD_LOOP:
        api->fwd.loops++;
        snprintf(msg, sizeof(msg),
                 "node %.*s forwarded this request for realm %s here, but this node (%s) does not own it either (its "
                 "owner as seen here: %s); ownership is moving: retry",
                 (int)req->headers.entries[fh].value.len, req->headers.entries[fh].value.base, realm,
                 api->cluster.node_id, node[0] ? node : "none");
        unavailable(req, "forward_loop", msg);
        return 1;
    case QBC_FWD_NO_OWNER:
        break;
    }
    api->fwd.no_owner++;
    if (node[0] == '\0')
        snprintf(msg, sizeof(msg), "no node owns realm %s's partition now (a takeover in progress?): retry", realm);
    else
        snprintf(msg, sizeof(msg),
                 "realm %s is node %s's, whose HTTP address is not known here (is its QBCDC_ADVERTISE_URL set, and "
                 "the node up?): retry",
                 realm, node);
    unavailable(req, "owner_unknown", msg);
    return 1;
}

int qbc_api__forward_job(qbc_api_t *api, h2o_req_t *req, uint64_t id)
{
    char node[QBC_API_NODE_MAX] = "", url[QBC_API_URL_MAX] = "";
    if (api->forwarder == NULL || api->forwarder->multi == NULL || api->cluster.job_node == NULL ||
        h2o_find_header_by_str(&req->headers, H2O_STRLIT(HDR_FORWARDED), -1) >= 0)
        return 0;
    if (api->cluster.job_node(api->cluster.ctx, id, node, url) != 0)
        return 0;
    forward(api, req, node, url);
    return 1;
}

/* ---------------------------------------------------------------- GET /admin/realms from any node */

/* the row of realm in rows (an array of realm rows), or NULL */
static json_t *row_of(json_t *rows, const char *realm)
{
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        const char *name = json_string_value(json_object_get(r, "realm"));
        if (name != NULL && strcmp(name, realm) == 0)
            return r;
    }
    return NULL;
}

json_t *qbc_api__realms_merge(json_t *rows, json_t *owners, json_t *answers, const char *self)
{
    json_t *out = json_array(), *unanswered = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        const char *realm = json_string_value(json_object_get(r, "realm"));
        const char *owner = realm != NULL ? json_string_value(json_object_get(owners, realm)) : NULL;
        json_t *row = NULL, *ans = owner != NULL ? json_object_get(answers, owner) : NULL;
        if (owner != NULL && strcmp(owner, self) != 0) {
            if (json_is_array(ans))
                row = row_of(ans, realm);
            else if (json_object_get(answers, owner) != NULL) { /* asked, no answer in time */
                size_t j;
                json_t *n;
                int listed = 0;
                json_array_foreach(unanswered, j, n) listed |= strcmp(json_string_value(n), owner) == 0;
                if (!listed)
                    json_array_append_new(unanswered, json_string(owner));
            }
        }
        if (row != NULL) { /* the owner's own figures */
            row = json_deep_copy(row);
            json_object_set_new(row, "figures_from", json_string(owner));
        } else { /* this node's: its own realm, no owner known, or the owner did not answer */
            row = json_deep_copy(r);
            json_object_set_new(row, "figures_from", json_string(self));
        }
        json_object_set_new(row, "owner", owner != NULL ? json_string(owner) : json_null());
        if (json_object_get(row, "owned_here") != NULL) /* the node answering, not the one the figures are from */
            json_object_set_new(row, "owned_here", json_boolean(owner != NULL && strcmp(owner, self) == 0));
        json_array_append_new(out, row);
    }
    return json_pack("{s:o,s:o}", "realms", out, "nodes_unanswered", unanswered);
}

typedef struct st_fan_guard_t {
    struct st_fan_t *fan;
} fan_guard_t;

typedef struct st_fan_t {
    qbc_api_t *api;
    const char *what;   /* the answer's list: "realms" or "subscriptions" */
    h2o_req_t *req;     /* while guard says the request lives */
    fan_guard_t *guard; /* NULL once the client went away */
    json_t *rows;       /* this node's rows */
    json_t *owners;     /* realm -> its owner */
    json_t *answers;    /* node -> its rows, or null: no (usable) answer */
    size_t pending;     /* calls out */
} fan_t;

static void fan_guard_dispose(void *p)
{
    fan_guard_t *g = p;
    if (g->fan != NULL)
        g->fan->guard = NULL;
}

static void fan_free(fan_t *fan)
{
    json_decref(fan->rows);
    json_decref(fan->owners);
    json_decref(fan->answers);
    free(fan);
}

/* one call of a fan-out: GET url/admin/<what>, marked so that the node answers its own */
static void fan_call(qbc_api_t *api, h2o_req_t *req, fan_t *fan, const char *node, const char *url)
{
    char path[128];
    snprintf(path, sizeof(path), "/admin/%s", fan->what);
    fwd_call_t *x = call_new(api, req, node, url, "GET", path, strlen(path));
    x->fan = fan;
    fan->pending++;
    enqueue(api, x);
}

json_t *qbc_api__nodes_merge(const char *what, json_t *rows, json_t *answers, const char *self)
{
    json_t *out = json_array(), *unanswered = json_array(), *r;
    size_t i;
    json_array_foreach(rows, i, r)
    {
        json_t *row = json_deep_copy(r);
        json_object_set_new(row, "node", json_string(self));
        json_array_append_new(out, row);
    }
    const char *node;
    json_t *theirs;
    json_object_foreach(answers, node, theirs)
    {
        if (!json_is_array(theirs)) {
            json_array_append_new(unanswered, json_string(node));
            continue;
        }
        json_array_foreach(theirs, i, r)
        {
            json_t *row = json_deep_copy(r);
            json_object_set_new(row, "node", json_string(node));
            json_array_append_new(out, row);
        }
    }
    return json_pack("{s:o,s:o}", what, out, "nodes_unanswered", unanswered);
}

int qbc_api__subscriptions_fan_out(qbc_api_t *api, h2o_req_t *req, json_t *rows)
{
    struct st_api_forwarder_t *f = api->forwarder;
    if (f == NULL || f->multi == NULL || api->cluster.peers == NULL ||
        h2o_find_header_by_str(&req->headers, H2O_STRLIT(HDR_FORWARDED), -1) >= 0)
        return 0; /* one node, stopping, or asked by another node for its own: never fan out again */
    char nodes[32][QBC_API_NODE_MAX], urls[32][QBC_API_URL_MAX];
    unsigned n = api->cluster.peers(api->cluster.ctx, nodes, urls, 32);
    if (n == 0)
        return 0;
    fan_t *fan = qbc_calloc(1, sizeof(*fan));
    fan->api = api;
    fan->req = req;
    fan->what = "subscriptions";
    fan->rows = json_incref(rows);
    fan->answers = json_object();
    for (unsigned i = 0; i < n; i++)
        fan_call(api, req, fan, nodes[i], urls[i]);
    fan->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*fan->guard), fan_guard_dispose);
    fan->guard->fan = fan;
    return 1;
}

static void fan_answer(fwd_call_t *x)
{
    fan_t *fan = x->fan;
    json_t *rows = NULL;
    if (x->cc == CURLE_OK && x->status == 200 && !x->too_big && x->resp != NULL) {
        json_t *o = json_loadb(x->resp, x->resp_len, 0, NULL);
        if (json_is_array(json_object_get(o, fan->what)))
            rows = json_incref(json_object_get(o, fan->what));
        json_decref(o);
    }
    if (rows == NULL) {
        x->api->fwd.unreachable++;
        qbc_log(QBC_LOG_WARN, "api", "GET /admin/%s: node %s (%s) did not answer its own: %s", fan->what, x->node,
                x->url,
                x->err[0]           ? x->err
                : x->cc != CURLE_OK ? curl_easy_strerror(x->cc)
                                    : "a bad answer");
    } else {
        x->api->fwd.relayed++;
    }
    json_object_set_new(fan->answers, x->node, rows != NULL ? rows : json_null());
    if (--fan->pending > 0)
        return;
    if (fan->guard != NULL) {
        fan->guard->fan = NULL;
        const char *self = fan->api->cluster.node_id;
        qbc_api__respond_obj(fan->req, 200, "OK",
                             fan->owners != NULL ? qbc_api__realms_merge(fan->rows, fan->owners, fan->answers, self)
                                                 : qbc_api__nodes_merge(fan->what, fan->rows, fan->answers, self));
    }
    fan_free(fan);
}

int qbc_api__realms_fan_out(qbc_api_t *api, h2o_req_t *req, json_t *rows)
{
    struct st_api_forwarder_t *f = api->forwarder;
    char node[QBC_API_NODE_MAX], url[QBC_API_URL_MAX];
    if (f == NULL)
        return 0;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) json_object_set_new(r, "figures_from", json_string(api->cluster.node_id));
    if (f->multi == NULL || h2o_find_header_by_str(&req->headers, H2O_STRLIT(HDR_FORWARDED), -1) >= 0)
        return 0; /* stopping, or asked by another node for this node's own figures: never fan out again */
    fan_t *fan = qbc_calloc(1, sizeof(*fan));
    fan->api = api;
    fan->req = req;
    fan->what = "realms";
    fan->rows = json_incref(rows);
    fan->owners = json_object();
    fan->answers = json_object();
    json_t *urls = json_object();
    json_array_foreach(rows, i, r)
    {
        const char *realm = json_string_value(json_object_get(r, "realm"));
        node[0] = url[0] = '\0';
        int rc = realm != NULL ? api->cluster.owner(api->cluster.ctx, realm, node, url) : -1;
        if (rc == 1)
            json_object_set_new(fan->owners, realm, json_string(api->cluster.node_id));
        else if (node[0] != '\0')
            json_object_set_new(fan->owners, realm, json_string(node));
        if (rc == 0 && json_object_get(urls, node) == NULL)
            json_object_set_new(urls, node, json_string(url));
    }
    const char *n;
    json_t *u;
    json_object_foreach(urls, n, u) fan_call(api, req, fan, n, json_string_value(u));
    json_decref(urls);
    if (fan->pending == 0) { /* every realm is this node's, or no other owner is reachable */
        fan_free(fan);
        return 0;
    }
    fan->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*fan->guard), fan_guard_dispose);
    fan->guard->fan = fan;
    return 1;
}

void qbc_api_set_cluster(qbc_api_t *api, const qbc_api_cluster_t *c)
{
    if (api->forwarder != NULL || c == NULL || c->owner == NULL)
        return;
    api->cluster = *c;
    snprintf(api->cluster_node_id, sizeof(api->cluster_node_id), "%s", c->node_id != NULL ? c->node_id : "");
    api->cluster.node_id = api->cluster_node_id;
    struct st_api_forwarder_t *f = qbc_calloc(1, sizeof(*f));
    f->timeout_ms = c->forward_timeout_ms ? c->forward_timeout_ms : 5000;
    pthread_mutex_init(&f->mu, NULL);
    if ((f->multi = curl_multi_init()) == NULL)
        qbc_fatal("curl_multi_init failed");
    h2o_multithread_register_receiver(api->ctx.queue, &f->answers, on_answers);
    if (pthread_create(&f->thread, NULL, worker_main, f) != 0)
        qbc_fatal("cannot start the admin forwarding thread");
    api->forwarder = f;
}

void qbc_api__forward_shutdown(qbc_api_t *api)
{
    struct st_api_forwarder_t *f = api->forwarder;
    if (f == NULL || f->multi == NULL)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_mutex_unlock(&f->mu);
    curl_multi_wakeup(f->multi);
    pthread_join(f->thread, NULL); /* every call is answered (in the queue) once it returns */
    curl_multi_cleanup(f->multi);
    f->multi = NULL;
}

void qbc_api__forward_dispose(qbc_api_t *api)
{
    struct st_api_forwarder_t *f = api->forwarder;
    if (f == NULL)
        return;
    qbc_api__forward_shutdown(api);
    h2o_multithread_unregister_receiver(api->ctx.queue, &f->answers);
    pthread_mutex_destroy(&f->mu);
    free(f);
    api->forwarder = NULL;
}
