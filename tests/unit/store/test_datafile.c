/*
 * test_datafile.c — store/datafile.c: data.mdb checked before LMDB maps it. A file whose
 * missing end pages are all on LMDB's free list (what a commit leaves when its highest pages
 * were allocated and freed again: never written) passes and opens with every record; one
 * page less, or a damaged free list, is refused; so is a file cut into its used pages; a
 * missing file passes.
 */
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "store_fixture.h"
#include "../../../store/store_internal.h"

#define PSIZE 4096

static int page_is_free(MDB_env *env, size_t pgno)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int found = 0;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    if (mdb_cursor_open(txn, 0, &cur) == 0) { /* dbi 0: LMDB's free list */
        while (!found && mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
            const size_t *idl = v.mv_data;
            for (size_t i = 1; i <= idl[0] && !found; i++)
                found = idl[i] == pgno;
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return found;
}

static int put(MDB_env *env, MDB_dbi dbi, const char *key, const void *data, size_t size, int del)
{
    MDB_txn *txn;
    MDB_val k = {strlen(key), (void *)key}, v = {size, (void *)data};
    if (mdb_txn_begin(env, NULL, 0, &txn) != 0)
        return -1;
    int rc = del ? mdb_del(txn, dbi, &k, NULL) : mdb_put(txn, dbi, &k, &v, 0);
    return rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), rc);
}

/*
 * an environment whose highest pages are free: a 400 KB record (an overflow run at the end of
 * the file) deleted, then small commits that reuse the lowest free pages and free the page the
 * deletion had appended. *first_free: the first page of the free run that ends at *last.
 */
static int make_env(const char *dir, size_t *first_free, size_t *last)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    char path[512];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    if (mdb_env_create(&env) != 0)
        return -1;
    mdb_env_set_mapsize(env, 1 << 26);
    if (mdb_env_open(env, dir, 0, 0600) != 0 || mdb_txn_begin(env, NULL, 0, &txn) != 0 ||
        mdb_dbi_open(txn, NULL, 0, &dbi) != 0 || mdb_txn_commit(txn) != 0) {
        mdb_env_close(env);
        return -1;
    }
    char *big = calloc(1, 400000);
    int rc =
        put(env, dbi, "keep", "value", 5, 0) | put(env, dbi, "big", big, 400000, 0) | put(env, dbi, "big", NULL, 0, 1);
    free(big);
    for (int i = 0; i < 3 && rc == 0; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", i);
        rc = put(env, dbi, k, "v", 1, 0);
    }
    MDB_envinfo info;
    mdb_env_info(env, &info);
    *last = info.me_last_pgno;
    size_t first = *last + 1;
    while (first > 2 && page_is_free(env, first - 1))
        first--;
    *first_free = first;
    mdb_env_close(env);
    return rc;
}

static int cut(const char *dir, off_t size)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    return truncate(path, size);
}

/* opens the environment and reads every key back: 1 when all four are there */
static int readable(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int n = 0;
    if (mdb_env_create(&env) != 0)
        return 0;
    mdb_env_set_mapsize(env, 1 << 26);
    if (mdb_env_open(env, dir, 0, 0600) == 0 && mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
        const char *keys[] = {"keep", "k0", "k1", "k2"};
        if (mdb_dbi_open(txn, NULL, 0, &dbi) == 0)
            for (int i = 0; i < 4; i++) {
                MDB_val k = {strlen(keys[i]), (void *)keys[i]}, v;
                n += mdb_get(txn, dbi, &k, &v) == 0;
            }
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return n == 4;
}

int main(void)
{
    char *dir = make_tmp();
    char missing[600];
    snprintf(missing, sizeof(missing), "%s/none", dir);
    ok(qbc_store__check_data_file(missing) == 0, "no data.mdb: passes (a new environment)");

    size_t first = 0, last = 0;
    ok(make_env(dir, &first, &last) == 0, "an environment whose last pages are free");
    char line[160];
    snprintf(line, sizeof(line), "last page %zu, free from %zu", last, first);
    diag(line);
    ok(first + 10 < last, "the free run at the end spans pages (the test's premise)");
    ok(qbc_store__check_data_file(dir) == 0, "the whole file passes");

    /* the free pages were never written: the file ends where they begin */
    ok(cut(dir, (off_t)first * PSIZE) == 0, "cut where the free pages begin");
    ok(qbc_store__check_data_file(dir) == 0, "passes: every page missing at the end is on the free list");
    ok(readable(dir), "and LMDB opens it and reads every record");

    ok(cut(dir, (off_t)(first - 1) * PSIZE) == 0, "one page less");
    ok(qbc_store__check_data_file(dir) == QBC_ESTORE, "refused: a used page is missing");
    ok(cut(dir, 3 * PSIZE) == 0, "cut into the used pages");
    ok(qbc_store__check_data_file(dir) == QBC_ESTORE, "refused");

    /* a free list that cannot be read is not trusted */
    ok(make_env(dir, &first, &last) == 0 && cut(dir, (off_t)first * PSIZE) == 0,
       "again, cut where the free pages begin");
    char path[600];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    int fd = open(path, O_RDWR);
    unsigned char meta[2][160], zero[PSIZE];
    memset(zero, 0, sizeof(zero));
    int damaged = fd >= 0 && pread(fd, meta[0], 160, 0) == 160 && pread(fd, meta[1], 160, PSIZE) == 160;
    if (damaged) {
        /* both metas' free-list roots (mm_dbs[FREE_DBI].md_root at byte 80): zero those pages */
        for (int m = 0; m < 2; m++) {
            uint64_t root;
            memcpy(&root, meta[m] + 80, 8);
            if (root != UINT64_MAX && root < first)
                damaged &= pwrite(fd, zero, PSIZE, (off_t)root * PSIZE) == PSIZE;
        }
    }
    if (fd >= 0)
        close(fd);
    ok(damaged, "its free list's root pages zeroed");
    ok(qbc_store__check_data_file(dir) == QBC_ESTORE, "refused: the free list cannot vouch for the missing pages");

    rm_rf(dir);
    free(dir);
    return done_testing();
}
