/*
 * model.c — the simulated companies: realms, their entities, and the changes
 * made to them.
 *
 * Each realm holds one table per entity type; an entity's Id is its row number
 * (1-based), so Ids grow with creation time as QBO's do. Nothing is ever removed:
 * a deleted entity keeps its row with `deleted` set, because CDC must still report
 * it (qbo-facts §2) and GET must answer 610 for it (§9).
 *
 * Changes follow QBO's rules (§9, §1.6): every change bumps SyncToken and
 * LastUpdatedTime; only transactions are deleted; only Invoice and Payment are
 * voided (amount zeroed, SyncToken bumped); only name-list entities are merged
 * (the merged-away record disappears, the survivor is updated, and the webhook
 * names both: id and deletedId).
 */
#include <stdio.h>
#include <string.h>
#include "common.h"
#include "sim.h"

const char *const sim_etype_names[SIM_NTYPES] = {"Customer", "Vendor",  "Item", "Account",
                                                 "Invoice",  "Payment", "Bill", "JournalEntry"};
const char *const sim_op_names[5] = {"Create", "Update", "Delete", "Merge", "Void"};

int sim_etype_lookup(const char *s, size_t len, int exact)
{
    for (int t = 0; t < SIM_NTYPES; t++) {
        const char *n = sim_etype_names[t];
        if (strlen(n) == len && (exact ? memcmp(n, s, len) == 0 : strncasecmp(n, s, len) == 0))
            return t;
    }
    return -1;
}

int sim_etype_is_namelist(int t)
{
    return t == SIM_CUSTOMER || t == SIM_VENDOR || t == SIM_ITEM || t == SIM_ACCOUNT;
}

int sim_etype_is_voidable(int t)
{
    return t == SIM_INVOICE || t == SIM_PAYMENT;
}

/*
 * a transaction's new amount in cents: random, except that the first ids of every
 * SIM_EXACT_CYCLE hold amounts whose double is not what QBO wrote (2932.92, 73.69,
 * 0.10; sim/README.md, "Exact values"), so a client that re-serialises a double shows.
 * The random draw is made either way, so the model's sequence of changes stays the same.
 */
static int64_t new_amount(sim_rng_t *r, uint32_t id)
{
    static const int64_t pinned[] = {293292, 7369, 10};
    int64_t cents = 100 + (int64_t)sim_rng_below(r, 500000);
    uint32_t k = (id - 1) % SIM_EXACT_CYCLE;
    return k < sizeof(pinned) / sizeof(pinned[0]) ? pinned[k] : cents;
}

static sim_entity_t *table_append(sim_table_t *t)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->e = qbc_realloc(t->e, t->cap * sizeof(*t->e));
    }
    sim_entity_t *e = &t->e[t->n++];
    memset(e, 0, sizeof(*e));
    e->id = (uint32_t)t->n;
    return e;
}

void sim_model_init(sim_model_t *m, size_t nrealms, size_t per_type, uint64_t seed, int64_t now_ns, int seed_days)
{
    sim_rng_t r;
    memset(m, 0, sizeof(*m));
    sim_rng_seed(&r, seed);
    sim_rng_seed(&m->rng, seed * 2654435761ULL + 7);
    m->realms = qbc_calloc(nrealms ? nrealms : 1, sizeof(*m->realms));
    m->nrealms = nrealms;
    int64_t span = (int64_t)(seed_days > 0 ? seed_days : 1) * 86400 * 1000000000LL;
    int64_t base = now_ns - span;
    for (size_t i = 0; i < nrealms; i++) {
        sim_realm_t *rl = &m->realms[i];
        /* 10-digit company ids like the official samples' "1185883450" (§1.1); distinct. */
        for (;;) {
            snprintf(rl->id, sizeof(rl->id), "%llu",
                     1000000000ULL + (unsigned long long)sim_rng_below(&r, 8999999999ULL));
            if (sim_model_find_realm(m, rl->id, strlen(rl->id)) == (int)i)
                break;
        }
        for (int t = 0; t < SIM_NTYPES; t++) {
            for (size_t k = 0; k < per_type; k++) {
                sim_entity_t *e = table_append(&rl->t[t]);
                int64_t slot = span / (int64_t)(per_type + 1);
                e->create_ns = base + slot * (int64_t)k + (int64_t)sim_rng_below(&r, (uint64_t)slot / 2 + 1);
                e->create_ns -= e->create_ns % 1000000000; /* whole seconds, as QBO shows them */
                e->sync_token = (uint32_t)sim_rng_below(&r, 3);
                e->update_ns = e->create_ns;
                if (e->sync_token) {
                    int64_t room = now_ns - 60 * 1000000000LL - e->create_ns;
                    if (room > 0)
                        e->update_ns += (int64_t)sim_rng_below(&r, (uint64_t)room);
                }
                e->active = sim_etype_is_namelist(t) ? sim_rng_below(&r, 10) != 0 : 1;
                e->amount_cents = sim_etype_is_namelist(t) ? 0 : new_amount(&r, e->id);
                rl->live_count++;
            }
        }
    }
    m->last_change_ns = now_ns;
}

void sim_model_dispose(sim_model_t *m)
{
    for (size_t i = 0; i < m->nrealms; i++)
        for (int t = 0; t < SIM_NTYPES; t++)
            free(m->realms[i].t[t].e);
    free(m->realms);
    memset(m, 0, sizeof(*m));
}

int sim_model_find_realm(const sim_model_t *m, const char *id, size_t len)
{
    for (size_t i = 0; i < m->nrealms; i++)
        if (strlen(m->realms[i].id) == len && memcmp(m->realms[i].id, id, len) == 0)
            return (int)i;
    return -1;
}

sim_entity_t *sim_model_get(sim_model_t *m, int realm, int etype, uint32_t id)
{
    if (realm < 0 || (size_t)realm >= m->nrealms || etype < 0 || etype >= SIM_NTYPES)
        return NULL;
    sim_table_t *t = &m->realms[realm].t[etype];
    if (id == 0 || id > t->n)
        return NULL;
    return &t->e[id - 1];
}

/* a random live entity of the table (optionally active and not voided), or NULL. */
static sim_entity_t *pick_live(sim_rng_t *r, sim_table_t *t, int want_active, int not_voided,
                               const sim_entity_t *not_this)
{
    if (t->n == 0)
        return NULL;
    size_t start = (size_t)sim_rng_below(r, t->n);
    for (size_t k = 0; k < t->n; k++) {
        sim_entity_t *e = &t->e[(start + k) % t->n];
        if (e->deleted || e == not_this || (want_active && !e->active) || (not_voided && e->voided))
            continue;
        return e;
    }
    return NULL;
}

static void touch(sim_entity_t *e, int64_t at)
{
    e->sync_token++;
    e->update_ns = at > e->update_ns ? at : e->update_ns + 1000000;
}

void sim_model_mutate(sim_model_t *m, int realm, int64_t now_ns, sim_change_t *out)
{
    sim_rng_t *r = &m->rng;
    if (realm < 0 || (size_t)realm >= m->nrealms)
        realm = (int)sim_rng_below(r, m->nrealms);
    sim_realm_t *rl = &m->realms[realm];
    /* strictly increasing change times (1 us apart at least), never before a CDC
     * watermark already handed out (sim_model_watermark) */
    int64_t at = now_ns > m->last_change_ns ? now_ns : m->last_change_ns + 1000;
    m->last_change_ns = at;

    int etype = (int)sim_rng_below(r, SIM_NTYPES);
    sim_table_t *t = &rl->t[etype];
    unsigned roll = (unsigned)sim_rng_below(r, 100);
    int op = roll < 30   ? SIM_OP_CREATE
             : roll < 75 ? SIM_OP_UPDATE
             : roll < 85 ? SIM_OP_DELETE
             : roll < 92 ? SIM_OP_VOID
                         : SIM_OP_MERGE;
    if (op == SIM_OP_DELETE && sim_etype_is_namelist(etype))
        op = SIM_OP_UPDATE;
    if (op == SIM_OP_VOID && !sim_etype_is_voidable(etype))
        op = SIM_OP_UPDATE;
    if (op == SIM_OP_MERGE && !sim_etype_is_namelist(etype))
        op = SIM_OP_DELETE;

    memset(out, 0, sizeof(*out));
    out->realm = realm;
    out->etype = etype;
    out->at_ns = at;

    sim_entity_t *e = NULL, *from = NULL;
    switch (op) {
    case SIM_OP_UPDATE:
    case SIM_OP_DELETE:
        e = pick_live(r, t, 0, 0, NULL);
        break;
    case SIM_OP_VOID:
        e = pick_live(r, t, 0, 1, NULL);
        break;
    case SIM_OP_MERGE:
        e = pick_live(r, t, 1, 0, NULL);
        from = e ? pick_live(r, t, 1, 0, e) : NULL;
        if (!from)
            e = NULL;
        break;
    default:
        break;
    }
    if (!e)
        op = SIM_OP_CREATE;
    out->op = op;

    switch (op) {
    case SIM_OP_CREATE:
        e = table_append(t);
        e->create_ns = e->update_ns = at;
        e->active = 1;
        e->amount_cents = sim_etype_is_namelist(etype) ? 0 : new_amount(r, e->id);
        rl->live_count++;
        break;
    case SIM_OP_UPDATE:
        touch(e, at);
        if (sim_etype_is_namelist(etype)) {
            if (sim_rng_below(r, 10) == 0)
                e->active = !e->active;
        } else if (!e->voided) {
            e->amount_cents = new_amount(r, e->id);
        }
        break;
    case SIM_OP_DELETE:
        touch(e, at);
        e->deleted = 1;
        rl->live_count--;
        break;
    case SIM_OP_VOID:
        touch(e, at);
        e->voided = 1;
        e->amount_cents = 0;
        break;
    case SIM_OP_MERGE:
        touch(e, at);
        touch(from, at);
        from->deleted = 1;
        from->merged_into = e->id;
        out->deleted_id = from->id;
        rl->live_count--;
        break;
    }
    out->id = e->id;
}

int64_t sim_model_watermark(sim_model_t *m, int64_t now_ns)
{
    int64_t t = now_ns > m->last_change_ns ? now_ns : m->last_change_ns + 1;
    t = (t + 999999) / 1000000 * 1000000; /* up to a whole ms: it is rendered with ms */
    if (m->last_change_ns < t - 1000)
        m->last_change_ns = t - 1000; /* the next change lands at t or later */
    return t;
}

json_t *sim_model_truth(const sim_model_t *m)
{
    json_t *root = json_object();
    char key[64], tok[16];
    for (size_t i = 0; i < m->nrealms; i++) {
        const sim_realm_t *rl = &m->realms[i];
        json_t *live = json_object(), *deleted = json_array();
        for (int t = 0; t < SIM_NTYPES; t++) {
            for (size_t k = 0; k < rl->t[t].n; k++) {
                const sim_entity_t *e = &rl->t[t].e[k];
                snprintf(key, sizeof(key), "%s/%u", sim_etype_names[t], e->id);
                if (e->deleted) {
                    json_array_append_new(deleted, json_string(key));
                } else {
                    snprintf(tok, sizeof(tok), "%u", e->sync_token);
                    json_object_set_new(live, key, json_string(tok));
                }
            }
        }
        json_t *r = json_object();
        json_object_set_new(r, "live", live);
        json_object_set_new(r, "deleted", deleted);
        json_object_set_new(root, rl->id, r);
    }
    return root;
}
