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
 * With --journal FILE it is the "durable ceiling" instead: the least any durable
 * design must add on this machine. Each verified body is copied, the bodies of a
 * loop turn go to one sync thread, which appends them to a preallocated ring file
 * with one pwrite and one fdatasync per batch and hands them back to the loop
 * (h2o's multithread queue), which then answers 200. No parsing, no index, no
 * LMDB: qbcdc's ratio to this is what its own design costs; this one's ratio to
 * the plain ceiling is what a flush per batch costs here.
 *
 * usage: ceiling --listen HOST:PORT --verifier-token T [--journal FILE]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
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

/* ---- the durable variant (--journal) ---- */

#define RING_SIZE (16u << 20)

typedef struct st_pend_t pend_t;
typedef struct {
    pend_t *pend; /* NULL once answered */
} guard_t;
struct st_pend_t {
    pend_t *next;
    h2o_multithread_message_t msg;
    h2o_req_t *req; /* NULL once the request is gone */
    guard_t *guard;
    char *body;
    size_t len;
};

static int ring_fd = -1;
static uint64_t ring_pos;
static pend_t *held, **held_tail = &held; /* this loop turn's */
static pthread_mutex_t sync_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sync_cv = PTHREAD_COND_INITIALIZER;
static pend_t *sync_q;
static h2o_multithread_queue_t *mq;
static h2o_multithread_receiver_t synced;

static void on_guard_dispose(void *p)
{
    guard_t *g = p;
    if (g->pend != NULL)
        g->pend->req = NULL;
}

static int respond(h2o_req_t *req, int status, const char *reason, const char *body, size_t len);

static void on_synced(h2o_multithread_receiver_t *r, h2o_linklist_t *msgs)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    (void)r;
    while (!h2o_linklist_is_empty(msgs)) {
        pend_t *p = H2O_STRUCT_FROM_MEMBER(pend_t, msg.link, msgs->next);
        h2o_linklist_unlink(&p->msg.link);
        if (p->req != NULL) {
            p->guard->pend = NULL;
            respond(p->req, 200, "OK", ok, sizeof(ok) - 1);
        }
        free(p->body);
        free(p);
    }
}

/* the sync thread: one contiguous write and one fdatasync per batch, then the acks */
static void *sync_main(void *arg)
{
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&sync_mu);
        while (sync_q == NULL)
            pthread_cond_wait(&sync_cv, &sync_mu);
        pend_t *list = sync_q;
        sync_q = NULL;
        pthread_mutex_unlock(&sync_mu);
        size_t n = 0;
        for (pend_t *p = list; p != NULL; p = p->next) {
            if (n + p->len + 8 > cap)
                buf = realloc(buf, cap = (n + p->len + 8) * 2);
            memcpy(buf + n, &p->len, 8);
            memcpy(buf + n + 8, p->body, p->len);
            n += 8 + p->len;
        }
        if (ring_pos % RING_SIZE + n > RING_SIZE)
            ring_pos += RING_SIZE - ring_pos % RING_SIZE;
        if (pwrite(ring_fd, buf, n, (off_t)(ring_pos % RING_SIZE)) != (ssize_t)n || fdatasync(ring_fd) != 0) {
            perror("ceiling: journal write");
            exit(1);
        }
        ring_pos += n;
        while (list != NULL) {
            pend_t *next = list->next;
            h2o_multithread_send_message(&synced, &list->msg);
            list = next;
        }
    }
    return NULL;
}

/* after every loop turn: the turn's bodies to the sync thread, one wake-up */
static void flush_held(void)
{
    if (held == NULL)
        return;
    pthread_mutex_lock(&sync_mu);
    pend_t **tail = &sync_q;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = held;
    pthread_cond_signal(&sync_cv);
    pthread_mutex_unlock(&sync_mu);
    held = NULL;
    held_tail = &held;
}

static int open_ring(const char *path)
{
    char *zero = calloc(1, 1 << 20);
    pthread_t t;
    if ((ring_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
        return -1;
    for (uint64_t off = 0; off < RING_SIZE; off += 1 << 20)
        if (pwrite(ring_fd, zero, 1 << 20, (off_t)off) != 1 << 20)
            return -1;
    free(zero);
    if (fsync(ring_fd) != 0)
        return -1;
    mq = h2o_multithread_create_queue(ctx.loop);
    h2o_multithread_register_receiver(mq, &synced, on_synced);
    return pthread_create(&t, NULL, sync_main, NULL) == 0 ? 0 : -1;
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
    if (qbc_verifier_check(verifier, sig, sig_len, req->entity.base != NULL ? req->entity.base : "", req->entity.len) !=
        0)
        return respond(req, 401, "Unauthorized", unauthorized, sizeof(unauthorized) - 1);
    if (ring_fd < 0)
        return respond(req, 200, "OK", ok, sizeof(ok) - 1);
    pend_t *p = calloc(1, sizeof(*p));
    p->req = req;
    p->len = req->entity.len;
    p->body = malloc(p->len + 1);
    if (p->len > 0)
        memcpy(p->body, req->entity.base, p->len);
    p->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*p->guard), on_guard_dispose);
    p->guard->pend = p;
    *held_tail = p;
    held_tail = &p->next;
    return 0;
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
    fprintf(fp, "usage: ceiling --listen HOST:PORT --verifier-token TOKEN [--journal FILE]\n"
                "  a minimal h2o responder: POST /webhooks/intuit verifies intuit-signature\n"
                "  and answers 200 (or 401) without storing anything; GET /healthz answers 200.\n"
                "  --journal FILE: answer 200 only after the body is in FILE (a 16 MiB ring),\n"
                "  one pwrite + fdatasync per batch: the least a durable ack costs.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"listen", required_argument, NULL, 'l'},
                                             {"verifier-token", required_argument, NULL, 't'},
                                             {"journal", required_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *listen_addr = NULL, *token = NULL, *journal = NULL;
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
        case 'j':
            journal = optarg;
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

    if (journal != NULL && open_ring(journal) != 0) {
        fprintf(stderr, "ceiling: cannot prepare the journal %s: %s\n", journal, strerror(errno));
        return 1;
    }
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
        flush_held();
    }

    /* connections still open die with the process: a benchmark responder needs no drain */
    h2o_socket_read_stop(lsock);
    h2o_socket_close(lsock);
    qbc_verifier_free(verifier);
    return 0;
}
