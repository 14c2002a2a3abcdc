/*
 * tests sim/json_shapes.c's entity text (issue 9): money from cents, the exact-value
 * cases by Id, valid JSON, and the same bytes for one entity in every answer that
 * carries it (query, CDC). Comparisons are on raw bytes, never on parsed values,
 * except where a parse proves which escape was meant.
 */
#include "../../../sim/simutil.c"
#include "../../../sim/model.c"
#include "../../../sim/json_shapes.c"
#include "../../../sim/query.c"
#include "../../../sim/cdc.c"
#include "tap.h"

static const int64_t T0 = 1700000000LL * 1000000000LL;

/* the entity's text; caller frees */
static char *entity_text(sim_model_t *m, int etype, uint32_t id)
{
    qbc_buf_t b = {0};
    sim_entity_write(etype, sim_model_get(m, 0, etype, id), &b);
    return b.data;
}

static json_t *parse(const char *s)
{
    json_error_t jerr;
    json_t *j = json_loads(s, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!j)
        diag(jerr.text);
    return j;
}

static int contains(const char *hay, const char *needle)
{
    return hay && needle && strstr(hay, needle) != NULL;
}

static void test_money(void)
{
    static const struct {
        int64_t cents;
        const char *text;
    } cases[] = {{293292, "2932.92"}, {7369, "73.69"}, {10, "0.10"},  {0, "0.00"},
                 {5, "0.05"},         {100, "1.00"},   {-5, "-0.05"}, {-123456, "-1234.56"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        qbc_buf_t b = {0};
        sim_json_money(cases[i].cents, &b);
        is_str(b.data, cases[i].text, cases[i].text);
        qbc_buf_free(&b, 0);
    }
}

/* every entity of every type parses and appears byte for byte in a query and a CDC answer */
static void check_same_bytes(sim_model_t *m, const char *when)
{
    int all_types[SIM_NTYPES];
    for (int t = 0; t < SIM_NTYPES; t++)
        all_types[t] = t;
    qbc_buf_t cdc = {0};
    sim_cdc_run(m, 0, all_types, SIM_NTYPES, 0, (size_t)-1, NULL, &cdc);
    json_t *cj = parse(cdc.data);
    size_t bad_parse = 0, bad_query = 0, not_in_query = 0, not_in_cdc = 0, n = 0, empty_types = 0;
    for (int t = 0; t < SIM_NTYPES; t++) {
        char stmt[128], err[256];
        sim_query_t q;
        snprintf(stmt, sizeof(stmt), "SELECT * FROM %s%s MAXRESULTS 1000", sim_etype_names[t],
                 sim_etype_is_namelist(t) ? " WHERE Active IN (true,false)" : "");
        if (sim_query_parse(stmt, strlen(stmt), &q, err, sizeof(err)) != 0) {
            diag(err);
            bad_query++; /* its entities go unchecked: that must fail below */
            continue;
        }
        qbc_buf_t qr = {0};
        sim_query_run(m, 0, &q, &qr);
        sim_query_dispose(&q);
        json_t *qj = parse(qr.data);
        bad_parse += qj == NULL;
        json_decref(qj);
        empty_types += m->realms[0].t[t].n == 0; /* nothing of it would be checked below */
        for (uint32_t id = 1; id <= m->realms[0].t[t].n; id++, n++) {
            char *text = entity_text(m, t, id);
            json_t *j = parse(text);
            bad_parse += !json_is_object(j);
            json_decref(j);
            if (!sim_model_get(m, 0, t, id)->deleted && !contains(qr.data, text))
                not_in_query++;
            if (!contains(cdc.data, text))
                not_in_cdc++;
            free(text);
        }
        qbc_buf_free(&qr, 0);
    }
    char name[160];
    snprintf(name, sizeof(name), "%s: every entity type's query parses", when);
    is_int(bad_query, 0, name);
    snprintf(name, sizeof(name), "%s: every entity type has entities to check", when);
    is_int(empty_types, 0, name);
    snprintf(name, sizeof(name), "%s: the CDC answer is valid JSON", when);
    ok(cj != NULL, name);
    snprintf(name, sizeof(name), "%s: %zu entities and their query answers are valid JSON", when, n);
    is_int(bad_parse, 0, name);
    snprintf(name, sizeof(name), "%s: each live entity's bytes appear verbatim in a query answer", when);
    is_int(not_in_query, 0, name);
    snprintf(name, sizeof(name), "%s: each entity's bytes (deleted stubs too) appear verbatim in CDC", when);
    is_int(not_in_cdc, 0, name);
    json_decref(cj);
    qbc_buf_free(&cdc, 0);
}

static void test_exact_cases(void)
{
    sim_model_t m;
    sim_model_init(&m, 1, 20, 5, T0, 10);
    char want[160], name[200];
    for (uint32_t k = 0; k < N_EXACT_NUMBERS; k++) {
        uint32_t id = k + 1;
        char *c = entity_text(&m, SIM_CUSTOMER, id), *v = entity_text(&m, SIM_VENDOR, id);
        char *inv = entity_text(&m, SIM_INVOICE, id);
        snprintf(want, sizeof(want), "\"Balance\":%s,", exact_numbers[k]);
        snprintf(name, sizeof(name), "Customer/Vendor %u carry %s", id, want);
        ok(contains(c, want) && contains(v, want), name);
        snprintf(want, sizeof(want), "\"Amount\":%s,", exact_numbers[k]);
        snprintf(name, sizeof(name), "Invoice %u carries %s", id, want);
        ok(contains(inv, want), name);
        free(c);
        free(v);
        free(inv);
    }
    for (uint32_t k = 0; k < N_EXACT_STRINGS; k++) {
        uint32_t id = k + 1;
        char *c = entity_text(&m, SIM_CUSTOMER, id), *inv = entity_text(&m, SIM_INVOICE, id);
        snprintf(want, sizeof(want), "\"DisplayName\":\"%s %u\"", exact_strings[k], id);
        snprintf(name, sizeof(name), "Customer %u carries %s", id, want);
        ok(contains(c, want), name);
        snprintf(want, sizeof(want), "\"Description\":\"%s\"", exact_strings[k]);
        int d = contains(inv, want);
        snprintf(want, sizeof(want), "\"StringValue\":\"%s\"", exact_strings[k]);
        snprintf(name, sizeof(name), "Invoice %u carries it as Line Description and CustomField StringValue", id);
        ok(d && contains(inv, want), name);
        free(c);
        free(inv);
    }
    /* the escapes mean what they should: parse the DisplayNames */
    static const char *const decoded[] = {"Caf\xc3\xa9 1",
                                          "Caf\xc3\xa9 2",
                                          "Parts / Labour 3",
                                          "Smile \xf0\x9f\x98\x80 4",
                                          "Smile \xf0\x9f\x98\x80 5",
                                          "The \"Best\" Co 6",
                                          "C:\\Books\\2026 7",
                                          "Line one\nLine two 8"};
    for (uint32_t k = 0; k < N_EXACT_STRINGS; k++) {
        char *c = entity_text(&m, SIM_CUSTOMER, k + 1);
        json_t *j = parse(c);
        snprintf(name, sizeof(name), "Customer %u's DisplayName decodes as meant", k + 1);
        is_str(json_string_value(json_object_get(j, "DisplayName")), decoded[k], name);
        json_decref(j);
        free(c);
    }
    /* money from cents in TotalAmt, pinned by Id */
    static const char *const money[] = {"\"TotalAmt\":2932.92,", "\"TotalAmt\":73.69,", "\"TotalAmt\":0.10,"};
    int etypes[] = {SIM_INVOICE, SIM_PAYMENT, SIM_BILL, SIM_JOURNALENTRY};
    for (uint32_t k = 0; k < 3; k++) {
        int all = 1;
        for (size_t t = 0; t < 4; t++) {
            char *s = entity_text(&m, etypes[t], k + 1), *again = entity_text(&m, etypes[t], k + 1 + SIM_EXACT_CYCLE);
            all = all && contains(s, money[k]) && contains(again, money[k]);
            free(s);
            free(again);
        }
        snprintf(name, sizeof(name), "transactions %u and %u of each type carry %s", k + 1, k + 1 + SIM_EXACT_CYCLE,
                 money[k]);
        ok(all, name);
    }
    char *plain = entity_text(&m, SIM_CUSTOMER, 9);
    ok(contains(plain, "\"DisplayName\":\"Customer 9\""), "ids past the cases carry ordinary values");
    free(plain);
    plain = entity_text(&m, SIM_ITEM, 1);
    ok(!contains(plain, "DisplayName") && contains(plain, "{\"Active\":"), "Item keeps its fields");
    free(plain);
    sim_model_dispose(&m);
}

static void test_every_answer_same_bytes(void)
{
    sim_model_t m;
    sim_model_init(&m, 1, 20, 5, T0, 10);
    check_same_bytes(&m, "seeded");
    sim_change_t c;
    size_t voids = 0;
    for (int i = 0; i < 400; i++) {
        sim_model_mutate(&m, 0, T0 + (int64_t)i * 1000000000LL, &c);
        voids += c.op == SIM_OP_VOID;
    }
    check_same_bytes(&m, "after 400 changes");
    /* a void zeroes every amount (§9) */
    size_t checked = 0, good = 0;
    for (uint32_t id = 1; id <= m.realms[0].t[SIM_INVOICE].n; id++) {
        const sim_entity_t *e = sim_model_get(&m, 0, SIM_INVOICE, id);
        if (!e->voided || e->deleted)
            continue;
        char *s = entity_text(&m, SIM_INVOICE, id);
        checked++;
        good += contains(s, "{\"TotalAmt\":0.00,\"PrivateNote\":\"Voided\",") && contains(s, "\"Amount\":0.00,");
        free(s);
    }
    ok(voids > 0 && checked > 0, "some invoices were voided");
    is_int(good, checked, "a voided invoice has TotalAmt and Line Amount 0.00 and PrivateNote Voided");
    sim_model_dispose(&m);
}

int main(void)
{
    subtest("money", test_money);
    subtest("exact cases by Id", test_exact_cases);
    subtest("same bytes in every answer", test_every_answer_same_bytes);
    return done_testing();
}
