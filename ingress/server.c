/*
 * server.c — the h2o evloop HTTP/1.1 server: listener, routes, the queue that
 * brings committed jobs back from the store, and graceful shutdown.
 *
 * One loop thread serves every connection; the only other threads it talks to are
 * the store's (its ingest thread for webhooks, its writer for the rest), through
 * h2o's multithread queue (store -> loop) and qbc_store_submit (loop -> store).
 * h2o 2.2 specifics are in STYLE.md part 3.1.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "ingress_internal.h"

/* h2o buffers whole bodies before a handler runs (2.2 has no streaming), so this is
 * its memory bound; between max_body and this, we answer 413 ourselves, in JSON. */
#define H2O_ENTITY_LIMIT_FACTOR 4

void respond_json(h2o_req_t *req, int status, const char *reason, const char *body)
{
    size_t len = strlen(body);
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len; /* otherwise h2o answers HTTP/1.1 chunked */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_send_inline(req, body, len);
}

void respond_error(h2o_req_t *req, int status, const char *reason, const char *code, const char *message)
{
    /* through jansson like every other answer: a message may quote the client (a parameter's name) */
    json_t *o = json_pack("{s:s,s:s}", "error", code, "message", message);
    if (o == NULL) /* not UTF-8: say what it was about without the quote */
        o = json_pack("{s:s,s:s}", "error", code, "message", "the request has a problem that cannot be quoted");
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    respond_json(req, status, reason, text);
    free(text);
}

static int on_not_found(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    respond_error(req, 404, "Not Found", "not_found", "no such endpoint");
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    qbc_ingress_t *ing = listener->data;
    h2o_socket_t *sock;

    if (err != NULL)
        return;
    while ((sock = h2o_evloop_socket_accept(listener)) != NULL) {
        int one = 1;
        setsockopt(h2o_socket_get_fd(sock), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        h2o_accept(&ing->accept_ctx, sock);
        if (ing->stop)
            break;
    }
}

/* writer -> loop: every finished job arrives here, on the loop thread */
static void on_commit_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        ingress_job_t *j = H2O_STRUCT_FROM_MEMBER(ingress_job_t, msg, msg);
        h2o_linklist_unlink(&msg->link);
        on_job_committed(j);
    }
}

/*
 * parses "host:port", "[v6]:port" or ":port" and returns a listening socket.
 */
static int open_listener(const char *spec, int *out_fd)
{
    char host[256];
    const char *port;
    const char *colon = strrchr(spec, ':');
    struct addrinfo hints, *res = NULL;
    int fd = -1, rc;

    if (colon == NULL || colon[1] == '\0')
        return QBC_EINVAL;
    port = colon + 1;
    size_t hlen = (size_t)(colon - spec);
    if (hlen >= sizeof(host))
        return QBC_EINVAL;
    if (hlen >= 2 && spec[0] == '[' && spec[hlen - 1] == ']') {
        memcpy(host, spec + 1, hlen - 2);
        host[hlen - 2] = '\0';
    } else {
        memcpy(host, spec, hlen);
        host[hlen] = '\0';
    }
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9')
            return QBC_EINVAL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) != 0) {
        qbc_log(QBC_LOG_ERROR, "ingress", "cannot resolve listen address %s: %s", spec, gai_strerror(rc));
        return QBC_EINVAL;
    }
    rc = 0;
    int one = 1;
    if ((fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        rc = -errno;
        qbc_log(QBC_LOG_ERROR, "ingress", "cannot listen on %s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    *out_fd = fd;
    return rc;
}

static void register_route(qbc_ingress_t *ing, h2o_hostconf_t *host, const char *path,
                           int (*on_req)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pc = h2o_config_register_path(host, path, 0);
    ingress_handler_t *h = (void *)h2o_create_handler(pc, sizeof(*h));
    h->super.on_req = on_req;
    h->ing = ing;
}

int qbc_ingress_create(const qbc_ingress_config_t *cfg, qbc_store_t *store, qbc_ingress_t **out)
{
    qbc_ingress_t *ing;
    int fd, rc;

    if ((rc = open_listener(cfg->listen, &fd)) != 0)
        return rc;
    ing = qbc_calloc(1, sizeof(*ing));
    ing->store = store;
    ing->max_body = cfg->max_body != 0 ? cfg->max_body : 1024 * 1024;
    ing->n_tokens = cfg->n_verifier_tokens;
    ing->tokens = qbc_calloc(ing->n_tokens + 1, sizeof(char *));
    for (size_t i = 0; i < ing->n_tokens; i++)
        ing->tokens[i] = qbc_strdup(cfg->verifier_tokens[i]);
    if (ing->n_tokens > 0 &&
        (ing->verifier = qbc_verifier_new((const char *const *)ing->tokens, ing->n_tokens)) == NULL)
        qbc_fatal("OpenSSL provides no HMAC-SHA256");
    ing->metrics.started_ns = qbc_now_ns();
#define DUP_OR_NULL(x) ((x) != NULL && (x)[0] != '\0' ? qbc_strdup(x) : NULL)
    ing->admin_token = DUP_OR_NULL(cfg->admin_token);
    ing->snapshot_on_connect = cfg->snapshot_on_connect;
    ing->feed_token = DUP_OR_NULL(cfg->feed_token);
    ing->client_id = DUP_OR_NULL(cfg->client_id);
    ing->client_secret = DUP_OR_NULL(cfg->client_secret);
    ing->authorize_url = DUP_OR_NULL(cfg->authorize_url);
    ing->token_url = DUP_OR_NULL(cfg->token_url);
    ing->redirect_uri = DUP_OR_NULL(cfg->redirect_uri);
    ing->revoke_url = DUP_OR_NULL(cfg->revoke_url);
#undef DUP_OR_NULL

    h2o_config_init(&ing->config);
    ing->config.max_request_entity_size = ing->max_body * H2O_ENTITY_LIMIT_FACTOR;
    ing->config.http1.upgrade_to_http2 = 0; /* plain HTTP/1.1 */
    ing->config.server_name = h2o_iovec_init(H2O_STRLIT("qbcdc"));
    h2o_hostconf_t *host = h2o_config_register_host(&ing->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    register_route(ing, host, "/webhooks/intuit", on_webhook);
    register_route(ing, host, "/healthz", on_healthz);
    register_route(ing, host, "/metrics", on_metrics);
    register_route(ing, host, "/openapi.json", on_openapi);
    register_route(ing, host, "/admin", on_admin);
    register_route(ing, host, "/v1", on_feed);
    register_route(ing, host, "/connect", on_connect);
    register_route(ing, host, "/oauth/callback", on_oauth_callback);
    register_route(ing, host, "/", on_not_found);

    h2o_context_init(&ing->ctx, h2o_evloop_create(), &ing->config);
    ing->accept_ctx.ctx = &ing->ctx;
    ing->accept_ctx.hosts = ing->config.hosts;
    h2o_multithread_register_receiver(ing->ctx.queue, &ing->commits, on_commit_messages);
    connect_init(ing);
    feed_init(ing);

    ing->listener = h2o_evloop_socket_create(ing->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    ing->listener->data = ing;
    h2o_socket_read_start(ing->listener, on_accept);
    qbc_log(QBC_LOG_INFO, "ingress", "listening on %s", cfg->listen);
    if (ing->n_tokens == 0)
        qbc_log(QBC_LOG_WARN, "ingress",
                "QBCDC_WEBHOOK_VERIFIER_TOKENS is not set: webhooks will be refused with 503 until it is");
    *out = ing;
    return 0;
}

static int context_idle(h2o_context_t *ctx);

int qbc_ingress_run(qbc_ingress_t *ing, int drain_ms)
{
    /* a bounded wait, so that a stop flag set by a signal handler is seen within 100 ms
     * even if the signal arrived outside epoll_wait */
    while (!ing->stop) {
        if (h2o_evloop_run(ing->ctx.loop, 100) != 0 && errno != EINTR) {
            qbc_log(QBC_LOG_ERROR, "ingress", "event loop failed: %s", strerror(errno));
            break;
        }
        ingress_flush_webhooks(ing);
    }

    /* stop accepting; let every request already handed to the store get its answer */
    qbc_log(QBC_LOG_INFO, "ingress", "stopping: %llu webhook(s) in flight", (unsigned long long)ing->metrics.inflight);
    if (ing->listener != NULL) {
        h2o_socket_read_stop(ing->listener);
        h2o_socket_close(ing->listener);
        ing->listener = NULL;
    }
    h2o_context_request_shutdown(&ing->ctx);
    feed_shutdown(ing);
    int64_t deadline = qbc_mono_ns() + (int64_t)drain_ms * 1000000;
    ingress_flush_webhooks(ing);
    while (ing->metrics.inflight > 0 && qbc_mono_ns() < deadline) {
        h2o_evloop_run(ing->ctx.loop, 10);
        ingress_flush_webhooks(ing);
    }
    /* let the last answers reach their sockets and closing connections finish closing */
    deadline = qbc_mono_ns() + 200 * 1000000;
    do {
        h2o_evloop_run(ing->ctx.loop, 10);
        ingress_flush_webhooks(ing);
    } while (!context_idle(&ing->ctx) && qbc_mono_ns() < deadline);
    if (ing->metrics.inflight > 0) {
        qbc_log(QBC_LOG_WARN, "ingress", "%llu webhook(s) still in flight after %d ms",
                (unsigned long long)ing->metrics.inflight, drain_ms);
        return QBC_ECLOSED;
    }
    return 0;
}

/* true when no connection and no timer is left: only then may h2o's context be disposed */
static int context_idle(h2o_context_t *ctx)
{
    /* the feed's own tick is ours and always linked: it is disposed with the feed */
    h2o_timeout_t *timeouts[] = {&ctx->zero_timeout,
                                 &ctx->one_sec_timeout,
                                 &ctx->hundred_ms_timeout,
                                 &ctx->handshake_timeout,
                                 &ctx->http1.req_timeout,
                                 &ctx->http2.idle_timeout,
                                 &ctx->http2.graceful_shutdown_timeout,
                                 &ctx->proxy.io_timeout};
    if (!h2o_linklist_is_empty(&ctx->http1._conns) || !h2o_linklist_is_empty(&ctx->http2._conns))
        return 0;
    for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++)
        if (!h2o_linklist_is_empty(&timeouts[i]->_entries))
            return 0;
    return 1;
}

void qbc_ingress_set_hooks(qbc_ingress_t *ing, const qbc_ingress_hooks_t *hooks)
{
    ing->hooks = *hooks;
}

void qbc_ingress_stop(qbc_ingress_t *ing)
{
    ing->stop = 1;
}

/*
 * see qbc_ingress_destroy: an ingress that could not be torn down stays reachable here.
 * Not static: the compiler may drop stores to a static nobody reads.
 */
qbc_ingress_t *qbc_ingress__left_for_exit;

void qbc_ingress_destroy(qbc_ingress_t *ing)
{
    if (ing == NULL)
        return;
    if (ing->listener != NULL) {
        h2o_socket_close(ing->listener);
        ing->listener = NULL;
    }
    if (!context_idle(&ing->ctx)) {
        /*
         * h2o 2.2 cannot close idle keep-alive connections on request, and disposing the
         * context while one is open trips its assertions. Every answer has been sent by
         * now and the process is about to exit, so leave the context as it is (reachable,
         * so leak checkers stay quiet) and let exit close the sockets.
         */
        qbc_ingress__left_for_exit = ing;
        return;
    }
    h2o_multithread_unregister_receiver(ing->ctx.queue, &ing->commits);
    connect_dispose(ing);
    feed_dispose(ing);
    h2o_evloop_t *loop = ing->ctx.loop;
    h2o_context_dispose(&ing->ctx);
    h2o_evloop_destroy(loop);
    h2o_config_dispose(&ing->config);
    qbc_verifier_free(ing->verifier);
    for (size_t i = 0; i < ing->n_tokens; i++) {
        OPENSSL_cleanse(ing->tokens[i], strlen(ing->tokens[i]));
        free(ing->tokens[i]);
    }
    free(ing->tokens);
    free(ing->held);
    char *secrets[] = {ing->admin_token,   ing->feed_token, ing->client_id,    ing->client_secret,
                       ing->authorize_url, ing->token_url,  ing->redirect_uri, ing->revoke_url};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        if (secrets[i] != NULL)
            OPENSSL_cleanse(secrets[i], strlen(secrets[i]));
        free(secrets[i]);
    }
    free(ing);
}
