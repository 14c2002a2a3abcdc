/*
 * fuzz_qbo_answer.c — libFuzzer target for reconciler/response.c, which reads every answer
 * QBO (or whatever stands at QBCDC_API_BASE) sends: query, entity read, batch, CDC, Fault
 * (JSON in both shapes, and XML).
 *
 * Every input goes through all five parsers (query and read for two entities, batch with
 * a part per entity), so one corpus serves them all. Invariants checked:
 *   - results are 0, QBC_EMALFORMED or QBC_ENOTFOUND, and QBC_ENOTFOUND comes with a
 *     filled Fault, exactly when qbc_rec_parse_fault() finds one;
 *   - the Fault's texts are NUL-terminated within their fields;
 *   - each item has a non-empty, terminated id; its data is present exactly when it is not
 *     deleted, NUL-terminated after data_len bytes, an object that rescans under RFC 8259,
 *     and already compact (compacting it again changes nothing);
 *   - nothing is handed out on failure, and qbc_rec_items_free() / qbc_rec_cdc_groups_free()
 *     free all of it (LeakSanitizer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "json_scan.h"
#include "rec_internal.h"

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            qbc_fatal("fuzz_qbo_answer: invariant broken: %s", #cond);                                                 \
    } while (0)

#define TERMINATED(field) (memchr((field), '\0', sizeof(field)) != NULL)

static const char *const entities[] = {"Invoice", "Customer", "Estimate", "SalesReceipt"};
#define N_ENTITIES (sizeof(entities) / sizeof(entities[0]))

static void check_fault(const qbc_fault_t *f)
{
    CHECK(f->present == 0 || f->present == 1);
    CHECK(TERMINATED(f->type) && TERMINATED(f->code) && TERMINATED(f->message) && TERMINATED(f->detail));
}

/* the rc of a parser that may meet a Fault, against qbc_rec_parse_fault's verdict */
static void check_rc(int rc, const qbc_fault_t *f, int is_fault)
{
    CHECK(rc == 0 || rc == QBC_EMALFORMED || rc == QBC_ENOTFOUND);
    check_fault(f);
    CHECK((rc == QBC_ENOTFOUND) == is_fault);
    CHECK(f->present == (rc == QBC_ENOTFOUND));
}

static void check_item(const qbc_rec_item_t *it)
{
    qbc_json_doc_t doc;
    qbc_json_error_t err;
    size_t n;

    CHECK(TERMINATED(it->id) && it->id[0] != '\0');
    CHECK(TERMINATED(it->sync_token));
    CHECK(it->deleted == 0 || it->deleted == 1);
    if (it->deleted) {
        CHECK(it->data == NULL && it->data_len == 0);
        return;
    }
    CHECK(it->data != NULL && it->data_len > 0 && it->data[it->data_len] == '\0');
    qbc_json_init(&doc, NULL, 0);
    CHECK(qbc_json_scan(&doc, it->data, it->data_len, QBC_JSON_RFC8259, &err) == 0);
    CHECK(doc.tok[0].type == QBC_JSON_OBJECT);
    char *again = qbc_json_copy_compact(&doc, it->data, 0, &n);
    CHECK(n == it->data_len && memcmp(again, it->data, n) == 0);
    free(again);
    qbc_json_dispose(&doc);
}

static void check_items(const qbc_rec_item_t *items, size_t n)
{
    CHECK(items != NULL || n == 0);
    for (size_t i = 0; i < n; i++)
        check_item(&items[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size ? size : 1); /* exactly size bytes: ASan sees a read past the answer */
    qbc_fault_t fault;
    qbc_rec_item_t *items, item;
    qbc_rec_part_t parts[N_ENTITIES];
    qbc_rec_cdc_group_t *groups;
    size_t n, n_groups, total, sum;
    int64_t time_ns;
    int rc, is_fault;

    memcpy(body, data, size);
    is_fault = qbc_rec_parse_fault(body, size, &fault);
    CHECK(is_fault == 0 || is_fault == 1);
    check_fault(&fault);
    CHECK(fault.present == is_fault);

    for (size_t e = 0; e < 2; e++) {
        rc = qbc_rec_parse_query(body, size, entities[e], &items, &n, &fault);
        check_rc(rc, &fault, is_fault);
        if (rc != 0)
            CHECK(items == NULL && n == 0);
        check_items(items, n);
        qbc_rec_items_free(items, n);

        rc = qbc_rec_parse_read(body, size, entities[e], &item, &fault);
        check_rc(rc, &fault, is_fault);
        if (rc == 0)
            check_item(&item);
        else
            CHECK(item.data == NULL);
        free(item.data);
    }

    rc = qbc_rec_parse_batch(body, size, entities, N_ENTITIES, parts, &fault);
    check_rc(rc, &fault, is_fault);
    for (size_t i = 0; i < N_ENTITIES; i++) {
        CHECK(parts[i].state >= -1 && parts[i].state <= 1);
        check_fault(&parts[i].fault);
        CHECK((parts[i].state == 1) == (parts[i].fault.present == 1));
        if (parts[i].state != 0)
            CHECK(parts[i].items == NULL && parts[i].n == 0);
        check_items(parts[i].items, parts[i].n);
        qbc_rec_items_free(parts[i].items, parts[i].n);
    }

    rc = qbc_rec_parse_cdc(body, size, &groups, &n_groups, &time_ns, &total, &fault);
    check_rc(rc, &fault, is_fault);
    if (rc != 0)
        CHECK(groups == NULL && n_groups == 0 && total == 0);
    sum = 0;
    for (size_t g = 0; g < n_groups; g++) {
        CHECK(TERMINATED(groups[g].entity) && qbc_rec_entity_ok(groups[g].entity));
        check_items(groups[g].items, groups[g].n);
        sum += groups[g].n;
    }
    CHECK(sum == total);
    qbc_rec_cdc_groups_free(groups, n_groups);

    free(body);
    return 0;
}
