/* tests sim/query.c: the QBO query subset, its errors and paging (qbo-facts §3). */
#include "../../../sim/simutil.c"
#include "../../../sim/model.c"
#include "../../../sim/json_shapes.c"
#include "../../../sim/query.c"
#include "tap.h"

/* runs q and parses its text; every number becomes a real, as qbosim sends integers past int64 */
static json_t *run_query(sim_model_t *m, int realm, const sim_query_t *q)
{
    qbc_buf_t b = {0};
    json_error_t jerr;
    sim_query_run(m, realm, q, &b);
    json_t *j = json_loadb(b.data, b.len, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!j)
        diag(jerr.text);
    qbc_buf_free(&b, 0);
    return j;
}

static int parses(const char *s, sim_query_t *q, char *err)
{
    return sim_query_parse(s, strlen(s), q, err, 256);
}

static void test_grammar(void)
{
    sim_query_t q;
    char err[256];
    ok(parses("SELECT * FROM Customer", &q, err) == 0, "select star");
    is_int(q.etype, SIM_CUSTOMER, "entity");
    is_int(q.count, 0, "not a count");
    is_int(q.start, 1, "default STARTPOSITION 1");
    is_int(q.max, 100, "default MAXRESULTS 100");
    sim_query_dispose(&q);

    ok(parses("select count(*) from Invoice", &q, err) == 0, "count(*) lowercase keywords");
    is_int(q.count, 1, "is a count");
    sim_query_dispose(&q);

    ok(parses("SELECT * FROM Invoice WHERE Id IN ('1','2', '3') AND MetaData.LastUpdatedTime >= "
              "'2015-10-05T14:42:19-07:00' "
              "ORDERBY MetaData.LastUpdatedTime DESC STARTPOSITION 11 MAXRESULTS 10",
              &q, err) == 0,
       "full statement");
    is_int(q.nconds, 2, "two conditions");
    is_int(q.conds[0].op, SIM_Q_IN, "IN");
    is_int(q.conds[0].nvals, 3, "three IN values");
    is_int(q.conds[0].vals[2].num, 3, "third value");
    is_int(q.conds[1].field, SIM_F_UPDATED, "LastUpdatedTime field");
    is_int(q.conds[1].op, SIM_Q_GE, ">=");
    ok(q.conds[1].vals[0].num == 1444081339LL * 1000000000LL, "time value parsed with offset");
    is_int(q.order_field, SIM_F_UPDATED, "order field");
    is_int(q.order_desc, 1, "DESC");
    is_int(q.start, 11, "STARTPOSITION");
    is_int(q.max, 10, "MAXRESULTS");
    sim_query_dispose(&q);

    ok(parses("select * from Item where Metadata.LastUpdatedTime > '2013-03-13T14:50:22-08:00' Order By "
              "Metadata.LastUpdatedTime",
              &q, err) == 0,
       "ORDER BY and Metadata spelling");
    sim_query_dispose(&q);
    ok(parses("select * from Customer where Active IN (true, false)", &q, err) == 0, "Active IN (true,false)");
    sim_query_dispose(&q);
    ok(parses("SELECT * FROM Invoice MAXRESULTS 1000", &q, err) == 0, "MAXRESULTS 1000 allowed");
    sim_query_dispose(&q);
}

static void test_errors(void)
{
    sim_query_t q;
    char err[256];
    ok(parses("SELECT * FROM Invoice WHERE Id NOT IN (1, 2, 3)", &q, err) != 0, "NOT IN with ints refused");
    ok(parses("SELECT * FROM Invoice WHERE Id IN (1, 2)", &q, err) != 0, "unquoted ints refused");
    ok(strstr(err, "QueryParserError: Encountered \" <INTEGER> \"1") != NULL, "JavaCC-style message");
    ok(parses("SELECT * FROM Invoice MAXRESULTS 1500", &q, err) != 0, "MAXRESULTS 1500 refused");
    is_str(err, "QueryValidationError: value 1500 is too large. Max allowed value is 1000", "QBO's text");
    ok(parses("SELECT * FROM invoice", &q, err) != 0, "entity names are case-sensitive");
    ok(parses("SELECT Id FROM Invoice", &q, err) != 0, "no projections");
    ok(parses("SELECT * FROM Invoice WHERE Id = '1' OR Id = '2'", &q, err) != 0, "no OR");
    ok(parses("SELECT * FROM Invoice WHERE Id = '1", &q, err) != 0, "unterminated string");
    ok(parses("", &q, err) != 0, "empty");
    ok(parses("SELECT * FROM Invoice WHERE Bogus = '1'", &q, err) != 0, "unknown property");
}

static void test_run(void)
{
    sim_model_t m;
    sim_query_t q;
    char err[256];
    sim_model_init(&m, 1, 25, 7, 1700000000LL * 1000000000LL, 10);

    ok(parses("SELECT * FROM Invoice STARTPOSITION 1 MAXRESULTS 10", &q, err) == 0, "page 1");
    json_t *r = run_query(&m, 0, &q);
    is_int(json_array_size(json_object_get(r, "Invoice")), 10, "10 invoices");
    is_int(json_number_value(json_object_get(r, "startPosition")), 1, "startPosition");
    is_int(json_number_value(json_object_get(r, "maxResults")), 10, "maxResults = returned");
    is_str(json_string_value(json_object_get(json_array_get(json_object_get(r, "Invoice"), 0), "Id")), "1",
           "ordered by Id");
    json_decref(r);
    sim_query_dispose(&q);

    ok(parses("SELECT * FROM Invoice STARTPOSITION 21 MAXRESULTS 10", &q, err) == 0, "last page");
    r = run_query(&m, 0, &q);
    is_int(json_array_size(json_object_get(r, "Invoice")), 5, "5 left");
    json_decref(r);
    sim_query_dispose(&q);

    ok(parses("SELECT * FROM Invoice STARTPOSITION 26 MAXRESULTS 10", &q, err) == 0, "past the end");
    r = run_query(&m, 0, &q);
    is_int(json_object_size(r), 0, "empty QueryResponse {}");
    json_decref(r);
    sim_query_dispose(&q);

    ok(parses("SELECT * FROM Bill WHERE Id IN ('3','5','99')", &q, err) == 0, "IN");
    r = run_query(&m, 0, &q);
    is_int(json_array_size(json_object_get(r, "Bill")), 2, "two of three exist");
    json_decref(r);
    sim_query_dispose(&q);

    ok(parses("SELECT COUNT(*) FROM Payment", &q, err) == 0, "count");
    r = run_query(&m, 0, &q);
    is_int(json_number_value(json_object_get(r, "totalCount")), 25, "totalCount");
    json_decref(r);
    sim_query_dispose(&q);

    /* active-only default for name lists */
    size_t inactive = 0;
    for (size_t k = 0; k < m.realms[0].t[SIM_CUSTOMER].n; k++)
        inactive += !m.realms[0].t[SIM_CUSTOMER].e[k].active;
    ok(parses("SELECT COUNT(*) FROM Customer", &q, err) == 0, "count customers");
    r = run_query(&m, 0, &q);
    is_int(json_number_value(json_object_get(r, "totalCount")), 25 - (long long)inactive, "only active by default");
    json_decref(r);
    sim_query_dispose(&q);
    ok(parses("SELECT COUNT(*) FROM Customer WHERE Active IN (true,false)", &q, err) == 0, "count all customers");
    r = run_query(&m, 0, &q);
    is_int(json_number_value(json_object_get(r, "totalCount")), 25, "Active IN (true,false) gives all");
    json_decref(r);
    sim_query_dispose(&q);

    /* LastUpdatedTime filter and order */
    char ts[40], stmt[200];
    sim_entity_t *e = &m.realms[0].t[SIM_ITEM].e[12];
    sim_time_pacific(e->update_ns, 0, 1, ts);
    snprintf(stmt, sizeof(stmt),
             "SELECT * FROM Item WHERE MetaData.LastUpdatedTime >= '%s' AND Active IN (true,false) ORDERBY "
             "MetaData.LastUpdatedTime",
             ts);
    ok(parses(stmt, &q, err) == 0, "time filter");
    r = run_query(&m, 0, &q);
    json_t *arr = json_object_get(r, "Item");
    ok(json_array_size(arr) >= 1, "some items");
    int sorted = 1;
    for (size_t i = 1; i < json_array_size(arr); i++) {
        const char *a = json_string_value(
            json_object_get(json_object_get(json_array_get(arr, i - 1), "MetaData"), "LastUpdatedTime"));
        const char *b =
            json_string_value(json_object_get(json_object_get(json_array_get(arr, i), "MetaData"), "LastUpdatedTime"));
        int64_t na, nb;
        qbc_time_parse(a, strlen(a), &na);
        qbc_time_parse(b, strlen(b), &nb);
        if (na > nb || na < e->update_ns - e->update_ns % 1000000000)
            sorted = 0;
    }
    ok(sorted, "all >= the bound and ascending");
    json_decref(r);
    sim_query_dispose(&q);
    sim_model_dispose(&m);
}

int main(void)
{
    subtest("grammar", test_grammar);
    subtest("errors", test_errors);
    subtest("run", test_run);
    return done_testing();
}
