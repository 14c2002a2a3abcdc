/*
 * server.c — qbosim's HTTP face: h2o (evloop) routes for the QBO API, Intuit's
 * OAuth endpoints and qbosim's own /sim/... control surface, plus the loop-thread
 * machinery around them: the 10 ms tick that releases delayed responses and runs
 * scheduled mutations, per-realm limits and stats, and fault injection.
 *
 * One thread runs everything here; the webhook sender reports back through h2o's
 * multithread queue (STYLE.md 3.1 #13). Request order for /v3/company/{realm}/...:
 *   auth (401 lowercase fault) → concurrency and rate limits (429) → injected
 *   faults (reset, 5xx) → the endpoint → optional injected latency.
 * Only requests that pass auth count against the limits.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>
#include <curl/curl.h>
#include "h2o.h"
#include "common.h"
#include "sim.h"

#define MOD "qbosim"
#define METER_SECONDS 3600 /* /sim/stats metered_per_second reaches back this far */

enum { EP_READ, EP_QUERY, EP_CDC, EP_BATCH, EP_N };
static const char *const ep_names[EP_N] = {"read", "query", "cdc", "batch"};

typedef struct {
    uint64_t calls[EP_N];
    uint64_t throttled, unauthorized, minorversion_missing, injected_errors, injected_resets;
    uint64_t metered; /* what Intuit meters (qbo-facts 5.1): 2xx answers, a batch counting its items */
    sim_ratelimit_t rl, batch_rl;
    int inflight;
} realm_state_t;

/* a response held back by injected latency. */
typedef struct st_deferred_t {
    struct st_deferred_t *next;
    h2o_req_t *req; /* NULL once h2o disposed the request */
    struct st_req_guard_t *guard;
    int status;
    char *body;
    const char *ctype;
    int realm; /* whose in-flight count to release, -1 for none */
    int64_t due_ms;
    int64_t start_ms; /* when the request came (token answers: due = start + token_latency_ms) */
    int token;        /* a token endpoint answer: held by token_latency_ms */
} deferred_t;

struct st_req_guard_t {
    deferred_t *d;
    struct st_mutate_cmd_t *cmd;
};

/* a POST /sim/mutate waiting for its webhooks' first attempts. */
typedef struct st_mutate_cmd_t {
    struct st_mutate_cmd_t *next;
    uint64_t tag;
    h2o_req_t *req;
    struct st_req_guard_t *guard;
    size_t remaining;
    size_t changes;
} mutate_cmd_t;

typedef struct {
    h2o_multithread_message_t super;
    uint64_t tag;
} first_msg_t;

typedef struct {
    sim_conf_t conf;
    sim_model_t model;
    sim_oauth_t *oauth;
    sim_sender_t *sender;
    realm_state_t *rs;
    sim_rng_t rng; /* faults, webhook shaping, CloudEvent ids */
    char ce_source[80];
    /* runtime-adjustable faults */
    int latency_ms, delay_ms;
    const char *state_path;  /* --state (NULL: none) */
    int64_t saved_change_ns; /* the model's last_change_ns when it was last saved */
    int64_t saved_at_ms;
    int token_latency_ms; /* the token endpoint's answers wait this long (decided at once) */
    double error_rate, reset_rate, throttle_xml, loss, dup, reorder;
    /* stats */
    uint64_t oauth_token_calls, oauth_invalid_grant, oauth_revokes, oauth_authorize, changes_made, throttled_total;
    unsigned answering_cost; /* metered units of the API request being answered (1, or a batch's items) */
    /* the app's metered units by the wall-clock second they were answered in, the last METER_SECONDS
     * seconds: what a test needs to sum them by any period aligned to whole seconds */
    struct {
        int64_t sec;
        uint64_t units;
    } metered_at[METER_SECONDS];
    /* loop */
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int listen_fd;
    h2o_timeout_t tick;
    h2o_timeout_entry_t tick_entry;
    h2o_multithread_receiver_t receiver;
    deferred_t *deferred;
    mutate_cmd_t *cmds;
    uint64_t next_tag;
    /* scheduled mutations and their webhook batch */
    double mutate_credit;
    int64_t last_tick_ms;
    sim_change_t *batch;
    size_t nbatch, capbatch;
    int64_t batch_started_ms;
    /* accepted fds → peer port, to find a connection's socket for reset injection */
    uint16_t *fd_port;
    size_t nfd_port;
} sim_t;

static sim_t S;
static volatile sig_atomic_t stop_requested;

static int64_t mono_ms(void)
{
    return qbc_mono_ns() / 1000000;
}

/* ============================== responses ============================== */

/* sends body (taken over) now. */
static void send_now(h2o_req_t *req, int status, char *body, const char *ctype)
{
    size_t len = strlen(body);
    req->res.status = status;
    req->res.reason = qbc_http_reason(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
    h2o_send_inline(req, body, len);
    free(body);
}

static void send_json(h2o_req_t *req, int status, json_t *j)
{
    char *s = sim_json_dump(j);
    json_decref(j);
    send_now(req, status, s, "application/json;charset=UTF-8");
}

static void sim_error(h2o_req_t *req, int status, const char *code, const char *message)
{
    json_t *j = json_object();
    json_object_set_new(j, "error", json_string(code));
    json_object_set_new(j, "message", json_string(message));
    send_json(req, status, j);
}

static void on_req_dispose(void *p)
{
    struct st_req_guard_t *g = p;
    if (g->d)
        g->d->req = NULL;
    if (g->cmd)
        g->cmd->req = NULL;
}

/* answers after latency_ms (0: now); releases the realm's in-flight slot (realm >= 0) when
 * the answer goes out. Takes body over. */
static void respond_after(h2o_req_t *req, int realm, int status, char *body, const char *ctype, int latency_ms,
                          int token)
{
    if (latency_ms <= 0) {
        if (realm >= 0)
            S.rs[realm].inflight--;
        send_now(req, status, body, ctype);
        return;
    }
    deferred_t *d = qbc_calloc(1, sizeof(*d));
    d->req = req;
    d->status = status;
    d->body = body;
    d->ctype = ctype;
    d->realm = realm;
    d->start_ms = mono_ms();
    d->due_ms = d->start_ms + latency_ms;
    d->token = token;
    d->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*d->guard), on_req_dispose);
    memset(d->guard, 0, sizeof(*d->guard));
    d->guard->d = d;
    d->next = S.deferred;
    S.deferred = d;
}

/* answers an API request, after the injected latency if any */
static void api_respond(h2o_req_t *req, int realm, int status, char *body, const char *ctype)
{
    if (realm >= 0 && status >= 200 && status < 300) {
        S.rs[realm].metered += S.answering_cost;
        int64_t sec = qbc_now_ns() / 1000000000;
        size_t slot = (size_t)(sec % METER_SECONDS);
        if (S.metered_at[slot].sec != sec) {
            S.metered_at[slot].sec = sec;
            S.metered_at[slot].units = 0;
        }
        S.metered_at[slot].units += S.answering_cost;
    }
    respond_after(req, realm, status, body, ctype, S.latency_ms, 0);
}

static void api_respond_json(h2o_req_t *req, int realm, int status, json_t *j)
{
    char *s = sim_json_dump(j);
    json_decref(j);
    api_respond(req, realm, status, s, "application/json;charset=UTF-8");
}

/* sends the delayed answers that are due (all: every one, at teardown). */
static void release_deferred(int all)
{
    int64_t now = mono_ms();
    deferred_t **pp = &S.deferred;
    while (*pp) {
        deferred_t *d = *pp;
        if (!all && d->due_ms > now) {
            pp = &d->next;
            continue;
        }
        *pp = d->next;
        if (d->realm >= 0)
            S.rs[d->realm].inflight--;
        if (d->req) {
            d->guard->d = NULL;
            send_now(d->req, d->status, d->body, d->ctype);
        } else {
            free(d->body);
        }
        free(d);
    }
}

/* ============================== helpers ============================== */

static h2o_iovec_t header_value(h2o_req_t *req, const h2o_token_t *tok)
{
    ssize_t i = h2o_find_header(&req->headers, tok, -1);
    if (i < 0)
        return h2o_iovec_init(NULL, 0);
    return req->headers.entries[i].value;
}

/* the query string (without '?'), or an empty view. */
static h2o_iovec_t query_string(h2o_req_t *req)
{
    if (req->query_at == SIZE_MAX)
        return h2o_iovec_init("", 0);
    return h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
}

static int qparam(h2o_req_t *req, const char *key, char *out, size_t outsz)
{
    h2o_iovec_t q = query_string(req);
    return sim_form_get(q.base, q.len, key, out, outsz);
}

static int is_method(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

/* appends the percent-encoding of s to the NUL-terminated string in out */
static void url_encode_append(char *out, size_t outsz, const char *s)
{
    size_t n = strlen(out);
    qbc_url_encode(s, out + n, outsz - n);
}

/* ============================== OAuth routes ============================== */

static void handle_token(h2o_req_t *req)
{
    h2o_iovec_t auth = header_value(req, H2O_TOKEN_AUTHORIZATION);
    S.oauth_token_calls++;
    if (sim_oauth_check_client(S.oauth, auth.base, auth.len) != 0) {
        json_t *j = json_object();
        json_object_set_new(j, "error", json_string("invalid_client"));
        send_json(req, 401, j);
        return;
    }
    json_t *out = NULL;
    int status =
        sim_oauth_token(S.oauth, req->entity.base ? req->entity.base : "", req->entity.len, qbc_now_ns(), &out);
    const char *err = json_string_value(json_object_get(out, "error"));
    if (err && strcmp(err, "invalid_grant") == 0)
        S.oauth_invalid_grant++;
    /* §7: clients opt in to the refresh token's 5-year hard expiry with this header */
    ssize_t hi = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-include-refresh-token-hard-expires-in"), -1);
    if (status == 200 && hi >= 0 &&
        h2o_memis(req->headers.entries[hi].value.base, req->headers.entries[hi].value.len, H2O_STRLIT("true")))
        json_object_set_new(out, "x_refresh_token_hard_expires_in", json_integer(157680000));
    /* decided (a refresh rotates the token) now; answered after token_latency_ms */
    char *text = sim_json_dump(out);
    json_decref(out);
    respond_after(req, -1, status, text, "application/json;charset=UTF-8", S.token_latency_ms, 1);
}

static void handle_revoke(h2o_req_t *req)
{
    h2o_iovec_t auth = header_value(req, H2O_TOKEN_AUTHORIZATION);
    S.oauth_revokes++;
    if (sim_oauth_check_client(S.oauth, auth.base, auth.len) != 0) {
        json_t *j = json_object();
        json_object_set_new(j, "error", json_string("invalid_client"));
        send_json(req, 401, j);
        return;
    }
    json_error_t jerr;
    json_t *body = json_loadb(req->entity.base ? req->entity.base : "", req->entity.len, 0, &jerr);
    const char *tok = body ? json_string_value(json_object_get(body, "token")) : NULL;
    char form_tok[256];
    if (!tok && sim_form_get(req->entity.base ? req->entity.base : "", req->entity.len, "token", form_tok,
                             sizeof(form_tok)) >= 0)
        tok = form_tok;
    if (!tok) {
        json_decref(body);
        json_t *j = json_object();
        json_object_set_new(j, "error", json_string("invalid_request"));
        send_json(req, 400, j);
        return;
    }
    sim_oauth_revoke_token(S.oauth, tok, qbc_now_ns()); /* RFC 7009: unknown tokens are not an error */
    json_decref(body);
    send_now(req, 200, qbc_strdup(""), "text/plain");
}

static void handle_authorize(h2o_req_t *req)
{
    char client_id[256], redirect[1024], state[512], realm[32], loc[2600];
    S.oauth_authorize++;
    if (qparam(req, "client_id", client_id, sizeof(client_id)) < 0 || strcmp(client_id, S.conf.client_id) != 0) {
        sim_error(req, 400, "invalid_client", "unknown client_id");
        return;
    }
    if (qparam(req, "redirect_uri", redirect, sizeof(redirect)) <= 0) {
        sim_error(req, 400, "invalid_request", "redirect_uri missing");
        return;
    }
    if (qparam(req, "state", state, sizeof(state)) < 0)
        state[0] = '\0';
    int ri = 0;
    if (qparam(req, "realmId", realm, sizeof(realm)) > 0 || qparam(req, "realm", realm, sizeof(realm)) > 0) {
        ri = sim_model_find_realm(&S.model, realm, strlen(realm));
        if (ri < 0) {
            sim_error(req, 400, "invalid_request", "unknown realm");
            return;
        }
    }
    const char *code = sim_oauth_new_code(S.oauth, S.model.realms[ri].id, redirect, qbc_now_ns());
    snprintf(loc, sizeof(loc), "%s%scode=", redirect, strchr(redirect, '?') ? "&" : "?");
    url_encode_append(loc, sizeof(loc), code);
    strncat(loc, "&state=", sizeof(loc) - strlen(loc) - 1);
    url_encode_append(loc, sizeof(loc), state);
    strncat(loc, "&realmId=", sizeof(loc) - strlen(loc) - 1);
    url_encode_append(loc, sizeof(loc), S.model.realms[ri].id);
    h2o_send_redirect(req, 302, "Found", loc, strlen(loc));
}

/* ============================== QBO API ============================== */

static void respond_fault(h2o_req_t *req, int realm, int status, const char *type, const char *code, const char *msg,
                          const char *detail)
{
    api_respond_json(req, realm, status, sim_fault_json(type, code, msg, detail, qbc_now_ns()));
}

/*
 * Answers that carry entities are written as text, so the entity bytes of
 * sim_entity_write go out as they are (never re-serialised through jansson):
 * answer_open starts {"<key>":, the caller appends the value, and answer_send closes
 * it with QBO's "time" and sends it, taking b's bytes over.
 */
static void answer_open(qbc_buf_t *b, const char *key)
{
    (void)qbc_buf_printf(b, "{\"%s\":", key);
}

static void answer_send(h2o_req_t *req, int realm, qbc_buf_t *b, int64_t time_ns)
{
    char buf[40];
    (void)qbc_buf_printf(b, ",\"time\":\"%s\"}", sim_time_pacific(time_ns, 1, 1, buf));
    api_respond(req, realm, 200, b->data, "application/json;charset=UTF-8");
}

static void api_read(h2o_req_t *req, int realm, const char *ent, size_t entlen, const char *id, size_t idlen)
{
    int et = sim_etype_lookup(ent, entlen, 0);
    if (et < 0) {
        respond_fault(req, realm, 400, "ValidationFault", "500", "Unsupported Operation",
                      "Operation Could not find resource for relative path is not supported.");
        return;
    }
    char idbuf[16];
    uint32_t idn = 0;
    if (idlen > 0 && idlen < sizeof(idbuf)) {
        memcpy(idbuf, id, idlen);
        idbuf[idlen] = '\0';
        char *end;
        unsigned long v = strtoul(idbuf, &end, 10);
        if (*end == '\0')
            idn = (uint32_t)v;
    }
    sim_entity_t *e = sim_model_get(&S.model, realm, et, idn);
    if (!e || e->deleted) {
        /* §6: 610 Object Not Found, worded as QBO does for lists vs transactions */
        const char *detail =
            sim_etype_is_namelist(et)
                ? "Object Not Found : Something you're trying to use has been made inactive. Check the "
                  "fields with accounts, customers, items, vendors or employees."
                : "Object Not Found : Another user has deleted this transaction.";
        respond_fault(req, realm, 400, "ValidationFault", "610", "Object Not Found", detail);
        return;
    }
    qbc_buf_t b = {0};
    answer_open(&b, sim_etype_names[et]);
    sim_entity_write(et, e, &b);
    answer_send(req, realm, &b, qbc_now_ns());
}

static void api_query(h2o_req_t *req, int realm)
{
    char *text = NULL;
    size_t len = 0;
    if (is_method(req, "POST")) {
        text = qbc_strndup(req->entity.base ? req->entity.base : "", req->entity.len);
        len = req->entity.len;
    } else {
        h2o_iovec_t q = query_string(req);
        text = qbc_alloc(q.len + 1);
        int n = sim_form_get(q.base, q.len, "query", text, q.len + 1);
        len = n < 0 ? 0 : (size_t)n;
    }
    sim_query_t q;
    char err[256];
    if (sim_query_parse(text, len, &q, err, sizeof(err)) != 0) {
        free(text);
        respond_fault(req, realm, 400, "ValidationFault", "4000", "Error parsing query", err);
        return;
    }
    free(text);
    qbc_buf_t b = {0};
    answer_open(&b, "QueryResponse");
    sim_query_run(&S.model, realm, &q, &b);
    sim_query_dispose(&q);
    answer_send(req, realm, &b, qbc_now_ns());
}

static void api_cdc(h2o_req_t *req, int realm)
{
    char ents[1024], since[128];
    int64_t now = qbc_now_ns(), since_ns;
    if (qparam(req, "entities", ents, sizeof(ents)) <= 0 || qparam(req, "changedSince", since, sizeof(since)) <= 0) {
        respond_fault(req, realm, 400, "ValidationFault", "2020",
                      "Required param missing, need to supply the required value for the API",
                      "Required parameter entities and changedSince is missing in the request");
        return;
    }
    if (sim_time_parse_qbo(since, strlen(since), &since_ns) != 0) {
        respond_fault(req, realm, 400, "ValidationFault", "2020", "Invalid changedSince",
                      "changedSince must be an ISO-8601 date or date-time");
        return;
    }
    if (since_ns < now - (int64_t)SIM_CDC_MAX_DAYS * 86400 * 1000000000LL) {
        char detail[256];
        snprintf(detail, sizeof(detail),
                 "Operation cdc with changedSince date %s which is older than fixed days is not supported.", since);
        /* the code is not in any source we have; the Detail text is ([S43c]) */
        respond_fault(req, realm, 400, "ValidationFault", "6000",
                      "A business validation error has occurred while processing your request", detail);
        return;
    }
    int types[SIM_NTYPES * 4];
    size_t nt = 0;
    for (char *tok = ents, *save = NULL; (tok = strtok_r(tok, ",", &save)) != NULL; tok = NULL) {
        while (*tok == ' ')
            tok++;
        size_t tl = strlen(tok);
        while (tl && tok[tl - 1] == ' ')
            tl--;
        int et = sim_etype_lookup(tok, tl, 0);
        if (et < 0) {
            char detail[160];
            snprintf(detail, sizeof(detail), "Entity %.60s is not supported by qbosim's CDC", tok);
            respond_fault(req, realm, 400, "ValidationFault", "2020", "Invalid entity", detail);
            return;
        }
        if (nt < sizeof(types) / sizeof(types[0]))
            types[nt++] = et;
    }
    qbc_buf_t b = {0};
    answer_open(&b, "CDCResponse");
    sim_cdc_run(&S.model, realm, types, nt, since_ns, SIM_CDC_MAX_OBJECTS, NULL, &b);
    /* later than every change in this answer, earlier than every change after it */
    answer_send(req, realm, &b, sim_model_watermark(&S.model, now));
}

static void api_batch(h2o_req_t *req, int realm, json_t *body)
{
    json_t *items = json_object_get(body, "BatchItemRequest");
    qbc_buf_t b = {0};
    size_t i;
    json_t *item;
    answer_open(&b, "BatchItemResponse");
    (void)qbc_buf_append(&b, "[", 1);
    json_array_foreach(items, i, item)
    {
        json_t *bid = json_object_get(item, "bId");
        (void)qbc_buf_printf(&b, "%s{\"bId\":", i > 0 ? "," : "");
        sim_json_splice(bid ? bid : json_null(), &b);
        const char *qtext = json_string_value(json_object_get(item, "Query"));
        json_t *whole = NULL;
        if (qtext) {
            sim_query_t q;
            char err[256];
            if (sim_query_parse(qtext, strlen(qtext), &q, err, sizeof(err)) == 0) {
                (void)qbc_buf_printf(&b, ",\"QueryResponse\":");
                sim_query_run(&S.model, realm, &q, &b);
                sim_query_dispose(&q);
            } else {
                whole = sim_fault_json("ValidationFault", "4000", "Error parsing query", err, 0);
            }
        } else {
            whole = sim_fault_json("ValidationFault", "500", "Unsupported Operation",
                                   "qbosim's batch endpoint runs Query items only", 0);
        }
        if (whole) {
            /* batch item faults put type before Error (§4 sample) */
            json_t *fault = json_object_get(whole, "Fault");
            json_t *f = json_object();
            json_object_set(f, "type", json_object_get(fault, "type"));
            json_object_set(f, "Error", json_object_get(fault, "Error"));
            (void)qbc_buf_printf(&b, ",\"Fault\":");
            sim_json_splice(f, &b);
            json_decref(f);
            json_decref(whole);
        }
        (void)qbc_buf_append(&b, "}", 1);
    }
    (void)qbc_buf_append(&b, "]", 1);
    answer_send(req, realm, &b, qbc_now_ns());
}

/* ============================== fault injection ============================== */

static void remember_fd(int fd, const struct sockaddr_in *peer)
{
    if ((size_t)fd >= S.nfd_port) {
        size_t n = (size_t)fd * 2 + 64;
        S.fd_port = qbc_realloc(S.fd_port, n * sizeof(*S.fd_port));
        memset(S.fd_port + S.nfd_port, 0, (n - S.nfd_port) * sizeof(*S.fd_port));
        S.nfd_port = n;
    }
    S.fd_port[fd] = ntohs(peer->sin_port);
}

/* drops the request's TCP connection: the client sees it end with no answer. */
static void reset_connection(h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (sl == 0 || ss.ss_family != AF_INET)
        return;
    uint16_t port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    for (size_t fd = 0; fd < S.nfd_port; fd++) {
        if (S.fd_port[fd] != port)
            continue;
        struct sockaddr_in peer;
        socklen_t pl = sizeof(peer);
        /* the table may be stale (fds are reused): confirm it is this very connection */
        if (getpeername((int)fd, (struct sockaddr *)&peer, &pl) != 0 || peer.sin_port != htons(port) ||
            memcmp(&peer.sin_addr, &((struct sockaddr_in *)&ss)->sin_addr, sizeof(peer.sin_addr)) != 0)
            continue;
        struct linger lg = {1, 0};
        setsockopt((int)fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        shutdown((int)fd, SHUT_RDWR);
        return;
    }
}

/* is fd (still) a connection accepted on our listener? */
static int is_client_fd(int fd)
{
    struct sockaddr_in peer, local;
    socklen_t pl = sizeof(peer), ll = sizeof(local);
    if ((size_t)fd >= S.nfd_port || S.fd_port[fd] == 0)
        return 0;
    if (getpeername(fd, (struct sockaddr *)&peer, &pl) != 0 || ntohs(peer.sin_port) != S.fd_port[fd])
        return 0;
    return getsockname(fd, (struct sockaddr *)&local, &ll) == 0 && ntohs(local.sin_port) == S.conf.listen_port;
}

/* shuts every open client connection (h2o then closes it); returns how many were open. */
static int close_client_connections(void)
{
    int n = 0;
    for (size_t fd = 0; fd < S.nfd_port; fd++) {
        if (!is_client_fd((int)fd)) {
            if (fd < S.nfd_port)
                S.fd_port[fd] = 0;
            continue;
        }
        shutdown((int)fd, SHUT_RDWR);
        n++;
    }
    return n;
}

/* ============================== API dispatch ============================== */

static void handle_api(h2o_req_t *req, const char *rest, size_t restlen)
{
    /* rest = "{realmId}/{endpoint...}" */
    const char *slash = memchr(rest, '/', restlen);
    if (!slash) {
        sim_error(req, 404, "not_found", "no such path");
        return;
    }
    int realm = sim_model_find_realm(&S.model, rest, (size_t)(slash - rest));
    const char *ep = slash + 1;
    size_t eplen = restlen - (size_t)(ep - rest);
    const char *sub = memchr(ep, '/', eplen);
    int kind;
    if (sub)
        kind = EP_READ;
    else if (h2o_memis(ep, eplen, H2O_STRLIT("query")))
        kind = EP_QUERY;
    else if (h2o_memis(ep, eplen, H2O_STRLIT("cdc")))
        kind = EP_CDC;
    else if (h2o_memis(ep, eplen, H2O_STRLIT("batch")))
        kind = EP_BATCH;
    else {
        sim_error(req, 404, "not_found", "no such endpoint");
        return;
    }
    int64_t now = qbc_now_ns();

    /* authentication: the gateway's lowercase fault (§6) */
    h2o_iovec_t auth = header_value(req, H2O_TOKEN_AUTHORIZATION);
    const char *detail = NULL;
    char realm_id[64];
    snprintf(realm_id, sizeof(realm_id), "%.*s", (int)(slash - rest), rest);
    if (sim_oauth_check_bearer(S.oauth, auth.base, auth.len, realm_id, now, &detail) != 0 || realm < 0) {
        if (realm >= 0)
            S.rs[realm].unauthorized++;
        send_json(req, 401, sim_auth_fault_json(detail ? detail : "Unknown company", now));
        return;
    }
    realm_state_t *rs = &S.rs[realm];
    rs->calls[kind]++;
    char mv[16];
    if (qparam(req, "minorversion", mv, sizeof(mv)) <= 0)
        rs->minorversion_missing++;

    json_t *batch_body = NULL;
    size_t cost = 1;
    if (kind == EP_BATCH) {
        json_error_t jerr;
        batch_body = json_loadb(req->entity.base ? req->entity.base : "", req->entity.len, 0, &jerr);
        json_t *items = batch_body ? json_object_get(batch_body, "BatchItemRequest") : NULL;
        if (!json_is_array(items)) {
            json_decref(batch_body);
            send_json(req, 400,
                      sim_fault_json("ValidationFault", "2020",
                                     "Required param missing, need to supply the required value for the API",
                                     "Required parameter BatchItemRequest is missing in the request", now));
            return;
        }
        if (json_array_size(items) > (size_t)S.conf.batch_max_items) {
            char d[128];
            json_decref(batch_body);
            snprintf(d, sizeof(d), "Batch requests are limited to %d items", S.conf.batch_max_items);
            send_json(req, 400,
                      sim_fault_json("ValidationFault", "6000",
                                     "A business validation error has occurred while processing your request", d, now));
            return;
        }
        cost = json_array_size(items) ? json_array_size(items) : 1; /* each item metered like a call (§4) */
    }

    /* limits (§5): concurrency, then the per-minute window */
    int64_t mono = qbc_mono_ns();
    int over = rs->inflight >= S.conf.concurrency_limit;
    if (!over && kind == EP_BATCH && !sim_ratelimit_admit(&rs->batch_rl, mono, 1))
        over = 1;
    if (!over && !sim_ratelimit_admit(&rs->rl, mono, cost))
        over = 1;
    if (over) {
        json_decref(batch_body);
        rs->throttled++;
        S.throttled_total++;
        if (sim_rng_unit(&S.rng) < S.throttle_xml)
            send_now(req, 429, sim_throttle_xml(now), "application/xml");
        else
            send_json(req, 429,
                      sim_fault_json("SERVICE", "3001", "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                                     "The request limit was reached.  Try again later", now));
        return;
    }
    rs->inflight++;

    /* injected faults */
    if (S.reset_rate > 0 && sim_rng_unit(&S.rng) < S.reset_rate) {
        json_decref(batch_body);
        rs->injected_resets++;
        reset_connection(req);
        rs->inflight--;
        send_now(req, 500, qbc_strdup(""), "text/plain"); /* goes nowhere: the socket is shut */
        return;
    }
    if (S.error_rate > 0 && sim_rng_unit(&S.rng) < S.error_rate) {
        json_decref(batch_body);
        rs->injected_errors++;
        if (sim_rng_below(&S.rng, 2))
            respond_fault(req, realm, 500, "SystemFault", "10000",
                          "An application error has occurred while processing your request",
                          "System Failure Error: injected by qbosim");
        else
            respond_fault(req, realm, 503, "SystemFault", "10000", "The service is temporarily unavailable",
                          "The service is temporarily unavailable");
        return;
    }

    S.answering_cost = (unsigned)cost; /* api_respond meters a 2xx answer with it */
    switch (kind) {
    case EP_READ:
        api_read(req, realm, ep, (size_t)(sub - ep), sub + 1, eplen - (size_t)(sub + 1 - ep));
        break;
    case EP_QUERY:
        api_query(req, realm);
        break;
    case EP_CDC:
        api_cdc(req, realm);
        break;
    case EP_BATCH:
        api_batch(req, realm, batch_body);
        json_decref(batch_body);
        break;
    }
}

/* ============================== mutations and webhooks ============================== */

static void shuffle_adjacent(char **bodies, size_t n, double p)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (sim_rng_unit(&S.rng) < p) {
            char *t = bodies[i];
            bodies[i] = bodies[i + 1];
            bodies[i + 1] = t;
            i++;
        }
    }
}

/*
 * turns changes into webhooks (k changes each; per realm for classic) and hands them
 * to the sender with loss, duplication, reordering and delay applied. Returns how many
 * deliveries were submitted (each reports its first attempt with tag).
 */
static size_t post_changes(const sim_change_t *c, size_t n, int k, int format, double loss, uint64_t tag)
{
    if (!S.sender || n == 0)
        return 0;
    if (k < 1)
        k = 1;
    char **bodies = qbc_calloc(n, sizeof(*bodies));
    size_t nb = 0;
    sim_change_t *grp = qbc_alloc(n * sizeof(*grp));
    unsigned char *done = qbc_calloc(n, 1);
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        size_t g = 0;
        for (size_t j = i; j < n && g < (size_t)k; j++) {
            if (done[j] || (format == SIM_FMT_CLASSIC && c[j].realm != c[i].realm))
                continue;
            grp[g++] = c[j];
            done[j] = 1;
        }
        bodies[nb++] = sim_webhook_body(&S.model, grp, g, format, &S.rng, S.ce_source, S.conf.void_verb);
    }
    free(done);
    free(grp);
    if (S.reorder > 0)
        shuffle_adjacent(bodies, nb, S.reorder);
    const char *ctype =
        format == SIM_FMT_CLOUDEVENTS ? "application/cloudevents+json" : "application/json; charset=utf-8";
    size_t submitted = 0, lost = 0, dups = 0;
    for (size_t i = 0; i < nb; i++) {
        if (loss > 0 && sim_rng_unit(&S.rng) < loss) {
            free(bodies[i]);
            lost++;
            continue;
        }
        int64_t delay =
            S.delay_ms +
            (S.conf.delay_jitter_ms > 0 ? (int64_t)sim_rng_below(&S.rng, (uint64_t)S.conf.delay_jitter_ms + 1) : 0);
        if (S.dup > 0 && sim_rng_unit(&S.rng) < S.dup) {
            sim_sender_submit(S.sender, qbc_strdup(bodies[i]), strlen(bodies[i]), ctype,
                              delay + 1 + (int64_t)sim_rng_below(&S.rng, 50), tag);
            submitted++;
            dups++;
        }
        sim_sender_submit(S.sender, bodies[i], strlen(bodies[i]), ctype, delay, tag);
        submitted++;
    }
    free(bodies);
    if (lost)
        sim_sender_count_lost(S.sender, lost);
    if (dups)
        sim_sender_count_dup(S.sender, dups);
    return submitted;
}

static void mutate_respond(mutate_cmd_t *cmd)
{
    if (cmd->req) {
        cmd->guard->cmd = NULL;
        json_t *j = json_object();
        json_object_set_new(j, "changes", json_integer((json_int_t)cmd->changes));
        send_json(cmd->req, 200, j);
    }
}

static void handle_mutate(h2o_req_t *req)
{
    char v[64];
    long n = 1;
    int realm = -1, k = S.conf.per_hook, format = S.conf.format;
    double loss = S.loss;
    if (qparam(req, "n", v, sizeof(v)) > 0) {
        char *end;
        n = strtol(v, &end, 10);
        if (*end || n < 0 || n > 1000000) {
            sim_error(req, 400, "bad_request", "n must be an integer in 0..1000000");
            return;
        }
    }
    if (qparam(req, "realm", v, sizeof(v)) > 0) {
        realm = sim_model_find_realm(&S.model, v, strlen(v));
        if (realm < 0) {
            sim_error(req, 404, "unknown_realm", "no such realm");
            return;
        }
    }
    if (qparam(req, "per_hook", v, sizeof(v)) > 0 && (k = atoi(v)) < 1) {
        sim_error(req, 400, "bad_request", "per_hook must be >= 1");
        return;
    }
    if (qparam(req, "loss", v, sizeof(v)) > 0) {
        char *end;
        loss = strtod(v, &end);
        if (*end || loss < 0 || loss > 1) {
            sim_error(req, 400, "bad_request", "loss must be in [0,1]");
            return;
        }
    }
    if (qparam(req, "format", v, sizeof(v)) > 0) {
        if (strcmp(v, "classic") == 0)
            format = SIM_FMT_CLASSIC;
        else if (strcmp(v, "cloudevents") == 0)
            format = SIM_FMT_CLOUDEVENTS;
        else {
            sim_error(req, 400, "bad_request", "format must be classic or cloudevents");
            return;
        }
    }
    sim_change_t *c = qbc_alloc(((size_t)n + 1) * sizeof(*c));
    for (long i = 0; i < n; i++)
        sim_model_mutate(&S.model, realm, qbc_now_ns(), &c[i]);
    S.changes_made += (uint64_t)n;
    mutate_cmd_t *cmd = qbc_calloc(1, sizeof(*cmd));
    cmd->tag = ++S.next_tag;
    cmd->changes = (size_t)n;
    cmd->req = req;
    cmd->remaining = post_changes(c, (size_t)n, k, format, loss, cmd->tag);
    free(c);
    if (cmd->remaining == 0) {
        cmd->req = NULL;
        json_t *j = json_object();
        json_object_set_new(j, "changes", json_integer(n));
        send_json(req, 200, j);
        free(cmd);
        return;
    }
    cmd->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*cmd->guard), on_req_dispose);
    memset(cmd->guard, 0, sizeof(*cmd->guard));
    cmd->guard->cmd = cmd;
    cmd->next = S.cmds;
    S.cmds = cmd;
}

/* sender thread → loop thread: a webhook's first attempt is over. */
static void on_first_attempt(void *ctx, uint64_t tag)
{
    (void)ctx;
    if (tag == 0)
        return;
    first_msg_t *m = qbc_calloc(1, sizeof(*m));
    m->tag = tag;
    h2o_multithread_send_message(&S.receiver, &m->super);
}

static void on_messages(h2o_multithread_receiver_t *recv, h2o_linklist_t *messages)
{
    (void)recv;
    while (!h2o_linklist_is_empty(messages)) {
        first_msg_t *m = H2O_STRUCT_FROM_MEMBER(first_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        for (mutate_cmd_t **pp = &S.cmds; *pp; pp = &(*pp)->next) {
            mutate_cmd_t *cmd = *pp;
            if (cmd->tag != m->tag)
                continue;
            if (--cmd->remaining == 0) {
                *pp = cmd->next;
                mutate_respond(cmd);
                free(cmd);
            }
            break;
        }
        free(m);
    }
}

static void flush_batch(void)
{
    if (S.nbatch == 0)
        return;
    post_changes(S.batch, S.nbatch, S.conf.per_hook, S.conf.format, S.loss, 0);
    S.nbatch = 0;
}

static void scheduled_mutations(int64_t now_ms)
{
    if (S.conf.mutate_rate > 0) {
        S.mutate_credit += S.conf.mutate_rate * (double)(now_ms - S.last_tick_ms) / 1000.0;
        if (S.mutate_credit > 10000)
            S.mutate_credit = 10000;
        while (S.mutate_credit >= 1) {
            S.mutate_credit -= 1;
            if (S.nbatch == S.capbatch) {
                S.capbatch = S.capbatch ? S.capbatch * 2 : 64;
                S.batch = qbc_realloc(S.batch, S.capbatch * sizeof(*S.batch));
            }
            if (S.nbatch == 0)
                S.batch_started_ms = now_ms;
            sim_model_mutate(&S.model, -1, qbc_now_ns(), &S.batch[S.nbatch++]);
            S.changes_made++;
        }
    }
    if (S.nbatch && (now_ms - S.batch_started_ms >= S.conf.batch_window_ms || S.conf.batch_window_ms <= 0))
        flush_batch();
    S.last_tick_ms = now_ms;
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    (void)entry;
    if (stop_requested)
        return; /* not re-linked: teardown disposes of the timer */
    int64_t now = mono_ms();
    release_deferred(0);
    scheduled_mutations(now);
    if (S.state_path != NULL && S.model.last_change_ns != S.saved_change_ns && now - S.saved_at_ms >= 2000) {
        if (sim_model_save(&S.model, S.state_path) == 0)
            S.saved_change_ns = S.model.last_change_ns;
        S.saved_at_ms = now;
    }
    h2o_timeout_link(S.ctx.loop, &S.tick, &S.tick_entry);
}

/* ============================== /sim/... ============================== */

static void handle_sim_realms(h2o_req_t *req)
{
    json_t *j = json_object();
    int64_t now = qbc_now_ns();
    for (size_t i = 0; i < S.model.nrealms; i++) {
        json_t *r = json_object();
        json_object_set_new(r, "refresh_token",
                            json_string(sim_oauth_current_refresh(S.oauth, S.model.realms[i].id, now)));
        json_object_set_new(j, S.model.realms[i].id, r);
    }
    send_json(req, 200, j);
}

static void handle_sim_stats(h2o_req_t *req)
{
    json_t *j = json_object(), *realms = json_object();
    int64_t mono = qbc_mono_ns();
    for (size_t i = 0; i < S.model.nrealms; i++) {
        realm_state_t *rs = &S.rs[i];
        json_t *r = json_object(), *calls = json_object();
        uint64_t total = 0;
        for (int e = 0; e < EP_N; e++) {
            json_object_set_new(calls, ep_names[e], json_integer((json_int_t)rs->calls[e]));
            total += rs->calls[e];
        }
        json_object_set_new(r, "requests", calls);
        json_object_set_new(r, "total", json_integer((json_int_t)total));
        json_object_set_new(r, "metered", json_integer((json_int_t)rs->metered));
        json_object_set_new(r, "throttled", json_integer((json_int_t)rs->throttled));
        json_object_set_new(r, "unauthorized", json_integer((json_int_t)rs->unauthorized));
        json_object_set_new(r, "minorversion_missing", json_integer((json_int_t)rs->minorversion_missing));
        json_object_set_new(r, "injected_errors", json_integer((json_int_t)rs->injected_errors));
        json_object_set_new(r, "injected_resets", json_integer((json_int_t)rs->injected_resets));
        json_object_set_new(r, "window_used", json_integer((json_int_t)sim_ratelimit_used(&rs->rl, mono)));
        json_object_set_new(r, "in_flight", json_integer(rs->inflight));
        json_object_set_new(realms, S.model.realms[i].id, r);
    }
    json_object_set_new(j, "realms", realms);
    json_object_set_new(j, "throttled", json_integer((json_int_t)S.throttled_total));
    json_t *per_second = json_object();
    int64_t now_s = qbc_now_ns() / 1000000000;
    for (size_t i = 0; i < METER_SECONDS; i++) {
        if (S.metered_at[i].units == 0 || S.metered_at[i].sec <= now_s - METER_SECONDS)
            continue;
        char key[24];
        snprintf(key, sizeof(key), "%lld", (long long)S.metered_at[i].sec);
        json_object_set_new(per_second, key, json_integer((json_int_t)S.metered_at[i].units));
    }
    json_object_set_new(j, "metered_per_second", per_second);
    json_t *o = json_object();
    json_object_set_new(o, "token", json_integer((json_int_t)S.oauth_token_calls));
    json_object_set_new(o, "invalid_grant", json_integer((json_int_t)S.oauth_invalid_grant));
    json_object_set_new(o, "revoke", json_integer((json_int_t)S.oauth_revokes));
    json_object_set_new(o, "authorize", json_integer((json_int_t)S.oauth_authorize));
    json_object_set_new(j, "oauth", o);
    json_t *w = json_object();
    sim_wh_stats_t ws;
    memset(&ws, 0, sizeof(ws));
    if (S.sender)
        sim_sender_stats(S.sender, &ws);
    json_object_set_new(w, "changes", json_integer((json_int_t)S.changes_made));
    json_object_set_new(w, "sent", json_integer((json_int_t)ws.posts));
    json_object_set_new(w, "delivered", json_integer((json_int_t)ws.delivered));
    json_object_set_new(w, "failed", json_integer((json_int_t)ws.failed));
    json_object_set_new(w, "retries", json_integer((json_int_t)ws.retries));
    json_object_set_new(w, "lost", json_integer((json_int_t)ws.lost));
    json_object_set_new(w, "duplicated", json_integer((json_int_t)ws.duplicated));
    json_object_set_new(w, "gave_up", json_integer((json_int_t)ws.gave_up));
    json_object_set_new(w, "pending", json_integer((json_int_t)ws.pending));
    json_object_set_new(j, "webhooks", w);
    send_json(req, 200, j);
}

static json_t *faults_json(void)
{
    json_t *j = json_object();
    json_object_set_new(j, "latency_ms", json_integer(S.latency_ms));
    json_object_set_new(j, "token_latency_ms", json_integer(S.token_latency_ms));
    json_object_set_new(j, "delay_ms", json_integer(S.delay_ms));
    json_object_set_new(j, "error_rate", json_real(S.error_rate));
    json_object_set_new(j, "reset_rate", json_real(S.reset_rate));
    json_object_set_new(j, "throttle_xml", json_real(S.throttle_xml));
    json_object_set_new(j, "loss", json_real(S.loss));
    json_object_set_new(j, "dup", json_real(S.dup));
    json_object_set_new(j, "reorder", json_real(S.reorder));
    return j;
}

static int set_rate(json_t *body, const char *key, double *dst)
{
    json_t *v = json_object_get(body, key);
    if (!v)
        return 0;
    if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1)
        return -1;
    *dst = json_number_value(v);
    return 0;
}

static void handle_sim_faults(h2o_req_t *req)
{
    if (is_method(req, "POST")) {
        json_error_t jerr;
        json_t *body = json_loadb(req->entity.base ? req->entity.base : "", req->entity.len, 0, &jerr);
        if (!json_is_object(body)) {
            json_decref(body);
            sim_error(req, 400, "bad_request", "body must be a JSON object");
            return;
        }
        json_t *lat = json_object_get(body, "latency_ms");
        if (lat && (!json_is_integer(lat) || json_integer_value(lat) < 0 || json_integer_value(lat) > 600000)) {
            json_decref(body);
            sim_error(req, 400, "bad_request", "latency_ms must be an integer in 0..600000");
            return;
        }
        json_t *tl = json_object_get(body, "token_latency_ms");
        if (tl && (!json_is_integer(tl) || json_integer_value(tl) < 0 || json_integer_value(tl) > 600000)) {
            json_decref(body);
            sim_error(req, 400, "bad_request", "token_latency_ms must be an integer in 0..600000");
            return;
        }
        json_t *dl = json_object_get(body, "delay_ms");
        if (dl && (!json_is_integer(dl) || json_integer_value(dl) < 0 || json_integer_value(dl) > 3600000)) {
            json_decref(body);
            sim_error(req, 400, "bad_request", "delay_ms must be an integer in 0..3600000");
            return;
        }
        if (dl)
            S.delay_ms = (int)json_integer_value(dl);
        if (set_rate(body, "error_rate", &S.error_rate) || set_rate(body, "reset_rate", &S.reset_rate) ||
            set_rate(body, "throttle_xml", &S.throttle_xml) || set_rate(body, "loss", &S.loss) ||
            set_rate(body, "dup", &S.dup) || set_rate(body, "reorder", &S.reorder)) {
            json_decref(body);
            sim_error(req, 400, "bad_request", "rates must be numbers in [0,1]");
            return;
        }
        if (lat)
            S.latency_ms = (int)json_integer_value(lat);
        if (tl) { /* token answers already held move to the new latency: 0 lets them out now */
            S.token_latency_ms = (int)json_integer_value(tl);
            for (deferred_t *d = S.deferred; d != NULL; d = d->next)
                if (d->token)
                    d->due_ms = d->start_ms + S.token_latency_ms;
        }
        if (json_is_true(json_object_get(body, "expire_tokens")))
            sim_oauth_expire_access(S.oauth);
        const char *rv = json_string_value(json_object_get(body, "revoke_realm"));
        if (rv) {
            if (sim_model_find_realm(&S.model, rv, strlen(rv)) < 0) {
                json_decref(body);
                sim_error(req, 404, "unknown_realm", "no such realm");
                return;
            }
            sim_oauth_revoke_realm(S.oauth, rv);
        }
        json_decref(body);
    }
    send_json(req, 200, faults_json());
}

/*
 * GET /sim/entity?realm=R&entity=Invoice&id=N: the entity's bytes alone, exactly as
 * every /v3 answer splices them (the deleted stub for a deleted one), for tests that
 * compare them with what qbcdc serves. Not metered and needs no token.
 */
static void handle_sim_entity(h2o_req_t *req)
{
    char r[32], ent[32], id[16];
    if (qparam(req, "realm", r, sizeof(r)) <= 0 || qparam(req, "entity", ent, sizeof(ent)) <= 0 ||
        qparam(req, "id", id, sizeof(id)) <= 0) {
        sim_error(req, 400, "bad_request", "realm, entity and id are required");
        return;
    }
    int realm = sim_model_find_realm(&S.model, r, strlen(r));
    int et = sim_etype_lookup(ent, strlen(ent), 0);
    char *end;
    unsigned long idn = strtoul(id, &end, 10);
    const sim_entity_t *e = realm >= 0 && et >= 0 && *end == '\0' && idn <= UINT32_MAX
                                ? sim_model_get(&S.model, realm, et, (uint32_t)idn)
                                : NULL;
    if (!e) {
        sim_error(req, 404, "not_found", "no such realm, entity type or id");
        return;
    }
    qbc_buf_t b = {0};
    sim_entity_write(et, e, &b);
    send_now(req, 200, b.data, "application/json;charset=UTF-8");
}

static void handle_sim(h2o_req_t *req, const char *what, size_t len)
{
    if (h2o_memis(what, len, H2O_STRLIT("realms")) && is_method(req, "GET"))
        handle_sim_realms(req);
    else if (h2o_memis(what, len, H2O_STRLIT("entity")) && is_method(req, "GET"))
        handle_sim_entity(req);
    else if (h2o_memis(what, len, H2O_STRLIT("truth")) && is_method(req, "GET"))
        send_json(req, 200, sim_model_truth(&S.model));
    else if (h2o_memis(what, len, H2O_STRLIT("stats")) && is_method(req, "GET"))
        handle_sim_stats(req);
    else if (h2o_memis(what, len, H2O_STRLIT("mutate")) && is_method(req, "POST"))
        handle_mutate(req);
    else if (h2o_memis(what, len, H2O_STRLIT("faults")))
        handle_sim_faults(req);
    else if (h2o_memis(what, len, H2O_STRLIT("expire-tokens")) && is_method(req, "POST")) {
        sim_oauth_expire_access(S.oauth);
        send_json(req, 200, faults_json());
    } else if (h2o_memis(what, len, H2O_STRLIT("revoke")) && is_method(req, "POST")) {
        char r[32];
        if (qparam(req, "realm", r, sizeof(r)) <= 0 || sim_model_find_realm(&S.model, r, strlen(r)) < 0) {
            sim_error(req, 404, "unknown_realm", "no such realm");
            return;
        }
        sim_oauth_revoke_realm(S.oauth, r);
        send_json(req, 200, faults_json());
    } else if (h2o_memis(what, len, H2O_STRLIT("health"))) {
        json_t *j = json_object();
        json_object_set_new(j, "status", json_string("ok"));
        send_json(req, 200, j);
    } else {
        sim_error(req, 404, "not_found", "no such /sim endpoint");
    }
}

/* ============================== routing ============================== */

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    const char *p = req->path_normalized.base;
    size_t len = req->path_normalized.len;
#define PREFIX(lit) (len >= sizeof(lit) - 1 && memcmp(p, lit, sizeof(lit) - 1) == 0)
    if (PREFIX("/v3/company/")) {
        handle_api(req, p + 12, len - 12);
    } else if (PREFIX("/sim/")) {
        handle_sim(req, p + 5, len - 5);
    } else if (h2o_memis(p, len, H2O_STRLIT("/oauth2/v1/tokens/bearer")) && is_method(req, "POST")) {
        handle_token(req);
    } else if ((h2o_memis(p, len, H2O_STRLIT("/v2/oauth2/tokens/revoke")) ||
                h2o_memis(p, len, H2O_STRLIT("/oauth2/v1/tokens/revoke"))) &&
               is_method(req, "POST")) {
        handle_revoke(req);
    } else if (h2o_memis(p, len, H2O_STRLIT("/connect/oauth2")) && is_method(req, "GET")) {
        handle_authorize(req);
    } else if (h2o_memis(p, len, H2O_STRLIT("/healthz"))) {
        handle_sim(req, "health", 6);
    } else {
        sim_error(req, 404, "not_found", "no such path");
    }
#undef PREFIX
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    (void)listener;
    if (err)
        return;
    for (int i = 0; i < 16; i++) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof(peer);
        int fd = accept4(S.listen_fd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        remember_fd(fd, &peer);
        h2o_socket_t *sock = h2o_evloop_socket_create(S.ctx.loop, fd, H2O_SOCKET_FLAG_IS_ACCEPTED_CONNECTION);
        h2o_accept(&S.accept_ctx, sock);
    }
}

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int open_listener(const char *host, int port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, SOMAXCONN) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int sim_server_run(const sim_conf_t *conf)
{
    memset(&S, 0, sizeof(S));
    S.conf = *conf;
    S.latency_ms = conf->latency_ms;
    S.delay_ms = conf->delay_ms;
    S.error_rate = conf->error_rate;
    S.reset_rate = conf->reset_rate;
    S.throttle_xml = conf->throttle_xml;
    S.loss = conf->loss;
    S.dup = conf->dup;
    S.reorder = conf->reorder;
    sim_rng_seed(&S.rng, conf->seed ^ 0xfa017ULL);

    int fd = open_listener(conf->listen_host, conf->listen_port);
    if (fd < 0) {
        fprintf(stderr, "qbosim: cannot listen on %s:%d: %s\n", conf->listen_host, conf->listen_port, qbc_strerror(fd));
        return 1;
    }
    S.listen_fd = fd;

    sim_model_init(&S.model, conf->nrealms, conf->per_type, conf->seed, qbc_now_ns(), conf->seed_days);
    S.state_path = conf->state_path;
    if (S.state_path != NULL) {
        int lrc = sim_model_load(&S.model, S.state_path);
        if (lrc == 0)
            fprintf(stderr, "qbosim: companies loaded from %s\n", S.state_path);
        else if (lrc != QBC_ENOTFOUND)
            fprintf(stderr, "qbosim: cannot use %s (%s); starting from the seed\n", S.state_path, qbc_strerror(lrc));
        S.saved_change_ns = S.model.last_change_ns;
    }
    S.rs = qbc_calloc(conf->nrealms, sizeof(*S.rs));
    for (size_t i = 0; i < conf->nrealms; i++) {
        sim_ratelimit_init(&S.rs[i].rl, conf->rate_limit, (int64_t)conf->rate_window_s * 1000000000LL);
        sim_ratelimit_init(&S.rs[i].batch_rl, conf->batch_rate_limit, 60 * 1000000000LL);
    }
    sim_oauth_conf_t oc = {.client_id = conf->client_id,
                           .client_secret = conf->client_secret,
                           .access_ttl_s = conf->access_ttl_s,
                           .refresh_ttl_s = conf->refresh_ttl_s,
                           .refresh_grace_s = conf->refresh_grace_s};
    S.oauth = sim_oauth_create(&oc, conf->seed);
    for (size_t i = 0; i < conf->nrealms; i++)
        sim_oauth_connect(S.oauth, S.model.realms[i].id, qbc_now_ns());
    {
        /* CloudEvents source: "intuit." + an app-specific opaque id (§1.2 sample form) */
        char sig[48];
        sim_sign("qbosim-app", conf->client_id, strlen(conf->client_id), sig);
        snprintf(S.ce_source, sizeof(S.ce_source), "intuit.%s", sig);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    h2o_config_init(&S.config);
    S.config.max_request_entity_size = 8 * 1024 * 1024;
    S.config.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *host = h2o_config_register_host(&S.config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof(*h));
    h->on_req = on_req;
    h2o_context_init(&S.ctx, h2o_evloop_create(), &S.config);
    S.accept_ctx.ctx = &S.ctx;
    S.accept_ctx.hosts = S.config.hosts;
    h2o_multithread_register_receiver(S.ctx.queue, &S.receiver, on_messages);
    S.listener = h2o_evloop_socket_create(S.ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(S.listener, on_accept);
    h2o_timeout_init(S.ctx.loop, &S.tick, 10);
    S.tick_entry.cb = on_tick;
    S.last_tick_ms = mono_ms();
    h2o_timeout_link(S.ctx.loop, &S.tick, &S.tick_entry);

    if (conf->webhook_url && conf->webhook_url[0]) {
        sim_sender_conf_t sc = {.url = conf->webhook_url,
                                .pin = conf->webhook_pin,
                                .verifier_token = conf->verifier_token,
                                .retry_scale = conf->retry_scale,
                                .max_attempts = conf->max_attempts,
                                .timeout_ms = conf->webhook_timeout_ms,
                                .max_concurrency = conf->webhook_concurrency};
        S.sender = sim_sender_start(&sc, on_first_attempt, NULL);
    }

    qbc_log(QBC_LOG_INFO, MOD, "listening on %s:%d with %zu realms (seed %llu)", conf->listen_host, conf->listen_port,
            conf->nrealms, (unsigned long long)conf->seed);
    while (!stop_requested) {
        if (h2o_evloop_run(S.ctx.loop, 100) != 0 && errno != EINTR) {
            qbc_log(QBC_LOG_ERROR, MOD, "event loop failed: %s", strerror(errno));
            break;
        }
    }
    qbc_log(QBC_LOG_INFO, MOD, "shutting down");

    /* teardown, in reverse: the sender first so no message arrives after the drain */
    sim_sender_stop(S.sender);
    S.sender = NULL;
    for (int i = 0; i < 100 && !h2o_linklist_is_empty(&S.receiver._messages); i++)
        h2o_evloop_run(S.ctx.loop, 10);
    h2o_multithread_unregister_receiver(S.ctx.queue, &S.receiver);
    /* answer whatever is still waiting, then drop every client connection and let h2o
     * notice, so that its per-connection timers are gone before the context is */
    release_deferred(1);
    while (S.cmds) {
        mutate_cmd_t *c = S.cmds;
        S.cmds = c->next;
        mutate_respond(c);
        free(c);
    }
    h2o_socket_read_stop(S.listener);
    for (int round = 0; round < 100; round++) {
        if (close_client_connections() == 0)
            break;
        h2o_evloop_run(S.ctx.loop, 10);
    }
    h2o_timeout_unlink(&S.tick_entry);
    h2o_timeout_dispose(S.ctx.loop, &S.tick);
    h2o_socket_close(S.listener);
    h2o_evloop_t *loop = S.ctx.loop;
    h2o_context_dispose(&S.ctx);
    h2o_evloop_destroy(loop);
    h2o_config_dispose(&S.config);
    for (size_t i = 0; i < conf->nrealms; i++) {
        sim_ratelimit_dispose(&S.rs[i].rl);
        sim_ratelimit_dispose(&S.rs[i].batch_rl);
    }
    free(S.rs);
    free(S.batch);
    free(S.fd_port);
    sim_oauth_destroy(S.oauth);
    if (S.state_path != NULL && sim_model_save(&S.model, S.state_path) != 0)
        fprintf(stderr, "qbosim: cannot save the companies to %s\n", S.state_path);
    sim_model_dispose(&S.model);
    return 0;
}
