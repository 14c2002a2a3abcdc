/*
 * feed_append.c — QBC_JOB_FEED_APPEND: another feed's records kept under their own sequences.
 *
 * Cluster mode keeps a copy of the cluster's feed stream in a store of its own, read by the
 * feed endpoints: its records carry the stream's sequences, which may have gaps, so they
 * are appended as given (checked to go up) instead of numbered by the writer. The copy's
 * identity is the stream's: a job naming another feed id empties the copy first, and the
 * position it read the source to is committed with the records it read.
 */
#include <stdlib.h>
#include <string.h>
#include "store_internal.h"

/* every check before any write: a refused job changes nothing */
static int check(const qbc_store_t *s, const qbc_feed_append_job_t *job, uint64_t floor)
{
    if (job->feed_id != NULL && !qbc_store__valid_feed_id(job->feed_id, strnlen(job->feed_id, QBC_FEED_ID_LEN + 1)))
        return QBC_EINVAL;
    if (job->position_name != NULL) {
        char key[48];
        if (qbc_store__cursor_key(job->position_name, key, sizeof(key)) != 0)
            return QBC_EINVAL;
    }
    if (job->n_records > 0 && job->records == NULL)
        return QBC_EINVAL;
    uint64_t last = floor;
    for (size_t i = 0; i < job->n_records; i++) {
        const qbc_feed_append_rec_t *r = &job->records[i];
        if (r->seq <= last || r->realm == NULL || r->entity == NULL || r->json == NULL || r->json_len == 0)
            return QBC_EINVAL;
        size_t rl = strnlen(r->realm, QBC_REALM_MAX), el = strnlen(r->entity, QBC_ENTITY_MAX);
        if (rl == 0 || rl >= QBC_REALM_MAX || el == 0 || el >= QBC_ENTITY_MAX)
            return QBC_EINVAL;
        last = r->seq;
    }
    (void)s;
    return 0;
}

/* empties the feed for a new identity: records, time index, pruned mark, high-water mark, position */
static int reset_feed(qbc_store_t *s, MDB_txn *txn, const qbc_feed_append_job_t *job)
{
    int rc;
    if ((rc = mdb_drop(txn, s->dbi_feed, 0)) != 0)
        return rc;
    if ((rc = mdb_drop(txn, s->dbi_entities, 0)) != 0)
        return rc;
    if (s->has_feed_times && (rc = mdb_drop(txn, s->dbi_feed_times, 0)) != 0)
        return rc;
    const char *marks[] = {"feed_pruned", "feed_seq"};
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
        MDB_val k = {strlen(marks[i]), (void *)marks[i]};
        if ((rc = mdb_del(txn, s->dbi_meta, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
            return rc;
    }
    if (job->position_name != NULL) {
        char key[48];
        qbc_store__cursor_key(job->position_name, key, sizeof(key));
        MDB_val k = {strlen(key), key};
        if ((rc = mdb_del(txn, s->dbi_meta, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
            return rc;
    }
    MDB_val k = {sizeof(QBC_FEED_ID_KEY) - 1, QBC_FEED_ID_KEY}, v = {QBC_FEED_ID_LEN, (void *)job->feed_id};
    return mdb_put(txn, s->dbi_meta, &k, &v, 0);
}

/* one record, in the feed's value layout (records.c): [1][realm_len][entity_len][0][realm][entity][json] */
static int put_record(qbc_store_t *s, MDB_txn *txn, const qbc_feed_append_rec_t *r)
{
    size_t rl = strlen(r->realm), el = strlen(r->entity);
    unsigned char kb[8];
    put_u64be(kb, r->seq);
    MDB_val k = {8, kb}, v = {4 + rl + el + r->json_len, NULL};
    int rc = mdb_put(txn, s->dbi_feed, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc != 0)
        return rc;
    unsigned char *p = v.mv_data;
    p[0] = 1, p[1] = (unsigned char)rl, p[2] = (unsigned char)el, p[3] = 0;
    memcpy(p + 4, r->realm, rl);
    memcpy(p + 4 + rl, r->entity, el);
    memcpy(p + 4 + rl + el, r->json, r->json_len);
    return 0;
}

/* the record's version as the entity's latest, when newer than the one held (records.c's rule) */
static int put_version(qbc_store_t *s, MDB_txn *txn, const qbc_feed_append_rec_t *r)
{
    const qbc_version_t *v = r->version;
    if (v->id[0] == '\0' || strcmp(v->realm, r->realm) != 0 || strcmp(v->entity, r->entity) != 0)
        return 0; /* not this record's: the record alone */
    char kbuf[KEY_BUF_SIZE];
    MDB_val k = {qbc_store__pending_key(v->realm, v->entity, v->id, kbuf), kbuf};
    qbc_entity_rec_t stored;
    int have, rc = qbc_store__entity_held(s, txn, &k, &stored, &have);
    if (rc != 0)
        return rc;
    if (!qbc_store__version_newer(have ? &stored : NULL, v))
        return 0;
    return qbc_store__entity_put(s, txn, &k, v, r->seq);
}

int qbc_store__apply_feed_append(qbc_store_t *s, MDB_txn *txn, qbc_feed_append_job_t *job, qbc_feed_append_effect_t *fx)
{
    int rc;
    char current[QBC_FEED_ID_LEN + 1];
    MDB_val ik = {sizeof(QBC_FEED_ID_KEY) - 1, QBC_FEED_ID_KEY}, iv;

    job->reset = 0;
    /* the id as this transaction sees it (an earlier job of the batch may have changed it) */
    current[0] = '\0';
    if ((rc = mdb_get(txn, s->dbi_meta, &ik, &iv)) == 0 && iv.mv_size == QBC_FEED_ID_LEN) {
        memcpy(current, iv.mv_data, QBC_FEED_ID_LEN);
        current[QBC_FEED_ID_LEN] = '\0';
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        return rc;
    }
    int reset = job->feed_id != NULL && strncmp(current, job->feed_id, QBC_FEED_ID_LEN + 1) != 0;
    uint64_t pruned = reset ? 0 : qbc_store__meta_u64(txn, s->dbi_meta, "feed_pruned");
    uint64_t floor = reset ? 0 : fx->next_feed - 1;
    if (pruned > floor)
        floor = pruned;
    if (job->pruned_through > floor)
        floor = job->pruned_through;
    if ((rc = check(s, job, floor)) != 0)
        return rc;

    if (reset) {
        if ((rc = reset_feed(s, txn, job)) != 0)
            return rc;
        fx->reset = 1;
        memcpy(fx->feed_id, job->feed_id, QBC_FEED_ID_LEN);
        fx->feed_id[QBC_FEED_ID_LEN] = '\0';
        fx->next_feed = 1;
        fx->first_seq = 0;
        job->reset = 1;
    }
    if (job->pruned_through > pruned &&
        (rc = qbc_store__meta_put_u64(txn, s->dbi_meta, "feed_pruned", job->pruned_through)) != 0)
        return rc;
    for (size_t i = 0; i < job->n_records; i++) {
        if ((rc = put_record(s, txn, &job->records[i])) != 0)
            return rc;
        if (job->records[i].version != NULL && (rc = put_version(s, txn, &job->records[i])) != 0)
            return rc;
        if (fx->first_seq == 0)
            fx->first_seq = job->records[i].seq;
        fx->next_feed = job->records[i].seq + 1;
        fx->appended++;
    }
    /*
     * the high-water mark: a gap (or a pruned mark) past the last record must not let a
     * restart number from below it; kept only when it says more than the last key
     */
    uint64_t high = job->pruned_through > fx->next_feed - 1 ? job->pruned_through : 0;
    if (high != 0) {
        if ((rc = qbc_store__meta_put_u64(txn, s->dbi_meta, "feed_seq", high)) != 0)
            return rc;
        fx->next_feed = high + 1;
    }
    if (job->position_name != NULL) {
        char key[48];
        qbc_store__cursor_key(job->position_name, key, sizeof(key));
        if (job->position > qbc_store__meta_u64(txn, s->dbi_meta, key) &&
            (rc = qbc_store__meta_put_u64(txn, s->dbi_meta, key, job->position)) != 0)
            return rc;
    }
    return 0;
}
