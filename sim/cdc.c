/*
 * cdc.c — Change Data Capture answers (qbo-facts §2).
 *
 * Shape: {"CDCResponse":[{"QueryResponse":[<one element per requested entity>]}],
 * "time":...}. An entity with changes gives {"<Entity>":[...],"startPosition":1,
 * "maxResults":n,"totalCount":n}; one without gives {} (python-quickbooks'
 * test_cdc.py sample of an empty answer). Within a group objects are ordered by
 * last-updated time, and deleted ones come after the active ones as stubs with
 * status "Deleted". At most 1,000 objects per response in total, shared across the
 * groups in request order: later groups are cut first. A client that gets exactly
 * the cap back must narrow its window or ask per entity (singer does, §2).
 *
 * The answer is written as text around sim_entity_write's bytes, so an entity
 * reads here exactly as in its GET or a query (sim/README.md, "Exact values").
 */
#include <stdlib.h>
#include "common.h"
#include "sim.h"

static int cmp_updated(const void *a, const void *b)
{
    const sim_entity_t *x = *(const sim_entity_t *const *)a, *y = *(const sim_entity_t *const *)b;
    if (x->update_ns != y->update_ns)
        return x->update_ns < y->update_ns ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

void sim_cdc_run(sim_model_t *m, int realm, const int *etypes, size_t n, int64_t since_ns, size_t max_objects,
                 size_t *out_total, qbc_buf_t *out)
{
    size_t total = 0;
    (void)qbc_buf_printf(out, "[{\"QueryResponse\":[");
    for (size_t g = 0; g < n; g++) {
        int et = etypes[g];
        sim_table_t *t = &m->realms[realm].t[et];
        const sim_entity_t **act = qbc_alloc((t->n + 1) * sizeof(*act));
        const sim_entity_t **del = qbc_alloc((t->n + 1) * sizeof(*del));
        size_t na = 0, nd = 0;
        for (size_t k = 0; k < t->n; k++) {
            const sim_entity_t *e = &t->e[k];
            if (e->update_ns < since_ns)
                continue;
            if (e->deleted)
                del[nd++] = e;
            else
                act[na++] = e;
        }
        qsort(act, na, sizeof(*act), cmp_updated);
        qsort(del, nd, sizeof(*del), cmp_updated);
        size_t take = na + nd < max_objects - total ? na + nd : max_objects - total;
        if (g > 0)
            (void)qbc_buf_append(out, ",", 1);
        if (take == 0) {
            (void)qbc_buf_append(out, "{}", 2);
        } else {
            (void)qbc_buf_printf(out, "{\"%s\":[", sim_etype_names[et]);
            for (size_t i = 0; i < take; i++) {
                if (i > 0)
                    (void)qbc_buf_append(out, ",", 1);
                sim_entity_write(et, i < na ? act[i] : del[i - na], out);
            }
            (void)qbc_buf_printf(out, "],\"startPosition\":1,\"maxResults\":%zu,\"totalCount\":%zu}", take, take);
        }
        total += take;
        free(act);
        free(del);
    }
    if (n == 0)
        (void)qbc_buf_append(out, "{}", 2);
    (void)qbc_buf_append(out, "]}]", 3);
    if (out_total)
        *out_total = total;
}
