/* tests sim/webhook_sender.c: signatures, body shapes, the retry schedule (qbo-facts §1). */
#include "../../../sim/simutil.c"
#include "../../../sim/model.c"
#include "../../../sim/json_shapes.c"
#include "../../../sim/webhook_sender.c"
#include "tap.h"

static void test_signature(void)
{
    char sig[48];
    /* computed: printf '%s' '{"a":1}' | openssl dgst -sha256 -hmac secret -binary | base64 */
    sim_sign("secret", "{\"a\":1}", 7, sig);
    is_str(sig, "qp4uNXX11wmLbKzNeQiIw21f22M0KnO62i1qUXR6hJQ=", "HMAC-SHA256 base64");
    /* Intuit's SampleApp-Webhooks-Java vector (qbo-facts §1.4; also in tests/unit/ingress) */
    sim_sign("12345", "abcd", 4, sig);
    is_str(sig, "gfTuE5fLxnstOq8ln4LNWZfn24cg8FVB6PBv455lfzg=", "official vector");
}

static void test_bodies(void)
{
    sim_model_t m;
    sim_rng_t rng;
    sim_rng_seed(&rng, 1);
    sim_model_init(&m, 2, 5, 1, 1700000000LL * 1000000000LL, 10);
    sim_change_t c[3] = {{0, SIM_CUSTOMER, SIM_OP_MERGE, 2, 3, 1444081339LL * 1000000000LL},
                         {0, SIM_INVOICE, SIM_OP_VOID, 4, 0, 1444081340LL * 1000000000LL},
                         {1, SIM_BILL, SIM_OP_CREATE, 6, 0, 1444081341LL * 1000000000LL}};
    char *s = sim_webhook_body(&m, c, 3, SIM_FMT_CLASSIC, &rng, "intuit.x", "void");
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    json_t *notes = json_object_get(j, "eventNotifications");
    is_int(json_array_size(notes), 2, "one eventNotification per realm");
    json_t *n0 = json_array_get(notes, 0);
    is_str(json_string_value(json_object_get(n0, "realmId")), m.realms[0].id, "realmId");
    json_t *ents = json_object_get(json_object_get(n0, "dataChangeEvent"), "entities");
    is_int(json_array_size(ents), 2, "two entities in realm 0");
    json_t *e0 = json_array_get(ents, 0);
    is_str(json_string_value(json_object_get(e0, "name")), "Customer", "name");
    is_str(json_string_value(json_object_get(e0, "id")), "2", "id is a string");
    is_str(json_string_value(json_object_get(e0, "operation")), "Merge", "operation");
    is_str(json_string_value(json_object_get(e0, "lastUpdated")), "2015-10-05T14:42:19-0700",
           "lastUpdated as in the sample");
    is_str(json_string_value(json_object_get(e0, "deletedId")), "3", "deletedId on merge");
    is_str(json_string_value(json_object_get(json_array_get(ents, 1), "operation")), "Void", "Void");
    json_decref(j);
    free(s);

    s = sim_webhook_body(&m, c, 3, SIM_FMT_CLOUDEVENTS, &rng, "intuit.x", "void");
    j = json_loads(s, 0, &e);
    ok(json_is_array(j), "CloudEvents body is an array");
    is_int(json_array_size(j), 3, "three events");
    json_t *ev = json_array_get(j, 0);
    const char *keys[] = {"specversion",     "id",  "source", "type", "datacontenttype", "time", "intuitentityid",
                          "intuitaccountid", "data"};
    int all = 1;
    for (size_t i = 0; i < 9; i++)
        if (!json_object_get(ev, keys[i]))
            all = 0;
    ok(all, "every CloudEvents field present");
    is_str(json_string_value(json_object_get(ev, "specversion")), "1.0", "specversion");
    is_str(json_string_value(json_object_get(ev, "type")), "qbo.customer.merged.v1", "merged type");
    is_str(json_string_value(json_object_get(json_object_get(ev, "data"), "deletedid")), "3", "data.deletedid");
    is_str(json_string_value(json_object_get(json_array_get(j, 1), "type")), "qbo.invoice.void.v1", "void type");
    is_str(json_string_value(json_object_get(json_array_get(j, 2), "type")), "qbo.bill.created.v1", "created type");
    is_str(json_string_value(json_object_get(json_array_get(j, 2), "intuitaccountid")), m.realms[1].id,
           "intuitaccountid");
    is_str(json_string_value(json_object_get(json_array_get(j, 2), "intuitentityid")), "6", "intuitentityid");
    is_str(json_string_value(json_object_get(json_array_get(j, 2), "time")), "2015-10-05T21:42:21.000000000Z",
           "time with ns");
    ok(strlen(json_string_value(json_object_get(ev, "id"))) == 36, "uuid id");
    json_decref(j);
    free(s);
    sim_model_dispose(&m);
}

static void test_schedule(void)
{
    static const int64_t want[] = {10000,   20000,    30000,    300000,   1200000,
                                   7200000, 14400000, 21600000, 21600000, 21600000};
    int good = 1;
    for (int i = 0; i < 10; i++)
        if (sim_retry_delay_ms(i + 1) != want[i])
            good = 0;
    ok(good, "10s,20s,30s,5m,20m,2h,4h,6h, then 6h");
}

int main(void)
{
    subtest("signature", test_signature);
    subtest("bodies", test_bodies);
    subtest("schedule", test_schedule);
    return done_testing();
}
