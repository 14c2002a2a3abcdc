/*
 * limits.c — the per-realm request-rate window (qbo-facts §5: 500 requests per
 * minute per realm).
 *
 * A sliding window kept as a ring of the admission times of the last `limit`
 * admitted requests: a new request is admitted iff the oldest of them is older
 * than the window. Refused requests are not recorded, so a client that keeps
 * hammering gets through again exactly one window after its 500th success.
 * Concurrency (10 in flight per realm) is a plain counter kept in server.c.
 */
#include <string.h>
#include "common.h"
#include "sim.h"

void sim_ratelimit_init(sim_ratelimit_t *r, size_t limit, int64_t window_ns)
{
    memset(r, 0, sizeof(*r));
    r->limit = limit;
    r->window_ns = window_ns;
    if (limit)
        r->ring = qbc_calloc(limit, sizeof(*r->ring));
}

void sim_ratelimit_dispose(sim_ratelimit_t *r)
{
    free(r->ring);
    memset(r, 0, sizeof(*r));
}

/* the i-th oldest recorded admission (0 = oldest). */
static int64_t nth_oldest(const sim_ratelimit_t *r, size_t i)
{
    size_t oldest = (r->head + r->limit - r->count) % r->limit;
    return r->ring[(oldest + i) % r->limit];
}

size_t sim_ratelimit_used(const sim_ratelimit_t *r, int64_t now_ns)
{
    size_t used = 0;
    for (size_t i = 0; i < r->count; i++)
        if (nth_oldest(r, i) > now_ns - r->window_ns)
            used++;
    return used;
}

int sim_ratelimit_admit(sim_ratelimit_t *r, int64_t now_ns, size_t cost)
{
    if (r->limit == 0)
        return 1; /* unlimited */
    if (cost == 0)
        cost = 1;
    if (cost > r->limit)
        return 0;
    /* after admitting, the window would hold the last `limit` entries; the one that
     * would be the oldest remaining must be outside the window. */
    if (r->count + cost > r->limit) {
        size_t must_expire = r->count + cost - r->limit; /* this many oldest must be out of the window */
        if (nth_oldest(r, must_expire - 1) > now_ns - r->window_ns)
            return 0;
    }
    for (size_t i = 0; i < cost; i++) {
        r->ring[r->head] = now_ns;
        r->head = (r->head + 1) % r->limit;
        if (r->count < r->limit)
            r->count++;
    }
    return 1;
}
