/*
 * env.c — opening, growing and closing the LMDB environment.
 *
 * Assumptions: one qbcdc process owns an environment for writing (LMDB's lock
 * file serialises writers anyway; the CLI opens it read-only beside a running
 * service). The map starts at map_size and doubles on MDB_MAP_FULL up to map_max;
 * past that, writes fail with QBC_EFULL, the jobs' submitters answer 503, and
 * nothing already committed is touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include "store_internal.h"

#define DEFAULT_MAP_SIZE (1ull << 30)
#define DEFAULT_MAP_MAX (64ull << 30)
#define DEFAULT_BATCH_MAX 4096
#define DEFAULT_PRUNE_INTERVAL_MS 60000
/*
 * How long journaled webhooks may gather before the writer applies them to LMDB
 * (other jobs are never held). Measured on the 2-core VM, 8 s runs: 0 ms gave
 * 43k/24k req/s at 64/16 connections, 5 ms 50-51k/27-32k with p50 at 5,000 req/s
 * 473 -> 315 us; 10-20 ms no more throughput and worse p99 (larger commits hold
 * the disk longer).
 */
#define DEFAULT_APPLY_GATHER_MS 5

static int lmdb_fail(const char *what, int rc)
{
    qbc_log(QBC_LOG_ERROR, "store", "%s: %s", what, mdb_strerror(rc));
    return QBC_ESTORE;
}

/* creates dir and its missing parents (mode 0700). */
static int mkdir_p(const char *dir)
{
    char buf[4096];
    size_t len = strlen(dir);

    if (len == 0 || len >= sizeof(buf))
        return QBC_EINVAL;
    memcpy(buf, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return -errno;
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    return 0;
}

/*
 * The highest sequence ever assigned in a database keyed by u64 BE sequence: its last
 * key, or the high-water mark in meta if that is larger (records may have been removed).
 */
static uint64_t high_water(MDB_txn *txn, MDB_dbi dbi, MDB_dbi meta, const char *name)
{
    MDB_cursor *cur;
    uint64_t last = 0;

    if (mdb_cursor_open(txn, dbi, &cur) == 0) {
        MDB_val ck, cv;
        if (mdb_cursor_get(cur, &ck, &cv, MDB_LAST) == 0 && ck.mv_size == 8)
            last = get_u64be(ck.mv_data);
        mdb_cursor_close(cur);
    }
    uint64_t mark = qbc_store__meta_u64(txn, meta, name);
    return mark > last ? mark : last;
}

int qbc_store__valid_feed_id(const void *p, size_t len)
{
    const unsigned char *c = p;
    if (len != QBC_FEED_ID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((c[i] >= '0' && c[i] <= '9') || (c[i] >= 'a' && c[i] <= 'f')))
            return 0;
    return 1;
}

/*
 * Reads the feed identity from meta into s->feed_id, creating it (128 random bits in
 * hex) in txn when a writable open finds none: a new store, or one made by a build
 * before feed ids. A read-only open of such a store is left with "". Feed readers
 * compare it to the id they saw before: another id means another feed (a replaced
 * data directory), whose sequence numbers say nothing about the old one's. A backup
 * gets a new id (renew_feed_id): restored, it reuses sequences the old feed gave out.
 */
static int load_feed_id(qbc_store_t *s, MDB_txn *txn)
{
    MDB_val k = {sizeof(QBC_FEED_ID_KEY) - 1, QBC_FEED_ID_KEY}, v;
    unsigned char raw[QBC_FEED_ID_LEN / 2];
    int rc;

    s->feed_id[0] = '\0';
    if ((rc = mdb_get(txn, s->dbi_meta, &k, &v)) == 0 && s->renew_feed_id && !s->readonly) {
        qbc_log(QBC_LOG_INFO, "store", "%s gets a new feed id (it was %.*s): a copy is another feed", s->dir,
                (int)v.mv_size, (const char *)v.mv_data);
        rc = MDB_NOTFOUND;
    }
    if (rc == 0) {
        if (!qbc_store__valid_feed_id(v.mv_data, v.mv_size)) {
            qbc_log(QBC_LOG_ERROR, "store", "%s has a malformed feed id in its meta database", s->dir);
            return QBC_EMALFORMED;
        }
        memcpy(s->feed_id, v.mv_data, QBC_FEED_ID_LEN);
        s->feed_id[QBC_FEED_ID_LEN] = '\0';
        return 0;
    }
    if (rc != MDB_NOTFOUND)
        return lmdb_fail("reading the feed id", rc);
    if (s->readonly || s->adopt_feed_id) /* the latter gets its id from the feed it copies */
        return 0;
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        qbc_log(QBC_LOG_ERROR, "store", "no random bytes for a feed id (RAND_bytes failed)");
        return -EIO;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(s->feed_id + 2 * i, 3, "%02x", raw[i]);
    v.mv_size = QBC_FEED_ID_LEN;
    v.mv_data = s->feed_id;
    if ((rc = mdb_put(txn, s->dbi_meta, &k, &v, 0)) != 0) {
        s->feed_id[0] = '\0';
        return lmdb_fail("writing the feed id", rc);
    }
    qbc_log(QBC_LOG_INFO, "store", "new feed id %s for %s", s->feed_id, s->dir);
    return 0;
}

/* opens every named database once, in one write transaction, and checks the schema. */
static int open_dbis(qbc_store_t *s)
{
    MDB_txn *txn;
    unsigned flags = s->readonly ? 0 : MDB_CREATE;
    int rc;

    if ((rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &txn)) != 0)
        return lmdb_fail("mdb_txn_begin", rc);
    if ((rc = mdb_dbi_open(txn, "meta", flags, &s->dbi_meta)) != 0 ||
        (rc = mdb_dbi_open(txn, "inbox", flags, &s->dbi_inbox)) != 0 ||
        (rc = mdb_dbi_open(txn, "quarantine", flags, &s->dbi_quarantine)) != 0 ||
        (rc = mdb_dbi_open(txn, "pending", flags, &s->dbi_pending)) != 0 ||
        (rc = mdb_dbi_open(txn, "event_ids", flags, &s->dbi_event_ids)) != 0 ||
        (rc = mdb_dbi_open(txn, "entities", flags, &s->dbi_entities)) != 0 ||
        (rc = mdb_dbi_open(txn, "feed", flags, &s->dbi_feed)) != 0 ||
        (rc = mdb_dbi_open(txn, "realms", flags, &s->dbi_realms)) != 0 ||
        (rc = mdb_dbi_open(txn, "tokens", flags, &s->dbi_tokens)) != 0 ||
        (rc = mdb_dbi_open(txn, "dead", flags, &s->dbi_dead)) != 0) {
        mdb_txn_abort(txn);
        if (rc == MDB_NOTFOUND) {
            qbc_log(QBC_LOG_ERROR, "store", "%s holds no qbcdc store", s->dir);
            return QBC_ENOTFOUND;
        }
        return lmdb_fail("mdb_dbi_open", rc);
    }
    /* added after the first release: a read-only open of an older store goes without them */
    s->has_jobs = s->has_feed_times = 1;
    if ((rc = mdb_dbi_open(txn, "jobs", flags, &s->dbi_jobs)) != 0) {
        if (rc != MDB_NOTFOUND || !s->readonly) {
            mdb_txn_abort(txn);
            return lmdb_fail("mdb_dbi_open", rc);
        }
        s->has_jobs = 0;
    }
    if ((rc = mdb_dbi_open(txn, "feed_times", flags, &s->dbi_feed_times)) != 0) {
        if (rc != MDB_NOTFOUND || !s->readonly) {
            mdb_txn_abort(txn);
            return lmdb_fail("mdb_dbi_open", rc);
        }
        s->has_feed_times = 0;
    }
    s->has_usage = 1;
    if ((rc = mdb_dbi_open(txn, "usage", flags, &s->dbi_usage)) != 0) {
        if (rc != MDB_NOTFOUND || !s->readonly) {
            mdb_txn_abort(txn);
            return lmdb_fail("mdb_dbi_open", rc);
        }
        s->has_usage = 0;
    }
    s->has_subs = 1;
    if ((rc = mdb_dbi_open(txn, "subscriptions", flags, &s->dbi_subs)) != 0 ||
        (rc = mdb_dbi_open(txn, "sub_cursors", flags, &s->dbi_sub_cursors)) != 0) {
        if (rc != MDB_NOTFOUND || !s->readonly) {
            mdb_txn_abort(txn);
            return lmdb_fail("mdb_dbi_open", rc);
        }
        s->has_subs = 0;
    }

    MDB_val k = {sizeof("schema_version") - 1, "schema_version"}, v;
    rc = mdb_get(txn, s->dbi_meta, &k, &v);
    if (rc == 0) {
        uint32_t ver = v.mv_size == 4 ? get_u32be(v.mv_data) : 0;
        if (ver == 0 || ver > QBC_STORE_SCHEMA_VERSION) {
            mdb_txn_abort(txn);
            qbc_log(QBC_LOG_ERROR, "store", "%s has schema version %u; this build knows up to %u", s->dir, ver,
                    QBC_STORE_SCHEMA_VERSION);
            return QBC_EINVAL;
        }
    } else if (rc == MDB_NOTFOUND && !s->readonly) {
        unsigned char b[4];
        put_u32be(b, QBC_STORE_SCHEMA_VERSION);
        v.mv_size = 4;
        v.mv_data = b;
        if ((rc = mdb_put(txn, s->dbi_meta, &k, &v, 0)) != 0) {
            mdb_txn_abort(txn);
            return lmdb_fail("writing schema version", rc);
        }
    } else if (rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return lmdb_fail("reading schema version", rc);
    }

    if ((rc = load_feed_id(s, txn)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }

    /* next sequences: past both the last key and the recorded high-water mark (the inbox's: replay_journal) */
    s->next_feed = high_water(txn, s->dbi_feed, s->dbi_meta, "feed_seq") + 1;
    s->next_dead = high_water(txn, s->dbi_dead, s->dbi_meta, "dead_seq") + 1;
    MDB_cursor *cur;
    if (s->has_feed_times && mdb_cursor_open(txn, s->dbi_feed_times, &cur) == 0) {
        MDB_val tk, tv;
        if (mdb_cursor_get(cur, &tk, &tv, MDB_LAST) == 0 && tk.mv_size == 8)
            s->feed_time_last_ns = (int64_t)get_u64be(tk.mv_data);
        mdb_cursor_close(cur);
    }
    __atomic_store_n(&s->feed_last, s->next_feed - 1, __ATOMIC_RELEASE);
    if ((rc = mdb_txn_commit(txn)) != 0)
        return lmdb_fail("mdb_txn_commit (open)", rc);
    return 0;
}

/*
 * The data directories whose environment this process has open. LMDB allows one
 * environment per database per process (lmdb.h, "Caveats"): its locks are fcntl locks,
 * which belong to the process, so a second environment in the same process finds the
 * lock file free, takes it as if it were alone, and resets the shared lock table (the
 * reader slots and the transaction id the writer builds on); the first environment's
 * next commit can then start from an older snapshot and drop the last one. In
 * test_backup.c, where a backup once ran in the same process as the store it copied,
 * that lost a whole applied batch of acked webhooks in 10 of 120 runs. So a second
 * open of a directory in one process is refused: readers and backups beside a running
 * service are other processes (qbcdc inspect, qbcdc backup).
 */
typedef struct st_open_dir_t {
    uint64_t dev, ino;
    struct st_open_dir_t *next;
} open_dir_t;
static pthread_mutex_t open_dirs_mu = PTHREAD_MUTEX_INITIALIZER;
static open_dir_t *open_dirs;

/* claims s->dir for s; -EBUSY (logged) when an environment of this process has it open */
static int claim_dir(qbc_store_t *s)
{
    struct stat st;
    int rc = 0;

    if (stat(s->dir, &st) != 0)
        return -errno;
    pthread_mutex_lock(&open_dirs_mu);
    for (open_dir_t *o = open_dirs; o != NULL && rc == 0; o = o->next)
        if (o->dev == (uint64_t)st.st_dev && o->ino == (uint64_t)st.st_ino)
            rc = -EBUSY;
    if (rc == 0) {
        open_dir_t *o = qbc_calloc(1, sizeof(*o));
        o->dev = (uint64_t)st.st_dev;
        o->ino = (uint64_t)st.st_ino;
        o->next = open_dirs;
        open_dirs = s->dir_claim = o;
    }
    pthread_mutex_unlock(&open_dirs_mu);
    if (rc != 0)
        qbc_log(QBC_LOG_ERROR, "store",
                "the store in %s is already open in this process; LMDB allows one environment per process, so a "
                "second open is refused (readers and backups beside a running service are other processes: qbcdc "
                "inspect, qbcdc backup)",
                s->dir);
    return rc;
}

static void release_dir(qbc_store_t *s)
{
    if (s->dir_claim == NULL)
        return;
    pthread_mutex_lock(&open_dirs_mu);
    for (open_dir_t **p = &open_dirs; *p != NULL; p = &(*p)->next) {
        if (*p == s->dir_claim) {
            *p = s->dir_claim->next;
            break;
        }
    }
    pthread_mutex_unlock(&open_dirs_mu);
    free(s->dir_claim);
    s->dir_claim = NULL;
}

static int open_env(qbc_store_t *s, uint64_t map_size, unsigned env_flags)
{
    int rc;
    int dead = 0;

    if ((rc = claim_dir(s)) != 0 || (rc = qbc_store__check_data_file(s->dir)) != 0)
        return rc;
    if ((rc = mdb_env_create(&s->env)) != 0)
        return lmdb_fail("mdb_env_create", rc);
    mdb_env_set_maxdbs(s->env, QBC_STORE_MAXDBS);
    mdb_env_set_maxreaders(s->env, 512);
    if (map_size != 0 && (rc = mdb_env_set_mapsize(s->env, map_size)) != 0)
        return lmdb_fail("mdb_env_set_mapsize", rc);
    /*
     * MDB_NOTLS: reader slots belong to transactions, not threads, so the event-loop
     * thread may hold several short read transactions. Default sync: a commit that
     * returns has been fsync'd, which is what an ack promises.
     */
    if ((rc = mdb_env_open(s->env, s->dir, env_flags | MDB_NOTLS, 0600)) != 0) {
        qbc_log(QBC_LOG_ERROR, "store", "cannot open LMDB environment in %s: %s", s->dir, mdb_strerror(rc));
        return rc > 0 ? -rc : QBC_ESTORE;
    }
    mdb_reader_check(s->env, &dead);
    if (dead > 0)
        qbc_log(QBC_LOG_WARN, "store", "cleared %d reader slot(s) left by a dead process", dead);
    return open_dbis(s);
}

#define KEY_PAGE 4096

static qbc_store_t *store_new(const char *dir)
{
    qbc_store_t *s = qbc_calloc(1, sizeof(*s));
    s->dir = qbc_strdup(dir);
    /* the key gets a page of its own that a core dump leaves out (issue 11: dumps expose secrets) */
    s->master_key = mmap(NULL, KEY_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->master_key == MAP_FAILED)
        qbc_fatal("cannot map a page for the master key");
    madvise(s->master_key, KEY_PAGE, MADV_DONTDUMP);
    pthread_rwlock_init(&s->gate, NULL);
    pthread_mutex_init(&s->mu, NULL);
    /* both are waited on with monotonic deadlines (qbc_cond_wait_until) */
    if (qbc_cond_init_mono(&s->cv) != 0 || qbc_cond_init_mono(&s->space_cv) != 0)
        qbc_fatal("cannot make a monotonic condition variable");
    pthread_mutex_init(&s->imu, NULL);
    pthread_mutex_init(&s->listen_mu, NULL);
    pthread_mutex_init(&s->feed_id_mu, NULL);
    pthread_cond_init(&s->icv, NULL);
    s->jfd = -1;
    return s;
}

static void store_free(qbc_store_t *s)
{
    OPENSSL_cleanse(s->master_key, QBC_MASTER_KEY_LEN);
    munmap(s->master_key, KEY_PAGE);
    if (s->env != NULL)
        mdb_env_close(s->env);
    release_dir(s); /* after the close: the environment is gone */
    pthread_rwlock_destroy(&s->gate);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->imu);
    pthread_mutex_destroy(&s->listen_mu);
    pthread_mutex_destroy(&s->feed_id_mu);
    pthread_cond_destroy(&s->icv);
    pthread_cond_destroy(&s->space_cv);
    qbc_store__journal_close(s);
    qbc_store__ingest_free(s);
    free(s->dir);
    free(s);
}

/*
 * Reads the journal's applied point from meta. *bound = 0 when there is none: this
 * environment has never had a journal (a new store, or one from before the journal;
 * a journal file beside it then belongs to someone else).
 */
static int read_journal_mark(qbc_store_t *s, qbc_jmark_t *mark, int *bound)
{
    MDB_txn *txn;
    int rc;

    memset(mark, 0, sizeof(*mark));
    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    MDB_val k = {sizeof(QBC_JMARK_KEY) - 1, QBC_JMARK_KEY}, v;
    *bound = mdb_get(txn, s->dbi_meta, &k, &v) == 0;
    rc = *bound && qbc_store__jmark_decode(v.mv_data, v.mv_size, mark) != 0 ? QBC_ESTORE : 0;
    qbc_store__read_end(s, txn);
    if (rc != 0)
        qbc_log(QBC_LOG_ERROR, "store", "the journal's applied point in %s is unreadable", s->dir);
    return rc;
}

/*
 * Applies what the journal holds past LMDB's applied point: webhooks acked before a
 * crash (or a kill) whose records had not reached LMDB yet. Then starts a new epoch
 * (binding a new journal to this environment) and sets where the ingest thread
 * resumes. If a chunk cannot be applied (a map at its maximum), the rest stays in
 * the journal, untouched, and webhooks are refused until a start with more room
 * applies it.
 */
static int replay_journal(qbc_store_t *s, const qbc_jmark_t *applied, int bound)
{
    MDB_txn *txn;
    uint64_t end_pos, next_jseq, n;
    unsigned char *recs;
    size_t len;
    int rc;

    if ((rc = qbc_store__journal_scan(s, applied, &recs, &len, &end_pos, &next_jseq, &n)) != 0) {
        qbc_log(QBC_LOG_ERROR, "store", "cannot read the journal: %s", qbc_strerror(rc));
        return rc;
    }
    s->j_applied_jseq = applied->jseq;
    s->j_applied_pos = applied->pos;
    /* apply in chunks of whole records, each chunk one transaction */
    size_t off = 0;
    while (off < len && rc == 0) {
        size_t start = off;
        qbc_jrec_hdr_t h;
        uint64_t first = s->j_applied_jseq + 1;
        while (off < len && off - start < (4u << 20)) {
            qbc_store__jrec_header(recs + off, &h);
            off += h.size;
        }
        qbc_apply_job_t a = {0};
        a.job.kind = (qbc_job_kind_t)QBC_JOB_APPLY;
        a.buf = recs + start;
        a.len = off - start;
        a.last_jseq = h.jseq;
        a.end_pos = h.pos + h.size;
        if ((rc = qbc_store__run_now(s, &a.job)) == 0) {
            s->j_applied_jseq = a.last_jseq;
            s->j_applied_pos = a.end_pos;
        } else {
            qbc_log(QBC_LOG_ERROR, "store",
                    "cannot apply journaled webhooks %llu..: %s; they stay in the journal, webhooks are refused, and "
                    "the applies are tried again (give the store room: disk space, or a larger QBCDC_MAP_MAX)",
                    (unsigned long long)first, qbc_strerror(rc));
            s->j_stuck = rc;
            s->j_apply_failed = 1; /* the writer tries again, in case the room comes back */
            s->j_retry_wait_ns = 1000000000LL;
            s->j_retry_due_ns = qbc_mono_ns() + s->j_retry_wait_ns;
        }
    }
    free(recs);
    if (n > 0 && s->j_stuck == 0)
        qbc_log(QBC_LOG_INFO, "store", "replayed %llu journaled webhook(s) that had not reached LMDB",
                (unsigned long long)n);
    s->j_head_pos = end_pos;
    s->j_next_jseq = next_jseq;

    /* a new epoch, durable before any record carries it (see journal.c) */
    uint32_t epoch = 0;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return lmdb_fail("mdb_txn_begin (journal epoch)", rc);
    MDB_val ek = {sizeof("journal_epoch") - 1, "journal_epoch"}, ev;
    if (mdb_get(txn, s->dbi_meta, &ek, &ev) == 0 && ev.mv_size == 4)
        epoch = get_u32be(ev.mv_data);
    unsigned char eb[4], jb[QBC_JMARK_SIZE] = {0};
    put_u32be(eb, epoch + 1);
    ev.mv_size = 4;
    ev.mv_data = eb;
    /* a new journal is bound to this environment from the start: nothing applied yet */
    MDB_val jk = {sizeof(QBC_JMARK_KEY) - 1, QBC_JMARK_KEY}, jv = {sizeof(jb), jb};
    if ((!bound && (rc = mdb_put(txn, s->dbi_meta, &jk, &jv, 0)) != 0) ||
        (rc = mdb_put(txn, s->dbi_meta, &ek, &ev, 0)) != 0) {
        mdb_txn_abort(txn);
        return lmdb_fail("writing the journal epoch", rc);
    }
    if ((rc = mdb_txn_commit(txn)) != 0) /* a failed commit has freed the transaction */
        return lmdb_fail("committing the journal epoch", rc);
    s->j_epoch = epoch + 1;

    /* the inbox sequence resumes past what the replay stored */
    if ((rc = qbc_store__read_begin(s, &txn)) != 0)
        return rc;
    s->next_inbox = high_water(txn, s->dbi_inbox, s->dbi_meta, "inbox_seq") + 1;
    s->acked_inbox = s->next_inbox - 1;
    qbc_store__read_end(s, txn);
    return 0;
}

void qbc_store__retry_applies(qbc_store_t *s)
{
    qbc_jmark_t mark;
    unsigned char *recs = NULL;
    size_t len = 0;
    uint64_t end_pos, next_jseq, n = 0;
    int bound, rc;

    if ((rc = read_journal_mark(s, &mark, &bound)) == 0 &&
        (rc = qbc_store__journal_scan(s, &mark, &recs, &len, &end_pos, &next_jseq, &n)) == 0) {
        uint64_t last = mark.jseq, end = mark.pos;
        for (size_t off = 0; off < len && rc == 0;) { /* chunks of whole records, as at open */
            size_t start = off;
            qbc_jrec_hdr_t h;
            while (off < len && off - start < (4u << 20)) {
                qbc_store__jrec_header(recs + off, &h);
                off += h.size;
            }
            qbc_apply_job_t a = {0};
            a.job.kind = (qbc_job_kind_t)QBC_JOB_APPLY;
            a.buf = recs + start;
            a.len = off - start;
            a.last_jseq = h.jseq;
            a.end_pos = h.pos + h.size;
            a.recovery = 1;
            if ((rc = qbc_store__run_now(s, &a.job)) == 0)
                last = a.last_jseq, end = a.end_pos;
        }
        if (rc == 0) {
            qbc_store__ingest_applied(s, last, end);
            s->j_apply_failed = 0;
            __atomic_store_n(&s->j_stuck, 0, __ATOMIC_RELEASE); /* last: webhooks are taken again */
            qbc_log(QBC_LOG_WARN, "store", "applied %llu journaled webhook(s) that had failed; taking webhooks again",
                    (unsigned long long)n);
        }
    }
    free(recs);
    if (rc != 0) {
        s->j_retry_wait_ns = s->j_retry_wait_ns * 2 < 60000000000LL ? s->j_retry_wait_ns * 2 : 60000000000LL;
        s->j_retry_due_ns = qbc_mono_ns() + s->j_retry_wait_ns;
        qbc_log(QBC_LOG_WARN, "store", "still cannot apply the journaled webhooks (%s); next try in %lld s",
                qbc_strerror(rc), (long long)(s->j_retry_wait_ns / 1000000000LL));
    }
}

int qbc_store_open(const qbc_store_config_t *cfg, qbc_store_t **out)
{
    qbc_store_t *s;
    uint64_t map_size = cfg->map_size != 0 ? cfg->map_size : DEFAULT_MAP_SIZE;
    int rc;

    if (cfg->dir == NULL || cfg->dir[0] == '\0')
        return QBC_EINVAL;
    if ((rc = mkdir_p(cfg->dir)) != 0) {
        qbc_log(QBC_LOG_ERROR, "store", "cannot create data directory %s: %s", cfg->dir, qbc_strerror(rc));
        return rc;
    }
    s = store_new(cfg->dir);
    s->map_max = cfg->map_max != 0 ? cfg->map_max : DEFAULT_MAP_MAX;
    if (s->map_max < map_size)
        s->map_max = map_size;
    s->batch_max = cfg->batch_max != 0 ? cfg->batch_max : DEFAULT_BATCH_MAX;
    s->apply_interval_ns =
        (int64_t)(cfg->apply_gather_ms != 0 ? cfg->apply_gather_ms : DEFAULT_APPLY_GATHER_MS) * 1000000;
    s->retention_ns = cfg->inbox_retention_s > 0 ? cfg->inbox_retention_s * 1000000000 : 0;
    s->feed_retention_ns = cfg->feed_retention_s > 0 ? cfg->feed_retention_s * 1000000000 : 0;
    /* the feed's time index: a minute a step, finer when the retention is short */
    s->feed_time_step_ns = 60 * (int64_t)1000000000;
    if (s->feed_retention_ns > 0 && s->feed_retention_ns / 4 < s->feed_time_step_ns)
        s->feed_time_step_ns = s->feed_retention_ns / 4;
    s->prune_interval_ns =
        (int64_t)(cfg->prune_interval_ms > 0 ? cfg->prune_interval_ms : DEFAULT_PRUNE_INTERVAL_MS) * 1000000;
    s->prune_due_ns = qbc_mono_ns(); /* the first prune comes right after the open */
    if (cfg->no_master_key) {
        rc = 0;
    } else if (cfg->master_key_file != NULL) {
        rc = qbc_store__load_master_key(cfg->master_key_file, s->master_key);
    } else {
        char path[4096];
        snprintf(path, sizeof(path), "%s/master.key", cfg->dir);
        rc = qbc_store__load_master_key(path, s->master_key);
    }
    if (rc != 0)
        goto Error;
    s->has_key = !cfg->no_master_key;
    s->renew_feed_id = cfg->new_feed_id;
    s->job_id_base = cfg->job_id_base - cfg->job_id_base % QBC_JOB_ID_SPACE;
    s->adopt_feed_id = cfg->adopt_feed_id;
    if ((rc = open_env(s, map_size, 0)) != 0)
        goto Error;
    qbc_jmark_t mark;
    int bound;
    if ((rc = read_journal_mark(s, &mark, &bound)) != 0 ||
        (rc = qbc_store__journal_open(s, cfg->journal_size != 0 ? cfg->journal_size : QBC_JOURNAL_DEFAULT, bound)) !=
            0 ||
        (rc = replay_journal(s, &mark, bound)) != 0)
        goto Error;
    if ((rc = qbc_store__writer_start(s)) != 0)
        goto Error;
    if ((rc = qbc_store__ingest_start(s)) != 0) {
        qbc_store__writer_stop(s);
        goto Error;
    }
    *out = s;
    return 0;

Error:
    store_free(s);
    return rc;
}

/* 1 if a process (a running service) holds DIR/journal, 0 if none does, -1 if there is no journal */
static int journal_in_use(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/journal", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int held = flock(fd, LOCK_EX | LOCK_NB) != 0;
    close(fd); /* releases the lock if we took it */
    return held;
}

/*
 * A reader beside a running service: webhooks are acked from the journal and reach
 * LMDB a few milliseconds later, so wait (up to 2 s) until LMDB's applied point has
 * passed every valid record the journal held when the reader opened. A reader then
 * sees every webhook acked before it started, as it did when acks waited for LMDB.
 */
static void wait_applied_for_reader(qbc_store_t *s)
{
    char path[4096];
    struct stat st;
    qbc_jmark_t mark;
    unsigned char *recs = NULL;
    size_t len;
    uint64_t end_pos, next_jseq, n = 0;
    int bound;

    snprintf(path, sizeof(path), "%s/journal", s->dir);
    if (read_journal_mark(s, &mark, &bound) != 0 || !bound || (s->jfd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return;
    if (fstat(s->jfd, &st) == 0 && (uint64_t)st.st_size >= QBC_JOURNAL_MIN) {
        s->jsize = (uint64_t)st.st_size;
        if (qbc_store__journal_scan(s, &mark, &recs, &len, &end_pos, &next_jseq, &n) == 0)
            free(recs);
    }
    qbc_store__journal_close(s);
    for (int64_t deadline = qbc_mono_ns() + 2 * (int64_t)1000000000; n > 0 && qbc_mono_ns() < deadline;) {
        usleep(1000);
        if (read_journal_mark(s, &mark, &bound) != 0 || mark.jseq >= next_jseq - 1)
            return;
    }
    if (n > 0)
        qbc_log(QBC_LOG_WARN, "store",
                "the running service has not applied %llu acked webhook(s) within 2 s; "
                "showing what LMDB holds",
                (unsigned long long)n);
}

int qbc_store_open_readonly(const char *dir, qbc_store_t **out)
{
    qbc_store_t *s;
    int rc, in_use;
    struct stat st;

    if (stat(dir, &st) != 0)
        return -errno;
    if ((in_use = journal_in_use(dir)) == 0) {
        /* crash recovery: no service runs, and the journal may hold webhooks acked before a crash */
        qbc_store_config_t cfg = {.dir = dir, .no_master_key = 1};
        if (qbc_store_open(&cfg, &s) == 0)
            qbc_store_close(s);
        else
            qbc_log(QBC_LOG_WARN, "store", "could not replay the journal of %s; showing what LMDB holds", dir);
    }
    s = store_new(dir);
    s->readonly = 1;
    if ((rc = open_env(s, 0, MDB_RDONLY)) != 0) {
        store_free(s);
        return rc;
    }
    if (in_use == 1)
        wait_applied_for_reader(s);
    *out = s;
    return 0;
}

void qbc_store_close(qbc_store_t *s)
{
    if (s == NULL)
        return;
    if (!s->readonly) {
        qbc_store__ingest_stop(s); /* first: its last batches hand APPLY jobs to the writer */
        qbc_store__writer_stop(s);
    }
    store_free(s);
}

/* once per 10 s per caller: a full store refuses every write, and one line says so */
void qbc_store__log_full(qbc_store_t *s, int64_t *last_logged_ns, const char *what)
{
    int64_t now = qbc_mono_ns();
    if (*last_logged_ns == 0 || now - *last_logged_ns > 10 * (int64_t)1000000000) {
        qbc_log(QBC_LOG_ERROR, "store", "map is full at its maximum of %llu bytes (QBCDC_MAP_MAX); refusing %s",
                (unsigned long long)s->map_max, what);
        *last_logged_ns = now;
    }
}

/*
 * Grows the map. Called by the writer between transactions, so no write transaction
 * is open; the gate's write side waits out any reader in this process.
 */
int qbc_store__grow(qbc_store_t *s)
{
    MDB_envinfo info;
    int rc;

    mdb_env_info(s->env, &info);
    if (info.me_mapsize >= s->map_max) {
        qbc_store__log_full(s, &s->full_logged_ns, "writes");
        return QBC_EFULL;
    }
    uint64_t next = (uint64_t)info.me_mapsize * 2;
    if (next > s->map_max)
        next = s->map_max;
    pthread_rwlock_wrlock(&s->gate);
    rc = mdb_env_set_mapsize(s->env, (size_t)next);
    pthread_rwlock_unlock(&s->gate);
    if (rc != 0)
        return lmdb_fail("mdb_env_set_mapsize (grow)", rc);
    __atomic_add_fetch(&s->st_growths, 1, __ATOMIC_RELAXED);
    qbc_log(QBC_LOG_INFO, "store", "map grown from %zu to %llu bytes", info.me_mapsize, (unsigned long long)next);
    return 0;
}

int qbc_store__read_begin(qbc_store_t *s, MDB_txn **txn)
{
    int rc;

    pthread_rwlock_rdlock(&s->gate);
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED) {
        /* another process grew the map: adopt its size (no transaction of ours is open) */
        pthread_rwlock_unlock(&s->gate);
        pthread_rwlock_wrlock(&s->gate);
        mdb_env_set_mapsize(s->env, 0);
        pthread_rwlock_unlock(&s->gate);
        pthread_rwlock_rdlock(&s->gate);
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    }
    if (rc != 0) {
        pthread_rwlock_unlock(&s->gate);
        return lmdb_fail("mdb_txn_begin (read)", rc);
    }
    return 0;
}

void qbc_store__read_end(qbc_store_t *s, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->gate);
}

int qbc_store_add_listener(qbc_store_t *s, qbc_store_listener_cb cb, void *ctx)
{
    int handle = QBC_EFULL;
    pthread_mutex_lock(&s->listen_mu);
    for (int i = 0; i < QBC_STORE_MAX_LISTENERS && handle < 0; i++) {
        if (s->listeners[i].cb == NULL) {
            s->listeners[i].cb = cb;
            s->listeners[i].ctx = ctx;
            handle = i;
        }
    }
    pthread_mutex_unlock(&s->listen_mu);
    return handle;
}

void qbc_store_remove_listener(qbc_store_t *s, int handle)
{
    if (handle < 0 || handle >= QBC_STORE_MAX_LISTENERS)
        return;
    /* the writer calls listeners under listen_mu: once we hold it, no call is under way */
    pthread_mutex_lock(&s->listen_mu);
    s->listeners[handle].cb = NULL;
    s->listeners[handle].ctx = NULL;
    pthread_mutex_unlock(&s->listen_mu);
}

uint64_t qbc_store_feed_last(qbc_store_t *s)
{
    if (s->readonly) {
        uint64_t last = 0;
        qbc_store_stats_t st;
        if (qbc_store_stats(s, &st) == 0)
            last = st.last_feed_seq;
        return last;
    }
    return __atomic_load_n(&s->feed_last, __ATOMIC_ACQUIRE);
}

const char *qbc_store_feed_id(qbc_store_t *s)
{
    return s->feed_id;
}

void qbc_store_feed_id_copy(qbc_store_t *s, char out[QBC_FEED_ID_LEN + 1])
{
    pthread_mutex_lock(&s->feed_id_mu);
    memcpy(out, s->feed_id, QBC_FEED_ID_LEN + 1);
    pthread_mutex_unlock(&s->feed_id_mu);
}
