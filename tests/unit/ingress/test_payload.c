/*
 * test_payload.c — ingress/payload.c on Intuit's published webhook bodies (fixtures/,
 * qbo-facts §1.1, §1.2), on every documented variation of them, and on hostile input:
 * truncation, wrong types at every level, oversized values, huge arrays, deep nesting,
 * NUL bytes and random mutations. The parser must never crash, and every result must
 * be internally consistent.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ingress.h"
#include "tap.h"
#include "fixture.h"

#ifndef QBC_FIXTURES_DIR
#define QBC_FIXTURES_DIR "tests/unit/ingress/fixtures"
#endif

/* ============================== helpers ============================== */

static int parse(const char *s, qbc_payload_t *p)
{
    return qbc_payload_parse(s, strlen(s), p);
}

static int has_error(const qbc_payload_t *p, const char *needle)
{
    int found = strstr(p->error, needle) != NULL;
    if (!found)
        printf("#   error was \"%s\", wanted it to mention \"%s\"\n", p->error, needle);
    return found;
}

/*
 * the invariants every result must satisfy, whatever the input:
 * rc is 0 exactly when nothing was rejected and no error was recorded; events is NULL
 * exactly when there are none; every string is terminated inside its field; every
 * returned event has a realm, an id, a known operation and an entity of letters and
 * digits that does not start lower-case.
 */
static int consistent(int rc, const qbc_payload_t *p)
{
    if (rc != 0 && rc != QBC_EMALFORMED)
        return 0;
    if ((rc == 0) != (p->error[0] == '\0'))
        return 0;
    if (rc == 0 && p->n_rejected != 0)
        return 0;
    if (memchr(p->error, '\0', sizeof(p->error)) == NULL)
        return 0;
    if ((p->events == NULL) != (p->n_events == 0))
        return 0;
    if (p->format != QBC_FORMAT_UNKNOWN && p->format != QBC_FORMAT_CLASSIC && p->format != QBC_FORMAT_CLOUDEVENTS)
        return 0;
    if (p->format == QBC_FORMAT_UNKNOWN && (rc == 0 || p->n_events != 0))
        return 0;
    for (size_t i = 0; i < p->n_events; i++) {
        const qbc_event_t *e = &p->events[i];
        if (memchr(e->realm, '\0', sizeof(e->realm)) == NULL || memchr(e->entity, '\0', sizeof(e->entity)) == NULL ||
            memchr(e->id, '\0', sizeof(e->id)) == NULL || memchr(e->deleted_id, '\0', sizeof(e->deleted_id)) == NULL ||
            memchr(e->event_id, '\0', sizeof(e->event_id)) == NULL)
            return 0;
        if (e->realm[0] == '\0' || e->id[0] == '\0' || e->entity[0] == '\0' ||
            (e->entity[0] >= 'a' && e->entity[0] <= 'z'))
            return 0;
        for (const char *c = e->entity; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
                return 0;
        if (e->op < QBC_OP_CREATE || e->op > QBC_OP_EMAILED)
            return 0;
        if (p->format == QBC_FORMAT_CLASSIC && e->event_id[0] != '\0')
            return 0;
    }
    return 1;
}

static void check_event(const qbc_payload_t *p, size_t i, const char *realm, const char *entity, const char *id,
                        qbc_op_t op, int64_t updated_ns, const char *event_id, const char *deleted_id)
{
    char name[200];
    if (!ok(i < p->n_events, "event exists")) {
        return;
    }
    const qbc_event_t *e = &p->events[i];
    snprintf(name, sizeof(name), "event %zu realm", i);
    is_str(e->realm, realm, name);
    snprintf(name, sizeof(name), "event %zu entity", i);
    is_str(e->entity, entity, name);
    snprintf(name, sizeof(name), "event %zu id", i);
    is_str(e->id, id, name);
    snprintf(name, sizeof(name), "event %zu op", i);
    is_int(e->op, op, name);
    snprintf(name, sizeof(name), "event %zu updated_ns", i);
    is_int(e->updated_ns, updated_ns, name);
    snprintf(name, sizeof(name), "event %zu event_id", i);
    is_str(e->event_id, event_id, name);
    snprintf(name, sizeof(name), "event %zu deleted_id", i);
    is_str(e->deleted_id, deleted_id, name);
}

/* parses s and checks the summary: rc, format, counts */
static void summary(const char *label, const char *s, size_t len, qbc_payload_t *p, int rc_want, qbc_format_t fmt,
                    size_t n_events, size_t n_rejected)
{
    char name[200];
    int rc = qbc_payload_parse(s, len, p);
    snprintf(name, sizeof(name), "%s: rc", label);
    is_int(rc, rc_want, name);
    snprintf(name, sizeof(name), "%s: format", label);
    is_int(p->format, fmt, name);
    snprintf(name, sizeof(name), "%s: n_events", label);
    is_int(p->n_events, n_events, name);
    snprintf(name, sizeof(name), "%s: n_rejected", label);
    is_int(p->n_rejected, n_rejected, name);
    snprintf(name, sizeof(name), "%s: consistent", label);
    ok(consistent(rc, p), name);
    if (rc_want == 0) {
        snprintf(name, sizeof(name), "%s: no error text", label);
        is_str(p->error, "", name);
    } else {
        snprintf(name, sizeof(name), "%s: error text set", label);
        ok(p->error[0] != '\0', name);
    }
}

#define SUMMARY(label, s, p, rc, fmt, ne, nr) summary((label), (s), strlen(s), (p), (rc), (fmt), (ne), (nr))

/* ====================== Intuit's published bodies ===================== */

static void test_fixture_classic(void)
{
    qbc_payload_t p;
    size_t len;
    char *s;

    /* managing-webhooks-notifications page [S3] */
    s = slurp("classic-intuit-docs.json", &len);
    summary("docs sample", s, len, &p, 0, QBC_FORMAT_CLASSIC, 2, 0);
    check_event(&p, 0, "1185883450", "Customer", "1", QBC_OP_CREATE, INT64_C(1444081339000000000), "", "");
    check_event(&p, 1, "1185883450", "Vendor", "1", QBC_OP_CREATE, INT64_C(1444081339000000000), "", "");
    qbc_payload_clear(&p);
    free(s);

    /* Java SDK test payload [S11] */
    s = slurp("classic-java-sdk.json", &len);
    summary("Java SDK sample", s, len, &p, 0, QBC_FORMAT_CLASSIC, 1, 0);
    check_event(&p, 0, "1185883450", "Customer", "1", QBC_OP_CREATE, INT64_C(1444081339000000000), "", "");
    qbc_payload_clear(&p);
    free(s);

    /* .NET SDK test payload [S12] */
    s = slurp("classic-dotnet-sdk.json", &len);
    summary(".NET SDK sample", s, len, &p, 0, QBC_FORMAT_CLASSIC, 2, 0);
    check_event(&p, 0, "1269959970", "Vendor", "40", QBC_OP_UPDATE, INT64_C(1475636944000000000), "", "");
    check_event(&p, 1, "1269959970", "Customer", "43", QBC_OP_CREATE, INT64_C(1475636824000000000), "", "");
    qbc_payload_clear(&p);
    free(s);
}

static void test_fixture_cloudevents(void)
{
    qbc_payload_t p;
    size_t len;
    char *s;

    /* the announcement blog [S5] */
    s = slurp("cloudevents-intuit-blog.json", &len);
    summary("blog sample", s, len, &p, 0, QBC_FORMAT_CLOUDEVENTS, 1, 0);
    check_event(&p, 0, "310687", "Account", "1234", QBC_OP_CREATE, INT64_C(1757539885179851517),
                "88cd52aa-33b6-4351-9aa4-47572edbd068", "");
    qbc_payload_clear(&p);
    free(s);

    /* .NET SDK test CloudEvent: no datacontenttype, data with alternative_ids [S12] */
    s = slurp("cloudevents-dotnet-sdk.json", &len);
    summary(".NET SDK CloudEvent", s, len, &p, 0, QBC_FORMAT_CLOUDEVENTS, 1, 0);
    check_event(&p, 0, "310687", "Class", "1234", QBC_OP_CREATE, INT64_C(1759867147034359333),
                "d1a3aedd-9670-41bf-a4f9-c148a1cc4e03", "");
    qbc_payload_clear(&p);
    free(s);

    /* data-objects page [S4]: merge with data.deletedid, pretty-printed, Intuit's masking kept */
    s = slurp("cloudevents-customer-merged.json", &len);
    summary("customer merged", s, len, &p, 0, QBC_FORMAT_CLOUDEVENTS, 1, 0);
    check_event(&p, 0, "93414556*********", "Customer", "123", QBC_OP_MERGE, INT64_C(1764861905000000000),
                "********-****-****-****-************-Customer-123", "27");
    qbc_payload_clear(&p);
    free(s);

    /* employee created: nested alternative_ids, two-digit fraction, id with leading zeros */
    s = slurp("cloudevents-employee-created.json", &len);
    summary("employee created", s, len, &p, 0, QBC_FORMAT_CLOUDEVENTS, 1, 0);
    check_event(&p, 0, "9341455*********", "Employee", "000000011", QBC_OP_CREATE, INT64_C(1771946899910000000),
                "*-*********-***************-PayrollEmployee-000000011", "");
    qbc_payload_clear(&p);
    free(s);

    /* sales receipt updated: no data object at all */
    s = slurp("cloudevents-salesreceipt-updated.json", &len);
    summary("sales receipt updated", s, len, &p, 0, QBC_FORMAT_CLOUDEVENTS, 1, 0);
    check_event(&p, 0, "9341455*********", "SalesReceipt", "150", QBC_OP_UPDATE, INT64_C(1773764357000000000),
                "*********-****-****-****-************-SalesReceipt-150", "");
    qbc_payload_clear(&p);
    free(s);
}

/* ============================ classic format ========================== */

static void test_classic_variants(void)
{
    qbc_payload_t p;

    /* several eventNotifications, one per realm [S3] */
    SUMMARY("two realms",
            "{\"eventNotifications\":["
            "{\"realmId\":\"111\",\"dataChangeEvent\":{\"entities\":[{\"name\":\"Invoice\",\"id\":\"7\","
            "\"operation\":\"Update\",\"lastUpdated\":\"2025-09-08T20:52:31.657Z\"}]}},"
            "{\"realmId\":\"222\",\"dataChangeEvent\":{\"entities\":[{\"name\":\"Bill\",\"id\":\"8\","
            "\"operation\":\"Delete\",\"lastUpdated\":\"2015-12-23T12:55:50-08:00\"},"
            "{\"name\":\"Payment\",\"id\":\"9\",\"operation\":\"Void\"}]}}]}",
            &p, 0, QBC_FORMAT_CLASSIC, 3, 0);
    check_event(&p, 0, "111", "Invoice", "7", QBC_OP_UPDATE, INT64_C(1757364751657000000), "", "");
    check_event(&p, 1, "222", "Bill", "8", QBC_OP_DELETE, INT64_C(1450904150000000000), "", "");
    check_event(&p, 2, "222", "Payment", "9", QBC_OP_VOID, 0, "", "");
    qbc_payload_clear(&p);

    /* every classic operation, and a merge's deletedId (SDK spelling, and the docs' deletedID) */
    SUMMARY("all operations",
            "{\"eventNotifications\":[{\"realmId\":\"5\",\"dataChangeEvent\":{\"entities\":["
            "{\"name\":\"Customer\",\"id\":\"1\",\"operation\":\"Create\"},"
            "{\"name\":\"Customer\",\"id\":\"2\",\"operation\":\"Update\"},"
            "{\"name\":\"Customer\",\"id\":\"3\",\"operation\":\"Delete\"},"
            "{\"name\":\"Customer\",\"id\":\"4\",\"operation\":\"Merge\",\"deletedId\":\"44\"},"
            "{\"name\":\"Invoice\",\"id\":\"5\",\"operation\":\"Void\"},"
            "{\"name\":\"Invoice\",\"id\":\"6\",\"operation\":\"Emailed\"},"
            "{\"name\":\"Vendor\",\"id\":\"7\",\"operation\":\"Merge\",\"deletedID\":\"77\"},"
            "{\"name\":\"Vendor\",\"id\":\"8\",\"operation\":\"MERGE\",\"deletedid\":88}]}}]}",
            &p, 0, QBC_FORMAT_CLASSIC, 8, 0);
    check_event(&p, 0, "5", "Customer", "1", QBC_OP_CREATE, 0, "", "");
    check_event(&p, 1, "5", "Customer", "2", QBC_OP_UPDATE, 0, "", "");
    check_event(&p, 2, "5", "Customer", "3", QBC_OP_DELETE, 0, "", "");
    check_event(&p, 3, "5", "Customer", "4", QBC_OP_MERGE, 0, "", "44");
    check_event(&p, 4, "5", "Invoice", "5", QBC_OP_VOID, 0, "", "");
    check_event(&p, 5, "5", "Invoice", "6", QBC_OP_EMAILED, 0, "", "");
    check_event(&p, 6, "5", "Vendor", "7", QBC_OP_MERGE, 0, "", "77");
    check_event(&p, 7, "5", "Vendor", "8", QBC_OP_MERGE, 0, "", "88");
    qbc_payload_clear(&p);

    /* integers where strings are expected: realmId and id are stringified */
    SUMMARY("integer realm and id",
            "{\"eventNotifications\":[{\"realmId\":9341455322581846,\"dataChangeEvent\":{\"entities\":["
            "{\"name\":\"item\",\"id\":0,\"operation\":\"create\",\"lastUpdated\":null}]}}]}",
            &p, 0, QBC_FORMAT_CLASSIC, 1, 0);
    check_event(&p, 0, "9341455322581846", "Item", "0", QBC_OP_CREATE, 0, "", "");
    qbc_payload_clear(&p);

    /* an empty notification list is well-formed and carries nothing */
    SUMMARY("no notifications", "{\"eventNotifications\":[]}", &p, 0, QBC_FORMAT_CLASSIC, 0, 0);
    qbc_payload_clear(&p);
    SUMMARY("no entities", "{\"eventNotifications\":[{\"realmId\":\"1\",\"dataChangeEvent\":{\"entities\":[]}}]}", &p,
            0, QBC_FORMAT_CLASSIC, 0, 0);
    qbc_payload_clear(&p);

    /* unknown keys anywhere are ignored; eventNotifications wins over a stray specversion */
    SUMMARY("extra keys",
            "{\"specversion\":\"1.0\",\"eventNotifications\":[{\"realmId\":\"1\",\"x\":[1,{\"y\":null}],"
            "\"dataChangeEvent\":{\"entities\":[{\"name\":\"Term\",\"id\":\"3\",\"operation\":\"Update\","
            "\"extra\":{\"deep\":[[[]]]}}],\"more\":true}}],\"trailer\":1}",
            &p, 0, QBC_FORMAT_CLASSIC, 1, 0);
    check_event(&p, 0, "1", "Term", "3", QBC_OP_UPDATE, 0, "", "");
    qbc_payload_clear(&p);
}

static void test_classic_rejections(void)
{
    qbc_payload_t p;

    /* one bad entity costs only itself */
    SUMMARY("bad operation in the middle",
            "{\"eventNotifications\":[{\"realmId\":\"1\",\"dataChangeEvent\":{\"entities\":["
            "{\"name\":\"Invoice\",\"id\":\"1\",\"operation\":\"Create\"},"
            "{\"name\":\"Invoice\",\"id\":\"2\",\"operation\":\"Frobnicate\"},"
            "{\"name\":\"Invoice\",\"id\":\"3\",\"operation\":\"Delete\"}]}}]}",
            &p, QBC_EMALFORMED, QBC_FORMAT_CLASSIC, 2, 1);
    check_event(&p, 0, "1", "Invoice", "1", QBC_OP_CREATE, 0, "", "");
    check_event(&p, 1, "1", "Invoice", "3", QBC_OP_DELETE, 0, "", "");
    ok(has_error(&p, "eventNotifications[0].dataChangeEvent.entities[1].operation"), "error names the field");
    qbc_payload_clear(&p);

    /* a notification without a usable realm loses all its entities, not the other notification's */
    SUMMARY("missing realm",
            "{\"eventNotifications\":["
            "{\"dataChangeEvent\":{\"entities\":[{\"name\":\"Invoice\",\"id\":\"1\",\"operation\":\"Create\"},"
            "{\"name\":\"Invoice\",\"id\":\"2\",\"operation\":\"Create\"}]}},"
            "{\"realmId\":\"2\",\"dataChangeEvent\":{\"entities\":[{\"name\":\"Bill\",\"id\":\"3\","
            "\"operation\":\"Create\"}]}}]}",
            &p, QBC_EMALFORMED, QBC_FORMAT_CLASSIC, 1, 2);
    check_event(&p, 0, "2", "Bill", "3", QBC_OP_CREATE, 0, "", "");
    ok(has_error(&p, "eventNotifications[0].realmId"), "error names realmId");
    qbc_payload_clear(&p);

    SUMMARY("empty realm", "{\"eventNotifications\":[{\"realmId\":\"\",\"dataChangeEvent\":{\"entities\":[]}}]}", &p,
            QBC_EMALFORMED, QBC_FORMAT_CLASSIC, 0, 1);
    qbc_payload_clear(&p);

    /* the first problem is the one reported */
    SUMMARY("first problem reported",
            "{\"eventNotifications\":[{\"realmId\":\"1\",\"dataChangeEvent\":{\"entities\":["
            "{\"name\":\"Invoice\",\"operation\":\"Create\"},{\"name\":\"Invoice\",\"id\":\"2\"}]}}]}",
            &p, QBC_EMALFORMED, QBC_FORMAT_CLASSIC, 0, 2);
    ok(has_error(&p, "entities[0].id"), "error is about entities[0].id");
    ok(strstr(p.error, "entities[1]") == NULL, "not about entities[1]");
    qbc_payload_clear(&p);

    /* timestamps: missing and null are fine, anything present must parse */
    SUMMARY(
        "timestamps",
        "{\"eventNotifications\":[{\"realmId\":\"1\",\"dataChangeEvent\":{\"entities\":["
        "{\"name\":\"Invoice\",\"id\":\"1\",\"operation\":\"Create\",\"lastUpdated\":\"2015-10-05T14:42:19+05:30\"},"
        "{\"name\":\"Invoice\",\"id\":\"2\",\"operation\":\"Create\",\"lastUpdated\":\"\"},"
        "{\"name\":\"Invoice\",\"id\":\"3\",\"operation\":\"Create\",\"lastUpdated\":\"2015-10-05T14:42:19\"},"
        "{\"name\":\"Invoice\",\"id\":\"4\",\"operation\":\"Create\",\"lastUpdated\":1444081339},"
        "{\"name\":\"Invoice\",\"id\":\"5\",\"operation\":\"Create\",\"lastUpdated\":\"yesterday\"},"
        "{\"name\":\"Invoice\",\"id\":\"6\",\"operation\":\"Create\"}]}}]}",
        &p, QBC_EMALFORMED, QBC_FORMAT_CLASSIC, 2, 4);
    check_event(&p, 0, "1", "Invoice", "1", QBC_OP_CREATE, INT64_C(1444036339000000000), "", "");
    check_event(&p, 1, "1", "Invoice", "6", QBC_OP_CREATE, 0, "", "");
    ok(has_error(&p, "entities[1].lastUpdated"), "error names lastUpdated of entities[1]");
    qbc_payload_clear(&p);

    /* eventNotifications of the wrong type: classic, but nothing usable */
    SUMMARY("eventNotifications object", "{\"eventNotifications\":{}}", &p, QBC_EMALFORMED, QBC_FORMAT_CLASSIC, 0, 0);
    qbc_payload_clear(&p);
    SUMMARY("eventNotifications null", "{\"eventNotifications\":null}", &p, QBC_EMALFORMED, QBC_FORMAT_CLASSIC, 0, 0);
    qbc_payload_clear(&p);
    SUMMARY("notification not an object", "{\"eventNotifications\":[1,\"x\",null]}", &p, QBC_EMALFORMED,
            QBC_FORMAT_CLASSIC, 0, 3);
    qbc_payload_clear(&p);
    SUMMARY("no dataChangeEvent", "{\"eventNotifications\":[{\"realmId\":\"1\"}]}", &p, QBC_EMALFORMED,
            QBC_FORMAT_CLASSIC, 0, 1);
    qbc_payload_clear(&p);
    SUMMARY("entities not an array",
            "{\"eventNotifications\":[{\"realmId\":\"1\",\"dataChangeEvent\":{\"entities\":{}}}]}", &p, QBC_EMALFORMED,
            QBC_FORMAT_CLASSIC, 0, 1);
    qbc_payload_clear(&p);
}

/* ========================== CloudEvents format ======================== */

/* one CloudEvent with the given type and extra members */
static char *ce(const char *type, const char *extra)
{
    size_t n = strlen(type) + strlen(extra) + 200;
    char *s = malloc(n);
    snprintf(s, n,
             "{\"specversion\":\"1.0\",\"id\":\"e\",\"type\":\"%s\",\"intuitaccountid\":\"42\","
             "\"intuitentityid\":\"7\"%s%s}",
             type, extra[0] ? "," : "", extra);
    return s;
}

static void check_type(const char *type, const char *entity, qbc_op_t op)
{
    char *one = ce(type, ""), body[400], name[200];
    qbc_payload_t p;
    snprintf(body, sizeof(body), "[%s]", one);
    int rc = parse(body, &p);
    snprintf(name, sizeof(name), "type %s", type);
    if (entity != NULL) {
        is_int(rc, 0, name);
        snprintf(name, sizeof(name), "type %s: entity", type);
        is_str(p.n_events ? p.events[0].entity : "(none)", entity, name);
        snprintf(name, sizeof(name), "type %s: op", type);
        is_int(p.n_events ? (int)p.events[0].op : -1, op, name);
    } else {
        ok(rc == QBC_EMALFORMED && p.n_events == 0 && p.n_rejected == 1 && has_error(&p, "[0].type"), name);
    }
    qbc_payload_clear(&p);
    free(one);
}

static void test_cloudevents_types(void)
{
    check_type("qbo.customer.created.v1", "Customer", QBC_OP_CREATE);
    check_type("qbo.invoice.updated.v1", "Invoice", QBC_OP_UPDATE);
    check_type("qbo.invoice.deleted.v1", "Invoice", QBC_OP_DELETE);
    check_type("qbo.customer.merged.v1", "Customer", QBC_OP_MERGE);
    check_type("qbo.department.merged.v1", "Department", QBC_OP_MERGE);
    check_type("qbo.invoice.void.v1", "Invoice", QBC_OP_VOID);
    check_type("qbo.invoice.voided.v1", "Invoice", QBC_OP_VOID);
    check_type("qbo.refundreceipt.void.v1", "RefundReceipt", QBC_OP_VOID);
    check_type("qbo.estimate.emailed.v1", "Estimate", QBC_OP_EMAILED);
    check_type("qbo.journalentry.created.v1", "JournalEntry", QBC_OP_CREATE);
    check_type("qbo.billpayment.void.v1", "BillPayment", QBC_OP_VOID);
    check_type("qbo.companycurrency.updated.v1", "CompanyCurrency", QBC_OP_UPDATE);
    check_type("qbo.changeorder.created.v1", "ChangeOrder", QBC_OP_CREATE);
    check_type("qbo.timeactivity.deleted.v1", "TimeActivity", QBC_OP_DELETE);
    check_type("qbo.taxagency.updated.v1", "TaxAgency", QBC_OP_UPDATE);
    check_type("qbo.journalcode.created.v1", "JournalCode", QBC_OP_CREATE);
    check_type("qbo.preferences.updated.v1", "Preferences", QBC_OP_UPDATE);
    check_type("QBO.SALESRECEIPT.UPDATED.V1", "SalesReceipt", QBC_OP_UPDATE);
    check_type("qbo.widget.created.v1", "Widget", QBC_OP_CREATE);   /* newer than our table */
    check_type("qbo.invoice.updated.v2", "Invoice", QBC_OP_UPDATE); /* a later envelope version */
    check_type("qbo.invoice.updated.v10", "Invoice", QBC_OP_UPDATE);
    check_type("qbo.invoice.updated", NULL, 0);
    check_type("qbo.invoice.updated.v1.extra", NULL, 0);
    check_type("xbo.invoice.updated.v1", NULL, 0);
    check_type("qbo..updated.v1", NULL, 0);
    check_type("qbo.invoice..v1", NULL, 0);
    check_type("qbo.invoice.updated.", NULL, 0);
    check_type("qbo.invoice.updated.v", NULL, 0);
    check_type("qbo.invoice.updated.1", NULL, 0);
    check_type("qbo.invoice.updated.vx", NULL, 0);
    check_type("qbo.in-voice.updated.v1", NULL, 0);
    check_type("qbo.invoice.frobbed.v1", NULL, 0);
    check_type("qbo.invoice.create d.v1", NULL, 0);
    check_type("", NULL, 0);
    check_type(".", NULL, 0);
    check_type("...", NULL, 0);
    check_type("qbo.abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv.created.v1", NULL, 0); /* 48 letters */
    check_type("qbo.abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstu.created.v1",
               "Abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstu", QBC_OP_CREATE); /* 47 letters fit */
}

static void test_cloudevents_variants(void)
{
    qbc_payload_t p;

    /* whitespace around the array, mixed realms, several events, camelCase deletedId (Ballerina capture) */
    SUMMARY("mixed realms",
            " \r\n\t[{\"specversion\":\"1.0\",\"id\":\"a1\",\"type\":\"qbo.invoice.updated.v1\","
            "\"time\":\"2025-09-08T20:52:31.657Z\",\"intuitentityid\":\"10\",\"intuitaccountid\":\"111\"},"
            "{\"specversion\":\"1.0\",\"id\":\"a2\",\"type\":\"qbo.vendor.merged.v1\",\"time\":\"2015-10-05T14:42:19-"
            "0700\","
            "\"intuitentityid\":\"11\",\"intuitaccountid\":\"222\",\"data\":{\"deletedId\":\"12\"}},"
            "{\"specversion\":\"1.0\",\"id\":\"a3\",\"type\":\"qbo.account.merged.v1\",\"intuitentityid\":13,"
            "\"intuitaccountid\":333,\"data\":{\"DELETEDID\":14}}] \n",
            &p, 0, QBC_FORMAT_CLOUDEVENTS, 3, 0);
    check_event(&p, 0, "111", "Invoice", "10", QBC_OP_UPDATE, INT64_C(1757364751657000000), "a1", "");
    check_event(&p, 1, "222", "Vendor", "11", QBC_OP_MERGE, INT64_C(1444081339000000000), "a2", "12");
    check_event(&p, 2, "333", "Account", "13", QBC_OP_MERGE, 0, "a3", "14");
    qbc_payload_clear(&p);

    /* the exact key wins over other spellings */
    SUMMARY("deletedid spellings",
            "[{\"specversion\":\"1.0\",\"type\":\"qbo.customer.merged.v1\",\"intuitentityid\":\"1\","
            "\"intuitaccountid\":\"2\",\"data\":{\"DeletedId\":\"x\",\"deletedid\":\"y\"}}]",
            &p, 0, QBC_FORMAT_CLOUDEVENTS, 1, 0);
    check_event(&p, 0, "2", "Customer", "1", QBC_OP_MERGE, 0, "", "y");
    qbc_payload_clear(&p);

    /* Intuit's parser-test shapes [S13]: no time, no data, no id */
    SUMMARY("minimal events",
            "[{\"specversion\":\"1.0\",\"type\":\"qbo.invoice.deleted.v1\",\"intuitentityid\":\"29\","
            "\"intuitaccountid\":\"9341455322581846\"},"
            "{\"specversion\":\"1.0\",\"id\":\"update-event\",\"type\":\"qbo.customer.updated.v1\","
            "\"intuitentityid\":\"42\",\"intuitaccountid\":\"123456\",\"time\":null,\"data\":null}]",
            &p, 0, QBC_FORMAT_CLOUDEVENTS, 2, 0);
    check_event(&p, 0, "9341455322581846", "Invoice", "29", QBC_OP_DELETE, 0, "", "");
    check_event(&p, 1, "123456", "Customer", "42", QBC_OP_UPDATE, 0, "update-event", "");
    qbc_payload_clear(&p);

    /* data of other shapes is not relied upon */
    SUMMARY(
        "odd data",
        "[{\"specversion\":\"1.0\",\"type\":\"qbo.item.updated.v1\",\"intuitentityid\":\"1\",\"intuitaccountid\":\"2\","
        "\"data\":\"text\"},"
        "{\"specversion\":\"1.0\",\"type\":\"qbo.item.updated.v1\",\"intuitentityid\":\"3\",\"intuitaccountid\":\"2\","
        "\"data\":[{\"deletedid\":\"9\"}]},"
        "{\"specversion\":\"1.0\",\"type\":\"qbo.item.updated.v1\",\"intuitentityid\":\"4\",\"intuitaccountid\":\"2\","
        "\"data\":{\"Id\":\"4\",\"SyncToken\":\"2\",\"nested\":{\"deletedid\":\"no\"}}}]",
        &p, 0, QBC_FORMAT_CLOUDEVENTS, 3, 0);
    check_event(&p, 0, "2", "Item", "1", QBC_OP_UPDATE, 0, "", "");
    check_event(&p, 1, "2", "Item", "3", QBC_OP_UPDATE, 0, "", "");
    check_event(&p, 2, "2", "Item", "4", QBC_OP_UPDATE, 0, "", "");
    qbc_payload_clear(&p);
}

static void test_cloudevents_rejections(void)
{
    qbc_payload_t p;

    /* usable events survive their neighbours (good, bad, good) */
    SUMMARY("bad in the middle",
            "[{\"specversion\":\"1.0\",\"id\":\"g1\",\"type\":\"qbo.invoice.created.v1\",\"intuitentityid\":\"1\","
            "\"intuitaccountid\":\"9\"},"
            "{\"specversion\":\"1.0\",\"id\":\"b\",\"type\":\"qbo.invoice.exploded.v1\",\"intuitentityid\":\"2\","
            "\"intuitaccountid\":\"9\"},"
            "{\"specversion\":\"1.0\",\"id\":\"g2\",\"type\":\"qbo.invoice.deleted.v1\",\"intuitentityid\":\"3\","
            "\"intuitaccountid\":\"9\"}]",
            &p, QBC_EMALFORMED, QBC_FORMAT_CLOUDEVENTS, 2, 1);
    check_event(&p, 0, "9", "Invoice", "1", QBC_OP_CREATE, 0, "g1", "");
    check_event(&p, 1, "9", "Invoice", "3", QBC_OP_DELETE, 0, "g2", "");
    ok(has_error(&p, "[1].type"), "error names [1].type");
    qbc_payload_clear(&p);

    /* one element at a time, each missing or spoiling one member */
    static const struct {
        const char *label, *body, *field;
    } bad[] = {
        {"no specversion", "{\"type\":\"qbo.invoice.created.v1\",\"intuitentityid\":\"1\",\"intuitaccountid\":\"9\"}",
         "specversion"},
        {"specversion number",
         "{\"specversion\":1.0,\"type\":\"qbo.invoice.created.v1\",\"intuitentityid\":\"1\","
         "\"intuitaccountid\":\"9\"}",
         "specversion"},
        {"no type", "{\"specversion\":\"1.0\",\"intuitentityid\":\"1\",\"intuitaccountid\":\"9\"}", "type"},
        {"type array",
         "{\"specversion\":\"1.0\",\"type\":[\"qbo.invoice.created.v1\"],\"intuitentityid\":\"1\","
         "\"intuitaccountid\":\"9\"}",
         "type"},
        {"no account", "{\"specversion\":\"1.0\",\"type\":\"qbo.invoice.created.v1\",\"intuitentityid\":\"1\"}",
         "intuitaccountid"},
        {"empty account",
         "{\"specversion\":\"1.0\",\"type\":\"qbo.invoice.created.v1\",\"intuitentityid\":\"1\","
         "\"intuitaccountid\":\"\"}",
         "intuitaccountid"},
        {"account float",
         "{\"specversion\":\"1.0\",\"type\":\"qbo.invoice.created.v1\",\"intuitentityid\":\"1\","
         "\"intuitaccountid\":9.5}",
         "intuitaccountid"},
        {"account negative",
         "{\"specversion\":\"1.0\",\"type\":\"qbo.invoice.created.v1\",\"intuitentityid\":\"1\","
         "\"intuitaccountid\":-9}",
         "intuitaccountid"},
        {"account bool",
         "{\"specversion\":\"1.0\",\"type\":\"qbo.invoice.created.v1\",\"intuitentityid\":\"1\","
         "\"intuitaccountid\":true}",
         "intuitaccountid"},
        {"no entity id", "{\"specversion\":\"1.0\",\"type\":\"qbo.invoice.created.v1\",\"intuitaccountid\":\"9\"}",
         "intuitentityid"},
        {"entity id object",
         "{\"specversion\":\"1.0\",\"type\":\"qbo.invoice.created.v1\",\"intuitentityid\":{},"
         "\"intuitaccountid\":\"9\"}",
         "intuitentityid"},
        {"entity id with tab",
         "{\"specversion\":\"1.0\",\"type\":\"qbo.invoice.created.v1\","
         "\"intuitentityid\":\"1\\t2\",\"intuitaccountid\":\"9\"}",
         "intuitentityid"},
        {"event id array",
         "{\"specversion\":\"1.0\",\"id\":[],\"type\":\"qbo.invoice.created.v1\","
         "\"intuitentityid\":\"1\",\"intuitaccountid\":\"9\"}",
         "].id"},
        {"event id newline",
         "{\"specversion\":\"1.0\",\"id\":\"a\\nb\",\"type\":\"qbo.invoice.created.v1\","
         "\"intuitentityid\":\"1\",\"intuitaccountid\":\"9\"}",
         "].id"},
        {"time garbage",
         "{\"specversion\":\"1.0\",\"time\":\"not a time\",\"type\":\"qbo.invoice.created.v1\","
         "\"intuitentityid\":\"1\",\"intuitaccountid\":\"9\"}",
         "time"},
        {"time without offset",
         "{\"specversion\":\"1.0\",\"time\":\"2025-09-10T21:31:25\",\"type\":"
         "\"qbo.invoice.created.v1\",\"intuitentityid\":\"1\",\"intuitaccountid\":\"9\"}",
         "time"},
        {"time number",
         "{\"specversion\":\"1.0\",\"time\":1757539885,\"type\":\"qbo.invoice.created.v1\","
         "\"intuitentityid\":\"1\",\"intuitaccountid\":\"9\"}",
         "time"},
        {"time empty",
         "{\"specversion\":\"1.0\",\"time\":\"\",\"type\":\"qbo.invoice.created.v1\","
         "\"intuitentityid\":\"1\",\"intuitaccountid\":\"9\"}",
         "time"},
        {"deletedid object",
         "{\"specversion\":\"1.0\",\"type\":\"qbo.customer.merged.v1\",\"intuitentityid\":\"1\","
         "\"intuitaccountid\":\"9\",\"data\":{\"deletedid\":{\"id\":\"27\"}}}",
         "data.deletedid"},
        {"deletedid float",
         "{\"specversion\":\"1.0\",\"type\":\"qbo.customer.merged.v1\",\"intuitentityid\":\"1\","
         "\"intuitaccountid\":\"9\",\"data\":{\"deletedId\":2.7}}",
         "data.deletedid"},
        {"array element", "[\"qbo.invoice.created.v1\"]", "is not an object"},
        {"string element", "\"qbo.invoice.created.v1\"", "is not an object"},
        {"null element", "null", "is not an object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* a good event first, so the array is recognisably CloudEvents whatever the bad one lacks */
        char body[1024], name[200];
        snprintf(body, sizeof(body),
                 "[{\"specversion\":\"1.0\",\"id\":\"ok\",\"type\":\"qbo.bill.updated.v1\",\"intuitentityid\":\"5\","
                 "\"intuitaccountid\":\"6\"},%s]",
                 bad[i].body);
        snprintf(name, sizeof(name), "%s: one usable, one rejected", bad[i].label);
        int rc = parse(body, &p);
        ok(rc == QBC_EMALFORMED && p.format == QBC_FORMAT_CLOUDEVENTS && p.n_events == 1 && p.n_rejected == 1 &&
               consistent(rc, &p) && strcmp(p.events[0].event_id, "ok") == 0 && strcmp(p.events[0].id, "5") == 0,
           name);
        snprintf(name, sizeof(name), "%s: error names [1] and %s", bad[i].label, bad[i].field);
        ok(has_error(&p, "[1]") && has_error(&p, bad[i].field), name);
        qbc_payload_clear(&p);
    }
}

/* ====================== whole bodies that are neither ===================== */

static void test_not_a_webhook(void)
{
    qbc_payload_t p;

    p.n_events = 99;
    is_int(qbc_payload_parse(NULL, 0, &p), QBC_EMALFORMED, "NULL body");
    ok(p.n_events == 0 && p.events == NULL && p.format == QBC_FORMAT_UNKNOWN && p.error[0] != '\0',
       "NULL body: out is initialised");
    qbc_payload_clear(&p);
    is_int(qbc_payload_parse("[]", 0, &p), QBC_EMALFORMED, "length 0");
    qbc_payload_clear(&p);

    static const char *const bodies[] = {
        "",
        " ",
        "\n",
        "null",
        "true",
        "42",
        "\"eventNotifications\"",
        "{}",
        "[]",
        " [ ] ",
        "[1,2,3]",
        "[{}]",
        "[[{\"specversion\":\"1.0\"}]]",
        "[{\"type\":\"qbo.invoice.created.v1\"}]",
        ("{\"specversion\":\"1.0\",\"type\":\"qbo.invoice.created.v1\",\"intuitentityid\":\"1\",\"intuitaccountid\":"
         "\"2\"}"), /* one string: clang's -Wstring-concatenation wants the parentheses */
        "{\"EventNotifications\":[]}",
        "{\"eventNotifications\":[]",
        "[{\"specversion\":\"1.0\"}",
        "{\"eventNotifications\":[]}}",
        "{\"eventNotifications\":[]} x",
        "[{\"specversion\":\"1.0\"}][]",
        "{'eventNotifications':[]}",
        "{\"eventNotifications\":[],}",
        "\xef\xbb\xbf{\"eventNotifications\":[]}",
        "{\"a\":\"\xff\xfe\"}",
        "{\"eventNotifications\":[{\"realmId\":\"1\\u0000\"}]}",
        "<xml/>",
        "eventNotifications",
        "{\"eventNotifications\":[{\"realmId\":99999999999999999999999}]}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char name[200];
        int rc = parse(bodies[i], &p);
        snprintf(name, sizeof(name), "not a usable webhook: body #%zu", i);
        ok(rc == QBC_EMALFORMED && p.n_events == 0 && consistent(rc, &p), name);
        qbc_payload_clear(&p);
    }

    /* formats as detected */
    parse("[{}]", &p);
    is_int(p.format, QBC_FORMAT_UNKNOWN, "array without specversion: format unknown");
    ok(has_error(&p, "specversion"), "and says why");
    qbc_payload_clear(&p);
    parse("[]", &p);
    is_int(p.format, QBC_FORMAT_UNKNOWN, "empty array: format unknown");
    ok(has_error(&p, "empty"), "and says why");
    qbc_payload_clear(&p);
    parse("{\"a\":1}", &p);
    is_int(p.format, QBC_FORMAT_UNKNOWN, "object without eventNotifications: format unknown");
    ok(has_error(&p, "eventNotifications"), "and says why");
    qbc_payload_clear(&p);
    parse("{\"eventNotifications\"", &p);
    ok(has_error(&p, "not JSON"), "truncated JSON says not JSON");
    qbc_payload_clear(&p);

    /* error text from client bytes stays printable */
    parse("[{\"specversion\":\"1.0\",\"type\":\"x\x01y\"}]", &p);
    int printable = 1;
    for (const char *c = p.error; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            printable = 0;
    ok(printable && p.error[0] != '\0', "error text is printable ASCII");
    qbc_payload_clear(&p);
}

static void test_nul_bytes(void)
{
    qbc_payload_t p;
    size_t len;
    char *s = slurp("classic-java-sdk.json", &len), *buf = malloc(len + 1);

    /* a NUL right after a valid body, and a NUL in the middle of one */
    memcpy(buf, s, len);
    buf[len] = '\0';
    int rc = qbc_payload_parse(buf, len + 1, &p);
    ok(rc == QBC_EMALFORMED && p.n_events == 0 && consistent(rc, &p), "trailing NUL byte rejects the body");
    qbc_payload_clear(&p);
    memcpy(buf, s, len);
    buf[len / 2] = '\0';
    rc = qbc_payload_parse(buf, len, &p);
    ok(rc == QBC_EMALFORMED && p.n_events == 0 && consistent(rc, &p), "NUL byte in the middle rejects the body");
    qbc_payload_clear(&p);
    /* a body whose NUL sits inside a string */
    static const char inside[] =
        "[{\"specversion\":\"1.0\",\"type\":\"qbo.invoice.created.v1\",\"intuitentityid\":\"1\0\","
        "\"intuitaccountid\":\"2\"}]";
    rc = qbc_payload_parse(inside, sizeof(inside) - 1, &p);
    ok(rc == QBC_EMALFORMED && p.n_events == 0 && consistent(rc, &p), "raw NUL inside a string rejects the body");
    qbc_payload_clear(&p);
    free(buf);
    free(s);
}

/* =========================== sizes and limits ========================= */

static void test_field_sizes(void)
{
    qbc_payload_t p;
    char big[300], body[1600];

    /* each value at its largest, and one byte more: never truncated, rejected instead */
    static const struct {
        const char *field;
        size_t max; /* longest accepted, in bytes */
    } fields[] = {
        {"intuitaccountid", QBC_REALM_MAX - 1},
        {"intuitentityid", QBC_ID_MAX - 1},
        {"id", QBC_EVENT_ID_MAX - 1},
        {"deletedid", QBC_ID_MAX - 1},
    };
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        for (size_t extra = 0; extra <= 1; extra++) {
            size_t n = fields[f].max + extra;
            memset(big, '7', n);
            big[n] = '\0';
            const char *realm = strcmp(fields[f].field, "intuitaccountid") == 0 ? big : "1";
            const char *id = strcmp(fields[f].field, "intuitentityid") == 0 ? big : "2";
            const char *eid = strcmp(fields[f].field, "id") == 0 ? big : "3";
            const char *del = strcmp(fields[f].field, "deletedid") == 0 ? big : "4";
            snprintf(body, sizeof(body),
                     "[{\"specversion\":\"1.0\",\"type\":\"qbo.customer.merged.v1\",\"intuitaccountid\":\"%s\","
                     "\"intuitentityid\":\"%s\",\"id\":\"%s\",\"data\":{\"deletedid\":\"%s\"}}]",
                     realm, id, eid, del);
            int rc = parse(body, &p);
            char name[200];
            snprintf(name, sizeof(name), "%s of %zu bytes %s", fields[f].field, n, extra ? "is rejected" : "fits");
            if (extra) {
                ok(rc == QBC_EMALFORMED && p.n_events == 0 && p.n_rejected == 1 && has_error(&p, "too long"), name);
            } else {
                ok(rc == 0 && p.n_events == 1 && strlen(p.events[0].realm) == strlen(realm) &&
                       strcmp(p.events[0].id, id) == 0 && strcmp(p.events[0].event_id, eid) == 0 &&
                       strcmp(p.events[0].deleted_id, del) == 0,
                   name);
            }
            qbc_payload_clear(&p);
        }
    }

    /* classic: realmId and name limits */
    memset(big, '1', QBC_REALM_MAX);
    big[QBC_REALM_MAX] = '\0';
    snprintf(body, sizeof(body),
             "{\"eventNotifications\":[{\"realmId\":\"%s\",\"dataChangeEvent\":{\"entities\":["
             "{\"name\":\"Invoice\",\"id\":\"1\",\"operation\":\"Create\"}]}}]}",
             big);
    int rc = parse(body, &p);
    ok(rc == QBC_EMALFORMED && p.n_events == 0 && p.n_rejected == 1 && has_error(&p, "realmId is too long"),
       "classic realmId of 64 bytes is rejected");
    qbc_payload_clear(&p);
    memset(big, 'a', QBC_ENTITY_MAX);
    big[QBC_ENTITY_MAX] = '\0';
    snprintf(body, sizeof(body),
             "{\"eventNotifications\":[{\"realmId\":\"1\",\"dataChangeEvent\":{\"entities\":["
             "{\"name\":\"%s\",\"id\":\"1\",\"operation\":\"Create\"}]}}]}",
             big);
    rc = parse(body, &p);
    ok(rc == QBC_EMALFORMED && p.n_events == 0 && p.n_rejected == 1 && has_error(&p, "name"),
       "classic entity name of 48 bytes is rejected");
    qbc_payload_clear(&p);

    /* a 19-digit integer id stringifies whole */
    rc = parse("[{\"specversion\":\"1.0\",\"type\":\"qbo.item.created.v1\",\"intuitaccountid\":9223372036854775807,"
               "\"intuitentityid\":1234567890123456789}]",
               &p);
    ok(rc == 0 && p.n_events == 1, "largest JSON integers are accepted");
    if (p.n_events == 1) {
        is_str(p.events[0].realm, "9223372036854775807", "INT64_MAX realm stringified");
        is_str(p.events[0].id, "1234567890123456789", "19-digit id stringified");
    }
    qbc_payload_clear(&p);
}

static void test_huge_arrays(void)
{
    qbc_payload_t p;
    const size_t n = 20000;
    static const char one[] =
        "{\"specversion\":\"1.0\",\"id\":\"ev-%zu\",\"type\":\"qbo.invoice.updated.v1\","
        "\"time\":\"2025-09-08T20:52:31.657Z\",\"intuitentityid\":\"%zu\",\"intuitaccountid\":\"%zu\"}";
    size_t cap = n * 250, len = 0;
    char *body = malloc(cap);

    body[len++] = '[';
    for (size_t i = 0; i < n; i++) {
        if (i)
            body[len++] = ',';
        len += (size_t)snprintf(body + len, cap - len, one, i, i * 3, i % 7);
    }
    body[len++] = ']';
    int rc = qbc_payload_parse(body, len, &p);
    is_int(rc, 0, "20000 CloudEvents: rc");
    is_int(p.n_events, n, "20000 CloudEvents: all returned");
    if (p.n_events == n) {
        check_event(&p, n - 1, "0", "Invoice", "59997", QBC_OP_UPDATE, INT64_C(1757364751657000000), "ev-19999", "");
        size_t order_ok = 1;
        for (size_t i = 0; i < n; i++) {
            char want[32];
            snprintf(want, sizeof(want), "%zu", i * 3);
            if (strcmp(p.events[i].id, want) != 0)
                order_ok = 0;
        }
        ok(order_ok, "events come back in body order");
    }
    qbc_payload_clear(&p);
    free(body);

    /* 300000 empty objects: no specversion anywhere, so not CloudEvents, and nothing allocated per element */
    const size_t m = 300000;
    body = malloc(m * 3 + 2);
    len = 0;
    body[len++] = '[';
    for (size_t i = 0; i < m; i++) {
        if (i)
            body[len++] = ',';
        body[len++] = '{';
        body[len++] = '}';
    }
    body[len++] = ']';
    rc = qbc_payload_parse(body, len, &p);
    ok(rc == QBC_EMALFORMED && p.format == QBC_FORMAT_UNKNOWN && p.n_events == 0 && consistent(rc, &p),
       "300000 empty objects: not a webhook");
    qbc_payload_clear(&p);

    /* the same, with one real event at the end: CloudEvents, 1 usable, 299999 rejected */
    static const char last[] = "{\"specversion\":\"1.0\",\"type\":\"qbo.invoice.updated.v1\",\"intuitentityid\":\"1\","
                               "\"intuitaccountid\":\"2\"}]";
    body = realloc(body, len + sizeof(last));
    memcpy(body + len - 3, last, sizeof(last)); /* replaces the final "{}]" */
    len = len - 3 + sizeof(last) - 1;
    rc = qbc_payload_parse(body, len, &p);
    ok(rc == QBC_EMALFORMED && p.format == QBC_FORMAT_CLOUDEVENTS && p.n_events == 1 && p.n_rejected == m - 1 &&
           consistent(rc, &p),
       "299999 junk elements and one event: the event survives");
    qbc_payload_clear(&p);
    free(body);

    /* classic with 5000 entities in one notification */
    const size_t k = 5000;
    cap = k * 120 + 200;
    body = malloc(cap);
    len =
        (size_t)snprintf(body, cap, "{\"eventNotifications\":[{\"realmId\":\"77\",\"dataChangeEvent\":{\"entities\":[");
    for (size_t i = 0; i < k; i++)
        len += (size_t)snprintf(body + len, cap - len, "%s{\"name\":\"Bill\",\"id\":\"%zu\",\"operation\":\"Update\"}",
                                i ? "," : "", i);
    len += (size_t)snprintf(body + len, cap - len, "]}}]}");
    rc = qbc_payload_parse(body, len, &p);
    ok(rc == 0 && p.n_events == k && strcmp(p.events[k - 1].id, "4999") == 0 &&
           strcmp(p.events[k - 1].realm, "77") == 0,
       "5000 classic entities");
    qbc_payload_clear(&p);
    free(body);
}

static void test_deep_nesting(void)
{
    qbc_payload_t p;
    /* nesting inside data of an otherwise valid event, below and far above jansson's depth limit */
    static const size_t depths[] = {1000, 100000};
    for (size_t d = 0; d < 2; d++) {
        size_t depth = depths[d];
        static const char head[] =
            "[{\"specversion\":\"1.0\",\"type\":\"qbo.invoice.updated.v1\",\"intuitentityid\":\"1\","
            "\"intuitaccountid\":\"2\",\"data\":{\"x\":";
        static const char tail[] = "}}]";
        size_t len = 0;
        char *body = malloc(sizeof(head) + 2 * depth + sizeof(tail));
        memcpy(body, head, sizeof(head) - 1);
        len = sizeof(head) - 1;
        memset(body + len, '[', depth);
        len += depth;
        memset(body + len, ']', depth);
        len += depth;
        memcpy(body + len, tail, sizeof(tail) - 1);
        len += sizeof(tail) - 1;
        int rc = qbc_payload_parse(body, len, &p);
        char name[100];
        if (depth < 2000) {
            snprintf(name, sizeof(name), "nesting %zu deep inside data: event kept", depth);
            ok(rc == 0 && p.n_events == 1 && consistent(rc, &p), name);
        } else {
            snprintf(name, sizeof(name), "nesting %zu deep: refused without crashing", depth);
            ok(rc == QBC_EMALFORMED && p.n_events == 0 && consistent(rc, &p), name);
        }
        qbc_payload_clear(&p);
        free(body);
    }
    /* bare deep arrays and objects */
    size_t depth = 200000;
    char *body = malloc(depth * 5 + 2);
    memset(body, '[', depth);
    int rc = qbc_payload_parse(body, depth, &p);
    ok(rc == QBC_EMALFORMED && consistent(rc, &p), "200000 unclosed [");
    qbc_payload_clear(&p);
    size_t len = 0;
    for (size_t i = 0; i < depth; i++) {
        memcpy(body + len, "{\"a\":", 5);
        len += 5;
    }
    rc = qbc_payload_parse(body, len, &p);
    ok(rc == QBC_EMALFORMED && consistent(rc, &p), "200000 unclosed {\"a\":");
    qbc_payload_clear(&p);
    free(body);
}

/* ================== hostile input: never crash, stay consistent ================== */

static void test_truncation(void)
{
    static const char *const files[] = {
        "classic-intuit-docs.json",          "classic-java-sdk.json",
        "classic-dotnet-sdk.json",           "cloudevents-intuit-blog.json",
        "cloudevents-dotnet-sdk.json",       "cloudevents-customer-merged.json",
        "cloudevents-employee-created.json", "cloudevents-salesreceipt-updated.json",
    };
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        size_t len, bad = 0, valid_prefixes = 0, end;
        char *s = slurp(files[f], &len), name[200];
        if (s == NULL)
            len = 0;
        /* the shortest complete document: the file without its trailing whitespace */
        for (end = len; end > 0 && (s[end - 1] == '\n' || s[end - 1] == ' '); end--)
            ;
        for (size_t i = 0; i < len; i++) {
            /* each prefix in an exactly-sized heap buffer, so ASan sees any read past it */
            char *copy = malloc(i ? i : 1);
            memcpy(copy, s, i);
            qbc_payload_t p;
            int rc = qbc_payload_parse(copy, i, &p);
            if (!consistent(rc, &p))
                bad++;
            if (rc == 0 || p.n_events != 0)
                valid_prefixes += i < end;
            qbc_payload_clear(&p);
            free(copy);
        }
        snprintf(name, sizeof(name), "%s: every prefix gives a consistent result", files[f]);
        is_int(bad, 0, name);
        snprintf(name, sizeof(name), "%s: no proper prefix yields events", files[f]);
        is_int(valid_prefixes, 0, name);
        free(s);
    }
}

/*
 * puts each of a set of JSON values in place of each member of a valid body. Checks
 * that the result is consistent and that substitutions the format allows still give
 * the event while all others reject it.
 */
static void test_wrong_types(void)
{
    static const char *const values[] = {
        "null", "true",  "false", "0",   "-1", "1.5",       "1e3",
        "\"\"", "\"x\"", "[]",    "[1]", "{}", "{\"a\":1}", "\"\\u00e9\"",
    };
    /* %s marks the substituted position */
    static const struct {
        const char *tmpl;
        const char *ok_values;    /* values (as characters 'a'+i) that keep the event usable */
        const char *empty_values; /* values that leave a well-formed body without events */
    } classic[] = {
        {"{\"eventNotifications\":%s}", "", "j"}, /* [] : no notifications */
        {"{\"eventNotifications\":[%s]}", "", ""},
        {"{\"eventNotifications\":[{\"realmId\":%s,\"dataChangeEvent\":{\"entities\":[{\"name\":\"Bill\",\"id\":\"1\","
         "\"operation\":\"Create\"}]}}]}",
         "diN", ""}, /* 0, "x", "é" */
        {"{\"eventNotifications\":[{\"realmId\":\"1\",\"dataChangeEvent\":%s}]}", "", ""},
        {"{\"eventNotifications\":[{\"realmId\":\"1\",\"dataChangeEvent\":{\"entities\":%s}}]}", "", "j"},
        {"{\"eventNotifications\":[{\"realmId\":\"1\",\"dataChangeEvent\":{\"entities\":[%s]}}]}", "", ""},
        {"{\"eventNotifications\":[{\"realmId\":\"1\",\"dataChangeEvent\":{\"entities\":[{\"name\":%s,\"id\":\"1\","
         "\"operation\":\"Create\"}]}}]}",
         "i", ""}, /* "x" is an entity we do not know: kept as "X" */
        {"{\"eventNotifications\":[{\"realmId\":\"1\",\"dataChangeEvent\":{\"entities\":[{\"name\":\"Bill\",\"id\":%s,"
         "\"operation\":\"Create\"}]}}]}",
         "diN", ""},
        {"{\"eventNotifications\":[{\"realmId\":\"1\",\"dataChangeEvent\":{\"entities\":[{\"name\":\"Bill\",\"id\":"
         "\"1\","
         "\"operation\":%s}]}}]}",
         "", ""},
        {"{\"eventNotifications\":[{\"realmId\":\"1\",\"dataChangeEvent\":{\"entities\":[{\"name\":\"Bill\",\"id\":"
         "\"1\","
         "\"operation\":\"Create\",\"lastUpdated\":%s}]}}]}",
         "a", ""},
        {"{\"eventNotifications\":[{\"realmId\":\"1\",\"dataChangeEvent\":{\"entities\":[{\"name\":\"Bill\",\"id\":"
         "\"1\","
         "\"operation\":\"Merge\",\"deletedId\":%s}]}}]}",
         "adhiN", ""}, /* null, 0, "", "x", "é" */
        {"[{\"specversion\":%s,\"type\":\"qbo.bill.created.v1\",\"intuitentityid\":\"1\",\"intuitaccountid\":\"2\"}]",
         "hiN", ""},
        {"[{\"specversion\":\"1.0\",\"type\":%s,\"intuitentityid\":\"1\",\"intuitaccountid\":\"2\"}]", "", ""},
        {"[{\"specversion\":\"1.0\",\"type\":\"qbo.bill.created.v1\",\"intuitentityid\":%s,\"intuitaccountid\":\"2\"}]",
         "diN", ""},
        {"[{\"specversion\":\"1.0\",\"type\":\"qbo.bill.created.v1\",\"intuitentityid\":\"1\",\"intuitaccountid\":%s}]",
         "diN", ""},
        {"[{\"specversion\":\"1.0\",\"id\":%s,\"type\":\"qbo.bill.created.v1\",\"intuitentityid\":\"1\","
         "\"intuitaccountid\":\"2\"}]",
         "adhiN", ""},
        {"[{\"specversion\":\"1.0\",\"time\":%s,\"type\":\"qbo.bill.created.v1\",\"intuitentityid\":\"1\","
         "\"intuitaccountid\":\"2\"}]",
         "a", ""},
        {"[{\"specversion\":\"1.0\",\"type\":\"qbo.bill.merged.v1\",\"intuitentityid\":\"1\",\"intuitaccountid\":\"2\","
         "\"data\":%s}]",
         "abcdefghijklmN", ""}, /* data of any shape is not relied upon */
        {"[{\"specversion\":\"1.0\",\"type\":\"qbo.bill.merged.v1\",\"intuitentityid\":\"1\",\"intuitaccountid\":\"2\","
         "\"data\":{\"deletedid\":%s}}]",
         "adhiN", ""},
        {"[%s,{\"specversion\":\"1.0\",\"type\":\"qbo.bill.created.v1\",\"intuitentityid\":\"1\",\"intuitaccountid\":"
         "\"2\"}]",
         "", ""}, /* the bad first element is rejected, the second is kept: checked below as 1 event + 1 rejected */
    };
    size_t inconsistent = 0, wrong_outcome = 0, cases = 0;
    for (size_t t = 0; t < sizeof(classic) / sizeof(classic[0]); t++) {
        for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
            char body[600];
            qbc_payload_t p;
            /* values use 'a'.. for the first 13 and 'N' for the 14th (the é string) */
            char code = v < 13 ? (char)('a' + v) : 'N';
            int usable = strchr(classic[t].ok_values, code) != NULL;
            int empty = classic[t].empty_values != NULL && strchr(classic[t].empty_values, code) != NULL;
            int last = t == sizeof(classic) / sizeof(classic[0]) - 1;
            snprintf(body, sizeof(body), classic[t].tmpl, values[v]);
            int rc = parse(body, &p);
            cases++;
            if (!consistent(rc, &p))
                inconsistent++;
            if (last) {
                if (!(rc == QBC_EMALFORMED && p.n_events == 1 && p.n_rejected == 1))
                    wrong_outcome++;
            } else if (empty    ? (rc != 0 || p.n_events != 0)
                       : usable ? (rc != 0 || p.n_events != 1)
                                : (rc != QBC_EMALFORMED || p.n_events != 0)) {
                printf("#   unexpected: %s -> rc %d, %zu events (%s)\n", body, rc, p.n_events, p.error);
                wrong_outcome++;
            }
            qbc_payload_clear(&p);
        }
    }
    ok(cases == 20 * 14, "all substitutions tried");
    is_int(inconsistent, 0, "every substitution gives a consistent result");
    is_int(wrong_outcome, 0, "every substitution is accepted or rejected as the format says");
}

/* xorshift64*: a fixed-seed generator, so a failure reproduces */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

static void test_mutations(void)
{
    static const char *const files[] = {"classic-intuit-docs.json", "classic-dotnet-sdk.json",
                                        "cloudevents-customer-merged.json", "cloudevents-dotnet-sdk.json"};
    static const char interesting[] = "{}[]\",:0123456789.-+eE\\u \t\n\0\x01\x7f\x80\xff";
    size_t bad = 0, runs = 0, with_events = 0;

    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        size_t len;
        char *s = slurp(files[f], &len);
        if (s == NULL)
            continue;
        for (int iter = 0; iter < 5000; iter++) {
            size_t n = len, edits = 1 + rng() % 4;
            char *m = malloc(len + 8);
            memcpy(m, s, len);
            for (size_t e = 0; e < edits && n > 0; e++) {
                size_t at = rng() % n;
                switch (rng() % 4) {
                case 0: /* overwrite a byte */
                    m[at] = interesting[rng() % (sizeof(interesting) - 1)];
                    break;
                case 1: /* delete a byte */
                    memmove(m + at, m + at + 1, n - at - 1);
                    n--;
                    break;
                case 2: /* duplicate a byte (grows by at most 4 in total) */
                    if (n < len + 8) {
                        memmove(m + at + 1, m + at, n - at);
                        n++;
                    }
                    break;
                default: /* truncate */
                    n = at;
                    break;
                }
            }
            /* an exactly-sized copy, so ASan catches reads past n */
            char *exact = malloc(n ? n : 1);
            memcpy(exact, m, n);
            qbc_payload_t p;
            int rc = qbc_payload_parse(exact, n, &p);
            runs++;
            if (!consistent(rc, &p)) {
                bad++;
                /* the body itself may hold newlines and NULs, which TAP output cannot carry */
                printf("#   inconsistent: %s mutation %d: rc %d, format %d, %zu events, %zu rejected, \"%s\"\n",
                       files[f], iter, rc, p.format, p.n_events, p.n_rejected, p.error);
            }
            with_events += p.n_events != 0;
            qbc_payload_clear(&p);
            free(exact);
            free(m);
        }
        free(s);
    }
    is_int(runs, 20000, "20000 random mutations parsed");
    is_int(bad, 0, "every mutation gives a consistent result");
    ok(with_events > 0, "some mutations still carry usable events (the mutator is not just breaking JSON)");
}

/* ======================== names and operations ======================== */

static void test_entity_canonical(void)
{
    char out[QBC_ENTITY_MAX];
    static const char *const names[] = {
        "Account",     "Bill",         "BillPayment",   "Budget",        "Class",        "CreditMemo",
        "Currency",    "Customer",     "Department",    "Deposit",       "Employee",     "Estimate",
        "Invoice",     "Item",         "JournalCode",   "JournalEntry",  "Payment",      "PaymentMethod",
        "Preferences", "Purchase",     "PurchaseOrder", "RefundReceipt", "SalesReceipt", "TaxAgency",
        "Term",        "TimeActivity", "Transfer",      "Vendor",        "VendorCredit", "CompanyCurrency",
        "ChangeOrder", "TaxCode",      "TaxRate",       "CompanyInfo",   "Attachable",
    };
    size_t wrong = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char lower[QBC_ENTITY_MAX], upper[QBC_ENTITY_MAX];
        size_t n = strlen(names[i]);
        for (size_t j = 0; j <= n; j++) {
            lower[j] = (char)(names[i][j] >= 'A' && names[i][j] <= 'Z' ? names[i][j] + 32 : names[i][j]);
            upper[j] = (char)(names[i][j] >= 'a' && names[i][j] <= 'z' ? names[i][j] - 32 : names[i][j]);
        }
        if (qbc_entity_canonical(lower, n, out) != 0 || strcmp(out, names[i]) != 0)
            wrong++;
        if (qbc_entity_canonical(upper, n, out) != 0 || strcmp(out, names[i]) != 0)
            wrong++;
        if (qbc_entity_canonical(names[i], n, out) != 0 || strcmp(out, names[i]) != 0)
            wrong++;
    }
    is_int(wrong, 0, "every QBO webhook entity maps from any case to its canonical name");

    is_int(qbc_entity_canonical("journalentry", 12, out), 0, "journalentry");
    is_str(out, "JournalEntry", "journalentry -> JournalEntry");
    is_int(qbc_entity_canonical("invoiceXYZ", 7, out), 0, "only len bytes are read");
    is_str(out, "Invoice", "invoiceXYZ/7 -> Invoice");
    is_int(qbc_entity_canonical("widget", 6, out), 0, "unknown entity accepted");
    is_str(out, "Widget", "unknown: first letter upper-cased");
    is_int(qbc_entity_canonical("payrollEMPLOYEE", 15, out), 0, "unknown mixed case");
    is_str(out, "PayrollEMPLOYEE", "unknown: the rest kept as sent");
    is_int(qbc_entity_canonical("invoices", 8, out), 0, "near miss is unknown, not Invoice");
    is_str(out, "Invoices", "invoices -> Invoices");
    is_int(qbc_entity_canonical("invoic", 6, out), 0, "prefix is unknown, not Invoice");
    is_str(out, "Invoic", "invoic -> Invoic");
    is_int(qbc_entity_canonical("1099Vendor", 10, out), 0, "leading digit allowed");
    is_str(out, "1099Vendor", "digit stays");
    is_int(qbc_entity_canonical("", 0, out), QBC_EMALFORMED, "empty");
    is_str(out, "", "out is emptied on error");
    is_int(qbc_entity_canonical(NULL, 3, out), QBC_EMALFORMED, "NULL");
    is_int(qbc_entity_canonical("Bill-Payment", 12, out), QBC_EMALFORMED, "dash");
    is_int(qbc_entity_canonical("Bill Payment", 12, out), QBC_EMALFORMED, "space");
    is_int(qbc_entity_canonical("Bill_Payment", 12, out), QBC_EMALFORMED, "underscore");
    is_int(qbc_entity_canonical("In\0voice", 8, out), QBC_EMALFORMED, "embedded NUL");
    is_int(qbc_entity_canonical("\xc3\x8fnvoice", 8, out), QBC_EMALFORMED, "non-ASCII letter");
    char name[QBC_ENTITY_MAX + 1];
    memset(name, 'x', sizeof(name));
    is_int(qbc_entity_canonical(name, QBC_ENTITY_MAX - 1, out), 0, "47 characters fit");
    is_int(strlen(out), QBC_ENTITY_MAX - 1, "all 47 kept");
    is_int(qbc_entity_canonical(name, QBC_ENTITY_MAX, out), QBC_EMALFORMED, "48 characters do not");
}

/* issue 9: names an operator may ask for are checked against the table, in any case */
static void test_entity_known(void)
{
    char out[QBC_ENTITY_MAX], list[1024], err[1200];

    is_int(qbc_entity_known("invoice", 7, out), 0, "invoice is known");
    is_str(out, "Invoice", "and canonicalized");
    is_int(qbc_entity_known("JOURNALENTRY", 12, out), 0, "any case");
    is_str(out, "JournalEntry", "JOURNALENTRY -> JournalEntry");
    is_int(qbc_entity_known("Widget", 6, out), QBC_ENOTFOUND, "a name not in the table is unknown");
    is_str(out, "", "out is emptied");
    is_int(qbc_entity_known("Invoices", 8, out), QBC_ENOTFOUND, "a near miss is unknown");
    is_int(qbc_entity_known("", 0, out), QBC_ENOTFOUND, "empty");
    qbc_entity_known_list(list, sizeof(list));
    ok(strncmp(list, "Account, Attachable, Bill, ", 27) == 0 && strstr(list, ", VendorCredit") != NULL,
       "the known list names the table in order");

    is_int(qbc_entity_list_check(" invoice ,Bill,invoice", list, sizeof(list), err, sizeof(err)), 0, "a list");
    is_str(list, "Invoice,Bill", "canonicalized, trimmed, each once");
    is_int(qbc_entity_list_check("Invoice,Foo", list, sizeof(list), err, sizeof(err)), QBC_ENOTFOUND,
           "an unknown name in a list");
    ok(strncmp(err, "unknown entity 'Foo' (known: Account, ", 38) == 0, "the error names it and the known ones");
    is_int(qbc_entity_list_check(" , ", list, sizeof(list), err, sizeof(err)), QBC_EINVAL, "an empty list");
    is_int(qbc_entity_list_check("Invoice,Bill", list, 8, err, sizeof(err)), QBC_EINVAL, "out too small");
}

static void test_op_parse(void)
{
    static const struct {
        const char *word;
        qbc_op_t op;
    } words[] = {
        {"Create", QBC_OP_CREATE},    {"created", QBC_OP_CREATE},  {"CREATE", QBC_OP_CREATE},
        {"Update", QBC_OP_UPDATE},    {"updated", QBC_OP_UPDATE},  {"uPdAtEd", QBC_OP_UPDATE},
        {"Delete", QBC_OP_DELETE},    {"deleted", QBC_OP_DELETE},  {"Merge", QBC_OP_MERGE},
        {"merged", QBC_OP_MERGE},     {"Void", QBC_OP_VOID},       {"void", QBC_OP_VOID},
        {"voided", QBC_OP_VOID},      {"VOIDED", QBC_OP_VOID},     {"Emailed", QBC_OP_EMAILED},
        {"emailed", QBC_OP_EMAILED},  {"", QBC_OP_UNKNOWN},        {"creat", QBC_OP_UNKNOWN},
        {"createdd", QBC_OP_UNKNOWN}, {"email", QBC_OP_UNKNOWN},   {"remove", QBC_OP_UNKNOWN},
        {"Create ", QBC_OP_UNKNOWN},  {" Create", QBC_OP_UNKNOWN}, {"unknown", QBC_OP_UNKNOWN},
        {"voi", QBC_OP_UNKNOWN},      {"mergedd", QBC_OP_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        char name[64];
        snprintf(name, sizeof(name), "op \"%s\"", words[i].word);
        is_int(qbc_op_parse(words[i].word, strlen(words[i].word)), words[i].op, name);
    }
    is_int(qbc_op_parse(NULL, 0), QBC_OP_UNKNOWN, "NULL");
    is_int(qbc_op_parse("createdXYZ", 7), QBC_OP_CREATE, "reads only len bytes");
    is_int(qbc_op_parse("created", 6), QBC_OP_CREATE, "created/6 is create");
    is_int(qbc_op_parse("deleted\0", 8), QBC_OP_UNKNOWN, "trailing NUL inside len");
}

static void test_clear(void)
{
    qbc_payload_t p;
    size_t len;
    char *s = slurp("classic-intuit-docs.json", &len);
    qbc_payload_parse(s, len, &p);
    qbc_payload_clear(&p);
    ok(p.events == NULL && p.n_events == 0 && p.n_rejected == 0 && p.format == QBC_FORMAT_UNKNOWN && p.error[0] == '\0',
       "clear resets everything");
    qbc_payload_clear(&p);
    ok(p.events == NULL, "clear twice is harmless");
    qbc_payload_clear(NULL); /* harmless: the reparse below still works */
    /* out is overwritten, not appended to: a second parse into the same struct after clear */
    qbc_payload_parse(s, len, &p);
    is_int(p.n_events, 2, "clear(NULL) is harmless, and a reparse after clear overwrites");
    qbc_payload_clear(&p);
    free(s);
}

int main(void)
{
    subtest("Intuit classic samples", test_fixture_classic);
    subtest("Intuit CloudEvents samples", test_fixture_cloudevents);
    subtest("classic variants", test_classic_variants);
    subtest("classic rejections", test_classic_rejections);
    subtest("CloudEvents types", test_cloudevents_types);
    subtest("CloudEvents variants", test_cloudevents_variants);
    subtest("CloudEvents rejections", test_cloudevents_rejections);
    subtest("bodies that are not webhooks", test_not_a_webhook);
    subtest("NUL bytes", test_nul_bytes);
    subtest("field sizes", test_field_sizes);
    subtest("huge arrays", test_huge_arrays);
    subtest("deep nesting", test_deep_nesting);
    subtest("truncation", test_truncation);
    subtest("wrong types at every level", test_wrong_types);
    subtest("random mutations", test_mutations);
    subtest("entity names", test_entity_canonical);
    subtest("known entity names", test_entity_known);
    subtest("operations", test_op_parse);
    subtest("clear", test_clear);
    return done_testing();
}
