/*
 * plan.c — from pending notices to fetch tasks.
 *
 * The store's pending table is read into a tracking table (one entry per realm/entity/id)
 * that remembers what the store does not: whether a fetch or a store job holds the notice,
 * its failed attempts and backoff, whether it must be read alone, when it was first seen.
 * Planning then groups ready notices by (realm, entity) into Id IN queries of up to
 * ids_per_query ids, within the realm's budget and token state.
 *
 * Coalescing: a realm that has not been fetched for coalesce_ms is fetched at once (an
 * isolated change costs one call, right away). Within coalesce_ms of its last fetch, new
 * notices wait and gather, unless a full query's worth (ids_per_query) is ready. A due
 * realm sends every (realm, entity) group with nothing in flight, and several groups'
 * queries travel in one batch request (up to REC_BATCH_MAX_ITEMS, within the batch rate
 * and the realm's budget: each item is metered like a call). In a burst a realm thus
 * costs about 1 + burst length / coalesce_ms requests, however many ids and entity types
 * it carries.
 */
#include <stdlib.h>
#include <string.h>
#include "rec_internal.h"

/* ---------------------------------------------------------------- realms and groups */

rec_realm_t *qbc_rec__realm_get(qbc_reconciler_t *r, const char *name, int create)
{
    for (size_t i = 0; i < r->n_realms; i++)
        if (strcmp(r->realms[i]->name, name) == 0)
            return r->realms[i];
    if (!create || strlen(name) >= QBC_REALM_MAX)
        return NULL;
    if (r->n_realms == r->cap_realms) {
        r->cap_realms = r->cap_realms ? r->cap_realms * 2 : 16;
        r->realms = qbc_realloc(r->realms, r->cap_realms * sizeof(*r->realms));
    }
    rec_realm_t *realm = qbc_calloc(1, sizeof(*realm));
    strcpy(realm->name, name);
    realm->status = QBC_REALM_ACTIVE;
    /* a little over a minute: our clock starts a call before the server counts it */
    qbc_budget_init(&realm->budget, r->cfg.rate_per_min, r->cfg.max_inflight, 61LL * 1000000000LL);
    qbc_budget_init(&realm->batch_budget, REC_BATCH_PER_MIN, r->cfg.max_inflight, 61LL * 1000000000LL);
    if (r->cfg.owns != NULL) { /* cluster mode: no call before qbc_rec__fence says it is ours */
        realm->budget.fenced = realm->batch_budget.fenced = 1;
        realm->fence_until_ns = INT64_MIN;
    }
    realm->last_fetch_ns = INT64_MIN / 2;
    realm->batch_cap = REC_BATCH_MAX_ITEMS;
    r->realms[r->n_realms++] = realm;
    return realm;
}

rec_group_t *qbc_rec__group_get(rec_realm_t *realm, const char *entity)
{
    for (size_t i = 0; i < realm->n_groups; i++)
        if (strcmp(realm->groups[i].entity, entity) == 0)
            return &realm->groups[i];
    if (realm->n_groups == realm->cap_groups) {
        realm->cap_groups = realm->cap_groups ? realm->cap_groups * 2 : 8;
        realm->groups = qbc_realloc(realm->groups, realm->cap_groups * sizeof(*realm->groups));
    }
    rec_group_t *g = &realm->groups[realm->n_groups++];
    memset(g, 0, sizeof(*g));
    snprintf(g->entity, sizeof(g->entity), "%s", entity);
    g->last_query_ns = INT64_MIN / 2;
    return g;
}

/* ---------------------------------------------------------------- the tracking table */

static uint64_t key_hash(const char *realm, const char *entity, const char *id)
{
    uint64_t h = 1469598103934665603ull;
    const char *parts[3] = {realm, entity, id};
    for (int p = 0; p < 3; p++) {
        for (const unsigned char *s = (const unsigned char *)parts[p]; *s; s++)
            h = (h ^ *s) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return h;
}

rec_notice_t *qbc_rec__notice_find(qbc_reconciler_t *r, const char *realm, const char *entity, const char *id)
{
    if (r->n_buckets == 0)
        return NULL;
    for (rec_notice_t *n = r->buckets[key_hash(realm, entity, id) & (r->n_buckets - 1)]; n; n = n->hnext)
        if (strcmp(n->id, id) == 0 && strcmp(n->entity, entity) == 0 && strcmp(n->realm->name, realm) == 0)
            return n;
    return NULL;
}

static void rehash(qbc_reconciler_t *r, size_t nb)
{
    rec_notice_t **b = qbc_calloc(nb, sizeof(*b));
    for (size_t i = 0; i < r->n_buckets; i++) {
        rec_notice_t *n = r->buckets[i], *next;
        for (; n; n = next) {
            next = n->hnext;
            size_t k = key_hash(n->realm->name, n->entity, n->id) & (nb - 1);
            n->hnext = b[k];
            b[k] = n;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->n_buckets = nb;
}

static rec_notice_t *notice_add(qbc_reconciler_t *r, rec_realm_t *realm, const char *entity, const char *id)
{
    if (r->n_notices + 1 > r->n_buckets)
        rehash(r, r->n_buckets ? r->n_buckets * 2 : 1024);
    rec_notice_t *n = qbc_calloc(1, sizeof(*n));
    n->realm = realm;
    snprintf(n->entity, sizeof(n->entity), "%s", entity);
    snprintf(n->id, sizeof(n->id), "%s", id);
    size_t k = key_hash(realm->name, entity, id) & (r->n_buckets - 1);
    n->hnext = r->buckets[k];
    r->buckets[k] = n;
    r->n_notices++;
    return n;
}

void qbc_rec__notice_remove(qbc_reconciler_t *r, rec_notice_t *n)
{
    size_t k = key_hash(n->realm->name, n->entity, n->id) & (r->n_buckets - 1);
    for (rec_notice_t **pp = &r->buckets[k]; *pp; pp = &(*pp)->hnext)
        if (*pp == n) {
            *pp = n->hnext;
            r->n_notices--;
            free(n);
            return;
        }
    qbc_fatal("notice not in its bucket");
}

void qbc_rec__notices_free(qbc_reconciler_t *r)
{
    for (size_t i = 0; i < r->n_buckets; i++) {
        rec_notice_t *n = r->buckets[i], *next;
        for (; n; n = next) {
            next = n->hnext;
            free(n);
        }
    }
    free(r->buckets);
    r->buckets = NULL;
    r->n_buckets = r->n_notices = 0;
}

/* ---------------------------------------------------------------- scanning */

struct scan_ctx {
    qbc_reconciler_t *r;
    rec_realm_t *last;
    int64_t now;
};

static int on_pending(const qbc_pending_t *p, void *arg)
{
    struct scan_ctx *c = arg;
    if (strlen(p->realm) >= QBC_REALM_MAX || strlen(p->entity) >= QBC_ENTITY_MAX || strlen(p->id) >= QBC_ID_MAX)
        return 0; /* the store bounds these; never trust a length blindly */
    rec_realm_t *realm =
        c->last != NULL && strcmp(c->last->name, p->realm) == 0 ? c->last : qbc_rec__realm_get(c->r, p->realm, 1);
    c->last = realm;
    rec_notice_t *n = qbc_rec__notice_find(c->r, p->realm, p->entity, p->id);
    if (n == NULL) {
        n = notice_add(c->r, realm, p->entity, p->id);
        n->first_seen_ns = c->now;
        if (p->first_seq != 0) { /* made by a webhook (not by an audit): the realm's webhooks are alive */
            realm->notices_seen++;
            realm->last_notice_wall = qbc_now_ns();
        }
    } else if (n->inflight && p->last_seq != n->last_seq && n->bump_seen_ns == 0) {
        n->bump_seen_ns = c->now; /* a newer change arrived while we fetch */
    }
    n->last_seq = p->last_seq;
    n->last_op = p->last_op;
    n->updated_ns = p->updated_ns;
    snprintf(n->merged_from, sizeof(n->merged_from), "%s", p->merged_from);
    snprintf(n->merged_into, sizeof(n->merged_into), "%s", p->merged_into);
    n->scan_gen = c->r->scan_gen;
    realm->pending_scan++;
    return 0;
}

int qbc_rec__scan_pending(qbc_reconciler_t *r, int64_t now)
{
    struct scan_ctx c = {r, NULL, now};
    r->scan_gen++;
    for (size_t i = 0; i < r->n_realms; i++)
        r->realms[i]->pending_scan = 0;
    int rc = qbc_store_pending_scan(r->store, NULL, on_pending, &c);
    if (rc != 0) {
        qbc_log(QBC_LOG_ERROR, REC_MOD, "reading pending notices: %s", qbc_strerror(rc));
        return rc;
    }
    /* gone from the store (retired elsewhere, e.g. by a redrive race) and not ours: forget */
    for (size_t i = 0; i < r->n_buckets; i++) {
        rec_notice_t *n = r->buckets[i], *next;
        for (; n; n = next) {
            next = n->hnext;
            if (n->scan_gen != r->scan_gen && !n->inflight)
                qbc_rec__notice_remove(r, n);
        }
    }
    for (size_t i = 0; i < r->n_realms; i++)
        r->realms[i]->pending = r->realms[i]->pending_scan;
    return 0;
}

/* ---------------------------------------------------------------- failures */

void qbc_rec__notice_release(rec_notice_t *n)
{
    n->inflight = 0;
}

void qbc_rec__notice_failed(qbc_reconciler_t *r, rec_notice_t *n, int64_t now, const char *error)
{
    n->inflight = 0;
    n->attempts++;
    snprintf(n->last_error, sizeof(n->last_error), "%s", error);
    if (n->attempts >= r->cfg.max_attempts) {
        qbc_rec__dead_letter(r, n, n->last_error);
        return;
    }
    uint64_t ms = qbc_backoff_ms(n->attempts, r->cfg.backoff_base_ms, r->cfg.backoff_max_ms, &r->rng);
    n->next_try_ns = now + (int64_t)ms * 1000000;
}

/* ---------------------------------------------------------------- planning */

static int cmp_ready(const void *a, const void *b)
{
    const rec_notice_t *x = *(rec_notice_t *const *)a, *y = *(rec_notice_t *const *)b;
    int c = strcmp(x->realm->name, y->realm->name);
    if (c != 0)
        return c;
    if (x->need_read != y->need_read)
        return x->need_read ? -1 : 1;
    if ((c = strcmp(x->entity, y->entity)) != 0)
        return c;
    return x->first_seen_ns < y->first_seen_ns ? -1 : x->first_seen_ns > y->first_seen_ns;
}

static void min_into(int64_t *next, int64_t t)
{
    if (t < *next)
        *next = t;
}

int qbc_rec__realm_usable(const rec_realm_t *realm)
{
    return realm->status == QBC_REALM_ACTIVE && realm->has_tokens && realm->auth != REC_AUTH_DISCONNECTED;
}

static int cmp_entity(const void *a, const void *b)
{
    return strcmp((*(rec_notice_t *const *)a)->entity, (*(rec_notice_t *const *)b)->entity);
}

#define LIVE_CDC_WINDOW_NS (6LL * 3600 * 1000000000LL) /* older changes: a CDC answer would carry too much */

/*
 * The cheapest plan: the notices not yet tried through CDC (ns sorted: reads first, then by
 * entity) would cost one read each (ids missing from a query: deleted or merged away) and
 * one query per entity and ids_per_query ids (a batch meters each). One CDC call since the
 * oldest of them answers them all, deletes included, when it costs less: two calls or more,
 * changes of the last few hours, Intuit's time on each. Returns how many it took.
 */
static size_t plan_live_cdc(qbc_reconciler_t *r, rec_realm_t *realm, rec_notice_t **ns, size_t n)
{
    int64_t wall = qbc_now_ns(), oldest = INT64_MAX;
    size_t k = 0, cost = 0, run = 0;
    char entities[QBC_BACKFILL_ENTITIES_MAX] = "";
    rec_notice_t **c = qbc_alloc((n + 1) * sizeof(*c));
    for (size_t i = 0; i < n; i++) {
        rec_notice_t *t = ns[i];
        if (t->cdc_tried || t->updated_ns <= 0 || wall - t->updated_ns > LIVE_CDC_WINDOW_NS)
            continue;
        if (!qbc_list_has(entities, t->entity) && qbc_list_add(entities, sizeof(entities), t->entity) != 0)
            continue; /* the list is full: the others go by query */
        c[k++] = t;
        if (t->updated_ns < oldest)
            oldest = t->updated_ns;
        if (t->need_read) {
            cost++;
        } else if (k == 1 || c[k - 2]->need_read || strcmp(c[k - 2]->entity, t->entity) != 0) {
            cost++; /* a new entity's first query */
            run = 1;
        } else if (++run > r->cfg.ids_per_query) {
            cost++;
            run = 1;
        }
    }
    size_t taken = 0;
    if (cost >= 2) {
        qsort(c, k, sizeof(*c), cmp_entity);
        /* CDC's changedSince is inclusive, to the second: a second early covers rounding */
        if (qbc_rec__start_live_cdc(r, realm, c, k, entities, oldest - 1000000000LL) == 0)
            taken = k;
    }
    free(c);
    return taken;
}

/* plans one realm's ready notices ns[0..n) (sorted: reads first, then by entity) */
static void plan_realm(qbc_reconciler_t *r, rec_realm_t *realm, rec_notice_t **ns, size_t n, int64_t now, int64_t *next)
{
    /* names we cannot put into a query or a URL never will be: dead-letter them */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!qbc_rec_entity_ok(ns[i]->entity) || !qbc_rec_id_ok(ns[i]->id) || !qbc_rec_id_ok(realm->name))
            qbc_rec__dead_letter(r, ns[i], "entity, id or realm not valid in a QBO request");
        else
            ns[k++] = ns[i];
    }
    n = k;
    if (n == 0 || !qbc_rec__realm_usable(realm))
        return;
    if (!qbc_rec__auth_ready(r, realm, now, next))
        return;
    /* the month's allowance: past its line, notices wait for the next period (allowance.c) */
    if (!qbc_rec__allowance_permits(r, QBC_USAGE_LIVE, 1)) {
        realm->waiting = 1;
        min_into(next, now + 1000000000LL);
        return;
    }
    realm->waiting = 0;
    unsigned avail = qbc_budget_available(&realm->budget, now, REC_PRIO_LIVE);
    if (avail == 0) {
        int64_t t = qbc_budget_next(&realm->budget, now, REC_PRIO_LIVE);
        if (t > now)
            min_into(next, t); /* else capped by in-flight calls: their completion wakes us */
        return;
    }
    /* one CDC call instead of several queries and reads, when due (a realm gathers first) */
    int cdc_due = now - realm->last_fetch_ns >= r->coalesce_ns || (n > 0 && ns[0]->need_read);
    if (cdc_due && plan_live_cdc(r, realm, ns, n) > 0) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (!ns[i]->inflight)
                ns[k++] = ns[i];
        n = k;
        if (n == 0 || (avail = qbc_budget_available(&realm->budget, now, REC_PRIO_LIVE)) == 0 ||
            !qbc_rec__allowance_permits(r, QBC_USAGE_LIVE, 1))
            return;
    }
    size_t i = 0;
    for (; i < n && ns[i]->need_read && avail > 0; i++, avail--)
        if (!qbc_rec__allowance_permits(r, QBC_USAGE_LIVE, 1) || qbc_rec__start_read(r, realm, ns[i]) != 0)
            return;
    while (i < n && ns[i]->need_read)
        i++;
    /*
     * Queries. A realm fetched less than coalesce_ms ago gathers (unless a full query's
     * worth is ready); a due realm sends every group that has nothing in flight, several
     * queries in one batch request when it can.
     */
    int due = now - realm->last_fetch_ns >= r->coalesce_ns;
    rec_chunk_t *chunks = qbc_alloc((n - i + 1) * sizeof(*chunks));
    size_t nc = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && strcmp(ns[j]->entity, ns[i]->entity) == 0)
            j++;
        rec_group_t *g = qbc_rec__group_get(realm, ns[i]->entity);
        while (i < j) {
            size_t chunk = j - i < r->cfg.ids_per_query ? j - i : r->cfg.ids_per_query;
            if (chunk < r->cfg.ids_per_query && !(due && g->inflight == 0))
                break;
            chunks[nc++] = (rec_chunk_t){ns[i]->entity, ns + i, chunk};
            i += chunk;
        }
        if (i < j && !due)
            min_into(next, realm->last_fetch_ns + r->coalesce_ns);
        i = j;
    }
    size_t c = 0;
    while (c < nc && (avail = qbc_budget_available(&realm->budget, now, REC_PRIO_LIVE)) > 0) {
        unsigned units = qbc_budget_rate_left(&realm->budget, now, REC_PRIO_LIVE);
        size_t k = nc - c;
        if (k > realm->batch_cap)
            k = realm->batch_cap;
        if (k > units)
            k = units;
        if (!qbc_rec__allowance_permits(r, QBC_USAGE_LIVE, k >= 2 ? (unsigned)k : 1))
            break;
        if (k >= 2 && qbc_budget_available(&realm->batch_budget, now, REC_PRIO_LIVE) > 0) {
            if (qbc_rec__start_batch(r, realm, chunks + c, k) != 0)
                break;
            c += k;
        } else {
            if (qbc_rec__start_query(r, realm, chunks[c].entity, chunks[c].ns, chunks[c].n) != 0)
                break;
            c++;
        }
    }
    if (c < nc) {
        int64_t t = qbc_budget_next(&realm->budget, now, REC_PRIO_LIVE);
        if (t > now)
            min_into(next, t);
    }
    free(chunks);
}

int64_t qbc_rec__plan(qbc_reconciler_t *r, int64_t now)
{
    int64_t next = now + 1000000000LL;
    if (atomic_load(&r->stopping) || r->n_notices == 0)
        return next;
    rec_notice_t **ready = qbc_alloc(r->n_notices * sizeof(*ready));
    size_t n = 0;
    for (size_t b = 0; b < r->n_buckets; b++)
        for (rec_notice_t *x = r->buckets[b]; x; x = x->hnext) {
            if (x->inflight || !qbc_rec__realm_usable(x->realm)) /* a disconnected realm's backlog costs nothing */
                continue;
            if (x->next_try_ns > now) {
                min_into(&next, x->next_try_ns);
                continue;
            }
            ready[n++] = x;
        }
    qsort(ready, n, sizeof(*ready), cmp_ready);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && ready[j]->realm == ready[i]->realm)
            j++;
        plan_realm(r, ready[i]->realm, ready + i, j - i, now, &next);
        i = j;
    }
    free(ready);
    return next;
}
