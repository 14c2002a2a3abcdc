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

json_t *sim_cdc_run(sim_model_t *m, int realm, const int *etypes, size_t n, int64_t since_ns, size_t max_objects,
                    size_t *out_total)
{
    json_t *groups = json_array();
    size_t total = 0;
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
        json_t *grp = json_object();
        json_t *arr = json_array();
        size_t taken = 0;
        for (size_t i = 0; i < na + nd && total < max_objects; i++, total++, taken++)
            json_array_append_new(arr, sim_entity_json(et, i < na ? act[i] : del[i - na]));
        if (taken) {
            json_object_set_new(grp, sim_etype_names[et], arr);
            json_object_set_new(grp, "startPosition", json_integer(1));
            json_object_set_new(grp, "maxResults", json_integer((json_int_t)taken));
            json_object_set_new(grp, "totalCount", json_integer((json_int_t)taken));
        } else {
            json_decref(arr);
        }
        json_array_append_new(groups, grp);
        free(act);
        free(del);
    }
    if (n == 0)
        json_array_append_new(groups, json_object());
    json_t *qr = json_object();
    json_object_set_new(qr, "QueryResponse", groups);
    json_t *cdc = json_array();
    json_array_append_new(cdc, qr);
    if (out_total)
        *out_total = total;
    return cdc;
}
