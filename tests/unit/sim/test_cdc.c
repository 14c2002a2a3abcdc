/* tests sim/cdc.c: nesting, deleted-after-active, the 1000-object cap (qbo-facts §2). */
#include "../../../sim/simutil.c"
#include "../../../sim/model.c"
#include "../../../sim/json_shapes.c"
#include "../../../sim/cdc.c"
#include "tap.h"

static const int64_t T0 = 1700000000LL * 1000000000LL;

/* runs CDC and parses its text; every number becomes a real, as qbosim sends integers past int64 */
static json_t *run_cdc(sim_model_t *m, int realm, const int *etypes, size_t n, int64_t since_ns, size_t max_objects,
                       size_t *out_total)
{
    qbc_buf_t b = {0};
    json_error_t jerr;
    sim_cdc_run(m, realm, etypes, n, since_ns, max_objects, out_total, &b);
    json_t *j = json_loadb(b.data, b.len, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!j)
        diag(jerr.text);
    qbc_buf_free(&b, 0);
    return j;
}

static void test_shape(void)
{
    sim_model_t m;
    sim_model_init(&m, 1, 5, 3, T0, 10);
    int types[] = {SIM_INVOICE, SIM_CUSTOMER};
    size_t total = 99;
    /* nothing changed after T0 */
    json_t *c = run_cdc(&m, 0, types, 2, T0 + 1, 1000, &total);
    is_int(total, 0, "no changes");
    json_t *qr = json_object_get(json_array_get(c, 0), "QueryResponse");
    ok(json_is_array(qr), "CDCResponse[0].QueryResponse is an array");
    is_int(json_array_size(qr), 2, "one element per entity");
    is_int(json_object_size(json_array_get(qr, 0)), 0, "empty element is {}");
    json_decref(c);

    /* changes: delete one invoice, update another */
    sim_entity_t *a = &m.realms[0].t[SIM_INVOICE].e[1], *b = &m.realms[0].t[SIM_INVOICE].e[3];
    a->deleted = 1;
    a->update_ns = T0 + 5000000000LL;
    b->sync_token++;
    b->update_ns = T0 + 6000000000LL;
    c = run_cdc(&m, 0, types, 2, T0, 1000, &total);
    is_int(total, 2, "two objects");
    qr = json_object_get(json_array_get(c, 0), "QueryResponse");
    json_t *inv = json_object_get(json_array_get(qr, 0), "Invoice");
    is_int(json_array_size(inv), 2, "two invoices");
    ok(json_object_get(json_array_get(inv, 0), "status") == NULL, "active first (although updated later)");
    is_str(json_string_value(json_object_get(json_array_get(inv, 1), "status")), "Deleted", "deleted last");
    is_str(json_string_value(json_object_get(json_array_get(inv, 1), "domain")), "QBO", "deleted stub has domain");
    is_str(json_string_value(json_object_get(json_array_get(inv, 1), "Id")), "2", "deleted stub has Id");
    ok(json_is_string(json_object_get(json_object_get(json_array_get(inv, 1), "MetaData"), "LastUpdatedTime")),
       "deleted stub has MetaData.LastUpdatedTime");
    is_int(json_number_value(json_object_get(json_array_get(qr, 0), "startPosition")), 1, "startPosition");
    is_int(json_number_value(json_object_get(json_array_get(qr, 0), "maxResults")), 2, "maxResults");
    json_decref(c);
    sim_model_dispose(&m);
}

static void test_cap(void)
{
    sim_model_t m;
    sim_model_init(&m, 1, 700, 3, T0, 10);
    int types[] = {SIM_INVOICE, SIM_BILL, SIM_VENDOR};
    size_t total = 0;
    json_t *c = run_cdc(&m, 0, types, 3, T0 - 20LL * 86400 * 1000000000LL, SIM_CDC_MAX_OBJECTS, &total);
    is_int(total, 1000, "capped at 1000 in total");
    json_t *qr = json_object_get(json_array_get(c, 0), "QueryResponse");
    size_t sum = json_array_size(json_object_get(json_array_get(qr, 0), "Invoice")) +
                 json_array_size(json_object_get(json_array_get(qr, 1), "Bill")) +
                 json_array_size(json_object_get(json_array_get(qr, 2), "Vendor"));
    is_int(sum, 1000, "shared across entities");
    ok(json_array_size(json_object_get(json_array_get(qr, 0), "Invoice")) > 0, "first group filled first");
    is_int(json_object_size(json_array_get(qr, 2)), 0, "last group cut");
    /* within the group: ascending LastUpdatedTime */
    json_t *inv = json_object_get(json_array_get(qr, 0), "Invoice");
    int asc = 1;
    int64_t prev = 0;
    for (size_t i = 0; i < json_array_size(inv); i++) {
        const char *s =
            json_string_value(json_object_get(json_object_get(json_array_get(inv, i), "MetaData"), "LastUpdatedTime"));
        int64_t t;
        qbc_time_parse(s, strlen(s), &t);
        if (t < prev)
            asc = 0;
        prev = t;
    }
    ok(asc, "ordered by LastUpdatedTime");
    json_decref(c);
    sim_model_dispose(&m);
}

int main(void)
{
    subtest("shape", test_shape);
    subtest("cap", test_cap);
    return done_testing();
}
