/*
 * fuzz_journal.c — libFuzzer target for the journal's record readers (store/journal.c),
 * which read the journal file at recovery: whatever a crash, a torn write or a damaged
 * disk left there.
 *
 * Input: byte 0 picks what the rest is, so one corpus reaches every reader:
 *   0: a record as found in the file: qbc_store__jrec_check() with the header's own jseq,
 *      pos and epoch (the CRC then decides); when it passes, its payload is decoded;
 *   1: a webhook record's payload: qbc_store__jwebhook_decode();
 *   2: the same payload sealed into a record first (a valid CRC), then checked and decoded:
 *      a record the service wrote must always pass the check;
 *   3: the applied mark kept in meta: qbc_store__jmark_decode().
 * Invariants: nothing reads outside the input (ASan); a decoded payload's body and reason
 * lie inside it, every event string is NUL-terminated within its field, and free leaves
 * nothing behind (LeakSanitizer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "store_internal.h"

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            qbc_fatal("fuzz_journal: invariant broken: %s", #cond);                                                    \
    } while (0)

static void decode(const unsigned char *p, size_t len)
{
    qbc_jwebhook_t w;
    if (qbc_store__jwebhook_decode(p, len, &w) != 0) {
        CHECK(w.events == NULL && w.dup == NULL);
        return;
    }
    CHECK(w.body >= p && w.body + w.body_len <= p + len);
    CHECK((const unsigned char *)w.reason >= p && (const unsigned char *)w.reason + w.reason_len <= p + len);
    for (uint32_t i = 0; i < w.n_events; i++) {
        const qbc_event_t *e = &w.events[i];
        CHECK(memchr(e->realm, 0, sizeof(e->realm)) != NULL && memchr(e->entity, 0, sizeof(e->entity)) != NULL);
        CHECK(memchr(e->id, 0, sizeof(e->id)) != NULL && memchr(e->deleted_id, 0, sizeof(e->deleted_id)) != NULL);
        CHECK(memchr(e->event_id, 0, sizeof(e->event_id)) != NULL);
    }
    qbc_store__jwebhook_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const unsigned char *p = data + 1;
    size_t len = size - 1;
    switch (data[0] % 4) {
    case 0: {
        if (len < QBC_JREC_HEADER)
            return 0;
        qbc_jrec_hdr_t h;
        qbc_store__jrec_header(p, &h);
        uint32_t epoch = h.epoch;
        size_t rec_len;
        uint8_t kind;
        if (qbc_store__jrec_check(p, len, h.jseq, h.pos, &epoch, &rec_len, &kind) == 0) {
            CHECK(rec_len <= len && h.len <= len - QBC_JREC_HEADER + QBC_JREC_HEADER);
            if (kind == QBC_JREC_WEBHOOK && QBC_JREC_HEADER + (size_t)h.len <= len)
                decode(p + QBC_JREC_HEADER, h.len);
        }
        break;
    }
    case 1:
        decode(p, len);
        break;
    case 2: {
        size_t rl = qbc_store__jrec_size(len);
        unsigned char *rec = calloc(1, rl);
        if (rec == NULL)
            return 0;
        memcpy(rec + QBC_JREC_HEADER, p, len);
        qbc_store__jrec_seal(rec, 7, 4096, (uint32_t)len, QBC_JREC_WEBHOOK, 3);
        uint32_t epoch = 3;
        size_t rec_len;
        uint8_t kind;
        CHECK(qbc_store__jrec_check(rec, rl, 7, 4096, &epoch, &rec_len, &kind) == 0);
        CHECK(rec_len == rl && kind == QBC_JREC_WEBHOOK && epoch == 3);
        epoch = 4; /* an older epoch than the mark's is refused */
        CHECK(qbc_store__jrec_check(rec, rl, 7, 4096, &epoch, &rec_len, &kind) != 0);
        decode(rec + QBC_JREC_HEADER, len);
        free(rec);
        break;
    }
    default: {
        qbc_jmark_t m;
        if (qbc_store__jmark_decode(p, len, &m) == 0) {
            unsigned char again[QBC_JMARK_SIZE];
            qbc_store__jmark_encode(&m, again);
            qbc_jmark_t m2;
            CHECK(qbc_store__jmark_decode(again, sizeof(again), &m2) == 0);
            CHECK(m2.jseq == m.jseq && m2.pos == m.pos && m2.epoch == m.epoch);
        }
        break;
    }
    }
    return 0;
}
