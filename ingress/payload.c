/*
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
 *   - The body is read with json_scan.c, not a DOM: it accepts exactly what jansson's
 *     json_loadb() accepted, and the lookups below keep jansson's object semantics (a
 *     repeated key means its last value; null is as good as absent where a value is
 *     optional). tests/unit/ingress/test_payload_diff.c holds the jansson-based version
 *     this replaced and compares the two.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ingress.h"
#include "json_scan.h"

/* ======================= names and operations ====================== */

/*
 * QBO's canonical entity names: the webhook table (qbo-facts §1.6), the CloudEvents
 * additions (CompanyCurrency, ChangeOrder) and the rest of the accounting API's
 * entities, so that a lowercased CloudEvents name maps back to the spelling the API
 * paths and CDC responses use.
 */
/* clang-format off */
#define NAME(s) {s, sizeof(s) - 1}
/* clang-format on */
static const struct {
    const char *name;
    size_t len;
} entity_names[] = {
    NAME("Account"),
    NAME("Attachable"),
    NAME("Bill"),
    NAME("BillPayment"),
    NAME("Budget"),
    NAME("ChangeOrder"),
    NAME("Class"),
    NAME("CompanyCurrency"),
    NAME("CompanyInfo"),
    NAME("CreditCardPayment"),
    NAME("CreditMemo"),
    NAME("Currency"),
    NAME("Customer"),
    NAME("CustomerType"),
    NAME("Department"),
    NAME("Deposit"),
    NAME("Employee"),
    NAME("Entitlements"),
    NAME("Estimate"),
    NAME("ExchangeRate"),
    NAME("Invoice"),
    NAME("Item"),
    NAME("JournalCode"),
    NAME("JournalEntry"),
    NAME("Payment"),
    NAME("PaymentMethod"),
    NAME("Preferences"),
    NAME("Purchase"),
    NAME("PurchaseOrder"),
    NAME("RecurringTransaction"),
    NAME("RefundReceipt"),
    NAME("ReimburseCharge"),
    NAME("SalesReceipt"),
    NAME("TaxAgency"),
    NAME("TaxClassification"),
    NAME("TaxCode"),
    NAME("TaxPayment"),
    NAME("TaxRate"),
    NAME("TaxService"),
    NAME("Term"),
    NAME("TimeActivity"),
    NAME("Transfer"),
    NAME("Vendor"),
    NAME("VendorCredit"),
#undef NAME
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

int qbc_entity_canonical(const char *name, size_t len, char out[QBC_ENTITY_MAX])
{
    size_t i;

    out[0] = '\0';
    if (name == NULL || len == 0 || len >= QBC_ENTITY_MAX)
        return QBC_EMALFORMED;
    for (i = 0; i < len; i++)
        if (!is_alnum(name[i]))
            return QBC_EMALFORMED;
    for (i = 0; i < sizeof(entity_names) / sizeof(entity_names[0]); i++) {
        /* length and first letter rule out most of the table cheaply (names start upper-case) */
        if (entity_names[i].len == len && entity_names[i].name[0] == to_upper(name[0]) &&
            equals_icase(name, len, entity_names[i].name)) {
            memcpy(out, entity_names[i].name, len + 1);
            return 0;
        }
    }
    /* an entity Intuit added after this table was written: keep it, spelled as sent */
    memcpy(out, name, len);
    out[len] = '\0';
    out[0] = to_upper(out[0]);
    return 0;
}

int qbc_entity_known(const char *name, size_t len, char out[QBC_ENTITY_MAX])
{
    out[0] = '\0';
    if (name == NULL || len == 0 || len >= QBC_ENTITY_MAX)
        return QBC_ENOTFOUND;
    for (size_t i = 0; i < sizeof(entity_names) / sizeof(entity_names[0]); i++) {
        if (entity_names[i].len == len && equals_icase(name, len, entity_names[i].name)) {
            memcpy(out, entity_names[i].name, len + 1);
            return 0;
        }
    }
    return QBC_ENOTFOUND;
}

void qbc_entity_known_list(char *out, size_t outsz)
{
    size_t n = 0;
    if (outsz == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(entity_names) / sizeof(entity_names[0]) && n < outsz; i++)
        n += (size_t)snprintf(out + n, outsz - n, "%s%s", i ? ", " : "", entity_names[i].name);
}

int qbc_entity_list_check(const char *list, char *out, size_t outsz, char *err, size_t errsz)
{
    size_t n = 0, len;
    const char *e;
    char known[QBC_ENTITY_MAX], all[1024];

    if (outsz == 0)
        return QBC_EINVAL;
    out[0] = '\0';
    for (const char *p = list != NULL ? list : ""; (p = qbc_list_next(p, &e, &len)) != NULL;) {
        while (len > 0 && (*e == ' ' || *e == '\t'))
            e++, len--;
        while (len > 0 && (e[len - 1] == ' ' || e[len - 1] == '\t'))
            len--;
        if (len == 0)
            continue;
        if (qbc_entity_known(e, len, known) != 0) {
            qbc_entity_known_list(all, sizeof(all));
            snprintf(err, errsz, "unknown entity '%.*s' (known: %s)", (int)(len > 64 ? 64 : len), e, all);
            return QBC_ENOTFOUND;
        }
        if (qbc_list_has(out, known))
            continue; /* named twice: read once */
        if (qbc_list_add(out, outsz, known) != 0) {
            snprintf(err, errsz, "too many entities");
            return QBC_EINVAL;
        }
        n++;
    }
    if (n == 0) {
        snprintf(err, errsz, "no entity named");
        return QBC_EINVAL;
    }
    return 0;
}

qbc_op_t qbc_op_parse(const char *word, size_t len)
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

/* what get() returns for a missing member, as json_object_get() returns NULL */
#define NO_VALUE QBC_JSON_NONE

/* tokens kept on the stack: enough for bodies of about 1 KiB */
#define INLINE_TOKENS 128

struct st_parse_t {
    qbc_payload_t *out;
    size_t cap;    /* allocated slots in out->events */
    int malformed; /* some problem was found: the body as a whole answers QBC_EMALFORMED */
    const char *body;
    const qbc_json_doc_t *doc; /* the body's tape */
    const qbc_json_tok_t *tok; /* doc->tok */
    char *text;                /* where escaped strings are decoded: text_small, or malloc'd */
    size_t text_cap;
    char text_small[256];
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

/* ============================ the tape ============================== */

static int is_type(const struct st_parse_t *ps, size_t v, int type)
{
    return v != NO_VALUE && ps->tok[v].type == type;
}

/*
 * the unescaped text of string token v: in place in the body when it has no escapes
 * (nearly always), else decoded into ps->text, valid until the next call. Not
 * NUL-terminated. @return NULL only when the decoding buffer cannot grow
 */
static const char *text_of(struct st_parse_t *ps, size_t v, size_t *len)
{
    const qbc_json_tok_t *t = &ps->tok[v];

    if (!(t->flags & QBC_JSON_ESCAPED)) {
        *len = t->len;
        return ps->body + t->start;
    }
    if (t->len > ps->text_cap) {
        char *text = malloc(t->len);
        if (text == NULL)
            return NULL;
        if (ps->text != ps->text_small)
            free(ps->text);
        ps->text = text;
        ps->text_cap = t->len;
    }
    *len = qbc_json_unescape(ps->body + t->start, t->len, ps->text);
    return ps->text;
}

/* longest escaped key worth decoding: each byte of an ASCII key takes at most 6 ("\u0041") */
#define KEY_RAW_MAX (6 * 20)

/*
 * the unescaped text of key token k, decoded into buf if need be. @return NULL for an
 * escaped key too long to be any key this file looks up
 */
static const char *key_of(const struct st_parse_t *ps, size_t k, char buf[KEY_RAW_MAX], size_t *len)
{
    const qbc_json_tok_t *t = &ps->tok[k];

    if (!(t->flags & QBC_JSON_ESCAPED)) {
        *len = t->len;
        return ps->body + t->start;
    }
    if (t->len > KEY_RAW_MAX)
        return NULL;
    *len = qbc_json_unescape(ps->body + t->start, t->len, buf);
    return buf;
}

/*
 * json_object_get(): the value of key (an ASCII literal of at most 20 bytes) in object
 * obj; when the key repeats, its last value, as jansson keeps. @return NO_VALUE if obj is
 * no object or has no such key
 */
static size_t get(const struct st_parse_t *ps, size_t obj, const char *key, size_t key_len)
{
    return qbc_json_get(ps->doc, ps->body, obj, key, key_len);
}

#define GET(ps, obj, literal) get((ps), (obj), (literal), sizeof(literal) - 1)

/* a key to look up, with its length */
struct st_key_t {
    const char *s;
    size_t len;
};

/* clang-format off */
#define KEY(literal) {(literal), sizeof(literal) - 1}
/* clang-format on */

/*
 * get() for n keys of one object in one pass over its members (an event object is read
 * for most of its keys): vals[i] is what get(ps, obj, keys[i]) would return.
 */
static void get_each(const struct st_parse_t *ps, size_t obj, const struct st_key_t *keys, size_t n, size_t *vals)
{
    size_t i, k, end;

    for (i = 0; i < n; i++)
        vals[i] = NO_VALUE;
    if (!is_type(ps, obj, QBC_JSON_OBJECT))
        return;
    for (k = obj + 1, end = ps->tok[obj].next; k < end; k = ps->tok[k + 1].next) {
        char buf[KEY_RAW_MAX];
        size_t len;
        const char *s = key_of(ps, k, buf, &len);
        if (s == NULL || len == 0)
            continue;
        for (i = 0; i < n; i++)
            if (keys[i].len == len && keys[i].s[0] == s[0] && memcmp(keys[i].s, s, len) == 0)
                vals[i] = k + 1;
    }
}

/*
 * Exact key first, then any spelling of it ("deletedId", "deletedid", "deletedID"): the
 * spelling that came first in the body (jansson iterates keys in insertion order, and a
 * repeated key keeps its first place but takes its last value).
 */
static size_t get_icase(const struct st_parse_t *ps, size_t obj, const char *key)
{
    size_t key_len = strlen(key), k, end, exact = NO_VALUE, other = NO_VALUE;
    char other_key[KEY_RAW_MAX];

    if (!is_type(ps, obj, QBC_JSON_OBJECT))
        return NO_VALUE;
    for (k = obj + 1, end = ps->tok[obj].next; k < end; k = ps->tok[k + 1].next) {
        char buf[KEY_RAW_MAX];
        size_t n;
        const char *s = key_of(ps, k, buf, &n);
        if (s == NULL || n != key_len || !equals_icase(s, n, key))
            continue;
        if (memcmp(s, key, n) == 0) {
            exact = k + 1;
        } else if (other == NO_VALUE) {
            memcpy(other_key, s, n);
            other = k + 1;
        } else if (memcmp(s, other_key, n) == 0) {
            other = k + 1;
        }
    }
    return exact != NO_VALUE ? exact : other;
}

/* ============================ field reading ========================== */

enum { FIELD_OK = 0, FIELD_ABSENT = 1, FIELD_BAD = -1 };

/*
 * copies a string field (or, with allow_int, a non-negative JSON integer written in
 * decimal) into dst. A missing key and JSON null are both "absent".
 * @return FIELD_OK, FIELD_ABSENT, or FIELD_BAD with *why set
 */
static int take_text(struct st_parse_t *ps, size_t v, int allow_int, char *dst, size_t size, const char **why)
{
    const qbc_json_tok_t *t;
    const char *s;
    size_t n, i;

    dst[0] = '\0';
    if (v == NO_VALUE || (t = &ps->tok[v])->type == QBC_JSON_NULL)
        return FIELD_ABSENT;
    if (t->type == QBC_JSON_STRING) {
        if ((s = text_of(ps, v, &n)) == NULL) {
            *why = "cannot be decoded (out of memory)";
            return FIELD_BAD;
        }
    } else if (allow_int && t->type == QBC_JSON_INTEGER) {
        /* JSON's integer syntax is already the decimal that "%lld" prints, except for "-0" */
        s = ps->body + t->start;
        n = t->len;
        if (t->flags & QBC_JSON_NEGATIVE) {
            if (n != 2 || s[1] != '0') {
                *why = "is a negative number";
                return FIELD_BAD;
            }
            s++;
            n--;
        }
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
static int take_required(struct st_parse_t *ps, size_t v, int allow_int, char *dst, size_t size, const char **why)
{
    int rc = take_text(ps, v, allow_int, dst, size, why);
    if (rc == FIELD_ABSENT || (rc == FIELD_OK && dst[0] == '\0')) {
        *why = "is missing or empty";
        return FIELD_BAD;
    }
    return rc;
}

/* A timestamp may be absent (0); one that is present must parse, or its event is rejected. */
static int take_time(struct st_parse_t *ps, size_t v, int64_t *out_ns, const char **why)
{
    const char *s;
    size_t n;

    *out_ns = 0;
    if (v == NO_VALUE || ps->tok[v].type == QBC_JSON_NULL)
        return FIELD_ABSENT;
    if (ps->tok[v].type != QBC_JSON_STRING) {
        *why = "is not a string";
        return FIELD_BAD;
    }
    if ((s = text_of(ps, v, &n)) == NULL) {
        *why = "cannot be decoded (out of memory)";
        return FIELD_BAD;
    }
    if (qbc_time_parse(s, n, out_ns) != 0) {
        *out_ns = 0;
        *why = "is not an ISO-8601 date-time with an offset";
        return FIELD_BAD;
    }
    return FIELD_OK;
}

/* =============================== classic ============================= */

static void parse_classic_entity(struct st_parse_t *ps, size_t ent, const char *realm, size_t ni, size_t ei)
{
    enum { F_NAME, F_ID, F_OPERATION, F_LAST_UPDATED, F_COUNT };
    static const struct st_key_t keys[F_COUNT] = {KEY("name"), KEY("id"), KEY("operation"), KEY("lastUpdated")};
    qbc_event_t ev;
    const char *why = "", *field, *s;
    size_t f[F_COUNT], v, n;

    memset(&ev, 0, sizeof(ev));
    if (!is_type(ps, ent, QBC_JSON_OBJECT)) {
        ps->out->n_rejected++;
        problem(ps, "eventNotifications[%zu].dataChangeEvent.entities[%zu] is not an object", ni, ei);
        return;
    }
    memcpy(ev.realm, realm, strlen(realm) + 1);
    get_each(ps, ent, keys, F_COUNT, f);

    field = "name";
    v = f[F_NAME];
    if (!is_type(ps, v, QBC_JSON_STRING)) {
        why = "is missing or not a string";
        goto Reject;
    }
    if ((s = text_of(ps, v, &n)) == NULL || qbc_entity_canonical(s, n, ev.entity) != 0) {
        why = "is not an entity name";
        goto Reject;
    }
    field = "id";
    if (take_required(ps, f[F_ID], 1, ev.id, sizeof(ev.id), &why) != FIELD_OK)
        goto Reject;
    field = "operation";
    v = f[F_OPERATION];
    if (!is_type(ps, v, QBC_JSON_STRING)) {
        why = "is missing or not a string";
        goto Reject;
    }
    if ((s = text_of(ps, v, &n)) == NULL || (ev.op = qbc_op_parse(s, n)) == QBC_OP_UNKNOWN) {
        why = "is not a known operation";
        goto Reject;
    }
    field = "lastUpdated";
    if (take_time(ps, f[F_LAST_UPDATED], &ev.updated_ns, &why) == FIELD_BAD)
        goto Reject;
    field = "deletedId";
    if (take_text(ps, get_icase(ps, ent, "deletedid"), 1, ev.deleted_id, sizeof(ev.deleted_id), &why) == FIELD_BAD)
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

static void parse_classic(struct st_parse_t *ps, size_t notes)
{
    size_t ni, ei, note, ent;

    ps->out->format = QBC_FORMAT_CLASSIC;
    if (!is_type(ps, notes, QBC_JSON_ARRAY)) {
        problem(ps, "eventNotifications is not an array");
        return;
    }
    for (ni = 0, note = notes + 1; ni < ps->tok[notes].len; ni++, note = ps->tok[note].next) {
        char realm[QBC_REALM_MAX];
        const char *why = "";
        size_t entities;

        if (!is_type(ps, note, QBC_JSON_OBJECT)) {
            ps->out->n_rejected++;
            problem(ps, "eventNotifications[%zu] is not an object", ni);
            continue;
        }
        entities = GET(ps, GET(ps, note, "dataChangeEvent"), "entities");
        if (!is_type(ps, entities, QBC_JSON_ARRAY)) {
            ps->out->n_rejected++;
            problem(ps, "eventNotifications[%zu].dataChangeEvent.entities is missing or not an array", ni);
            continue;
        }
        if (take_required(ps, GET(ps, note, "realmId"), 1, realm, sizeof(realm), &why) != FIELD_OK) {
            /* without the company no entity here can be fetched: all of them are lost */
            size_t n = ps->tok[entities].len;
            ps->out->n_rejected += n != 0 ? n : 1;
            problem(ps, "eventNotifications[%zu].realmId %s", ni, why);
            continue;
        }
        for (ei = 0, ent = entities + 1; ei < ps->tok[entities].len; ei++, ent = ps->tok[ent].next)
            parse_classic_entity(ps, ent, realm, ni, ei);
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
    if (qbc_entity_canonical(part[1], plen[1], ev->entity) != 0) {
        *why = "names no valid entity";
        return FIELD_BAD;
    }
    if ((ev->op = qbc_op_parse(part[2], plen[2])) == QBC_OP_UNKNOWN) {
        *why = "names no known operation";
        return FIELD_BAD;
    }
    return FIELD_OK;
}

static void parse_cloudevent(struct st_parse_t *ps, size_t el, size_t i)
{
    enum { F_SPECVERSION, F_TYPE, F_ACCOUNT, F_ENTITY, F_ID, F_TIME, F_DATA, F_COUNT };
    static const struct st_key_t keys[F_COUNT] = {
        KEY("specversion"), KEY("type"), KEY("intuitaccountid"), KEY("intuitentityid"), KEY("id"),
        KEY("time"),        KEY("data")};
    qbc_event_t ev;
    const char *why = "", *field, *s;
    size_t f[F_COUNT], v, n;

    memset(&ev, 0, sizeof(ev));
    if (!is_type(ps, el, QBC_JSON_OBJECT)) {
        ps->out->n_rejected++;
        problem(ps, "[%zu] is not an object", i);
        return;
    }
    get_each(ps, el, keys, F_COUNT, f);
    field = "specversion";
    if (!is_type(ps, f[F_SPECVERSION], QBC_JSON_STRING)) {
        why = "is missing or not a string";
        goto Reject;
    }
    field = "type";
    v = f[F_TYPE];
    if (!is_type(ps, v, QBC_JSON_STRING)) {
        why = "is missing or not a string";
        goto Reject;
    }
    if ((s = text_of(ps, v, &n)) == NULL) {
        why = "cannot be decoded (out of memory)";
        goto Reject;
    }
    if (parse_type(s, n, &ev, &why) != FIELD_OK)
        goto Reject;
    field = "intuitaccountid";
    if (take_required(ps, f[F_ACCOUNT], 1, ev.realm, sizeof(ev.realm), &why) != FIELD_OK)
        goto Reject;
    field = "intuitentityid";
    if (take_required(ps, f[F_ENTITY], 1, ev.id, sizeof(ev.id), &why) != FIELD_OK)
        goto Reject;
    /* the event id only serves retry dedupe; an event without one is still a change */
    field = "id";
    if (take_text(ps, f[F_ID], 1, ev.event_id, sizeof(ev.event_id), &why) == FIELD_BAD)
        goto Reject;
    field = "time";
    if (take_time(ps, f[F_TIME], &ev.updated_ns, &why) == FIELD_BAD)
        goto Reject;
    field = "data.deletedid";
    if (take_text(ps, get_icase(ps, f[F_DATA], "deletedid"), 1, ev.deleted_id, sizeof(ev.deleted_id), &why) ==
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

static void parse_cloudevents(struct st_parse_t *ps, size_t arr)
{
    size_t i, el, n = ps->tok[arr].len;

    /* the shape is CloudEvents only if some element says so (null too); [] and [1,2] are neither format */
    for (i = 0, el = arr + 1; i < n; i++, el = ps->tok[el].next) {
        if (GET(ps, el, "specversion") != NO_VALUE)
            break;
    }
    if (i == n) {
        problem(ps, "%s", n == 0 ? "empty JSON array" : "JSON array without CloudEvents (no specversion)");
        return;
    }
    ps->out->format = QBC_FORMAT_CLOUDEVENTS;
    for (i = 0, el = arr + 1; i < n; i++, el = ps->tok[el].next)
        parse_cloudevent(ps, el, i);
}

/* ================================ entry ============================== */

int qbc_payload_parse(const char *body, size_t len, qbc_payload_t *out)
{
    struct st_parse_t ps;
    qbc_json_tok_t inline_tok[INLINE_TOKENS];
    qbc_json_doc_t doc;
    qbc_json_error_t jerr;
    size_t notes;

    memset(out, 0, sizeof(*out));
    ps.out = out;
    ps.cap = 0;
    ps.malformed = 0;
    if (body == NULL || len == 0) {
        problem(&ps, "empty body");
        return QBC_EMALFORMED;
    }
    /* no "\u0000" either (jansson without JSON_ALLOW_NUL): it could never be stored in our NUL-terminated fields */
    qbc_json_init(&doc, inline_tok, INLINE_TOKENS);
    if (qbc_json_scan(&doc, body, len, 0, &jerr) != 0) {
        problem(&ps, "not JSON: %s (at byte %zu)", jerr.what, jerr.pos);
        goto Exit;
    }
    ps.body = body;
    ps.doc = &doc;
    ps.tok = doc.tok;
    ps.text = ps.text_small;
    ps.text_cap = sizeof(ps.text_small);
    if (doc.tok[0].type == QBC_JSON_OBJECT) {
        if ((notes = GET(&ps, 0, "eventNotifications")) != NO_VALUE)
            parse_classic(&ps, notes);
        else
            problem(&ps, "JSON object without eventNotifications");
    } else {
        parse_cloudevents(&ps, 0); /* the scanner accepts only an object or an array as the root */
    }
    if (ps.text != ps.text_small)
        free(ps.text);

Exit:
    qbc_json_dispose(&doc);
    sanitize_error(out->error);
    return ps.malformed ? QBC_EMALFORMED : 0;
}

void qbc_payload_clear(qbc_payload_t *p)
{
    if (p == NULL)
        return;
    free(p->events);
    memset(p, 0, sizeof(*p));
}
