/*
 * datafile.c — data.mdb checked before LMDB maps it.
 *
 * LMDB maps data.mdb and reads its pages in place: a page past the end of a truncated file
 * (a bad copy, a full disk at restore) kills the process with SIGBUS on first touch. So the
 * newer of the two meta pages says which pages its commit uses (up to mm_last_pg), and a
 * shorter file is refused with an error that says what to do.
 *
 * Shorter is not always truncated: a page a write transaction allocated and freed again
 * before committing ("loose") is never written, only handed to the free list. When such
 * pages are the highest ones, the file of a clean commit ends before mm_last_pg. So the
 * pages missing at the end are looked up in the free list (the FREE_DBI B-tree, read here
 * with pread: nothing is mapped): when every one of them is free, LMDB will write each one
 * before it reads it, and the file is fine.
 *
 * The on-disk layout read here is LMDB 0.9's on a 64-bit little-endian machine (lmdb.h,
 * mdb.c: MDB_page, MDB_node, MDB_meta, MDB_db); every offset and count is checked against
 * the page before use, and the walk is bounded in depth and in pages, so a damaged file is
 * refused, never trusted.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "store_internal.h"

#define META_MAGIC 0xBEEFC0DEu
#define PAGE_HDR 16           /* MDB_page: mp_pgno (8), mp_pad (2), mp_flags (2), mp_lower/mp_upper or mp_pages (4) */
#define PAGE_OFF_FLAGS 10     /* P_BRANCH 0x01, P_LEAF 0x02, P_OVERFLOW 0x04 */
#define PAGE_OFF_LOWER 12     /* the end of the node offsets: (lower - PAGE_HDR) / 2 nodes */
#define PAGE_OFF_PAGES 12     /* an overflow page: how many pages the run spans */
#define META_OFF_MAGIC 16     /* MDB_meta follows the page header */
#define META_OFF_PSIZE 40     /* mm_dbs[FREE_DBI].md_pad holds the page size */
#define META_OFF_FREE_ROOT 80 /* mm_dbs[FREE_DBI].md_root */
#define META_OFF_LAST_PG 136
#define META_OFF_TXNID 144
#define P_BRANCH 0x01
#define P_LEAF 0x02
#define P_OVERFLOW 0x04
#define NODE_HDR 8 /* MDB_node: mn_lo, mn_hi (data size, or a branch's child with mn_flags), mn_flags, mn_ksize */
#define F_BIGDATA 0x01
#define P_INVALID UINT64_MAX
#define MAX_DEPTH 32
#define MAX_OVERFLOW_BYTES (64u << 20)
#define MAX_MISSING_PAGES (1ull << 27) /* 512 GiB of 4 KiB pages: past that, simply truncated */

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

typedef struct {
    int fd;
    uint64_t psize;
    uint64_t have;          /* whole pages the file holds */
    uint64_t last;          /* the last page the commit uses */
    unsigned char *missing; /* a bit per page in [have, last], set until the free list names it */
    uint64_t n_missing;
    uint64_t budget;     /* pages the walk may still read */
    unsigned char *page; /* MAX_DEPTH + 1 page buffers, one per level */
} walk_t;

/* n whole pages from pgno into buf; -1 when they are not all in the file, or the first is not pgno */
static int read_pages(walk_t *w, uint64_t pgno, uint64_t n, unsigned char *buf)
{
    if (pgno >= w->have || n > w->have - pgno || w->budget < n)
        return -1;
    w->budget -= n;
    size_t len = (size_t)(n * w->psize);
    if (pread(w->fd, buf, len, (off_t)(pgno * w->psize)) != (ssize_t)len)
        return -1;
    return get_le(buf, 8) == pgno ? 0 : -1;
}

/* one free-list record: an IDL, its count first, then page numbers */
static void mark_free(walk_t *w, const unsigned char *idl, uint64_t size)
{
    if (size < 8)
        return;
    uint64_t n = get_le(idl, 8), room = size / 8 - 1;
    if (n > room)
        n = room;
    for (uint64_t i = 1; i <= n; i++) {
        uint64_t pg = get_le(idl + 8 * i, 8);
        if (pg < w->have || pg > w->last)
            continue;
        uint64_t bit = pg - w->have;
        if (w->missing[bit / 8] & (1u << (bit % 8))) {
            w->missing[bit / 8] &= (unsigned char)~(1u << (bit % 8));
            w->n_missing--;
        }
    }
}

/* a leaf node's record kept on overflow pages (F_BIGDATA): its first page number is the node's data */
static int mark_overflow(walk_t *w, uint64_t pgno, uint64_t dsize)
{
    unsigned char *first = malloc((size_t)w->psize);
    if (first == NULL || read_pages(w, pgno, 1, first) != 0 || !(get_le(first + PAGE_OFF_FLAGS, 2) & P_OVERFLOW)) {
        free(first);
        return -1;
    }
    uint64_t pages = get_le(first + PAGE_OFF_PAGES, 4);
    free(first);
    if (pages == 0 || pages * w->psize > MAX_OVERFLOW_BYTES || dsize > pages * w->psize - PAGE_HDR)
        return -1;
    unsigned char *run = malloc((size_t)(pages * w->psize));
    w->budget += 1; /* the first page is read again with the rest */
    int rc = run != NULL && read_pages(w, pgno, pages, run) == 0 ? 0 : -1;
    if (rc == 0)
        mark_free(w, run + PAGE_HDR, dsize);
    free(run);
    return rc;
}

static int walk(walk_t *w, uint64_t pgno, int depth)
{
    if (depth > MAX_DEPTH)
        return -1;
    unsigned char *page = w->page + (size_t)depth * w->psize;
    if (read_pages(w, pgno, 1, page) != 0)
        return -1;
    uint64_t flags = get_le(page + PAGE_OFF_FLAGS, 2), lower = get_le(page + PAGE_OFF_LOWER, 2);
    if (lower < PAGE_HDR || lower > w->psize || !(flags & (P_BRANCH | P_LEAF)))
        return -1;
    for (uint64_t i = 0; i < (lower - PAGE_HDR) / 2; i++) {
        uint64_t off = get_le(page + PAGE_HDR + 2 * i, 2);
        if (off < lower || off + NODE_HDR > w->psize)
            return -1;
        const unsigned char *node = page + off;
        uint64_t lo = get_le(node, 2), hi = get_le(node + 2, 2), nflags = get_le(node + 4, 2),
                 ksize = get_le(node + 6, 2);
        if (flags & P_BRANCH) {
            if (walk(w, lo | hi << 16 | nflags << 32, depth + 1) != 0)
                return -1;
            continue;
        }
        uint64_t dsize = lo | hi << 16, data = off + NODE_HDR + ksize;
        if (nflags & F_BIGDATA) {
            if (data + 8 > w->psize || mark_overflow(w, get_le(page + data, 8), dsize) != 0)
                return -1;
        } else {
            if (data + dsize > w->psize)
                return -1;
            mark_free(w, page + data, dsize);
        }
    }
    return 0;
}

/* 1 when every page in [have, last] is on the free list rooted at root, else 0 */
static int tail_is_free(int fd, uint64_t psize, uint64_t have, uint64_t last, uint64_t root)
{
    if (root == P_INVALID || last - have + 1 > MAX_MISSING_PAGES)
        return 0;
    walk_t w = {.fd = fd, .psize = psize, .have = have, .last = last, .n_missing = last - have + 1};
    w.budget = have; /* no page twice in a sound tree */
    w.missing = malloc((size_t)(w.n_missing / 8 + 1));
    w.page = malloc((size_t)((MAX_DEPTH + 1) * psize));
    int ok = 0;
    if (w.missing != NULL && w.page != NULL) {
        memset(w.missing, 0xff, (size_t)(w.n_missing / 8 + 1));
        ok = walk(&w, root, 0) == 0 && w.n_missing == 0;
    }
    free(w.missing);
    free(w.page);
    return ok;
}

/*
 * The meta is read before the size: a live writer only ever grows the file, and writes a
 * commit's pages before its meta, so the size read after a meta covers what that meta's
 * commit wrote.
 */
int qbc_store__check_data_fd(int fd, uint64_t *size, uint64_t *need)
{
    unsigned char meta[2][160];
    struct stat st;
    *size = *need = 0;
    if (pread(fd, meta[0], sizeof(meta[0]), 0) != (ssize_t)sizeof(meta[0]) ||
        get_le(meta[0] + META_OFF_MAGIC, 4) != META_MAGIC)
        return 0; /* too young to hold a meta: LMDB makes a new environment or says what is wrong */
    uint64_t psize = get_le(meta[0] + META_OFF_PSIZE, 4);
    if (psize < 512 || psize > 65536)
        return 0;
    int have2 = pread(fd, meta[1], sizeof(meta[1]), (off_t)psize) == (ssize_t)sizeof(meta[1]) &&
                get_le(meta[1] + META_OFF_MAGIC, 4) == META_MAGIC;
    const unsigned char *m =
        have2 && get_le(meta[1] + META_OFF_TXNID, 8) > get_le(meta[0] + META_OFF_TXNID, 8) ? meta[1] : meta[0];
    uint64_t last = get_le(m + META_OFF_LAST_PG, 8);
    if (last >= UINT64_MAX / psize - 1 || fstat(fd, &st) != 0)
        return 0;
    *size = (uint64_t)st.st_size;
    *need = (last + 1) * psize;
    if (*size >= *need)
        return 0;
    return tail_is_free(fd, psize, *size / psize, last, get_le(m + META_OFF_FREE_ROOT, 8)) ? 0 : QBC_ESTORE;
}

int qbc_store__check_data_file(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0; /* missing: a new environment */
    uint64_t size = 0, need = 0;
    int rc = 0;
    /* beside a running writer the free list read can be overtaken by its next commits: look again */
    struct timespec pause = {0, 20 * 1000 * 1000};
    for (int attempt = 0; (rc = qbc_store__check_data_fd(fd, &size, &need)) != 0 && attempt < 2; attempt++)
        nanosleep(&pause, NULL);
    close(fd);
    if (rc != 0)
        qbc_log(QBC_LOG_ERROR, "store",
                "%s is truncated: %llu bytes, but its last commit uses %llu; refusing to open it (LMDB would crash "
                "reading past the end). Restore the data directory from a backup (README: Recovery).",
                path, (unsigned long long)size, (unsigned long long)need);
    return rc;
}
