/*
 * server.c — the h2o evloop HTTP/1.1 server: listener, routes, the loop, and graceful
 * shutdown.
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
#include "api_internal.h"

/* h2o buffers whole bodies before a handler runs (2.2 has no streaming), so this is
 * its memory bound; between max_body and this, we answer 413 ourselves, in JSON. */
#define H2O_ENTITY_LIMIT_FACTOR 4

static int on_not_found(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such endpoint");
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    qbc_api_t *api = listener->data;
    h2o_socket_t *sock;

    if (err != NULL)
        return;
    errno = 0;
    while ((sock = h2o_evloop_socket_accept(listener)) != NULL) {
        int one = 1;
        setsockopt(h2o_socket_get_fd(sock), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        h2o_accept(&api->accept_ctx, sock);
        if (api->stop)
            return;
        errno = 0;
    }
    if (errno == EMFILE || errno == ENFILE) {
        /*
         * out of file descriptors: the connection stays in the backlog and the listener stays
         * readable, so accepting again at once would spin. Pause for a moment; the connections
         * already open keep being served, and freed descriptors are used when it resumes.
         */
        h2o_socket_read_stop(listener);
        h2o_timeout_link(api->ctx.loop, &api->accept_pause, &api->accept_pause_entry);
        int64_t now = qbc_mono_ns();
        if (now - api->emfile_logged_ns > 10 * (int64_t)1000000000) {
            qbc_log(QBC_LOG_ERROR, "api",
                    "out of file descriptors (%s): not accepting connections for 100 ms at a time", strerror(errno));
            api->emfile_logged_ns = now;
        }
    }
}

static void on_accept_resume(h2o_timeout_entry_t *entry)
{
    qbc_api_t *api = H2O_STRUCT_FROM_MEMBER(qbc_api_t, accept_pause_entry, entry);
    if (api->listener != NULL && !api->stop)
        h2o_socket_read_start(api->listener, on_accept);
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
        qbc_log(QBC_LOG_ERROR, "api", "cannot resolve listen address %s: %s", spec, gai_strerror(rc));
        return QBC_EINVAL;
    }
    rc = 0;
    int one = 1;
    if ((fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        rc = -errno;
        qbc_log(QBC_LOG_ERROR, "api", "cannot listen on %s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    *out_fd = fd;
    return rc;
}

static int on_webhook(h2o_handler_t *self, h2o_req_t *req)
{
    return qbc_ingress_on_req(((api_handler_t *)self)->api->ingress, req);
}

static void register_route(qbc_api_t *api, h2o_hostconf_t *host, const char *path,
                           int (*on_req)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pc = h2o_config_register_path(host, path, 0);
    api_handler_t *h = (void *)h2o_create_handler(pc, sizeof(*h));
    h->super.on_req = on_req;
    h->api = api;
}

int qbc_api_create(const qbc_api_config_t *cfg, qbc_store_t *store, qbc_api_t **out)
{
    qbc_api_t *api;
    int fd, rc;

    if ((rc = open_listener(cfg->listen, &fd)) != 0)
        return rc;
    api = qbc_calloc(1, sizeof(*api));
    api->store = store;
    api->feed_store = cfg->feed_store != NULL ? cfg->feed_store : store;
    api->feed_horizon = cfg->feed_store != NULL ? cfg->feed_horizon : NULL;
    api->feed_horizon_ctx = cfg->feed_horizon_ctx;
    api->started_ns = qbc_now_ns();
#define DUP_OR_NULL(x) ((x) != NULL && (x)[0] != '\0' ? qbc_strdup(x) : NULL)
    api->admin_token = DUP_OR_NULL(cfg->admin_token);
    api->snapshot_on_connect = cfg->snapshot_on_connect;
    api->feed_token = DUP_OR_NULL(cfg->feed_token);
    api->client_id = DUP_OR_NULL(cfg->client_id);
    api->authorize_url = DUP_OR_NULL(cfg->authorize_url);
    api->redirect_uri = DUP_OR_NULL(cfg->redirect_uri);
#undef DUP_OR_NULL

    h2o_config_init(&api->config);
    api->config.max_request_entity_size = (cfg->max_body != 0 ? cfg->max_body : 1024 * 1024) * H2O_ENTITY_LIMIT_FACTOR;
    api->config.http1.upgrade_to_http2 = 0; /* plain HTTP/1.1 */
    api->config.server_name = h2o_iovec_init(H2O_STRLIT("qbcdc"));
    h2o_hostconf_t *host = h2o_config_register_host(&api->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    register_route(api, host, "/webhooks/intuit", on_webhook);
    register_route(api, host, "/healthz", qbc_api__on_healthz);
    register_route(api, host, "/metrics", qbc_api__on_metrics);
    register_route(api, host, "/openapi.json", qbc_api__on_openapi);
    register_route(api, host, "/admin", qbc_api__on_admin);
    register_route(api, host, "/v1", qbc_api__on_v1);
    register_route(api, host, "/connect", qbc_api__on_connect);
    register_route(api, host, "/oauth/callback", qbc_api__on_oauth_callback);
    register_route(api, host, "/", on_not_found);

    h2o_context_init(&api->ctx, h2o_evloop_create(), &api->config);
    api->accept_ctx.ctx = &api->ctx;
    api->accept_ctx.hosts = api->config.hosts;
    if (cfg->tls_cert != NULL) {
        char err[512];
        if (qbc_api__tls_create(cfg->tls_cert, cfg->tls_key, &api->accept_ctx.ssl_ctx, err, sizeof(err)) != 0)
            qbc_fatal("%s", err); /* qbc_api_tls_check() passed moments ago: the files changed under us */
    }
    qbc_ingress_config_t wcfg = {.verifier_tokens = cfg->verifier_tokens,
                                 .n_verifier_tokens = cfg->n_verifier_tokens,
                                 .max_body = cfg->max_body,
                                 .forward = cfg->forward,
                                 .forward_ctx = cfg->forward_ctx};
    qbc_ingress_create(&wcfg, store, &api->ctx, &api->ingress);
    qbc_api__jobs_init(api);
    qbc_api__connect_init(api);
    qbc_api__feed_init(api);

    api->max_waiters = cfg->max_streams != 0 ? cfg->max_streams : 1000;
    api->summary_every_ns = (int64_t)cfg->summary_interval_s * 1000000000;
    api->summary_due_ns = qbc_mono_ns() + api->summary_every_ns;
    h2o_timeout_init(api->ctx.loop, &api->accept_pause, 100);
    api->accept_pause_entry.cb = on_accept_resume;
    api->listener = h2o_evloop_socket_create(api->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    api->listener->data = api;
    h2o_socket_read_start(api->listener, on_accept);
    qbc_log(QBC_LOG_INFO, "api", "listening on %s://%s", cfg->tls_cert != NULL ? "https" : "http", cfg->listen);
    *out = api;
    return 0;
}

static int context_idle(h2o_context_t *ctx);

/* answers still owed: webhooks (ingress/), operator jobs and OAuth calls (api/) */
static uint64_t inflight(qbc_api_t *api)
{
    return api->inflight + qbc_ingress_inflight(api->ingress);
}

int qbc_api_run(qbc_api_t *api, int drain_ms)
{
    /* a bounded wait, so that a stop flag set by a signal handler is seen within 100 ms
     * even if the signal arrived outside epoll_wait */
    while (!api->stop) {
        if (h2o_evloop_run(api->ctx.loop, 100) != 0 && errno != EINTR) {
            qbc_log(QBC_LOG_ERROR, "api", "event loop failed: %s", strerror(errno));
            break;
        }
        qbc_ingress_flush(api->ingress);
    }

    /* stop accepting; let every request already handed to the store get its answer */
    qbc_log(QBC_LOG_INFO, "api", "stopping: %llu answer(s) in flight", (unsigned long long)inflight(api));
    if (h2o_timeout_is_linked(&api->accept_pause_entry))
        h2o_timeout_unlink(&api->accept_pause_entry);
    if (api->listener != NULL) {
        h2o_socket_read_stop(api->listener);
        h2o_socket_close(api->listener);
        api->listener = NULL;
    }
    h2o_context_request_shutdown(&api->ctx);
    qbc_api__feed_shutdown(api);
    int64_t deadline = qbc_mono_ns() + (int64_t)drain_ms * 1000000;
    qbc_ingress_flush(api->ingress);
    while (inflight(api) > 0 && qbc_mono_ns() < deadline) {
        h2o_evloop_run(api->ctx.loop, 10);
        qbc_ingress_flush(api->ingress);
    }
    /* OAuth calls still out are cancelled: none may answer once the server is gone */
    qbc_api__connect_shutdown(api);
    qbc_api__forward_shutdown(api); /* forwarded requests still out: answered 503 below */
    /* let the last answers reach their sockets and closing connections finish closing */
    deadline = qbc_mono_ns() + 200 * 1000000;
    do {
        h2o_evloop_run(api->ctx.loop, 10);
        qbc_ingress_flush(api->ingress);
    } while (!context_idle(&api->ctx) && qbc_mono_ns() < deadline);
    if (inflight(api) > 0) {
        qbc_log(QBC_LOG_WARN, "api", "%llu answer(s) still in flight after %d ms", (unsigned long long)inflight(api),
                drain_ms);
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

void qbc_api_set_reconciler(qbc_api_t *api, qbc_reconciler_t *r)
{
    api->reconciler = r;
}

void qbc_api_set_delivery(qbc_api_t *api, struct st_qbc_delivery_t *d)
{
    api->delivery = d;
}

void qbc_api_set_hooks(qbc_api_t *api, const qbc_api_hooks_t *hooks)
{
    api->hooks = *hooks;
}

void qbc_api_stop(qbc_api_t *api)
{
    api->stop = 1;
}

/*
 * see qbc_api_destroy: a server that could not be torn down stays reachable here.
 * Not static: the compiler may drop stores to a static nobody reads.
 */
qbc_api_t *qbc_api__left_for_exit;

void qbc_api_destroy(qbc_api_t *api)
{
    if (api == NULL)
        return;
    /* first: once it returns, the store's writer never posts to this server again */
    qbc_store_remove_listener(api->feed_store, api->feed_listener);
    if (api->listener != NULL) {
        h2o_socket_close(api->listener);
        api->listener = NULL;
    }
    if (!context_idle(&api->ctx) || inflight(api) > 0) {
        /*
         * h2o 2.2 cannot close idle keep-alive connections on request, and disposing the
         * context while one is open trips its assertions. And a store job still out (the
         * drain ran out of time) will post its answer to this server's queue when the store
         * finishes it at close. The process is about to exit, so leave everything as it is
         * (reachable, so leak checkers stay quiet) and let exit close the sockets.
         */
        qbc_api__left_for_exit = api;
        return;
    }
    if (h2o_timeout_is_linked(&api->accept_pause_entry))
        h2o_timeout_unlink(&api->accept_pause_entry);
    h2o_timeout_dispose(api->ctx.loop, &api->accept_pause);
    qbc_ingress_destroy(api->ingress);
    qbc_api__jobs_dispose(api);
    qbc_api__connect_dispose(api);
    qbc_api__forward_dispose(api);
    qbc_api__feed_dispose(api);
    h2o_evloop_t *loop = api->ctx.loop;
    h2o_multithread_queue_t *queue = api->ctx.queue;
    h2o_context_dispose(&api->ctx);
    h2o_evloop_destroy(loop);
    free(queue); /* h2o 2.2's evloop build closes the queue's socket but never frees the queue itself */
    h2o_config_dispose(&api->config);
    if (api->accept_ctx.ssl_ctx != NULL)
        SSL_CTX_free(api->accept_ctx.ssl_ctx);
    char *secrets[] = {api->admin_token, api->feed_token, api->client_id, api->authorize_url, api->redirect_uri};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        if (secrets[i] != NULL)
            OPENSSL_cleanse(secrets[i], strlen(secrets[i]));
        free(secrets[i]);
    }
    free(api);
}
