/*
 * store_fixture.h — what the store's tests share: a job callback that counts, a
 * wait for n callbacks, a temporary data directory, and an entity version.
 */
#ifndef QBC_STORE_FIXTURE_H
#define QBC_STORE_FIXTURE_H

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "store.h"
#include "../../tap.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done_count;

static __attribute__((unused)) void on_commit(qbc_store_job_t *job)
{
    (void)job;
    pthread_mutex_lock(&mu);
    done_count++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/** waits until on_commit has run n times since the last reset_done(). */
static __attribute__((unused)) void wait_done(int n)
{
    pthread_mutex_lock(&mu);
    while (done_count < n)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static __attribute__((unused)) void reset_done(void)
{
    pthread_mutex_lock(&mu);
    done_count = 0;
    pthread_mutex_unlock(&mu);
}

/** a fresh directory under /tmp (free it and rm_rf it when done). */
static __attribute__((unused)) char *make_tmp(void)
{
    char *d = strdup("/tmp/qbcdc-store-test-XXXXXX");
    if (mkdtemp(d) == NULL)
        abort();
    return d;
}

static __attribute__((unused)) void rm_rf(const char *d)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
    if (system(cmd) != 0)
        diag("cleanup failed");
}

/* ---- webhooks in bulk, and the inbox read back ---- */

typedef struct {
    qbc_webhook_job_t job;
    qbc_event_t ev;
    char body[1200];
} wh_t;

/*
 * n webhooks received at received_ns, body i = {"n":first+i} padded to pad bytes; one
 * event each (entity id = first+i, CloudEvents id prefix+(first+i) if a prefix is given);
 * returns once all are acked (free the result).
 */
static __attribute__((unused)) wh_t *submit_at(qbc_store_t *s, int first, int n, size_t pad,
                                               const char *event_id_prefix, int64_t received_ns)
{
    wh_t *w = calloc((size_t)n, sizeof(*w));
    reset_done();
    for (int i = 0; i < n; i++) {
        int len = snprintf(w[i].body, sizeof(w[i].body), "{\"n\":%d}", first + i);
        while ((size_t)len < pad && (size_t)len < sizeof(w[i].body) - 1)
            w[i].body[len++] = ' ';
        w[i].body[len] = '\0';
        strcpy(w[i].ev.realm, "9");
        strcpy(w[i].ev.entity, "Invoice");
        snprintf(w[i].ev.id, sizeof(w[i].ev.id), "%d", first + i);
        if (event_id_prefix != NULL)
            snprintf(w[i].ev.event_id, sizeof(w[i].ev.event_id), "%s%d", event_id_prefix, first + i);
        w[i].ev.op = QBC_OP_UPDATE;
        w[i].ev.updated_ns = 1000 + first + i;
        w[i].job.body = w[i].body;
        w[i].job.body_len = (size_t)len;
        w[i].job.events = &w[i].ev;
        w[i].job.n_events = 1;
        w[i].job.format = QBC_FORMAT_CLASSIC;
        w[i].job.received_ns = received_ns;
        w[i].job.job.on_commit = on_commit;
        qbc_webhook_job_t *one = &w[i].job;
        if (qbc_store_submit_webhooks(s, &one, 1) != 0)
            abort();
    }
    wait_done(n);
    return w;
}

static __attribute__((unused)) wh_t *submit_many(qbc_store_t *s, int first, int n, size_t pad,
                                                 const char *event_id_prefix)
{
    return submit_at(s, first, n, pad, event_id_prefix, 1);
}

typedef struct {
    int n, in_order;
    uint64_t last_seq;
    int next_body;      /* the body number expected next */
    char first_bad[96]; /* the first record out of order, said in words ("" when none) */
} scan_t;

static __attribute__((unused)) int scan_inbox_cb(const qbc_inbox_record_t *r, void *ctx)
{
    scan_t *sc = ctx;
    int num = -1;
    /* the body points into the map and is not NUL-terminated: scan a terminated copy */
    char head[32];
    size_t n = r->body_len < sizeof(head) - 1 ? r->body_len : sizeof(head) - 1;
    memcpy(head, r->body, n);
    head[n] = '\0';
    sscanf(head, "{\"n\":%d}", &num);
    if ((num != sc->next_body || r->seq <= sc->last_seq) && sc->in_order) {
        sc->in_order = 0;
        snprintf(sc->first_bad, sizeof(sc->first_bad), "record %d (seq %llu): body %d after body %d (seq %llu)", sc->n,
                 (unsigned long long)r->seq, num, sc->next_body - 1, (unsigned long long)sc->last_seq);
    }
    sc->next_body = num + 1;
    sc->last_seq = r->seq;
    sc->n++;
    return 0;
}

/* the inbox in order: how many bodies, and whether bodies and sequences rise together */
static __attribute__((unused)) scan_t scan_inbox(qbc_store_t *s)
{
    scan_t sc = {0, 1, 0, 0, ""};
    qbc_store_inbox_scan(s, 0, scan_inbox_cb, &sc);
    return sc;
}

/*
 * Another process beside an open store: a store is opened once per process (LMDB's rule,
 * see qbc_store_open), so a reader or a backup beside a running store is, as in
 * production (qbcdc inspect, qbcdc backup), another process. run_self() runs this test
 * program again with args (NULL-terminated, at most 12); a test's main hands such a run
 * to store_child_main(), which answers on standard output:
 *   read DIR                  "n in_order open_ms": the inbox as a reader opened beside it sees it
 *   backup DIR DEST [EXTRA..] "data_bytes journal_bytes extra_copied", or "error RC REASON" (exit 1)
 *   open DIR                  "RC": what qbc_store_open (a writer) returned
 * run_self returns the exit status (-1: it did not exit) and the output in out.
 */
static __attribute__((unused)) int run_self(const char *const *args, char *out, size_t outsz)
{
    char *argv[16] = {"/proc/self/exe"};
    int n = 1, p[2], status;
    for (int i = 0; args[i] != NULL && n < 14; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    fflush(stdout);
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) { /* only async-signal-safe calls until the exec: the parent has threads */
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    char sink[256];
    for (ssize_t r = 1; r > 0;) {
        if (len + 1 < outsz)
            r = read(p[0], out + len, outsz - 1 - len);
        else
            r = read(p[0], sink, sizeof(sink)); /* the rest is drained, unkept */
        if (r < 0 && errno == EINTR)
            r = 1;
        else if (r > 0 && len + 1 < outsz)
            len += (size_t)r;
    }
    out[len] = '\0';
    close(p[0]);
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static __attribute__((unused)) int store_child_main(int argc, char **argv)
{
    qbc_store_t *s;
    int rc;
    if (argc >= 3 && strcmp(argv[1], "read") == 0) {
        int64_t t0 = qbc_mono_ns();
        if ((rc = qbc_store_open_readonly(argv[2], &s)) != 0) {
            printf("error %d %s\n", rc, qbc_strerror(rc));
            return 1;
        }
        long long open_ms = (long long)((qbc_mono_ns() - t0) / 1000000);
        scan_t sc = scan_inbox(s);
        qbc_store_close(s);
        printf("%d %d %lld\n", sc.n, sc.in_order, open_ms);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "backup") == 0) {
        const char *extra[12] = {NULL};
        for (int i = 4; i < argc && i - 4 < 11; i++)
            extra[i - 4] = argv[i];
        qbc_backup_report_t rep;
        char err[256];
        if ((rc = qbc_store_backup(argv[2], argv[3], extra, &rep, err, sizeof(err))) != 0) {
            printf("error %d %s\n", rc, err);
            return 1;
        }
        printf("%llu %llu %u\n", (unsigned long long)rep.data_bytes, (unsigned long long)rep.journal_bytes,
               rep.extra_copied);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "open") == 0) { /* a writer */
        qbc_store_config_t cfg = {.dir = argv[2]};
        rc = qbc_store_open(&cfg, &s);
        if (rc == 0)
            qbc_store_close(s);
        printf("%d\n", rc);
        return 0;
    }
    fprintf(stderr, "%s: unknown child command\n", argv[0]);
    return 2;
}

/* a fetched version of an entity, from a webhook, as the reconciler or the feed mirror hands it over */
static __attribute__((unused)) qbc_version_t ver(const char *realm, const char *entity, const char *id,
                                                 const char *token, int64_t t, qbc_op_t op, const char *data)
{
    qbc_version_t v;
    memset(&v, 0, sizeof(v));
    snprintf(v.realm, sizeof(v.realm), "%s", realm);
    snprintf(v.entity, sizeof(v.entity), "%s", entity);
    snprintf(v.id, sizeof(v.id), "%s", id);
    snprintf(v.sync_token, sizeof(v.sync_token), "%s", token);
    v.updated_ns = t;
    v.op = op;
    v.source = QBC_SOURCE_WEBHOOK;
    v.data = data;
    v.data_len = data ? strlen(data) : 0;
    return v;
}

#endif
