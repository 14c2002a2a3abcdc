/*
 * test_backup.c — store/backup.c: qbc_store_backup() makes a copy that holds every
 * webhook acked before it began, also the ones still only in the journal; the copy is
 * a prefix of the source's inbox while webhooks keep coming; it is another feed (its own
 * feed id); it refuses a destination that is not new or empty, and leaves nothing
 * behind when it fails.
 *
 * Acked-but-unapplied webhooks are made as in test_journal.c: the writer thread alone is
 * stopped, so the ingest thread journals and acks while LMDB never sees them. A backup
 * beside the open store runs in another process (run_self), as qbcdc backup does: in the
 * store's own process it would be a second LMDB environment on the same files, refused
 * since it broke LMDB's locks (store/env.c, claim_dir).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "store_fixture.h"
#include "../../../store/store_internal.h"

static int file_mode(const char *dir, const char *name)
{
    char path[600];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

static void test_copy(void)
{
    char *dir = make_tmp(), *out = make_tmp(), dest[600], key[600], none[600];
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s, *c;
    qbc_backup_report_t rep;
    char err[256], src_id[64];

    is_int(qbc_store_open(&cfg, &s), 0, "open");
    free(submit_many(s, 0, 20, 100, NULL));
    qbc_store_flush(s);
    snprintf(src_id, sizeof(src_id), "%s", qbc_store_feed_id(s));
    snprintf(dest, sizeof(dest), "%s/b", out);
    snprintf(key, sizeof(key), "%s/master.key", dir);
    snprintf(none, sizeof(none), "%s/no-such-file", dir);
    /* beside the open store: another process, as qbcdc backup is */
    const char *args[] = {"backup", dir, dest, none, key, NULL};
    char said[512];
    unsigned long long data_bytes = 0, journal_bytes = 0;
    unsigned extra_copied = 0;
    is_int(run_self(args, said, sizeof(said)), 0, "a backup beside the open store");
    ok(sscanf(said, "%llu %llu %u", &data_bytes, &journal_bytes, &extra_copied) == 3 && data_bytes > 0 &&
           journal_bytes == QBC_JOURNAL_DEFAULT,
       "data.mdb and the journal copied");
    is_int((int)extra_copied, 2, "the master key copied, a missing extra file skipped");
    if (data_bytes == 0)
        diag(said);
    is_int(file_mode(out, "b"), 0700, "the destination is made 0700");
    is_int(file_mode(dest, "data.mdb"), 0600, "data.mdb is 0600");
    is_int(file_mode(dest, "journal"), 0600, "the journal is 0600");
    is_int(file_mode(dest, "master.key"), 0600, "master.key is 0600");
    free(submit_many(s, 20, 5, 100, NULL)); /* after the backup: not in it */
    qbc_store_close(s);

    is_int(qbc_store_open_readonly(dest, &c), 0, "the copy opens");
    scan_t sc = scan_inbox(c);
    is_int(sc.n, 20, "with the 20 webhooks acked before the backup, and not the 5 after");
    ok(sc.in_order, "in order");
    ok(strlen(qbc_store_feed_id(c)) == 32 && strcmp(qbc_store_feed_id(c), src_id) != 0,
       "the copy is another feed: its own feed id");
    qbc_store_close(c);

    is_int(qbc_store_backup(dir, dest, NULL, &rep, err, sizeof(err)), QBC_EINVAL, "a non-empty destination refused");
    ok(strstr(err, "not empty") != NULL, "saying so");
    is_int(file_mode(dest, "data.mdb"), 0600, "and the backup there untouched");
    snprintf(dest, sizeof(dest), "%s/b/data.mdb", out);
    ok(qbc_store_backup(dir, dest, NULL, &rep, err, sizeof(err)) != 0 && strstr(err, "not a directory") != NULL,
       "a file as destination refused");
    snprintf(dest, sizeof(dest), "%s/c", out);
    ok(qbc_store_backup(out, dest, NULL, &rep, err, sizeof(err)) != 0 && strstr(err, "holds no store") != NULL,
       "a directory without a store refused");
    is_int(file_mode(out, "c"), -1, "without making the destination");
    rm_rf(dir);
    rm_rf(out);
    free(dir);
    free(out);
}

/* the webhooks acked but only in the journal: a copy of data.mdb alone would miss them */
static void test_unapplied(void)
{
    char *dir = make_tmp(), *out = make_tmp(), dest[600];
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s, *c;

    is_int(qbc_store_open(&cfg, &s), 0, "open");
    free(submit_many(s, 0, 10, 100, NULL));
    qbc_store_flush(s);
    qbc_store__writer_stop(s);
    free(submit_many(s, 10, 7, 100, NULL)); /* acked from the journal, never applied */
    snprintf(dest, sizeof(dest), "%s/b", out);
    const char *args[] = {"backup", dir, dest, NULL};
    char said[512];
    is_int(run_self(args, said, sizeof(said)), 0, "a backup while 7 acked webhooks wait");
    qbc_store_close(s);
    is_int(qbc_store_open_readonly(dest, &c), 0, "the copy opens");
    scan_t sc = scan_inbox(c);
    is_int(sc.n, 17, "with all 17 acked webhooks: the 7 came from the journal's copy");
    ok(sc.in_order, "in order");
    qbc_store_close(c);
    rm_rf(dir);
    rm_rf(out);
    free(dir);
    free(out);
}

/* ---- hot: webhooks keep coming while the copy is made ---- */

typedef struct {
    qbc_store_t *s;
    int stop, acked; /* acked: webhooks 0..acked-1 are acked */
    pthread_mutex_t mu;
} load_t;

static void *load_main(void *arg)
{
    load_t *l = arg;
    for (int i = 0;; i += 10) {
        pthread_mutex_lock(&l->mu);
        int stop = l->stop;
        pthread_mutex_unlock(&l->mu);
        if (stop)
            break;
        free(submit_many(l->s, i, 10, 300, NULL));
        pthread_mutex_lock(&l->mu);
        l->acked = i + 10;
        pthread_mutex_unlock(&l->mu);
    }
    return NULL;
}

static void test_hot(void)
{
    /* a small journal that wraps many times during the copy */
    char *dir = make_tmp(), *out = make_tmp(), dest[600], said[512];
    qbc_store_config_t cfg = {.dir = dir, .journal_size = QBC_JOURNAL_MIN};
    load_t l = {.mu = PTHREAD_MUTEX_INITIALIZER};
    pthread_t th;
    int all_ok = 1, n_ok = 1, rounds = 5;

    is_int(qbc_store_open(&cfg, &l.s), 0, "open");
    pthread_create(&th, NULL, load_main, &l);
    for (int r = 0; r < rounds; r++) {
        usleep(50000);
        pthread_mutex_lock(&l.mu);
        int before = l.acked;
        pthread_mutex_unlock(&l.mu);
        snprintf(dest, sizeof(dest), "%s/b%d", out, r);
        const char *args[] = {"backup", dir, dest, NULL};
        if (run_self(args, said, sizeof(said)) != 0) {
            diag(said);
            all_ok = 0;
            continue;
        }
        qbc_store_t *c;
        if (qbc_store_open_readonly(dest, &c) != 0) {
            all_ok = 0;
            continue;
        }
        scan_t sc = scan_inbox(c);
        qbc_store_close(c);
        char line[200];
        snprintf(line, sizeof(line), "round %d: %d acked before the backup, %d in the copy", r, before, sc.n);
        diag(line);
        if (sc.n < before || !sc.in_order || sc.next_body != sc.n) {
            n_ok = 0;
            snprintf(line, sizeof(line), "round %d: not a prefix: %s", r,
                     sc.in_order ? "a gap at the end" : sc.first_bad);
            diag(line);
        }
    }
    pthread_mutex_lock(&l.mu);
    l.stop = 1;
    pthread_mutex_unlock(&l.mu);
    pthread_join(th, NULL);
    ok(all_ok, "5 backups under a steady stream of webhooks");
    ok(n_ok, "each copy holds every webhook acked before it began, and a gapless prefix in order");
    qbc_store_close(l.s);
    rm_rf(dir);
    rm_rf(out);
    free(dir);
    free(out);
}

int main(int argc, char **argv)
{
    qbc_log_set_level(QBC_LOG_ERROR);
    if (argc > 1)
        return store_child_main(argc, argv); /* a backup run by run_self() */
    subtest("a copy, and destinations refused", test_copy);
    subtest("acked webhooks only in the journal", test_unapplied);
    subtest("hot copies under load", test_hot);
    return done_testing();
}
