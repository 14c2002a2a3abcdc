/*
 * payload_reference.c — the jansson-based webhook parser that ingress/payload.c used
 * before its own JSON scanner, kept verbatim (functions renamed qbc_ref_*) as the
 * oracle for test_payload_diff.c and for bench/payload_parse.c. Compiled into those
 * two programs only; never into the service.
 *
 * Original header of ingress/payload.c follows.
 *
 * payload.c — both QuickBooks Online webhook formats into qbc_event_t (qbo-facts §1.1, §1.2).
 *
 *   classic      {"eventNotifications":[{"realmId":"..","dataChangeEvent":{"entities":[
 *                   {"name":"Customer","id":"1","operation":"Create","lastUpdated":"..",
 *                    "deletedId":".."}]}}]}
 *   CloudEvents  [{"specversion":"1.0","id":"<event id>","type":"qbo.customer.created.v1",
 *                  "time":"..","intuitaccountid":"<realm>","intuitentityid":"<id>",
 *                  "data":{"deletedid":".."}}]
 *
 * Assumptions, and why:
 *   - A body is judged event by event. One unusable event must not cost the others:
 *     Intuit does not resend a webhook we answered 200, so what we drop here is lost
 *     until the next CDC poll. The caller keeps the raw body either way.
 *   - Values are copied into fixed-size fields. Anything that does not fit rejects its
 *     event; a truncated id would silently name a different record.
 *   - Every sample Intuit publishes uses JSON strings; integers are accepted for realm
 *     and ids (and stringified) because a re-serialising proxy may produce them. Nothing
 *     else is coerced.
 *   - `data` is not relied upon (its content varies by entity and operation); only the
 *     merge's deleted id is read from it, under any spelling of "deletedid".
 *   - Strings that end up in LMDB keys, URLs and logs (realm, ids, event id) may not
 *     contain control characters.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "payload_reference.h"

/* ======================= names and operations ====================== */

/*
 * QBO's canonical entity names: the webhook table (qbo-facts §1.6), the CloudEvents
 * additions (CompanyCurrency, ChangeOrder) and the rest of the accounting API's
 * entities, so that a lowercased CloudEvents name maps back to the spelling the API
 * paths and CDC responses use.
 */
static const char *const entity_names[] = {
    "Account",
    "Attachable",
    "Bill",
    "BillPayment",
    "Budget",
    "ChangeOrder",
    "Class",
    "CompanyCurrency",
    "CompanyInfo",
    "CreditCardPayment",
    "CreditMemo",
    "Currency",
    "Customer",
    "CustomerType",
    "Department",
    "Deposit",
    "Employee",
    "Entitlements",
    "Estimate",
    "ExchangeRate",
    "Invoice",
    "Item",
    "JournalCode",
    "JournalEntry",
    "Payment",
    "PaymentMethod",
    "Preferences",
    "Purchase",
    "PurchaseOrder",
    "RecurringTransaction",
    "RefundReceipt",
    "ReimburseCharge",
    "SalesReceipt",
    "TaxAgency",
    "TaxClassification",
    "TaxCode",
    "TaxPayment",
    "TaxRate",
    "TaxService",
    "Term",
    "TimeActivity",
    "Transfer",
    "Vendor",
    "VendorCredit",
};

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static char to_upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* ASCII-only, so the result does not depend on the process locale. */
static int equals_icase(const char *a, size_t a_len, const char *b)
{
    size_t i;
    for (i = 0; i < a_len; i++) {
        char x = a[i], y = b[i];
        if (y == '\0')
            return 0;
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return 0;
    }
    return b[a_len] == '\0';
}

int qbc_ref_entity_canonical(const char *name, size_t len, char out[QBC_ENTITY_MAX])
{
    size_t i;

    out[0] = '\0';
    if (name == NULL || len == 0 || len >= QBC_ENTITY_MAX)
        return QBC_EMALFORMED;
    for (i = 0; i < len; i++)
        if (!is_alnum(name[i]))
            return QBC_EMALFORMED;
    for (i = 0; i < sizeof(entity_names) / sizeof(entity_names[0]); i++) {
        if (equals_icase(name, len, entity_names[i])) {
            memcpy(out, entity_names[i], strlen(entity_names[i]) + 1);
            return 0;
        }
    }
    /* an entity Intuit added after this table was written: keep it, spelled as sent */
    memcpy(out, name, len);
    out[len] = '\0';
    out[0] = to_upper(out[0]);
    return 0;
}

qbc_op_t qbc_ref_op_parse(const char *word, size_t len)
{
    /* classic spells operations "Create"; CloudEvents "created"; void is seen as both "void" and "voided" */
    static const struct {
        const char *word;
        qbc_op_t op;
    } ops[] = {
        {"create", QBC_OP_CREATE}, {"created", QBC_OP_CREATE}, {"update", QBC_OP_UPDATE},   {"updated", QBC_OP_UPDATE},
        {"delete", QBC_OP_DELETE}, {"deleted", QBC_OP_DELETE}, {"merge", QBC_OP_MERGE},     {"merged", QBC_OP_MERGE},
        {"void", QBC_OP_VOID},     {"voided", QBC_OP_VOID},    {"emailed", QBC_OP_EMAILED},
    };
    size_t i;

    if (word == NULL)
        return QBC_OP_UNKNOWN;
    for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (equals_icase(word, len, ops[i].word))
            return ops[i].op;
    return QBC_OP_UNKNOWN;
}

/* ============================ parse state ============================ */

struct st_parse_t {
    qbc_payload_t *out;
    size_t cap;    /* allocated slots in out->events */
    int malformed; /* some problem was found: the body as a whole answers QBC_EMALFORMED */
};

/* Records a problem; only the first one is kept as out->error. */
__attribute__((format(printf, 2, 3))) static void problem(struct st_parse_t *ps, const char *fmt, ...)
{
    va_list ap;

    ps->malformed = 1;
    if (ps->out->error[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(ps->out->error, sizeof(ps->out->error), fmt, ap);
    va_end(ap);
}

/* The error text reaches logs and the quarantine; the client's bytes in it are made printable. */
static void sanitize_error(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

static int push_event(struct st_parse_t *ps, const qbc_event_t *ev)
{
    qbc_payload_t *out = ps->out;

    if (out->n_events == ps->cap) {
        /* the count is driven by the client, so allocation failure is an answer, not an abort */
        size_t cap = ps->cap == 0 ? 8 : ps->cap * 2;
        qbc_event_t *events = realloc(out->events, cap * sizeof(*events));
        if (events == NULL)
            return -ENOMEM;
        out->events = events;
        ps->cap = cap;
    }
    out->events[out->n_events++] = *ev;
    return 0;
}

/* ============================ field reading ========================== */

enum { FIELD_OK = 0, FIELD_ABSENT = 1, FIELD_BAD = -1 };

/*
 * copies a string field (or, with allow_int, a non-negative JSON integer written in
 * decimal) into dst. A missing key and JSON null are both "absent".
 * @return FIELD_OK, FIELD_ABSENT, or FIELD_BAD with *why set
 */
static int take_text(json_t *v, int allow_int, char *dst, size_t size, const char **why)
{
    char num[32];
    const char *s;
    size_t n, i;

    dst[0] = '\0';
    if (v == NULL || json_is_null(v))
        return FIELD_ABSENT;
    if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);
    } else if (allow_int && json_is_integer(v)) {
        json_int_t iv = json_integer_value(v);
        if (iv < 0) {
            *why = "is a negative number";
            return FIELD_BAD;
        }
        n = (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, iv);
        s = num;
    } else {
        *why = allow_int ? "is neither a string nor an integer" : "is not a string";
        return FIELD_BAD;
    }
    if (n >= size) {
        *why = "is too long";
        return FIELD_BAD;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            *why = "contains control characters";
            return FIELD_BAD;
        }
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return FIELD_OK;
}

/* Like take_text, but the field must be present and non-empty. */
static int take_required(json_t *v, int allow_int, char *dst, size_t size, const char **why)
{
    int rc = take_text(v, allow_int, dst, size, why);
    if (rc == FIELD_ABSENT || (rc == FIELD_OK && dst[0] == '\0')) {
        *why = "is missing or empty";
        return FIELD_BAD;
    }
    return rc;
}

/* A timestamp may be absent (0); one that is present must parse, or its event is rejected. */
static int take_time(json_t *v, int64_t *out_ns, const char **why)
{
    *out_ns = 0;
    if (v == NULL || json_is_null(v))
        return FIELD_ABSENT;
    if (!json_is_string(v)) {
        *why = "is not a string";
        return FIELD_BAD;
    }
    if (qbc_time_parse(json_string_value(v), json_string_length(v), out_ns) != 0) {
        *out_ns = 0;
        *why = "is not an ISO-8601 date-time with an offset";
        return FIELD_BAD;
    }
    return FIELD_OK;
}

/* Exact key first, then any spelling of it ("deletedId", "deletedid", "deletedID"). */
static json_t *get_icase(json_t *obj, const char *key)
{
    const char *k;
    json_t *v, *exact;

    if (!json_is_object(obj))
        return NULL;
    if ((exact = json_object_get(obj, key)) != NULL)
        return exact;
    json_object_foreach(obj, k, v)
    {
        if (strcasecmp(k, key) == 0)
            return v;
    }
    return NULL;
}

/* =============================== classic ============================= */

static void parse_classic_entity(struct st_parse_t *ps, json_t *ent, const char *realm, size_t ni, size_t ei)
{
    qbc_event_t ev;
    const char *why = "", *field;
    json_t *v;

    memset(&ev, 0, sizeof(ev));
    if (!json_is_object(ent)) {
        ps->out->n_rejected++;
        problem(ps, "eventNotifications[%zu].dataChangeEvent.entities[%zu] is not an object", ni, ei);
        return;
    }
    memcpy(ev.realm, realm, strlen(realm) + 1);

    field = "name";
    v = json_object_get(ent, field);
    if (!json_is_string(v)) {
        why = "is missing or not a string";
        goto Reject;
    }
    if (qbc_ref_entity_canonical(json_string_value(v), json_string_length(v), ev.entity) != 0) {
        why = "is not an entity name";
        goto Reject;
    }
    field = "id";
    if (take_required(json_object_get(ent, field), 1, ev.id, sizeof(ev.id), &why) != FIELD_OK)
        goto Reject;
    field = "operation";
    v = json_object_get(ent, field);
    if (!json_is_string(v)) {
        why = "is missing or not a string";
        goto Reject;
    }
    if ((ev.op = qbc_ref_op_parse(json_string_value(v), json_string_length(v))) == QBC_OP_UNKNOWN) {
        why = "is not a known operation";
        goto Reject;
    }
    field = "lastUpdated";
    if (take_time(json_object_get(ent, field), &ev.updated_ns, &why) == FIELD_BAD)
        goto Reject;
    field = "deletedId";
    if (take_text(get_icase(ent, "deletedid"), 1, ev.deleted_id, sizeof(ev.deleted_id), &why) == FIELD_BAD)
        goto Reject;

    if (push_event(ps, &ev) != 0) {
        ps->out->n_rejected++;
        problem(ps, "out of memory");
    }
    return;

Reject:
    ps->out->n_rejected++;
    problem(ps, "eventNotifications[%zu].dataChangeEvent.entities[%zu].%s %s", ni, ei, field, why);
}

static void parse_classic(struct st_parse_t *ps, json_t *notes)
{
    size_t ni, ei;
    json_t *note, *ent;

    ps->out->format = QBC_FORMAT_CLASSIC;
    if (!json_is_array(notes)) {
        problem(ps, "eventNotifications is not an array");
        return;
    }
    json_array_foreach(notes, ni, note)
    {
        char realm[QBC_REALM_MAX];
        const char *why = "";
        json_t *entities;

        if (!json_is_object(note)) {
            ps->out->n_rejected++;
            problem(ps, "eventNotifications[%zu] is not an object", ni);
            continue;
        }
        entities = json_object_get(json_object_get(note, "dataChangeEvent"), "entities");
        if (!json_is_array(entities)) {
            ps->out->n_rejected++;
            problem(ps, "eventNotifications[%zu].dataChangeEvent.entities is missing or not an array", ni);
            continue;
        }
        if (take_required(json_object_get(note, "realmId"), 1, realm, sizeof(realm), &why) != FIELD_OK) {
            /* without the company no entity here can be fetched: all of them are lost */
            size_t n = json_array_size(entities);
            ps->out->n_rejected += n != 0 ? n : 1;
            problem(ps, "eventNotifications[%zu].realmId %s", ni, why);
            continue;
        }
        json_array_foreach(entities, ei, ent)
        {
            parse_classic_entity(ps, ent, realm, ni, ei);
        }
    }
}

/* ============================= CloudEvents =========================== */

/*
 * splits "qbo.<entity>.<operation>.v<N>" into a canonical entity and an operation.
 * Any version is accepted: only the envelope is used, and dropping events of a newer
 * version would lose changes that the re-fetch would have picked up.
 */
static int parse_type(const char *s, size_t len, qbc_event_t *ev, const char **why)
{
    const char *part[4];
    size_t plen[4], n = 0, i, start = 0;

    for (i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (n == 4) {
                *why = "has more than four dot-separated parts";
                return FIELD_BAD;
            }
            part[n] = s + start;
            plen[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    if (n != 4 || !equals_icase(part[0], plen[0], "qbo")) {
        *why = "is not qbo.<entity>.<operation>.v<N>";
        return FIELD_BAD;
    }
    if (plen[3] < 2 || (part[3][0] != 'v' && part[3][0] != 'V')) {
        *why = "does not end in a version (.v1)";
        return FIELD_BAD;
    }
    for (i = 1; i < plen[3]; i++) {
        if (part[3][i] < '0' || part[3][i] > '9') {
            *why = "does not end in a version (.v1)";
            return FIELD_BAD;
        }
    }
    if (qbc_ref_entity_canonical(part[1], plen[1], ev->entity) != 0) {
        *why = "names no valid entity";
        return FIELD_BAD;
    }
    if ((ev->op = qbc_ref_op_parse(part[2], plen[2])) == QBC_OP_UNKNOWN) {
        *why = "names no known operation";
        return FIELD_BAD;
    }
    return FIELD_OK;
}

static void parse_cloudevent(struct st_parse_t *ps, json_t *el, size_t i)
{
    qbc_event_t ev;
    const char *why = "", *field;
    json_t *v;

    memset(&ev, 0, sizeof(ev));
    if (!json_is_object(el)) {
        ps->out->n_rejected++;
        problem(ps, "[%zu] is not an object", i);
        return;
    }
    field = "specversion";
    if (!json_is_string(json_object_get(el, field))) {
        why = "is missing or not a string";
        goto Reject;
    }
    field = "type";
    v = json_object_get(el, field);
    if (!json_is_string(v)) {
        why = "is missing or not a string";
        goto Reject;
    }
    if (parse_type(json_string_value(v), json_string_length(v), &ev, &why) != FIELD_OK)
        goto Reject;
    field = "intuitaccountid";
    if (take_required(json_object_get(el, field), 1, ev.realm, sizeof(ev.realm), &why) != FIELD_OK)
        goto Reject;
    field = "intuitentityid";
    if (take_required(json_object_get(el, field), 1, ev.id, sizeof(ev.id), &why) != FIELD_OK)
        goto Reject;
    /* the event id only serves retry dedupe; an event without one is still a change */
    field = "id";
    if (take_text(json_object_get(el, field), 1, ev.event_id, sizeof(ev.event_id), &why) == FIELD_BAD)
        goto Reject;
    field = "time";
    if (take_time(json_object_get(el, field), &ev.updated_ns, &why) == FIELD_BAD)
        goto Reject;
    field = "data.deletedid";
    if (take_text(get_icase(json_object_get(el, "data"), "deletedid"), 1, ev.deleted_id, sizeof(ev.deleted_id), &why) ==
        FIELD_BAD)
        goto Reject;

    if (push_event(ps, &ev) != 0) {
        ps->out->n_rejected++;
        problem(ps, "out of memory");
    }
    return;

Reject:
    ps->out->n_rejected++;
    problem(ps, "[%zu].%s %s", i, field, why);
}

static void parse_cloudevents(struct st_parse_t *ps, json_t *arr)
{
    size_t i;
    json_t *el;

    /* the shape is CloudEvents only if some element says so; [] and [1,2] are neither format */
    json_array_foreach(arr, i, el)
    {
        if (json_object_get(el, "specversion") != NULL)
            break;
    }
    if (i == json_array_size(arr)) {
        problem(ps, "%s",
                json_array_size(arr) == 0 ? "empty JSON array" : "JSON array without CloudEvents (no specversion)");
        return;
    }
    ps->out->format = QBC_FORMAT_CLOUDEVENTS;
    json_array_foreach(arr, i, el)
    {
        parse_cloudevent(ps, el, i);
    }
}

/* ================================ entry ============================== */

int qbc_ref_payload_parse(const char *body, size_t len, qbc_payload_t *out)
{
    struct st_parse_t ps = {out, 0, 0};
    json_error_t jerr;
    json_t *root, *notes;

    memset(out, 0, sizeof(*out));
    if (body == NULL || len == 0) {
        problem(&ps, "empty body");
        return QBC_EMALFORMED;
    }
    /* no JSON_ALLOW_NUL: a "\u0000" could never be stored in our NUL-terminated fields anyway */
    if ((root = json_loadb(body, len, 0, &jerr)) == NULL) {
        problem(&ps, "not JSON: %s (at byte %d)", jerr.text, jerr.position);
        goto Exit;
    }
    if (json_is_object(root)) {
        if ((notes = json_object_get(root, "eventNotifications")) != NULL)
            parse_classic(&ps, notes);
        else
            problem(&ps, "JSON object without eventNotifications");
    } else if (json_is_array(root)) {
        parse_cloudevents(&ps, root);
    } else {
        problem(&ps, "neither a JSON object nor an array");
    }
    json_decref(root);

Exit:
    sanitize_error(out->error);
    return ps.malformed ? QBC_EMALFORMED : 0;
}

void qbc_ref_payload_clear(qbc_payload_t *p)
{
    if (p == NULL)
        return;
    free(p->events);
    memset(p, 0, sizeof(*p));
}
