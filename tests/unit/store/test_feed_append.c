/*
 * test_feed_append.c — store/feed_append.c: another feed's records under their own sequences
 * (cluster mode's copy of the feed stream). A store opened with adopt_feed_id has no feed id
 * until a job gives it one; records keep their sequences, gaps included, and their bytes;
 * out-of-order sequences refuse the whole job; realm and entity filters work; the position is
 * committed with the records and survives a reopen; a pruned mark gives readers behind it
 * QBC_EGONE; another feed id starts the copy over; listeners hear of the records and the reset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_fixture.h"

#define ID_A "0123456789abcdef0123456789abcdef"
#define ID_B "fedcba9876543210fedcba9876543210"
#define T 1700000000000000000LL /* the versions' updated_ns */

typedef struct {
    int n;
    uint64_t seqs[16];
    char json[16][128];
} seen_t;

static int collect(const qbc_feed_rec_t *r, void *ctx)
{
    seen_t *s = ctx;
    if (s->n < 16) {
        s->seqs[s->n] = r->seq;
        snprintf(s->json[s->n], sizeof(s->json[0]), "%.*s", (int)r->json_len, r->json);
        s->n++;
    }
    return 0;
}

static seen_t scan(qbc_store_t *s, uint64_t after, const char *realm, const char *entity, int *rc)
{
    seen_t out;
    memset(&out, 0, sizeof(out));
    *rc = qbc_store_feed_scan(s, after, 100, realm, entity, collect, &out, NULL);
    return out;
}

static int append(qbc_store_t *s, const char *feed_id, uint64_t pruned, const qbc_feed_append_rec_t *r, size_t n,
                  uint64_t position, int *reset)
{
    qbc_feed_append_job_t j;
    memset(&j, 0, sizeof(j));
    j.job.on_commit = on_commit;
    j.feed_id = feed_id;
    j.pruned_through = pruned;
    j.records = r;
    j.n_records = n;
    j.position_name = "mirror";
    j.position = position;
    reset_done();
    if (qbc_store_feed_append(s, &j) != 0)
        return -1;
    wait_done(1);
    if (reset != NULL)
        *reset = j.reset;
    return j.job.result;
}

static int appended_heard, resets_heard;

static void on_note(void *ctx, const qbc_commit_note_t *note)
{
    (void)ctx;
    __atomic_add_fetch(&appended_heard, (int)note->feed_appended, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&resets_heard, (int)note->feed_reset, __ATOMIC_SEQ_CST);
}

#define REC(seq, realm, entity, text)                                                                                  \
    {                                                                                                                  \
        seq, realm, entity, text, sizeof(text) - 1, NULL                                                               \
    }

/* the entity the copy holds: "token:data" or "token:deleted", "" when none */
static const char *held(qbc_store_t *s, const char *realm, const char *entity, const char *id, char *out, size_t n)
{
    qbc_entity_rec_t e;
    out[0] = '\0';
    if (qbc_store_entity_get(s, realm, entity, id, &e) == 0) {
        snprintf(out, n, "%s:%.*s@%llu", e.sync_token, e.deleted ? 7 : (int)e.data_len, e.deleted ? "deleted" : e.data,
                 (unsigned long long)e.feed_seq);
        qbc_entity_rec_clear(&e);
    }
    return out;
}

int main(void)
{
    qbc_log_set_level(QBC_LOG_ERROR);
    char *dir = make_tmp();
    qbc_store_config_t cfg = {.dir = dir, .adopt_feed_id = 1, .no_master_key = 1, .journal_size = 1 << 20};
    qbc_store_t *s;
    char id[QBC_FEED_ID_LEN + 1];
    uint64_t pos = 0;
    int rc, reset = -1;

    is_int(qbc_store_open(&cfg, &s), 0, "open a store that adopts its feed id");
    qbc_store_feed_id_copy(s, id);
    is_str(id, "", "it has no feed id of its own");
    int listener = qbc_store_add_listener(s, on_note, NULL);
    ok(listener >= 0, "a listener");

    /* the record bytes are kept as given, exponent and big integer included */
    const qbc_feed_append_rec_t first[] = {
        REC(5, "r1", "Invoice", "{\"seq\":5,\"realm\":\"r1\",\"data\":{\"Amt\":1.50e2,\"N\":123456789012345678901}}"),
        REC(9, "r2", "Customer", "{\"seq\":9,\"realm\":\"r2\"}"),
        REC(10, "r1", "Customer", "{\"seq\":10,\"realm\":\"r1\"}"),
    };
    is_int(append(s, ID_A, 0, first, 3, 12, &reset), 0, "three records with gaps (5, 9, 10), read to 12");
    is_int(reset, 1, "the first id adopted counts as a reset");
    qbc_store_feed_id_copy(s, id);
    is_str(id, ID_A, "the store now has the feed id given");
    ok(qbc_store_feed_last(s) == 10, "the feed's last sequence is the last record's");
    qbc_store_cursor(s, "mirror", &pos);
    ok(pos == 12, "the position is committed with them");
    ok(__atomic_load_n(&appended_heard, __ATOMIC_SEQ_CST) == 3, "listeners heard of 3 records appended");

    seen_t got = scan(s, 0, NULL, NULL, &rc);
    ok(rc == 0 && got.n == 3 && got.seqs[0] == 5 && got.seqs[1] == 9 && got.seqs[2] == 10,
       "a scan gives them under their own sequences");
    is_str(got.json[0], first[0].json, "byte for byte");
    got = scan(s, 5, "r1", NULL, &rc);
    ok(rc == 0 && got.n == 1 && got.seqs[0] == 10, "after 5, realm r1: only 10");
    got = scan(s, 0, NULL, "Customer", &rc);
    ok(rc == 0 && got.n == 2 && got.seqs[0] == 9 && got.seqs[1] == 10, "entity Customer: 9 and 10");

    /* order is enforced, and a refused job writes nothing */
    const qbc_feed_append_rec_t behind[] = {REC(11, "r1", "Bill", "{\"seq\":11}"), REC(10, "r1", "Bill", "{}")};
    is_int(append(s, ID_A, 0, behind, 2, 20, NULL), QBC_EINVAL, "a record not above the one before: refused");
    const qbc_feed_append_rec_t again[] = {REC(10, "r1", "Bill", "{\"seq\":10}")};
    is_int(append(s, ID_A, 0, again, 1, 20, NULL), QBC_EINVAL, "a sequence the feed has: refused");
    const qbc_feed_append_rec_t empty_realm[] = {REC(30, "", "Bill", "{}")};
    is_int(append(s, ID_A, 0, empty_realm, 1, 30, NULL), QBC_EINVAL, "an empty realm: refused");
    is_int(append(s, "not-an-id", 0, NULL, 0, 30, NULL), QBC_EINVAL, "a malformed feed id: refused");
    qbc_store_cursor(s, "mirror", &pos);
    ok(qbc_store_feed_last(s) == 10 && pos == 12, "nothing of the refused jobs was written");

    /* the source lost records up to 20: readers behind that are told, not given a gap */
    const qbc_feed_append_rec_t later[] = {REC(21, "r3", "Bill", "{\"seq\":21}")};
    is_int(append(s, NULL, 20, later, 1, 21, NULL), 0, "records up to 20 gone at the source, then 21");
    scan(s, 9, NULL, NULL, &rc);
    is_int(rc, QBC_EGONE, "a reader after 9 gets QBC_EGONE");
    got = scan(s, 20, NULL, NULL, &rc);
    ok(rc == 0 && got.n == 1 && got.seqs[0] == 21, "a reader after 20 gets 21");
    ok(qbc_store_feed_pruned(s) == 20, "the pruned mark is 20");
    const qbc_feed_append_rec_t under[] = {REC(15, "r3", "Bill", "{}")};
    is_int(append(s, NULL, 0, under, 1, 30, NULL), QBC_EINVAL, "a record under the pruned mark: refused");

    /* the position alone moves forward, never back */
    is_int(append(s, NULL, 0, NULL, 0, 40, NULL), 0, "a position without records");
    is_int(append(s, NULL, 0, NULL, 0, 35, NULL), 0, "a lower one");
    qbc_store_cursor(s, "mirror", &pos);
    ok(pos == 40, "the position stays at 40");

    /* a reopen keeps the id, the records, the position, and numbering from where it was */
    /* the versions records report become the entities' latest, by the dedupe rule */
    char h[256];
    const char *d3 = "{\"Id\":\"7\",\"SyncToken\":\"3\",\"Amt\":1.50e2}", *d2 = "{\"Id\":\"7\",\"SyncToken\":\"2\"}";
    qbc_version_t v3 = ver("r4", "Invoice", "7", "3", T, QBC_OP_UPDATE, d3),
                  v2 = ver("r4", "Invoice", "7", "2", T, QBC_OP_UPDATE, d2),
                  vd = ver("r4", "Invoice", "7", "3", T, QBC_OP_DELETE, NULL),
                  vo = ver("r5", "Invoice", "7", "9", T, QBC_OP_UPDATE, d2);
    qbc_feed_append_rec_t vrecs[] = {REC(41, "r4", "Invoice", "{\"seq\":41}"), REC(42, "r4", "Invoice", "{\"seq\":42}"),
                                     REC(43, "r4", "Invoice", "{\"seq\":43}")};
    vrecs[0].version = &v3;
    vrecs[1].version = &v2; /* older, arriving late */
    vrecs[2].version = &vo; /* another realm's version on an r4 record: not taken */
    is_int(append(s, NULL, 0, vrecs, 3, 43, NULL), 0, "records with the versions they report");
    is_str(held(s, "r4", "Invoice", "7", h, sizeof(h)), "3:{\"Id\":\"7\",\"SyncToken\":\"3\",\"Amt\":1.50e2}@41",
           "the entity is the newest version, its bytes exact, its feed sequence the record's");
    is_str(held(s, "r5", "Invoice", "7", h, sizeof(h)), "", "a version that is not its record's is not kept");
    qbc_feed_append_rec_t del[] = {REC(44, "r4", "Invoice", "{\"seq\":44}")};
    del[0].version = &vd;
    is_int(append(s, NULL, 0, del, 1, 44, NULL), 0, "a delete");
    is_str(held(s, "r4", "Invoice", "7", h, sizeof(h)), "3:deleted@44", "the entity is deleted");

    qbc_store_remove_listener(s, listener);
    qbc_store_close(s);
    is_int(qbc_store_open(&cfg, &s), 0, "reopen");
    qbc_store_feed_id_copy(s, id);
    is_str(id, ID_A, "the id survives");
    qbc_store_cursor(s, "mirror", &pos);
    ok(pos == 44 && qbc_store_feed_last(s) == 44, "the position and the last sequence survive");
    is_int(append(s, ID_A, 0, again, 1, 41, NULL), QBC_EINVAL, "after the reopen, order is still enforced");
    listener = qbc_store_add_listener(s, on_note, NULL);
    __atomic_store_n(&resets_heard, 0, __ATOMIC_SEQ_CST);

    /* another feed (the stream made again): the copy starts over */
    const qbc_feed_append_rec_t fresh[] = {REC(1, "r9", "Item", "{\"seq\":1}"), REC(2, "r9", "Item", "{\"seq\":2}")};
    is_int(append(s, ID_B, 0, fresh, 2, 2, &reset), 0, "another feed id, from sequence 1");
    is_int(reset, 1, "it reset the copy");
    ok(__atomic_load_n(&resets_heard, __ATOMIC_SEQ_CST) == 1, "listeners heard of the reset");
    qbc_store_feed_id_copy(s, id);
    is_str(id, ID_B, "the new id");
    is_str(held(s, "r4", "Invoice", "7", h, sizeof(h)), "", "the old feed's entities are gone");
    got = scan(s, 0, NULL, NULL, &rc);
    ok(rc == 0 && got.n == 2 && got.seqs[0] == 1 && got.seqs[1] == 2, "only the new feed's records, from 1");
    qbc_store_cursor(s, "mirror", &pos);
    ok(pos == 2 && qbc_store_feed_last(s) == 2 && qbc_store_feed_pruned(s) == 0,
       "position, last sequence and pruned mark start over");
    is_int(append(s, ID_B, 0, NULL, 0, 3, &reset), 0, "the same id again");
    is_int(reset, 0, "changes nothing");

    qbc_store_remove_listener(s, listener);
    qbc_store_close(s);
    rm_rf(dir);
    free(dir);
    return done_testing();
}
