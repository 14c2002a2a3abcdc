/*
 * records.c — byte layouts of the store's keys and values.
 *
 * All integers are big-endian so that keys sort numerically and values read the
 * same on any host. Every value starts with a version byte so a later schema can
 * tell old records from new ones.
 *
 *   inbox value   [ver=1][flags][format][0][n_events u32][received_ns i64][raw body...]
 *   pending key   realm \0 Entity \0 id
 *   pending value [ver=1][last_op][0][0][op_mask u32][count u32][first_seq u64][last_seq u64][updated_ns i64]
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include "store_internal.h"

const char *qbc_op_name(qbc_op_t op)
{
    switch (op) {
    case QBC_OP_CREATE:
        return "create";
    case QBC_OP_UPDATE:
        return "update";
    case QBC_OP_DELETE:
        return "delete";
    case QBC_OP_MERGE:
        return "merge";
    case QBC_OP_VOID:
        return "void";
    case QBC_OP_SNAPSHOT:
        return "snapshot";
    case QBC_OP_EMAILED:
        return "emailed";
    default:
        return "unknown";
    }
}

void qbc_store__inbox_header(unsigned char out[INBOX_HEADER_SIZE], uint8_t flags, uint8_t format, uint32_t n_events,
                             int64_t received_ns)
{
    out[0] = 1;
    out[1] = flags;
    out[2] = format;
    out[3] = 0;
    put_u32be(out + 4, n_events);
    put_u64be(out + 8, (uint64_t)received_ns);
}

int qbc_store__inbox_decode(uint64_t seq, const void *data, size_t len, qbc_inbox_record_t *rec)
{
    const unsigned char *p = data;

    if (len < INBOX_HEADER_SIZE || p[0] != 1)
        return QBC_EMALFORMED;
    memset(rec, 0, sizeof(*rec));
    rec->seq = seq;
    rec->flags = p[1];
    rec->format = p[2];
    rec->n_events = get_u32be(p + 4);
    rec->received_ns = (int64_t)get_u64be(p + 8);
    rec->body = (const char *)p + INBOX_HEADER_SIZE;
    rec->body_len = len - INBOX_HEADER_SIZE;
    return 0;
}

void qbc_store__pending_encode(const qbc_pending_rec_t *r, unsigned char out[PENDING_VALUE_SIZE])
{
    out[0] = 1;
    out[1] = r->last_op;
    out[2] = out[3] = 0;
    put_u32be(out + 4, r->op_mask);
    put_u32be(out + 8, r->count);
    put_u64be(out + 12, r->first_seq);
    put_u64be(out + 20, r->last_seq);
    put_u64be(out + 28, (uint64_t)r->updated_ns);
}

size_t qbc_store__pending_encode_full(const qbc_pending_rec_t *r, unsigned char out[PENDING_VALUE_MAX])
{
    size_t n = strnlen(r->merge_peer, QBC_ID_MAX - 1);

    qbc_store__pending_encode(r, out);
    if (r->merge_role == 0 || n == 0)
        return PENDING_VALUE_SIZE;
    out[PENDING_VALUE_SIZE] = r->merge_role;
    out[PENDING_VALUE_SIZE + 1] = (unsigned char)n;
    memcpy(out + PENDING_VALUE_SIZE + 2, r->merge_peer, n);
    return PENDING_VALUE_SIZE + 2 + n;
}

int qbc_store__pending_decode(const void *data, size_t len, qbc_pending_rec_t *r)
{
    const unsigned char *p = data;

    if (len < PENDING_VALUE_SIZE || p[0] != 1)
        return QBC_EMALFORMED;
    r->merge_role = 0;
    r->merge_peer[0] = '\0';
    if (len >= PENDING_VALUE_SIZE + 2 &&
        (p[PENDING_VALUE_SIZE] == PENDING_MERGED_FROM || p[PENDING_VALUE_SIZE] == PENDING_MERGED_INTO)) {
        size_t n = p[PENDING_VALUE_SIZE + 1];
        if (n == 0 || n >= QBC_ID_MAX || len < PENDING_VALUE_SIZE + 2 + n)
            return QBC_EMALFORMED;
        r->merge_role = p[PENDING_VALUE_SIZE];
        memcpy(r->merge_peer, p + PENDING_VALUE_SIZE + 2, n);
        r->merge_peer[n] = '\0';
    }
    r->last_op = p[1];
    r->op_mask = get_u32be(p + 4);
    r->count = get_u32be(p + 8);
    r->first_seq = get_u64be(p + 12);
    r->last_seq = get_u64be(p + 20);
    r->updated_ns = (int64_t)get_u64be(p + 28);
    return 0;
}

/*
 * Folds a notice into a pending record. The operation that counts as "last" is the
 * one with the latest change time, not the latest arrival: Intuit delivers out of
 * order, and its timestamp is the source of truth (qbo-facts §1.5). Ties go to the
 * later arrival.
 */
void qbc_store__pending_fold(qbc_pending_rec_t *r, qbc_op_t op, int64_t updated_ns, uint64_t seq)
{
    if (r->count == 0) {
        r->first_seq = seq;
        r->updated_ns = updated_ns;
        r->last_op = (uint8_t)op;
    } else if (updated_ns >= r->updated_ns) {
        r->updated_ns = updated_ns;
        r->last_op = (uint8_t)op;
    }
    r->op_mask |= 1u << (unsigned)op;
    r->count++;
    if (seq > r->last_seq)
        r->last_seq = seq;
}

size_t qbc_store__pending_key(const char *realm, const char *entity, const char *id, char *buf)
{
    size_t a = strnlen(realm, QBC_REALM_MAX - 1), b = strnlen(entity, QBC_ENTITY_MAX - 1),
           c = strnlen(id, QBC_ID_MAX - 1);
    memcpy(buf, realm, a);
    buf[a] = '\0';
    memcpy(buf + a + 1, entity, b);
    buf[a + 1 + b] = '\0';
    memcpy(buf + a + b + 2, id, c);
    return a + b + c + 2;
}

int qbc_store__pending_key_split(const void *key, size_t len, char *buf, size_t bufsz, const char **realm,
                                 const char **entity, const char **id)
{
    if (len + 1 > bufsz)
        return QBC_EMALFORMED;
    memcpy(buf, key, len);
    buf[len] = '\0';
    char *z1 = memchr(buf, '\0', len);
    if (z1 == NULL)
        return QBC_EMALFORMED;
    char *z2 = memchr(z1 + 1, '\0', len - (size_t)(z1 + 1 - buf));
    if (z2 == NULL)
        return QBC_EMALFORMED;
    *realm = buf;
    *entity = z1 + 1;
    *id = z2 + 1;
    return 0;
}

/* ============================== sources and statuses ============================== */

const char *qbc_source_name(qbc_source_t source)
{
    switch (source) {
    case QBC_SOURCE_WEBHOOK:
        return "webhook";
    case QBC_SOURCE_CDC:
        return "cdc";
    case QBC_SOURCE_BACKFILL:
        return "backfill";
    case QBC_SOURCE_SNAPSHOT:
        return "snapshot";
    default:
        return "unknown";
    }
}

const char *qbc_realm_status_name(qbc_realm_status_t st)
{
    switch (st) {
    case QBC_REALM_ACTIVE:
        return "active";
    case QBC_REALM_DISCONNECTED:
        return "disconnected";
    case QBC_REALM_PAUSED:
        return "paused";
    default:
        return "unknown";
    }
}

/* ===================================== entities =================================== */

size_t qbc_store__entity_size(const qbc_version_t *v)
{
    return ENTITY_HEADER_SIZE + strnlen(v->sync_token, QBC_SYNC_TOKEN_MAX - 1) +
           (v->op == QBC_OP_DELETE || v->data == NULL ? 0 : v->data_len);
}

void qbc_store__entity_encode(const qbc_version_t *v, uint64_t feed_seq, unsigned char *out)
{
    size_t tl = strnlen(v->sync_token, QBC_SYNC_TOKEN_MAX - 1);
    int deleted = v->op == QBC_OP_DELETE;

    out[0] = 1;
    out[1] = deleted ? 1 : 0;
    out[2] = (unsigned char)v->op;
    out[3] = v->source;
    put_u64be(out + 4, (uint64_t)v->updated_ns);
    put_u64be(out + 12, feed_seq);
    out[20] = (unsigned char)tl;
    out[21] = 0;
    memcpy(out + ENTITY_HEADER_SIZE, v->sync_token, tl);
    if (!deleted && v->data != NULL)
        memcpy(out + ENTITY_HEADER_SIZE + tl, v->data, v->data_len);
}

int qbc_store__entity_decode(const void *data, size_t len, qbc_entity_rec_t *rec)
{
    const unsigned char *p = data;

    if (len < ENTITY_HEADER_SIZE || p[0] != 1 || p[20] >= QBC_SYNC_TOKEN_MAX ||
        len < (size_t)ENTITY_HEADER_SIZE + p[20])
        return QBC_EMALFORMED;
    memset(rec, 0, sizeof(*rec));
    rec->deleted = p[1] & 1;
    rec->op = (qbc_op_t)p[2];
    rec->source = p[3];
    rec->updated_ns = (int64_t)get_u64be(p + 4);
    rec->feed_seq = get_u64be(p + 12);
    memcpy(rec->sync_token, p + ENTITY_HEADER_SIZE, p[20]);
    rec->sync_token[p[20]] = '\0';
    rec->data_len = len - ENTITY_HEADER_SIZE - p[20];
    rec->data = rec->data_len > 0 ? (char *)p + ENTITY_HEADER_SIZE + p[20] : NULL;
    return 0;
}

int qbc_store__entity_held(qbc_store_t *s, MDB_txn *txn, MDB_val *k, qbc_entity_rec_t *stored, int *have)
{
    MDB_val cur;
    int rc = mdb_get(txn, s->dbi_entities, k, &cur);
    *have = rc == 0 && qbc_store__entity_decode(cur.mv_data, cur.mv_size, stored) == 0;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int qbc_store__entity_put(qbc_store_t *s, MDB_txn *txn, MDB_val *k, const qbc_version_t *v, uint64_t feed_seq)
{
    MDB_val ev = {qbc_store__entity_size(v), NULL};
    int rc = mdb_put(txn, s->dbi_entities, k, &ev, MDB_RESERVE);
    if (rc == 0)
        qbc_store__entity_encode(v, feed_seq, ev.mv_data);
    return rc;
}

/* SyncTokens are decimal counters; compare them as numbers, longer-is-bigger for safety. */
static int token_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && *a == '0')
        a++, la--;
    while (lb > 1 && *b == '0')
        b++, lb--;
    if (la != lb)
        return la < lb ? -1 : 1;
    return strcmp(a, b);
}

/*
 * The dedupe rule. QBO keeps only the latest version of an object and bumps its
 * SyncToken on every change, so the token orders versions; LastUpdatedTime breaks
 * ties. A delete is final in QBO: once we hold a tombstone, older live versions that
 * arrive late (a CDC page, a slow fetch) are stale, and the delete itself is
 * recorded once.
 */
int qbc_store__version_newer(const qbc_entity_rec_t *stored, const qbc_version_t *v)
{
    if (stored == NULL)
        return 1;
    if (v->op == QBC_OP_DELETE)
        return !stored->deleted;
    if (stored->deleted)
        return 0;
    int c = token_cmp(v->sync_token, stored->sync_token);
    if (c != 0)
        return c > 0;
    return v->updated_ns > stored->updated_ns;
}

/* ======================================= feed ===================================== */

static void buf_str(qbc_buf_t *b, const char *s)
{
    qbc_buf_append(b, s, strlen(s));
}

/* a JSON string literal; our strings are validated ids, but escape anyway */
static void buf_json_string(qbc_buf_t *b, const char *s)
{
    qbc_buf_append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            qbc_buf_append(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof(e), "\\u%04x", c);
            qbc_buf_append(b, e, 6);
        } else {
            qbc_buf_append(b, &c, 1);
        }
    }
    qbc_buf_append(b, "\"", 1);
}

unsigned char *qbc_store__feed_render(const qbc_version_t *v, uint64_t seq, size_t *len)
{
    size_t rl = strnlen(v->realm, QBC_REALM_MAX - 1), el = strnlen(v->entity, QBC_ENTITY_MAX - 1);
    qbc_buf_t b = {qbc_alloc(256 + v->data_len), 0, 256 + v->data_len, 0};
    unsigned char hdr[4] = {1, (unsigned char)rl, (unsigned char)el, 0};
    char num[32], ts[QBC_TIME_BUFSZ];

    qbc_buf_append(&b, hdr, 4);
    qbc_buf_append(&b, v->realm, rl);
    qbc_buf_append(&b, v->entity, el);
    snprintf(num, sizeof(num), "{\"seq\":%llu,\"realm\":", (unsigned long long)seq);
    buf_str(&b, num);
    buf_json_string(&b, v->realm);
    buf_str(&b, ",\"entity\":");
    buf_json_string(&b, v->entity);
    buf_str(&b, ",\"id\":");
    buf_json_string(&b, v->id);
    buf_str(&b, ",\"op\":");
    buf_json_string(&b, qbc_op_name(v->op));
    buf_str(&b, ",\"version\":");
    if (v->sync_token[0] != '\0')
        buf_json_string(&b, v->sync_token);
    else
        buf_str(&b, "null"); /* a delete of an entity never held: no version known, and never "" */
    buf_str(&b, ",\"last_updated\":");
    if (v->updated_ns != 0)
        buf_json_string(&b, qbc_time_format(v->updated_ns, ts));
    else
        buf_str(&b, "null");
    buf_str(&b, ",\"source\":");
    buf_json_string(&b, qbc_source_name((qbc_source_t)v->source));
    if (v->merged_from[0] != '\0') {
        buf_str(&b, ",\"merged_from\":");
        buf_json_string(&b, v->merged_from);
    }
    if (v->merged_into[0] != '\0') {
        buf_str(&b, ",\"merged_into\":");
        buf_json_string(&b, v->merged_into);
    }
    if (v->op != QBC_OP_DELETE && v->data != NULL && v->data_len > 0) {
        buf_str(&b, ",\"data\":");
        qbc_buf_append(&b, v->data, v->data_len);
    }
    buf_str(&b, "}");
    *len = b.len;
    return (unsigned char *)b.data;
}

int qbc_store__feed_decode(uint64_t seq, const void *data, size_t len, char *realm_buf, char *entity_buf,
                           qbc_feed_rec_t *rec)
{
    const unsigned char *p = data;

    if (len < 4 || p[0] != 1 || p[1] >= QBC_REALM_MAX || p[2] >= QBC_ENTITY_MAX || len < 4u + p[1] + p[2])
        return QBC_EMALFORMED;
    memcpy(realm_buf, p + 4, p[1]);
    realm_buf[p[1]] = '\0';
    memcpy(entity_buf, p + 4 + p[1], p[2]);
    entity_buf[p[2]] = '\0';
    rec->seq = seq;
    rec->realm = realm_buf;
    rec->entity = entity_buf;
    rec->json = (const char *)p + 4 + p[1] + p[2];
    rec->json_len = len - 4 - p[1] - p[2];
    return 0;
}

/* ====================================== realms ==================================== */

char *qbc_store__realm_encode(const qbc_realm_t *r)
{
    json_t *o =
        json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "status", qbc_realm_status_name(r->status), "last_error",
                  r->last_error, "last_error_ns", (json_int_t)(r->last_error[0] ? r->last_error_ns : 0), "connected_ns",
                  (json_int_t)r->connected_ns, "cdc_watermark_ns", (json_int_t)r->cdc_watermark_ns, "last_cdc_ns",
                  (json_int_t)r->last_cdc_ns, "cdc_requested_ns", (json_int_t)r->cdc_requested_ns);
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s == NULL)
        qbc_fatal("cannot encode realm state");
    return s;
}

int qbc_store__realm_decode(const char *realm, const void *data, size_t len, qbc_realm_t *out)
{
    json_t *o = json_loadb(data, len, 0, NULL);
    const char *st = "", *err = "";
    json_int_t c = 0, w = 0, l = 0, q = 0, e = 0;

    memset(out, 0, sizeof(*out));
    snprintf(out->realm, sizeof(out->realm), "%s", realm);
    if (o == NULL)
        return QBC_EMALFORMED;
    json_unpack(o, "{s?s,s?s,s?I,s?I,s?I,s?I,s?I}", "status", &st, "last_error", &err, "last_error_ns", &e,
                "connected_ns", &c, "cdc_watermark_ns", &w, "last_cdc_ns", &l, "cdc_requested_ns", &q);
    out->last_error_ns = e;
    out->cdc_requested_ns = q;
    out->status = strcmp(st, "disconnected") == 0 ? QBC_REALM_DISCONNECTED
                  : strcmp(st, "paused") == 0     ? QBC_REALM_PAUSED
                                                  : QBC_REALM_ACTIVE;
    snprintf(out->last_error, sizeof(out->last_error), "%s", err);
    out->connected_ns = c;
    out->cdc_watermark_ns = w;
    out->last_cdc_ns = l;
    json_decref(o);
    return 0;
}

/* ====================================== backfill jobs ============================= */

static const char *const backfill_status_names[] = {"queued", "running", "done", "cancelled", "failed"};

const char *qbc_backfill_status_name(qbc_backfill_status_t st)
{
    return (unsigned)st < 5 ? backfill_status_names[st] : "unknown";
}

static int backfill_rank(qbc_backfill_status_t st)
{
    return st == QBC_BACKFILL_QUEUED ? 0 : st == QBC_BACKFILL_RUNNING ? 1 : 2;
}

int qbc_backfill_cmp(const qbc_backfill_t *a, const qbc_backfill_t *b)
{
    int ra = backfill_rank(a->status), rb = backfill_rank(b->status);
    if (ra != rb)
        return ra > rb ? 1 : -1;
    if (ra == 2) { /* both finished: the first outcome stays */
        if (a->finished_ns != b->finished_ns)
            return a->finished_ns < b->finished_ns ? 1 : -1;
        return a->status == b->status ? 0 : a->status < b->status ? 1 : -1;
    }
    const uint64_t x[] = {a->entities_done, a->records_seen, a->rereads, a->entity_index, a->start_position};
    const uint64_t y[] = {b->entities_done, b->records_seen, b->rereads, b->entity_index, b->start_position};
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
        if (x[i] != y[i])
            return x[i] > y[i] ? 1 : -1;
    return 0;
}

char *qbc_backfill_encode(const qbc_backfill_t *b)
{
    return qbc_store__backfill_encode(b);
}

int qbc_backfill_decode(uint64_t id, const void *data, size_t len, qbc_backfill_t *out)
{
    return qbc_store__backfill_decode(id, data, len, out);
}

char *qbc_store__backfill_encode(const qbc_backfill_t *b)
{
    json_t *o = json_pack(
        "{s:s,s:s,s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:s}", "realm", b->realm, "entities", b->entities,
        "since_ns", (json_int_t)b->since_ns, "status", qbc_backfill_status_name(b->status), "entity_index",
        (json_int_t)b->entity_index, "start_position", (json_int_t)b->start_position, "entities_done",
        (json_int_t)b->entities_done, "records_seen", (json_int_t)b->records_seen, "versions_new",
        (json_int_t)b->versions_new, "created_ns", (json_int_t)b->created_ns, "started_ns", (json_int_t)b->started_ns,
        "finished_ns", (json_int_t)b->finished_ns, "reason", b->reason, "error", b->error);
    if (o != NULL && b->anchors[0] != '\0')
        json_object_set_new(o, "anchors", json_string(b->anchors));
    if (o != NULL && b->rereads != 0)
        json_object_set_new(o, "rereads", json_integer(b->rereads));
    if (o != NULL && b->n_skipped != 0) {
        json_t *sk = json_array();
        for (uint32_t i = 0; i < b->n_skipped && i < QBC_BACKFILL_SKIPPED_MAX; i++)
            json_array_append_new(sk,
                                  json_pack("{s:s,s:s}", "entity", b->skipped[i].entity, "error", b->skipped[i].error));
        json_object_set_new(o, "skipped", sk);
    }
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s == NULL)
        qbc_fatal("cannot encode a backfill job");
    return s;
}

int qbc_store__backfill_decode(uint64_t id, const void *data, size_t len, qbc_backfill_t *out)
{
    json_t *o = json_loadb(data, len, 0, NULL);
    const char *realm = "", *ents = "", *st = "", *reason = "", *err = "", *anchors = "";
    json_int_t since = 0, ei = 0, sp = 1, ed = 0, rs = 0, vn = 0, c = 0, s0 = 0, f = 0, rr = 0;

    memset(out, 0, sizeof(*out));
    out->id = id;
    if (o == NULL)
        return QBC_EMALFORMED;
    json_unpack(o, "{s?s,s?s,s?I,s?s,s?I,s?I,s?I,s?I,s?I,s?I,s?I,s?I,s?s,s?s}", "realm", &realm, "entities", &ents,
                "since_ns", &since, "status", &st, "entity_index", &ei, "start_position", &sp, "entities_done", &ed,
                "records_seen", &rs, "versions_new", &vn, "created_ns", &c, "started_ns", &s0, "finished_ns", &f,
                "reason", &reason, "error", &err);
    json_unpack(o, "{s?s,s?I}", "anchors", &anchors, "rereads", &rr);
    snprintf(out->realm, sizeof(out->realm), "%s", realm);
    snprintf(out->entities, sizeof(out->entities), "%s", ents);
    out->since_ns = since;
    out->status = QBC_BACKFILL_FAILED;
    for (unsigned i = 0; i < 5; i++)
        if (strcmp(st, backfill_status_names[i]) == 0)
            out->status = (qbc_backfill_status_t)i;
    out->entity_index = (uint32_t)ei;
    out->start_position = sp > 0 ? (uint64_t)sp : 1;
    out->entities_done = (uint32_t)ed;
    out->records_seen = (uint64_t)rs;
    out->versions_new = (uint64_t)vn;
    out->created_ns = c;
    out->started_ns = s0;
    out->finished_ns = f;
    snprintf(out->reason, sizeof(out->reason), "%s", reason);
    snprintf(out->error, sizeof(out->error), "%s", err);
    snprintf(out->anchors, sizeof(out->anchors), "%s", anchors);
    out->rereads = (uint32_t)rr;
    json_t *sk = json_object_get(o, "skipped"), *e;
    size_t i;
    json_array_foreach(sk, i, e)
    {
        const char *en = json_string_value(json_object_get(e, "entity"));
        const char *er = json_string_value(json_object_get(e, "error"));
        if (en == NULL || out->n_skipped >= QBC_BACKFILL_SKIPPED_MAX)
            continue;
        qbc_backfill_skip_t *k = &out->skipped[out->n_skipped++];
        snprintf(k->entity, sizeof(k->entity), "%s", en);
        snprintf(k->error, sizeof(k->error), "%s", er != NULL ? er : "");
    }
    json_decref(o);
    return 0;
}

/* ====================================== tokens ==================================== */

size_t qbc_store__tokens_encode(const qbc_tokens_t *t, unsigned char *out)
{
    size_t rl = strnlen(t->refresh_token, QBC_TOKEN_MAX - 1), al = strnlen(t->access_token, QBC_TOKEN_MAX - 1);
    out[0] = 1;
    put_u64be(out + 1, (uint64_t)t->access_expires_ns);
    put_u64be(out + 9, (uint64_t)t->refresh_expires_ns);
    out[17] = (unsigned char)(rl >> 8), out[18] = (unsigned char)rl;
    out[19] = (unsigned char)(al >> 8), out[20] = (unsigned char)al;
    memcpy(out + 21, t->refresh_token, rl);
    memcpy(out + 21 + rl, t->access_token, al);
    return 21 + rl + al;
}

int qbc_store__tokens_decode(const unsigned char *in, size_t len, qbc_tokens_t *t)
{
    if (len < 21 || in[0] != 1)
        return QBC_EMALFORMED;
    size_t rl = (size_t)in[17] << 8 | in[18], al = (size_t)in[19] << 8 | in[20];
    if (rl >= QBC_TOKEN_MAX || al >= QBC_TOKEN_MAX || 21 + rl + al != len)
        return QBC_EMALFORMED;
    memset(t, 0, sizeof(*t));
    t->access_expires_ns = (int64_t)get_u64be(in + 1);
    t->refresh_expires_ns = (int64_t)get_u64be(in + 9);
    memcpy(t->refresh_token, in + 21, rl);
    memcpy(t->access_token, in + 21 + rl, al);
    return 0;
}
