/*
 * fuzz_feed_record.c — libFuzzer target for qbc_cluster__feed_record(): a message of the
 * feed stream (bytes from NATS, whoever published them on qbcdc.feed.>) read into the record
 * the cluster feed serves, its "seq" replaced by the stream sequence.
 *
 * Input layout: 8 bytes of stream sequence (little-endian), then the message. Invariants
 * checked on success:
 *   - the record is one line of JSON (RFC 8259 numbers), an object whose "seq" is exactly
 *     the stream sequence in decimal, and whose "realm" and "entity" are what was returned;
 *   - every other byte is the message's: for a message without line breaks, the record is
 *     the message's object (surrounding whitespace aside) with only the value of "seq" changed;
 *   - realm and entity are non-empty and NUL-terminated within their buffers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cluster.h"
#include "common.h"
#include "json_scan.h"

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            qbc_fatal("fuzz_feed_record: invariant broken: %s", #cond);                                                \
    } while (0)

/* the value token of the one "seq" member of the object at token 0 (QBC_JSON_NONE: none) */
static size_t seq_value(const qbc_json_doc_t *doc, const char *text)
{
    size_t k = 1, found = QBC_JSON_NONE;
    for (size_t i = 0; i < doc->tok[0].len; i++) {
        size_t v = doc->tok[k].next;
        if (qbc_json_str_eq(doc, text, k, "seq", 3))
            found = v;
        k = doc->tok[v].next;
    }
    return found;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t seq = 0;
    for (int i = 7; i >= 0; i--)
        seq = seq << 8 | data[i];
    const char *msg = (const char *)data + 8;
    size_t len = size - 8;
    qbc_feed_msg_t rec;
    const char *why = NULL;
    if (qbc_cluster__feed_record(msg, len, seq, &rec, &why) != 0) {
        CHECK(why != NULL && rec.json == NULL);
        return 0;
    }
    CHECK(rec.json != NULL && rec.json[rec.json_len] == '\0');
    CHECK(memchr(rec.json, '\n', rec.json_len) == NULL && memchr(rec.json, '\r', rec.json_len) == NULL);
    CHECK(rec.realm[0] != '\0' && memchr(rec.realm, '\0', sizeof(rec.realm)) != NULL);
    CHECK(rec.entity[0] != '\0' && memchr(rec.entity, '\0', sizeof(rec.entity)) != NULL);

    qbc_json_doc_t doc;
    qbc_json_error_t err;
    qbc_json_init(&doc, NULL, 0);
    CHECK(qbc_json_scan(&doc, rec.json, rec.json_len, QBC_JSON_RFC8259, &err) == 0);
    CHECK(doc.tok[0].type == QBC_JSON_OBJECT && doc.tok[0].start == 0 && doc.tok[0].end == rec.json_len);
    size_t sv = seq_value(&doc, rec.json);
    CHECK(sv != QBC_JSON_NONE && doc.tok[sv].type == QBC_JSON_INTEGER);
    char num[24];
    int nl = snprintf(num, sizeof(num), "%llu", (unsigned long long)seq);
    CHECK(doc.tok[sv].len == (size_t)nl && memcmp(rec.json + doc.tok[sv].start, num, (size_t)nl) == 0);
    char buf[QBC_ENTITY_MAX > QBC_REALM_MAX ? QBC_ENTITY_MAX : QBC_REALM_MAX];
    CHECK(qbc_json_str_copy(&doc, rec.json, qbc_json_get(&doc, rec.json, 0, "realm", 5), buf, sizeof(buf)) == 0 &&
          strcmp(buf, rec.realm) == 0);
    CHECK(qbc_json_str_copy(&doc, rec.json, qbc_json_get(&doc, rec.json, 0, "entity", 6), buf, sizeof(buf)) == 0 &&
          strcmp(buf, rec.entity) == 0);
    if (rec.has_version) { /* the version's data is the record's "data" value, where it stands */
        const qbc_version_t *v = &rec.version;
        CHECK(strcmp(v->realm, rec.realm) == 0 && strcmp(v->entity, rec.entity) == 0 && v->id[0] != '\0');
        size_t dv = qbc_json_get(&doc, rec.json, 0, "data", 4);
        if (v->op == QBC_OP_DELETE) {
            CHECK(v->data == NULL && v->data_len == 0);
        } else {
            CHECK(dv != QBC_JSON_NONE && doc.tok[dv].type == QBC_JSON_OBJECT && v->sync_token[0] != '\0');
            CHECK(v->data == rec.json + doc.tok[dv].start && v->data_len == doc.tok[dv].end - doc.tok[dv].start);
        }
    }
    size_t out_start = doc.tok[sv].start, out_end = doc.tok[sv].start + doc.tok[sv].len;
    qbc_json_dispose(&doc);

    if (memchr(msg, '\n', len) == NULL && memchr(msg, '\r', len) == NULL) {
        /* only the value of "seq" differs from the message's object */
        qbc_json_init(&doc, NULL, 0);
        CHECK(qbc_json_scan(&doc, msg, len, QBC_JSON_RFC8259, &err) == 0);
        size_t in_sv = seq_value(&doc, msg);
        CHECK(in_sv != QBC_JSON_NONE);
        const char *obj = msg + doc.tok[0].start;
        size_t head = doc.tok[in_sv].start - doc.tok[0].start;
        size_t tail = doc.tok[0].end - (doc.tok[in_sv].start + doc.tok[in_sv].len);
        CHECK(out_start == head && rec.json_len - out_end == tail);
        CHECK(memcmp(rec.json, obj, head) == 0);
        CHECK(memcmp(rec.json + out_end, msg + doc.tok[in_sv].start + doc.tok[in_sv].len, tail) == 0);
        qbc_json_dispose(&doc);
    }
    free(rec.json);
    return 0;
}
