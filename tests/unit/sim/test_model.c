/* tests sim/model.c and sim/simutil.c: seeding, mutations, Pacific time. */
#include "../../../sim/simutil.c"
#include "../../../sim/model.c"
#include "../../../sim/json_shapes.c"
#include "tap.h"

static const int64_t T0 = 1700000000LL * 1000000000LL;

static void test_time(void)
{
    char buf[40];
    /* 2014-09-19T20:16:17Z is PDT */
    int64_t t = 1411157777LL * 1000000000LL;
    is_str(sim_time_pacific(t, 0, 1, buf), "2014-09-19T13:16:17-07:00", "PDT with colon");
    /* 2015-12-23T20:56:06.196Z is PST */
    t = 1450904166196LL * 1000000LL;
    is_str(sim_time_pacific(t, 1, 1, buf), "2015-12-23T12:56:06.196-08:00", "PST with ms");
    t = 1444081339LL * 1000000000LL;
    is_str(sim_time_pacific(t, 0, 0, buf), "2015-10-05T14:42:19-0700", "classic webhook form");
    is_str(sim_time_utc_ns(1760313547034359333LL, buf), "2025-10-12T23:59:07.034359333Z", "CloudEvents ns form");
    /* DST edges 2024: starts 2024-03-10T10:00Z, ends 2024-11-03T09:00Z */
    is_int(sim_pacific_offset(1710064799LL * 1000000000LL), -28800, "just before DST");
    is_int(sim_pacific_offset(1710064800LL * 1000000000LL), -25200, "DST starts");
    is_int(sim_pacific_offset(1730624399LL * 1000000000LL), -25200, "just before DST ends");
    is_int(sim_pacific_offset(1730624400LL * 1000000000LL), -28800, "DST ends");
    int64_t ns;
    ok(sim_time_parse_qbo("2015-12-23", 10, &ns) == 0 && ns == 1450857600LL * 1000000000LL,
       "bare date = Pacific midnight");
    ok(sim_time_parse_qbo("2015-12-23T09:00:00", 19, &ns) == 0 && ns == 1450890000LL * 1000000000LL,
       "no offset = Pacific");
    ok(sim_time_parse_qbo("2015-12-23T09:00-07:00", 22, &ns) == 0, "doc example form");
    ok(sim_time_parse_qbo("yesterday", 9, &ns) != 0, "garbage refused");
}

static void test_seed(void)
{
    sim_model_t a, b;
    sim_model_init(&a, 3, 10, 42, T0, 30);
    sim_model_init(&b, 3, 10, 42, T0 + 5000000000LL, 30);
    int same = 1;
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(a.realms[i].id, b.realms[i].id) != 0)
            same = 0;
        for (int t = 0; t < SIM_NTYPES; t++)
            for (size_t k = 0; k < 10; k++)
                if (a.realms[i].t[t].e[k].sync_token != b.realms[i].t[t].e[k].sync_token)
                    same = 0;
    }
    ok(same, "same seed, same companies");
    is_int(strlen(a.realms[0].id), 10, "10-digit realm ids");
    json_t *ta = sim_model_truth(&a), *tb = sim_model_truth(&b);
    ok(json_equal(ta, tb), "same truth");
    json_decref(ta);
    json_decref(tb);
    sim_model_dispose(&b);
    sim_model_init(&b, 3, 10, 43, T0, 30);
    ok(strcmp(a.realms[0].id, b.realms[0].id) != 0, "another seed, other ids");
    sim_model_dispose(&a);
    sim_model_dispose(&b);
}

static void test_mutate(void)
{
    sim_model_t m;
    sim_model_init(&m, 2, 10, 5, T0, 30);
    int ops[5] = {0};
    int ok_rules = 1, ok_bump = 1;
    int64_t last = 0;
    for (int i = 0; i < 3000; i++) {
        sim_change_t c;
        sim_entity_t before;
        sim_model_mutate(&m, -1, T0 + (int64_t)i * 1000, &c);
        ops[c.op]++;
        sim_entity_t *e = sim_model_get(&m, c.realm, c.etype, c.id);
        if (!e || e->update_ns != c.at_ns)
            ok_bump = 0;
        if (c.at_ns <= last)
            ok_bump = 0;
        last = c.at_ns;
        if (c.op == SIM_OP_DELETE && sim_etype_is_namelist(c.etype))
            ok_rules = 0;
        if (c.op == SIM_OP_VOID && !sim_etype_is_voidable(c.etype))
            ok_rules = 0;
        if (c.op == SIM_OP_MERGE) {
            sim_entity_t *from = sim_model_get(&m, c.realm, c.etype, c.deleted_id);
            if (!sim_etype_is_namelist(c.etype) || !from || !from->deleted || from->merged_into != c.id)
                ok_rules = 0;
        }
        if (c.op == SIM_OP_VOID && (e->amount_cents != 0 || !e->voided))
            ok_rules = 0;
        (void)before;
    }
    for (int op = 0; op < 5; op++)
        ok(ops[op] > 0, sim_op_names[op]);
    ok(ok_rules, "deletes only transactions, voids only Invoice/Payment, merges name lists");
    ok(ok_bump, "LastUpdatedTime set to the change time, strictly increasing");
    /* SyncToken bump on update */
    sim_change_t c;
    do
        sim_model_mutate(&m, 0, T0 + 10000000000LL, &c);
    while (c.op != SIM_OP_UPDATE);
    sim_entity_t *e = sim_model_get(&m, 0, c.etype, c.id);
    qbc_buf_t b = {0};
    json_error_t jerr;
    sim_entity_write(c.etype, e, &b);
    json_t *j = json_loadb(b.data, b.len, JSON_DECODE_INT_AS_REAL, &jerr);
    qbc_buf_free(&b, 0);
    char tok[16];
    snprintf(tok, sizeof(tok), "%u", e->sync_token);
    is_str(json_string_value(json_object_get(j, "SyncToken")), tok, "SyncToken is a string");
    ok(json_is_string(json_object_get(json_object_get(j, "MetaData"), "CreateTime")), "MetaData.CreateTime");
    is_str(json_string_value(json_object_get(j, "domain")), "QBO", "domain");
    ok(json_is_false(json_object_get(j, "sparse")), "sparse false");
    json_decref(j);
    sim_model_dispose(&m);
}

int main(void)
{
    subtest("time", test_time);
    subtest("seed", test_seed);
    subtest("mutate", test_mutate);
    return done_testing();
}
