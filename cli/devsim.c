/*
 * devsim.c — starting and stopping the bundled simulator for `qbcdc serve`.
 *
 * The simulator is a child process: it gets SIGTERM when we stop and, through
 * PR_SET_PDEATHSIG, also when we die, so a crashed qbcdc leaves no stray qbosim.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <openssl/crypto.h>
#include "common.h"
#include "devsim.h"
#include "tls_pin.h"

static int random_hex(char *out, size_t nbytes)
{
    unsigned char b[32];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || nbytes > sizeof(b) || read(fd, b, nbytes) != (ssize_t)nbytes) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

/* where webhooks reach us: our listen address, with a wildcard host made loopback */
static void webhook_url(const char *listen, int tls, char *out, size_t sz)
{
    const char *colon = strrchr(listen, ':'), *scheme = tls ? "https" : "http";
    size_t hlen = (size_t)(colon - listen);
    if (hlen == 0 || (hlen == 7 && strncmp(listen, "0.0.0.0", 7) == 0) ||
        (hlen == 4 && strncmp(listen, "[::]", 4) == 0))
        snprintf(out, sz, "%s://127.0.0.1%s/webhooks/intuit", scheme, colon);
    else
        snprintf(out, sz, "%s://%s/webhooks/intuit", scheme, listen);
}

/*
 * 1 when the server will listen on a loopback address: spec resolved as the server binds
 * it (the first address getaddrinfo gives, AI_PASSIVE), not read as a string ("127.x.example"
 * may resolve anywhere; ":8080" is every interface)
 */
static int listen_is_loopback(const char *spec)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    size_t hl = colon != NULL ? (size_t)(colon - spec) : 0;
    if (colon == NULL || hl == 0 || hl >= sizeof(host))
        return 0;
    if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']')
        memcpy(host, spec + 1, hl -= 2);
    else
        memcpy(host, spec, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL)
        return 0;
    int loop = 0;
    if (res->ai_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)res->ai_addr;
        loop = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    } else if (res->ai_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)res->ai_addr;
        loop = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127);
    }
    freeaddrinfo(res);
    return loop;
}

int qbc_devsim_start(qbc_config_t *cfg, qbc_devsim_t *sim)
{
    char self[PATH_MAX], path[PATH_MAX + 16], url[300];
    ssize_t n;

    memset(sim, 0, sizeof(*sim));
    if (strcmp(cfg->sim, "auto") != 0 || cfg->client_id != NULL)
        return 0;
    if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) < 0)
        return -errno;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    *slash = '\0';
    snprintf(path, sizeof(path), "%s/qbosim", self);
    if (access(path, X_OK) != 0) {
        qbc_log(QBC_LOG_WARN, "devsim", "no Intuit credentials and no %s: running without a simulator", path);
        return QBC_ENOTFOUND;
    }

    if (cfg->n_tokens > 0) {
        snprintf(sim->token, sizeof(sim->token), "%s", cfg->tokens[0]);
    } else {
        if (random_hex(sim->token, 24) != 0)
            return QBC_EINVAL;
        /* the generated token replaces the (empty) configured list */
        free(cfg->tokens);
        cfg->tokens = qbc_calloc(2, sizeof(char *));
        cfg->tokens[0] = qbc_strdup(sim->token);
        cfg->n_tokens = 1;
    }
    webhook_url(cfg->listen, cfg->tls_cert != NULL, url, sizeof(url));
    /* over HTTPS the simulator pins our certificate's key, as the admin CLI does */
    char pin[QBC_TLS_PIN_MAX] = "", why[512];
    if (cfg->tls_cert != NULL && qbc_tls_pin_from_cert(cfg->tls_cert, pin, why, sizeof(why)) != 0) {
        qbc_log(QBC_LOG_ERROR, "devsim", "QBCDC_TLS_CERT: %s", why);
        return QBC_EINVAL;
    }
    /* the simulated companies live beside the store, so every start is the same companies */
    snprintf(sim->state_path, sizeof(sim->state_path), "%s/qbosim.state", cfg->data_dir);
    snprintf(sim->api_base, sizeof(sim->api_base), "http://%s", cfg->sim_listen);
    snprintf(sim->token_url, sizeof(sim->token_url), "http://%s/oauth2/v1/tokens/bearer", cfg->sim_listen);
    snprintf(sim->authorize_url, sizeof(sim->authorize_url), "http://%s/connect/oauth2", cfg->sim_listen);
    if (cfg->oauth_redirect_uri == NULL) {
        /* our own callback, so GET /connect works against the simulator out of the box */
        snprintf(sim->redirect_uri, sizeof(sim->redirect_uri), "%.*s/oauth/callback",
                 (int)(strlen(url) - strlen("/webhooks/intuit")), url);
        cfg->oauth_redirect_uri = sim->redirect_uri;
    }
    /*
     * The simulator knows 8 of the default CDC list's 24 entities and refuses the others,
     * as a company whose plan lacks some features does: the reconciler skips refused
     * entities (per realm), so the default list works here as it would at Intuit.
     */
    cfg->client_id = "qbosim-client";
    cfg->client_secret = "qbosim-secret";
    cfg->api_base = sim->api_base;
    cfg->oauth_token_url = sim->token_url;
    cfg->oauth_authorize_url = sim->authorize_url;
    snprintf(sim->revoke_url, sizeof(sim->revoke_url), "http://%s/v2/oauth2/tokens/revoke", cfg->sim_listen);
    cfg->oauth_revoke_url = sim->revoke_url;

    char *argv[] = {path,
                    "--listen",
                    (char *)cfg->sim_listen,
                    "--realms",
                    "3",
                    "--seed",
                    "1",
                    "--webhook-url",
                    url,
                    "--verifier-token",
                    sim->token,
                    "--client-id",
                    (char *)cfg->client_id,
                    "--client-secret",
                    (char *)cfg->client_secret,
                    "--mutate-rate",
                    "0.5",
                    "--state",
                    sim->state_path,
                    pin[0] != '\0' ? "--webhook-pin" : NULL,
                    pin,
                    NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(0); /* the parent died before prctl took effect */
        execv(path, argv);
        _exit(127);
    }
    sim->pid = pid;
    /* a loopback-only development service gets usable default bearer tokens; anything
     * listening beyond loopback must be given its own */
    if (listen_is_loopback(cfg->listen)) {
        if (cfg->feed_token == NULL) {
            cfg->feed_token = "dev";
            qbc_log(QBC_LOG_INFO, "devsim", "dev mode: QBCDC_FEED_TOKEN defaults to 'dev' (loopback only)");
        }
        if (cfg->admin_token == NULL) {
            cfg->admin_token = "dev";
            qbc_log(QBC_LOG_INFO, "devsim", "dev mode: QBCDC_ADMIN_TOKEN defaults to 'dev' (loopback only)");
        }
    }
    qbc_log(QBC_LOG_INFO, "devsim",
            "no Intuit credentials (QBCDC_CLIENT_ID): started the bundled simulator on %s (pid %d); it posts "
            "signed webhooks to %s. Set QBCDC_SIM=off to run without it.",
            cfg->sim_listen, (int)pid, url);
    return 0;
}

void qbc_devsim_stop(qbc_devsim_t *sim)
{
    int status;

    if (sim->pid <= 0)
        return;
    kill(sim->pid, SIGTERM);
    for (int i = 0; i < 300; i++) {
        if (waitpid(sim->pid, &status, WNOHANG) == sim->pid) {
            sim->pid = 0;
            return;
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    kill(sim->pid, SIGKILL);
    waitpid(sim->pid, &status, 0);
    sim->pid = 0;
}

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_cv = PTHREAD_COND_INITIALIZER;
static int reg_done;

static void on_registered(qbc_store_job_t *job)
{
    (void)job;
    pthread_mutex_lock(&reg_mu);
    reg_done++;
    pthread_cond_signal(&reg_cv);
    pthread_mutex_unlock(&reg_mu);
}

/* 1 when the simulator we started has exited (reaped: its pid is cleared) */
static int sim_exited(qbc_devsim_t *sim)
{
    int status;
    if (sim->pid > 0 && waitpid(sim->pid, &status, WNOHANG) == sim->pid) {
        sim->pid = 0;
        return 1;
    }
    return 0;
}

int qbc_devsim_register(qbc_devsim_t *sim, const char *sim_listen, qbc_store_t *store, int snapshot)
{
    char url[200];
    qbc_buf_t answer = {.max = 1 << 20};
    long status = 0;
    int registered = 0;

    if (sim->pid <= 0)
        return 0;
    snprintf(url, sizeof(url), "http://%s/sim/realms", sim_listen);
    /* the simulator was just started: give it up to 5 s to answer. If it exited (its port is
     * taken), whatever answers there is not ours: say so rather than adopt it */
    struct timespec first = {0, 200 * 1000000};
    nanosleep(&first, NULL);
    for (int attempt = 0; attempt < 50 && status != 200; attempt++) {
        if (sim_exited(sim)) {
            qbc_log(QBC_LOG_ERROR, "devsim",
                    "the bundled simulator exited at start: is %s taken? Set QBCDC_SIM_LISTEN to a free address, "
                    "or QBCDC_SIM=off",
                    sim_listen);
            qbc_buf_free(&answer, 1);
            return QBC_ECLOSED;
        }
        CURL *c = curl_easy_init();
        if (c == NULL)
            break;
        qbc_buf_free(&answer, 1);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, qbc_buf_write_cb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        if (status != 200) {
            struct timespec ts = {0, 100 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    json_t *o = status == 200 && answer.data != NULL ? json_loads(answer.data, 0, NULL) : NULL;
    const char *realm;
    json_t *v;
    json_object_foreach(o, realm, v)
    {
        const char *rt = json_string_value(json_object_get(v, "refresh_token"));
        qbc_realm_t st;
        if (rt == NULL || strlen(rt) >= QBC_TOKEN_MAX || strlen(realm) >= QBC_REALM_MAX)
            continue;
        /*
         * every start: the simulator's tokens are its own and new, so the stored ones (of the
         * previous simulator process) are useless; the realm is made active again under them,
         * keeping its CDC watermark (the simulator's data persists: --state)
         */
        if (qbc_store_realm_get(store, realm, &st) != 0) {
            memset(&st, 0, sizeof(st));
            snprintf(st.realm, sizeof(st.realm), "%s", realm);
        }
        st.status = QBC_REALM_ACTIVE;
        st.last_error[0] = '\0';
        st.last_error_ns = 0;
        st.connected_ns = qbc_now_ns();
        qbc_tokens_t *t = qbc_calloc(1, sizeof(*t));
        qbc_realm_job_t job;
        memset(&job, 0, sizeof(job));
        snprintf(t->refresh_token, sizeof(t->refresh_token), "%s", rt);
        snprintf(job.realm, sizeof(job.realm), "%s", realm);
        job.state = &st;
        job.tokens = t;
        job.snapshot_if_new = snapshot;
        job.job.on_commit = on_registered;
        pthread_mutex_lock(&reg_mu);
        int target = reg_done + 1;
        pthread_mutex_unlock(&reg_mu);
        if (qbc_store_put_realm(store, &job) == 0) {
            pthread_mutex_lock(&reg_mu);
            while (reg_done < target)
                pthread_cond_wait(&reg_cv, &reg_mu);
            pthread_mutex_unlock(&reg_mu);
            registered += job.job.result == 0;
        }
        OPENSSL_cleanse(t, sizeof(*t));
        free(t);
    }
    json_decref(o);
    qbc_buf_free(&answer, 1); /* refresh tokens */
    if (registered > 0)
        qbc_log(QBC_LOG_INFO, "devsim", "registered %d simulated companies; their changes flow to GET /v1/changes",
                registered);
    return 0;
}
