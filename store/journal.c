/*
 * journal.c — the webhook journal: a preallocated file written as a ring.
 *
 * Why it exists: an LMDB commit writes every B-tree page it touched (scattered over
 * the file) and then a meta page, each with its own flush. On a VM disk a flush costs
 * ~150 µs plus ~40 µs per scattered page, so a webhook acked after an LMDB commit
 * waits 400-700 µs. A journal record is one contiguous write and one fdatasync of
 * blocks that already exist (no file-size or extent change), ~150-250 µs whatever
 * the batch. So webhooks are acked once their record is in the journal, and the
 * writer applies the records to LMDB (fully synced, as before) moments later.
 *
 * Layout: the file is `size` bytes, zero-filled when created (so later overwrites
 * need no metadata). Records are addressed by a monotonic byte position `pos`; a
 * record lives at pos % size and never straddles the end: when it does not fit, a
 * WRAP record (or, with less than a header left, nothing) fills the rest and the
 * record goes to the next lap. Record: 40-byte header (QBC_JREC_HEADER) then payload, padded to 8.
 *
 *   0 magic "QBJ1"  4 crc32c(bytes 8 .. 40+len)  8 jseq  16 pos  24 len  28 kind  32 epoch  36 zero
 *
 * A record is valid only with the right magic and crc, its own pos, the next jseq,
 * and an epoch no lower than the record before it; so a torn write, or an older
 * lap's record, ends the log. The epoch is one more at every open, made durable
 * before anything is written with it: after a crash, the records of the last,
 * unacked batch past a torn one could otherwise line up (same jseq, same pos) after
 * the new records written over the torn one, and come back as if new. LMDB's meta holds
 * "journal" = (last applied jseq, pos after it), written in the same transaction as
 * the applied records: on open, everything valid after that point is replayed.
 *
 * Space: a record may be written only over bytes already applied to LMDB (and that
 * LMDB commit is fsync'd), i.e. new_end - applied_pos <= size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "store_internal.h"

#define J_MAGIC 0x51424a31u /* "QBJ1" */

/* ---- CRC-32C (Castagnoli), reflected, table-driven ---- */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t qbc_store__crc32c(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    pthread_once(&crc_once, crc_init);
    while (len-- > 0)
        c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* ---- record encoding ---- */

size_t qbc_store__jrec_size(size_t payload_len)
{
    return (QBC_JREC_HEADER + payload_len + 7) & ~(size_t)7;
}

void qbc_store__jrec_seal(unsigned char *rec, uint64_t jseq, uint64_t pos, uint32_t len, uint8_t kind, uint32_t epoch)
{
    put_u32be(rec, J_MAGIC);
    put_u64be(rec + 8, jseq);
    put_u64be(rec + 16, pos);
    put_u32be(rec + 24, len);
    rec[28] = kind;
    rec[29] = rec[30] = rec[31] = 0;
    put_u32be(rec + 32, epoch);
    put_u32be(rec + 36, 0);
    size_t padded = qbc_store__jrec_size(len);
    memset(rec + QBC_JREC_HEADER + len, 0, padded - QBC_JREC_HEADER - len);
    put_u32be(rec + 4, qbc_store__crc32c(rec + 8, QBC_JREC_HEADER - 8 + len));
}

/* webhook payload: [inbox_seq 8][received_ns 8][flags 1][format 1][reason_len 2][n_events 4][body_len 4]
 * body, reason, then per event: [op 1][dup 1][realm_len 1][entity_len 1][id_len 1][deleted_len 1]
 * [event_id_len 1][0 1][updated_ns 8] and the five strings */
#define WH_FIXED 28
#define EV_FIXED 16

static size_t slen(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    return n < max ? n : max - 1;
}

size_t qbc_store__jwebhook_size(const qbc_webhook_job_t *j)
{
    size_t n = WH_FIXED + j->body_len;
    if (j->quarantine_reason != NULL)
        n += slen(j->quarantine_reason, 65535);
    for (size_t i = 0; i < j->n_events; i++) {
        const qbc_event_t *e = &j->events[i];
        n += EV_FIXED + slen(e->realm, QBC_REALM_MAX) + slen(e->entity, QBC_ENTITY_MAX) + slen(e->id, QBC_ID_MAX) +
             slen(e->deleted_id, QBC_ID_MAX) + slen(e->event_id, QBC_EVENT_ID_MAX);
    }
    return n;
}

static unsigned char *put_str(unsigned char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

void qbc_store__jwebhook_encode(const qbc_webhook_job_t *j, const unsigned char *dup, unsigned char *out)
{
    size_t rlen = j->quarantine_reason != NULL ? slen(j->quarantine_reason, 65535) : 0;
    unsigned char *p = out;
    put_u64be(p, j->inbox_seq);
    put_u64be(p + 8, (uint64_t)j->received_ns);
    p[16] = j->inbox_flags;
    p[17] = j->format;
    p[18] = (unsigned char)(rlen >> 8);
    p[19] = (unsigned char)rlen;
    put_u32be(p + 20, (uint32_t)j->n_events);
    put_u32be(p + 24, (uint32_t)j->body_len);
    p += WH_FIXED;
    if (j->body_len > 0)
        p = put_str(p, j->body, j->body_len);
    if (rlen > 0)
        p = put_str(p, j->quarantine_reason, rlen);
    for (size_t i = 0; i < j->n_events; i++) {
        const qbc_event_t *e = &j->events[i];
        size_t l[5] = {slen(e->realm, QBC_REALM_MAX), slen(e->entity, QBC_ENTITY_MAX), slen(e->id, QBC_ID_MAX),
                       slen(e->deleted_id, QBC_ID_MAX), slen(e->event_id, QBC_EVENT_ID_MAX)};
        p[0] = (unsigned char)e->op;
        p[1] = dup != NULL ? dup[i] : 0;
        for (int k = 0; k < 5; k++)
            p[2 + k] = (unsigned char)l[k];
        p[7] = 0;
        put_u64be(p + 8, (uint64_t)e->updated_ns);
        p += EV_FIXED;
        p = put_str(p, e->realm, l[0]);
        p = put_str(p, e->entity, l[1]);
        p = put_str(p, e->id, l[2]);
        p = put_str(p, e->deleted_id, l[3]);
        p = put_str(p, e->event_id, l[4]);
    }
}

static int get_str(const unsigned char **p, const unsigned char *end, size_t n, char *dst, size_t max)
{
    if (n >= max || (size_t)(end - *p) < n)
        return -1;
    memcpy(dst, *p, n);
    dst[n] = '\0';
    *p += n;
    return 0;
}

int qbc_store__jwebhook_decode(const unsigned char *pl, size_t len, qbc_jwebhook_t *w)
{
    const unsigned char *p = pl, *end = pl + len;

    memset(w, 0, sizeof(*w));
    if (len < WH_FIXED)
        return -1;
    w->inbox_seq = get_u64be(p);
    w->received_ns = (int64_t)get_u64be(p + 8);
    w->inbox_flags = p[16];
    w->format = p[17];
    w->reason_len = (size_t)p[18] << 8 | p[19];
    w->n_events = get_u32be(p + 20);
    w->body_len = get_u32be(p + 24);
    p += WH_FIXED;
    if ((size_t)(end - p) < w->body_len + w->reason_len || w->n_events > len / EV_FIXED)
        return -1;
    w->body = p;
    w->reason = (const char *)p + w->body_len;
    p += w->body_len + w->reason_len;
    if (w->n_events > 0) {
        w->events = qbc_calloc(w->n_events, sizeof(qbc_event_t));
        w->dup = qbc_calloc(w->n_events, 1);
    }
    for (uint32_t i = 0; i < w->n_events; i++) {
        qbc_event_t *e = &w->events[i];
        if ((size_t)(end - p) < EV_FIXED)
            goto Bad;
        e->op = (qbc_op_t)p[0];
        w->dup[i] = p[1];
        size_t l[5] = {p[2], p[3], p[4], p[5], p[6]};
        e->updated_ns = (int64_t)get_u64be(p + 8);
        p += EV_FIXED;
        if (get_str(&p, end, l[0], e->realm, QBC_REALM_MAX) != 0 ||
            get_str(&p, end, l[1], e->entity, QBC_ENTITY_MAX) != 0 || get_str(&p, end, l[2], e->id, QBC_ID_MAX) != 0 ||
            get_str(&p, end, l[3], e->deleted_id, QBC_ID_MAX) != 0 ||
            get_str(&p, end, l[4], e->event_id, QBC_EVENT_ID_MAX) != 0)
            goto Bad;
    }
    return 0;
Bad:
    qbc_store__jwebhook_free(w);
    return -1;
}

void qbc_store__jwebhook_free(qbc_jwebhook_t *w)
{
    free(w->events);
    free(w->dup);
    w->events = NULL;
    w->dup = NULL;
}

/* ---- walking records ---- */

void qbc_store__jrec_header(const unsigned char *rec, qbc_jrec_hdr_t *h)
{
    h->jseq = get_u64be(rec + 8);
    h->pos = get_u64be(rec + 16);
    h->len = get_u32be(rec + 24);
    h->kind = rec[28];
    h->epoch = get_u32be(rec + 32);
    h->size = qbc_store__jrec_size(h->len);
}

int qbc_store__jrec_check(const unsigned char *buf, size_t avail, uint64_t jseq, uint64_t pos, uint32_t *epoch,
                          size_t *rec_len, uint8_t *kind)
{
    qbc_jrec_hdr_t h;
    if (avail < QBC_JREC_HEADER || get_u32be(buf) != J_MAGIC)
        return -1;
    qbc_store__jrec_header(buf, &h);
    if (h.jseq != jseq || h.pos != pos || h.epoch < *epoch || h.len > avail || h.size > avail ||
        h.kind < QBC_JREC_WEBHOOK || h.kind > QBC_JREC_WRAP)
        return -1;
    if (qbc_store__crc32c(buf + 8, QBC_JREC_HEADER - 8 + h.len) != get_u32be(buf + 4))
        return -1;
    *rec_len = h.size;
    *kind = h.kind;
    *epoch = h.epoch;
    return 0;
}

void qbc_store__jmark_encode(const qbc_jmark_t *m, unsigned char out[QBC_JMARK_SIZE])
{
    put_u64be(out, m->jseq);
    put_u64be(out + 8, m->pos);
    put_u32be(out + 16, m->epoch);
}

int qbc_store__jmark_decode(const void *data, size_t len, qbc_jmark_t *m)
{
    const unsigned char *p = data;
    if (len != QBC_JMARK_SIZE)
        return -1;
    m->jseq = get_u64be(p);
    m->pos = get_u64be(p + 8);
    m->epoch = get_u32be(p + 16);
    return 0;
}

/* ---- the file ---- */

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) != 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* writes size bytes of zeros, syncs, then renames into place, so a journal file either is whole or absent */
static int create_file(const char *dir, const char *path, uint64_t size)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t chunk = 1 << 20;
    unsigned char *zero = qbc_calloc(1, chunk);
    int rc = 0;
    for (uint64_t off = 0; off < size && rc == 0; off += chunk) {
        size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
        if (pwrite(fd, zero, n, (off_t)off) != (ssize_t)n)
            rc = errno != 0 ? -errno : -EIO;
    }
    free(zero);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc == 0)
        rc = fsync_dir(dir);
    if (rc != 0)
        unlink(tmp);
    return rc;
}

int qbc_store__journal_open(qbc_store_t *s, uint64_t size, int bound)
{
    char path[4096];
    struct stat st;
    int rc;

    snprintf(path, sizeof(path), "%s/journal", s->dir);
    if (!bound && stat(path, &st) == 0) {
        /* LMDB never knew this journal (its data.mdb was replaced): its records are not ours to replay */
        char old[4200];
        snprintf(old, sizeof(old), "%s.orphan", path);
        qbc_log(QBC_LOG_WARN, "store", "%s does not belong to this LMDB environment; kept as %s, a new one is made",
                path, old);
        if (rename(path, old) != 0)
            return -errno;
    }
    if (stat(path, &st) != 0) {
        if (errno != ENOENT)
            return -errno;
        if ((rc = create_file(s->dir, path, size)) != 0) {
            qbc_log(QBC_LOG_ERROR, "store", "cannot create the journal %s: %s", path, qbc_strerror(rc));
            return rc;
        }
    } else if ((uint64_t)st.st_size < QBC_JOURNAL_MIN) {
        qbc_log(QBC_LOG_ERROR, "store", "the journal %s is %lld bytes, too small to be ours", path,
                (long long)st.st_size);
        return QBC_ESTORE;
    } else {
        size = (uint64_t)st.st_size; /* an existing journal keeps its size */
    }
    s->jfd = open(path, O_RDWR | O_CLOEXEC);
    if (s->jfd < 0)
        return -errno;
    if (flock(s->jfd, LOCK_EX | LOCK_NB) != 0) {
        rc = -errno;
        qbc_log(QBC_LOG_ERROR, "store", "%s is in use by another qbcdc process", s->dir);
        close(s->jfd);
        s->jfd = -1;
        return rc;
    }
    s->jsize = size;
    return 0;
}

void qbc_store__journal_close(qbc_store_t *s)
{
    if (s->jfd >= 0)
        close(s->jfd);
    s->jfd = -1;
}

int qbc_store__journal_write(qbc_store_t *s, const unsigned char *buf, uint64_t pos, size_t len)
{
    while (len > 0) {
        uint64_t off = pos % s->jsize;
        size_t n = s->jsize - off < len ? (size_t)(s->jsize - off) : len;
        ssize_t w = pwrite(s->jfd, buf, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        buf += w, pos += (uint64_t)w, len -= (size_t)w;
    }
    return 0;
}

int qbc_store__journal_sync(qbc_store_t *s)
{
    return fdatasync(s->jfd) == 0 ? 0 : -errno;
}

/*
 * Reads the journal and gathers every valid record after the applied point into
 * *out (records laid out back to back, WRAP markers dropped), for replay.
 * Sets the position and jseq where writing resumes.
 */
int qbc_store__journal_scan(qbc_store_t *s, const qbc_jmark_t *applied, unsigned char **out, size_t *out_len,
                            uint64_t *end_pos, uint64_t *next_jseq, uint64_t *n_records)
{
    unsigned char *file = qbc_alloc(s->jsize);
    qbc_buf_t acc = {0};
    uint64_t pos = applied->pos, jseq = applied->jseq + 1, n = 0;
    uint32_t epoch = applied->epoch;

    for (uint64_t off = 0; off < s->jsize;) {
        ssize_t r = pread(s->jfd, file + off, (size_t)(s->jsize - off), (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int rc = r < 0 ? -errno : -EIO;
            free(file);
            return rc;
        }
        off += (uint64_t)r;
    }
    for (;;) {
        uint64_t off = pos % s->jsize, left = s->jsize - off;
        size_t rlen;
        uint8_t kind;
        if (left < QBC_JREC_HEADER) {
            pos += left;
            continue;
        }
        if (qbc_store__jrec_check(file + off, (size_t)left, jseq, pos, &epoch, &rlen, &kind) != 0)
            break;
        if (kind == QBC_JREC_WRAP) {
            pos += left;
            continue;
        }
        qbc_buf_append(&acc, file + off, rlen);
        pos += rlen;
        jseq++;
        n++;
    }
    free(file);
    *out = (unsigned char *)acc.data;
    *out_len = acc.len;
    *end_pos = pos;
    *next_jseq = jseq;
    *n_records = n;
    return 0;
}
