/*
 * response.c — parsing QBO answers: QueryResponse.<Entity>[] (qbo-facts §3), entity reads
 * (§9), the two Fault shapes (§6: Fault/Error and the gateway's fault/error) and the XML
 * IntuitResponse throttle body (§5). HTTP 200 may still carry a Fault.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "rec_internal.h"

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

static void copy_json_str(char *dst, size_t size, json_t *v)
{
    if (json_is_string(v))
        copy_str(dst, size, json_string_value(v), json_string_length(v));
    else if (json_is_integer(v))
        snprintf(dst, size, "%lld", (long long)json_integer_value(v));
}

/* ---------------------------------------------------------------- faults */

static int fault_from_json(json_t *root, qbc_fault_t *out)
{
    json_t *f = json_object_get(root, "Fault"), *errs;
    const char *k_msg = "Message", *k_detail = "Detail";
    if (json_is_object(f)) {
        errs = json_object_get(f, "Error");
    } else if (json_is_object(f = json_object_get(root, "fault"))) {
        errs = json_object_get(f, "error");
        k_msg = "message";
        k_detail = "detail";
    } else {
        return 0;
    }
    memset(out, 0, sizeof(*out));
    out->present = 1;
    copy_json_str(out->type, sizeof(out->type), json_object_get(f, "type"));
    json_t *e = json_is_array(errs) ? json_array_get(errs, 0) : json_is_object(errs) ? errs : NULL;
    if (e != NULL) {
        /* several errors: prefer a 610 so deletes are recognised whatever the order */
        size_t i;
        json_t *x;
        if (json_is_array(errs))
            json_array_foreach(errs, i, x) {
                char c[16] = "";
                copy_json_str(c, sizeof(c), json_object_get(x, "code"));
                if (strcmp(c, "610") == 0)
                    e = x;
            }
        copy_json_str(out->code, sizeof(out->code), json_object_get(e, "code"));
        copy_json_str(out->message, sizeof(out->message), json_object_get(e, k_msg));
        copy_json_str(out->detail, sizeof(out->detail), json_object_get(e, k_detail));
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

int qbc_rec_parse_fault(const char *body, size_t len, qbc_fault_t *out)
{
    memset(out, 0, sizeof(*out));
    if (body == NULL || len == 0)
        return 0;
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
        i++;
    if (i < len && body[i] == '<')
        return fault_from_xml(body, len, out);
    json_t *root = json_loadb(body, len, 0, NULL);
    int found = json_is_object(root) ? fault_from_json(root, out) : 0;
    json_decref(root);
    return found;
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

static int item_from_json(json_t *o, qbc_rec_item_t *it)
{
    memset(it, 0, sizeof(*it));
    json_t *id = json_object_get(o, "Id");
    if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) >= sizeof(it->id))
        return QBC_EMALFORMED;
    memcpy(it->id, json_string_value(id), json_string_length(id) + 1);
    json_t *st = json_object_get(o, "status");
    if (json_is_string(st) && strcmp(json_string_value(st), "Deleted") == 0)
        it->deleted = 1;
    json_t *tok = json_object_get(o, "SyncToken");
    if (json_is_string(tok) && json_string_length(tok) < sizeof(it->sync_token))
        memcpy(it->sync_token, json_string_value(tok), json_string_length(tok) + 1);
    else if (!it->deleted)
        return QBC_EMALFORMED;
    json_t *lu = json_object_get(json_object_get(o, "MetaData"), "LastUpdatedTime");
    if (json_is_string(lu)) {
        if (qbc_time_parse(json_string_value(lu), json_string_length(lu), &it->updated_ns) != 0)
            return QBC_EMALFORMED;
    } else if (!it->deleted) {
        return QBC_EMALFORMED;
    }
    if (!it->deleted) {
        it->data = json_dumps(o, JSON_COMPACT);
        if (it->data == NULL)
            qbc_fatal("out of memory");
        it->data_len = strlen(it->data);
    }
    return 0;
}

static json_t *load_or_fault(const char *body, size_t len, qbc_fault_t *fault, int *rc)
{
    memset(fault, 0, sizeof(*fault));
    *rc = 0;
    if (body == NULL || len == 0) {
        *rc = QBC_EMALFORMED;
        return NULL;
    }
    if (qbc_rec_parse_fault(body, len, fault)) {
        *rc = QBC_ENOTFOUND;
        return NULL;
    }
    json_t *root = json_loadb(body, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        *rc = QBC_EMALFORMED;
        return NULL;
    }
    return root;
}

int qbc_rec_parse_query(const char *body, size_t len, const char *entity, qbc_rec_item_t **items, size_t *n,
                        qbc_fault_t *fault)
{
    int rc;
    *items = NULL;
    *n = 0;
    json_t *root = load_or_fault(body, len, fault, &rc);
    if (root == NULL)
        return rc;
    json_t *qr = json_object_get(root, "QueryResponse");
    if (!json_is_object(qr)) {
        json_decref(root);
        return QBC_EMALFORMED;
    }
    json_t *arr = json_object_get(qr, entity);
    if (arr == NULL) { /* past the end / nothing matched: {} */
        json_decref(root);
        return 0;
    }
    if (!json_is_array(arr)) {
        json_decref(root);
        return QBC_EMALFORMED;
    }
    size_t cnt = json_array_size(arr);
    qbc_rec_item_t *out = qbc_calloc(cnt ? cnt : 1, sizeof(*out));
    for (size_t i = 0; i < cnt; i++) {
        json_t *o = json_array_get(arr, i);
        if (!json_is_object(o) || (rc = item_from_json(o, &out[i])) != 0) {
            qbc_rec_items_free(out, i + 1);
            json_decref(root);
            return QBC_EMALFORMED;
        }
    }
    json_decref(root);
    *items = out;
    *n = cnt;
    return 0;
}

int qbc_rec_parse_read(const char *body, size_t len, const char *entity, qbc_rec_item_t *item, qbc_fault_t *fault)
{
    int rc;
    memset(item, 0, sizeof(*item));
    json_t *root = load_or_fault(body, len, fault, &rc);
    if (root == NULL)
        return rc;
    json_t *o = json_object_get(root, entity);
    rc = json_is_object(o) ? item_from_json(o, item) : QBC_EMALFORMED;
    if (rc != 0) {
        free(item->data);
        memset(item, 0, sizeof(*item));
    }
    json_decref(root);
    return rc;
}

static int items_from_array(json_t *arr, qbc_rec_item_t **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return QBC_EMALFORMED;
    size_t cnt = json_array_size(arr);
    qbc_rec_item_t *out = qbc_calloc(cnt ? cnt : 1, sizeof(*out));
    for (size_t i = 0; i < cnt; i++) {
        json_t *o = json_array_get(arr, i);
        if (!json_is_object(o) || item_from_json(o, &out[i]) != 0) {
            qbc_rec_items_free(out, i + 1);
            return QBC_EMALFORMED;
        }
    }
    *items = out;
    *n = cnt;
    return 0;
}

int qbc_rec_parse_batch(const char *body, size_t len, const char *const *entities, size_t n_parts,
                        qbc_rec_part_t *parts, qbc_fault_t *fault)
{
    int rc;
    for (size_t i = 0; i < n_parts; i++) {
        memset(&parts[i], 0, sizeof(parts[i]));
        parts[i].state = -1;
    }
    json_t *root = load_or_fault(body, len, fault, &rc);
    if (root == NULL)
        return rc;
    json_t *arr = json_object_get(root, "BatchItemResponse"), *el;
    if (!json_is_array(arr)) {
        json_decref(root);
        return QBC_EMALFORMED;
    }
    size_t i;
    json_array_foreach(arr, i, el) {
        const char *bid = json_string_value(json_object_get(el, "bId"));
        char *end;
        unsigned long k = bid ? strtoul(bid, &end, 10) : 0;
        if (bid == NULL || *bid == '\0' || *end != '\0' || k >= n_parts || parts[k].state != -1)
            continue;
        qbc_rec_part_t *p = &parts[k];
        if (fault_from_json(el, &p->fault)) {
            p->state = 1;
        } else if (json_is_object(json_object_get(el, "QueryResponse")) &&
                   items_from_array(json_object_get(json_object_get(el, "QueryResponse"), entities[k]), &p->items,
                                    &p->n) == 0) {
            p->state = 0;
        }
    }
    json_decref(root);
    return 0;
}

/* ---------------------------------------------------------------- classification */

qbc_rec_class_t qbc_rec_classify(int curl_ok, long status, const qbc_fault_t *f)
{
    if (!curl_ok || status == 0)
        return REC_RES_RETRY;
    int has = f != NULL && f->present;
    if (status == 429 || (has && (strcmp(f->code, "3001") == 0 || strstr(f->message, "ThrottleExceeded") != NULL)))
        return REC_RES_THROTTLED;
    if (status == 401 ||
        (has && (strcmp(f->code, "3200") == 0 || strstr(f->message, "AuthenticationFailed") != NULL)))
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
    int rc;
    *groups = NULL;
    *n_groups = 0;
    *time_ns = 0;
    *total = 0;
    json_t *root = load_or_fault(body, len, fault, &rc);
    if (root == NULL)
        return rc;
    json_t *cdc = json_object_get(root, "CDCResponse"), *tm = json_object_get(root, "time");
    json_t *qrs = json_object_get(json_array_get(cdc, 0), "QueryResponse");
    if (!json_is_array(cdc) || !json_is_array(qrs) ||
        (tm != NULL &&
         (!json_is_string(tm) || qbc_time_parse(json_string_value(tm), json_string_length(tm), time_ns) != 0))) {
        json_decref(root);
        return QBC_EMALFORMED;
    }
    /* one element per entity; an entity without changes is {} (or absent) */
    size_t cap = 0, i;
    json_t *el;
    qbc_rec_cdc_group_t *out = NULL;
    rc = 0;
    json_array_foreach(qrs, i, el)
    {
        if (!json_is_object(el)) {
            rc = QBC_EMALFORMED;
            break;
        }
        const char *key;
        json_t *val;
        json_object_foreach(el, key, val)
        {
            if (!json_is_array(val))
                continue; /* startPosition, maxResults, totalCount */
            if (!qbc_rec_entity_ok(key)) {
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
            if (items_from_array(val, &g->items, &g->n) != 0) {
                rc = QBC_EMALFORMED;
                break;
            }
            (*n_groups)++;
            *total += g->n;
        }
        if (rc != 0)
            break;
    }
    json_decref(root);
    if (rc != 0) {
        qbc_rec_cdc_groups_free(out, *n_groups);
        *n_groups = 0;
        *total = 0;
        return rc;
    }
    *groups = out;
    return 0;
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
