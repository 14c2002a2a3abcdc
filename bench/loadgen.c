/*
 * loadgen.c — a small HTTP/1.1 load generator for qbcdc's webhook ingress.
 *
 * Why our own: wrk has no fixed-rate mode and wrk2 is not packaged, and the
 * ingress goal needs both a throughput figure (closed loop) and a latency
 * figure at a steady offered rate (open loop) from the same tool, with the
 * same request bytes and connection count for every server compared.
 *
 * Model:
 *   - one thread, one epoll set, C non-blocking keep-alive connections to
 *     127.0.0.1 (nothing else can be targeted), TCP_NODELAY;
 *   - at most one outstanding request per connection, no pipelining;
 *   - closed loop (--rate 0): each connection sends its next request as soon as
 *     the previous answer is complete; latency = answer time - send time;
 *   - open loop (--rate R): request k is *scheduled* at t0 + k/R for the whole
 *     run, independent of the server; it goes out on the next idle connection
 *     (waiting in a backlog if all C are busy), and its latency is measured
 *     from the scheduled time, so a stalled server is charged for every request
 *     it delayed (no coordinated omission);
 *   - a warm-up (--warmup s) is run first and not recorded; the measured window
 *     lasts --duration s; then nothing new is started, but requests in flight
 *     (and, in open loop, those scheduled in the window still waiting in the
 *     backlog) are completed for at most --timeout-ms + 1 s; what is left is
 *     counted as timeouts (in flight) or "unsent" (never got a connection);
 *   - req/s = 200 answers to the window's requests / (last such answer - start
 *     of the window), so an overloaded server is not credited with the offered
 *     rate;
 *   - every latency in the window is kept and sorted, so the percentiles are
 *     exact (nearest rank), not estimated.
 *
 * Bodies are realistic QBO classic webhooks, signed like Intuit does:
 * intuit-signature = base64(HMAC-SHA256(key = verifier token, msg = body)).
 * With --unique every request carries a different entity id (and so a
 * different body and signature), so that no duplicate detection in the server
 * can short-circuit the durable path. HMAC is done with OpenSSL here, on purpose
 * independently of the code under test.
 *
 * The run is bounded: it ends at warm-up + duration + timeout (+ 1 s grace)
 * whatever the server does.
 *
 * Output: a human summary line and one machine-readable line starting with
 * "RESULT " followed by key=value pairs (bench/ingress.sh parses it).
 * Exit status: 0 when the run completed (whatever the figures), 1 if it could
 * not run at all, 2 for usage errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define MAX_CONNS 4096
#define RESP_BUF_SIZE 65536
#define REQ_BUF_SIZE 65536
#define RECONNECT_DELAY_NS 10000000LL /* after a failed connect, so a dead server is not hammered */
#define SWEEP_INTERVAL_NS 5000000LL   /* how often in-flight requests are checked for timeouts */
#define NS_PER_S 1000000000LL

/* ============================== options ============================== */

struct st_options_t {
    uint16_t port;
    int conns;
    double duration_s;
    double warmup_s;
    double rate; /**< requests per second over all connections; 0 = closed loop */
    int unique;
    int entities; /**< entities per webhook body */
    const char *token;
    const char *realm;
    const char *path;
    const char *label;
    int64_t timeout_ns;
    uint64_t id_base;
};

static struct st_options_t opts = {
    .conns = 16,
    .duration_s = 10,
    .warmup_s = 2,
    .entities = 1,
    .realm = "9130350712341234",
    .path = "/webhooks/intuit",
    .label = "-",
    .timeout_ns = 2 * NS_PER_S,
};

/* ============================== connections ========================== */

enum { CONN_DOWN, CONN_CONNECTING, CONN_IDLE, CONN_SENDING, CONN_WAITING };

struct st_conn_t {
    int fd;
    int state;
    int64_t retry_at; /**< CONN_DOWN: when to reconnect */
    const char *req;  /**< request bytes being sent (own buffer, or the shared one) */
    size_t req_len;
    size_t req_off;
    char *own_req;     /**< this connection's request buffer (--unique) */
    int64_t origin_ns; /**< latency origin: scheduled time (open loop) or send time */
    int64_t sent_ns;   /**< when the first byte was written (for the timeout) */
    int measured;      /**< this request falls in the measured window */
    char *rbuf;
    size_t rlen;
    struct st_conn_t *idle_prev, *idle_next; /**< links in the idle queue (CONN_IDLE only) */
};

static struct st_conn_t *conns;
static int epfd = -1;
static struct sockaddr_in target;

/* Idle connections, oldest first. A FIFO spreads requests over all the
 * connections evenly; with a stack, the connections at the bottom would sit
 * idle long enough for the server's keep-alive timeout to close them, and a
 * request racing that close would show up as an error. */
static struct st_conn_t *idle_head, *idle_tail;
static int n_idle;

/* ============================== state ================================ */

enum { PHASE_WARMUP, PHASE_MEASURE, PHASE_DRAIN };

static int phase;
static int64_t t_start, t_measure, t_end, t_hard_end;
static int64_t t_last_answer; /**< when the last answer to a measured request arrived */
static uint64_t next_id;      /**< the next entity id when --unique */
static uint64_t sched_next;   /**< open loop: index of the next request to schedule */
static uint64_t sched_sent;   /**< open loop: index of the next scheduled request to send */

/* the request used by every connection when --unique is off */
static char *shared_req;
static size_t shared_req_len;

static EVP_MAC_CTX *hmac_ctx;
static char host_header[64];

/* results */
static uint64_t n_sent, n_ok, n_non200, n_errors, n_timeouts, n_unsent, n_connects;
static int first_non200;

/** a growable array of durations in ns, sorted before percentiles are read */
struct st_series_t {
    int64_t *v;
    size_t n, cap;
};

/* latency from the origin (scheduled time in open loop), and from the actual
 * send: the difference is time spent waiting in our backlog or for our loop */
static struct st_series_t lat, svc;

static volatile sig_atomic_t interrupted;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void on_signal(int signo)
{
    (void)signo;
    interrupted = 1;
}

static void series_add(struct st_series_t *s, int64_t ns)
{
    if (s->n == s->cap) {
        s->cap = s->cap != 0 ? s->cap * 2 : 1 << 16;
        if ((s->v = realloc(s->v, s->cap * sizeof(*s->v))) == NULL) {
            fprintf(stderr, "loadgen: out of memory for latency samples\n");
            exit(1);
        }
    }
    s->v[s->n++] = ns;
}

/* ============================== requests ============================= */

/* Computes intuit-signature for body into out (44 base64 characters + NUL).
 * The context holds the key; EVP_MAC_init with a NULL key re-initialises it
 * without redoing the key schedule, which keeps per-request signing cheap. */
static void sign(const char *body, size_t len, char out[45])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;

    if (EVP_MAC_init(hmac_ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(hmac_ctx, (const unsigned char *)body, len) != 1 ||
        EVP_MAC_final(hmac_ctx, mac, &mac_len, sizeof(mac)) != 1 || mac_len != 32) {
        fprintf(stderr, "loadgen: HMAC failed\n");
        exit(1);
    }
    EVP_EncodeBlock((unsigned char *)out, mac, 32);
}

/* Writes a complete signed POST for entity ids starting at id into buf (of
 * size cap) and returns its length. The body mimics a classic QBO webhook;
 * lastUpdated is the same for the whole run, the ids make bodies distinct. */
static size_t build_request(char *buf, size_t cap, uint64_t id)
{
    static const char *names[] = {"Invoice", "Customer", "Payment", "Bill", "Item", "Estimate"};
    char body[REQ_BUF_SIZE / 2], sig[45];
    size_t blen = 0, hlen;
    int n;

    n = snprintf(body, sizeof(body), "{\"eventNotifications\":[{\"realmId\":\"%s\",\"dataChangeEvent\":{\"entities\":[",
                 opts.realm);
    blen = (size_t)n;
    for (int i = 0; i < opts.entities; i++) {
        n = snprintf(body + blen, sizeof(body) - blen,
                     "%s{\"name\":\"%s\",\"id\":\"%" PRIu64 "\",\"operation\":\"Update\","
                     "\"lastUpdated\":\"2026-11-21T10:00:00.000Z\"}",
                     i == 0 ? "" : ",", names[i % 6], id + (uint64_t)i);
        if (n < 0 || (size_t)n >= sizeof(body) - blen - 8) {
            fprintf(stderr, "loadgen: body too large (--entities)\n");
            exit(2);
        }
        blen += (size_t)n;
    }
    memcpy(body + blen, "]}}]}", 5);
    blen += 5;
    sign(body, blen, sig);

    n = snprintf(buf, cap,
                 "POST %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "User-Agent: qbcdc-loadgen\r\n"
                 "Content-Type: application/json; charset=utf-8\r\n"
                 "intuit-signature: %s\r\n"
                 "Content-Length: %zu\r\n"
                 "\r\n",
                 opts.path, host_header, sig, blen);
    hlen = (size_t)n;
    if (n < 0 || hlen + blen > cap) {
        fprintf(stderr, "loadgen: request too large\n");
        exit(2);
    }
    memcpy(buf + hlen, body, blen);
    return hlen + blen;
}

/* ============================== connection I/O ======================= */

static void set_events(struct st_conn_t *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)(c - conns)};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void push_idle(struct st_conn_t *c)
{
    c->state = CONN_IDLE;
    c->idle_next = NULL;
    c->idle_prev = idle_tail;
    if (idle_tail != NULL)
        idle_tail->idle_next = c;
    else
        idle_head = c;
    idle_tail = c;
    ++n_idle;
}

static void unlink_idle(struct st_conn_t *c)
{
    if (c->idle_prev != NULL)
        c->idle_prev->idle_next = c->idle_next;
    else
        idle_head = c->idle_next;
    if (c->idle_next != NULL)
        c->idle_next->idle_prev = c->idle_prev;
    else
        idle_tail = c->idle_prev;
    c->idle_prev = c->idle_next = NULL;
    --n_idle;
}

/* takes the connection that has been idle the longest (there must be one) */
static struct st_conn_t *pop_idle(void)
{
    struct st_conn_t *c = idle_head;
    unlink_idle(c);
    return c;
}

/* Starts a non-blocking connect. On immediate failure the connection stays
 * down and is retried after RECONNECT_DELAY_NS. */
static void conn_open(struct st_conn_t *c, int64_t now)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)(c - conns)};
    int on = 1;

    c->rlen = 0;
    if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
        goto Error;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (connect(c->fd, (struct sockaddr *)&target, sizeof(target)) != 0 && errno != EINPROGRESS)
        goto Error;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        goto Error;
    c->state = CONN_CONNECTING;
    c->sent_ns = now; /* the connect is bounded by the request timeout too */
    ++n_connects;
    return;

Error:
    if (c->fd != -1)
        close(c->fd);
    c->fd = -1;
    c->state = CONN_DOWN;
    c->retry_at = now + RECONNECT_DELAY_NS;
    if (phase == PHASE_MEASURE)
        ++n_errors;
}

/* Closes a connection. If a request was in flight it is lost: counted as an
 * error (or a timeout) when it belonged to the measured window. An idle
 * connection is taken off the idle stack. */
static void conn_close(struct st_conn_t *c, int64_t now, int is_error, int is_timeout)
{
    if (c->state == CONN_IDLE)
        unlink_idle(c);
    if (c->state == CONN_SENDING || c->state == CONN_WAITING) {
        /* a lost request counts when it belongs to the measured window */
        if (c->measured && is_timeout)
            ++n_timeouts;
        else if (c->measured && is_error)
            ++n_errors;
    } else if (is_error && phase == PHASE_MEASURE) {
        ++n_errors; /* a failed or timed-out connect */
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = CONN_DOWN;
    c->retry_at = now + RECONNECT_DELAY_NS;
    /* a keep-alive close by the server is normal: replace the connection at once */
    if (!is_error && phase != PHASE_DRAIN)
        conn_open(c, now);
}

/* Writes as much of the current request as the socket takes. */
static void conn_flush(struct st_conn_t *c, int64_t now)
{
    while (c->req_off < c->req_len) {
        ssize_t n = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->req_off += (size_t)n;
        } else if (n == -1 && errno == EINTR) {
            continue;
        } else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->state != CONN_SENDING) {
                c->state = CONN_SENDING;
                set_events(c, EPOLLIN | EPOLLOUT);
            }
            return;
        } else {
            conn_close(c, now, 1, 0);
            return;
        }
    }
    if (c->state == CONN_SENDING)
        set_events(c, EPOLLIN);
    c->state = CONN_WAITING;
}

/* Sends the next request on idle connection c. origin is the latency origin
 * (the scheduled time in open loop, now in closed loop). */
static void conn_send(struct st_conn_t *c, int64_t origin, int measured, int64_t now)
{
    if (opts.unique) {
        c->req_len = build_request(c->own_req, REQ_BUF_SIZE, opts.id_base + next_id);
        next_id += (uint64_t)opts.entities;
        c->req = c->own_req;
    } else {
        c->req = shared_req;
        c->req_len = shared_req_len;
    }
    c->req_off = 0;
    c->origin_ns = origin;
    c->sent_ns = now;
    c->measured = measured;
    c->rlen = 0;
    if (measured)
        ++n_sent;
    c->state = CONN_WAITING;
    conn_flush(c, now);
}

/* ============================== response parsing ===================== */

/* Parses a chunked body starting at p (end at e). Returns the number of bytes
 * it spans, 0 when incomplete, -1 when malformed. Trailers are allowed. */
static ssize_t chunked_length(const char *p, const char *e)
{
    const char *start = p;

    for (;;) {
        char *end;
        const char *crlf = memmem(p, (size_t)(e - p), "\r\n", 2);
        unsigned long sz;
        if (crlf == NULL)
            return 0;
        sz = strtoul(p, &end, 16);
        if (end == p)
            return -1;
        p = crlf + 2;
        if (sz == 0) {
            /* trailers, then an empty line */
            for (;;) {
                crlf = memmem(p, (size_t)(e - p), "\r\n", 2);
                if (crlf == NULL)
                    return 0;
                if (crlf == p)
                    return crlf + 2 - start;
                p = crlf + 2;
            }
        }
        if ((size_t)(e - p) < sz + 2)
            return 0;
        p += sz + 2;
    }
}

/* Tries to parse one complete response in c->rbuf. Returns the status code
 * (> 0) and sets *consumed and *close_after, 0 when more bytes are needed, -1
 * when the response is malformed. Informational (1xx) responses are skipped. */
static int parse_response(struct st_conn_t *c, size_t *consumed, int *close_after)
{
    const char *buf = c->rbuf, *end = c->rbuf + c->rlen;

    for (;;) {
        const char *hdr_end = memmem(buf, (size_t)(end - buf), "\r\n\r\n", 4), *line, *body;
        long content_length = -1;
        int status, chunked = 0;
        if (hdr_end == NULL)
            return c->rlen >= RESP_BUF_SIZE ? -1 : 0;
        if (end - buf < 12 || memcmp(buf, "HTTP/1.", 7) != 0)
            return -1;
        status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
        if (status < 100 || status > 599)
            return -1;
        *close_after = buf[7] == '0'; /* HTTP/1.0 closes unless told otherwise; we never ask */
        if (buf[8] != ' ')
            return -1;
        /* the search includes hdr_end's own CRLF, so a response without headers works too */
        for (line = (const char *)memmem(buf, (size_t)(hdr_end + 2 - buf), "\r\n", 2) + 2; line < hdr_end;) {
            const char *eol = memmem(line, (size_t)(hdr_end + 2 - line), "\r\n", 2);
            const char *colon = memchr(line, ':', (size_t)(eol - line)), *v;
            if (colon == NULL)
                return -1;
            for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
                ;
            if ((size_t)(colon - line) == 14 && strncasecmp(line, "content-length", 14) == 0)
                content_length = strtol(v, NULL, 10);
            else if ((size_t)(colon - line) == 17 && strncasecmp(line, "transfer-encoding", 17) == 0)
                chunked = eol - v >= 7 && strncasecmp(eol - 7, "chunked", 7) == 0;
            else if ((size_t)(colon - line) == 10 && strncasecmp(line, "connection", 10) == 0)
                *close_after = eol - v == 5 && strncasecmp(v, "close", 5) == 0;
            line = eol + 2;
        }
        body = hdr_end + 4;
        if (status >= 100 && status < 200) {
            buf = body;
            continue;
        }
        if (chunked) {
            ssize_t n = chunked_length(body, end);
            if (n <= 0)
                return (int)n;
            *consumed = (size_t)(body + n - c->rbuf);
        } else if (content_length >= 0) {
            if (end - body < content_length)
                return 0;
            *consumed = (size_t)(body + content_length - c->rbuf);
        } else if (status == 204 || status == 304) {
            *consumed = (size_t)(body - c->rbuf);
        } else {
            return -1; /* a body delimited by close: we do not support it */
        }
        return status;
    }
}

/* Called when a response has been read completely. */
static void on_response(struct st_conn_t *c, int status, int close_after, int64_t now)
{
    if (c->measured) {
        t_last_answer = now;
        if (status == 200) {
            ++n_ok;
            series_add(&lat, now - c->origin_ns);
            series_add(&svc, now - c->sent_ns);
        } else {
            if (n_non200 == 0)
                first_non200 = status;
            ++n_non200;
        }
    }
    c->rlen = 0;
    push_idle(c);
    if (close_after)
        conn_close(c, now, 0, 0); /* not in flight any more: closing it is not an error */
}

static void conn_read(struct st_conn_t *c, int64_t now)
{
    for (;;) {
        ssize_t n = read(c->fd, c->rbuf + c->rlen, RESP_BUF_SIZE - c->rlen);
        if (n > 0) {
            size_t consumed = 0;
            int close_after = 0, status;
            c->rlen += (size_t)n;
            if (c->state != CONN_WAITING && c->state != CONN_SENDING) {
                conn_close(c, now, 1, 0); /* bytes nobody asked for */
                return;
            }
            if ((status = parse_response(c, &consumed, &close_after)) < 0) {
                conn_close(c, now, 1, 0);
                return;
            }
            if (status > 0) {
                if (consumed != c->rlen || c->state == CONN_SENDING) {
                    conn_close(c, now, 1, 0); /* answered before we finished, or extra bytes */
                    return;
                }
                on_response(c, status, close_after, now);
                return;
            }
            if (c->rlen == RESP_BUF_SIZE) {
                conn_close(c, now, 1, 0);
                return;
            }
        } else if (n == -1 && errno == EINTR) {
            continue;
        } else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            /* EOF or reset: an error if a request was in flight, a normal
             * keep-alive close otherwise */
            conn_close(c, now, c->state == CONN_WAITING || c->state == CONN_SENDING, 0);
            return;
        }
    }
}

static void on_event(struct st_conn_t *c, uint32_t events, int64_t now)
{
    if (c->state == CONN_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if ((events & (EPOLLERR | EPOLLHUP)) != 0 || getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
            err != 0) {
            conn_close(c, now, 1, 0);
            return;
        }
        if ((events & EPOLLOUT) != 0) {
            set_events(c, EPOLLIN);
            push_idle(c);
        }
        return;
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
        conn_read(c, now);
        if (c->state == CONN_DOWN)
            return;
    }
    if ((events & EPOLLOUT) != 0 && c->state == CONN_SENDING)
        conn_flush(c, now);
}

/* ============================== scheduling =========================== */

static int64_t sched_time(uint64_t k)
{
    return t_start + (int64_t)((double)k * (double)NS_PER_S / opts.rate);
}

/* Hands requests to idle connections: in closed loop every idle connection
 * gets one; in open loop each due request goes to an idle connection, and due
 * requests beyond that wait in the backlog. */
static int backlog(void)
{
    return opts.rate > 0 && sched_sent < sched_next;
}

static void dispatch(int64_t now)
{
    if (opts.rate <= 0) {
        while (phase != PHASE_DRAIN && n_idle > 0) {
            struct st_conn_t *c = pop_idle();
            conn_send(c, now, phase == PHASE_MEASURE, now);
        }
        return;
    }
    /* once draining, nothing new is scheduled, but the backlog still goes out */
    while (phase != PHASE_DRAIN && sched_time(sched_next) <= now)
        ++sched_next;
    while (sched_sent < sched_next && n_idle > 0) {
        struct st_conn_t *c = pop_idle();
        int64_t due = sched_time(sched_sent++);
        conn_send(c, due, due >= t_measure && due < t_end, now);
    }
}

/* Reconnects connections that are down and times out requests (and connects)
 * that have been outstanding for longer than --timeout-ms. */
static void sweep(int64_t now)
{
    for (int i = 0; i < opts.conns; i++) {
        struct st_conn_t *c = &conns[i];
        switch (c->state) {
        case CONN_DOWN:
            if ((phase != PHASE_DRAIN || backlog()) && now >= c->retry_at)
                conn_open(c, now);
            break;
        case CONN_CONNECTING:
        case CONN_SENDING:
        case CONN_WAITING:
            if (now - c->sent_ns > opts.timeout_ns)
                conn_close(c, now, 1, 1);
            break;
        }
    }
}

static int in_flight(void)
{
    int n = 0;
    for (int i = 0; i < opts.conns; i++)
        n += (conns[i].state == CONN_SENDING || conns[i].state == CONN_WAITING) && conns[i].measured;
    return n;
}

/* Waits for events until deadline (absolute, monotonic ns) at the latest. */
static int wait_events(struct epoll_event *evs, int max, int64_t deadline, int64_t now)
{
    int64_t d = deadline - now;
    struct timespec ts;
    int n;

    if (d < 0)
        d = 0;
    ts.tv_sec = d / NS_PER_S;
    ts.tv_nsec = d % NS_PER_S;
    n = epoll_pwait2(epfd, evs, max, &ts, NULL);
    if (n == -1 && errno == ENOSYS)
        n = epoll_wait(epfd, evs, max, (int)((d + 999999) / 1000000));
    return n;
}

static void run(void)
{
    struct epoll_event evs[256];
    int64_t now = now_ns(), last_sweep = 0;

    t_start = now;
    t_measure = t_start + (int64_t)(opts.warmup_s * NS_PER_S);
    t_end = t_measure + (int64_t)(opts.duration_s * NS_PER_S);
    t_hard_end = t_end + opts.timeout_ns + NS_PER_S;
    phase = opts.warmup_s > 0 ? PHASE_WARMUP : PHASE_MEASURE;
    for (int i = 0; i < opts.conns; i++)
        conn_open(&conns[i], now);

    while (!interrupted) {
        int64_t deadline;
        int n;

        now = now_ns();
        if (phase == PHASE_WARMUP && now >= t_measure)
            phase = PHASE_MEASURE;
        if (phase == PHASE_MEASURE && now >= t_end) {
            phase = PHASE_DRAIN;
            /* every request scheduled in the window is still owed: the backlog is sent while draining */
            while (opts.rate > 0 && sched_time(sched_next) < t_end)
                ++sched_next;
        }
        if (phase == PHASE_DRAIN && ((in_flight() == 0 && !backlog()) || now >= t_hard_end))
            break;
        if (now - last_sweep >= SWEEP_INTERVAL_NS) {
            sweep(now);
            last_sweep = now;
        }
        dispatch(now);

        deadline = now + SWEEP_INTERVAL_NS;
        /* the next scheduled send matters only if a connection is free to take it;
         * otherwise the answer that frees one wakes us anyway */
        if (phase != PHASE_DRAIN && opts.rate > 0 && n_idle > 0 && sched_time(sched_next) < deadline)
            deadline = sched_time(sched_next);
        if (phase == PHASE_WARMUP && t_measure < deadline)
            deadline = t_measure;
        if (phase == PHASE_MEASURE && t_end < deadline)
            deadline = t_end;
        if ((n = wait_events(evs, 256, deadline, now)) == -1) {
            if (errno == EINTR)
                continue;
            perror("loadgen: epoll_wait");
            exit(1);
        }
        now = now_ns();
        for (int i = 0; i < n; i++) {
            struct st_conn_t *c = &conns[evs[i].data.u32];
            if (c->state != CONN_DOWN)
                on_event(c, evs[i].events, now);
        }
    }

    /* scheduled in the window but never sent: the server never freed a connection for them */
    for (uint64_t k = sched_sent; k < sched_next; k++)
        n_unsent += sched_time(k) >= t_measure && sched_time(k) < t_end;
    /* whatever is still outstanding after the drain was not answered in time */
    phase = PHASE_DRAIN;
    now = now_ns();
    for (int i = 0; i < opts.conns; i++) {
        struct st_conn_t *c = &conns[i];
        if (c->state != CONN_DOWN)
            conn_close(c, now, 1, 1);
    }
}

/* ============================== report =============================== */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void series_sort(struct st_series_t *s)
{
    qsort(s->v, s->n, sizeof(*s->v), cmp_i64);
}

/* nearest-rank percentile of a sorted series, in µs (0 when empty) */
static double pct_us(const struct st_series_t *s, double p)
{
    size_t rank;

    if (s->n == 0)
        return 0;
    rank = (size_t)(p / 100.0 * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return (double)s->v[rank - 1] / 1000.0;
}

static void report(void)
{
    /* answers to the window's requests may come in while draining: rate them over the
     * time they really took, so an overloaded server is not credited with the offered rate */
    double elapsed_s = (double)((t_last_answer > t_end ? t_last_answer : t_end) - t_measure) / NS_PER_S;
    double rps = (double)n_ok / elapsed_s, cpu_s;
    const char *mode = opts.rate > 0 ? "open" : "closed";
    struct rusage ru;

    /* our own CPU time, so that a script can tell how much of the machine the
     * load generator took from the server it shares the cores with */
    getrusage(RUSAGE_SELF, &ru);
    cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
            (double)ru.ru_stime.tv_usec / 1e6;

    series_sort(&lat);
    series_sort(&svc);
    if (opts.rate > 0)
        printf("loadgen: %s open-loop %.0f req/s offered, %d conns, %.1f s:", opts.label, opts.rate, opts.conns,
               opts.duration_s);
    else
        printf("loadgen: %s closed-loop %d conns, %.1f s:", opts.label, opts.conns, opts.duration_s);
    printf(" %" PRIu64 " sent, %" PRIu64 " ok, %" PRIu64 " non-200, %" PRIu64 " errors, %" PRIu64 " timeouts", n_sent,
           n_ok, n_non200, n_errors, n_timeouts);
    if (opts.rate > 0)
        printf(", %" PRIu64 " unsent", n_unsent);
    printf(", %.1f req/s; latency us p50 %.0f p90 %.0f p99 %.0f p99.9 %.0f max %.0f", rps, pct_us(&lat, 50),
           pct_us(&lat, 90), pct_us(&lat, 99), pct_us(&lat, 99.9), pct_us(&lat, 100));
    if (opts.rate > 0)
        printf(" (from actual send: p50 %.0f p99 %.0f max %.0f)", pct_us(&svc, 50), pct_us(&svc, 99),
               pct_us(&svc, 100));
    printf("\n");
    printf("RESULT label=%s mode=%s conns=%d rate=%.0f duration_s=%.3f unique=%d sent=%" PRIu64 " ok=%" PRIu64
           " non200=%" PRIu64 " first_non200=%d errors=%" PRIu64 " timeouts=%" PRIu64 " unsent=%" PRIu64
           " connects=%" PRIu64 " rps=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f"
           " svc_p50_us=%.1f svc_p99_us=%.1f svc_max_us=%.1f cpu_s=%.3f\n",
           opts.label, mode, opts.conns, opts.rate, opts.duration_s, opts.unique, n_sent, n_ok, n_non200, first_non200,
           n_errors, n_timeouts, n_unsent, n_connects, rps, pct_us(&lat, 50), pct_us(&lat, 90), pct_us(&lat, 99),
           pct_us(&lat, 99.9), pct_us(&lat, 100), pct_us(&svc, 50), pct_us(&svc, 99), pct_us(&svc, 100), cpu_s);
    fflush(stdout);
}

/* ============================== main ================================= */

static void usage(FILE *fp)
{
    fprintf(fp, "usage: loadgen --target 127.0.0.1:PORT --token VERIFIER_TOKEN [options]\n"
                "  -c, --connections N   keep-alive connections, one request in flight each (16)\n"
                "  -d, --duration S      measured seconds (10)\n"
                "  -w, --warmup S        unrecorded seconds before measuring (2)\n"
                "  -r, --rate R          open loop: R requests/s in total, latency from the scheduled\n"
                "                        send time; 0 = closed loop, as fast as answers come (0)\n"
                "  -u, --unique          a distinct body (entity id) and signature per request\n"
                "  -e, --entities N      entities per webhook body (1)\n"
                "  -t, --timeout-ms MS   per-request timeout (2000)\n"
                "      --realm ID        realmId in the bodies (9130350712341234)\n"
                "      --path P          request path (/webhooks/intuit)\n"
                "      --id-base N       first entity id (default: derived from the clock, so runs differ)\n"
                "      --label NAME      tag echoed in the output\n");
}

/* Parses a decimal number with bounds; exits with usage on anything else. */
static double parse_num(const char *name, const char *s, double lo, double hi)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "loadgen: bad value for --%s: %s\n", name, s);
        exit(2);
    }
    return v;
}

static void parse_target(const char *s)
{
    const char *colon = strrchr(s, ':');

    if (colon == NULL ||
        !((colon - s == 9 && strncmp(s, "127.0.0.1", 9) == 0) || (colon - s == 9 && strncmp(s, "localhost", 9) == 0))) {
        fprintf(stderr, "loadgen: --target must be 127.0.0.1:PORT (loopback only): %s\n", s);
        exit(2);
    }
    opts.port = (uint16_t)parse_num("target", colon + 1, 1, 65535);
    memset(&target, 0, sizeof(target));
    target.sin_family = AF_INET;
    target.sin_port = htons(opts.port);
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    snprintf(host_header, sizeof(host_header), "127.0.0.1:%u", (unsigned)opts.port);
}

static void init_hmac(void)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    OSSL_PARAM params[2] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                            OSSL_PARAM_construct_end()};
    static const char probe[] = "{\"eventNotifications\":[]}";
    unsigned char ref[32];
    unsigned int ref_len = 0;
    char ref_b64[45], sig[45];

    if (mac == NULL || (hmac_ctx = EVP_MAC_CTX_new(mac)) == NULL ||
        EVP_MAC_init(hmac_ctx, (const unsigned char *)opts.token, strlen(opts.token), params) != 1) {
        fprintf(stderr, "loadgen: cannot set up HMAC-SHA256\n");
        exit(1);
    }
    EVP_MAC_free(mac);
    /* the re-init shortcut in sign() must give what the one-shot API gives */
    HMAC(EVP_sha256(), opts.token, (int)strlen(opts.token), (const unsigned char *)probe, sizeof(probe) - 1, ref,
         &ref_len);
    EVP_EncodeBlock((unsigned char *)ref_b64, ref, 32);
    sign(probe, sizeof(probe) - 1, sig);
    sign(probe, sizeof(probe) - 1, sig);
    if (ref_len != 32 || strcmp(sig, ref_b64) != 0) {
        fprintf(stderr, "loadgen: HMAC self-check failed\n");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    enum { OPT_REALM = 256, OPT_PATH, OPT_ID_BASE, OPT_LABEL };
    static const struct option longopts[] = {{"target", required_argument, NULL, 'T'},
                                             {"token", required_argument, NULL, 'k'},
                                             {"connections", required_argument, NULL, 'c'},
                                             {"duration", required_argument, NULL, 'd'},
                                             {"warmup", required_argument, NULL, 'w'},
                                             {"rate", required_argument, NULL, 'r'},
                                             {"unique", no_argument, NULL, 'u'},
                                             {"entities", required_argument, NULL, 'e'},
                                             {"timeout-ms", required_argument, NULL, 't'},
                                             {"realm", required_argument, NULL, OPT_REALM},
                                             {"path", required_argument, NULL, OPT_PATH},
                                             {"id-base", required_argument, NULL, OPT_ID_BASE},
                                             {"label", required_argument, NULL, OPT_LABEL},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt, have_target = 0, have_id_base = 0;
    struct sigaction sa;

    while ((opt = getopt_long(argc, argv, "c:d:w:r:ue:t:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'T':
            parse_target(optarg);
            have_target = 1;
            break;
        case 'k':
            opts.token = optarg;
            break;
        case 'c':
            opts.conns = (int)parse_num("connections", optarg, 1, MAX_CONNS);
            break;
        case 'd':
            opts.duration_s = parse_num("duration", optarg, 0.1, 3600);
            break;
        case 'w':
            opts.warmup_s = parse_num("warmup", optarg, 0, 3600);
            break;
        case 'r':
            opts.rate = parse_num("rate", optarg, 0, 10000000);
            break;
        case 'u':
            opts.unique = 1;
            break;
        case 'e':
            opts.entities = (int)parse_num("entities", optarg, 1, 100);
            break;
        case 't':
            opts.timeout_ns = (int64_t)parse_num("timeout-ms", optarg, 1, 600000) * 1000000;
            break;
        case OPT_REALM:
            opts.realm = optarg;
            if (strlen(opts.realm) > 64 || strspn(opts.realm, "0123456789") != strlen(opts.realm)) {
                fprintf(stderr, "loadgen: --realm must be at most 64 digits\n");
                return 2;
            }
            break;
        case OPT_PATH:
            opts.path = optarg;
            if (opts.path[0] != '/' || strlen(opts.path) > 512 || strpbrk(opts.path, " \r\n") != NULL) {
                fprintf(stderr, "loadgen: bad --path\n");
                return 2;
            }
            break;
        case OPT_ID_BASE:
            opts.id_base = (uint64_t)parse_num("id-base", optarg, 0, 1e18);
            have_id_base = 1;
            break;
        case OPT_LABEL:
            opts.label = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || !have_target || opts.token == NULL || opts.token[0] == '\0') {
        usage(stderr);
        return 2;
    }
    if (!have_id_base) {
        /* seconds since the epoch times 10^7: a later run starts above every id an
         * earlier run could have used unless it sent over 10^7 requests a second */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        opts.id_base = (uint64_t)ts.tv_sec * 10000000u + (uint64_t)ts.tv_nsec / 100;
    }

    signal(SIGPIPE, SIG_IGN);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* open-loop sends are timed by epoll_pwait2's timeout: ask for precise wake-ups */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

    init_hmac();
    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
        perror("loadgen: epoll_create1");
        return 1;
    }
    conns = calloc((size_t)opts.conns, sizeof(*conns));
    if (conns == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    for (int i = 0; i < opts.conns; i++) {
        conns[i].fd = -1;
        if ((conns[i].rbuf = malloc(RESP_BUF_SIZE)) == NULL ||
            (opts.unique && (conns[i].own_req = malloc(REQ_BUF_SIZE)) == NULL)) {
            fprintf(stderr, "loadgen: out of memory\n");
            return 1;
        }
    }
    if (!opts.unique) {
        if ((shared_req = malloc(REQ_BUF_SIZE)) == NULL) {
            fprintf(stderr, "loadgen: out of memory\n");
            return 1;
        }
        shared_req_len = build_request(shared_req, REQ_BUF_SIZE, opts.id_base);
    }

    run();
    if (interrupted)
        fprintf(stderr, "loadgen: interrupted; figures cover the part that ran\n");
    report();

    for (int i = 0; i < opts.conns; i++) {
        free(conns[i].rbuf);
        free(conns[i].own_req);
    }
    free(conns);
    free(shared_req);
    free(lat.v);
    free(svc.v);
    EVP_MAC_CTX_free(hmac_ctx);
    close(epfd);
    return 0;
}
