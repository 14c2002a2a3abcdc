/*
 * backup.c — a consistent hot copy of a store: qbc_store_backup().
 *
 * What "consistent" means here: the copy holds every webhook acked before the backup
 * began, and opening it gives a store as it was at one moment (LMDB's snapshot) plus the
 * acked webhooks that had not reached LMDB yet. Webhooks are acked once they are in the
 * journal and applied to LMDB moments later (journal.c), so a copy of data.mdb alone can
 * miss the last acked ones. Order is what makes it right:
 *
 *   1. the journal is copied first (time t1), while the service keeps writing;
 *   2. then data.mdb, from one LMDB read transaction begun after that (t2 > t1),
 *      compacted (mdb_env_copyfd2 with MDB_CP_COMPACT: no free pages, no writer lock).
 *
 * A webhook acked before t1 is either applied by t2 (in the LMDB copy) or still
 * unapplied at t2, and then it was unapplied throughout the journal copy, so its bytes
 * could not be overwritten (a record is only written over applied bytes) and the journal
 * copy holds it. A record overwritten while the journal was being read was applied before
 * that, so before t2: it is in the LMDB copy, at or below the copy's applied point, and
 * replay never looks for it. A record torn by the copy (written while read) ends the
 * replayed log, which is right: it was acked after t1 at the earliest. The copy is then
 * opened once, which replays its journal past its LMDB applied point (env.c) and gives
 * it a feed id of its own.
 *
 * Copying journal and data the other way round would lose webhooks acked just before
 * the backup: applied after the LMDB snapshot, and their journal bytes reused before
 * the journal copy. test_backup.c holds the journal back to prove the order matters.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "store_internal.h"

#define MAX_CREATED 16

typedef struct st_backup_t {
    const char *dest;
    char created[MAX_CREATED][4096]; /* files made in dest, removed again on failure */
    int ncreated;
    int made_dir;
} backup_t;

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) != 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* creates DEST/name (exclusively, 0600) and remembers it for cleanup */
static int create_in_dest(backup_t *b, const char *name, int *fd)
{
    if (b->ncreated == MAX_CREATED)
        return QBC_EFULL;
    char *path = b->created[b->ncreated];
    snprintf(path, sizeof(b->created[0]), "%s/%s", b->dest, name);
    if ((*fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
        return -errno;
    b->ncreated++;
    return 0;
}

/* copies src (all of it, as it reads) into DEST/name, then syncs; *bytes gets the size. ENOENT: no src */
static int copy_file(backup_t *b, const char *src, const char *name, uint64_t *bytes)
{
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;
    if (in < 0)
        return -errno;
    if ((rc = create_in_dest(b, name, &out)) != 0) {
        close(in);
        return rc;
    }
    size_t cap = 1 << 20;
    unsigned char *buf = qbc_alloc(cap);
    uint64_t off = 0;
    for (;;) {
        ssize_t n = pread(in, buf, cap, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        for (ssize_t w = 0; w < n;) {
            ssize_t k = pwrite(out, buf + w, (size_t)(n - w), (off_t)(off + (uint64_t)w));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0) {
                rc = -errno;
                break;
            }
            w += k;
        }
        if (rc != 0)
            break;
        off += (uint64_t)n;
    }
    free(buf);
    if (rc == 0 && fsync(out) != 0)
        rc = -errno;
    close(in);
    close(out);
    if (rc == 0)
        *bytes = off;
    return rc;
}

/* DEST must be a new directory or an empty one: a backup never mixes with other files */
static int prepare_dest(backup_t *b, char *err, size_t errsz)
{
    struct stat st;
    if (stat(b->dest, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            snprintf(err, errsz, "%s exists and is not a directory", b->dest);
            return QBC_EINVAL;
        }
        DIR *d = opendir(b->dest);
        if (d == NULL) {
            snprintf(err, errsz, "cannot read %s: %s", b->dest, strerror(errno));
            return -errno;
        }
        struct dirent *e;
        int empty = 1;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                empty = 0;
        closedir(d);
        if (!empty) {
            snprintf(err, errsz, "%s is not empty (a backup goes into a new or empty directory)", b->dest);
            return QBC_EINVAL;
        }
        return 0;
    }
    if (errno != ENOENT || mkdir(b->dest, 0700) != 0) {
        snprintf(err, errsz, "cannot create %s: %s", b->dest, strerror(errno));
        return -errno;
    }
    b->made_dir = 1;
    return 0;
}

static void undo(backup_t *b)
{
    char path[4200];
    for (int i = 0; i < b->ncreated; i++)
        unlink(b->created[i]);
    snprintf(path, sizeof(path), "%s/lock.mdb", b->dest); /* the copy's open (step 4) makes it */
    unlink(path);
    if (b->made_dir)
        rmdir(b->dest);
}

/*
 * data.mdb from one read transaction, compacted; retried if another process grew the map. The
 * compacting walk checks that the pages it found are every page in use, and refuses
 * (MDB_INCOMPATIBLE, "page leak") when they are not: liblmdb 0.9.24 was seen to do so under a
 * steady stream of commits, and a fresh snapshot passed. So it is tried again, and after three
 * refusals the plain copy (the same consistent snapshot, free pages included) is made instead:
 * a backup never fails for want of compaction.
 */
static int copy_lmdb(backup_t *b, qbc_store_t *s, uint64_t *bytes, char *err, size_t errsz)
{
    int fd, rc;
    if ((rc = create_in_dest(b, "data.mdb", &fd)) != 0) {
        snprintf(err, errsz, "cannot create %s/data.mdb: %s", b->dest, qbc_strerror(rc));
        return rc;
    }
    rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    for (int tries = 1; tries < 4 && (rc == MDB_MAP_RESIZED || rc == MDB_INCOMPATIBLE); tries++) {
        if ((rc == MDB_MAP_RESIZED && mdb_env_set_mapsize(s->env, 0) != 0) || ftruncate(fd, 0) != 0 ||
            lseek(fd, 0, SEEK_SET) != 0)
            break;
        rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    }
    if (rc == MDB_INCOMPATIBLE && ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0) {
        qbc_log(QBC_LOG_WARN, "store", "backup: compacting data.mdb was refused 4 times (%s); copied it whole",
                mdb_strerror(rc));
        rc = mdb_env_copyfd2(s->env, fd, 0);
    }
    if (rc != 0) {
        snprintf(err, errsz, "copying data.mdb: %s", mdb_strerror(rc));
        close(fd);
        return QBC_ESTORE;
    }
    struct stat st;
    if (fsync(fd) != 0 || fstat(fd, &st) != 0) {
        rc = -errno;
        snprintf(err, errsz, "syncing %s/data.mdb: %s", b->dest, strerror(errno));
        close(fd);
        return rc;
    }
    close(fd);
    *bytes = (uint64_t)st.st_size;
    return 0;
}

int qbc_store_backup(const char *dir, const char *dest, const char *const *extra_files, qbc_backup_report_t *rep,
                     char *err, size_t errsz)
{
    backup_t b = {.dest = dest};
    qbc_store_t *s = NULL;
    char path[4096];
    int rc;

    memset(rep, 0, sizeof(*rep));
    err[0] = '\0';
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (access(path, R_OK) != 0) {
        snprintf(err, errsz, "%s holds no store (%s: %s)", dir, path, strerror(errno));
        return -errno;
    }
    if ((rc = prepare_dest(&b, err, errsz)) != 0)
        return rc;
    /* beside a running service this waits until LMDB holds what was acked; alone it replays the journal */
    if ((rc = qbc_store_open_readonly(dir, &s)) != 0) {
        snprintf(err, errsz, "cannot open the store in %s: %s", dir, qbc_strerror(rc));
        goto Fail;
    }
    /* 1. the journal, before LMDB's snapshot (see the top of this file) */
    snprintf(path, sizeof(path), "%s/journal", dir);
    rc = copy_file(&b, path, "journal", &rep->journal_bytes);
    if (rc != 0 && rc != -ENOENT) {
        snprintf(err, errsz, "copying %s: %s", path, qbc_strerror(rc));
        goto Fail;
    }
    /* 2. LMDB */
    if ((rc = copy_lmdb(&b, s, &rep->data_bytes, err, errsz)) != 0)
        goto Fail;
    qbc_store_close(s);
    s = NULL;
    /* 3. files that belong with it (the master key, ...), by their base names */
    for (int i = 0; extra_files != NULL && extra_files[i] != NULL; i++) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s", extra_files[i]);
        uint64_t n;
        rc = copy_file(&b, extra_files[i], basename(tmp), &n);
        if (rc == -ENOENT)
            continue;
        if (rc != 0) {
            snprintf(err, errsz, "copying %s: %s", extra_files[i], qbc_strerror(rc));
            goto Fail;
        }
        rep->extra_copied |= 1u << (i < 31 ? i : 31);
    }
    /*
     * 4. the copy is another feed: restored, it would hand out again the sequences its
     * source gave out after the snapshot, so it gets its own feed id (consumers resync
     * on a new id). The open also replays the copy's journal into its LMDB.
     */
    qbc_store_config_t cc = {.dir = dest, .no_master_key = 1, .new_feed_id = 1};
    if ((rc = qbc_store_open(&cc, &s)) != 0) {
        snprintf(err, errsz, "the copy in %s does not open: %s", dest, qbc_strerror(rc));
        s = NULL;
        goto Fail;
    }
    qbc_store_close(s);
    s = NULL;
    if ((rc = fsync_path(dest)) != 0) {
        snprintf(err, errsz, "syncing %s: %s", dest, qbc_strerror(rc));
        goto Fail;
    }
    return 0;

Fail:
    if (s != NULL)
        qbc_store_close(s);
    undo(&b);
    return rc;
}
