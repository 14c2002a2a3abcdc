/*
 * qbo_parse.c — the cost and the exactness of reading a QBO query answer: the
 * reconciler's scanner-based parser (reconciler/response.c, which copies each entity's
 * bytes) against the jansson DOM + json_dumps round trip it replaced (rebuilt here as
 * old_parse(), the same field reads and the same dump).
 *
 *   qbo_parse [-n rounds] [-e entities]
 *
 * The answer is QueryResponse.Invoice[] of e invoices shaped like Intuit's reference
 * (qbo-facts §3, §9): three lines each with amounts such as 2932.92, 73.69 and 0.1, a
 * CustomField, escapes. Prints ns per answer and MB/s for each, their ratio, and how many
 * entities each path hands on with bytes other than QBO's. A benchmark: it prints
 * figures and does not pass or fail.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common.h"
#include "rec_internal.h"

static const char *const amounts[] = {"2932.92", "73.69", "0.1", "1e-7", "-0.0", "19.99", "1234.5", "0.30"};

/* one invoice as QBO writes it; its exact bytes go to *want (the caller frees) */
static void invoice(qbc_buf_t *b, int id, char **want, size_t *want_len)
{
    size_t from = b->len;
    qbc_buf_printf(b,
                   "{\"AllowIPNPayment\":false,\"DocNumber\":\"%d\",\"TxnDate\":\"2026-11-0%d\",\"CustomerRef\":"
                   "{\"value\":\"%d\",\"name\":\"Caf\\u00e9 \\/ R\\u00e9sum\\u00e9 %d\"},\"Line\":[",
                   1000 + id, 1 + id % 9, id % 40, id);
    for (int l = 0; l < 3; l++)
        qbc_buf_printf(b,
                       "%s{\"Id\":\"%d\",\"LineNum\":%d,\"Description\":\"Hours \\ud83d\\ude00\",\"Amount\":%s,"
                       "\"DetailType\":\"SalesItemLineDetail\",\"SalesItemLineDetail\":{\"ItemRef\":{\"value\":\"%d\"},"
                       "\"UnitPrice\":%s,\"Qty\":%d}}",
                       l ? "," : "", l + 1, l + 1, amounts[(id + l) % 8], l + 1, amounts[(id + l + 3) % 8], l + 1);
    qbc_buf_printf(b,
                   "],\"CustomField\":[{\"DefinitionId\":\"1\",\"Name\":\"PO\",\"Type\":\"StringType\","
                   "\"StringValue\":\"PO-%d\"}],\"TotalAmt\":%s,\"Balance\":%s,\"SyncToken\":\"%d\",\"MetaData\":"
                   "{\"CreateTime\":\"2026-11-01T10:00:00-07:00\",\"LastUpdatedTime\":\"2026-11-0%dT10:00:00-07:00\"},"
                   "\"Id\":\"%d\",\"domain\":\"QBO\",\"sparse\":false}",
                   id, amounts[id % 8], amounts[(id + 5) % 8], id % 7, 1 + id % 9, id);
    *want_len = b->len - from;
    *want = qbc_alloc(*want_len);
    memcpy(*want, b->data + from, *want_len);
}

/* the replaced path: a jansson DOM, the fields read from it, the entity dumped again */
static size_t old_parse(const char *body, size_t len, char ***data)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *arr = json_object_get(json_object_get(root, "QueryResponse"), "Invoice");
    size_t n = json_array_size(arr);
    *data = qbc_calloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        int64_t t;
        json_t *lu = json_object_get(json_object_get(o, "MetaData"), "LastUpdatedTime");
        if (json_string_value(json_object_get(o, "Id")) == NULL ||
            json_string_value(json_object_get(o, "SyncToken")) == NULL ||
            qbc_time_parse(json_string_value(lu), json_string_length(lu), &t) != 0)
            qbc_fatal("old_parse: a field is missing");
        (*data)[i] = json_dumps(o, JSON_COMPACT);
    }
    json_decref(root);
    return n;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long rounds = 200, n = 1000;
    int c;
    while ((c = getopt(argc, argv, "n:e:")) != -1) {
        if (c == 'n')
            rounds = atol(optarg);
        else if (c == 'e')
            n = atol(optarg);
        else {
            fprintf(stderr, "usage: qbo_parse [-n rounds] [-e entities]\n");
            return 2;
        }
    }
    if (rounds < 1 || n < 1 || n > 1000) {
        fprintf(stderr, "qbo_parse: rounds >= 1, 1 <= entities <= 1000 (QBO's page)\n");
        return 2;
    }
    qbc_buf_t b = {0};
    char **want = qbc_calloc((size_t)n, sizeof(char *));
    size_t *want_len = qbc_calloc((size_t)n, sizeof(size_t));
    qbc_buf_printf(&b, "{\"QueryResponse\":{\"Invoice\":[");
    for (long i = 0; i < n; i++) {
        if (i)
            qbc_buf_append(&b, ",", 1);
        invoice(&b, (int)i + 1, &want[i], &want_len[i]);
    }
    qbc_buf_printf(&b, "],\"startPosition\":1,\"maxResults\":%ld},\"time\":\"2026-11-09T10:00:00.000-08:00\"}", n);

    /* exactness: what each path hands on for each entity */
    qbc_rec_item_t *items;
    size_t got;
    qbc_fault_t f;
    char **old;
    if (qbc_rec_parse_query(b.data, b.len, "Invoice", &items, &got, &f) != 0 || got != (size_t)n)
        qbc_fatal("the answer does not parse");
    size_t new_diff = 0, old_diff = 0, old_n = old_parse(b.data, b.len, &old);
    for (long i = 0; i < n; i++) {
        new_diff += items[i].data_len != want_len[i] || memcmp(items[i].data, want[i], want_len[i]) != 0;
        old_diff += strlen(old[i]) != want_len[i] || memcmp(old[i], want[i], want_len[i]) != 0;
        free(old[i]);
    }
    free(old);
    qbc_rec_items_free(items, got);

    int64_t t0 = now_ns();
    for (long r = 0; r < rounds; r++) {
        qbc_rec_parse_query(b.data, b.len, "Invoice", &items, &got, &f);
        qbc_rec_items_free(items, got);
    }
    double new_ns = (double)(now_ns() - t0) / (double)rounds;
    t0 = now_ns();
    for (long r = 0; r < rounds; r++) {
        size_t k = old_parse(b.data, b.len, &old);
        for (size_t i = 0; i < k; i++)
            free(old[i]);
        free(old);
    }
    double old_ns = (double)(now_ns() - t0) / (double)rounds;

    printf("QBO query answer: %ld invoices, %zu bytes, %ld rounds\n", n, b.len, rounds);
    printf("%-44s %12s %10s %22s\n", "parser", "us/answer", "MB/s", "entities not as sent");
    printf("%-44s %12.1f %10.1f %15zu of %ld\n", "scanner, bytes copied (reconciler now)", new_ns / 1e3,
           (double)b.len / new_ns * 1e3, new_diff, n);
    printf("%-44s %12.1f %10.1f %15zu of %zu\n", "jansson DOM + json_dumps (replaced)", old_ns / 1e3,
           (double)b.len / old_ns * 1e3, old_diff, old_n);
    printf("ratio (replaced / now): %.2f\n", old_ns / new_ns);
    for (long i = 0; i < n; i++)
        free(want[i]);
    free(want);
    free(want_len);
    qbc_buf_free(&b, 0);
    return 0;
}
