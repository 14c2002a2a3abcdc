/*
 * test_journal.c — store/journal.c and ingest.c: webhooks acked from the journal
 * reach LMDB, across a ring that wraps, across a "crash" (records journaled and
 * acked but never applied), past a torn record, and without repeats.
 *
 * A crash is simulated by stopping the writer thread alone: the ingest thread still
 * journals and acks, but its APPLY jobs are refused, exactly as if the process had
 * died between the journal's fsync and the LMDB commit. The next open must replay.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "store_fixture.h"
#include "../../../store/store_internal.h"

static void test_wrap(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir, .journal_size = 1 << 20, .batch_max = 64};
    qbc_store_t *s;

    is_int(qbc_store_open(&cfg, &s), 0, "open with a 1 MiB journal");
    /* 6,000 x ~1 KB: the ring goes round about six times */
    wh_t *w = submit_many(s, 0, 6000, 1000, NULL);
    int acked = 0;
    for (int i = 0; i < 6000; i++)
        acked += w[i].job.job.result == 0 && w[i].job.inbox_seq == (uint64_t)i + 1;
    is_int(acked, 6000, "every webhook acked with the next inbox sequence");
    free(w);
    qbc_store_flush(s);
    scan_t sc = scan_inbox(s);
    is_int(sc.n, 6000, "all 6,000 bodies in LMDB");
    ok(sc.in_order, "in order, sequences increasing");
    ok(s->j_head_pos > 5 * (1 << 20), "the journal wrapped (written past five laps)");
    qbc_store_close(s);

    /* a clean close leaves nothing to replay; the ring resumes where it stopped */
    is_int(qbc_store_open(&cfg, &s), 0, "reopen");
    w = submit_many(s, 6000, 10, 1000, NULL);
    is_int(w[0].job.inbox_seq, 6001, "sequences continue after a reopen");
    free(w);
    qbc_store_flush(s);
    is_int(scan_inbox(s).n, 6010, "no record applied twice");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

/* offset of the record with this jseq in the journal file (walks the headers), or -1 */
static long find_record(const char *dir, uint64_t want)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/journal", dir);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    unsigned char buf[QBC_JREC_HEADER];
    qbc_jrec_hdr_t h;
    long off = 0, found = -1;
    while (fseek(f, off, SEEK_SET) == 0 && fread(buf, 1, sizeof(buf), f) == sizeof(buf) && buf[0] == 'Q') {
        qbc_store__jrec_header(buf, &h);
        if (h.jseq == want) {
            found = off;
            break;
        }
        off += (long)h.size;
    }
    fclose(f);
    return found;
}

static void test_crash_replay(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;

    is_int(qbc_store_open(&cfg, &s), 0, "open");
    wh_t *w = submit_many(s, 0, 100, 200, NULL);
    free(w);
    qbc_store_flush(s);

    /* the "crash": from here on, nothing journaled reaches LMDB */
    qbc_store__writer_stop(s);
    w = submit_many(s, 100, 50, 200, NULL);
    int acked = 0;
    for (int i = 0; i < 50; i++)
        acked += w[i].job.job.result == 0;
    is_int(acked, 50, "50 more acked from the journal alone");
    free(w);
    is_int(scan_inbox(s).n, 100, "LMDB holds only the first 100");
    qbc_store_stats_t st;
    qbc_store_stats(s, &st);
    is_int(st.inbox_depth, 150, "stats count the acked bodies still in the journal");
    is_int(st.last_inbox_seq, 150, "and their sequences");
    qbc_store_close(s);

    /* a torn write: damage the 45th of the 50 unapplied records (jseq 145) */
    long off = find_record(dir, 145);
    ok(off >= 0, "found record 145 in the journal");
    char path[600];
    snprintf(path, sizeof(path), "%s/journal", dir);
    int fd = open(path, O_RDWR);
    unsigned char junk = 0x5a;
    ok(fd >= 0 && pwrite(fd, &junk, 1, off + QBC_JREC_HEADER + 40) == 1, "flip a byte in its payload");
    close(fd);

    qbc_store_t *ro;
    is_int(qbc_store_open_readonly(dir, &ro), 0, "a reader opens the store (and recovers it first)");
    scan_t sc = scan_inbox(ro);
    is_int(sc.n, 144, "the 44 acked records before the torn one were replayed");
    ok(sc.in_order, "in order");
    qbc_store_stats(ro, &st);
    is_int(st.pending, 144, "and their notices are pending");
    qbc_store_close(ro);

    is_int(qbc_store_open(&cfg, &s), 0, "reopen for writing");
    w = submit_many(s, 144, 5, 200, NULL);
    is_int(w[0].job.inbox_seq, 145, "the next webhook takes the next sequence");
    free(w);
    qbc_store_flush(s);
    sc = scan_inbox(s);
    is_int(sc.n, 149, "and is stored after the replayed ones");
    ok(sc.in_order, "still in order");
    qbc_store_close(s);

    is_int(qbc_store_open(&cfg, &s), 0, "open once more");
    is_int(scan_inbox(s).n, 149, "nothing replayed twice, nothing lost");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

static void test_repeats_before_apply(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;

    is_int(qbc_store_open(&cfg, &s), 0, "open");
    qbc_store__writer_stop(s); /* nothing reaches LMDB: repeats must be caught from memory */
    wh_t *a = submit_many(s, 0, 3, 100, "ce-");
    wh_t *b = submit_many(s, 0, 3, 100, "ce-");
    is_int(a[0].job.n_stored_events, 1, "first delivery stored");
    ok(b[0].job.inbox_seq == 0 && b[1].job.inbox_seq == 0 && b[2].job.inbox_seq == 0,
       "a retry before the first reached LMDB is a repeat");
    is_int(b[0].job.n_dup_events, 1, "counted as a repeat");
    free(a);
    free(b);
    qbc_store_close(s);

    is_int(qbc_store_open(&cfg, &s), 0, "reopen: replay");
    b = submit_many(s, 0, 3, 100, "ce-");
    ok(b[0].job.inbox_seq == 0 && b[2].job.inbox_seq == 0, "after the replay, LMDB knows the ids");
    free(b);
    qbc_store_flush(s);
    is_int(scan_inbox(s).n, 3, "three bodies, each once");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

static void test_exclusive(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s, *s2;

    is_int(qbc_store_open(&cfg, &s), 0, "open");
    free(submit_many(s, 0, 3, 100, NULL));
    qbc_store_flush(s);
    /* in the same process: refused before LMDB is touched (a second environment would break its locks) */
    is_int(qbc_store_open(&cfg, &s2), -EBUSY, "a second writer on the same directory is refused");
    qbc_store_t *ro;
    is_int(qbc_store_open_readonly(dir, &ro), -EBUSY, "so is a reader in the same process");
    free(submit_many(s, 3, 2, 100, NULL));
    qbc_store_flush(s);
    is_int(scan_inbox(s).n, 5, "and the open store goes on, with every webhook");
    /* in another process */
    const char *args[] = {"read", dir, NULL};
    char said[256];
    int n = -1, in_order = 0;
    long long open_ms;
    is_int(run_self(args, said, sizeof(said)), 0, "a reader in another process opens it");
    ok(sscanf(said, "%d %d %lld", &n, &in_order, &open_ms) == 3 && n == 5 && in_order, "and reads all 5, in order");
    const char *wargs[] = {"open", dir, NULL};
    int wrc = 0;
    ok(run_self(wargs, said, sizeof(said)) == 0 && sscanf(said, "%d", &wrc) == 1 && wrc == -EWOULDBLOCK,
       "a writer in another process is refused (the journal's lock)");
    qbc_store_close(s);
    is_int(qbc_store_open_readonly(dir, &ro), 0, "once the store is closed, a reader in this process opens it");
    qbc_store_close(ro);
    rm_rf(dir);
    free(dir);
}

static void test_reader_beside_service(void)
{
    char *dir = make_tmp();
    /* applies gather for 300 ms: long enough that a reader that does not wait sees nothing */
    qbc_store_config_t cfg = {.dir = dir, .apply_gather_ms = 300};
    qbc_store_t *s;

    is_int(qbc_store_open(&cfg, &s), 0, "open");
    qbc_store_flush(s); /* a commit now: the next apply waits its full 300 ms */
    free(submit_many(s, 0, 4, 100, NULL));
    const char *args[] = {"read", dir, NULL}; /* another process, as qbcdc inspect is */
    char said[256];
    int n = -1, in_order = 0;
    long long open_ms = -1;
    is_int(run_self(args, said, sizeof(said)), 0, "a reader opens beside the running writer");
    sscanf(said, "%d %d %lld", &n, &in_order, &open_ms);
    is_int(n, 4, "and sees every webhook acked before it opened");
    ok(open_ms >= 0 && open_ms < 2000, "having waited less than its 2 s bound");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

static void test_orphan(void)
{
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir};
    qbc_store_t *s;
    char path[600];

    is_int(qbc_store_open(&cfg, &s), 0, "open");
    qbc_store__writer_stop(s);
    free(submit_many(s, 0, 5, 100, NULL)); /* journaled, never applied */
    qbc_store_close(s);
    /* the operator replaces the LMDB files but leaves the journal */
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    is_int(qbc_store_open(&cfg, &s), 0, "open a fresh environment beside the old journal");
    is_int(scan_inbox(s).n, 0, "the old journal's records are not replayed into it");
    snprintf(path, sizeof(path), "%s/journal.orphan", dir);
    ok(access(path, F_OK) == 0, "the old journal is kept aside as journal.orphan");
    free(submit_many(s, 0, 2, 100, NULL));
    qbc_store_close(s);
    is_int(qbc_store_open(&cfg, &s), 0, "reopen");
    is_int(scan_inbox(s).n, 2, "the new journal is this environment's");
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
}

static void test_records(void)
{
    unsigned char rec[256];
    size_t rlen;
    uint8_t kind;
    uint32_t ep = 3;

    is_int(qbc_store__crc32c("123456789", 9), 0xE3069283u, "CRC-32C check value");
    memset(rec, 0, sizeof(rec));
    memcpy(rec + QBC_JREC_HEADER, "payload", 7);
    qbc_store__jrec_seal(rec, 7, 4096, 7, QBC_JREC_WEBHOOK, 4);
    is_int(qbc_store__jrec_check(rec, sizeof(rec), 7, 4096, &ep, &rlen, &kind), 0, "a sealed record checks");
    is_int(rlen, QBC_JREC_HEADER + 8, "padded to 8");
    is_int(ep, 4, "its epoch");
    ep = 5;
    ok(qbc_store__jrec_check(rec, sizeof(rec), 7, 4096, &ep, &rlen, &kind) != 0,
       "an older epoch after a newer: not ours");
    ep = 0;
    ok(qbc_store__jrec_check(rec, sizeof(rec), 8, 4096, &ep, &rlen, &kind) != 0, "wrong jseq: not ours");
    ok(qbc_store__jrec_check(rec, sizeof(rec), 7, 4096 + (1 << 20), &ep, &rlen, &kind) != 0,
       "same place, an older lap: not ours");
    ok(qbc_store__jrec_check(rec, 30, 7, 4096, &ep, &rlen, &kind) != 0, "truncated: not ours");
    rec[QBC_JREC_HEADER + 3] ^= 1;
    ok(qbc_store__jrec_check(rec, sizeof(rec), 7, 4096, &ep, &rlen, &kind) != 0, "a flipped bit: not ours");
}

int main(int argc, char **argv)
{
    qbc_log_set_level(QBC_LOG_ERROR);
    if (argc > 1)
        return store_child_main(argc, argv); /* a reader run by run_self() */
    subtest("records", test_records);
    subtest("wrap", test_wrap);
    subtest("crash replay and a torn record", test_crash_replay);
    subtest("repeats before apply", test_repeats_before_apply);
    subtest("one writer per directory", test_exclusive);
    subtest("a journal from another environment", test_orphan);
    subtest("a reader beside a running writer", test_reader_beside_service);
    return done_testing();
}
