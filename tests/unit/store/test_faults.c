/*
 * test_faults.c — fault injection under the store: a disk that refuses writes.
 *
 * The store's file descriptors are pointed at /dev/full with dup2, so every write
 * fails with ENOSPC exactly where a failing disk would make it fail, with no hook in
 * the product's code:
 *   - the journal: the batch being written must not be acked, later webhooks must be
 *     refused, and a restart must hold every webhook acked before, and nothing else;
 *   - LMDB: webhooks already acked from the journal cannot be applied; they must
 *     survive (the journal keeps them), later webhooks must be refused, and a restart
 *     must apply every acked one, once, in order.
 */
#include <fcntl.h>
#include <unistd.h>
#include "store_fixture.h"
#include "../../../store/store_internal.h"

/* points fd at /dev/full: from now on every write to it fails with ENOSPC */
static int break_fd(int fd)
{
    int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
    if (full < 0)
        return -1;
    int rc = dup2(full, fd) == fd ? 0 : -1;
    close(full);
    return rc;
}

/* one webhook at a time until one is refused (at most max); returns how many were acked */
static int submit_until_refused(qbc_store_t *s, int first, int max)
{
    for (int i = 0; i < max; i++) {
        wh_t *w = submit_many(s, first + i, 1, 80, NULL);
        int rc = w->job.job.result;
        free(w);
        if (rc != 0)
            return i;
    }
    return max;
}

static void test_journal_fault(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;

    is_int(qbc_store_open(&cfg, &s), 0, "open");
    free(submit_many(s, 0, 20, 80, NULL));
    qbc_store_flush(s);
    ok(break_fd(s->jfd) == 0, "the journal's disk now refuses writes");

    wh_t *w = submit_many(s, 20, 5, 80, NULL);
    int refused = 0;
    for (int i = 0; i < 5; i++)
        refused += w[i].job.job.result == QBC_ESTORE;
    is_int(refused, 5, "a batch that could not be journaled is not acked");
    free(w);
    is_int(submit_until_refused(s, 25, 3), 0, "later webhooks are refused, not acked");
    qbc_store_close(s);

    is_int(qbc_store_open(&cfg, &s), 0, "restart on a healthy disk");
    is_int(qbc_store_webhooks_refused(s), 0, "it takes webhooks again");
    scan_t sc = scan_inbox(s);
    is_int(sc.n, 20, "every webhook acked before the fault is held, and none after");
    ok(sc.in_order, "in order");
    w = submit_many(s, 20, 1, 80, NULL);
    is_int(w->job.job.result, 0, "webhooks are acked again");
    is_int(w->job.inbox_seq, 21, "with the next sequence: nothing refused took one");
    free(w);
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

static void test_lmdb_fault(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    int fd;

    is_int(qbc_store_open(&cfg, &s), 0, "open");
    free(submit_many(s, 0, 20, 80, NULL));
    qbc_store_flush(s);
    is_int(qbc_store_webhooks_refused(s), 0, "a healthy store takes webhooks");
    ok(mdb_env_get_fd(s->env, &fd) == 0 && break_fd(fd) == 0, "LMDB's disk now refuses writes");

    /* the journal still acks; the apply behind it fails, and then webhooks are refused */
    int acked = submit_until_refused(s, 20, 2000);
    ok(acked < 2000, "once an apply has failed, webhooks are refused");
    ok(qbc_store_webhooks_refused(s) != 0, "and the store says so (what /healthz reports)");
    char note[96];
    snprintf(note, sizeof(note), "%d webhooks were acked from the journal before the refusal", acked);
    diag(note);
    ok(qbc_store_flush(s) != 0, "and other writes fail");
    qbc_store_close(s);

    is_int(qbc_store_open(&cfg, &s), 0, "restart on a healthy disk");
    is_int(qbc_store_webhooks_refused(s), 0, "it takes webhooks again");
    scan_t sc = scan_inbox(s);
    is_int(sc.n, 20 + acked, "every acked webhook was applied from the journal");
    ok(sc.in_order, "once each, in order");
    qbc_store_stats_t st;
    qbc_store_stats(s, &st);
    is_int(st.pending, (uint64_t)(20 + acked), "with its pending notice");
    wh_t *w = submit_many(s, 20 + acked, 1, 80, NULL);
    is_int(w->job.job.result, 0, "webhooks are acked again");
    is_int(w->job.inbox_seq, (uint64_t)(21 + acked), "with the next sequence");
    free(w);
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

/* LMDB's disk refuses writes, then takes them again: the store applies what failed by itself */
static void test_lmdb_recovers(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    int fd;

    is_int(qbc_store_open(&cfg, &s), 0, "open");
    free(submit_many(s, 0, 10, 80, NULL));
    qbc_store_flush(s);
    ok(mdb_env_get_fd(s->env, &fd) == 0, "LMDB's file descriptor");
    int saved = dup(fd);
    ok(saved >= 0 && break_fd(fd) == 0, "its disk now refuses writes");
    int acked = submit_until_refused(s, 10, 2000);
    ok(acked < 2000 && qbc_store_webhooks_refused(s) != 0, "an apply failed: webhooks are refused");
    ok(dup2(saved, fd) == fd, "the disk takes writes again");
    close(saved);
    int64_t deadline = qbc_mono_ns() + 30 * (int64_t)1000000000;
    while (qbc_store_webhooks_refused(s) != 0 && qbc_mono_ns() < deadline)
        usleep(20000);
    is_int(qbc_store_webhooks_refused(s), 0, "without a restart, the store takes webhooks again");
    wh_t *w = submit_many(s, 10 + acked, 1, 80, NULL);
    is_int(w->job.job.result, 0, "a new webhook is acked");
    free(w);
    qbc_store_flush(s);
    scan_t sc = scan_inbox(s);
    is_int(sc.n, 10 + acked + 1, "every webhook acked before, during and after the fault is in LMDB");
    ok(sc.in_order, "once each, in order");
    qbc_store_close(s);
    is_int(qbc_store_open(&cfg, &s), 0, "and a restart finds the same");
    sc = scan_inbox(s);
    is_int(sc.n, 10 + acked + 1, "nothing applied twice or lost");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

int main(void)
{
    qbc_log_set_level(QBC_LOG_ERROR);
    diag("the journal's disk fails");
    test_journal_fault();
    diag("LMDB's disk fails");
    test_lmdb_fault();
    diag("LMDB's disk fails, then recovers");
    test_lmdb_recovers();
    return done_testing();
}
