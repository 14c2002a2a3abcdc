/* test_parse.c — request building and answer parsing with qbo-facts' samples. */
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "rec_internal.h"

static void test_query_building(void)
{
    const char *ids[] = {"1", "2", "130"};
    char *q = qbc_rec_build_query("Invoice", ids, 3);
    is_str(q, "SELECT * FROM Invoice WHERE Id IN ('1','2','130') MAXRESULTS 1000", "transaction query");
    free(q);
    q = qbc_rec_build_query("Customer", ids, 1);
    is_str(q, "SELECT * FROM Customer WHERE Id IN ('1') AND Active IN (true,false) MAXRESULTS 1000",
           "name-list query includes inactive records");
    free(q);
    ok(qbc_rec_is_namelist("TaxRate") && qbc_rec_is_namelist("PaymentMethod") && !qbc_rec_is_namelist("Bill"),
       "name-list set");
    char *u = qbc_rec_query_url("http://127.0.0.1:9", "123145", 75);
    is_str(u, "http://127.0.0.1:9/v3/company/123145/query?minorversion=75", "query url");
    free(u);
    u = qbc_rec_read_url("http://h", "123145", "JournalEntry", "42", 75);
    is_str(u, "http://h/v3/company/123145/journalentry/42?minorversion=75", "read url lowercases the entity");
    free(u);
    ok(qbc_rec_id_ok("130") && !qbc_rec_id_ok("1'2") && !qbc_rec_id_ok("") && !qbc_rec_id_ok("a/b"), "id check");
    ok(qbc_rec_entity_ok("Invoice") && !qbc_rec_entity_ok("Inv oice") && !qbc_rec_entity_ok(""), "entity check");
}

static void test_query_answer(void)
{
    /* qbo-facts §3 / §9 shapes */
    const char *body =
        "{\"QueryResponse\":{\"startPosition\":1,\"totalCount\":2,\"maxResults\":2,\"Invoice\":["
        "{\"TotalAmt\":10.5,\"SyncToken\":\"0\",\"MetaData\":{\"CreateTime\":\"2014-09-19T13:16:17-07:00\","
        "\"LastUpdatedTime\":\"2014-09-19T13:16:17-07:00\"},\"Id\":\"130\",\"domain\":\"QBO\",\"sparse\":false},"
        "{\"SyncToken\":\"3\",\"MetaData\":{\"LastUpdatedTime\":\"2015-07-24T10:48:27.082-07:00\"},\"Id\":\"7\"}"
        "]},\"time\":\"2015-07-24T10:48:27.082-07:00\"}";
    qbc_rec_item_t *items;
    size_t n;
    qbc_fault_t f;
    is_int(qbc_rec_parse_query(body, strlen(body), "Invoice", &items, &n, &f), 0, "query answer parses");
    is_int(n, 2, "two items");
    is_str(items[0].id, "130", "id");
    is_str(items[0].sync_token, "0", "sync token");
    int64_t want;
    qbc_time_parse("2014-09-19T20:16:17Z", 20, &want);
    is_int(items[0].updated_ns, want, "LastUpdatedTime with offset");
    is_str(items[0].data,
           "{\"TotalAmt\":10.5,\"SyncToken\":\"0\",\"MetaData\":{\"CreateTime\":\"2014-09-19T13:16:17-07:00\","
           "\"LastUpdatedTime\":\"2014-09-19T13:16:17-07:00\"},\"Id\":\"130\",\"domain\":\"QBO\",\"sparse\":false}",
           "data is the compact object, in order");
    is_str(items[1].sync_token, "3", "second");
    qbc_rec_items_free(items, n);

    const char *empty = "{\"QueryResponse\":{},\"time\":\"2015-07-24T10:48:27.082-07:00\"}";
    is_int(qbc_rec_parse_query(empty, strlen(empty), "Invoice", &items, &n, &f), 0, "empty answer parses");
    is_int(n, 0, "no items");
    qbc_rec_items_free(items, n);

    const char *bad = "{\"QueryResponse\":{\"Invoice\":[{\"Id\":\"1\"}]}}";
    is_int(qbc_rec_parse_query(bad, strlen(bad), "Invoice", &items, &n, &f), QBC_EMALFORMED,
           "an item without SyncToken is malformed");
    is_int(qbc_rec_parse_query("<html>", 6, "Invoice", &items, &n, &f), QBC_EMALFORMED, "html is malformed");
    const char *notime = "{\"QueryResponse\":{\"Invoice\":[{\"Id\":\"1\",\"SyncToken\":\"1\",\"MetaData\":"
                         "{\"LastUpdatedTime\":\"2014-09-19T13:16:17\"}}]}}";
    is_int(qbc_rec_parse_query(notime, strlen(notime), "Invoice", &items, &n, &f), QBC_EMALFORMED,
           "a time without offset is refused");

    const char *read = "{\"Invoice\":{\"SyncToken\":\"2\",\"MetaData\":{\"LastUpdatedTime\":"
                       "\"2014-09-19T13:16:17-07:00\"},\"Id\":\"130\"},\"time\":\"2015-07-24T10:48:27.082-07:00\"}";
    qbc_rec_item_t it;
    is_int(qbc_rec_parse_read(read, strlen(read), "Invoice", &it, &f), 0, "entity read parses");
    is_str(it.sync_token, "2", "read sync token");
    ok(it.data != NULL && strstr(it.data, "\"Id\":\"130\"") != NULL, "read data");
    free(it.data);
    const char *del = "{\"Invoice\":{\"status\":\"Deleted\",\"domain\":\"QBO\",\"Id\":\"33\"},\"time\":\"x\"}";
    is_int(qbc_rec_parse_read(del, strlen(del), "Invoice", &it, &f), 0, "deleted status parses");
    ok(it.deleted && it.data == NULL, "status Deleted is a delete");
}

static void test_faults(void)
{
    qbc_fault_t f;
    const char *json = "{\"Fault\":{\"Error\":[{\"Message\":\"Object Not Found\",\"Detail\":\"Another user has "
                       "deleted this transaction\",\"code\":\"610\",\"element\":\"\"}],\"type\":\"ValidationFault\"},"
                       "\"time\":\"2017-09-29T09:17:31.892-07:00\"}";
    ok(qbc_rec_parse_fault(json, strlen(json), &f), "Fault/Error found");
    is_str(f.code, "610", "code");
    is_str(f.type, "ValidationFault", "type");
    is_str(f.message, "Object Not Found", "message");
    is_int(qbc_rec_classify(1, 400, &f), REC_RES_GONE, "610 is gone");
    is_int(qbc_rec_classify(1, 200, &f), REC_RES_GONE, "610 in an HTTP 200 is gone too");
    qbc_rec_item_t it;
    is_int(qbc_rec_parse_read(json, strlen(json), "Invoice", &it, &f), QBC_ENOTFOUND, "read of a fault");

    const char *gw = "{\"warnings\":null,\"intuitObject\":null,\"fault\":{\"error\":[{\"message\":\"message="
                     "AuthenticationFailed; errorCode=003200; statusCode=401\",\"detail\":\"Malformed bearer token: "
                     "too short or too long\",\"code\":\"3200\",\"element\":null}],\"type\":\"AUTHENTICATION\"},"
                     "\"report\":null,\"queryResponse\":null,\"batchItemResponse\":[],\"attachableResponse\":[],"
                     "\"syncErrorResponse\":null,\"requestId\":null,\"time\":1633520295688,\"status\":null,"
                     "\"cdcresponse\":[]}";
    ok(qbc_rec_parse_fault(gw, strlen(gw), &f), "lowercase fault/error found");
    is_str(f.code, "3200", "gateway code");
    is_str(f.type, "AUTHENTICATION", "gateway type");
    is_int(qbc_rec_classify(1, 401, &f), REC_RES_AUTH, "401 is auth");

    const char *xml =
        "<IntuitResponse time=\"2017-07-30T22:45:22.933-07:00\" xmlns=\"http://schema.intuit.com/finance/v3\">\n"
        " <Fault type=\"SERVICE\"><Error code=\"3001\">\n"
        "  <Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>\n"
        "  <Detail>The request limit was reached.  Try again later</Detail></Error></Fault></IntuitResponse>";
    ok(qbc_rec_parse_fault(xml, strlen(xml), &f), "XML throttle fault found");
    is_str(f.code, "3001", "xml code");
    is_str(f.type, "SERVICE", "xml type");
    is_str(f.detail, "The request limit was reached.  Try again later", "xml detail");
    is_int(qbc_rec_classify(1, 429, &f), REC_RES_THROTTLED, "429 throttled");
    is_int(qbc_rec_classify(1, 403, &f), REC_RES_THROTTLED, "2016-era 403 ThrottleExceeded is throttled");

    const char *q = "{\"Fault\":{\"Error\":[{\"Message\":\"Error parsing query\",\"Detail\":\"QueryParserError: "
                    "Encountered \\\" <INTEGER> \\\"1 \\\"\\\"\",\"code\":\"4000\"}],\"type\":\"ValidationFault\"}}";
    ok(qbc_rec_parse_fault(q, strlen(q), &f), "4000 found");
    is_int(qbc_rec_classify(1, 400, &f), REC_RES_CLIENT, "4000 is a client error");
    char d[256];
    qbc_rec_describe(400, &f, NULL, d, sizeof(d));
    ok(strncmp(d, "HTTP 400 fault 4000 (ValidationFault): Error parsing query: QueryParserError", 76) == 0,
       "description");

    const char *sys = "{\"Fault\":{\"Error\":[{\"Message\":\"An application error has occurred\",\"code\":\"10000\"}],"
                      "\"type\":\"SystemFault\"}}";
    qbc_rec_parse_fault(sys, strlen(sys), &f);
    is_int(qbc_rec_classify(1, 200, &f), REC_RES_RETRY, "SystemFault in a 200 is retried");
    is_int(qbc_rec_classify(1, 503, NULL), REC_RES_RETRY, "503 retried");
    is_int(qbc_rec_classify(0, 0, NULL), REC_RES_RETRY, "transport error retried");
    ok(!qbc_rec_parse_fault("{\"QueryResponse\":{}}", 20, &f), "no fault in an answer");
    is_int(qbc_rec_classify(1, 200, &f), REC_RES_OK, "200 ok");
    is_int(qbc_rec_classify(1, 404, &f), REC_RES_CLIENT, "bare 404 is a client error");
}

static void test_batch(void)
{
    const char *qs[] = {"SELECT * FROM Invoice WHERE Id IN ('1') MAXRESULTS 1000",
                        "SELECT * FROM Bill WHERE Id IN ('9')"};
    char *b = qbc_rec_build_batch(qs, 2);
    is_str(b,
           "{\"BatchItemRequest\":[{\"bId\":\"0\",\"Query\":\"SELECT * FROM Invoice WHERE Id IN ('1') "
           "MAXRESULTS 1000\"},{\"bId\":\"1\",\"Query\":\"SELECT * FROM Bill WHERE Id IN ('9')\"}]}",
           "batch body (qbo-facts §4)");
    free(b);
    char *u = qbc_rec_batch_url("http://h", "77", 75);
    is_str(u, "http://h/v3/company/77/batch?minorversion=75", "batch url");
    free(u);
    /* answers in any order, correlated by bId; one item a Fault, one missing */
    const char *ans = "{\"BatchItemResponse\":["
                      "{\"bId\":\"1\",\"Fault\":{\"type\":\"ValidationFault\",\"Error\":[{\"Message\":\"Error "
                      "parsing query\",\"code\":\"4000\"}]}},"
                      "{\"bId\":\"0\",\"QueryResponse\":{\"Invoice\":[{\"Id\":\"1\",\"SyncToken\":\"4\","
                      "\"MetaData\":{\"LastUpdatedTime\":\"2015-07-24T10:48:27.082-07:00\"}}],\"startPosition\":1,"
                      "\"maxResults\":1}}],\"time\":\"2015-07-24T10:48:27.082-07:00\"}";
    const char *ents[] = {"Invoice", "Bill", "Item"};
    qbc_rec_part_t parts[3];
    qbc_fault_t f;
    is_int(qbc_rec_parse_batch(ans, strlen(ans), ents, 3, parts, &f), 0, "batch answer parses");
    is_int(parts[0].state, 0, "item 0 answered");
    is_int(parts[0].n, 1, "one invoice");
    is_str(parts[0].items[0].sync_token, "4", "its sync token");
    is_int(parts[1].state, 1, "item 1 is a fault");
    is_str(parts[1].fault.code, "4000", "with its code");
    is_int(parts[2].state, -1, "item 2 missing");
    for (int i = 0; i < 3; i++)
        qbc_rec_items_free(parts[i].items, parts[i].n);
    const char *whole = "{\"Fault\":{\"Error\":[{\"Message\":\"x\",\"code\":\"3001\"}],\"type\":\"SERVICE\"}}";
    is_int(qbc_rec_parse_batch(whole, strlen(whole), ents, 3, parts, &f), QBC_ENOTFOUND, "a whole-body fault");
}

/*
 * issue 9: an entity reaches the store exactly as QBO wrote it. Every one of these was
 * changed by the jansson round trip this parser replaced (2932.92 became
 * 2932.9200000000001, \u00e9 became raw UTF-8, \/ lost its backslash, the big integer
 * made the whole answer unreadable).
 */
#define EXOTIC                                                                                                         \
    "{\"Line\":[{\"Amount\":2932.92},{\"Amount\":73.69},{\"Amount\":0.1},{\"Amount\":1e-7},"                           \
    "{\"Amount\":12345678901234567890},{\"Amount\":-0.0},{\"Amount\":0.30000000000000004}],"                           \
    "\"CustomField\":[{\"Name\":\"caf\\u00e9 \\/ \xc3\xa9 \xf0\x9f\x98\x80 \\ud83d\\ude00 \\\"q\\\" \\\\\"}],"         \
    "\"NotKnownToQbcdc\":{\"x\":[true,null]},\"TotalAmt\":2932.92,\"SyncToken\":\"1\","                                \
    "\"MetaData\":{\"LastUpdatedTime\":\"2014-09-19T13:16:17-07:00\"},\"Id\":\"130\"}"

static void test_exact_bytes(void)
{
    qbc_fault_t f;
    qbc_rec_item_t *items, it;
    size_t n;

    const char *q = "{\"QueryResponse\":{\"Invoice\":[" EXOTIC "]},\"time\":\"2015-07-24T10:48:27.082-07:00\"}";
    is_int(qbc_rec_parse_query(q, strlen(q), "Invoice", &items, &n, &f), 0, "query answer with exotic values parses");
    ok(n == 1 && items[0].data_len == strlen(EXOTIC) && memcmp(items[0].data, EXOTIC, strlen(EXOTIC)) == 0,
       "query: the entity's bytes, exactly");
    qbc_rec_items_free(items, n);

    /* pretty-printed: only the whitespace between tokens goes */
    const char *pretty = "{\n  \"Invoice\" : {\n    \"TotalAmt\" : 2932.92 ,\n    \"SyncToken\" : \"0\",\n"
                         "    \"MetaData\" : { \"LastUpdatedTime\" : \"2014-09-19T13:16:17-07:00\" },\n"
                         "    \"Id\" : \"1\", \"Memo\" : \"a  b\"\n  },\n  \"time\" : \"x\"\n}\n";
    is_int(qbc_rec_parse_read(pretty, strlen(pretty), "Invoice", &it, &f), 0, "a pretty-printed read parses");
    is_str(it.data,
           "{\"TotalAmt\":2932.92,\"SyncToken\":\"0\",\"MetaData\":{\"LastUpdatedTime\":\"2014-09-19T13:16:17-07:00\"},"
           "\"Id\":\"1\",\"Memo\":\"a  b\"}",
           "read: one line, every token as sent");
    free(it.data);

    const char *c = "{\"CDCResponse\":[{\"QueryResponse\":[{\"Invoice\":[" EXOTIC "],\"startPosition\":1}]}],"
                    "\"time\":\"2015-12-23T12:56:06.196-08:00\"}";
    qbc_rec_cdc_group_t *g;
    size_t ng, total;
    int64_t tm;
    is_int(qbc_rec_parse_cdc(c, strlen(c), &g, &ng, &tm, &total, &f), 0, "CDC answer with exotic values parses");
    ok(ng == 1 && g[0].n == 1 && g[0].items[0].data_len == strlen(EXOTIC) &&
           memcmp(g[0].items[0].data, EXOTIC, strlen(EXOTIC)) == 0,
       "CDC: the entity's bytes, exactly");
    qbc_rec_cdc_groups_free(g, ng);

    const char *b =
        "{\"BatchItemResponse\":[{\"QueryResponse\":{\"Invoice\":[" EXOTIC "]},\"bId\":\"0\"}],\"time\":\"x\"}";
    const char *ents[] = {"Invoice"};
    qbc_rec_part_t parts[1];
    is_int(qbc_rec_parse_batch(b, strlen(b), ents, 1, parts, &f), 0, "batch answer parses");
    ok(parts[0].state == 0 && parts[0].n == 1 && parts[0].items[0].data_len == strlen(EXOTIC) &&
           memcmp(parts[0].items[0].data, EXOTIC, strlen(EXOTIC)) == 0,
       "batch: the entity's bytes, exactly");
    qbc_rec_items_free(parts[0].items, parts[0].n);

    const char *esc = "{\"Invoice\":{\"\\u0049d\":\"7\",\"SyncToken\":\"\\u0031\",\"MetaData\":{\"LastUpdatedTime\":"
                      "\"2014-09-19T13:16:17\\u002d07:00\"}},\"time\":\"x\"}";
    is_int(qbc_rec_parse_read(esc, strlen(esc), "Invoice", &it, &f), 0, "escaped keys and values are decoded");
    ok(strcmp(it.id, "7") == 0 && strcmp(it.sync_token, "1") == 0 && it.updated_ns != 0, "to the fields qbcdc keys on");
    free(it.data);
    const char *longid = "{\"Invoice\":{\"Id\":\"" /* 64 bytes: one more than QBC_ID_MAX holds */
                         "0123456789012345678901234567890123456789012345678901234567890123"
                         "\",\"SyncToken\":\"1\",\"MetaData\":{\"LastUpdatedTime\":\"2014-09-19T13:16:17-07:00\"}}}";
    is_int(qbc_rec_parse_read(longid, strlen(longid), "Invoice", &it, &f), QBC_EMALFORMED, "an id too long is refused");
}

int main(void)
{
    subtest("batch", test_batch);
    subtest("query building", test_query_building);
    subtest("query answers", test_query_answer);
    subtest("faults", test_faults);
    subtest("exact bytes", test_exact_bytes);
    return done_testing();
}
