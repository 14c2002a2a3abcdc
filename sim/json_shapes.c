/*
 * json_shapes.c — QBO's wire shapes for entities and faults.
 *
 * Sources (qbo-facts.md): entity read §9 (key order follows the Invoice sample:
 * SyncToken, MetaData, Id, domain, sparse); the deleted stub §2 (status, domain,
 * Id, MetaData.LastUpdatedTime); Fault §6 (Message, Detail, code, element; code is
 * a string, Error an array); the gateway's lowercase 401 §6 (time is epoch ms);
 * the throttle XML §5.
 *
 * Entity bodies carry only fields named in the sources: Active (name-list
 * entities, §3), TotalAmt (§4 query sample), PrivateNote ("Voided", §9), and from
 * Intuit's API reference (its Invoice sample): Customer/Vendor DisplayName and
 * Balance, Invoice Line (Description, DetailType, SalesItemLineDetail, LineNum,
 * Amount, Id) and CustomField (DefinitionId, Name, Type, StringValue).
 *
 * Entities are written as text, not through jansson: QBO's JSON must reach qbcdc's
 * consumers byte for byte (issue 9), so qbosim sends spellings that a parse to
 * doubles and a re-serialisation would change. A double cannot hold 2932.92, and
 * jansson cannot write 1e-7, -0.0 or an integer past int64 as given, nor keep an
 * escape such as \/ or \u00e9. Money comes from integer cents; the exact-value
 * cases below are literal wire text. Every answer carrying an entity splices the
 * bytes of sim_entity_write, so reads, queries, CDC and batch agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"
#include "sim.h"

/* ============================ text writer ============================ */

/* The buffers here have no max, so an append cannot fail (OOM aborts). */
static void put(qbc_buf_t *out, const char *s)
{
    (void)qbc_buf_append(out, s, strlen(s));
}

void sim_json_money(int64_t cents, qbc_buf_t *out)
{
    uint64_t mag = cents < 0 ? 0 - (uint64_t)cents : (uint64_t)cents;
    (void)qbc_buf_printf(out, "%s%llu.%02llu", cents < 0 ? "-" : "", (unsigned long long)(mag / 100),
                         (unsigned long long)(mag % 100));
}

void sim_json_plain_string(const char *s, qbc_buf_t *out)
{
    for (const char *p = s; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            qbc_fatal("sim_json_plain_string: text that needs escaping: %s", s);
    put(out, "\"");
    put(out, s);
    put(out, "\"");
}

void sim_json_splice(const json_t *j, qbc_buf_t *out)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    if (!s)
        qbc_fatal("json_dumps failed");
    put(out, s);
    free(s);
}

char *sim_json_dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    if (!s)
        qbc_fatal("json_dumps failed");
    return s;
}

/* ============================== entities ============================= */

/*
 * The exact-value cases (sim/README.md lists them for test writers). The entity with
 * Id i of a type carries case k = (i - 1) % SIM_EXACT_CYCLE when k is below the number
 * of cases; other ids carry ordinary values. Each entry is JSON text as it goes on the
 * wire: numbers as QBO might spell them, strings already escaped (the bytes between
 * the quotes). Numbers go into Customer/Vendor Balance and Invoice Line Amount;
 * strings into Customer/Vendor DisplayName (followed by " <Id>": QBO keeps them
 * unique), Invoice Line Description and CustomField StringValue.
 */
static const char *const exact_numbers[] = {
    "2932.92",              /* a double holds 2932.92000000000007..., %.17g gives 2932.9200000000001 */
    "73.69",                /* %.17g gives 73.689999999999998 */
    "0.1",                  /* %.17g gives 0.10000000000000001 */
    "1e-7",                 /* %.17g gives 9.9999999999999995e-08 */
    "12345678901234567890", /* past int64: jansson's parser refuses it */
    "-0.0",                 /* a sign that compares equal to 0: easy to drop */
    "1E+2",                 /* an upper-case exponent with a sign: reprinted 100.0 */
    "0.30000000000000004",  /* 17 significant digits: precision 15 makes it 0.3 */
};
#define N_EXACT_NUMBERS (sizeof(exact_numbers) / sizeof(exact_numbers[0]))

static const char *const exact_strings[] = {
    "Caf\\u00e9",             /* an escaped é: a re-serialiser writes the raw bytes */
    "Caf\xc3\xa9",            /* a raw UTF-8 é: an ASCII-only serialiser escapes it */
    "Parts \\/ Labour",       /* an escaped solidus: re-serialised as a bare / */
    "Smile \xf0\x9f\x98\x80", /* a raw 4-byte UTF-8 emoji */
    "Smile \\ud83d\\ude00",   /* the same emoji as an escaped surrogate pair */
    "The \\\"Best\\\" Co",    /* escaped quotes */
    "C:\\\\Books\\\\2026",    /* escaped backslashes */
    "Line one\\nLine two",    /* an escaped newline */
};
#define N_EXACT_STRINGS (sizeof(exact_strings) / sizeof(exact_strings[0]))

/* the exact-value case of an Id, or -1 for an ordinary one */
static int exact_case(uint32_t id, size_t ncases)
{
    uint32_t k = (id - 1) % SIM_EXACT_CYCLE;
    return k < ncases ? (int)k : -1;
}

/* appends a JSON string whose content is lit, already escaped (the exact-value strings) */
static void put_escaped(qbc_buf_t *out, const char *lit)
{
    put(out, "\"");
    put(out, lit);
    put(out, "\"");
}

/* "DisplayName":..,"Balance":.. of a Customer or Vendor; an ordinary Balance is a pure
 * function of the Id (name lists have no amount in the model) */
static void write_party(int etype, const sim_entity_t *e, qbc_buf_t *out)
{
    int ks = exact_case(e->id, N_EXACT_STRINGS), kn = exact_case(e->id, N_EXACT_NUMBERS);
    put(out, ",\"DisplayName\":\"");
    put(out, ks >= 0 ? exact_strings[ks] : sim_etype_names[etype]);
    (void)qbc_buf_printf(out, " %u\",\"Balance\":", e->id);
    if (kn >= 0)
        put(out, exact_numbers[kn]);
    else
        sim_json_money((int64_t)((e->id * 7919u) % 500000u), out);
}

/* "Line":[..],"CustomField":[..] of an Invoice. The sales line's Amount is TotalAmt's
 * unless the Id carries an exact number; a void zeroes both (§9). */
static void write_invoice_detail(const sim_entity_t *e, qbc_buf_t *out)
{
    int ks = exact_case(e->id, N_EXACT_STRINGS), kn = exact_case(e->id, N_EXACT_NUMBERS);
    put(out, ",\"Line\":[{\"Description\":");
    if (ks >= 0)
        put_escaped(out, exact_strings[ks]);
    else
        sim_json_plain_string("Services", out);
    put(out, ",\"DetailType\":\"SalesItemLineDetail\",\"SalesItemLineDetail\":{},\"LineNum\":1,\"Amount\":");
    if (kn >= 0 && !e->voided)
        put(out, exact_numbers[kn]);
    else
        sim_json_money(e->amount_cents, out);
    put(out, ",\"Id\":\"1\"}],\"CustomField\":[{\"DefinitionId\":\"1\",\"Name\":\"Ref\",\"Type\":\"StringType\","
             "\"StringValue\":");
    if (ks >= 0)
        put_escaped(out, exact_strings[ks]);
    else
        (void)qbc_buf_printf(out, "\"REF-%u\"", e->id);
    put(out, "}]");
}

void sim_entity_write(int etype, const sim_entity_t *e, qbc_buf_t *out)
{
    char buf[40];
    if (e->deleted) {
        (void)qbc_buf_printf(out, "{\"status\":\"Deleted\",\"domain\":\"QBO\",\"Id\":\"%u\",\"MetaData\":", e->id);
        put(out, "{\"LastUpdatedTime\":");
        sim_json_plain_string(sim_time_pacific(e->update_ns, 0, 1, buf), out);
        put(out, "}}");
        return;
    }
    if (sim_etype_is_namelist(etype)) {
        put(out, e->active ? "{\"Active\":true" : "{\"Active\":false");
        if (etype == SIM_CUSTOMER || etype == SIM_VENDOR)
            write_party(etype, e, out);
    } else {
        put(out, "{\"TotalAmt\":");
        sim_json_money(e->amount_cents, out);
        if (e->voided)
            put(out, ",\"PrivateNote\":\"Voided\"");
        if (etype == SIM_INVOICE)
            write_invoice_detail(e, out);
    }
    (void)qbc_buf_printf(out, ",\"SyncToken\":\"%u\",\"MetaData\":{\"CreateTime\":", e->sync_token);
    sim_json_plain_string(sim_time_pacific(e->create_ns, 0, 1, buf), out);
    put(out, ",\"LastUpdatedTime\":");
    sim_json_plain_string(sim_time_pacific(e->update_ns, 0, 1, buf), out);
    (void)qbc_buf_printf(out, "},\"Id\":\"%u\",\"domain\":\"QBO\",\"sparse\":false}", e->id);
}

json_t *sim_fault_json(const char *type, const char *code, const char *message, const char *detail, int64_t now_ns)
{
    char buf[40];
    json_t *err = json_object();
    json_object_set_new(err, "Message", json_string(message));
    json_object_set_new(err, "Detail", json_string(detail ? detail : message));
    json_object_set_new(err, "code", json_string(code));
    json_object_set_new(err, "element", json_string(""));
    json_t *errs = json_array();
    json_array_append_new(errs, err);
    json_t *fault = json_object();
    json_object_set_new(fault, "Error", errs);
    json_object_set_new(fault, "type", json_string(type));
    json_t *root = json_object();
    json_object_set_new(root, "Fault", fault);
    json_object_set_new(root, "time", json_string(sim_time_pacific(now_ns, 1, 1, buf)));
    return root;
}

json_t *sim_auth_fault_json(const char *detail, int64_t now_ns)
{
    json_t *err = json_object();
    json_object_set_new(err, "message", json_string("message=AuthenticationFailed; errorCode=003200; statusCode=401"));
    json_object_set_new(err, "detail", json_string(detail));
    json_object_set_new(err, "code", json_string("3200"));
    json_object_set_new(err, "element", json_null());
    json_t *errs = json_array();
    json_array_append_new(errs, err);
    json_t *fault = json_object();
    json_object_set_new(fault, "error", errs);
    json_object_set_new(fault, "type", json_string("AUTHENTICATION"));
    json_t *root = json_object();
    json_object_set_new(root, "warnings", json_null());
    json_object_set_new(root, "intuitObject", json_null());
    json_object_set_new(root, "fault", fault);
    json_object_set_new(root, "time", json_integer(now_ns / 1000000));
    return root;
}

char *sim_throttle_xml(int64_t now_ns)
{
    char buf[40], *out;
    if (asprintf(
            &out,
            "<IntuitResponse time=\"%s\" xmlns=\"http://schema.intuit.com/finance/v3\">\n"
            " <Fault type=\"SERVICE\"><Error code=\"3001\">\n"
            "  <Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>\n"
            "  <Detail>The request limit was reached.  Try again later</Detail></Error></Fault></IntuitResponse>\n",
            sim_time_pacific(now_ns, 1, 1, buf)) < 0)
        qbc_fatal("out of memory");
    return out;
}
