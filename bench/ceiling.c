/*
 * ceiling.c — the "no storage" reference server for bench/ingress.sh.
 *
 * It does exactly the per-request work that qbcdc's ingress must do before it
 * touches the store, and nothing else: h2o parses the HTTP/1.1 request and
 * buffers the body, qbc_verifier_check() (the same function the service
 * links) checks intuit-signature, and the answer is 200 {"status":"ok"} with an
 * explicit Content-Length, or 401. Whatever the service achieves beyond this
 * is impossible; the ratio service/ceiling is therefore the cost of durability
 * (LMDB group commit with fsync, the hop to the writer thread and back).
 *
 * Assumptions: one event-loop thread, loopback benchmarking, h2o settings as a
 * production server would use them (keep-alive, 1 MiB entity limit, no h2c
 * upgrade). GET /healthz answers 200 so the bench script can wait for readiness
 * the same way for both servers.
 *
 * usage: ceiling --listen HOST:PORT --verifier-token T
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "h2o.h"
#include "ingress.h"

#define MAX_BODY (1024 * 1024)

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;
static volatile sig_atomic_t stop_requested;

/** the verifier token, prepared exactly as `qbcdc serve` prepares its tokens. */
static const char *tokens[1];
static qbc_verifier_t *verifier;

static void on_signal(int signo)
{
    (void)signo;
    stop_requested = 1;
}

/* Answers with a fixed JSON body. Content-Length is set explicitly: without it
 * h2o 2.2 would send the body chunked (STYLE.md 3.1, gotcha 8). */
static int respond(h2o_req_t *req, int status, const char *reason, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_send_inline(req, body, len);
    return 0;
}

static int on_webhook(h2o_handler_t *self, h2o_req_t *req)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    static const char unauthorized[] = "{\"error\":\"unauthorized\",\"message\":\"intuit-signature missing or wrong\"}";
    const char *sig = NULL;
    size_t sig_len = 0;
    ssize_t i;

    (void)self;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")))
        return -1;
    if ((i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("intuit-signature"), -1)) != -1) {
        sig = req->headers.entries[i].value.base;
        sig_len = req->headers.entries[i].value.len;
    }
    /* a POST without a body has entity.base == NULL; verify it as empty */
    if (qbc_verifier_check(verifier, sig, sig_len, req->entity.base != NULL ? req->entity.base : "", req->entity.len) != 0)
        return respond(req, 401, "Unauthorized", unauthorized, sizeof(unauthorized) - 1);
    return respond(req, 200, "OK", ok, sizeof(ok) - 1);
}

static int on_healthz(h2o_handler_t *self, h2o_req_t *req)
{
    static const char ok[] = "{\"status\":\"ok\"}";

    (void)self;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        return -1;
    return respond(req, 200, "OK", ok, sizeof(ok) - 1);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_socket_t *sock;

    if (err != NULL || (sock = h2o_evloop_socket_accept(listener)) == NULL)
        return;
    h2o_accept(&accept_ctx, sock);
}

static void register_handler(h2o_hostconf_t *host, const char *path, int (*on_req)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, path, 0);
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_req;
}

/* Parses "a.b.c.d:port" (loopback or any IPv4 address) into sin.
 * Returns 0, or -1 for anything else. */
static int parse_listen(const char *s, struct sockaddr_in *sin)
{
    const char *colon = strrchr(s, ':');
    char host[64];
    char *end;
    long port;

    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || port < 1 || port > 65535)
        return -1;
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    if (host[0] == '\0')
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        return -1;
    return 0;
}

static int open_listener(const struct sockaddr_in *sin)
{
    int fd, on = 1;

    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, (const struct sockaddr *)sin, sizeof(*sin)) != 0 || listen(fd, SOMAXCONN) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static void usage(FILE *fp)
{
    fprintf(fp, "usage: ceiling --listen HOST:PORT --verifier-token TOKEN\n"
                "  a minimal h2o responder: POST /webhooks/intuit verifies intuit-signature\n"
                "  and answers 200 (or 401) without storing anything; GET /healthz answers 200.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"listen", required_argument, NULL, 'l'},
                                             {"verifier-token", required_argument, NULL, 't'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *listen_addr = NULL, *token = NULL;
    struct sockaddr_in sin;
    struct sigaction sa;
    h2o_hostconf_t *host;
    h2o_socket_t *lsock;
    int opt, fd;

    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            listen_addr = optarg;
            break;
        case 't':
            token = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || listen_addr == NULL || token == NULL || token[0] == '\0') {
        usage(stderr);
        return 2;
    }
    if (parse_listen(listen_addr, &sin) != 0) {
        fprintf(stderr, "ceiling: bad --listen value: %s\n", listen_addr);
        return 2;
    }
    tokens[0] = token;
    if ((verifier = qbc_verifier_new(tokens, 1)) == NULL) {
        fprintf(stderr, "ceiling: HMAC-SHA256 is not available from OpenSSL\n");
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    /* no SA_RESTART: epoll_wait must return EINTR so that the loop sees the flag */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    h2o_config_init(&config);
    config.max_request_entity_size = MAX_BODY;
    config.http1.upgrade_to_http2 = 0;
    host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    register_handler(host, "/webhooks/intuit", on_webhook);
    register_handler(host, "/healthz", on_healthz);

    h2o_context_init(&ctx, h2o_evloop_create(), &config);
    accept_ctx.ctx = &ctx;
    accept_ctx.hosts = config.hosts;

    if ((fd = open_listener(&sin)) == -1) {
        fprintf(stderr, "ceiling: cannot listen on %s: %s\n", listen_addr, strerror(errno));
        return 1;
    }
    lsock = h2o_evloop_socket_create(ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(lsock, on_accept);
    fprintf(stderr, "ceiling: listening on %s\n", listen_addr);

    while (!stop_requested) {
        if (h2o_evloop_run(ctx.loop, INT32_MAX) != 0 && errno != EINTR) {
            fprintf(stderr, "ceiling: event loop failed: %s\n", strerror(errno));
            break;
        }
    }

    /* connections still open die with the process: a benchmark responder needs no drain */
    h2o_socket_read_stop(lsock);
    h2o_socket_close(lsock);
    qbc_verifier_free(verifier);
    return 0;
}
