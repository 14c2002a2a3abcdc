/*
 * response.c — parsing QBO answers: QueryResponse.<Entity>[] (qbo-facts §3), entity reads
 * (§9), batch answers (§4), CDC (§2), the two Fault shapes (§6: Fault/Error and the
 * gateway's fault/error) and the XML IntuitResponse throttle body (§5). HTTP 200 may
 * still carry a Fault.
 *
 * Answers are read with common/'s JSON scanner under RFC 8259's rules, never through a
 * DOM: an entity's JSON is handed on as the bytes QBO sent (less the whitespace between
 * tokens), so an amount such as 2932.92, 1e-7 or 12345678901234567890 and an escape such
 * as \u00e9 or \/ reach the store and the feed exactly as QBO wrote them. Only the few
 * fields qbcdc needs (Id, SyncToken, status, MetaData.LastUpdatedTime, a Fault's texts)
 * are decoded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "json_scan.h"
#include "rec_internal.h"

#define GET(doc, text, obj, literal) qbc_json_get((doc), (text), (obj), (literal), sizeof(literal) - 1)

static int is_a(const qbc_json_doc_t *doc, size_t i, int type)
{
    return i != QBC_JSON_NONE && doc->tok[i].type == type;
}

/* a string (or integer) field as one line of text for logs and dead letters; "" when absent */
static void copy_field(const qbc_json_doc_t *doc, const char *text, size_t v, char *dst, size_t size)
{
    if (qbc_json_str_copy(doc, text, v, dst, size) != 0)
        return;
    for (char *c = dst; *c != '\0'; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
}

static void copy_str(char *dst, size_t size, const char *src, size_t len)
{
    if (len >= size)
        len = size - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    for (size_t i = 0; i < len; i++) /* one line in logs and dead letters */
        if (dst[i] == '\n' || dst[i] == '\r' || dst[i] == '\t')
            dst[i] = ' ';
}

/* ---------------------------------------------------------------- faults */

/* a Fault (Fault/Error) or the gateway's fault/error in the object at token obj */
static int fault_from_tape(const qbc_json_doc_t *doc, const char *text, size_t obj, qbc_fault_t *out)
{
    size_t f = GET(doc, text, obj, "Fault"), errs, e = QBC_JSON_NONE;
    int lower = 0;

    if (is_a(doc, f, QBC_JSON_OBJECT)) {
        errs = GET(doc, text, f, "Error");
    } else if (is_a(doc, f = GET(doc, text, obj, "fault"), QBC_JSON_OBJECT)) {
        errs = GET(doc, text, f, "error");
        lower = 1;
    } else {
        return 0;
    }
    memset(out, 0, sizeof(*out));
    out->present = 1;
    copy_field(doc, text, GET(doc, text, f, "type"), out->type, sizeof(out->type));
    if (is_a(doc, errs, QBC_JSON_OBJECT)) {
        e = errs;
    } else if (is_a(doc, errs, QBC_JSON_ARRAY) && doc->tok[errs].len > 0) {
        /* several errors: prefer a 610 so deletes are recognised whatever the order */
        e = errs + 1;
        for (size_t i = 0, x = errs + 1; i < doc->tok[errs].len; i++, x = doc->tok[x].next) {
            char c[16];
            copy_field(doc, text, GET(doc, text, x, "code"), c, sizeof(c));
            if (strcmp(c, "610") == 0)
                e = x;
        }
    }
    if (is_a(doc, e, QBC_JSON_OBJECT)) {
        copy_field(doc, text, GET(doc, text, e, "code"), out->code, sizeof(out->code));
        copy_field(doc, text, lower ? GET(doc, text, e, "message") : GET(doc, text, e, "Message"), out->message,
                   sizeof(out->message));
        copy_field(doc, text, lower ? GET(doc, text, e, "detail") : GET(doc, text, e, "Detail"), out->detail,
                   sizeof(out->detail));
    }
    return 1;
}

/* the text between the first `open` (after from) and the next `close`, bounded by end */
static const char *xml_between(const char *from, const char *end, const char *open, const char *close, size_t *len)
{
    const char *s = memmem(from, (size_t)(end - from), open, strlen(open));
    if (s == NULL)
        return NULL;
    s += strlen(open);
    const char *e = memmem(s, (size_t)(end - s), close, strlen(close));
    if (e == NULL)
        return NULL;
    *len = (size_t)(e - s);
    return s;
}

static int fault_from_xml(const char *body, size_t len, qbc_fault_t *out)
{
    const char *end = body + len, *f = memmem(body, len, "<Fault", 6), *v;
    size_t n;
    if (f == NULL)
        return 0;
    memset(out, 0, sizeof(*out));
    out->present = 1;
    const char *tag_end = memchr(f, '>', (size_t)(end - f));
    if (tag_end != NULL && (v = xml_between(f, tag_end, "type=\"", "\"", &n)) != NULL)
        copy_str(out->type, sizeof(out->type), v, n);
    const char *e = memmem(f, (size_t)(end - f), "<Error", 6);
    if (e != NULL) {
        tag_end = memchr(e, '>', (size_t)(end - e));
        if (tag_end != NULL && (v = xml_between(e, tag_end, "code=\"", "\"", &n)) != NULL)
            copy_str(out->code, sizeof(out->code), v, n);
        if ((v = xml_between(e, end, "<Message>", "</Message>", &n)) != NULL)
            copy_str(out->message, sizeof(out->message), v, n);
        if ((v = xml_between(e, end, "<Detail>", "</Detail>", &n)) != NULL)
            copy_str(out->detail, sizeof(out->detail), v, n);
    }
    return 1;
}

static int is_xml(const char *body, size_t len)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
        i++;
    return i < len && body[i] == '<';
}

/*
 * scans an answer into doc (disposed by the caller in every case).
 * @return 0 with an object at token 0; QBC_ENOTFOUND when it is a Fault (JSON or XML:
 *         *fault is filled); QBC_EMALFORMED when it is empty, not JSON or not an object
 */
static int answer_scan(const char *body, size_t len, qbc_json_doc_t *doc, qbc_fault_t *fault)
{
    qbc_json_error_t jerr;

    memset(fault, 0, sizeof(*fault));
    qbc_json_init(doc, NULL, 0);
    if (body == NULL || len == 0)
        return QBC_EMALFORMED;
    if (is_xml(body, len))
        return fault_from_xml(body, len, fault) ? QBC_ENOTFOUND : QBC_EMALFORMED;
    int rc = qbc_json_scan(doc, body, len, QBC_JSON_RFC8259, &jerr);
    if (rc == -ENOMEM)
        qbc_fatal("out of memory scanning a QBO answer");
    if (rc != 0 || doc->tok[0].type != QBC_JSON_OBJECT)
        return QBC_EMALFORMED;
    return fault_from_tape(doc, body, 0, fault) ? QBC_ENOTFOUND : 0;
}

int qbc_rec_parse_fault(const char *body, size_t len, qbc_fault_t *out)
{
    qbc_json_doc_t doc;
    int rc = answer_scan(body, len, &doc, out);
    qbc_json_dispose(&doc);
    return rc == QBC_ENOTFOUND;
}

/* ---------------------------------------------------------------- entities */

void qbc_rec_items_free(qbc_rec_item_t *items, size_t n)
{
    if (items == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(items[i].data);
    free(items);
}

/* copies string token v into dst (size bytes) only if it fits whole. @return 0 or QBC_EMALFORMED */
static int take_string(const qbc_json_doc_t *doc, const char *text, size_t v, char *dst, size_t size)
{
    char buf[256];
    if (!is_a(doc, v, QBC_JSON_STRING) || size > sizeof(buf) - 1 ||
        qbc_json_str_copy(doc, text, v, buf, size + 1) != 0 || strlen(buf) >= size)
        return QBC_EMALFORMED;
    memcpy(dst, buf, strlen(buf) + 1);
    return 0;
}

/* one entity object (token o): the fields qbcdc keys on, and its bytes as QBO sent them */
static int item_from_tape(const qbc_json_doc_t *doc, const char *text, size_t o, qbc_rec_item_t *it)
{
    memset(it, 0, sizeof(*it));
    if (!is_a(doc, o, QBC_JSON_OBJECT))
        return QBC_EMALFORMED;
    if (take_string(doc, text, GET(doc, text, o, "Id"), it->id, sizeof(it->id)) != 0 || it->id[0] == '\0')
        return QBC_EMALFORMED;
    it->deleted = qbc_json_str_eq(doc, text, GET(doc, text, o, "status"), "Deleted", 7);
    if (take_string(doc, text, GET(doc, text, o, "SyncToken"), it->sync_token, sizeof(it->sync_token)) != 0) {
        it->sync_token[0] = '\0';
        if (!it->deleted)
            return QBC_EMALFORMED;
    }
    size_t lu = GET(doc, text, GET(doc, text, o, "MetaData"), "LastUpdatedTime");
    char ts[64];
    if (is_a(doc, lu, QBC_JSON_STRING)) {
        if (take_string(doc, text, lu, ts, sizeof(ts)) != 0 || qbc_time_parse(ts, strlen(ts), &it->updated_ns) != 0)
            return QBC_EMALFORMED;
    } else if (!it->deleted) {
        return QBC_EMALFORMED;
    }
    if (!it->deleted)
        it->data = qbc_json_copy_compact(doc, text, o, &it->data_len);
    return 0;
}

/* the items of the array at token arr (QBC_JSON_NONE: none). @return 0 or QBC_EMALFORMED */
static int items_from_array(const qbc_json_doc_t *doc, const char *text, size_t arr, qbc_rec_item_t **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    if (arr == QBC_JSON_NONE)
        return 0;
    if (!is_a(doc, arr, QBC_JSON_ARRAY))
        return QBC_EMALFORMED;
    size_t cnt = doc->tok[arr].len;
    qbc_rec_item_t *out = qbc_calloc(cnt ? cnt : 1, sizeof(*out));
    for (size_t i = 0, el = arr + 1; i < cnt; i++, el = doc->tok[el].next) {
        if (item_from_tape(doc, text, el, &out[i]) != 0) {
            qbc_rec_items_free(out, i + 1);
            return QBC_EMALFORMED;
        }
    }
    *items = out;
    *n = cnt;
    return 0;
}

int qbc_rec_parse_query(const char *body, size_t len, const char *entity, qbc_rec_item_t **items, size_t *n,
                        qbc_fault_t *fault)
{
    qbc_json_doc_t doc;
    int rc;

    *items = NULL;
    *n = 0;
    if ((rc = answer_scan(body, len, &doc, fault)) == 0) {
        size_t qr = GET(&doc, body, 0, "QueryResponse");
        /* past the end / nothing matched: {} */
        rc = is_a(&doc, qr, QBC_JSON_OBJECT)
                 ? items_from_array(&doc, body, qbc_json_get(&doc, body, qr, entity, strlen(entity)), items, n)
                 : QBC_EMALFORMED;
    }
    qbc_json_dispose(&doc);
    return rc;
}

int qbc_rec_parse_read(const char *body, size_t len, const char *entity, qbc_rec_item_t *item, qbc_fault_t *fault)
{
    qbc_json_doc_t doc;
    int rc;

    memset(item, 0, sizeof(*item));
    if ((rc = answer_scan(body, len, &doc, fault)) == 0 &&
        (rc = item_from_tape(&doc, body, qbc_json_get(&doc, body, 0, entity, strlen(entity)), item)) != 0) {
        free(item->data);
        memset(item, 0, sizeof(*item));
    }
    qbc_json_dispose(&doc);
    return rc;
}

int qbc_rec_parse_batch(const char *body, size_t len, const char *const *entities, size_t n_parts,
                        qbc_rec_part_t *parts, qbc_fault_t *fault)
{
    qbc_json_doc_t doc;
    int rc;

    for (size_t i = 0; i < n_parts; i++) {
        memset(&parts[i], 0, sizeof(parts[i]));
        parts[i].state = -1;
    }
    if ((rc = answer_scan(body, len, &doc, fault)) != 0)
        goto Exit;
    size_t arr = GET(&doc, body, 0, "BatchItemResponse");
    if (!is_a(&doc, arr, QBC_JSON_ARRAY)) {
        rc = QBC_EMALFORMED;
        goto Exit;
    }
    for (size_t i = 0, el = arr + 1; i < doc.tok[arr].len; i++, el = doc.tok[el].next) {
        char bid[24], *end;
        if (take_string(&doc, body, GET(&doc, body, el, "bId"), bid, sizeof(bid)) != 0 || bid[0] == '\0')
            continue;
        unsigned long k = strtoul(bid, &end, 10);
        if (*end != '\0' || k >= n_parts || parts[k].state != -1)
            continue;
        qbc_rec_part_t *p = &parts[k];
        size_t qr;
        if (fault_from_tape(&doc, body, el, &p->fault)) {
            p->state = 1;
        } else if (is_a(&doc, qr = GET(&doc, body, el, "QueryResponse"), QBC_JSON_OBJECT) &&
                   items_from_array(&doc, body, qbc_json_get(&doc, body, qr, entities[k], strlen(entities[k])),
                                    &p->items, &p->n) == 0) {
            p->state = 0;
        }
    }
Exit:
    qbc_json_dispose(&doc);
    return rc;
}

/* ---------------------------------------------------------------- classification */

qbc_rec_class_t qbc_rec_classify(int curl_ok, long status, const qbc_fault_t *f)
{
    if (!curl_ok || status == 0)
        return REC_RES_RETRY;
    int has = f != NULL && f->present;
    if (status == 429 || (has && (strcmp(f->code, "3001") == 0 || strstr(f->message, "ThrottleExceeded") != NULL)))
        return REC_RES_THROTTLED;
    if (status == 401 || (has && (strcmp(f->code, "3200") == 0 || strstr(f->message, "AuthenticationFailed") != NULL)))
        return REC_RES_AUTH;
    if (has && strcmp(f->code, "610") == 0)
        return REC_RES_GONE;
    if (status >= 500)
        return REC_RES_RETRY;
    if (has && (strcmp(f->type, "SystemFault") == 0 || strcmp(f->code, "10000") == 0))
        return REC_RES_RETRY;
    if (status >= 400 || has)
        return REC_RES_CLIENT;
    if (status >= 200 && status < 300)
        return REC_RES_OK;
    return REC_RES_CLIENT; /* 1xx/3xx: not something we follow */
}

void qbc_rec_describe(long status, const qbc_fault_t *f, const char *curl_err, char *buf, size_t size)
{
    if (curl_err != NULL && curl_err[0] != '\0') {
        snprintf(buf, size, "transport: %s", curl_err);
    } else if (f != NULL && f->present) {
        snprintf(buf, size, "HTTP %ld fault %s (%s): %s%s%s", status, f->code[0] ? f->code : "?",
                 f->type[0] ? f->type : "?", f->message, f->detail[0] ? ": " : "", f->detail);
    } else {
        snprintf(buf, size, "HTTP %ld", status);
    }
}

/* ---------------------------------------------------------------- CDC (qbo-facts §2) */

void qbc_rec_cdc_groups_free(qbc_rec_cdc_group_t *g, size_t n)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        qbc_rec_items_free(g[i].items, g[i].n);
    free(g);
}

int qbc_rec_parse_cdc(const char *body, size_t len, qbc_rec_cdc_group_t **groups, size_t *n_groups, int64_t *time_ns,
                      size_t *total, qbc_fault_t *fault)
{
    qbc_json_doc_t doc;
    qbc_rec_cdc_group_t *out = NULL;
    size_t cap = 0;
    int rc;

    *groups = NULL;
    *n_groups = 0;
    *time_ns = 0;
    *total = 0;
    if ((rc = answer_scan(body, len, &doc, fault)) != 0)
        goto Exit;
    size_t cdc = GET(&doc, body, 0, "CDCResponse"), tm = GET(&doc, body, 0, "time"), qrs = QBC_JSON_NONE;
    char ts[64];
    if (is_a(&doc, cdc, QBC_JSON_ARRAY) && doc.tok[cdc].len > 0)
        qrs = GET(&doc, body, cdc + 1, "QueryResponse");
    if (!is_a(&doc, qrs, QBC_JSON_ARRAY) || (tm != QBC_JSON_NONE && (take_string(&doc, body, tm, ts, sizeof(ts)) != 0 ||
                                                                     qbc_time_parse(ts, strlen(ts), time_ns) != 0))) {
        rc = QBC_EMALFORMED;
        goto Exit;
    }
    /* one element per entity; an entity without changes is {} (or absent) */
    for (size_t i = 0, el = qrs + 1; i < doc.tok[qrs].len && rc == 0; i++, el = doc.tok[el].next) {
        if (!is_a(&doc, el, QBC_JSON_OBJECT)) {
            rc = QBC_EMALFORMED;
            break;
        }
        for (size_t k = el + 1; k < doc.tok[el].next; k = doc.tok[k + 1].next) {
            if (!is_a(&doc, k + 1, QBC_JSON_ARRAY))
                continue; /* startPosition, maxResults, totalCount */
            char key[QBC_ENTITY_MAX];
            if (take_string(&doc, body, k, key, sizeof(key)) != 0 || !qbc_rec_entity_ok(key)) {
                rc = QBC_EMALFORMED;
                break;
            }
            if (*n_groups == cap) {
                cap = cap ? cap * 2 : 8;
                out = qbc_realloc(out, cap * sizeof(*out));
            }
            qbc_rec_cdc_group_t *g = &out[*n_groups];
            memset(g, 0, sizeof(*g));
            snprintf(g->entity, sizeof(g->entity), "%s", key);
            if (items_from_array(&doc, body, k + 1, &g->items, &g->n) != 0) {
                rc = QBC_EMALFORMED;
                break;
            }
            (*n_groups)++;
            *total += g->n;
        }
    }
    if (rc != 0) {
        qbc_rec_cdc_groups_free(out, *n_groups);
        *n_groups = 0;
        *total = 0;
        goto Exit;
    }
    *groups = out;
Exit:
    qbc_json_dispose(&doc);
    return rc;
}

qbc_rec_cdc_step_t qbc_rec_cdc_decide(size_t n_entities, size_t total, const qbc_rec_cdc_group_t *groups,
                                      size_t n_groups, int64_t since_ns, int64_t *next_since)
{
    *next_since = since_ns;
    if (total < REC_CDC_CAP)
        return REC_CDC_COMPLETE;
    if (n_entities > 1)
        return REC_CDC_SPLIT;
    /*
     * One entity, at the cap: the answer is its oldest changes. Actives come in
     * LastUpdatedTime order, then deletes in theirs; the last object's time is where the
     * next page starts (inclusive: what shares that time comes again and is deduped).
     */
    int64_t t = 0;
    for (size_t g = n_groups; g > 0 && t == 0; g--)
        if (groups[g - 1].n > 0)
            t = groups[g - 1].items[groups[g - 1].n - 1].updated_ns;
    if (t <= since_ns) { /* a thousand changes in one second (or no times): no later time to go on from */
        *next_since = since_ns - since_ns % 1000000000;
        return REC_CDC_STUCK;
    }
    *next_since = t;
    return REC_CDC_ADVANCE;
}

int64_t qbc_rec_cdc_since(int64_t watermark_ns, int64_t connected_ns, int64_t now_ns, int64_t lookback_ns, int *too_old)
{
    int64_t from = watermark_ns > 0 ? watermark_ns : connected_ns, oldest = now_ns - lookback_ns;
    int64_t margin = lookback_ns / 10 < 60 * 1000000000LL ? lookback_ns / 10 : 60 * 1000000000LL;
    *too_old = from > 0 && from < oldest + margin;
    if (from <= 0 || from < oldest)
        from = oldest;
    return from;
}

int qbc_rec_fault_too_old(const qbc_fault_t *f)
{
    return f != NULL && f->present &&
           (strstr(f->detail, "older than") != NULL || strstr(f->message, "older than") != NULL);
}
